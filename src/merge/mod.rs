//! Shard results merged into the results one process would have recorded.
//!
//! `phasebench run --shard I/N` leaves N results files, each with its share
//! of every run. [`merge`] checks that they are the N shards of one scenario
//! run by one phasebench, then merges each run's pieces: histograms add
//! exactly, counters and counts add, and every per-run scalar follows the
//! merge rule its declaration states (`engines::catalog::Merge`). The merged
//! results are ordinary results (`shard: None`), with a [`MergeRecord`] of
//! where they came from, for analysis and the reports as they are.
//!
//! **Architecture invariant:** a merge refuses rather than guesses: shards of
//! different scenarios, tools or shard counts, a missing or duplicated
//! piece, metrics that disagree on what they measure, and a scalar without a
//! merge rule are errors naming the culprit.

pub mod histogram;
mod run;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

use crate::results::{HistogramError, MergeRecord, MergedShard, Results};

/// How to merge.
#[derive(Clone, Debug, Default)]
pub struct MergeOptions {
    /// How each shard's results are named in errors and in the merge record
    /// (their files), in the order given; `shard #k` where none is given.
    pub files: Vec<String>,
    /// Merge what is there when shards (or pieces of runs) are missing,
    /// marking the results incomplete, instead of refusing.
    pub allow_missing: bool,
}

impl MergeOptions {
    fn file(&self, position: usize) -> String {
        self.files.get(position).cloned().unwrap_or_else(|| format!("shard #{}", position + 1))
    }
}

/// Why shard results could not be merged; each names its culprit.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no shard results to merge")]
    Empty,
    /// A results file from a run without `--shard`.
    #[error("{file}: not a shard's results (it was not run with --shard)")]
    NotAShard {
        /// The file.
        file: String,
    },
    /// A shard that does not belong with the first one given.
    #[error("{file}: {what} is {found}, but {first} has {expected}; only shards of one run merge")]
    Mismatch {
        /// The file that differs.
        file: String,
        /// The file it was compared with (the first given).
        first: String,
        /// What differs: the scenario, its seed, vars, smoke, the phasebench version, the shard count.
        what: &'static str,
        /// As the first file has it.
        expected: String,
        /// As this file has it.
        found: String,
    },
    /// Two files claim the same shard index.
    #[error("shard {index} is given twice: {first} and {second}")]
    Duplicate {
        /// The index.
        index: u32,
        /// One file.
        first: String,
        /// The other.
        second: String,
    },
    /// Shards not given (without `allow_missing`).
    #[error("shard{} {} of {count} missing; merge what is there with --allow-missing", plural(.missing), list(.missing))]
    Missing {
        /// Their indexes.
        missing: Vec<u32>,
        /// Shards in all.
        count: u32,
    },
    /// The pieces of one run do not make one whole run.
    #[error("run `{run}`: {problem}")]
    Run {
        /// Run id.
        run: String,
        /// What is wrong, naming the files.
        problem: String,
    },
    /// A metric the pieces of a run do not agree on.
    #[error("run `{run}`, metric `{metric}`: {problem}")]
    Metric {
        /// Run id.
        run: String,
        /// Metric name.
        metric: String,
        /// What is wrong, naming the file.
        problem: String,
    },
    /// A stored histogram that does not decode.
    #[error("run `{run}`, metric `{metric}` in {file}: {source}")]
    Histogram {
        /// Run id.
        run: String,
        /// Metric name.
        metric: String,
        /// The file.
        file: String,
        /// Why it does not decode.
        source: HistogramError,
    },
}

fn plural(items: &[u32]) -> &'static str {
    if items.len() == 1 {
        ""
    } else {
        "s"
    }
}

fn list(items: &[u32]) -> String {
    items.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// One shard's results and how to name them.
struct Shard<'a> {
    results: &'a Results,
    index: u32,
    file: String,
}

