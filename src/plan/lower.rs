//! Lowering a [`Document`] into a [`Plan`], collecting every diagnostic.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use indexmap::IndexMap;

use super::order::ArmOrder;
use super::seed::derive_seed;
use super::template::{Scope, TemplateError};
use super::values::{self, parse_value, ValueError};
use super::{
    repeat, ArmRef, ArmState, EngineConfig, ExperimentSpec, Load, Plan, PlanOptions, Profiling, Risk, RoadmapSpec,
    RunSpec, ScenarioInfo, StepSpec, Stop, Target, Warmup, DEFAULT_MAX_IN_FLIGHT, DEFAULT_ROUNDS, MAX_RUNS,
    SMOKE_ITERATIONS,
};
use crate::diagnostic::{did_you_mean, hint_from, Diagnostic, Diagnostics};
use crate::dsl::raw::{RawLoad, RawOverride, RawWorkload};
use crate::dsl::{Document, Scalar};
use crate::engines::{self, catalog, EngineDecl, MetricDecl, MetricKind, OpDecl, OptionDecl, Params, Value, ValueType};
use crate::expr::{self, Expr, MetricRef, Stat};
use crate::quantity::{parse_quantity, Dim};

/// Warm-up when neither the workload nor `defaults` says.
const BUILTIN_WARMUP: Warmup = Warmup::Duration(Duration::from_secs(1));
/// Measured duration when neither the workload nor `defaults` says.
const BUILTIN_STOP: Stop = Stop::Duration(Duration::from_secs(5));
/// Most closed-loop workers one run may start.
const MAX_CONCURRENCY: u64 = 4096;

/// A value with the document path it came from, for error locations.
type Located = IndexMap<String, (Scalar, String)>;

/// Checks `doc` and expands it into a plan.
pub fn build(doc: &Document, options: &PlanOptions) -> Result<Plan, Diagnostics> {
    let mut lowering = Lowering {
        doc,
        errors: Vec::new(),
        seen: HashSet::new(),
        planned_runs: Some(0),
        repeat: u64::from(options.repeat.max(1)),
    };
    let plan = lowering.plan(options);
    if lowering.errors.is_empty() {
        Ok(plan)
    } else {
        Err(Diagnostics(lowering.errors))
    }
}

/// A configured engine instance from `engines:`.
struct Instance {
    kind: &'static str,
    decl: &'static EngineDecl,
    options: Located,
}

/// A workload found in the phases, for experiments to refer to.
struct WorkloadRef<'a> {
    raw: &'a RawWorkload,
    path: String,
}

struct Lowering<'a> {
    doc: &'a Document,
    errors: Vec<Diagnostic>,
    seen: HashSet<(String, String)>,
    /// Runs counted so far, before expanding them, against [`MAX_RUNS`];
    /// `None` once a matrix or experiment was refused for passing it.
    planned_runs: Option<u64>,
    /// `--repeat N`: how many times each phase run is planned.
    repeat: u64,
}

impl<'a> Lowering<'a> {
    fn push(&mut self, diagnostic: Diagnostic) {
        // Matrix expansion can report one mistake once per combination.
        if self.seen.insert((diagnostic.path.clone(), diagnostic.message.clone())) {
            self.errors.push(diagnostic);
        }
    }

    fn at_value(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        let diagnostic = self.doc.spans.at_value(path, message).with_hint(hint);
        self.push(diagnostic);
    }

    fn at_key(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        let diagnostic = self.doc.spans.at_key(path, message).with_hint(hint);
        self.push(diagnostic);
    }

    fn within(
        &mut self,
        path: &str,
        text: &str,
        range: (usize, usize),
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let location = self.doc.spans.within(path, text, range.0, range.1);
        let diagnostic = self.doc.spans.diagnostic(path, location, message).with_hint(hint);
        self.push(diagnostic);
    }

    fn template_error(&mut self, path: &str, text: &str, error: TemplateError) {
        self.within(path, text, (error.start, error.end), error.message, error.hint);
    }

    fn value_error(&mut self, path: &str, scalar: &Scalar, error: ValueError) {
        match (error.range, scalar) {
            (Some(range), Scalar::Text(text)) => self.within(path, text, range, error.message, error.hint),
            _ => self.at_value(path, error.message, error.hint),
        }
    }

    /// Substitutes variables in the scalar at `path`.
    fn substitute(&mut self, scalar: &Scalar, path: &str, scope: &Scope) -> Option<Scalar> {
        match scope.substitute(scalar) {
            Ok(value) => Some(value),
            Err(error) => {
                let text = scalar.to_string();
                self.template_error(path, &text, error);
                None
            }
        }
    }

