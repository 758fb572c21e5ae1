//! Every run in a database, and the change points of its series.
//!
//! `phasebench run` and `merge` record each results file here once it is
//! safe on disk; `phasebench history import` records existing run folders.
//! A results file is one *campaign*; its runs are recorded with every
//! metric's summary, histogram and the status of every target, in one
//! transaction: after a crash a campaign is either all there or absent, and
//! recording the same file again changes nothing.
//!
//! A *series* is one metric of one run name of one scenario across
//! campaigns, oldest first: repetitions and experiment rounds of a campaign
//! are pooled into one point (their histograms added, their scalars'
//! median). [`changes`] looks for change points in a series twice: in its
//! medians, and in its distributions' log-quantile profiles, which moves
//! when only the tail does.

mod schema;
mod sqlite;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analysis::changepoint::{self, ChangePoint, Settings};
use crate::analysis::stats;
use crate::metric::Better;
use crate::quantity::Dim;
use crate::results::histogram;

pub use schema::{MIGRATIONS, SCHEMA_VERSION};
pub use sqlite::Sqlite;

/// Where the history is kept when nothing says otherwise.
pub const DEFAULT_PATH: &str = "runs/history.sqlite";

/// What can go wrong with a history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The database could not be opened, read or written.
    #[error("history {path}: {message}")]
    Database { path: String, message: String },
    /// The database was written by a newer phasebench.
    #[error(
        "history {path} has schema version {found}; this phasebench knows versions up to {known}: use a newer phasebench, or another --history"
    )]
    Newer { path: String, found: i64, known: i64 },
    /// A location no backend reads.
    #[error("history {0}: not a SQLite file path (postgres:// histories are not supported by this build yet)")]
    Location(String),
}

/// Where a history lives, as the user named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Location {
    /// `--history`, else `PHASEBENCH_HISTORY`, else [`DEFAULT_PATH`].
    pub fn choose(flag: Option<&str>, environment: Option<&str>) -> Result<Location, HistoryError> {
        let text = flag.or(environment.filter(|text| !text.is_empty())).unwrap_or(DEFAULT_PATH);
        if text.contains("://") {
            return Err(HistoryError::Location(text.to_string()));
        }
        Ok(Location::Sqlite(PathBuf::from(text)))
    }

    /// Opens it, creating or migrating the schema.
    pub fn open(&self) -> Result<Sqlite, HistoryError> {
        match self {
            Location::Sqlite(path) => Sqlite::open(path),
        }
    }
}

/// What recording a results file did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// A new campaign with this many runs.
    Added(usize),
    /// The file was recorded before: nothing changed.
    Known,
}

/// One stored metric of one run: enough for a series.
#[derive(Clone, Debug)]
pub struct StoredMetric {
    /// The campaign's order in the history (oldest first).
    pub campaign: i64,
    /// When the campaign started, RFC 3339.
    pub started_at: String,
    /// The phasebench commit that measured it.
    pub commit: String,
    /// The campaign's tags (`--tag`).
    pub tags: Vec<String>,
    /// Dimension of its values.
    pub dim: Dim,
    /// Histogram counts per base unit (1e9 for nanoseconds).
    pub scale: Option<f64>,
    /// Which way is better.
    pub better: Better,
    /// Its value in base units (scalars) or its median (distributions).
    pub value: Option<f64>,
    /// The histogram, V2 compressed, base64 (distributions).
    pub histogram: Option<String>,
}

/// The key of a series: scenario, run name (repetition and round left
/// out) and metric.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SeriesKey {
    /// Scenario name.
    pub scenario: String,
    /// Run name without its repetition (`@2`) or round (`#3`).
    pub run: String,
    /// Metric name.
    pub metric: String,
}

/// A run id without the repetition (`@2`) and experiment round (`#3`) it
/// may carry, so that every repetition adds to one series.
pub fn series_run_name(id: &str) -> String {
    let id = match id.rfind('@') {
        Some(at) if id[at + 1..].chars().all(|c| c.is_ascii_digit()) && at + 1 < id.len() => &id[..at],
        _ => id,
    };
    match id.find('#') {
        Some(hash) => {
            let rest = &id[hash + 1..];
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            format!("{}{}", &id[..hash], &rest[digits..])
        }
        None => id.to_string(),
    }
}

