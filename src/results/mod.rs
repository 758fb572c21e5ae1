//! The record of a run: versioned JSON, written atomically, read back losslessly.
//!
//! A results file holds everything later stages need and nothing they compute:
//! the machine, the tool version, the scenario's hash, and for every run its
//! resolved parameters, timing, counters, errors and histograms.
//!
//! **Architecture invariant:** results hold measurements only. Verdicts,
//! target outcomes and statistics are computed from them by `analysis`;
//! a capacity search's own decisions (each probe's outcome, the estimate it
//! ended on) steered what was measured and are kept as made.

pub mod histogram;
pub mod live;
pub mod machine;
pub mod notation;
pub mod profile;
pub mod store;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::engines::catalog::declared_better;
use crate::metric::{Better, MetricKind};
use crate::quantity::Dim;
pub use histogram::{HistogramError, Summary};
pub use machine::Machine;
pub use notation::{MetricRefRecord, TargetRecord, Written};
pub use profile::{CpuProfile, FoldedStack, HeapRecord, MemorySample, ProfileRecord};

/// Identifies the file format.
pub const FORMAT: &str = "phasebench-results";
/// Version of the file format; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// Everything one `phasebench run` measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// The tool that measured.
    pub phasebench: ToolInfo,
    /// The machine measured on.
    pub machine: Machine,
    /// The scenario run.
    pub scenario: ScenarioRecord,
    /// Whether `--smoke` shrank the workloads.
    pub smoke: bool,
    /// When the run began.
    pub started_at: DateTime<Utc>,
    /// When the last run ended; `None` while running.
    pub finished_at: Option<DateTime<Utc>>,
    /// Every planned run finished.
    pub complete: bool,
    /// The run was stopped by the user (Ctrl-C).
    pub interrupted: bool,
    /// Runs planned in total.
    pub planned_runs: usize,
    /// Finished runs, in order.
    #[serde(deserialize_with = "runs_with_directions")]
    pub runs: Vec<RunRecord>,
    /// The scenario's experiments, as planned (their runs are in `runs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub experiments: Vec<ExperimentRecord>,
    /// The roadmap settings the scenario gave.
    #[serde(default)]
    pub roadmap: RoadmapRecord,
    /// This process's part of a scenario split across several (`--shard I/N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
    /// The shards these results were merged from (`phasebench merge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergeRecord>,
}

/// Which shard results a merge combined, which were missing, and how far
/// apart their clocks started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergeRecord {
    /// The shards merged, by index.
    pub shards: Vec<MergedShard>,
    /// Shard indexes that were not there (`--allow-missing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<u32>,
    /// Seconds between the earliest and the latest shard's start.
    pub skew_seconds: f64,
    /// Per run shared by more than one shard: seconds between its earliest
    /// and latest piece's start.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub run_skew_seconds: IndexMap<String, f64>,
}

/// One shard's results as a merge read them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergedShard {
    /// Index from 0.
    pub index: u32,
    /// The host that ran it.
    pub host: String,
    /// When it began.
    pub started_at: DateTime<Utc>,
    /// The file it was read from.
    pub file: String,
}

/// A run's share of a run split across shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunShard {
    /// Index from 0.
    pub index: u32,
    /// Shards sharing the run.
    pub count: u32,
}

/// Which part of a split scenario a results file holds, and when it began.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// Index from 0.
    pub index: u32,
    /// Shards in all.
    pub count: u32,
    /// The start every shard agreed on (`--start-at`), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<DateTime<Utc>>,
    /// The host that ran it.
    pub host: String,
}

/// An experiment as the scenario declared it: what the roadmap needs to
/// rank it, kept with the results so any saved file can be reported again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    /// Experiment name.
    pub name: String,
    /// The workload it reruns.
    pub workload: String,
    /// The figure it is judged on (`ttft.p99`).
    pub metric: MetricRefRecord,
    /// Arm names, `baseline` first.
    pub arms: Vec<String>,
    /// Interleaved rounds.
    pub rounds: u32,
    /// Whether its runs started from fresh engine instances; files from
    /// before `state:` existed read as `shared`, which is what their runs did.
    #[serde(default = "shared")]
    pub state: ArmState,
    /// Effort in working days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort_days: Option<f64>,
    /// Complexity from 1 to 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complexity: Option<u8>,
    /// What one per cent of its metric is worth against the other experiments'.
    #[serde(default = "unit_weight", skip_serializing_if = "is_unit_weight")]
    pub weight: f64,
    /// Risk: low, medium or high.
    pub risk: Risk,
    /// Why it is worth trying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    /// The time share it speeds up, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
}

