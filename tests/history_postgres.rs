//! The history on PostgreSQL: the same `history show`, `check` and
//! `projections` output as the SQLite file for the same imported runs, a
//! newer schema refused, and an import killed mid-way leaves every
//! campaign whole or absent.
//!
//! These tests need a server: `scripts/postgres-check.sh` (run by CI)
//! starts one on loopback and runs them with `--ignored`, naming it in
//! `PHASEBENCH_TEST_POSTGRES` (a `postgres://user@host:port` URL whose role
//! may create databases).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{phasebench, status, Scenario};

/// A sleep of `${d}` with an experiment that halves it, so that the
/// history holds a roadmap candidate as well as a step.
const SLEEP: &str = "
scenario: history-pg
engines: { cal: { kind: calibrate } }
vars: { d: 300us }
phases:
  - name: p
    workloads:
      - { name: nap, engine: cal, op: sleep, with: { duration: \"${d}\" }, warmup: 20x, iterations: 200 }
      - { name: spin, engine: cal, op: spin, with: { duration: 20us }, iterations: 300 }
experiments:
  - name: shorter
    workload: nap
    metric: latency.p50
    baseline: { with: { duration: \"${d}\" } }
    variants: { half: { with: { duration: 150us } } }
    rounds: 6
    effort: 1d
";

/// A fresh, empty database on the test server, as a URL.
fn database(name: &str) -> String {
    let server = std::env::var("PHASEBENCH_TEST_POSTGRES")
        .expect("PHASEBENCH_TEST_POSTGRES names no server: run scripts/postgres-check.sh");
    let server = server.trim_end_matches('/');
    let mut admin = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls).expect("connect");
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).expect("drop database");
    admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
    format!("{server}/{name}")
}

fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect")
}

fn history(location: &str, args: &[&str]) -> std::process::Output {
    phasebench().arg("history").args(args).arg("--history").arg(location).output().expect("phasebench history")
}

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Runs the scenario once per duration into its own folder, recording nothing.
fn campaigns(scenario: &Scenario, durations: &[&str]) -> Vec<PathBuf> {
    durations
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let out = scenario.dir.path().join(format!("run-{i:02}"));
            let output = phasebench()
                .arg("run")
                .arg(&scenario.file)
                .args(["--quiet", "--no-history", "--var", &format!("d={d}"), "--out"])
                .arg(&out)
                .output()
                .expect("run");
            assert!(status(&output) <= 1, "{}", text(&output));
            out
        })
        .collect()
}

fn paths(folders: &[PathBuf]) -> Vec<&str> {
    folders.iter().map(|folder| folder.to_str().unwrap()).collect()
}

#[test]
#[ignore = "needs a PostgreSQL server: scripts/postgres-check.sh"]
fn sqlite_and_postgres_give_the_same_history() {
    let url = database("phasebench_same");
    let scenario = Scenario::new(SLEEP);
    let sqlite = scenario.dir.path().join("history.sqlite");
    let sqlite = sqlite.to_str().unwrap();
    let mut durations = vec!["300us"; 10];
    durations.extend(["900us"; 4]);
    let folders = campaigns(&scenario, &durations);

    for location in [sqlite, url.as_str()] {
        let mut import = vec!["import"];
        import.extend(paths(&folders));
        let output = history(location, &import);
        assert_eq!(status(&output), 0, "{location}: {}", text(&output));
        assert!(text(&output).contains("14 campaigns"), "{location}: {}", text(&output));
        // The same files again are the same campaigns.
        let output = history(location, &import);
        assert!(text(&output).contains("0 campaigns (0 runs) recorded, 14 recorded before"), "{}", text(&output));
        let output = history(location, &["tag", "14", "after:shorter", "release"]);
        assert_eq!(status(&output), 0, "{location}: {}", text(&output));
    }

    let same = |args: &[&str]| {
        let (on_sqlite, on_postgres) = (history(sqlite, args), history(&url, args));
        assert_eq!(status(&on_sqlite), status(&on_postgres), "history {args:?}");
        assert_eq!(text(&on_sqlite), text(&on_postgres), "history {args:?}");
        text(&on_postgres)
    };
    let shown = same(&["show"]);
    assert!(shown.contains("history-pg / nap / latency"), "{shown}");
    assert!(shown.contains("[after:shorter] [release]"), "{shown}");
    let nap = same(&["show", "--run", "nap", "--metric", "latency"]);
    let marked = nap.lines().find(|line| line.trim_start().starts_with("11 ")).unwrap_or_else(|| panic!("{nap}"));
    assert!(marked.contains("◆ median +"), "the step starts at campaign 11:\n{nap}");
    let checked = same(&["check", "--metric", "latency"]);
    assert!(checked.contains("regression: history-pg / nap / latency"), "{checked}");
    let projected = same(&["projections"]);
    assert!(projected.contains("shorter: half"), "{projected}");
    same(&["show", "--scenario", "no-such-scenario"]);

    // Both hold the same rows, not only the same figures once shown.
    let mut postgres = client(&url);
    let counts: Vec<i64> = ["campaigns", "runs", "metrics", "targets", "tags", "candidates"]
        .iter()
        .map(|table| postgres.query_one(&format!("SELECT COUNT(*) FROM {table}"), &[]).unwrap().get(0))
        .collect();
    let sqlite_connection = rusqlite::Connection::open(sqlite).unwrap();
    let expected: Vec<i64> = ["campaigns", "runs", "metrics", "targets", "tags", "candidates"]
        .iter()
        .map(|table| {
            sqlite_connection.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get(0)).unwrap()
        })
        .collect();
    assert_eq!(counts, expected);
    assert!(counts[5] > 0, "no roadmap candidate was recorded");
}

