//! A/B outcomes: for each experiment (and each matrix point of its
//! workload), every arm's metric per round, its median, and each variant
//! compared with the baseline (relative change, bootstrap interval,
//! Mann-Whitney p-value, verdict); and each experiment judged once as one
//! change over all its points ([`ExperimentEffect`]), which the roadmap
//! ranks.

use indexmap::IndexMap;
use serde::Serialize;

use super::stats::{self, Better, CompareSettings, Comparison, Verdict};
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
    /// The change for people: `-21.4% [-38.2%, -13.8%] (better)`; empty for the baseline.
    pub change_text: String,
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

/// Every experiment's outcome, per matrix point, compared with `settings`.
pub fn analyse(results: &Results, settings: &CompareSettings) -> Vec<ExperimentOutcome> {
    results.experiments.iter().flat_map(|experiment| analyse_one(results, experiment, settings)).collect()
}

fn analyse_one(results: &Results, experiment: &ExperimentRecord, settings: &CompareSettings) -> Vec<ExperimentOutcome> {
    let Ok(metric) = &experiment.metric.parsed else { return Vec::new() };
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
        let record = runs.iter().find_map(|run| run.metrics.get(&metric.metric));
        let dim = record.map_or(Dim::NONE, |record| Dim::from(record.dim));
        let better = record.map_or(Better::Lower, |record| record.better());
        let values_of = |arm: &str| -> Vec<f64> {
            let mut rounds: Vec<(u32, f64)> = runs
                .iter()
                .filter(|run| run.matrix == point && run.arm.as_ref().is_some_and(|a| a.arm == arm))
                .filter_map(|run| Some((run.arm.as_ref()?.round, super::targets::metric_value(run, metric)?)))
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
                    change_text: comparison.as_ref().map_or_else(String::new, |c| change_text(c, better)),
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
            metric: experiment.metric.text.clone(),
            better,
            dim,
            arms,
            best,
        });
    }
    outcomes
}

/// An experiment judged as one engineering change: each variant's effect
/// over every matrix point of its workload together.
///
/// The points combine as strata: the effect is the geometric mean of the
/// points' changes of medians, its interval a stratified bootstrap, its
/// p-value the van Elteren test (Mann-Whitney rank sums over the points);
/// one point is exactly that point's comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExperimentEffect {
    /// Experiment name.
    pub name: String,
    /// The workload it reruns.
    pub workload: String,
    /// The metric as written.
    pub metric: String,
    /// Which way is better for it.
    pub better: Better,
    /// Matrix points combined (1 without a matrix).
    pub points: usize,
    /// Each variant against the baseline.
    pub variants: Vec<VariantEffect>,
    /// The variant with the largest significant improvement, if any.
    pub best: Option<String>,
}

/// One variant's effect over all points.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VariantEffect {
    /// Variant name.
    pub name: String,
    /// The combined comparison, if it could be computed.
    pub comparison: Option<Comparison>,
    /// The change for people, as in [`ArmOutcome::change_text`].
    pub change_text: String,
}

/// Every experiment judged once over its points.
pub fn effects(
    experiments: &[ExperimentRecord],
    outcomes: &[ExperimentOutcome],
    settings: &CompareSettings,
) -> Vec<ExperimentEffect> {
    experiments
        .iter()
        .filter_map(|experiment| {
            let points: Vec<&ExperimentOutcome> = outcomes.iter().filter(|o| o.name == experiment.name).collect();
            let first = points.first()?;
            let better = first.better;
            let variants: Vec<VariantEffect> = experiment
                .arms
                .iter()
                .filter(|arm| arm.as_str() != "baseline")
                .map(|variant| {
                    let strata: Vec<(&[f64], &[f64])> = points
                        .iter()
                        .filter_map(|point| {
                            let values =
                                |name: &str| point.arms.iter().find(|a| a.name == name).map(|a| a.values.as_slice());
                            Some((values("baseline")?, values(variant)?))
                                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                        })
                        .collect();
                    let comparison = stats::compare_strata(&strata, better, settings);
                    VariantEffect {
                        name: variant.clone(),
                        change_text: comparison.as_ref().map_or_else(|| "n/a".into(), |c| change_text(c, better)),
                        comparison,
                    }
                })
                .collect();
            let best = variants
                .iter()
                .filter_map(|v| Some((v, v.comparison.as_ref()?)))
                .filter(|(_, c)| c.verdict == Verdict::Improved)
                .max_by(|a, b| improvement(a.1, better).total_cmp(&improvement(b.1, better)))
                .map(|(v, _)| v.name.clone());
            Some(ExperimentEffect {
                name: experiment.name.clone(),
                workload: experiment.workload.clone(),
                metric: experiment.metric.text.clone(),
                better,
                points: points.len(),
                variants,
                best,
            })
        })
        .collect()
}

/// A change of a metric for people, one sign convention everywhere: the
/// metric's own change (variant over baseline, minus 1), its interval, and
/// whether that is better or worse for this metric.
pub fn change_text(comparison: &Comparison, better: Better) -> String {
    describe_change(comparison.change, Some(comparison.interval), better)
}

/// A relative change of a metric for people, with its interval when there
/// is one and whether it is better or worse: `+4.1% (worse)`.
pub fn describe_change(change: f64, interval: Option<(f64, f64)>, better: Better) -> String {
    let word = match gain(change, better) {
        gain if gain > 0.0 => " (better)",
        gain if gain < 0.0 => " (worse)",
        _ => "",
    };
    let interval =
        interval.map(|(low, high)| format!(" [{}, {}]", signed_percent(low), signed_percent(high))).unwrap_or_default();
    format!("{}{interval}{word}", signed_percent(change))
}

/// A relative change as an improvement: positive when better.
pub fn gain(change: f64, better: Better) -> f64 {
    match better {
        Better::Lower => -change,
        Better::Higher => change,
    }
}

/// `+12.3%`, `-4.0%`, or `±inf` for an unbounded end.
pub fn signed_percent(value: f64) -> String {
    if value.is_finite() {
        format!("{:+.1}%", value * 100.0)
    } else if value > 0.0 {
        "+inf".into()
    } else {
        "-inf".into()
    }
}

/// A comparison's change as an improvement: positive when better.
pub fn improvement(comparison: &Comparison, better: Better) -> f64 {
    gain(comparison.change, better)
}
