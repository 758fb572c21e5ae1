//! `phasebench merge`: shards of a real run merged into the run one process
//! would have recorded, and every refusal (exit 2, the culprit named, no
//! folder written).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{phasebench, root, Scenario};
use phasebench::results::store;
use serde_json::{json, Value};

/// A small scenario: a run two shards share and a run of one operation that
/// only shard 0 has.
const SCENARIO: &str = r#"
scenario: merge-check
seed: 7
engines:
  cal: { kind: calibrate }
phases:
  - name: main
    workloads:
      - name: spin
        engine: cal
        op: spin
        with: { duration: 50us }
        iterations: 40
        warmup: 2x
        load: { concurrency: 2 }
        slo: { latency: 10s }
      - name: single
        engine: cal
        op: noop
        iterations: 1
        warmup: 0x
"#;

/// The scenario's two shards, run once for every test.
struct Shards {
    _scenario: Scenario,
    folders: [PathBuf; 2],
}

fn shards() -> &'static Shards {
    static SHARDS: OnceLock<Shards> = OnceLock::new();
    SHARDS.get_or_init(|| {
        let scenario = Scenario::new(SCENARIO);
        let folders = [0, 1].map(|index| {
            let out = scenario.dir.path().join(format!("shard{index}"));
            let output = phasebench()
                .arg("run")
                .arg(&scenario.file)
                .arg("--quiet")
                .args(["--shard", &format!("{index}/2"), "--out"])
                .arg(&out)
                .output()
                .unwrap();
            assert!(output.status.success() || output.status.code() == Some(1), "{output:?}");
            out
        });
        Shards { _scenario: scenario, folders }
    })
}

/// A copy of shard `index`'s results.json in `dir`, edited by `edit`.
fn copy(dir: &Path, index: usize, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let text = std::fs::read_to_string(shards().folders[index].join("results.json")).unwrap();
    let mut value: Value = serde_json::from_str(&text).unwrap();
    edit(&mut value);
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    path
}

/// The run `id` in a results file as JSON.
fn run_mut<'a>(results: &'a mut Value, id: &str) -> &'a mut Value {
    results["runs"].as_array_mut().unwrap().iter_mut().find(|run| run["id"] == id).unwrap()
}

fn unchanged(_: &mut Value) {}

type Edit = fn(&mut Value);

