//! The order of an experiment's arms within each round, counterbalanced so
//! that a drift during a round (a warming disk, a throttling CPU) favours no
//! arm.
//!
//! A seeded shuffle of the arms is rotated by one place per round: over k
//! rounds every arm takes every position k / arms times (with two arms
//! AB BA AB …, or BA AB BA …), and which arm goes first is the seed's choice,
//! not always the baseline.

use super::seed::derive_seed;
use crate::rng::SplitMix;

/// The order of one experiment's arms, round by round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArmOrder(Vec<usize>);

impl ArmOrder {
    /// A shuffle of `arms` arms drawn from the scenario seed and the experiment's name.
    pub fn new(seed: u64, experiment: &str, arms: usize) -> ArmOrder {
        let mut rng = SplitMix::new(derive_seed(seed, &format!("{experiment}:order")));
        let mut order: Vec<usize> = (0..arms).collect();
        // Fisher–Yates.
        for last in (1..arms).rev() {
            let pick = rng.below(last as u64 + 1) as usize;
            order.swap(last, pick);
        }
        ArmOrder(order)
    }

    /// The arms' indices in the order round `round` (from 1) runs them.
    pub fn round(&self, round: u32) -> Vec<usize> {
        let mut order = self.0.clone();
        if !order.is_empty() {
            let shift = round.saturating_sub(1) as usize % order.len();
            order.rotate_left(shift);
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::ArmOrder;

    /// How often each arm (row) takes each position (column) over `rounds` rounds.
    fn positions(order: &ArmOrder, arms: usize, rounds: u32) -> Vec<Vec<u32>> {
        let mut counts = vec![vec![0; arms]; arms];
        for round in 1..=rounds {
            for (position, arm) in order.round(round).into_iter().enumerate() {
                counts[arm][position] += 1;
            }
        }
        counts
    }

    #[test]
    fn every_arm_takes_every_position_equally_often() {
        for arms in 1..=5 {
            for seed in 0..20 {
                let order = ArmOrder::new(seed, "e", arms);
                for cycles in 1..=3 {
                    let rounds = (arms * cycles) as u32;
                    let counts = positions(&order, arms, rounds);
                    assert!(
                        counts.iter().flatten().all(|&count| count == cycles as u32),
                        "{arms} arms, seed {seed}, {rounds} rounds: {counts:?}"
                    );
                }
                // Between whole cycles, no arm is ahead in any position by more than one round.
                let counts = positions(&order, arms, 7);
                let (low, high) = (counts.iter().flatten().min(), counts.iter().flatten().max());
                assert!(high.zip(low).is_some_and(|(high, low)| high - low <= 1), "{counts:?}");
            }
        }
    }

    #[test]
    fn two_arms_alternate() {
        for seed in 0..20 {
            let order = ArmOrder::new(seed, "e", 2);
            let first = order.round(1);
            assert_eq!(order.round(2), [first[1], first[0]]);
            assert_eq!(order.round(3), first);
        }
    }

    #[test]
    fn the_order_is_a_permutation_fixed_by_seed_and_name() {
        for arms in 1..=6 {
            let order = ArmOrder::new(42, "flash", arms);
            assert_eq!(order, ArmOrder::new(42, "flash", arms));
            let mut sorted = order.round(1);
            sorted.sort_unstable();
            assert_eq!(sorted, (0..arms).collect::<Vec<_>>());
        }
        // The seed, not a fixed rule, decides who goes first.
        let firsts: std::collections::HashSet<usize> =
            (0..40).map(|seed| ArmOrder::new(seed, "flash", 3).round(1)[0]).collect();
        assert_eq!(firsts.len(), 3);
    }
}
