//! The scenario JSON Schema (`phasebench schema`) and the starter scenario
//! (`phasebench init`): the committed schema is the one the binary
//! generates, every shipped scenario names it and passes an independent
//! validator (check-jsonschema), and every starter validates both ways.

mod common;

use std::path::{Path, PathBuf};

use common::{phasebench, root, status};

/// The scenarios the project ships: `scenarios/` and the examples'.
fn shipped() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files.push(root().join("examples/campaign/scenario.yaml"));
    files.push(root().join("examples/slurm/calibrate.yaml"));
    files
}

#[test]
fn the_committed_schema_is_the_one_the_binary_generates() {
    let output = phasebench().arg("schema").output().unwrap();
    assert_eq!(status(&output), 0);
    let committed = std::fs::read_to_string(root().join("schema/phasebench.schema.json")).unwrap();
    assert!(
        output.stdout == committed.as_bytes(),
        "schema/phasebench.schema.json is stale: run `phasebench schema --out schema/phasebench.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
}

#[test]
fn schema_out_writes_the_same_text() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.json");
    let output = phasebench().args(["schema", "--out"]).arg(&out).output().unwrap();
    assert_eq!(status(&output), 0);
    let printed = phasebench().arg("schema").output().unwrap().stdout;
    assert_eq!(std::fs::read(&out).unwrap(), printed);
}

#[test]
fn every_shipped_scenario_names_the_schema_and_passes_check_jsonschema() {
    let files = shipped();
    assert!(files.len() >= 10, "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let reference = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{} does not start with a `$schema` line", file.display()));
        let target = file.parent().unwrap().join(reference);
        assert_eq!(
            target.canonicalize().ok(),
            root().join("schema/phasebench.schema.json").canonicalize().ok(),
            "{}: `{reference}` is not the committed schema",
            file.display()
        );
    }
    let Some(rejected) = common::check_jsonschema(&files) else { return };
    assert!(rejected.is_empty(), "rejected by the schema: {rejected:?}");
}

/// Runs `phasebench init` in `dir` with `args`.
fn init(dir: &Path, args: &[&str]) -> std::process::Output {
    phasebench().current_dir(dir).arg("init").args(args).output().unwrap()
}

#[test]
fn init_writes_a_starter_for_every_engine_that_validates_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let list = String::from_utf8(phasebench().arg("list").output().unwrap().stdout).unwrap();
    let kinds: Vec<&str> = list
        .lines()
        .filter_map(|line| line.strip_prefix("engine `"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    assert!(kinds.len() >= 6, "{kinds:?}");
    let mut starters = Vec::new();
    for kind in &kinds {
        let folder = dir.path().join(kind);
        std::fs::create_dir(&folder).unwrap();
        let output = init(&folder, &["--engine", kind, "start.yaml"]);
        assert_eq!(status(&output), 0, "{kind}: {}", String::from_utf8_lossy(&output.stderr));
        let file = folder.join("start.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("# yaml-language-server: $schema=phasebench.schema.json\n"), "{text}");
        assert!(text.contains(&format!("kind: {kind}")), "{text}");
        let beside = std::fs::read(folder.join("phasebench.schema.json")).unwrap();
        assert_eq!(beside, phasebench().arg("schema").output().unwrap().stdout);
        let validated = phasebench().arg("validate").arg(&file).output().unwrap();
        assert_eq!(status(&validated), 0, "{kind}: {}", String::from_utf8_lossy(&validated.stderr));
        starters.push(file);
    }
    if let Some(rejected) = common::check_jsonschema(&starters) {
        assert!(rejected.is_empty(), "starters rejected by the schema: {rejected:?}");
    }
    // The default is the calibrate engine, into scenario.yaml.
    let output = init(dir.path(), &[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    assert!(std::fs::read_to_string(dir.path().join("scenario.yaml")).unwrap().contains("kind: calibrate"));
}

#[test]
fn init_refuses_an_existing_file_and_an_unknown_engine() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.yaml"), "keep me\n").unwrap();
    let output = init(dir.path(), &["mine.yaml"]);
    assert_eq!(status(&output), 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("mine.yaml already exists"));
    assert_eq!(std::fs::read_to_string(dir.path().join("mine.yaml")).unwrap(), "keep me\n");

    let output = init(dir.path(), &["--engine", "valut", "new.yaml"]);
    assert_eq!(status(&output), 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown engine kind `valut`") && stderr.contains("vault"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("mine.yaml")], "nothing else is written");
}

#[test]
fn schema_for_a_scenario_narrows_to_its_instances_and_refuses_one_without_engines() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.yaml");
    // Half written: the workload is not finished, the engines are.
    std::fs::write(&scenario, "scenario: s\nengines:\n  store: { kind: vault }\n  odd: { kind: nosuch }\nphases:\n  - name: p\n    workloads:\n      - name: w\n        op:\n").unwrap();
    let output = phasebench().args(["schema", "--for"]).arg(&scenario).output().unwrap();
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let workload = &schema["$defs"]["workload"];
    assert_eq!(workload["properties"]["engine"]["enum"], serde_json::json!(["store"]), "an unknown kind is left out");
    let narrowed = workload["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|case| case["if"]["properties"]["engine"]["const"] == "store")
        .expect("a case for `store`");
    let ops = narrowed["then"]["properties"]["op"]["enum"].as_array().unwrap();
    assert!(ops.contains(&serde_json::json!("read")) && !ops.contains(&serde_json::json!("sleep")), "{ops:?}");

    std::fs::write(&scenario, "scenario: s\nphases: []\n").unwrap();
    let output = phasebench().args(["schema", "--for"]).arg(&scenario).output().unwrap();
    assert_eq!(status(&output), 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no `engines:` mapping"));
    std::fs::write(&scenario, "scenario: [unclosed\n").unwrap();
    let output = phasebench().args(["schema", "--for"]).arg(&scenario).output().unwrap();
    assert_eq!(status(&output), 2);
    assert!(output.stdout.is_empty());
}
