//! Capacity: the highest load at which a workload's targets hold, estimated
//! from probes (runs at one load each, judged pass or fail) with a 95%
//! interval.
//!
//! The model: a probe at load `x` passes with probability
//! `1 / (1 + exp((ln x − ln c) / s))`. `c` is the capacity, the load a probe
//! passes at half the time; `s` is how gradual the edge is, in log-load (a
//! queue that saturates gives a sharp edge, a noisy system a soft one). Both
//! are fitted by maximum likelihood over every probe that counts. The
//! interval is the profile likelihood's: the capacities whose best
//! likelihood (over `s`) comes within [`INTERVAL_DROP`] of the maximum. The
//! textbook drop for 95%, `χ²₁(0.95) / 2 = 1.92`, held the true capacity in
//! only 88% of simulated searches of a soft edge (the search's probes
//! cluster where it looked, and there are few of them); 2.70 holds it in
//! 98%, 95% and 90% of 200 searches of edges whose pass rate falls from 73%
//! to 27% over 2%, 10% and 20% of the load (`tests/capacity.rs`).
//! `s` is held at or above [`MIN_SPREAD`], so probes that separate perfectly
//! (every pass below every fail) give the gap between the highest pass and
//! the lowest fail, widened by about 1% on each side, instead of a point.
//! Probes whose load generator fell behind measure the generator, not the
//! system: the caller leaves them out.

use serde::Serialize;

use crate::expr::{Expr, MetricRef, Stat};
use crate::metric::names;
use crate::quantity::{format_value, Dim};
use crate::results::{CapacityBound, LoadRecord, ProbeOutcome, ProbeRecord, RunRecord, SearchFinish};

/// The smallest edge spread `s` fitted, in log-load (0.5% of the load).
pub const MIN_SPREAD: f64 = 0.005;
/// The largest: the pass rate falls from 73% to 27% over a factor e of load.
pub const MAX_SPREAD: f64 = 1.0;
/// How far below its maximum the profile log-likelihood may fall inside
/// the 95% interval (calibrated by simulation, above).
pub const INTERVAL_DROP: f64 = 2.70;

/// Where the capacity lies against the loads probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Between the loads probed: an estimate with its interval.
    Within,
    /// Every probe passed: the capacity is above the highest load probed.
    AboveRange,
    /// Every probe failed: the capacity is below the lowest load probed.
    BelowRange,
    /// No probe counted.
    Unknown,
}

/// The capacity the probes show.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// Where it lies.
    pub bound: Bound,
    /// The load a probe passes at half the time (`Within` only).
    pub capacity: Option<f64>,
    /// Its 95% interval (`Within` only).
    pub interval: Option<(f64, f64)>,
    /// The highest load that passed, and the lowest that failed.
    pub highest_pass: Option<f64>,
    /// The lowest load that failed.
    pub lowest_fail: Option<f64>,
    /// Probes counted.
    pub probes: usize,
}

/// The capacity shown by `probes`: (load, passed) pairs, loads positive.
pub fn estimate(probes: &[(f64, bool)]) -> Estimate {
    let probes: Vec<(f64, bool)> = probes.iter().copied().filter(|(load, _)| load.is_finite() && *load > 0.0).collect();
    let highest_pass = probes.iter().filter(|(_, passed)| *passed).map(|(load, _)| *load).reduce(f64::max);
    let lowest_fail = probes.iter().filter(|(_, passed)| !*passed).map(|(load, _)| *load).reduce(f64::min);
    let mut estimate = Estimate {
        bound: Bound::Unknown,
        capacity: None,
        interval: None,
        highest_pass,
        lowest_fail,
        probes: probes.len(),
    };
    estimate.bound = match (highest_pass, lowest_fail) {
        (None, None) => return estimate,
        (Some(_), None) => return Estimate { bound: Bound::AboveRange, ..estimate },
        (None, Some(_)) => return Estimate { bound: Bound::BelowRange, ..estimate },
        (Some(_), Some(_)) => Bound::Within,
    };
    let points: Vec<(f64, bool)> = probes.iter().map(|(load, passed)| (load.ln(), *passed)).collect();
    let lowest = points.iter().map(|(x, _)| *x).fold(f64::INFINITY, f64::min);
    let highest = points.iter().map(|(x, _)| *x).fold(f64::NEG_INFINITY, f64::max);
    // A coarse scan of the whole range, then a fine one where the profile
    // comes within reach of its maximum.
    let margin = 0.25;
    let coarse = profile(&points, lowest - margin, highest + margin, 801);
    let best = coarse.iter().map(|(_, l)| *l).fold(f64::NEG_INFINITY, f64::max);
    let step = (highest - lowest + 2.0 * margin) / 800.0;
    let near: Vec<f64> = coarse.iter().filter(|(_, l)| *l >= best - INTERVAL_DROP - 1.0).map(|(u, _)| *u).collect();
    let (from, to) = (near[0] - step, near[near.len() - 1] + step);
    let fine = profile(&points, from, to, 1601);
    let best = fine.iter().map(|(_, l)| *l).fold(f64::NEG_INFINITY, f64::max);
    // A flat top (perfect separation) takes its middle.
    let top: Vec<f64> = fine.iter().filter(|(_, l)| *l >= best - 1e-9).map(|(u, _)| *u).collect();
    let capacity = (top[0] + top[top.len() - 1]) / 2.0;
    let inside: Vec<f64> = fine.iter().filter(|(_, l)| *l >= best - INTERVAL_DROP).map(|(u, _)| *u).collect();
    estimate.capacity = Some(capacity.exp());
    estimate.interval = Some((inside[0].exp(), inside[inside.len() - 1].exp()));
    estimate
}

