//! Walking a plan run by run, turning each measurement into a results record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

use super::instances::Instances;
use super::measure::Measurement;
use super::search::{self, Measured, Searching};
use super::{execute, profile, record, Control, RunProgress};
use crate::engines::catalog::{self, histogram_scale, histogram_unit};
use crate::engines::{EngineError, MetricDecl, MetricKind, Operation};
use crate::metric::names;
use crate::plan::{Arrival, Load, Plan, RunSpec, Stop, Warmup};
use crate::quantity::{format_value, Dim};
use crate::results::histogram::{encode, Summary};
use crate::results::store::StoreError;
use crate::results::{
    ArmRecord, EngineRecord, ErrorCount, ExperimentRecord, LoadRecord, Machine, MetricRecord, ProbeRecord,
    ProfileRecord, Results, RoadmapRecord, RunRecord, RunShard, ScenarioRecord, SloRecord, TargetRecord, ToolInfo,
    FORMAT, FORMAT_VERSION,
};

/// How often the display is refreshed while a run measures.
const TICK: Duration = Duration::from_millis(100);

/// Follows a plan's execution: shows progress and keeps the results.
pub trait Observer {
    /// Run `index` of `total` is about to start.
    fn run_started(&mut self, index: usize, total: usize, spec: &RunSpec);
    /// Called periodically while a run measures.
    fn tick(&mut self, spec: &RunSpec, progress: &RunProgress);
    /// A run ended and `results` now includes it; the observer saves them.
    fn run_finished(&mut self, record: &RunRecord, results: &Results) -> Result<(), StoreError>;
    /// A probe of the search `spec` ended; `results` include the search as
    /// it stands, so that saving them keeps what a search cut short measured.
    fn probe_finished(&mut self, spec: &RunSpec, probe: &ProbeRecord, results: &Results) -> Result<(), StoreError> {
        let _ = (spec, probe, results);
        Ok(())
    }
}

/// Runs every run of `plan` in order; stops early when `control.cancel` is set.
pub fn execute_plan(plan: &Plan, control: &Control, observer: &mut dyn Observer) -> Result<Results, StoreError> {
    let machine = Machine::current();
    if let Some(start_at) = control.start_at {
        wait_for(start_at, &control.cancel);
    }
    let mut results = Results {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        phasebench: ToolInfo::current(),
        machine: machine.clone(),
        scenario: ScenarioRecord::from(&plan.scenario),
        smoke: plan.smoke,
        started_at: Utc::now(),
        finished_at: None,
        complete: false,
        interrupted: false,
        planned_runs: plan.runs.len(),
        runs: Vec::new(),
        experiments: plan.experiments.iter().map(ExperimentRecord::from).collect(),
        roadmap: RoadmapRecord::from(&plan.roadmap),
        shard: plan.shard.map(|shard| record::shard(shard, control.start_at, &machine)),
        merged: None,
    };
    let mut instances = Instances::new(plan.scenario.seed);
    for (index, spec) in plan.runs.iter().enumerate() {
        if control.cancel.load(Ordering::Relaxed) {
            break;
        }
        observer.run_started(index, plan.runs.len(), spec);
        let record = match instances.operation(plan, spec) {
            Ok(operation) => match spec.load {
                Load::Search(load) => {
                    let mut searching = Searching::new(spec, load, plan.smoke);
                    while let Some(probe) = searching.next_probe(control.cancel.load(Ordering::Relaxed)) {
                        let measured = measure(&probe, operation.as_ref(), control, observer);
                        searching.record(measured);
                        // Saved after every probe, so that a search cut short keeps what it measured.
                        results.runs.push(searching.partial());
                        let saved = match searching.probes().last() {
                            Some(probe) => observer.probe_finished(spec, probe, &results),
                            None => Ok(()),
                        };
                        results.runs.pop();
                        saved?;
                    }
                    searching.finish()
                }
                Load::Closed { .. } | Load::Open { .. } => measure(spec, operation.as_ref(), control, observer).record,
            },
            Err(error) => failed_record(spec, &error),
        };
        instances.run_ended();
        results.interrupted |= control.cancel.load(Ordering::Relaxed);
        results.runs.push(record);
        results.finished_at = Some(Utc::now());
        results.complete = !results.interrupted && results.runs.len() == plan.runs.len();
        if let Some(record) = results.runs.last() {
            observer.run_finished(record, &results)?;
        }
    }
    results.interrupted |= control.cancel.load(Ordering::Relaxed);
    results.complete = !results.interrupted && results.runs.len() == plan.runs.len();
    results.finished_at = Some(Utc::now());
    Ok(results)
}

