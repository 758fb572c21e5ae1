//! One run's pieces, from the shards that shared it, merged into the run.

use indexmap::IndexMap;

use super::histogram;
use super::MergeError;
use crate::engines::catalog::{self, Merge, MetricDecl};
use crate::metric::{names, MetricKind};
use crate::results::histogram::{decode, encode, Summary};
use crate::results::{
    CpuProfile, ErrorCount, FoldedStack, HeapRecord, LoadRecord, MetricRecord, ProfileRecord, RunRecord, RunShard,
    SloRecord,
};

/// One shard's piece of a run.
pub(super) struct Piece<'a> {
    pub record: &'a RunRecord,
    pub file: &'a str,
}

impl Piece<'_> {
    /// Its share; a run kept without one was not split, so it is the whole.
    fn share(&self) -> RunShard {
        self.record.shard.unwrap_or(RunShard { index: 0, count: 1 })
    }
}

/// A merged run, whether every piece was there, and the spread of the pieces' starts.
pub(super) struct MergedRun {
    pub record: RunRecord,
    pub whole: bool,
    pub skew_seconds: f64,
}

/// Merges the pieces of run `id` (at least one), checking that they make the whole run.
pub(super) fn merge_run(id: &str, pieces: &[Piece], allow_missing: bool) -> Result<MergedRun, MergeError> {
    let refuse = |problem: String| MergeError::Run { run: id.to_owned(), problem };
    let first = &pieces[0];
    let count = first.share().count;
    let mut seen: IndexMap<u32, &str> = IndexMap::new();
    for piece in pieces {
        let share = piece.share();
        if share.count != count {
            return Err(refuse(format!(
                "{} has piece {} of {}, but {} has piece {} of {count}",
                piece.file,
                share.index,
                share.count,
                first.file,
                first.share().index
            )));
        }
        if let Some(other) = seen.insert(share.index, piece.file) {
            return Err(refuse(format!("piece {} of {count} is in both {other} and {}", share.index, piece.file)));
        }
        let same = piece.record.op == first.record.op && piece.record.engine.kind == first.record.engine.kind;
        if !same {
            return Err(refuse(format!(
                "{} ran `{}.{}`, but {} ran `{}.{}`",
                piece.file,
                piece.record.engine.kind,
                piece.record.op,
                first.file,
                first.record.engine.kind,
                first.record.op
            )));
        }
    }
    let absent: Vec<u32> = (0..count).filter(|index| !seen.contains_key(index)).collect();
    if !absent.is_empty() && !allow_missing {
        let list: Vec<String> = absent.iter().map(u32::to_string).collect();
        return Err(refuse(format!(
            "piece{} {} of {count} missing (a shard cut short?); merge what is there with --allow-missing",
            if absent.len() == 1 { "" } else { "s" },
            list.join(", ")
        )));
    }
    let mut pieces: Vec<&Piece> = pieces.iter().collect();
    pieces.sort_by_key(|piece| piece.share().index);
    let records: Vec<&RunRecord> = pieces.iter().map(|piece| piece.record).collect();

    let mut run = records[0].clone();
    run.shard = None;
    let earliest = records.iter().map(|r| r.started_at).min().unwrap_or(run.started_at);
    let latest_start = records.iter().map(|r| r.started_at).max().unwrap_or(run.started_at);
    run.started_at = earliest;
    run.finished_at = records.iter().map(|r| r.finished_at).max().unwrap_or(run.finished_at);
    run.elapsed_ns = (run.finished_at - run.started_at).num_nanoseconds().unwrap_or(0).max(0) as u64;
    if records.len() > 1 {
        run.elapsed_ns = run.elapsed_ns.max(records.iter().map(|r| r.elapsed_ns).max().unwrap_or(0));
    }
    run.operations = records.iter().map(|r| r.operations).sum();
    run.errors = records.iter().map(|r| r.errors).sum();
    run.dropped = records.iter().map(|r| r.dropped).sum();
    run.scheduled = records.iter().map(|r| r.scheduled).sum();
    run.error_messages = error_messages(&records);
    run.load = load(&records).map_err(refuse)?;
    run.stop = stop(&records);
    run.counters = counters(&records);
    run.complete = absent.is_empty() && records.iter().all(|r| r.complete);
    run.failure = failure(&pieces, &absent);
    run.profile = profile(&pieces);
    run.slo = slo(&records).map_err(refuse)?;
    run.metrics = metrics(id, &pieces, &run)?;
    Ok(MergedRun {
        whole: absent.is_empty(),
        skew_seconds: super::seconds_between(earliest, latest_start),
        record: run,
    })
}

