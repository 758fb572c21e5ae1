//! The five-day profiling campaign (scenarios/profiling-campaign.yaml) end
//! to end: the smoke run CI gates on, and a full run cut short by Ctrl-C.

mod common;

use std::time::{Duration, Instant};

use common::{phasebench, root};
use phasebench::results::store;

fn campaign() -> std::path::PathBuf {
    root().join("scenarios/profiling-campaign.yaml")
}

#[test]
fn campaign_smoke_run_covers_every_day_within_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let started = Instant::now();
    let output = phasebench().args(["run", "--smoke", "--quiet", "--out"]).arg(&out).arg(campaign()).output().unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    // The bound on the CI machine; this is the one timed assertion
    // the campaign has, and it holds with a wide margin (about 20 s here).
    eprintln!("campaign smoke run: {:.1} s", elapsed.as_secs_f64());
    assert!(elapsed < Duration::from_secs(60), "the smoke run took {:.1} s", elapsed.as_secs_f64());

    let results = store::load(&out.join("results.json")).unwrap();
    assert!(results.smoke && results.complete);
    assert!(results.runs.iter().all(|run| run.complete && run.operations > 0 && run.errors == 0));
    for day in ["Day 1", "Day 2", "Day 3", "Day 4"] {
        assert!(results.runs.iter().any(|run| run.phase.starts_with(day)), "no run in {day}");
    }
    let experiments: Vec<&str> = results.experiments.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(experiments, ["flash-attention", "lock-free-queue", "sharded-padded-cache"]);

    // Day 4's profiling suites and the endurance test's memory record.
    let profile =
        |id: &str| common::run(&results, id).profile.clone().unwrap_or_else(|| panic!("`{id}` has no profile"));
    let breakdown = profile("llm-time-breakdown").cpu.expect("the LLM breakdown has a CPU profile");
    assert!(breakdown.samples > 0);
    let cache = profile("vault-cache-concurrency");
    assert!(cache.cpu.is_some() && cache.heap.is_some() && !cache.memory.is_empty());
    assert!(profile("agent-lock-contention").cpu.is_some());
    let endurance = profile("endurance");
    assert!(endurance.cpu.is_none() && endurance.heap.is_none() && !endurance.memory.is_empty());
    assert!(results.runs.iter().filter(|run| run.arm.is_some()).all(|run| run.profile.is_none()));

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Profiles") && report.contains("### Memory: endurance"));
    let flamegraph = out.join("flamegraph-15-llm-time-breakdown.svg");
    assert!(flamegraph.exists(), "no {}", flamegraph.display());
    assert!(report.contains("(flamegraph-15-llm-time-breakdown.svg)"));
    let roadmap = std::fs::read_to_string(out.join("roadmap.md")).unwrap();
    for name in experiments {
        assert!(roadmap.contains(name), "the roadmap lacks {name}");
    }
    assert!(stdout.contains("cpu profile llm-time-breakdown") && stdout.contains("memory profile endurance"));
}

#[test]
fn interrupting_the_campaign_keeps_results_and_marks_the_reports_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // Day 2's runs take seconds each; Day 1 starts with a thousand first tokens.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("phasebench"))
        .args(["run", "--quiet", "--only", "Day 2 - Component baselines", "--out"])
        .arg(&out)
        .arg(campaign())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start phasebench");
    // Wait until the first run is saved, then let the second measure a while.
    let results_file = out.join("results.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !results_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(results_file.exists(), "no run finished within two minutes");
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: sending SIGINT to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let exit = child.wait().expect("phasebench exits");
    assert_eq!(exit.code(), Some(1), "an interrupted run exits 1");

    let results = store::load(&results_file).unwrap();
    assert!(results.interrupted && !results.complete);
    assert!(!results.runs.is_empty() && results.runs.len() < results.planned_runs);
    assert!(results.runs[0].complete && results.runs[0].operations > 0);
    assert!(!results.runs.last().unwrap().complete, "the run in progress is kept, marked cut short");

    let banner = format!("interrupted by the user after {} of {} runs", results.runs.len(), results.planned_runs);
    for report in ["report.md", "roadmap.md", "report.html"] {
        let text = std::fs::read_to_string(out.join(report)).unwrap_or_else(|_| panic!("{report} written"));
        assert!(text.contains("INCOMPLETE") && text.contains(&banner), "{report} is not marked incomplete");
    }
}
