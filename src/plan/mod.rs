//! The plan: a scenario checked against the engine catalog and expanded into
//! a flat list of concrete runs.
//!
//! Lowering resolves `${var}` references, fills defaults, expands matrices
//! (cartesian product, values in scope as variables) and experiments
//! (arms interleaved in rounds, their order counterbalanced), repeats the
//! phases' runs in passes for `--repeat`, and checks every engine,
//! operation, option, metric and unit. It reports every mistake it finds and
//! produces a plan only when there are none, so nothing runs on bad input.
//!
//! **Architecture invariant:** a [`Plan`] holds only checked, typed values;
//! the interpreter never sees YAML or raw text other than for display.

mod lower;
mod order;
mod repeat;
mod seed;
mod shard;
mod template;
mod values;

use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;

use crate::engines::{MetricDecl, Params};
use crate::expr::{Comparison, MetricRef};
use crate::metric::{names, Better};
pub use lower::build;
pub use shard::{share, sharing, split, Shard, MAX_SHARDS};
pub use template::{Scope, Substituted, TemplateError};
pub use values::{parse_value, ValueError};

/// Switches from the command line that change the plan.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Shrink every workload to a few iterations.
    pub smoke: bool,
    /// Keep only runs of this workload, phase or experiment.
    pub only: Option<String>,
    /// Override the scenario's seed.
    pub seed: Option<u64>,
    /// Override variables of `vars:` (`--var name=value`), values as typed.
    pub vars: IndexMap<String, String>,
    /// Passes over the phases' runs (`--repeat`), 1 for a single pass.
    pub repeat: u32,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions { smoke: false, only: None, seed: None, vars: IndexMap::new(), repeat: 1 }
    }
}

/// A checked, expanded scenario.
#[derive(Debug)]
pub struct Plan {
    /// What the scenario is.
    pub scenario: ScenarioInfo,
    /// Every run in execution order.
    pub runs: Vec<RunSpec>,
    /// Experiments whose arms appear among the runs.
    pub experiments: Vec<ExperimentSpec>,
    /// Roadmap settings.
    pub roadmap: RoadmapSpec,
    /// The share of the scenario this process runs (`--shard`), if split.
    pub shard: Option<Shard>,
    /// Whether the plan was shrunk by `--smoke`.
    pub smoke: bool,
}

/// Identity of the scenario a plan came from.
#[derive(Clone, Debug)]
pub struct ScenarioInfo {
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
    pub vars: IndexMap<String, String>,
}

/// One concrete run of one workload.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Unique id, such as `scaling[c=4]`, `scaling[c=4]@2` or `flash-attention:flash#2`.
    pub id: String,
    /// Phase name (`experiments` for experiment arms).
    pub phase: String,
    /// Workload name.
    pub workload: String,
    /// Matrix values of this run, as text.
    pub matrix: IndexMap<String, String>,
    /// The experiment arm this run measures, if any.
    pub arm: Option<ArmRef>,
    /// Which pass of `--repeat` (from 1) this phase run belongs to; `None` with a single pass.
    pub repetition: Option<u32>,
    /// The engine instance and its options.
    pub engine: EngineConfig,
    /// Operation name.
    pub op: String,
    /// Checked operation parameters.
    pub params: Params,
    /// Warm-up before measuring.
    pub warmup: Warmup,
    /// When measuring stops.
    pub stop: Stop,
    /// Closed or open loop.
    pub load: Load,
    /// Conditions the run must meet.
    pub targets: Vec<Target>,
    /// Metrics the run records.
    pub metrics: Vec<&'static MetricDecl>,
    /// Seed for this run, derived from the scenario's.
    pub seed: u64,
    /// The shard this run is a share of, if the scenario is split.
    pub shard: Option<Shard>,
    /// Seed of an open loop's random arrivals: the same in every shard of
    /// the run, so the shards draw one schedule and take their parts of it.
    pub schedule_seed: u64,
    /// The operations of other engines a workflow operation runs, in order.
    pub steps: Vec<StepSpec>,
    /// Profilers that run while it measures.
    pub profile: Profiling,
    /// The workload's service-level objective: bounds every operation must
    /// meet to count toward `goodput`; empty when it states none.
    pub slo: Vec<SloBound>,
}

