//! Recording campaigns and reading series back, once for every backend.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::schema::{MIGRATIONS, SCHEMA_VERSION};
use super::sql::{Connection, Value};
use super::{series_run_name, HistoryError, Level, Projection, Recorded, Series, SeriesKey, StoredMetric};
use crate::analysis::roadmap::WHOLE_OPERATION;
use crate::analysis::targets::{self, TargetStatus};
use crate::analysis::Analysis;
use crate::metric::{Better, MetricKind};
use crate::quantity::Dim;
use crate::results::{histogram, DimRecord, Results};

/// An open history: a connection, and how messages name it.
pub struct History {
    /// The file or URL (without its password).
    shown: String,
    connection: Box<dyn Connection>,
}

impl History {
    /// Wraps a connection and brings its schema to this version.
    pub(super) fn over(shown: String, connection: Box<dyn Connection>) -> Result<History, HistoryError> {
        let mut history = History { shown, connection };
        history.migrate()?;
        Ok(history)
    }

    fn fail(&self, message: String) -> HistoryError {
        HistoryError::Database { path: self.shown.clone(), message }
    }

    /// Runs `work` in one write transaction: committed when it succeeds,
    /// rolled back when it fails.
    fn transaction<T>(
        &mut self,
        work: impl FnOnce(&mut dyn Connection) -> Result<T, HistoryError>,
    ) -> Result<T, HistoryError> {
        self.connection.begin().map_err(|message| self.fail(message))?;
        match work(self.connection.as_mut()) {
            Ok(value) => {
                self.connection.commit().map_err(|message| self.fail(message))?;
                Ok(value)
            }
            Err(error) => {
                // The first error is the one worth telling.
                let _ = self.connection.rollback();
                Err(error)
            }
        }
    }

    fn migrate(&mut self) -> Result<(), HistoryError> {
        let shown = self.shown.clone();
        let dialect = self.connection.dialect();
        let fail = |message: String| HistoryError::Database { path: shown.clone(), message };
        self.transaction(|connection| {
            connection
                .batch(&dialect.schema("CREATE TABLE IF NOT EXISTS schema_version (version {int} NOT NULL)"))
                .map_err(fail)?;
            let found = connection.query_row("SELECT version FROM schema_version", &[]).map_err(fail)?;
            let found = match found {
                Some(row) => row.int(0).map_err(fail)?,
                None => {
                    connection.execute("INSERT INTO schema_version (version) VALUES (0)", &[]).map_err(fail)?;
                    0
                }
            };
            if found > SCHEMA_VERSION {
                return Err(HistoryError::Newer { path: shown.clone(), found, known: SCHEMA_VERSION });
            }
            for migration in &MIGRATIONS[found.max(0) as usize..] {
                connection.batch(&dialect.schema(migration)).map_err(fail)?;
            }
            connection.execute("UPDATE schema_version SET version = ?1", &[SCHEMA_VERSION.into()]).map_err(fail)?;
            Ok(())
        })
    }

    /// Records one results file (its run folder, and tags such as
    /// `after:flash-attention`), all or nothing; a file recorded before is
    /// left as it is, but for the tags.
    pub fn record(
        &mut self,
        results: &Results,
        analysis: &Analysis,
        folder: Option<&Path>,
        tags: &[String],
    ) -> Result<Recorded, HistoryError> {
        let key = campaign_key(results);
        let shown = self.shown.clone();
        let fail = |message: String| HistoryError::Database { path: shown.clone(), message };
        self.transaction(|connection| {
            let known = connection.query_row("SELECT id FROM campaigns WHERE key = ?1", &[key.as_str().into()]);
            if let Some(row) = known.map_err(fail)? {
                add_tags(connection, row.int(0).map_err(fail)?, tags).map_err(fail)?;
                return Ok(Recorded::Known);
            }
            record_new(connection, results, analysis, &key, folder, tags).map_err(fail)?;
            Ok(Recorded::Added(results.runs.len()))
        })
    }

    /// Tags a recorded campaign (by its number in the history).
    pub fn tag(&mut self, campaign: i64, tags: &[String]) -> Result<(), HistoryError> {
        let shown = self.shown.clone();
        let fail = |message: String| HistoryError::Database { path: shown.clone(), message };
        self.transaction(|connection| {
            let exists = connection.query_row("SELECT id FROM campaigns WHERE id = ?1", &[campaign.into()]);
            if exists.map_err(fail)?.is_none() {
                return Err(fail(format!("no campaign {campaign}")));
            }
            add_tags(connection, campaign, tags).map_err(fail)
        })
    }

