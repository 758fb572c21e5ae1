//! One workload at one matrix point lowered into a [`RunSpec`].
//!
//! Resolves the workload's engine instance and operation (unknown ones get a
//! hint), applies an experiment arm's overrides, checks the operation's
//! parameters and the engine's verdict on them, and fills warm-up, stop and
//! load from the workload, else `defaults:`, else built-in values. It also
//! checks `profile:` names, works out which metrics the run records (open
//! loop and profilers add some) and checks the targets and workflow steps
//! against them.

use std::collections::HashMap;
use std::time::Duration;

use indexmap::IndexMap;

use super::engines::Instance;
use super::phases::{matrix_suffix, Combination};
use super::{Located, Lowering};
use crate::diagnostic::{did_you_mean, hint_from};
use crate::dsl::raw::{RawLoad, RawOverride, RawWorkload};
use crate::dsl::Scalar;
use crate::engines::{self, catalog};
use crate::plan::seed::derive_seed;
use crate::plan::template::Scope;
use crate::plan::values::{self, ValueError};
use crate::plan::{Arrival, EngineConfig, Load, Profiling, RunSpec, SearchAxis, Stop, Warmup, DEFAULT_MAX_IN_FLIGHT};
use crate::quantity::{parse_quantity, Dim};

/// Warm-up when neither the workload nor `defaults` says.
const BUILTIN_WARMUP: Warmup = Warmup::Duration(Duration::from_secs(1));
/// Measured duration when neither the workload nor `defaults` says.
const BUILTIN_STOP: Stop = Stop::Duration(Duration::from_secs(5));
/// Most closed-loop workers one run may start.
pub(super) const MAX_CONCURRENCY: u64 = 4096;