/// Each refusal: its name, the inputs (shard index, edit of that copy), and
/// what stderr must say.
/// A refusal: its name, the shards given (index, edit of that copy), what stderr must say.
type Refusal = (&'static str, Vec<(usize, Edit)>, &'static [&'static str]);

fn refusals() -> Vec<Refusal> {
    vec![
        (
            "another scenario",
            vec![(0, unchanged), (1, |r| r["scenario"]["sha256"] = json!("00ff"))],
            &["shard1.json", "the scenario (sha256)", "00ff"],
        ),
        (
            "another seed",
            vec![(0, unchanged), (1, |r| r["scenario"]["seed"] = json!(8))],
            &["shard1.json", "the seed is 8"],
        ),
        (
            "other vars",
            vec![(0, unchanged), (1, |r| r["scenario"]["vars"] = json!({"nap": "1ms"}))],
            &["shard1.json", "--var is nap=1ms"],
        ),
        ("smoke and not", vec![(0, unchanged), (1, |r| r["smoke"] = json!(true))], &["shard1.json", "--smoke is true"]),
        (
            "another phasebench",
            vec![(0, unchanged), (1, |r| r["phasebench"]["version"] = json!("0.0.9"))],
            &["shard1.json", "phasebench version is 0.0.9"],
        ),
        (
            "another shard count",
            vec![(0, unchanged), (1, |r| r["shard"]["count"] = json!(3))],
            &["shard1.json", "the shard count is 3"],
        ),
        (
            "not a shard",
            vec![
                (0, unchanged),
                (1, |r| {
                    r.as_object_mut().unwrap().remove("shard");
                }),
            ],
            &["shard1.json", "not a shard"],
        ),
        ("a shard missing", vec![(0, unchanged)], &["shard 1 of 2 missing", "--allow-missing"]),
        (
            "a shard twice",
            vec![(0, unchanged), (1, |r| r["shard"]["index"] = json!(0))],
            &["shard 0 is given twice", "shard0.json", "shard1.json"],
        ),
        (
            "a run's piece missing",
            vec![(0, unchanged), (1, |r| r["runs"] = json!([]))],
            &["run `spin`", "piece 1 of 2 missing"],
        ),
        (
            "an unshared run twice",
            vec![(0, unchanged), (1, add_single)],
            &["run `single`", "piece 0 of 1 is in both", "shard0.json", "shard1.json"],
        ),
        (
            "a metric's dimension",
            vec![(0, unchanged), (1, |r| run_mut(r, "spin")["metrics"]["latency"]["dim"]["time"] = json!(0))],
            &["run `spin`", "metric `latency`", "dimension", "shard1.json"],
        ),
        (
            "a metric's unit",
            vec![(0, unchanged), (1, |r| run_mut(r, "spin")["metrics"]["latency"]["unit"] = json!("us"))],
            &["metric `latency`", "unit", "shard1.json"],
        ),
        (
            "a metric's kind",
            vec![(0, unchanged), (1, |r| run_mut(r, "spin")["metrics"]["throughput"]["kind"] = json!("distribution"))],
            &["metric `throughput`", "kind", "shard1.json"],
        ),
        (
            "a metric's scale",
            vec![(0, unchanged), (1, |r| run_mut(r, "spin")["metrics"]["latency"]["scale"] = json!(1e6))],
            &["metric `latency`", "scale", "shard1.json"],
        ),
        (
            "another SLO",
            vec![(0, unchanged), (1, |r| run_mut(r, "spin")["slo"]["bounds"]["latency"] = json!("1ms"))],
            &["run `spin`", "different SLOs"],
        ),
        (
            "a scalar without a rule",
            vec![(0, |r| add_mystery(r)), (1, |r| add_mystery(r))],
            &["metric `mystery`", "cannot be merged"],
        ),
    ]
}

/// Shard 0's run of one operation, which only shard 0 has, put into a copy of shard 1 too.
fn add_single(results: &mut Value) {
    let text = std::fs::read_to_string(shards().folders[0].join("results.json")).unwrap();
    let mut zero: Value = serde_json::from_str(&text).unwrap();
    let single = run_mut(&mut zero, "single").clone();
    results["runs"].as_array_mut().unwrap().push(single);
}

fn add_mystery(results: &mut Value) {
    run_mut(results, "spin")["metrics"]["mystery"] =
        json!({"kind": "scalar", "dim": {"time": 0, "bytes": 0, "tokens": 0}, "value": 1.0});
}

#[test]
fn every_refusal_exits_2_names_the_culprit_and_writes_nothing() {
    for (name, inputs, says) in refusals() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = inputs
            .into_iter()
            .map(|(index, edit)| copy(dir.path(), index, &format!("shard{index}.json"), edit))
            .collect();
        let out = dir.path().join("merged");
        let output = phasebench().arg("merge").arg(&out).args(&files).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        for text in says {
            assert!(stderr.contains(text), "{name}: stderr does not say `{text}`: {stderr}");
        }
        assert!(!out.exists(), "{name}: the merged folder was created");
    }
}

/// The same copies unedited merge (and create the folder), so each row above
/// fails for its edit alone: without the refusal it would exit 0 or 1 and
/// leave a folder.
#[test]
fn the_unedited_copies_merge() {
    let dir = tempfile::tempdir().unwrap();
    let files = [copy(dir.path(), 0, "shard0.json", unchanged), copy(dir.path(), 1, "shard1.json", unchanged)];
    let out = dir.path().join("merged");
    let output = phasebench().arg("merge").arg(&out).args(&files).output().unwrap();
    assert!(matches!(output.status.code(), Some(0 | 1)), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("merged 2 shards (skew "), "{output:?}");
    let merged = store::load(&out.join("results.json")).unwrap();
    assert!(merged.complete && merged.shard.is_none());
    let spin = common::run(&merged, "spin");
    assert_eq!((spin.operations, spin.stop.as_str()), (40, "40x"));
    assert_eq!(spin.load, phasebench::results::LoadRecord::Closed { concurrency: 2 });
    assert_eq!(spin.metrics["latency"].summary.unwrap().count, 40);
    // Goodput is the summed count of operations that met the SLO over the union window.
    let met: u64 = shards()
        .folders
        .iter()
        .map(|folder| {
            let shard = store::load(&folder.join("results.json")).unwrap();
            common::run(&shard, "spin").slo.as_ref().unwrap().met
        })
        .sum();
    assert_eq!((spin.slo.as_ref().unwrap().met, met), (40, 40));
    let goodput = spin.metrics["goodput"].value.unwrap();
    assert!((goodput - 40.0 / (spin.elapsed_ns as f64 / 1e9)).abs() < 1e-9 * goodput, "{goodput}");
    assert_eq!(spin.metrics["slo_attainment"].value, Some(1.0));
    assert_eq!(common::run(&merged, "single").operations, 1);
    let record = merged.merged.unwrap();
    assert_eq!(record.shards.len(), 2);
    assert!(record.run_skew_seconds.contains_key("spin") && !record.run_skew_seconds.contains_key("single"));
}

#[test]
fn a_folder_that_exists_and_a_file_that_is_not_results_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let [zero, one] = &shards().folders;
    phasebench().arg("merge").arg(dir.path()).arg(zero).arg(one).assert().code(2);
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{}").unwrap();
    let out = dir.path().join("merged");
    let output = phasebench().arg("merge").arg(&out).arg(zero).arg(&junk).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("junk.json"));
    assert!(!out.exists());
}

