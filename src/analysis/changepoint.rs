//! Where did a series of runs change? E-Divisive means (Matteson and James,
//! 2014), the method MongoDB runs over its CI performance history.
//!
//! Each run is one observation: a number (a metric's median) or a vector
//! (a distribution's log-quantile profile, so that a change in the tail alone
//! moves it). For every split `τ` of a window into `X = [a, τ)` and
//! `Y = [τ, b)` the energy statistic is
//!
//! ```text
//! q(τ) = n·m / (n + m) · ( 2/(n·m) Σ|Xi − Yj| − 1/n² Σ|Xi − Xj| − 1/m² Σ|Yi − Yj| )
//! ```
//!
//! (`|·|` the Euclidean distance, α = 1): large when the two sides differ in
//! any way, location or spread. The best split of the window is the
//! candidate. Whether it is real is a permutation test: the window's runs
//! are shuffled `permutations` times, and the share of shuffles whose best
//! split scores at least as high, counted as `k / (permutations + 1)`, is its
//! p-value. A significant split becomes a change point and divides its
//! window; the search repeats over every window until the best candidate is
//! not significant.
//!
//! Everything but the shuffles is deterministic, and the shuffles are
//! seeded: the same series gives the same change points on every machine.
//! `tests/changepoints.rs` checks the change points against MongoDB's
//! `signal-processing-algorithms` on a corpus of seeded series.

use serde::Serialize;

use crate::rng::SplitMix;

/// The settings of one search: MongoDB's p-value, and ten times its 100
/// shuffles, so that a p-value near the threshold is not decided by chance
/// (a thousand shuffles of a few hundred runs take milliseconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// The p-value a candidate must reach.
    pub p_value: f64,
    /// Shuffles per permutation test.
    pub permutations: usize,
    /// Seed of the shuffles.
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { p_value: 0.05, permutations: 1000, seed: 0x5eed_c4a9 }
    }
}

/// One change point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChangePoint {
    /// The first observation after the change.
    pub index: usize,
    /// Its energy statistic `q`.
    pub statistic: f64,
    /// Its permutation p-value.
    pub p_value: f64,
}

/// The change points of `observations` (rows of equal length), in the order
/// they were found: the most pronounced first. Rows of unequal length, or
/// with values that are not finite, make the distances meaningless: such a
/// series has none.
pub fn e_divisive(observations: &[Vec<f64>], settings: &Settings) -> Vec<ChangePoint> {
    let width = observations.first().map_or(0, Vec::len);
    if observations.iter().any(|row| row.len() != width || row.iter().any(|v| !v.is_finite())) {
        return Vec::new();
    }
    let distances = Distances::of(observations);
    let mut rng = SplitMix::new(settings.seed);
    let mut found: Vec<ChangePoint> = Vec::new();
    // The best split of each window, by its bounds: windows that no new
    // change point divides keep theirs.
    let mut best_of: Vec<((usize, usize), (usize, f64))> = Vec::new();
    loop {
        let windows = windows(observations.len(), &found);
        let mut candidate: Option<(usize, f64)> = None;
        for &(a, b) in &windows {
            let best = match best_of.iter().find(|(bounds, _)| *bounds == (a, b)) {
                Some((_, best)) => *best,
                None => {
                    let order: Vec<usize> = (a..b).collect();
                    let (split, statistic) = best_split(&distances, &order);
                    best_of.push(((a, b), (a + split, statistic)));
                    (a + split, statistic)
                }
            };
            if candidate.is_none_or(|(_, top)| best.1 > top) {
                candidate = Some(best);
            }
        }
        let Some((index, statistic)) = candidate else { break };
        let mut at_least = 0usize;
        for _ in 0..settings.permutations {
            let mut top = f64::NEG_INFINITY;
            for &(a, b) in &windows {
                let mut order: Vec<usize> = (a..b).collect();
                shuffle(&mut order, &mut rng);
                top = top.max(best_split(&distances, &order).1);
            }
            // A shuffle that reproduces the split scores the same, up to
            // the order the sums were added in.
            if top >= statistic * (1.0 - 1e-12) {
                at_least += 1;
            }
        }
        let p_value = at_least as f64 / (settings.permutations + 1) as f64;
        // A split at a window's start divides nothing (a constant window's
        // statistics are all zero).
        if p_value > settings.p_value || index == 0 || found.iter().any(|point| point.index == index) {
            break;
        }
        found.push(ChangePoint { index, statistic, p_value });
    }
    found
}

