//! The plain-text table printed after a run: per run p50, p99, mean,
//! throughput, errors; the engine's own metrics (p50, p99, mean with its
//! 95% interval); where the time went; and each target with its status.

use std::fmt::Write as _;

use crate::analysis::targets::TargetOutcome;
use crate::quantity::{format_value, Dim};
use crate::results::{Results, RunRecord, Summary};

/// Renders the end-of-run summary.
pub fn render(results: &Results, targets: &[TargetOutcome]) -> String {
    let header = ["run", "ops", "p50", "p99", "mean", "throughput", "errors"];
    let rows: Vec<[String; 7]> = results.runs.iter().map(row).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index == 0 {
                let _ = write!(text, "{cell:<width$}");
            } else {
                let _ = write!(text, "  {cell:>width$}");
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&header.map(String::from), &mut out);
    for (record, cells) in results.runs.iter().zip(&rows) {
        line(cells, &mut out);
        engine_metrics(record, &mut out);
        time_shares(record, &mut out);
        for outcome in targets.iter().filter(|t| t.run == record.id) {
            let status = if outcome.held { "PASS" } else { "FAIL" };
            let mut detail = format!("    {status}  {}  (measured {}", outcome.target, outcome.measured_text());
            if let Some(margin) = outcome.margin() {
                let _ = write!(detail, ", margin {:+.1}%", margin * 100.0);
            }
            detail.push(')');
            if let Some(problem) = &outcome.problem {
                let _ = write!(detail, " — {problem}");
            }
            let _ = writeln!(out, "{detail}");
        }
        if let Some(failure) = &record.failure {
            let _ = writeln!(out, "    note: {failure}");
        }
        for error in &record.error_messages {
            let _ = writeln!(out, "    error ×{}: {}", error.count, error.message);
        }
    }
    let held = targets.iter().filter(|t| t.held).count();
    let _ = writeln!(out);
    let _ = write!(out, "{} of {} runs", results.runs.len(), results.planned_runs);
    if results.interrupted {
        let _ = write!(out, " (interrupted)");
    }
    let _ = writeln!(out, "; targets: {held} of {} held", targets.len());
    out
}

/// Metrics the harness does not record itself: never `latency`,
/// `service_time` or scalars, and not the parts of another metric.
const HARNESS_METRICS: [&str; 2] = ["latency", "service_time"];

/// Per-run scalars of the harness, shown in the table's columns.
const HARNESS_SCALARS: [&str; 3] = ["throughput", "errors", "error_rate"];

/// One line per engine distribution metric (TTFT, decode rate, …): p50, p99
/// and the mean with the half-width of its 95% confidence interval.
fn engine_metrics(record: &RunRecord, out: &mut String) {
    let shown: Vec<(&String, Summary, Dim)> = record
        .metrics
        .iter()
        .filter(|(name, metric)| !HARNESS_METRICS.contains(&name.as_str()) && metric.part_of.is_none())
        .filter_map(|(name, metric)| Some((name, metric.summary.filter(|s| s.count > 0)?, Dim::from(metric.dim))))
        .collect();
    let scalars: Vec<String> = record
        .metrics
        .iter()
        .filter(|(name, metric)| {
            metric.kind == crate::engines::MetricKind::Scalar && !HARNESS_SCALARS.contains(&name.as_str())
        })
        .filter_map(|(name, metric)| Some(format!("{name} {}", format_value(metric.value?, Dim::from(metric.dim)))))
        .collect();
    if !scalars.is_empty() {
        let _ = writeln!(out, "    {}", scalars.join(", "));
    }
    let width = shown.iter().map(|(name, ..)| name.len()).max().unwrap_or(0);
    for (name, summary, dim) in shown {
        let _ = writeln!(
            out,
            "    {name:<width$}  p50 {}  p99 {}  mean {} ±{} (n={})",
            format_value(summary.p50, dim),
            format_value(summary.p99, dim),
            format_value(summary.mean, dim),
            match mean_half_width(&summary) {
                half if half.is_nan() => "?".into(),
                half => format_value(half, dim),
            },
            summary.count
        );
    }
}

/// 95% confidence half-width of a mean (Student's t, normal beyond 30 samples).
fn mean_half_width(summary: &Summary) -> f64 {
    const T95: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    if summary.count < 2 {
        return f64::NAN;
    }
    let freedom = (summary.count - 1) as usize;
    let t = T95.get(freedom - 1).copied().unwrap_or(1.96);
    t * summary.stddev / (summary.count as f64).sqrt()
}

