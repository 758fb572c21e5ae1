//! Open-loop load: operations start at a fixed rate, whatever the latency.
//!
//! A dispatcher computes each operation's intended start time from the rate
//! and hands it to a pool of `max_in_flight` workers. Latency is measured from
//! the intended start, not from when a worker got to it, so a stall that
//! delays the operations queued behind it shows in the figures (the
//! coordinated-omission correction of wrk2). Service time, from the actual
//! start, is kept beside it, and so is the schedule lag, from the intended
//! to the actual start: the dispatcher's own lateness plus the wait for a
//! free worker, which says whether the generator kept to its schedule.
//!
//! Operations still queued at the drain deadline are dropped, not run. They
//! are the slowest of the run, so each is recorded into `latency` and
//! `schedule_lag` at the time it had waited (a lower bound of its latency)
//! and counted as dropped. Operations skipped after Ctrl-C are in no figure:
//! the interruption, not the system, kept them from running.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver};

use super::measure::{CallTimes, Measurement, WorkerTally};
use super::{Control, Prepared};
use crate::engines::recorder::{new_histogram, record};
use crate::engines::{OpWorker, Recorder};
use crate::plan::{Arrival, Stop, Warmup};
use crate::rng::SplitMix;

/// Below this much time to wait, the dispatcher spins instead of sleeping,
/// because a sleep may overshoot by tens of microseconds.
const SPIN_BELOW: Duration = Duration::from_micros(150);
/// How early a sleep ends before the intended start.
const WAKE_EARLY: Duration = Duration::from_micros(100);
/// Least time the queue may drain after the last operation was scheduled.
const MIN_DRAIN: Duration = Duration::from_secs(1);

#[derive(Clone, Copy)]
struct Job {
    intended: Instant,
    measured: bool,
}

/// Runs `prepared` with at most `max_in_flight` operations at once: the
/// operations `index, index + count, …` of the schedule `arrivals` draws
/// (`(0, 1)`: all of them).
pub fn run(
    prepared: Prepared,
    arrivals: Arrivals,
    part: (u32, u32),
    max_in_flight: usize,
    control: &Control,
) -> Measurement {
    let rate = arrivals.rate;
    let Prepared { workers, recorder, warmup, stop, slo, live } = prepared;
    let (sender, receiver) = unbounded::<Job>();
    let base = Instant::now();
    // Nanoseconds after `base` past which queued operations are dropped, not run.
    let drain_deadline = AtomicU64::new(u64::MAX);
    let interval = Duration::try_from_secs_f64(f64::from(part.1) / rate).unwrap_or(Duration::MAX);
    // The schedule's own length: random gaps can make it longer than n
    // intervals, and the drain deadline must not cut it short. Walked here,
    // before any timing, so that it delays neither the warm-up nor the
    // first measured start.
    let planned = match stop {
        Stop::Iterations(_) => schedule(arrivals, part, stop).last().unwrap_or_default().saturating_add(interval),
        Stop::Duration(d) => d,
    };
    let mut start = Instant::now();
    let mut scheduled = 0;
    let mut tallies = Vec::with_capacity(max_in_flight);
    let mut dispatch_lag = new_histogram();

    std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(index, worker)| {
                let receiver = receiver.clone();
                let tally = WorkerTally::new(recorder.clone(), true).judging(slo.clone()).counting(live.clone());
                let scratch = recorder.clone();
                let drain_deadline = &drain_deadline;
                super::caller_thread(index)
                    .spawn_scoped(scope, move || {
                        work(worker, receiver, tally, scratch, base, drain_deadline, &control.cancel)
                    })
                    .expect("cannot start a worker thread")
            })
            .collect();
        drop(receiver);
        super::tune_thread_timers();

        // Warm-up: the same arrival process, unmeasured.
        let warm_start = Instant::now();
        for index in 0_u64.. {
            let intended = warm_start + interval.mul_f64(index as f64);
            let more = match warmup {
                Warmup::None => false,
                Warmup::Count(n) => index < n,
                Warmup::Duration(d) => intended - warm_start < d,
            };
            if !more || control.cancel.load(Ordering::Relaxed) {
                break;
            }
            wait_until(intended);
            let _ = sender.send(Job { intended, measured: false });
        }

        start = control.progress.start_measuring();
        let deadline = start + planned + planned.max(MIN_DRAIN);
        drain_deadline.store((deadline - base).as_nanos() as u64, Ordering::Release);
        for (index, offset) in schedule(arrivals, part, stop).enumerate() {
            if control.cancel.load(Ordering::Relaxed) {
                break;
            }
            let intended = start + offset;
            wait_until(intended);
            let late = Instant::now().saturating_duration_since(intended);
            record(&mut dispatch_lag, late.as_nanos().min(u128::from(u64::MAX)) as u64);
            if sender.send(Job { intended, measured: true }).is_err() {
                break;
            }
            scheduled = index as u64 + 1;
            control.progress.issued.store(scheduled, Ordering::Relaxed);
        }
        drop(sender);
        for handle in handles {
            if let Ok(tally) = handle.join() {
                tallies.push(tally);
            }
        }
    });
    Measurement { dispatch_lag: Some(dispatch_lag), ..super::merge(tallies, start, scheduled, control) }
}

