//! Opening a vault, which is also recovery: take the lock, finish a
//! compaction a crash interrupted, drop half-written compaction outputs and
//! orphaned hints, rebuild the index from hint files and segment scans, and
//! truncate a torn tail of the active segment.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use super::compact::finish_compaction;
use super::write::Group;
use super::{
    create_segment, io, list, sync_dir, take_lock, Location, Log, Recovery, Stats, SyncPolicy, Vault, VaultError,
};
use crate::engines::vault::cache::{CacheLayout, ReadCache};
use crate::engines::vault::format::{self, RecordHeader, RECORD_HEADER, SEGMENT_HEADER};
use crate::engines::vault::fs::{self as vfs, Fs, RealFs};

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
    /// How values are compressed on disk (each kept compressed only if that saves bytes).
    pub compression: format::Codec,
    /// Dead bytes, as a share of all record bytes, at which compaction is
    /// due ([`Vault::wants_compaction`]); 0: never.
    pub compact_at: f64,
    /// A deliberate durability bug, for showing that the crash tests catch it.
    #[doc(hidden)]
    pub flaw: Flaw,
}

/// Deliberate durability bugs the crash-image tests must catch; never set
/// outside them.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flaw {
    /// The store as it should be.
    #[default]
    None,
    /// A new segment's name is not made durable (no directory sync).
    SkipSegmentDirSync,
    /// Writes are acknowledged before the sync that covers them.
    AckBeforeSync,
}

impl Default for VaultOptions {
    fn default() -> Self {
        VaultOptions {
            sync: SyncPolicy::Always,
            segment_size: 64 << 20,
            cache_bytes: 0,
            cache_layout: CacheLayout::Sharded,
            cache_shards: 16,
            compression: format::Codec::Plain,
            compact_at: 0.0,
            flaw: Flaw::None,
        }
    }
}

/// Makes `dir` a vault if it is new or empty; refuses a directory with other files.
fn ensure_vault_dir(fs: &dyn Fs, dir: &Path) -> Result<(), VaultError> {
    let marker = dir.join(format::MARKER);
    match fs.read(&marker) {
        Ok(text) if text == format::MARKER_TEXT.as_bytes() => return Ok(()),
        Ok(_) => return Err(VaultError::NotAVault(dir.to_owned())),
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(io(format!("reading {}", marker.display()))(error))
        }
        Err(_) => {}
    }
    fs.create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    // A creation that a crash interrupted may have left its temporary marker.
    let names = fs.list(dir).map_err(io(format!("reading {}", dir.display())))?;
    if names.iter().any(|name| name != "VAULT.tmp" && name != format::LOCK) {
        return Err(VaultError::NotAVault(dir.to_owned()));
    }
    // The new directory's own name lives in its parent.
    if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        sync_dir(fs, parent)?;
    }
    let temporary = dir.join("VAULT.tmp");
    vfs::write_synced(fs, &temporary, format::MARKER_TEXT.as_bytes())
        .map_err(io(format!("writing {}", temporary.display())))?;
    fs.rename(&temporary, &marker).map_err(io(format!("creating {}", marker.display())))?;
    sync_dir(fs, dir)
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

