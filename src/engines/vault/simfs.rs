//! A simulated file system for crash tests: it serves the store's calls
//! from memory, records every call that changes something, can fail any
//! call on request (a full disk, an I/O error, a failed sync), and, at any
//! point of what it recorded, produces what a power loss could leave on disk.
//!
//! The rules of a power loss, after what the ALICE and CrashMonkey studies
//! found file systems keep:
//!
//! - A file's contents survive as of its last successful sync. Each 512-byte
//!   sector written since may hold any of the versions it had since then
//!   (the page cache writes sectors back whole, in any order), so unsynced
//!   writes survive in any subset, torn at sector boundaries. The file's
//!   length is any of the lengths it had since the sync; sectors it never
//!   had read as zeros.
//! - A sync that fails may have dropped what it covered (PostgreSQL's
//!   "fsyncgate"): those sectors stay uncertain even after a later sync
//!   succeeds, unless they are written again.
//! - A name (created, renamed, removed) survives once its directory is
//!   synced. Directory changes since reach the disk in the order they were
//!   made, as a journal keeps them: any prefix of them survives.
//!
//! One directory is simulated, named when the file system is made; paths
//! are reduced to their file names, and a sync of another directory (the
//! parent's) is counted and does nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use super::fs::{Fs, FsFile, LockGuard};
use crate::rng::SplitMix;

/// Bytes a power loss writes whole or not at all.
pub const SECTOR: usize = 512;

/// A fault to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// ENOSPC: the disk is full. The call changes nothing.
    NoSpace,
    /// EIO: the call changes nothing, except a failed sync, which may have
    /// dropped what it covered.
    Io,
}

/// The files a power loss left: name → contents.
pub type Image = BTreeMap<String, Vec<u8>>;

/// A call that changed the simulated disk, as recorded.
#[derive(Clone, Debug)]
enum Change {
    Create { name: String, inode: usize },
    Write { inode: usize, offset: u64, data: Vec<u8> },
    SetLen { inode: usize, len: u64 },
    Sync { inode: usize, ok: bool },
    Rename { from: String, to: String },
    Remove { name: String },
    SyncDir,
}

/// A directory change not yet synced.
#[derive(Clone, Debug)]
enum DirOp {
    Link(String, usize),
    Rename(String, String),
    Unlink(String),
}

#[derive(Clone, Debug, Default)]
struct Inode {
    /// What reads see (the page cache).
    current: Vec<u8>,
    /// What the disk holds as of the last successful sync.
    base: Vec<u8>,
    /// Per sector, the other versions the disk may hold.
    versions: BTreeMap<usize, Vec<Vec<u8>>>,
    /// Sectors written since the last sync.
    dirty: BTreeSet<usize>,
    /// Lengths the file had since its last successful sync.
    lengths: Vec<usize>,
}

fn sector_of(bytes: &[u8], sector: usize) -> Vec<u8> {
    let mut out = vec![0_u8; SECTOR];
    let start = sector * SECTOR;
    if start < bytes.len() {
        let end = (start + SECTOR).min(bytes.len());
        out[..end - start].copy_from_slice(&bytes[start..end]);
    }
    out
}

impl Inode {
    fn remember(&mut self, sector: usize) {
        let version = sector_of(&self.current, sector);
        self.versions.entry(sector).or_default().push(version);
        self.dirty.insert(sector);
    }

    fn write(&mut self, offset: usize, data: &[u8]) {
        let end = offset + data.len();
        if self.current.len() < end {
            self.current.resize(end, 0);
            self.lengths.push(end);
        }
        self.current[offset..end].copy_from_slice(data);
        if !data.is_empty() {
            for sector in offset / SECTOR..=(end - 1) / SECTOR {
                self.remember(sector);
            }
        }
    }

    fn set_len(&mut self, len: usize) {
        let old = self.current.len();
        self.current.resize(len, 0);
        self.lengths.push(len);
        // Sectors cut off read as zeros if the file grows again.
        for sector in len / SECTOR..old.div_ceil(SECTOR) {
            self.remember(sector);
        }
    }

    fn sync(&mut self, ok: bool) {
        if ok {
            self.base = self.current.clone();
            for sector in std::mem::take(&mut self.dirty) {
                self.versions.remove(&sector);
            }
            self.lengths.clear();
        } else {
            // The kernel marks the pages clean: what they held may or may not be on disk, for good.
            for sector in std::mem::take(&mut self.dirty) {
                let old = sector_of(&self.base, sector);
                self.versions.entry(sector).or_default().push(old);
            }
            self.lengths.push(self.base.len());
        }
    }

