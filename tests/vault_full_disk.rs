//! A full disk on a real file system: a small tmpfs mounted by the test
//! (root only: `cargo test --test vault_full_disk -- --ignored`, which
//! `.ci/run` does as root) filled during writes and during a compaction.
//! Every write either fails or survives a reopen; a compaction that runs
//! out of space fails and leaves the old segments in use.

use std::path::{Path, PathBuf};
use std::process::Command;

use phasebench::engines::vault::{store, SyncPolicy, Vault, VaultError, VaultOptions};

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root: run this test as root");
        Tmpfs { path: dir.path().to_owned(), _dir: dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn options() -> VaultOptions {
    VaultOptions { sync: SyncPolicy::Always, segment_size: 256 << 10, cache_bytes: 0, ..VaultOptions::default() }
}

fn key(k: usize) -> Vec<u8> {
    format!("key{k:06}").into_bytes()
}

fn value(k: usize, round: usize) -> Vec<u8> {
    format!("{k}:{round};").into_bytes().into_iter().cycle().take(3000).collect()
}

fn no_space(error: &VaultError) -> bool {
    let text = error.to_string();
    text.contains("No space left") || text.contains("stopped")
}

/// Writes keys from `first` on until the disk is full; returns the keys written.
fn fill(dir: &Path, first: usize, round: usize) -> usize {
    let vault = Vault::open(dir, options()).unwrap();
    let mut k = first;
    loop {
        match vault.put(&key(k), &value(k, round)) {
            Ok(()) => k += 1,
            Err(error) => {
                assert!(no_space(&error), "a full disk, not: {error}");
                return k;
            }
        }
        assert!(k < first + 10_000, "the disk never filled");
    }
}

#[test]
#[ignore = "mounts a tmpfs: root only; .ci/run runs it as root"]
fn a_full_disk_on_a_real_file_system_errors_without_loss() {
    // During writes: fill, reopen, every acknowledged write is there; space
    // freed by the truncated tail lets the vault open again.
    let disk = Tmpfs::mount("1m");
    let dir = disk.path.join("vault");
    let written = fill(&dir, 0, 0);
    assert!(written > 100, "{written} writes before the disk filled");
    let vault = Vault::open(&dir, options()).unwrap();
    for k in 0..written {
        assert_eq!(vault.get(&key(k)).unwrap().as_deref(), Some(&value(k, 0)[..]), "key {k}");
    }
    assert_eq!(vault.check().unwrap().torn_tail, None);
    drop(vault);

    // During a compaction: live data filling more than half the disk, so the
    // copy cannot fit. It fails, nothing is lost, no output is left behind,
    // and the vault goes on.
    let disk = Tmpfs::mount("2m");
    let dir = disk.path.join("vault");
    let vault = Vault::open(&dir, options()).unwrap();
    let keys = 400; // 400 x ~3 KiB = 1.2 MB of live records
    for k in 0..keys {
        vault.put(&key(k), &value(k, 1)).unwrap();
    }
    let error = vault.compact().expect_err("the copy cannot fit");
    assert!(no_space(&error), "{error}");
    for k in 0..keys {
        assert_eq!(vault.get(&key(k)).unwrap().as_deref(), Some(&value(k, 1)[..]), "key {k}");
    }
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("compacting") || name.contains("hint") || name.starts_with("COMPACTION"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    vault.put(b"after", b"still writable").unwrap();
    drop(vault);
    let report = store::check(&dir).unwrap();
    assert_eq!(report.live_keys, keys as u64 + 1);
    let vault = Vault::open(&dir, options()).unwrap();
    assert_eq!(vault.get(b"after").unwrap().as_deref(), Some(&b"still writable"[..]));
}
