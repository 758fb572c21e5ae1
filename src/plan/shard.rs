//! `--shard I/N`: this process's share of every run, so that N processes
//! together do what one would have done.
//!
//! - A count of operations (`iterations`) splits exactly: shard `i` takes the
//!   operations `i, i + N, i + 2N, …` of the whole run, so the shares differ
//!   by at most one and add up to the whole.
//! - Open loop: each shard issues `rate / N` arrivals per second, its
//!   schedule offset by `i / rate`, so the union of the N schedules is the
//!   schedule one process would have issued (every `1 / rate`). Each shard
//!   keeps `max_in_flight / N` (rounded up) workers.
//! - Closed loop: the workers split as the operations do (`concurrency / N`,
//!   the first `concurrency mod N` shards one more).
//! - A run with fewer workers (closed loop) or operations than shards is
//!   shared by only as many shards as it has (the first ones); the others
//!   skip it. Each run records its share (`i` of `m`), so the merge knows
//!   how many pieces to expect.
//! - A duration stays as written: every shard measures for as long.
//! - Warm-up stays as written: each process warms its own engine instances.
//! - Experiments: every shard runs every round of every arm, with its share
//!   of each, so the merge keeps the round as the unit of replication.
//! - Seeds: each shard's runs get seeds derived from the run's and the
//!   shard's index, so shards do not replay the same keys or prompts.

use std::fmt;
use std::str::FromStr;

use super::seed::derive_seed;
use super::{Load, Plan, RunSpec, Stop};

/// This process's part of a scenario split across `count` processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Index from 0.
    pub index: u32,
    /// Shards in all.
    pub count: u32,
}

/// Most shards a scenario splits into.
pub const MAX_SHARDS: u32 = 10_000;

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N` with `0 <= I < N <= MAX_SHARDS`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (index, count) = text.split_once('/').ok_or_else(|| format!("`{text}` is not I/N, such as 0/4"))?;
        let count: u32 =
            count.trim().parse().map_err(|_| format!("`{count}` in `{text}` is not a number of shards"))?;
        if count == 0 || count > MAX_SHARDS {
            return Err(format!("{count} shards: between 1 and {MAX_SHARDS}"));
        }
        let index: u32 = index.trim().parse().map_err(|_| format!("`{index}` in `{text}` is not a shard index"))?;
        if index >= count {
            return Err(format!("shard {index} of {count}: indexes run from 0 to {}", count - 1));
        }
        Ok(Shard { index, count })
    }
}

/// This shard's share of `total` things dealt out one by one to `count` shards.
pub fn share(total: u64, shard: Shard) -> u64 {
    let count = u64::from(shard.count);
    let index = u64::from(shard.index);
    total / count + u64::from(index < total % count)
}

/// How many shards take part in a run: all of them, unless the run has
/// fewer workers (closed loop) or operations than there are shards. A
/// capacity search picks each load from what the probes before it showed,
/// so one shard runs it whole.
pub fn sharing(run: &RunSpec, count: u32) -> u32 {
    if let Load::Search(_) = run.load {
        return 1;
    }
    let mut sharing = u64::from(count);
    if let Load::Closed { concurrency } = run.load {
        sharing = sharing.min(u64::from(concurrency));
    }
    if let Stop::Iterations(n) = run.stop {
        sharing = sharing.min(n);
    }
    sharing.max(1) as u32
}

/// Cuts every run of `plan` down to `shard`'s share, and drops the runs this
/// shard has no share of.
pub fn split(plan: &mut Plan, shard: Shard) {
    plan.runs.retain_mut(|run| {
        let part = Shard { index: shard.index, count: sharing(run, shard.count) };
        if part.index >= part.count {
            return false;
        }
        if let Stop::Iterations(n) = run.stop {
            run.stop = Stop::Iterations(share(n, part));
        }
        run.load = match run.load {
            Load::Closed { concurrency } => Load::Closed { concurrency: share(u64::from(concurrency), part) as u32 },
            Load::Open { rate, max_in_flight, arrival } => Load::Open {
                rate: rate / f64::from(part.count),
                max_in_flight: max_in_flight.div_ceil(part.count),
                arrival,
            },
            Load::Search(search) => Load::Search(search),
        };
        run.seed = derive_seed(run.seed, &format!("shard {part}"));
        run.shard = Some(part);
        true
    });
    plan.shard = Some(shard);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn shards_are_read_and_refused() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!("0/1".parse::<Shard>(), Ok(Shard { index: 0, count: 1 }));
        for (text, message) in [
            ("4/4", "shard 4 of 4: indexes run from 0 to 3"),
            ("1/0", "0 shards: between 1 and 10000"),
            ("2", "`2` is not I/N, such as 0/4"),
            ("a/4", "`a` in `a/4` is not a shard index"),
            ("1/x", "`x` in `1/x` is not a number of shards"),
            ("0/10001", "10001 shards: between 1 and 10000"),
        ] {
            assert_eq!(text.parse::<Shard>().unwrap_err(), message, "{text}");
        }
    }

    proptest! {
        #[test]
        fn shares_add_up_and_differ_by_at_most_one(total in 0_u64..1_000_000, count in 1_u32..100) {
            let shares: Vec<u64> = (0..count).map(|index| share(total, Shard { index, count })).collect();
            prop_assert_eq!(shares.iter().sum::<u64>(), total);
            prop_assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
        }

        #[test]
        fn any_text_is_read_or_refused(text in ".{0,12}") {
            let _ = text.parse::<Shard>();
        }
    }
}