    /// Every campaign's tags, each campaign's sorted.
    fn tags(&mut self) -> Result<HashMap<i64, Vec<String>>, String> {
        let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
        for row in self.connection.query("SELECT campaign, tag FROM tags", &[])? {
            tags.entry(row.int(0)?).or_default().push(row.text(1)?);
        }
        for list in tags.values_mut() {
            list.sort();
        }
        Ok(tags)
    }

    /// Every series, optionally only those of one scenario, run name and
    /// metric, in the order of their keys. Smoke runs are left out: their
    /// figures are not measurements.
    pub fn series(
        &mut self,
        scenario: Option<&str>,
        run: Option<&str>,
        metric: Option<&str>,
    ) -> Result<Vec<Series>, HistoryError> {
        self.load_series(scenario, run, metric).map_err(|message| self.fail(message))
    }

    fn load_series(
        &mut self,
        scenario: Option<&str>,
        run: Option<&str>,
        metric: Option<&str>,
    ) -> Result<Vec<Series>, String> {
        let tags = self.tags()?;
        let mut sql = String::from(
            "SELECT c.scenario, r.series, m.name, c.id, c.started_at, c.commit_id,
                    m.dim, m.better, m.scale, m.value, m.histogram
             FROM metrics m JOIN runs r ON m.run = r.id JOIN campaigns c ON r.campaign = c.id
             WHERE c.smoke = 0 AND r.complete = 1",
        );
        let mut params = Vec::new();
        for (column, wanted) in [("c.scenario", scenario), ("r.series", run), ("m.name", metric)] {
            if let Some(wanted) = wanted {
                params.push(Value::from(wanted));
                sql.push_str(&format!(" AND {column} = ?{}", params.len()));
            }
        }
        let mut grouped: BTreeMap<SeriesKey, Vec<StoredMetric>> = BTreeMap::new();
        for row in self.connection.query(&sql, &params)? {
            let key = SeriesKey { scenario: row.text(0)?, run: row.text(1)?, metric: row.text(2)? };
            let campaign = row.int(3)?;
            let stored = StoredMetric {
                campaign,
                started_at: row.text(4)?,
                commit: row.text(5)?,
                tags: tags.get(&campaign).cloned().unwrap_or_default(),
                dim: parse_dim(&row.text(6)?),
                better: parse_better(&row.text(7)?),
                scale: row.real(8)?,
                value: row.real(9)?,
                histogram: row.text_or_null(10)?,
            };
            grouped.entry(key).or_default().push(stored);
        }
        Ok(grouped.into_iter().map(|(key, stored)| Series::pool(key, stored)).collect())
    }

    /// Every campaign tagged `after:NAME`, held against the projection of
    /// the latest earlier campaign of its scenario that proposed `NAME`.
    pub fn projections(&mut self) -> Result<Vec<Projection>, HistoryError> {
        self.load_projections().map_err(|message| self.fail(message))
    }

    fn load_projections(&mut self) -> Result<Vec<Projection>, String> {
        let mut tagged: Vec<(i64, String, String)> = Vec::new();
        for row in self.connection.query(
            "SELECT c.id, c.scenario, t.tag FROM tags t JOIN campaigns c ON t.campaign = c.id
             WHERE t.tag LIKE 'after:%'",
            &[],
        )? {
            let tag = row.text(2)?;
            let experiment = tag.strip_prefix("after:").unwrap_or(&tag).to_string();
            tagged.push((row.int(0)?, row.text(1)?, experiment));
        }
        tagged.sort();
        let mut projections = Vec::new();
        for (after, scenario, experiment) in tagged {
            let proposed = self.connection.query_row(
                "SELECT k.campaign, k.variant, k.workload, k.metric, k.part, k.projected_gain, k.projected_text
                 FROM candidates k JOIN campaigns c ON k.campaign = c.id
                 WHERE k.experiment = ?1 AND c.scenario = ?2 AND c.id < ?3 ORDER BY c.id DESC LIMIT 1",
                &[experiment.as_str().into(), scenario.as_str().into(), after.into()],
            )?;
            let Some(proposed) = proposed else {
                projections.push(Projection {
                    scenario,
                    experiment,
                    variant: None,
                    before: None,
                    after,
                    figure: String::new(),
                    projected: None,
                    projected_text: None,
                    realized: None,
                    realized_interval: None,
                    why: Some("no earlier campaign of this scenario has it on its roadmap".into()),
                });
                continue;
            };
            let before = proposed.int(0)?;
            let (workload, metric, part) = (proposed.text(2)?, proposed.text(3)?, proposed.text(4)?);
            // A named part projects the workload's mean latency (Amdahl);
            // otherwise the judged figure itself.
            let (name, statistic) = if part != WHOLE_OPERATION {
                ("latency".to_string(), "mean".to_string())
            } else {
                match metric.split_once('.') {
                    Some((name, statistic)) => (name.to_string(), statistic.to_string()),
                    None => (metric.clone(), "value".to_string()),
                }
            };
            let was = self.level(before, &workload, &experiment, &name, &statistic)?;
            let now = self.level(after, &workload, &experiment, &name, &statistic)?;
            let (realized, interval) = match (&was, &now) {
                (Some(was), Some(now)) => match super::realized_gain(was, now) {
                    Some(gain) => (Ok(gain), super::realized_interval(was, now, before as u64)),
                    None => (Err(format!("`{name}` was 0 before")), None),
                },
                (None, _) => {
                    (Err(format!("campaign {before} has no complete run of `{workload}` with `{name}`")), None)
                }
                (_, None) => (Err(format!("campaign {after} has no complete run of `{workload}` with `{name}`")), None),
            };
            projections.push(Projection {
                scenario,
                experiment,
                variant: Some(proposed.text(1)?),
                before: Some(before),
                after,
                figure: format!("{name} {statistic}"),
                projected: proposed.real(5)?,
                projected_text: Some(proposed.text(6)?),
                realized: realized.as_ref().ok().copied(),
                realized_interval: interval,
                why: realized.err(),
            });
        }
        Ok(projections)
    }

