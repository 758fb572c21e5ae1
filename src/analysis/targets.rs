//! Target evaluation: does each run meet the conditions its workload set?
//!
//! This is the one place a target is judged. Every output — the summary,
//! each report and export, the exit status — reads the [`TargetStatus`]
//! decided here.

use serde::Serialize;

use crate::expr::{self, Comparison, MetricRef, Stat};
use crate::metric::{names, MetricKind};
use crate::quantity::{format_value, Dim};
use crate::results::{CapacityBound, Results, RunRecord, TargetRecord};

/// Operations a statistic needs before a target on it is judged: about
/// ten beyond the percentile, `10 / (1 - p)` (1,000 for p99), and ten for
/// a mean, a standard deviation or a per-run figure.
pub fn samples_needed(stat: Option<Stat>) -> u64 {
    match stat.and_then(Stat::quantile) {
        Some(q) => (10.0 / (1.0 - q)).round() as u64,
        None => match stat {
            Some(Stat::Min | Stat::Max | Stat::Count | Stat::Rate) => 1,
            _ => MIN_OPERATIONS,
        },
    }
}

/// Operations a mean or a per-run figure needs before it is judged.
pub const MIN_OPERATIONS: u64 = 10;

/// Where a target stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "why")]
pub enum TargetStatus {
    /// Measured, and the condition holds.
    Held,
    /// Measured, and the condition does not hold.
    Missed,
    /// Deliberately not judged: a smoke run, a run cut short, or too few
    /// samples for the statistic it names.
    NotJudged(String),
    /// Could not be computed (no such metric in the run, no successful
    /// operation, a division by zero).
    Unknown(String),
}

impl TargetStatus {
    /// One word or two for tables: `held`, `missed`, `not judged`, `unknown`.
    pub fn label(&self) -> &'static str {
        match self {
            TargetStatus::Held => "held",
            TargetStatus::Missed => "missed",
            TargetStatus::NotJudged(_) => "not judged",
            TargetStatus::Unknown(_) => "unknown",
        }
    }

    /// Why it was not judged or is unknown.
    pub fn why(&self) -> Option<&str> {
        match self {
            TargetStatus::NotJudged(why) | TargetStatus::Unknown(why) => Some(why),
            TargetStatus::Held | TargetStatus::Missed => None,
        }
    }

    /// Whether the target held.
    pub fn held(&self) -> bool {
        *self == TargetStatus::Held
    }
}

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
    /// Held, missed, not judged or unknown.
    pub status: TargetStatus,
}

impl TargetOutcome {
    /// The measured value for people, such as `53.1ms`.
    pub fn measured_text(&self) -> String {
        self.measured.map_or_else(|| "n/a".into(), |value| format_value(value, self.dim))
    }

    /// Relative headroom of a judged target: how far the measurement is
    /// from the limit, as a fraction of the limit (positive when it held).
    pub fn margin(&self) -> Option<f64> {
        let sign = match self.status {
            TargetStatus::Held => 1.0,
            TargetStatus::Missed => -1.0,
            TargetStatus::NotJudged(_) | TargetStatus::Unknown(_) => return None,
        };
        let (measured, limit) = (self.measured?, self.limit?);
        (limit != 0.0).then(|| sign * ((limit - measured) / limit.abs()).abs())
    }
}

/// Evaluates every target of every run.
pub fn evaluate(results: &Results) -> Vec<TargetOutcome> {
    results
        .runs
        .iter()
        .flat_map(|run| run.targets.iter().map(move |target| evaluate_one(run, target, results.smoke)))
        .collect()
}

/// Evaluates one target against one run; `smoke` runs are never judged.
pub fn evaluate_one(run: &RunRecord, target: &TargetRecord, smoke: bool) -> TargetOutcome {
    let mut outcome = TargetOutcome {
        run: run.id.clone(),
        target: target.text.clone(),
        measured: None,
        limit: None,
        dim: Dim::NONE,
        status: TargetStatus::Unknown(String::new()),
    };
    let comparison = match &target.parsed {
        Ok(comparison) => comparison,
        Err(why) => {
            outcome.status = TargetStatus::Unknown(why.clone());
            return outcome;
        }
    };
    let mut dim_of = |metric: &MetricRef| {
        run.metrics
            .get(&metric.metric)
            .map(|record| Dim::from(record.dim))
            .ok_or_else(|| (format!("no metric `{}` in this run", metric.metric), None))
    };
    match expr::check_comparison(comparison, &mut dim_of) {
        Ok(dim) => outcome.dim = dim,
        Err(error) => {
            outcome.status = TargetStatus::Unknown(error.message);
            return outcome;
        }
    }
    let mut value = |metric: &MetricRef| metric_value(run, metric);
    outcome.measured = expr::eval(&comparison.lhs, &mut value);
    outcome.limit = expr::eval(&comparison.rhs, &mut value);
    outcome.status = status(run, comparison, outcome.measured, outcome.limit, smoke);
    outcome
}