/// One point of a series: one campaign.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// The campaign's order in the history.
    pub campaign: i64,
    /// When it started.
    pub started_at: String,
    /// The phasebench commit that measured it.
    pub commit: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// The median (distributions, the runs' histograms added) or the
    /// median of the runs' values (scalars).
    pub value: f64,
    /// The p99 of the added histograms (distributions).
    pub p99: Option<f64>,
    /// Observations behind it (distributions).
    pub count: u64,
    /// The added histogram (distributions), for the profile.
    #[serde(skip)]
    histogram: Option<hdrhistogram::Histogram<u64>>,
}

/// A series: one metric of one run name of one scenario, oldest first.
#[derive(Clone, Debug, Serialize)]
pub struct Series {
    /// What it is.
    pub key: SeriesKey,
    /// Dimension of its values.
    #[serde(skip)]
    pub dim: Dim,
    /// Which way is better.
    pub better: Better,
    /// One point per campaign.
    pub points: Vec<Point>,
}

impl Series {
    /// Pools stored metrics (any order) into one point per campaign.
    pub fn pool(key: SeriesKey, mut stored: Vec<StoredMetric>) -> Series {
        stored.sort_by_key(|metric| metric.campaign);
        let dim = stored.first().map_or(Dim::NONE, |metric| metric.dim);
        let better = stored.first().map_or(Better::Lower, |metric| metric.better);
        let mut points = Vec::new();
        for group in stored.chunk_by(|a, b| a.campaign == b.campaign) {
            let first = &group[0];
            let scale = group.iter().find_map(|metric| metric.scale).filter(|scale| *scale > 0.0).unwrap_or(1.0);
            let mut added: Option<hdrhistogram::Histogram<u64>> = None;
            for decoded in group.iter().filter_map(|metric| histogram::decode(metric.histogram.as_deref()?).ok()) {
                match &mut added {
                    // Histograms of one metric share their bounds; one that
                    // does not fit is left out rather than distorting the rest.
                    Some(sum) => {
                        let _ = sum.add(&decoded);
                    }
                    None => added = Some(decoded),
                }
            }
            let point = match added {
                Some(h) if !h.is_empty() => Point {
                    campaign: first.campaign,
                    started_at: first.started_at.clone(),
                    commit: first.commit.clone(),
                    tags: first.tags.clone(),
                    value: h.value_at_quantile(0.5) as f64 / scale,
                    p99: Some(h.value_at_quantile(0.99) as f64 / scale),
                    count: h.len(),
                    histogram: Some(h),
                },
                _ => {
                    let median = median(group.iter().filter_map(|metric| metric.value));
                    if median.is_nan() {
                        continue;
                    }
                    Point {
                        campaign: first.campaign,
                        started_at: first.started_at.clone(),
                        commit: first.commit.clone(),
                        tags: first.tags.clone(),
                        value: median,
                        p99: None,
                        count: 0,
                        histogram: None,
                    }
                }
            };
            points.push(point);
        }
        Series { key, dim, better, points }
    }
}

/// A roadmap candidate's projected gain held against the gain realized
/// once it landed: the campaign tagged `after:EXPERIMENT` against the
/// latest earlier campaign of the scenario whose roadmap proposed it.
#[derive(Clone, Debug, Serialize)]
pub struct Projection {
    /// Scenario name.
    pub scenario: String,
    /// The experiment (the tag's name).
    pub experiment: String,
    /// The variant the roadmap proposed.
    pub variant: Option<String>,
    /// The campaign whose roadmap proposed it.
    pub before: Option<i64>,
    /// The campaign tagged as the one after it landed.
    pub after: i64,
    /// The figure compared, e.g. `latency mean` or `ttft p99`.
    pub figure: String,
    /// The projected improvement (positive is better).
    pub projected: Option<f64>,
    /// The projection as the roadmap printed it.
    pub projected_text: Option<String>,
    /// The realized improvement of that figure, before → after.
    pub realized: Option<f64>,
    /// Why there is no realized figure, when there is none.
    pub why: Option<String>,
}

