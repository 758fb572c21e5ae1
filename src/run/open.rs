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

use super::measure::{Measurement, WorkerTally};
use super::{Control, Prepared};
use crate::engines::{OpWorker, Recorder};
use crate::plan::{Stop, Warmup};

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
/// operations `index, index + count, …` of a schedule of `rate` operations
/// per second (`(0, 1)`: all of them).
pub fn run(prepared: Prepared, rate: f64, part: (u32, u32), max_in_flight: usize, control: &Control) -> Measurement {
    let Prepared { workers, recorder, warmup, stop } = prepared;
    let (sender, receiver) = unbounded::<Job>();
    let base = Instant::now();
    // Nanoseconds after `base` past which queued operations are dropped, not run.
    let drain_deadline = AtomicU64::new(u64::MAX);
    let interval = Duration::try_from_secs_f64(f64::from(part.1) / rate).unwrap_or(Duration::MAX);
    let mut start = Instant::now();
    let mut scheduled = 0;
    let mut tallies = Vec::with_capacity(max_in_flight);

    std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(index, worker)| {
                let receiver = receiver.clone();
                let tally = WorkerTally::new(recorder.clone(), true);
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
        let planned = match stop {
            Stop::Iterations(n) => interval.mul_f64(n as f64),
            Stop::Duration(d) => d,
        };
        let deadline = start + planned + planned.max(MIN_DRAIN);
        drain_deadline.store((deadline - base).as_nanos() as u64, Ordering::Release);
        for (index, offset) in schedule(rate, part, stop).enumerate() {
            if control.cancel.load(Ordering::Relaxed) {
                break;
            }
            let intended = start + offset;
            wait_until(intended);
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
    super::merge(tallies, start, scheduled, control)
}

/// The intended starts, after the start of the measured part, of the
/// operations `index, index + count, …` of a schedule of `rate` operations
/// per second: this process's `n` of them (`Stop::Iterations`), or those
/// before the duration ends. Each start is computed from the operation's
/// place in the whole schedule, so the shards of a split run together issue
/// exactly the starts one process would have.
pub fn schedule(rate: f64, part: (u32, u32), stop: Stop) -> impl Iterator<Item = Duration> {
    let (index, count) = (u64::from(part.0), u64::from(part.1.max(1)));
    (0_u64..)
        // A start past what a `Duration` holds ends the schedule (the plan
        // refuses rates that slow; this keeps the dispatcher from panicking).
        .map_while(move |k| Some((k, Duration::try_from_secs_f64((index + k * count) as f64 / rate).ok()?)))
        .take_while(move |(k, offset)| match stop {
            Stop::Iterations(n) => *k < n,
            Stop::Duration(d) => *offset < d,
        })
        .map(|(_, offset)| offset)
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
        let result = super::call_guarded(worker.as_mut(), &mut recorder);
        let end = Instant::now();
        match result {
            Ok(()) => {
                tally.success(end.saturating_duration_since(job.intended));
                crate::engines::recorder::record(&mut service, (end - begin).as_nanos() as u64);
            }
            Err(error) => tally.failure(&error),
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
    fn union(rate: f64, count: u32, stop: impl Fn(u32) -> Stop) -> Vec<Duration> {
        let mut all: Vec<Duration> = (0..count).flat_map(|index| schedule(rate, (index, count), stop(index))).collect();
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
            let whole: Vec<Duration> = schedule(rate, (0, 1), Stop::Iterations(n)).collect();
            let split = union(rate, count, |index| Stop::Iterations(share(n, Shard { index, count })));
            prop_assert_eq!(&split, &whole);
            // A duration, which every shard keeps.
            let d = Stop::Duration(Duration::from_millis(millis));
            prop_assert_eq!(union(rate, count, |_| d), schedule(rate, (0, 1), d).collect::<Vec<_>>());
            // Each shard works from its own rate (the whole divided by N):
            // the starts stay within a nanosecond of the whole schedule's.
            let shard_rate = rate / f64::from(count) * f64::from(count);
            let again = union(shard_rate, count, |index| Stop::Iterations(share(n, Shard { index, count })));
            prop_assert_eq!(again.len(), whole.len());
            for (a, b) in again.iter().zip(&whole) {
                prop_assert!(a.abs_diff(*b) <= Duration::from_nanos(1), "{:?} vs {:?}", a, b);
            }
        }
    }

    #[test]
    fn a_shard_takes_every_nth_start_from_its_index() {
        let starts: Vec<Duration> = schedule(1000.0, (1, 4), Stop::Iterations(3)).collect();
        assert_eq!(starts, [1, 5, 9].map(Duration::from_millis));
        let whole: Vec<Duration> = schedule(1000.0, (0, 1), Stop::Duration(Duration::from_millis(3))).collect();
        assert_eq!(whole, [0, 1, 2].map(Duration::from_millis));
        // The check catches shards that ignore their index: they would all
        // issue the first start, and the union would not be the schedule.
        let whole: Vec<Duration> = schedule(1000.0, (0, 1), Stop::Iterations(4)).collect();
        assert_eq!(union(1000.0, 4, |_| Stop::Iterations(1)), whole);
        let ignoring_index: Vec<Duration> =
            (0..4).flat_map(|_| schedule(1000.0, (0, 4), Stop::Iterations(1))).collect();
        assert_ne!(ignoring_index, whole);
    }
}
