//! What the profilers saw: the hottest frames of each CPU profile, and each
//! memory profile's heap figures, resident memory and growth verdict.

use std::collections::HashMap;

use serde::Serialize;

use super::trend::{growth, Growth, LeakVerdict};
use crate::quantity::{format_value, Dim};
use crate::results::store::file_slug;
use crate::results::{CpuProfile, Results, RunRecord};

/// Frames listed per CPU profile.
pub const HOTTEST: usize = 12;

/// The profiles of a results file.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Profiles {
    /// Runs with `profile: cpu`, in run order.
    pub cpu: Vec<CpuSummary>,
    /// Runs with `profile: memory` or `rss`, in run order.
    pub memory: Vec<MemorySummary>,
    /// Runs whose profilers reported a problem: (run, problem).
    pub problems: Vec<(String, String)>,
}

/// One run's CPU profile.
#[derive(Clone, Debug, Serialize)]
pub struct CpuSummary {
    /// Run id.
    pub run: String,
    /// Stacks sampled.
    pub samples: u64,
    /// Sampling frequency per second of CPU time.
    pub frequency_hz: u32,
    /// CPU time the process used while sampled, for people (`3.02s`).
    pub cpu_time: String,
    /// Samples per second of CPU time actually taken (the profiling timer
    /// fires less often than asked on some kernels), when the CPU time is known.
    pub effective_hz: Option<f64>,
    /// The flame graph's file name in the run folder (none without samples).
    pub flamegraph: Option<String>,
    /// Frames with the most samples running in them (self), most first.
    pub hottest: Vec<FrameShare>,
}

/// One frame's share of a CPU profile's samples.
#[derive(Clone, Debug, Serialize)]
pub struct FrameShare {
    /// Function name.
    pub frame: String,
    /// Share of samples in which it was the running frame.
    pub own: f64,
    /// Share of samples in which it was on the stack.
    pub total: f64,
}

/// One run's memory profile.
#[derive(Clone, Debug, Serialize)]
pub struct MemorySummary {
    /// Run id.
    pub run: String,
    /// Measured time, for people.
    pub duration: String,
    /// Bytes allocated while measuring (`profile: memory`), for people.
    pub allocated: Option<String>,
    /// Allocations per completed operation.
    pub allocs_per_op: Option<f64>,
    /// Peak net growth of the live heap, for people.
    pub heap_peak: Option<String>,
    /// Net growth of the live heap at the end, for people.
    pub heap_end: Option<String>,
    /// Resident memory at the start, peak and end, for people.
    pub rss_start: Option<String>,
    /// Peak resident memory.
    pub rss_peak: Option<String>,
    /// Resident memory at the end.
    pub rss_end: Option<String>,
    /// Trend of resident memory over the steady part.
    pub rss_growth: Option<GrowthRow>,
    /// Trend of the live heap over the steady part.
    pub heap_growth: Option<GrowthRow>,
    /// The run's verdict: a leak is suspected when either trend says so.
    pub verdict: LeakVerdict,
    /// The verdict for people.
    pub verdict_text: String,
    /// Samples for the chart.
    pub series: Vec<MemoryPoint>,
}

/// One memory sample for a chart: seconds, resident bytes, live-heap growth in bytes.
pub type MemoryPoint = (f64, Option<f64>, Option<f64>);

/// A trend with the text people read.
#[derive(Clone, Debug, Serialize)]
pub struct GrowthRow {
    /// The statistics.
    pub growth: Growth,
    /// `+1.2 MiB/min [+0.9 MiB/min, +1.5 MiB/min], p = 0.001 over 15s–30s`.
    pub text: String,
}

/// The profiles recorded in `results`, experiment arms excluded (they are never profiled).
pub fn summarise(results: &Results) -> Profiles {
    let mut profiles = Profiles::default();
    for (index, run) in results.runs.iter().enumerate() {
        let Some(profile) = &run.profile else { continue };
        for problem in &profile.problems {
            profiles.problems.push((run.id.clone(), problem.clone()));
        }
        if let Some(cpu) = &profile.cpu {
            profiles.cpu.push(cpu_summary(&run.id, cpu, flamegraph_file(index, &run.id)));
        }
        if !profile.memory.is_empty() || profile.heap.is_some() {
            profiles.memory.push(memory_summary(run));
        }
    }
    profiles
}

/// The flame graph's file name for run `index` of a results file.
pub fn flamegraph_file(index: usize, run: &str) -> String {
    format!("flamegraph-{:02}-{}.svg", index + 1, file_slug(run))
}

