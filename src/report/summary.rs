//! The plain-text summary printed after a run, formatted from the
//! analysis: per run p50, p99, mean, throughput, errors and dropped work;
//! the engine's own metrics; where the time went; what makes a run's
//! figures doubtful; each target with the status analysis decided; and the
//! run's verdict.

use std::fmt::Write as _;

use crate::analysis::{Analysis, TargetStatus, Verdict};

/// Renders the end-of-run summary.
pub fn render(analysis: &Analysis) -> String {
    let header = ["run", "ops", "p50", "p99", "mean", "throughput", "errors", "dropped"];
    let rows: Vec<[String; 8]> = analysis
        .runs
        .iter()
        .map(|run| {
            [
                run.id.clone(),
                run.operations.to_string(),
                run.latency_p50.clone(),
                run.latency_p99.clone(),
                run.latency_mean.clone(),
                run.throughput.clone(),
                run.errors.to_string(),
                run.dropped.to_string(),
            ]
        })
        .collect();
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
    for (run, cells) in analysis.runs.iter().zip(&rows) {
        line(cells, &mut out);
        let width = run.metrics.iter().map(|metric| metric.name.len()).max().unwrap_or(0);
        for metric in &run.metrics {
            let _ = writeln!(out, "    {:<width$}  {}", metric.name, metric.text);
        }
        if run.schedule_lag != "-" {
            let _ = writeln!(out, "    schedule_lag  {}", run.schedule_lag);
        }
        if let Some(shares) = analysis.bottlenecks.iter().find(|shares| shares.run == run.id) {
            let mut cells: Vec<String> = shares
                .parts
                .iter()
                .map(|part| {
                    format!("{} {:.1}% {}", part.name, part.share * 100.0, plus_minus(part.uncertainty * 100.0))
                })
                .collect();
            cells.push(format!("other {:.1}%", shares.other * 100.0));
            let _ = writeln!(out, "    time shares of latency: {}", cells.join(", "));
            let _ = writeln!(out, "    bottleneck: {}", shares.bottleneck);
        }
        for warning in &run.warnings {
            let _ = writeln!(out, "    {}: {}", if warning.fails { "FAIL" } else { "note" }, warning.text);
        }
        for target in analysis.targets.iter().filter(|t| t.run == run.id) {
            let status = match &target.status {
                TargetStatus::Held => "PASS",
                TargetStatus::Missed => "FAIL",
                TargetStatus::NotJudged(_) => "NOT JUDGED",
                TargetStatus::Unknown(_) => "UNKNOWN",
            };
            let mut detail = format!("    {status}  {}  (measured {}", target.target, target.measured);
            if let Some(margin) = target.margin {
                let _ = write!(detail, ", margin {:+.1}%", margin * 100.0);
            }
            detail.push(')');
            if let Some(why) = &target.why {
                let _ = write!(detail, " — {why}");
            }
            let _ = writeln!(out, "{detail}");
        }
        for (message, count) in &run.error_messages {
            let _ = writeln!(out, "    error ×{count}: {message}");
        }
    }
    let _ = writeln!(out);
    let _ = write!(out, "{} of {} runs", analysis.runs.len(), analysis.planned_runs);
    if analysis.interrupted {
        let _ = write!(out, " (interrupted)");
    }
    let _ = write!(out, "; targets: {} of {} held", analysis.targets_held, analysis.targets_total);
    for (count, label) in [
        (analysis.targets_missed, "missed"),
        (analysis.targets_not_judged, "not judged"),
        (analysis.targets_unknown, "unknown"),
    ] {
        if count > 0 {
            let _ = write!(out, ", {count} {label}");
        }
    }
    let _ = writeln!(out);
    out
}

/// The run's verdict as the closing lines of the summary.
pub fn verdict(verdict: &Verdict) -> String {
    let mut out = String::new();
    match (verdict.passed, verdict.text.as_str()) {
        (true, "SMOKE RUN") => {
            let _ = writeln!(out, "SMOKE RUN: every run finished; targets are shown, not judged");
        }
        (true, text) => {
            let _ = writeln!(out, "{text}");
        }
        (false, text) => {
            let _ = writeln!(out, "{text}:");
            for reason in &verdict.reasons {
                let _ = writeln!(out, "  - {reason}");
            }
        }
    }
    out
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

/// The experiments' outcomes: each arm's metric per round and, for each
/// variant, the change of the metric's median against the baseline with its
/// bootstrap 95% interval, the Mann-Whitney p-value and the verdict; an
/// experiment over a matrix also gets its combined effect.
pub fn experiments(analysis: &Analysis) -> String {
    let mut out = String::new();
    for outcome in &analysis.experiments {
        if outcome.arms.iter().all(|arm| arm.values.is_empty()) {
            continue;
        }
        let point: Vec<String> = outcome.matrix.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let point = if point.is_empty() { String::new() } else { format!(" [{}]", point.join(", ")) };
        let _ = writeln!(out, "experiment {}{point} ({}, per round):", outcome.name, outcome.metric);
        for arm in &outcome.arms {
            let mut text = format!("    {:<12} {}", arm.name, arm.values_text.join("  "));
            if let Some(c) = &arm.comparison {
                let _ = write!(text, "   median {}, p={:.3}: {}", arm.change_text, c.p_value, c.verdict.text());
            }
            let _ = writeln!(out, "{text}");
        }
    }
    for effect in analysis.effects.iter().filter(|effect| effect.points > 1) {
        for variant in &effect.variants {
            let verdict = variant.comparison.as_ref().map_or("not measured", |c| c.verdict.text());
            let _ = writeln!(
                out,
                "experiment {} over {} points ({}): {} {}: {verdict}",
                effect.name, effect.points, effect.metric, variant.name, variant.change_text
            );
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
