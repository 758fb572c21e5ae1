//! The roadmap: every experiment one candidate, judged once over all its
//! matrix points; the improved ones ranked by return on investment
//! (measured improvement × its weight × chance of success ÷ effort), their end-to-end
//! gain projected by Amdahl's law from measured time shares, and scheduled
//! over the team's working days. Candidates that did not improve are
//! listed as tried, never ranked or scheduled.

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Serialize;

use super::experiments::{describe_change, improvement, ExperimentEffect, ExperimentOutcome};
use super::stats::{self, Better, Verdict};
use crate::results::{Results, Risk, RunRecord};

/// One optimization candidate that showed a significant improvement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    /// The experiment.
    pub experiment: String,
    /// Its best variant.
    pub variant: String,
    /// The workload it was measured on.
    pub workload: String,
    /// Matrix points its effect combines (1 without a matrix).
    pub points: usize,
    /// The metric it was judged on.
    pub metric: String,
    /// Measured relative change of the metric (variant over baseline, minus 1).
    pub change: f64,
    /// Its 95% interval.
    pub interval: (f64, f64),
    /// The change for people, with "better"/"worse".
    pub change_text: String,
    /// The p-value of the verdict.
    pub p_value: f64,
    /// Measured relative improvement of the metric (positive is better).
    pub improvement: f64,
    /// What one per cent of its metric is worth (the scenario's `weight`, 1 by default).
    pub weight: f64,
    /// Effort in working days (the scenario's estimate), if given.
    pub effort_days: Option<f64>,
    /// Complexity from 1 to 5 (the scenario's estimate); breaks ties in the ranking.
    pub complexity: Option<u8>,
    /// Risk (the scenario's estimate).
    pub risk: Risk,
    /// Chance of success for that risk (the scenario's estimate).
    pub probability: f64,
    /// improvement × weight × probability ÷ effort, per working day; 0 without an effort.
    pub roi: f64,
    /// The time share it speeds up (`whole operation` when none was named).
    pub part: String,
    /// That share of the baseline's mean latency, 0–1 (1 for the whole operation).
    pub share: Option<f64>,
    /// Measured speed-up: of the part's mean (median over rounds, baseline
    /// over variant), or for the whole operation of the judged metric.
    pub part_speedup: Option<f64>,
    /// Projected improvement, 0–1: with a named part, the reduction of the
    /// workload's mean latency (Amdahl); for the whole operation, the
    /// measured improvement of the metric itself.
    pub projected_gain: Option<f64>,
    /// The projection for people, naming its figure: `mean latency -26.4% (better)`.
    pub projected_text: String,
    /// Why it is worth trying.
    pub rationale: Option<String>,
    /// When it is scheduled, if it is.
    pub schedule: Option<Slot>,
}

/// An experiment that was tried and did not show a significant improvement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tried {
    /// The experiment.
    pub experiment: String,
    /// The variant shown (the one with the largest improvement, if any was measured).
    pub variant: Option<String>,
    /// The metric it was judged on.
    pub metric: String,
    /// The change for people, or `n/a`.
    pub change_text: String,
    /// The verdict for people.
    pub verdict: String,
}

/// Where a candidate sits in the schedule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Slot {
    /// Engineer number, from 1.
    pub engineer: u32,
    /// First working day (from 1).
    pub first_day: u32,
    /// Last working day.
    pub last_day: u32,
    /// Date of the first day.
    pub start: NaiveDate,
    /// Date of the last day.
    pub end: NaiveDate,
}

/// The combined end-to-end projection for one workload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Combined {
    /// The workload.
    pub workload: String,
    /// The candidates combined.
    pub candidates: Vec<String>,
    /// Projected reduction of its mean latency, 0–1.
    pub projected_gain: f64,
    /// The projection as a change of the mean latency, for people.
    pub projected_text: String,
}

/// The whole roadmap.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Roadmap {
    /// Improved candidates by ROI, best first.
    pub candidates: Vec<Candidate>,
    /// Experiments that did not improve: tried, not ranked.
    pub tried: Vec<Tried>,
    /// Combined projections per workload.
    pub combined: Vec<Combined>,
    /// The schedule's first working day.
    pub start: NaiveDate,
    /// Whether `start` came from the scenario (else: the first working day after the run).
    pub start_given: bool,
    /// Engineers.
    pub team: u32,
    /// Last working day of the schedule, if anything is scheduled.
    pub end: Option<NaiveDate>,
    /// Candidates in the schedule.
    pub scheduled: usize,
    /// Effort booked, in working days: each candidate once.
    pub booked_days: f64,
    /// Chance of success for low, medium and high risk.
    pub success_probability: [f64; 3],
}

