//! Whether a run's figures can be trusted as they stand: work the load
//! generator dropped or issued late, measured windows too short (outside
//! experiments, whose rounds are replicated), more workers than cores,
//! runs cut short. Dropped work, a generator that fell
//! behind and a run that did not finish fail the run; the others are shown
//! beside its figures.

use serde::Serialize;

use crate::metric::names;
use crate::quantity::{format_value, Dim};
use crate::results::{LoadRecord, ProbeOutcome, RunRecord, SearchFinish, SearchRecord};

/// A measured part shorter than this is flagged.
pub const SHORT_WINDOW_SECONDS: f64 = 1.0;
/// The generator fell behind when more than 1% of operations started
/// later than this after their intended time (schedule lag p99).
pub const BEHIND_LAG_SECONDS: f64 = 0.010;

/// What is wrong with a run's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// The run did not finish (interrupted, an engine failed to set up).
    Incomplete,
    /// Open loop: scheduled operations were dropped at the drain deadline.
    Dropped,
    /// Open loop: operations started well after their intended time.
    Behind,
    /// The measured part lasted under a second.
    ShortWindow,
    /// More workers than logical CPUs: they take turns on the cores.
    Oversubscribed,
    /// A capacity search left probes uncounted (the generator fell behind,
    /// or they could not be judged) or ended before it narrowed.
    Search,
}

/// One finding about a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Warning {
    /// What kind.
    pub kind: WarningKind,
    /// For people.
    pub text: String,
    /// Whether it fails the run (and so the exit status).
    pub fails: bool,
}

/// The findings about one run, in the order above. In a smoke run (a few
/// operations, to check the wiring) dropped work and a generator behind are
/// shown but fail nothing: a handful of operations on a busy machine says
/// nothing about the load the scenario plans.
pub fn of_run(run: &RunRecord, cores: usize, smoke: bool) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let mut push = |kind, text: String, fails| warnings.push(Warning { kind, text, fails });
    if !run.complete {
        let why = run.failure.clone().unwrap_or_else(|| "it did not finish".into());
        push(WarningKind::Incomplete, format!("incomplete: {why}"), true);
    }
    // A search's probes were judged one by one: work its shown probe
    // dropped or started late is judged there, and its probes are below.
    if let Some(search) = &run.search {
        search_warnings(search, &mut push);
    } else {
        load_warnings(run, smoke, &mut push);
    }
    // An experiment's rounds are its replicates, each short by design; the
    // A/B test over rounds is what judges them.
    let seconds = run.elapsed_seconds();
    // A search's probes are as long as their targets' statistics need.
    let searched = run.search.is_some();
    if run.arm.is_none()
        && !searched
        && run.complete
        && run.operations + run.errors > 0
        && seconds < SHORT_WINDOW_SECONDS
    {
        push(
            WarningKind::ShortWindow,
            format!(
                "short: measured for {} ({} operations); one descheduling can move its percentiles",
                format_value(seconds, Dim::TIME),
                run.operations + run.errors
            ),
            false,
        );
    }
    // Open-loop workers wait for their operations; closed-loop ones compete for cores.
    if let LoadRecord::Closed { concurrency } = run.load {
        let workers = concurrency as usize;
        if cores == 0 || workers <= cores {
            return warnings;
        }
        push(
            WarningKind::Oversubscribed,
            format!(
                "{workers} workers on {cores} logical CPUs: they take turns, and latency includes the wait for a core"
            ),
            false,
        );
    }
    warnings
}

