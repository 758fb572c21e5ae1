//! CSV: one row per run, metric and statistic, values in base units.

use std::fmt::Write as _;

use crate::metric::MetricKind;
use crate::quantity::Dim;
use crate::results::Results;

use crate::report::format::FormatDecl;

/// `--format csv`.
pub static FORMAT: FormatDecl = FormatDecl { name: "csv", help: "One row per run, metric and statistic", render: |inputs| Ok(csv(inputs.results)) };

/// The base unit of a dimension, as CSV writes it.
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
