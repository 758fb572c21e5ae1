//! Profilers that watch a run's measured part from a thread of their own.
//!
//! `cpu` starts pprof's sampler (SIGPROF at [`CPU_FREQUENCY`] per second of
//! CPU time, every thread of the process) when measuring begins and folds
//! the sampled stacks when it ends. `memory` switches on the counting
//! allocator ([`super::memory`]), where the program installed it, and
//! samples the live heap; `memory` and
//! `rss` sample resident memory. Samples start every [`FIRST_INTERVAL`]; the
//! series is thinned by half (and the interval doubled) whenever it reaches
//! [`MAX_SAMPLES`], so an hour-long endurance run keeps a bounded record with
//! even spacing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::memory;
use super::{ProfilerGate, RunProgress};
use crate::plan::Profiling;
use crate::results::{CpuProfile, FoldedStack, HeapRecord, MemorySample, ProfileRecord};

/// Stack samples per second of CPU time. Below the 250 Hz tick of common
/// kernels, which bounds how often the profiling timer can fire, and odd so
/// that it does not beat with periodic work such as 1 ms timers.
pub const CPU_FREQUENCY: u32 = 199;
/// Time between memory samples at the start of a run.
pub const FIRST_INTERVAL: Duration = Duration::from_millis(20);
/// Most memory samples kept per run.
pub const MAX_SAMPLES: usize = 2000;
/// Most distinct stacks kept per run; the rarest are merged into one line.
pub const MAX_STACKS: usize = 4000;
/// The watcher's thread name; its own stacks (reading the profile) are left
/// out of the profile.
pub const WATCHER_THREAD: &str = "pb-profiler";
/// How often the watcher checks whether the run has ended.
const POLL: Duration = Duration::from_millis(2);

/// The watcher's side of the hand-shake with the measured part.
pub struct Cue {
    go: mpsc::Receiver<()>,
    ready: mpsc::Sender<()>,
}

/// A hand-shake: the gate goes to [`RunProgress::arm_profilers`], the cue to [`watch`].
pub fn gate() -> (ProfilerGate, Cue) {
    let (go_sender, go) = mpsc::channel();
    let (ready, ready_receiver) = mpsc::channel();
    (ProfilerGate { go: go_sender, ready: ready_receiver }, Cue { go, ready })
}

/// Watches one run: starts the profilers when the warm-up is over (`cue`),
/// profiles until `done` is set, and returns what it recorded.
pub fn watch(profile: Profiling, progress: &RunProgress, cue: Cue, done: &AtomicBool) -> ProfileRecord {
    let mut record = ProfileRecord::default();
    loop {
        match cue.go.recv_timeout(POLL) {
            Ok(()) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if !done.load(Ordering::Acquire) => continue,
            Err(_) => {
                record.problems.push("the run ended before measuring began; nothing was profiled".into());
                return record;
            }
        }
    }
    // Without the counting allocator the heap counters never move: say so
    // rather than report a heap of zero bytes.
    let counts_heap = profile.memory && memory::installed();
    if profile.memory && !counts_heap {
        record.problems.push(memory::NOT_INSTALLED.into());
    }
    let cpu_start = process_cpu_seconds();
    let sampler = if profile.cpu {
        match start_cpu() {
            Ok(guard) => Some(guard),
            Err(problem) => {
                record.problems.push(problem);
                None
            }
        }
    } else {
        None
    };
    // Allocated before counting starts, so that the watcher's own record
    // never shows in the heap it counts.
    let mut series = profile.samples_memory().then(|| Series::new(counts_heap));
    if counts_heap {
        memory::start_counting();
    }
    let _ = cue.ready.send(());
    // The measured part marks its start as soon as it hears back.
    let start = loop {
        if let Some(since) = progress.measuring_since() {
            break since;
        }
        if done.load(Ordering::Acquire) {
            break Instant::now();
        }
        std::thread::yield_now();
    };

    if let Some(series) = &mut series {
        series.begin(start);
        while !done.load(Ordering::Acquire) {
            if series.due() {
                series.sample();
            }
            std::thread::sleep(POLL);
        }
        series.sample();
        if series.samples.iter().all(|sample| sample.rss.is_none()) {
            record.problems.push("resident memory is not readable here (/proc/self/statm)".into());
        }
        record.memory_interval = Some(series.interval.as_secs_f64());
        record.memory = std::mem::take(&mut series.samples);
    } else {
        while !done.load(Ordering::Acquire) {
            std::thread::sleep(POLL);
        }
    }

    if counts_heap {
        memory::stop_counting();
        let counts = memory::heap_counts();
        record.heap = Some(HeapRecord {
            allocated_bytes: counts.allocated,
            allocations: counts.allocations,
            peak_bytes: counts.peak,
            end_bytes: counts.live,
        });
    }
    if let Some(guard) = sampler {
        let cpu_seconds = process_cpu_seconds() - cpu_start;
        match guard.report().build() {
            Ok(report) => record.cpu = Some(CpuProfile { cpu_seconds: Some(cpu_seconds), ..fold(&report) }),
            Err(error) => record.problems.push(format!("the CPU profile could not be read: {error}")),
        }
    }
    record
}

