//! Targets and metric references checked against what a run records.
//!
//! A target is substituted, parsed as a comparison and unit-checked, its
//! errors mapped back to the source text. A metric reference must name a
//! metric the operation records: an open-loop metric on a closed-loop
//! workload, a metric of another operation, or an unknown name is refused
//! with a hint, as is a statistic of a one-value-per-run metric.

use super::Lowering;
use crate::diagnostic::did_you_mean;
use crate::engines::{catalog, EngineDecl, MetricDecl, MetricKind, OpDecl};
use crate::expr::{self, MetricRef, Stat};
use crate::plan::template::Scope;
use crate::plan::Target;
use crate::quantity::Dim;

impl Lowering<'_> {
    pub(super) fn target(
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
}

/// The dimension of a metric reference, or why it is not valid for this operation.
pub(super) fn resolve_metric(
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
        if catalog::is_slo_metric(&metric.metric) {
            return Err((
                format!("`{}` is recorded only for a workload with an `slo:`", metric.metric),
                Some("state the bounds an operation must meet to count, such as `slo: { latency: 10ms }`".into()),
            ));
        }
        if catalog::is_search_metric(&metric.metric) {
            return Err((
                format!("`{}` is measured only by a capacity search", metric.metric),
                Some("search a range of load for it, such as `load: { search: { rate: [10/s, 20000/s] } }`".into()),
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

#[cfg(test)]
mod tests {
    use crate::plan::lower::tests::{at, error_of, plan_of, scenario, workload};

    /// A sleep workload whose targets are `targets`, written on line 11.
    fn with_targets(targets: &str) -> String {
        workload(&["engine: cal", "op: sleep", "with: { duration: 1ms }", &format!("targets: {targets}")])
    }

    #[test]
    fn targets_are_parsed_after_substitution() {
        let plan = plan_of(&scenario(&[
            "scenario: t",
            "vars: { m: latency, limit: 5ms }",
            "engines: { cal: { kind: calibrate } }",
            "phases:",
            "  - name: p",
            "    workloads:",
            "      - name: w",
            "        engine: cal",
            "        op: sleep",
            "        with: { duration: 1ms }",
            "        targets: [\"${m}.p99 < ${limit}\", \"throughput > 100/s\", \"overshoot.p50 < 1ms\"]",
        ]));
        let texts: Vec<&str> = plan.runs[0].targets.iter().map(|target| target.text.as_str()).collect();
        assert_eq!(texts, ["latency.p99 < 5ms", "throughput > 100/s", "overshoot.p50 < 1ms"]);
    }

    #[test]
    fn a_unit_mismatch_is_refused_at_the_value() {
        let diagnostic = error_of(&with_targets("[\"latency.p99 < 4KiB\"]"));
        assert_eq!(diagnostic.message, "`latency.p99` is a duration but `4KiB` is a size");
        assert_eq!(diagnostic.path, "phases[0].workloads[0].targets[0]");
        assert_eq!(at(&diagnostic), (11, 34));
        assert!(diagnostic.hint.as_deref().is_some_and(|hint| hint.contains("compare against a duration")));
    }

    #[test]
    fn metrics_the_run_does_not_record_are_refused_with_the_reason() {
        let cases = [
            ("[\"latncy.p99 < 1ms\"]", "unknown metric `latncy`", (11, 20), "did you mean `latency`?".to_owned()),
            (
                "[\"schedule_lag.p99 < 1ms\"]",
                "`schedule_lag` is recorded only in open loop; this workload runs closed loop",
                (11, 20),
                "give the workload an arrival rate, such as `load: { rate: 1000/s }`".to_owned(),
            ),
            (
                "[\"throughput.p99 > 5/s\"]",
                "`throughput` is one value per run; it has no `p99`",
                (11, 20),
                "write `throughput` alone".to_owned(),
            ),
        ];
        for (targets, message, location, hint) in cases {
            let diagnostic = error_of(&with_targets(targets));
            assert_eq!(diagnostic.message, message);
            assert_eq!(at(&diagnostic), location, "{message}");
            assert_eq!(diagnostic.hint, Some(hint));
        }
    }

    #[test]
    fn a_metric_of_another_operation_is_refused_with_what_this_one_records() {
        let diagnostic = error_of(&workload(&["engine: cal", "op: noop", "targets: [\"overshoot.p99 < 1ms\"]"]));
        assert_eq!(diagnostic.message, "operation `calibrate.noop` does not record `overshoot`");
        let hint = diagnostic.hint.unwrap_or_default();
        assert!(hint.starts_with("it records `latency`, "), "{hint}");
        assert!(!hint.contains("overshoot"), "{hint}");
    }
}
