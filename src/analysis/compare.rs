//! `phasebench compare`: saved runs on two sides, metric by metric, with
//! the repetition as the unit of replication (benchstat's `-count`).
//!
//! Each side is one or more results files; the repetitions of a run
//! (`--repeat N`, or the same run in several files) are that run's
//! samples. Per run and metric, each repetition gives one figure — the
//! histogram's own p50 or p99, or the scalar — the very number the summary
//! and reports print for it. A row with at least two repetitions a side is
//! tested (Mann-Whitney U, bootstrap interval of the change of medians);
//! the false discovery rate over all rows tested is controlled by
//! Benjamini–Hochberg, and a change smaller than the minimum effect is
//! noise whatever its p-value. With one repetition a side nothing can be
//! tested: the change is shown, and only an explicit `fail_above`
//! threshold can fail the comparison. Experiment arms are not compared
//! here: each run judges its own arms against each other.

use indexmap::IndexMap;
use serde::Serialize;

use super::experiments::{change_text, describe_change, gain, signed_percent};
use super::stats::{self, Better, CompareSettings, Comparison, Evidence, Verdict};
use super::targets::metric_value;
use crate::expr::{MetricRef, Stat};
use crate::metric::MetricKind;
use crate::quantity::{format_value, Dim};
use crate::results::{Results, RunRecord};

/// How a comparison judges.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompareOptions {
    /// Significance, interval and bootstrap settings; `noise` is the global minimum effect.
    pub settings: CompareSettings,
    /// Minimum effects per metric name, overriding the global one.
    pub min_effect: IndexMap<String, f64>,
    /// Fail on a change for the worse larger than this, tested or not.
    pub fail_above: Option<f64>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { settings: CompareSettings::default(), min_effect: IndexMap::new(), fail_above: None }
    }
}

/// What a row says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowVerdict {
    /// A significant change for the better.
    Improved,
    /// A significant change for the worse.
    Regressed,
    /// Tested; no change passes the test, the interval and the minimum effect.
    NoSignificantChange,
    /// Fewer than two repetitions on a side, or too few to ever reach significance.
    NotTested,
    /// Every repetition on both sides gave the same value.
    Identical,
}

impl RowVerdict {
    /// How people read it.
    pub fn text(self) -> &'static str {
        match self {
            RowVerdict::Improved => "improved",
            RowVerdict::Regressed => "REGRESSED",
            RowVerdict::NoSignificantChange => "no significant change",
            RowVerdict::NotTested => "not tested: too few repetitions",
            RowVerdict::Identical => "identical",
        }
    }
}

/// One figure of one run on both sides.
#[derive(Clone, Debug, Serialize)]
pub struct CompareRow {
    /// The run (its id without a repetition suffix).
    pub run: String,
    /// The figure: `latency.p50`, `throughput`.
    pub metric: String,
    /// Per-repetition values on side A, base units.
    pub a_values: Vec<f64>,
    /// Per-repetition values on side B.
    pub b_values: Vec<f64>,
    /// A's median over its repetitions (the value itself with one).
    pub a: f64,
    /// B's median.
    pub b: f64,
    /// Both for people.
    pub a_text: String,
    /// B for people.
    pub b_text: String,
    /// Which way is better.
    pub better: Better,
    /// b / a - 1, when a is not 0.
    pub change: Option<f64>,
    /// The change for people, with its interval when tested and "better"/"worse".
    pub change_text: String,
    /// Mann-Whitney p-value, when tested.
    pub p_value: Option<f64>,
    /// Benjamini–Hochberg adjusted p-value over the rows tested.
    pub q_value: Option<f64>,
    /// The minimum effect applied to this row.
    pub min_effect: f64,
    /// The verdict.
    pub verdict: RowVerdict,
    /// Whether this row fails the comparison.
    pub fails: bool,
}

/// A whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct CompareOutcome {
    /// Every row, in the order of side A's runs and metrics.
    pub rows: Vec<CompareRow>,
    /// Rows tested (the family the false discovery rate is controlled over).
    pub tested: usize,
    /// Fewest and most repetitions per run on side A and on side B.
    pub repetitions: [(usize, usize); 2],
    /// The options used.
    pub options: CompareOptions,
    /// Whether any row fails.
    pub fails: bool,
    /// What the numbers mean, for people: one line each.
    pub notes: Vec<String>,
}

