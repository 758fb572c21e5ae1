//! The history database: runs recorded once, series shown, a regression
//! found by `history check`, a newer schema refused, and a process killed
//! while recording leaves every campaign whole or absent.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{phasebench, status, Scenario};
use rusqlite::Connection;

/// A scenario whose sleep takes `${d}`: a slowdown is a `--var`.
const SLEEP: &str = "
scenario: history-sleep
engines: { cal: { kind: calibrate } }
vars: { d: 200us }
phases:
  - name: p
    workloads:
      - name: nap
        engine: cal
        op: sleep
        with: { duration: \"${d}\" }
        warmup: 20x
        iterations: 300
";

fn history_command(db: &Path, args: &[&str]) -> std::process::Output {
    phasebench().arg("history").args(args).arg("--history").arg(db).output().expect("phasebench history")
}

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Runs the scenario once per duration, each into its own folder, recording into `db`.
fn campaigns(scenario: &Scenario, db: &Path, durations: &[&str]) -> Vec<PathBuf> {
    durations
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let out = scenario.dir.path().join(format!("run-{i:02}"));
            let output = phasebench()
                .arg("run")
                .arg(&scenario.file)
                .arg("--out")
                .arg(&out)
                .arg("--quiet")
                .arg("--var")
                .arg(format!("d={d}"))
                .arg("--history")
                .arg(db)
                .output()
                .expect("run");
            assert_eq!(status(&output), 0, "{}", text(&output));
            assert!(text(&output).contains("history: recorded in"), "{}", text(&output));
            out
        })
        .collect()
}

#[test]
fn runs_are_recorded_once_and_a_slowdown_is_a_regression_history_check_fails_on() {
    let scenario = Scenario::new(SLEEP);
    let db = scenario.dir.path().join("history.sqlite");
    let mut durations = vec!["200us"; 14];
    durations.extend(["700us"; 4]);
    let folders = campaigns(&scenario, &db, &durations);

    // Importing what is already recorded changes nothing.
    let mut import = vec!["import"];
    import.extend(folders.iter().map(|f| f.to_str().unwrap()));
    let output = history_command(&db, &import);
    assert_eq!(status(&output), 0, "{}", text(&output));
    assert!(text(&output).contains("0 campaigns (0 runs) recorded, 18 recorded before"), "{}", text(&output));

    let output = history_command(&db, &["show", "--metric", "latency"]);
    assert_eq!(status(&output), 0, "{}", text(&output));
    let shown = text(&output);
    assert!(shown.contains("history-sleep / nap / latency"), "{shown}");
    assert_eq!(shown.lines().filter(|line| line.trim_start().starts_with(char::is_numeric)).count(), 18, "{shown}");
    // The slowdown is marked where it starts (the sleeps before it may
    // drift by a few percent, which the test may also mark).
    let marked = shown.lines().find(|line| line.trim_start().starts_with("15 ")).unwrap();
    assert!(marked.contains("◆ median +"), "the change starts at campaign 15:\n{shown}");

    let output = history_command(&db, &["check", "--metric", "latency"]);
    assert_eq!(status(&output), 1, "{}", text(&output));
    assert!(text(&output).contains("regression: history-sleep / nap / latency: +"), "{}", text(&output));
    // Not among the newest two campaigns: nothing to fail on.
    let output = history_command(&db, &["check", "--metric", "latency", "--newest", "2"]);
    assert_eq!(status(&output), 0, "{}", text(&output));
}

#[test]
fn a_speedup_is_a_change_but_not_a_regression() {
    let scenario = Scenario::new(SLEEP);
    let db = scenario.dir.path().join("history.sqlite");
    let mut durations = vec!["700us"; 10];
    durations.extend(["200us"; 4]);
    campaigns(&scenario, &db, &durations);
    let output = history_command(&db, &["show", "--metric", "latency"]);
    assert!(text(&output).contains("◆ median -"), "{}", text(&output));
    let output = history_command(&db, &["check", "--metric", "latency"]);
    assert_eq!(status(&output), 0, "{}", text(&output));
}