    fn image(&self, rng: &mut SplitMix) -> Vec<u8> {
        let len = match rng.below(self.lengths.len() as u64 + 1) as usize {
            0 => self.base.len(),
            k => self.lengths[k - 1],
        };
        let mut out = self.base.clone();
        out.resize(len, 0);
        for (&sector, versions) in &self.versions {
            let start = sector * SECTOR;
            if start >= len {
                continue;
            }
            let pick = rng.below(versions.len() as u64 + 1) as usize;
            let chosen = if pick == 0 { sector_of(&self.base, sector) } else { versions[pick - 1].clone() };
            let end = (start + SECTOR).min(len);
            out[start..end].copy_from_slice(&chosen[..end - start]);
        }
        out
    }
}

/// The disk: every file's contents and the directory, current and durable.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    inodes: Vec<Inode>,
    names: BTreeMap<String, usize>,
    durable_names: BTreeMap<String, usize>,
    pending: Vec<DirOp>,
}

impl Disk {
    fn apply(&mut self, change: &Change) {
        match change {
            Change::Create { name, inode } => {
                if *inode == self.inodes.len() {
                    self.inodes.push(Inode::default());
                } else {
                    // An existing file truncated by create.
                    self.inodes[*inode].set_len(0);
                }
                if self.names.insert(name.clone(), *inode) != Some(*inode) {
                    self.pending.push(DirOp::Link(name.clone(), *inode));
                }
            }
            Change::Write { inode, offset, data } => self.inodes[*inode].write(*offset as usize, data),
            Change::SetLen { inode, len } => self.inodes[*inode].set_len(*len as usize),
            Change::Sync { inode, ok } => self.inodes[*inode].sync(*ok),
            Change::Rename { from, to } => {
                if let Some(inode) = self.names.remove(from) {
                    self.names.insert(to.clone(), inode);
                    self.pending.push(DirOp::Rename(from.clone(), to.clone()));
                }
            }
            Change::Remove { name } => {
                if self.names.remove(name).is_some() {
                    self.pending.push(DirOp::Unlink(name.clone()));
                }
            }
            Change::SyncDir => {
                self.durable_names = self.names.clone();
                self.pending.clear();
            }
        }
    }

    /// One state a power loss now could leave, drawn with `seed`.
    pub fn crash_image(&self, seed: u64) -> Image {
        let mut rng = SplitMix::new(seed);
        let mut names = self.durable_names.clone();
        let kept = rng.below(self.pending.len() as u64 + 1) as usize;
        for op in &self.pending[..kept] {
            match op {
                DirOp::Link(name, inode) => {
                    names.insert(name.clone(), *inode);
                }
                DirOp::Rename(from, to) => {
                    if let Some(inode) = names.remove(from) {
                        names.insert(to.clone(), inode);
                    }
                }
                DirOp::Unlink(name) => {
                    names.remove(name);
                }
            }
        }
        names.into_iter().map(|(name, inode)| (name, self.inodes[inode].image(&mut rng))).collect()
    }

    /// The files as the running program sees them (no power loss).
    pub fn current(&self) -> Image {
        self.names.iter().map(|(name, inode)| (name.clone(), self.inodes[*inode].current.clone())).collect()
    }

    /// Whether anything written is not yet known durable (a crash now could lose something).
    pub fn settled(&self) -> bool {
        self.pending.is_empty() && self.inodes.iter().all(|inode| inode.versions.is_empty() && inode.lengths.is_empty())
    }
}

/// What the simulated disk recorded: every change, with the index of the call that made it.
#[derive(Clone, Debug, Default)]
pub struct History {
    changes: Vec<(usize, Change)>,
    start: Disk,
    calls: usize,
}

impl History {
    /// Calls made in all.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Replays the history: `at(index, disk)` sees the disk as it was just
    /// before call `index` (after every earlier call), for every call that
    /// changed something and once more at the end.
    pub fn replay(&self, mut at: impl FnMut(usize, &Disk)) {
        let mut disk = self.start.clone();
        for (index, change) in &self.changes {
            at(*index, &disk);
            disk.apply(change);
        }
        at(self.calls, &disk);
    }
}

struct Sim {
    dir: std::path::PathBuf,
    disk: Disk,
    history: History,
    faults: BTreeMap<usize, Fault>,
}

/// The simulated file system. Clones share one disk.
#[derive(Clone)]
pub struct SimFs(Arc<Mutex<Sim>>);

fn name_of(path: &Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
}

