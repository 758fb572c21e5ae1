//! Engine declarations: options, operations and metrics, each with its type or unit.
//!
//! An engine states these once, as static data. Validation of scenarios,
//! `phasebench list` and the documentation all read the same declarations, so
//! they cannot drift apart.

use crate::metric::names;
pub use crate::metric::{Better, MetricKind};
use crate::quantity::Dim;

/// The type an option or parameter takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueType {
    /// A duration with a unit: `250us`, `2s`.
    Duration,
    /// A size in bytes: `4KiB`, or a plain integer.
    Size,
    /// A whole number in `min..=max`; `5x` or `5`.
    Count {
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// A real number in `min..=max`; `5%` is 0.05.
    Number {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// `true`/`false` (also `on`/`off`).
    Bool,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// Free text.
    Text,
    /// Events per second: `2000/s`.
    Rate,
    /// A chain of other engines' operations, `engine.op -> engine.op`;
    /// the plan checks every engine and operation named.
    Steps,
}

impl ValueType {
    /// How the type reads in `phasebench list` and in errors.
    pub fn describe(&self) -> String {
        match self {
            ValueType::Duration => "duration (e.g. 250us, 2s)".into(),
            ValueType::Size => "size (e.g. 4KiB, 64MiB)".into(),
            ValueType::Count { min, max } if *max == u64::MAX => format!("count >= {min}"),
            ValueType::Count { min, max } => format!("count {min}..={max}"),
            ValueType::Number { min, max } => format!("number {min}..={max}"),
            ValueType::Bool => "true | false".into(),
            ValueType::Choice(choices) => choices.join(" | "),
            ValueType::Text => "text".into(),
            ValueType::Steps => "workflow steps: `engine.op -> engine.op -> …` (engines of this scenario)".into(),
            ValueType::Rate => "rate (e.g. 2000/s)".into(),
        }
    }
}

/// One option of an engine or parameter of an operation.
#[derive(Debug)]
pub struct OptionDecl {
    /// Key in the scenario.
    pub name: &'static str,
    /// Accepted values.
    pub ty: ValueType,
    /// Default as scenario text; `None` makes the option required.
    pub default: Option<&'static str>,
    /// One line for `phasebench list`.
    pub doc: &'static str,
}

/// A metric a run can record, with its dimension.
#[derive(Debug)]
pub struct MetricDecl {
    /// Name used in targets, such as `ttft`.
    pub name: &'static str,
    /// Physical dimension of its values.
    pub dim: Dim,
    /// Per operation or per run.
    pub kind: MetricKind,
    /// Which way is better: what an experiment or `compare` calls an improvement.
    pub better: Better,
    /// The metric this one is a part of (a time category of `latency`), for time shares.
    pub part_of: Option<&'static str>,
    /// For a per-run scalar: how it is computed from the run's counters.
    pub derive: Option<Derive>,
    /// How the pieces of a run split across shards combine into one figure.
    pub merge: Merge,
    /// One line for `phasebench list`.
    pub doc: &'static str,
    /// A time measured from the operation's start (time to first token, end
    /// to end): in open loop the harness adds the operation's wait for a free
    /// worker, as it does for `latency`, so that a queue in front of the
    /// system shows in it.
    pub from_start: bool,
}

impl MetricDecl {
    /// A time per operation, sampled into a histogram; lower is better.
    pub const fn time(name: &'static str, doc: &'static str) -> MetricDecl {
        MetricDecl::distribution(name, Dim::TIME, Better::Lower, doc)
    }

    /// A figure sampled per operation into a histogram.
    pub const fn distribution(name: &'static str, dim: Dim, better: Better, doc: &'static str) -> MetricDecl {
        MetricDecl {
            name,
            dim,
            kind: MetricKind::Distribution,
            better,
            part_of: None,
            derive: None,
            merge: Merge::Sum,
            doc,
            from_start: false,
        }
    }

    /// A figure computed once per run.
    pub const fn scalar(name: &'static str, dim: Dim, better: Better, doc: &'static str) -> MetricDecl {
        MetricDecl {
            name,
            dim,
            kind: MetricKind::Scalar,
            better,
            part_of: None,
            derive: None,
            merge: Merge::None,
            doc,
            from_start: false,
        }
    }

    /// This per-run scalar follows from the run's counters by `derive`
    /// (and so, when shards are merged, from their summed counters).
    pub const fn derived(mut self, derive: Derive) -> MetricDecl {
        self.derive = Some(derive);
        self.merge = Merge::Derived;
        self
    }

    /// The pieces of this per-run scalar from several shards combine by `rule`.
    pub const fn merged(mut self, rule: Merge) -> MetricDecl {
        self.merge = rule;
        self
    }

    /// This time runs from the operation's start: in open loop it includes
    /// the wait for a free worker (see [`MetricDecl::from_start`]).
    pub const fn from_start(mut self) -> MetricDecl {
        self.from_start = true;
        self
    }

    /// This time is a part of `whole` (a category of `latency`), shown as a time share.
    pub const fn part_of(mut self, whole: &'static str) -> MetricDecl {
        self.part_of = Some(whole);
        self
    }
}

/// How the pieces of one run measured by several shards combine into the
/// figure the whole run would have recorded (`phasebench merge`).
///
/// A distribution always merges exactly: its histograms add (`Sum`). A
/// per-run scalar merges by the rule its declaration states; `None`, the
/// default of [`MetricDecl::scalar`], makes a merge refuse the run rather
/// than guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// The pieces add up (counts, bytes; histograms for distributions).
    Sum,
    /// The mean of the pieces weighted by their operations: exact for a
    /// figure per operation.
    WeightedMean,
    /// The smallest piece.
    Min,
    /// The largest piece.
    Max,
    /// Recomputed from the merged run: from its summed counters by the
    /// metric's `Derive`, or for the harness's own rates from its totals over
    /// the union of the pieces' windows.
    Derived,
    /// No rule: a merge refuses the run.
    None,
}