/// One bound of a service-level objective: an operation meets it when every
/// sample it recorded of `metric` is at most `limit` (at least, for a metric
/// where higher is better).
#[derive(Clone, Debug)]
pub struct SloBound {
    /// The per-operation metric bounded.
    pub metric: &'static MetricDecl,
    /// The bound in the metric's base unit (seconds, bytes, tokens per second).
    pub limit: f64,
    /// The bound as written, after variable substitution: `200ms`.
    pub text: String,
}

impl SloBound {
    /// Whether an operation whose worst sample of the metric is `worst`
    /// (its largest where lower is better, its smallest where higher is)
    /// meets this bound.
    pub fn met_by(&self, worst: f64) -> bool {
        match self.metric.better {
            Better::Lower => worst <= self.limit,
            Better::Higher => worst >= self.limit,
        }
    }
}

/// Which profilers run alongside a run's measured part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Profiling {
    /// Sample call stacks for a flame graph.
    pub cpu: bool,
    /// Count heap allocations (bytes, peak) and sample memory over time.
    pub memory: bool,
    /// Sample resident memory over time for the growth slope and leak verdict.
    pub rss: bool,
}

impl Profiling {
    /// The names `profile:` accepts.
    pub const NAMES: [&'static str; 3] = ["cpu", "memory", "rss"];

    /// Whether any profiler runs.
    pub fn any(self) -> bool {
        self.cpu || self.memory || self.rss
    }

    /// Whether memory is sampled over time.
    pub fn samples_memory(self) -> bool {
        self.memory || self.rss
    }
}

/// One step of a workflow: another engine's operation with its default parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct StepSpec {
    /// The engine instance.
    pub engine: EngineConfig,
    /// Operation name.
    pub op: String,
    /// The operation's parameters (its defaults).
    pub params: Params,
}

/// An engine instance as one run uses it.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Instance name in the scenario.
    pub name: String,
    /// Engine kind.
    pub kind: &'static str,
    /// Checked options, defaults filled in.
    pub options: Params,
}

/// Which experiment arm and round a run belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArmRef {
    /// Experiment name.
    pub experiment: String,
    /// `baseline` or a variant name.
    pub arm: String,
    /// Round number from 1.
    pub round: u32,
    /// Place in its round's order, from 1 (counterbalanced across rounds).
    pub position: u32,
}

/// Warm-up before the measured part of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Warmup {
    /// No warm-up.
    None,
    /// This many operations.
    Count(u64),
    /// Operations for this long.
    Duration(Duration),
}

/// When the measured part of a run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this many operations.
    Iterations(u64),
    /// After this long.
    Duration(Duration),
}

/// How operations are issued.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Load {
    /// `concurrency` workers call back to back.
    Closed {
        /// Number of workers.
        concurrency: u32,
    },
    /// Operations start at a fixed rate, whatever the latency.
    Open {
        /// Operations per second.
        rate: f64,
        /// Most operations running at once.
        max_in_flight: u32,
        /// How the arrivals are spaced.
        arrival: Arrival,
    },
    /// A capacity search: probes at loads the search picks, each a closed or
    /// open loop run of the workload, judged by its targets.
    Search(SearchLoad),
}

impl Load {
    /// The most operations it runs at once: workers in closed loop, the cap
    /// in flight in open loop; for a search, at its highest load.
    pub fn workers(&self) -> u32 {
        match *self {
            Load::Closed { concurrency } => concurrency,
            Load::Open { max_in_flight, .. } => max_in_flight,
            Load::Search(search) => match search.axis {
                SearchAxis::Concurrency => search.high as u32,
                SearchAxis::Rate { max_in_flight, .. } => max_in_flight,
            },
        }
    }
}

/// What a capacity search varies, over which range, for how long at most.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchLoad {
    /// The load varied.
    pub axis: SearchAxis,
    /// The lowest load probed (operations per second, or workers).
    pub low: f64,
    /// The highest.
    pub high: f64,
    /// The wall time the search may take; it starts no probe it expects to
    /// end past it.
    pub budget: Option<Duration>,
}

impl SearchLoad {
    /// The load of one probe at `level` (a rate, or a worker count).
    pub fn at(&self, level: f64) -> Load {
        match self.axis {
            SearchAxis::Rate { max_in_flight, arrival } => Load::Open { rate: level, max_in_flight, arrival },
            SearchAxis::Concurrency => Load::Closed { concurrency: level.round().max(1.0) as u32 },
        }
    }
}