/// The statistic of every split of the whole series (0 before the first
/// observation): what the first candidate is chosen from.
pub fn split_statistics(observations: &[Vec<f64>]) -> Vec<f64> {
    let distances = Distances::of(observations);
    let order: Vec<usize> = (0..observations.len()).collect();
    splits(&distances, &order).collect()
}

/// The windows the change points found so far cut `0..len` into.
fn windows(len: usize, found: &[ChangePoint]) -> Vec<(usize, usize)> {
    let mut cuts: Vec<usize> = found.iter().map(|point| point.index).collect();
    cuts.sort_unstable();
    let mut bounds = vec![0];
    bounds.extend(cuts);
    bounds.push(len);
    bounds.windows(2).map(|pair| (pair[0], pair[1])).collect()
}

/// Pairwise Euclidean distances between observations.
struct Distances {
    len: usize,
    values: Vec<f64>,
}

impl Distances {
    fn of(observations: &[Vec<f64>]) -> Distances {
        let len = observations.len();
        let mut values = vec![0.0; len * len];
        for i in 0..len {
            for j in 0..i {
                let distance =
                    observations[i].iter().zip(&observations[j]).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
                values[i * len + j] = distance;
                values[j * len + i] = distance;
            }
        }
        Distances { len, values }
    }

    fn get(&self, i: usize, j: usize) -> f64 {
        self.values[i * self.len + j]
    }
}

/// The split of the observations `order` names (in that order) with the
/// highest statistic: its position in `order` and the statistic. Ties go to
/// the earliest split; position 0 (nothing before it) scores 0.
fn best_split(distances: &Distances, order: &[usize]) -> (usize, f64) {
    let mut best = (0, 0.0);
    for (tau, statistic) in splits(distances, order).enumerate() {
        if statistic > best.1 {
            best = (tau, statistic);
        }
    }
    best
}

/// The statistic of each split of `order`, from position 0 (running sums:
/// O(len²) in all).
fn splits<'a>(distances: &'a Distances, order: &'a [usize]) -> impl Iterator<Item = f64> + 'a {
    let len = order.len();
    // Sums over unordered pairs: within X = order[..tau], within Y =
    // order[tau..], and across.
    let mut within_x = 0.0;
    let mut within_y = 0.0;
    for i in 0..len {
        for j in i + 1..len {
            within_y += distances.get(order[i], order[j]);
        }
    }
    let mut across = 0.0;
    (0..len).map(move |tau| {
        let statistic = statistic(within_x, within_y, across, tau, len - tau);
        // Move order[tau] from Y to X.
        let to_x: f64 = order[..tau].iter().map(|&i| distances.get(i, order[tau])).sum();
        let to_y: f64 = order[tau + 1..].iter().map(|&j| distances.get(order[tau], j)).sum();
        across += to_y - to_x;
        within_x += to_x;
        within_y -= to_y;
        statistic
    })
}

/// `q` for a split with `n` observations before it and `m` after.
fn statistic(within_x: f64, within_y: f64, across: f64, n: usize, m: usize) -> f64 {
    if n == 0 || m == 0 {
        return 0.0;
    }
    let (n, m) = (n as f64, m as f64);
    let energy = 2.0 * across / (n * m) - 2.0 * within_x / (n * n) - 2.0 * within_y / (m * m);
    n * m / (n + m) * energy
}

/// Fisher–Yates.
fn shuffle(order: &mut [usize], rng: &mut SplitMix) {
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
}

/// The quantiles a distribution's profile is read at.
pub const PROFILE_QUANTILES: [f64; 7] = [0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999];

/// Observations beyond a quantile for it to be in a profile.
const BEYOND: f64 = 10.0;

