//! The store: append-only segments, an in-memory ordered index, positioned
//! reads, tombstones, rollover, compaction with hint files, recovery, a
//! lock file, and the three durability policies.
//!
//! This file holds the [`Vault`] type and the state its parts share (index,
//! active segment, open segment files), the lock file, the directory helpers
//! and the reads. Every file-system call goes through [`Fs`], so that the
//! crash tests can run the same code on a simulated disk. `open.rs` opens a vault and recovers it after a crash,
//! `write.rs` appends records under the sync policies with group commit,
//! `compact.rs` rolls segments over and compacts them, `check.rs` verifies
//! a vault without changing it, and `stats.rs` counts what it all did.

mod check;
mod compact;
mod open;
mod packing;
mod stats;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use super::cache::ReadCache;
use super::fs::{Fs, FsFile, LockGuard, RealFs};
use super::format::{self, RecordHeader, RECORD_HEADER};
pub use check::{check, check_on, CheckReport};
pub use open::{Flaw, VaultOptions};
use stats::tally;
pub use stats::{take_thread_stats, Stats, ThreadStats};
use write::Group;
pub use write::SyncPolicy;

/// Why a vault operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The directory holds files but is not a vault.
    #[error("{0} is not a vault: it holds other files and no VAULT marker")]
    NotAVault(PathBuf),
    /// Another process has the vault open.
    #[error("{0} is locked by another process")]
    Locked(PathBuf),
    /// A record failed its checksum where no crash can explain it.
    #[error("corrupt record in {file} at offset {offset}: {what}")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Byte offset of the record.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A key or value outside the limits.
    #[error("{0}")]
    Invalid(String),
    /// A sync failed earlier: what reached the disk is unknown, so the vault
    /// refuses every operation until it is opened again.
    #[error("the vault stopped after a failed sync ({0}); open it again to recover what reached the disk")]
    Stopped(String),
    /// The operating system refused (full disk, read-only directory, …).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VaultError {
    let context = context.into();
    move |source| VaultError::Io { context, source }
}

/// A key and its value.
pub type Entry = (Vec<u8>, Arc<[u8]>);

/// Where a key's latest record lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Location {
    segment: u64,
    offset: u64,
    len: u32,
    seq: u64,
}

/// The active segment being appended to.
struct Log {
    id: u64,
    file: Arc<dyn FsFile>,
    len: u64,
    next_seq: u64,
    next_id: u64,
    /// Bytes appended since open, over all segments: the log position a sync covers.
    written: u64,
    /// The log position where the active segment's records begin.
    segment_start: u64,
    buffer: Vec<u8>,
}

/// A Bitcask-style key-value store in a directory.
pub struct Vault {
    dir: PathBuf,
    fs: Arc<dyn Fs>,
    options: VaultOptions,
    _lock: LockGuard,
    index: RwLock<BTreeMap<Vec<u8>, Location>>,
    log: Mutex<Log>,
    segments: RwLock<HashMap<u64, Arc<dyn FsFile>>>,
    group: Group,
    cache: Option<ReadCache>,
    compaction: Mutex<()>,
    /// Set when a sync failed: every operation is refused until the vault is reopened.
    stopped: AtomicBool,
    /// Bytes of records on disk, and of those no read can reach.
    space: Space,
    /// What compactions run by [`Vault::compact_if_due`] did, not yet reported.
    background: Mutex<ThreadStats>,
    background_pending: AtomicBool,
    /// What opening the vault repaired.
    recovery: Recovery,
    /// What the vault has done since it was opened.
    pub stats: Stats,
}

/// Record bytes in the segments, and the dead ones among them (replaced or
/// deleted records, tombstones): what compaction would reclaim.
#[derive(Debug, Default)]
struct Space {
    total: std::sync::atomic::AtomicU64,
    dead: std::sync::atomic::AtomicU64,
}

/// What opening a vault found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The torn tail cut from the active segment: its file, offset and bytes.
    pub torn_tail: Option<(PathBuf, u64, u64)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}
fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// fsync of a directory, so created, renamed and removed names are durable.
fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<(), VaultError> {
    fs.sync_dir(dir).map_err(io(format!("syncing directory {}", dir.display())))
}

/// Segment and hint files of a vault directory, by id.
struct Listing {
    segments: Vec<u64>,
    hints: Vec<u64>,
    compacting: Vec<PathBuf>,
}

fn list(fs: &dyn Fs, dir: &Path) -> Result<Listing, VaultError> {
    let mut listing = Listing { segments: Vec::new(), hints: Vec::new(), compacting: Vec::new() };
    for name in fs.list(dir).map_err(io(format!("reading {}", dir.display())))? {
        match format::parse_name(&name) {
            Some((id, "seg")) => listing.segments.push(id),
            Some((id, "hint")) => listing.hints.push(id),
            Some((_, "seg.compacting" | "hint.compacting")) => listing.compacting.push(dir.join(&name)),
            _ => {}
        }
    }
    listing.segments.sort_unstable();
    Ok(listing)
}

