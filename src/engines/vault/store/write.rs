//! Writes: validating and appending records to the active segment (rolling
//! it over when full), updating the index in sequence order, and making them
//! durable as the sync policy says, with leader-based group commit sharing
//! one sync among concurrent writers. A failed sync stops the vault (see
//! [`Vault::stop`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::open::Flaw;
use super::packing;
use super::{io, lock, read, tally, write, Location, Log, Vault, VaultError};
use crate::engines::vault::format::{self, Codec, RECORD_HEADER, SEGMENT_HEADER};

/// When a write is synced to disk before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every write is synced before it returns.
    Always,
    /// Writers share syncs: the writes that arrive while a sync is in flight
    /// form the next group, synced as soon as the previous sync returns. Its
    /// leader waits for as many writers as the previous cycle held (one
    /// writer alone: none), but never longer than this bound.
    Group(Duration),
    /// Never synced by a write (only at rollover and compaction): a crash loses recent writes.
    None,
}

/// Group commit: one sync in flight at a time; whoever finds none in flight
/// leads the next one for everyone who has appended.
#[derive(Default)]
pub(super) struct Group {
    pub(super) state: Mutex<GroupState>,
    /// Writers waiting for a sync.
    wake: Condvar,
    /// The gathering leader, woken by each writer that joins (only it: a
    /// wake-up of every waiter per join costs more than the sync).
    joins: Condvar,
}

#[derive(Default)]
pub(super) struct GroupState {
    /// The log position every sync so far has covered.
    pub(super) synced: u64,
    /// The log position the sync in flight will cover.
    flying: u64,
    /// A group sync is in flight.
    syncing: bool,
    /// A leader is gathering its group.
    gathering: bool,
    /// Writers that joined since the last group sync began, so that no sync
    /// in flight covers them.
    joined: usize,
    /// Writers the gathering leader waits for (it is woken once, by the last of them).
    target: usize,
    /// Writers the previous group sync covered.
    last_group: usize,
}

