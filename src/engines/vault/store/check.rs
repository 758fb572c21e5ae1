//! Checking a vault: every record of every segment verified against its
//! checksum without changing anything, counted into a [`CheckReport`].

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::open::scan;
use super::{list, take_lock, Vault, VaultError};
use crate::engines::vault::format;
use crate::engines::vault::fs::{Fs, RealFs};

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

impl Vault {
    /// Verifies every record of every segment without changing anything.
    pub fn check(&self) -> Result<CheckReport, VaultError> {
        check_dir(self.fs.as_ref(), &self.dir)
    }
}

/// Verifies every record of the vault in `dir` (which must not be open
/// elsewhere: the lock is taken for the duration).
pub fn check(dir: &Path) -> Result<CheckReport, VaultError> {
    check_on(&RealFs, dir)
}

/// [`check`] on the file system `fs`.
pub fn check_on(fs: &dyn Fs, dir: &Path) -> Result<CheckReport, VaultError> {
    if fs.read(&dir.join(format::MARKER)).is_err() {
        return Err(VaultError::NotAVault(dir.to_owned()));
    }
    let _lock = take_lock(fs, dir)?;
    check_dir(fs, dir)
}

fn check_dir(fs: &dyn Fs, dir: &Path) -> Result<CheckReport, VaultError> {
    let listing = list(fs, dir)?;
    let hinted: HashSet<u64> = listing.hints.iter().copied().collect();
    let active = listing.segments.iter().rev().find(|id| !hinted.contains(id)).copied();
    let mut report = CheckReport { segments: listing.segments.len() as u64, ..CheckReport::default() };
    let mut latest: HashMap<Vec<u8>, (u64, bool)> = HashMap::new();
    for &id in &listing.segments {
        let path = format::segment_path(dir, id);
        let end = scan(fs, &path, id, Some(id) == active, |record| {
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