/// Reads every record of a segment. In the active segment, a damaged
/// record is a torn write, and ends the log, when it runs past the end of
/// the file or when one of the disk sectors it spans holds only zeros where
/// its bytes should be (see [`torn`]); anything else is corruption, named
/// by file and offset.
pub(super) fn scan(
    fs: &dyn Fs,
    path: &Path,
    id: u64,
    active: bool,
    mut each: impl FnMut(Scanned),
) -> Result<ScanEnd, VaultError> {
    let bytes = fs.read(path).map_err(io(format!("reading {}", path.display())))?;
    let file_len = bytes.len() as u64;
    let corrupt = |offset: u64, what: &str| VaultError::Corrupt { file: path.to_owned(), offset, what: what.into() };
    if bytes.len() < SEGMENT_HEADER as usize {
        return if active { Ok(ScanEnd { good_len: 0, file_len }) } else { Err(corrupt(0, "shorter than its header")) };
    }
    if bytes[..SEGMENT_HEADER as usize] != format::segment_header(id) {
        // A new segment whose name reached the disk before its header did.
        if active && torn(&bytes, 0, SEGMENT_HEADER as usize) {
            return Ok(ScanEnd { good_len: 0, file_len });
        }
        return Err(corrupt(0, "bad segment header"));
    }
    let mut offset = SEGMENT_HEADER as usize;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let cut = Ok(ScanEnd { good_len: offset as u64, file_len });
        let header = rest.get(..RECORD_HEADER).and_then(|h| RecordHeader::parse(h.try_into().ok()?));
        let Some(header) = header else {
            if active && (rest.len() < RECORD_HEADER || torn(&bytes, offset, RECORD_HEADER)) {
                return cut;
            }
            return Err(corrupt(offset as u64, "impossible record header"));
        };
        let total = header.total_len();
        if total > rest.len() {
            if active {
                return cut;
            }
            return Err(corrupt(offset as u64, "record runs past the end of the file"));
        }
        if !header.verify(&rest[..total]) {
            if active && torn(&bytes, offset, total) {
                return cut;
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

/// Disk sectors: what a power loss writes whole or not at all.
pub const SECTOR: usize = 512;

/// Whether the damaged record at `offset`, `len` bytes long, is a write that
/// did not reach the disk whole: some 512-byte sector it spans holds only
/// zeros over the record's part of it. Writes reach the disk sector by
/// sector and in any order, and a file grows with zeros, so a power loss
/// leaves holes of zeros in writes that were never synced, possibly with
/// later records (never synced either, or the hole would not be there)
/// behind them. A flipped bit leaves no such hole and stays corruption.
fn torn(bytes: &[u8], offset: usize, len: usize) -> bool {
    let end = (offset + len).min(bytes.len());
    let mut start = offset;
    while start < end {
        let stop = ((start / SECTOR + 1) * SECTOR).min(end);
        if bytes[start..stop].iter().all(|&b| b == 0) {
            return true;
        }
        start = stop;
    }
    false
}

impl Vault {
    /// Opens (creating if needed) the vault in `dir`: takes the lock,
    /// finishes an interrupted compaction, rebuilds the index from hint
    /// files and segments, and truncates a torn tail of the active segment.
    pub fn open(dir: &Path, options: VaultOptions) -> Result<Vault, VaultError> {
        Vault::open_on(Arc::new(RealFs), dir, options)
    }

    /// [`Vault::open`] on the file system `fs`.
    pub fn open_on(fs: Arc<dyn Fs>, dir: &Path, options: VaultOptions) -> Result<Vault, VaultError> {
        let fsr = fs.as_ref();
        ensure_vault_dir(fsr, dir)?;
        let lock_file = take_lock(fsr, dir)?;
        finish_compaction(fsr, dir)?;
        let listing = list(fsr, dir)?;
        let orphans = listing.hints.iter().filter(|id| listing.segments.binary_search(id).is_err());
        for path in listing.compacting.iter().cloned().chain(orphans.map(|id| format::hint_path(dir, *id))) {
            fsr.remove(&path).map_err(io(format!("removing {}", path.display())))?;
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
        let mut recovery = Recovery::default();
        for &id in &listing.segments {
            let path = format::segment_path(dir, id);
            if hinted.contains(&id) {
                let hints = fsr.read(&format::hint_path(dir, id)).ok().and_then(|bytes| format::decode_hints(&bytes));
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
            let end = scan(fsr, &path, id, is_active, |record| {
                let location = record.value_len.map(|_| record.location);
                apply(record.key, record.location.seq, location);
            })?;
            if is_active {
                if end.good_len < end.file_len || end.good_len < SEGMENT_HEADER {
                    let file = fsr.open(&path).map_err(io(format!("opening {}", path.display())))?;
                    let keep = end.good_len.max(SEGMENT_HEADER);
                    if end.good_len < SEGMENT_HEADER {
                        file.write_at(&format::segment_header(id), 0)
                            .map_err(io(format!("repairing {}", path.display())))?;
                    }
                    file.set_len(keep)
                        .and_then(|()| file.sync_data())
                        .map_err(io(format!("truncating {}", path.display())))?;
                    if end.good_len < end.file_len {
                        recovery.torn_tail = Some((path.clone(), end.good_len, end.file_len - end.good_len));
                    }
                }
                active_len = end.good_len.max(SEGMENT_HEADER);
            }
        }
        // The files found may have names that never reached the disk (a
        // segment created just before a crash or a failed rollover): make them
        // durable before any write lands in them.
        sync_dir(fsr, dir)?;
        let max_seq = latest.values().map(|(seq, _)| *seq).max().unwrap_or(0);
        let index: BTreeMap<Vec<u8>, Location> =
            latest.into_iter().filter_map(|(key, (_, location))| Some((key, location?))).collect();
        let next_id = listing.segments.last().map_or(1, |id| id + 1);
        let mut segments = HashMap::new();
        for &id in &listing.segments {
            let path = format::segment_path(dir, id);
            let file = fsr.open(&path).map_err(io(format!("opening {}", path.display())))?;
            segments.insert(id, file);
        }
        let (active_id, next_id) = match active {
            Some(id) => (id, next_id),
            None => {
                let file = create_segment(fsr, dir, next_id)?;
                segments.insert(next_id, file);
                (next_id, next_id + 1)
            }
        };
        let file = Arc::clone(&segments[&active_id]);
        let cache = (options.cache_bytes > 0)
            .then(|| ReadCache::new(options.cache_bytes, options.cache_layout, options.cache_shards));
        let vault = Vault {
            dir: dir.to_owned(),
            fs,
            _lock: lock_file,
            index: RwLock::new(index),
            log: Mutex::new(Log {
                id: active_id,
                file,
                len: active_len,
                next_seq: max_seq + 1,
                next_id,
                written: 0,
                segment_start: 0,
                buffer: Vec::new(),
            }),
            segments: RwLock::new(segments),
            group: Group::default(),
            cache,
            compaction: Mutex::new(()),
            stopped: AtomicBool::new(false),
            space: Default::default(),
            background: Mutex::default(),
            background_pending: AtomicBool::new(false),
            recovery,
            stats: Stats::default(),
            options,
        };
        vault.measure_space();
        Ok(vault)
    }
}
