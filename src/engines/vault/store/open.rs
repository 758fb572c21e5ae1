//! Opening a vault, which is also recovery: take the lock, finish a
//! compaction a crash interrupted, drop half-written compaction outputs and
//! orphaned hints, rebuild the index from hint files and segment scans, and
//! truncate a torn tail of the active segment.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use super::compact::finish_compaction;
use super::write::Group;
use super::{create_segment, io, list, sync_dir, take_lock, Location, Log, Stats, SyncPolicy, Vault, VaultError};
use crate::engines::vault::cache::{CacheLayout, ReadCache};
use crate::engines::vault::format::{self, RecordHeader, RECORD_HEADER, SEGMENT_HEADER};

/// How a vault is opened.
#[derive(Clone, Debug)]
pub struct VaultOptions {
    /// Durability of writes.
    pub sync: SyncPolicy,
    /// Segment size at which the active segment is sealed.
    pub segment_size: u64,
    /// Read cache capacity in bytes (0: no cache).
    pub cache_bytes: usize,
    /// Read cache layout.
    pub cache_layout: CacheLayout,
    /// Shards of a sharded cache.
    pub cache_shards: usize,
}

impl Default for VaultOptions {
    fn default() -> Self {
        VaultOptions {
            sync: SyncPolicy::Always,
            segment_size: 64 << 20,
            cache_bytes: 0,
            cache_layout: CacheLayout::Sharded,
            cache_shards: 16,
        }
    }
}

/// Makes `dir` a vault if it is new or empty; refuses a directory with other files.
fn ensure_vault_dir(dir: &Path) -> Result<(), VaultError> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    let marker = dir.join(format::MARKER);
    match fs::read_to_string(&marker) {
        Ok(text) if text == format::MARKER_TEXT => return Ok(()),
        Ok(_) => return Err(VaultError::NotAVault(dir.to_owned())),
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(io(format!("reading {}", marker.display()))(error))
        }
        Err(_) => {}
    }
    let mut entries = fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))?;
    if entries.next().is_some() {
        return Err(VaultError::NotAVault(dir.to_owned()));
    }
    let temporary = dir.join("VAULT.tmp");
    let mut file = File::create(&temporary).map_err(io(format!("creating {}", temporary.display())))?;
    file.write_all(format::MARKER_TEXT.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(format!("writing {}", temporary.display())))?;
    fs::rename(&temporary, &marker).map_err(io(format!("creating {}", marker.display())))?;
    sync_dir(dir)
}

/// One record met while scanning a segment.
pub(super) struct Scanned {
    pub(super) key: Vec<u8>,
    pub(super) value_len: Option<usize>,
    pub(super) location: Location,
}

/// How a scan ended.
pub(super) struct ScanEnd {
    /// Bytes of valid records (where a torn tail starts).
    pub(super) good_len: u64,
    /// Bytes in the file.
    pub(super) file_len: u64,
}

/// Reads every record of a segment. A damaged record is a torn tail when
/// `active` and nothing but zeros or the damaged record's own bytes follow
/// it; anything else is corruption, named by file and offset.
pub(super) fn scan(path: &Path, id: u64, active: bool, mut each: impl FnMut(Scanned)) -> Result<ScanEnd, VaultError> {
    let bytes = fs::read(path).map_err(io(format!("reading {}", path.display())))?;
    let file_len = bytes.len() as u64;
    let corrupt = |offset: u64, what: &str| VaultError::Corrupt { file: path.to_owned(), offset, what: what.into() };
    if bytes.len() < SEGMENT_HEADER as usize {
        return if active { Ok(ScanEnd { good_len: 0, file_len }) } else { Err(corrupt(0, "shorter than its header")) };
    }
    if bytes[..SEGMENT_HEADER as usize] != format::segment_header(id) {
        return Err(corrupt(0, "bad segment header"));
    }
    let mut offset = SEGMENT_HEADER as usize;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let torn = |damaged_end: usize| active && rest[damaged_end.min(rest.len())..].iter().all(|&b| b == 0);
        let header = rest.get(..RECORD_HEADER).and_then(|h| RecordHeader::parse(h.try_into().ok()?));
        let Some(header) = header else {
            if active && (rest.len() < RECORD_HEADER || rest.iter().all(|&b| b == 0)) {
                return Ok(ScanEnd { good_len: offset as u64, file_len });
            }
            return Err(corrupt(offset as u64, "impossible record header"));
        };
        let total = header.total_len();
        if total > rest.len() {
            if active {
                return Ok(ScanEnd { good_len: offset as u64, file_len });
            }
            return Err(corrupt(offset as u64, "record runs past the end of the file"));
        }
        if !header.verify(&rest[..total]) {
            if torn(total) {
                return Ok(ScanEnd { good_len: offset as u64, file_len });
            }
            return Err(corrupt(offset as u64, "checksum mismatch"));
        }
        each(Scanned {
            key: rest[RECORD_HEADER..RECORD_HEADER + header.key_len].to_vec(),
            value_len: header.value_len,
            location: Location { segment: id, offset: offset as u64, len: total as u32, seq: header.seq },
        });
        offset += total;
    }
    Ok(ScanEnd { good_len: offset as u64, file_len })
}

