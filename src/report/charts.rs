//! SVG charts for the HTML pages: for a run's report, drawn from the
//! analysis, latency percentile curves on HdrHistogram's "1/(1-p)" axis,
//! scaling curves of matrix workloads, A/B changes with their confidence
//! whiskers, and time shares; for the history page, a series' trend across
//! campaigns with its change points. Every text placed in a chart is
//! XML-escaped here, because the template inserts the SVG as markup.

use std::fmt::Write as _;

use crate::analysis::profiles::{MemoryPoint, MemorySummary};
use crate::analysis::stats::Verdict;
use crate::analysis::{Analysis, ExperimentOutcome, RunRow, Scaling, TimeShares};
use crate::history::{Change, Series, Test};
use crate::metric::Better;
use crate::quantity::{format_value, Dim};
use crate::results::ProbeOutcome;

/// One chart: a title and its SVG.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Chart {
    /// What it shows.
    pub title: String,
    /// The SVG element.
    pub svg: String,
}

/// Every chart of a report, by kind.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Charts {
    /// Latency percentile curves, one per phase.
    pub latency: Vec<Chart>,
    /// Scaling curves of matrix workloads.
    pub scaling: Vec<Chart>,
    /// A/B changes with intervals, one per experiment.
    pub experiments: Vec<Chart>,
    /// Time shares, one bar per run.
    pub shares: Vec<Chart>,
    /// Memory over time, one per memory profile, titled with the run id.
    pub memory: Vec<Chart>,
    /// Capacity searches: what the targets bound against load, one per search.
    pub capacity: Vec<Chart>,
}

const PALETTE: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 40.0;

/// Escapes text for XML content and attributes.
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn open(out: &mut String, width: f64, height: f64, label: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{}" font-family="sans-serif" font-size="11">"#,
        xml(label)
    );
}

fn text(out: &mut String, x: f64, y: f64, anchor: &str, content: &str) {
    let _ = write!(out, r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}">{}</text>"#, xml(content));
}

