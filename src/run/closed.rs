//! Closed-loop load: each worker calls the operation back to back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::measure::{CallTimes, Measurement, WorkerTally};
use super::{Control, Prepared};
use crate::plan::{Stop, Warmup};

/// Runs `prepared` with `concurrency` workers back to back.
pub fn run(prepared: Prepared, concurrency: usize, control: &Control) -> Measurement {
    let Prepared { workers, recorder, warmup, stop, slo, live } = prepared;
    let warm_claims = AtomicU64::new(0);
    let claims = &control.progress.issued;
    // Workers and the coordinator meet twice: after warm-up, and once the start is set.
    let warmed = Barrier::new(concurrency + 1);
    let started = Barrier::new(concurrency + 1);
    let start_at: Mutex<Option<Instant>> = Mutex::new(None);
    // Workers wait here until every one of them has started: if the OS
    // refuses a thread, those already running go home instead of waiting at
    // the barriers for one that will never come.
    let all_started = Release::default();

    let mut tallies = Vec::with_capacity(concurrency);
    let mut start = Instant::now();
    std::thread::scope(|scope| {
        let spawned: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(index, mut worker)| {
                let (warm_claims, warmed, started, start_at) = (&warm_claims, &warmed, &started, &start_at);
                let all_started = &all_started;
                let mut tally = WorkerTally::new(recorder.clone(), false).judging(slo.clone()).counting(live.clone());
                let mut scratch = recorder.clone();
                super::caller_thread(index).spawn_scoped(scope, move || {
                    if !all_started.wait() {
                        return tally;
                    }
                    super::tune_thread_timers();
                    let cancel = &control.cancel;
                    let warm_start = Instant::now();
                    loop {
                        let more = match warmup {
                            Warmup::None => false,
                            Warmup::Count(n) => warm_claims.fetch_add(1, Ordering::Relaxed) < n,
                            Warmup::Duration(d) => warm_start.elapsed() < d,
                        };
                        if !more || cancel.load(Ordering::Relaxed) {
                            break;
                        }
                        let _ = super::call_guarded(worker.as_mut(), &mut scratch);
                    }
                    warmed.wait();
                    started.wait();
                    let begin =
                        start_at.lock().map(|s| s.unwrap_or_else(Instant::now)).unwrap_or_else(|_| Instant::now());
                    let (limit, deadline) = match stop {
                        Stop::Iterations(n) => (n, None),
                        Stop::Duration(d) => (u64::MAX, Some(begin + d)),
                    };
                    let mut recorder = std::mem::take(&mut tally.recorder);
                    loop {
                        if cancel.load(Ordering::Relaxed) || claims.fetch_add(1, Ordering::Relaxed) >= limit {
                            break;
                        }
                        let t0 = Instant::now();
                        let result = super::call_guarded(worker.as_mut(), &mut recorder);
                        let t1 = Instant::now();
                        match result {
                            Ok(()) => {
                                tally.success(t1 - t0);
                                let times = CallTimes { latency: t1 - t0, service: t1 - t0, lag: Duration::ZERO };
                                tally.judge(Some(times), &mut recorder);
                            }
                            Err(error) => {
                                tally.failure(&error);
                                tally.judge(None, &mut recorder);
                            }
                        }
                        tally.last_end = Some(t1);
                        if deadline.is_some_and(|d| t1 >= d) {
                            break;
                        }
                    }
                    tally.recorder = recorder;
                    tally
                })
            })
            .collect();
        let refused = spawned.iter().find_map(|spawn| spawn.as_ref().err().map(ToString::to_string));
        all_started.open(refused.is_none());
        if let Some(error) = refused {
            // The scope joins the workers that did start (they return at
            // once); the interpreter turns this panic into the run's error.
            panic!("cannot start a worker thread: {error}");
        }
        let handles: Vec<_> = spawned.into_iter().flatten().collect();
        warmed.wait();
        start = control.progress.start_measuring();
        if let Ok(mut slot) = start_at.lock() {
            *slot = Some(start);
        }
        started.wait();
        for handle in handles {
            if let Ok(tally) = handle.join() {
                tallies.push(tally);
            }
        }
    });
    super::merge(tallies, start, 0, control)
}

/// A one-time signal: closed until opened with go (`true`) or no-go (`false`).
#[derive(Default)]
struct Release {
    decision: Mutex<Option<bool>>,
    changed: Condvar,
}

impl Release {
    /// Waits until the signal is given and returns it.
    fn wait(&self) -> bool {
        let Ok(mut decision) = self.decision.lock() else { return false };
        loop {
            if let Some(go) = *decision {
                return go;
            }
            decision = match self.changed.wait(decision) {
                Ok(guard) => guard,
                Err(_) => return false,
            };
        }
    }

    /// Gives the signal to every waiter, present and future.
    fn open(&self, go: bool) {
        if let Ok(mut decision) = self.decision.lock() {
            *decision = Some(go);
        }
        self.changed.notify_all();
    }
}
