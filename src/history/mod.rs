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

mod postgres;
mod schema;
mod sql;
mod sqlite;
mod store;

use std::path::PathBuf;

use serde::Serialize;

use crate::analysis::changepoint::{self, ChangePoint, Settings};
use crate::analysis::stats;
use crate::metric::Better;
use crate::quantity::Dim;
use crate::results::histogram;

pub use schema::{MIGRATIONS, SCHEMA_VERSION};
pub use sql::Dialect;
pub use store::History;

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
    #[error("history {0}: neither a SQLite file path nor a postgres:// URL")]
    Location(String),
    /// A `postgres://` URL that does not parse.
    #[error("history {url}: not a PostgreSQL URL: {message}")]
    Url { url: String, message: String },
}

/// Where a history lives, as the user named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database: `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => write!(f, "{}", postgres::without_password(url)),
        }
    }
}

impl Location {
    /// `--history`, else `PHASEBENCH_HISTORY`, else [`DEFAULT_PATH`].
    pub fn choose(flag: Option<&str>, environment: Option<&str>) -> Result<Location, HistoryError> {
        let text = flag.or(environment.filter(|text| !text.is_empty())).unwrap_or(DEFAULT_PATH);
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return match postgres::check_url(text) {
                Ok(()) => Ok(Location::Postgres(text.to_string())),
                Err(message) => Err(HistoryError::Url { url: postgres::without_password(text), message }),
            };
        }
        if text.contains("://") {
            return Err(HistoryError::Location(postgres::without_password(text)));
        }
        Ok(Location::Sqlite(PathBuf::from(text)))
    }

    /// Opens it, creating or migrating the schema.
    pub fn open(&self) -> Result<History, HistoryError> {
        let shown = self.to_string();
        let fail = |message: String| HistoryError::Database { path: shown.clone(), message };
        let connection: Box<dyn sql::Connection> = match self {
            Location::Sqlite(path) => Box::new(sqlite::Sqlite::open(path).map_err(fail)?),
            Location::Postgres(url) => Box::new(postgres::Postgres::connect(url).map_err(fail)?),
        };
        History::over(shown, connection)
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
    /// Its 95% bootstrap interval (sampling noise of the operations
    /// measured; see [`realized_interval`]).
    pub realized_interval: Option<(f64, f64)>,
    /// Why there is no realized figure, when there is none.
    pub why: Option<String>,
}

/// One campaign's level of a figure, for a projection.
#[derive(Clone, Debug)]
pub enum Level {
    /// The runs' histograms added: the figure is a statistic of them.
    Pooled {
        /// The added histogram as (observations up to here, value in base
        /// units), ascending.
        steps: Vec<(u64, f64)>,
        /// Its mean and standard deviation, in base units.
        mean: f64,
        stdev: f64,
        /// `Some(q)` for a quantile, `None` for the mean.
        quantile: Option<f64>,
        /// Which way is better.
        better: Better,
    },
    /// One value per run (scalars, or runs without histograms).
    Values {
        /// The runs' values.
        values: Vec<f64>,
        /// Which way is better.
        better: Better,
    },
}

impl Level {
    /// The runs' histograms added, when every run has one of one scale
    /// and the statistic is a quantile or the mean.
    fn pool(histograms: Vec<(Option<hdrhistogram::Histogram<u64>>, f64)>, statistic: &str) -> Option<Level> {
        let quantile = match statistic {
            "p50" | "median" => Some(0.5),
            "p90" => Some(0.9),
            "p99" => Some(0.99),
            "p999" => Some(0.999),
            "mean" => None,
            _ => return None,
        };
        let scale = histograms.first()?.1;
        let mut added: Option<hdrhistogram::Histogram<u64>> = None;
        for (histogram, its_scale) in histograms {
            let histogram = histogram?;
            if its_scale != scale {
                return None;
            }
            match &mut added {
                Some(sum) => sum.add(&histogram).ok()?,
                None => added = Some(histogram),
            }
        }
        let histogram = added.filter(|h| !h.is_empty())?;
        Some(Level::from_histogram(&histogram, scale, quantile, Better::Lower))
    }

    /// A histogram (counts per base unit `scale`) read at `quantile`, or
    /// its mean.
    pub fn from_histogram(
        histogram: &hdrhistogram::Histogram<u64>,
        scale: f64,
        quantile: Option<f64>,
        better: Better,
    ) -> Level {
        let mut seen = 0;
        let steps = histogram
            .iter_recorded()
            .map(|bucket| {
                seen += bucket.count_at_value();
                (seen, bucket.value_iterated_to() as f64 / scale)
            })
            .collect();
        Level::Pooled { steps, mean: histogram.mean() / scale, stdev: histogram.stdev() / scale, quantile, better }
    }

    fn with_better(self, better: Better) -> Level {
        match self {
            Level::Pooled { steps, mean, stdev, quantile, .. } => {
                Level::Pooled { steps, mean, stdev, quantile, better }
            }
            Level::Values { values, .. } => Level::Values { values, better },
        }
    }

    fn better(&self) -> Better {
        match self {
            Level::Pooled { better, .. } | Level::Values { better, .. } => *better,
        }
    }

    /// The figure itself.
    pub fn value(&self) -> f64 {
        match self {
            Level::Pooled { steps, quantile: Some(q), .. } => read_at(steps, *q),
            Level::Pooled { mean, .. } => *mean,
            Level::Values { values, .. } => median(values.iter().copied()),
        }
    }

