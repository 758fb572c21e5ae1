//! The vocabulary every stage shares about a metric: whether it is sampled
//! per operation or computed once per run, which way is better, and the
//! names of the metrics the harness itself records.
//!
//! Engines declare their metrics with these words (`engines::catalog`),
//! results keep them with each measured metric, and analysis reads them
//! back; none of those stages guesses them from a metric's name.

use serde::{Deserialize, Serialize};

/// Whether a metric is sampled per operation or computed once per run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Many samples per run, kept in an HDR histogram.
    Distribution,
    /// One value per run, such as throughput.
    Scalar,
}

/// Which way is better for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Smaller values are better (latency, time, bytes, errors).
    Lower,
    /// Larger values are better (throughput, hit rates, compression ratio).
    Higher,
}

/// The names of the metrics the harness and its profilers record, whatever
/// the engine. Their declarations are in `engines::catalog`; every other
/// stage names them through these constants.
pub mod names {
    /// Time per operation (from its intended start in open loop).
    pub const LATENCY: &str = "latency";
    /// Time per operation from its actual start.
    pub const SERVICE_TIME: &str = "service_time";
    /// Completed operations per second.
    pub const THROUGHPUT: &str = "throughput";
    /// Operations that failed.
    pub const ERRORS: &str = "errors";
    /// Failed operations as a fraction of all attempted.
    pub const ERROR_RATE: &str = "error_rate";
    /// Open loop: operations never started before the drain deadline.
    pub const DROPPED: &str = "dropped";
    /// Open loop: intended to actual start of each operation.
    pub const SCHEDULE_LAG: &str = "schedule_lag";
    /// `slo:`: operations per second that met every bound of the workload's SLO.
    pub const GOODPUT: &str = "goodput";
    /// `slo:`: the share of attempted operations that met every bound.
    pub const SLO_ATTAINMENT: &str = "slo_attainment";
    /// `profile: memory`: highest net growth of the live heap.
    pub const HEAP_PEAK: &str = "heap_peak";
    /// `profile: memory`: bytes allocated while measuring.
    pub const ALLOCATED: &str = "allocated";
    /// `profile: memory`: bytes allocated per second.
    pub const ALLOC_RATE: &str = "alloc_rate";
    /// `profile: memory`: allocations per completed operation.
    pub const ALLOCS_PER_OP: &str = "allocs_per_op";
    /// `profile: memory` or `rss`: highest resident memory sampled.
    pub const RSS_PEAK: &str = "rss_peak";
    /// `load: { search: … }`: the highest load at which the targets hold.
    pub const CAPACITY: &str = "capacity";

    /// The load metrics every run has (beside its engine's), in the order
    /// results keep them; `schedule_lag` only in open loop.
    pub const LOAD: [&str; 7] = [LATENCY, SERVICE_TIME, THROUGHPUT, ERRORS, ERROR_RATE, DROPPED, SCHEDULE_LAG];
}