/// How a per-run scalar metric follows from the counters the workers kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Derive {
    /// The counter itself.
    Counter(&'static str),
    /// `part / (part + other)`, such as hits over all lookups.
    Share {
        /// The counted part.
        part: &'static str,
        /// The rest.
        other: &'static str,
    },
    /// `numerator / denominator`, such as bytes on disk per byte written.
    Quotient {
        /// Above the line.
        numerator: &'static str,
        /// Below the line.
        denominator: &'static str,
    },
    /// `amount` per second of `nanos`, such as bytes per second of codec time.
    PerSecond {
        /// What was done.
        amount: &'static str,
        /// The nanoseconds it took.
        nanos: &'static str,
    },
}

impl Derive {
    /// The value from counters (missing counters are 0); `None` when it divides by zero.
    pub fn value(&self, counter: impl Fn(&str) -> u64) -> Option<f64> {
        match *self {
            Derive::Counter(name) => Some(counter(name) as f64),
            Derive::Share { part, other } => {
                let (part, other) = (counter(part) as f64, counter(other) as f64);
                (part + other > 0.0).then(|| part / (part + other))
            }
            Derive::Quotient { numerator, denominator } => {
                let below = counter(denominator) as f64;
                (below > 0.0).then(|| counter(numerator) as f64 / below)
            }
            Derive::PerSecond { amount, nanos } => {
                let seconds = counter(nanos) as f64 / 1e9;
                (seconds > 0.0).then(|| counter(amount) as f64 / seconds)
            }
        }
    }
}

/// One operation an engine performs.
#[derive(Debug)]
pub struct OpDecl {
    /// Name used as `op:` in a workload.
    pub name: &'static str,
    /// One line for `phasebench list`.
    pub doc: &'static str,
    /// Parameters given under `with:`.
    pub params: &'static [OptionDecl],
    /// Engine metrics this operation records, beyond the harness's own.
    pub metrics: &'static [&'static str],
}

