//! Experiments expanded into interleaved rounds of arms.
//!
//! An experiment names a phase workload, a metric of it and variants; the
//! baseline and each variant become arms whose overrides are applied to the
//! workload at every matrix point, and every round runs all arms in an order
//! counterbalanced across rounds, the runs counted against the plan's limit
//! first. Arms carry no targets (but a search's condition) or profilers. Also checked here: rounds,
//! effort, weight, complexity, risk, state and `part:`.

use std::collections::HashMap;

use super::engines::Instance;
use super::phases::{matrix_points, matrix_suffix, WorkloadRef};
use super::targets::resolve_metric;
use super::workloads::RawOverrideRef;
use super::Lowering;
use crate::diagnostic::{did_you_mean, hint_from};
use crate::dsl::Scalar;
use crate::engines::{self, catalog};
use crate::expr::{self, Expr, MetricRef};
use crate::plan::order::ArmOrder;
use crate::plan::seed::derive_seed;
use crate::plan::template::Scope;
use crate::plan::values::{self, parse_value};
use crate::plan::{ArmRef, ArmState, ExperimentSpec, Load, Profiling, Risk, RunSpec, DEFAULT_ROUNDS};

impl<'a> Lowering<'a> {
    pub(super) fn experiment(
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
                    // A search's other targets are the condition it searches by.
                    let searches = matches!(run.load, Load::Search(_));
                    run.targets.retain(|target| searches && !target.names_capacity());
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
        if let Some(load) = load {
            match &load.search {
                Some(search) if search.rate.is_none() => metrics.extend(catalog::CONCURRENCY_SEARCH_METRICS),
                Some(_) => {
                    metrics.extend(catalog::OPEN_LOOP_METRICS);
                    metrics.extend(catalog::RATE_SEARCH_METRICS);
                }
                None if load.rate.is_some() => metrics.extend(catalog::OPEN_LOOP_METRICS),
                None => {}
            }
        }
        if !workload.raw.slo.is_empty() {
            metrics.extend(catalog::SLO_METRICS);
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::engines::Value;
    use crate::plan::lower::tests::{at, error_of, plan_of, scenario, workload};
    use crate::plan::{ArmState, Profiling, Risk, RunSpec};

    /// Workload `w` (a 2 ms sleep with a target and a profiler, `matrix` if
    /// given) and, from line 12, an experiment `e` on it with `settings`.
    fn experiment(matrix: &str, settings: &[&str]) -> String {
        let mut body = vec!["engine: cal", "op: sleep", "with: { duration: 2ms }", "targets: [\"latency.p50 < 3ms\"]"];
        if !matrix.is_empty() {
            body.push(matrix);
        }
        let mut text = workload(&body);
        let mut tail = vec!["experiments:", "  - name: e", "    workload: w", "    metric: latency.p50"];
        tail.extend(settings);
        text.push_str(&scenario(&tail));
        text
    }

    fn arm_runs(runs: &[RunSpec]) -> Vec<(String, &str, u32, u32)> {
        runs.iter()
            .filter_map(|run| run.arm.as_ref().map(|arm| (run.id.clone(), arm.arm.as_str(), arm.round, arm.position)))
            .collect()
    }

    #[test]
    fn arms_are_interleaved_in_rounds_their_order_alternating() {
        let plan = plan_of(&experiment(
            "",
            &["    rounds: 4", "    variants: { short: { with: { duration: 1ms }, engine: { fail_every: 9 } } }"],
        ));
        assert_eq!(plan.runs[0].id, "w");
        let arms = &plan.runs[1..];
        assert_eq!(arms.len(), 8);
        let found = arm_runs(arms);
        let first = [found[0].1, found[1].1];
        for (index, (id, arm, round, position)) in found.iter().enumerate() {
            let round_expected = index as u32 / 2 + 1;
            assert_eq!((*round, *position), (round_expected, index as u32 % 2 + 1), "{id}");
            assert_eq!(id, &format!("e:{arm}#{round}"));
            // AB BA AB BA: the order turns round by round.
            let expected_arm = if round_expected % 2 == 1 { first[index % 2] } else { first[1 - index % 2] };
            assert_eq!(*arm, expected_arm, "{id}");
        }
        let mut firsts = first;
        firsts.sort_unstable();
        assert_eq!(firsts, ["baseline", "short"]);

        for run in arms {
            let short = run.arm.as_ref().is_some_and(|arm| arm.arm == "short");
            let (nap, fail_every) = if short { (1, 9) } else { (2, 0) };
            assert_eq!(run.params.get("duration"), Some(&Value::Duration(Duration::from_millis(nap))), "{}", run.id);
            assert_eq!(run.engine.options.get("fail_every"), Some(&Value::Count(fail_every)), "{}", run.id);
            assert_eq!(run.phase, "experiments");
            assert!(run.targets.is_empty(), "arms are judged by the experiment, not by targets");
        }
        let spec = &plan.experiments[0];
        assert_eq!((spec.name.as_str(), spec.workload.as_str(), spec.rounds), ("e", "w", 4));
        assert_eq!(spec.arms, ["baseline", "short"]);
        assert_eq!(spec.metric.to_string(), "latency.p50");
    }

    #[test]
    fn every_matrix_point_gets_its_own_rounds() {
        let plan = plan_of(&experiment(
            "matrix: { size: [1, 2] }",
            &["    rounds: 2", "    variants: { v: { with: { duration: 1ms } } }"],
        ));
        let mut ids: Vec<String> = arm_runs(&plan.runs).into_iter().map(|(id, ..)| id).collect();
        assert_eq!(ids.len(), 2 * 2 * 2);
        assert!(ids[..4].iter().all(|id| id.ends_with("[size=1]")), "{ids:?}");
        ids.sort();
        assert_eq!(
            ids,
            [
                "e:baseline#1[size=1]",
                "e:baseline#1[size=2]",
                "e:baseline#2[size=1]",
                "e:baseline#2[size=2]",
                "e:v#1[size=1]",
                "e:v#1[size=2]",
                "e:v#2[size=1]",
                "e:v#2[size=2]"
            ]
        );
    }

    #[test]
    fn arms_are_measured_without_profilers() {
        let mut yaml = experiment("profile: memory", &["    variants: { v: {} }"]);
        yaml = yaml.replace("targets: [\"latency.p50 < 3ms\"]", "targets: [\"heap_peak < 1MiB\"]");
        let plan = plan_of(&yaml);
        assert_eq!(plan.runs[0].profile, Profiling { cpu: false, memory: true, rss: false });
        for run in &plan.runs[1..] {
            assert_eq!(run.profile, Profiling::default());
            assert!(run.metrics.iter().all(|metric| metric.name != "heap_peak"), "{}", run.id);
        }
    }

    #[test]
    fn the_settings_of_a_candidate_are_read() {
        let plan = plan_of(&experiment(
            "",
            &[
                "    variants: { v: {} }",
                "    effort: 2w",
                "    complexity: 3",
                "    weight: 2.5",
                "    risk: high",
                "    state: shared",
                "    rationale: because",
            ],
        ));
        let spec = &plan.experiments[0];
        assert_eq!(spec.rounds, crate::plan::DEFAULT_ROUNDS);
        assert_eq!((spec.effort_days, spec.complexity, spec.weight), (Some(10.0), Some(3), 2.5));
        assert_eq!((spec.risk, spec.state), (Risk::High, ArmState::Shared));
        assert_eq!((spec.rationale.as_deref(), spec.part.as_deref()), (Some("because"), None));

        let plan = plan_of(&experiment("", &["    variants: { v: {} }", "    effort: 4h"]));
        let spec = &plan.experiments[0];
        assert_eq!((spec.effort_days, spec.weight), (Some(0.5), 1.0));
        assert_eq!((spec.risk, spec.state), (Risk::Medium, ArmState::Fresh));
    }

    /// Experiment lines, then the message, path, line and column they must produce.
    type Case = (&'static [&'static str], &'static str, &'static str, (usize, usize));

    #[test]
    fn mistakes_in_an_experiment_are_refused_where_written() {
        let cases: [Case; 5] = [
            (&["    variants: {}"], "experiment `e` has no variants", "experiments[0].variants", (16, 5)),
            (
                &["    variants: { baseline: {} }"],
                "a variant cannot be called `baseline`",
                "experiments[0].variants.baseline",
                (16, 17),
            ),
            (&["    variants: { v: {} }", "    rounds: 1"], "`rounds` is 1", "experiments[0].rounds", (17, 13)),
            (&["    variants: { v: {} }", "    risk: hgih"], "unknown risk `hgih`", "experiments[0].risk", (17, 11)),
            (
                &["    variants: { v: { engine: { fail_evry: 2 } } }"],
                "unknown option `fail_evry` for engine kind `calibrate`",
                "experiments[0].variants.v.engine.fail_evry",
                (16, 32),
            ),
        ];
        for (settings, message, path, location) in cases {
            let diagnostic = error_of(&experiment("", settings));
            assert_eq!((diagnostic.message.as_str(), diagnostic.path.as_str()), (message, path));
            assert_eq!(at(&diagnostic), location, "{message}");
        }
    }

    #[test]
    fn an_experiment_names_a_workload_and_a_metric_it_records() {
        let yaml = experiment("", &["    variants: { v: {} }"]);
        let diagnostic = error_of(&yaml.replace("    workload: w\n", "    workload: ww\n"));
        assert_eq!(diagnostic.message, "experiment `e` names no workload `ww`");
        assert_eq!((diagnostic.path.as_str(), at(&diagnostic)), ("experiments[0].workload", (14, 15)));
        assert_eq!(diagnostic.hint.as_deref(), Some("did you mean `w`?"));

        let diagnostic = error_of(&yaml.replace("metric: latency.p50", "metric: latency.p50 * 2"));
        assert_eq!(diagnostic.message, "`latency.p50 * 2` is not a metric reference");

        let diagnostic = error_of(&yaml.replace("metric: latency.p50", "metric: schedule_lag.p50"));
        assert!(diagnostic.message.starts_with("`schedule_lag` is recorded only in open loop"));
        assert_eq!(diagnostic.path, "experiments[0].metric");
    }

    #[test]
    fn the_run_limit_counts_rounds_times_arms() {
        let diagnostic = error_of(&experiment(
            "",
            &[
                "    rounds: 1000",
                "    variants: { a: {}, b: {}, c: {}, d: {}, e: {}, f: {}, g: {}, h: {}, i: {}, j: {} }",
            ],
        ));
        assert_eq!(
            diagnostic.message,
            "experiment `e` makes 11000 runs after the 1 before it; a plan holds at most 10000"
        );
        assert_eq!((diagnostic.path.as_str(), at(&diagnostic)), ("experiments[0]", (13, 5)));
    }
}
