//! The plain-text table printed after a run: per run p50, p99, mean,
//! throughput, errors; the engine's own metrics (p50, p99, mean with its
//! 95% interval); where the time went; and each target with its status.

use std::fmt::Write as _;

use crate::analysis::shares::mean_half_width;
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

/// Where the time of an operation went, and the bottleneck.
fn time_shares(record: &RunRecord, out: &mut String) {
    let Some(shares) = crate::analysis::shares::of_run(record) else { return };
    let mut cells: Vec<String> = shares
        .parts
        .iter()
        .map(|part| format!("{} {:.1}% {}", part.name, part.share * 100.0, plus_minus(part.uncertainty * 100.0)))
        .collect();
    cells.push(format!("other {:.1}%", shares.other * 100.0));
    let _ = writeln!(out, "    time shares of latency: {}", cells.join(", "));
    let _ = writeln!(out, "    bottleneck: {}", shares.bottleneck);
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

/// The experiments' outcomes: each arm's metric per round and, for each
/// variant, the median's change against the baseline with its bootstrap
/// 95% interval, the Mann-Whitney p-value and the verdict.
pub fn experiments(outcomes: &[crate::analysis::ExperimentOutcome]) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        if outcome.arms.iter().all(|arm| arm.values.is_empty()) {
            continue;
        }
        let point: Vec<String> = outcome.matrix.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let point = if point.is_empty() { String::new() } else { format!(" [{}]", point.join(", ")) };
        let _ = writeln!(out, "experiment {}{point} ({}, per round):", outcome.name, outcome.metric);
        for arm in &outcome.arms {
            let mut text = format!("    {:<12} {}", arm.name, arm.values_text.join("  "));
            if let Some(c) = &arm.comparison {
                let verdict = c.verdict.text();
                let _ = write!(
                    text,
                    "   median {:+.1}% [{:+.1}%, {:+.1}%], p={:.3}: {verdict}",
                    c.change * 100.0,
                    c.interval.0 * 100.0,
                    c.interval.1 * 100.0,
                    c.p_value
                );
            }
            let _ = writeln!(out, "{text}");
        }
    }
    out
}

/// One line per profile: where the flame graph is, what the hottest frame
/// is, and each memory profile's growth and verdict.
pub fn profiles(profiles: &crate::analysis::Profiles, folder: &std::path::Path) -> String {
    let mut out = String::new();
    for cpu in &profiles.cpu {
        let hottest = cpu
            .hottest
            .first()
            .map(|frame| format!(", hottest {} ({:.1}% own)", short_frame(&frame.frame), frame.own * 100.0))
            .unwrap_or_default();
        let graph = match &cpu.flamegraph {
            Some(file) => format!("; flame graph {}", folder.join(file).display()),
            None => "; no flame graph (the run was shorter than one sampling period of CPU time)".into(),
        };
        let _ = writeln!(out, "cpu profile {}: {} samples{hottest}{graph}", cpu.run, cpu.samples);
    }
    for memory in &profiles.memory {
        let mut parts = Vec::new();
        if let Some(peak) = &memory.heap_peak {
            parts.push(format!("heap peak +{peak}"));
        }
        if let Some(allocated) = &memory.allocated {
            parts.push(format!("allocated {allocated}"));
        }
        if let Some(peak) = &memory.rss_peak {
            parts.push(format!("rss peak {peak}"));
        }
        if let Some(growth) = &memory.rss_growth {
            parts.push(format!("rss {}", growth.text));
        }
        let _ = writeln!(out, "memory profile {}: {}; {}", memory.run, parts.join(", "), memory.verdict_text);
    }
    for (run, problem) in &profiles.problems {
        let _ = writeln!(out, "profile {run}: {problem}");
    }
    out
}

/// The last path segment of a function name, for one-line summaries.
fn short_frame(frame: &str) -> &str {
    // Generic arguments hold `::` too; cut at the last `::` outside `<…>`.
    let mut depth = 0i32;
    let mut cut = 0;
    let bytes = frame.as_bytes();
    for (index, byte) in bytes.iter().enumerate() {
        match byte {
            b'<' => depth += 1,
            b'>' => depth -= 1,
            b':' if depth == 0 && index + 1 < bytes.len() && bytes[index + 1] == b':' => cut = index + 2,
            _ => {}
        }
    }
    &frame[cut.min(frame.len())..]
}