/// Measures one run (or one probe of a search) of a prepared operation,
/// with its profilers, showing progress while it runs.
fn measure(spec: &RunSpec, operation: &dyn Operation, control: &Control, observer: &mut dyn Observer) -> Measured {
    let wall_start = Utc::now();
    let clock_start = Instant::now();
    // Cleared here, not only in `execute`, so that the profiler
    // never mistakes the previous run's start for this one's.
    control.progress.reset();
    let done = AtomicBool::new(false);
    let (outcome, profile) = std::thread::scope(|scope| {
        let watcher = spec.profile.any().then(|| {
            let (gate, cue) = profile::gate();
            control.progress.arm_profilers(gate);
            std::thread::Builder::new()
                .name(profile::WATCHER_THREAD.into())
                .spawn_scoped(scope, || profile::watch(spec.profile, &control.progress, cue, &done))
        });
        let handle = scope.spawn(|| execute(spec, operation, control));
        while !handle.is_finished() {
            observer.tick(spec, &control.progress);
            std::thread::sleep(TICK);
        }
        let outcome = handle.join().unwrap_or_else(|panic| {
            let detail = super::panic_message(panic.as_ref());
            Err(EngineError::new(format!("the run's coordinator thread panicked: {detail}")))
        });
        done.store(true, Ordering::Release);
        let profile = watcher.map(|watcher| {
            let problem = match watcher {
                Ok(watcher) => match watcher.join() {
                    Ok(record) => return record,
                    Err(_) => "the profiler's thread panicked".to_owned(),
                },
                Err(error) => format!("the profiler's thread could not start: {error}"),
            };
            ProfileRecord { problems: vec![problem], ..ProfileRecord::default() }
        });
        (outcome, profile)
    });
    let (record, dispatch_lag_p99) = match outcome {
        Ok(measurement) => {
            let mut record = record_of(spec, &measurement, wall_start, clock_start);
            if let Some(profile) = profile {
                add_profile_metrics(&mut record, &profile);
                record.profile = Some(profile);
            }
            let lag = measurement
                .dispatch_lag
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| h.value_at_quantile(0.99) as f64 / 1e9);
            (record, lag)
        }
        Err(error) => (failed_record(spec, &error), None),
    };
    Measured { record, dispatch_lag_p99, wall: clock_start.elapsed() }
}

/// Sleeps until `instant` (in steps, so Ctrl-C is not ignored); an instant
/// already past returns at once.
fn wait_for(instant: DateTime<Utc>, cancel: &AtomicBool) {
    while !cancel.load(Ordering::Relaxed) {
        let Ok(left) = (instant - Utc::now()).to_std() else { return };
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(TICK));
    }
}

/// The parts of a record every run has, measured or not.
fn base_record(spec: &RunSpec, started: DateTime<Utc>, finished: DateTime<Utc>) -> RunRecord {
    RunRecord {
        id: spec.id.clone(),
        phase: spec.phase.clone(),
        workload: spec.workload.clone(),
        matrix: spec.matrix.clone(),
        arm: spec.arm.as_ref().map(ArmRecord::from),
        repetition: spec.repetition,
        engine: EngineRecord {
            name: spec.engine.name.clone(),
            kind: spec.engine.kind.into(),
            options: serde_json::to_value(&spec.engine.options).unwrap_or_default(),
        },
        op: spec.op.clone(),
        params: serde_json::to_value(&spec.params).unwrap_or_default(),
        load: match spec.load {
            Load::Closed { concurrency } => LoadRecord::Closed { concurrency },
            Load::Open { rate, max_in_flight, arrival } => LoadRecord::Open {
                rate,
                max_in_flight,
                arrival: (arrival != Arrival::Constant).then(|| arrival.to_string()),
            },
            Load::Search(search) => search::load_record(search),
        },
        warmup: match spec.warmup {
            Warmup::None => "none".into(),
            Warmup::Count(n) => format!("{n}x"),
            Warmup::Duration(d) => format_value(d.as_secs_f64(), Dim::TIME),
        },
        stop: stop_text(spec.stop),
        targets: spec.targets.iter().map(TargetRecord::from).collect(),
        seed: spec.seed,
        shard: spec.shard.map(|shard| RunShard { index: shard.index, count: shard.count }),
        started_at: started,
        finished_at: finished,
        elapsed_ns: 0,
        operations: 0,
        errors: 0,
        dropped: 0,
        scheduled: 0,
        error_messages: Vec::new(),
        complete: false,
        failure: None,
        metrics: IndexMap::new(),
        counters: IndexMap::new(),
        profile: None,
        slo: None,
        search: None,
    }
}

