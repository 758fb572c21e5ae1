//! Experiments expanded into interleaved rounds of arms.
//!
//! An experiment names a phase workload, a metric of it and variants; the
//! baseline and each variant become arms whose overrides are applied to the
//! workload at every matrix point, and every round runs all arms in an order
//! counterbalanced across rounds, the runs counted against the plan's limit
//! first. Arms carry no targets or profilers. Also checked here: rounds,
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
use crate::plan::{ArmRef, ArmState, ExperimentSpec, Profiling, Risk, RunSpec, DEFAULT_ROUNDS};

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
}
