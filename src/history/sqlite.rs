//! The history in one SQLite file (bundled SQLite, no server).
//!
//! The file is opened in rollback-journal mode with `synchronous = FULL`: a
//! campaign is recorded in one transaction, so a process killed while
//! writing leaves the file as it was before that campaign, and the journal
//! is rolled back by the next open.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};

use super::schema::{MIGRATIONS, SCHEMA_VERSION};
use super::{series_run_name, shown, HistoryError, Recorded, Series, SeriesKey, StoredMetric};
use crate::analysis::roadmap::WHOLE_OPERATION;
use crate::analysis::targets::{self, TargetStatus};
use crate::analysis::Analysis;
use crate::metric::{Better, MetricKind};
use crate::quantity::Dim;
use crate::results::{DimRecord, Results};

/// An open SQLite history.
pub struct Sqlite {
    path: PathBuf,
    connection: Connection,
}

impl Sqlite {
    /// Opens (or creates) the file and brings its schema to this version.
    pub fn open(path: &Path) -> Result<Sqlite, HistoryError> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|error| HistoryError::Database { path: shown(path), message: error.to_string() })?;
        }
        let connection = Connection::open(path).map_err(|error| database(path, error))?;
        let mut history = Sqlite { path: path.to_path_buf(), connection };
        history.migrate()?;
        Ok(history)
    }

    fn fail(&self, error: impl std::fmt::Display) -> HistoryError {
        HistoryError::Database { path: shown(&self.path), message: error.to_string() }
    }

    fn migrate(&mut self) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let fail = |error: rusqlite::Error| database(&path, error);
        self.connection.busy_timeout(std::time::Duration::from_secs(30)).map_err(fail)?;
        self.connection
            .execute_batch("PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(fail)?;
        let transaction =
            self.connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(fail)?;
        transaction
            .execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", [])
            .map_err(fail)?;
        let found: Option<i64> = transaction
            .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
            .optional()
            .map_err(fail)?;
        let found = match found {
            Some(version) => version,
            None => {
                transaction.execute("INSERT INTO schema_version (version) VALUES (0)", []).map_err(fail)?;
                0
            }
        };
        if found > SCHEMA_VERSION {
            return Err(HistoryError::Newer { path: shown(&path), found, known: SCHEMA_VERSION });
        }
        for migration in &MIGRATIONS[found.max(0) as usize..] {
            transaction.execute_batch(migration).map_err(fail)?;
        }
        transaction.execute("UPDATE schema_version SET version = ?1", [SCHEMA_VERSION]).map_err(fail)?;
        transaction.commit().map_err(fail)
    }

    /// Records one results file (its run folder, and tags such as
    /// `after:flash-attention`), all or nothing; a file recorded before is
    /// left as it is.
    pub fn record(
        &mut self,
        results: &Results,
        analysis: &Analysis,
        folder: Option<&Path>,
        tags: &[String],
    ) -> Result<Recorded, HistoryError> {
        let key = campaign_key(results);
        let path = self.path.clone();
        let fail = |error: rusqlite::Error| database(&path, error);
        let transaction =
            self.connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(fail)?;
        let known: Option<i64> = transaction
            .query_row("SELECT id FROM campaigns WHERE key = ?1", [&key], |row| row.get(0))
            .optional()
            .map_err(fail)?;
        if let Some(campaign) = known {
            add_tags(&transaction, campaign, tags).map_err(fail)?;
            transaction.commit().map_err(fail)?;
            return Ok(Recorded::Known);
        }
        let campaign = insert_campaign(&transaction, results, &key, folder).map_err(fail)?;
        add_tags(&transaction, campaign, tags).map_err(fail)?;
        for candidate in &analysis.roadmap.candidates {
            transaction
                .execute(
                    "INSERT OR IGNORE INTO candidates (campaign, experiment, variant, workload, metric, part, share, projected_gain, projected_text)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        campaign,
                        candidate.experiment,
                        candidate.variant,
                        candidate.workload,
                        candidate.metric,
                        candidate.part,
                        candidate.share,
                        candidate.projected_gain,
                        candidate.projected_text,
                    ],
                )
                .map_err(fail)?;
        }
        let outcomes = targets::evaluate(results);
        for run in &results.runs {
            transaction
                .execute(
                    "INSERT INTO runs (campaign, name, series, phase, workload, engine, op, started_at, elapsed_ns, operations, errors, dropped, complete)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    params![
                        campaign,
                        run.id,
                        series_run_name(&run.id),
                        run.phase,
                        run.workload,
                        run.engine.kind,
                        run.op,
                        run.started_at.to_rfc3339(),
                        run.elapsed_ns as i64,
                        run.operations as i64,
                        run.errors as i64,
                        run.dropped as i64,
                        run.complete,
                    ],
                )
                .map_err(fail)?;
            let id = transaction.last_insert_rowid();
            for (name, metric) in &run.metrics {
                let summary = metric.summary.as_ref();
                transaction
                    .execute(
                        "INSERT INTO metrics (run, name, kind, dim, better, scale, value, count, mean, p50, p90, p99, p999, histogram)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                        params![
                            id,
                            name,
                            kind_text(metric.kind),
                            dim_text(metric.dim),
                            better_text(metric.better()),
                            metric.scale,
                            metric.value.or(summary.map(|s| s.p50)),
                            summary.map(|s| s.count as i64),
                            summary.map(|s| s.mean),
                            summary.map(|s| s.p50),
                            summary.map(|s| s.p90),
                            summary.map(|s| s.p99),
                            summary.map(|s| s.p999),
                            metric.histogram,
                        ],
                    )
                    .map_err(fail)?;
            }
            for (position, outcome) in outcomes.iter().filter(|outcome| outcome.run == run.id).enumerate() {
                transaction
                    .execute(
                        "INSERT INTO targets (run, position, target, status, measured) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id, position as i64, outcome.target, status_text(&outcome.status), outcome.measured],
                    )
                    .map_err(fail)?;
            }
        }
        transaction.commit().map_err(fail)?;
        Ok(Recorded::Added(results.runs.len()))
    }

    /// Tags a recorded campaign (by its order in the history).
    pub fn tag(&mut self, campaign: i64, tags: &[String]) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let fail = |error: rusqlite::Error| database(&path, error);
        let transaction = self.connection.transaction().map_err(fail)?;
        let exists: Option<i64> = transaction
            .query_row("SELECT id FROM campaigns WHERE id = ?1", [campaign], |row| row.get(0))
            .optional()
            .map_err(fail)?;
        if exists.is_none() {
            return Err(HistoryError::Database { path: shown(&path), message: format!("no campaign {campaign}") });
        }
        add_tags(&transaction, campaign, tags).map_err(fail)?;
        transaction.commit().map_err(fail)
    }

    /// Every series, optionally only those of one scenario, run name and
    /// metric, in the order of their keys. Smoke runs are left out: their
    /// figures are not measurements.
    pub fn series(
        &self,
        scenario: Option<&str>,
        run: Option<&str>,
        metric: Option<&str>,
    ) -> Result<Vec<Series>, HistoryError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT c.scenario, r.series, m.name, c.id, c.started_at, c.commit_id,
                        (SELECT group_concat(t.tag, char(31)) FROM (SELECT tag FROM tags WHERE campaign = c.id ORDER BY tag) t),
                        m.dim, m.better, m.scale, m.value, m.histogram
                 FROM metrics m JOIN runs r ON m.run = r.id JOIN campaigns c ON r.campaign = c.id
                 WHERE c.smoke = 0 AND r.complete = 1
                   AND (?1 IS NULL OR c.scenario = ?1) AND (?2 IS NULL OR r.series = ?2) AND (?3 IS NULL OR m.name = ?3)",
            )
            .map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map(params![scenario, run, metric], |row| {
                let key = SeriesKey { scenario: row.get(0)?, run: row.get(1)?, metric: row.get(2)? };
                let tags: Option<String> = row.get(6)?;
                let dim: String = row.get(7)?;
                let better: String = row.get(8)?;
                Ok((
                    key,
                    StoredMetric {
                        campaign: row.get(3)?,
                        started_at: row.get(4)?,
                        commit: row.get(5)?,
                        tags: tags.map(|tags| tags.split('\u{1f}').map(str::to_string).collect()).unwrap_or_default(),
                        dim: parse_dim(&dim),
                        better: if better == "higher" { Better::Higher } else { Better::Lower },
                        scale: row.get(9)?,
                        value: row.get(10)?,
                        histogram: row.get(11)?,
                    },
                ))
            })
            .map_err(|e| self.fail(e))?;
        let mut grouped: BTreeMap<SeriesKey, Vec<StoredMetric>> = BTreeMap::new();
        for row in rows {
            let (key, metric) = row.map_err(|e| self.fail(e))?;
            grouped.entry(key).or_default().push(metric);
        }
        Ok(grouped.into_iter().map(|(key, stored)| Series::pool(key, stored)).collect())
    }
}

