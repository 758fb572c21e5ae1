//! The server's figures in the Prometheus text exposition format: requests
//! by endpoint and status, the running batch and the waiting queue, prompt
//! and generated token totals, and histograms of the decoding step's time
//! and of the batch size it ran.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the decoding step's time buckets, in seconds.
const STEP_SECONDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Upper bounds of the batch size buckets.
const BATCH_SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The server's counters, gauges and histograms; shared by the HTTP
/// handlers and the scheduler.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    running: AtomicU64,
    waiting: AtomicU64,
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    step_time: Mutex<Histogram>,
    batch_size: Mutex<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            running: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            generated_tokens: AtomicU64::new(0),
            step_time: Mutex::new(Histogram::new(STEP_SECONDS)),
            batch_size: Mutex::new(Histogram::new(BATCH_SIZES)),
        }
    }
}

/// Counts per bucket (the last one past every bound), their sum and count.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0 }
    }

    fn observe(&mut self, value: f64) {
        let bucket = self.bounds.iter().position(|&bound| value <= bound).unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.sum += value;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[self.bounds.len()];
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// A poisoned lock only means a panic elsewhere; the counts are still whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    /// One answered request to `endpoint` with HTTP status `status`.
    pub fn request(&self, endpoint: &'static str, status: u16) {
        *lock(&self.requests).entry((endpoint, status)).or_default() += 1;
    }

    /// The scheduler's sequences now decoding and requests waiting for a place.
    pub fn set_queues(&self, running: usize, waiting: usize) {
        self.running.store(running as u64, Ordering::Relaxed);
        self.waiting.store(waiting as u64, Ordering::Relaxed);
    }

    /// A prompt prefilled.
    pub fn prompt(&self, tokens: usize) {
        self.prompt_tokens.fetch_add(tokens as u64, Ordering::Relaxed);
    }

    /// A token generated and sent.
    pub fn generated(&self) {
        self.generated_tokens.fetch_add(1, Ordering::Relaxed);
    }

    /// One decoding step over `batch` sequences that took `time`.
    pub fn step(&self, time: Duration, batch: usize) {
        lock(&self.step_time).observe(time.as_secs_f64());
        lock(&self.batch_size).observe(batch as f64);
    }

    /// Every figure in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP phasebench_requests_total HTTP requests answered, by endpoint and status.\n");
        out.push_str("# TYPE phasebench_requests_total counter\n");
        for ((endpoint, status), count) in lock(&self.requests).iter() {
            let _ = writeln!(out, "phasebench_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {count}");
        }
        let mut scalar = |name: &str, kind: &str, help: &str, value: &AtomicU64| {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}", value.load(Ordering::Relaxed));
        };
        scalar("phasebench_running_sequences", "gauge", "Sequences in the running batch.", &self.running);
        scalar("phasebench_waiting_requests", "gauge", "Requests waiting for a place in the batch.", &self.waiting);
        scalar("phasebench_prompt_tokens_total", "counter", "Prompt tokens prefilled.", &self.prompt_tokens);
        scalar("phasebench_generated_tokens_total", "counter", "Tokens generated.", &self.generated_tokens);
        lock(&self.step_time).render(
            &mut out,
            "phasebench_decode_step_seconds",
            "Time of one batched decoding step (the model's forward over the running batch).",
        );
        lock(&self.batch_size).render(&mut out, "phasebench_batch_size", "Sequences in each decoding step.");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_end_at_the_count() {
        let metrics = Metrics::default();
        for (millis, batch) in [(2, 1), (2, 3), (40, 16), (4000, 17)] {
            metrics.step(Duration::from_millis(millis), batch);
        }
        metrics.request("completions", 200);
        metrics.request("completions", 200);
        metrics.request("other", 404);
        let text = metrics.render();
        for line in [
            "phasebench_decode_step_seconds_bucket{le=\"0.001\"} 0",
            "phasebench_decode_step_seconds_bucket{le=\"0.0025\"} 2",
            "phasebench_decode_step_seconds_bucket{le=\"2.5\"} 3",
            "phasebench_decode_step_seconds_bucket{le=\"+Inf\"} 4",
            "phasebench_decode_step_seconds_count 4",
            "phasebench_batch_size_bucket{le=\"4\"} 2",
            "phasebench_batch_size_bucket{le=\"16\"} 3",
            "phasebench_batch_size_sum 37",
            "phasebench_requests_total{endpoint=\"completions\",status=\"200\"} 2",
            "phasebench_requests_total{endpoint=\"other\",status=\"404\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
    }
}
