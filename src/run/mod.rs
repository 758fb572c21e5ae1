//! The interpreter: runs a plan against the engines and measures it.
//!
//! [`interpreter`] walks the plan run by run, taking each run's engine
//! instances from [`instances`] (which decides the runs that share them) and
//! handing each run to the closed-loop
//! ([`closed`]) or open-loop ([`open`]) executor. Executors measure on plain
//! OS threads, one per worker, because engine operations are blocking CPU or
//! I/O work; every worker records into its own histograms, merged at the end,
//! so measuring takes no lock.
//!
//! A capacity search ([`search`]) runs one probe at a time through the
//! same measurement, each judged by `analysis::targets`.
//!
//! **Architecture invariant:** the run stage reads a `Plan` and writes
//! `Results`; it renders nothing, and judges targets only to steer a
//! capacity search, through `analysis`, never on its own.

pub mod closed;
pub mod instances;
pub mod interpreter;
pub mod measure;
pub mod memory;
pub mod open;
pub mod profile;
pub(crate) mod record;
pub mod search;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engines::catalog::recorded_by_harness;
use crate::engines::{EngineError, OpWorker, Operation, Recorder};
use crate::plan::{Load, RunSpec, Stop, Warmup};
use crate::results::live::{Live, LiveRun};
pub use interpreter::{execute_plan, Observer};
use measure::{Measurement, SloCheck, WorkerTally};

/// Shared switches and counters of the run in progress.
#[derive(Debug, Default)]
pub struct Control {
    /// Set to stop measuring as soon as operations in flight return.
    pub cancel: Arc<AtomicBool>,
    /// Progress of the current run, for display.
    pub progress: RunProgress,
    /// When to begin the first run (`--start-at`): every shard of a split
    /// scenario waits for the same instant, so their windows line up.
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `run --metrics-addr`: every run's figures, counted as they happen.
    pub live: Option<Arc<Live>>,
}

/// Progress of one run, read by the display while workers write it.
#[derive(Debug, Default)]
pub struct RunProgress {
    /// Measured operations claimed or scheduled so far.
    pub issued: AtomicU64,
    measuring_since: Mutex<Option<Instant>>,
    gate: Mutex<Option<ProfilerGate>>,
}

/// The hand-shake that lets profilers start before the measured part does,
/// so that they see all of it and none of the warm-up.
#[derive(Debug)]
pub struct ProfilerGate {
    /// Told when the warm-up is over.
    pub go: mpsc::Sender<()>,
    /// Answers when the profilers run.
    pub ready: mpsc::Receiver<()>,
}

/// How long the measured part waits for profilers to start before going on without them.
const PROFILER_START_LIMIT: Duration = Duration::from_secs(10);

impl RunProgress {
    /// Marks the start of the measured part.
    fn begin_measuring(&self, at: Instant) {
        if let Ok(mut since) = self.measuring_since.lock() {
            *since = Some(at);
        }
    }

    /// Arms the profiler hand-shake for the next [`RunProgress::start_measuring`].
    pub fn arm_profilers(&self, gate: ProfilerGate) {
        if let Ok(mut slot) = self.gate.lock() {
            *slot = Some(gate);
        }
    }

    /// Called when the warm-up is over: starts any armed profilers, waits
    /// until they run, then marks and returns the start of the measured part.
    pub fn start_measuring(&self) -> Instant {
        let gate = self.gate.lock().ok().and_then(|mut slot| slot.take());
        if let Some(gate) = gate {
            if gate.go.send(()).is_ok() {
                let _ = gate.ready.recv_timeout(PROFILER_START_LIMIT);
            }
        }
        let start = Instant::now();
        self.begin_measuring(start);
        start
    }

    /// When measuring began, if it has.
    pub fn measuring_since(&self) -> Option<Instant> {
        self.measuring_since.lock().ok().and_then(|since| *since)
    }

    /// Clears the progress for the next run (an armed profiler gate stays).
    pub fn reset(&self) {
        self.issued.store(0, Ordering::Relaxed);
        if let Ok(mut since) = self.measuring_since.lock() {
            *since = None;
        }
    }