/// Everything an engine declares.
#[derive(Debug)]
pub struct EngineDecl {
    /// Name used as `kind:` of an engine instance.
    pub kind: &'static str,
    /// One line for `phasebench list`.
    pub doc: &'static str,
    /// Options of an engine instance.
    pub options: &'static [OptionDecl],
    /// Operations.
    pub ops: &'static [OpDecl],
    /// Metrics the operations may record.
    pub metrics: &'static [MetricDecl],
}

impl EngineDecl {
    /// The declaration of operation `name`.
    pub fn op(&self, name: &str) -> Option<&'static OpDecl>
    where
        Self: 'static,
    {
        self.ops.iter().find(|op| op.name == name)
    }

    /// The declaration of option `name`.
    pub fn option(&self, name: &str) -> Option<&'static OptionDecl>
    where
        Self: 'static,
    {
        self.options.iter().find(|option| option.name == name)
    }

    /// Metrics a run of `op` has: the harness's own, then the op's.
    pub fn metrics_of(&'static self, op: &OpDecl) -> Vec<&'static MetricDecl> {
        let own = op.metrics.iter().filter_map(|name| self.metrics.iter().find(|metric| metric.name == *name));
        HARNESS_METRICS.iter().chain(own).collect()
    }
}

/// Metrics the harness records for every workload, whatever the engine.
pub static HARNESS_METRICS: &[MetricDecl] = &[
    MetricDecl::time(
        names::LATENCY,
        "time per operation; in open loop, from its intended start (coordinated omission corrected)",
    ),
    MetricDecl::time(names::SERVICE_TIME, "time per operation from its actual start, excluding queueing"),
    MetricDecl::scalar(
        names::THROUGHPUT,
        Dim::PER_TIME,
        Better::Higher,
        "completed operations per second of measured time",
    )
    .merged(Merge::Derived),
    MetricDecl::scalar(names::ERRORS, Dim::NONE, Better::Lower, "operations that failed").merged(Merge::Sum),
    MetricDecl::scalar(names::ERROR_RATE, Dim::NONE, Better::Lower, "failed operations as a fraction of all attempted")
        .merged(Merge::Derived),
    MetricDecl::scalar(
        names::DROPPED,
        Dim::NONE,
        Better::Lower,
        "open loop: operations still queued at the drain deadline, never run (their wait is in `latency`); \
         0 in closed loop",
    )
    .merged(Merge::Sum),
];

/// Metrics the harness records for open-loop workloads (`load: { rate: … }`)
/// only. A closed-loop run has no schedule, so naming one of these in its
/// targets is a validation error rather than a figure that is always zero.
pub static OPEN_LOOP_METRICS: &[MetricDecl] = &[MetricDecl::time(
    names::SCHEDULE_LAG,
    "open loop: time from each operation's intended start to when a worker started (or dropped) it; \
     large when the generator or `max_in_flight` cannot keep to the rate",
)];

/// Whether only open-loop runs record `name`.
pub fn is_open_loop_metric(name: &str) -> bool {
    OPEN_LOOP_METRICS.iter().any(|metric| metric.name == name)
}

/// Metrics a run has when its workload states an `slo:`: the operations
/// that met every bound, per second of measured time and as a share of
/// all attempted (failed and dropped operations count as missing it).
///
/// Both are recomputed when shards merge, from the summed count of
/// operations that met the SLO over the union window (`Derived`), as
/// throughput is.
pub static SLO_METRICS: &[MetricDecl] = &[
    MetricDecl::scalar(
        names::GOODPUT,
        Dim::PER_TIME,
        Better::Higher,
        "slo: operations per second of measured time that met every bound of the workload's `slo`",
    )
    .merged(Merge::Derived),
    MetricDecl::scalar(
        names::SLO_ATTAINMENT,
        Dim::NONE,
        Better::Higher,
        "slo: operations that met every bound, as a fraction of all attempted (failed and dropped ones miss it)",
    )
    .merged(Merge::Derived),
];

/// Whether only runs with an `slo:` record `name`.
pub fn is_slo_metric(name: &str) -> bool {
    SLO_METRICS.iter().any(|metric| metric.name == name)
}

/// Metrics a run has when its workload asks for `profile: memory`.
///
/// Their merge rules: each shard is its own process, so a peak of the live
/// heap is a peak of one process, reached at a moment the other shards'
/// peaks need not share, and every process holds its own copy of the
/// engine's state; the sum would count that state once per shard and add
/// peaks that never coincided, so `heap_peak` keeps the largest (`Max`), the
/// most any one machine needed. Bytes allocated are work done and add up
/// (`Sum`); the allocation rate is recomputed from that sum over the union
/// window, as throughput is (`Derived`); allocations per operation is a
/// figure per operation, exact as the mean weighted by operations
/// (`WeightedMean`).
pub static MEMORY_METRICS: &[MetricDecl] = &[
    MetricDecl::scalar(
        names::HEAP_PEAK,
        Dim::BYTES,
        Better::Lower,
        "profile: memory — highest net growth of the live heap above its level when measuring began",
    )
    .merged(Merge::Max),
    MetricDecl::scalar(
        names::ALLOCATED,
        Dim::BYTES,
        Better::Lower,
        "profile: memory — bytes allocated while measuring, by every thread of the process",
    )
    .merged(Merge::Sum),
    MetricDecl::scalar(
        names::ALLOC_RATE,
        Dim::BYTE_RATE,
        Better::Lower,
        "profile: memory — bytes allocated per second of measured time",
    )
    .merged(Merge::Derived),
    MetricDecl::scalar(
        names::ALLOCS_PER_OP,
        Dim::NONE,
        Better::Lower,
        "profile: memory — allocations per completed operation",
    )
    .merged(Merge::WeightedMean),
];

/// Metrics a run has when its workload asks for `profile: memory` or `rss`.
///
/// Resident memory is the whole process's (binary, libraries, the engine's
/// state), which every shard holds once: merged, it keeps the largest
/// (`Max`), not a sum that would count all of that once per shard.
pub static RSS_METRICS: &[MetricDecl] = &[MetricDecl::scalar(
    names::RSS_PEAK,
    Dim::BYTES,
    Better::Lower,
    "profile: memory or rss — highest resident memory of the process sampled while measuring",
)
.merged(Merge::Max)];

/// The metric of a rate search (`load: { search: { rate: … } }`): the
/// highest arrival rate at which the workload's targets hold, with its 95%
/// interval. A search runs whole in one process, never split, so there is
/// nothing to merge (`None`).
pub static RATE_SEARCH_METRICS: &[MetricDecl] = &[MetricDecl::scalar(
    names::CAPACITY,
    Dim::PER_TIME,
    Better::Higher,
    "search: the highest arrival rate at which the workload's other targets hold (the load a probe passes at half the time), with its 95% interval",
)];

/// The metric of a concurrency search (`load: { search: { concurrency: … } }`):
/// the most closed-loop workers at which the targets hold.
pub static CONCURRENCY_SEARCH_METRICS: &[MetricDecl] = &[MetricDecl::scalar(
    names::CAPACITY,
    Dim::NONE,
    Better::Higher,
    "search: the most workers at which the workload's other targets hold, with its 95% interval",
)];

/// Whether only a capacity search records `name`.
pub fn is_search_metric(name: &str) -> bool {
    name == names::CAPACITY
}

/// The declaration of a metric the harness or a profiler records.
pub fn harness_metric(name: &str) -> Option<&'static MetricDecl> {
    HARNESS_METRICS
        .iter()
        .chain(OPEN_LOOP_METRICS)
        .chain(SLO_METRICS)
        .chain(MEMORY_METRICS)
        .chain(RSS_METRICS)
        .chain(RATE_SEARCH_METRICS)
        .find(|m| m.name == name)
}