    fn plan(&mut self, options: &PlanOptions) -> Plan {
        let raw = &self.doc.raw;
        let scenario = ScenarioInfo {
            name: raw.scenario.clone(),
            description: raw.description.clone(),
            file: self.doc.file.clone(),
            sha256: self.doc.sha256.clone(),
            seed: options.seed.or(raw.seed).unwrap_or(0),
            vars: options.vars.clone(),
        };
        self.check_scenario_name(&raw.scenario);
        let vars = self.overridden_vars(&options.vars);
        // Variables that resolve stay usable, so one bad variable does not
        // turn every use of the others into an error.
        let (scope, var_errors) = Scope::from_vars_partial(&vars);
        for (name, error) in var_errors {
            let path = format!("vars.{name}");
            let text = vars.get(&name).map(ToString::to_string).unwrap_or_default();
            self.template_error(&path, &text, error);
        }
        let instances = self.engines(&scope);
        let (phase_runs, workloads) = self.phases(&instances, &scope, scenario.seed);
        let mut runs = repeat::passes(phase_runs, options.repeat, scenario.seed);
        let mut experiments = Vec::new();
        for (index, raw_experiment) in raw.experiments.iter().enumerate() {
            let path = format!("experiments[{index}]");
            if let Some((spec, arm_runs)) =
                self.experiment(raw_experiment, &path, &workloads, &instances, &scope, scenario.seed)
            {
                if experiments.iter().any(|e: &ExperimentSpec| e.name == spec.name) {
                    self.at_value(
                        &format!("{path}.name"),
                        format!("experiment `{}` is defined twice", spec.name),
                        Some("give each experiment its own name".into()),
                    );
                }
                experiments.push(spec);
                runs.extend(arm_runs);
            }
        }
        let roadmap = self.roadmap();
        let mut plan = Plan { scenario, runs, experiments, roadmap, smoke: options.smoke };
        if let Some(only) = &options.only {
            self.keep_only(&mut plan, only);
        }
        if options.smoke {
            shrink(&mut plan);
        }
        plan
    }

    /// The scenario's variables with the command line's values in place;
    /// a name the scenario does not declare is an error (a typo would
    /// otherwise silently change nothing).
    fn overridden_vars(&mut self, overrides: &IndexMap<String, String>) -> IndexMap<String, Scalar> {
        let mut vars = self.doc.raw.vars.clone();
        for (name, text) in overrides {
            match vars.get_mut(name) {
                Some(value) => *value = command_line_scalar(text),
                None => {
                    let names: Vec<&str> = self.doc.raw.vars.keys().map(String::as_str).collect();
                    let hint = hint_from(name, &names).or_else(|| {
                        Some(format!("declare it under `vars:` to make it settable, e.g. `{name}: {text}`"))
                    });
                    self.at_key("vars", format!("--var {name}={text}: the scenario has no variable `{name}`"), hint);
                }
            }
        }
        vars
    }

    /// Any non-blank name will do: the default run folder uses it with
    /// everything but letters, digits, `-` and `_` replaced.
    fn check_scenario_name(&mut self, name: &str) {
        if name.trim().is_empty() {
            self.at_value(
                "scenario",
                "the scenario name is blank",
                Some("name it, such as `scenario: checkout`".into()),
            );
        }
    }

    fn engines(&mut self, scope: &Scope) -> HashMap<String, Instance> {
        let mut instances = HashMap::new();
        for (name, raw) in &self.doc.raw.engines {
            let path = format!("engines.{name}");
            let Some(kind) = engines::find(&raw.kind) else {
                let kinds: Vec<&str> = engines::registry().iter().map(|k| k.decl().kind).collect();
                self.at_value(
                    &format!("{path}.kind"),
                    format!("unknown engine kind `{}`", raw.kind),
                    hint_from(&raw.kind, &kinds),
                );
                continue;
            };
            let decl = kind.decl();
            let mut options = Located::new();
            for (key, value) in &raw.options {
                let option_path = format!("{path}.{key}");
                if let Some(value) = self.substitute(value, &option_path, scope) {
                    options.insert(key.clone(), (value, option_path));
                }
            }
            // Checked once here so a mistake is reported even if no workload uses the instance.
            let checked = self.check_params(
                decl.options,
                &options,
                (&path, &format!("{path}.kind")),
                &format!("engine kind `{}`", decl.kind),
                "option",
            );
            if let Some(checked) = checked {
                if let Err(invalid) = kind.validate(&checked) {
                    self.invalid(invalid, &options, &format!("{path}.kind"));
                }
            }
            instances.insert(name.clone(), Instance { kind: decl.kind, decl, options });
        }
        instances
    }