/// The dimension of a search run's loads: a rate, or a worker count.
pub fn load_dim(run: &RunRecord) -> Dim {
    match &run.load {
        LoadRecord::Search { axis, .. } if axis == "concurrency" => Dim::NONE,
        _ => Dim::PER_TIME,
    }
}

/// A load of a search for people: `3.95k/s`, or `37 workers`.
pub fn load_text(load: f64, dim: Dim) -> String {
    if dim == Dim::NONE {
        format!("{} workers", format_value(load, dim))
    } else {
        format_value(load, dim)
    }
}

/// What a search run found, in one line for people (`3.91k/s (95% interval
/// …); 21 probes, …`); `None` for a run that is not a search.
pub fn describe(run: &RunRecord) -> Option<String> {
    let search = run.search.as_ref()?;
    let dim = load_dim(run);
    let capacity = &search.capacity;
    let text = |load: Option<f64>| load.map_or_else(|| "?".into(), |load| load_text(load, dim));
    let found = match capacity.bound {
        CapacityBound::Within => {
            let interval = capacity.interval.map_or_else(String::new, |[low, high]| {
                format!(" (95% interval {} to {})", text(Some(low)), text(Some(high)))
            });
            format!("{}{interval}", text(capacity.value))
        }
        CapacityBound::AboveRange if search.finish == SearchFinish::OutOfReach => {
            format!("above {}, the most the load generator kept up with here", text(capacity.highest_pass))
        }
        CapacityBound::AboveRange => format!("above {}: every probe held", text(capacity.highest_pass)),
        CapacityBound::BelowRange => format!("below {}: every probe missed", text(capacity.lowest_fail)),
        CapacityBound::Unknown => "unknown: no probe counted".to_owned(),
    };
    let lagged = search.probes.iter().filter(|probe| probe.outcome == ProbeOutcome::Lagged).count();
    let unjudged = search.probes.iter().filter(|probe| probe.outcome == ProbeOutcome::NotJudged).count();
    let mut line = format!(
        "{found}; {} probes, {} operations in {} ({})",
        search.probes.len(),
        search.operations(),
        format_value(search.elapsed_ns as f64 / 1e9, Dim::TIME),
        search.finish.describe()
    );
    if lagged > 0 {
        line.push_str(&format!("; {lagged} lagged (the generator fell behind; not counted)"));
    }
    if unjudged > 0 {
        line.push_str(&format!("; {unjudged} not judged"));
    }
    Some(line)
}

/// A search run as the reports show it.
#[derive(Clone, Debug, Serialize)]
pub struct SearchView {
    /// What it found, in one line.
    pub found: String,
    /// The capacity and its interval (`within`), in the load's unit.
    pub capacity: Option<f64>,
    /// Its 95% interval.
    pub interval: Option<[f64; 2]>,
    /// Where it lies against the loads probed.
    pub bound: CapacityBound,
    /// `rate` or `concurrency`.
    pub axis: String,
    /// Its dimension.
    #[serde(skip)]
    pub dim: Dim,
    /// Every probe, in the order run.
    pub probes: Vec<ProbeRow>,
    /// What the chart plots against load: each time target on one
    /// statistic, with its limit; latency p99 when there is none.
    pub series: Vec<Series>,
}

