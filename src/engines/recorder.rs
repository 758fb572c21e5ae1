//! Where an operation records the metrics it measures itself.
//!
//! The harness times every call on its own (`latency`); an engine that knows
//! more, such as the time to first token inside one `generate`, records it
//! here. Each worker owns one recorder, so recording takes no lock.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::catalog::{histogram_scale, MetricDecl};

/// Significant decimal digits every histogram keeps.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A new empty histogram with phasebench's precision.
pub fn new_histogram() -> Histogram<u64> {
    // Three significant digits with auto-resize is always a valid configuration.
    Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is a valid histogram precision")
}

/// Records `value` into an auto-resizing histogram. A value past the
/// largest one a histogram can ever track (about 2^63) is clamped to it.
#[inline]
pub fn record(histogram: &mut Histogram<u64>, value: u64) {
    if histogram.record(value).is_err() {
        histogram.saturating_record(value);
    }
}

/// One metric's samples in one worker.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The metric's declared name.
    pub name: &'static str,
    scale: f64,
    /// The samples, in histogram units.
    pub histogram: Histogram<u64>,
    /// The smallest and largest sample of the current call, in base units.
    call: Option<(f64, f64)>,
    /// The metric runs from the operation's start (`MetricDecl::from_start`).
    from_start: bool,
}

/// Engine-recorded metrics and counters of one worker.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    slots: Vec<Slot>,
    counters: Vec<(&'static str, u64)>,
    /// Seconds the current operation waited for a worker after its intended
    /// start (open loop), added to metrics that run from its start.
    waited: f64,
}

impl Recorder {
    /// A recorder for the given metrics.
    pub fn new(metrics: &[&'static MetricDecl]) -> Self {
        let slots = metrics
            .iter()
            .map(|metric| Slot {
                name: metric.name,
                scale: histogram_scale(metric.dim),
                histogram: new_histogram(),
                call: None,
                from_start: metric.from_start,
            })
            .collect();
        Recorder { slots, counters: Vec::new(), waited: 0.0 }
    }

    /// Sets how long the next operation waited for a worker after its
    /// intended start (open loop; zero otherwise): metrics that run from the
    /// operation's start then count it, as `latency` does.
    pub fn set_waited(&mut self, waited: Duration) {
        self.waited = waited.as_secs_f64();
    }

    /// Records a sample in base units (seconds, bytes, tokens per second, …).
    /// A metric the operation did not declare is ignored.
    pub fn record(&mut self, metric: &str, value: f64) {
        if let Some(slot) = self.slots.iter_mut().find(|slot| slot.name == metric) {
            let value = if slot.from_start { value + self.waited } else { value };
            let units = (value * slot.scale).round();
            if units.is_finite() && units >= 0.0 {
                record(&mut slot.histogram, units as u64);
                slot.call = Some(slot.call.map_or((value, value), |(low, high)| (low.min(value), high.max(value))));
            }
        }
    }

    /// Records a duration sample.
    pub fn record_duration(&mut self, metric: &str, duration: Duration) {
        self.record(metric, duration.as_secs_f64());
    }

    /// Adds `amount` to a named counter (tokens generated, bytes written, …).
    pub fn count(&mut self, counter: &'static str, amount: u64) {
        match self.counters.iter_mut().find(|(name, _)| *name == counter) {
            Some((_, total)) => *total += amount,
            None => self.counters.push((counter, amount)),
        }
    }

    /// The smallest and largest sample of `metric` (base units) recorded
    /// since the last [`Recorder::end_call`]; `None` when there was none.
    pub fn call_range(&self, metric: &str) -> Option<(f64, f64)> {
        self.slots.iter().find(|slot| slot.name == metric)?.call
    }

    /// Closes one call's samples: [`Recorder::call_range`] starts afresh.
    pub fn end_call(&mut self) {
        for slot in &mut self.slots {
            slot.call = None;
        }
    }

    /// Forgets everything recorded, keeping the metrics (used after warm-up).
    pub fn clear(&mut self) {
        for slot in &mut self.slots {
            slot.histogram.reset();
            slot.call = None;
        }
        self.counters.clear();
    }

    /// Adds another worker's recordings into this one.
    pub fn merge(&mut self, other: &Recorder) {
        for theirs in &other.slots {
            if let Some(ours) = self.slots.iter_mut().find(|slot| slot.name == theirs.name) {
                // Both histograms auto-resize, so adding cannot go out of range.
                let _ = ours.histogram.add(&theirs.histogram);
            }
        }
        for (name, amount) in &other.counters {
            self.count(name, *amount);
        }
    }

    /// The metric histograms.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The counters.
    pub fn counters(&self) -> &[(&'static str, u64)] {
        &self.counters
    }
}
