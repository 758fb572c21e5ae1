//! Live figures of the campaign in progress, for `run --metrics-addr`:
//! per run, the measured operations that succeeded, failed and were
//! dropped, and a latency histogram in fixed buckets, counted as they
//! happen. The workers write them with atomic adds (no lock); the
//! exposition (`report::prometheus`) reads them at any time. Warm-up
//! operations are not counted, as in the results.
//!
//! The buckets are classic Prometheus ones: [`BUCKETS`], 1 µs to 100 s, three
//! a decade. A scrape sees every run measured so far, the finished ones
//! with their final counts, so a dashboard keeps them after the run moves
//! on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (`le`), the last one
/// before `+Inf`.
pub const BUCKETS: [f64; 25] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0,
];

/// The live figures of one run (or one probe of a capacity search).
#[derive(Debug)]
pub struct LiveRun {
    /// The run's id (a probe's is `RUN~probeN`).
    pub id: String,
    /// Its phase.
    pub phase: String,
    /// Its workload.
    pub workload: String,
    /// Its pass of `--repeat`, when the phase is repeated.
    pub pass: Option<u32>,
    operations: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
    /// Operations with a latency at most each bound, not cumulative (the
    /// exposition sums them); the last one counts those above every bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    latency_nanos: AtomicU64,
    active: AtomicBool,
}

/// A consistent enough reading of a [`LiveRun`]: each figure is read once.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveSnapshot {
    /// The run's id.
    pub id: String,
    /// Its phase.
    pub phase: String,
    /// Its workload.
    pub workload: String,
    /// Its pass of `--repeat`, when the phase is repeated.
    pub pass: Option<u32>,
    /// Measured operations that succeeded.
    pub operations: u64,
    /// Measured operations that failed.
    pub errors: u64,
    /// Open loop: operations dropped at the drain deadline.
    pub dropped: u64,
    /// Cumulative counts per bound of [`BUCKETS`], then the count of all (`+Inf`).
    pub cumulative: Vec<u64>,
    /// The sum of the latencies counted, in seconds.
    pub latency_sum: f64,
    /// Still measuring.
    pub active: bool,
}

impl LiveRun {
    fn new(id: &str, phase: &str, workload: &str, pass: Option<u32>) -> LiveRun {
        LiveRun {
            id: id.to_owned(),
            phase: phase.to_owned(),
            workload: workload.to_owned(),
            pass,
            operations: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_nanos: AtomicU64::new(0),
            active: AtomicBool::new(true),
        }
    }

    /// A measured operation that succeeded after `latency`.
    pub fn success(&self, latency: Duration) {
        self.latency(latency);
        self.operations.fetch_add(1, Ordering::Relaxed);
    }

    /// A measured operation that failed.
    pub fn failure(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// An operation dropped at the drain deadline after waiting `waited`
    /// (a lower bound of its latency, which the results count too).
    pub fn dropped(&self, waited: Duration) {
        self.latency(waited);
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    fn latency(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let bucket = BUCKETS.partition_point(|bound| *bound < seconds);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Marks the run finished: its counts are final.
    pub fn finish(&self) {
        self.active.store(false, Ordering::Release);
    }

    /// The figures now.
    pub fn snapshot(&self) -> LiveSnapshot {
        let mut running = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|bucket| {
                running += bucket.load(Ordering::Relaxed);
                running
            })
            .collect();
        LiveSnapshot {
            id: self.id.clone(),
            phase: self.phase.clone(),
            workload: self.workload.clone(),
            pass: self.pass,
            operations: self.operations.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            cumulative,
            latency_sum: self.latency_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            active: self.active.load(Ordering::Acquire),
        }
    }
}

/// Every run of the campaign measured so far, in order.
#[derive(Debug)]
pub struct Live {
    /// The scenario's name, a label of every series.
    pub scenario: String,
    runs: Mutex<Vec<Arc<LiveRun>>>,
}

impl Live {
    /// Live figures for a campaign of `scenario`.
    pub fn new(scenario: &str) -> Live {
        Live { scenario: scenario.to_owned(), runs: Mutex::new(Vec::new()) }
    }

    /// Starts counting pass `pass` of run `id`; the same pass of the same
    /// run begun again starts its series afresh.
    pub fn begin(&self, id: &str, phase: &str, workload: &str, pass: Option<u32>) -> Arc<LiveRun> {
        let run = Arc::new(LiveRun::new(id, phase, workload, pass));
        if let Ok(mut runs) = self.runs.lock() {
            runs.retain(|old| (old.id.as_str(), old.pass) != (id, pass));
            runs.push(Arc::clone(&run));
        }
        run
    }

    /// Every run's figures now.
    pub fn snapshot(&self) -> Vec<LiveSnapshot> {
        self.runs.lock().map(|runs| runs.iter().map(|run| run.snapshot()).collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_their_buckets_and_add_up() {
        let live = Live::new("s");
        let run = live.begin("p:w", "p", "w", None);
        run.success(Duration::from_micros(1));
        run.success(Duration::from_micros(700));
        run.success(Duration::from_secs(1000));
        run.failure();
        run.dropped(Duration::from_millis(3));
        let snapshot = &live.snapshot()[0];
        assert_eq!((snapshot.operations, snapshot.errors, snapshot.dropped), (3, 1, 1));
        // 1 µs is in the first bucket (`le` is inclusive); 700 µs under 1 ms; 3 ms under 5 ms.
        assert_eq!(snapshot.cumulative[0], 1);
        assert_eq!(snapshot.cumulative[BUCKETS.iter().position(|b| *b == 1e-3).unwrap()], 2);
        assert_eq!(snapshot.cumulative[BUCKETS.iter().position(|b| *b == 5e-3).unwrap()], 3);
        assert_eq!(snapshot.cumulative[BUCKETS.len() - 1], 3, "1000 s is above every bound");
        assert_eq!(snapshot.cumulative[BUCKETS.len()], 4);
        assert!((snapshot.latency_sum - 1000.003701).abs() < 1e-6, "{}", snapshot.latency_sum);
        assert!(snapshot.active);
        run.finish();
        assert!(!live.snapshot()[0].active);
    }

    #[test]
    fn a_run_begun_again_replaces_its_series() {
        let live = Live::new("s");
        live.begin("a", "p", "a", None).success(Duration::from_millis(1));
        live.begin("b", "p", "b", None);
        live.begin("a", "p", "a", Some(2)).success(Duration::from_millis(1));
        live.begin("a", "p", "a", None);
        let ids: Vec<_> = live.snapshot().into_iter().map(|run| (run.id, run.pass, run.operations)).collect();
        assert_eq!(ids, [("b".to_owned(), None, 0), ("a".to_owned(), Some(2), 1), ("a".to_owned(), None, 0)]);
    }
}