impl Lowering<'_> {
    /// Lowers one workload at one matrix point, with an experiment arm's overrides.
    pub(super) fn workload_run(
        &mut self,
        workload: &RawWorkload,
        path: &str,
        instances: &HashMap<String, Instance>,
        combination: &Combination,
        overrides: &RawOverrideRef,
        seed: u64,
    ) -> Option<RunSpec> {
        let scope = &combination.scope;
        let Some(instance) = instances.get(&workload.engine) else {
            if !self.doc.raw.engines.contains_key(&workload.engine) {
                let names: Vec<&str> = self.doc.raw.engines.keys().map(String::as_str).collect();
                let hint = hint_from(&workload.engine, &names)
                    .or_else(|| Some("define it under `engines:` with a `kind:`".into()));
                self.at_value(&format!("{path}.engine"), format!("unknown engine `{}`", workload.engine), hint);
            }
            return None;
        };
        let Some(op) = instance.decl.op(&workload.op) else {
            let ops: Vec<&str> = instance.decl.ops.iter().map(|op| op.name).collect();
            self.at_value(
                &format!("{path}.op"),
                format!("engine kind `{}` has no operation `{}`", instance.kind, workload.op),
                hint_from(&workload.op, &ops),
            );
            return None;
        };

        let mut engine_options = instance.options.clone();
        if let Some(changes) = overrides.engine {
            for (key, value) in changes {
                let value_path = format!("{}.engine.{key}", overrides.path);
                if let Some(value) = self.substitute(value, &value_path, scope) {
                    engine_options.insert(key.clone(), (value, value_path));
                }
            }
        }
        let options = self.check_params(
            instance.decl.options,
            &engine_options,
            (&format!("engines.{}", workload.engine), &format!("engines.{}.kind", workload.engine)),
            &format!("engine kind `{}`", instance.kind),
            "option",
        );

        let mut given = Located::new();
        for (key, value) in &workload.with {
            let value_path = format!("{path}.with.{key}");
            if let Some(value) = self.substitute(value, &value_path, scope) {
                given.insert(key.clone(), (value, value_path));
            }
        }
        if let Some(changes) = overrides.with {
            for (key, value) in changes {
                let value_path = format!("{}.with.{key}", overrides.path);
                if let Some(value) = self.substitute(value, &value_path, scope) {
                    given.insert(key.clone(), (value, value_path));
                }
            }
        }
        let params = self.check_params(
            op.params,
            &given,
            (&format!("{path}.with"), &format!("{path}.op")),
            &format!("operation `{}.{}`", instance.kind, op.name),
            "parameter",
        );

        if let (Some(kind), Some(options), Some(params)) = (engines::find(instance.kind), &options, &params) {
            let changed_engine = overrides.engine.is_some_and(|changes| !changes.is_empty());
            let engine_path = format!("engines.{}.kind", workload.engine);
            let verdict = if changed_engine { kind.validate(options) } else { Ok(()) };
            match verdict {
                Err(invalid) => self.invalid(invalid, &engine_options, &engine_path),
                Ok(()) => {
                    if let Err(invalid) = kind.validate_op(options, op.name, params) {
                        self.invalid(invalid, &given, &format!("{path}.op"));
                    }
                }
            }
        }

        let warmup = self.warmup(workload, path, scope);
        let stop = self.stop(workload, path, scope);
        let load = self.load(workload, path, scope);
        let profile = self.profiling(workload, path);
        let mut metrics = instance.decl.metrics_of(op);
        match load {
            Some(Load::Open { .. }) => metrics.extend(catalog::OPEN_LOOP_METRICS),
            Some(Load::Search(search)) => match search.axis {
                SearchAxis::Rate { .. } => {
                    metrics.extend(catalog::OPEN_LOOP_METRICS);
                    metrics.extend(catalog::RATE_SEARCH_METRICS);
                }
                SearchAxis::Concurrency => metrics.extend(catalog::CONCURRENCY_SEARCH_METRICS),
            },
            Some(Load::Closed { .. }) | None => {}
        }
        if profile.memory {
            metrics.extend(catalog::MEMORY_METRICS);
        }
        if profile.samples_memory() {
            metrics.extend(catalog::RSS_METRICS);
        }
        let slo = self.slo(workload, path, scope, &metrics);
        if !workload.slo.is_empty() {
            metrics.extend(catalog::SLO_METRICS);
        }
        let mut targets = Vec::new();
        for (index, text) in workload.targets.iter().enumerate() {
            let target_path = format!("{path}.targets[{index}]");
            if let Some(target) = self.target(text, &target_path, scope, instance.decl, op, &metrics) {
                targets.push(target);
            }
        }

        if let Some(Load::Search(_)) = load {
            self.search_condition(workload, path, &targets);
        }

        let steps = match &params {
            Some(params) => self.workflow_steps(op.params, params, &given, path, instances),
            None => Some(Vec::new()),
        };

        let suffix = matrix_suffix(&combination.values);
        let id = format!("{}{suffix}", workload.name);
        Some(RunSpec {
            seed: derive_seed(seed, &id),
            id,
            phase: String::new(),
            workload: workload.name.clone(),
            matrix: combination.values.clone(),
            arm: None,
            repetition: None,
            engine: EngineConfig { name: workload.engine.clone(), kind: instance.kind, options: options? },
            op: op.name.to_owned(),
            params: params?,
            warmup: warmup?,
            stop: stop?,
            load: load?,
            targets,
            metrics,
            steps: steps?,
            profile,
            slo: slo?,
            shard: None,
            schedule_seed: 0,
        })
    }

    /// The profilers a workload asks for; unknown names are errors.
    fn profiling(&mut self, workload: &RawWorkload, path: &str) -> Profiling {
        let mut profile = Profiling::default();
        let names = workload.profile.as_ref().map_or(&[][..], |raw| raw.0.as_slice());
        let single = names.len() == 1;
        for (index, name) in names.iter().enumerate() {
            match name.as_str() {
                "cpu" => profile.cpu = true,
                "memory" => profile.memory = true,
                "rss" => profile.rss = true,
                _ => {
                    let at = if single { format!("{path}.profile") } else { format!("{path}.profile[{index}]") };
                    let hint = did_you_mean(name, Profiling::NAMES.iter().copied()).or_else(|| {
                        Some(
                            "`cpu` samples call stacks for a flame graph, `memory` counts the heap, \
                             `rss` samples resident memory"
                                .into(),
                        )
                    });
                    self.at_value(&at, format!("unknown profiler `{name}`"), hint);
                }
            }
        }
        profile
    }

    /// The workload's own setting, else the default's, with its path.
    fn setting<'s>(
        &self,
        own: &'s Option<Scalar>,
        default: &'s Option<Scalar>,
        path: &str,
        key: &str,
    ) -> Option<(&'s Scalar, String)> {
        match (own, default) {
            (Some(value), _) => Some((value, format!("{path}.{key}"))),
            (None, Some(value)) => Some((value, format!("defaults.{key}"))),
            (None, None) => None,
        }
    }

    fn warmup(&mut self, workload: &RawWorkload, path: &str, scope: &Scope) -> Option<Warmup> {
        let defaults = &self.doc.raw.defaults;
        let Some((raw, value_path)) = self.setting(&workload.warmup, &defaults.warmup, path, "warmup") else {
            return Some(BUILTIN_WARMUP);
        };
        let scalar = self.substitute(raw, &value_path, scope)?;
        let text = scalar.to_string();
        let parsed = match parse_quantity(&text) {
            Ok(quantity) if quantity.dim() == Dim::TIME => {
                values::duration(&scalar).map(|d| if d.is_zero() { Warmup::None } else { Warmup::Duration(d) })
            }
            Ok(quantity) if quantity.dim() == Dim::NONE => {
                values::count(&scalar).map(|n| if n == 0 { Warmup::None } else { Warmup::Count(n) })
            }
            Ok(quantity) => Err(ValueError {
                message: format!("warm-up `{text}` is {}", quantity.dim().describe()),
                hint: Some("write a duration such as `2s` or a count such as `5x`".into()),
                range: None,
            }),
            Err(error) => Err(ValueError {
                message: format!("warm-up `{text}`: {}", error.message),
                hint: error.hint.or_else(|| Some("write a duration such as `2s` or a count such as `5x`".into())),
                range: Some((error.offset, error.offset + error.len)),
            }),
        };
        match parsed {
            Ok(warmup) => Some(warmup),
            Err(error) => {
                self.value_error(&value_path, &scalar, error);
                None
            }
        }
    }

    fn stop(&mut self, workload: &RawWorkload, path: &str, scope: &Scope) -> Option<Stop> {
        let defaults = &self.doc.raw.defaults;
        let (iterations, duration) = if workload.iterations.is_some() || workload.duration.is_some() {
            if workload.iterations.is_some() && workload.duration.is_some() {
                self.at_key(
                    &format!("{path}.duration"),
                    "a workload sets both `iterations` and `duration`",
                    Some("keep one: the run stops after a count or after a time".into()),
                );
                return None;
            }
            (
                workload.iterations.as_ref().map(|v| (v, format!("{path}.iterations"))),
                workload.duration.as_ref().map(|v| (v, format!("{path}.duration"))),
            )
        } else {
            if defaults.iterations.is_some() && defaults.duration.is_some() {
                self.at_key(
                    "defaults.duration",
                    "`defaults` sets both `iterations` and `duration`",
                    Some("keep one".into()),
                );
                return None;
            }
            (
                defaults.iterations.as_ref().map(|v| (v, "defaults.iterations".to_owned())),
                defaults.duration.as_ref().map(|v| (v, "defaults.duration".to_owned())),
            )
        };
        if let Some((raw, value_path)) = iterations {
            let scalar = self.substitute(raw, &value_path, scope)?;
            return match values::count(&scalar) {
                Ok(0) => {
                    self.at_value(&value_path, "`iterations` is zero", Some("measure at least one operation".into()));
                    None
                }
                Ok(n) => Some(Stop::Iterations(n)),
                Err(error) => {
                    self.value_error(&value_path, &scalar, error);
                    None
                }
            };
        }
        if let Some((raw, value_path)) = duration {
            let scalar = self.substitute(raw, &value_path, scope)?;
            return match values::duration(&scalar) {
                Ok(d) if d.is_zero() => {
                    self.at_value(
                        &value_path,
                        "`duration` is zero",
                        Some("measure for a positive time such as `10s`".into()),
                    );
                    None
                }
                Ok(d) => Some(Stop::Duration(d)),
                Err(error) => {
                    self.value_error(&value_path, &scalar, error);
                    None
                }
            };
        }
        Some(BUILTIN_STOP)
    }

    fn load(&mut self, workload: &RawWorkload, path: &str, scope: &Scope) -> Option<Load> {
        let (raw, load_path): (&RawLoad, String) = match (&workload.load, &self.doc.raw.defaults.load) {
            (Some(load), _) => (load, format!("{path}.load")),
            (None, Some(load)) => (load, "defaults.load".to_owned()),
            (None, None) => return Some(Load::Closed { concurrency: 1 }),
        };
        if let Some(search) = &raw.search {
            return self.search_load(raw, search, &load_path, scope);
        }
        if raw.concurrency.is_some() && raw.rate.is_some() {
            self.at_key(
                &format!("{load_path}.rate"),
                "`load` sets both `concurrency` and `rate`",
                Some("closed loop takes `concurrency`; open loop takes `rate` and `max_in_flight`".into()),
            );
            return None;
        }
        match &raw.rate {
            Some(rate) => {
                let rate_path = format!("{load_path}.rate");
                let scalar = self.substitute(rate, &rate_path, scope)?;
                let max_in_flight = self.load_count(
                    &raw.max_in_flight,
                    &load_path,
                    "max_in_flight",
                    u64::from(DEFAULT_MAX_IN_FLIGHT),
                    scope,
                );
                let arrival = self.arrival(raw, &load_path, scope);
                match values::rate(&scalar) {
                    Ok(rate) => Some(Load::Open { rate, max_in_flight: max_in_flight? as u32, arrival: arrival? }),
                    Err(error) => {
                        self.value_error(&rate_path, &scalar, error);
                        None
                    }
                }
            }
            None => {
                if !self.open_loop_only(raw, &load_path, "add `rate:` (open loop)") {
                    return None;
                }
                self.load_count(&raw.concurrency, &load_path, "concurrency", 1, scope)
                    .map(|n| Load::Closed { concurrency: n as u32 })
            }
        }
    }

    /// Whether a closed-loop `load` leaves out the open loop's keys; each
    /// one set is an error whose hint starts with `fix`.
    pub(super) fn open_loop_only(&mut self, raw: &RawLoad, load_path: &str, fix: &str) -> bool {
        for (set, key) in [(raw.max_in_flight.is_some(), "max_in_flight"), (raw.arrival.is_some(), "arrival")] {
            if set {
                self.at_key(
                    &format!("{load_path}.{key}"),
                    format!("`{key}` applies only to open loop"),
                    Some(format!("{fix} or remove `{key}`")),
                );
                return false;
            }
        }
        true
    }

    /// A worker count under `load` (`concurrency`, `max_in_flight`), from 1
    /// to the most workers a run may start; `default` when not set.
    pub(super) fn load_count(
        &mut self,
        value: &Option<Scalar>,
        load_path: &str,
        key: &str,
        default: u64,
        scope: &Scope,
    ) -> Option<u64> {
        let Some(raw) = value else { return Some(default) };
        let value_path = format!("{load_path}.{key}");
        let scalar = self.substitute(raw, &value_path, scope)?;
        self.worker_count(&scalar, &value_path, key)
    }

    /// A worker count from 1 to [`MAX_CONCURRENCY`], reported at `value_path`.
    pub(super) fn worker_count(&mut self, scalar: &Scalar, value_path: &str, key: &str) -> Option<u64> {
        match values::count(scalar) {
            Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Some(n),
            Ok(n) => {
                self.at_value(value_path, format!("`{key}` is {n}"), Some(format!("use 1 to {MAX_CONCURRENCY}")));
                None
            }
            Err(error) => {
                self.value_error(value_path, scalar, error);
                None
            }
        }
    }

    /// The open loop's arrival process, evenly spaced when not set.
    pub(super) fn arrival(&mut self, raw: &RawLoad, load_path: &str, scope: &Scope) -> Option<Arrival> {
        let Some(arrival) = &raw.arrival else { return Some(Arrival::Constant) };
        let arrival_path = format!("{load_path}.arrival");
        let scalar = self.substitute(arrival, &arrival_path, scope)?;
        match values::arrival(&scalar) {
            Ok(arrival) => Some(arrival),
            Err(error) => {
                self.value_error(&arrival_path, &scalar, error);
                None
            }
        }
    }
}

