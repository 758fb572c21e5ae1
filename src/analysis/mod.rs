//! Analysis: what the measurements mean.
//!
//! Reads [`crate::results::Results`] only, never the plan or the engines, so
//! any saved results file can be analysed again. [`targets`] judges
//! targets, [`health`] flags runs whose figures cannot be taken as they
//! stand (dropped work, a generator that fell behind, short windows),
//! [`stats`] holds the A/B statistics, [`experiments`] compares arms,
//! [`compare`] compares saved runs, [`shares`] finds where the time went,
//! [`roadmap`] ranks and schedules candidates, [`profiles`] and [`trend`]
//! read the profiles and judge memory growth; [`Analysis`] gathers it all
//! for the reports, every figure with the text people read beside the
//! number, and decides the run's [`Verdict`] once: the summary, every
//! report and export, and the exit status read it.

pub mod capacity;
pub mod changepoint;
pub mod compare;
pub mod experiments;
pub mod health;
pub mod profiles;
pub mod roadmap;
pub mod shares;
pub mod stats;
pub mod targets;
pub mod trend;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::Serialize;

use crate::metric::names;
use crate::metric::MetricKind;
use crate::quantity::{format_value, Dim};
use crate::results::{histogram, Machine, Results, RunRecord, ScenarioRecord, SloRecord, ToolInfo};
pub use experiments::{ExperimentEffect, ExperimentOutcome};
pub use health::Warning;
pub use profiles::Profiles;
pub use roadmap::Roadmap;
pub use shares::TimeShares;
pub use stats::CompareSettings;
pub use targets::TargetStatus;

/// Everything the reports show, computed once from a results file.
#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    /// The scenario.
    pub scenario: ScenarioRecord,
    /// The tool that measured.
    pub phasebench: ToolInfo,
    /// The machine measured on.
    pub machine: Machine,
    /// Memory for people (`24.0 GiB`).
    pub memory_text: String,
    /// When the run began.
    pub started_at: DateTime<Utc>,
    /// When it ended, if it did.
    pub finished_at: Option<DateTime<Utc>>,
    /// Start and end for people: `2026-11-27 07:26:49 UTC to 07:26:56 UTC`.
    pub measured_text: String,
    /// Whether every planned run finished.
    pub complete: bool,
    /// Whether the user stopped it.
    pub interrupted: bool,
    /// Whether `--smoke` shrank it (targets not judged).
    pub smoke: bool,
    /// Runs planned and run.
    pub planned_runs: usize,
    /// One row per run.
    pub runs: Vec<RunRow>,
    /// Every target.
    pub targets: Vec<TargetRow>,
    /// Targets per phase.
    pub phases: Vec<PhaseSummary>,
    /// Targets held, of all.
    pub targets_held: usize,
    /// Targets missed.
    pub targets_missed: usize,
    /// Targets not judged (smoke run, run cut short, too few samples).
    pub targets_not_judged: usize,
    /// Targets that could not be computed.
    pub targets_unknown: usize,
    /// All targets.
    pub targets_total: usize,
    /// Experiment outcomes, per matrix point.
    pub experiments: Vec<ExperimentOutcome>,
    /// Each experiment judged once over its points.
    pub effects: Vec<ExperimentEffect>,
    /// Time shares of the runs that report them (not experiment arms), largest part first.
    pub bottlenecks: Vec<TimeShares>,
    /// Matrix workloads: their figures along the matrix.
    pub scaling: Vec<Scaling>,
    /// The roadmap.
    pub roadmap: Roadmap,
    /// What the profilers saw.
    pub profiles: Profiles,
    /// The statistics' settings.
    pub settings: CompareSettings,
    /// Whether the run passed, and why not.
    pub verdict: Verdict,
}