/// The arrival process of a whole open-loop run.
#[derive(Clone, Copy, Debug)]
pub struct Arrivals {
    /// Operations per second of the whole run, on average.
    pub rate: f64,
    /// How they are spaced.
    pub process: Arrival,
    /// Seed of random gaps: the run's, the same in every shard.
    pub seed: u64,
}

impl Arrivals {
    /// Evenly spaced arrivals at `rate`.
    pub fn constant(rate: f64) -> Arrivals {
        Arrivals { rate, process: Arrival::Constant, seed: 0 }
    }
}

/// The intended starts, after the start of the measured part, of the
/// operations `index, index + count, …` of the whole run's schedule: this
/// process's `n` of them (`Stop::Iterations`), or those before the duration
/// ends. Every shard walks the same schedule (even starts at `j / rate`, or
/// random gaps drawn in order from the run's seed) and keeps its own
/// operations, so the shards of a split run together issue exactly the
/// starts one process would have.
pub fn schedule(arrivals: Arrivals, part: (u32, u32), stop: Stop) -> impl Iterator<Item = Duration> {
    let (index, count) = (u64::from(part.0), u64::from(part.1.max(1)));
    let mut gaps = Gaps::new(arrivals);
    let mut issued = 0_u64;
    (0_u64..)
        // A start past what a `Duration` holds ends the schedule (the plan
        // refuses rates that slow; this keeps the dispatcher from panicking).
        .map_while(move |j| Some((j, Duration::try_from_secs_f64(gaps.start_of(j)).ok()?)))
        .take_while(move |(_, offset)| match stop {
            Stop::Duration(d) => *offset < d,
            Stop::Iterations(_) => true,
        })
        .filter(move |(j, _)| j % count == index)
        .take_while(move |_| match stop {
            Stop::Iterations(n) => {
                issued += 1;
                issued <= n
            }
            Stop::Duration(_) => true,
        })
        .map(|(_, offset)| offset)
}

/// The start of each arrival of a schedule, asked for in order.
struct Gaps {
    arrivals: Arrivals,
    rng: SplitMix,
    /// The start of the next arrival of a random process, in seconds.
    next: f64,
}

impl Gaps {
    fn new(arrivals: Arrivals) -> Gaps {
        Gaps { arrivals, rng: SplitMix::new(arrivals.seed), next: 0.0 }
    }

    /// The start of arrival `j`, in seconds; `j` counts up from 0 by one.
    fn start_of(&mut self, j: u64) -> f64 {
        let rate = self.arrivals.rate;
        match self.arrivals.process {
            Arrival::Constant => j as f64 / rate,
            Arrival::Poisson => self.advance(|rng| exponential(rng) / rate),
            Arrival::Gamma { burstiness } => self.advance(|rng| gamma(rng, burstiness) / (burstiness * rate)),
        }
    }

    fn advance(&mut self, gap: impl Fn(&mut SplitMix) -> f64) -> f64 {
        let start = self.next;
        self.next += gap(&mut self.rng);
        start
    }
}

/// Uniform in (0, 1].
fn open_unit(rng: &mut SplitMix) -> f64 {
    1.0 - rng.next_f64()
}

/// Exponential with mean 1.
fn exponential(rng: &mut SplitMix) -> f64 {
    -open_unit(rng).ln()
}

