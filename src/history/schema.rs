//! The history's tables, and the migrations that build them.
//!
//! `schema_version` holds one row: the version the tables are at. Opening
//! a history applies the migrations after it in one transaction; a version
//! above [`SCHEMA_VERSION`] was written by a newer phasebench, and is
//! refused rather than misread.
//!
//! One text serves SQLite and PostgreSQL: `{id}`, `{int}` and `{real}` are
//! written out by [`Dialect::schema`](super::sql::Dialect::schema).

/// The version this phasebench writes.
pub const SCHEMA_VERSION: i64 = 2;

/// Migration `k` (from version `k` to `k + 1`), with the dialect's types
/// still to be written out.
pub const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [V1, V2];

/// Version 2: each campaign's roadmap candidates, so that a later campaign
/// tagged `after:EXPERIMENT` can be held against what was projected.
const V2: &str = "
CREATE TABLE candidates (
    campaign {int} NOT NULL REFERENCES campaigns(id),
    experiment TEXT NOT NULL,
    variant TEXT NOT NULL,
    workload TEXT NOT NULL,
    metric TEXT NOT NULL,
    part TEXT NOT NULL,
    share {real},
    projected_gain {real},
    projected_text TEXT NOT NULL,
    PRIMARY KEY (campaign, experiment)
);
";

const V1: &str = "
CREATE TABLE campaigns (
    id {id},
    key TEXT NOT NULL UNIQUE,
    scenario TEXT NOT NULL,
    scenario_sha256 TEXT NOT NULL,
    file TEXT NOT NULL,
    vars TEXT NOT NULL,
    version TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    machine TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    complete {int} NOT NULL,
    smoke {int} NOT NULL,
    folder TEXT
);
CREATE TABLE runs (
    id {id},
    campaign {int} NOT NULL REFERENCES campaigns(id),
    name TEXT NOT NULL,
    series TEXT NOT NULL,
    phase TEXT NOT NULL,
    workload TEXT NOT NULL,
    engine TEXT NOT NULL,
    op TEXT NOT NULL,
    started_at TEXT NOT NULL,
    elapsed_ns {int} NOT NULL,
    operations {int} NOT NULL,
    errors {int} NOT NULL,
    dropped {int} NOT NULL,
    complete {int} NOT NULL,
    UNIQUE (campaign, name)
);
CREATE INDEX runs_series ON runs (series);
CREATE TABLE metrics (
    run {int} NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    dim TEXT NOT NULL,
    better TEXT NOT NULL,
    scale {real},
    value {real},
    count {int},
    mean {real},
    p50 {real},
    p90 {real},
    p99 {real},
    p999 {real},
    histogram TEXT,
    PRIMARY KEY (run, name)
);
CREATE TABLE targets (
    run {int} NOT NULL REFERENCES runs(id),
    position {int} NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    measured {real},
    PRIMARY KEY (run, position)
);
CREATE TABLE tags (
    campaign {int} NOT NULL REFERENCES campaigns(id),
    tag TEXT NOT NULL,
    PRIMARY KEY (campaign, tag)
);
";
