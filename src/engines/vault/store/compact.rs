//! Rollover and compaction: sealing the active segment, rewriting the live
//! records of sealed segments into new segments with hint files, and the
//! manifest that lets a crash at any point finish the compaction on the next
//! open instead of losing or duplicating data.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::open::Flaw;
use super::{create_segment, io, lock, read, sync_dir, tally, write, Location, Log, Stats, Vault, VaultError};
use crate::engines::vault::format::{self, SEGMENT_HEADER};
use crate::engines::vault::fs::{write_synced, Fs, FsFile};

const COMPACTION_MANIFEST: &str = "COMPACTION";

fn remove_if_present(fs: &dyn Fs, path: &Path) -> Result<(), VaultError> {
    match fs.remove(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(io(format!("removing {}", path.display()))(error))
        }
        _ => Ok(()),
    }
}

/// Completes a compaction a crash interrupted: its outputs are durable, so the inputs it names go.
pub(super) fn finish_compaction(fs: &dyn Fs, dir: &Path) -> Result<(), VaultError> {
    let manifest = dir.join(COMPACTION_MANIFEST);
    let text = match fs.read(&manifest) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(io(format!("reading {}", manifest.display()))(error)),
    };
    let text = String::from_utf8_lossy(&text);
    for id in text.split_whitespace().filter_map(|word| word.parse::<u64>().ok()) {
        remove_if_present(fs, &format::segment_path(dir, id))?;
        remove_if_present(fs, &format::hint_path(dir, id))?;
    }
    fs.remove(&manifest).map_err(io(format!("removing {}", manifest.display())))?;
    sync_dir(fs, dir)
}

impl Vault {
    /// Seals the active segment (synced whatever the policy) and starts a new one.
    pub(super) fn roll(&self, log: &mut Log) -> Result<(), VaultError> {
        if let Err(error) = log.file.sync_data() {
            return Err(self.stop(log, io(format!("syncing segment {}", log.id))(error)));
        }
        tally(&self.stats.syncs, 1, |s| &mut s.syncs);
        lock(&self.group.state).synced = log.written;
        let id = log.next_id;
        let file = if self.options.flaw == Flaw::SkipSegmentDirSync {
            // Deliberately wrong: the new segment's name is never synced.
            let path = format::segment_path(&self.dir, id);
            let file = self.fs.create(&path, false).map_err(io("creating a segment"))?;
            file.write_at(&format::segment_header(id), 0).map_err(io("writing a segment"))?;
            file
        } else {
            create_segment(self.fs.as_ref(), &self.dir, id)?
        };
        write(&self.segments).insert(id, Arc::clone(&file));
        log.id = id;
        log.next_id += 1;
        log.file = file;
        log.len = SEGMENT_HEADER;
        log.segment_start = log.written;
        tally(&self.stats.disk_bytes, SEGMENT_HEADER, |s| &mut s.disk_bytes);
        Ok(())
    }

    /// Compacts if [`Vault::wants_compaction`]; what the compaction wrote is
    /// kept for [`Vault::take_background`]. Returns whether it ran.
    pub fn compact_if_due(&self) -> Result<bool, VaultError> {
        if !self.wants_compaction() {
            return Ok(false);
        }
        let before = super::take_thread_stats();
        let result = self.compact();
        lock(&self.background).add(super::take_thread_stats());
        self.background_pending.store(true, std::sync::atomic::Ordering::Release);
        super::stats::restore_thread_stats(before);
        result.map(|_| true)
    }

    /// Takes (and resets) what background compactions did: disk bytes,
    /// syncs and compactions, for a worker to report with its own.
    pub fn take_background(&self) -> super::ThreadStats {
        if !self.background_pending.swap(false, std::sync::atomic::Ordering::AcqRel) {
            return super::ThreadStats::default();
        }
        std::mem::take(&mut *lock(&self.background))
    }