fn database(path: &Path, error: rusqlite::Error) -> HistoryError {
    HistoryError::Database { path: shown(path), message: error.to_string() }
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

fn insert_campaign(
    transaction: &Transaction<'_>,
    results: &Results,
    key: &str,
    folder: Option<&Path>,
) -> rusqlite::Result<i64> {
    transaction.execute(
        "INSERT INTO campaigns (key, scenario, scenario_sha256, file, vars, version, commit_id, machine, started_at, finished_at, complete, smoke, folder)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            key,
            results.scenario.name,
            results.scenario.sha256,
            results.scenario.file,
            serde_json::to_string(&results.scenario.vars).unwrap_or_default(),
            results.phasebench.version,
            results.phasebench.commit,
            serde_json::to_string(&results.machine).unwrap_or_default(),
            results.started_at.to_rfc3339(),
            results.finished_at.map(|at| at.to_rfc3339()),
            results.complete,
            results.smoke,
            folder.map(|folder| folder.display().to_string()),
        ],
    )?;
    Ok(transaction.last_insert_rowid())
}

fn add_tags(transaction: &Transaction<'_>, campaign: i64, tags: &[String]) -> rusqlite::Result<()> {
    for tag in tags {
        transaction.execute("INSERT OR IGNORE INTO tags (campaign, tag) VALUES (?1, ?2)", params![campaign, tag])?;
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

impl Sqlite {
    /// Every campaign tagged `after:NAME`, held against the projection of
    /// the latest earlier campaign of its scenario that proposed `NAME`.
    pub fn projections(&self) -> Result<Vec<super::Projection>, HistoryError> {
        let fail = |error: rusqlite::Error| database(&self.path, error);
        let mut tagged = self
            .connection
            .prepare(
                "SELECT c.id, c.scenario, substr(t.tag, 7) FROM tags t JOIN campaigns c ON t.campaign = c.id
                 WHERE t.tag LIKE 'after:%' ORDER BY c.id, t.tag",
            )
            .map_err(fail)?;
        let tagged: Vec<(i64, String, String)> = tagged
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .map_err(fail)?
            .collect::<Result<_, _>>()
            .map_err(fail)?;
        let mut projections = Vec::new();
        for (after, scenario, experiment) in tagged {
            let proposed = self
                .connection
                .query_row(
                    "SELECT k.campaign, k.variant, k.workload, k.metric, k.part, k.projected_gain, k.projected_text
                     FROM candidates k JOIN campaigns c ON k.campaign = c.id
                     WHERE k.experiment = ?1 AND c.scenario = ?2 AND c.id < ?3 ORDER BY c.id DESC LIMIT 1",
                    params![experiment, scenario, after],
                    |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, String>(3)?,
                            row.get::<_, String>(4)?,
                            row.get::<_, Option<f64>>(5)?,
                            row.get::<_, String>(6)?,
                        ))
                    },
                )
                .optional()
                .map_err(fail)?;
            let Some((before, variant, workload, metric, part, projected, projected_text)) = proposed else {
                projections.push(super::Projection {
                    scenario,
                    experiment,
                    variant: None,
                    before: None,
                    after,
                    figure: String::new(),
                    projected: None,
                    projected_text: None,
                    realized: None,
                    why: Some("no earlier campaign of this scenario has it on its roadmap".into()),
                });
                continue;
            };
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
            let level = |campaign: i64| self.level(campaign, &workload, &experiment, &name, figure_column(&statistic));
            let realized = match (level(before)?, level(after)?) {
                (Some((was, better)), Some((now, _))) if was > 0.0 => Ok(match better {
                    Better::Lower => 1.0 - now / was,
                    Better::Higher => now / was - 1.0,
                }),
                (None, _) => Err(format!("campaign {before} has no complete run of `{workload}` with `{name}`")),
                (_, None) => Err(format!("campaign {after} has no complete run of `{workload}` with `{name}`")),
                _ => Err(format!("`{name}` was 0 before")),
            };
            projections.push(super::Projection {
                scenario,
                experiment,
                variant: Some(variant),
                before: Some(before),
                after,
                figure: format!("{name} {statistic}"),
                projected,
                projected_text: Some(projected_text),
                realized: realized.as_ref().ok().copied(),
                why: realized.err(),
            });
        }
        Ok(projections)
    }

    /// The median over a campaign's complete runs of `workload` (else of
    /// the experiment's baseline arm) of one metric's column, with the
    /// metric's direction.
    fn level(
        &self,
        campaign: i64,
        workload: &str,
        experiment: &str,
        metric: &str,
        column: &str,
    ) -> Result<Option<(f64, Better)>, HistoryError> {
        let fail = |error: rusqlite::Error| database(&self.path, error);
        for pattern in [format!("{workload}["), format!("{experiment}:baseline")] {
            let exact = if pattern.ends_with('[') { workload.to_string() } else { pattern.clone() };
            let sql = format!(
                "SELECT m.{column}, m.better FROM metrics m JOIN runs r ON m.run = r.id
                 WHERE r.campaign = ?1 AND r.complete = 1 AND m.name = ?2 AND m.{column} IS NOT NULL
                   AND (r.series = ?3 OR substr(r.series, 1, length(?4)) = ?4)"
            );
            let mut statement = self.connection.prepare(&sql).map_err(fail)?;
            let rows: Vec<(f64, String)> = statement
                .query_map(params![campaign, metric, exact, pattern], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(fail)?
                .collect::<Result<_, _>>()
                .map_err(fail)?;
            if let Some((_, better)) = rows.first() {
                let better = if better == "higher" { Better::Higher } else { Better::Lower };
                let value = super::median(rows.iter().map(|(value, _)| *value));
                return Ok(Some((value, better)));
            }
        }
        Ok(None)
    }
}