fn probability(results: &Results, risk: Risk) -> f64 {
    let [low, medium, high] = results.roadmap.success_probability;
    match risk {
        Risk::Low => low,
        Risk::Medium => medium,
        Risk::High => high,
    }
}

/// Per round, the mean of `metric` in each run of one arm at one point; their median.
fn median_of_means(runs: &[&RunRecord], metric: &str) -> Option<f64> {
    let means: Vec<f64> = runs
        .iter()
        .filter_map(|run| run.metrics.get(metric)?.summary.filter(|s| s.count > 0).map(|s| s.mean))
        .collect();
    stats::median(&means)
}

/// Runs of one arm of an experiment at one matrix point.
fn arm_runs<'a>(results: &'a Results, outcome: &ExperimentOutcome, arm: &str) -> Vec<&'a RunRecord> {
    results
        .runs
        .iter()
        .filter(|run| {
            run.matrix == outcome.matrix
                && run.arm.as_ref().is_some_and(|a| a.experiment == outcome.name && a.arm == arm)
        })
        .collect()
}

/// Amdahl: the share `f` of the time sped up `s` times leaves `(1 - f) + f / s` of it.
pub fn amdahl_gain(parts: &[(f64, f64)]) -> f64 {
    let covered: f64 = parts.iter().map(|(share, _)| share).sum();
    let remaining: f64 = (1.0 - covered).max(0.0) + parts.iter().map(|(share, speedup)| share / speedup).sum::<f64>();
    1.0 - remaining
}

/// A named part's share of mean latency and its speed-up: each point's
/// medians over rounds (the share in the baseline's runs; the speed-up of
/// the part's per-run mean, baseline over variant), combined over points as
/// the effect itself is (shares averaged, speed-ups by geometric mean).
fn part_figures(
    results: &Results,
    points: &[&ExperimentOutcome],
    variant: &str,
    part: &str,
) -> (Option<f64>, Option<f64>) {
    let mut shares = Vec::new();
    let mut log_speedups = Vec::new();
    for point in points {
        let (baseline, arm) = (arm_runs(results, point, "baseline"), arm_runs(results, point, variant));
        let point_shares: Vec<f64> = baseline.iter().filter_map(|run| super::shares::share_of(run, part)).collect();
        shares.extend(stats::median(&point_shares));
        if let (Some(before), Some(after)) = (median_of_means(&baseline, part), median_of_means(&arm, part)) {
            if before > 0.0 && after > 0.0 {
                log_speedups.push((before / after).ln());
            }
        }
    }
    let share = (!shares.is_empty()).then(|| shares.iter().sum::<f64>() / shares.len() as f64);
    let speedup =
        (!log_speedups.is_empty()).then(|| (log_speedups.iter().sum::<f64>() / log_speedups.len() as f64).exp());
    (share, speedup)
}