/// `±x` with one decimal, or `±?` when one sample leaves it unknown.
fn plus_minus(value: f64) -> String {
    if value.is_nan() {
        "±?".into()
    } else if value < 0.05 {
        "±<0.1".into()
    } else {
        format!("±{value:.1}")
    }
}

/// Where the time of an operation went: each metric that is `part_of` the
/// latency, as a share of the mean latency with its uncertainty, the
/// remainder as `other`, and the largest named as the bottleneck.
fn time_shares(record: &RunRecord, out: &mut String) {
    let Some(whole) = record.metrics.get("latency").and_then(|m| m.summary).filter(|s| s.count > 0 && s.mean > 0.0)
    else {
        return;
    };
    let mut parts: Vec<(&str, Summary)> = record
        .metrics
        .iter()
        .filter(|(_, metric)| metric.part_of.as_deref() == Some("latency"))
        .filter_map(|(name, metric)| Some((name.as_str(), metric.summary.filter(|s| s.count > 0)?)))
        .collect();
    if parts.is_empty() {
        return;
    }
    parts.sort_by(|a, b| b.1.mean.total_cmp(&a.1.mean));
    let named: f64 = parts.iter().map(|(_, s)| s.mean).sum();
    // Relative uncertainty of a ratio of means: the two relative errors in quadrature.
    let relative = |part: &Summary| {
        let a = mean_half_width(part) / part.mean.max(f64::MIN_POSITIVE);
        let b = mean_half_width(&whole) / whole.mean;
        (a * a + b * b).sqrt()
    };
    let mut cells: Vec<String> = parts
        .iter()
        .map(|(name, part)| {
            let share = part.mean / whole.mean * 100.0;
            format!("{} {share:.1}% {}", name.trim_end_matches("_time"), plus_minus(share * relative(part)))
        })
        .collect();
    let other = (1.0 - named / whole.mean) * 100.0;
    cells.push(format!("other {other:.1}%"));
    let _ = writeln!(out, "    time shares of latency: {}", cells.join(", "));
    let _ = writeln!(out, "    bottleneck: {}", parts[0].0.trim_end_matches("_time"));
}

fn row(record: &RunRecord) -> [String; 7] {
    let latency = record.metrics.get("latency").and_then(|m| m.summary);
    let time = |pick: fn(&crate::results::Summary) -> f64| {
        latency.filter(|s| s.count > 0).map_or_else(|| "-".into(), |s| format_value(pick(&s), Dim::TIME))
    };
    let throughput = record
        .metrics
        .get("throughput")
        .and_then(|m| m.value)
        .map_or_else(|| "-".into(), |v| format_value(v, Dim::PER_TIME));
    [
        record.id.clone(),
        record.operations.to_string(),
        time(|s| s.p50),
        time(|s| s.p99),
        time(|s| s.mean),
        throughput,
        record.errors.to_string(),
    ]
}

/// The experiments' measured figures: for each arm, its metric in every
/// round and the median's change against the baseline's median. The
/// per-round values are the spread; significance tests belong to the
/// analysis stage.
pub fn experiments(results: &Results, experiments: &[crate::plan::ExperimentSpec]) -> String {
    let mut out = String::new();
    for experiment in experiments {
        let mut arms: Vec<(&str, Vec<f64>, Dim)> = Vec::new();
        for arm in &experiment.arms {
            let mut values = Vec::new();
            let mut dim = Dim::NONE;
            for run in results
                .runs
                .iter()
                .filter(|run| run.arm.as_ref().is_some_and(|a| a.experiment == experiment.name && &a.arm == arm))
            {
                if let Some(value) = crate::analysis::targets::metric_value(run, &experiment.metric) {
                    values.push(value);
                    dim = run.metrics.get(&experiment.metric.metric).map_or(Dim::NONE, |m| m.dim.into());
                }
            }
            arms.push((arm, values, dim));
        }
        if arms.iter().all(|(_, values, _)| values.is_empty()) {
            continue;
        }
        let _ = writeln!(out, "experiment {} ({}, per round):", experiment.name, experiment.metric);
        let baseline = arms.first().and_then(|(_, values, _)| median(values));
        for (arm, values, dim) in &arms {
            let rounds: Vec<String> = values.iter().map(|v| format_value(*v, *dim)).collect();
            let mut text = format!("    {arm:<12} {}", rounds.join("  "));
            if let (Some(base), Some(own)) = (baseline, median(values)) {
                if *arm != "baseline" && base != 0.0 {
                    let _ = write!(text, "   median {:+.1}% against baseline", (own / base - 1.0) * 100.0);
                }
            }
            let _ = writeln!(out, "{text}");
        }
    }
    out
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}
