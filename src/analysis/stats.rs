//! Statistics for A/B comparisons of benchmark measurements, after Go's
//! benchstat and criterion.rs: medians, the two-sided Mann-Whitney U test,
//! a seeded bootstrap interval of the relative change of medians, and a
//! verdict that combines them. Every function is pure and total: empty
//! samples, NaN and infinities give `None` or a documented value, never a
//! panic. The bootstrap draws from its own splitmix64 so that analysis stays
//! independent of the engines and repeats exactly for a given seed.

use serde::Serialize;

use crate::rng::SplitMix;

/// Largest `n * m` for which a tie-free Mann-Whitney test is exact (covers both samples <= 25).
pub const EXACT_MANN_WHITNEY_LIMIT: usize = 625;

pub use crate::metric::Better;

/// The outcome of comparing a variant with its baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A significant change in the better direction.
    Improved,
    /// A significant change in the worse direction.
    Regressed,
    /// No change that passes the test, the interval and the noise threshold.
    NoSignificantChange,
    /// Samples too small for the test to ever reach significance.
    TooFewSamples,
}

impl Verdict {
    /// How people read it; a regression in capitals so that it stands out.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Regressed => "REGRESSED",
            Verdict::NoSignificantChange => "no significant change",
            Verdict::TooFewSamples => "too few samples to judge",
        }
    }
}

/// Settings of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CompareSettings {
    /// Significance level of the Mann-Whitney U test (0.05).
    pub alpha: f64,
    /// Relative changes smaller than this are noise whatever the test says (0.01 = 1%).
    pub noise: f64,
    /// Bootstrap resamples (10_000).
    pub resamples: u32,
    /// Confidence level of the interval (0.95).
    pub confidence: f64,
    /// Seed of the bootstrap.
    pub seed: u64,
}

impl Default for CompareSettings {
    fn default() -> Self {
        CompareSettings { alpha: 0.05, noise: 0.01, resamples: 10_000, confidence: 0.95, seed: 0 }
    }
}

/// A comparison of two samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// Median of the baseline sample.
    pub baseline_median: f64,
    /// Median of the variant sample.
    pub variant_median: f64,
    /// variant_median / baseline_median - 1.
    pub change: f64,
    /// Bootstrap percentile interval of `change` (low, high); (-inf, inf) when it cannot be computed.
    pub interval: (f64, f64),
    /// Two-sided Mann-Whitney U p-value.
    pub p_value: f64,
    /// Improved, regressed, no significant change, or too few samples.
    pub verdict: Verdict,
    /// Sample sizes (baseline, variant).
    pub samples: (usize, usize),
}

/// Median of a sample (mean of the middle two for even sizes); None if empty, any value is NaN,
/// or the middle two are -inf and +inf.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|value| value.is_nan()) {
        return None;
    }
    let mut sorted = values.to_vec();
    median_in_place(&mut sorted)
}

/// Median of NaN-free values, reordering them; None if empty or the middle two are -inf and +inf.
fn median_in_place(values: &mut [f64]) -> Option<f64> {
    values.sort_unstable_by(f64::total_cmp);
    let middle = values.len() / 2;
    let upper = *values.get(middle)?;
    if values.len() % 2 == 1 {
        return Some(upper);
    }
    let lower = *values.get(middle.checked_sub(1)?)?;
    let sum = lower + upper;
    let mean = if sum.is_finite() { sum / 2.0 } else { lower / 2.0 + upper / 2.0 };
    (!mean.is_nan()).then_some(mean)
}

/// The Wilson score 95% interval of a proportion: `successes` of `trials`.
/// Unlike the normal approximation it stays inside [0, 1] and is not empty
/// at 0 or 100%. None without trials.
pub fn wilson_interval(successes: u64, trials: u64) -> Option<(f64, f64)> {
    if trials == 0 || successes > trials {
        return None;
    }
    const Z: f64 = 1.959_963_984_540_054;
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 and 100% the interval ends exactly at the bound (rounding would leave it a hair inside).
    let low = if successes == 0 { 0.0 } else { (centre - half).max(0.0) };
    let high = if successes == trials { 1.0 } else { (centre + half).min(1.0) };
    Some((low, high))
}

/// Two-sided Mann-Whitney U test p-value for two independent samples.
///
/// Exact (the null distribution of U by dynamic programming) when there are no ties and
/// `n * m <= EXACT_MANN_WHITNEY_LIMIT`; otherwise the normal approximation with tie and
/// continuity corrections. None when either sample is empty or contains NaN; infinities rank
/// as the extremes. The result is in [0, 1]; all values tied gives 1.
pub fn mann_whitney_u(a: &[f64], b: &[f64]) -> Option<f64> {
    if !both_usable(a, b) {
        return None;
    }
    let ranks = rank_sum(a, b);
    let n = a.len() as f64;
    let u_a = ranks.sum_a - n * (n + 1.0) / 2.0;
    Some(p_value_for_u(a.len(), b.len(), u_a, ranks.tie_term, ranks.has_ties))
}