/// The engine state of experiments saved before `state:` existed.
fn shared() -> ArmState {
    ArmState::Shared
}

fn unit_weight() -> f64 {
    1.0
}

fn is_unit_weight(weight: &f64) -> bool {
    *weight == 1.0
}

/// The roadmap's settings: when work starts, how many engineers, and the
/// chance of success per risk level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoadmapRecord {
    /// First working day, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<chrono::NaiveDate>,
    /// Engineers working in parallel.
    pub team: u32,
    /// Probability of success for low, medium and high risk.
    pub success_probability: [f64; 3],
}

impl Default for RoadmapRecord {
    /// The scenario language's defaults: what files saved before the
    /// roadmap's settings were kept used.
    fn default() -> Self {
        RoadmapRecord { start: None, team: 1, success_probability: [0.9, 0.7, 0.5] }
    }
}

/// Identity of the scenario a run came from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioRecord {
    /// Scenario name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The file as named on the command line.
    pub file: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Seed every random choice derives from.
    pub seed: u64,
    /// Variables overridden on the command line, as typed.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub vars: IndexMap<String, String>,
}

/// Which experiment arm and round a run belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmRecord {
    /// Experiment name.
    pub experiment: String,
    /// `baseline` or a variant name.
    pub arm: String,
    /// Round number from 1.
    pub round: u32,
    /// Place in its round's order, from 1 (counterbalanced across rounds);
    /// 0 in files saved before the order was kept.
    #[serde(default)]
    pub position: u32,
}

/// Risk of an optimization candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Likely to succeed.
    Low,
    /// Could go either way.
    Medium,
    /// Likely to fail.
    High,
}

/// Whether an experiment's runs started from fresh engine instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArmState {
    /// Every arm of every round had its own engine instances.
    Fresh,
    /// The experiment's runs shared instances across rounds.
    Shared,
}

/// Version and commit of the phasebench that measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// Crate version.
    pub version: String,
    /// Git commit it was built from, or `unknown`.
    pub commit: String,
}

impl ToolInfo {
    /// This build of phasebench.
    pub fn current() -> ToolInfo {
        ToolInfo { version: env!("CARGO_PKG_VERSION").into(), commit: env!("PHASEBENCH_COMMIT").into() }
    }
}

/// One run of one workload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique id within the results.
    pub id: String,
    /// Phase name.
    pub phase: String,
    /// Workload name.
    pub workload: String,
    /// Matrix values.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub matrix: IndexMap<String, String>,
    /// Experiment arm, if the run is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<ArmRecord>,
    /// Pass of `--repeat` (from 1) for a phase run repeated more than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition: Option<u32>,
    /// Engine instance, kind and resolved options.
    pub engine: EngineRecord,
    /// Operation.
    pub op: String,
    /// Resolved operation parameters.
    pub params: serde_json::Value,
    /// Load shape, e.g. `closed, concurrency 8` or `open, 2000/s, max 64 in flight`.
    pub load: LoadRecord,
    /// Warm-up as planned, e.g. `5x`, `2s` or `none`.
    pub warmup: String,
    /// Stop condition as planned, e.g. `100x` or `10s`.
    pub stop: String,
    /// Targets as written (after variable substitution).
    pub targets: Vec<TargetRecord>,
    /// Seed given to the engine.
    pub seed: u64,
    /// This run's share of a run split across shards: `index` of the `count`
    /// shards that share it (fewer than the scenario's shards when the run
    /// has fewer workers or operations than that).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<RunShard>,
    /// Start of the measured part.
    pub started_at: DateTime<Utc>,
    /// End of the measured part.
    pub finished_at: DateTime<Utc>,
    /// Measured wall time in nanoseconds.
    pub elapsed_ns: u64,
    /// Operations that succeeded.
    pub operations: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Open loop: operations scheduled but never started before the drain
    /// deadline; their wait is in the `latency` and `schedule_lag` histograms.
    pub dropped: u64,
    /// Open loop: measured operations the dispatcher scheduled (0 in closed
    /// loop). In a run not interrupted, `operations + errors + dropped` equals it.
    #[serde(default)]
    pub scheduled: u64,
    /// Distinct error messages with their counts (the first few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_messages: Vec<ErrorCount>,
    /// The run finished as planned (not cut short, engine set up).
    pub complete: bool,
    /// Why it did not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Metrics by name.
    pub metrics: IndexMap<String, MetricRecord>,
    /// Engine counters (tokens, bytes, …).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub counters: IndexMap<String, u64>,
    /// What the profilers recorded (`profile:` on the workload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileRecord>,
    /// The workload's SLO and how many operations met it, when it states one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloRecord>,
    /// A capacity search's probes and result (`load: { search: … }`). The
    /// run's own figures are then those of one probe, [`SearchRecord::shown`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchRecord>,
}

