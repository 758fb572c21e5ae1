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
mod search;
mod slo;
mod targets;
mod workflows;
mod workloads;

use std::collections::HashSet;

use indexmap::IndexMap;

use super::seed::derive_seed;
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
        // From the run's id, which every shard and no other run shares.
        for run in &mut runs {
            run.schedule_seed = derive_seed(scenario.seed, &format!("arrivals of {}", run.id));
        }
        let mut plan = Plan { scenario, runs, experiments, roadmap, shard: None, smoke: options.smoke };
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dsl;
    use crate::engines::Value;
    use crate::plan::DEFAULT_ROUNDS;

    /// Rounds of an experiment that does not say.
    const ROUNDS: usize = DEFAULT_ROUNDS as usize;

    /// Joins lines into a scenario; line `n` of the text is `lines[n - 1]`.
    pub(super) fn scenario(lines: &[&str]) -> String {
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }

    /// A scenario with one `calibrate` instance `cal` and one workload `w`:
    /// `body[i]` becomes line `8 + i`, its text from column 9.
    pub(super) fn workload(body: &[&str]) -> String {
        let mut lines = vec![
            "scenario: t".to_owned(),
            "engines:".to_owned(),
            "  cal: { kind: calibrate }".to_owned(),
            "phases:".to_owned(),
            "  - name: p".to_owned(),
            "    workloads:".to_owned(),
            "      - name: w".to_owned(),
        ];
        lines.extend(body.iter().map(|line| format!("        {line}")));
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        scenario(&lines)
    }

    /// Parses `yaml` with the real parser (it must parse) and lowers it.
    pub(super) fn lower(yaml: &str, options: &PlanOptions) -> Result<Plan, Diagnostics> {
        let doc = dsl::parse("t.yaml", yaml.to_owned()).unwrap_or_else(|errors| panic!("does not parse:\n{errors}"));
        build(&doc, options)
    }

    /// The plan of `yaml` under default options; it must have no mistakes.
    pub(super) fn plan_of(yaml: &str) -> Plan {
        lower(yaml, &PlanOptions::default()).unwrap_or_else(|errors| panic!("does not lower:\n{errors}"))
    }

    /// Every diagnostic of `yaml`, in the order reported; there must be some.
    pub(super) fn errors_of(yaml: &str) -> Vec<Diagnostic> {
        match lower(yaml, &PlanOptions::default()) {
            Ok(plan) => panic!("lowered without a mistake into {} runs", plan.runs.len()),
            Err(errors) => errors.0,
        }
    }

    /// The single diagnostic of `yaml`.
    pub(super) fn error_of(yaml: &str) -> Diagnostic {
        let mut errors = errors_of(yaml);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors.remove(0)
    }

    /// A diagnostic's line and column.
    pub(super) fn at(diagnostic: &Diagnostic) -> (usize, usize) {
        (diagnostic.location.line, diagnostic.location.column)
    }

    /// Two workloads and an experiment on the first, durations everywhere
    /// so that `--smoke` has something to shrink.
    fn campaign() -> String {
        scenario(&[
            "scenario: campaign",
            "description: two workloads and an experiment",
            "seed: 7",
            "vars: { nap: 2ms }",
            "engines:",
            "  cal: { kind: calibrate }",
            "phases:",
            "  - name: timers",
            "    workloads:",
            "      - { name: sleep, engine: cal, op: sleep, with: { duration: \"${nap}\" }, duration: 1s }",
            "      - { name: spin, engine: cal, op: spin, with: { duration: 1ms }, iterations: 50, warmup: 0x }",
            "experiments:",
            "  - name: shorter",
            "    workload: sleep",
            "    metric: latency.p50",
            "    variants: { short: { with: { duration: 1ms } } }",
        ])
    }

    fn ids(plan: &Plan) -> Vec<&str> {
        plan.runs.iter().map(|run| run.id.as_str()).collect()
    }

    #[test]
    fn the_plan_names_the_scenario_and_lists_phase_runs_before_experiment_arms() {
        let plan = plan_of(&campaign());
        assert_eq!(plan.scenario.name, "campaign");
        assert_eq!(plan.scenario.description.as_deref(), Some("two workloads and an experiment"));
        assert_eq!(plan.scenario.file, "t.yaml");
        assert_eq!(plan.scenario.seed, 7);
        assert_eq!(plan.scenario.sha256.len(), 64);
        assert_eq!(&ids(&plan)[..2], ["sleep", "spin"].as_slice());
        assert!(plan.runs[2..].iter().all(|run| run.id.starts_with("shorter:") && run.arm.is_some()));
        assert_eq!(plan.runs.len(), 2 + 2 * ROUNDS);
        assert_eq!(plan.experiments.len(), 1);
        assert!(!plan.smoke);
    }

    #[test]
    fn the_seed_on_the_command_line_wins_and_changes_every_run_seed() {
        let own = plan_of(&campaign());
        let options = PlanOptions { seed: Some(8), ..PlanOptions::default() };
        let overridden = lower(&campaign(), &options).unwrap();
        assert_eq!(overridden.scenario.seed, 8);
        assert_eq!(own.runs.len(), overridden.runs.len());
        for run in &own.runs {
            let same = overridden.runs.iter().find(|other| other.id == run.id);
            assert!(same.is_some_and(|same| same.seed != run.seed), "{}", run.id);
        }
    }

    #[test]
    fn a_var_on_the_command_line_replaces_the_scenarios_value() {
        let mut options = PlanOptions::default();
        options.vars.insert("nap".into(), "5ms".into());
        let plan = lower(&campaign(), &options).unwrap();
        assert_eq!(plan.runs[0].params.get("duration"), Some(&Value::Duration(Duration::from_millis(5))));
        assert_eq!(plan.scenario.vars.get("nap").map(String::as_str), Some("5ms"));
        // Without it the scenario's own value holds.
        assert_eq!(
            plan_of(&campaign()).runs[0].params.get("duration"),
            Some(&Value::Duration(Duration::from_millis(2)))
        );
    }

    #[test]
    fn a_var_the_scenario_does_not_declare_is_refused_with_a_hint() {
        let mut options = PlanOptions::default();
        options.vars.insert("nop".into(), "1ms".into());
        let errors = lower(&campaign(), &options).unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].message, "--var nop=1ms: the scenario has no variable `nop`");
        assert_eq!(errors[0].path, "vars");
        assert_eq!(at(&errors[0]), (4, 1));
        assert_eq!(errors[0].hint.as_deref(), Some("did you mean `nap`?"));
    }

    #[test]
    fn command_line_values_are_typed_as_yaml_types_them() {
        let cases = [
            ("12", Scalar::Int(12)),
            ("-3", Scalar::Int(-3)),
            ("0.5", Scalar::Float(0.5)),
            ("true", Scalar::Bool(true)),
            ("2ms", Scalar::Text("2ms".into())),
        ];
        for (text, expected) in cases {
            assert_eq!(command_line_scalar(text), expected, "{text}");
        }
    }

    #[test]
    fn only_keeps_the_runs_of_one_workload_phase_or_experiment() {
        let only = |name: &str| PlanOptions { only: Some(name.into()), ..PlanOptions::default() };
        let plan = lower(&campaign(), &only("spin")).unwrap();
        assert_eq!(ids(&plan), ["spin"]);
        assert!(plan.experiments.is_empty());

        let plan = lower(&campaign(), &only("shorter")).unwrap();
        assert_eq!(plan.runs.len(), 2 * ROUNDS);
        assert!(plan.runs.iter().all(|run| run.phase == "experiments"));
        assert_eq!(plan.experiments.len(), 1);

        let plan = lower(&campaign(), &only("timers")).unwrap();
        assert_eq!(ids(&plan), ["sleep", "spin"]);
    }

    #[test]
    fn only_with_an_unknown_name_is_refused_with_a_hint() {
        let options = PlanOptions { only: Some("spni".into()), ..PlanOptions::default() };
        let errors = lower(&campaign(), &options).unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].message, "`--only spni` matches no phase, workload or experiment");
        assert_eq!(errors[0].path, "");
        assert_eq!(errors[0].location.line, 0);
        assert_eq!(errors[0].hint.as_deref(), Some("did you mean `spin`?"));
    }

    #[test]
    fn smoke_shrinks_every_run_and_keeps_two_rounds() {
        let options = PlanOptions { smoke: true, ..PlanOptions::default() };
        let plan = lower(&campaign(), &options).unwrap();
        assert!(plan.smoke);
        let sleep = &plan.runs[0];
        assert_eq!((sleep.stop, sleep.warmup), (Stop::Iterations(SMOKE_ITERATIONS), Warmup::Count(1)));
        let spin = &plan.runs[1];
        assert_eq!((spin.stop, spin.warmup), (Stop::Iterations(SMOKE_ITERATIONS), Warmup::None));
        assert_eq!(plan.runs.len(), 2 + 2 * 2);
        assert!(plan.runs[2..].iter().all(|run| run.arm.as_ref().is_some_and(|arm| arm.round <= 2)));
        assert_eq!(plan.experiments[0].rounds, 2);
    }

    #[test]
    fn a_blank_scenario_name_is_refused() {
        let diagnostic = error_of(&scenario(&[
            "scenario: \"  \"",
            "engines: { cal: { kind: calibrate } }",
            "phases: [{ name: p, workloads: [{ name: w, engine: cal, op: noop }] }]",
        ]));
        assert_eq!(diagnostic.message, "the scenario name is blank");
        assert_eq!((diagnostic.path.as_str(), at(&diagnostic)), ("scenario", (1, 11)));
    }

    #[test]
    fn every_mistake_is_reported_once_in_the_order_found() {
        // The unknown profiler sits in a workload of four matrix points: one
        // report, not four; the blank name comes first, the roadmap last.
        let errors = errors_of(&scenario(&[
            "scenario: \" \"",
            "engines: { cal: { kind: calibrate } }",
            "phases:",
            "  - name: p",
            "    workloads:",
            "      - { name: w, engine: cal, op: noop, matrix: { c: [1, 2, 3, 4] }, profile: heap }",
            "roadmap: { team: 0 }",
        ]));
        let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            ["the scenario name is blank", "unknown profiler `heap`", "team `0` is not a number of engineers"]
        );
    }
}
