//! Which load to probe next when searching for a workload's capacity.
//!
//! The search brackets the capacity, then narrows and repeats near it:
//! 1. the lowest load of the range first (a fail there: below the range);
//! 2. doubling while probes pass, up to the top of the range (a pass there:
//!    above the range);
//! 3. bisection (geometric, or by whole workers for concurrency) between the
//!    highest pass under the lowest fail and that fail, until they are
//!    within the tolerance (or adjacent worker counts);
//! 4. a staircase from the bracket's middle: up one step after a pass,
//!    down one after a fail, for a set number of probes, and on until a
//!    quarter of them passed and a quarter failed (an edge first bracketed
//!    by a fluke is climbed past, not taken as found). On a sharp edge it
//!    steps back and forth across it; on a soft one it wanders over the
//!    loads where probes pass some of the time, so that the estimate
//!    (`analysis::capacity`) sees how wide the edge is and its interval
//!    says so.
//!
//! A probe whose load generator fell behind counts as neither. Its load is
//! tried again; when it lags again, the loads from it up are out of
//! reach, and the search stays below them.

/// Lagged probes at one load after which the loads from it up are out of
/// the generator's reach; after fewer, the load is tried again.
pub const LAGS_OUT_OF_REACH: usize = 2;

/// What a probe showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The targets held.
    Pass,
    /// A target was missed.
    Fail,
    /// The load generator fell behind its schedule: the probe measured the
    /// generator, not the system.
    Lagged,
}

/// How loads are spaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Any positive number (a rate).
    Continuous,
    /// Whole numbers (a worker count).
    Whole,
}

/// Why a search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The bracket is narrow and its repeats are done.
    Narrowed,
    /// The lowest load failed.
    BelowRange,
    /// The highest load passed.
    AboveRange,
    /// The generator fell behind below any failing load: the loads left to
    /// probe are out of its reach.
    OutOfReach,
    /// The probe limit was reached first.
    ProbeLimit,
}

/// The search's settings and the probes so far.
#[derive(Clone, Debug)]
pub struct Search {
    low: f64,
    high: f64,
    scale: Scale,
    /// Bisection stops when the lowest fail over the highest pass is within `1 + tolerance`.
    tolerance: f64,
    /// Staircase probes once the bracket is narrow.
    repeats: usize,
    /// The staircase's step: a factor of `1 + step` in load.
    step: f64,
    /// The most probes in all.
    limit: usize,
    probes: Vec<(f64, Outcome)>,
    /// Where the staircase began, once the bracket first became narrow.
    stairs: Option<usize>,
}

impl Search {
    /// A search of loads `low..=high` (`0 < low < high`).
    pub fn new(low: f64, high: f64, scale: Scale) -> Search {
        Search {
            low,
            high,
            scale,
            tolerance: 0.02,
            repeats: 12,
            step: 0.03,
            limit: 60,
            probes: Vec::new(),
            stairs: None,
        }
    }

    /// Sets the bisection's relative tolerance, the staircase's probes and
    /// step, and the most probes in all.
    pub fn tuned(mut self, tolerance: f64, repeats: usize, step: f64, limit: usize) -> Search {
        self.tolerance = tolerance;
        self.repeats = repeats;
        self.step = step;
        self.limit = limit.max(1);
        self
    }

    /// Every probe so far, in order.
    pub fn probes(&self) -> &[(f64, Outcome)] {
        &self.probes
    }

    /// Records what the probe at `load` showed.
    pub fn record(&mut self, load: f64, outcome: Outcome) {
        self.probes.push((load, outcome));
        if self.stairs.is_none() && self.narrow_bracket().is_some() {
            self.stairs = Some(self.probes.len());
        }
    }

    /// The next load to probe, or why the search is over.
    pub fn next(&self) -> Result<f64, Finish> {
        if self.probes.len() >= self.limit {
            return Err(Finish::ProbeLimit);
        }
        let Some(&(_, first)) = self.probes.first() else { return Ok(self.low) };
        if first == Outcome::Fail {
            return Err(Finish::BelowRange);
        }
        // A lag can be a passing hiccup of the machine: the same load is
        // tried again before it is taken to be out of reach.
        if let Some(&(last, Outcome::Lagged)) = self.probes.last() {
            if self.lags_at(last) < LAGS_OUT_OF_REACH {
                return Ok(last);
            }
        }
        let reach = self.reach();
        if let Some(start) = self.stairs {
            return self.stair(start, reach);
        }
        let Some(fail) = self.lowest_fail() else {
            // Growing: double the highest pass.
            let Some(pass) = self.highest_pass_below(f64::INFINITY) else { return Err(Finish::OutOfReach) };
            if pass >= self.high {
                return Err(Finish::AboveRange);
            }
            let next = self.snap((pass * 2.0).min(self.high));
            if next >= reach {
                // Bisect towards what the generator can still do.
                return self.towards(pass, reach);
            }
            return Ok(next);
        };
        let Some(pass) = self.highest_pass_below(fail) else { return Err(Finish::BelowRange) };
        if reach < fail {
            return self.towards(pass, reach);
        }
        self.between(pass, fail).ok_or(Finish::Narrowed)
    }

