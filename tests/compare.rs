//! `phasebench compare` judged as a gate: repetitions are the samples.
//!
//! Twenty A/A pairs of `--repeat 5` runs of the same `calibrate spin` exit 1
//! at most twice; a true 20% slowdown exits 1 with REGRESSED in at least 19
//! of 20 pairs; one repetition a side is shown, never tested, and fails only
//! beyond `--fail-above`; two full quickstart runs compare clean; and the
//! p50 that `compare`, the summary, report.md and results.json print for a
//! run is the same figure.

mod common;

use std::path::Path;

use common::{phasebench, root, status, Scenario};
use phasebench::analysis::compare::{self, CompareOptions, RowVerdict};
use phasebench::analysis::stats::CompareSettings;
use phasebench::engines::MetricKind;
use phasebench::quantity::{format_value, Dim};
use phasebench::results::store;

fn spin_scenario(duration: &str) -> Scenario {
    Scenario::new(&format!(
        "scenario: gate
engines: {{ cal: {{ kind: calibrate }} }}
phases:
  - name: p
    workloads:
      - {{ name: spin, engine: cal, op: spin, with: {{ duration: {duration} }}, iterations: 100, warmup: 10x }}
"
    ))
}

/// Runs `scenario` with `--repeat 5 --seed seed` into `folder`.
fn repeated_run(scenario: &Scenario, folder: &Path, seed: u64) {
    let output = phasebench()
        .arg("run")
        .arg(&scenario.file)
        .arg("--out")
        .arg(folder)
        .args(["--quiet", "--repeat", "5", "--seed", &seed.to_string()])
        .output()
        .unwrap();
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stdout));
}

