//! The roadmap: every experiment a candidate, ranked by return on
//! investment (measured improvement × chance of success ÷ effort), its
//! end-to-end gain projected by Amdahl's law from measured time shares, and
//! a schedule over the team's working days.

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Serialize;

use super::experiments::{improvement, ExperimentOutcome};
use super::stats::Verdict;
use crate::plan::Risk;
use crate::results::{Results, RunRecord};

/// One optimization candidate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    /// The experiment.
    pub experiment: String,
    /// Its best variant (the significant improvement, or else the largest change).
    pub variant: String,
    /// The workload it was measured on, with its matrix point.
    pub workload: String,
    /// The metric it was judged on.
    pub metric: String,
    /// Measured relative improvement of the metric (positive is better).
    pub improvement: f64,
    /// Its bootstrap 95% interval, as improvements (low, high).
    pub interval: (f64, f64),
    /// The A/B verdict.
    pub verdict: Verdict,
    /// Effort in working days, if given.
    pub effort_days: Option<f64>,
    /// Risk.
    pub risk: Risk,
    /// Chance of success for that risk.
    pub probability: f64,
    /// improvement × probability ÷ effort, per working day; 0 unless improved.
    pub roi: f64,
    /// The time share it speeds up (`whole operation` when none was named).
    pub part: String,
    /// That share of the baseline's mean latency, 0–1.
    pub share: Option<f64>,
    /// Measured speed-up of that part (baseline mean over variant mean).
    pub part_speedup: Option<f64>,
    /// Projected reduction of the workload's mean latency, 0–1 (Amdahl).
    pub projected_gain: Option<f64>,
    /// Why it is worth trying.
    pub rationale: Option<String>,
    /// When it is scheduled, if it is.
    pub schedule: Option<Slot>,
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
}

/// The whole roadmap.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Roadmap {
    /// Candidates by ROI, best first.
    pub candidates: Vec<Candidate>,
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

fn mean_of(runs: &[&RunRecord], metric: &str) -> Option<f64> {
    let means: Vec<f64> = runs
        .iter()
        .filter_map(|run| run.metrics.get(metric)?.summary.filter(|s| s.count > 0).map(|s| s.mean))
        .collect();
    (!means.is_empty()).then(|| means.iter().sum::<f64>() / means.len() as f64)
}

/// Runs of one arm of an experiment outcome.
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