    /// The staircase's next load: from the bracket's middle, a step up after
    /// a pass and down after a fail (or a lag), within the range and below
    /// the loads the generator could not keep up with.
    fn stair(&self, start: usize, reach: f64) -> Result<f64, Finish> {
        let taken = self.probes.len() - start;
        // Done once it has stepped across the edge both ways often enough;
        // a staircase still climbing (or falling) has not found it yet.
        let stairs = &self.probes[start..];
        let count = |outcome: Outcome| stairs.iter().filter(|(_, o)| *o == outcome).count();
        let crossed = count(Outcome::Pass).min(count(Outcome::Fail)) >= self.repeats.div_ceil(4);
        if taken >= self.repeats && crossed {
            return Err(Finish::Narrowed);
        }
        let &(last, outcome) = self.probes.last().ok_or(Finish::Narrowed)?;
        let next = if taken == 0 {
            let fail = self.lowest_fail().ok_or(Finish::Narrowed)?;
            let pass = self.highest_pass_below(fail).ok_or(Finish::Narrowed)?;
            self.between(pass, fail).unwrap_or(pass)
        } else {
            let factor = 1.0 + self.step;
            let next = self.snap(if outcome == Outcome::Pass { last * factor } else { last / factor });
            // Whole workers move by one at least.
            match (self.scale, outcome) {
                (Scale::Whole, Outcome::Pass) if next <= last => last + 1.0,
                (Scale::Whole, Outcome::Fail | Outcome::Lagged) if next >= last => last - 1.0,
                _ => next,
            }
        };
        let ceiling = if reach.is_finite() { reach / (1.0 + self.step) } else { self.high };
        Ok(next.clamp(self.low, ceiling.min(self.high).max(self.low)))
    }

    /// The next load between the highest pass and the lowest load the
    /// generator lagged at, until the two are narrow.
    fn towards(&self, pass: f64, reach: f64) -> Result<f64, Finish> {
        if self.narrow(pass, reach) {
            return Err(Finish::OutOfReach);
        }
        self.between(pass, reach).ok_or(Finish::OutOfReach)
    }

    /// The loads the generator can still keep up with: below the lowest
    /// load it lagged at as often as [`LAGS_OUT_OF_REACH`].
    fn reach(&self) -> f64 {
        self.probes
            .iter()
            .filter(|(load, o)| *o == Outcome::Lagged && self.lags_at(*load) >= LAGS_OUT_OF_REACH)
            .map(|(load, _)| *load)
            .fold(f64::INFINITY, f64::min)
    }

    /// How many probes at `load` lagged.
    fn lags_at(&self, load: f64) -> usize {
        self.probes.iter().filter(|(at, o)| *o == Outcome::Lagged && *at == load).count()
    }

    fn lowest_fail(&self) -> Option<f64> {
        self.probes.iter().filter(|(_, o)| *o == Outcome::Fail).map(|(load, _)| *load).reduce(f64::min)
    }

    fn highest_pass_below(&self, limit: f64) -> Option<f64> {
        self.probes
            .iter()
            .filter(|(load, o)| *o == Outcome::Pass && *load < limit)
            .map(|(load, _)| *load)
            .reduce(f64::max)
    }

    /// The current bracket, if it is narrow.
    fn narrow_bracket(&self) -> Option<(f64, f64)> {
        let fail = self.lowest_fail()?;
        let pass = self.highest_pass_below(fail)?;
        self.narrow(pass, fail).then_some((pass, fail))
    }

    fn narrow(&self, pass: f64, fail: f64) -> bool {
        match self.scale {
            Scale::Continuous => fail <= pass * (1.0 + self.tolerance),
            Scale::Whole => fail - pass <= 1.0,
        }
    }

