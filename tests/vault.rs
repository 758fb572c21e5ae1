//! The vault store: a model check against a BTreeMap, crash tests that kill
//! a writing process with SIGKILL, torn and corrupt files, and the command
//! line's refusals.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{phasebench, status};
use phasebench::engines::vault::{store, CacheLayout, SyncPolicy, Vault, VaultError, VaultOptions};
use proptest::prelude::*;

fn options(cache: bool) -> VaultOptions {
    VaultOptions {
        sync: SyncPolicy::None,
        segment_size: 4096,
        cache_bytes: if cache { 2048 } else { 0 },
        cache_layout: CacheLayout::Sharded,
        cache_shards: 4,
        ..VaultOptions::default()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8, Vec<u8>),
    Delete(u8),
    Get(u8),
    Compact,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..24_u8, prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0..24_u8).prop_map(Op::Delete),
        4 => (0..24_u8).prop_map(Op::Get),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn key(k: u8) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Every sequence of puts, deletes, gets, compactions and reopenings
    /// agrees with a BTreeMap, with and without the read cache, across
    /// segment rollovers (4 KiB segments).
    #[test]
    fn agrees_with_a_btreemap(ops in prop::collection::vec(op(), 1..80), cache in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut vault = Vault::open(dir.path(), options(cache)).unwrap();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    vault.put(&key(k), &v).unwrap();
                    model.insert(key(k), v);
                }
                Op::Delete(k) => {
                    let existed = vault.delete(&key(k)).unwrap();
                    prop_assert_eq!(existed, model.remove(&key(k)).is_some());
                }
                Op::Get(k) => {
                    let got = vault.get(&key(k)).unwrap().map(|v| v.to_vec());
                    prop_assert_eq!(got.as_ref(), model.get(&key(k)));
                }
                Op::Compact => {
                    vault.compact().unwrap();
                }
                Op::Reopen => {
                    drop(vault);
                    vault = Vault::open(dir.path(), options(cache)).unwrap_or_else(|e| panic!("reopen: {e}"));
                }
            }
            prop_assert_eq!(vault.len(), model.len());
        }
        drop(vault);
        let vault = Vault::open(dir.path(), options(cache)).unwrap();
        for (k, v) in &model {
            let got = vault.get(k).unwrap();
            prop_assert_eq!(got.as_deref(), Some(v.as_slice()));
        }
        let scanned: Vec<Vec<u8>> = vault.scan(b"", usize::MAX).unwrap().into_iter().map(|(k, _)| k).collect();
        prop_assert_eq!(scanned, model.keys().cloned().collect::<Vec<_>>());
        drop(vault);
        let report = store::check(dir.path()).unwrap();
        prop_assert_eq!(report.live_keys, model.len() as u64);
    }
}

/// The value a crash-test key is written with.
fn crash_value(key: &str) -> String {
    format!("{key}:{}", "v".repeat(key.len() * 7 % 200))
}

/// A child `phasebench vault put --sync always` is killed with SIGKILL at a
/// random moment, 50 times over one vault; every key it acknowledged must
/// be there with its value, and `check` must find no corruption.
#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let vault_dir = dir.path().join("vault");
    let bin = assert_cmd::cargo::cargo_bin("phasebench");
    let mut acknowledged: Vec<String> = Vec::new();
    let mut seed = 0x5eed_u64;
    for cycle in 0..50 {
        let mut child = Command::new(&bin)
            .args(["vault", "put", "--sync", "always"])
            .arg(&vault_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            for i in 0.. {
                let key = format!("c{cycle}-k{i}");
                if writeln!(stdin, "{key}\t{}", crash_value(&key)).is_err() {
                    break;
                }
            }
        });
        let acked = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let acked = Arc::clone(&acked);
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    match line {
                        Ok(key) => acked.lock().unwrap().push(key),
                        Err(_) => break,
                    }
                }
            })
        };
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(20 + (seed >> 33) % 120));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        feeder.join().unwrap();
        acknowledged.extend(acked.lock().unwrap().drain(..));

        let report = store::check(&vault_dir).unwrap_or_else(|error| panic!("cycle {cycle}: check failed: {error}"));
        assert!(report.live_keys >= acknowledged.len() as u64, "cycle {cycle}: {report:?}");
        let vault = Vault::open(&vault_dir, VaultOptions::default()).unwrap();
        for key in &acknowledged {
            let value = vault.get(key.as_bytes()).unwrap();
            assert_eq!(value.as_deref(), Some(crash_value(key).as_bytes()), "cycle {cycle}: acknowledged {key} lost");
        }
        if cycle % 10 == 9 {
            vault.compact().unwrap();
        }
    }
    assert!(acknowledged.len() > 100, "the child acknowledged only {} writes", acknowledged.len());
}