/// The run's verdict, decided once: what the exit status and every output say.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// Every target held, every run finished, no work dropped and the load
    /// generator kept up (a smoke run passes when every run finished).
    pub passed: bool,
    /// `PASSED`, `FAILED` or, for a smoke run, `SMOKE RUN`.
    pub text: String,
    /// Why it failed, one line each.
    pub reasons: Vec<String>,
}

impl Verdict {
    fn of(results: &Results, targets: &[TargetRow], runs: &[RunRow]) -> Verdict {
        let mut reasons = Vec::new();
        if results.interrupted {
            reasons.push(format!(
                "interrupted by the user after {} of {} runs",
                results.runs.len(),
                results.planned_runs
            ));
        } else if !results.complete {
            reasons.push(format!("stopped after {} of {} runs", results.runs.len(), results.planned_runs));
        }
        for run in runs {
            for warning in run.warnings.iter().filter(|w| w.fails && w.kind != health::WarningKind::Incomplete) {
                reasons.push(format!("{}: {}", run.id, warning.text));
            }
            if let Some(failure) = run.failure.as_ref().filter(|_| !results.interrupted) {
                reasons.push(format!("{}: {failure}", run.id));
            }
        }
        if !results.smoke {
            let count = |label: &str| targets.iter().filter(|t| t.status.label() == label).count();
            for (label, n) in
                [("missed", count("missed")), ("not judged", count("not judged")), ("unknown", count("unknown"))]
            {
                if n > 0 {
                    reasons.push(format!("{n} target{} {label}", if n == 1 { "" } else { "s" }));
                }
            }
        }
        let passed = reasons.is_empty();
        let text = match (passed, results.smoke) {
            (true, true) => "SMOKE RUN",
            (true, false) => "PASSED",
            (false, _) => "FAILED",
        };
        Verdict { passed, text: text.into(), reasons }
    }
}

/// One run, for tables and charts.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// Its phase.
    pub phase: String,
    /// Its workload.
    pub workload: String,
    /// Matrix point.
    pub matrix: IndexMap<String, String>,
    /// Experiment arm, as `experiment/arm#round`.
    pub arm: Option<String>,
    /// `engine.op`.
    pub operation: String,
    /// Operations completed.
    pub operations: u64,
    /// Operations failed.
    pub errors: u64,
    /// Distinct error messages with counts.
    pub error_messages: Vec<(String, u64)>,
    /// Open loop: operations dropped at the drain deadline.
    pub dropped: u64,
    /// Open loop: the schedule lag (start minus intended start) p50 and p99, for people; `-` in closed loop.
    pub schedule_lag: String,
    /// What makes its figures doubtful, and whether that fails the run.
    pub warnings: Vec<Warning>,
    /// Finished as planned.
    pub complete: bool,
    /// Why not, if not.
    pub failure: Option<String>,
    /// Latency p50, p99, mean ± 95% half-width, and throughput, for people.
    pub latency_p50: String,
    /// Latency p99.
    pub latency_p99: String,
    /// Latency mean with its interval.
    pub latency_mean: String,
    /// Throughput.
    pub throughput: String,
    /// Engine metrics (distributions and scalars), for people.
    pub metrics: Vec<MetricRow>,
    /// The latency percentile curve: (percentile, seconds), for the chart.
    pub percentiles: Vec<(f64, f64)>,
    /// A capacity search's probes and result.
    pub search: Option<capacity::SearchView>,
}

/// One engine metric of one run.
#[derive(Clone, Debug, Serialize)]
pub struct MetricRow {
    /// Metric name.
    pub name: String,
    /// `p50 … p99 … mean … ± …` or the scalar value.
    pub text: String,
}

/// One target on one run.
#[derive(Clone, Debug, Serialize)]
pub struct TargetRow {
    /// Run id.
    pub run: String,
    /// Phase.
    pub phase: String,
    /// The target as written.
    pub target: String,
    /// Measured value for people.
    pub measured: String,
    /// The limit for people.
    pub limit: String,
    /// Headroom as a fraction of the limit (negative when missed), for judged targets.
    pub margin: Option<f64>,
    /// Held, missed, not judged or unknown, with why.
    pub status: TargetStatus,
    /// `held`, `missed`, `not judged` or `unknown`.
    pub status_text: String,
    /// Why it was not judged or is unknown.
    pub why: Option<String>,
}