fn line(out: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64), style: &str) {
    let _ = write!(out, r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {style}/>"#);
}

/// Position on the percentile axis: log10 of 1/(1-p), so 90% → 1, 99% → 2.
fn nines(p: f64) -> f64 {
    (1.0 / (1.0 - p.min(0.999_999))).log10()
}

fn legend(out: &mut String, names: &[String]) {
    for (index, name) in names.iter().enumerate() {
        let y = TOP + 14.0 * index as f64 + 8.0;
        let x = WIDTH - RIGHT + 62.0;
        let colour = PALETTE[index % PALETTE.len()];
        let _ = write!(out, r#"<rect x="{x}" y="{:.1}" width="10" height="10" fill="{colour}"/>"#, y - 9.0);
        let shown: String = name.chars().take(26).collect();
        text(out, x + 14.0, y, "start", &shown);
    }
}

/// A y axis from 0 to `top` in `dim` units with five gridlines.
fn y_axis(out: &mut String, top: f64, dim: Dim) {
    for step in 0..=4 {
        let value = top * f64::from(step) / 4.0;
        let y = TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - f64::from(step) / 4.0);
        line(out, (LEFT, y), (WIDTH - RIGHT, y), r##"stroke="#ddd""##);
        text(out, LEFT - 6.0, y + 4.0, "end", &format_value(value, dim));
    }
}

fn scale_y(value: f64, top: f64) -> f64 {
    TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - if top > 0.0 { value / top } else { 0.0 })
}

/// A logarithmic y axis from `low` to `high` (both positive) in `dim`
/// units, with gridlines at 1, 2 and 5 times each power of ten; returns
/// the mapping from a value to its y position.
fn log_y_axis(out: &mut String, low: f64, high: f64, dim: Dim) -> impl Fn(f64) -> f64 {
    let (bottom, top) = (low.log10(), high.log10().max(low.log10() + 1e-9));
    let y = move |value: f64| {
        let position = (value.max(low).log10() - bottom) / (top - bottom);
        TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - position)
    };
    let decades = (top - bottom).ceil() as i32;
    let steps: &[f64] = if decades <= 2 { &[1.0, 2.0, 5.0] } else { &[1.0] };
    for exponent in bottom.floor() as i32..=top.ceil() as i32 {
        for step in steps {
            let value = step * 10f64.powi(exponent);
            if value < low || value > high {
                continue;
            }
            line(out, (LEFT, y(value)), (WIDTH - RIGHT, y(value)), r##"stroke="#ddd""##);
            text(out, LEFT - 6.0, y(value) + 4.0, "end", &format_value(value, dim));
        }
    }
    y
}

/// The latency percentile curves of `runs`, one line each, on log-log axes
/// (log 1/(1-p) across, log latency up) so that the body of each
/// distribution shows beside its outliers.
pub fn latency_curves(title: &str, runs: &[&RunRow]) -> Option<Chart> {
    let series: Vec<&RunRow> = runs.iter().copied().filter(|run| run.percentiles.len() >= 2).take(8).collect();
    if series.is_empty() {
        return None;
    }
    let values = || series.iter().flat_map(|run| run.percentiles.iter().map(|(_, v)| *v)).filter(|v| *v > 0.0);
    let high = values().fold(0.0, f64::max) * 1.2;
    let low = values().fold(f64::INFINITY, f64::min) / 1.2;
    if !(low.is_finite() && high > 0.0) {
        return None;
    }
    let max_nines =
        series.iter().flat_map(|run| run.percentiles.iter().map(|(p, _)| nines(*p))).fold(1.0_f64, f64::max).ceil();
    let x = |p: f64| LEFT + (WIDTH - LEFT - RIGHT) * nines(p) / max_nines;
    let mut out = String::new();
    open(&mut out, WIDTH, HEIGHT, title);
    let y = log_y_axis(&mut out, low, high, Dim::TIME);
    for n in 0..=max_nines as u32 {
        let p = 1.0 - 10f64.powi(-(n as i32));
        let label = if n == 0 { "0%".to_owned() } else { format!("{}%", format_percentile(p)) };
        let px = x(p);
        line(&mut out, (px, TOP), (px, HEIGHT - BOTTOM), r##"stroke="#eee""##);
        text(&mut out, px, HEIGHT - BOTTOM + 16.0, "middle", &label);
    }
    text(
        &mut out,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 6.0,
        "middle",
        "percentile (log 1/(1-p)); latency on a log scale",
    );
    for (index, run) in series.iter().enumerate() {
        let points: Vec<String> = run.percentiles.iter().map(|(p, v)| format!("{:.1},{:.1}", x(*p), y(*v))).collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            PALETTE[index % PALETTE.len()],
            points.join(" ")
        );
    }
    legend(&mut out, &series.iter().map(|run| run.id.clone()).collect::<Vec<_>>());
    out.push_str("</svg>");
    Some(Chart { title: title.to_owned(), svg: out })
}

fn format_percentile(p: f64) -> String {
    let text = format!("{:.5}", p * 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Reads one figure off a scaling point.
type Pick = fn(&crate::analysis::ScalingPoint) -> Option<f64>;

/// Throughput and latency p50/p99 of a matrix workload along its variable.
pub fn scaling(series: &Scaling) -> Option<Chart> {
    let count = series.points.len();
    if count < 2 {
        return None;
    }
    let title = format!("{}: throughput and latency by {}", series.workload, series.variable);
    let x = |index: usize| LEFT + (WIDTH - LEFT - RIGHT) * index as f64 / (count - 1) as f64;
    let mut out = String::new();
    open(&mut out, WIDTH, HEIGHT, &title);
    let throughput_top = series.points.iter().filter_map(|p| p.throughput).fold(0.0, f64::max) * 1.05;
    let latency_top = series.points.iter().filter_map(|p| p.p99.or(p.p50)).fold(0.0, f64::max) * 1.05;
    y_axis(&mut out, throughput_top, Dim::PER_TIME);
    for step in 0..=4 {
        let value = latency_top * f64::from(step) / 4.0;
        let y = TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - f64::from(step) / 4.0);
        text(&mut out, WIDTH - RIGHT + 4.0, y + 4.0, "start", &format_value(value, Dim::TIME));
    }
    for (index, point) in series.points.iter().enumerate() {
        text(&mut out, x(index), HEIGHT - BOTTOM + 16.0, "middle", &point.label);
    }
    text(&mut out, LEFT + (WIDTH - LEFT - RIGHT) / 2.0, HEIGHT - 6.0, "middle", &series.variable);
    let lines: [(&str, Pick, f64); 3] = [
        ("throughput (left)", |p| p.throughput, throughput_top),
        ("latency p50 (right)", |p| p.p50, latency_top),
        ("latency p99 (right)", |p| p.p99, latency_top),
    ];
    for (index, (_, pick, top)) in lines.iter().enumerate() {
        let points: Vec<String> = series
            .points
            .iter()
            .enumerate()
            .filter_map(|(i, point)| Some(format!("{:.1},{:.1}", x(i), scale_y(pick(point)?, *top))))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            PALETTE[index],
            points.join(" ")
        );
    }
    legend(&mut out, &lines.iter().map(|(name, ..)| (*name).to_owned()).collect::<Vec<_>>());
    out.push_str("</svg>");
    Some(Chart { title, svg: out })
}

/// Reads one figure off a memory sample.
type PickMemory = fn(&MemoryPoint) -> Option<f64>;

/// Resident memory and live-heap growth of one run over its measured part.
pub fn memory(profile: &MemorySummary) -> Option<Chart> {
    if profile.series.len() < 2 {
        return None;
    }
    let end = profile.series.iter().map(|(t, ..)| *t).fold(0.0, f64::max);
    if end <= 0.0 {
        return None;
    }
    let x = |t: f64| LEFT + (WIDTH - LEFT - RIGHT) * t / end;
    let mut out = String::new();
    open(&mut out, WIDTH, HEIGHT, &format!("memory of {}", profile.run));
    for step in 0..=4 {
        let t = end * f64::from(step) / 4.0;
        text(&mut out, x(t), HEIGHT - BOTTOM + 16.0, "middle", &format_value(t, Dim::TIME));
    }
    text(&mut out, LEFT + (WIDTH - LEFT - RIGHT) / 2.0, HEIGHT - 6.0, "middle", "time since measuring began");
    // Resident memory on the left axis and heap growth on the right, each
    // scaled to its own range so that a slope shows, not only the level.
    let lines: [(&str, PickMemory, bool); 2] =
        [("resident memory (left)", |s| s.1, true), ("live heap growth (right)", |s| s.2, false)];
    let mut names = Vec::new();
    for (name, pick, left) in &lines {
        let values: Vec<(f64, f64)> = profile.series.iter().filter_map(|s| Some((s.0, pick(s)?))).collect();
        if values.len() < 2 {
            continue;
        }
        let (low, high) = value_range(values.iter().map(|(_, v)| *v));
        for step in 0..=4 {
            let value = low + (high - low) * f64::from(step) / 4.0;
            let y = TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - f64::from(step) / 4.0);
            if *left {
                line(&mut out, (LEFT, y), (WIDTH - RIGHT, y), r##"stroke="#ddd""##);
                text(&mut out, LEFT - 6.0, y + 4.0, "end", &format_value(value, Dim::BYTES));
            } else {
                text(&mut out, WIDTH - RIGHT + 4.0, y + 4.0, "start", &format_value(value, Dim::BYTES));
            }
        }
        let y = |v: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - (v - low) / (high - low));
        let points: Vec<String> = values.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            // Coloured by its place in the legend, which skips missing lines.
            PALETTE[names.len() % PALETTE.len()],
            points.join(" ")
        );
        names.push((*name).to_owned());
    }
    // The steady part the verdict judges, shaded.
    if let Some(growth) = profile.rss_growth.as_ref().or(profile.heap_growth.as_ref()) {
        let (from, to) = (x(growth.growth.from), x(growth.growth.to));
        let _ = write!(
            out,
            r##"<rect x="{from:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="#888" fill-opacity="0.08"><title>{}</title></rect>"##,
            (to - from).max(0.0),
            HEIGHT - TOP - BOTTOM,
            xml(&format!("judged: {} ({})", growth.text, profile.verdict_text))
        );
    }
    legend(&mut out, &names);
    out.push_str("</svg>");
    Some(Chart { title: profile.run.clone(), svg: out })
}

