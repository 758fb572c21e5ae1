//! A/B outcomes: for each experiment (and each matrix point of its
//! workload), every arm's metric per round, its median, and each variant
//! compared with the baseline (relative change, bootstrap interval,
//! Mann-Whitney p-value, verdict).

use indexmap::IndexMap;
use serde::Serialize;

use super::stats::{self, Better, CompareSettings, Comparison, Verdict};
use crate::dsl::expr::{self, Expr, MetricRef};
use crate::quantity::{format_value, Dim};
use crate::results::{ExperimentRecord, Results, RunRecord};

/// One arm of one experiment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArmOutcome {
    /// Arm name; `baseline` first.
    pub name: String,
    /// The metric in each round, in base units.
    pub values: Vec<f64>,
    /// The same, for people.
    pub values_text: Vec<String>,
    /// Median over rounds.
    pub median: Option<f64>,
    /// The median for people.
    pub median_text: String,
    /// Against the baseline (variants only).
    pub comparison: Option<Comparison>,
}

/// One experiment at one matrix point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExperimentOutcome {
    /// Experiment name.
    pub name: String,
    /// The workload it reruns.
    pub workload: String,
    /// The matrix point, empty without a matrix.
    pub matrix: IndexMap<String, String>,
    /// The metric as written.
    pub metric: String,
    /// Which way is better for it.
    pub better: Better,
    /// Its dimension, for formatting.
    #[serde(skip)]
    pub dim: Dim,
    /// The arms, baseline first.
    pub arms: Vec<ArmOutcome>,
    /// The variant with the largest significant improvement, if any.
    pub best: Option<String>,
}

/// Which way is better for a metric: rates up; times, sizes and anything
/// counting errors, waits, misses or amplification down; other plain
/// numbers (ratios, hit rates, utilization) up.
pub fn better(metric: &str, dim: Dim) -> Better {
    if dim.time < 0 {
        return Better::Higher;
    }
    if dim == Dim::TIME || dim == Dim::BYTES {
        return Better::Lower;
    }
    const LOWER: [&str; 7] = ["error", "amplification", "lock", "wait", "miss", "dropped", "syncs"];
    if LOWER.iter().any(|word| metric.contains(word)) {
        Better::Lower
    } else {
        Better::Higher
    }
}

fn metric_ref(text: &str) -> Option<MetricRef> {
    match expr::parse_expr(text) {
        Ok(Expr::Metric(metric, _)) => Some(metric),
        _ => None,
    }
}

/// Every experiment's outcome, per matrix point, compared with `settings`.
pub fn analyse(results: &Results, settings: &CompareSettings) -> Vec<ExperimentOutcome> {
    results.experiments.iter().flat_map(|experiment| analyse_one(results, experiment, settings)).collect()
}

fn analyse_one(results: &Results, experiment: &ExperimentRecord, settings: &CompareSettings) -> Vec<ExperimentOutcome> {
    let Some(metric) = metric_ref(&experiment.metric) else { return Vec::new() };
    let runs: Vec<&RunRecord> = results
        .runs
        .iter()
        .filter(|run| run.arm.as_ref().is_some_and(|arm| arm.experiment == experiment.name))
        .collect();
    let mut points: Vec<IndexMap<String, String>> = Vec::new();
    for run in &runs {
        if !points.contains(&run.matrix) {
            points.push(run.matrix.clone());
        }
    }
    let mut outcomes = Vec::new();
    for point in points {
        let dim = runs
            .iter()
            .find_map(|run| run.metrics.get(&metric.metric))
            .map_or(Dim::NONE, |record| Dim::from(record.dim));
        let better = better(&metric.metric, dim);
        let values_of = |arm: &str| -> Vec<f64> {
            let mut rounds: Vec<(u32, f64)> = runs
                .iter()
                .filter(|run| run.matrix == point && run.arm.as_ref().is_some_and(|a| a.arm == arm))
                .filter_map(|run| Some((run.arm.as_ref()?.round, super::targets::metric_value(run, &metric)?)))
                .collect();
            rounds.sort_by_key(|(round, _)| *round);
            rounds.into_iter().map(|(_, value)| value).collect()
        };
        let baseline = values_of("baseline");
        let arms: Vec<ArmOutcome> = experiment
            .arms
            .iter()
            .map(|arm| {
                let values = values_of(arm);
                let median = stats::median(&values);
                let comparison =
                    (arm != "baseline").then(|| stats::compare(&baseline, &values, better, settings)).flatten();
                ArmOutcome {
                    name: arm.clone(),
                    values_text: values.iter().map(|value| format_value(*value, dim)).collect(),
                    median_text: median.map_or_else(|| "n/a".into(), |value| format_value(value, dim)),
                    values,
                    median,
                    comparison,
                }
            })
            .collect();
        let best = arms
            .iter()
            .filter_map(|arm| Some((arm, arm.comparison.as_ref()?)))
            .filter(|(_, comparison)| comparison.verdict == Verdict::Improved)
            .max_by(|a, b| improvement(a.1, better).total_cmp(&improvement(b.1, better)))
            .map(|(arm, _)| arm.name.clone());
        outcomes.push(ExperimentOutcome {
            name: experiment.name.clone(),
            workload: experiment.workload.clone(),
            matrix: point,
            metric: experiment.metric.clone(),
            better,
            dim,
            arms,
            best,
        });
    }
    outcomes
}

/// A comparison's change as an improvement: positive when better.
pub fn improvement(comparison: &Comparison, better: Better) -> f64 {
    match better {
        Better::Lower => -comparison.change,
        Better::Higher => comparison.change,
    }
}
