//! Power loss, full disks and failing syncs, on the simulated file system
//! (`engines::vault::simfs`): random histories of puts, deletes, concurrent
//! group commits, compactions and reopenings are recorded, and at every
//! point of each history the states a power loss could leave are recovered
//! and checked. The same test run on `sync: none` and on deliberately broken
//! builds must find lost writes: it is shown to fail where it should.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use phasebench::engines::vault::format::Codec;
use phasebench::engines::vault::simfs::{Fault, History, Image, SimFs};
use phasebench::engines::vault::store::{self, Flaw};
use phasebench::engines::vault::{SyncPolicy, Vault, VaultError, VaultOptions};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

const KEYS: u8 = 10;

fn dir() -> &'static Path {
    Path::new("/vault")
}

fn key(k: u8) -> Vec<u8> {
    format!("key{k}").into_bytes()
}

#[derive(Clone, Debug)]
enum Step {
    /// A put of key, value length.
    Put(u8, usize),
    Delete(u8),
    /// Puts from several threads at once (distinct keys), sharing syncs under group commit.
    Together(Vec<(u8, usize)>),
    Compact,
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    let len = prop::sample::select(vec![1_usize, 90, 700, 1500]);
    prop_oneof![
        6 => (0..KEYS, len.clone()).prop_map(|(k, n)| Step::Put(k, n)),
        2 => (0..KEYS).prop_map(Step::Delete),
        3 => prop::collection::btree_map(0..KEYS, len, 2..6).prop_map(|m| Step::Together(m.into_iter().collect())),
        1 => Just(Step::Compact),
        1 => Just(Step::Reopen),
    ]
}

/// One write as the test saw it: what it wrote, when it started and, if it
/// was acknowledged, when (both as counts of file-system calls made).
#[derive(Clone, Debug)]
struct Write {
    key: u8,
    value: Option<Vec<u8>>,
    start: usize,
    ack: Option<usize>,
}

fn options(sync: SyncPolicy, flaw: Flaw) -> VaultOptions {
    VaultOptions { sync, segment_size: 4096, cache_bytes: 0, flaw, ..VaultOptions::default() }
}

/// A value no other write of the history uses.
fn value(k: u8, serial: usize, len: usize) -> Vec<u8> {
    format!("{k}:{serial};").into_bytes().into_iter().cycle().take(len.max(6)).collect()
}

/// Runs `steps` on `fs`, returning every write. Errors are allowed (faults);
/// a stopped vault is reopened at the next `Reopen` or at the end.
fn run(fs: &SimFs, steps: &[Step], options: &VaultOptions) -> Vec<Write> {
    let open = || {
        // A fault may hit the open itself; the next try finds it spent.
        Vault::open_on(Arc::new(fs.clone()), dir(), options.clone())
            .or_else(|_| Vault::open_on(Arc::new(fs.clone()), dir(), options.clone()))
    };
    let mut vault = open().ok();
    let mut writes = Vec::new();
    let mut serial = 0;
    for step in steps {
        let Some(v) = vault.as_ref() else {
            if matches!(step, Step::Reopen) {
                vault = open().ok();
            }
            continue;
        };
        match step {
            Step::Put(k, len) => {
                serial += 1;
                let value = value(*k, serial, *len);
                let start = fs.calls();
                let done = v.put(&key(*k), &value).is_ok();
                writes.push(Write { key: *k, value: Some(value), start, ack: done.then(|| fs.calls()) });
            }
            Step::Delete(k) => {
                let start = fs.calls();
                match v.delete(&key(*k)) {
                    Ok(false) => {}
                    result => {
                        writes.push(Write { key: *k, value: None, start, ack: result.is_ok().then(|| fs.calls()) })
                    }
                }
            }
            Step::Together(puts) => {
                let start = fs.calls();
                let jobs: Vec<(u8, Vec<u8>)> = puts
                    .iter()
                    .map(|(k, len)| {
                        serial += 1;
                        (*k, value(*k, serial, *len))
                    })
                    .collect();
                let acks: Vec<Option<usize>> = std::thread::scope(|scope| {
                    let handles: Vec<_> = jobs
                        .iter()
                        .map(|(k, value)| scope.spawn(move || v.put(&key(*k), value).is_ok().then(|| fs.calls())))
                        .collect();
                    handles.into_iter().map(|h| h.join().expect("a writer thread panicked")).collect()
                });
                for ((k, value), ack) in jobs.into_iter().zip(acks) {
                    writes.push(Write { key: k, value: Some(value), start, ack });
                }
            }
            Step::Compact => {
                let _ = v.compact();
            }
            Step::Reopen => {
                drop(vault.take());
                vault = open().ok();
            }
        }
    }
    writes
}