impl SimFs {
    /// An empty directory `dir`.
    pub fn new(dir: &Path) -> SimFs {
        SimFs::from_image(dir, &Image::new())
    }

    /// The directory `dir` holding `files`, all durable (what a machine finds after a power loss).
    pub fn from_image(dir: &Path, files: &Image) -> SimFs {
        let mut disk = Disk::default();
        for (name, contents) in files {
            let inode = Inode { current: contents.clone(), base: contents.clone(), ..Inode::default() };
            disk.names.insert(name.clone(), disk.inodes.len());
            disk.inodes.push(inode);
        }
        disk.durable_names = disk.names.clone();
        let history = History { start: disk.clone(), ..History::default() };
        SimFs(Arc::new(Mutex::new(Sim { dir: dir.to_owned(), disk, history, faults: BTreeMap::new() })))
    }

    fn sim(&self) -> MutexGuard<'_, Sim> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes call number `index` (counting from 0, every call) fail with `fault`.
    pub fn fail_at(&self, index: usize, fault: Fault) {
        self.sim().faults.insert(index, fault);
    }

    /// Calls made so far.
    pub fn calls(&self) -> usize {
        self.sim().history.calls
    }

    /// What was recorded so far.
    pub fn history(&self) -> History {
        self.sim().history.clone()
    }

    /// The disk now.
    pub fn disk(&self) -> Disk {
        self.sim().disk.clone()
    }

    /// Counts a call; the fault injected at it, if any.
    fn call(sim: &mut Sim) -> Option<io::Error> {
        let index = sim.history.calls;
        sim.history.calls += 1;
        sim.faults.remove(&index).map(|fault| match fault {
            Fault::NoSpace => io::Error::from_raw_os_error(libc::ENOSPC),
            Fault::Io => io::Error::from_raw_os_error(libc::EIO),
        })
    }

    /// Counts a call that changes the disk, and makes the change unless a fault is injected.
    fn change(&self, make: impl FnOnce(&Disk) -> io::Result<Change>) -> io::Result<()> {
        let mut sim = self.sim();
        let index = sim.history.calls;
        let fault = SimFs::call(&mut sim);
        let change = make(&sim.disk)?;
        let change = match (fault, change) {
            (None, change) => change,
            (Some(error), Change::Sync { inode, .. }) => {
                let failed = Change::Sync { inode, ok: false };
                sim.disk.apply(&failed);
                sim.history.changes.push((index, failed));
                return Err(error);
            }
            (Some(error), _) => return Err(error),
        };
        sim.disk.apply(&change);
        sim.history.changes.push((index, change));
        Ok(())
    }

    fn lookup(&self, path: &Path) -> io::Result<usize> {
        let mut sim = self.sim();
        if let Some(error) = SimFs::call(&mut sim) {
            return Err(error);
        }
        let name = name_of(path);
        sim.disk.names.get(&name).copied().ok_or_else(|| not_found(&name))
    }
}

struct SimFile {
    fs: SimFs,
    inode: usize,
}