/// Which way is better for metric `name` of a run of engine `kind`, as the
/// declarations say; `None` for a name no declaration has (any more).
pub fn declared_better(kind: &str, name: &str) -> Option<Better> {
    harness_metric(name)
        .or_else(|| super::find(kind)?.decl().metrics.iter().find(|m| m.name == name))
        .map(|metric| metric.better)
}

/// Whether a profiler records `name`.
pub fn is_profile_metric(name: &str) -> bool {
    MEMORY_METRICS.iter().chain(RSS_METRICS).any(|metric| metric.name == name)
}

/// Whether the harness or a profiler, not the engine, records `name`.
pub fn recorded_by_harness(name: &str) -> bool {
    is_profile_metric(name)
        || is_open_loop_metric(name)
        || is_slo_metric(name)
        || is_search_metric(name)
        || HARNESS_METRICS.iter().any(|metric| metric.name == name)
}

/// How many histogram units make one base unit: nanoseconds for time, bytes
/// for sizes, thousandths for everything else (so rates and ratios keep three
/// decimals in an integer histogram).
pub fn histogram_scale(dim: Dim) -> f64 {
    if dim == Dim::TIME {
        1e9
    } else if dim == Dim::BYTES {
        1.0
    } else {
        1e3
    }
}

/// Name of the unit one histogram count stands for.
pub fn histogram_unit(dim: Dim) -> String {
    if dim == Dim::TIME {
        "ns".into()
    } else if dim == Dim::BYTES {
        "B".into()
    } else {
        format!("1/1000 of {}", dim.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_records_its_load_metrics() {
        for name in names::LOAD {
            assert!(recorded_by_harness(name), "`{name}` is not known as a harness metric");
        }
        let declared = HARNESS_METRICS.len()
            + OPEN_LOOP_METRICS.len()
            + SLO_METRICS.len()
            + MEMORY_METRICS.len()
            + RSS_METRICS.len()
            + RATE_SEARCH_METRICS.len();
        assert_eq!(declared, names::LOAD.len() + 8, "a harness metric without a name in `metric::names`");
        assert!(is_slo_metric(names::GOODPUT) && is_slo_metric(names::SLO_ATTAINMENT));
        assert!(is_open_loop_metric("schedule_lag") && !is_open_loop_metric("dropped"));
    }

    #[test]
    fn a_time_is_never_better_higher() {
        let engines = crate::engines::registry().iter().flat_map(|kind| kind.decl().metrics);
        for metric in HARNESS_METRICS.iter().chain(OPEN_LOOP_METRICS).chain(MEMORY_METRICS).chain(engines) {
            if metric.dim == Dim::TIME {
                assert_eq!(metric.better, Better::Lower, "`{}` is a time", metric.name);
            }
        }
        assert_eq!(declared_better("vault", "cache_hit_rate"), Some(Better::Higher));
        assert_eq!(declared_better("codec", "latency"), Some(Better::Lower));
        assert_eq!(declared_better("codec", "no_such_metric"), None);
    }

    #[test]
    fn every_scalar_states_how_shards_merge() {
        let engines = crate::engines::registry().iter().flat_map(|kind| kind.decl().metrics);
        let harness = HARNESS_METRICS.iter().chain(OPEN_LOOP_METRICS).chain(MEMORY_METRICS).chain(RSS_METRICS);
        for metric in harness.chain(engines) {
            match metric.kind {
                MetricKind::Distribution => assert_eq!(metric.merge, Merge::Sum, "`{}`: histograms add", metric.name),
                MetricKind::Scalar => assert_ne!(metric.merge, Merge::None, "`{}` states no merge rule", metric.name),
            }
            if metric.merge == Merge::Derived && metric.derive.is_none() {
                assert!(recorded_by_harness(metric.name), "`{}` is derived from nothing", metric.name);
            }
        }
    }

    #[test]
    fn engine_metrics_never_shadow_the_harness_or_profilers() {
        for kind in crate::engines::registry() {
            for metric in kind.decl().metrics {
                assert!(
                    !recorded_by_harness(metric.name),
                    "engine `{}` declares `{}`, which the harness or a profiler records",
                    kind.decl().kind,
                    metric.name
                );
            }
        }
    }
}