/// An experiment arm's overrides and where they were written.
pub(super) struct RawOverrideRef<'r> {
    pub(super) engine: Option<&'r IndexMap<String, Scalar>>,
    pub(super) with: Option<&'r IndexMap<String, Scalar>>,
    pub(super) path: String,
}

impl<'r> RawOverrideRef<'r> {
    pub(super) fn none() -> Self {
        RawOverrideRef { engine: None, with: None, path: String::new() }
    }

    pub(super) fn of(raw: &'r RawOverride, path: String) -> Self {
        RawOverrideRef { engine: Some(&raw.engine), with: Some(&raw.with), path }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{BUILTIN_STOP, BUILTIN_WARMUP};
    use crate::plan::lower::tests::{at, error_of, plan_of, scenario, workload};
    use crate::plan::{Arrival, Load, Profiling, Stop, Warmup, DEFAULT_MAX_IN_FLIGHT};

    fn metric_names(run: &crate::plan::RunSpec) -> Vec<&'static str> {
        run.metrics.iter().map(|metric| metric.name).collect()
    }

    #[test]
    fn settings_come_from_the_workload_else_defaults_else_built_in_values() {
        let with_defaults = |defaults: &str| {
            plan_of(&scenario(&[
                "scenario: t",
                defaults,
                "engines: { cal: { kind: calibrate } }",
                "phases:",
                "  - name: p",
                "    workloads:",
                "      - { name: plain, engine: cal, op: noop }",
                "      - { name: own, engine: cal, op: noop, duration: 2s, warmup: 0s, load: { concurrency: 3 } }",
            ]))
        };
        let plan = with_defaults("defaults: { warmup: 20x, iterations: 200, load: { concurrency: 2 } }");
        let settings: Vec<(Warmup, Stop, Load)> =
            plan.runs.iter().map(|run| (run.warmup, run.stop, run.load)).collect();
        assert_eq!(
            settings,
            [
                (Warmup::Count(20), Stop::Iterations(200), Load::Closed { concurrency: 2 }),
                (Warmup::None, Stop::Duration(Duration::from_secs(2)), Load::Closed { concurrency: 3 }),
            ]
        );
        let plan = with_defaults("description: no defaults");
        let plain = &plan.runs[0];
        assert_eq!(
            (plain.warmup, plain.stop, plain.load),
            (BUILTIN_WARMUP, BUILTIN_STOP, Load::Closed { concurrency: 1 })
        );
        assert_eq!(BUILTIN_WARMUP, Warmup::Duration(Duration::from_secs(1)));
        assert_eq!(BUILTIN_STOP, Stop::Duration(Duration::from_secs(5)));
    }