    /// A load strictly between `low` and `high` (their geometric mean), if there is one.
    fn between(&self, low: f64, high: f64) -> Option<f64> {
        let middle = self.snap((low * high).sqrt());
        (middle > low && middle < high).then_some(middle)
    }

    fn snap(&self, load: f64) -> f64 {
        match self.scale {
            Scale::Continuous => load,
            Scale::Whole => load.round(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a system that passes below `capacity` and fails from it up.
    fn sharp(search: Search, capacity: f64) -> (Vec<(f64, Outcome)>, Finish) {
        let mut search = search;
        loop {
            match search.next() {
                Ok(load) => search.record(load, if load < capacity { Outcome::Pass } else { Outcome::Fail }),
                Err(finish) => return (search.probes().to_vec(), finish),
            }
        }
    }

    #[test]
    fn a_sharp_edge_is_bracketed_within_the_tolerance() {
        let (probes, finish) = sharp(Search::new(10.0, 20_000.0, Scale::Continuous), 4_000.0);
        assert_eq!(finish, Finish::Narrowed);
        let pass = probes.iter().filter(|(_, o)| *o == Outcome::Pass).map(|p| p.0).fold(0.0, f64::max);
        let fail = probes.iter().filter(|(_, o)| *o == Outcome::Fail).map(|p| p.0).fold(f64::INFINITY, f64::min);
        assert!(pass < 4_000.0 && fail >= 4_000.0 && fail / pass <= 1.02, "{pass} {fail}");
        assert!(probes.len() < 30, "{} probes", probes.len());
    }

    #[test]
    fn the_ends_of_the_range_are_reported() {
        assert_eq!(sharp(Search::new(10.0, 100.0, Scale::Continuous), 1e9).1, Finish::AboveRange);
        assert_eq!(sharp(Search::new(10.0, 100.0, Scale::Continuous), 5.0).1, Finish::BelowRange);
        assert_eq!(sharp(Search::new(10.0, 100.0, Scale::Continuous), 1e9).0.last().unwrap().0, 100.0);
    }

    #[test]
    fn concurrency_is_searched_in_whole_workers() {
        let (probes, finish) = sharp(Search::new(1.0, 256.0, Scale::Whole), 37.0);
        assert_eq!(finish, Finish::Narrowed, "{probes:?}");
        assert!(probes.iter().all(|(load, _)| load.fract() == 0.0));
        assert!(probes.contains(&(36.0, Outcome::Pass)) && probes.contains(&(37.0, Outcome::Fail)), "{probes:?}");
    }

    #[test]
    fn lagged_probes_keep_the_search_below_them() {
        let mut search = Search::new(10.0, 10_000.0, Scale::Continuous);
        let mut lagged = 0;
        loop {
            match search.next() {
                Ok(load) if load >= 1_000.0 => {
                    lagged += 1;
                    search.record(load, Outcome::Lagged);
                }
                Ok(load) => search.record(load, Outcome::Pass),
                Err(finish) => {
                    assert_eq!(finish, Finish::OutOfReach);
                    break;
                }
            }
            assert!(search.probes().len() < 60);
        }
        assert!(lagged >= 1);
        let reached = search.probes().iter().filter(|(_, o)| *o == Outcome::Pass).map(|p| p.0).fold(0.0, f64::max);
        assert!(reached > 900.0, "{reached}");
    }

    #[test]
    fn a_single_lag_is_tried_again_and_does_not_cap_the_search() {
        let mut search = Search::new(10.0, 20_000.0, Scale::Continuous);
        let mut lagged_once = false;
        loop {
            match search.next() {
                Ok(load) if !lagged_once && load > 1_000.0 => {
                    lagged_once = true;
                    search.record(load, Outcome::Lagged);
                    assert_eq!(search.next(), Ok(load), "a lagged load is tried again");
                }
                Ok(load) => search.record(load, if load < 4_000.0 { Outcome::Pass } else { Outcome::Fail }),
                Err(finish) => {
                    assert_eq!(finish, Finish::Narrowed);
                    break;
                }
            }
        }
        let pass = search.probes().iter().filter(|(_, o)| *o == Outcome::Pass).map(|p| p.0).fold(0.0, f64::max);
        assert!(pass > 3_900.0, "one lag kept the search at {pass}");
    }

    #[test]
    fn the_probe_limit_ends_a_search() {
        let search = Search::new(10.0, 20_000.0, Scale::Continuous).tuned(0.02, 12, 0.03, 5);
        let (probes, finish) = sharp(search, 4_000.0);
        assert_eq!((probes.len(), finish), (5, Finish::ProbeLimit));
    }
}
