//! The steps of a workflow operation (`engine.op -> engine.op`).
//!
//! Every step must be written `engine.op`, name an engine configured in the
//! scenario and an operation of its kind that is not a workflow itself; the
//! step runs with the engine's options and the operation's default
//! parameters, which are checked here.

use std::collections::HashMap;

use super::engines::Instance;
use super::{Located, Lowering};
use crate::diagnostic::hint_from;
use crate::engines::{OptionDecl, Params, Value, ValueType};
use crate::plan::{EngineConfig, StepSpec};

impl Lowering<'_> {
    /// The steps of a workflow parameter (`engine.op -> engine.op`): every
    /// engine must be configured in the scenario, have that operation, and
    /// the operation must run with its default parameters and not be a
    /// workflow itself.
    pub(super) fn workflow_steps(
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::engines::Value;
    use crate::plan::lower::tests::{at, error_of, plan_of, scenario};

    /// An `agents` instance `crew` and a `calibrate` instance `cal` (lines 3
    /// and 4); workload `w` runs `crew.workflow` with `steps` on line 8.
    fn workflow(steps: &str) -> String {
        scenario(&[
            "scenario: t",
            "engines:",
            "  crew: { kind: agents, workers: 2 }",
            "  cal: { kind: calibrate }",
            "phases:",
            "  - name: p",
            "    workloads:",
            &format!("      - {{ name: w, engine: crew, op: workflow, with: {{ steps: \"{steps}\" }} }}"),
        ])
    }

    #[test]
    fn steps_resolve_to_engines_and_operations_with_their_defaults() {
        let plan = plan_of(&workflow("cal.noop -> crew.cpu"));
        let steps = &plan.runs[0].steps;
        let resolved: Vec<(&str, &str, &str)> =
            steps.iter().map(|step| (step.engine.name.as_str(), step.engine.kind, step.op.as_str())).collect();
        assert_eq!(resolved, [("cal", "calibrate", "noop"), ("crew", "agents", "cpu")]);
        assert!(steps[0].params.0.is_empty());
        assert_eq!(steps[1].params.get("duration"), Some(&Value::Duration(Duration::from_micros(100))));
        assert_eq!(steps[1].engine.options.get("workers"), Some(&Value::Count(2)));
        assert_eq!(steps[0].engine.options.get("fail_every"), Some(&Value::Count(0)));
    }

    #[test]
    fn an_operation_that_is_not_a_workflow_has_no_steps() {
        let plan = plan_of(&workflow("cal.noop").replace("op: workflow, with: { steps: \"cal.noop\" }", "op: cpu"));
        assert_eq!(plan.runs[0].op, "cpu");
        assert!(plan.runs[0].steps.is_empty());
    }

    #[test]
    fn broken_steps_are_refused_at_the_steps_value() {
        let cases = [
            ("llm.generate", "step 1 names engine `llm`, which this scenario does not configure"),
            ("crew.cpu -> cal.slep", "step 2: engine kind `calibrate` has no operation `slep`"),
            ("crew.workflow", "step 1 (`crew.workflow`) is a workflow itself; workflows do not nest"),
            ("crew", "step 1 (`crew`) is not `engine.op`"),
            (" ", "`steps` names no steps"),
        ];
        for (steps, message) in cases {
            let diagnostic = error_of(&workflow(steps));
            assert_eq!(diagnostic.message, message, "{steps}");
            assert_eq!(diagnostic.path, "phases[0].workloads[0].with.steps");
            assert_eq!(at(&diagnostic).0, 8);
        }
    }

    #[test]
    fn a_step_that_needs_a_parameter_is_refused() {
        let diagnostic = error_of(&workflow("cal.sleep"));
        assert_eq!(
            diagnostic.message,
            "operation `calibrate.sleep` (a workflow step runs it with its defaults) needs the parameter `duration`"
        );
        assert_eq!(diagnostic.path, "phases[0].workloads[0].with.steps");
    }
}