    /// One bootstrap replicate of the figure. A quantile of n pooled
    /// observations resamples as the histogram read at a rank drawn from
    /// the normal approximation of its order statistic's distribution,
    /// q ± z·√(q(1−q)/n); a mean as mean ± z·sd/√n; run values are
    /// resampled with replacement (two or more runs). `None` when the
    /// level has no spread to draw from.
    fn replicate(&self, generator: &mut crate::rng::SplitMix) -> Option<f64> {
        match self {
            Level::Pooled { steps, mean, stdev, quantile, .. } => {
                let n = steps.last()?.0 as f64;
                let z = standard_normal(generator);
                Some(match quantile {
                    Some(q) => read_at(steps, (q + z * (q * (1.0 - q) / n).sqrt()).clamp(0.0, 1.0)),
                    None => mean + z * stdev / n.sqrt(),
                })
            }
            Level::Values { values, .. } if values.len() >= 2 => {
                let resample: Vec<f64> =
                    (0..values.len()).map(|_| values[generator.below(values.len() as u64) as usize]).collect();
                stats::median(&resample)
            }
            Level::Values { .. } => None,
        }
    }
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

/// The value at quantile `q` of ascending (observations up to here,
/// value) steps: the value of the ⌈q·n⌉-th observation, as HdrHistogram
/// reads it.
fn read_at(steps: &[(u64, f64)], q: f64) -> f64 {
    let n = steps.last().map_or(0, |step| step.0);
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n.max(1));
    let index = steps.partition_point(|step| step.0 < rank);
    steps.get(index).or(steps.last()).map_or(f64::NAN, |step| step.1)
}

/// A standard normal variate (Box–Muller).
fn standard_normal(generator: &mut crate::rng::SplitMix) -> f64 {
    let u = generator.next_f64().max(f64::MIN_POSITIVE);
    let v = generator.next_f64();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// The improvement from `was` to `now` (positive is better), by `was`'s
/// direction; `None` when `was` is 0 or not finite.
pub fn realized_gain(was: &Level, now: &Level) -> Option<f64> {
    gain(was.value(), now.value(), was.better())
}

fn gain(was: f64, now: f64, better: Better) -> Option<f64> {
    if !(was.is_finite() && was != 0.0 && now.is_finite()) {
        return None;
    }
    Some(match better {
        Better::Lower => 1.0 - now / was,
        Better::Higher => now / was - 1.0,
    })
}

/// The 95% percentile interval of [`realized_gain`] over 2,000 seeded
/// bootstrap replicates of both levels ([`Level::replicate`]). It covers
/// the sampling noise of the operations measured in the two campaigns, not
/// the drift between campaigns that the change-point tests look at. `None`
/// when either level has nothing to resample (one run's scalar).
pub fn realized_interval(was: &Level, now: &Level, seed: u64) -> Option<(f64, f64)> {
    let mut generator = crate::rng::SplitMix::new(seed);
    let mut gains = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let (before, after) = (was.replicate(&mut generator)?, now.replicate(&mut generator)?);
        gains.push(gain(before, after, was.better())?);
    }
    gains.sort_unstable_by(f64::total_cmp);
    Some((gains[49], gains[1949]))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix;

    /// `n` lognormal latencies around `median` ns, as a pooled level.
    fn level(generator: &mut SplitMix, n: usize, median: f64, quantile: Option<f64>) -> Level {
        let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        for _ in 0..n {
            let value = median * (0.5 * standard_normal(generator)).exp();
            histogram.record(value.round().max(1.0) as u64).unwrap();
        }
        Level::from_histogram(&histogram, 1e9, quantile, Better::Lower)
    }

    #[test]
    fn a_pooled_level_reads_quantiles_as_the_histogram_does() {
        let mut generator = SplitMix::new(3);
        let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        for _ in 0..1_000 {
            histogram.record(1 + generator.below(5_000_000)).unwrap();
        }
        for q in [0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let level = Level::from_histogram(&histogram, 1e9, Some(q), Better::Lower);
            assert_eq!(level.value(), histogram.value_at_quantile(q) as f64 / 1e9, "q = {q}");
        }
    }

    /// The interval covers the true gain about 95% of the time, for the
    /// median and the p90 of a few hundred operations and for the mean: an
    /// interval drawn too narrow (or too wide) fails this.
    #[test]
    fn the_realized_interval_covers_the_true_gain_about_95_percent_of_the_time() {
        let mut generator = SplitMix::new(7);
        for (quantile, true_gain) in [(Some(0.5), 0.2), (Some(0.9), 0.2), (None, 0.2)] {
            let trials = 300;
            let mut covered = 0;
            let mut widths = Vec::new();
            for trial in 0..trials {
                let was = level(&mut generator, 400, 1_000_000.0, quantile);
                let now = level(&mut generator, 400, 800_000.0, quantile);
                let (low, high) = realized_interval(&was, &now, trial).unwrap();
                covered += usize::from(low <= true_gain && true_gain <= high);
                widths.push(high - low);
            }
            let rate = covered as f64 / trials as f64;
            println!("{quantile:?}: covered {rate}");
            assert!((0.90..=0.99).contains(&rate), "{quantile:?}: covered {rate}, widths around {:?}", widths[0]);
        }
    }

    #[test]
    fn one_value_a_side_has_no_interval_and_several_do() {
        let one = |value: f64| Level::Values { values: vec![value], better: Better::Higher };
        assert_eq!(realized_interval(&one(100.0), &one(120.0), 1), None);
        assert!((realized_gain(&one(100.0), &one(120.0)).unwrap() - 0.2).abs() < 1e-12);
        let several = |values: &[f64]| Level::Values { values: values.to_vec(), better: Better::Higher };
        let (low, high) =
            realized_interval(&several(&[98.0, 100.0, 102.0]), &several(&[118.0, 120.0, 122.0]), 1).unwrap();
        assert!(low < 0.2 && 0.2 < high && low > 0.1 && high < 0.3, "{low} {high}");
        assert_eq!(realized_gain(&one(0.0), &one(1.0)), None);
    }
}