/// The load a capacity search varies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SearchAxis {
    /// The open-loop arrival rate, with a fixed cap in flight and spacing.
    Rate {
        /// Most operations running at once.
        max_in_flight: u32,
        /// How the arrivals are spaced.
        arrival: Arrival,
    },
    /// The number of closed-loop workers.
    Concurrency,
}

/// How an open loop spaces its arrivals around their mean interval `1 / rate`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrival {
    /// Evenly: every `1 / rate`.
    Constant,
    /// Independent exponential gaps: a Poisson process, as many users acting
    /// on their own.
    Poisson,
    /// Gamma-distributed gaps of shape `burstiness` (1 is Poisson; below 1
    /// burstier, above 1 more even), as vLLM's `--burstiness`.
    Gamma {
        /// The shape of the gaps' distribution.
        burstiness: f64,
    },
}

impl fmt::Display for Arrival {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arrival::Constant => f.write_str("constant"),
            Arrival::Poisson => f.write_str("poisson"),
            Arrival::Gamma { burstiness } => write!(f, "gamma({burstiness})"),
        }
    }
}

/// A parsed target and the text it came from.
#[derive(Clone, Debug)]
pub struct Target {
    /// The target after variable substitution.
    pub text: String,
    /// The parsed, unit-checked comparison.
    pub comparison: Comparison,
}

impl Target {
    /// Whether it names `capacity`: judged on a search's result rather than
    /// on each probe.
    pub fn names_capacity(&self) -> bool {
        let Comparison { lhs, rhs, .. } = &self.comparison;
        lhs.metrics().iter().chain(rhs.metrics().iter()).any(|metric| metric.metric == names::CAPACITY)
    }
}

/// Risk of an optimization candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Risk {
    /// Likely to succeed.
    Low,
    /// Could go either way.
    Medium,
    /// Likely to fail.
    High,
}

/// Whether an experiment's runs start from fresh engine instances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ArmState {
    /// Every arm of every round gets its own engine instances (`state: fresh`),
    /// so no round inherits caches or stored data from another.
    #[default]
    Fresh,
    /// The experiment's runs share instances across rounds (`state: shared`).
    Shared,
}

/// An optimization candidate measured A/B.
#[derive(Clone, Debug)]
pub struct ExperimentSpec {
    /// Experiment name.
    pub name: String,
    /// The workload it reruns.
    pub workload: String,
    /// The figure it is judged on.
    pub metric: MetricRef,
    /// `baseline` first, then the variants.
    pub arms: Vec<String>,
    /// Interleaved rounds.
    pub rounds: u32,
    /// Whether its runs start from fresh engine instances.
    pub state: ArmState,
    /// Effort in working days.
    pub effort_days: Option<f64>,
    /// Complexity from 1 to 5.
    pub complexity: Option<u8>,
    /// What one per cent of its metric is worth against the other experiments'.
    pub weight: f64,
    /// Risk level.
    pub risk: Risk,
    /// Why it is worth trying.
    pub rationale: Option<String>,
    /// The workload's time-share metric the candidate speeds up (`part_of`
    /// its latency), if named; otherwise the whole operation.
    pub part: Option<String>,
}

/// Settings of the roadmap document.
#[derive(Clone, Debug)]
pub struct RoadmapSpec {
    /// First working day.
    pub start: Option<chrono::NaiveDate>,
    /// Engineers in parallel.
    pub team: u32,
    /// Probability of success for low, medium and high risk.
    pub success_probability: [f64; 3],
}

impl Default for RoadmapSpec {
    fn default() -> Self {
        RoadmapSpec { start: None, team: 1, success_probability: [0.9, 0.7, 0.5] }
    }
}

/// Most passes `--repeat` accepts.
pub const MAX_REPEAT: u32 = 100;
/// Number of experiment rounds when a scenario does not say.
pub const DEFAULT_ROUNDS: u32 = 5;
/// Open-loop cap on operations in flight when a scenario does not say.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 32;
/// Measured operations per run under `--smoke`.
pub const SMOKE_ITERATIONS: u64 = 3;
/// Most runs one plan may hold. Lowering counts the runs of every matrix and
/// experiment before expanding it and refuses a scenario that would make
/// more, so validating any file takes time and memory in proportion to the
/// file, never to what its matrices multiply out to.
pub const MAX_RUNS: u64 = 10_000;