impl Vault {
    /// Opens (creating if needed) the vault in `dir`: takes the lock,
    /// finishes an interrupted compaction, rebuilds the index from hint
    /// files and segments, and truncates a torn tail of the active segment.
    pub fn open(dir: &Path, options: VaultOptions) -> Result<Vault, VaultError> {
        ensure_vault_dir(dir)?;
        let lock_file = take_lock(dir)?;
        finish_compaction(dir)?;
        let listing = list(dir)?;
        let orphans = listing.hints.iter().filter(|id| listing.segments.binary_search(id).is_err());
        for path in listing.compacting.iter().cloned().chain(orphans.map(|id| format::hint_path(dir, *id))) {
            fs::remove_file(&path).map_err(io(format!("removing {}", path.display())))?;
        }
        let hinted: HashSet<u64> = listing.hints.iter().copied().collect();
        let active = listing.segments.iter().rev().find(|id| !hinted.contains(id)).copied();
        // key → (seq, location or tombstone); the highest sequence wins.
        let mut latest: HashMap<Vec<u8>, (u64, Option<Location>)> = HashMap::new();
        let mut apply = |key: Vec<u8>, seq: u64, location: Option<Location>| match latest.get(&key) {
            Some((known, _)) if *known >= seq => {}
            _ => {
                latest.insert(key, (seq, location));
            }
        };
        let mut active_len = SEGMENT_HEADER;
        for &id in &listing.segments {
            let path = format::segment_path(dir, id);
            if hinted.contains(&id) {
                let hints = fs::read(format::hint_path(dir, id)).ok().and_then(|bytes| format::decode_hints(&bytes));
                if let Some(hints) = hints {
                    for hint in hints {
                        let len = (RECORD_HEADER + hint.key.len() + hint.value_len as usize) as u32;
                        let location = Location { segment: id, offset: hint.offset, len, seq: hint.seq };
                        apply(hint.key, hint.seq, Some(location));
                    }
                    continue;
                }
            }
            let is_active = Some(id) == active;
            let end = scan(&path, id, is_active, |record| {
                let location = record.value_len.map(|_| record.location);
                apply(record.key, record.location.seq, location);
            })?;
            if is_active {
                if end.good_len < end.file_len {
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io(format!("opening {}", path.display())))?;
                    let keep = end.good_len.max(SEGMENT_HEADER);
                    if end.good_len < SEGMENT_HEADER {
                        file.write_all_at(&format::segment_header(id), 0)
                            .map_err(io(format!("repairing {}", path.display())))?;
                    }
                    file.set_len(keep)
                        .and_then(|()| file.sync_all())
                        .map_err(io(format!("truncating {}", path.display())))?;
                }
                active_len = end.good_len.max(SEGMENT_HEADER);
            }
        }
        let max_seq = latest.values().map(|(seq, _)| *seq).max().unwrap_or(0);
        let index: BTreeMap<Vec<u8>, Location> =
            latest.into_iter().filter_map(|(key, (_, location))| Some((key, location?))).collect();
        let next_id = listing.segments.last().map_or(1, |id| id + 1);
        let mut segments = HashMap::new();
        for &id in &listing.segments {
            let path = format::segment_path(dir, id);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io(format!("opening {}", path.display())))?;
            segments.insert(id, Arc::new(file));
        }
        let (active_id, next_id) = match active {
            Some(id) => (id, next_id),
            None => {
                let file = create_segment(dir, next_id)?;
                segments.insert(next_id, Arc::new(file));
                (next_id, next_id + 1)
            }
        };
        let file = Arc::clone(&segments[&active_id]);
        let cache = (options.cache_bytes > 0)
            .then(|| ReadCache::new(options.cache_bytes, options.cache_layout, options.cache_shards));
        Ok(Vault {
            dir: dir.to_owned(),
            _lock: lock_file,
            index: RwLock::new(index),
            log: Mutex::new(Log {
                id: active_id,
                file,
                len: active_len,
                next_seq: max_seq + 1,
                next_id,
                written: 0,
                buffer: Vec::new(),
            }),
            segments: RwLock::new(segments),
            group: Group::default(),
            cache,
            compaction: Mutex::new(()),
            stats: Stats::default(),
            options,
        })
    }
}