/// What a capacity search probed and what it found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchRecord {
    /// Why the search ended.
    pub finish: SearchFinish,
    /// Wall time of the whole search, in nanoseconds.
    pub elapsed_ns: u64,
    /// Every probe, in the order they ran.
    pub probes: Vec<ProbeRecord>,
    /// The capacity the probes that counted show.
    pub capacity: CapacityRecord,
    /// The probe whose figures the run shows: the highest load that held
    /// at or below the capacity (else the highest that held, else the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<usize>,
}

impl SearchRecord {
    /// Operations measured by all its probes, failed ones included.
    pub fn operations(&self) -> u64 {
        self.probes.iter().map(|probe| probe.run.operations + probe.run.errors).sum()
    }
}

/// Why a capacity search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchFinish {
    /// The bracket narrowed and the probes around it were repeated.
    Narrowed,
    /// The lowest load of the range already missed a target.
    BelowRange,
    /// The highest load of the range held every target.
    AboveRange,
    /// The load generator fell behind, twice at one load, below the lowest
    /// load that failed: the loads left to probe are out of its reach here.
    OutOfReach,
    /// The most probes a search runs were run.
    ProbeLimit,
    /// The time budget ran out first: the result is the bracket reached.
    Budget,
    /// Stopped by the user.
    Interrupted,
    /// A probe could not run (the engine failed to set up).
    Failed,
    /// `--smoke`: one short probe checked the wiring; nothing was judged.
    Smoke,
}

impl SearchFinish {
    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            SearchFinish::Narrowed => "narrowed",
            SearchFinish::BelowRange => "below the range",
            SearchFinish::AboveRange => "above the range",
            SearchFinish::OutOfReach => "the load generator fell behind at the loads left to probe",
            SearchFinish::ProbeLimit => "probe limit reached",
            SearchFinish::Budget => "budget spent: the bracket reached so far",
            SearchFinish::Interrupted => "interrupted",
            SearchFinish::Failed => "a probe failed to run",
            SearchFinish::Smoke => "smoke run: not judged",
        }
    }
}

/// One run of a search at one load.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// The load probed: operations per second, or workers.
    pub load: f64,
    /// What the search took it to show.
    pub outcome: ProbeOutcome,
    /// Why: the first target missed, how late the generator was, why it
    /// was not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Open loop: the dispatcher's own lateness p99 in seconds (from an
    /// operation's intended start to when it was handed to a worker), which
    /// tells a generator that fell behind from a system that queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_lag_p99: Option<f64>,
    /// The probe's measurement, a run of its own with the workload's
    /// targets other than `capacity`.
    pub run: Box<RunRecord>,
}

/// What a probe showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// Every target held.
    Pass,
    /// A target was missed (or every operation failed).
    Fail,
    /// The load generator fell behind: the probe measured it, not the system.
    Lagged,
    /// Too few samples, a smoke run, or an interrupted probe.
    NotJudged,
}

/// The capacity a search's probes show (`analysis::capacity` explains the estimate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapacityRecord {
    /// Where it lies against the loads probed.
    pub bound: CapacityBound,
    /// The estimate: the load a probe passes at half the time (`within` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Its 95% interval (`within` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<[f64; 2]>,
    /// The highest load that held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highest_pass: Option<f64>,
    /// The lowest load that missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lowest_fail: Option<f64>,
    /// Probes that counted (passed or failed).
    pub counted: usize,
}

/// Where a capacity lies against the loads a search probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityBound {
    /// Between them: an estimate with its interval.
    Within,
    /// Above the highest load probed: every counted probe held.
    AboveRange,
    /// Below the lowest: every counted probe missed.
    BelowRange,
    /// No probe counted.
    Unknown,
}

