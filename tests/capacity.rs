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

/// The system of `tests/capacity_search.rs` in virtual time: 4 in-flight
/// slots, each operation a 1 ms sleep that oversleeps as a 2-vCPU VM's
/// does (50 µs plus an exponential 30 µs on average, and a share
/// `hiccups` of operations held up by up to 4 ms more), arrivals evenly
/// spaced at `rate`, 200 warm-up and 1,000 measured operations, and the
/// target `latency.p99 < 3ms` (the 990th of the 1,000 latencies, each from
/// its intended start, as the open loop measures them). Deterministic, so
/// the known answer is checked alike on any machine; the same search of
/// real sleeps measures the machine too, and is a benchmark
/// (`peers/capacity/`).
fn queue_probe(rate: f64, seed: u64, hiccups: f64) -> bool {
    const SLOTS: usize = 4;
    const WARMUP: usize = 200;
    const MEASURED: usize = 1_000;
    let mut uniform = Uniform(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5eed);
    let mut free = [0.0_f64; SLOTS];
    let mut latencies = Vec::with_capacity(MEASURED);
    for k in 0..WARMUP + MEASURED {
        let intended = k as f64 / rate;
        let mut service = 1e-3 + 50e-6 - 30e-6 * (1.0 - uniform.next()).ln();
        if uniform.next() < hiccups {
            service += 4e-3 * uniform.next();
        }
        let slot = (0..SLOTS).min_by(|&a, &b| free[a].total_cmp(&free[b])).unwrap_or(0);
        let end = free[slot].max(intended) + service;
        free[slot] = end;
        if k >= WARMUP {
            latencies.push(end - intended);
        }
    }
    latencies.sort_by(f64::total_cmp);
    latencies[MEASURED * 99 / 100 - 1] < 3e-3
}

/// The rate at which a probe of [`queue_probe`] holds half the time: the
/// known answer, by bisection over 400 probes at each rate (the same 400
/// seeds at every rate, so that the share held falls with the rate).
fn queue_capacity(hiccups: f64) -> f64 {
    let held = |rate: f64| (0..400).filter(|&seed| queue_probe(rate, 1_000_000 + seed, hiccups)).count();
    let (mut low, mut high): (f64, f64) = (2_000.0, 8_000.0);
    while high / low > 1.0005 {
        let middle = (low * high).sqrt();
        if held(middle) >= 200 {
            low = middle;
        } else {
            high = middle;
        }
    }
    (low * high).sqrt()
}

/// A search of [`queue_probe`] over `range`, with its estimate.
fn search_queue(seed: u64, range: (f64, f64), hiccups: f64) -> (Estimate, Finish) {
    let mut search = Search::new(range.0, range.1, Scale::Continuous);
    let finish = loop {
        match search.next() {
            Ok(load) => {
                let probe = seed * 1_000 + search.probes().len() as u64;
                let held = queue_probe(load, probe, hiccups);
                search.record(load, if held { Outcome::Pass } else { Outcome::Fail });
            }
            Err(finish) => break finish,
        }
    };
    let probes: Vec<(f64, bool)> = search.probes().iter().map(|&(load, o)| (load, o == Outcome::Pass)).collect();
    (estimate(&probes), finish)
}

/// How many of `estimates` are right about `truth`: within 5%, the interval holding it.
fn right_about(estimates: &[Estimate], truth: f64) -> usize {
    estimates
        .iter()
        .filter(|estimate| estimate.bound == Bound::Within && found(estimate, truth) == (true, true))
        .count()
}

/// The known answer of issue 21, in virtual time, on a quiet machine (one
/// operation in 500 held up) and a busy one (one in 125: the edge softens
/// and moves down). Measured: 20 and 18 of 20 right.
#[test]
fn the_capacity_of_a_simulated_queue_of_four_1ms_slots_is_found_in_18_of_20_seeds() {
    for hiccups in [0.002, 0.008] {
        let truth = queue_capacity(hiccups);
        // 4 slots of about 1.08 ms serve about 3,700/s; the p99 misses 3 ms
        // just above that.
        assert!((3_400.0..4_000.0).contains(&truth), "the queue holds {truth:.0}/s");
        let mut estimates = Vec::new();
        let mut lines = Vec::new();
        for seed in 1..=20 {
            let (estimate, finish) = search_queue(seed, (1_000.0, 16_000.0), hiccups);
            lines.push(format!(
                "seed {seed}: {:.0}/s in {:.0?}, {} probes, {finish:?}",
                estimate.capacity.unwrap_or(f64::NAN),
                estimate.interval,
                estimate.probes
            ));
            estimates.push(estimate);
        }
        let right = right_about(&estimates, truth);
        let told = format!("{hiccups} held up: {right} of 20 right about {truth:.0}/s\n{}", lines.join("\n"));
        eprintln!("{told}");
        assert!(right >= 18, "{told}");
        // The check has teeth: about an answer 6% off, the same searches fail it.
        assert!(right_about(&estimates, truth * 1.06) < 18, "{told}");
        assert!(right_about(&estimates, truth / 1.06) < 18, "{told}");

        let (above, finish) = search_queue(21, (100.0, 1_000.0), hiccups);
        assert_eq!((above.bound, finish, above.highest_pass), (Bound::AboveRange, Finish::AboveRange, Some(1_000.0)));
        let (below, finish) = search_queue(22, (8_000.0, 16_000.0), hiccups);
        assert_eq!((below.bound, finish, below.probes), (Bound::BelowRange, Finish::BelowRange, 1));
    }
}