/// The quantiles of [`PROFILE_QUANTILES`] that `count` observations read
/// well: at least 10 beyond each.
pub fn profile_quantiles(count: u64) -> Vec<f64> {
    PROFILE_QUANTILES.into_iter().filter(|q| (1.0 - q) * count as f64 >= BEYOND).collect()
}

/// A distribution's shape as one observation: the natural logarithm of
/// each quantile (in the histogram's own unit, at least 1). A distance
/// between two profiles weighs a doubling of the p99 as much as a doubling
/// of the median, which the energy distance between the raw distributions
/// does not: there the 1% that moved is drowned by the sampling noise of
/// the other 99%.
pub fn log_profile(histogram: &hdrhistogram::Histogram<u64>, quantiles: &[f64]) -> Vec<f64> {
    quantiles.iter().map(|q| (histogram.value_at_quantile(*q).max(1) as f64).ln()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(values: &[f64]) -> Vec<Vec<f64>> {
        values.iter().map(|v| vec![*v]).collect()
    }

    #[test]
    fn a_step_is_found_where_it_starts() {
        let mut rng = SplitMix::new(7);
        let series: Vec<f64> = (0..40).map(|i| if i < 25 { 10.0 } else { 12.0 } + rng.next_f64() * 0.5).collect();
        let found = e_divisive(&rows(&series), &Settings::default());
        assert_eq!(found.iter().map(|p| p.index).collect::<Vec<_>>(), vec![25]);
        assert!(found[0].p_value <= 0.05);
    }

    #[test]
    fn noise_alone_has_no_change_point() {
        let mut rng = SplitMix::new(11);
        let series: Vec<f64> = (0..40).map(|_| 10.0 + rng.next_f64()).collect();
        assert!(e_divisive(&rows(&series), &Settings::default()).is_empty());
    }

    #[test]
    fn short_constant_and_broken_series_have_none() {
        assert!(e_divisive(&[], &Settings::default()).is_empty());
        assert!(e_divisive(&rows(&[1.0]), &Settings::default()).is_empty());
        assert!(e_divisive(&rows(&[3.0; 20]), &Settings::default()).is_empty());
        assert!(e_divisive(&rows(&[1.0, f64::NAN, 2.0]), &Settings::default()).is_empty());
        assert!(e_divisive(&[vec![1.0], vec![1.0, 2.0]], &Settings::default()).is_empty());
    }

    proptest::proptest! {
        /// Any series, however short or odd, gives change points inside it,
        /// each once, never at its start.
        #[test]
        fn any_series_gives_change_points_inside_it(
            values in proptest::collection::vec(proptest::prop_oneof![-1e6..1e6f64, proptest::strategy::Just(f64::NAN), proptest::strategy::Just(0.0)], 0..40)
        ) {
            let found = e_divisive(&rows(&values), &Settings { permutations: 20, ..Settings::default() });
            let mut indices: Vec<usize> = found.iter().map(|point| point.index).collect();
            proptest::prop_assert!(indices.iter().all(|index| *index > 0 && *index < values.len()));
            indices.sort_unstable();
            indices.dedup();
            proptest::prop_assert_eq!(indices.len(), found.len());
        }
    }

    /// The running sums agree with the statistic computed from scratch.
    #[test]
    fn the_running_sums_match_the_definition() {
        let mut rng = SplitMix::new(3);
        let observations: Vec<Vec<f64>> = (0..17).map(|_| vec![rng.next_f64(), rng.next_f64() * 3.0]).collect();
        let distances = Distances::of(&observations);
        let order: Vec<usize> = (0..17).rev().collect();
        let (split, top) = best_split(&distances, &order);
        let mut best = (0, 0.0);
        for tau in 1..17 {
            let (x, y) = order.split_at(tau);
            let sum = |a: &[usize], b: &[usize]| {
                a.iter().flat_map(|&i| b.iter().map(move |&j| (i, j))).map(|(i, j)| distances.get(i, j)).sum::<f64>()
            };
            let statistic = statistic(sum(x, x) / 2.0, sum(y, y) / 2.0, sum(x, y), x.len(), y.len());
            if statistic > best.1 {
                best = (tau, statistic);
            }
        }
        assert_eq!(split, best.0);
        assert!((top - best.1).abs() < 1e-9 * best.1);
    }
}