/// One probe of a search, for tables and the chart.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeRow {
    /// The load probed.
    pub load: f64,
    /// The load for people.
    pub load_text: String,
    /// `held`, `MISSED`, `LAGGED` or `not judged`.
    pub outcome: String,
    /// Whether it counted as a pass or a fail.
    pub outcome_kind: ProbeOutcome,
    /// Why.
    pub why: String,
    /// Completed operations per second.
    pub throughput: String,
    /// Latency p50 and p99, for people.
    pub latency_p50: String,
    /// Latency p99.
    pub latency_p99: String,
    /// Operations measured.
    pub operations: u64,
}

/// One statistic plotted against load, with the limit a target sets on it.
#[derive(Clone, Debug, Serialize)]
pub struct Series {
    /// `latency.p99`.
    pub name: String,
    /// The target that bounds it, as written; empty when none does.
    pub target: String,
    /// The bound, in seconds.
    pub limit: Option<f64>,
    /// Its value at each probe, in seconds, `None` where it was not measured.
    pub values: Vec<Option<f64>>,
}

/// The reports' view of a search run; `None` for a run that is not one.
pub fn view(run: &RunRecord) -> Option<SearchView> {
    let search = run.search.as_ref()?;
    let dim = load_dim(run);
    let time = |value: Option<f64>| value.map_or_else(|| "-".into(), |v| format_value(v, Dim::TIME));
    let probes = search
        .probes
        .iter()
        .map(|probe| {
            let latency = probe.run.metrics.get(names::LATENCY).and_then(|m| m.summary).filter(|s| s.count > 0);
            let throughput = probe.run.metrics.get(names::THROUGHPUT).and_then(|m| m.value);
            ProbeRow {
                load: probe.load,
                load_text: load_text(probe.load, dim),
                outcome: outcome_label(probe.outcome).into(),
                outcome_kind: probe.outcome,
                why: probe.why.clone().unwrap_or_default(),
                throughput: throughput.map_or_else(|| "-".into(), |t| format_value(t, Dim::PER_TIME)),
                latency_p50: time(latency.map(|s| s.p50)),
                latency_p99: time(latency.map(|s| s.p99)),
                operations: probe.run.operations,
            }
        })
        .collect();
    let mut series: Vec<Series> = Vec::new();
    for target in &run.targets {
        let Ok(comparison) = &target.parsed else { continue };
        let (Expr::Metric(reference, _), Expr::Quantity(limit, _)) = (&comparison.lhs, &comparison.rhs) else {
            continue;
        };
        if limit.dim() != Dim::TIME || series.iter().any(|s| s.name == reference.to_string()) {
            continue;
        }
        series.push(Series {
            name: reference.to_string(),
            target: target.text.clone(),
            limit: Some(limit.base_value()),
            values: search.probes.iter().map(|probe| super::targets::metric_value(&probe.run, reference)).collect(),
        });
    }
    if series.is_empty() {
        let reference = MetricRef { metric: names::LATENCY.into(), stat: Some(Stat::P99) };
        series.push(Series {
            name: reference.to_string(),
            target: String::new(),
            limit: None,
            values: search.probes.iter().map(|probe| super::targets::metric_value(&probe.run, &reference)).collect(),
        });
    }
    let axis = match &run.load {
        LoadRecord::Search { axis, .. } => axis.clone(),
        _ => "rate".into(),
    };
    Some(SearchView {
        found: describe(run)?,
        capacity: search.capacity.value,
        interval: search.capacity.interval,
        bound: search.capacity.bound,
        axis,
        dim,
        probes,
        series,
    })
}

/// A probe's outcome in one word or two: `held`, `MISSED`, `LAGGED`, `not judged`.
pub fn outcome_label(outcome: ProbeOutcome) -> &'static str {
    match outcome {
        ProbeOutcome::Pass => "held",
        ProbeOutcome::Fail => "MISSED",
        ProbeOutcome::Lagged => "LAGGED",
        ProbeOutcome::NotJudged => "not judged",
    }
}

/// One probe for people: `3.2k/s pass`, `4.1k/s FAIL: latency.p99 < 3ms missed: 5.2ms`.
pub fn probe_text(probe: &ProbeRecord) -> String {
    let dim = match probe.run.load {
        LoadRecord::Closed { .. } => Dim::NONE,
        _ => Dim::PER_TIME,
    };
    let p99 = probe.run.metrics.get(names::LATENCY).and_then(|m| m.summary).filter(|s| s.count > 0);
    let latency = p99.map_or_else(String::new, |s| format!(" (latency p99 {})", format_value(s.p99, Dim::TIME)));
    let outcome = outcome_label(probe.outcome);
    let why = probe.why.as_ref().map_or_else(String::new, |why| format!(": {why}"));
    format!("{} {outcome}{why}{latency}", load_text(probe.load, dim))
}