/// A range around `values` with a margin, never empty: a flat series gets
/// ±1 MiB around its level (or ±1 byte when that is zero).
fn value_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !low.is_finite() || !high.is_finite() {
        return (0.0, 1.0);
    }
    let margin = ((high - low) * 0.1).max(if high == low { 1024.0 * 1024.0 } else { 0.0 });
    (low - margin, high + margin)
}

/// Each variant's change of the metric against the baseline with its 95% interval.
pub fn experiment(outcome: &ExperimentOutcome) -> Option<Chart> {
    let bars: Vec<(String, f64, f64, f64, Verdict)> = outcome
        .arms
        .iter()
        .filter_map(|arm| {
            let comparison = arm.comparison.as_ref()?;
            let (low, high) = comparison.interval;
            Some((arm.name.clone(), comparison.change, low, high, comparison.verdict))
        })
        .collect();
    if bars.is_empty() {
        return None;
    }
    let point: Vec<String> = outcome.matrix.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let title = format!(
        "{}: change of {} against the baseline{}",
        outcome.name,
        outcome.metric,
        if point.is_empty() { String::new() } else { format!(" [{}]", point.join(", ")) }
    );
    let extent = bars
        .iter()
        .flat_map(|(_, g, l, h, _)| [g.abs(), l.abs(), h.abs()])
        .filter(|v| v.is_finite())
        .fold(0.01_f64, f64::max)
        * 1.1;
    let row = 34.0;
    let height = TOP + BOTTOM + row * bars.len() as f64;
    let left = 150.0;
    let width = WIDTH - left - 40.0;
    let x = |value: f64| left + width * (value.clamp(-extent, extent) + extent) / (2.0 * extent);
    let mut out = String::new();
    open(&mut out, WIDTH, height, &title);
    for step in -2..=2 {
        let value = extent * f64::from(step) / 2.0;
        line(&mut out, (x(value), TOP), (x(value), height - BOTTOM), r##"stroke="#ddd""##);
        text(&mut out, x(value), height - BOTTOM + 16.0, "middle", &format!("{:+.1}%", value * 100.0));
    }
    line(&mut out, (x(0.0), TOP), (x(0.0), height - BOTTOM), r##"stroke="#333""##);
    text(
        &mut out,
        left + width / 2.0,
        height - 6.0,
        "middle",
        &format!(
            "change of the metric ({} is better); bar: change of medians, whisker: 95% interval",
            better_word(outcome)
        ),
    );
    for (index, (name, gain, low, high, verdict)) in bars.iter().enumerate() {
        let y = TOP + row * index as f64 + 8.0;
        let colour = match verdict {
            Verdict::Improved => "#2ca02c",
            Verdict::Regressed => "#d62728",
            _ => "#999",
        };
        let (from, to) = (x(0.0).min(x(*gain)), x(0.0).max(x(*gain)));
        let _ = write!(
            out,
            r#"<rect x="{from:.1}" y="{y:.1}" width="{:.1}" height="16" fill="{colour}"/>"#,
            (to - from).max(1.0)
        );
        line(&mut out, (x(*low), y + 8.0), (x(*high), y + 8.0), r##"stroke="#000" stroke-width="1.5""##);
        for end in [*low, *high] {
            line(&mut out, (x(end), y + 3.0), (x(end), y + 13.0), r##"stroke="#000" stroke-width="1.5""##);
        }
        let shown: String = name.chars().take(22).collect();
        text(&mut out, left - 8.0, y + 12.0, "end", &shown);
    }
    out.push_str("</svg>");
    Some(Chart { title, svg: out })
}

fn better_word(outcome: &ExperimentOutcome) -> &'static str {
    match outcome.better {
        crate::analysis::stats::Better::Lower => "lower",
        crate::analysis::stats::Better::Higher => "higher",
    }
}

/// One stacked bar per run: its time shares and the rest.
pub fn shares(all: &[TimeShares]) -> Option<Chart> {
    if all.is_empty() {
        return None;
    }
    let shown: Vec<&TimeShares> = all.iter().take(16).collect();
    let row = 26.0;
    let height = TOP + BOTTOM + row * shown.len() as f64;
    let left = 170.0;
    let width = WIDTH - left - RIGHT;
    let mut names: Vec<String> = Vec::new();
    for shares in &shown {
        for part in &shares.parts {
            if !names.contains(&part.name) {
                names.push(part.name.clone());
            }
        }
    }
    names.push("other".into());
    let title = "Where the time goes: shares of mean latency".to_owned();
    let mut out = String::new();
    open(&mut out, WIDTH, height, &title);
    for (index, shares) in shown.iter().enumerate() {
        let y = TOP + row * index as f64;
        let mut x = left;
        let segments = shares
            .parts
            .iter()
            .map(|part| (part.name.as_str(), part.share))
            .chain(std::iter::once(("other", shares.other.max(0.0))));
        for (name, share) in segments {
            let colour = PALETTE[names.iter().position(|n| n == name).unwrap_or(0) % PALETTE.len()];
            let w = width * share.clamp(0.0, 1.0);
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="18" fill="{colour}"><title>{} {:.1}%</title></rect>"#,
                xml(name),
                share * 100.0
            );
            x += w;
        }
        let label: String = shares.run.chars().take(26).collect();
        text(&mut out, left - 8.0, y + 13.0, "end", &label);
    }
    for step in 0..=4 {
        let px = left + width * f64::from(step) / 4.0;
        text(&mut out, px, height - BOTTOM + 16.0, "middle", &format!("{}%", step * 25));
    }
    legend(&mut out, &names);
    out.push_str("</svg>");
    Some(Chart { title, svg: out })
}

/// A capacity search's probes: each statistic a time target bounds (or
/// latency p99) against the load probed, both axes logarithmic, a point per
/// probe (filled where it held, a cross where it missed, hollow where it did
/// not count), the targets' limits as dashed lines, and the capacity as a
/// line in the shaded band of its 95% interval.
pub fn capacity(run: &RunRow) -> Option<Chart> {
    let search = run.search.as_ref()?;
    let loads: Vec<f64> = search.probes.iter().map(|probe| probe.load).filter(|load| *load > 0.0).collect();
    let values = search.series.iter().flat_map(|s| s.values.iter().flatten().copied()).filter(|v| *v > 0.0);
    let limits = search.series.iter().filter_map(|s| s.limit).filter(|v| *v > 0.0);
    let (low_value, high_value) = extent(values.chain(limits))?;
    let marks = search.interval.into_iter().flatten().chain(search.capacity).filter(|v| *v > 0.0);
    let (low_load, high_load) = extent(loads.iter().copied().chain(marks))?;
    let (left, right) = ((low_load / 1.15).log10(), (high_load * 1.15).log10());
    let x = |load: f64| LEFT + (WIDTH - RIGHT - LEFT) * (load.log10() - left) / (right - left).max(1e-9);
    let mut out = String::new();
    let title = format!(
        "{}: {} against load",
        run.id,
        search.series.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    open(&mut out, WIDTH, HEIGHT, &title);
    let y = log_y_axis(&mut out, low_value / 1.5, high_value * 1.5, Dim::TIME);
    let (plot_top, plot_bottom) = (TOP, HEIGHT - BOTTOM);
    if let Some([low, high]) = search.interval {
        let (x1, x2) = (x(low.max(low_load / 1.15)), x(high.min(high_load * 1.15)));
        let _ = write!(
            out,
            r##"<rect x="{x1:.1}" y="{plot_top:.1}" width="{:.1}" height="{:.1}" fill="#2ca02c" fill-opacity="0.12"/>"##,
            (x2 - x1).max(1.0),
            plot_bottom - plot_top
        );
    }
    if let Some(capacity) = search.capacity {
        line(&mut out, (x(capacity), plot_top), (x(capacity), plot_bottom), r##"stroke="#2ca02c" stroke-width="2""##);
        text(
            &mut out,
            x(capacity) + 4.0,
            plot_top + 12.0,
            "start",
            &format!("capacity {}", format_load(capacity, search.dim)),
        );
    }
    for (index, series) in search.series.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        if let Some(limit) = series.limit {
            line(
                &mut out,
                (LEFT, y(limit)),
                (WIDTH - RIGHT, y(limit)),
                &format!(r#"stroke="{colour}" stroke-dasharray="6 4""#),
            );
        }
        let mut points: Vec<(f64, f64)> = search
            .probes
            .iter()
            .zip(&series.values)
            .filter_map(|(probe, value)| Some((probe.load, (*value)?)))
            .filter(|(load, value)| *load > 0.0 && *value > 0.0)
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> =
            points.iter().map(|(load, value)| format!("{:.1},{:.1}", x(*load), y(*value))).collect();
        let _ = write!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-opacity="0.35"/>"#,
            path.join(" ")
        );
        for (probe, value) in search.probes.iter().zip(&series.values) {
            let Some(value) = value.filter(|v| *v > 0.0) else { continue };
            let (px, py) = (x(probe.load), y(value));
            match probe.outcome_kind {
                ProbeOutcome::Pass => {
                    let _ = write!(out, r#"<circle cx="{px:.1}" cy="{py:.1}" r="3.5" fill="{colour}"/>"#);
                }
                ProbeOutcome::Fail => {
                    let style = format!(r#"stroke="{colour}" stroke-width="2""#);
                    line(&mut out, (px - 4.0, py - 4.0), (px + 4.0, py + 4.0), &style);
                    line(&mut out, (px - 4.0, py + 4.0), (px + 4.0, py - 4.0), &style);
                }
                ProbeOutcome::Lagged | ProbeOutcome::NotJudged => {
                    let _ = write!(out, r#"<circle cx="{px:.1}" cy="{py:.1}" r="3.5" fill="none" stroke="{colour}"/>"#);
                }
            }
        }
    }
    line(&mut out, (LEFT, plot_bottom), (WIDTH - RIGHT, plot_bottom), r##"stroke="#888""##);
    let first = left.floor() as i32;
    let steps: &[f64] = if right - left < 1.0 { &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0] } else { &[1.0, 2.0, 5.0] };
    for exponent in first..=right.ceil() as i32 {
        for &step in steps {
            let load = step * 10f64.powi(exponent);
            if load.log10() < left || load.log10() > right {
                continue;
            }
            text(&mut out, x(load), plot_bottom + 16.0, "middle", &format_load(load, search.dim));
        }
    }
    let axis = if search.axis == "concurrency" { "workers" } else { "offered load" };
    text(&mut out, (LEFT + WIDTH - RIGHT) / 2.0, HEIGHT - 6.0, "middle", axis);
    let names: Vec<String> = search
        .series
        .iter()
        .map(|s| if s.target.is_empty() { s.name.clone() } else { format!("{} (limit dashed)", s.name) })
        .collect();
    legend(&mut out, &names);
    let key_x = WIDTH - RIGHT + 62.0;
    let key_y = TOP + 14.0 * names.len() as f64 + 14.0;
    for (index, key) in ["● held", "✕ missed", "○ lagged or not judged", "shaded: 95% interval"].iter().enumerate()
    {
        text(&mut out, key_x, key_y + 14.0 * index as f64, "start", key);
    }
    out.push_str("</svg>");
    Some(Chart { title, svg: out })
}

/// Colour of a change point: red for the worse, green for the better.
fn change_colour(change: &Change) -> &'static str {
    if change.regression {
        "#d62728"
    } else {
        "#2ca02c"
    }
}

/// How a chart labels a change point: `median test +12.3%, p = 0.004`.
pub fn change_label(change: &Change) -> String {
    format!("{} test {:+.1}%, {}", test_name(change.test), change.change * 100.0, p_text(change.p_value))
}

/// A permutation p-value as pages print it: `p = 0.004`, or `p < 0.001`
/// below that (with 1,000 shuffles: when at most one scored as high), where
/// three decimals would print a p of 0.000 that no test can show.
pub fn p_text(p_value: f64) -> String {
    if p_value < 0.001 {
        "p < 0.001".to_owned()
    } else {
        format!("p = {p_value:.3}")
    }
}

/// The name of the test that found a change, as pages print it.
pub fn test_name(test: Test) -> &'static str {
    match test {
        Test::Median => "median",
        Test::Distribution => "distribution",
    }
}

/// One line of a trend chart: its name, its colour, and its points as
/// (campaign order, value).
type TrendLine = (&'static str, &'static str, Vec<(usize, f64)>);

/// A series across campaigns, oldest first: its medians (or values), its
/// p99s when it is a distribution, each change point as a dashed line
/// labelled with its test, change and p-value (red for the worse, green
/// for the better), and a ring around each tagged campaign. The y axis
/// starts at zero, unless the values span more than ten times, when it is
/// logarithmic so that the median shows beside the p99.
pub fn trend(series: &Series, changes: &[Change]) -> Option<Chart> {
    let points = &series.points;
    if points.is_empty() {
        return None;
    }
    let key = &series.key;
    let title = format!("{} / {} / {}", key.scenario, key.run, key.metric);
    let distribution = points.iter().any(|point| point.p99.is_some());
    let values = points.iter().flat_map(|point| [Some(point.value), point.p99]).flatten().filter(|v| v.is_finite());
    let (low, high) = extent(values)?;
    // The change points' labels take a band above the plot, one row each,
    // so that they cover neither the data nor one another.
    let band = if changes.is_empty() { 0.0 } else { 13.0 * changes.len() as f64 + 4.0 };
    let mut out = String::new();
    open(&mut out, WIDTH, HEIGHT + band, &format!("{title}: trend across campaigns"));
    let _ = write!(out, r#"<g transform="translate(0 {band})">"#);
    let y: Box<dyn Fn(f64) -> f64> = if low > 0.0 && high / low > 10.0 {
        Box::new(log_y_axis(&mut out, low / 1.2, high * 1.2, series.dim))
    } else {
        let top = if high > 0.0 { high * 1.05 } else { 1.0 };
        y_axis(&mut out, top, series.dim);
        Box::new(move |value: f64| scale_y(value.max(0.0), top))
    };
    let count = points.len();
    let x = |index: usize| {
        if count == 1 {
            LEFT + (WIDTH - LEFT - RIGHT) / 2.0
        } else {
            LEFT + (WIDTH - LEFT - RIGHT) * index as f64 / (count - 1) as f64
        }
    };
    let plot_bottom = HEIGHT - BOTTOM;
    line(&mut out, (LEFT, plot_bottom), (WIDTH - RIGHT, plot_bottom), r##"stroke="#888""##);
    // About fifteen campaign numbers fit under the axis; the newest is always one.
    let every = count.div_ceil(15).max(1);
    for (index, point) in points.iter().enumerate() {
        if index % every == (count - 1) % every {
            text(&mut out, x(index), plot_bottom + 16.0, "middle", &point.campaign.to_string());
        }
    }
    let better = match series.better {
        Better::Lower => "lower",
        Better::Higher => "higher",
    };
    text(
        &mut out,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 6.0,
        "middle",
        &format!("campaign, oldest first ({better} is better)"),
    );
    for (row, change) in changes.iter().enumerate() {
        let index = change.index;
        if index >= count {
            continue;
        }
        let colour = change_colour(change);
        let kind = if change.regression { "regression" } else { "improvement" };
        let px = x(index);
        // The line rises from the plot's foot to its label's row.
        let label_y = 13.0 * row as f64 + 12.0 - band;
        let line_top = label_y - 10.0;
        let _ = write!(
            out,
            r#"<line class="change {kind}" data-campaign="{}" data-test="{}" x1="{px:.1}" y1="{line_top:.1}" x2="{px:.1}" y2="{plot_bottom:.1}" stroke="{colour}" stroke-width="1.5" stroke-dasharray="5 4"/>"#,
            change.campaign,
            test_name(change.test)
        );
        // Beside the line, on its left where the right has no room.
        let label = change_label(change);
        let room = WIDTH - 4.0 - px;
        let (label_x, anchor) =
            if room > 6.5 * label.chars().count() as f64 { (px + 4.0, "start") } else { (px - 4.0, "end") };
        let _ = write!(
            out,
            r##"<text class="change-label" x="{label_x:.1}" y="{label_y:.1}" text-anchor="{anchor}" fill="{colour}" stroke="#fff" stroke-width="3" paint-order="stroke">{}</text>"##,
            xml(&label)
        );
    }
    // Blue and orange: red and green mean a change's direction here.
    let mut lines: Vec<TrendLine> = vec![(
        if distribution { "median" } else { "value" },
        "#1f77b4",
        points.iter().enumerate().map(|(index, point)| (index, point.value)).collect(),
    )];
    if distribution {
        lines.push(("p99", "#ff7f0e", points.iter().enumerate().filter_map(|(i, p)| Some((i, p.p99?))).collect()));
    }
    for (name, colour, values) in &lines {
        let path: Vec<String> = values.iter().map(|(i, v)| format!("{:.1},{:.1}", x(*i), y(*v))).collect();
        let _ = write!(
            out,
            r#"<polyline class="{name}" fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for (index, value) in values {
            let point = &points[*index];
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"><title>{}</title></circle>"#,
                x(*index),
                y(*value),
                xml(&format!("campaign {}: {name} {}", point.campaign, format_value(*value, series.dim)))
            );
        }
    }
    for (index, point) in points.iter().enumerate().filter(|(_, point)| !point.tags.is_empty()) {
        let _ = write!(
            out,
            r##"<circle class="tagged" data-campaign="{}" cx="{:.1}" cy="{:.1}" r="6" fill="none" stroke="#9467bd" stroke-width="2"><title>{}</title></circle>"##,
            point.campaign,
            x(index),
            y(point.value),
            xml(&format!("campaign {}: {}", point.campaign, point.tags.join(", ")))
        );
    }
    let key_x = WIDTH - RIGHT + 62.0;
    for (index, (name, colour, _)) in lines.iter().enumerate() {
        let y = TOP + 14.0 * index as f64 + 8.0;
        let _ = write!(out, r#"<rect x="{key_x}" y="{:.1}" width="10" height="10" fill="{colour}"/>"#, y - 9.0);
        text(&mut out, key_x + 14.0, y, "start", name);
    }
    let key_y = TOP + 14.0 * lines.len() as f64 + 14.0;
    let keys = [
        ("#d62728", "dashed: change for the worse"),
        ("#2ca02c", "dashed: change for the better"),
        ("#9467bd", "ring: tagged campaign"),
    ];
    for (index, (colour, key)) in keys.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text x="{key_x:.1}" y="{:.1}" fill="{colour}">{}</text>"#,
            key_y + 14.0 * index as f64,
            xml(key)
        );
    }
    out.push_str("</g></svg>");
    Some(Chart { title, svg: out })
}

/// The smallest and largest of `values`, if there are any.
fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    (low.is_finite() && high.is_finite()).then_some((low, high))
}

/// A load on the chart's axis: a rate, or a number of workers.
fn format_load(load: f64, dim: Dim) -> String {
    format_value(load, dim)
}

/// Every chart of an analysis.
pub fn all(analysis: &Analysis) -> Charts {
    let mut charts = Charts::default();
    let mut phases: Vec<&str> = Vec::new();
    for run in analysis.runs.iter().filter(|run| run.arm.is_none()) {
        if !phases.contains(&run.phase.as_str()) {
            phases.push(&run.phase);
        }
    }
    for phase in phases {
        let runs: Vec<&RunRow> = analysis.runs.iter().filter(|r| r.arm.is_none() && r.phase == phase).collect();
        for (index, group) in runs.chunks(8).enumerate() {
            let title = if index == 0 {
                format!("{phase}: latency by percentile")
            } else {
                format!("{phase}: latency by percentile ({})", index + 1)
            };
            charts.latency.extend(latency_curves(&title, group));
        }
    }
    charts.scaling = analysis.scaling.iter().filter_map(scaling).collect();
    charts.experiments = analysis.experiments.iter().filter_map(experiment).collect();
    charts.shares = shares(&analysis.bottlenecks).into_iter().collect();
    charts.memory = analysis.profiles.memory.iter().filter_map(memory).collect();
    charts.capacity = analysis.runs.iter().filter_map(capacity).collect();
    charts
}
