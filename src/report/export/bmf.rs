//! Bencher Metric Format: one benchmark per run, for bencher.dev and the
//! continuous-benchmarking tools that read it.

use serde_json::{json, Map, Value};

use crate::analysis::shares::mean_half_width;
use crate::metric::MetricKind;
use crate::quantity::Dim;
use crate::results::Results;

use crate::report::format::FormatDecl;

/// `--format bmf`.
pub static FORMAT: FormatDecl = FormatDecl { name: "bmf", help: "Bencher Metric Format", render: |inputs| Ok(bmf(inputs.results)) };

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