    /// Fraction done in 0..=1 for a run with stop condition `stop`.
    pub fn fraction(&self, stop: Stop) -> f64 {
        match stop {
            Stop::Iterations(n) => (self.issued.load(Ordering::Relaxed) as f64 / n as f64).min(1.0),
            Stop::Duration(d) => {
                self.measuring_since().map_or(0.0, |since| (since.elapsed().as_secs_f64() / d.as_secs_f64()).min(1.0))
            }
        }
    }
}

/// Workers ready to run, with what they need to know.
pub struct Prepared {
    /// One per concurrent caller.
    pub workers: Vec<Box<dyn OpWorker>>,
    /// An empty recorder for the operation's engine metrics.
    pub recorder: Recorder,
    /// Warm-up.
    pub warmup: Warmup,
    /// Stop condition.
    pub stop: Stop,
    /// The workload's SLO, judged after every measured operation.
    pub slo: SloCheck,
    /// The run's live figures, when they are served.
    pub live: Option<Arc<LiveRun>>,
}

/// Measures one run of a prepared operation.
pub fn execute(spec: &RunSpec, operation: &dyn Operation, control: &Control) -> Result<Measurement, EngineError> {
    if let Load::Search(_) = spec.load {
        return Err(EngineError::new("a capacity search measures one probe at a time, each at one load"));
    }
    let workers = spec.load.workers() as usize;
    let engine_metrics: Vec<_> =
        spec.metrics.iter().copied().filter(|metric| !recorded_by_harness(metric.name)).collect();
    let prepared = Prepared {
        workers: (0..workers)
            .map(|index| operation.worker(index, spec.seed.wrapping_add(index as u64)))
            .collect::<Result<_, _>>()?,
        recorder: Recorder::new(&engine_metrics),
        warmup: spec.warmup,
        stop: spec.stop,
        slo: SloCheck::new(&spec.slo),
        live: control.live.as_ref().map(|live| live.begin(&spec.id, &spec.phase, &spec.workload, spec.repetition)),
    };
    let live = prepared.live.clone();
    control.progress.reset();
    let measurement = match spec.load {
        Load::Closed { .. } | Load::Search(_) => closed::run(prepared, workers, control),
        Load::Open { rate, arrival, .. } => {
            // A shard issues every `count`-th operation of the whole run's
            // schedule, starting at its index: the shards interleave into it.
            let part = spec.shard.map_or((0, 1), |shard| (shard.index, shard.count));
            let arrivals =
                open::Arrivals { rate: rate * f64::from(part.1), process: arrival, seed: spec.schedule_seed };
            open::run(prepared, arrivals, part, workers, control)
        }
    };
    if let Some(live) = live {
        live.finish();
    }
    Ok(measurement)
}

/// Calls the operation once; a panic inside the engine becomes an error.
#[inline]
fn call_guarded(worker: &mut dyn OpWorker, recorder: &mut Recorder) -> Result<(), EngineError> {
    match catch_unwind(AssertUnwindSafe(|| worker.call(recorder))) {
        Ok(result) => result,
        Err(panic) => Err(EngineError::new(format!("engine panicked: {}", panic_message(panic.as_ref())))),
    }
}

/// The message a panic carried, if it was text.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Merges worker tallies into one measurement starting at `start`, of
/// `scheduled` operations the open-loop dispatcher issued (0 in closed loop).
fn merge(tallies: Vec<WorkerTally>, start: Instant, scheduled: u64, control: &Control) -> Measurement {
    let mut tallies = tallies.into_iter();
    let mut total = tallies.next().unwrap_or_else(|| WorkerTally::new(Recorder::default(), false));
    for tally in tallies {
        total.merge(tally);
    }
    let elapsed = total.last_end.map_or_else(Default::default, |end| end.saturating_duration_since(start));
    Measurement {
        tally: total,
        started: start,
        elapsed,
        cancelled: control.cancel.load(Ordering::Relaxed),
        scheduled,
        dispatch_lag: None,
    }
}

/// A worker thread named for flame graphs and debuggers (`pb-caller-3`;
/// Linux keeps 15 bytes of a thread's name).
fn caller_thread(index: usize) -> std::thread::Builder {
    std::thread::Builder::new().name(format!("pb-caller-{index}"))
}

/// Asks the kernel for precise timer wake-ups on this thread, so that sleeps
/// (the `sleep` operation, the open-loop dispatcher) overshoot by microseconds
/// rather than the default 50 µs slack.
fn tune_thread_timers() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches only
    // this thread's timer slack; the call cannot affect memory safety.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}