fn cpu_summary(run: &str, cpu: &CpuProfile, flamegraph: String) -> CpuSummary {
    let flamegraph = (cpu.samples > 0).then_some(flamegraph);
    let mut own: HashMap<&str, u64> = HashMap::new();
    let mut total: HashMap<&str, u64> = HashMap::new();
    for stack in &cpu.stacks {
        // The first element is the thread's name, not a frame.
        let frames: Vec<&str> = stack.stack.split(';').skip(1).collect();
        if let Some(leaf) = frames.last() {
            *own.entry(leaf).or_default() += stack.samples;
        }
        let mut seen: Vec<&str> = Vec::with_capacity(frames.len());
        for frame in frames {
            // Recursion puts a frame on the stack more than once; count it once.
            if !seen.contains(&frame) {
                seen.push(frame);
                *total.entry(frame).or_default() += stack.samples;
            }
        }
    }
    let samples = cpu.samples.max(1) as f64;
    let mut hottest: Vec<FrameShare> = own
        .iter()
        .map(|(frame, count)| FrameShare {
            frame: (*frame).to_owned(),
            own: *count as f64 / samples,
            total: total.get(frame).copied().unwrap_or(*count) as f64 / samples,
        })
        .collect();
    hottest.sort_by(|a, b| b.own.total_cmp(&a.own).then_with(|| a.frame.cmp(&b.frame)));
    hottest.truncate(HOTTEST);
    CpuSummary {
        run: run.to_owned(),
        samples: cpu.samples,
        frequency_hz: cpu.frequency_hz,
        effective_hz: cpu.cpu_seconds.filter(|s| *s > 0.0).map(|seconds| cpu.samples as f64 / seconds),
        cpu_time: format_value(
            cpu.cpu_seconds.unwrap_or(cpu.samples as f64 / f64::from(cpu.frequency_hz.max(1))),
            Dim::TIME,
        ),
        flamegraph,
        hottest,
    }
}

fn memory_summary(run: &RunRecord) -> MemorySummary {
    let profile = run.profile.as_ref();
    let samples = profile.map_or(&[][..], |p| p.memory.as_slice());
    let bytes = |value: f64| format_value(value, Dim::BYTES);
    let rss: Vec<(f64, f64)> = samples.iter().filter_map(|s| Some((s.t, s.rss? as f64))).collect();
    let heap: Vec<(f64, f64)> = samples.iter().filter_map(|s| Some((s.t, s.heap? as f64))).collect();
    let rss_level = rss.iter().map(|(_, v)| v).sum::<f64>() / rss.len().max(1) as f64;
    let rss_growth = growth(&rss, rss_level).map(growth_row);
    let heap_growth = growth(&heap, 0.0).map(growth_row);
    let verdicts: Vec<LeakVerdict> = rss_growth.iter().chain(&heap_growth).map(|row| row.growth.verdict).collect();
    let verdict = if verdicts.contains(&LeakVerdict::LeakSuspected) {
        LeakVerdict::LeakSuspected
    } else if verdicts.is_empty() || verdicts.contains(&LeakVerdict::TooShort) {
        LeakVerdict::TooShort
    } else if verdicts.contains(&LeakVerdict::SlowGrowth) {
        LeakVerdict::SlowGrowth
    } else {
        LeakVerdict::NoLeak
    };
    let verdict_text = match (verdict, rss.last()) {
        (LeakVerdict::TooShort, Some((end, _))) if *end < super::trend::MIN_SECONDS => format!(
            "too short to judge: {} measured, a verdict needs {}",
            format_value(*end, Dim::TIME),
            format_value(super::trend::MIN_SECONDS, Dim::TIME)
        ),
        (LeakVerdict::TooShort, _) => "too few samples to judge".into(),
        (LeakVerdict::NoLeak | LeakVerdict::SlowGrowth, _) => {
            // The slowest growth this run would have caught, of the series judged.
            let limit = rss_growth.iter().chain(&heap_growth).map(|row| row.growth.detectable).fold(0.0, f64::max);
            format!(
                "{} (a leak slower than {}/min goes unseen in a run this long)",
                verdict.text(),
                format_value(limit * 60.0, Dim::BYTES)
            )
        }
        (verdict, _) => verdict.text().into(),
    };
    let heap_record = profile.and_then(|p| p.heap);
    MemorySummary {
        run: run.id.clone(),
        duration: format_value(run.elapsed_ns as f64 / 1e9, Dim::TIME),
        allocated: heap_record.map(|h| bytes(h.allocated_bytes as f64)),
        allocs_per_op: heap_record.filter(|_| run.operations > 0).map(|h| h.allocations as f64 / run.operations as f64),
        heap_peak: heap_record.map(|h| bytes(h.peak_bytes.max(0) as f64)),
        heap_end: heap_record.map(|h| signed_bytes(h.end_bytes as f64)),
        rss_start: rss.first().map(|(_, v)| bytes(*v)),
        rss_peak: rss.iter().map(|(_, v)| *v).reduce(f64::max).map(bytes),
        rss_end: rss.last().map(|(_, v)| bytes(*v)),
        rss_growth,
        heap_growth,
        verdict,
        verdict_text,
        series: samples.iter().map(|s| (s.t, s.rss.map(|v| v as f64), s.heap.map(|v| v as f64))).collect(),
    }
}

/// Bytes with their sign, `+` included (`format_value` writes a minus itself).
fn signed_bytes(value: f64) -> String {
    let sign = if value < 0.0 { "" } else { "+" };
    format!("{sign}{}", format_value(value, Dim::BYTES))
}

fn growth_row(growth: Growth) -> GrowthRow {
    let per_minute = |value: f64| format!("{}/min", signed_bytes(value * 60.0));
    let text = format!(
        "{} [{}, {}], p = {:.3}, over {}–{}",
        per_minute(growth.slope),
        per_minute(growth.low),
        per_minute(growth.high),
        growth.p_value,
        format_value(growth.from, Dim::TIME),
        format_value(growth.to, Dim::TIME)
    );
    GrowthRow { growth, text }
}
