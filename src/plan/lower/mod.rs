//! Lowering a [`Document`] into a [`Plan`], collecting every diagnostic.
//!
//! This module holds the entry [`build`] and the shared `Lowering` context:
//! it checks the scenario's name and its `vars:` against `--var`, assembles the
//! plan from the engines, phases, experiments and roadmap that its child
//! modules lower, then applies `--only` and `--smoke`. Every mistake goes
//! through the context's `at_value`/`at_key`/`within` helpers, which locate
//! it in the source and report each (path, message) pair once, in the order
//! it was found.

mod engines;
mod experiments;
mod params;
mod phases;
mod roadmap;
mod targets;
mod workflows;
mod workloads;

use std::collections::HashSet;

use indexmap::IndexMap;

use super::template::{Scope, TemplateError};
use super::values::ValueError;
use super::{repeat, ExperimentSpec, Plan, PlanOptions, RunSpec, ScenarioInfo, Stop, Warmup, SMOKE_ITERATIONS};
use crate::diagnostic::{did_you_mean, hint_from, Diagnostic, Diagnostics};
use crate::dsl::{Document, Scalar};

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

/// One lowering in progress: the document, and the diagnostics found so far.
struct Lowering<'a> {
    doc: &'a Document,
    errors: Vec<Diagnostic>,
    seen: HashSet<(String, String)>,
    /// Runs counted so far, before expanding them, against [`MAX_RUNS`](super::MAX_RUNS);
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