fn candidate(results: &Results, outcome: &ExperimentOutcome) -> Option<Candidate> {
    let record = results.experiments.iter().find(|e| e.name == outcome.name)?;
    let variants = outcome.arms.iter().filter_map(|arm| Some((arm, arm.comparison.as_ref()?)));
    let (arm, comparison) = match &outcome.best {
        Some(best) => variants.into_iter().find(|(arm, _)| &arm.name == best)?,
        None => {
            variants.max_by(|a, b| improvement(a.1, outcome.better).total_cmp(&improvement(b.1, outcome.better)))?
        }
    };
    let gain = improvement(comparison, outcome.better);
    let (low, high) = comparison.interval;
    let interval = match outcome.better {
        super::stats::Better::Lower => (-high, -low),
        super::stats::Better::Higher => (low, high),
    };
    let probability = probability(results, record.risk);
    let roi = match (comparison.verdict, record.effort_days) {
        (Verdict::Improved, Some(days)) if days > 0.0 => gain * probability / days,
        _ => 0.0,
    };
    let (baseline, variant) = (arm_runs(results, outcome, "baseline"), arm_runs(results, outcome, &arm.name));
    let part_metric = record.part.clone().unwrap_or_else(|| "latency".into());
    let share = match &record.part {
        Some(part) => {
            let shares: Vec<f64> = baseline.iter().filter_map(|run| super::shares::share_of(run, part)).collect();
            (!shares.is_empty()).then(|| shares.iter().sum::<f64>() / shares.len() as f64)
        }
        None => mean_of(&baseline, "latency").map(|_| 1.0),
    };
    let part_speedup = match (mean_of(&baseline, &part_metric), mean_of(&variant, &part_metric)) {
        (Some(before), Some(after)) if after > 0.0 => Some(before / after),
        _ => None,
    };
    let projected_gain = share.zip(part_speedup).map(|(share, speedup)| amdahl_gain(&[(share, speedup)]));
    let point: Vec<String> = outcome.matrix.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Some(Candidate {
        experiment: outcome.name.clone(),
        variant: arm.name.clone(),
        workload: if point.is_empty() {
            outcome.workload.clone()
        } else {
            format!("{} [{}]", outcome.workload, point.join(", "))
        },
        metric: outcome.metric.clone(),
        improvement: gain,
        interval,
        verdict: comparison.verdict,
        effort_days: record.effort_days,
        risk: record.risk,
        probability,
        roi,
        part: record.part.clone().unwrap_or_else(|| "whole operation".into()),
        share,
        part_speedup,
        projected_gain,
        rationale: record.rationale.clone(),
        schedule: None,
    })
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

/// Ranks the candidates and schedules the improved ones over the team.
pub fn plan(results: &Results, outcomes: &[ExperimentOutcome]) -> Roadmap {
    let mut candidates: Vec<Candidate> = outcomes.iter().filter_map(|outcome| candidate(results, outcome)).collect();
    candidates.sort_by(|a, b| b.roi.total_cmp(&a.roi).then(b.improvement.total_cmp(&a.improvement)));
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
    for candidate in candidates.iter_mut().filter(|c| c.roi > 0.0) {
        let Some(days) = candidate.effort_days else { continue };
        let (engineer, first) = free.iter().copied().enumerate().min_by_key(|(_, day)| *day).unwrap_or((0, 0));
        let length = (days * 2.0).ceil().max(1.0) as u32;
        let last = first + length - 1;
        free[engineer] = last + 1;
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
        start,
        start_given,
        team,
        end,
        scheduled,
        success_probability: results.roadmap.success_probability,
    }
}

/// Per workload: improved candidates on distinct named parts combine by
/// Amdahl's law; whole-operation candidates overlap everything, so only the
/// best of them counts, and only when no named part does better.
fn combine(candidates: &[Candidate]) -> Vec<Combined> {
    let mut workloads: Vec<&str> = Vec::new();
    for candidate in candidates {
        if !workloads.contains(&candidate.workload.as_str()) {
            workloads.push(&candidate.workload);
        }
    }
    let mut combined = Vec::new();
    for workload in workloads {
        let improved: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| c.workload == workload && c.verdict == Verdict::Improved && c.projected_gain.is_some())
            .collect();
        let mut parts: Vec<(&Candidate, f64, f64)> = Vec::new();
        for candidate in improved.iter().filter(|c| c.part != "whole operation") {
            if let (Some(share), Some(speedup)) = (candidate.share, candidate.part_speedup) {
                if !parts.iter().any(|(other, ..)| other.part == candidate.part) {
                    parts.push((candidate, share, speedup));
                }
            }
        }
        let by_parts = amdahl_gain(&parts.iter().map(|(_, share, speedup)| (*share, *speedup)).collect::<Vec<_>>());
        let whole = improved
            .iter()
            .filter(|c| c.part == "whole operation")
            .max_by(|a, b| a.projected_gain.unwrap_or(0.0).total_cmp(&b.projected_gain.unwrap_or(0.0)));
        let (names, gain) = match whole {
            Some(best) if best.projected_gain.unwrap_or(0.0) > by_parts => {
                (vec![best.experiment.clone()], best.projected_gain.unwrap_or(0.0))
            }
            _ => (parts.iter().map(|(c, ..)| c.experiment.clone()).collect(), by_parts),
        };
        if !names.is_empty() {
            combined.push(Combined { workload: workload.to_owned(), candidates: names, projected_gain: gain });
        }
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
