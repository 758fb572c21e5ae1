//! A capacity search as one run: probes at the loads [`sequence`] picks,
//! each a run of the workload at one load judged by its targets, and the
//! record of them all with the capacity they show.
//!
//! A probe is judged by the same code that judges every target
//! ([`analysis::targets`]), on the probe's own record, against the
//! workload's targets other than `capacity`. It passes when every one
//! held and fails when one was missed, when operations were still queued at
//! the drain deadline (the system fell behind its arrivals), or when every
//! operation failed. It is
//! *lagged*, neither, when the open-loop dispatcher itself started
//! operations late (its p99 lateness, before any wait for a free worker,
//! which is the system's queue): over [`BEHIND_LAG_SECONDS`], or, for a
//! probe that missed a target, over a tenth of the tightest time the
//! targets allow. A late start only adds to an operation's latency, so a
//! probe that held despite it held. It is *not judged* when
//! a target could not be (too few samples, an interrupted probe). Only
//! passes and fails count toward the estimate ([`analysis::capacity`]).
//!
//! A probe runs the workload's warm-up and its `iterations` or `duration`,
//! lengthened to the operations the targets' statistics need (1,000 for a
//! p99, [`samples_needed`]). The search stops starting probes once the
//! next one, as long as the longest so far, would end past its budget.
//!
//! [`analysis::targets`]: crate::analysis::targets
//! [`analysis::capacity`]: crate::analysis::capacity

pub mod sequence;

use std::time::{Duration, Instant};

pub use sequence::{Finish, Outcome, Scale, Search};

use crate::analysis::capacity::{self, Bound, Estimate};
use crate::analysis::health::BEHIND_LAG_SECONDS;
use crate::analysis::targets::{evaluate_one, samples_needed, TargetOutcome, TargetStatus, MIN_OPERATIONS};
use crate::metric::{names, MetricKind};
use crate::plan::{Load, RunSpec, SearchAxis, SearchLoad, Stop};
use crate::quantity::{format_value, Dim};
use crate::results::{
    CapacityBound, CapacityRecord, LoadRecord, MetricRecord, ProbeOutcome, ProbeRecord, RunRecord, SearchFinish,
    SearchRecord,
};

/// A probe is lagged when the dispatcher's p99 lateness exceeds this share
/// of the tightest time bound among the targets.
const LAG_SHARE: f64 = 0.1;

/// A search in progress: which probe comes next, and what the probes showed.
pub struct Searching<'a> {
    spec: &'a RunSpec,
    load: SearchLoad,
    search: Search,
    smoke: bool,
    started: Instant,
    probes: Vec<ProbeRecord>,
    /// The longest probe so far, set-up to end.
    longest: Duration,
    /// The load of the probe handed out and not yet recorded.
    pending: Option<f64>,
    ended: Option<SearchFinish>,
    /// Operations a probe needs for the targets' statistics.
    need: u64,
}

/// A probe's measurement, as the interpreter took it.
pub struct Measured {
    /// The probe's run record.
    pub record: RunRecord,
    /// Open loop: the dispatcher's p99 lateness in seconds.
    pub dispatch_lag_p99: Option<f64>,
    /// Wall time from set-up to the end.
    pub wall: Duration,
}

