//! Target evaluation: does each run meet the conditions its workload set?

use serde::Serialize;

use crate::dsl::expr::{self, MetricRef, Stat};
use crate::engines::MetricKind;
use crate::quantity::{format_value, Dim};
use crate::results::{Results, RunRecord};

/// The outcome of one target on one run.
#[derive(Clone, Debug, Serialize)]
pub struct TargetOutcome {
    /// Id of the run.
    pub run: String,
    /// The target as written.
    pub target: String,
    /// Measured left-hand side in base units, when it could be computed.
    pub measured: Option<f64>,
    /// Right-hand side in base units, when it could be computed.
    pub limit: Option<f64>,
    /// Dimension of both sides.
    #[serde(skip)]
    pub dim: Dim,
    /// Whether the target held; a target that cannot be computed did not hold.
    pub held: bool,
    /// Why it could not be computed, if so.
    pub problem: Option<String>,
}

impl TargetOutcome {
    /// The measured value for people, such as `53.1ms`.
    pub fn measured_text(&self) -> String {
        self.measured.map_or_else(|| "n/a".into(), |value| format_value(value, self.dim))
    }

    /// Relative headroom: how far the measurement is from the limit, as a
    /// fraction of the limit (positive when the target holds).
    pub fn margin(&self) -> Option<f64> {
        let (measured, limit) = (self.measured?, self.limit?);
        (limit != 0.0).then(|| {
            let gap = (limit - measured) / limit.abs();
            if self.held {
                gap.abs()
            } else {
                -gap.abs()
            }
        })
    }
}

/// Evaluates every target of every run.
pub fn evaluate(results: &Results) -> Vec<TargetOutcome> {
    results.runs.iter().flat_map(|run| run.targets.iter().map(move |target| evaluate_one(run, target))).collect()
}

/// Evaluates one target against one run.
pub fn evaluate_one(run: &RunRecord, target: &str) -> TargetOutcome {
    let mut outcome = TargetOutcome {
        run: run.id.clone(),
        target: target.into(),
        measured: None,
        limit: None,
        dim: Dim::NONE,
        held: false,
        problem: None,
    };
    let comparison = match expr::parse_comparison(target) {
        Ok(comparison) => comparison,
        Err(error) => {
            outcome.problem = Some(format!("target does not parse: {}", error.message));
            return outcome;
        }
    };
    let mut dim_of = |metric: &MetricRef| {
        run.metrics
            .get(&metric.metric)
            .map(|record| Dim::from(record.dim))
            .ok_or_else(|| (format!("no metric `{}` in this run", metric.metric), None))
    };
    match expr::check_comparison(&comparison, &mut dim_of) {
        Ok(dim) => outcome.dim = dim,
        Err(error) => {
            outcome.problem = Some(error.message);
            return outcome;
        }
    }
    let mut value = |metric: &MetricRef| metric_value(run, metric);
    outcome.measured = expr::eval(&comparison.lhs, &mut value);
    outcome.limit = expr::eval(&comparison.rhs, &mut value);
    match (outcome.measured, outcome.limit) {
        (Some(measured), Some(limit)) => {
            outcome.held = comparison.op.holds(measured, limit) && run.complete;
            if !run.complete {
                outcome.problem = Some("the run did not finish".into());
            }
        }
        _ => {
            outcome.problem = Some(if run.operations == 0 {
                "the run measured no successful operation".into()
            } else {
                "a value could not be computed (division by zero?)".into()
            });
        }
    }
    outcome
}

/// The value of a metric reference in base units.
pub fn metric_value(run: &RunRecord, metric: &MetricRef) -> Option<f64> {
    let record = run.metrics.get(&metric.metric)?;
    match record.kind {
        MetricKind::Scalar => record.value,
        MetricKind::Distribution => {
            let summary = record.summary.as_ref()?;
            if summary.count == 0 && metric.stat != Some(Stat::Count) {
                return None;
            }
            Some(match metric.stat.unwrap_or(Stat::Mean) {
                Stat::Min => summary.min,
                Stat::Max => summary.max,
                Stat::Mean => summary.mean,
                Stat::Stddev => summary.stddev,
                Stat::P50 => summary.p50,
                Stat::P90 => summary.p90,
                Stat::P95 => summary.p95,
                Stat::P99 => summary.p99,
                Stat::P999 => summary.p999,
                Stat::Count => summary.count as f64,
                Stat::Rate => {
                    let seconds = run.elapsed_seconds();
                    if seconds > 0.0 {
                        summary.count as f64 / seconds
                    } else {
                        return None;
                    }
                }
            })
        }
    }
}
