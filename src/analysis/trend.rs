//! Is a quantity growing over time? The endurance test's leak verdict.
//!
//! Memory sampled through a run is noisy and moves in steps (pages, arenas),
//! so the trend is judged without assuming normal, independent residuals:
//! the steady part of the run (its second half, after caches and pools have
//! filled) is cut into [`WINDOWS`] equal windows, each summarised by its
//! median; the slope is Theil and Sen's (the median of all pairwise slopes)
//! with its distribution-free 95% interval, and the Mann-Kendall test says
//! whether the windows rise more often than chance allows.
//!
//! A leak is suspected when the rise is significant (p < 0.05, the interval
//! above zero) and material: over the part judged it adds more than
//! [`MATERIAL_BYTES`] and more than [`MATERIAL_SHARE`] of the level. A short
//! run therefore only catches fast leaks; the slowest rise it would have
//! caught is reported with the verdict, and a longer run lowers it.

use serde::Serialize;

use super::stats::erfc;

/// Windows the steady part is cut into.
pub const WINDOWS: usize = 10;
/// Shortest run that gets a verdict, in seconds.
pub const MIN_SECONDS: f64 = 10.0;
/// Rise over the part judged, as a share of the level, below which a
/// significant rise is not called a leak.
pub const MATERIAL_SHARE: f64 = 0.005;
/// Rise over the part judged, in the series' unit (bytes), below which a
/// significant rise is not called a leak: the harness's own histograms may
/// still grow by some kilobytes when a rare slow operation arrives.
pub const MATERIAL_BYTES: f64 = 1024.0 * 1024.0;

/// What the samples say about growth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakVerdict {
    /// No significant growth in the steady part.
    NoLeak,
    /// Significant growth, but too little over the part judged to call a
    /// leak; a longer run would tell.
    SlowGrowth,
    /// Significant, material growth in the steady part.
    LeakSuspected,
    /// Too short or too few samples to judge.
    TooShort,
}

impl LeakVerdict {
    /// The verdict as the reports print it.
    pub fn text(self) -> &'static str {
        match self {
            LeakVerdict::NoLeak => "no leak: stable",
            LeakVerdict::SlowGrowth => "no leak yet: growing slowly",
            LeakVerdict::LeakSuspected => "LEAK SUSPECTED: still growing",
            LeakVerdict::TooShort => "too short to judge",
        }
    }
}

/// The trend of one series over a run's steady part.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Growth {
    /// Theil–Sen slope, units per second.
    pub slope: f64,
    /// Lower end of its 95% interval.
    pub low: f64,
    /// Upper end of its 95% interval.
    pub high: f64,
    /// Two-sided Mann-Kendall p-value of a monotonic trend.
    pub p_value: f64,
    /// Start and end of the part judged, seconds.
    pub from: f64,
    /// End of the part judged, seconds.
    pub to: f64,
    /// Mean level over the part judged.
    pub mean: f64,
    /// The slowest growth per second this run would have called a leak.
    pub detectable: f64,
    /// The verdict.
    pub verdict: LeakVerdict,
}

/// The trend of `(seconds, value)` samples in time order, or `None` with
/// fewer than three samples per window in the steady part. `level` is what
/// a rise is measured against for [`MATERIAL_SHARE`] (the process's size;
/// 0 for a series of net growth such as the live heap).
pub fn growth(samples: &[(f64, f64)], level: f64) -> Option<Growth> {
    let end = samples.last()?.0;
    let from = end / 2.0;
    let steady: Vec<(f64, f64)> = samples.iter().copied().filter(|(t, v)| *t >= from && v.is_finite()).collect();
    let width = (end - from) / WINDOWS as f64;
    if width <= 0.0 {
        return None;
    }
    let mut windows: Vec<(f64, f64)> = Vec::with_capacity(WINDOWS);
    for index in 0..WINDOWS {
        let (start, stop) = (from + width * index as f64, from + width * (index + 1) as f64);
        let mut values: Vec<f64> = steady
            .iter()
            .filter(|(t, _)| *t >= start && (*t < stop || index == WINDOWS - 1 && *t <= stop))
            .map(|(_, v)| *v)
            .collect();
        if values.len() < 3 {
            return None;
        }
        values.sort_by(f64::total_cmp);
        windows.push(((start + stop) / 2.0, super::stats::median(&values)?));
    }
    let (slope, low, high) = theil_sen(&windows)?;
    let p_value = mann_kendall(&windows.iter().map(|(_, v)| *v).collect::<Vec<_>>());
    let mean = windows.iter().map(|(_, v)| v).sum::<f64>() / windows.len() as f64;
    let material = (MATERIAL_SHARE * level.abs()).max(MATERIAL_BYTES);
    let detectable = material / (end - from);
    let verdict = if end < MIN_SECONDS {
        LeakVerdict::TooShort
    } else if p_value < 0.05 && low > 0.0 && slope > detectable {
        LeakVerdict::LeakSuspected
    } else if p_value < 0.05 && low > 0.0 {
        LeakVerdict::SlowGrowth
    } else {
        LeakVerdict::NoLeak
    };
    Some(Growth { slope, low, high, p_value, from, to: end, mean, detectable, verdict })
}

/// Theil–Sen slope of points with its 95% interval (Sen 1968): the median of
/// every pairwise slope, and the pairwise slopes at the ranks Kendall's
/// statistic's variance (tie-corrected, as in the trend test) puts around it.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    let mut slopes = Vec::new();
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if b.0 != a.0 {
                slopes.push((b.1 - a.1) / (b.0 - a.0));
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let median = super::stats::median(&slopes)?;
    let count = slopes.len() as f64;
    let values: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
    let spread = 1.96 * kendall_variance(&values).sqrt();
    let last = slopes.len() - 1;
    let lower = (((count - spread) / 2.0).round() as isize - 1).clamp(0, last as isize) as usize;
    let upper = (((count + spread) / 2.0).round() as usize).min(last);
    Some((median, slopes[lower], slopes[upper]))
}

