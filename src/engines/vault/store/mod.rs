//! The store: append-only segments, an in-memory ordered index, positioned
//! reads, tombstones, rollover, compaction with hint files, recovery, a
//! lock file, and the three durability policies.
//!
//! This file holds the [`Vault`] type and the state its parts share (index,
//! active segment, open segment files), the lock file, the directory helpers
//! and the reads. `open.rs` opens a vault and recovers it after a crash,
//! `write.rs` appends records under the sync policies with group commit,
//! `compact.rs` rolls segments over and compacts them, `check.rs` verifies
//! a vault without changing it, and `stats.rs` counts what it all did.

mod check;
mod compact;
mod open;
mod stats;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use super::cache::ReadCache;
use super::format::{self, RecordHeader, RECORD_HEADER};
pub use check::{check, CheckReport};
pub use open::VaultOptions;
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
    file: Arc<File>,
    len: u64,
    next_seq: u64,
    next_id: u64,
    /// Bytes appended since open, over all segments: the log position a sync covers.
    written: u64,
    buffer: Vec<u8>,
}

/// A Bitcask-style key-value store in a directory.
pub struct Vault {
    dir: PathBuf,
    options: VaultOptions,
    _lock: File,
    index: RwLock<BTreeMap<Vec<u8>, Location>>,
    log: Mutex<Log>,
    segments: RwLock<HashMap<u64, Arc<File>>>,
    group: Group,
    cache: Option<ReadCache>,
    compaction: Mutex<()>,
    /// What the vault has done since it was opened.
    pub stats: Stats,
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
fn sync_dir(dir: &Path) -> Result<(), VaultError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(format!("syncing directory {}", dir.display())))
}

/// Segment and hint files of a vault directory, by id.
struct Listing {
    segments: Vec<u64>,
    hints: Vec<u64>,
    compacting: Vec<PathBuf>,
}

fn list(dir: &Path) -> Result<Listing, VaultError> {
    let mut listing = Listing { segments: Vec::new(), hints: Vec::new(), compacting: Vec::new() };
    for entry in fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))? {
        let entry = entry.map_err(io(format!("reading {}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        match format::parse_name(&name) {
            Some((id, "seg")) => listing.segments.push(id),
            Some((id, "hint")) => listing.hints.push(id),
            Some((_, "seg.compacting" | "hint.compacting")) => listing.compacting.push(entry.path()),
            _ => {}
        }
    }
    listing.segments.sort_unstable();
    Ok(listing)
}

fn take_lock(dir: &Path) -> Result<File, VaultError> {
    let path = dir.join(format::LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    // A process that forks (to run another program) holds a copy of every
    // descriptor until its child calls exec, and with it any flock: a vault
    // just closed by such a process can look locked for a moment. Retry for
    // up to 100 ms before calling it locked.
    for _ in 0..20 {
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(file);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(VaultError::Locked(dir.to_owned()))
}

/// Whether another process holds the vault in `dir` open (takes and at once releases the lock).
pub fn probe_lock(dir: &Path) -> Result<(), VaultError> {
    take_lock(dir).map(drop)
}

fn create_segment(dir: &Path, id: u64) -> Result<File, VaultError> {
    let path = format::segment_path(dir, id);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io(format!("creating {}", path.display())))?;
    file.write_all_at(&format::segment_header(id), 0)
        .and_then(|()| file.sync_all())
        .map_err(io(format!("writing {}", path.display())))?;
    sync_dir(dir)?;
    Ok(file)
}

impl Vault {
    /// The vault's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
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
            let value: Arc<[u8]> = self.read_record(&file, key, location)?.into();
            if let Some(cache) = &self.cache {
                cache.insert(key, Arc::clone(&value), location.seq, || {
                    read(&self.index).get(key).is_some_and(|now| now.seq == location.seq)
                });
            }
            return Ok(Some(value));
        }
        Err(VaultError::Invalid("the key kept moving under a running compaction".into()))
    }

    fn read_record(&self, file: &File, key: &[u8], location: Location) -> Result<Vec<u8>, VaultError> {
        let mut record = vec![0_u8; location.len as usize];
        let path = format::segment_path(&self.dir, location.segment);
        file.read_exact_at(&mut record, location.offset).map_err(io(format!("reading {}", path.display())))?;
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
        record.drain(..RECORD_HEADER + header.key_len);
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
