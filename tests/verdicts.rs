//! Verdicts every output agrees on: an overloaded open-loop run shows its
//! dropped work and schedule lag everywhere and fails; a smoke run judges
//! no target; a run too short for its percentile is not judged; an
//! experiment over a three-point matrix is one candidate, booked once.

mod common;

use common::{phasebench, root, status, Scenario};
use phasebench::analysis::{Analysis, CompareSettings, TargetStatus};
use phasebench::report::{export, render};
use phasebench::results::store;

/// `calibrate sleep 1ms` at 10,000/s through 4 slots for 2 s, with `targets` (a YAML line or nothing).
fn flood(targets: &str) -> Scenario {
    Scenario::new(&format!(
        "scenario: overload
engines: {{ cal: {{ kind: calibrate }} }}
phases:
  - name: p
    workloads:
      - name: flood
        engine: cal
        op: sleep
        with: {{ duration: 1ms }}
        load: {{ rate: 10000/s, max_in_flight: 4 }}
        duration: 2s
        warmup: 0x
        {targets}
"
    ))
}

#[test]
fn an_overloaded_open_loop_run_shows_its_dropped_work_everywhere_and_fails() {
    let scenario = flood("");
    let output = phasebench().arg("run").arg(&scenario.file).arg("--out").arg(scenario.out()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(status(&output), 1, "{stdout}");
    assert!(stdout.contains("DROPPED"), "summary: {stdout}");
    assert!(stdout.contains("schedule_lag"), "summary: {stdout}");
    assert!(stdout.contains("LOAD GENERATOR FELL BEHIND"), "summary: {stdout}");
    assert!(stdout.lines().any(|line| line == "FAILED:"), "summary: {stdout}");
    let results = scenario.results();
    let run = &results.runs[0];
    // 20,000 scheduled; 4 slots of 1 ms serve under 4,000/s for the 2 s plus
    // the 2 s the queue may drain.
    assert!(run.dropped > 0, "nothing dropped at 10,000/s through 4 slots of 1 ms");
    let report = std::fs::read_to_string(scenario.out().join("report.md")).unwrap();
    assert!(report.contains(&format!("**{}**", run.dropped)) && report.contains("DROPPED"), "{report}");
    assert!(report.contains("LOAD GENERATOR FELL BEHIND") && report.contains("**Verdict: FAILED**"), "{report}");
    let html = std::fs::read_to_string(scenario.out().join("report.html")).unwrap();
    assert!(html.contains("DROPPED") && html.contains("schedule lag") && html.contains("Verdict: FAILED"));
    let json = phasebench().args(["report", "--format", "json"]).arg(scenario.out()).output().unwrap();
    let analysis: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(analysis["runs"][0]["dropped"], serde_json::json!(run.dropped));
    assert!(analysis["runs"][0]["schedule_lag"].as_str().is_some_and(|lag| lag.starts_with("p50 ")));
    assert_eq!(analysis["verdict"]["passed"], serde_json::json!(false));
}

#[test]
fn an_overload_test_with_its_own_targets_on_dropped_work_is_judged_by_them() {
    let scenario = flood("targets: [ \"dropped < 1000000\", \"schedule_lag.p99 < 1h\" ]");
    let output = scenario.run(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(status(&output), 0, "{stdout}");
    assert!(stdout.contains("note: DROPPED") && stdout.contains("note: LOAD GENERATOR FELL BEHIND"), "{stdout}");
}

#[test]
fn a_smoke_run_judges_no_target() {
    let output = phasebench()
        .arg("run")
        .arg(root().join("scenarios/quickstart.yaml"))
        .arg("--smoke")
        .arg("--out")
        .arg(tempfile::tempdir().unwrap().path().join("smoke"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(status(&output), 0, "{stdout}");
    for line in stdout.lines() {
        assert!(!line.contains("PASS ") && !line.contains("FAIL "), "a smoke run judged a target: {line}");
    }
    assert!(stdout.contains("NOT JUDGED"), "{stdout}");
    assert!(stdout.contains("SMOKE RUN"), "{stdout}");
}

#[test]
fn the_smoke_reports_say_not_judged_for_every_target() {
    let results = store::load(&root().join("tests/fixtures/report/smoke.json")).expect("fixture reads");
    let analysis = Analysis::of(&results, &CompareSettings::default());
    assert!(!analysis.targets.is_empty());
    assert!(analysis.targets.iter().all(|t| matches!(t.status, TargetStatus::NotJudged(_))));
    insta::assert_snapshot!("smoke-report.md", render::built_in("report.md", &analysis).unwrap());
    let junit = export::junit(&analysis);
    assert!(junit.contains("<skipped message=\"not judged: smoke run") && !junit.contains("<failure"), "{junit}");
}

#[test]
fn a_target_on_too_few_operations_is_not_judged() {
    let scenario = Scenario::new(
        "scenario: short
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - { name: w, engine: cal, op: spin, with: { duration: 50us }, iterations: 200,
          targets: [ \"latency.p50 < 1s\", \"latency.p99 < 1s\" ] }
",
    );
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 1, "a p99 on 200 operations passed");
    let analysis = Analysis::of(&scenario.results(), &CompareSettings::default());
    assert_eq!(analysis.targets[0].status, TargetStatus::Held);
    assert_eq!(
        analysis.targets[1].status,
        TargetStatus::NotJudged("too few samples: latency.p99 needs at least 1000, the run has 200".into())
    );
    assert!(analysis.verdict.reasons.iter().any(|reason| reason == "1 target not judged"), "{:?}", analysis.verdict);
    // JUnit agrees with the exit status: the target that was not judged fails its test case.
    let junit = export::junit(&analysis);
    assert!(junit.contains("failures=\"1\"") && junit.contains("<failure message=\"not judged: "), "{junit}");
}

#[test]
fn results_saved_before_these_verdicts_load_and_are_judged_by_them() {
    // A quickstart saved by the previous release: no dropped metric, no arm
    // positions, no experiment state; its p99 on 200 operations passed then.
    let results =
        store::load(&root().join("tests/fixtures/report/results-before-verdicts.json")).expect("old results load");
    let analysis = Analysis::of(&results, &CompareSettings::default());
    let overshoot = analysis.targets.iter().find(|t| t.target == "overshoot.p99 < 1ms").expect("the old target");
    assert_eq!(
        overshoot.status,
        TargetStatus::NotJudged("too few samples: overshoot.p99 needs at least 1000, the run has 200".into())
    );
    assert!(!analysis.verdict.passed);
    assert_eq!(analysis.roadmap.candidates.len(), 1);
}

#[test]
fn an_experiment_over_a_three_point_matrix_is_one_candidate_booked_once() {
    let results = store::load(&root().join("tests/fixtures/report/matrix-experiment.json")).expect("fixture reads");
    let analysis = Analysis::of(&results, &CompareSettings::default());
    assert_eq!(analysis.experiments.len(), 3, "each point is still shown");
    let roadmap = &analysis.roadmap;
    assert_eq!(roadmap.candidates.len() + roadmap.tried.len(), 1);
    assert_eq!(roadmap.candidates.len(), 1, "{:?}", roadmap.tried);
    assert_eq!(roadmap.candidates[0].points, 3);
    assert_eq!(roadmap.booked_days, 2.0);
    assert_eq!(roadmap.scheduled, 1);
    insta::assert_snapshot!("matrix-roadmap.md", render::built_in("roadmap.md", &analysis).unwrap());

    // A weight is the exchange rate of the ROI: three times the weight, three times the return.
    let mut weighted = results.clone();
    weighted.experiments[0].weight = 3.0;
    let heavier = Analysis::of(&weighted, &CompareSettings::default()).roadmap.candidates[0].roi;
    let ratio = heavier / roadmap.candidates[0].roi;
    assert!((ratio - 3.0).abs() < 1e-9, "ROI ratio {ratio}");
}

/// Two runs of `calibrate sleep 1ms`, 100 operations each, judged against an
/// SLO every operation meets and one no operation can meet (a 1 ms sleep
/// never takes under 100 µs), each with the same goodput target.
const SLO: &str = "scenario: slo
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - name: met
        engine: cal
        op: sleep
        with: { duration: 1ms }
        warmup: 0x
        iterations: 100
        slo: { latency: 10s, overshoot: 9s }
        targets: [\"goodput > 5/s\", \"slo_attainment > 0.9\"]
      - name: missed
        engine: cal
        op: sleep
        with: { duration: 1ms }
        warmup: 0x
        iterations: 100
        slo: { latency: 100us }
        targets: [\"goodput > 5/s\"]
";

#[test]
fn a_goodput_target_is_judged_like_any_other() {
    let scenario = Scenario::new(SLO);
    let output = scenario.run(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(status(&output), 1, "{stdout}");
    assert!(stdout.contains("PASS  goodput > 5/s") && stdout.contains("FAIL  goodput > 5/s"), "{stdout}");
    assert!(stdout.contains("100 of 100 operations met latency ≤ 10s, overshoot ≤ 9s"), "{stdout}");
    assert!(stdout.contains("0 of 100 operations met latency ≤ 100us"), "{stdout}");
    let results = scenario.results();
    let (met, missed) = (common::run(&results, "met"), common::run(&results, "missed"));
    assert_eq!((met.slo.as_ref().unwrap().met, missed.slo.as_ref().unwrap().met), (100, 0));
    assert_eq!(met.metrics["slo_attainment"].value, Some(1.0));
    assert_eq!(missed.metrics["goodput"].value, Some(0.0));
    let analysis = Analysis::of(&results, &CompareSettings::default());
    let statuses: Vec<(&str, &TargetStatus)> =
        analysis.targets.iter().map(|row| (row.run.as_str(), &row.status)).collect();
    assert_eq!(
        statuses,
        [("met", &TargetStatus::Held), ("met", &TargetStatus::Held), ("missed", &TargetStatus::Missed)]
    );
    for report in ["report.md", "report.html"] {
        let text = std::fs::read_to_string(scenario.out().join(report)).unwrap();
        assert!(text.contains("goodput") && text.contains("slo_attainment"), "{report}");
    }
    let junit = phasebench().args(["report", "--format", "junit"]).arg(scenario.out()).output().unwrap();
    let junit = String::from_utf8_lossy(&junit.stdout);
    assert_eq!(junit.matches("<failure").count(), 1, "{junit}");
}
