//! Helpers shared by the integration tests: write a scenario, run the binary, read results back.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use phasebench::results::{store, Results, RunRecord};

/// A scenario written into a fresh temporary folder.
pub struct Scenario {
    /// Keeps the folder alive.
    pub dir: tempfile::TempDir,
    /// The scenario file.
    pub file: PathBuf,
}

impl Scenario {
    /// Writes `yaml` as `scenario.yaml` in a new temporary folder.
    pub fn new(yaml: &str) -> Scenario {
        let dir = tempfile::tempdir().expect("temporary folder");
        let file = dir.path().join("scenario.yaml");
        std::fs::write(&file, yaml).expect("write scenario");
        Scenario { dir, file }
    }

    /// The run folder this scenario's runs write into.
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Runs `phasebench run FILE --out OUT --quiet` plus `extra` arguments.
    pub fn run(&self, extra: &[&str]) -> Output {
        phasebench()
            .arg("run")
            .arg(&self.file)
            .arg("--out")
            .arg(self.out())
            .arg("--quiet")
            .env("PHASEBENCH_HISTORY", self.dir.path().join("history.sqlite"))
            .args(extra)
            .output()
            .expect("run phasebench")
    }

    /// Reads the results the last run wrote.
    pub fn results(&self) -> Results {
        store::load(&self.out().join("results.json")).expect("results.json reads back")
    }
}

/// The phasebench binary.
pub fn phasebench() -> Command {
    Command::cargo_bin("phasebench").expect("binary built")
}

/// The run with the given id.
pub fn run<'a>(results: &'a Results, id: &str) -> &'a RunRecord {
    results.runs.iter().find(|run| run.id == id).unwrap_or_else(|| panic!("no run `{id}` in results"))
}

/// A distribution metric's summary.
pub fn summary(run: &RunRecord, metric: &str) -> phasebench::results::Summary {
    run.metrics[metric].summary.unwrap_or_else(|| panic!("`{metric}` has no summary"))
}

/// Exit status of an output.
pub fn status(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

/// Repository root, for the shipped scenarios.
///
/// `PHASEBENCH_REPO` overrides it, for test binaries built on one machine
/// and run from a copy of the repository on another (scripts/gpu-check.sh).
pub fn root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        std::env::var_os("PHASEBENCH_REPO").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
    })
}

/// One campaign of three short runs, saved once and copied `count` times
/// as results files that differ only in when they started (so a history
/// takes each for a new campaign): the files, and the runs each holds.
/// For the tests that kill a history import part-way.
pub fn campaign_copies(count: usize) -> (Scenario, Vec<PathBuf>, i64) {
    let scenario = Scenario::new(
        "
scenario: history-crash
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - { name: a, engine: cal, op: spin, with: { duration: 10us }, iterations: 50 }
      - { name: b, engine: cal, op: spin, with: { duration: 10us }, iterations: 50 }
      - { name: c, engine: cal, op: spin, with: { duration: 10us }, iterations: 50 }
",
    );
    let output = scenario.run(&["--no-history"]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scenario.out().join("results.json")).unwrap()).unwrap();
    let runs_per_file = original["runs"].as_array().unwrap().len() as i64;
    let copies = scenario.dir.path().join("copies");
    std::fs::create_dir_all(&copies).unwrap();
    let files = (0..count)
        .map(|i| {
            let mut copy = original.clone();
            copy["started_at"] = serde_json::Value::String(format!("2026-01-01T00:00:{:02}.{:06}Z", i % 60, i));
            let path = copies.join(format!("{i:03}.json"));
            std::fs::write(&path, serde_json::to_vec(&copy).unwrap()).unwrap();
            path
        })
        .collect();
    (scenario, files, runs_per_file)
}

/// Validates `files` against the committed scenario schema with the
/// independent validator `check-jsonschema` (PyPI), and returns the files
/// it rejected (invalid, or not YAML at all). `None` when it is not
/// installed, which fails instead where `PHASEBENCH_REQUIRE_CHECK_JSONSCHEMA`
/// is set (as `.ci/run` sets it).
pub fn check_jsonschema(files: &[PathBuf]) -> Option<std::collections::BTreeSet<PathBuf>> {
    let python = || Command::new("python3");
    let installed =
        python().args(["-m", "check_jsonschema", "--version"]).output().is_ok_and(|out| out.status.success());
    if !installed {
        assert!(
            std::env::var_os("PHASEBENCH_REQUIRE_CHECK_JSONSCHEMA").is_none(),
            "check-jsonschema is required here but `python3 -m check_jsonschema` does not run"
        );
        eprintln!("check-jsonschema is not installed (pip install check-jsonschema): the schema check is skipped");
        return None;
    }
    let schema = root().join("schema/phasebench.schema.json");
    let output = python()
        .args(["-m", "check_jsonschema", "--output-format", "json", "--schemafile"])
        .arg(&schema)
        .args(files)
        .output()
        .expect("check-jsonschema runs");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("check-jsonschema printed no JSON: {}", String::from_utf8_lossy(&output.stderr)));
    let mut rejected = std::collections::BTreeSet::new();
    for entry in ["errors", "parse_errors"].iter().flat_map(|key| report[key].as_array().cloned().unwrap_or_default()) {
        if let Some(file) = entry["filename"].as_str() {
            rejected.insert(PathBuf::from(file));
        }
    }
    Some(rejected)
}