/// The values `k` may hold after a crash at call `point`: that of its last
/// write acknowledged before the point, or of any write issued after that one.
fn allowed(writes: &[Write], k: u8, point: usize) -> Vec<Option<&[u8]>> {
    let mine: Vec<&Write> = writes.iter().filter(|w| w.key == k).collect();
    let last_acked = mine.iter().rposition(|w| w.ack.is_some_and(|ack| ack <= point));
    let mut out: Vec<Option<&[u8]>> = Vec::new();
    match last_acked {
        Some(at) => out.push(mine[at].value.as_deref()),
        None => out.push(None),
    }
    let from = last_acked.map_or(0, |at| at + 1);
    out.extend(mine[from..].iter().filter(|w| w.start < point).map(|w| w.value.as_deref()));
    out
}

/// Recovers `image` and checks the invariants for a crash at `point`;
/// returns what is wrong.
fn verify(image: &Image, writes: &[Write], point: usize, options: &VaultOptions) -> Vec<String> {
    let mut wrong = Vec::new();
    let fs = SimFs::from_image(dir(), image);
    let acked_any = writes.iter().any(|w| w.ack.is_some_and(|ack| ack <= point));
    let checked = match store::check_on(&fs, dir()) {
        Ok(report) => Some(report),
        Err(VaultError::NotAVault(_)) if !acked_any => None,
        Err(error) => return vec![format!("check failed: {error}")],
    };
    let vault = match Vault::open_on(Arc::new(fs.clone()), dir(), options.clone()) {
        Ok(vault) => vault,
        Err(error) => return vec![format!("the vault does not open: {error}")],
    };
    if let Some(report) = checked {
        let cut = vault.recovery().torn_tail.as_ref().map(|(_, offset, bytes)| (*offset, *bytes));
        if report.torn_tail != cut {
            wrong.push(format!("check reported torn tail {:?}, open cut {cut:?}", report.torn_tail));
        }
    }
    match vault.check() {
        Ok(report) if report.torn_tail.is_some() => wrong.push(format!("still torn after open: {report:?}")),
        Ok(_) => {}
        Err(error) => wrong.push(format!("check after open failed: {error}")),
    }
    for k in 0..KEYS {
        let got = match vault.get(&key(k)) {
            Ok(got) => got,
            Err(error) => {
                wrong.push(format!("key{k}: read failed: {error}"));
                continue;
            }
        };
        let allowed = allowed(writes, k, point);
        if !allowed.contains(&got.as_deref()) {
            let acked = writes.iter().rev().find(|w| w.key == k && w.ack.is_some_and(|ack| ack <= point));
            let what = match (&got, acked) {
                (None, Some(w)) if w.value.is_some() => "lost acknowledged write",
                (Some(_), Some(w)) if w.value.is_none() => "deleted key came back",
                (Some(_), _) if !writes.iter().any(|w| w.value.as_deref() == got.as_deref()) => "never written",
                _ => "lost acknowledged write",
            };
            wrong.push(format!(
                "key{k} at call {point}: {what}: holds {:?}",
                got.as_deref().map(|v| String::from_utf8_lossy(&v[..v.len().min(12)]).into_owned())
            ));
        }
    }
    wrong
}

/// Crash images at every point of `history` (`per_point` each); returns the
/// images checked and everything wrong.
fn crash_everywhere(
    history: &History,
    writes: &[Write],
    options: &VaultOptions,
    per_point: u64,
) -> (usize, Vec<String>) {
    let mut images = 0;
    let mut wrong = Vec::new();
    history.replay(|point, disk| {
        for seed in 0..per_point {
            let image = disk.crash_image(seed ^ (point as u64) << 8);
            images += 1;
            for problem in verify(&image, writes, point, options) {
                wrong.push(problem);
            }
        }
    });
    (images, wrong)
}

fn group() -> SyncPolicy {
    SyncPolicy::Group(Duration::from_millis(1))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn acknowledged_writes_survive_any_power_loss(
        steps in prop::collection::vec(step(), 1..24),
        policy in prop::sample::select(vec!["always", "group"]),
        compression in prop::sample::select(vec![Codec::Plain, Codec::Lz4, Codec::Zstd]),
    ) {
        let sync = if policy == "always" { SyncPolicy::Always } else { group() };
        let options = VaultOptions { compression, ..options(sync, Flaw::None) };
        let fs = SimFs::new(dir());
        let writes = run(&fs, &steps, &options);
        let (images, wrong) = crash_everywhere(&fs.history(), &writes, &options, 4);
        prop_assert!(images > 0);
        prop_assert!(wrong.is_empty(), "{policy}: {} problems in {images} images, first: {:?}", wrong.len(), &wrong[..wrong.len().min(5)]);
    }
}

/// Fixed histories for the tests that must find losses: puts of every
/// size, deletes, concurrent groups, rollovers (4 KiB segments) and a compaction.
fn fixed_histories() -> Vec<Vec<Step>> {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop::collection::vec(step(), 12..24);
    (0..12).map(|_| strategy.new_tree(&mut runner).expect("a history").current()).collect()
}

