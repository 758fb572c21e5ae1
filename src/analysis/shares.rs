//! Where the time of an operation went: each metric an engine declares as
//! `part_of` the latency, as a share of the mean latency with its
//! uncertainty, ranked, with the remainder as `other` and the largest named
//! as the bottleneck.

use serde::Serialize;

use crate::metric::names;
use crate::results::{RunRecord, Summary};

/// One named part of an operation's time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Share {
    /// The metric, such as `attention_time`.
    pub metric: String,
    /// Its name for people, without the `_time` suffix.
    pub name: String,
    /// Its mean over the operation's mean latency, 0–1.
    pub share: f64,
    /// Half-width of the share's 95% interval.
    pub uncertainty: f64,
}

/// The time shares of one run, largest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimeShares {
    /// Id of the run.
    pub run: String,
    /// The named parts, largest first.
    pub parts: Vec<Share>,
    /// What no named part covers, 0–1 (negative when parts overlap).
    pub other: f64,
    /// The largest part's name: the bottleneck.
    pub bottleneck: String,
}

/// 95% confidence half-width of a mean (Student's t, normal beyond 30 samples).
pub fn mean_half_width(summary: &Summary) -> f64 {
    const T95: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    if summary.count < 2 {
        return f64::NAN;
    }
    let freedom = (summary.count - 1) as usize;
    let t = T95.get(freedom - 1).copied().unwrap_or(1.96);
    t * summary.stddev / (summary.count as f64).sqrt()
}

/// The time shares of `run`, or `None` when its engine reports none.
pub fn of_run(run: &RunRecord) -> Option<TimeShares> {
    let whole = run.metrics.get(names::LATENCY).and_then(|m| m.summary).filter(|s| s.count > 0 && s.mean > 0.0)?;
    let mut parts: Vec<(&str, Summary)> = run
        .metrics
        .iter()
        .filter(|(_, metric)| metric.part_of.as_deref() == Some(names::LATENCY))
        .filter_map(|(name, metric)| Some((name.as_str(), metric.summary.filter(|s| s.count > 0)?)))
        .collect();
    if parts.is_empty() {
        return None;
    }
    parts.sort_by(|a, b| b.1.mean.total_cmp(&a.1.mean));
    // Relative uncertainty of a ratio of means: the two relative errors in quadrature.
    let whole_relative = mean_half_width(&whole) / whole.mean;
    let shares: Vec<Share> = parts
        .iter()
        .map(|(metric, part)| {
            let share = part.mean / whole.mean;
            let relative = mean_half_width(part) / part.mean.max(f64::MIN_POSITIVE);
            Share {
                metric: (*metric).to_owned(),
                name: metric.trim_end_matches("_time").to_owned(),
                share,
                uncertainty: share * (relative * relative + whole_relative * whole_relative).sqrt(),
            }
        })
        .collect();
    let named: f64 = shares.iter().map(|share| share.share).sum();
    Some(TimeShares { run: run.id.clone(), bottleneck: shares[0].name.clone(), other: 1.0 - named, parts: shares })
}

/// The share of `metric` in `run`'s mean latency, if both were measured.
pub fn share_of(run: &RunRecord, metric: &str) -> Option<f64> {
    let whole = run.metrics.get(names::LATENCY)?.summary.filter(|s| s.count > 0 && s.mean > 0.0)?;
    let part = run.metrics.get(metric)?.summary.filter(|s| s.count > 0)?;
    Some(part.mean / whole.mean)
}
