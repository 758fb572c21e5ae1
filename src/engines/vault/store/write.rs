//! Writes: validating and appending records to the active segment (rolling
//! it over when full), updating the index in sequence order, and making them
//! durable as the sync policy says, with group commit sharing one sync among
//! concurrent writers.

use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::{io, lock, read, tally, write, Location, Vault, VaultError};
use crate::engines::vault::format::{self, RECORD_HEADER, SEGMENT_HEADER};

/// When a write is synced to disk before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every write is synced before it returns.
    Always,
    /// Writers wait for one shared sync that starts at most this long after the first of them.
    Group(Duration),
    /// Never synced by a write (only at rollover and compaction): a crash loses recent writes.
    None,
}

/// Group commit: the first waiter becomes the leader, gathers for the
/// window, syncs once for everyone and wakes them.
#[derive(Default)]
pub(super) struct Group {
    pub(super) state: Mutex<GroupState>,
    wake: Condvar,
}

#[derive(Default)]
pub(super) struct GroupState {
    pub(super) synced: u64,
    leader: bool,
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
        let (file, written) = {
            let log = lock(&self.log);
            (Arc::clone(&log.file), log.written)
        };
        file.sync_data().map_err(io("syncing the active segment"))?;
        tally(&self.stats.syncs, 1, |s| &mut s.syncs);
        let mut state = lock(&self.group.state);
        state.synced = state.synced.max(written);
        Ok(())
    }

    fn write(&self, key: &[u8], value: Option<&[u8]>, sync: SyncPolicy) -> Result<(), VaultError> {
        if key.is_empty() || key.len() > format::MAX_KEY {
            return Err(VaultError::Invalid(format!("keys are 1 to {} bytes, not {}", format::MAX_KEY, key.len())));
        }
        if value.is_some_and(|v| v.len() > format::MAX_VALUE) {
            return Err(VaultError::Invalid(format!("values are at most {} bytes", format::MAX_VALUE)));
        }
        let (seq, written) = {
            let mut log = lock(&self.log);
            let record_len = (RECORD_HEADER + key.len() + value.map_or(0, <[u8]>::len)) as u64;
            if log.len > SEGMENT_HEADER && log.len + record_len > self.options.segment_size {
                self.roll(&mut log)?;
            }
            let seq = log.next_seq;
            let mut buffer = std::mem::take(&mut log.buffer);
            buffer.clear();
            format::encode_record(&mut buffer, seq, key, value);
            let offset = log.len;
            if let Err(error) = log.file.write_all_at(&buffer, offset) {
                // Leave no partial record behind: the next write starts at the same offset.
                let _ = log.file.set_len(offset);
                log.buffer = buffer;
                return Err(io(format!("writing segment {}", log.id))(error));
            }
            if sync == SyncPolicy::Always {
                if let Err(error) = log.file.sync_data() {
                    let _ = log.file.set_len(offset);
                    log.buffer = buffer;
                    return Err(io(format!("syncing segment {}", log.id))(error));
                }
                tally(&self.stats.syncs, 1, |s| &mut s.syncs);
            }
            log.next_seq += 1;
            log.len += record_len;
            log.written += record_len;
            log.buffer = buffer;
            tally(&self.stats.user_bytes, (key.len() + value.map_or(0, <[u8]>::len)) as u64, |s| &mut s.user_bytes);
            tally(&self.stats.disk_bytes, record_len, |s| &mut s.disk_bytes);
            // Under the log lock, so the index sees writes in sequence order.
            let mut index = write(&self.index);
            match value {
                Some(_) => {
                    let location = Location { segment: log.id, offset, len: record_len as u32, seq };
                    index.insert(key.to_vec(), location);
                }
                None => {
                    index.remove(key);
                }
            }
            (seq, log.written)
        };
        if let Some(cache) = &self.cache {
            cache.invalidate(key, seq);
        }
        if let SyncPolicy::Group(window) = sync {
            self.group_commit(written, window)?;
        }
        Ok(())
    }

    /// Waits until the log is synced up to `position`, leading one shared sync if nobody is.
    fn group_commit(&self, position: u64, window: Duration) -> Result<(), VaultError> {
        let mut state = lock(&self.group.state);
        loop {
            if state.synced >= position {
                return Ok(());
            }
            if state.leader {
                state = self.group.wake.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            state.leader = true;
            drop(state);
            std::thread::sleep(window);
            let (file, upto) = {
                let log = lock(&self.log);
                (Arc::clone(&log.file), log.written)
            };
            let result = file.sync_data();
            tally(&self.stats.syncs, 1, |s| &mut s.syncs);
            state = lock(&self.group.state);
            state.leader = false;
            if result.is_ok() {
                state.synced = state.synced.max(upto);
            }
            self.group.wake.notify_all();
            result.map_err(io("group commit sync"))?;
        }
    }
}