/// Standard normal (Box–Muller).
fn normal(rng: &mut SplitMix) -> f64 {
    (-2.0 * open_unit(rng).ln()).sqrt() * (std::f64::consts::TAU * rng.next_f64()).cos()
}

/// Gamma with shape `shape` and scale 1 (Marsaglia and Tsang; shapes below 1
/// through `Gamma(shape + 1) · U^(1/shape)`).
fn gamma(rng: &mut SplitMix, shape: f64) -> f64 {
    if shape < 1.0 {
        return gamma(rng, shape + 1.0) * open_unit(rng).powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = open_unit(rng);
        if u < 1.0 - 0.0331 * x.powi(4) || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
            return d * v;
        }
    }
}

fn work(
    mut worker: Box<dyn OpWorker>,
    jobs: Receiver<Job>,
    mut tally: WorkerTally,
    mut scratch: Recorder,
    base: Instant,
    drain_deadline: &AtomicU64,
    cancel: &AtomicBool,
) -> WorkerTally {
    super::tune_thread_timers();
    let mut recorder = std::mem::take(&mut tally.recorder);
    let mut service = tally.service.take().unwrap_or_else(crate::engines::recorder::new_histogram);
    while let Ok(job) = jobs.recv() {
        if cancel.load(Ordering::Relaxed) {
            continue;
        }
        if !job.measured {
            let _ = super::call_guarded(worker.as_mut(), &mut scratch);
            continue;
        }
        let begin = Instant::now();
        let lag = begin.saturating_duration_since(job.intended);
        if (begin - base).as_nanos() as u64 > drain_deadline.load(Ordering::Acquire) {
            tally.drop_after(lag);
            continue;
        }
        tally.lag(lag);
        recorder.set_waited(lag);
        let result = super::call_guarded(worker.as_mut(), &mut recorder);
        let end = Instant::now();
        match result {
            Ok(()) => {
                let latency = end.saturating_duration_since(job.intended);
                tally.success(latency);
                crate::engines::recorder::record(&mut service, (end - begin).as_nanos() as u64);
                tally.judge(Some(CallTimes { latency, service: end - begin, lag }), &mut recorder);
            }
            Err(error) => {
                tally.failure(&error);
                tally.judge(None, &mut recorder);
            }
        }
        tally.last_end = Some(end);
    }
    tally.recorder = recorder;
    tally.service = Some(service);
    tally
}

