//! A workload's `slo:` lowered into [`SloBound`]s.
//!
//! Each key names a metric the run records once or more per operation (a
//! distribution: `latency`, `ttft`, `itl`, …) and each value is a bound in
//! that metric's unit. Which way the bound points comes from the metric's
//! declaration: at most for a metric where lower is better, at least where
//! higher is. Per-run figures (`throughput`) cannot be bounded per
//! operation and are refused with the reason.

use super::Lowering;
use crate::diagnostic::hint_from;
use crate::dsl::raw::RawWorkload;
use crate::engines::{catalog, MetricDecl, MetricKind};
use crate::plan::template::Scope;
use crate::plan::{values, SloBound};

impl Lowering<'_> {
    /// The bounds of `workload.slo`, each checked against the metrics the run records.
    pub(super) fn slo(
        &mut self,
        workload: &RawWorkload,
        path: &str,
        scope: &Scope,
        metrics: &[&'static MetricDecl],
    ) -> Option<Vec<SloBound>> {
        let mut bounds = Vec::with_capacity(workload.slo.len());
        let mut valid = true;
        for (name, raw) in &workload.slo {
            let key_path = format!("{path}.slo.{name}");
            let Some(metric) = metrics.iter().copied().find(|metric| metric.name == name.as_str()) else {
                let hint = if catalog::is_open_loop_metric(name) {
                    Some("`schedule_lag` is recorded only in open loop: give the workload a `load: { rate: … }`".into())
                } else {
                    let bounded: Vec<&str> = metrics
                        .iter()
                        .filter(|metric| metric.kind == MetricKind::Distribution)
                        .map(|metric| metric.name)
                        .collect();
                    hint_from(name, &bounded).or_else(|| Some(format!("bound one of {}", quoted(&bounded))))
                };
                self.at_key(&key_path, format!("this run does not record `{name}`"), hint);
                valid = false;
                continue;
            };
            if metric.kind != MetricKind::Distribution {
                self.at_key(
                    &key_path,
                    format!("`{name}` is one value per run, not a figure of each operation"),
                    Some(
                        "an SLO bounds what each operation records (`latency`, `ttft`, …); judge per-run figures \
                          in `targets`"
                            .into(),
                    ),
                );
                valid = false;
                continue;
            }
            let Some(scalar) = self.substitute(raw, &key_path, scope) else {
                valid = false;
                continue;
            };
            let what = format!("a bound on `{name}` ({})", metric.dim.describe());
            match values::bound(&scalar, metric.dim, &what) {
                Ok(limit) => bounds.push(SloBound { metric, limit, text: scalar.to_string() }),
                Err(error) => {
                    self.value_error(&key_path, &scalar, error);
                    valid = false;
                }
            }
        }
        valid.then_some(bounds)
    }
}

/// Names as `a`, `b` and `c`.
fn quoted(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    match quoted.split_last() {
        None => "no metric".into(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::lower::tests::{error_of, plan_of, workload};

    #[test]
    fn bounds_are_read_in_the_metric_unit_and_direction() {
        let plan = plan_of(&workload(&[
            "engine: cal",
            "op: sleep",
            "with: { duration: 1ms }",
            "slo: { latency: 2ms, overshoot: 500us }",
            "targets: [\"goodput > 5/s\", \"slo_attainment > 0.9\"]",
        ]));
        let run = &plan.runs[0];
        let bounds: Vec<(&str, f64, &str)> =
            run.slo.iter().map(|bound| (bound.metric.name, bound.limit, bound.text.as_str())).collect();
        assert_eq!(bounds, [("latency", 0.002, "2ms"), ("overshoot", 0.0005, "500us")]);
        assert!(run.metrics.iter().any(|metric| metric.name == "goodput"));
        assert!(run.metrics.iter().any(|metric| metric.name == "slo_attainment"));
    }

    #[test]
    fn goodput_without_an_slo_is_refused_with_the_way_to_get_it() {
        let diagnostic = error_of(&workload(&["engine: cal", "op: noop", "targets: [\"goodput > 5/s\"]"]));
        assert_eq!(diagnostic.message, "`goodput` is recorded only for a workload with an `slo:`");
        assert!(diagnostic.hint.unwrap_or_default().contains("slo: { latency: 10ms }"));
    }

    #[test]
    fn bad_bounds_are_refused_where_they_are_written() {
        let cases = [
            ("slo: { latncy: 2ms }", "this run does not record `latncy`", "did you mean `latency`?"),
            ("slo: { throughput: 5/s }", "`throughput` is one value per run, not a figure of each operation", "judge"),
            ("slo: { latency: 4KiB }", "`4KiB` is a size, but a bound on `latency` (a duration) is expected here", ""),
            ("slo: { latency: -1ms }", "`-1ms` is negative; a bound on `latency` (a duration) cannot be", ""),
            ("slo: { schedule_lag: 1ms }", "this run does not record `schedule_lag`", "only in open loop"),
        ];
        for (slo, message, hint) in cases {
            let diagnostic = error_of(&workload(&["engine: cal", "op: sleep", "with: { duration: 1ms }", slo]));
            assert_eq!(diagnostic.message, message, "{slo}");
            assert!(diagnostic.hint.clone().unwrap_or_default().contains(hint), "{slo}: {:?}", diagnostic.hint);
            assert!(diagnostic.path.starts_with("phases[0].workloads[0].slo."), "{}", diagnostic.path);
        }
    }
}