/// The error messages of every piece, counts added, in the order first seen.
fn error_messages(records: &[&RunRecord]) -> Vec<ErrorCount> {
    let mut counts: IndexMap<&str, u64> = IndexMap::new();
    for error in records.iter().flat_map(|r| &r.error_messages) {
        *counts.entry(error.message.as_str()).or_default() += error.count;
    }
    counts.into_iter().map(|(message, count)| ErrorCount { message: message.to_owned(), count }).collect()
}

/// The load of the whole: workers, rates and caps on operations in flight added.
fn load(records: &[&RunRecord]) -> Result<LoadRecord, String> {
    let mut whole = records[0].load.clone();
    for record in &records[1..] {
        whole = match (whole, &record.load) {
            (LoadRecord::Closed { concurrency }, LoadRecord::Closed { concurrency: more }) => {
                LoadRecord::Closed { concurrency: concurrency + more }
            }
            (
                LoadRecord::Open { rate, max_in_flight, arrival },
                LoadRecord::Open { rate: more, max_in_flight: cap, arrival: theirs },
            ) => {
                if arrival != *theirs {
                    return Err("its pieces spaced their arrivals differently".into());
                }
                LoadRecord::Open { rate: rate + more, max_in_flight: max_in_flight + cap, arrival }
            }
            (LoadRecord::Search { .. }, _) | (_, LoadRecord::Search { .. }) => {
                return Err("a capacity search runs whole in one shard; pieces of one cannot be merged".into())
            }
            _ => return Err("its pieces ran under different loads (closed and open loop)".into()),
        };
    }
    Ok(whole)
}

/// The SLO of the whole: the same bounds in every piece, the operations
/// that met them added.
fn slo(records: &[&RunRecord]) -> Result<Option<SloRecord>, String> {
    let Some(first) = &records[0].slo else {
        return match records.iter().any(|r| r.slo.is_some()) {
            true => Err("some of its pieces judged an SLO and some did not".into()),
            false => Ok(None),
        };
    };
    let mut whole = first.clone();
    for record in &records[1..] {
        match &record.slo {
            Some(slo) if slo.bounds == first.bounds => whole.met += slo.met,
            _ => return Err("its pieces judged different SLOs".into()),
        }
    }
    Ok(Some(whole))
}

/// The stop as the whole run would have said it: a count of operations is
/// the sum of the shares; a duration is every piece's.
fn stop(records: &[&RunRecord]) -> String {
    let counts: Option<Vec<u64>> =
        records.iter().map(|r| r.stop.strip_suffix('x').and_then(|n| n.parse::<u64>().ok())).collect();
    match counts {
        Some(counts) => format!("{}x", counts.iter().sum::<u64>()),
        None => records[0].stop.clone(),
    }
}

fn counters(records: &[&RunRecord]) -> IndexMap<String, u64> {
    let mut counters: IndexMap<String, u64> = IndexMap::new();
    for (name, amount) in records.iter().flat_map(|r| &r.counters) {
        let total = counters.entry(name.clone()).or_default();
        *total = total.saturating_add(*amount);
    }
    counters
}