/// The rank sum of the first sample in the pooled ranking, with its ties.
struct RankSum {
    /// Sum of the (average) ranks of `a`'s values, ranks from 1.
    sum_a: f64,
    /// Σ (t³ − t) over groups of t tied values.
    tie_term: f64,
    /// Whether any value is tied.
    has_ties: bool,
}

/// Ranks `a` and `b` together (ties get their average rank); both NaN-free.
fn rank_sum(a: &[f64], b: &[f64]) -> RankSum {
    let mut pooled: Vec<(f64, bool)> =
        a.iter().map(|&value| (value, true)).chain(b.iter().map(|&value| (value, false))).collect();
    pooled.sort_unstable_by(|left, right| left.0.total_cmp(&right.0));
    let mut ranks = RankSum { sum_a: 0.0, tie_term: 0.0, has_ties: false };
    let mut start = 0;
    while start < pooled.len() {
        let mut end = start + 1;
        while end < pooled.len() && pooled[end].0 == pooled[start].0 {
            end += 1;
        }
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let from_a = pooled[start..end].iter().filter(|entry| entry.1).count();
        ranks.sum_a += average_rank * from_a as f64;
        let tied = (end - start) as f64;
        if end - start > 1 {
            ranks.has_ties = true;
            ranks.tie_term += tied * tied * tied - tied;
        }
        start = end;
    }
    ranks
}

/// Two-sided van Elteren test: the Mann-Whitney rank sums of several
/// strata (baseline, variant) combined with weights 1/(N+1), by the normal
/// approximation with the tie correction. It asks whether the variant is
/// shifted the same way across strata, such as the points of a matrix.
/// None when a stratum is empty or holds NaN, or there are no strata.
pub fn van_elteren(strata: &[(&[f64], &[f64])]) -> Option<f64> {
    if strata.is_empty() || !strata.iter().all(|(a, b)| both_usable(a, b)) {
        return None;
    }
    let (mut statistic, mut expected, mut variance) = (0.0, 0.0, 0.0);
    for (a, b) in strata {
        let ranks = rank_sum(a, b);
        let (n, m) = (a.len() as f64, b.len() as f64);
        let total = n + m;
        let weight = 1.0 / (total + 1.0);
        let ties = if total > 1.0 { ranks.tie_term / (total * (total - 1.0)) } else { 0.0 };
        statistic += weight * ranks.sum_a;
        expected += weight * n * (total + 1.0) / 2.0;
        variance += weight * weight * n * m / 12.0 * ((total + 1.0) - ties);
    }
    if variance.is_nan() || variance <= 0.0 {
        return Some(1.0);
    }
    let p = erfc((statistic - expected).abs() / variance.sqrt() / std::f64::consts::SQRT_2);
    Some(if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) })
}

/// The smallest p-value the van Elteren test can give for strata of these
/// sizes: every stratum perfectly separated, without ties.
fn van_elteren_best_p(sizes: &[(usize, usize)]) -> f64 {
    let strata: Vec<(Vec<f64>, Vec<f64>)> = sizes
        .iter()
        .map(|&(n, m)| ((0..n).map(|i| i as f64).collect(), (n..n + m).map(|i| i as f64).collect()))
        .collect();
    let borrowed: Vec<(&[f64], &[f64])> = strata.iter().map(|(a, b)| (a.as_slice(), b.as_slice())).collect();
    van_elteren(&borrowed).unwrap_or(1.0)
}

/// Whether both samples are nonempty and free of NaN.
fn both_usable(a: &[f64], b: &[f64]) -> bool {
    !a.is_empty() && !b.is_empty() && !a.iter().chain(b).any(|value| value.is_nan())
}