/// A vault with a few keys, closed: the path of its active segment.
fn small_vault(dir: &Path, keys: usize) -> std::path::PathBuf {
    let vault = Vault::open(dir, options(false)).unwrap();
    for i in 0..keys {
        vault.put(format!("k{i}").as_bytes(), &[i as u8; 100]).unwrap();
    }
    drop(vault);
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    segments.pop().unwrap()
}

#[test]
fn a_torn_tail_is_cut_and_everything_before_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let active = small_vault(dir.path(), 5);
    let bytes = std::fs::read(&active).unwrap();
    // Half of the last record, as a crash mid-append leaves it.
    std::fs::write(&active, &bytes[..bytes.len() - 60]).unwrap();
    let report = store::check(dir.path()).unwrap();
    assert!(report.torn_tail.is_some());
    let vault = Vault::open(dir.path(), options(false)).unwrap();
    assert_eq!(vault.len(), 4);
    assert!(vault.get(b"k4").unwrap().is_none());
    vault.put(b"k4", b"again").unwrap();
    drop(vault);
    assert!(store::check(dir.path()).unwrap().torn_tail.is_none());
    let vault = Vault::open(dir.path(), options(false)).unwrap();
    assert_eq!(vault.get(b"k4").unwrap().as_deref(), Some(b"again".as_slice()));
}

#[test]
fn a_flipped_byte_is_reported_with_file_and_offset_not_served() {
    // In a sealed segment (70 keys of ~120 bytes fill several 4 KiB segments).
    let dir = tempfile::tempdir().unwrap();
    small_vault(dir.path(), 70);
    let first = dir.path().join("0000000001.seg");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[200] ^= 0x40;
    std::fs::write(&first, &bytes).unwrap();
    match Vault::open(dir.path(), options(false)) {
        Err(VaultError::Corrupt { file, offset, .. }) => {
            assert_eq!(file, first);
            assert!(offset <= 200, "{offset}");
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
    let check = phasebench().args(["vault", "check"]).arg(dir.path()).output().unwrap();
    assert_eq!(status(&check), 1);
    assert!(String::from_utf8_lossy(&check.stderr).contains("0000000001.seg at offset"));

    // In the middle of the active segment, with good records after it: not a torn tail.
    let dir = tempfile::tempdir().unwrap();
    let active = small_vault(dir.path(), 5);
    let mut bytes = std::fs::read(&active).unwrap();
    bytes[16 + 30] ^= 1;
    std::fs::write(&active, &bytes).unwrap();
    assert!(matches!(Vault::open(dir.path(), options(false)), Err(VaultError::Corrupt { .. })));

    // Damage after opening: the read fails instead of returning the bytes.
    let dir = tempfile::tempdir().unwrap();
    let active = small_vault(dir.path(), 3);
    let vault = Vault::open(dir.path(), options(false)).unwrap();
    let mut bytes = std::fs::read(&active).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 1;
    std::fs::write(&active, &bytes).unwrap();
    assert!(matches!(vault.get(b"k2"), Err(VaultError::Corrupt { .. })));
}

#[test]
fn the_command_line_refuses_what_is_not_a_usable_vault() {
    let dir = tempfile::tempdir().unwrap();
    // Not a vault: a directory with other files.
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    for args in [vec!["put"], vec!["get"], vec!["check"], vec!["compact"]] {
        let mut command = phasebench();
        command.arg("vault").args(&args).arg(dir.path());
        if args[0] == "get" {
            command.arg("k");
        }
        let output = command.write_stdin("k\tv\n").output().unwrap();
        assert_eq!(status(&output), 2, "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("is not a vault"), "{args:?}");
    }
    assert_eq!(std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(), "mine");

    // Locked: another process (here: this one) has it open.
    let vault_dir = dir.path().join("v");
    let vault = Vault::open(&vault_dir, VaultOptions::default()).unwrap();
    vault.put(b"kept", b"yes").unwrap();
    let output = phasebench().args(["vault", "put"]).arg(&vault_dir).write_stdin("k\tv\n").output().unwrap();
    assert_eq!(status(&output), 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("locked by another process"));
    drop(vault);
    let output = phasebench().args(["vault", "get"]).arg(&vault_dir).arg("kept").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "yes\n");

    // A place that cannot be written (sysfs is read-only even for root).
    let output = phasebench().args(["vault", "put", "/sys/phasebench-vault"]).write_stdin("k\tv\n").output().unwrap();
    assert_eq!(status(&output), 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("creating /sys/phasebench-vault"));

    // A bad line stops the input with its number; the lines before it stay.
    let fresh = dir.path().join("w");
    let output =
        phasebench().args(["vault", "put"]).arg(&fresh).write_stdin("a\t1\nno tab here\nb\t2\n").output().unwrap();
    assert_eq!(status(&output), 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("stdin line 2"));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "a\n");
    let output = phasebench().args(["vault", "get"]).arg(&fresh).arg("a").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "1\n");

    // A bad sync policy.
    let output = phasebench().args(["vault", "put", "--sync", "sometimes"]).arg(&fresh).output().unwrap();
    assert_eq!(status(&output), 2);
}