/// Merges the results of the shards of one run into the results of the whole.
pub fn merge(shards: &[Results], options: &MergeOptions) -> Result<Results, MergeError> {
    let first = shards.first().ok_or(MergeError::Empty)?;
    let first_file = options.file(0);
    let mut by_index: BTreeMap<u32, Shard> = BTreeMap::new();
    let mut count = None;
    for (position, results) in shards.iter().enumerate() {
        let file = options.file(position);
        let Some(shard) = &results.shard else { return Err(MergeError::NotAShard { file }) };
        let mismatch = |what, expected: String, found: String| {
            (expected != found).then(|| MergeError::Mismatch {
                file: file.clone(),
                first: first_file.clone(),
                what,
                expected,
                found,
            })
        };
        let checks = [
            mismatch("the phasebench version", tool(first), tool(results)),
            mismatch("the scenario (sha256)", first.scenario.sha256.clone(), results.scenario.sha256.clone()),
            mismatch("the seed", first.scenario.seed.to_string(), results.scenario.seed.to_string()),
            mismatch("--var", vars(first), vars(results)),
            mismatch("--smoke", first.smoke.to_string(), results.smoke.to_string()),
            mismatch(
                "the shard count",
                first.shard.as_ref().map_or(0, |s| s.count).to_string(),
                shard.count.to_string(),
            ),
        ];
        if let Some(error) = checks.into_iter().flatten().next() {
            return Err(error);
        }
        count = Some(shard.count);
        if let Some(other) = by_index.get(&shard.index) {
            return Err(MergeError::Duplicate { index: shard.index, first: other.file.clone(), second: file });
        }
        by_index.insert(shard.index, Shard { results, index: shard.index, file });
    }
    let count = count.unwrap_or(1);
    let missing: Vec<u32> = (0..count).filter(|index| !by_index.contains_key(index)).collect();
    if !missing.is_empty() && !options.allow_missing {
        return Err(MergeError::Missing { missing, count });
    }
    let shards: Vec<Shard> = by_index.into_values().collect();

    // Each run's pieces, runs in the order the shards list them.
    let mut pieces: IndexMap<&str, Vec<run::Piece>> = IndexMap::new();
    for shard in &shards {
        for record in &shard.results.runs {
            pieces.entry(record.id.as_str()).or_default().push(run::Piece { record, file: &shard.file });
        }
    }
    let mut runs = Vec::with_capacity(pieces.len());
    let mut run_skew_seconds = IndexMap::new();
    let mut runs_whole = true;
    for (id, pieces) in &pieces {
        let merged = run::merge_run(id, pieces, options.allow_missing)?;
        runs_whole &= merged.whole;
        if pieces.len() > 1 {
            run_skew_seconds.insert((*id).to_owned(), merged.skew_seconds);
        }
        runs.push(merged.record);
    }

    let reference = shards[0].results;
    let started_at = shards.iter().map(|s| s.results.started_at).min().unwrap_or(reference.started_at);
    let latest_start = shards.iter().map(|s| s.results.started_at).max().unwrap_or(reference.started_at);
    let finished_at = shards.iter().filter_map(|s| s.results.finished_at).max();
    let planned_runs = shards.iter().map(|s| s.results.planned_runs).max().unwrap_or(0).max(runs.len());
    let record = MergeRecord {
        shards: shards
            .iter()
            .map(|shard| MergedShard {
                index: shard.index,
                host: shard.results.shard.as_ref().map(|s| s.host.clone()).unwrap_or_default(),
                started_at: shard.results.started_at,
                file: shard.file.clone(),
            })
            .collect(),
        skew_seconds: seconds_between(started_at, latest_start),
        missing: missing.clone(),
        run_skew_seconds,
    };
    Ok(Results {
        format: reference.format.clone(),
        version: reference.version,
        phasebench: reference.phasebench.clone(),
        machine: reference.machine.clone(),
        scenario: reference.scenario.clone(),
        smoke: reference.smoke,
        started_at,
        finished_at,
        complete: missing.is_empty() && runs_whole && shards.iter().all(|s| s.results.complete),
        interrupted: shards.iter().any(|s| s.results.interrupted),
        planned_runs,
        runs,
        experiments: reference.experiments.clone(),
        roadmap: reference.roadmap.clone(),
        shard: None,
        merged: Some(record),
    })
}

fn tool(results: &Results) -> String {
    format!("{} ({})", results.phasebench.version, results.phasebench.commit)
}

fn vars(results: &Results) -> String {
    let vars: Vec<String> = results.scenario.vars.iter().map(|(name, value)| format!("{name}={value}")).collect();
    if vars.is_empty() {
        "none".into()
    } else {
        vars.join(" ")
    }
}

/// Seconds from `earlier` to `later`.
fn seconds_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> f64 {
    (later - earlier).num_nanoseconds().map_or(f64::INFINITY, |ns| ns as f64 / 1e9)
}
