//! The capacity search (`run::search`) and its estimate
//! (`analysis::capacity`) against simulated systems whose capacity is known.

use phasebench::analysis::capacity::{estimate, Bound, Estimate};
use phasebench::run::search::{Finish, Outcome, Scale, Search};

/// A seeded stream of uniform numbers in [0, 1) (splitmix64).
struct Uniform(u64);

impl Uniform {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// Searches a system whose probes pass with probability
/// `1 / (1 + exp((ln load − ln capacity) / spread))`.
fn search(capacity: f64, spread: f64, seed: u64, range: (f64, f64)) -> (Estimate, Finish, usize) {
    let mut uniform = Uniform(seed);
    let mut search = Search::new(range.0, range.1, Scale::Continuous);
    let finish = loop {
        match search.next() {
            Ok(load) => {
                let pass = if spread == 0.0 {
                    load < capacity
                } else {
                    uniform.next() < 1.0 / (1.0 + ((load.ln() - capacity.ln()) / spread).exp())
                };
                search.record(load, if pass { Outcome::Pass } else { Outcome::Fail });
            }
            Err(finish) => break finish,
        }
    };
    let probes: Vec<(f64, bool)> = search
        .probes()
        .iter()
        .filter(|(_, o)| *o != Outcome::Lagged)
        .map(|&(load, o)| (load, o == Outcome::Pass))
        .collect();
    (estimate(&probes), finish, probes.len())
}

fn found(estimate: &Estimate, capacity: f64) -> (bool, bool) {
    let (Some(value), Some((low, high))) = (estimate.capacity, estimate.interval) else { return (false, false) };
    ((value / capacity - 1.0).abs() <= 0.05, low <= capacity && capacity <= high)
}

#[test]
fn a_sharp_edge_is_found_within_two_percent_every_time() {
    for capacity in [37.0, 4_000.0, 19_000.0] {
        let (estimate, finish, probes) = search(capacity, 0.0, 1, (10.0, 20_000.0));
        assert_eq!(finish, Finish::Narrowed, "{capacity}");
        let value = estimate.capacity.unwrap();
        assert!((value / capacity - 1.0).abs() <= 0.02, "{capacity}: {estimate:?}");
        assert_eq!(found(&estimate, capacity), (true, true), "{capacity}: {estimate:?}");
        assert!(probes <= 30, "{capacity}: {probes} probes");
    }
}

#[test]
fn a_noisy_edge_is_found_within_five_percent_in_18_of_20_seeds() {
    let mut close = 0;
    let mut covered = 0;
    for seed in 0..20 {
        let (estimate, _, _) = search(4_000.0, 0.01, seed, (10.0, 20_000.0));
        let (near, inside) = found(&estimate, 4_000.0);
        close += usize::from(near);
        covered += usize::from(inside);
    }
    assert!(close >= 18 && covered >= 18, "within 5%: {close}/20, interval holds it: {covered}/20");
}

/// The interval's coverage over edges from sharp to soft (the pass rate
/// falling from 73% to 27% over 2%, 10% and 20% of the load).
#[test]
fn the_interval_covers_the_capacity_about_95_percent_of_the_time() {
    let seeds = 200;
    for spread in [0.01, 0.05, 0.1] {
        let mut covered = 0;
        let mut close = 0;
        let mut widths = Vec::new();
        for seed in 0..seeds {
            let (estimate, _, _) = search(4_000.0, spread, 1_000 + seed, (10.0, 20_000.0));
            let (near, inside) = found(&estimate, 4_000.0);
            covered += usize::from(inside);
            close += usize::from(near);
            if let Some((low, high)) = estimate.interval {
                widths.push(high / low);
            }
        }
        widths.sort_by(f64::total_cmp);
        eprintln!(
            "spread {spread}: interval holds the capacity {covered}/{seeds}, estimate within 5% {close}/{seeds}, median width {:.3}",
            widths[widths.len() / 2]
        );
        assert!(covered as f64 >= 0.9 * seeds as f64, "spread {spread}: coverage {covered}/{seeds}");
    }
}

#[test]
fn ranges_that_hold_everywhere_or_nowhere_say_so() {
    let (above, finish, _) = search(1e9, 0.0, 1, (10.0, 20_000.0));
    assert_eq!((above.bound, finish), (Bound::AboveRange, Finish::AboveRange));
    assert_eq!(above.highest_pass, Some(20_000.0));
    let (below, finish, probes) = search(1.0, 0.0, 1, (10.0, 20_000.0));
    assert_eq!((below.bound, finish, probes), (Bound::BelowRange, Finish::BelowRange, 1));
}