fn start_cpu() -> Result<pprof::ProfilerGuard<'static>, String> {
    pprof::ProfilerGuardBuilder::default()
        .frequency(CPU_FREQUENCY as i32)
        // Unwinding from a signal handler through these can deadlock.
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|error| format!("the CPU sampler could not start: {error}"))
}

/// Memory samples at an interval that doubles whenever the series is thinned.
struct Series {
    start: Instant,
    heap: bool,
    interval: Duration,
    next: Instant,
    samples: Vec<MemorySample>,
}

impl Series {
    /// Room for every sample it will keep: pushing never allocates.
    fn new(heap: bool) -> Self {
        let now = Instant::now();
        Series { start: now, heap, interval: FIRST_INTERVAL, next: now, samples: Vec::with_capacity(MAX_SAMPLES) }
    }

    /// Sets the start of the measured part; samples are timed from it.
    fn begin(&mut self, start: Instant) {
        self.start = start;
        self.next = start;
    }

    fn due(&self) -> bool {
        Instant::now() >= self.next
    }

    fn sample(&mut self) {
        let now = Instant::now();
        let counts = self.heap.then(memory::heap_counts);
        self.samples.push(MemorySample {
            t: now.saturating_duration_since(self.start).as_secs_f64(),
            rss: memory::resident_bytes(),
            heap: counts.map(|c| c.live),
            allocated: counts.map(|c| c.allocated),
        });
        self.next += self.interval;
        if self.samples.len() >= MAX_SAMPLES {
            thin(&mut self.samples);
            self.interval *= 2;
            self.next = self.start + self.interval * self.samples.len() as u32;
        }
        if self.next < now {
            self.next = now + self.interval;
        }
    }
}

/// Keeps every other sample, the first included.
fn thin(samples: &mut Vec<MemorySample>) {
    let mut index = 0;
    samples.retain(|_| {
        index += 1;
        index % 2 == 1
    });
}

/// Folds pprof's samples into one line per distinct stack, most sampled first.
fn fold(report: &pprof::Report) -> CpuProfile {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for (frames, count) in &report.data {
        if frames.thread_name == WATCHER_THREAD {
            continue;
        }
        let mut line = thread_label(&frames.thread_name);
        // Frames come innermost first; a frame may hold inlined symbols,
        // innermost first as well.
        for frame in frames.frames.iter().rev() {
            for symbol in frame.iter().rev() {
                line.push(';');
                line.push_str(&symbol_label(&symbol.name()));
            }
        }
        *counts.entry(line).or_default() += (*count).max(0) as u64;
    }
    let samples = counts.values().sum();
    let mut stacks: Vec<FoldedStack> =
        counts.into_iter().map(|(stack, samples)| FoldedStack { stack, samples }).collect();
    stacks.sort_by(|a, b| b.samples.cmp(&a.samples).then_with(|| a.stack.cmp(&b.stack)));
    if stacks.len() > MAX_STACKS {
        let rest: u64 = stacks[MAX_STACKS - 1..].iter().map(|stack| stack.samples).sum();
        let merged = stacks.len() - (MAX_STACKS - 1);
        stacks.truncate(MAX_STACKS - 1);
        stacks.push(FoldedStack { stack: format!("[{merged} rarer stacks]"), samples: rest });
    }
    CpuProfile { frequency_hz: CPU_FREQUENCY, samples, cpu_seconds: None, stacks }
}

/// CPU time used by every thread of the process so far, in seconds.
fn process_cpu_seconds() -> f64 {
    let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which lives on this stack.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut time) };
    if status == 0 {
        time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
    } else {
        0.0
    }
}

/// A thread's name without its number, so that the stacks of a pool's
/// threads add up (`pb-caller-3` → `pb-caller`).
fn thread_label(name: &str) -> String {
    let trimmed = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '_' || c == ' ');
    if trimmed.is_empty() {
        "[unnamed thread]".into()
    } else {
        trimmed.replace(';', ",")
    }
}

/// A demangled symbol without Rust's hash suffix, safe in a folded line.
fn symbol_label(name: &str) -> String {
    let name = match name.rsplit_once("::h") {
        Some((path, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => path,
        _ => name,
    };
    name.replace(';', ",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_labels_drop_numbers() {
        assert_eq!(thread_label("pb-caller-12"), "pb-caller");
        assert_eq!(thread_label("12345"), "[unnamed thread]");
        assert_eq!(thread_label(""), "[unnamed thread]");
        assert_eq!(thread_label("main"), "main");
    }

    #[test]
    fn symbol_labels_drop_hashes_and_separators() {
        assert_eq!(symbol_label("core::ptr::drop_in_place::h0123456789abcdef"), "core::ptr::drop_in_place");
        assert_eq!(symbol_label("<[u8; 4] as Debug>::fmt"), "<[u8, 4] as Debug>::fmt");
        assert_eq!(symbol_label("a::hello"), "a::hello");
    }

    #[test]
    fn thinning_keeps_even_spacing() {
        let mut samples: Vec<MemorySample> =
            (0..10).map(|i| MemorySample { t: f64::from(i), rss: Some(0), heap: None, allocated: None }).collect();
        thin(&mut samples);
        let times: Vec<f64> = samples.iter().map(|s| s.t).collect();
        assert_eq!(times, [0.0, 2.0, 4.0, 6.0, 8.0]);
    }
}