/// Targets of one phase.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseSummary {
    /// Phase name.
    pub name: String,
    /// Runs in it.
    pub runs: usize,
    /// Targets held.
    pub held: usize,
    /// Targets judged (held or missed).
    pub judged: usize,
    /// Targets in all.
    pub total: usize,
}

/// A matrix workload's figures along one matrix variable.
#[derive(Clone, Debug, Serialize)]
pub struct Scaling {
    /// Workload.
    pub workload: String,
    /// The matrix variable on the x axis.
    pub variable: String,
    /// Points: (x as written, x as a number if it is one, throughput per second, latency p50 seconds).
    pub points: Vec<ScalingPoint>,
}

/// One point of a scaling curve.
#[derive(Clone, Debug, Serialize)]
pub struct ScalingPoint {
    /// The variable's value as written.
    pub label: String,
    /// Throughput, operations per second.
    pub throughput: Option<f64>,
    /// Latency p50, seconds.
    pub p50: Option<f64>,
    /// Latency p99, seconds.
    pub p99: Option<f64>,
}

/// Percentiles of the latency curve: 0, 50, 90, 99, … up to 99.999.
const CURVE: [f64; 15] =
    [0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.97, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99995, 0.99999, 1.0];

fn percentile_curve(run: &RunRecord) -> Vec<(f64, f64)> {
    let Some(metric) = run.metrics.get(names::LATENCY) else { return Vec::new() };
    let (Some(text), Some(scale)) = (&metric.histogram, metric.scale) else { return Vec::new() };
    let Ok(histogram) = histogram::decode(text) else { return Vec::new() };
    if histogram.is_empty() {
        return Vec::new();
    }
    let count = histogram.len() as f64;
    CURVE
        .iter()
        // Percentiles finer than the sample count can resolve say nothing.
        .filter(|q| **q < 1.0 && (1.0 - **q) * count >= 1.0 || **q == 0.0)
        .map(|q| (*q, histogram.value_at_quantile(*q) as f64 / scale))
        .chain(std::iter::once((1.0, histogram.max() as f64 / scale)))
        .collect()
}

