//! The scenario exactly as written: serde structs that mirror the YAML.
//!
//! Nothing here is interpreted. Scalars stay as the user wrote them
//! ([`Scalar`]) because `${var}` references and units are resolved later, per
//! run, by the plan. Unknown keys are rejected here (`deny_unknown_fields`), so
//! a typo never silently turns into a default.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A YAML scalar as written: text, integer, float or boolean.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// A string, possibly holding `${var}` references and units.
    Text(String),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Text(text) => f.write_str(text),
            Scalar::Int(value) => write!(f, "{value}"),
            Scalar::Float(value) => write!(f, "{value}"),
            Scalar::Bool(value) => write!(f, "{value}"),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a single value (text, number or boolean)")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v).map(Scalar::Int).map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// The whole scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// Scenario name; names the run folder.
    pub scenario: String,
    /// What the campaign is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed every random choice derives from.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Variables referenced as `${name}`.
    #[serde(default)]
    pub vars: IndexMap<String, Scalar>,
    /// Settings every workload inherits.
    #[serde(default)]
    pub defaults: RawDefaults,
    /// Named engine instances.
    #[serde(default)]
    pub engines: IndexMap<String, RawEngine>,
    /// Phases in the order they run.
    #[serde(default)]
    pub phases: Vec<RawPhase>,
    /// Optimization candidates measured A/B.
    #[serde(default)]
    pub experiments: Vec<RawExperiment>,
    /// Settings of the roadmap document.
    #[serde(default)]
    pub roadmap: Option<RawRoadmap>,
}

/// Settings inherited by every workload.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Warm-up: a duration (`2s`) or a count (`5x`).
    pub warmup: Option<Scalar>,
    /// Measured duration.
    pub duration: Option<Scalar>,
    /// Measured operation count.
    pub iterations: Option<Scalar>,
    /// Load shape.
    pub load: Option<RawLoad>,
}

/// One named engine instance: its kind and options.
#[derive(Debug, Deserialize)]
pub struct RawEngine {
    /// Which built-in engine.
    pub kind: String,
    /// Every other key is an engine option.
    #[serde(flatten)]
    pub options: IndexMap<String, Scalar>,
}

/// A group of workloads run in order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPhase {
    /// Phase name.
    pub name: String,
    /// What the phase is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Workloads in the order they run.
    #[serde(default)]
    pub workloads: Vec<RawWorkload>,
}

/// One measured workload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    /// Workload name, unique in the scenario.
    pub name: String,
    /// Name of an engine instance.
    pub engine: String,
    /// Operation of that engine.
    pub op: String,
    /// Operation parameters.
    #[serde(default)]
    pub with: IndexMap<String, Scalar>,
    /// Warm-up: a duration or a count.
    #[serde(default)]
    pub warmup: Option<Scalar>,
    /// Measured operation count.
    #[serde(default)]
    pub iterations: Option<Scalar>,
    /// Measured duration.
    #[serde(default)]
    pub duration: Option<Scalar>,
    /// Load shape.
    #[serde(default)]
    pub load: Option<RawLoad>,
    /// Variables with lists of values: one run per combination.
    #[serde(default)]
    pub matrix: IndexMap<String, Vec<Scalar>>,
    /// Conditions the run must meet.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Service-level objective: a bound per per-operation metric
    /// (`{ ttft: 200ms, tpot: 40ms }`); an operation that meets every bound
    /// counts toward `goodput` and `slo_attainment`.
    #[serde(default)]
    pub slo: IndexMap<String, Scalar>,
    /// Profilers to run while it measures: `cpu`, `memory`, `rss`, or a list.
    #[serde(default)]
    pub profile: Option<RawProfile>,
}

/// `profile:` as written: one profiler's name or a list of them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawProfile(pub Vec<String>);

impl<'de> Deserialize<'de> for RawProfile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ProfileVisitor;
        impl<'de> Visitor<'de> for ProfileVisitor {
            type Value = RawProfile;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a profiler (`cpu`, `memory` or `rss`) or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawProfile, E> {
                Ok(RawProfile(vec![v.to_owned()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawProfile, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(RawProfile(names))
            }
        }
        deserializer.deserialize_any(ProfileVisitor)
    }
}

/// Load shape: closed loop (`concurrency`) or open loop (`rate`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoad {
    /// Workers calling back to back.
    pub concurrency: Option<Scalar>,
    /// Fixed arrival rate, such as `2000/s`.
    pub rate: Option<Scalar>,
    /// Cap on operations in flight in open loop.
    pub max_in_flight: Option<Scalar>,
    /// Open loop: how arrivals are spaced, `constant`, `poisson` or `gamma(B)`.
    pub arrival: Option<Scalar>,
    /// A capacity search instead of one fixed load.
    pub search: Option<RawSearch>,
}

/// A capacity search: the range of one load, and the time it may take.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSearch {
    /// Arrival rates `[low, high]`, such as `[10/s, 20000/s]` (open loop).
    pub rate: Option<Vec<Scalar>>,
    /// Worker counts `[low, high]`, such as `[1, 256]` (closed loop).
    pub concurrency: Option<Vec<Scalar>>,
    /// The wall time the whole search may take, such as `2m`.
    pub budget: Option<Scalar>,
}

/// An optimization candidate measured A/B against a baseline.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    /// Experiment name.
    pub name: String,
    /// The workload it reruns.
    pub workload: String,
    /// The figure the improvement is judged on, such as `ttft.p99`.
    pub metric: String,
    /// Overrides of the baseline arm.
    #[serde(default)]
    pub baseline: RawOverride,
    /// Named variant arms.
    #[serde(default)]
    pub variants: IndexMap<String, RawOverride>,
    /// Interleaved rounds (A B, B A, …).
    #[serde(default)]
    pub rounds: Option<Scalar>,
    /// `fresh` (every arm of every round on new engine instances) or `shared`.
    #[serde(default)]
    pub state: Option<String>,
    /// Estimated effort, such as `3d`.
    #[serde(default)]
    pub effort: Option<Scalar>,
    /// Complexity from 1 to 5.
    #[serde(default)]
    pub complexity: Option<Scalar>,
    /// What one per cent of its metric is worth against the other
    /// experiments' (1 when not given): the roadmap's exchange rate.
    #[serde(default)]
    pub weight: Option<Scalar>,
    /// `low`, `medium` or `high`.
    #[serde(default)]
    pub risk: Option<String>,
    /// Why the candidate is worth trying.
    #[serde(default)]
    pub rationale: Option<String>,
    /// The time share the candidate speeds up, such as `attention_time`,
    /// for the roadmap's end-to-end projection (Amdahl's law).
    #[serde(default)]
    pub part: Option<String>,
}

/// Engine options and operation parameters an experiment arm changes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverride {
    /// Engine options to override.
    #[serde(default)]
    pub engine: IndexMap<String, Scalar>,
    /// Operation parameters to override.
    #[serde(default)]
    pub with: IndexMap<String, Scalar>,
}

/// Settings of the roadmap document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoadmap {
    /// First working day, `YYYY-MM-DD`.
    #[serde(default)]
    pub start: Option<String>,
    /// Engineers working in parallel.
    #[serde(default)]
    pub team: Option<Scalar>,
    /// Probability of success per risk level.
    #[serde(default)]
    pub success_probability: Option<IndexMap<String, Scalar>>,
}