/// The key a run is paired by across sides, or None for experiment arms.
fn pairing_key(run: &RunRecord) -> Option<&str> {
    run.arm.is_none().then(|| run.base_id())
}

/// The figures a metric is compared on.
fn figures(kind: MetricKind) -> &'static [Option<Stat>] {
    match kind {
        MetricKind::Distribution => &[Some(Stat::P50), Some(Stat::P99)],
        MetricKind::Scalar => &[None],
    }
}

/// The runs of one side grouped by pairing key, in order of appearance.
fn group(side: &[Results]) -> IndexMap<&str, Vec<&RunRecord>> {
    let mut groups: IndexMap<&str, Vec<&RunRecord>> = IndexMap::new();
    for run in side.iter().flat_map(|results| &results.runs).filter(|run| run.complete) {
        if let Some(key) = pairing_key(run) {
            groups.entry(key).or_default().push(run);
        }
    }
    groups
}

/// Compares side `a` (before) with side `b` (after).
pub fn compare(a: &[Results], b: &[Results], options: &CompareOptions) -> CompareOutcome {
    let (groups_a, groups_b) = (group(a), group(b));
    let mut rows = Vec::new();
    let mut comparisons: Vec<Option<Comparison>> = Vec::new();
    for (key, runs_a) in &groups_a {
        let Some(runs_b) = groups_b.get(key) else { continue };
        for (name, record) in &runs_a[0].metrics {
            for stat in figures(record.kind) {
                let reference = MetricRef { metric: name.clone(), stat: *stat };
                let values = |runs: &[&RunRecord]| {
                    runs.iter().filter_map(|run| metric_value(run, &reference)).collect::<Vec<_>>()
                };
                let (a_values, b_values) = (values(runs_a), values(runs_b));
                let (Some(median_a), Some(median_b)) = (stats::median(&a_values), stats::median(&b_values)) else {
                    continue;
                };
                let dim = Dim::from(record.dim);
                let better = record.better();
                let min_effect = options.min_effect.get(name.as_str()).copied().unwrap_or(options.settings.noise);
                let settings = CompareSettings { noise: min_effect, ..options.settings };
                let identical = a_values.iter().chain(&b_values).all(|value| *value == a_values[0]);
                let comparison = (!identical && a_values.len() >= 2 && b_values.len() >= 2)
                    .then(|| stats::compare(&a_values, &b_values, better, &settings))
                    .flatten()
                    .filter(|c| c.verdict != Verdict::TooFewSamples);
                comparisons.push(comparison.clone());
                let change = (median_a != 0.0).then(|| median_b / median_a - 1.0).filter(|c| c.is_finite());
                rows.push(CompareRow {
                    run: (*key).to_owned(),
                    metric: reference.to_string(),
                    a_text: format_value(median_a, stat_dim(*stat, dim)),
                    b_text: format_value(median_b, stat_dim(*stat, dim)),
                    a: median_a,
                    b: median_b,
                    a_values,
                    b_values,
                    better,
                    change,
                    change_text: String::new(),
                    p_value: comparison.as_ref().map(|c| c.p_value),
                    q_value: None,
                    min_effect,
                    verdict: if identical { RowVerdict::Identical } else { RowVerdict::NotTested },
                    fails: false,
                });
            }
        }
    }
    let tested: Vec<usize> = (0..rows.len()).filter(|&i| comparisons[i].is_some()).collect();
    let q_values = stats::benjamini_hochberg(&tested.iter().filter_map(|&i| rows[i].p_value).collect::<Vec<_>>());
    for (&index, q) in tested.iter().zip(q_values) {
        let Some(comparison) = &comparisons[index] else { continue };
        let row = &mut rows[index];
        let settings = CompareSettings { noise: row.min_effect, ..options.settings };
        let evidence = Evidence { change: comparison.change, interval: comparison.interval, p_value: q, enough: true };
        row.verdict = match stats::judge(evidence, row.better, &settings) {
            Verdict::Improved => RowVerdict::Improved,
            Verdict::Regressed => RowVerdict::Regressed,
            Verdict::NoSignificantChange | Verdict::TooFewSamples => RowVerdict::NoSignificantChange,
        };
        row.q_value = Some(q);
        row.change_text = change_text(comparison, row.better);
    }
    for row in &mut rows {
        let worse = row.change.map(|change| -gain(change, row.better)).unwrap_or(0.0);
        let beyond = options.fail_above.is_none_or(|limit| worse > limit);
        row.fails = match row.verdict {
            RowVerdict::Regressed => beyond,
            RowVerdict::NotTested => options.fail_above.is_some() && beyond,
            _ => false,
        };
        if row.change_text.is_empty() {
            row.change_text =
                row.change.map_or_else(|| "n/a".into(), |change| describe_change(change, None, row.better));
        }
    }
    let repetitions = [spread(&groups_a), spread(&groups_b)];
    let fails = rows.iter().any(|row| row.fails);
    let mut notes = notes(&rows, tested.len(), repetitions, options);
    for (side, ours, theirs) in [("A", &groups_a, &groups_b), ("B", &groups_b, &groups_a)] {
        let alone: Vec<&str> = ours.keys().filter(|key| !theirs.contains_key(*key)).copied().collect();
        if !alone.is_empty() {
            notes.push(format!("only in {side}, not compared: {}", alone.join(", ")));
        }
    }
    CompareOutcome { rows, tested: tested.len(), repetitions, options: options.clone(), fails, notes }
}