    /// A campaign's level of one figure: its complete runs of `workload`
    /// (else of the experiment's baseline arm), their histograms added
    /// when every run has one, else the runs' values of the column.
    fn level(
        &mut self,
        campaign: i64,
        workload: &str,
        experiment: &str,
        metric: &str,
        statistic: &str,
    ) -> Result<Option<Level>, String> {
        let column = figure_column(statistic);
        let rows = self.connection.query(
            &format!(
                "SELECT r.series, m.{column}, m.better, m.histogram, m.scale FROM metrics m JOIN runs r ON m.run = r.id
                 WHERE r.campaign = ?1 AND r.complete = 1 AND m.name = ?2 AND m.{column} IS NOT NULL"
            ),
            &[campaign.into(), metric.into()],
        )?;
        let workload_runs = |series: &str| series == workload || series.starts_with(&format!("{workload}["));
        let baseline = format!("{experiment}:baseline");
        let baseline_runs = |series: &str| series.starts_with(&baseline);
        for matches in [&workload_runs as &dyn Fn(&str) -> bool, &baseline_runs] {
            let mut chosen = Vec::new();
            for row in &rows {
                if matches(&row.text(0)?) {
                    chosen.push(row);
                }
            }
            let Some(first) = chosen.first() else { continue };
            let better = parse_better(&first.text(2)?);
            let values: Vec<f64> =
                chosen.iter().map(|row| row.real(1)).collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
            let mut histograms = Vec::new();
            for row in &chosen {
                let decoded = row.text_or_null(3)?.and_then(|text| histogram::decode(&text).ok());
                histograms.push((decoded, row.real(4)?.filter(|scale| *scale > 0.0).unwrap_or(1.0)));
            }
            let pooled = Level::pool(histograms, statistic);
            return Ok(Some(pooled.unwrap_or(Level::Values { values, better }).with_better(better)));
        }
        Ok(None)
    }
}

