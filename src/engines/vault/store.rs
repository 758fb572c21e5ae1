//! The store: append-only segments, an in-memory ordered index, positioned
//! reads, tombstones, rollover, compaction with hint files, recovery, a
//! lock file, and the three durability policies.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use super::cache::{CacheLayout, ReadCache};
use super::format::{self, RecordHeader, RECORD_HEADER, SEGMENT_HEADER};

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

/// Counters a run reports.
#[derive(Debug, Default)]
pub struct Stats {
    /// Key and value bytes written by callers.
    pub user_bytes: AtomicU64,
    /// Bytes written to disk: records, compaction rewrites, hints.
    pub disk_bytes: AtomicU64,
    /// fsync calls.
    pub syncs: AtomicU64,
    /// Reads served by the cache.
    pub cache_hits: AtomicU64,
    /// Reads that went to disk while a cache was configured.
    pub cache_misses: AtomicU64,
}

/// What the calling thread's vault operations did since it last asked: an
/// engine worker reads it after each call, so a shared sync is counted once,
/// by the thread that performed it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadStats {
    /// Key and value bytes written.
    pub user_bytes: u64,
    /// Bytes written to disk.
    pub disk_bytes: u64,
    /// fsync calls made.
    pub syncs: u64,
    /// Reads served by the cache.
    pub cache_hits: u64,
    /// Reads that missed the cache.
    pub cache_misses: u64,
}

thread_local! {
    static THREAD_STATS: std::cell::Cell<ThreadStats> = const { std::cell::Cell::new(ThreadStats {
        user_bytes: 0, disk_bytes: 0, syncs: 0, cache_hits: 0, cache_misses: 0,
    }) };
}

/// Takes (and resets) what this thread's vault operations did.
pub fn take_thread_stats() -> ThreadStats {
    THREAD_STATS.with(|cell| cell.replace(ThreadStats::default()))
}

/// Adds to the vault-wide atomic and to this thread's tally.
fn tally(counter: &AtomicU64, amount: u64, field: fn(&mut ThreadStats) -> &mut u64) {
    counter.fetch_add(amount, Ordering::Relaxed);
    THREAD_STATS.with(|cell| {
        let mut stats = cell.get();
        *field(&mut stats) += amount;
        cell.set(stats);
    });
}

/// Group commit: the first waiter becomes the leader, gathers for the
/// window, syncs once for everyone and wakes them.
#[derive(Default)]
struct Group {
    state: Mutex<GroupState>,
    wake: Condvar,
}

#[derive(Default)]
struct GroupState {
    synced: u64,
    leader: bool,
}

/// What `check` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Segment files.
    pub segments: u64,
    /// Records with values.
    pub values: u64,
    /// Deletion records.
    pub tombstones: u64,
    /// Keys that have a value.
    pub live_keys: u64,
    /// Bytes in segment files.
    pub bytes: u64,
    /// A torn tail of the active segment (offset, bytes) that the next open truncates.
    pub torn_tail: Option<(u64, u64)>,
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

const COMPACTION_MANIFEST: &str = "COMPACTION";

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

/// Completes a compaction a crash interrupted: its outputs are durable, so the inputs it names go.
fn finish_compaction(dir: &Path) -> Result<(), VaultError> {
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

/// One record met while scanning a segment.
struct Scanned {
    key: Vec<u8>,
    value_len: Option<usize>,
    location: Location,
}

/// How a scan ended.
struct ScanEnd {
    /// Bytes of valid records (where a torn tail starts).
    good_len: u64,
    /// Bytes in the file.
    file_len: u64,
}

/// Reads every record of a segment. A damaged record is a torn tail when
/// `active` and nothing but zeros or the damaged record's own bytes follow
/// it; anything else is corruption, named by file and offset.
fn scan(path: &Path, id: u64, active: bool, mut each: impl FnMut(Scanned)) -> Result<ScanEnd, VaultError> {
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
        let hinted: std::collections::HashSet<u64> = listing.hints.iter().copied().collect();
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

    /// Seals the active segment (synced whatever the policy) and starts a new one.
    fn roll(&self, log: &mut Log) -> Result<(), VaultError> {
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
        let input_set: std::collections::HashSet<u64> = inputs.iter().copied().collect();
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

    /// Verifies every record of every segment without changing anything.
    pub fn check(&self) -> Result<CheckReport, VaultError> {
        check_dir(&self.dir)
    }
}

/// Verifies every record of the vault in `dir` (which must not be open
/// elsewhere: the lock is taken for the duration).
pub fn check(dir: &Path) -> Result<CheckReport, VaultError> {
    if !dir.join(format::MARKER).is_file() {
        return Err(VaultError::NotAVault(dir.to_owned()));
    }
    let _lock = take_lock(dir)?;
    check_dir(dir)
}

fn check_dir(dir: &Path) -> Result<CheckReport, VaultError> {
    let listing = list(dir)?;
    let hinted: std::collections::HashSet<u64> = listing.hints.iter().copied().collect();
    let active = listing.segments.iter().rev().find(|id| !hinted.contains(id)).copied();
    let mut report = CheckReport { segments: listing.segments.len() as u64, ..CheckReport::default() };
    let mut latest: HashMap<Vec<u8>, (u64, bool)> = HashMap::new();
    for &id in &listing.segments {
        let path = format::segment_path(dir, id);
        let end = scan(&path, id, Some(id) == active, |record| {
            if record.value_len.is_some() {
                report.values += 1;
            } else {
                report.tombstones += 1;
            }
            let entry = latest.entry(record.key).or_insert((0, false));
            if record.location.seq >= entry.0 {
                *entry = (record.location.seq, record.value_len.is_some());
            }
        })?;
        report.bytes += end.file_len;
        if end.good_len < end.file_len {
            report.torn_tail = Some((end.good_len, end.file_len - end.good_len));
        }
    }
    report.live_keys = latest.values().filter(|(_, live)| *live).count() as u64;
    Ok(report)
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