impl Vault {
    /// Stores `value` under `key`; durable on return as the sync policy says.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), VaultError> {
        self.write(key, Some(value), self.options.sync)
    }

    /// Deletes `key` (a tombstone record; deleting a missing key writes nothing).
    pub fn delete(&self, key: &[u8]) -> Result<bool, VaultError> {
        if !read(&self.index).contains_key(key) {
            return Ok(false);
        }
        self.write(key, None, self.options.sync)?;
        Ok(true)
    }

    /// Writes without waiting for a sync, whatever the policy (a bulk load
    /// followed by [`Vault::sync`]).
    pub fn put_unsynced(&self, key: &[u8], value: &[u8]) -> Result<(), VaultError> {
        self.write(key, Some(value), SyncPolicy::None)
    }

    /// Syncs everything written so far.
    pub fn sync(&self) -> Result<(), VaultError> {
        self.running()?;
        let mut log = lock(&self.log);
        if let Err(error) = log.file.sync_data() {
            return Err(self.stop(&mut log, io("syncing the active segment")(error)));
        }
        tally(&self.stats.syncs, 1, |s| &mut s.syncs);
        let mut state = lock(&self.group.state);
        state.synced = state.synced.max(log.written);
        Ok(())
    }

    fn write(&self, key: &[u8], value: Option<&[u8]>, sync: SyncPolicy) -> Result<(), VaultError> {
        if key.is_empty() || key.len() > format::MAX_KEY {
            return Err(VaultError::Invalid(format!("keys are 1 to {} bytes, not {}", format::MAX_KEY, key.len())));
        }
        if value.is_some_and(|v| v.len() > format::MAX_VALUE) {
            return Err(VaultError::Invalid(format!("values are at most {} bytes", format::MAX_VALUE)));
        }
        self.running()?;
        // Compressed before the log lock is taken, so writers compress in parallel.
        let mut frame = Vec::new();
        let stored = match value {
            Some(value) => match packing::pack(self.options.compression, value, &mut frame)? {
                Codec::Plain => Some((Codec::Plain, value)),
                codec => Some((codec, frame.as_slice())),
            },
            None => None,
        };
        let (seq, written) = {
            let mut log = lock(&self.log);
            self.running()?;
            let record_len = (RECORD_HEADER + key.len() + stored.map_or(0, |(_, v)| v.len())) as u64;
            if log.len > SEGMENT_HEADER && log.len + record_len > self.options.segment_size {
                self.roll(&mut log)?;
            }
            if self.options.flaw == Flaw::AckBeforeSync && sync == SyncPolicy::Always {
                // Deliberately wrong: syncs the previous write instead of this one.
                log.file.sync_data().map_err(io("syncing"))?;
            }
            let seq = log.next_seq;
            let mut buffer = std::mem::take(&mut log.buffer);
            buffer.clear();
            format::encode_stored(&mut buffer, seq, key, stored);
            let offset = log.len;
            let appended = log.file.write_at(&buffer, offset);
            log.buffer = buffer;
            if let Err(error) = appended {
                // Leave no partial record behind: the next write starts at the same offset.
                if let Err(cut) = log.file.set_len(offset) {
                    let why = io(format!("cutting a failed write from segment {}", log.id))(cut);
                    return Err(self.stop(&mut log, why));
                }
                return Err(io(format!("writing segment {}", log.id))(error));
            }
            log.next_seq += 1;
            log.len += record_len;
            log.written += record_len;
            if sync == SyncPolicy::Always && self.options.flaw != Flaw::AckBeforeSync {
                if let Err(error) = log.file.sync_data() {
                    let why = io(format!("syncing segment {}", log.id))(error);
                    return Err(self.stop(&mut log, why));
                }
                tally(&self.stats.syncs, 1, |s| &mut s.syncs);
                let mut state = lock(&self.group.state);
                state.synced = state.synced.max(log.written);
            }
            tally(&self.stats.user_bytes, (key.len() + value.map_or(0, <[u8]>::len)) as u64, |s| &mut s.user_bytes);
            tally(&self.stats.disk_bytes, record_len, |s| &mut s.disk_bytes);
            // Under the log lock, so the index sees writes in sequence order.
            let mut index = write(&self.index);
            let replaced = match value {
                Some(_) => {
                    let location = Location { segment: log.id, offset, len: record_len as u32, seq };
                    index.insert(key.to_vec(), location)
                }
                None => index.remove(key),
            };
            // Dead: the record replaced, and a tombstone once written.
            let dead = replaced.map_or(0, |old| u64::from(old.len)) + if value.is_none() { record_len } else { 0 };
            self.space.dead.fetch_add(dead, Ordering::Relaxed);
            self.space.total.fetch_add(record_len, Ordering::Relaxed);
            (seq, log.written)
        };
        if let Some(cache) = &self.cache {
            cache.invalidate(key, seq);
        }
        if let SyncPolicy::Group(bound) = sync {
            self.group_commit(written, bound)?;
        }
        Ok(())
    }

    /// Waits until the log is synced up to `position`, leading a shared
    /// sync if none is in flight (one at a time: two, the next group syncing
    /// while the previous one's sync ran, measured slower on the development
    /// VM, see docs/performance.md).
    fn group_commit(&self, position: u64, bound: Duration) -> Result<(), VaultError> {
        let mut state = lock(&self.group.state);
        state.joined += 1;
        if state.gathering && state.joined >= state.target {
            self.group.joins.notify_one();
        }
        loop {
            if state.synced >= position {
                return Ok(());
            }
            if self.stopped.load(Ordering::Acquire) {
                return Err(VaultError::Stopped("a group commit sync failed".into()));
            }
            if state.gathering || state.flying >= position || state.syncing {
                state = self.group.wake.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            // Lead: gather as many writers as the previous cycle had (they are
            // appending again), for no longer than the bound. (Bounding it
            // by the previous sync's duration instead cut groups short and
            // left stragglers a whole cycle behind: 8 writers ran at a median
            // 28.7k writes/s against 34.9k, with a worse p99.)
            state.gathering = true;
            let deadline = Instant::now() + bound;
            let target = state.last_group;
            state.target = target;
            while state.joined < target {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
                state = self.group.joins.wait_timeout(state, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
            }
            let covered = std::mem::take(&mut state.joined);
            state.syncing = true;
            drop(state);
            let (file, upto) = {
                let log = lock(&self.log);
                (Arc::clone(&log.file), log.written)
            };
            state = lock(&self.group.state);
            state.flying = state.flying.max(upto);
            state.gathering = false;
            drop(state);
            let synced = match self.options.flaw {
                // Deliberately wrong: the group is acknowledged, its sync left to the next group.
                Flaw::AckBeforeSync => Ok(()),
                _ => file.sync_data(),
            };
            tally(&self.stats.syncs, 1, |s| &mut s.syncs);
            if let Err(error) = synced {
                let mut log = lock(&self.log);
                let stopped = self.stop(&mut log, io("group commit sync")(error));
                drop(log);
                state = lock(&self.group.state);
                state.syncing = false;
                self.group.wake.notify_all();
                return Err(stopped);
            }
            state = lock(&self.group.state);
            state.syncing = false;
            state.synced = state.synced.max(upto);
            state.last_group = covered + state.joined;
            self.group.wake.notify_all();
        }
    }

    /// After a failed sync nothing written since the last good sync can be
    /// trusted to reach the disk, even if a later sync succeeds (the kernel
    /// may have dropped those pages: PostgreSQL's "fsyncgate"). So the vault
    /// stops: it cuts the active segment back to what the last good sync
    /// covered (so a reopen in the same boot does not read records from the
    /// page cache that never reached the disk), syncs that, and refuses every
    /// operation until it is opened again. Returns the error to report.
    pub(super) fn stop(&self, log: &mut Log, error: VaultError) -> VaultError {
        self.stopped.store(true, Ordering::Release);
        let synced = lock(&self.group.state).synced;
        let unsynced = log.written - synced.max(log.segment_start).min(log.written);
        let durable = log.len - unsynced;
        if log.file.set_len(durable).and_then(|()| log.file.sync_data()).is_ok() {
            log.len = durable;
            log.written -= unsynced;
        }
        VaultError::Stopped(error.to_string())
    }
}