impl Projection {
    /// Realized over projected: 1 when the change landed as projected;
    /// `None` when either is missing or nothing was projected.
    pub fn ratio(&self) -> Option<f64> {
        match (self.projected, self.realized) {
            (Some(projected), Some(realized)) if projected != 0.0 => Some(realized / projected),
            _ => None,
        }
    }
}

/// Which test found a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// E-Divisive on the series of medians (or scalar values).
    Median,
    /// E-Divisive on the distributions' log-quantile profiles.
    Distribution,
}

/// A change point of a series, told as a user reads it.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// Which test found it.
    pub test: Test,
    /// The first point after the change.
    pub index: usize,
    /// Its campaign.
    pub campaign: i64,
    /// Its permutation p-value.
    pub p_value: f64,
    /// Median of the segment after over the segment before, minus 1
    /// (medians; for the distribution test, of the p99s).
    pub change: f64,
    /// Whether that change is for the worse, by the metric's direction.
    pub regression: bool,
    /// The commit of the last point before it, when it differs from its own.
    pub from_commit: Option<String>,
    /// Its commit.
    pub commit: String,
}

/// The change points of a series, by both tests, in the order of the
/// series.
pub fn changes(series: &Series, settings: &Settings) -> Vec<Change> {
    let medians: Vec<Vec<f64>> = series.points.iter().map(|point| vec![point.value]).collect();
    let mut found: Vec<Change> = Vec::new();
    let mut add = |test: Test, points: Vec<ChangePoint>, level: &dyn Fn(&Point) -> f64| {
        let mut cuts: Vec<usize> = points.iter().map(|point| point.index).collect();
        cuts.sort_unstable();
        for point in &points {
            let before_start = cuts.iter().copied().filter(|cut| *cut < point.index).max().unwrap_or(0);
            let after_end = cuts.iter().copied().find(|cut| *cut > point.index).unwrap_or(series.points.len());
            let before = median(series.points[before_start..point.index].iter().map(level));
            let after = median(series.points[point.index..after_end].iter().map(level));
            let change = if before != 0.0 { after / before - 1.0 } else { 0.0 };
            let regression = match series.better {
                Better::Lower => change > 0.0,
                Better::Higher => change < 0.0,
            };
            let (previous, first) = (&series.points[point.index - 1], &series.points[point.index]);
            found.push(Change {
                test,
                index: point.index,
                campaign: first.campaign,
                p_value: point.p_value,
                change,
                regression,
                from_commit: (previous.commit != first.commit).then(|| previous.commit.clone()),
                commit: first.commit.clone(),
            });
        }
    };
    add(Test::Median, changepoint::e_divisive(&medians, settings), &|point| point.value);
    if let Some(profiles) = profiles(series) {
        add(Test::Distribution, changepoint::e_divisive(&profiles, settings), &|point| {
            point.p99.unwrap_or(point.value)
        });
    }
    found.sort_by_key(|change| (change.index, change.test == Test::Distribution));
    found
}

/// The log-quantile profile of every point, read at the quantiles the
/// smallest of them supports; `None` when a point has no histogram.
fn profiles(series: &Series) -> Option<Vec<Vec<f64>>> {
    let histograms: Vec<&hdrhistogram::Histogram<u64>> =
        series.points.iter().map(|point| point.histogram.as_ref()).collect::<Option<_>>()?;
    let fewest = histograms.iter().map(|h| h.len()).min()?;
    let quantiles = changepoint::profile_quantiles(fewest);
    if quantiles.is_empty() {
        return None;
    }
    Some(histograms.iter().map(|h| changepoint::log_profile(h, &quantiles)).collect())
}

/// The median of the finite values; NaN when there are none.
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let finite: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    stats::median(&finite).unwrap_or(f64::NAN)
}

/// `path` as the history names it in messages.
fn shown(path: &Path) -> String {
    path.display().to_string()
}
