//! The history's tables, and the migrations that build them.
//!
//! `schema_version` holds one row: the version the tables are at. Opening
//! a history applies the migrations after it in one transaction; a version
//! above [`SCHEMA_VERSION`] was written by a newer phasebench, and is
//! refused rather than misread.

/// The version this phasebench writes.
pub const SCHEMA_VERSION: i64 = 2;

/// Migration `k` (from version `k` to `k + 1`).
pub const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [V1, V2];

/// Version 2: each campaign's roadmap candidates, so that a later campaign
/// tagged `after:EXPERIMENT` can be held against what was projected.
const V2: &str = "
CREATE TABLE candidates (
    campaign INTEGER NOT NULL REFERENCES campaigns(id),
    experiment TEXT NOT NULL,
    variant TEXT NOT NULL,
    workload TEXT NOT NULL,
    metric TEXT NOT NULL,
    part TEXT NOT NULL,
    share REAL,
    projected_gain REAL,
    projected_text TEXT NOT NULL,
    PRIMARY KEY (campaign, experiment)
);
";

const V1: &str = "
CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY,
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
    complete INTEGER NOT NULL,
    smoke INTEGER NOT NULL,
    folder TEXT
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    campaign INTEGER NOT NULL REFERENCES campaigns(id),
    name TEXT NOT NULL,
    series TEXT NOT NULL,
    phase TEXT NOT NULL,
    workload TEXT NOT NULL,
    engine TEXT NOT NULL,
    op TEXT NOT NULL,
    started_at TEXT NOT NULL,
    elapsed_ns INTEGER NOT NULL,
    operations INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    dropped INTEGER NOT NULL,
    complete INTEGER NOT NULL,
    UNIQUE (campaign, name)
);
CREATE INDEX runs_series ON runs (series);
CREATE TABLE metrics (
    run INTEGER NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    dim TEXT NOT NULL,
    better TEXT NOT NULL,
    scale REAL,
    value REAL,
    count INTEGER,
    mean REAL,
    p50 REAL,
    p90 REAL,
    p99 REAL,
    p999 REAL,
    histogram TEXT,
    PRIMARY KEY (run, name)
);
CREATE TABLE targets (
    run INTEGER NOT NULL REFERENCES runs(id),
    position INTEGER NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    measured REAL,
    PRIMARY KEY (run, position)
);
CREATE TABLE tags (
    campaign INTEGER NOT NULL REFERENCES campaigns(id),
    tag TEXT NOT NULL,
    PRIMARY KEY (campaign, tag)
);
";