/// A workload's service-level objective as a run judged it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SloRecord {
    /// Each bounded metric with its bound as written (`ttft: 200ms`).
    pub bounds: IndexMap<String, String>,
    /// Measured operations that succeeded and met every bound; `goodput`
    /// and `slo_attainment` are this count over the measured time and over
    /// the operations attempted.
    pub met: u64,
}

/// An engine instance as a run used it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EngineRecord {
    /// Instance name.
    pub name: String,
    /// Engine kind.
    pub kind: String,
    /// Resolved options.
    pub options: serde_json::Value,
}

/// How operations were issued.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum LoadRecord {
    /// Workers back to back.
    Closed {
        /// Number of workers.
        concurrency: u32,
    },
    /// Fixed arrival rate.
    Open {
        /// Operations per second.
        rate: f64,
        /// Cap on operations in flight.
        max_in_flight: u32,
        /// How arrivals were spaced (`poisson`, `gamma(0.5)`); absent: evenly.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arrival: Option<String>,
    },
    /// A capacity search over a range of one load.
    Search {
        /// The load varied: `rate` or `concurrency`.
        axis: String,
        /// The lowest load of the range.
        low: f64,
        /// The highest.
        high: f64,
        /// Rate search: the cap on operations in flight.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_in_flight: Option<u32>,
        /// Rate search: how arrivals were spaced; absent: evenly.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arrival: Option<String>,
        /// The time the search was given, as written (`2m`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        budget: Option<String>,
    },
}

/// An error message and how often it occurred.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorCount {
    /// The message.
    pub message: String,
    /// Occurrences.
    pub count: u64,
}

/// One metric of one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricRecord {
    /// Distribution (histogram) or scalar.
    pub kind: MetricKind,
    /// Physical dimension.
    pub dim: DimRecord,
    /// Which way is better, as the metric's declaration says; files saved
    /// before it was kept get it from the declarations when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub better: Option<Better>,
    /// What one histogram count stands for, e.g. `ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The metric this one is a part of, for time shares (e.g. `latency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of: Option<String>,
    /// Histogram counts per base unit (1e9 for nanoseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// The histogram, V2 compressed, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<String>,
    /// Summary in base units (distributions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// The value in base units (scalars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// A dimension as stored in JSON: exponents of seconds, bytes and tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DimRecord {
    /// Exponent of seconds.
    pub time: i8,
    /// Exponent of bytes.
    pub bytes: i8,
    /// Exponent of tokens.
    pub tokens: i8,
}

impl From<Dim> for DimRecord {
    fn from(dim: Dim) -> Self {
        DimRecord { time: dim.time, bytes: dim.bytes, tokens: dim.tokens }
    }
}

impl From<DimRecord> for Dim {
    fn from(dim: DimRecord) -> Self {
        Dim { time: dim.time, bytes: dim.bytes, tokens: dim.tokens }
    }
}

impl MetricRecord {
    /// Which way is better: as recorded, or for a metric no declaration
    /// names, lower for times and sizes and higher for everything else.
    pub fn better(&self) -> Better {
        self.better.unwrap_or_else(|| {
            let dim = Dim::from(self.dim);
            if dim == Dim::TIME || dim == Dim::BYTES {
                Better::Lower
            } else {
                Better::Higher
            }
        })
    }
}

/// Reads the runs, giving every metric saved before `better` was kept the
/// direction its declaration states.
fn runs_with_directions<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<RunRecord>, D::Error> {
    let mut runs = Vec::<RunRecord>::deserialize(deserializer)?;
    for run in &mut runs {
        for (name, metric) in run.metrics.iter_mut().filter(|(_, metric)| metric.better.is_none()) {
            metric.better = declared_better(&run.engine.kind, name);
        }
    }
    Ok(runs)
}

impl RunRecord {
    /// The id without its `@k` repetition suffix: the same for every pass of one run.
    pub fn base_id(&self) -> &str {
        match self.repetition {
            Some(_) => self.id.rsplit_once('@').map_or(self.id.as_str(), |(base, _)| base),
            None => &self.id,
        }
    }

    /// Measured time in seconds.
    pub fn elapsed_seconds(&self) -> f64 {
        self.elapsed_ns as f64 / 1e9
    }
}