impl<'a> Searching<'a> {
    /// The search `spec` asks for (`load`: its `Load::Search`); `smoke` runs
    /// one short probe and judges nothing.
    pub fn new(spec: &'a RunSpec, load: SearchLoad, smoke: bool) -> Searching<'a> {
        let scale = match load.axis {
            SearchAxis::Rate { .. } => Scale::Continuous,
            SearchAxis::Concurrency => Scale::Whole,
        };
        let need = spec
            .targets
            .iter()
            .filter(|target| !target.names_capacity())
            .flat_map(|target| {
                let comparison = &target.comparison;
                let references: Vec<_> =
                    comparison.lhs.metrics().into_iter().chain(comparison.rhs.metrics()).cloned().collect();
                references
            })
            .map(|reference| {
                let distribution = spec
                    .metrics
                    .iter()
                    .find(|metric| metric.name == reference.metric)
                    .is_some_and(|metric| metric.kind == MetricKind::Distribution);
                if distribution {
                    samples_needed(reference.stat)
                } else {
                    MIN_OPERATIONS
                }
            })
            .max()
            .unwrap_or(MIN_OPERATIONS);
        Searching {
            spec,
            load,
            search: Search::new(load.low, load.high, scale),
            smoke,
            started: Instant::now(),
            probes: Vec::new(),
            longest: Duration::ZERO,
            pending: None,
            ended: None,
            need,
        }
    }

    /// The probes so far.
    pub fn probes(&self) -> &[ProbeRecord] {
        &self.probes
    }

    /// The next probe to run, or `None` once the search is over; `cancelled`
    /// ends it.
    pub fn next_probe(&mut self, cancelled: bool) -> Option<RunSpec> {
        if self.ended.is_some() {
            return None;
        }
        let ended = if cancelled {
            Some(SearchFinish::Interrupted)
        } else if self.smoke && !self.probes.is_empty() {
            Some(SearchFinish::Smoke)
        } else if self
            .load
            .budget
            .is_some_and(|budget| !self.probes.is_empty() && self.started.elapsed() + self.longest > budget)
        {
            Some(SearchFinish::Budget)
        } else {
            None
        };
        let level = match ended {
            Some(finish) => Err(finish),
            None => self.search.next().map_err(finish_of),
        };
        match level {
            Ok(level) => {
                self.pending = Some(level);
                Some(self.probe_spec(level))
            }
            Err(finish) => {
                self.ended = Some(finish);
                None
            }
        }
    }

    /// Records the probe last handed out and judges it.
    pub fn record(&mut self, measured: Measured) {
        let level = self.pending.take().unwrap_or(self.load.low);
        self.longest = self.longest.max(measured.wall);
        let (outcome, why) = self.judge(&measured);
        self.search.record(
            level,
            match outcome {
                ProbeOutcome::Pass => Outcome::Pass,
                ProbeOutcome::Fail => Outcome::Fail,
                // Neither counts; the search stays below it.
                ProbeOutcome::Lagged | ProbeOutcome::NotJudged => Outcome::Lagged,
            },
        );
        let failed = measured.record.failure.is_some() && measured.record.operations + measured.record.errors == 0;
        if failed {
            self.ended = Some(SearchFinish::Failed);
        } else if !measured.record.complete {
            self.ended = Some(SearchFinish::Interrupted);
        }
        self.probes.push(ProbeRecord {
            load: level,
            outcome,
            why,
            dispatch_lag_p99: measured.dispatch_lag_p99,
            run: Box::new(measured.record),
        });
    }

    /// The run's record so far, as it would stand if the search stopped now.
    pub fn partial(&self) -> RunRecord {
        self.record_with(SearchFinish::Interrupted)
    }

    /// The run's record once [`Searching::next_probe`] has said it is over.
    pub fn finish(&self) -> RunRecord {
        self.record_with(self.ended.unwrap_or(SearchFinish::Interrupted))
    }

    fn probe_spec(&self, level: f64) -> RunSpec {
        let spec = self.spec;
        let index = self.probes.len() as u64 + 1;
        let mut probe = spec.clone();
        probe.id = format!("{}~probe{index}", spec.id);
        probe.load = self.load.at(level);
        probe.targets.retain(|target| !target.names_capacity());
        probe.metrics.retain(|metric| metric.name != names::CAPACITY);
        probe.seed = spec.seed.wrapping_add(index);
        probe.schedule_seed = spec.schedule_seed.wrapping_add(index);
        if !self.smoke {
            probe.stop = match (spec.stop, probe.load) {
                (Stop::Iterations(n), _) => Stop::Iterations(n.max(self.need)),
                (Stop::Duration(d), Load::Open { rate, .. }) => {
                    // A tenth more than the need, so that a probe a little
                    // short of its rate still has enough.
                    let enough = Duration::try_from_secs_f64(self.need as f64 * 1.1 / rate).unwrap_or(Duration::MAX);
                    Stop::Duration(d.max(enough))
                }
                (stop, _) => stop,
            };
        }
        probe
    }

    /// What a probe showed, and why.
    fn judge(&self, measured: &Measured) -> (ProbeOutcome, Option<String>) {
        let record = &measured.record;
        if self.smoke {
            return (ProbeOutcome::NotJudged, Some("smoke run: a few operations check the wiring".into()));
        }
        if !record.complete {
            let why = record.failure.clone().unwrap_or_else(|| "the probe did not finish".into());
            return (ProbeOutcome::NotJudged, Some(why));
        }
        let outcomes: Vec<_> = record.targets.iter().map(|target| evaluate_one(record, target, false)).collect();
        let tightest = outcomes
            .iter()
            .filter(|outcome| outcome.dim == Dim::TIME)
            .filter_map(|outcome| outcome.limit)
            .filter(|limit| *limit > 0.0)
            .fold(f64::INFINITY, f64::min);
        let lateness = measured.dispatch_lag_p99.unwrap_or(0.0);
        let lagged = |allowed: f64| {
            let why = format!(
                "the load generator fell behind: it started 1% of operations over {} late (allowed {})",
                format_value(lateness, Dim::TIME),
                format_value(allowed, Dim::TIME)
            );
            (ProbeOutcome::Lagged, Some(why))
        };
        if lateness > BEHIND_LAG_SECONDS {
            return lagged(BEHIND_LAG_SECONDS);
        }
        let (outcome, why) = verdict(record, &outcomes);
        // A late start only adds to an operation's latency, so a probe that
        // held despite it held; one that missed may have missed by it.
        let allowed = tightest * LAG_SHARE;
        if outcome == ProbeOutcome::Fail && lateness > allowed {
            return lagged(allowed);
        }
        (outcome, why)
    }

    fn record_with(&self, finish: SearchFinish) -> RunRecord {
        let counted: Vec<(f64, bool)> = self
            .probes
            .iter()
            .filter_map(|probe| match probe.outcome {
                ProbeOutcome::Pass => Some((probe.load, true)),
                ProbeOutcome::Fail => Some((probe.load, false)),
                ProbeOutcome::Lagged | ProbeOutcome::NotJudged => None,
            })
            .collect();
        let estimate = capacity::estimate(&counted);
        let capacity = capacity_record(&estimate);
        let shown = self.shown(&capacity);
        let spec = self.spec;
        let mut record = match shown {
            Some(index) => (*self.probes[index].run).clone(),
            None => super::interpreter::unmeasured(spec, finish.describe()),
        };
        record.id = spec.id.clone();
        // An experiment's arm is judged by the experiment: its targets are
        // only the condition its probes were judged by.
        if spec.arm.is_none() {
            record.targets = spec.targets.iter().map(Into::into).collect();
        } else {
            record.targets.clear();
        }
        record.seed = spec.seed;
        record.load = load_record(self.load);
        record.stop = super::interpreter::stop_text(spec.stop);
        let value = match capacity.bound {
            CapacityBound::Within => capacity.value,
            CapacityBound::AboveRange => capacity.highest_pass,
            CapacityBound::BelowRange | CapacityBound::Unknown => None,
        };
        if let Some(decl) = spec.metrics.iter().find(|metric| metric.name == names::CAPACITY) {
            record
                .metrics
                .insert(names::CAPACITY.into(), MetricRecord { value, ..super::interpreter::scalar(0.0, decl) });
        }
        match finish {
            SearchFinish::Interrupted => {
                record.complete = false;
                record.failure = Some("the search was interrupted before it ended".into());
            }
            SearchFinish::Failed => {
                record.complete = false;
                record.failure =
                    self.probes.last().and_then(|probe| probe.run.failure.clone()).or(Some("a probe failed".into()));
            }
            _ => {
                record.complete = true;
                record.failure = None;
            }
        }
        record.search = Some(SearchRecord {
            finish,
            elapsed_ns: self.started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64,
            probes: self.probes.clone(),
            capacity,
            shown,
        });
        record
    }

    /// The probe whose figures the run shows: the highest load that held at
    /// or below the capacity, else the highest that held, else the first.
    fn shown(&self, capacity: &CapacityRecord) -> Option<usize> {
        let ceiling = capacity.value.unwrap_or(f64::INFINITY);
        let highest_pass = |limit: f64| {
            self.probes
                .iter()
                .enumerate()
                .filter(|(_, probe)| probe.outcome == ProbeOutcome::Pass && probe.load <= limit)
                .max_by(|a, b| a.1.load.total_cmp(&b.1.load))
                .map(|(index, _)| index)
        };
        highest_pass(ceiling).or_else(|| highest_pass(f64::INFINITY)).or((!self.probes.is_empty()).then_some(0))
    }
}

/// What a probe's record and target outcomes show, the generator aside.
fn verdict(record: &RunRecord, outcomes: &[TargetOutcome]) -> (ProbeOutcome, Option<String>) {
    if record.dropped > 0 {
        let why = format!(
            "{} of {} operations were still queued at the drain deadline: the system fell behind its arrivals",
            record.dropped, record.scheduled
        );
        return (ProbeOutcome::Fail, Some(why));
    }
    if let Some(missed) = outcomes.iter().find(|outcome| outcome.status == TargetStatus::Missed) {
        return (ProbeOutcome::Fail, Some(format!("{} missed: {}", missed.target, missed.measured_text())));
    }
    if record.operations == 0 && record.errors > 0 {
        return (ProbeOutcome::Fail, Some(format!("every one of its {} operations failed", record.errors)));
    }
    match outcomes.iter().find(|outcome| !outcome.status.held()) {
        Some(unjudged) => {
            let why = unjudged.status.why().unwrap_or("not judged");
            (ProbeOutcome::NotJudged, Some(format!("{}: {why}", unjudged.target)))
        }
        None => (ProbeOutcome::Pass, None),
    }
}

fn finish_of(finish: Finish) -> SearchFinish {
    match finish {
        Finish::Narrowed => SearchFinish::Narrowed,
        Finish::BelowRange => SearchFinish::BelowRange,
        Finish::AboveRange => SearchFinish::AboveRange,
        Finish::OutOfReach => SearchFinish::OutOfReach,
        Finish::ProbeLimit => SearchFinish::ProbeLimit,
    }
}

fn capacity_record(estimate: &Estimate) -> CapacityRecord {
    CapacityRecord {
        bound: match estimate.bound {
            Bound::Within => CapacityBound::Within,
            Bound::AboveRange => CapacityBound::AboveRange,
            Bound::BelowRange => CapacityBound::BelowRange,
            Bound::Unknown => CapacityBound::Unknown,
        },
        value: estimate.capacity,
        interval: estimate.interval.map(|(low, high)| [low, high]),
        highest_pass: estimate.highest_pass,
        lowest_fail: estimate.lowest_fail,
        counted: estimate.probes,
    }
}

/// A search's load as a results file keeps it.
pub fn load_record(load: SearchLoad) -> LoadRecord {
    let (axis, max_in_flight, arrival) = match load.axis {
        SearchAxis::Rate { max_in_flight, arrival } => {
            ("rate", Some(max_in_flight), (arrival != crate::plan::Arrival::Constant).then(|| arrival.to_string()))
        }
        SearchAxis::Concurrency => ("concurrency", None, None),
    };
    LoadRecord::Search {
        axis: axis.into(),
        low: load.low,
        high: load.high,
        max_in_flight,
        arrival,
        budget: load.budget.map(|budget| format_value(budget.as_secs_f64(), Dim::TIME)),
    }
}
