//! Phases and their workloads, expanded over matrix points.
//!
//! Checks that there are phases, that phase and workload names are unique,
//! and counts each workload's runs (matrix points × `--repeat`) against
//! [`MAX_RUNS`] before expanding anything. A matrix is expanded in cartesian
//! order, last key fastest, each point's values in scope as variables and
//! named in the run id (`name[c=4]`). Experiments reuse the matrix expansion
//! and the run count for their arms.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use super::engines::Instance;
use super::workloads::RawOverrideRef;
use super::Lowering;
use crate::dsl::raw::RawWorkload;
use crate::plan::template::Scope;
use crate::plan::{RunSpec, MAX_RUNS};

/// A workload found in the phases, for experiments to refer to.
pub(super) struct WorkloadRef<'a> {
    pub(super) raw: &'a RawWorkload,
    pub(super) path: String,
}

impl<'a> Lowering<'a> {
    pub(super) fn phases(
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
    pub(super) fn count_runs(&mut self, runs: Option<u64>, path: &str, what: &str) -> bool {
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
    pub(super) fn matrix(&mut self, workload: &RawWorkload, path: &str, scope: &Scope) -> Vec<Combination> {
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
}

/// How many points a workload's matrix has (1 without a matrix), counted
/// without expanding it; `None` when the count passes `u64`.
pub(super) fn matrix_points(workload: &RawWorkload) -> Option<u64> {
    workload.matrix.values().try_fold(1_u64, |points, values| points.checked_mul(values.len() as u64))
}

/// One matrix point: its scope and its values as text.
pub(super) struct Combination {
    pub(super) scope: Scope,
    pub(super) values: IndexMap<String, String>,
}

/// A run id's suffix naming its matrix point, such as `[c=4]`; empty without a matrix.
pub(super) fn matrix_suffix(values: &IndexMap<String, String>) -> String {
    if values.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("[{}]", pairs.join(","))
}

#[cfg(test)]
mod tests {
    use crate::plan::lower::tests::{at, error_of, errors_of, lower, plan_of, scenario, workload};
    use crate::plan::{Load, PlanOptions};

    #[test]
    fn a_matrix_expands_in_cartesian_order_last_key_fastest() {
        let plan = plan_of(&workload(&[
            "engine: cal",
            "op: noop",
            "matrix: { c: [1, 2], mode: [a, b, c] }",
            "load: { concurrency: \"${c}\" }",
        ]));
        let ids: Vec<&str> = plan.runs.iter().map(|run| run.id.as_str()).collect();
        assert_eq!(
            ids,
            ["w[c=1,mode=a]", "w[c=1,mode=b]", "w[c=1,mode=c]", "w[c=2,mode=a]", "w[c=2,mode=b]", "w[c=2,mode=c]"]
        );
        let last = &plan.runs[5];
        assert_eq!(last.matrix.get("c").map(String::as_str), Some("2"));
        assert_eq!(last.matrix.get("mode").map(String::as_str), Some("c"));
        assert_eq!(last.load, Load::Closed { concurrency: 2 });
        assert_eq!(plan.runs[0].load, Load::Closed { concurrency: 1 });
        assert!(plan.runs.iter().all(|run| run.phase == "p" && run.workload == "w"));
        let mut seeds: Vec<u64> = plan.runs.iter().map(|run| run.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        assert_eq!(seeds.len(), 6, "every run has its own seed");
    }

    #[test]
    fn repeat_plans_the_phase_runs_in_passes() {
        let yaml = workload(&["engine: cal", "op: noop", "matrix: { c: [1, 2] }"]);
        let options = PlanOptions { repeat: 2, ..PlanOptions::default() };
        let plan = lower(&yaml, &options).unwrap();
        let runs: Vec<(&str, Option<u32>)> = plan.runs.iter().map(|run| (run.id.as_str(), run.repetition)).collect();
        assert_eq!(runs, [("w[c=1]@1", Some(1)), ("w[c=2]@1", Some(1)), ("w[c=1]@2", Some(2)), ("w[c=2]@2", Some(2))]);
    }

    #[test]
    fn an_empty_matrix_list_is_refused() {
        let diagnostic = error_of(&workload(&["engine: cal", "op: noop", "matrix: { c: [] }"]));
        assert_eq!(diagnostic.message, "matrix variable `c` has no values");
        assert_eq!((diagnostic.path.as_str(), at(&diagnostic)), ("phases[0].workloads[0].matrix.c", (10, 22)));
        assert_eq!(diagnostic.hint.as_deref(), Some("give it a list such as `c: [1, 2, 4]`"));
    }

    #[test]
    fn the_run_limit_is_counted_before_expanding() {
        let values: Vec<String> = (0..101).map(|n| n.to_string()).collect();
        let matrix = format!("matrix: {{ a: [{0}], b: [{0}] }}", values.join(", "));
        let diagnostic = error_of(&workload(&["engine: cal", "op: noop", &matrix]));
        assert_eq!(diagnostic.message, "workload `w` makes 10201 runs; a plan holds at most 10000");
        assert_eq!((diagnostic.path.as_str(), at(&diagnostic)), ("phases[0].workloads[0].matrix", (10, 9)));

        // `--repeat` multiplies the count: 5,001 points twice over is too many.
        let values: Vec<String> = (0..5001).map(|n| n.to_string()).collect();
        let yaml = workload(&["engine: cal", "op: noop", &format!("matrix: {{ a: [{}] }}", values.join(", "))]);
        assert_eq!(plan_of(&yaml).runs.len(), 5001);
        let options = PlanOptions { repeat: 2, ..PlanOptions::default() };
        let errors = lower(&yaml, &options).unwrap_err().0;
        assert_eq!(errors[0].message, "workload `w` makes 10002 runs; a plan holds at most 10000");
    }

    #[test]
    fn phases_and_workload_names_must_be_unique_and_phases_not_empty() {
        let errors = errors_of(&scenario(&[
            "scenario: t",
            "engines: { cal: { kind: calibrate } }",
            "phases:",
            "  - name: p",
            "    workloads: [{ name: w, engine: cal, op: noop }]",
            "  - name: p",
            "    workloads: [{ name: w, engine: cal, op: noop }]",
            "  - name: q",
            "    workloads: []",
        ]));
        let found: Vec<(&str, &str)> = errors.iter().map(|d| (d.path.as_str(), d.message.as_str())).collect();
        assert_eq!(
            found,
            [
                ("phases[1].name", "phase `p` is defined twice"),
                ("phases[1].workloads[0].name", "workload `w` is defined twice"),
                ("phases[2].workloads", "phase `q` has no workloads"),
            ]
        );

        let diagnostic = error_of(&scenario(&["scenario: t", "phases: []"]));
        assert_eq!(diagnostic.message, "the scenario has no phases");
        assert_eq!(at(&diagnostic), (2, 1));
    }
}