    fn phases(
        &mut self,
        instances: &HashMap<String, Instance>,
        scope: &Scope,
        seed: u64,
    ) -> (Vec<RunSpec>, HashMap<String, WorkloadRef<'a>>) {
        let raw = &self.doc.raw;
        let mut runs = Vec::new();
        let mut workloads: HashMap<String, WorkloadRef<'a>> = HashMap::new();
        if raw.phases.is_empty() {
            self.at_key(
                "phases",
                "the scenario has no phases",
                Some("add `phases:` with at least one phase and workload".into()),
            );
        }
        let mut phase_names = HashSet::new();
        for (phase_index, phase) in raw.phases.iter().enumerate() {
            let phase_path = format!("phases[{phase_index}]");
            if !phase_names.insert(phase.name.as_str()) {
                self.at_value(
                    &format!("{phase_path}.name"),
                    format!("phase `{}` is defined twice", phase.name),
                    Some("give each phase its own name".into()),
                );
            }
            if phase.workloads.is_empty() {
                // Points at `workloads: []` when written, else at the phase.
                self.at_value(
                    &format!("{phase_path}.workloads"),
                    format!("phase `{}` has no workloads", phase.name),
                    Some("add `workloads:` with at least one workload".into()),
                );
            }
            for (index, workload) in phase.workloads.iter().enumerate() {
                let path = format!("{phase_path}.workloads[{index}]");
                if workloads.contains_key(&workload.name) {
                    self.at_value(
                        &format!("{path}.name"),
                        format!("workload `{}` is defined twice", workload.name),
                        Some("workload names are unique across the scenario; rename one".into()),
                    );
                    continue;
                }
                let runs_here = matrix_points(workload).and_then(|points| points.checked_mul(self.repeat));
                if !self.count_runs(runs_here, &format!("{path}.matrix"), &format!("workload `{}`", workload.name)) {
                    workloads.insert(workload.name.clone(), WorkloadRef { raw: workload, path });
                    continue;
                }
                for combination in self.matrix(workload, &path, scope) {
                    let Some(run) =
                        self.workload_run(workload, &path, instances, &combination, &RawOverrideRef::none(), seed)
                    else {
                        continue;
                    };
                    runs.push(RunSpec { phase: phase.name.clone(), ..run });
                }
                workloads.insert(workload.name.clone(), WorkloadRef { raw: workload, path });
            }
        }
        (runs, workloads)
    }

    /// Counts `runs` (`None`: more than `u64` holds) toward the plan's total
    /// before they are expanded; past [`MAX_RUNS`] they are refused at `path`
    /// and must not be expanded.
    ///
    /// A phase workload's count is its matrix points × `--repeat`, an
    /// experiment's its points × rounds × arms, so that the limit holds for
    /// the runs actually planned.
    fn count_runs(&mut self, runs: Option<u64>, path: &str, what: &str) -> bool {
        // After one refusal the plan is too large whatever follows; saying so once is enough.
        let Some(before) = self.planned_runs else { return false };
        if let Some(total) = runs.and_then(|runs| runs.checked_add(before)).filter(|total| *total <= MAX_RUNS) {
            self.planned_runs = Some(total);
            return true;
        }
        let runs = runs.map_or_else(|| format!("more than {}", u64::MAX), |runs| runs.to_string());
        let message = if before == 0 {
            format!("{what} makes {runs} runs; a plan holds at most {MAX_RUNS}")
        } else {
            format!("{what} makes {runs} runs after the {before} before it; a plan holds at most {MAX_RUNS}")
        };
        let hint = "use fewer matrix values, rounds or variants, or split the campaign into several scenarios";
        self.at_key(path, message, Some(hint.into()));
        self.planned_runs = None;
        false
    }

    /// The scopes of a workload's matrix points, in cartesian order (last key fastest).
    fn matrix(&mut self, workload: &RawWorkload, path: &str, scope: &Scope) -> Vec<Combination> {
        let mut combinations = vec![Combination { scope: scope.clone(), values: IndexMap::new() }];
        for (name, values) in &workload.matrix {
            let value_path = format!("{path}.matrix.{name}");
            if values.is_empty() {
                self.at_value(
                    &value_path,
                    format!("matrix variable `{name}` has no values"),
                    Some(format!("give it a list such as `{name}: [1, 2, 4]`")),
                );
                return Vec::new();
            }
            let mut next = Vec::with_capacity(combinations.len() * values.len());
            for combination in &combinations {
                for (index, value) in values.iter().enumerate() {
                    let Some(value) = self.substitute(value, &format!("{value_path}[{index}]"), scope) else {
                        continue;
                    };
                    let mut point = combination.values.clone();
                    point.insert(name.clone(), value.to_string());
                    next.push(Combination { scope: combination.scope.with(name, value), values: point });
                }
            }
            combinations = next;
        }
        combinations
    }

