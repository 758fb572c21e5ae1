//! Change points agree with MongoDB's `signal-processing-algorithms`, and the
//! distribution test finds a regression in the tail alone.
//!
//! The reference (`peers/changepoints/reference.json`) is that package's
//! output on a corpus of seeded series, written by
//! `peers/changepoints/reference.py`; where the package is installed
//! (`PHASEBENCH_REFERENCE_PYTHON` names a Python that has it, or `python3`
//! does), the script runs again and its output must match the committed one.

use std::path::Path;
use std::process::Command;

use hdrhistogram::Histogram;
use phasebench::analysis::changepoint::{e_divisive, split_statistics, Settings};
use phasebench::history::{self, Series, SeriesKey, StoredMetric, Test};
use phasebench::metric::Better;
use phasebench::quantity::Dim;
use phasebench::results::histogram::encode;
use phasebench::rng::SplitMix;
use serde_json::Value;

const REFERENCE: &str = "peers/changepoints/reference.json";

struct Case {
    name: String,
    rows: Vec<Vec<f64>>,
    settings: Settings,
    change_points: Vec<usize>,
    statistics: Vec<f64>,
}

fn cases(reference: &Value) -> Vec<Case> {
    let numbers =
        |value: &Value| -> Vec<f64> { value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect() };
    reference["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| Case {
            name: case["name"].as_str().unwrap().to_string(),
            rows: case["series"].as_array().unwrap().iter().map(numbers).collect(),
            settings: Settings {
                p_value: case["p_value"].as_f64().unwrap(),
                permutations: case["permutations"].as_u64().unwrap() as usize,
                ..Settings::default()
            },
            change_points: case["change_points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect(),
            statistics: numbers(&case["statistics"]),
        })
        .collect()
}

fn committed() -> Value {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(REFERENCE)).expect("reference");
    serde_json::from_str(&text).expect("reference JSON")
}

#[test]
fn change_points_equal_those_of_signal_processing_algorithms() {
    let cases = cases(&committed());
    assert!(cases.len() >= 15, "the corpus shrank to {}", cases.len());
    let mut differing = Vec::new();
    for case in &cases {
        let statistics = split_statistics(&case.rows);
        assert_eq!(statistics.len(), case.statistics.len(), "{}", case.name);
        for (tau, (ours, theirs)) in statistics.iter().zip(&case.statistics).enumerate() {
            assert!(
                (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1.0),
                "{}: split {tau}: {ours} against {theirs}",
                case.name
            );
        }
        let found: Vec<usize> = e_divisive(&case.rows, &case.settings).iter().map(|point| point.index).collect();
        if found != case.change_points {
            differing.push(format!("{}: ours {found:?}, theirs {:?}", case.name, case.change_points));
        }
    }
    assert!(differing.is_empty(), "change points differ:\n{}", differing.join("\n"));
}

/// The comparison catches a test that is not a test: with one shuffle per
/// permutation test a candidate passes whenever that shuffle scores lower,
/// and the change points part from the reference.
#[test]
fn the_comparison_catches_a_permutation_test_that_is_too_weak() {
    let cases = cases(&committed());
    let differing = cases
        .iter()
        .filter(|case| {
            let weak = Settings { permutations: 1, p_value: 0.5, ..case.settings };
            let found: Vec<usize> = e_divisive(&case.rows, &weak).iter().map(|point| point.index).collect();
            found != case.change_points
        })
        .count();
    assert!(differing >= 3, "only {differing} cases told the weak test apart");
}

/// Where the package is installed, its output today is the committed one.
#[test]
fn the_committed_reference_is_what_the_package_writes() {
    let python = std::env::var("PHASEBENCH_REFERENCE_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_package = Command::new(&python)
        .args(["-c", "import signal_processing_algorithms"])
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false);
    if !has_package {
        eprintln!(
            "signal-processing-algorithms is not installed for {python}: compared against the committed output only"
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/changepoints/reference.py");
    let output = Command::new(&python).arg(script).output().expect("reference script");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let fresh: Value = serde_json::from_slice(&output.stdout).expect("fresh reference JSON");
    let (fresh, committed) = (cases(&fresh), cases(&committed()));
    assert_eq!(fresh.len(), committed.len());
    for (now, then) in fresh.iter().zip(&committed) {
        assert_eq!(now.name, then.name);
        assert_eq!(now.rows, then.rows, "{}", now.name);
        assert_eq!(now.change_points, then.change_points, "{}", now.name);
    }
}

/// 30 runs of 20,000 latencies: lognormal-like around 1 ms; from run 20 the
/// slowest 1.5% take twice as long, so the p99 doubles and the median stays.
fn tail_regression_series(runs: usize, from: usize) -> Series {
    let mut rng = SplitMix::new(42);
    let stored = (0..runs)
        .map(|run| {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
            let mut samples: Vec<u64> = (0..20_000)
                .map(|_| {
                    // A sum of uniforms: near normal, in log space.
                    let z: f64 = (0..12).map(|_| rng.next_f64()).sum::<f64>() - 6.0;
                    (1_000_000.0 * (0.25 * z).exp()) as u64
                })
                .collect();
            samples.sort_unstable();
            let tail = samples.len() * 15 / 1000;
            let first_tail = samples.len() - tail;
            for (i, sample) in samples.iter_mut().enumerate() {
                if run >= from && i >= first_tail {
                    *sample *= 2;
                }
                histogram.record(*sample).unwrap();
            }
            StoredMetric {
                campaign: run as i64 + 1,
                started_at: format!("2026-12-01T00:{run:02}:00Z"),
                commit: format!("c{run:02}"),
                tags: Vec::new(),
                dim: Dim::TIME,
                better: Better::Lower,
                scale: Some(1e9),
                value: Some(histogram.value_at_quantile(0.5) as f64 / 1e9),
                histogram: Some(encode(&histogram).unwrap()),
            }
        })
        .collect();
    let key = SeriesKey { scenario: "tail".into(), run: "read".into(), metric: "latency".into() };
    Series::pool(key, stored)
}

#[test]
fn a_tail_only_regression_is_found_by_the_distribution_test_and_missed_by_the_median_test() {
    let series = tail_regression_series(30, 20);
    let p99_before = series.points[19].p99.unwrap();
    let p99_after = series.points[20].p99.unwrap();
    assert!(p99_after / p99_before > 1.8, "the p99 did not double: {p99_before} → {p99_after}");
    let changes = history::changes(&series, &Settings::default());
    let median: Vec<_> = changes.iter().filter(|change| change.test == Test::Median).collect();
    let distribution: Vec<_> = changes.iter().filter(|change| change.test == Test::Distribution).collect();
    assert!(median.is_empty(), "the median test saw a change the medians do not have: {median:?}");
    assert_eq!(distribution.len(), 1, "{distribution:?}");
    let found = distribution[0];
    assert_eq!(found.index, 20);
    assert!(found.regression && found.change > 0.8, "{found:?}");
    assert_eq!((found.from_commit.as_deref(), found.commit.as_str()), (Some("c19"), "c20"));
}

#[test]
fn an_unchanged_history_has_no_change_point_in_either_test() {
    let series = tail_regression_series(30, 30);
    assert_eq!(history::changes(&series, &Settings::default()).len(), 0);
}
