//! Rollover and compaction: sealing the active segment, rewriting the live
//! records of sealed segments into new segments with hint files, and the
//! manifest that lets a crash at any point finish the compaction on the next
//! open instead of losing or duplicating data.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{create_segment, io, lock, read, sync_dir, tally, write, Location, Log, Stats, Vault, VaultError};
use crate::engines::vault::format::{self, SEGMENT_HEADER};

const COMPACTION_MANIFEST: &str = "COMPACTION";

/// Completes a compaction a crash interrupted: its outputs are durable, so the inputs it names go.
pub(super) fn finish_compaction(dir: &Path) -> Result<(), VaultError> {
    let manifest = dir.join(COMPACTION_MANIFEST);
    let Ok(text) = fs::read_to_string(&manifest) else { return Ok(()) };
    for id in text.split_whitespace().filter_map(|word| word.parse::<u64>().ok()) {
        for path in [format::segment_path(dir, id), format::hint_path(dir, id)] {
            match fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io(format!("removing {}", path.display()))(error))
                }
                _ => {}
            }
        }
    }
    fs::remove_file(&manifest).map_err(io(format!("removing {}", manifest.display())))?;
    sync_dir(dir)
}

impl Vault {
    /// Seals the active segment (synced whatever the policy) and starts a new one.
    pub(super) fn roll(&self, log: &mut Log) -> Result<(), VaultError> {
        log.file.sync_data().map_err(io(format!("syncing segment {}", log.id)))?;
        tally(&self.stats.syncs, 1, |s| &mut s.syncs);
        let id = log.next_id;
        let file = Arc::new(create_segment(&self.dir, id)?);
        write(&self.segments).insert(id, Arc::clone(&file));
        log.id = id;
        log.next_id += 1;
        log.file = file;
        log.len = SEGMENT_HEADER;
        tally(&self.stats.disk_bytes, SEGMENT_HEADER, |s| &mut s.disk_bytes);
        let mut state = lock(&self.group.state);
        state.synced = state.synced.max(log.written);
        Ok(())
    }

    /// Rewrites the live records of every sealed segment into new segments
    /// with hint files, then retires the old ones. Reads and writes continue
    /// meanwhile; returns the bytes reclaimed.
    pub fn compact(&self) -> Result<u64, VaultError> {
        let _one_at_a_time = lock(&self.compaction);
        let (inputs, mut next_id) = {
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
        let files: HashMap<u64, Arc<File>> = read(&self.segments)
            .iter()
            .filter(|(id, _)| input_set.contains(id))
            .map(|(id, f)| (*id, Arc::clone(f)))
            .collect();
        let before: u64 = files.values().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum();

        let mut moves: Vec<(Vec<u8>, Location, Location)> = Vec::with_capacity(live.len());
        let mut outputs: Vec<u64> = Vec::new();
        let mut writer: Option<CompactionOutput> = None;
        for (key, old) in live {
            let file = files
                .get(&old.segment)
                .ok_or_else(|| VaultError::Invalid("a segment vanished during compaction".into()))?;
            let value = self.read_record(file, &key, old)?;
            let mut record = Vec::with_capacity(old.len as usize);
            format::encode_record(&mut record, old.seq, &key, Some(&value));
            if writer
                .as_ref()
                .is_some_and(|w| w.len + record.len() as u64 > self.options.segment_size && w.len > SEGMENT_HEADER)
            {
                if let Some(done) = writer.take() {
                    outputs.push(done.finish(&self.stats)?);
                }
            }
            if writer.is_none() {
                writer = Some(CompactionOutput::create(&self.dir, next_id)?);
                next_id += 1;
            }
            let Some(out) = writer.as_mut() else { continue };
            let new = Location { segment: out.id, offset: out.len, len: record.len() as u32, seq: old.seq };
            out.append(&record, &key, value.len() as u32)?;
            moves.push((key, old, new));
        }
        if let Some(done) = writer.take() {
            outputs.push(done.finish(&self.stats)?);
        }
        sync_dir(&self.dir)?;
        // The outputs are durable: name the inputs to retire, so a crash from here on finishes the job.
        let manifest = self.dir.join(COMPACTION_MANIFEST);
        let list: String = inputs.iter().map(|id| format!("{id}\n")).collect();
        let temporary = self.dir.join("COMPACTION.tmp");
        fs::write(&temporary, list)
            .and_then(|()| File::open(&temporary)?.sync_all())
            .and_then(|()| fs::rename(&temporary, &manifest))
            .map_err(io("writing the compaction manifest"))?;
        sync_dir(&self.dir)?;
        {
            let mut segments = write(&self.segments);
            for &id in &outputs {
                let path = format::segment_path(&self.dir, id);
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(io(format!("opening {}", path.display())))?;
                segments.insert(id, Arc::new(file));
            }
        }
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
        finish_compaction(&self.dir)?;
        let after: u64 = outputs
            .iter()
            .filter_map(|id| fs::metadata(format::segment_path(&self.dir, *id)).ok())
            .map(|m| m.len())
            .sum();
        Ok(before.saturating_sub(after))
    }
}

/// A segment being written by compaction, with its hint file; both become
/// visible under their real names only once synced.
struct CompactionOutput {
    id: u64,
    file: File,
    len: u64,
    hints: Vec<u8>,
    path: PathBuf,
    dir: PathBuf,
}

impl CompactionOutput {
    fn create(dir: &Path, id: u64) -> Result<CompactionOutput, VaultError> {
        let path = dir.join(format!("{id:010}.seg.compacting"));
        let file = File::create(&path).map_err(io(format!("creating {}", path.display())))?;
        file.write_all_at(&format::segment_header(id), 0).map_err(io(format!("writing {}", path.display())))?;
        Ok(CompactionOutput {
            id,
            file,
            len: SEGMENT_HEADER,
            hints: format::HINT_MAGIC.to_vec(),
            path,
            dir: dir.to_owned(),
        })
    }

    fn append(&mut self, record: &[u8], key: &[u8], value_len: u32) -> Result<(), VaultError> {
        self.file.write_all_at(record, self.len).map_err(io(format!("writing {}", self.path.display())))?;
        let seq = u64::from_le_bytes(record[4..12].try_into().unwrap_or_default());
        format::encode_hint(&mut self.hints, seq, key, value_len, self.len);
        self.len += record.len() as u64;
        Ok(())
    }

    fn finish(self, stats: &Stats) -> Result<u64, VaultError> {
        self.file.sync_all().map_err(io(format!("syncing {}", self.path.display())))?;
        let hint_temporary = self.dir.join(format!("{:010}.hint.compacting", self.id));
        let mut hint = File::create(&hint_temporary).map_err(io(format!("creating {}", hint_temporary.display())))?;
        hint.write_all(&self.hints)
            .and_then(|()| hint.sync_all())
            .map_err(io(format!("writing {}", hint_temporary.display())))?;
        // The hint first: a compacted segment never appears without its hint
        // (which would make it look like the active segment); a hint whose
        // segment never appeared is removed on open.
        fs::rename(&hint_temporary, format::hint_path(&self.dir, self.id)).map_err(io("naming a hint file"))?;
        fs::rename(&self.path, format::segment_path(&self.dir, self.id)).map_err(io("naming a compacted segment"))?;
        tally(&stats.syncs, 2, |s| &mut s.syncs);
        tally(&stats.disk_bytes, self.len + self.hints.len() as u64, |s| &mut s.disk_bytes);
        Ok(self.id)
    }
}