    /// Rewrites the live records of every sealed segment into new segments
    /// with hint files, then retires the old ones. Reads and writes continue
    /// meanwhile; returns the bytes reclaimed.
    pub fn compact(&self) -> Result<u64, VaultError> {
        self.running()?;
        let _one_at_a_time = lock(&self.compaction);
        let (inputs, next_id) = {
            let mut log = lock(&self.log);
            if log.len > SEGMENT_HEADER {
                self.roll(&mut log)?;
            }
            let active = log.id;
            let mut inputs: Vec<u64> = read(&self.segments).keys().copied().filter(|id| *id != active).collect();
            inputs.sort_unstable();
            // Reserve ids for the outputs: at most one per input.
            let first = log.next_id;
            log.next_id += inputs.len() as u64 + 1;
            (inputs, first)
        };
        if inputs.is_empty() {
            return Ok(0);
        }
        let input_set: HashSet<u64> = inputs.iter().copied().collect();
        let mut live: Vec<(Vec<u8>, Location)> = read(&self.index)
            .iter()
            .filter(|(_, l)| input_set.contains(&l.segment))
            .map(|(k, l)| (k.clone(), *l))
            .collect();
        live.sort_by_key(|(_, l)| (l.segment, l.offset));
        let files: HashMap<u64, Arc<dyn FsFile>> = read(&self.segments)
            .iter()
            .filter(|(id, _)| input_set.contains(id))
            .map(|(id, f)| (*id, Arc::clone(f)))
            .collect();
        let before: u64 = files.values().filter_map(|f| f.len().ok()).sum();
        let mut outputs: Vec<(u64, Arc<dyn FsFile>)> = Vec::new();
        let written = self.write_outputs(live, &files, next_id, &mut outputs);
        let moves = match written {
            Ok(moves) => moves,
            Err(error) => {
                // A full disk or a failed write: the inputs stay in use and
                // the outputs go, so that no copy of a record outlives a
                // later delete of its key.
                return Err(match self.discard_outputs(next_id, inputs.len() as u64 + 1) {
                    Ok(()) => error,
                    Err(cleanup) => {
                        let mut log = lock(&self.log);
                        self.stop(&mut log, cleanup)
                    }
                });
            }
        };
        // The outputs are durable: name the inputs to retire, so a crash from here on finishes the job.
        let manifest = self.dir.join(COMPACTION_MANIFEST);
        let list: String = inputs.iter().map(|id| format!("{id}\n")).collect();
        let temporary = self.dir.join("COMPACTION.tmp");
        let named = write_synced(self.fs.as_ref(), &temporary, list.as_bytes())
            .and_then(|()| self.fs.rename(&temporary, &manifest))
            .map_err(io("writing the compaction manifest"))
            .and_then(|()| sync_dir(self.fs.as_ref(), &self.dir));
        if let Err(error) = named {
            let _ = self.fs.remove(&temporary);
            return Err(match self.fs.remove(&manifest).or_else(|_| self.fs.sync_dir(&self.dir)) {
                Ok(()) if self.discard_outputs(next_id, inputs.len() as u64 + 1).is_ok() => error,
                _ => {
                    let mut log = lock(&self.log);
                    self.stop(&mut log, error)
                }
            });
        }
        // Committed: from here on a failure leaves the vault stopped, and the
        // next open finishes the job from the manifest (a later compaction in
        // this session would replace the manifest and leave its inputs behind).
        write(&self.segments).extend(outputs.iter().map(|(id, file)| (*id, Arc::clone(file))));
        {
            let _writers = lock(&self.log);
            let mut index = write(&self.index);
            for (key, old, new) in moves {
                if index.get(&key) == Some(&old) {
                    index.insert(key, new);
                }
            }
        }
        {
            let mut segments = write(&self.segments);
            for id in &inputs {
                segments.remove(id);
            }
        }
        if let Err(error) = finish_compaction(self.fs.as_ref(), &self.dir) {
            let mut log = lock(&self.log);
            return Err(self.stop(&mut log, error));
        }
        let after: u64 = outputs.iter().filter_map(|(_, file)| file.len().ok()).sum();
        self.measure_space();
        tally(&self.stats.compactions, 1, |s| &mut s.compactions);
        Ok(before.saturating_sub(after))
    }