/// Why the merged run is not whole: a piece's own failure, or pieces missing.
fn failure(pieces: &[&Piece], absent: &[u32]) -> Option<String> {
    let mut reasons = Vec::new();
    if !absent.is_empty() {
        let list: Vec<String> = absent.iter().map(u32::to_string).collect();
        reasons.push(format!("merged without its piece(s) {}: their operations are missing", list.join(", ")));
    }
    for piece in pieces {
        if let Some(failure) = &piece.record.failure {
            reasons.push(if pieces.len() == 1 && absent.is_empty() {
                failure.clone()
            } else {
                format!("{}: {failure}", piece.file)
            });
        }
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// The profiles of the pieces together: CPU samples and heap counters add
/// (the heap's peaks and end levels keep the largest, as `heap_peak` does);
/// memory over time is one process's, so the first piece's series is kept.
fn profile(pieces: &[&Piece]) -> Option<ProfileRecord> {
    let profiles: Vec<(&str, &ProfileRecord)> =
        pieces.iter().filter_map(|piece| piece.record.profile.as_ref().map(|p| (piece.file, p))).collect();
    let (first_file, first) = *profiles.first()?;
    let mut merged = first.clone();
    if profiles.len() == 1 {
        return Some(merged);
    }
    let cpus: Vec<&CpuProfile> = profiles.iter().filter_map(|(_, p)| p.cpu.as_ref()).collect();
    merged.cpu = cpus.first().map(|cpu| {
        let mut stacks: IndexMap<&str, u64> = IndexMap::new();
        for stack in cpus.iter().flat_map(|cpu| &cpu.stacks) {
            *stacks.entry(stack.stack.as_str()).or_default() += stack.samples;
        }
        let mut stacks: Vec<FoldedStack> =
            stacks.into_iter().map(|(stack, samples)| FoldedStack { stack: stack.to_owned(), samples }).collect();
        stacks.sort_by(|a, b| b.samples.cmp(&a.samples).then_with(|| a.stack.cmp(&b.stack)));
        CpuProfile {
            frequency_hz: cpu.frequency_hz,
            samples: cpus.iter().map(|cpu| cpu.samples).sum(),
            cpu_seconds: cpus.iter().map(|cpu| cpu.cpu_seconds).sum(),
            stacks,
        }
    });
    let heaps: Vec<&HeapRecord> = profiles.iter().filter_map(|(_, p)| p.heap.as_ref()).collect();
    merged.heap = (!heaps.is_empty()).then(|| HeapRecord {
        allocated_bytes: heaps.iter().map(|h| h.allocated_bytes).sum(),
        allocations: heaps.iter().map(|h| h.allocations).sum(),
        peak_bytes: heaps.iter().map(|h| h.peak_bytes).max().unwrap_or(0),
        end_bytes: heaps.iter().map(|h| h.end_bytes).max().unwrap_or(0),
    });
    if profiles.iter().filter(|(_, p)| !p.memory.is_empty()).count() > 1 {
        merged.problems.push(format!("memory over time is {first_file}'s alone: each shard is its own process"));
    }
    for (file, profile) in &profiles[1..] {
        merged.problems.extend(profile.problems.iter().map(|problem| format!("{file}: {problem}")));
    }
    Some(merged)
}

/// Every metric of the pieces, merged: histograms added, scalars by their rule.
fn metrics(id: &str, pieces: &[&Piece], run: &RunRecord) -> Result<IndexMap<String, MetricRecord>, MergeError> {
    let refuse =
        |metric: &str, problem: String| MergeError::Metric { run: id.to_owned(), metric: metric.to_owned(), problem };
    let mut by_name: IndexMap<&str, Vec<(&str, &MetricRecord, u64)>> = IndexMap::new();
    for piece in pieces {
        for (name, metric) in &piece.record.metrics {
            by_name.entry(name.as_str()).or_default().push((piece.file, metric, piece.record.operations));
        }
    }
    let mut merged = IndexMap::new();
    let mut derived = Vec::new();
    for (name, parts) in &by_name {
        let (first_file, first, _) = parts[0];
        for (file, metric, _) in &parts[1..] {
            let differs = [
                ("kind", format!("{:?}", first.kind), format!("{:?}", metric.kind)),
                ("dimension", format!("{:?}", first.dim), format!("{:?}", metric.dim)),
                ("unit", format!("{:?}", first.unit), format!("{:?}", metric.unit)),
                ("scale", format!("{:?}", first.scale), format!("{:?}", metric.scale)),
            ];
            if let Some((what, expected, found)) = differs.into_iter().find(|(_, a, b)| a != b) {
                return Err(refuse(name, format!("its {what} is {found} in {file} but {expected} in {first_file}")));
            }
        }
        if parts.len() == 1 && pieces.len() == 1 {
            merged.insert((*name).to_owned(), first.clone());
            continue;
        }
        match first.kind {
            MetricKind::Distribution => {
                let mut histograms = Vec::with_capacity(parts.len());
                for (file, metric, _) in parts {
                    let Some(text) = &metric.histogram else {
                        return Err(refuse(name, format!("{file} kept no histogram to merge")));
                    };
                    let histogram = decode(text).map_err(|source| MergeError::Histogram {
                        run: id.to_owned(),
                        metric: (*name).to_owned(),
                        file: (*file).to_owned(),
                        source,
                    })?;
                    histograms.push(histogram);
                }
                let sum = histogram::sum(&histograms);
                let scale = first.scale.unwrap_or(1.0);
                let encoded = encode(&sum).map_err(|source| MergeError::Histogram {
                    run: id.to_owned(),
                    metric: (*name).to_owned(),
                    file: "the merged histogram".into(),
                    source,
                })?;
                let record =
                    MetricRecord { histogram: Some(encoded), summary: Some(Summary::of(&sum, scale)), ..first.clone() };
                merged.insert((*name).to_owned(), record);
            }
            MetricKind::Scalar => {
                let decl = declaration(&run.engine.kind, name).ok_or_else(|| {
                    refuse(name, "no declaration says how its pieces merge, so it cannot be merged".into())
                })?;
                let values: Vec<(f64, u64)> =
                    parts.iter().filter_map(|(_, metric, operations)| metric.value.map(|v| (v, *operations))).collect();
                let value = match decl.merge {
                    Merge::Sum => Some(values.iter().map(|(v, _)| v).sum()),
                    Merge::Min => values.iter().map(|(v, _)| *v).reduce(f64::min),
                    Merge::Max => values.iter().map(|(v, _)| *v).reduce(f64::max),
                    Merge::WeightedMean => weighted_mean(&values),
                    Merge::Derived => {
                        // After the others, which a derived figure may read.
                        derived.push((*name, decl, first.clone()));
                        merged.insert((*name).to_owned(), first.clone());
                        continue;
                    }
                    Merge::None => {
                        return Err(refuse(name, "its declaration states no merge rule, so it cannot be merged".into()))
                    }
                };
                merged.insert((*name).to_owned(), MetricRecord { value, ..first.clone() });
            }
        }
    }
    for (name, decl, first) in derived {
        match derive(decl, run, &merged) {
            Some(value) => {
                merged.insert(name.to_owned(), MetricRecord { value: Some(value), ..first });
            }
            None if decl.derive.is_some() => {
                // As the interpreter: a figure that divides by zero is not recorded.
                merged.shift_remove(name);
            }
            None => return Err(refuse(name, "it is declared derived, but nothing says from what".into())),
        }
    }
    Ok(merged)
}

/// The declaration of metric `name` of a run of engine `kind`.
fn declaration(kind: &str, name: &str) -> Option<&'static MetricDecl> {
    catalog::harness_metric(name)
        .or_else(|| crate::engines::find(kind)?.decl().metrics.iter().find(|metric| metric.name == name))
}

/// The mean weighted by operations: exact for a figure per operation.
fn weighted_mean(values: &[(f64, u64)]) -> Option<f64> {
    let operations: u64 = values.iter().map(|(_, ops)| ops).sum();
    if operations == 0 {
        return values.first().map(|_| 0.0);
    }
    Some(values.iter().map(|(value, ops)| value * *ops as f64).sum::<f64>() / operations as f64)
}

/// A derived scalar from the merged run: an engine's from the summed
/// counters, the harness's rates from its totals over the union window.
fn derive(decl: &MetricDecl, run: &RunRecord, merged: &IndexMap<String, MetricRecord>) -> Option<f64> {
    if let Some(rule) = decl.derive {
        return rule.value(|counter| run.counters.get(counter).copied().unwrap_or(0));
    }
    let seconds = run.elapsed_ns as f64 / 1e9;
    let per_second = |amount: f64| Some(if seconds > 0.0 { amount / seconds } else { 0.0 });
    match decl.name {
        names::THROUGHPUT => per_second(run.operations as f64),
        names::ERROR_RATE => {
            let attempted = run.operations + run.errors;
            Some(if attempted > 0 { run.errors as f64 / attempted as f64 } else { 0.0 })
        }
        names::ALLOC_RATE => per_second(merged.get(names::ALLOCATED)?.value?),
        names::GOODPUT => per_second(run.slo.as_ref()?.met as f64),
        names::SLO_ATTAINMENT => {
            let owed = run.operations + run.errors + run.dropped;
            Some(if owed > 0 { run.slo.as_ref()?.met as f64 / owed as f64 } else { 0.0 })
        }
        _ => None,
    }
}