/// A stop condition as a results file keeps it: `100x` or `10s`.
pub(super) fn stop_text(stop: Stop) -> String {
    match stop {
        Stop::Iterations(n) => format!("{n}x"),
        Stop::Duration(d) => format_value(d.as_secs_f64(), Dim::TIME),
    }
}

/// The record of a run that measured nothing, and why.
pub(super) fn unmeasured(spec: &RunSpec, why: &str) -> RunRecord {
    let now = Utc::now();
    RunRecord { failure: Some(why.to_owned()), ..base_record(spec, now, now) }
}

fn failed_record(spec: &RunSpec, error: &EngineError) -> RunRecord {
    let now = Utc::now();
    RunRecord { failure: Some(format!("engine setup failed: {error}")), ..base_record(spec, now, now) }
}

fn record_of(spec: &RunSpec, measurement: &Measurement, wall_start: DateTime<Utc>, clock_start: Instant) -> RunRecord {
    let tally = &measurement.tally;
    let offset = measurement.started.saturating_duration_since(clock_start);
    let started = wall_start + chrono::Duration::from_std(offset).unwrap_or_default();
    let finished = started + chrono::Duration::from_std(measurement.elapsed).unwrap_or_default();
    let mut record = base_record(spec, started, finished);
    record.elapsed_ns = measurement.elapsed.as_nanos().min(u128::from(u64::MAX)) as u64;
    record.operations = tally.operations;
    record.errors = tally.errors;
    record.dropped = tally.dropped;
    record.scheduled = measurement.scheduled;
    record.error_messages =
        tally.messages.iter().map(|(message, count)| ErrorCount { message: message.clone(), count: *count }).collect();
    record.complete = !measurement.cancelled;
    if measurement.cancelled {
        record.failure = Some("interrupted before the planned end".into());
    }

    let seconds = measurement.elapsed.as_secs_f64();
    let attempted = tally.operations + tally.errors;
    let mut put = |name: &str, metric: MetricRecord| record.metrics.insert(name.into(), metric);
    put(names::LATENCY, distribution(&tally.latency, harness(names::LATENCY)));
    let service = tally.service.as_ref().unwrap_or(&tally.latency);
    put(names::SERVICE_TIME, distribution(service, harness(names::SERVICE_TIME)));
    let throughput = if seconds > 0.0 { tally.operations as f64 / seconds } else { 0.0 };
    put(names::THROUGHPUT, scalar(throughput, harness(names::THROUGHPUT)));
    put(names::ERRORS, scalar(tally.errors as f64, harness(names::ERRORS)));
    put(names::DROPPED, scalar(tally.dropped as f64, harness(names::DROPPED)));
    if let Some(schedule_lag) = &tally.schedule_lag {
        put(names::SCHEDULE_LAG, distribution(schedule_lag, harness(names::SCHEDULE_LAG)));
    }
    let error_rate = if attempted > 0 { tally.errors as f64 / attempted as f64 } else { 0.0 };
    put(names::ERROR_RATE, scalar(error_rate, harness(names::ERROR_RATE)));
    if !spec.slo.is_empty() {
        // Dropped operations were owed a start and never got one: they miss the SLO.
        let owed = attempted + tally.dropped;
        let goodput = if seconds > 0.0 { tally.slo_met as f64 / seconds } else { 0.0 };
        let attainment = if owed > 0 { tally.slo_met as f64 / owed as f64 } else { 0.0 };
        put(names::GOODPUT, scalar(goodput, harness(names::GOODPUT)));
        put(names::SLO_ATTAINMENT, scalar(attainment, harness(names::SLO_ATTAINMENT)));
        record.slo = Some(SloRecord {
            bounds: spec.slo.iter().map(|bound| (bound.metric.name.to_owned(), bound.text.clone())).collect(),
            met: tally.slo_met,
        });
    }
    for slot in tally.recorder.slots() {
        let metric = match spec.metrics.iter().find(|m| m.name == slot.name) {
            Some(decl) => distribution(&slot.histogram, decl),
            None => undeclared_distribution(&slot.histogram),
        };
        record.metrics.insert(slot.name.into(), metric);
    }
    for (name, amount) in tally.recorder.counters() {
        record.counters.insert((*name).into(), *amount);
    }
    // Per-run scalars the engine derives from its counters (hit rates, amplification).
    for decl in spec.metrics.iter().filter(|m| m.kind == MetricKind::Scalar) {
        if let Some(value) = decl.derive.and_then(|d| d.value(|name| record.counters.get(name).copied().unwrap_or(0))) {
            record.metrics.insert(decl.name.into(), scalar(value, decl));
        }
    }
    record
}