/// Two-sided p-value of statistic `u` for sizes `n`, `m`, choosing the exact or normal method.
fn p_value_for_u(n: usize, m: usize, u: f64, tie_term: f64, has_ties: bool) -> f64 {
    let p = if !has_ties && n.saturating_mul(m) <= EXACT_MANN_WHITNEY_LIMIT {
        exact_p_value(n, m, u)
    } else {
        normal_p_value(n, m, u, tie_term)
    };
    if p.is_nan() {
        1.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// Exact two-sided p-value of a tie-free U for sizes `n`, `m` (both nonzero, small).
fn exact_p_value(n: usize, m: usize, u: f64) -> f64 {
    let (small, large) = (n.min(m), n.max(m));
    let total = small * large;
    let nearer_tail = u.min(total as f64 - u).max(0.0).round() as usize;
    let distribution = exact_u_distribution(small, large);
    let tail: f64 = distribution.iter().take(nearer_tail + 1).sum();
    2.0 * tail
}

/// Null probabilities of U = 0..=n*m for tie-free samples of sizes `n` and `m`.
///
/// P(i, j, u) = i/(i+j) P(i-1, j, u-j) + j/(i+j) P(i, j-1, u): the largest value comes from
/// the first sample (and beats all j of the second) or from the second.
fn exact_u_distribution(n: usize, m: usize) -> Vec<f64> {
    let mut previous: Vec<Vec<f64>> = vec![vec![1.0]; m + 1];
    for i in 1..=n {
        let mut current: Vec<Vec<f64>> = Vec::with_capacity(m + 1);
        current.push(vec![1.0]);
        for j in 1..=m {
            let mut probabilities = vec![0.0; i * j + 1];
            let from_first = i as f64 / (i + j) as f64;
            let from_second = j as f64 / (i + j) as f64;
            for (u, &p) in previous[j].iter().enumerate() {
                probabilities[u + j] += from_first * p;
            }
            for (u, &p) in current[j - 1].iter().enumerate() {
                probabilities[u] += from_second * p;
            }
            current.push(probabilities);
        }
        previous = current;
    }
    previous.pop().unwrap_or_default()
}

/// Two-sided p-value of U by the normal approximation with tie and continuity corrections.
fn normal_p_value(n: usize, m: usize, u: f64, tie_term: f64) -> f64 {
    let (n, m) = (n as f64, m as f64);
    let total = n + m;
    let variance = n * m / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)));
    if variance.is_nan() || variance <= 0.0 {
        return 1.0;
    }
    let distance = ((u - n * m / 2.0).abs() - 0.5).max(0.0);
    erfc(distance / variance.sqrt() / std::f64::consts::SQRT_2)
}

/// Complementary error function for x >= 0 (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
pub(crate) fn erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let coefficients = [
        -1.265_512_23,
        1.000_023_68,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_203_98,
        1.488_515_87,
        -0.822_152_23,
        0.170_872_77,
    ];
    let poly = coefficients.iter().rev().fold(0.0, |acc, coefficient| acc * t + coefficient);
    t * (-x * x + poly).exp()
}

/// Bootstrap percentile interval of the relative change of medians, median(b*)/median(a*) - 1.
///
/// Each sample is resampled independently with replacement `resamples` times from a splitmix64
/// seeded with `seed`; the bounds are the (1-confidence)/2 and 1-(1-confidence)/2 quantiles
/// (linear interpolation). None when either sample is empty or has NaN, `resamples` is 0,
/// `confidence` is outside [0, 1], or a resampled baseline median is 0 or a change is NaN.
pub fn bootstrap_change_interval(a: &[f64], b: &[f64], settings: &CompareSettings) -> Option<(f64, f64)> {
    stratified_change_interval(&[(a, b)], settings)
}

/// The change of several strata combined: the geometric mean over strata
/// of median(b)/median(a), minus 1. One stratum gives its own change.
pub fn combined_change(strata: &[(&[f64], &[f64])]) -> Option<f64> {
    let mut log_sum = 0.0;
    for (a, b) in strata {
        let ratio = median(b)? / median(a)?;
        if !(ratio.is_finite() && ratio > 0.0) {
            return None;
        }
        log_sum += ratio.ln();
    }
    (!strata.is_empty()).then(|| (log_sum / strata.len() as f64).exp() - 1.0)
}

