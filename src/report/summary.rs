//! The plain-text table printed after a run: per run p50, p99, mean,
//! throughput, errors, and each target with its status.

use std::fmt::Write as _;

use crate::analysis::targets::TargetOutcome;
use crate::quantity::{format_value, Dim};
use crate::results::{Results, RunRecord};

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