fn record_new(
    connection: &mut dyn Connection,
    results: &Results,
    analysis: &Analysis,
    key: &str,
    folder: Option<&Path>,
    tags: &[String],
) -> Result<(), String> {
    let campaign = connection
        .query_row(
            "INSERT INTO campaigns (key, scenario, scenario_sha256, file, vars, version, commit_id, machine, started_at, finished_at, complete, smoke, folder)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
            &[
                key.into(),
                results.scenario.name.as_str().into(),
                results.scenario.sha256.as_str().into(),
                results.scenario.file.as_str().into(),
                serde_json::to_string(&results.scenario.vars).unwrap_or_default().into(),
                results.phasebench.version.as_str().into(),
                results.phasebench.commit.as_str().into(),
                serde_json::to_string(&results.machine).unwrap_or_default().into(),
                results.started_at.to_rfc3339().into(),
                results.finished_at.map(|at| at.to_rfc3339()).into(),
                results.complete.into(),
                results.smoke.into(),
                folder.map(|folder| folder.display().to_string()).into(),
            ],
        )?
        .ok_or("the new campaign has no id")?
        .int(0)?;
    add_tags(connection, campaign, tags)?;
    for candidate in &analysis.roadmap.candidates {
        connection.execute(
            "INSERT INTO candidates (campaign, experiment, variant, workload, metric, part, share, projected_gain, projected_text)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
            &[
                campaign.into(),
                (&candidate.experiment).into(),
                (&candidate.variant).into(),
                (&candidate.workload).into(),
                (&candidate.metric).into(),
                (&candidate.part).into(),
                candidate.share.into(),
                candidate.projected_gain.into(),
                (&candidate.projected_text).into(),
            ],
        )?;
    }
    let outcomes = targets::evaluate(results);
    for run in &results.runs {
        let id = connection
            .query_row(
                "INSERT INTO runs (campaign, name, series, phase, workload, engine, op, started_at, elapsed_ns, operations, errors, dropped, complete)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
                &[
                    campaign.into(),
                    (&run.id).into(),
                    series_run_name(&run.id).into(),
                    (&run.phase).into(),
                    (&run.workload).into(),
                    (&run.engine.kind).into(),
                    (&run.op).into(),
                    run.started_at.to_rfc3339().into(),
                    (run.elapsed_ns as i64).into(),
                    (run.operations as i64).into(),
                    (run.errors as i64).into(),
                    (run.dropped as i64).into(),
                    run.complete.into(),
                ],
            )?
            .ok_or("the new run has no id")?
            .int(0)?;
        for (name, metric) in &run.metrics {
            let summary = metric.summary.as_ref();
            connection.execute(
                "INSERT INTO metrics (run, name, kind, dim, better, scale, value, count, mean, p50, p90, p99, p999, histogram)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                &[
                    id.into(),
                    name.into(),
                    kind_text(metric.kind).into(),
                    dim_text(metric.dim).into(),
                    better_text(metric.better()).into(),
                    metric.scale.into(),
                    metric.value.or(summary.map(|s| s.p50)).into(),
                    summary.map(|s| s.count as i64).into(),
                    summary.map(|s| s.mean).into(),
                    summary.map(|s| s.p50).into(),
                    summary.map(|s| s.p90).into(),
                    summary.map(|s| s.p99).into(),
                    summary.map(|s| s.p999).into(),
                    metric.histogram.as_deref().into(),
                ],
            )?;
        }
        for (position, outcome) in outcomes.iter().filter(|outcome| outcome.run == run.id).enumerate() {
            connection.execute(
                "INSERT INTO targets (run, position, target, status, measured) VALUES (?1, ?2, ?3, ?4, ?5)",
                &[
                    id.into(),
                    (position as i64).into(),
                    (&outcome.target).into(),
                    status_text(&outcome.status).into(),
                    outcome.measured.into(),
                ],
            )?;
        }
    }
    Ok(())
}

/// What makes a results file the same campaign when recorded again: its
/// scenario file, when it started, and each run's id, shard and start.
fn campaign_key(results: &Results) -> String {
    let mut hash = Sha256::new();
    hash.update(results.scenario.sha256.as_bytes());
    hash.update([0]);
    hash.update(results.started_at.to_rfc3339().as_bytes());
    for run in &results.runs {
        hash.update([0]);
        hash.update(run.id.as_bytes());
        hash.update([0]);
        hash.update(serde_json::to_string(&run.shard).unwrap_or_default().as_bytes());
        hash.update([0]);
        hash.update(run.started_at.to_rfc3339().as_bytes());
    }
    hash.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

fn add_tags(connection: &mut dyn Connection, campaign: i64, tags: &[String]) -> Result<(), String> {
    for tag in tags {
        connection.execute(
            "INSERT INTO tags (campaign, tag) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            &[campaign.into(), tag.into()],
        )?;
    }
    Ok(())
}

fn kind_text(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Distribution => "distribution",
        MetricKind::Scalar => "scalar",
    }
}

fn better_text(better: Better) -> &'static str {
    match better {
        Better::Lower => "lower",
        Better::Higher => "higher",
    }
}

fn parse_better(text: &str) -> Better {
    if text == "higher" {
        Better::Higher
    } else {
        Better::Lower
    }
}

fn dim_text(dim: DimRecord) -> String {
    format!("{},{},{}", dim.time, dim.bytes, dim.tokens)
}

fn parse_dim(text: &str) -> Dim {
    let mut parts = text.split(',').map(|part| part.parse::<i8>().unwrap_or(0));
    Dim { time: parts.next().unwrap_or(0), bytes: parts.next().unwrap_or(0), tokens: parts.next().unwrap_or(0) }
}

fn status_text(status: &TargetStatus) -> &'static str {
    match status {
        TargetStatus::Held => "held",
        TargetStatus::Missed => "missed",
        TargetStatus::NotJudged(_) => "not judged",
        TargetStatus::Unknown(_) => "unknown",
    }
}

/// The statistic a candidate's metric names, as the metrics column that holds it.
fn figure_column(statistic: &str) -> &'static str {
    match statistic {
        "p50" | "median" => "p50",
        "p90" => "p90",
        "p99" => "p99",
        "p999" => "p999",
        "mean" => "mean",
        _ => "value",
    }
}