#[test]
fn a_history_from_a_newer_phasebench_is_refused_and_left_alone() {
    let scenario = Scenario::new(SLEEP);
    let db = scenario.dir.path().join("history.sqlite");
    campaigns(&scenario, &db, &["200us"]);
    Connection::open(&db).unwrap().execute("UPDATE schema_version SET version = 99", []).unwrap();
    let output = history_command(&db, &["show"]);
    assert_eq!(status(&output), 2, "{}", text(&output));
    assert!(text(&output).contains("schema version 99"), "{}", text(&output));
    let version: i64 =
        Connection::open(&db).unwrap().query_row("SELECT version FROM schema_version", [], |row| row.get(0)).unwrap();
    assert_eq!(version, 99);
    // A run still completes, and says why it recorded nothing.
    let output = scenario.run(&["--history", db.to_str().unwrap()]);
    assert_eq!(status(&output), 0, "{}", text(&output));
    assert!(text(&output).contains("warning: not recorded in the history"), "{}", text(&output));
}

#[test]
fn bad_history_input_is_refused_with_status_2() {
    let scenario = Scenario::new(SLEEP);
    let db = scenario.dir.path().join("history.sqlite");
    let missing = scenario.dir.path().join("no-such-run");
    let output = history_command(&db, &["import", missing.to_str().unwrap()]);
    assert_eq!(status(&output), 2, "{}", text(&output));
    assert!(!db.exists(), "a refused import created the database");
    let output = history_command(&db, &["show", "--p-value", "1.5"]);
    assert_eq!(status(&output), 2, "{}", text(&output));
    for location in ["mysql://localhost/x", "postgres://localhost:port/x", "postgres://a:secret@h/x?sslmode=sideways"] {
        let output = phasebench().args(["history", "show", "--history", location]).output().unwrap();
        assert_eq!(status(&output), 2, "{location}: {}", text(&output));
        assert!(!text(&output).contains("secret"), "{}", text(&output));
    }
}

/// Campaigns whose runs are not all there: (campaign, runs found, runs its file has).
fn partial_campaigns(db: &Path, runs_per_file: i64) -> Vec<(i64, i64, i64)> {
    let connection = Connection::open(db).unwrap();
    let integrity: String = connection.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let mut statement = connection
        .prepare("SELECT c.id, (SELECT COUNT(*) FROM runs r WHERE r.campaign = c.id) FROM campaigns c")
        .unwrap();
    let rows = statement.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))).unwrap();
    rows.map(Result::unwrap)
        .filter(|(_, runs)| *runs != runs_per_file)
        .map(|(id, runs)| (id, runs, runs_per_file))
        .collect()
}

fn campaign_count(db: &Path) -> i64 {
    if !db.exists() {
        return 0;
    }
    let connection = Connection::open(db).unwrap();
    connection.query_row("SELECT COUNT(*) FROM campaigns", [], |row| row.get(0)).unwrap_or(0)
}

#[test]
fn a_process_killed_while_recording_leaves_every_campaign_whole_or_absent() {
    // One results file with several runs, copied as 400 campaigns that
    // differ in when they started.
    let (scenario, paths, runs_per_file) = common::campaign_copies(400);

    let db = scenario.dir.path().join("crash.sqlite");
    let mut interrupted = 0;
    for attempt in 0..8 {
        let before = campaign_count(&db);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_phasebench"))
            .arg("history")
            .arg("import")
            .arg("--history")
            .arg(&db)
            .args(&paths)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + 120 * attempt));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let partial = partial_campaigns(&db, runs_per_file);
        assert!(partial.is_empty(), "attempt {attempt}: campaigns recorded in part: {partial:?}");
        let after = campaign_count(&db);
        if after > before && after < 400 {
            interrupted += 1;
        }
    }
    assert!(interrupted >= 1, "no kill landed while campaigns were being recorded");
    // A last import completes what the killed ones left.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_phasebench"));
    let output = child.arg("history").arg("import").arg("--history").arg(&db).args(&paths).output().unwrap();
    assert_eq!(status(&output), 0, "{}", text(&output));
    assert_eq!(campaign_count(&db), 400);
    assert!(partial_campaigns(&db, runs_per_file).is_empty());

    // The check sees a campaign that lost a run.
    Connection::open(&db).unwrap().execute("DELETE FROM metrics WHERE run = (SELECT MAX(id) FROM runs); ", []).unwrap();
    Connection::open(&db).unwrap().execute("DELETE FROM targets WHERE run = (SELECT MAX(id) FROM runs)", []).unwrap();
    Connection::open(&db).unwrap().execute("DELETE FROM runs WHERE id = (SELECT MAX(id) FROM runs)", []).unwrap();
    assert_eq!(partial_campaigns(&db, runs_per_file).len(), 1);
}