/// Bootstrap percentile interval of [`combined_change`], resampling each
/// stratum's two samples independently (one stratum: the plain bootstrap
/// of the change of medians). None as for [`bootstrap_change_interval`],
/// or when a resampled ratio is not positive and finite.
pub fn stratified_change_interval(strata: &[(&[f64], &[f64])], settings: &CompareSettings) -> Option<(f64, f64)> {
    if strata.is_empty()
        || !strata.iter().all(|(a, b)| both_usable(a, b))
        || settings.resamples == 0
        || !(0.0..=1.0).contains(&settings.confidence)
    {
        return None;
    }
    let mut generator = SplitMix::new(settings.seed);
    let mut scratch: Vec<(Vec<f64>, Vec<f64>)> =
        strata.iter().map(|(a, b)| (vec![0.0; a.len()], vec![0.0; b.len()])).collect();
    let mut changes = Vec::with_capacity(settings.resamples as usize);
    for _ in 0..settings.resamples {
        let mut log_sum = 0.0;
        for ((a, b), (resample_a, resample_b)) in strata.iter().zip(scratch.iter_mut()) {
            for slot in resample_a.iter_mut() {
                *slot = a[generator.below(a.len() as u64) as usize];
            }
            for slot in resample_b.iter_mut() {
                *slot = b[generator.below(b.len() as u64) as usize];
            }
            let baseline = median_in_place(resample_a)?;
            let variant = median_in_place(resample_b)?;
            if baseline == 0.0 {
                return None;
            }
            let ratio = variant / baseline;
            if strata.len() == 1 {
                log_sum = ratio - 1.0;
            } else if ratio.is_finite() && ratio > 0.0 {
                log_sum += ratio.ln();
            } else {
                return None;
            }
        }
        let change = if strata.len() == 1 { log_sum } else { (log_sum / strata.len() as f64).exp() - 1.0 };
        if change.is_nan() {
            return None;
        }
        changes.push(change);
    }
    changes.sort_unstable_by(f64::total_cmp);
    let tail = (1.0 - settings.confidence) / 2.0;
    Some((quantile_of_sorted(&changes, tail)?, quantile_of_sorted(&changes, 1.0 - tail)?))
}

/// Quantile `q` in [0, 1] of sorted NaN-free values by linear interpolation; None if empty.
fn quantile_of_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let position = q.clamp(0.0, 1.0) * (sorted.len().checked_sub(1)?) as f64;
    let below = position.floor() as usize;
    let fraction = position - below as f64;
    let low = *sorted.get(below)?;
    let high = *sorted.get(below + 1).unwrap_or(&low);
    if low == high || fraction == 0.0 {
        return Some(low);
    }
    if low.is_infinite() || high.is_infinite() {
        return Some(if fraction < 0.5 { low } else { high });
    }
    Some((low + (high - low) * fraction).clamp(low, high))
}

/// Compares variant sample `b` with baseline sample `a` for a metric where `better` says which direction is good.
///
/// TooFewSamples when either sample has fewer than 2 values or when even perfectly separated
/// samples of these sizes could not reach p < alpha (2 vs 2: the minimum exact p is 1/3).
/// Otherwise significant iff p < alpha, the interval lies strictly on the same side of 0 as
/// the change, and |change| >= noise; a significant change in the better direction is
/// Improved, in the other Regressed, else NoSignificantChange. None when either median cannot
/// be computed, the baseline median is 0, or the change is NaN (an infinite baseline median).
pub fn compare(a: &[f64], b: &[f64], better: Better, settings: &CompareSettings) -> Option<Comparison> {
    let baseline_median = median(a)?;
    let variant_median = median(b)?;
    if baseline_median == 0.0 {
        return None;
    }
    let change = variant_median / baseline_median - 1.0;
    if change.is_nan() {
        return None;
    }
    let p_value = mann_whitney_u(a, b)?;
    let interval = bootstrap_change_interval(a, b, settings).unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
    let best_possible_p = p_value_for_u(a.len(), b.len(), 0.0, 0.0, false);
    let enough = a.len() >= 2 && b.len() >= 2 && best_possible_p < settings.alpha;
    let verdict = judge(Evidence { change, interval, p_value, enough }, better, settings);
    let samples = (a.len(), b.len());
    Some(Comparison { baseline_median, variant_median, change, interval, p_value, verdict, samples })
}

/// What a verdict is decided from.
#[derive(Clone, Copy, Debug)]
pub struct Evidence {
    /// Relative change of the metric (variant over baseline, minus 1).
    pub change: f64,
    /// Its 95% interval.
    pub interval: (f64, f64),
    /// The p-value the verdict uses (raw, or adjusted for many tests).
    pub p_value: f64,
    /// Whether the samples could reach significance at all.
    pub enough: bool,
}

/// The verdict rule, the same for experiments and `compare`: significant
/// iff p < alpha, the interval lies on the change's side of 0 and
/// |change| >= the noise threshold; then improved or regressed by `better`.
pub fn judge(evidence: Evidence, better: Better, settings: &CompareSettings) -> Verdict {
    let Evidence { change, interval, p_value, enough } = evidence;
    if !enough {
        return Verdict::TooFewSamples;
    }
    let interval_agrees = (change > 0.0 && interval.0 > 0.0) || (change < 0.0 && interval.1 < 0.0);
    if p_value < settings.alpha && interval_agrees && change.abs() >= settings.noise {
        if (change < 0.0) == (better == Better::Lower) {
            Verdict::Improved
        } else {
            Verdict::Regressed
        }
    } else {
        Verdict::NoSignificantChange
    }
}