fn run_row(run: &RunRecord, cores: usize, smoke: bool) -> RunRow {
    let latency = run.metrics.get(names::LATENCY).and_then(|m| m.summary).filter(|s| s.count > 0);
    let time = |value: Option<f64>| value.map_or_else(|| "-".into(), |v| format_value(v, Dim::TIME));
    let metrics = run
        .metrics
        .iter()
        .filter(|(name, metric)| !names::LOAD.contains(&name.as_str()) && metric.part_of.is_none())
        .filter_map(|(name, metric)| {
            let dim = Dim::from(metric.dim);
            if name == names::CAPACITY && run.search.is_some() {
                return Some(MetricRow { name: name.clone(), text: capacity::describe(run)? });
            }
            if let (Some(slo), true) = (&run.slo, is_slo_figure(name)) {
                return Some(MetricRow { name: name.clone(), text: slo_text(name, run, slo)? });
            }
            let text = match metric.kind {
                MetricKind::Scalar => format_value(metric.value?, dim),
                MetricKind::Distribution => {
                    let s = metric.summary.filter(|s| s.count > 0)?;
                    format!(
                        "p50 {}, p99 {}, mean {} ± {} (n={})",
                        format_value(s.p50, dim),
                        format_value(s.p99, dim),
                        format_value(s.mean, dim),
                        plus_minus(shares::mean_half_width(&s), dim),
                        s.count
                    )
                }
            };
            Some(MetricRow { name: name.clone(), text })
        })
        .collect();
    RunRow {
        id: run.id.clone(),
        phase: run.phase.clone(),
        workload: run.workload.clone(),
        matrix: run.matrix.clone(),
        arm: run.arm.as_ref().map(|arm| format!("{}/{}#{}", arm.experiment, arm.arm, arm.round)),
        operation: format!("{}.{}", run.engine.name, run.op),
        operations: run.operations,
        errors: run.errors,
        error_messages: run.error_messages.iter().map(|e| (e.message.clone(), e.count)).collect(),
        dropped: run.dropped,
        schedule_lag: run.metrics.get(names::SCHEDULE_LAG).and_then(|m| m.summary).filter(|s| s.count > 0).map_or_else(
            || "-".into(),
            |s| format!("p50 {}, p99 {}", format_value(s.p50, Dim::TIME), format_value(s.p99, Dim::TIME)),
        ),
        warnings: health::of_run(run, cores, smoke),
        complete: run.complete,
        failure: run.failure.clone(),
        latency_p50: time(latency.map(|s| s.p50)),
        latency_p99: time(latency.map(|s| s.p99)),
        latency_mean: latency.map_or_else(
            || "-".into(),
            |s| format!("{} ± {}", format_value(s.mean, Dim::TIME), plus_minus(shares::mean_half_width(&s), Dim::TIME)),
        ),
        throughput: run
            .metrics
            .get(names::THROUGHPUT)
            .and_then(|m| m.value)
            .map_or_else(|| "-".into(), |v| format_value(v, Dim::PER_TIME)),
        metrics,
        percentiles: percentile_curve(run),
        search: capacity::view(run),
    }
}

fn is_slo_figure(name: &str) -> bool {
    name == names::GOODPUT || name == names::SLO_ATTAINMENT
}

/// `goodput` or `slo_attainment` with its 95% interval (Wilson, the
/// operations owed a start as the trials) and what was counted against what.
fn slo_text(name: &str, run: &RunRecord, slo: &SloRecord) -> Option<String> {
    let owed = run.operations + run.errors + run.dropped;
    let (low, high) = stats::wilson_interval(slo.met, owed)?;
    let seconds = run.elapsed_ns as f64 / 1e9;
    if name == names::GOODPUT {
        let rate =
            |share: f64| format_value(if seconds > 0.0 { share * owed as f64 / seconds } else { 0.0 }, Dim::PER_TIME);
        return Some(format!("{} (95% interval {} to {})", rate(slo.met as f64 / owed as f64), rate(low), rate(high)));
    }
    let bounds: Vec<String> = slo
        .bounds
        .iter()
        .map(|(metric, bound)| {
            let direction = match run.metrics.get(metric).and_then(|m| m.better) {
                Some(crate::metric::Better::Higher) => "≥",
                _ => "≤",
            };
            format!("{metric} {direction} {bound}")
        })
        .collect();
    let percent = |share: f64| format!("{:.1}%", share * 100.0);
    Some(format!(
        "{} (95% interval {} to {}): {} of {} operations met {}",
        percent(slo.met as f64 / owed as f64),
        percent(low),
        percent(high),
        slo.met,
        owed,
        bounds.join(", ")
    ))
}

fn plus_minus(half_width: f64, dim: Dim) -> String {
    if half_width.is_finite() {
        format_value(half_width, dim)
    } else {
        "?".into()
    }
}

fn scaling(results: &Results) -> Vec<Scaling> {
    let mut out: Vec<Scaling> = Vec::new();
    for run in results.runs.iter().filter(|run| run.arm.is_none() && run.matrix.len() == 1) {
        let Some((variable, value)) = run.matrix.first() else { continue };
        let latency = run.metrics.get(names::LATENCY).and_then(|m| m.summary).filter(|s| s.count > 0);
        let point = ScalingPoint {
            label: value.clone(),
            throughput: run.metrics.get(names::THROUGHPUT).and_then(|m| m.value),
            p50: latency.map(|s| s.p50),
            p99: latency.map(|s| s.p99),
        };
        match out.iter_mut().find(|s| s.workload == run.workload && &s.variable == variable) {
            Some(series) => series.points.push(point),
            None => {
                out.push(Scaling { workload: run.workload.clone(), variable: variable.clone(), points: vec![point] })
            }
        }
    }
    out.retain(|series| series.points.len() >= 2);
    out
}