    /// Copies the live records into output segments from id `first` on,
    /// each synced with its hint file and then named; returns the index moves.
    #[allow(clippy::type_complexity)]
    fn write_outputs(
        &self,
        live: Vec<(Vec<u8>, Location)>,
        files: &HashMap<u64, Arc<dyn FsFile>>,
        first: u64,
        outputs: &mut Vec<(u64, Arc<dyn FsFile>)>,
    ) -> Result<Vec<(Vec<u8>, Location, Location)>, VaultError> {
        let mut next_id = first;
        let mut moves: Vec<(Vec<u8>, Location, Location)> = Vec::with_capacity(live.len());
        let mut writer: Option<CompactionOutput> = None;
        for (key, old) in live {
            let file = files
                .get(&old.segment)
                .ok_or_else(|| VaultError::Invalid("a segment vanished during compaction".into()))?;
            let record = self.read_raw(file.as_ref(), &key, old)?;
            if writer
                .as_ref()
                .is_some_and(|w| w.len + record.len() as u64 > self.options.segment_size && w.len > SEGMENT_HEADER)
            {
                if let Some(done) = writer.take() {
                    outputs.push(done.finish(self.fs.as_ref(), &self.stats)?);
                }
            }
            if writer.is_none() {
                writer = Some(CompactionOutput::create(self.fs.as_ref(), &self.dir, next_id)?);
                next_id += 1;
            }
            let Some(out) = writer.as_mut() else { continue };
            let new = Location { segment: out.id, offset: out.len, len: record.len() as u32, seq: old.seq };
            out.append(&record, &key)?;
            moves.push((key, old, new));
        }
        if let Some(done) = writer.take() {
            outputs.push(done.finish(self.fs.as_ref(), &self.stats)?);
        }
        sync_dir(self.fs.as_ref(), &self.dir)?;
        Ok(moves)
    }

    /// Removes whatever a failed compaction wrote under the `count` ids from `first`.
    fn discard_outputs(&self, first: u64, count: u64) -> Result<(), VaultError> {
        for id in first..first + count {
            for path in [
                self.dir.join(format!("{id:010}.seg.compacting")),
                self.dir.join(format!("{id:010}.hint.compacting")),
                format::hint_path(&self.dir, id),
                format::segment_path(&self.dir, id),
            ] {
                remove_if_present(self.fs.as_ref(), &path)?;
            }
        }
        sync_dir(self.fs.as_ref(), &self.dir)
    }
}

/// A segment being written by compaction, with its hint file; both become
/// visible under their real names only once synced.
struct CompactionOutput {
    id: u64,
    file: Arc<dyn FsFile>,
    len: u64,
    hints: Vec<u8>,
    path: PathBuf,
    dir: PathBuf,
}

impl CompactionOutput {
    fn create(fs: &dyn Fs, dir: &Path, id: u64) -> Result<CompactionOutput, VaultError> {
        let path = dir.join(format!("{id:010}.seg.compacting"));
        let file = fs.create(&path, false).map_err(io(format!("creating {}", path.display())))?;
        file.write_at(&format::segment_header(id), 0).map_err(io(format!("writing {}", path.display())))?;
        Ok(CompactionOutput {
            id,
            file,
            len: SEGMENT_HEADER,
            hints: format::HINT_MAGIC.to_vec(),
            path,
            dir: dir.to_owned(),
        })
    }

    /// Appends a whole record (as read and verified) and its hint.
    fn append(&mut self, record: &[u8], key: &[u8]) -> Result<(), VaultError> {
        self.file.write_at(record, self.len).map_err(io(format!("writing {}", self.path.display())))?;
        let header = record
            .get(..format::RECORD_HEADER)
            .and_then(|bytes| format::RecordHeader::parse(bytes.try_into().ok()?))
            .ok_or_else(|| VaultError::Invalid("compaction copied an impossible record".into()))?;
        let stored = header.value_len.unwrap_or(0) as u32;
        format::encode_hint(&mut self.hints, header.seq, key, stored, self.len);
        self.len += record.len() as u64;
        Ok(())
    }

    fn finish(self, fs: &dyn Fs, stats: &Stats) -> Result<(u64, Arc<dyn FsFile>), VaultError> {
        self.file.sync_data().map_err(io(format!("syncing {}", self.path.display())))?;
        let hint_temporary = self.dir.join(format!("{:010}.hint.compacting", self.id));
        write_synced(fs, &hint_temporary, &self.hints).map_err(io(format!("writing {}", hint_temporary.display())))?;
        // The hint first: a compacted segment never appears without its hint
        // (which would make it look like the active segment); a hint whose
        // segment never appeared is removed on open.
        fs.rename(&hint_temporary, &format::hint_path(&self.dir, self.id)).map_err(io("naming a hint file"))?;
        fs.rename(&self.path, &format::segment_path(&self.dir, self.id)).map_err(io("naming a compacted segment"))?;
        tally(&stats.syncs, 2, |s| &mut s.syncs);
        tally(&stats.disk_bytes, self.len + self.hints.len() as u64, |s| &mut s.disk_bytes);
        Ok((self.id, self.file))
    }
}