/// The status of a parsed, dimension-checked target with its two sides' values.
fn status(
    run: &RunRecord,
    comparison: &Comparison,
    measured: Option<f64>,
    limit: Option<f64>,
    smoke: bool,
) -> TargetStatus {
    if !run.complete {
        return match &run.failure {
            Some(failure) if run.operations == 0 => TargetStatus::Unknown(failure.clone()),
            _ => TargetStatus::NotJudged("the run did not finish".into()),
        };
    }
    // A capacity below the range has no value, only an upper bound.
    if !smoke {
        if let Some(status) = capacity_status(run, comparison) {
            return status;
        }
    }
    let (Some(measured), Some(limit)) = (measured, limit) else {
        return TargetStatus::Unknown(if run.operations == 0 {
            "the run measured no successful operation".into()
        } else {
            "a value could not be computed (division by zero?)".into()
        });
    };
    if smoke {
        return TargetStatus::NotJudged("smoke run: a few operations check the scenario, not the system".into());
    }
    if let Some(why) = too_few_samples(run, comparison) {
        return TargetStatus::NotJudged(why);
    }
    if comparison.op.holds(measured, limit) {
        TargetStatus::Held
    } else {
        TargetStatus::Missed
    }
}

/// The top of a capacity above the range searched: finite, so that
/// arithmetic on it stays finite.
const UNBOUNDED: f64 = 1e300;

/// A target naming a search's `capacity` is judged at both ends of the
/// capacity's 95% interval (above the range: from the highest load that held
/// up; below it: from zero to the lowest that missed). It holds when it holds
/// at both, is missed when missed at both, and is not judged when the
/// interval straddles its limit. `None` for a target that names no capacity.
fn capacity_status(run: &RunRecord, comparison: &Comparison) -> Option<TargetStatus> {
    let names_capacity = |side: &expr::Expr| side.metrics().iter().any(|m| m.metric == names::CAPACITY);
    if !names_capacity(&comparison.lhs) && !names_capacity(&comparison.rhs) {
        return None;
    }
    let search = run.search.as_ref()?;
    let capacity = &search.capacity;
    let (low, high) = match (capacity.bound, capacity.interval) {
        (CapacityBound::Within, Some([low, high])) => (low, high),
        (CapacityBound::AboveRange, _) => (capacity.highest_pass?, UNBOUNDED),
        (CapacityBound::BelowRange, _) => (0.0, capacity.lowest_fail?),
        _ => return Some(TargetStatus::Unknown("the search counted no probe".into())),
    };
    let holds_at = |load: f64| {
        let mut value = |metric: &MetricRef| {
            if metric.metric == names::CAPACITY {
                Some(load)
            } else {
                metric_value(run, metric)
            }
        };
        let (lhs, rhs) = (expr::eval(&comparison.lhs, &mut value)?, expr::eval(&comparison.rhs, &mut value)?);
        Some(comparison.op.holds(lhs, rhs))
    };
    let dim = super::capacity::load_dim(run);
    let end = |load: f64| {
        if load < UNBOUNDED {
            super::capacity::load_text(load, dim)
        } else {
            "beyond the range".into()
        }
    };
    Some(match (holds_at(low), holds_at(high)) {
        (Some(true), Some(true)) => TargetStatus::Held,
        (Some(false), Some(false)) => TargetStatus::Missed,
        _ => TargetStatus::NotJudged(format!(
            "the capacity's 95% interval, {} to {}, straddles the limit; a narrower one needs more probes near it",
            end(low),
            end(high)
        )),
    })
}

/// Why the run has too few samples for a statistic the target names, if it has.
fn too_few_samples(run: &RunRecord, comparison: &Comparison) -> Option<String> {
    let references = comparison.lhs.metrics().into_iter().chain(comparison.rhs.metrics());
    references
        .filter_map(|reference| {
            let record = run.metrics.get(&reference.metric)?;
            let (have, stat) = match record.kind {
                MetricKind::Distribution => (record.summary.map_or(0, |s| s.count), reference.stat),
                MetricKind::Scalar => (run.operations, None),
            };
            let need = samples_needed(stat);
            (have < need).then(|| {
                let what = match (record.kind, stat) {
                    (MetricKind::Distribution, Some(stat)) => format!("{}.{}", reference.metric, stat.name()),
                    _ => reference.metric.clone(),
                };
                format!("too few samples: {what} needs at least {need}, the run has {have}")
            })
        })
        .next()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_needed_follow_the_percentile() {
        let table = [
            (Some(Stat::P50), 20),
            (Some(Stat::P90), 100),
            (Some(Stat::P99), 1000),
            (Some(Stat::P999), 10_000),
            (Some(Stat::Mean), 10),
            (None, 10),
            (Some(Stat::Max), 1),
            (Some(Stat::Count), 1),
        ];
        for (stat, need) in table {
            assert_eq!(samples_needed(stat), need, "{stat:?}");
        }
    }
}