#[test]
fn vault_scenario_smoke_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = phasebench()
        .args(["run", "--smoke", "--quiet", "--out"])
        .arg(&out)
        .arg(common::root().join("scenarios/vault.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(status(&output), 0, "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let results = phasebench::results::store::load(&out.join("results.json")).unwrap();
    assert!(results.smoke && results.complete);
    let write = common::run(&results, "write");
    assert_eq!(write.counters["syncs"], write.operations, "sync: always syncs every write");
    assert!(write.metrics["write_amplification"].value.unwrap() >= 1.0);
    for arm in ["baseline", "sharded"] {
        assert!(results.runs.iter().any(|run| run.id == format!("sharded-cache:{arm}#1")), "{arm}");
    }
    assert!(stdout.contains("cache_hit_rate"), "{stdout}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Opening and checking a vault whose segment or hint holds arbitrary
    /// bytes (after a valid segment header, or not) returns an error or a
    /// vault, never a panic.
    #[test]
    fn arbitrary_files_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..600),
        with_header in any::<bool>(),
        as_hint in any::<bool>(),
        second in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        drop(Vault::open(dir.path(), options(false)).unwrap());
        let id = if second { 2 } else { 1 };
        let mut bytes = Vec::new();
        if with_header {
            bytes.extend_from_slice(b"PBVSEG01");
            bytes.extend_from_slice(&(id as u64).to_le_bytes());
        }
        bytes.extend_from_slice(&body);
        if as_hint {
            std::fs::write(dir.path().join(format!("{id:010}.hint")), &bytes).unwrap();
        } else {
            std::fs::write(dir.path().join(format!("{id:010}.seg")), &bytes).unwrap();
        }
        let _ = store::check(dir.path());
        if let Ok(vault) = Vault::open(dir.path(), options(false)) {
            let _ = vault.get(b"anything");
            let _ = vault.scan(b"", 10);
        }
    }
}