/// `compare a -- b`: exit status and standard output.
fn compare(a: &Path, b: &Path, extra: &[&str]) -> (i32, String) {
    let output = phasebench().arg("compare").args(extra).arg(a).arg("--").arg(b).output().unwrap();
    assert!(status(&output) <= 1, "{}", String::from_utf8_lossy(&output.stderr));
    (status(&output), String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether a comparison with its guards taken away — any p-value, a 20%
/// interval, no minimum effect — calls any change in the pair: the broken case the
/// A/A bar must reject, on the same runs.
fn loose_comparison_fails(a: &Path, b: &Path) -> bool {
    let load = |path: &Path| vec![store::load(&path.join("results.json")).unwrap()];
    let settings = CompareSettings { alpha: 1.0, confidence: 0.2, noise: 0.0, ..CompareSettings::default() };
    let options = CompareOptions { settings, ..CompareOptions::default() };
    let outcome = compare::compare(&load(a), &load(b), &options);
    outcome.rows.iter().any(|row| matches!(row.verdict, RowVerdict::Improved | RowVerdict::Regressed))
}

fn latency_row(stdout: &str) -> Option<&str> {
    stdout.lines().find(|line| line.starts_with("spin latency.p50"))
}

#[test]
fn a_a_pairs_rarely_fail_and_a_true_slowdown_is_caught() {
    let (same, slower) = (spin_scenario("200us"), spin_scenario("240us"));
    let dir = tempfile::tempdir().unwrap();
    let mut false_alarms = Vec::new();
    let mut naive_alarms = 0;
    let mut caught = 0;
    for pair in 0..20_u64 {
        let (a, b, s) = (
            dir.path().join(format!("a{pair}")),
            dir.path().join(format!("b{pair}")),
            dir.path().join(format!("s{pair}")),
        );
        repeated_run(&same, &a, 3 * pair);
        repeated_run(&same, &b, 3 * pair + 1);
        repeated_run(&slower, &s, 3 * pair + 2);
        let (code, stdout) = compare(&a, &b, &[]);
        if code != 0 {
            false_alarms.push(stdout);
        }
        naive_alarms += usize::from(loose_comparison_fails(&a, &b));
        let (code, stdout) = compare(&a, &s, &[]);
        if code == 1 && latency_row(&stdout).is_some_and(|row| row.contains("REGRESSED")) {
            caught += 1;
        } else {
            eprintln!("missed slowdown in pair {pair}:\n{stdout}");
        }
    }
    eprintln!(
        "A/A: {} of 20 pairs failed ({naive_alarms} with the guards taken away); 20% slowdown: {caught} of 20 caught",
        false_alarms.len()
    );
    // The bar has teeth: the same pairs judged without the guards fail far
    // more often than it allows.
    assert!(naive_alarms > 2, "a loose comparison failed only {naive_alarms} A/A pairs; the A/A bar has no teeth");
    assert!(false_alarms.len() <= 2, "{} A/A pairs failed:\n{}", false_alarms.len(), false_alarms.join("\n"));
    assert!(caught >= 19, "20% slowdown caught in {caught} of 20 pairs");
}

#[test]
fn one_repetition_a_side_is_shown_untested_and_gated_only_by_fail_above() {
    let (fast, slow) = (spin_scenario("100us"), spin_scenario("150us"));
    for scenario in [&fast, &slow] {
        assert_eq!(status(&scenario.run(&[])), 0);
    }
    let (code, stdout) = compare(&fast.out(), &slow.out(), &[]);
    assert_eq!(code, 0, "{stdout}");
    let row = latency_row(&stdout).unwrap_or_default();
    assert!(row.contains("not tested") && row.contains("(worse)"), "{stdout}");
    assert!(stdout.contains("no row could be tested"), "{stdout}");
    assert!(stdout.lines().any(|line| line == "no significant regression"), "{stdout}");
    // +50% latency is beyond a 10% threshold; a run against itself is within it.
    let (code, stdout) = compare(&fast.out(), &slow.out(), &["--fail-above", "10%"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.lines().any(|line| line.starts_with("FAILED: ")), "{stdout}");
    let (code, stdout) = compare(&fast.out(), &fast.out(), &["--fail-above", "10%"]);
    assert_eq!(code, 0, "{stdout}");
    // The old two-argument form still works, and a bad side is exit 2.
    let output = phasebench().arg("compare").arg(fast.out()).arg(slow.out()).output().unwrap();
    assert_eq!(status(&output), 0);
    let output = phasebench().arg("compare").arg(fast.out()).arg("--").arg("/no/such/run").output().unwrap();
    assert_eq!(status(&output), 2);
}

#[test]
fn repetitions_find_a_regression_and_an_improvement() {
    let (fast, slow) = (spin_scenario("100us"), spin_scenario("150us"));
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("fast"), dir.path().join("slow"));
    repeated_run(&fast, &a, 1);
    repeated_run(&slow, &b, 2);
    let (code, stdout) = compare(&a, &b, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(latency_row(&stdout).is_some_and(|row| row.contains("REGRESSED") && row.contains("(worse)")), "{stdout}");
    assert!(stdout.contains("Benjamini–Hochberg"), "{stdout}");
    let (_, stdout) = compare(&b, &a, &[]);
    assert!(latency_row(&stdout).is_some_and(|row| row.contains("improved") && row.contains("(better)")), "{stdout}");
    // A minimum effect above the change turns it into noise. The spin's own
    // `overshoot.p99` (a tail of sub-microsecond overshoots) can move by
    // several hundred percent when the tests share two busy cores, a real
    // change of that figure; the exit status must follow whatever rows
    // regressed, and none of them may be the load figures changed by 50%.
    let (code, stdout) = compare(&a, &b, &["--min-effect", "80%"]);
    assert!(latency_row(&stdout).is_some_and(|row| row.contains("no significant change")), "{stdout}");
    let regressed: Vec<&str> = stdout.lines().filter(|line| line.contains("REGRESSED")).collect();
    assert!(regressed.iter().all(|line| line.trim_start().starts_with("spin overshoot.")), "{stdout}");
    assert_eq!(code, i32::from(!regressed.is_empty()), "{stdout}");
}

/// The line of `text` that starts with `prefix` (after leading spaces or `| `).
fn line_of<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|line| line.trim_start_matches(['|', ' ']).starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with `{prefix}` in:\n{text}"))
}

#[test]
fn two_quickstart_runs_compare_clean_and_every_output_prints_the_same_p50() {
    let dir = tempfile::tempdir().unwrap();
    let mut summaries = Vec::new();
    for name in ["a", "b"] {
        let output = phasebench()
            .arg("run")
            .arg(root().join("scenarios/quickstart.yaml"))
            .arg("--out")
            .arg(dir.path().join(name))
            .output()
            .unwrap();
        // Its timing targets may miss on a loaded machine (exit 1); what this
        // test checks is the comparison and the figures, not the targets.
        assert!(matches!(status(&output), 0 | 1), "{}", String::from_utf8_lossy(&output.stdout));
        summaries.push(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let (code, stdout) = compare(&dir.path().join("a"), &dir.path().join("b"), &[]);
    assert_eq!(code, 0, "{stdout}");
    let results = store::load(&dir.path().join("a/results.json")).unwrap();
    let report = std::fs::read_to_string(dir.path().join("a/report.md")).unwrap();
    let mut checked = 0;
    for run in results.runs.iter().filter(|run| run.arm.is_none()) {
        for (name, metric) in run.metrics.iter().filter(|(_, m)| m.kind == MetricKind::Distribution) {
            let Some(summary) = metric.summary.filter(|s| s.count > 0) else { continue };
            let p50 = format_value(summary.p50, Dim::from(metric.dim));
            let compare_row = line_of(&stdout, &format!("{} {name}.p50 ", run.id));
            assert!(compare_row.contains(&p50), "compare prints another p50 than {p50}: {compare_row}");
            checked += 1;
            // service_time and time shares appear only in compare and the JSON.
            if name == "service_time" || metric.part_of.is_some() {
                continue;
            }
            let operation = format!("{} | {}.{} |", run.id, run.engine.name, run.op);
            let (summary_line, report_line) = if name == "latency" || name == "schedule_lag" {
                (line_of(&summaries[0], &format!("{} ", run.id)), line_of(&report, &operation))
            } else {
                (line_of(&summaries[0], &format!("{} ", run.id)), line_of(&report, &format!("- **{}**", run.id)))
            };
            let summary_line = if name == "latency" {
                summary_line
            } else {
                let section = &summaries[0][summaries[0].find(&format!("\n{} ", run.id)).unwrap()..];
                line_of(section, &format!("{name} "))
            };
            assert!(summary_line.contains(&p50), "the summary prints another {name} p50 than {p50}: {summary_line}");
            assert!(
                report_line.contains(&format!("p50 {p50}")) || report_line.contains(&format!("| {p50} |")),
                "report.md prints another {name} p50 than {p50}: {report_line}"
            );
        }
    }
    assert!(checked >= 6, "only {checked} metrics checked");
}