/// The dimension of a statistic of a metric.
fn stat_dim(stat: Option<Stat>, dim: Dim) -> Dim {
    crate::expr::stat_dim(stat, dim)
}

/// Fewest and most repetitions per run on one side.
fn spread(groups: &IndexMap<&str, Vec<&RunRecord>>) -> (usize, usize) {
    let counts = groups.values().map(Vec::len);
    (counts.clone().min().unwrap_or(0), counts.max().unwrap_or(0))
}

fn notes(
    rows: &[CompareRow],
    tested: usize,
    repetitions: [(usize, usize); 2],
    options: &CompareOptions,
) -> Vec<String> {
    let side = |(low, high): (usize, usize)| if low == high { low.to_string() } else { format!("{low}–{high}") };
    let mut notes = vec![format!(
        "repetitions per run: {} (A) vs {} (B); each repetition is one sample, its figure the histogram's own percentile",
        side(repetitions[0]),
        side(repetitions[1])
    )];
    if tested == 0 {
        notes.push(
            "no row could be tested: a test needs at least two repetitions a side (phasebench run --repeat N); changes are shown untested"
                .into(),
        );
        if options.fail_above.is_none() {
            notes.push("without a test only --fail-above can fail a comparison; none was given".into());
        }
    } else {
        notes.push(format!(
            "{tested} of {} rows tested (Mann-Whitney U, bootstrap 95% intervals); false discovery rate held at {} over them (Benjamini–Hochberg q-values)",
            rows.len(),
            signed_percent(options.settings.alpha).trim_start_matches('+')
        ));
    }
    let mut effect = format!(
        "minimum effect: {} (smaller changes are noise)",
        signed_percent(options.settings.noise).trim_start_matches('+')
    );
    for (metric, value) in &options.min_effect {
        effect.push_str(&format!(", {metric} {}", signed_percent(*value).trim_start_matches('+')));
    }
    notes.push(effect);
    if let Some(limit) = options.fail_above {
        notes.push(format!("fails on a change for the worse above {}", signed_percent(limit).trim_start_matches('+')));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Results {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/report/results.json");
        crate::results::store::load(std::path::Path::new(path)).expect("the report fixture loads")
    }

    #[test]
    fn runs_on_one_side_only_are_named_not_skipped_silently() {
        let a = fixture();
        let mut b = fixture();
        let dropped = b.runs.remove(0).id;
        let outcome = compare(std::slice::from_ref(&a), std::slice::from_ref(&b), &CompareOptions::default());
        assert!(outcome.notes.contains(&format!("only in A, not compared: {dropped}")), "{:?}", outcome.notes);
        assert!(!outcome.rows.iter().any(|row| row.run == dropped));
        let outcome = compare(&[b], &[a], &CompareOptions::default());
        assert!(outcome.notes.iter().any(|note| note.starts_with("only in B, not compared: ")), "{:?}", outcome.notes);
        let same = compare(&[fixture()], &[fixture()], &CompareOptions::default());
        assert!(!same.notes.iter().any(|note| note.starts_with("only in")), "{:?}", same.notes);
    }
}