/// Compares variant with baseline over several strata (the points of a
/// matrix): the geometric mean of the points' changes of medians, its
/// stratified bootstrap interval and the van Elteren test. One stratum is
/// exactly [`compare`]. `baseline_median` and `variant_median` are the
/// geometric means of the points' medians.
pub fn compare_strata(strata: &[(&[f64], &[f64])], better: Better, settings: &CompareSettings) -> Option<Comparison> {
    if let [(a, b)] = strata {
        return compare(a, b, better, settings);
    }
    let change = combined_change(strata)?;
    let p_value = van_elteren(strata)?;
    let geometric = |first: bool| -> Option<f64> {
        let logs: Option<Vec<f64>> =
            strata.iter().map(|(a, b)| median(if first { a } else { b }).map(f64::ln)).collect();
        let logs = logs?;
        Some((logs.iter().sum::<f64>() / logs.len() as f64).exp())
    };
    let interval = stratified_change_interval(strata, settings).unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
    let sizes: Vec<(usize, usize)> = strata.iter().map(|(a, b)| (a.len(), b.len())).collect();
    let enough = sizes.iter().all(|&(n, m)| n >= 2 && m >= 2) && van_elteren_best_p(&sizes) < settings.alpha;
    let verdict = judge(Evidence { change, interval, p_value, enough }, better, settings);
    let samples = sizes.iter().fold((0, 0), |(n, m), &(a, b)| (n + a, m + b));
    Some(Comparison {
        baseline_median: geometric(true)?,
        variant_median: geometric(false)?,
        change,
        interval,
        p_value,
        verdict,
        samples,
    })
}