#[test]
fn allow_missing_merges_what_is_there_and_says_what_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged");
    let output = phasebench().arg("merge").arg(&out).arg(&shards().folders[0]).arg("--allow-missing").output().unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("shard(s) 1 missing"), "{output:?}");
    let merged = store::load(&out.join("results.json")).unwrap();
    assert!(!merged.complete);
    assert_eq!(merged.merged.as_ref().unwrap().missing, vec![1]);
    let spin = common::run(&merged, "spin");
    assert!(!spin.complete && spin.failure.as_deref().unwrap_or("").contains("piece(s) 1"));
}

#[test]
fn two_shards_of_the_quickstart_merge_into_its_smoke_run() {
    let dir = tempfile::tempdir().unwrap();
    let quickstart = root().join("scenarios/quickstart.yaml");
    let run = |out: &Path, extra: &[&str]| {
        let output = phasebench()
            .args(["run", "--smoke", "--quiet", "--out"])
            .arg(out)
            .arg(&quickstart)
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
    };
    let (whole, zero, one) = (dir.path().join("whole"), dir.path().join("s0"), dir.path().join("s1"));
    run(&whole, &[]);
    run(&zero, &["--shard", "0/2"]);
    run(&one, &["--shard", "1/2"]);
    let out = dir.path().join("merged");
    phasebench().arg("merge").arg(&out).arg(&zero).arg(one.join("results.json")).assert().code(0);
    for file in ["results.json", "report.md", "roadmap.md", "report.html"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let whole = store::load(&whole.join("results.json")).unwrap();
    let merged = store::load(&out.join("results.json")).unwrap();
    let counts = |results: &phasebench::results::Results| -> Vec<(String, u64, u64, String)> {
        results.runs.iter().map(|r| (r.id.clone(), r.operations, r.errors, r.stop.clone())).collect()
    };
    assert_eq!(counts(&merged), counts(&whole));
    for (merged, whole) in merged.runs.iter().zip(&whole.runs) {
        assert_eq!(merged.load, whole.load, "{}", merged.id);
        assert_eq!(merged.metrics["latency"].summary.unwrap().count, whole.metrics["latency"].summary.unwrap().count);
    }
    phasebench().arg("report").arg(&out).assert().code(0);
}