fn take_lock(fs: &dyn Fs, dir: &Path) -> Result<LockGuard, VaultError> {
    let path = dir.join(format::LOCK);
    // A process that forks (to run another program) holds a copy of every
    // descriptor until its child calls exec, and with it any flock: a vault
    // just closed by such a process can look locked for a moment. Retry for
    // up to 100 ms before calling it locked.
    for _ in 0..20 {
        if let Some(guard) = fs.lock(&path).map_err(io(format!("opening {}", path.display())))? {
            return Ok(guard);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(VaultError::Locked(dir.to_owned()))
}

/// Whether another process holds the vault in `dir` open (takes and at once releases the lock).
pub fn probe_lock(dir: &Path) -> Result<(), VaultError> {
    take_lock(&RealFs, dir).map(drop)
}

/// Creates segment `id` with its header, synced, and its name, synced. A
/// file left by an earlier failed attempt is overwritten.
fn create_segment(fs: &dyn Fs, dir: &Path, id: u64) -> Result<Arc<dyn FsFile>, VaultError> {
    let path = format::segment_path(dir, id);
    let file = fs.create(&path, false).map_err(io(format!("creating {}", path.display())))?;
    let made = file.write_at(&format::segment_header(id), 0).and_then(|()| file.sync_data());
    if let Err(error) = made {
        // Not left for the next open to take as the active segment.
        let _ = fs.remove(&path);
        return Err(io(format!("writing {}", path.display()))(error));
    }
    sync_dir(fs, dir)?;
    Ok(file)
}

impl Vault {
    /// The vault's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What opening the vault repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Counts the record bytes of every segment and the live ones, after
    /// opening and after a compaction.
    fn measure_space(&self) {
        let total: u64 = read(&self.segments)
            .values()
            .filter_map(|file| file.len().ok())
            .map(|len| len.saturating_sub(format::SEGMENT_HEADER))
            .sum();
        let live: u64 = read(&self.index).values().map(|location| u64::from(location.len)).sum();
        self.space.total.store(total, Ordering::Relaxed);
        self.space.dead.store(total.saturating_sub(live), Ordering::Relaxed);
    }

    /// Dead record bytes and all record bytes.
    pub fn space(&self) -> (u64, u64) {
        (self.space.dead.load(Ordering::Relaxed), self.space.total.load(Ordering::Relaxed))
    }

    /// Whether dead bytes have passed `compact_at` of all record bytes (and
    /// make at least one segment's worth), so that compaction is due.
    pub fn wants_compaction(&self) -> bool {
        let (dead, total) = self.space();
        self.options.compact_at > 0.0
            && dead >= self.options.segment_size
            && dead as f64 >= self.options.compact_at * total as f64
    }

    /// An error if a failed sync stopped the vault.
    fn running(&self) -> Result<(), VaultError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(VaultError::Stopped("an earlier sync failed".into()));
        }
        Ok(())
    }

    /// Keys with a value.
    pub fn len(&self) -> usize {
        read(&self.index).len()
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `key`, checked against its record's checksum.
    pub fn get(&self, key: &[u8]) -> Result<Option<Arc<[u8]>>, VaultError> {
        self.running()?;
        if let Some(cache) = &self.cache {
            if let Some(value) = cache.get(key) {
                tally(&self.stats.cache_hits, 1, |s| &mut s.cache_hits);
                return Ok(Some(value));
            }
            tally(&self.stats.cache_misses, 1, |s| &mut s.cache_misses);
        }
        // A compaction may retire the segment between the index lookup and the read: look again.
        for _ in 0..8 {
            let Some(location) = read(&self.index).get(key).copied() else { return Ok(None) };
            let Some(file) = read(&self.segments).get(&location.segment).cloned() else { continue };
            let value: Arc<[u8]> = self.read_record(file.as_ref(), key, location)?.into();
            if let Some(cache) = &self.cache {
                cache.insert(key, Arc::clone(&value), location.seq, || {
                    read(&self.index).get(key).is_some_and(|now| now.seq == location.seq)
                });
            }
            return Ok(Some(value));
        }
        Err(VaultError::Invalid("the key kept moving under a running compaction".into()))
    }

    fn read_record(&self, file: &dyn FsFile, key: &[u8], location: Location) -> Result<Vec<u8>, VaultError> {
        let mut record = self.read_raw(file, key, location)?;
        let codec = record
            .get(..RECORD_HEADER)
            .and_then(|bytes| RecordHeader::parse(bytes.try_into().ok()?))
            .map_or(format::Codec::Plain, |header| header.codec);
        record.drain(..RECORD_HEADER + key.len());
        if codec == format::Codec::Plain {
            return Ok(record);
        }
        packing::unpack(codec, &record).map_err(|what| VaultError::Corrupt {
            file: format::segment_path(&self.dir, location.segment),
            offset: location.offset,
            what: format!("the value does not decompress: {what}"),
        })
    }

    /// The whole record at `location`, checked: its checksum, its key and its sequence number.
    fn read_raw(&self, file: &dyn FsFile, key: &[u8], location: Location) -> Result<Vec<u8>, VaultError> {
        let mut record = vec![0_u8; location.len as usize];
        let path = format::segment_path(&self.dir, location.segment);
        file.read_at(&mut record, location.offset).map_err(io(format!("reading {}", path.display())))?;
        let corrupt =
            |what: &str| VaultError::Corrupt { file: path.clone(), offset: location.offset, what: what.into() };
        let header = RecordHeader::parse(record[..RECORD_HEADER].try_into().map_err(|_| corrupt("short record"))?)
            .ok_or_else(|| corrupt("impossible record header"))?;
        if !header.verify(&record) {
            return Err(corrupt("checksum mismatch"));
        }
        if &record[RECORD_HEADER..RECORD_HEADER + header.key_len] != key || header.seq != location.seq {
            return Err(corrupt("the record does not hold the key the index points to"));
        }
        Ok(record)
    }

    /// Up to `count` keys from `start` on, in key order, with their values.
    pub fn scan(&self, start: &[u8], count: usize) -> Result<Vec<Entry>, VaultError> {
        let keys: Vec<Vec<u8>> =
            read(&self.index).range(start.to_vec()..).take(count).map(|(k, _)| k.clone()).collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(value) = self.get(&key)? {
                out.push((key, value));
            }
        }
        Ok(out)
    }
}
