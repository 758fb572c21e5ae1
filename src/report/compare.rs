//! `phasebench compare A B`: two saved runs side by side, benchstat-style,
//! for every run id and metric both hold.
//!
//! A distribution is compared through its per-operation samples: each
//! histogram is read back as 1,000 evenly spaced quantiles (a faithful
//! sample of the distribution at the histogram's 3-digit precision), and
//! those go through the same Mann-Whitney test and bootstrap as A/B
//! experiments. A scalar (throughput, ratio) is one value per run, so it
//! gets its change and no test.

use std::fmt::Write as _;

use serde::Serialize;

use crate::analysis::experiments::better;
use crate::analysis::stats::{self, CompareSettings, Comparison, Verdict};
use crate::engines::MetricKind;
use crate::quantity::{format_value, Dim};
use crate::results::{histogram, MetricRecord, Results};

/// Quantiles read from a histogram to stand for its samples.
const SAMPLES: usize = 1000;

/// One metric of one run in both results.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Run id.
    pub run: String,
    /// Metric (a distribution is compared on its median).
    pub metric: String,
    /// A's value (median or scalar), base units.
    pub a: f64,
    /// B's value.
    pub b: f64,
    /// Dimension, for formatting.
    #[serde(skip)]
    pub dim: Dim,
    /// b / a - 1.
    pub change: Option<f64>,
    /// The test, for distributions.
    pub comparison: Option<Comparison>,
}

impl Row {
    /// Whether this row is a significant regression.
    pub fn regressed(&self) -> bool {
        self.comparison.as_ref().is_some_and(|c| c.verdict == Verdict::Regressed)
    }
}

fn samples(metric: &MetricRecord) -> Option<Vec<f64>> {
    let histogram = histogram::decode(metric.histogram.as_ref()?).ok()?;
    let scale = metric.scale?;
    if histogram.is_empty() {
        return None;
    }
    let n = SAMPLES.min(histogram.len() as usize);
    Some((0..n).map(|i| histogram.value_at_quantile((i as f64 + 0.5) / n as f64) as f64 / scale).collect())
}

/// Every metric of every run id present in both, compared.
pub fn compare(a: &Results, b: &Results, settings: &CompareSettings) -> Vec<Row> {
    let mut rows = Vec::new();
    for run_a in &a.runs {
        let Some(run_b) = b.runs.iter().find(|run| run.id == run_a.id) else { continue };
        for (name, metric_a) in &run_a.metrics {
            let Some(metric_b) = run_b.metrics.get(name) else { continue };
            let dim = Dim::from(metric_a.dim);
            let row = match metric_a.kind {
                MetricKind::Distribution => {
                    let (Some(xs), Some(ys)) = (samples(metric_a), samples(metric_b)) else { continue };
                    let comparison = stats::compare(&xs, &ys, better(name, dim), settings);
                    let (Some(ma), Some(mb)) = (stats::median(&xs), stats::median(&ys)) else { continue };
                    Row {
                        run: run_a.id.clone(),
                        metric: format!("{name}.p50"),
                        a: ma,
                        b: mb,
                        dim,
                        change: comparison.as_ref().map(|c| c.change),
                        comparison,
                    }
                }
                MetricKind::Scalar => {
                    let (Some(va), Some(vb)) = (metric_a.value, metric_b.value) else { continue };
                    Row {
                        run: run_a.id.clone(),
                        metric: name.clone(),
                        a: va,
                        b: vb,
                        dim,
                        change: (va != 0.0).then(|| vb / va - 1.0),
                        comparison: None,
                    }
                }
            };
            rows.push(row);
        }
    }
    rows
}

/// The rows as a text table.
pub fn table(rows: &[Row], a_name: &str, b_name: &str) -> String {
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            let (interval, p, verdict) = match &row.comparison {
                Some(c) => (
                    format!("[{:+.1}%, {:+.1}%]", c.interval.0 * 100.0, c.interval.1 * 100.0),
                    format!("{:.3}", c.p_value),
                    c.verdict.text(),
                ),
                None => (String::new(), String::new(), "one value each: no test"),
            };
            [
                format!("{} {}", row.run, row.metric),
                format_value(row.a, row.dim),
                format_value(row.b, row.dim),
                row.change.map_or_else(|| "n/a".into(), |c| format!("{:+.1}%", c * 100.0)),
                interval,
                p,
                verdict.to_owned(),
            ]
        })
        .collect();
    let header = [
        "run metric".to_owned(),
        a_name.to_owned(),
        b_name.to_owned(),
        "change".into(),
        "95% CI".into(),
        "p".into(),
        "verdict".into(),
    ];
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index == 0 || index == 6 {
                let _ = write!(line, "{cell:<width$}  ");
            } else {
                let _ = write!(line, "{cell:>width$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}