#[test]
#[ignore = "needs a PostgreSQL server: scripts/postgres-check.sh"]
fn a_postgres_history_from_a_newer_phasebench_is_refused_and_left_alone() {
    let url = database("phasebench_newer");
    let output = history(&url, &["show"]);
    assert_eq!(status(&output), 0, "{}", text(&output));
    client(&url).execute("UPDATE schema_version SET version = 99", &[]).unwrap();
    let output = history(&url, &["show"]);
    assert_eq!(status(&output), 2, "{}", text(&output));
    assert!(text(&output).contains("schema version 99"), "{}", text(&output));
    let version: i64 = client(&url).query_one("SELECT version FROM schema_version", &[]).unwrap().get(0);
    assert_eq!(version, 99);
}

#[test]
#[ignore = "needs a PostgreSQL server: scripts/postgres-check.sh"]
fn a_password_in_the_url_never_reaches_a_message() {
    let server = std::env::var("PHASEBENCH_TEST_POSTGRES").expect("PHASEBENCH_TEST_POSTGRES");
    // No database of that name: the connection fails, and says where.
    let url = server.replacen("://phasebench@", "://phasebench:hunter2@", 1) + "/no_such_database";
    let output = history(&url, &["show"]);
    assert_eq!(status(&output), 3, "{}", text(&output));
    assert!(text(&output).contains("no_such_database"), "{}", text(&output));
    assert!(!text(&output).contains("hunter2"), "{}", text(&output));
}

/// Campaigns whose runs are not all there: (campaign, runs found).
fn partial_campaigns(url: &str, runs_per_file: i64) -> Vec<(i64, i64)> {
    let rows = client(url)
        .query("SELECT c.id, (SELECT COUNT(*) FROM runs r WHERE r.campaign = c.id) FROM campaigns c", &[])
        .unwrap();
    rows.iter()
        .map(|row| (row.get::<_, i64>(0), row.get::<_, i64>(1)))
        .filter(|(_, runs)| *runs != runs_per_file)
        .collect()
}

fn campaign_count(url: &str) -> i64 {
    let mut client = client(url);
    let exists: bool = client.query_one("SELECT to_regclass('campaigns') IS NOT NULL", &[]).unwrap().get(0);
    if !exists {
        return 0;
    }
    client.query_one("SELECT COUNT(*) FROM campaigns", &[]).unwrap().get(0)
}

#[test]
#[ignore = "needs a PostgreSQL server: scripts/postgres-check.sh"]
fn an_import_killed_mid_way_leaves_every_postgres_campaign_whole_or_absent() {
    let url = database("phasebench_crash");
    let (_scenario, files, runs_per_file) = common::campaign_copies(300);
    let import = |child: &mut std::process::Command| {
        child.arg("history").arg("import").arg("--history").arg(&url).args(&files);
    };

    let mut interrupted = 0;
    for attempt in 0..8 {
        let before = campaign_count(&url);
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_phasebench"));
        import(&mut command);
        let mut child = command.stdout(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(200 + 150 * attempt));
        let _ = child.kill(); // SIGKILL: the server sees the connection drop
        let _ = child.wait();
        // The server rolls back the open transaction once it sees the
        // connection gone; wait until no other session is left.
        wait_for_sessions_to_end(&url);
        assert_eq!(partial_campaigns(&url, runs_per_file), [], "attempt {attempt}: campaigns recorded in part");
        let after = campaign_count(&url);
        if after > before && after < 300 {
            interrupted += 1;
        }
    }
    assert!(interrupted >= 1, "no kill landed while campaigns were being recorded");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_phasebench"));
    import(&mut command);
    let output = command.output().unwrap();
    assert_eq!(status(&output), 0, "{}", text(&output));
    assert_eq!(campaign_count(&url), 300);
    assert_eq!(partial_campaigns(&url, runs_per_file), []);

    // The check sees a campaign that lost a run.
    client(&url)
        .batch_execute(
            "DELETE FROM metrics WHERE run = (SELECT MAX(id) FROM runs);
             DELETE FROM targets WHERE run = (SELECT MAX(id) FROM runs);
             DELETE FROM runs WHERE id = (SELECT MAX(id) FROM runs);",
        )
        .unwrap();
    assert_eq!(partial_campaigns(&url, runs_per_file).len(), 1);
}

fn wait_for_sessions_to_end(url: &str) {
    let database = Path::new(url).file_name().unwrap().to_str().unwrap().to_string();
    for _ in 0..100 {
        let others: i64 = client(url)
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&database],
            )
            .unwrap()
            .get(0);
        if others == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the killed import's session never ended");
}