impl Analysis {
    /// Analyses a results file.
    pub fn of(results: &Results, settings: &CompareSettings) -> Analysis {
        let phase_of = |id: &str| results.runs.iter().find(|r| r.id == id).map(|r| r.phase.clone()).unwrap_or_default();
        let target_rows: Vec<TargetRow> = targets::evaluate(results)
            .into_iter()
            .map(|outcome| TargetRow {
                run: outcome.run.clone(),
                phase: phase_of(&outcome.run),
                target: outcome.target.clone(),
                measured: outcome.measured_text(),
                limit: outcome.limit.map_or_else(|| "n/a".into(), |v| format_value(v, outcome.dim)),
                margin: outcome.margin(),
                status_text: outcome.status.label().into(),
                why: outcome.status.why().map(str::to_owned),
                status: outcome.status,
            })
            .collect();
        let mut phases: Vec<PhaseSummary> = Vec::new();
        for run in &results.runs {
            if !phases.iter().any(|p| p.name == run.phase) {
                phases.push(PhaseSummary { name: run.phase.clone(), runs: 0, held: 0, judged: 0, total: 0 });
            }
            if let Some(phase) = phases.iter_mut().find(|p| p.name == run.phase) {
                phase.runs += 1;
            }
        }
        for row in &target_rows {
            if let Some(phase) = phases.iter_mut().find(|p| p.name == row.phase) {
                phase.total += 1;
                phase.held += usize::from(row.status.held());
                phase.judged += usize::from(matches!(row.status, TargetStatus::Held | TargetStatus::Missed));
            }
        }
        let experiments = experiments::analyse(results, settings);
        let effects = experiments::effects(&results.experiments, &experiments, settings);
        let roadmap = roadmap::plan(results, &effects, &experiments);
        let runs: Vec<RunRow> =
            results.runs.iter().map(|run| run_row(run, results.machine.cores, results.smoke)).collect();
        let verdict = Verdict::of(results, &target_rows, &runs);
        let count = |label: &str| target_rows.iter().filter(|t| t.status_text == label).count();
        Analysis {
            scenario: results.scenario.clone(),
            phasebench: results.phasebench.clone(),
            machine: results.machine.clone(),
            memory_text: format_value(results.machine.memory_bytes as f64, Dim::BYTES),
            started_at: results.started_at,
            finished_at: results.finished_at,
            measured_text: match results.finished_at {
                Some(end) => format!(
                    "{} to {}",
                    results.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    end.format(if end.date_naive() == results.started_at.date_naive() {
                        "%H:%M:%S UTC"
                    } else {
                        "%Y-%m-%d %H:%M:%S UTC"
                    })
                ),
                None => format!("{} (unfinished)", results.started_at.format("%Y-%m-%d %H:%M:%S UTC")),
            },
            complete: results.complete,
            interrupted: results.interrupted,
            smoke: results.smoke,
            planned_runs: results.planned_runs,
            runs,
            targets_held: count("held"),
            targets_missed: count("missed"),
            targets_not_judged: count("not judged"),
            targets_unknown: count("unknown"),
            targets_total: target_rows.len(),
            targets: target_rows,
            phases,
            experiments,
            effects,
            bottlenecks: results.runs.iter().filter(|run| run.arm.is_none()).filter_map(shares::of_run).collect(),
            scaling: scaling(results),
            roadmap,
            profiles: profiles::summarise(results),
            settings: *settings,
            verdict,
        }
    }
}