/// The candidate an improved experiment makes, or what was tried.
fn candidate(results: &Results, effect: &ExperimentEffect, outcomes: &[ExperimentOutcome]) -> Result<Candidate, Tried> {
    let record = results.experiments.iter().find(|e| e.name == effect.name);
    let measured = effect.variants.iter().filter_map(|v| Some((v, v.comparison.as_ref()?)));
    let shown = match &effect.best {
        Some(best) => effect.variants.iter().find(|v| &v.name == best).and_then(|v| Some((v, v.comparison.as_ref()?))),
        None => measured.max_by(|a, b| improvement(a.1, effect.better).total_cmp(&improvement(b.1, effect.better))),
    };
    let tried = || Tried {
        experiment: effect.name.clone(),
        variant: shown.map(|(v, _)| v.name.clone()),
        metric: effect.metric.clone(),
        change_text: shown.map_or_else(|| "n/a".into(), |(v, _)| v.change_text.clone()),
        verdict: shown.map_or("not measured", |(_, c)| c.verdict.text()).to_owned(),
    };
    let (Some(record), Some((variant, comparison))) = (record, shown) else { return Err(tried()) };
    if comparison.verdict != Verdict::Improved {
        return Err(tried());
    }
    let gain = improvement(comparison, effect.better);
    let probability = probability(results, record.risk);
    let roi = match record.effort_days {
        Some(days) if days > 0.0 => gain * record.weight * probability / days,
        _ => 0.0,
    };
    let points: Vec<&ExperimentOutcome> = outcomes.iter().filter(|o| o.name == effect.name).collect();
    // A named part projects the workload's mean latency by Amdahl's law; the
    // whole operation is its own measured change, the verdict's statistic.
    let (share, part_speedup, projected_gain, projected_text) = match record.part.as_deref() {
        Some(part) => {
            let (share, speedup) = part_figures(results, &points, &variant.name, part);
            let gain = share.zip(speedup).map(|(share, speedup)| amdahl_gain(&[(share, speedup)]));
            (share, speedup, gain, gain.map_or_else(|| "n/a".into(), projected_text))
        }
        None => {
            let ratio = comparison.variant_median / comparison.baseline_median;
            let speedup = match effect.better {
                Better::Lower => 1.0 / ratio,
                Better::Higher => ratio,
            };
            let text = format!("{} {}", effect.metric, describe_change(comparison.change, None, effect.better));
            (Some(1.0), Some(speedup).filter(|s| s.is_finite()), Some(gain), text)
        }
    };
    Ok(Candidate {
        experiment: effect.name.clone(),
        variant: variant.name.clone(),
        workload: effect.workload.clone(),
        points: effect.points,
        metric: effect.metric.clone(),
        change: comparison.change,
        interval: comparison.interval,
        change_text: variant.change_text.clone(),
        p_value: comparison.p_value,
        improvement: gain,
        weight: record.weight,
        effort_days: record.effort_days,
        complexity: record.complexity,
        risk: record.risk,
        probability,
        roi,
        part: record.part.clone().unwrap_or_else(|| WHOLE_OPERATION.into()),
        share,
        part_speedup,
        projected_text,
        projected_gain,
        rationale: record.rationale.clone(),
        schedule: None,
    })
}

/// What `part` says of a candidate that names no time share.
pub const WHOLE_OPERATION: &str = "whole operation";

/// A projected reduction of mean latency as the change of it: `mean latency -26.4% (better)`.
fn projected_text(gain: f64) -> String {
    format!("mean latency {}", describe_change(-gain, None, Better::Lower))
}

/// The working day `offset` days (0-based, weekends skipped) after `start`.
pub fn working_day(start: NaiveDate, offset: u32) -> NaiveDate {
    let mut date = first_working_day(start);
    let mut left = offset;
    while left > 0 {
        date = date.succ_opt().unwrap_or(date);
        if !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            left -= 1;
        }
    }
    date
}

/// `date`, or the Monday after it when it falls on a weekend.
pub fn first_working_day(date: NaiveDate) -> NaiveDate {
    let mut date = date;
    while matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
        date = date.succ_opt().unwrap_or(date);
    }
    date
}

/// Ranks the improved candidates (ROI, then lower complexity) and schedules
/// them over the team, each experiment once.
pub fn plan(results: &Results, effects: &[ExperimentEffect], outcomes: &[ExperimentOutcome]) -> Roadmap {
    let (mut candidates, mut tried) = (Vec::new(), Vec::new());
    for effect in effects {
        match candidate(results, effect, outcomes) {
            Ok(candidate) => candidates.push(candidate),
            Err(entry) => tried.push(entry),
        }
    }
    candidates.sort_by(|a, b| {
        b.roi
            .total_cmp(&a.roi)
            .then(a.complexity.unwrap_or(u8::MAX).cmp(&b.complexity.unwrap_or(u8::MAX)))
            .then(b.improvement.total_cmp(&a.improvement))
    });
    let (start, start_given) = match results.roadmap.start {
        Some(start) => (first_working_day(start), true),
        None => {
            let after = results.finished_at.unwrap_or(results.started_at).date_naive().succ_opt();
            (first_working_day(after.unwrap_or(results.started_at.date_naive())), false)
        }
    };
    let team = results.roadmap.team.max(1);
    // Each engineer's next free working day (0-based), in half days.
    let mut free = vec![0_u32; team as usize];
    let mut end = None;
    let mut booked_days = 0.0;
    for candidate in &mut candidates {
        let Some(days) = candidate.effort_days else { continue };
        let (engineer, first) = free.iter().copied().enumerate().min_by_key(|(_, day)| *day).unwrap_or((0, 0));
        let length = (days * 2.0).ceil().max(1.0) as u32;
        let last = first + length - 1;
        free[engineer] = last + 1;
        booked_days += days;
        let slot = Slot {
            engineer: engineer as u32 + 1,
            first_day: first / 2 + 1,
            last_day: last / 2 + 1,
            start: working_day(start, first / 2),
            end: working_day(start, last / 2),
        };
        end = end.max(Some(slot.end));
        candidate.schedule = Some(slot);
    }
    let scheduled = candidates.iter().filter(|c| c.schedule.is_some()).count();
    Roadmap {
        combined: combine(&candidates),
        candidates,
        tried,
        start,
        start_given,
        team,
        end,
        scheduled,
        booked_days,
        success_probability: results.roadmap.success_probability,
    }
}