/// Everything wrong across the fixed histories under `sync` and `flaw`.
fn problems(sync: SyncPolicy, flaw: Flaw) -> (usize, Vec<String>) {
    let options = options(sync, flaw);
    let mut total = (0, Vec::new());
    for steps in fixed_histories() {
        let fs = SimFs::new(dir());
        let writes = run(&fs, &steps, &options);
        let (images, wrong) = crash_everywhere(&fs.history(), &writes, &options, 3);
        total.0 += images;
        total.1.extend(wrong);
    }
    total
}

#[test]
fn the_crash_test_passes_on_the_fixed_histories() {
    for sync in [SyncPolicy::Always, group()] {
        let (images, wrong) = problems(sync, Flaw::None);
        assert!(images > 1000, "{images} images");
        assert!(wrong.is_empty(), "{sync:?}: {wrong:?}");
    }
}

#[test]
fn sync_none_loses_acknowledged_writes_and_the_test_sees_it() {
    let (images, wrong) = problems(SyncPolicy::None, Flaw::None);
    assert!(wrong.iter().any(|w| w.contains("lost acknowledged write")), "{images} images, nothing lost: {wrong:?}");
    // Losing unsynced writes is what `none` promises; it must still open and be consistent.
    assert!(!wrong.iter().any(|w| w.contains("does not open") || w.contains("never written")), "{wrong:?}");
}

#[test]
fn acknowledging_before_the_sync_is_caught() {
    for sync in [SyncPolicy::Always, group()] {
        let (_, wrong) = problems(sync, Flaw::AckBeforeSync);
        assert!(wrong.iter().any(|w| w.contains("lost acknowledged write")), "{sync:?}: not caught");
    }
}

#[test]
fn skipping_the_directory_sync_of_a_new_segment_is_caught() {
    let (_, wrong) = problems(SyncPolicy::Always, Flaw::SkipSegmentDirSync);
    assert!(wrong.iter().any(|w| w.contains("lost acknowledged write")), "not caught");
}

/// One fixed history, single-threaded so that its calls are numbered the
/// same on every run: puts that roll segments over, deletes before and
/// after two compactions (a key deleted between them must stay deleted),
/// and a reopen.
fn fault_history() -> Vec<Step> {
    let mut steps = Vec::new();
    for round in 0..4_u8 {
        for k in 0..5 {
            steps.push(Step::Put(k, [90, 700, 1500][usize::from((k + round) % 3)]));
        }
        steps.push(Step::Delete(round));
        if round % 2 == 1 {
            steps.push(Step::Compact);
        }
    }
    steps.push(Step::Reopen);
    steps.push(Step::Put(9, 700));
    steps
}

#[test]
fn a_full_disk_or_an_io_error_at_any_call_loses_no_acknowledged_write() {
    let steps = fault_history();
    for sync in [SyncPolicy::Always, group()] {
        let options = options(sync, Flaw::None);
        let clean = SimFs::new(dir());
        run(&clean, &steps, &options);
        let calls = clean.calls();
        assert!(calls > 100, "{calls} calls");
        let mut failed_ops = 0;
        for index in 0..calls {
            for fault in [Fault::NoSpace, Fault::Io] {
                let fs = SimFs::new(dir());
                fs.fail_at(index, fault);
                let writes = run(&fs, &steps, &options);
                failed_ops += writes.iter().filter(|w| w.ack.is_none()).count();
                let end = fs.calls();
                // Without a crash: the files as they are now.
                let now = fs.disk().current();
                let mut wrong = verify(&now, &writes, end, &options);
                // And after a power loss at the end.
                let disk = fs.disk();
                for seed in 0..4 {
                    wrong.extend(verify(&disk.crash_image(seed), &writes, end, &options));
                }
                assert!(wrong.is_empty(), "{sync:?}, {fault:?} at call {index}: {wrong:?}");
            }
        }
        assert!(failed_ops > 0, "the faults must have failed some writes");
    }
}

#[test]
fn a_failed_sync_stops_the_vault_until_it_is_reopened() {
    let fs = SimFs::new(dir());
    let vault = Vault::open_on(Arc::new(fs.clone()), dir(), options(SyncPolicy::Always, Flaw::None)).unwrap();
    vault.put(b"a", b"1").unwrap();
    // The put's calls: write, then sync.
    fs.fail_at(fs.calls() + 1, Fault::Io);
    assert!(matches!(vault.put(b"b", b"2"), Err(VaultError::Stopped(_))));
    assert!(matches!(vault.get(b"a"), Err(VaultError::Stopped(_))));
    assert!(matches!(vault.put(b"c", b"3"), Err(VaultError::Stopped(_))));
    drop(vault);
    let vault = Vault::open_on(Arc::new(fs.clone()), dir(), options(SyncPolicy::Always, Flaw::None)).unwrap();
    assert_eq!(vault.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(vault.get(b"b").unwrap(), None, "the write whose sync failed was cut");
    vault.put(b"c", b"3").unwrap();
}