/// An experiment that halves a sleep, proposed by the roadmap, then landed.
const PROPOSAL: &str = "
scenario: history-projection
engines: { cal: { kind: calibrate } }
vars: { d: 600us }
phases:
  - name: p
    workloads:
      - { name: nap, engine: cal, op: sleep, with: { duration: \"${d}\" }, warmup: 20x, iterations: 200 }
experiments:
  - name: shorter
    workload: nap
    metric: latency.p50
    baseline: { with: { duration: \"${d}\" } }
    variants: { half: { with: { duration: 300us } } }
    rounds: 6
    effort: 1d
";

#[test]
fn a_landed_candidate_is_held_against_its_projection() {
    let scenario = Scenario::new(PROPOSAL);
    let db = scenario.dir.path().join("history.sqlite");
    let run = |out: &str, extra: &[&str]| {
        let output = phasebench()
            .arg("run")
            .arg(&scenario.file)
            .arg("--out")
            .arg(scenario.dir.path().join(out))
            .arg("--quiet")
            .arg("--history")
            .arg(&db)
            .args(extra)
            .output()
            .unwrap();
        assert!(status(&output) <= 1, "{}", text(&output));
    };
    run("before", &[]);
    let output = history_command(&db, &["projections"]);
    assert!(text(&output).contains("no campaign is tagged"), "{}", text(&output));
    run("after", &["--var", "d=300us", "--after-candidate", "shorter"]);
    let output = history_command(&db, &["projections"]);
    assert_eq!(status(&output), 0, "{}", text(&output));
    let shown = text(&output);
    println!("{shown}");
    let row = shown.lines().find(|line| line.contains("shorter: half")).unwrap_or_else(|| panic!("{shown}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // | scenario | candidate | proposed in | landed in | figure | projected | realized | interval | ratio |
    assert_eq!(&cells[3..6], ["1", "2", "latency p50"], "{shown}");
    let ratio: f64 = cells[9].parse().unwrap_or_else(|_| panic!("{shown}"));
    // The realized gain lies in its interval, and a 1,200-operation p50
    // pins it to within a few percent.
    let percent = |cell: &str| cell.trim_end_matches('%').parse::<f64>().unwrap_or_else(|_| panic!("{cell}: {shown}"));
    let realized = percent(cells[7]);
    let (low, high) = cells[8].split_once(" to ").unwrap_or_else(|| panic!("{shown}"));
    let (low, high) = (percent(low), percent(high));
    assert!(low <= realized && realized <= high && high - low < 10.0, "{low} .. {realized} .. {high}: {shown}");
    // Halving a 600 µs sleep projects about -48% on the p50 and realizes
    // the same when it lands: the ratio is near 1.
    assert!((0.8..1.25).contains(&ratio), "realized / projected = {ratio}:\n{shown}");

    // A tag with no proposal before it says so.
    let output = history_command(&db, &["tag", "1", "after:unknown"]);
    assert_eq!(status(&output), 0, "{}", text(&output));
    let output = history_command(&db, &["projections"]);
    assert!(text(&output).contains("no earlier campaign of this scenario has it on its roadmap"), "{}", text(&output));
}

#[test]
fn a_version_1_history_is_migrated_and_keeps_its_campaigns() {
    let scenario = Scenario::new(SLEEP);
    let db = scenario.dir.path().join("v1.sqlite");
    {
        let connection = Connection::open(&db).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);",
            )
            .unwrap();
        connection
            .execute_batch(&phasebench::history::Dialect::Sqlite.schema(phasebench::history::MIGRATIONS[0]))
            .unwrap();
    }
    campaigns(&scenario, &db, &["200us", "200us"]);
    let connection = Connection::open(&db).unwrap();
    let version: i64 = connection.query_row("SELECT version FROM schema_version", [], |row| row.get(0)).unwrap();
    assert_eq!(version, phasebench::history::SCHEMA_VERSION);
    let candidates: i64 = connection.query_row("SELECT COUNT(*) FROM candidates", [], |row| row.get(0)).unwrap();
    assert_eq!(candidates, 0);
    assert_eq!(campaign_count(&db), 2);
}