/// Two-sided p-value of the Mann-Kendall trend test, with the variance
/// corrected for ties and a continuity correction.
pub fn mann_kendall(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 3 {
        return 1.0;
    }
    let mut s = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            s += match values[j].total_cmp(&values[i]) {
                std::cmp::Ordering::Greater => 1,
                std::cmp::Ordering::Less => -1,
                std::cmp::Ordering::Equal => 0,
            };
        }
    }
    let variance = kendall_variance(values);
    if variance <= 0.0 || s == 0 {
        return 1.0;
    }
    let z = (s.abs() as f64 - 1.0) / variance.sqrt();
    erfc(z / std::f64::consts::SQRT_2).min(1.0)
}

/// Variance of Kendall's S for `values` under no trend, corrected for ties
/// (tied values, such as window medians of memory moving in whole pages,
/// lower it).
fn kendall_variance(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut run = 1.0;
    for pair in sorted.windows(2) {
        if pair[0] == pair[1] {
            run += 1.0;
        } else {
            ties += run * (run - 1.0) * (2.0 * run + 5.0);
            run = 1.0;
        }
    }
    ties += run * (run - 1.0) * (2.0 * run + 5.0);
    let n = values.len() as f64;
    (n * (n - 1.0) * (2.0 * n + 5.0) - ties) / 18.0
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A seeded splitmix64 stream of uniform numbers in [0, 1).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as f64 / u64::MAX as f64
        }
    }

    /// `seconds` of samples every 50 ms around 100 MiB, with a settling rise
    /// in the first 20%, step noise of ±`noise` bytes and `slope` bytes/s.
    fn series(seconds: f64, slope: f64, noise: f64, seed: u64) -> Vec<(f64, f64)> {
        let mut random = uniform(seed);
        let base = 100.0 * 1024.0 * 1024.0;
        (0..(seconds * 20.0) as usize)
            .map(|i| {
                let t = i as f64 * 0.05;
                let settling = 50e6 * (t / (seconds * 0.2)).min(1.0);
                let steps = (noise * (random() * 2.0 - 1.0) / 4096.0).round() * 4096.0;
                (t, base + settling + slope * t + steps)
            })
            .collect()
    }

    #[test]
    fn a_flat_series_after_settling_is_no_leak() {
        let mut flagged = 0;
        for seed in 0..40 {
            let g = growth(&series(60.0, 0.0, 2e6, seed), 150e6).unwrap();
            assert_ne!(g.verdict, LeakVerdict::LeakSuspected, "seed {seed}: {g:?}");
            flagged += usize::from(g.verdict == LeakVerdict::SlowGrowth);
            assert!(g.low <= 0.0 && g.high >= 0.0 || g.verdict == LeakVerdict::LeakSuspected);
        }
        assert!(flagged <= 4, "{flagged} of 40 stable series were called growing");
    }

    #[test]
    fn a_steady_rise_is_a_leak_and_its_slope_is_recovered() {
        // 100 KiB/s: 350 MiB an hour.
        for seed in 0..20 {
            let g = growth(&series(60.0, 102_400.0, 2e6, seed), 150e6).unwrap();
            assert_eq!(g.verdict, LeakVerdict::LeakSuspected, "seed {seed}: {g:?}");
            assert!(g.low <= 102_400.0 && 102_400.0 <= g.high, "seed {seed}: {g:?}");
        }
    }

    #[test]
    fn a_tiny_significant_rise_is_not_material() {
        // 1 KB/s without noise is significant but adds only 30 KB in the 30 s judged.
        let g = growth(&series(60.0, 1000.0, 0.0, 1), 150e6).unwrap();
        assert!(g.p_value < 0.05 && g.low > 0.0);
        assert_eq!(g.verdict, LeakVerdict::SlowGrowth);
        // Over an hour the same rise adds 1.8 MB in the half judged: a leak.
        let g = growth(&series(3600.0, 1000.0, 0.0, 1), 0.0).unwrap();
        assert_eq!(g.verdict, LeakVerdict::LeakSuspected, "{g:?}");
        assert!(g.detectable < 1000.0);
    }

    #[test]
    fn short_or_sparse_runs_are_not_judged() {
        assert_eq!(growth(&series(5.0, 1e6, 0.0, 1), 0.0).unwrap().verdict, LeakVerdict::TooShort);
        assert!(growth(&[(0.0, 1.0), (1.0, 2.0)], 0.0).is_none());
        assert!(growth(&[], 0.0).is_none());
    }

    #[test]
    fn mann_kendall_matches_known_values() {
        // Strictly rising, n = 10: S = 45, var = 125, z = 44/√125 = 3.935.
        let rising: Vec<f64> = (0..10).map(f64::from).collect();
        assert!((mann_kendall(&rising) - 8.3e-5).abs() < 1e-5);
        assert_eq!(mann_kendall(&[5.0; 10]), 1.0);
    }

    proptest! {
        #[test]
        fn growth_never_panics_and_orders_its_interval(
            values in proptest::collection::vec(-1e12f64..1e12, 0..200),
            step in 0.001f64..10.0,
        ) {
            let samples: Vec<(f64, f64)> = values.iter().enumerate().map(|(i, v)| (i as f64 * step, *v)).collect();
            if let Some(g) = growth(&samples, 1e9) {
                prop_assert!(g.low <= g.slope && g.slope <= g.high);
                prop_assert!((0.0..=1.0).contains(&g.p_value));
            }
        }
    }
}
