//! What one worker measures, and the merge of all workers into one measurement.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::engines::recorder::{new_histogram, record};
use crate::engines::{EngineError, Recorder};

/// Distinct error messages kept per run; further ones are only counted.
const MAX_ERROR_MESSAGES: usize = 8;

/// One worker's samples and counts.
#[derive(Debug)]
pub struct WorkerTally {
    /// Latency in nanoseconds (from intended start in open loop).
    pub latency: Histogram<u64>,
    /// Service time in nanoseconds (open loop only; equals latency in closed loop).
    pub service: Option<Histogram<u64>>,
    /// Open loop: nanoseconds from each operation's intended start to when a
    /// worker started it (or dropped it), the generator's lag behind schedule.
    pub schedule_lag: Option<Histogram<u64>>,
    /// Engine metrics.
    pub recorder: Recorder,
    /// Successful operations.
    pub operations: u64,
    /// Failed operations.
    pub errors: u64,
    /// Open loop: scheduled operations skipped after the drain deadline; their
    /// wait is in `latency` and `schedule_lag`.
    pub dropped: u64,
    /// Distinct messages and counts.
    pub messages: Vec<(String, u64)>,
    /// When this worker's last operation ended.
    pub last_end: Option<Instant>,
}

impl WorkerTally {
    /// An empty tally; `open_loop` adds service-time and schedule-lag histograms.
    pub fn new(recorder: Recorder, open_loop: bool) -> Self {
        WorkerTally {
            latency: new_histogram(),
            service: open_loop.then(new_histogram),
            schedule_lag: open_loop.then(new_histogram),
            recorder,
            operations: 0,
            errors: 0,
            dropped: 0,
            messages: Vec::new(),
            last_end: None,
        }
    }

    /// Records one successful operation.
    #[inline]
    pub fn success(&mut self, latency: Duration) {
        record(&mut self.latency, nanos(latency));
        self.operations += 1;
    }

    /// Open loop: records how late an operation started after its intended start.
    #[inline]
    pub fn lag(&mut self, lag: Duration) {
        if let Some(schedule_lag) = &mut self.schedule_lag {
            record(schedule_lag, nanos(lag));
        }
    }

    /// Open loop: records an operation dropped after the drain deadline,
    /// having waited `waited` since its intended start. The wait is a lower
    /// bound of its latency, so it goes into the latency figures rather than
    /// vanishing from them; the operation is neither a success nor an error.
    pub fn drop_after(&mut self, waited: Duration) {
        record(&mut self.latency, nanos(waited));
        self.lag(waited);
        self.dropped += 1;
    }

    /// Records one failed operation.
    pub fn failure(&mut self, error: &EngineError) {
        self.errors += 1;
        add_message(&mut self.messages, &error.message, 1);
    }

    /// Adds another worker's tally into this one.
    pub fn merge(&mut self, other: WorkerTally) {
        // Both auto-resize, so adding cannot fail on range.
        let _ = self.latency.add(&other.latency);
        if let (Some(ours), Some(theirs)) = (&mut self.service, &other.service) {
            let _ = ours.add(theirs);
        }
        if let (Some(ours), Some(theirs)) = (&mut self.schedule_lag, &other.schedule_lag) {
            let _ = ours.add(theirs);
        }
        self.recorder.merge(&other.recorder);
        self.operations += other.operations;
        self.errors += other.errors;
        self.dropped += other.dropped;
        for (message, count) in other.messages {
            add_message(&mut self.messages, &message, count);
        }
        self.last_end = self.last_end.max(other.last_end);
    }
}

/// A duration in whole nanoseconds, saturating.
fn nanos(duration: Duration) -> u64 {
    duration.as_nanos().min(u128::from(u64::MAX)) as u64
}

fn add_message(messages: &mut Vec<(String, u64)>, message: &str, count: u64) {
    if let Some((_, seen)) = messages.iter_mut().find(|(m, _)| m == message) {
        *seen += count;
    } else if messages.len() < MAX_ERROR_MESSAGES {
        messages.push((message.to_owned(), count));
    }
}

/// The measured part of one run, all workers merged.
#[derive(Debug)]
pub struct Measurement {
    /// Merged tallies.
    pub tally: WorkerTally,
    /// Start of the measured part.
    pub started: Instant,
    /// Measured wall time: from the start to the end of the last operation.
    pub elapsed: Duration,
    /// Stopped early by cancellation.
    pub cancelled: bool,
    /// Open loop: measured operations the dispatcher scheduled; 0 in closed loop.
    pub scheduled: u64,
}