/// The scalar metrics of `profile: memory` and `rss`.
fn add_profile_metrics(record: &mut RunRecord, profile: &ProfileRecord) {
    let seconds = record.elapsed_ns as f64 / 1e9;
    let operations = record.operations;
    let mut put = |name: &str, value: f64| record.metrics.insert(name.into(), scalar(value, harness(name)));
    if let Some(heap) = &profile.heap {
        put(names::HEAP_PEAK, heap.peak_bytes.max(0) as f64);
        put(names::ALLOCATED, heap.allocated_bytes as f64);
        put(names::ALLOC_RATE, if seconds > 0.0 { heap.allocated_bytes as f64 / seconds } else { 0.0 });
        put(names::ALLOCS_PER_OP, if operations > 0 { heap.allocations as f64 / operations as f64 } else { 0.0 });
    }
    if let Some(peak) = profile.memory.iter().filter_map(|sample| sample.rss).max() {
        put(names::RSS_PEAK, peak as f64);
    }
}

/// The declaration of a metric the harness records; `catalog`'s tests
/// check that every name in `metric::names` has one.
fn harness(name: &str) -> &'static MetricDecl {
    match catalog::harness_metric(name) {
        Some(decl) => decl,
        None => unreachable!("the harness metric `{name}` has no declaration"),
    }
}

/// A metric as its declaration describes it, with the histogram measured.
fn distribution(histogram: &hdrhistogram::Histogram<u64>, decl: &MetricDecl) -> MetricRecord {
    MetricRecord {
        better: Some(decl.better),
        part_of: decl.part_of.map(str::to_owned),
        ..histogram_record(histogram, decl.dim)
    }
}

/// A histogram an engine recorded without declaring it: a plain number.
fn undeclared_distribution(histogram: &hdrhistogram::Histogram<u64>) -> MetricRecord {
    histogram_record(histogram, Dim::NONE)
}

fn histogram_record(histogram: &hdrhistogram::Histogram<u64>, dim: Dim) -> MetricRecord {
    let scale = histogram_scale(dim);
    MetricRecord {
        kind: MetricKind::Distribution,
        dim: dim.into(),
        better: None,
        unit: Some(histogram_unit(dim)),
        part_of: None,
        scale: Some(scale),
        histogram: encode(histogram).ok(),
        summary: Some(Summary::of(histogram, scale)),
        value: None,
    }
}

pub(super) fn scalar(value: f64, decl: &MetricDecl) -> MetricRecord {
    MetricRecord {
        kind: MetricKind::Scalar,
        dim: decl.dim.into(),
        better: Some(decl.better),
        unit: None,
        part_of: None,
        scale: None,
        histogram: None,
        summary: None,
        value: Some(value),
    }
}
