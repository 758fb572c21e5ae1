//! What one worker measures, and the merge of all workers into one measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::engines::recorder::{new_histogram, record};
use crate::engines::{EngineError, Recorder};
use crate::metric::names;
use crate::plan::SloBound;
use crate::results::live::LiveRun;

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
    /// The workload's SLO, checked after every successful operation.
    pub slo: SloCheck,
    /// Successful operations that met every bound of the SLO.
    pub slo_met: u64,
    /// `run --metrics-addr`: the run's live figures, counted as they happen.
    pub live: Option<Arc<LiveRun>>,
}

/// How long one successful operation took, as the harness measured it.
#[derive(Clone, Copy, Debug)]
pub struct CallTimes {
    /// From its intended start (open loop) or its start (closed loop) to its end.
    pub latency: Duration,
    /// From its actual start to its end.
    pub service: Duration,
    /// Open loop: how late it started; zero in closed loop.
    pub lag: Duration,
}

/// A workload's SLO, ready to judge each operation: the harness's time
/// metrics from the call's times, an engine's from the samples the call
/// recorded (its worst sample must meet the bound: every inter-token gap,
/// not their mean). A bounded metric the call recorded no sample of does
/// not stop it from meeting the SLO (a one-token generation has no `tpot`).
#[derive(Clone, Debug, Default)]
pub struct SloCheck {
    bounds: Vec<SloBound>,
}

impl SloCheck {
    /// The check of `bounds`; with none, every operation is judged to meet it.
    pub fn new(bounds: &[SloBound]) -> Self {
        SloCheck { bounds: bounds.to_vec() }
    }

    /// Whether there is anything to check.
    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// Whether an operation with these times and samples met every bound.
    pub fn met(&self, times: CallTimes, recorder: &Recorder) -> bool {
        self.bounds.iter().all(|bound| {
            let worst = match bound.metric.name {
                names::LATENCY => Some(times.latency.as_secs_f64()),
                names::SERVICE_TIME => Some(times.service.as_secs_f64()),
                names::SCHEDULE_LAG => Some(times.lag.as_secs_f64()),
                engine => recorder.call_range(engine).map(|(low, high)| match bound.metric.better {
                    crate::metric::Better::Lower => high,
                    crate::metric::Better::Higher => low,
                }),
            };
            worst.is_none_or(|worst| bound.met_by(worst))
        })
    }
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
            slo: SloCheck::default(),
            slo_met: 0,
            live: None,
        }
    }

    /// The same tally also counting into `live` as it goes.
    pub fn counting(self, live: Option<Arc<LiveRun>>) -> Self {
        WorkerTally { live, ..self }
    }

    /// The same tally judging every successful operation against `slo`.
    pub fn judging(self, slo: SloCheck) -> Self {
        WorkerTally { slo, ..self }
    }

    /// Closes one measured call: a success is judged against the SLO (a
    /// failure never meets it), and the recorder's per-call samples start
    /// afresh for the next call.
    #[inline]
    pub fn judge(&mut self, success: Option<CallTimes>, recorder: &mut Recorder) {
        if self.slo.is_empty() {
            return;
        }
        if success.is_some_and(|times| self.slo.met(times, recorder)) {
            self.slo_met += 1;
        }
        recorder.end_call();
    }

    /// Records one successful operation.
    #[inline]
    pub fn success(&mut self, latency: Duration) {
        record(&mut self.latency, nanos(latency));
        self.operations += 1;
        if let Some(live) = &self.live {
            live.success(latency);
        }
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
        if let Some(live) = &self.live {
            live.dropped(waited);
        }
    }

    /// Records one failed operation.
    pub fn failure(&mut self, error: &EngineError) {
        self.errors += 1;
        if let Some(live) = &self.live {
            live.failure();
        }
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
        self.slo_met += other.slo_met;
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
    /// Open loop: nanoseconds from each measured operation's intended start
    /// to when the dispatcher handed it on, the generator's own lateness
    /// (the wait for a free worker after that is the system's).
    pub dispatch_lag: Option<Histogram<u64>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::MetricDecl;
    use crate::metric::Better;
    use crate::quantity::Dim;

    static GAP: MetricDecl = MetricDecl::time("gap", "a time recorded many times per call");
    static RATE: MetricDecl = MetricDecl::distribution("rate", Dim::TOKEN_RATE, Better::Higher, "higher is better");

    fn bound(metric: &'static MetricDecl, limit: f64) -> SloBound {
        SloBound { metric, limit, text: limit.to_string() }
    }

    const TIMES: CallTimes =
        CallTimes { latency: Duration::from_millis(5), service: Duration::from_millis(4), lag: Duration::ZERO };

    /// Records `gaps` (seconds) and `rates` as one call and judges it.
    fn judged(slo: &[SloBound], gaps: &[f64], rates: &[f64]) -> (bool, u64) {
        let mut tally = WorkerTally::new(Recorder::new(&[&GAP, &RATE]), false).judging(SloCheck::new(slo));
        let mut recorder = std::mem::take(&mut tally.recorder);
        gaps.iter().for_each(|gap| recorder.record("gap", *gap));
        rates.iter().for_each(|rate| recorder.record("rate", *rate));
        tally.judge(Some(TIMES), &mut recorder);
        let met = tally.slo_met == 1;
        // The next call starts afresh: with nothing recorded it meets the bounds.
        tally.judge(Some(TIMES), &mut recorder);
        (met, tally.slo_met - u64::from(met))
    }

    #[test]
    fn every_sample_of_a_call_must_meet_the_bound_not_their_mean() {
        let slo = [bound(&GAP, 0.010)];
        assert_eq!(judged(&slo, &[0.001, 0.002, 0.003], &[]), (true, 1));
        // Mean 4.3 ms, but one gap of 11 ms: missed.
        assert_eq!(judged(&slo, &[0.001, 0.011, 0.001], &[]), (false, 1));
        // A higher-is-better bound is met by the smallest sample only.
        let slo = [bound(&RATE, 50.0)];
        assert_eq!(judged(&slo, &[], &[80.0, 60.0]), (true, 1));
        assert_eq!(judged(&slo, &[], &[80.0, 40.0, 90.0]), (false, 1));
    }

    #[test]
    fn harness_times_are_judged_and_a_failure_never_meets_the_slo() {
        let latency = crate::engines::catalog::harness_metric(names::LATENCY).unwrap();
        let service = crate::engines::catalog::harness_metric(names::SERVICE_TIME).unwrap();
        assert!(judged(&[bound(latency, 0.005)], &[], &[]).0);
        assert!(!judged(&[bound(latency, 0.0049)], &[], &[]).0);
        assert!(judged(&[bound(service, 0.0045)], &[], &[]).0);
        let mut tally = WorkerTally::new(Recorder::new(&[&GAP]), false).judging(SloCheck::new(&[bound(&GAP, 1.0)]));
        let mut recorder = Recorder::new(&[&GAP]);
        tally.judge(None, &mut recorder);
        assert_eq!(tally.slo_met, 0);
    }
}
