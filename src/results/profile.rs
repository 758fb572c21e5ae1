//! What the profilers recorded while a run measured: sampled call stacks,
//! heap counters and memory over time.

use serde::{Deserialize, Serialize};

/// The profiles of one run (`profile:` on its workload).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileRecord {
    /// Sampled call stacks (`profile: cpu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuProfile>,
    /// Heap counters over the measured part (`profile: memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap: Option<HeapRecord>,
    /// Memory sampled through the measured part (`profile: memory` or `rss`),
    /// in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory: Vec<MemorySample>,
    /// Seconds between memory samples at the end of the run (the interval
    /// doubles whenever the series is thinned to stay bounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_interval: Option<f64>,
    /// Why a requested profile is missing or partial.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// Call stacks sampled at a fixed frequency, folded: one line per distinct stack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CpuProfile {
    /// Samples asked per second of the process's CPU time.
    pub frequency_hz: u32,
    /// Samples taken.
    pub samples: u64,
    /// CPU time the process used while sampling, in seconds (the timer can
    /// fire less often than asked, so samples ÷ frequency may fall short).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// Distinct stacks, most sampled first. Each is the thread's name, then
    /// its frames from the outermost to the one running, joined by `;`.
    pub stacks: Vec<FoldedStack>,
}

/// One distinct call stack and how often it was sampled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoldedStack {
    /// Thread name, then frames outermost first, joined by `;`.
    pub stack: String,
    /// Samples that caught it.
    pub samples: u64,
}

/// Heap counters from the start to the end of the measured part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeapRecord {
    /// Bytes allocated (a reallocation counts its new size).
    pub allocated_bytes: u64,
    /// Allocations.
    pub allocations: u64,
    /// Highest net growth of the live heap above its level at the start.
    pub peak_bytes: i64,
    /// Net growth of the live heap at the end (negative: it shrank).
    pub end_bytes: i64,
}

/// Memory at one moment of a run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    /// Seconds since measuring began.
    pub t: f64,
    /// Resident memory of the process in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss: Option<u64>,
    /// Net growth of the live heap since measuring began (`profile: memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap: Option<i64>,
    /// Bytes allocated since measuring began (`profile: memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<u64>,
}