    #[test]
    fn an_open_loop_records_schedule_lag_and_caps_operations_in_flight() {
        let plan = plan_of(&workload(&["engine: cal", "op: noop", "load: { rate: 500/s }"]));
        assert_eq!(
            plan.runs[0].load,
            Load::Open { rate: 500.0, max_in_flight: DEFAULT_MAX_IN_FLIGHT, arrival: Arrival::Constant }
        );
        assert!(metric_names(&plan.runs[0]).contains(&"schedule_lag"));

        let plan = plan_of(&workload(&["engine: cal", "op: noop", "load: { rate: 250/s, max_in_flight: 8 }"]));
        assert_eq!(plan.runs[0].load, Load::Open { rate: 250.0, max_in_flight: 8, arrival: Arrival::Constant });
        for (written, arrival) in [
            ("poisson", Arrival::Poisson),
            ("gamma(0.5)", Arrival::Gamma { burstiness: 0.5 }),
            ("constant", Arrival::Constant),
        ] {
            let load = format!("load: {{ rate: 250/s, arrival: \"{written}\" }}");
            let plan = plan_of(&workload(&["engine: cal", "op: noop", &load]));
            assert!(matches!(plan.runs[0].load, Load::Open { arrival: found, .. } if found == arrival), "{written}");
        }

        let plan = plan_of(&workload(&["engine: cal", "op: noop"]));
        assert!(!metric_names(&plan.runs[0]).contains(&"schedule_lag"));
    }