/// Per workload, candidates on distinct named parts of its operation
/// combined by Amdahl's law on its mean latency (two or more; one is its own
/// projection). Whole-operation candidates are judged on their own metrics,
/// which do not add up with the parts' shares, so they are not combined.
fn combine(candidates: &[Candidate]) -> Vec<Combined> {
    let mut combined: Vec<Combined> = Vec::new();
    for candidate in candidates {
        if combined.iter().any(|c| c.workload == candidate.workload) {
            continue;
        }
        let mut parts: Vec<(&Candidate, f64, f64)> = Vec::new();
        for other in candidates.iter().filter(|c| c.workload == candidate.workload && c.part != WHOLE_OPERATION) {
            if let (Some(share), Some(speedup)) = (other.share, other.part_speedup) {
                if !parts.iter().any(|(seen, ..)| seen.part == other.part) {
                    parts.push((other, share, speedup));
                }
            }
        }
        if parts.len() < 2 {
            continue;
        }
        let gain = amdahl_gain(&parts.iter().map(|(_, share, speedup)| (*share, *speedup)).collect::<Vec<_>>());
        combined.push(Combined {
            workload: candidate.workload.clone(),
            candidates: parts.iter().map(|(c, ..)| c.experiment.clone()).collect(),
            projected_gain: gain,
            projected_text: projected_text(gain),
        });
    }
    combined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amdahl_matches_known_values() {
        for (parts, expected) in [
            (vec![], 0.0),
            (vec![(1.0, 2.0)], 0.5),
            (vec![(0.5, 2.0)], 0.25),
            (vec![(0.4, 4.0), (0.2, 2.0)], 0.4),
            (vec![(0.3, 1.0)], 0.0),
            (vec![(0.5, 0.5)], -0.5),
        ] {
            assert!((amdahl_gain(&parts) - expected).abs() < 1e-12, "{parts:?}");
        }
    }

    fn on(workload: &str, experiment: &str, part: &str, share: f64, speedup: f64) -> Candidate {
        Candidate {
            experiment: experiment.into(),
            variant: "v".into(),
            workload: workload.into(),
            points: 1,
            metric: "latency.p50".into(),
            change: -0.2,
            interval: (-0.3, -0.1),
            change_text: String::new(),
            p_value: 0.01,
            improvement: 0.2,
            weight: 1.0,
            effort_days: Some(1.0),
            complexity: None,
            risk: Risk::Low,
            probability: 0.9,
            roi: 0.18,
            part: part.into(),
            share: Some(share),
            part_speedup: Some(speedup),
            projected_gain: Some(amdahl_gain(&[(share, speedup)])),
            projected_text: String::new(),
            rationale: None,
            schedule: None,
        }
    }

    #[test]
    fn only_distinct_named_parts_of_one_workload_combine() {
        let candidates = [
            on("llm", "flash", "attention_time", 0.4, 4.0),
            on("llm", "fused-mlp", "mlp_time", 0.2, 2.0),
            on("llm", "whole", WHOLE_OPERATION, 1.0, 1.5),
            on("llm", "flash-again", "attention_time", 0.4, 2.0),
            on("vault", "cache", "cache_time", 0.5, 2.0),
        ];
        let combined = combine(&candidates);
        assert_eq!(combined.len(), 1, "{combined:?}");
        assert_eq!(combined[0].candidates, ["flash", "fused-mlp"]);
        assert!((combined[0].projected_gain - 0.4).abs() < 1e-12, "{combined:?}");
        assert_eq!(combined[0].projected_text, "mean latency -40.0% (better)");
    }

    #[test]
    fn working_days_skip_weekends() {
        let friday = NaiveDate::from_ymd_opt(2026, 1, 9).unwrap();
        let saturday = NaiveDate::from_ymd_opt(2026, 1, 10).unwrap();
        let monday = NaiveDate::from_ymd_opt(2026, 1, 12).unwrap();
        assert_eq!(working_day(friday, 0), friday);
        assert_eq!(working_day(friday, 1), monday);
        assert_eq!(working_day(saturday, 0), monday);
        assert_eq!(working_day(monday, 5), NaiveDate::from_ymd_opt(2026, 1, 19).unwrap());
    }
}
