//! The command line end to end: validate, run, list, and the shipped scenarios.

mod common;

use common::{phasebench, root, status, Scenario};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

#[test]
fn quickstart_validates() {
    phasebench().arg("validate").arg(root().join("scenarios/quickstart.yaml")).assert().code(0).stdout(contains("ok"));
}

#[test]
fn every_shipped_scenario_validates() {
    for entry in std::fs::read_dir(root().join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            // A GPU scenario is refused where CUDA is not usable, and says why.
            let needs_gpu = std::fs::read_to_string(&path).unwrap().contains("device: cuda");
            if needs_gpu && phasebench::engines::llm::cuda::probe::cuda().is_err() {
                phasebench().arg("validate").arg(&path).assert().code(2).stderr(contains("cannot run here"));
            } else {
                phasebench().arg("validate").arg(&path).assert().code(0);
            }
        }
    }
}

#[test]
fn quickstart_smoke_run_writes_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    phasebench()
        .args(["run", "--smoke", "--quiet", "--out"])
        .arg(&out)
        .arg(root().join("scenarios/quickstart.yaml"))
        .assert()
        .code(0)
        .stdout(contains("results:"));
    let results = phasebench::results::store::load(&out.join("results.json")).unwrap();
    assert!(results.smoke && results.complete);
    assert_eq!(results.runs.len(), results.planned_runs);
    assert!(results.runs.iter().all(|run| run.complete && run.operations > 0));
    assert_eq!(results.scenario.name, "quickstart");
    assert_eq!(results.scenario.sha256.len(), 64);
    assert!(results.machine.cores >= 1);
    assert!(out.join("scenario.yaml").exists());
}

#[test]
fn experiments_run_interleaved_in_rounds() {
    let scenario = Scenario::new(
        "scenario: ab
seed: 7
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - { name: nap, engine: cal, op: sleep, with: { duration: 1ms }, iterations: 5, warmup: 0x }
experiments:
  - name: shorter
    workload: nap
    metric: latency.p50
    variants:
      half: { with: { duration: 500us } }
    rounds: 3
",
    );
    assert_eq!(status(&scenario.run(&[])), 0);
    let results = scenario.results();
    let order: Vec<&str> = results.runs.iter().map(|run| run.id.as_str()).collect();
    // Counterbalanced: the seed put `half` first, and the order alternates.
    assert_eq!(
        order,
        [
            "nap",
            "shorter:half#1",
            "shorter:baseline#1",
            "shorter:baseline#2",
            "shorter:half#2",
            "shorter:half#3",
            "shorter:baseline#3"
        ]
    );
    let half = &results.runs[1];
    assert_eq!(half.arm.as_ref().unwrap().position, 1);
    assert_eq!(half.arm.as_ref().unwrap().arm, "half");
    assert_eq!(half.params["duration"], "500000ns");
    assert_eq!(results.scenario.seed, 7);
}

#[test]
fn only_and_seed_select_and_override() {
    let scenario = Scenario::new(
        "scenario: select
seed: 1
engines: { cal: { kind: calibrate } }
phases:
  - name: first
    workloads:
      - { name: a, engine: cal, op: noop, iterations: 10, warmup: 0x }
  - name: second
    workloads:
      - { name: b, engine: cal, op: noop, iterations: 10, warmup: 0x }
",
    );
    assert_eq!(status(&scenario.run(&["--only", "second", "--seed", "99"])), 0);
    let results = scenario.results();
    assert_eq!(results.runs.len(), 1);
    assert_eq!(results.runs[0].workload, "b");
    assert_eq!(results.scenario.seed, 99);
}

#[test]
fn var_sets_a_declared_variable_and_refuses_an_undeclared_one() {
    let scenario = Scenario::new(
        "scenario: vars
vars: { n: 5, nap: 1ms }
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - { name: nap, engine: cal, op: sleep, with: { duration: \"${nap}\" }, iterations: \"${n}\", warmup: 0x }
",
    );
    assert_eq!(status(&scenario.run(&["--var", "n=7", "--var", "nap=200us"])), 0);
    let results = scenario.results();
    assert_eq!(results.runs[0].operations, 7);
    assert_eq!(results.runs[0].params["duration"], "200000ns");
    assert_eq!(results.scenario.vars["n"], "7");

    let refused = Scenario::new(&std::fs::read_to_string(&scenario.file).unwrap());
    let output = refused.run(&["--var", "nn=3"]);
    assert_eq!(status(&output), 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the scenario has no variable `nn`") && stderr.contains("did you mean `n`?"), "{stderr}");
    assert!(!refused.out().exists(), "nothing is written on bad input");
    let output = refused.run(&["--var", "novalue"]);
    assert_eq!(status(&output), 2, "a --var without `=` is a usage error");
}

#[test]
fn report_draws_a_saved_runs_flame_graph_again() {
    let scenario = Scenario::new(
        "scenario: flame
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - { name: spin, engine: cal, op: spin, with: { duration: 100us }, duration: 500ms, warmup: 0x, profile: cpu }
      - { name: plain, engine: cal, op: noop, iterations: 10, warmup: 0x }
",
    );
    assert_eq!(status(&scenario.run(&[])), 0);
    let out = scenario.out();
    phasebench()
        .args(["report", "--format", "flamegraph", "--run", "spin"])
        .arg(&out)
        .assert()
        .code(0)
        .stdout(contains("<svg").and(contains("spin_for")));
    phasebench()
        .args(["report", "--format", "flamegraph", "--run", "plain"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(contains("run `plain` has no CPU profile; runs with a CPU profile: spin"));
    phasebench().args(["report", "--format", "flamegraph"]).arg(&out).assert().code(2).stderr(contains("needs --run"));
}

#[test]
fn missed_target_exits_one_and_says_so() {
    let scenario = Scenario::new(
        "scenario: miss
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - { name: nap, engine: cal, op: sleep, with: { duration: 1ms }, iterations: 30, warmup: 0x, targets: [ \"latency.p50 < 100us\" ] }
",
    );
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 1);
    assert!(String::from_utf8_lossy(&output.stdout).contains("FAIL  latency.p50 < 100us"));
}

#[test]
fn list_shows_declarations() {
    phasebench()
        .arg("list")
        .assert()
        .code(0)
        .stdout(contains("engine `calibrate`"))
        .stdout(contains("sleep"))
        .stdout(contains("latency"))
        .stdout(contains("a duration"));
}

#[test]
fn usage_errors_exit_two() {
    phasebench().arg("run").assert().code(2);
    phasebench().arg("frobnicate").assert().code(2);
    phasebench().args(["validate", "/no/such/file.yaml"]).assert().code(2).stderr(contains("cannot read"));
}