/// Benjamini–Hochberg adjusted p-values (q-values), in the input's order:
/// rejecting every q < alpha keeps the expected share of false discoveries
/// among the rejections at most alpha. NaN p-values count as 1.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let count = p_values.len();
    let mut order: Vec<usize> = (0..count).collect();
    let p = |index: usize| if p_values[index].is_nan() { 1.0 } else { p_values[index].clamp(0.0, 1.0) };
    order.sort_by(|&x, &y| p(x).total_cmp(&p(y)));
    let mut adjusted = vec![1.0; count];
    let mut running: f64 = 1.0;
    for (rank, &index) in order.iter().enumerate().rev() {
        running = running.min(p(index) * count as f64 / (rank + 1) as f64);
        adjusted[index] = running.min(1.0);
    }
    adjusted
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_wilson_interval_matches_published_values_and_stays_in_range() {
        // Newcombe (1998), table I: 81 of 263 gives 0.2553–0.3662.
        let (low, high) = super::wilson_interval(81, 263).unwrap();
        assert!((low - 0.2553).abs() < 5e-4 && (high - 0.3662).abs() < 5e-4, "{low} {high}");
        let (low, high) = super::wilson_interval(0, 10).unwrap();
        assert!(low == 0.0 && (high - 0.2775).abs() < 5e-4, "{high}");
        let (low, high) = super::wilson_interval(10, 10).unwrap();
        assert!(high == 1.0 && (low - 0.7225).abs() < 5e-4, "{low}");
        assert!(super::wilson_interval(0, 0).is_none() && super::wilson_interval(3, 2).is_none());
    }

    use super::*;
    use proptest::prelude::*;

    /// Settings with few resamples, so property tests stay fast.
    fn quick_settings(seed: u64) -> CompareSettings {
        CompareSettings { resamples: 200, seed, ..CompareSettings::default() }
    }

    #[test]
    fn median_of_known_samples() {
        let table: &[(&[f64], Option<f64>)] = &[
            (&[], None),
            (&[4.0], Some(4.0)),
            (&[3.0, 1.0, 2.0], Some(2.0)),
            (&[4.0, 1.0, 3.0, 2.0], Some(2.5)),
            (&[1.0, f64::NAN, 3.0], None),
            (&[f64::INFINITY, 1.0, 2.0], Some(2.0)),
            (&[f64::NEG_INFINITY, f64::INFINITY], None),
            (&[f64::MAX, f64::MAX], Some(f64::MAX)),
        ];
        for (values, expected) in table {
            assert_eq!(median(values), *expected, "median of {values:?}");
        }
    }

    #[test]
    fn mann_whitney_known_values() {
        let table: &[(&[f64], &[f64], f64)] = &[
            (&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0], 2.0 / 252.0),
            (&[1.0, 2.0], &[3.0, 4.0], 1.0 / 3.0),
            (&[1.0, 3.0], &[2.0, 4.0], 2.0 / 3.0),
            (&[1.0, 4.0], &[2.0, 3.0], 1.0),
            (&[5.0; 6], &[5.0; 4], 1.0),
            (&[7.0], &[7.0], 1.0),
        ];
        for (a, b, expected) in table {
            let p = mann_whitney_u(a, b).unwrap_or(f64::NAN);
            assert!((p - expected).abs() < 1e-12, "p({a:?}, {b:?}) = {p}, expected {expected}");
        }
        assert_eq!(mann_whitney_u(&[], &[1.0]), None);
        assert_eq!(mann_whitney_u(&[1.0, f64::NAN], &[1.0]), None);
    }

    #[test]
    fn exact_and_normal_agree_on_moderate_tie_free_samples() {
        for u in [50.0, 100.0, 130.0, 150.0, 170.0, 200.0, 250.0] {
            let (exact, normal) = (p_value_for_u(20, 20, u, 0.0, false), p_value_for_u(20, 20, u, 0.0, true));
            assert!((exact - normal).abs() < 0.01, "u = {u}: exact {exact}, normal {normal}");
        }
    }

    #[test]
    fn normal_approximation_with_ties_matches_hand_computation() {
        let a = [1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let b = [3.0, 4.0, 5.0, 5.0, 6.0, 7.0, 8.0, 9.0, 9.0, 10.0, 11.0];
        // U by counting pairs (a tie counts one half), the tie-corrected variance, and the
        // normal tail by Simpson's rule: independent of the ranks and of `erfc`.
        let pair_score = |x: f64, y: f64| f64::from(u8::from(x > y)) + 0.5 * f64::from(u8::from(x == y));
        let u: f64 = a.iter().flat_map(|&x| b.iter().map(move |&y| pair_score(x, y))).sum();
        let (n, m) = (10.0, 11.0);
        let ties: f64 = [2.0_f64, 2.0, 3.0, 3.0, 2.0, 2.0, 2.0, 2.0].iter().map(|t| t * t * t - t).sum();
        let sigma = (n * m / 12.0 * ((n + m + 1.0) - ties / ((n + m) * (n + m - 1.0)))).sqrt();
        let z = ((u - n * m / 2.0).abs() - 0.5) / sigma;
        let steps = 20_000;
        let width = (12.0 - z) / steps as f64;
        let density = |x: f64| (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let simpson: f64 = (0..=steps)
            .map(|k| {
                let weight = if k == 0 || k == steps { 1.0 } else { [2.0, 4.0][k % 2] };
                weight * density(z + k as f64 * width)
            })
            .sum::<f64>()
            * width
            / 3.0;
        let expected = 2.0 * simpson;
        let p = mann_whitney_u(&a, &b).unwrap_or(f64::NAN);
        assert!((p - expected).abs() < 1e-5, "p = {p}, expected {expected} (u = {u}, z = {z})");
        assert!(p > 0.01 && p < 0.1, "p = {p}");
    }

    #[test]
    fn bootstrap_interval_brackets_a_clear_change_and_repeats() {
        let a = [10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 10.3];
        let b: Vec<f64> = a.iter().map(|x| x * 1.5).collect();
        let settings = CompareSettings::default();
        let interval = bootstrap_change_interval(&a, &b, &settings);
        let (low, high) = interval.unwrap_or((f64::NAN, f64::NAN));
        assert!(low > 0.4 && high < 0.6 && low <= high, "{low} {high}");
        assert_eq!(bootstrap_change_interval(&a, &b, &settings), interval);
        assert_eq!(bootstrap_change_interval(&[0.0, 1.0], &b, &settings), None);
        assert_eq!(bootstrap_change_interval(&a, &b, &CompareSettings { resamples: 0, ..settings }), None);
    }

    #[test]
    fn compare_reports_too_few_samples_and_directions() {
        let settings = CompareSettings::default();
        let verdict = |a: &[f64], b: &[f64], better| compare(a, b, better, &settings).map(|c| c.verdict);
        let fast = [8.0, 8.1, 7.9, 8.05, 7.95];
        let slow = [10.0, 10.1, 9.9, 10.05, 9.95];
        type Case<'a> = (&'a [f64], &'a [f64], Better, Option<Verdict>);
        let table: &[Case] = &[
            (&[1.0, 2.0], &[3.0, 4.0], Better::Lower, Some(Verdict::TooFewSamples)),
            (&[1.0], &[3.0, 4.0, 5.0], Better::Lower, Some(Verdict::TooFewSamples)),
            (&slow, &fast, Better::Lower, Some(Verdict::Improved)),
            (&slow, &fast, Better::Higher, Some(Verdict::Regressed)),
            (&fast, &slow, Better::Higher, Some(Verdict::Improved)),
            (&slow, &slow, Better::Lower, Some(Verdict::NoSignificantChange)),
            (&[], &slow, Better::Lower, None),
            (&[0.0, 0.0, 1.0], &slow, Better::Lower, None),
            (&[f64::NAN, 1.0], &slow, Better::Lower, None),
        ];
        for (a, b, better, expected) in table {
            assert_eq!(verdict(a, b, *better), *expected, "{a:?} vs {b:?} ({better:?})");
        }
    }

    /// A normal draw by Box-Muller from the file's seeded generator.
    fn gaussian(generator: &mut SplitMix) -> f64 {
        let uniform = |generator: &mut SplitMix| ((generator.next_u64() >> 11) as f64 + 0.5) / (1_u64 << 53) as f64;
        let (u1, u2) = (uniform(generator), uniform(generator));
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Verdicts of `trials` seeded experiments of 5 vs 5 values with 2% noise, the variant scaled by `factor`.
    fn simulated_verdicts(trials: u64, factor: f64) -> Vec<Verdict> {
        let mut generator = SplitMix::new(42);
        (0..trials)
            .filter_map(|trial| {
                let mut draw = |scale: f64| -> Vec<f64> {
                    (0..5).map(|_| scale * (1.0 + 0.02 * gaussian(&mut generator))).collect()
                };
                let (baseline, variant) = (draw(1.0), draw(factor));
                let settings = CompareSettings { seed: trial, ..CompareSettings::default() };
                compare(&baseline, &variant, Better::Lower, &settings).map(|c| c.verdict)
            })
            .collect()
    }

    #[test]
    fn a_a_experiments_rarely_claim_a_change() {
        let verdicts = simulated_verdicts(40, 1.0);
        assert_eq!(verdicts.len(), 40);
        let false_alarms = verdicts.iter().filter(|&&v| v != Verdict::NoSignificantChange).count();
        assert!(false_alarms <= 4, "{false_alarms} false alarms: {verdicts:?}");
    }

    #[test]
    fn twenty_percent_faster_is_found() {
        let verdicts = simulated_verdicts(40, 0.8);
        let improved = verdicts.iter().filter(|&&v| v == Verdict::Improved).count();
        assert!(improved >= 38, "only {improved} of 40 improved: {verdicts:?}");
    }

    #[test]
    fn benjamini_hochberg_known_values() {
        // Worked by hand: sorted p 0.01, 0.02, 0.03, 0.5 with m = 4 give 0.04, 0.04, 0.04, 0.5.
        let q = benjamini_hochberg(&[0.03, 0.5, 0.01, 0.02]);
        let expected = [0.04, 0.5, 0.04, 0.04];
        for (got, want) in q.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{q:?}");
        }
        assert_eq!(benjamini_hochberg(&[]), Vec::<f64>::new());
        assert_eq!(benjamini_hochberg(&[f64::NAN, 0.2]), vec![1.0, 0.4]);
    }

    #[test]
    fn van_elteren_of_one_stratum_is_the_normal_mann_whitney_without_continuity() {
        let a = [1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let b = [3.0, 4.0, 5.0, 5.0, 6.0, 7.0, 8.0, 9.0, 9.0, 10.0, 11.0];
        let ranks = rank_sum(&a, &b);
        let (n, m) = (10.0, 11.0);
        let sigma = (n * m / 12.0 * ((n + m + 1.0) - ranks.tie_term / ((n + m) * (n + m - 1.0)))).sqrt();
        let z = (ranks.sum_a - n * (n + m + 1.0) / 2.0).abs() / sigma;
        let expected = erfc(z / std::f64::consts::SQRT_2);
        let p = van_elteren(&[(&a, &b)]).unwrap_or(f64::NAN);
        assert!((p - expected).abs() < 1e-12, "{p} vs {expected}");
    }

    #[test]
    fn strata_combine_a_consistent_shift() {
        let settings = CompareSettings::default();
        let slow = [10.0, 10.1, 9.9, 10.05, 9.95];
        let strata_values: Vec<(Vec<f64>, Vec<f64>)> = [1.0, 3.0, 10.0]
            .iter()
            .map(|scale| (slow.iter().map(|x| x * scale).collect(), slow.iter().map(|x| x * scale * 0.8).collect()))
            .collect();
        let strata: Vec<(&[f64], &[f64])> = strata_values.iter().map(|(a, b)| (a.as_slice(), b.as_slice())).collect();
        let combined = compare_strata(&strata, Better::Lower, &settings).map(|c| (c.verdict, c.change));
        let (verdict, change) = combined.unwrap_or((Verdict::TooFewSamples, f64::NAN));
        assert_eq!(verdict, Verdict::Improved);
        assert!((change + 0.2).abs() < 1e-9, "{change}");
        // The same values as one stratum: the plain comparison.
        assert_eq!(
            compare_strata(&strata[..1], Better::Lower, &settings),
            compare(strata[0].0, strata[0].1, Better::Lower, &settings)
        );
        // Opposite shifts cancel: no significant change.
        let mixed: Vec<(&[f64], &[f64])> = vec![strata[0], (strata[1].1, strata[1].0)];
        let verdict = compare_strata(&mixed, Better::Lower, &settings).map(|c| c.verdict);
        assert_eq!(verdict, Some(Verdict::NoSignificantChange));
    }

    fn small_integers() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec((-50_i32..50).prop_map(f64::from), 1..30)
    }

    fn any_values() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(prop_oneof![prop::num::f64::ANY, Just(f64::NAN), Just(f64::INFINITY)], 0..12)
    }

    proptest! {
        #[test]
        fn p_value_is_a_symmetric_probability(a in small_integers(), b in small_integers()) {
            let p = mann_whitney_u(&a, &b);
            prop_assert!(p.is_some_and(|p| (0.0..=1.0).contains(&p)), "{p:?}");
            prop_assert_eq!(p, mann_whitney_u(&b, &a));
        }

        #[test]
        fn p_value_ignores_shift_and_positive_scale(
            a in small_integers(), b in small_integers(), shift in -1_000_000_i32..1_000_000, scale in 0.001_f64..1000.0
        ) {
            let p = mann_whitney_u(&a, &b);
            let shifted = |xs: &[f64]| xs.iter().map(|x| x + f64::from(shift)).collect::<Vec<_>>();
            let scaled = |xs: &[f64]| xs.iter().map(|x| x * scale).collect::<Vec<_>>();
            prop_assert_eq!(p, mann_whitney_u(&shifted(&a), &shifted(&b)));
            prop_assert_eq!(p, mann_whitney_u(&scaled(&a), &scaled(&b)));
        }

        #[test]
        fn bootstrap_interval_is_ordered_bounded_and_repeatable(
            a in prop::collection::vec(0.5_f64..2.0, 1..15), b in prop::collection::vec(0.5_f64..2.0, 1..15), seed in any::<u64>()
        ) {
            let settings = quick_settings(seed);
            let interval = bootstrap_change_interval(&a, &b, &settings);
            let (low, high) = interval.unwrap_or((f64::NAN, f64::NAN));
            let (min_a, max_a) = a.iter().fold((f64::INFINITY, 0.0_f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            let (min_b, max_b) = b.iter().fold((f64::INFINITY, 0.0_f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            prop_assert!(low <= high, "{low} > {high}");
            prop_assert!(min_b / max_a - 1.0 <= low && high <= max_b / min_a - 1.0, "{low} {high}");
            prop_assert_eq!(interval, bootstrap_change_interval(&a, &b, &settings));
        }

        #[test]
        fn q_values_are_probabilities_at_least_p(p in prop::collection::vec(prop_oneof![0.0_f64..=1.0, Just(f64::NAN)], 0..40)) {
            let q = benjamini_hochberg(&p);
            prop_assert_eq!(q.len(), p.len());
            for (q, p) in q.iter().zip(&p) {
                prop_assert!((0.0..=1.0).contains(q));
                prop_assert!(p.is_nan() || *q >= *p - 1e-15);
            }
        }

        #[test]
        fn compare_strata_is_total(a in any_values(), b in any_values(), c in any_values(), seed in any::<u64>()) {
            let strata: Vec<(&[f64], &[f64])> = vec![(&a, &b), (&b, &c)];
            if let Some(comparison) = compare_strata(&strata, Better::Lower, &quick_settings(seed)) {
                prop_assert!((0.0..=1.0).contains(&comparison.p_value));
                prop_assert!(!comparison.change.is_nan());
                prop_assert!(comparison.interval.0 <= comparison.interval.1);
            }
        }

        #[test]
        fn compare_is_total(a in any_values(), b in any_values(), seed in any::<u64>(), better_is_lower in any::<bool>()) {
            let better = if better_is_lower { Better::Lower } else { Better::Higher };
            if let Some(comparison) = compare(&a, &b, better, &quick_settings(seed)) {
                prop_assert!((0.0..=1.0).contains(&comparison.p_value));
                prop_assert!(!comparison.change.is_nan());
                prop_assert!(comparison.interval.0 <= comparison.interval.1);
            }
        }
    }
}