/// Dropped work and a generator behind its schedule.
fn load_warnings(run: &RunRecord, smoke: bool, push: &mut impl FnMut(WarningKind, String, bool)) {
    if run.dropped > 0 {
        let fails = !smoke && !targets_name(run, names::DROPPED);
        let scheduled = run.operations + run.errors + run.dropped;
        push(
            WarningKind::Dropped,
            format!(
                "DROPPED {} of {scheduled} scheduled operations: still queued at the drain deadline; latency counts each at the time it had waited (a lower bound)",
                run.dropped
            ),
            fails,
        );
    }
    if let Some(lag) = schedule_lag_p99(run).filter(|lag| *lag > BEHIND_LAG_SECONDS) {
        push(
            WarningKind::Behind,
            format!(
                "LOAD GENERATOR FELL BEHIND: schedule lag p99 {} (over {}): operations started late, so the system saw less than the planned rate",
                format_value(lag, Dim::TIME),
                format_value(BEHIND_LAG_SECONDS, Dim::TIME)
            ),
            !smoke && !targets_name(run, names::SCHEDULE_LAG),
        );
    }
}

/// What a capacity search left uncounted, and an end before it narrowed.
fn search_warnings(search: &SearchRecord, push: &mut impl FnMut(WarningKind, String, bool)) {
    let lagged = search.probes.iter().filter(|probe| probe.outcome == ProbeOutcome::Lagged).count();
    if lagged > 0 {
        push(
            WarningKind::Search,
            format!(
                "{lagged} of {} probes LAGGED: the load generator fell behind their schedule, so they measured it, not the system, and were not counted",
                search.probes.len()
            ),
            false,
        );
    }
    let unjudged = search.probes.iter().filter(|probe| probe.outcome == ProbeOutcome::NotJudged).count();
    if unjudged > 0 && search.finish != SearchFinish::Smoke {
        push(WarningKind::Search, format!("{unjudged} of {} probes could not be judged", search.probes.len()), false);
    }
    let cut = match search.finish {
        SearchFinish::Budget => Some("its budget ran out: the capacity is the bracket reached so far"),
        SearchFinish::ProbeLimit => Some("it ran as many probes as a search may: the capacity is the bracket reached"),
        SearchFinish::OutOfReach => {
            Some("the load generator fell behind at the loads left to probe: they are out of its reach on this machine")
        }
        _ => None,
    };
    if let Some(cut) = cut {
        push(WarningKind::Search, format!("search ended early: {cut}"), false);
    }
}

/// Whether one of the run's targets names `metric`.
fn targets_name(run: &RunRecord, metric: &str) -> bool {
    run.targets.iter().filter_map(|target| target.parsed.as_ref().ok()).any(|comparison| {
        comparison.lhs.metrics().iter().chain(comparison.rhs.metrics().iter()).any(|m| m.metric == metric)
    })
}

/// The open-loop schedule lag p99 in seconds, if the run recorded it.
pub fn schedule_lag_p99(run: &RunRecord) -> Option<f64> {
    run.metrics.get(names::SCHEDULE_LAG)?.summary.filter(|s| s.count > 0).map(|s| s.p99)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{store, Results};

    fn open_loop_run() -> RunRecord {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/report/results.json");
        let results: Results = store::load(std::path::Path::new(path)).expect("the report fixture loads");
        results.runs.into_iter().find(|run| run.id == "open-loop").expect("an open-loop run")
    }

    #[test]
    fn overload_fails_a_measured_run_and_is_shown_in_a_smoke_run() {
        let mut run = open_loop_run();
        run.dropped = 5;
        if let Some(summary) = run.metrics.get_mut(names::SCHEDULE_LAG).and_then(|m| m.summary.as_mut()) {
            summary.p99 = 0.5;
        }
        let kinds = |warnings: &[Warning]| -> Vec<(WarningKind, bool)> {
            warnings
                .iter()
                .filter(|w| matches!(w.kind, WarningKind::Dropped | WarningKind::Behind))
                .map(|w| (w.kind, w.fails))
                .collect()
        };
        let measured = of_run(&run, 64, false);
        assert_eq!(kinds(&measured), [(WarningKind::Dropped, true), (WarningKind::Behind, true)]);
        let smoke = of_run(&run, 64, true);
        assert_eq!(kinds(&smoke), [(WarningKind::Dropped, false), (WarningKind::Behind, false)]);
        assert_eq!(
            measured.iter().map(|w| &w.text).collect::<Vec<_>>(),
            smoke.iter().map(|w| &w.text).collect::<Vec<_>>()
        );
    }
}