#[test]
fn reads_continue_correctly_while_compaction_runs() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Arc::new(Vault::open(dir.path(), options(true)).unwrap());
    let value = |i: usize, round: usize| format!("{i}:{round}:{}", "x".repeat(i % 50)).into_bytes();
    for round in 0..3 {
        for i in 0..400 {
            vault.put(format!("k{i}").as_bytes(), &value(i, round)).unwrap();
        }
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (vault, stop) = (Arc::clone(&vault), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for i in (0..400).step_by(7) {
                        let got = vault.get(format!("k{i}").as_bytes()).unwrap();
                        assert_eq!(got.as_deref(), Some(value(i, 2).as_slice()), "k{i}");
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    for _ in 0..5 {
        vault.compact().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    drop(vault);
    let vault = Vault::open(dir.path(), options(false)).unwrap();
    assert_eq!(vault.len(), 400);
    assert!(store::check(dir.path()).is_err(), "still locked by the open vault");
    drop(vault);
    let report = store::check(dir.path()).unwrap();
    assert_eq!(report.live_keys, 400);
    assert!(report.values <= 400 + 400, "compaction dropped the overwritten values: {report:?}");
}

#[test]
fn group_commit_shares_syncs_between_writers() {
    let dir = tempfile::tempdir().unwrap();
    let options = VaultOptions { sync: SyncPolicy::Group(Duration::from_millis(2)), ..VaultOptions::default() };
    let vault = Arc::new(Vault::open(dir.path(), options).unwrap());
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let vault = Arc::clone(&vault);
            std::thread::spawn(move || {
                for i in 0..50 {
                    vault.put(format!("w{w}-{i}").as_bytes(), b"value").unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let syncs = vault.stats.syncs.load(std::sync::atomic::Ordering::Relaxed);
    assert!(syncs < 200, "200 grouped writes took {syncs} syncs");
    assert!(syncs >= 50, "every writer waited for a sync: {syncs}");
}

/// Sixteen writers on 4 KiB segments: groups roll segments over midway,
/// and every write is there, with its value, after a reopen.
#[test]
fn many_grouped_writers_across_rollovers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options = VaultOptions {
        sync: SyncPolicy::Group(Duration::from_millis(2)),
        segment_size: 4096,
        ..VaultOptions::default()
    };
    let vault = Arc::new(Vault::open(dir.path(), options.clone()).unwrap());
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let vault = Arc::clone(&vault);
            std::thread::spawn(move || {
                for i in 0..60 {
                    vault.put(format!("w{w}-{i}").as_bytes(), format!("{w}/{i}").repeat(20).as_bytes()).unwrap();
                    if i % 7 == 3 {
                        assert!(vault.delete(format!("w{w}-{}", i - 1).as_bytes()).unwrap());
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    drop(vault);
    let vault = Vault::open(dir.path(), options).unwrap();
    for w in 0..16 {
        for i in 0..60 {
            let deleted = i % 7 == 2 && i < 59;
            let expected = (!deleted).then(|| format!("{w}/{i}").repeat(20).into_bytes());
            assert_eq!(vault.get(format!("w{w}-{i}").as_bytes()).unwrap().as_deref(), expected.as_deref(), "w{w}-{i}");
        }
    }
}

#[test]
fn a_scenario_on_a_locked_or_foreign_directory_is_refused_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    let _open = Vault::open(&locked, VaultOptions::default()).unwrap();
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("data.db"), "not mine").unwrap();
    for (path, message) in [(&locked, "locked by another process"), (&foreign, "is not a vault")] {
        let yaml = format!(
            "scenario: v\nengines:\n  v: {{ kind: vault, dir: \"{}\" }}\nphases:\n  - name: p\n    workloads:\n      - {{ name: r, engine: v, op: read, iterations: 1 }}\n",
            path.display()
        );
        let scenario = common::Scenario::new(&yaml);
        let output = scenario.run(&[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(status(&output), 2, "{stderr}");
        assert!(stderr.contains(message) && stderr.contains("scenario.yaml:3:"), "{stderr}");
        assert!(!scenario.out().exists());
    }
    assert_eq!(std::fs::read_to_string(foreign.join("data.db")).unwrap(), "not mine");
}

#[test]
fn compressed_values_round_trip_through_reopen_and_compaction_and_take_less_disk() {
    use phasebench::engines::vault::format::Codec;
    for codec in [Codec::Lz4, Codec::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        let chosen = VaultOptions { compression: codec, ..options(false) };
        let value = |k: u32| format!("value {k} ").repeat(40).into_bytes();
        let random: Vec<u8> = (0..300_u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        {
            let vault = Vault::open(dir.path(), chosen.clone()).unwrap();
            for k in 0..50 {
                vault.put(format!("k{k}").as_bytes(), &value(k)).unwrap();
            }
            // Incompressible: stored as written.
            vault.put(b"random", &random).unwrap();
            vault.put(b"empty", b"").unwrap();
            let stats = &vault.stats;
            let (user, disk) = (stats.user_bytes.load(Relaxed), stats.disk_bytes.load(Relaxed));
            assert!(disk * 3 < user, "{codec:?}: {disk} bytes on disk for {user} written");
            vault.compact().unwrap();
        }
        // Read back by a vault opened without compression: each record names its codec.
        let vault = Vault::open(dir.path(), options(false)).unwrap();
        for k in 0..50 {
            assert_eq!(vault.get(format!("k{k}").as_bytes()).unwrap().as_deref(), Some(&value(k)[..]), "{codec:?}");
        }
        assert_eq!(vault.get(b"random").unwrap().as_deref(), Some(&random[..]));
        assert_eq!(vault.get(b"empty").unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(vault.check().unwrap().torn_tail, None);
    }
}

#[test]
fn compaction_runs_by_itself_once_dead_bytes_pass_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let vault =
        Vault::open(dir.path(), VaultOptions { compact_at: 0.5, segment_size: 4096, ..options(false) }).unwrap();
    let mut compactions = 0;
    for round in 0..40_u32 {
        for k in 0..8_u32 {
            vault.put(format!("k{k}").as_bytes(), format!("{round}:{k}").repeat(30).as_bytes()).unwrap();
        }
        if vault.compact_if_due().unwrap() {
            compactions += 1;
            let (dead, total) = vault.space();
            assert!((dead as f64) < 0.5 * total as f64, "after compacting: {dead} dead of {total}");
        }
    }
    assert!(compactions >= 3, "{compactions} compactions");
    let background = vault.take_background();
    assert_eq!(background.compactions, compactions);
    assert!(background.disk_bytes > 0);
    for k in 0..8_u32 {
        assert_eq!(
            vault.get(format!("k{k}").as_bytes()).unwrap().as_deref(),
            Some(format!("39:{k}").repeat(30).as_bytes())
        );
    }
    // Under the threshold nothing runs.
    let quiet = tempfile::tempdir().unwrap();
    let vault =
        Vault::open(quiet.path(), VaultOptions { compact_at: 0.9, segment_size: 4096, ..options(false) }).unwrap();
    for k in 0..200_u32 {
        vault.put(format!("k{k}").as_bytes(), &[7; 100]).unwrap();
    }
    assert!(!vault.compact_if_due().unwrap());
}

#[test]
fn a_scenario_with_compact_at_compacts_in_the_background_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("compact.yaml");
    std::fs::write(
        &scenario,
        "scenario: compact\n\
         engines:\n  store: { kind: vault, sync: always, segment_size: 64KiB, compact_at: 50%, cache_size: 0 }\n\
         phases:\n  - name: churn\n    workloads:\n      - { name: write, engine: store, op: write, with: { keys: 50, value_size: 1KiB, distribution: uniform }, iterations: 2000 }\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let output = phasebench().args(["run", "--quiet", "--out"]).arg(&out).arg(&scenario).output().unwrap();
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let results = phasebench::results::store::load(&out.join("results.json")).unwrap();
    let write = common::run(&results, "write");
    assert!(write.counters["compactions"] >= 1, "{:?}", write.counters);
    // 2,000 KiB written over 50 keys (synced, so the run lasts long enough for the 10 ms polling): every compaction rewrites live data.
    let amplification = write.metrics["write_amplification"].value.unwrap();
    assert!(amplification > 1.05, "write amplification {amplification}");
}