    /// Lowers one workload at one matrix point, with an experiment arm's overrides.
    fn workload_run(
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
        if matches!(load, Some(Load::Open { .. })) {
            metrics.extend(catalog::OPEN_LOOP_METRICS);
        }
        if profile.memory {
            metrics.extend(catalog::MEMORY_METRICS);
        }
        if profile.samples_memory() {
            metrics.extend(catalog::RSS_METRICS);
        }
        let mut targets = Vec::new();
        for (index, text) in workload.targets.iter().enumerate() {
            let target_path = format!("{path}.targets[{index}]");
            if let Some(target) = self.target(text, &target_path, scope, instance.decl, op, &metrics) {
                targets.push(target);
            }
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

    /// The steps of a workflow parameter (`engine.op -> engine.op`): every
    /// engine must be configured in the scenario, have that operation, and
    /// the operation must run with its default parameters and not be a
    /// workflow itself.
    fn workflow_steps(
        &mut self,
        decls: &'static [OptionDecl],
        params: &Params,
        given: &Located,
        path: &str,
        instances: &HashMap<String, Instance>,
    ) -> Option<Vec<StepSpec>> {
        let Some(decl) = decls.iter().find(|decl| matches!(decl.ty, ValueType::Steps)) else {
            return Some(Vec::new());
        };
        let value_path =
            given.get(decl.name).map_or_else(|| format!("{path}.with"), |(_, value_path)| value_path.clone());
        let text = match params.get(decl.name) {
            Some(Value::Text(text)) => text.clone(),
            _ => String::new(),
        };
        let names: Vec<&str> = self.doc.raw.engines.keys().map(String::as_str).collect();
        let mut steps = Vec::new();
        let mut ok = true;
        let items: Vec<&str> = text.split("->").map(str::trim).collect();
        if text.trim().is_empty() {
            let hint = Some("write `engine.op -> engine.op`, naming engines of this scenario".to_string());
            self.at_value(&value_path, format!("`{}` names no steps", decl.name), hint);
            return None;
        }
        for (index, item) in items.iter().enumerate() {
            let Some((engine, op_name)) = item.split_once('.') else {
                let hint = Some("write each step as `engine.op`, steps separated by `->`".to_string());
                self.at_value(&value_path, format!("step {} (`{item}`) is not `engine.op`", index + 1), hint);
                ok = false;
                continue;
            };
            let Some(instance) = instances.get(engine) else {
                let hint = hint_from(engine, &names).or_else(|| Some("define it under `engines:`".into()));
                let message =
                    format!("step {} names engine `{engine}`, which this scenario does not configure", index + 1);
                self.at_value(&value_path, message, hint);
                ok = false;
                continue;
            };
            let Some(op) = instance.decl.op(op_name) else {
                let ops: Vec<&str> = instance.decl.ops.iter().map(|op| op.name).collect();
                let message =
                    format!("step {}: engine kind `{}` has no operation `{op_name}`", index + 1, instance.kind);
                self.at_value(&value_path, message, hint_from(op_name, &ops));
                ok = false;
                continue;
            };
            if op.params.iter().any(|p| matches!(p.ty, ValueType::Steps)) {
                let message = format!("step {} (`{item}`) is a workflow itself; workflows do not nest", index + 1);
                let hint = Some("list that workflow's steps here instead".to_string());
                self.at_value(&value_path, message, hint);
                ok = false;
                continue;
            }
            let owner = format!("engine kind `{}`", instance.kind);
            let options = self.check_params(
                instance.decl.options,
                &instance.options,
                (&format!("engines.{engine}"), &format!("engines.{engine}.kind")),
                &owner,
                "option",
            );
            let op_owner =
                format!("operation `{}.{}` (a workflow step runs it with its defaults)", instance.kind, op.name);
            let step_params =
                self.check_params(op.params, &Located::new(), (&value_path, &value_path), &op_owner, "parameter");
            match (options, step_params) {
                (Some(options), Some(step_params)) => steps.push(StepSpec {
                    engine: EngineConfig { name: engine.to_string(), kind: instance.kind, options },
                    op: op.name.to_string(),
                    params: step_params,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(steps)
    }

    /// Reports an engine's own objection at the value it names, or at
    /// `fallback` when that value was left to its default.
    fn invalid(&mut self, invalid: engines::Invalid, given: &Located, fallback: &str) {
        match given.get(invalid.key) {
            Some((_, path)) => self.at_value(path, invalid.message, invalid.hint),
            None => self.at_value(fallback, format!("`{}`: {}", invalid.key, invalid.message), invalid.hint),
        }
    }

    /// Checks given values against declarations and fills defaults.
    ///
    /// A missing value is reported at `container` (such as `with:`) when it is
    /// written, else at `anchor`, the key that asked for the values (such as `op:`).
    fn check_params(
        &mut self,
        decls: &'static [OptionDecl],
        given: &Located,
        (container, anchor): (&str, &str),
        owner: &str,
        noun: &str,
    ) -> Option<Params> {
        let missing_at = if self.doc.spans.contains(container) { container } else { anchor };
        let mut ok = true;
        for (key, (_, value_path)) in given {
            if !decls.iter().any(|decl| decl.name == key) {
                let names: Vec<&str> = decls.iter().map(|decl| decl.name).collect();
                let hint =
                    if names.is_empty() { Some(format!("{owner} takes no {noun}s")) } else { hint_from(key, &names) };
                self.at_key(value_path, format!("unknown {noun} `{key}` for {owner}"), hint);
                ok = false;
            }
        }
        let mut params = Params::default();
        for decl in decls {
            let parsed = match given.get(decl.name) {
                Some((scalar, value_path)) => match parse_value(scalar, decl.ty) {
                    Ok(value) => value,
                    Err(mut error) => {
                        error.message = format!("{noun} `{}`: {}", decl.name, error.message);
                        self.value_error(value_path, scalar, error);
                        ok = false;
                        continue;
                    }
                },
                None => match decl.default {
                    Some(default) => match parse_value(&Scalar::Text(default.into()), decl.ty) {
                        Ok(value) => value,
                        Err(error) => {
                            self.at_value(
                                container,
                                format!("built-in default of `{}` does not parse: {}", decl.name, error.message),
                                None,
                            );
                            ok = false;
                            continue;
                        }
                    },
                    None => {
                        // Without the container (`with:`) the fix must add it too.
                        let entry = match container.rsplit('.').next() {
                            Some(key) if missing_at != container => format!("{key}: {{ {}: … }}", decl.name),
                            _ => format!("{}: …", decl.name),
                        };
                        self.at_value(
                            missing_at,
                            format!("{owner} needs the {noun} `{}`", decl.name),
                            Some(format!("add `{entry}`; it takes a {}", decl.ty.describe())),
                        );
                        ok = false;
                        continue;
                    }
                },
            };
            params.0.insert(decl.name.to_owned(), parsed);
        }
        ok.then_some(params)
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
        if raw.concurrency.is_some() && raw.rate.is_some() {
            self.at_key(
                &format!("{load_path}.rate"),
                "`load` sets both `concurrency` and `rate`",
                Some("closed loop takes `concurrency`; open loop takes `rate` and `max_in_flight`".into()),
            );
            return None;
        }
        let count = |this: &mut Self, value: &Option<Scalar>, key: &str, default: u64| -> Option<u64> {
            let Some(raw) = value else { return Some(default) };
            let value_path = format!("{load_path}.{key}");
            let scalar = this.substitute(raw, &value_path, scope)?;
            match values::count(&scalar) {
                Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Some(n),
                Ok(n) => {
                    this.at_value(&value_path, format!("`{key}` is {n}"), Some(format!("use 1 to {MAX_CONCURRENCY}")));
                    None
                }
                Err(error) => {
                    this.value_error(&value_path, &scalar, error);
                    None
                }
            }
        };
        match &raw.rate {
            Some(rate) => {
                let rate_path = format!("{load_path}.rate");
                let scalar = self.substitute(rate, &rate_path, scope)?;
                let max_in_flight = count(self, &raw.max_in_flight, "max_in_flight", u64::from(DEFAULT_MAX_IN_FLIGHT));
                match values::rate(&scalar) {
                    Ok(rate) => Some(Load::Open { rate, max_in_flight: max_in_flight? as u32 }),
                    Err(error) => {
                        self.value_error(&rate_path, &scalar, error);
                        None
                    }
                }
            }
            None => {
                if raw.max_in_flight.is_some() {
                    self.at_key(
                        &format!("{load_path}.max_in_flight"),
                        "`max_in_flight` applies only to open loop",
                        Some("add `rate:` (open loop) or remove `max_in_flight`".into()),
                    );
                    return None;
                }
                count(self, &raw.concurrency, "concurrency", 1).map(|n| Load::Closed { concurrency: n as u32 })
            }
        }
    }

    fn target(
        &mut self,
        raw: &str,
        path: &str,
        scope: &Scope,
        decl: &EngineDecl,
        op: &OpDecl,
        metrics: &[&'static MetricDecl],
    ) -> Option<Target> {
        let substituted = match scope.substitute_located(raw) {
            Ok(substituted) => substituted,
            Err(error) => {
                self.template_error(path, raw, error);
                return None;
            }
        };
        let text = substituted.text.clone();
        // Errors are found in the substituted text but shown in the source,
        // so their ranges are mapped back through the substitution.
        let report = |this: &mut Self, error: crate::quantity::ParseError| {
            let range = substituted.raw_range(error.offset, error.offset + error.len);
            this.within(path, raw, range, error.message, error.hint);
        };
        let comparison = match expr::parse_comparison(&text) {
            Ok(comparison) => comparison,
            Err(error) => {
                report(self, error);
                return None;
            }
        };
        let mut resolve = |metric: &MetricRef| resolve_metric(metric, decl, op, metrics);
        if let Err(error) = expr::check_comparison(&comparison, &mut resolve) {
            report(self, error);
            return None;
        }
        Some(Target { text, comparison })
    }

    fn experiment(
        &mut self,
        raw: &crate::dsl::raw::RawExperiment,
        path: &str,
        workloads: &HashMap<String, WorkloadRef<'a>>,
        instances: &HashMap<String, Instance>,
        scope: &Scope,
        seed: u64,
    ) -> Option<(ExperimentSpec, Vec<RunSpec>)> {
        let Some(workload) = workloads.get(&raw.workload) else {
            let names: Vec<&str> = workloads.keys().map(String::as_str).collect();
            self.at_value(
                &format!("{path}.workload"),
                format!("experiment `{}` names no workload `{}`", raw.name, raw.workload),
                hint_from(&raw.workload, &names),
            );
            return None;
        };
        if raw.variants.is_empty() {
            // Points at `variants: {}` when written, else at the experiment.
            self.at_key(
                &format!("{path}.variants"),
                format!("experiment `{}` has no variants", raw.name),
                Some(
                    "add `variants:` with at least one named variant, e.g. `flash: { engine: { attention: flash } }`"
                        .into(),
                ),
            );
        }
        if raw.variants.contains_key("baseline") {
            self.at_key(
                &format!("{path}.variants.baseline"),
                "a variant cannot be called `baseline`",
                Some("the baseline arm is set by `baseline:`".into()),
            );
        }
        let metric = self.experiment_metric(raw, path, workload, instances);
        let part = self.experiment_part(raw, path, workload, instances);
        let rounds = match &raw.rounds {
            None => Some(DEFAULT_ROUNDS),
            Some(value) => {
                let value_path = format!("{path}.rounds");
                match values::count(value) {
                    Ok(n) if (2..=1000).contains(&n) => Some(n as u32),
                    Ok(n) => {
                        self.at_value(
                            &value_path,
                            format!("`rounds` is {n}"),
                            Some("use 2 to 1000 rounds; statistics need at least two".into()),
                        );
                        None
                    }
                    Err(error) => {
                        self.value_error(&value_path, value, error);
                        None
                    }
                }
            }
        };
        let effort_days = raw.effort.as_ref().and_then(|value| self.effort(value, &format!("{path}.effort")));
        let weight = raw.weight.as_ref().and_then(|value| {
            match parse_value(value, engines::ValueType::Number { min: 0.0, max: 1.0e6 }) {
                Ok(engines::Value::Number(weight)) if weight > 0.0 => Some(weight),
                _ => {
                    self.at_value(
                        &format!("{path}.weight"),
                        format!("weight `{value}` is not a positive number"),
                        Some("say what one per cent of this metric is worth against the others, such as 2".into()),
                    );
                    None
                }
            }
        });
        let complexity = raw.complexity.as_ref().and_then(|value| match values::count(value) {
            Ok(n) if (1..=5).contains(&n) => Some(n as u8),
            _ => {
                self.at_value(
                    &format!("{path}.complexity"),
                    format!("complexity `{value}` is not 1 to 5"),
                    Some("rate complexity from 1 (trivial) to 5 (hard)".into()),
                );
                None
            }
        });
        let risk = match raw.risk.as_deref() {
            None | Some("medium") => Risk::Medium,
            Some("low") => Risk::Low,
            Some("high") => Risk::High,
            Some(other) => {
                self.at_value(
                    &format!("{path}.risk"),
                    format!("unknown risk `{other}`"),
                    hint_from(other, &["low", "medium", "high"]),
                );
                Risk::Medium
            }
        };
        let state = match raw.state.as_deref() {
            None | Some("fresh") => ArmState::Fresh,
            Some("shared") => ArmState::Shared,
            Some(other) => {
                let hint = did_you_mean(other, ["fresh", "shared"]).or_else(|| {
                    Some(
                        "`fresh` gives every arm of every round its own engine instance; \
                         `shared` keeps one across rounds"
                            .into(),
                    )
                });
                self.at_value(&format!("{path}.state"), format!("unknown state `{other}`"), hint);
                ArmState::Fresh
            }
        };

        let mut arms: Vec<(String, RawOverrideRef)> =
            vec![("baseline".into(), RawOverrideRef::of(&raw.baseline, format!("{path}.baseline")))];
        for (name, variant) in &raw.variants {
            arms.push((name.clone(), RawOverrideRef::of(variant, format!("{path}.variants.{name}"))));
        }
        let rounds = rounds?;
        let runs_here = matrix_points(workload.raw)
            .and_then(|points| points.checked_mul(u64::from(rounds)))
            .and_then(|runs| runs.checked_mul(arms.len() as u64));
        if !self.count_runs(runs_here, path, &format!("experiment `{}`", raw.name)) {
            return None;
        }
        let combinations = self.matrix(workload.raw, &workload.path, scope);
        let order = ArmOrder::new(seed, &raw.name, arms.len());
        let mut runs = Vec::new();
        let errors_before = self.errors.len();
        for combination in &combinations {
            for round in 1..=rounds {
                for ((arm, overrides), position) in order.round(round).into_iter().map(|index| &arms[index]).zip(1..) {
                    let Some(mut run) =
                        self.workload_run(workload.raw, &workload.path, instances, combination, overrides, seed)
                    else {
                        continue;
                    };
                    let id = format!("{}:{arm}#{round}{}", raw.name, matrix_suffix(&combination.values));
                    run.seed = derive_seed(seed, &id);
                    run.id = id;
                    run.phase = "experiments".into();
                    run.targets.clear();
                    // Profilers perturb what they watch (the heap counters
                    // contend on every allocation): arms are measured bare.
                    run.profile = Profiling::default();
                    run.metrics.retain(|metric| !catalog::is_profile_metric(metric.name));
                    run.arm = Some(ArmRef { experiment: raw.name.clone(), arm: arm.clone(), round, position });
                    runs.push(run);
                }
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        let spec = ExperimentSpec {
            name: raw.name.clone(),
            workload: raw.workload.clone(),
            metric: metric?,
            arms: arms.into_iter().map(|(name, _)| name).collect(),
            rounds,
            state,
            effort_days,
            complexity,
            weight: weight.unwrap_or(1.0),
            risk,
            rationale: raw.rationale.clone(),
            part: part?,
        };
        Some((spec, runs))
    }

    /// Checks `part:`: a time share of the workload's operation.
    fn experiment_part(
        &mut self,
        raw: &crate::dsl::raw::RawExperiment,
        path: &str,
        workload: &WorkloadRef,
        instances: &HashMap<String, Instance>,
    ) -> Option<Option<String>> {
        let Some(part) = &raw.part else { return Some(None) };
        let instance = instances.get(&workload.raw.engine)?;
        let op = instance.decl.op(&workload.raw.op)?;
        let shares: Vec<&str> =
            instance.decl.metrics_of(op).iter().filter(|m| m.part_of.is_some()).map(|m| m.name).collect();
        if shares.contains(&part.as_str()) {
            return Some(Some(part.clone()));
        }
        let hint = if shares.is_empty() {
            Some(format!(
                "operation `{}.{}` reports no time shares; leave `part` out to project the whole operation",
                instance.kind, op.name
            ))
        } else {
            hint_from(part, &shares).or_else(|| Some(format!("one of {}", shares.join(", "))))
        };
        self.at_value(
            &format!("{path}.part"),
            format!("`{part}` is not a time share of operation `{}.{}`", instance.kind, op.name),
            hint,
        );
        None
    }

    fn experiment_metric(
        &mut self,
        raw: &crate::dsl::raw::RawExperiment,
        path: &str,
        workload: &WorkloadRef,
        instances: &HashMap<String, Instance>,
    ) -> Option<MetricRef> {
        let metric_path = format!("{path}.metric");
        let parsed = match expr::parse_expr(&raw.metric) {
            Ok(Expr::Metric(metric, _)) => metric,
            Ok(_) => {
                self.at_value(
                    &metric_path,
                    format!("`{}` is not a metric reference", raw.metric),
                    Some("name one figure, such as `ttft.p99` or `latency.mean`".into()),
                );
                return None;
            }
            Err(error) => {
                self.within(
                    &metric_path,
                    &raw.metric,
                    (error.offset, error.offset + error.len),
                    error.message,
                    error.hint,
                );
                return None;
            }
        };
        let instance = instances.get(&workload.raw.engine)?;
        let op = instance.decl.op(&workload.raw.op)?;
        let mut metrics = instance.decl.metrics_of(op);
        let load = workload.raw.load.as_ref().or(self.doc.raw.defaults.load.as_ref());
        if load.is_some_and(|load| load.rate.is_some()) {
            metrics.extend(catalog::OPEN_LOOP_METRICS);
        }
        match resolve_metric(&parsed, instance.decl, op, &metrics) {
            Ok(_) => Some(parsed),
            Err((message, hint)) => {
                self.at_value(&metric_path, message, hint);
                None
            }
        }
    }

    /// Effort in working days: `3d`, `2w` (5 days a week), `4h` (8 hours a day) or a plain number of days.
    fn effort(&mut self, value: &Scalar, path: &str) -> Option<f64> {
        let text = value.to_string();
        let trimmed = text.trim();
        let (number, per_unit) = match trimmed.char_indices().last() {
            Some((at, 'd')) => (&trimmed[..at], 1.0),
            Some((at, 'w')) => (&trimmed[..at], 5.0),
            Some((at, 'h')) => (&trimmed[..at], 1.0 / 8.0),
            _ => (trimmed, 1.0),
        };
        match number.trim().parse::<f64>() {
            Ok(n) if n > 0.0 && n.is_finite() => Some(n * per_unit),
            _ => {
                self.at_value(
                    path,
                    format!("effort `{text}` is not a positive amount of work"),
                    Some("write days, weeks or hours, such as `3d`, `2w` or `4h`".into()),
                );
                None
            }
        }
    }

    fn roadmap(&mut self) -> RoadmapSpec {
        let mut spec = RoadmapSpec::default();
        let Some(raw) = &self.doc.raw.roadmap else { return spec };
        if let Some(start) = &raw.start {
            match chrono::NaiveDate::parse_from_str(start, "%Y-%m-%d") {
                Ok(date) => spec.start = Some(date),
                Err(_) => self.at_value(
                    "roadmap.start",
                    format!("`{start}` is not a date"),
                    Some("write it as YYYY-MM-DD, such as 2026-01-05".into()),
                ),
            }
        }
        if let Some(team) = &raw.team {
            match values::count(team) {
                Ok(n) if (1..=1000).contains(&n) => spec.team = n as u32,
                _ => self.at_value(
                    "roadmap.team",
                    format!("team `{team}` is not a number of engineers"),
                    Some("write a whole number of at least 1".into()),
                ),
            }
        }
        if let Some(probabilities) = &raw.success_probability {
            for (key, value) in probabilities {
                let path = format!("roadmap.success_probability.{key}");
                let slot = match key.as_str() {
                    "low" => 0,
                    "medium" => 1,
                    "high" => 2,
                    other => {
                        self.at_key(
                            &path,
                            format!("unknown risk `{other}`"),
                            hint_from(other, &["low", "medium", "high"]),
                        );
                        continue;
                    }
                };
                match parse_value(value, engines::ValueType::Number { min: 0.0, max: 1.0 }) {
                    Ok(engines::Value::Number(p)) => spec.success_probability[slot] = p,
                    _ => self.at_value(
                        &path,
                        format!("`{value}` is not a probability"),
                        Some("write a number from 0 to 1, or a percentage such as 70%".into()),
                    ),
                }
            }
        }
        spec
    }

    fn keep_only(&mut self, plan: &mut Plan, only: &str) {
        let matches = |run: &RunSpec| {
            run.workload == only || run.phase == only || run.arm.as_ref().is_some_and(|arm| arm.experiment == only)
        };
        if !plan.runs.iter().any(matches) {
            let mut names: Vec<&str> = self
                .doc
                .raw
                .phases
                .iter()
                .flat_map(|p| std::iter::once(p.name.as_str()).chain(p.workloads.iter().map(|w| w.name.as_str())))
                .collect();
            names.extend(self.doc.raw.experiments.iter().map(|e| e.name.as_str()));
            let hint =
                did_you_mean(only, names.iter().copied()).or_else(|| Some(format!("names here: {}", names.join(", "))));
            self.push(
                Diagnostic::new(
                    &self.doc.file,
                    "",
                    format!("`--only {only}` matches no phase, workload or experiment"),
                )
                .with_hint(hint),
            );
            return;
        }
        plan.runs.retain(matches);
        plan.experiments.retain(|experiment| {
            plan.runs.iter().any(|run| run.arm.as_ref().is_some_and(|arm| arm.experiment == experiment.name))
        });
    }
}

/// The dimension of a metric reference, or why it is not valid for this operation.
fn resolve_metric(
    metric: &MetricRef,
    decl: &EngineDecl,
    op: &OpDecl,
    metrics: &[&'static MetricDecl],
) -> Result<Dim, (String, Option<String>)> {
    let Some(found) = metrics.iter().find(|m| m.name == metric.metric) else {
        if catalog::is_open_loop_metric(&metric.metric) {
            return Err((
                format!("`{}` is recorded only in open loop; this workload runs closed loop", metric.metric),
                Some("give the workload an arrival rate, such as `load: { rate: 1000/s }`".into()),
            ));
        }
        if decl.metrics.iter().any(|m| m.name == metric.metric) {
            return Err((
                format!("operation `{}.{}` does not record `{}`", decl.kind, op.name, metric.metric),
                Some(format!("it records {}", names_of(metrics))),
            ));
        }
        let names: Vec<&str> = metrics.iter().map(|m| m.name).collect();
        let hint = did_you_mean(&metric.metric, names.iter().copied())
            .or_else(|| Some(format!("`{}.{}` records {}", decl.kind, op.name, names_of(metrics))));
        return Err((format!("unknown metric `{}`", metric.metric), hint));
    };
    if found.kind == MetricKind::Scalar && metric.stat.is_some_and(|stat| stat != Stat::Mean) {
        return Err((
            format!("`{}` is one value per run; it has no `{}`", found.name, metric.stat.map_or("", Stat::name)),
            Some(format!("write `{}` alone", found.name)),
        ));
    }
    Ok(found.dim)
}

fn names_of(metrics: &[&MetricDecl]) -> String {
    metrics.iter().map(|m| format!("`{}`", m.name)).collect::<Vec<_>>().join(", ")
}

/// How many points a workload's matrix has (1 without a matrix), counted
/// without expanding it; `None` when the count passes `u64`.
fn matrix_points(workload: &RawWorkload) -> Option<u64> {
    workload.matrix.values().try_fold(1_u64, |points, values| points.checked_mul(values.len() as u64))
}

/// One matrix point: its scope and its values as text.
struct Combination {
    scope: Scope,
    values: IndexMap<String, String>,
}

/// An experiment arm's overrides and where they were written.
struct RawOverrideRef<'r> {
    engine: Option<&'r IndexMap<String, Scalar>>,
    with: Option<&'r IndexMap<String, Scalar>>,
    path: String,
}

impl<'r> RawOverrideRef<'r> {
    fn none() -> Self {
        RawOverrideRef { engine: None, with: None, path: String::new() }
    }

    fn of(raw: &'r RawOverride, path: String) -> Self {
        RawOverrideRef { engine: Some(&raw.engine), with: Some(&raw.with), path }
    }
}

/// A `--var` value typed as YAML would type it: integer, number, boolean or text.
fn command_line_scalar(text: &str) -> Scalar {
    if let Ok(value) = text.parse::<i64>() {
        Scalar::Int(value)
    } else if let Ok(value) = text.parse::<f64>() {
        Scalar::Float(value)
    } else if let Ok(value) = text.parse::<bool>() {
        Scalar::Bool(value)
    } else {
        Scalar::Text(text.to_owned())
    }
}

fn matrix_suffix(values: &IndexMap<String, String>) -> String {
    if values.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("[{}]", pairs.join(","))
}

/// Applies `--smoke`: a few iterations, one warm-up operation, two rounds.
fn shrink(plan: &mut Plan) {
    for run in &mut plan.runs {
        run.stop = match run.stop {
            Stop::Iterations(n) => Stop::Iterations(n.min(SMOKE_ITERATIONS)),
            Stop::Duration(_) => Stop::Iterations(SMOKE_ITERATIONS),
        };
        if run.warmup != Warmup::None {
            run.warmup = Warmup::Count(1);
        }
    }
    let keep_rounds = 2;
    plan.runs.retain(|run| run.arm.as_ref().is_none_or(|arm| arm.round <= keep_rounds));
    for experiment in &mut plan.experiments {
        experiment.rounds = experiment.rounds.min(keep_rounds);
    }
}
