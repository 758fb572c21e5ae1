//! Machine-readable renderings of an analysis: JSON (the analysis itself),
//! CSV (one row per run, metric and statistic, in base units), Bencher
//! Metric Format (one benchmark per run) and JUnit XML (one test case per
//! target, so CI systems show targets as tests).

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::charts::xml;
use crate::analysis::shares::mean_half_width;
use crate::analysis::{Analysis, TargetRow};
use crate::metric::MetricKind;
use crate::quantity::Dim;
use crate::results::Results;

/// The analysis as pretty JSON.
pub fn json(analysis: &Analysis) -> String {
    serde_json::to_string_pretty(analysis).unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
}

/// The base unit of a dimension, as CSV and BMF write it.
pub fn base_unit(dim: Dim) -> &'static str {
    match dim {
        d if d == Dim::TIME => "s",
        d if d == Dim::BYTES => "B",
        d if d == Dim::TOKENS => "tok",
        d if d == Dim::PER_TIME => "1/s",
        d if d == Dim::BYTE_RATE => "B/s",
        d if d == Dim::TOKEN_RATE => "tok/s",
        _ => "",
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// One row per run, metric and statistic, values in base units.
pub fn csv(results: &Results) -> String {
    let mut out = String::from("run,phase,workload,experiment,arm,round,metric,statistic,value,unit\n");
    for run in &results.runs {
        let (experiment, arm, round) = run.arm.as_ref().map_or((String::new(), String::new(), String::new()), |a| {
            (a.experiment.clone(), a.arm.clone(), a.round.to_string())
        });
        let prefix =
            [&run.id, &run.phase, &run.workload, &experiment, &arm, &round].map(|field| csv_field(field)).join(",");
        for (name, metric) in &run.metrics {
            let unit = base_unit(Dim::from(metric.dim));
            let rows: Vec<(&str, f64)> = match (metric.kind, metric.summary, metric.value) {
                (MetricKind::Scalar, _, Some(value)) => vec![("value", value)],
                (MetricKind::Distribution, Some(s), _) if s.count > 0 => vec![
                    ("count", s.count as f64),
                    ("mean", s.mean),
                    ("stddev", s.stddev),
                    ("min", s.min),
                    ("p50", s.p50),
                    ("p90", s.p90),
                    ("p95", s.p95),
                    ("p99", s.p99),
                    ("p999", s.p999),
                    ("max", s.max),
                ],
                _ => Vec::new(),
            };
            for (statistic, value) in rows {
                let unit = if statistic == "count" { "" } else { unit };
                let _ = writeln!(out, "{prefix},{},{statistic},{value},{unit}", csv_field(name));
            }
        }
    }
    out
}

/// Bencher Metric Format: per run, `latency` (mean in nanoseconds with its
/// 95% interval), `latency_p99`, `throughput`, and every engine scalar.
pub fn bmf(results: &Results) -> String {
    let mut benchmarks = Map::new();
    for run in &results.runs {
        let mut measures = Map::new();
        for (name, metric) in &run.metrics {
            let scale = if Dim::from(metric.dim) == Dim::TIME { 1e9 } else { 1.0 };
            match (metric.kind, metric.summary, metric.value) {
                (MetricKind::Distribution, Some(s), _) if s.count > 0 => {
                    let half = mean_half_width(&s);
                    let mut measure = json!({ "value": s.mean * scale });
                    if half.is_finite() {
                        measure["lower_value"] = json!((s.mean - half) * scale);
                        measure["upper_value"] = json!((s.mean + half) * scale);
                    }
                    measures.insert(name.clone(), measure);
                    measures.insert(format!("{name}_p99"), json!({ "value": s.p99 * scale }));
                }
                (MetricKind::Scalar, _, Some(value)) if value.is_finite() => {
                    measures.insert(name.clone(), json!({ "value": value * scale }));
                }
                _ => {}
            }
        }
        benchmarks.insert(run.id.clone(), Value::Object(measures));
    }
    serde_json::to_string_pretty(&Value::Object(benchmarks)).unwrap_or_default()
}

/// JUnit XML: one test suite per phase, one test case per target. A target
/// fails its test case exactly when it fails the run's verdict: missed,
/// unknown, or not judged outside a smoke run; a smoke run's targets are
/// skipped.
pub fn junit(analysis: &Analysis) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failed = |t: &TargetRow| !analysis.smoke && !t.status.held();
    let failures = analysis.targets.iter().filter(|t| failed(t)).count();
    let _ = writeln!(
        out,
        r#"<testsuites name="{}" tests="{}" failures="{failures}">"#,
        xml(&analysis.scenario.name),
        analysis.targets.len()
    );
    for phase in &analysis.phases {
        let targets: Vec<&TargetRow> = analysis.targets.iter().filter(|t| t.phase == phase.name).collect();
        let _ = writeln!(
            out,
            r#"  <testsuite name="{}" tests="{}" failures="{}">"#,
            xml(&phase.name),
            targets.len(),
            targets.iter().filter(|t| failed(t)).count()
        );
        for target in targets {
            let _ = write!(out, r#"    <testcase classname="{}" name="{}""#, xml(&target.run), xml(&target.target));
            if target.status.held() {
                out.push_str("/>\n");
            } else if failed(target) {
                let message = format!(
                    "{}: measured {}, limit {}{}",
                    target.status_text,
                    target.measured,
                    target.limit,
                    target.why.as_ref().map(|why| format!(" ({why})")).unwrap_or_default()
                );
                let _ = writeln!(out, r#"><failure message="{}"/></testcase>"#, xml(&message));
            } else {
                let why = target.why.as_deref().unwrap_or("smoke run");
                let _ = writeln!(out, r#"><skipped message="{}: {}"/></testcase>"#, target.status_text, xml(why));
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