    #[test]
    fn an_operation_records_the_harness_metrics_and_its_own() {
        let plan = plan_of(&workload(&["engine: cal", "op: sleep", "with: { duration: 1ms }"]));
        let run = &plan.runs[0];
        assert_eq!((run.op.as_str(), run.workload.as_str()), ("sleep", "w"));
        let names = metric_names(run);
        assert_eq!(names.first(), Some(&"latency"));
        assert_eq!(names.last(), Some(&"overshoot"));
        assert!(names.contains(&"throughput"));
    }

    #[test]
    fn profilers_switch_on_and_add_their_metrics() {
        let plan = plan_of(&workload(&["engine: cal", "op: noop", "profile: [cpu, memory]"]));
        let run = &plan.runs[0];
        assert_eq!(run.profile, Profiling { cpu: true, memory: true, rss: false });
        let names = metric_names(run);
        assert!(names.contains(&"heap_peak") && names.contains(&"rss_peak"), "{names:?}");

        let plan = plan_of(&workload(&["engine: cal", "op: noop", "profile: rss"]));
        assert_eq!(plan.runs[0].profile, Profiling { cpu: false, memory: false, rss: true });
        assert!(!metric_names(&plan.runs[0]).contains(&"heap_peak"));

        let diagnostic = error_of(&workload(&["engine: cal", "op: noop", "profile: [cpu, memroy]"]));
        assert_eq!(diagnostic.message, "unknown profiler `memroy`");
        assert_eq!((diagnostic.path.as_str(), at(&diagnostic)), ("phases[0].workloads[0].profile[1]", (10, 24)));
        assert_eq!(diagnostic.hint.as_deref(), Some("did you mean `memory`?"));
    }