/// The profile log-likelihood of the capacity at `count` points from `from`
/// to `to` (log-load): the best over the spread at each.
fn profile(points: &[(f64, bool)], from: f64, to: f64, count: usize) -> Vec<(f64, f64)> {
    let spreads: Vec<f64> = (0..48).map(|i| MIN_SPREAD * (MAX_SPREAD / MIN_SPREAD).powf(f64::from(i) / 47.0)).collect();
    (0..count)
        .map(|i| {
            let u = from + (to - from) * i as f64 / (count - 1) as f64;
            let best = spreads.iter().map(|&s| log_likelihood(points, u, s)).fold(f64::NEG_INFINITY, f64::max);
            (u, best)
        })
        .collect()
}

fn log_likelihood(points: &[(f64, bool)], u: f64, s: f64) -> f64 {
    points
        .iter()
        .map(|&(x, passed)| {
            let z = (u - x) / s;
            if passed {
                log_sigmoid(z)
            } else {
                log_sigmoid(-z)
            }
        })
        .sum()
}

/// `ln(1 / (1 + e^-z))` without overflow.
fn log_sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        -(-z).exp().ln_1p()
    } else {
        z - z.exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_probes_give_an_interval_around_the_estimate(
            probes in prop::collection::vec((prop_oneof![1.0..1e6_f64, Just(0.0), Just(-5.0), Just(f64::NAN)], any::<bool>()), 0..30)
        ) {
            let found = estimate(&probes);
            if found.bound == Bound::Within {
                let capacity = found.capacity.unwrap();
                let (low, high) = found.interval.unwrap();
                prop_assert!(low.is_finite() && high.is_finite() && low > 0.0);
                prop_assert!(low <= capacity && capacity <= high, "{found:?}");
            } else {
                prop_assert!(found.capacity.is_none() && found.interval.is_none());
            }
        }
    }

    #[test]
    fn no_probes_all_passes_and_all_fails_say_where_the_capacity_lies() {
        assert_eq!(estimate(&[]).bound, Bound::Unknown);
        let above = estimate(&[(10.0, true), (20.0, true)]);
        assert_eq!((above.bound, above.highest_pass, above.capacity), (Bound::AboveRange, Some(20.0), None));
        let below = estimate(&[(10.0, false), (20.0, false)]);
        assert_eq!((below.bound, below.lowest_fail, below.interval), (Bound::BelowRange, Some(10.0), None));
    }

    #[test]
    fn a_sharp_edge_gives_the_gap_between_the_last_pass_and_the_first_fail() {
        // Repeated at both ends of the bracket, as the search does: a soft
        // edge would have mixed their outcomes.
        let mut probes = vec![(100.0, true), (200.0, true), (400.0, false), (300.0, true)];
        probes.extend([(350.0, false), (320.0, true)].repeat(4));
        let few = estimate(&probes[..6]);
        let found = estimate(&probes);
        let width = |e: &Estimate| e.interval.map(|(low, high)| high / low).unwrap();
        assert!(width(&few) > width(&found), "{few:?} {found:?}");
        assert_eq!(found.bound, Bound::Within);
        let capacity = found.capacity.unwrap();
        let (low, high) = found.interval.unwrap();
        // Within the bracket, give or take the smallest spread.
        assert!(320.0 * 0.98 < low && low < capacity && capacity < high && high < 350.0 * 1.02, "{found:?}");
        assert!((capacity - (320.0_f64 * 350.0).sqrt()).abs() < 1.0, "{capacity}");
    }

    #[test]
    fn contradicting_probes_widen_the_interval() {
        let sharp = estimate(&[(100.0, true), (110.0, false)]);
        let noisy =
            estimate(&[(90.0, true), (100.0, true), (100.0, false), (110.0, false), (110.0, true), (120.0, false)]);
        let width = |e: &Estimate| e.interval.map(|(low, high)| high / low).unwrap();
        assert!(width(&noisy) > width(&sharp), "{noisy:?} {sharp:?}");
        let (low, high) = noisy.interval.unwrap();
        assert!(low < 100.0 && high > 110.0, "{noisy:?}");
    }

    #[test]
    fn log_sigmoid_is_stable_at_the_extremes() {
        assert!((log_sigmoid(0.0) - 0.5_f64.ln()).abs() < 1e-12);
        assert!(log_sigmoid(1000.0).abs() < 1e-12);
        assert!((log_sigmoid(-1000.0) + 1000.0).abs() < 1e-9);
    }
}