impl Fs for SimFs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn list(&self, _dir: &Path) -> io::Result<Vec<String>> {
        let mut sim = self.sim();
        if let Some(error) = SimFs::call(&mut sim) {
            return Err(error);
        }
        Ok(sim.disk.names.keys().cloned().collect())
    }

    fn create(&self, path: &Path, exclusive: bool) -> io::Result<Arc<dyn FsFile>> {
        let name = name_of(path);
        let mut made = 0;
        self.change(|disk| {
            let inode = match disk.names.get(&name) {
                Some(_) if exclusive => return Err(io::Error::new(io::ErrorKind::AlreadyExists, name.clone())),
                Some(&inode) => inode,
                None => disk.inodes.len(),
            };
            made = inode;
            Ok(Change::Create { name: name.clone(), inode })
        })?;
        Ok(Arc::new(SimFile { fs: self.clone(), inode: made }))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let inode = self.lookup(path)?;
        Ok(Arc::new(SimFile { fs: self.clone(), inode }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let inode = self.lookup(path)?;
        Ok(self.sim().disk.inodes[inode].current.clone())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (name_of(from), name_of(to));
        self.change(|disk| match disk.names.contains_key(&from) {
            true => Ok(Change::Rename { from: from.clone(), to: to.clone() }),
            false => Err(not_found(&from)),
        })
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let name = name_of(path);
        self.change(|disk| match disk.names.contains_key(&name) {
            true => Ok(Change::Remove { name: name.clone() }),
            false => Err(not_found(&name)),
        })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if dir != self.sim().dir {
            let mut sim = self.sim();
            return SimFs::call(&mut sim).map_or(Ok(()), Err);
        }
        self.change(|_| Ok(Change::SyncDir))
    }

    fn lock(&self, _path: &Path) -> io::Result<Option<LockGuard>> {
        let mut sim = self.sim();
        SimFs::call(&mut sim).map_or(Ok(Some(Box::new(()))), Err)
    }
}

impl FsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut sim = self.fs.sim();
        if let Some(error) = SimFs::call(&mut sim) {
            return Err(error);
        }
        let bytes = &sim.disk.inodes[self.inode].current;
        let start = offset as usize;
        let slice = bytes.get(start..start + buf.len()).ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(slice);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let inode = self.inode;
        self.fs.change(|_| Ok(Change::Write { inode, offset, data: buf.to_vec() }))
    }

    fn sync_data(&self) -> io::Result<()> {
        let inode = self.inode;
        self.fs.change(|_| Ok(Change::Sync { inode, ok: true }))
    }

    fn len(&self) -> io::Result<u64> {
        let mut sim = self.fs.sim();
        if let Some(error) = SimFs::call(&mut sim) {
            return Err(error);
        }
        Ok(sim.disk.inodes[self.inode].current.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let inode = self.inode;
        self.fs.change(|_| Ok(Change::SetLen { inode, len }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> &'static Path {
        Path::new("/vault")
    }

    #[test]
    fn only_synced_contents_and_names_are_sure_to_survive() {
        let fs = SimFs::new(dir());
        let file = fs.create(&dir().join("a"), true).unwrap();
        file.write_at(&[1; 1000], 0).unwrap();
        file.sync_data().unwrap();
        // Not yet named durably: some image lacks the file.
        let history = fs.history();
        let mut without = 0;
        let mut last = Disk::default();
        history.replay(|_, disk| last = disk.clone());
        for seed in 0..64 {
            if !last.crash_image(seed).contains_key("a") {
                without += 1;
            }
        }
        assert!(without > 0, "a name is durable only after its directory is synced");
        fs.sync_dir(dir()).unwrap();
        file.write_at(&[2; 1000], 1000).unwrap();
        let disk = fs.disk();
        let mut lengths = BTreeSet::new();
        for seed in 0..256 {
            let image = disk.crash_image(seed);
            let a = &image["a"];
            assert_eq!(&a[..1000], &[1; 1000][..], "synced bytes always survive");
            lengths.insert(a.len());
            // Each sector of the unsynced write is whole or zeros.
            let tail = &a[1000..a.len().min(1024)];
            assert!(tail.iter().all(|&b| b == 2) || tail.iter().all(|&b| b == 0));
            for sector in a.get(1024..).unwrap_or_default().chunks(SECTOR) {
                assert!(sector.iter().all(|&b| b == 2) || sector.iter().all(|&b| b == 0));
            }
        }
        assert!(lengths.contains(&1000) && lengths.contains(&2000), "{lengths:?}");
    }

    #[test]
    fn a_failed_sync_leaves_its_writes_uncertain_after_a_later_good_sync() {
        let fs = SimFs::new(dir());
        let file = fs.create(&dir().join("a"), true).unwrap();
        fs.sync_dir(dir()).unwrap();
        file.write_at(&[7; 512], 0).unwrap();
        fs.fail_at(fs.calls(), Fault::Io);
        assert!(file.sync_data().is_err());
        file.write_at(&[8; 512], 512).unwrap();
        file.sync_data().unwrap();
        let disk = fs.disk();
        let lost = (0..64).any(|seed| disk.crash_image(seed)["a"][..512] != [7; 512]);
        assert!(lost, "the first sector may have been dropped by the failed sync");
        assert!((0..64).all(|seed| disk.crash_image(seed)["a"][512..] == [8; 512]));
    }

    #[test]
    fn directory_changes_survive_in_order() {
        let fs = SimFs::new(dir());
        for name in ["a", "b", "c"] {
            fs.create(&dir().join(name), true).unwrap();
        }
        fs.rename(&dir().join("a"), &dir().join("z")).unwrap();
        let disk = fs.disk();
        for seed in 0..128 {
            let names: Vec<String> = disk.crash_image(seed).into_keys().collect();
            let valid: [&[&str]; 5] = [&[], &["a"], &["a", "b"], &["a", "b", "c"], &["b", "c", "z"]];
            assert!(valid.iter().any(|v| *v == names), "{names:?}");
        }
    }
}