    #[test]
    fn an_unknown_engine_or_operation_is_refused_with_a_hint() {
        let diagnostic = error_of(&workload(&["engine: cl", "op: noop"]));
        assert_eq!(diagnostic.message, "unknown engine `cl`");
        assert_eq!((diagnostic.path.as_str(), at(&diagnostic)), ("phases[0].workloads[0].engine", (8, 17)));
        assert_eq!(diagnostic.hint.as_deref(), Some("did you mean `cal`?"));

        let diagnostic = error_of(&workload(&["engine: cal", "op: slep"]));
        assert_eq!(diagnostic.message, "engine kind `calibrate` has no operation `slep`");
        assert_eq!((diagnostic.path.as_str(), at(&diagnostic)), ("phases[0].workloads[0].op", (9, 13)));
        assert_eq!(diagnostic.hint.as_deref(), Some("did you mean `sleep`?"));
    }

    #[test]
    fn run_length_and_load_mistakes_are_refused_where_written() {
        let cases: [(&[&str], &str, (usize, usize)); 5] = [
            (&["iterations: 5", "duration: 1s"], "a workload sets both `iterations` and `duration`", (11, 9)),
            (&["iterations: 0"], "`iterations` is zero", (10, 21)),
            (&["duration: 0s"], "`duration` is zero", (10, 19)),
            (&["load: { concurrency: 0 }"], "`concurrency` is 0", (10, 30)),
            (&["load: { concurrency: 2, max_in_flight: 4 }"], "`max_in_flight` applies only to open loop", (10, 33)),
        ];
        for (body, message, location) in cases {
            let mut lines = vec!["engine: cal", "op: noop"];
            lines.extend(body);
            let diagnostic = error_of(&workload(&lines));
            assert_eq!((diagnostic.message.as_str(), at(&diagnostic)), (message, location), "{body:?}");
        }
    }

    #[test]
    fn a_warm_up_of_another_dimension_is_refused() {
        let diagnostic = error_of(&workload(&["engine: cal", "op: noop", "warmup: 4KiB"]));
        assert_eq!(diagnostic.message, "warm-up `4KiB` is a size");
        assert_eq!(diagnostic.hint.as_deref(), Some("write a duration such as `2s` or a count such as `5x`"));
    }
}