/// Waits until `target`: sleeps while far away, spins for the last stretch.
fn wait_until(target: Instant) {
    loop {
        let now = Instant::now();
        if now >= target {
            return;
        }
        let left = target - now;
        if left > SPIN_BELOW {
            std::thread::sleep(left - WAKE_EARLY);
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::plan::{share, Shard};

    /// The starts of all shards of a split run, in order.
    fn union(arrivals: Arrivals, count: u32, stop: impl Fn(u32) -> Stop) -> Vec<Duration> {
        let mut all: Vec<Duration> =
            (0..count).flat_map(|index| schedule(arrivals, (index, count), stop(index))).collect();
        all.sort();
        all
    }

    proptest! {
        #[test]
        fn shards_issue_exactly_the_whole_schedule(
            rate in 1.0_f64..1e6,
            count in 1_u32..16,
            n in 16_u64..2_000,
            millis in 1_u64..2_000,
        ) {
            // A count of operations, dealt out as `--shard` deals it.
            let whole: Vec<Duration> = schedule(Arrivals::constant(rate), (0, 1), Stop::Iterations(n)).collect();
            let split = union(Arrivals::constant(rate), count, |index| Stop::Iterations(share(n, Shard { index, count })));
            prop_assert_eq!(&split, &whole);
            // A duration, which every shard keeps.
            let d = Stop::Duration(Duration::from_millis(millis));
            prop_assert_eq!(union(Arrivals::constant(rate), count, |_| d), schedule(Arrivals::constant(rate), (0, 1), d).collect::<Vec<_>>());
            // Each shard works from its own rate (the whole divided by N):
            // the starts stay within a nanosecond of the whole schedule's.
            let shard_rate = rate / f64::from(count) * f64::from(count);
            let again = union(Arrivals::constant(shard_rate), count, |index| Stop::Iterations(share(n, Shard { index, count })));
            prop_assert_eq!(again.len(), whole.len());
            for (a, b) in again.iter().zip(&whole) {
                prop_assert!(a.abs_diff(*b) <= Duration::from_nanos(1), "{:?} vs {:?}", a, b);
            }
        }
    }

    /// Mean and coefficient of variation of the gaps between `starts`.
    fn gap_shape(starts: &[Duration]) -> (f64, f64) {
        let gaps: Vec<f64> = starts.windows(2).map(|pair| (pair[1] - pair[0]).as_secs_f64()).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let variance = gaps.iter().map(|gap| (gap - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        (mean, variance.sqrt() / mean)
    }

    #[test]
    fn random_arrivals_have_the_rate_and_the_burstiness_asked_for() {
        let n = 40_000;
        for (process, cv) in [
            (Arrival::Poisson, 1.0),
            (Arrival::Gamma { burstiness: 0.25 }, 2.0),
            (Arrival::Gamma { burstiness: 1.0 }, 1.0),
            (Arrival::Gamma { burstiness: 4.0 }, 0.5),
        ] {
            let arrivals = Arrivals { rate: 500.0, process, seed: 11 };
            let starts: Vec<Duration> = schedule(arrivals, (0, 1), Stop::Iterations(n)).collect();
            assert_eq!(starts.len() as u64, n);
            let (mean, found) = gap_shape(&starts);
            // 40,000 gaps: the mean within 3% of 1/rate, the coefficient of
            // variation (1/sqrt(B) for gamma(B)) within 5%.
            assert!((mean * 500.0 - 1.0).abs() < 0.03, "{process}: mean gap {mean}");
            assert!((found / cv - 1.0).abs() < 0.05, "{process}: coefficient of variation {found}, expected {cv}");
            // Seeded: the same seed draws the same schedule, another seed another.
            let again: Vec<Duration> = schedule(arrivals, (0, 1), Stop::Iterations(n)).collect();
            assert_eq!(again, starts);
            let other: Vec<Duration> =
                schedule(Arrivals { seed: 12, ..arrivals }, (0, 1), Stop::Iterations(n)).collect();
            assert_ne!(other, starts);
        }
        // Constant arrivals have no spread at all, so the check above can fail.
        let (_, even) =
            gap_shape(&schedule(Arrivals::constant(500.0), (0, 1), Stop::Iterations(1000)).collect::<Vec<_>>());
        assert!(even < 1e-6);
    }

    proptest! {
        #[test]
        fn shards_of_random_arrivals_issue_exactly_the_whole_schedule(
            seed in any::<u64>(),
            burstiness in 0.1_f64..10.0,
            count in 1_u32..12,
            n in 16_u64..1_000,
            millis in 1_u64..1_000,
        ) {
            for process in [Arrival::Poisson, Arrival::Gamma { burstiness }] {
                let arrivals = Arrivals { rate: 2_000.0, process, seed };
                let whole: Vec<Duration> = schedule(arrivals, (0, 1), Stop::Iterations(n)).collect();
                let split = union(arrivals, count, |index| Stop::Iterations(share(n, Shard { index, count })));
                prop_assert_eq!(split, whole);
                let d = Stop::Duration(Duration::from_millis(millis));
                prop_assert_eq!(union(arrivals, count, |_| d), schedule(arrivals, (0, 1), d).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn a_shard_takes_every_nth_start_from_its_index() {
        let starts: Vec<Duration> = schedule(Arrivals::constant(1000.0), (1, 4), Stop::Iterations(3)).collect();
        assert_eq!(starts, [1, 5, 9].map(Duration::from_millis));
        let whole: Vec<Duration> =
            schedule(Arrivals::constant(1000.0), (0, 1), Stop::Duration(Duration::from_millis(3))).collect();
        assert_eq!(whole, [0, 1, 2].map(Duration::from_millis));
        // The check catches shards that ignore their index: they would all
        // issue the first start, and the union would not be the schedule.
        let whole: Vec<Duration> = schedule(Arrivals::constant(1000.0), (0, 1), Stop::Iterations(4)).collect();
        assert_eq!(union(Arrivals::constant(1000.0), 4, |_| Stop::Iterations(1)), whole);
        let ignoring_index: Vec<Duration> =
            (0..4).flat_map(|_| schedule(Arrivals::constant(1000.0), (0, 4), Stop::Iterations(1))).collect();
        assert_ne!(ignoring_index, whole);
    }
}
