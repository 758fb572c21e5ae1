//! A scenario split across shards and merged is the same run as the whole:
//! four `--shard I/4` processes of a calibrate scenario, started together
//! with `--start-at` and merged with `phasebench merge`, give the unsplit
//! run's operation counts exactly, and the merged latency is the shards'
//! histograms added, to the count. The wall-clock figures of the split and
//! the unsplit run are printed side by side, not asserted. The
//! refusals of `--shard` and `--start-at` exit 2 and write nothing.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};

use hdrhistogram::Histogram;

use common::{phasebench, run, status, Scenario};
use phasebench::results::histogram::{decode, Summary};
use phasebench::results::{store, LoadRecord, Results, RunRecord};

/// Sleeping operations measure the timer, not the CPU: four processes on a
/// machine with fewer cores still see the latency one process sees.
const SCENARIO: &str = r#"
scenario: shards
seed: 7
engines:
  cal: { kind: calibrate }
phases:
  - name: split
    workloads:
      - name: closed
        engine: cal
        op: sleep
        with: { duration: 1ms }
        load: { concurrency: 4 }
        warmup: 20x
        iterations: 800
      - name: open
        engine: cal
        op: sleep
        with: { duration: 1ms }
        load: { rate: 800/s, max_in_flight: 16 }
        warmup: 20x
        iterations: 1200
"#;

fn spawn_run(file: &Path, out: &Path, extra: &[&str]) -> Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("phasebench"))
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start phasebench")
}

fn load(folder: &Path) -> Results {
    store::load(&folder.join("results.json")).expect("results.json reads back")
}

fn p(run: &RunRecord, quantile: f64) -> f64 {
    let summary = run.metrics["latency"].summary.expect("latency summary");
    if quantile == 0.5 {
        summary.p50
    } else {
        summary.p90
    }
}

fn throughput(run: &RunRecord) -> f64 {
    run.metrics["throughput"].value.expect("throughput")
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b
}

#[test]
fn four_shards_merge_into_the_whole_run() {
    let scenario = Scenario::new(SCENARIO);
    let dir = scenario.dir.path();
    let whole_dir = dir.join("whole");
    let output = spawn_run(&scenario.file, &whole_dir, &[]).wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let whole = load(&whole_dir);

    // Four shards at once, waiting for the same instant.
    let start = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let shards: Vec<Child> = (0..4)
        .map(|index| {
            let shard = format!("{index}/4");
            spawn_run(&scenario.file, &dir.join(format!("shard-{index}")), &["--shard", &shard, "--start-at", &start])
        })
        .collect();
    for child in shards {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let pieces: Vec<Results> = (0..4).map(|index| load(&dir.join(format!("shard-{index}")))).collect();
    let merged_dir = dir.join("merged");
    let output = phasebench()
        .arg("merge")
        .arg(&merged_dir)
        .args((0..4).map(|index| dir.join(format!("shard-{index}"))))
        .output()
        .unwrap();
    assert_eq!(
        status(&output),
        0,
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for report in ["results.json", "report.md", "roadmap.md", "report.html"] {
        assert!(merged_dir.join(report).is_file(), "{report} missing");
    }
    let merged = load(&merged_dir);
    assert!(merged.complete && merged.shard.is_none());

    for id in ["closed", "open"] {
        let (whole_run, merged_run) = (run(&whole, id), run(&merged, id));
        // Counts are dealt out exactly.
        assert_eq!(merged_run.operations + merged_run.errors, whole_run.operations + whole_run.errors, "{id}");
        assert_eq!(merged_run.scheduled, whole_run.scheduled, "{id}");
        assert_eq!(merged_run.load, whole_run.load, "{id}: the merged load is the whole load");
        // The merged latency is the four shards' histograms added, to the
        // count, and its percentiles are read from that sum.
        let latency = |run: &RunRecord| {
            let record = &run.metrics["latency"];
            (decode(record.histogram.as_ref().expect("latency histogram")).unwrap(), record.scale.unwrap())
        };
        let (mut sum, scale) = latency(run(&pieces[0], id));
        sum.auto(true);
        for piece in &pieces[1..] {
            sum.add(latency(run(piece, id)).0).unwrap();
        }
        let buckets = |histogram: &Histogram<u64>| {
            histogram.iter_recorded().map(|b| (b.value_iterated_to(), b.count_at_value())).collect::<Vec<_>>()
        };
        let (merged_histogram, _) = latency(merged_run);
        assert_eq!(merged_histogram.len(), whole_run.operations + whole_run.errors, "{id}");
        assert_eq!(buckets(&merged_histogram), buckets(&sum), "{id}: the merged histogram is not the shards' sum");
        // The comparison tells a merge that lost a shard from one that did not.
        let mut three = latency(run(&pieces[0], id)).0;
        three.auto(true);
        for piece in &pieces[1..3] {
            three.add(latency(run(piece, id)).0).unwrap();
        }
        assert_ne!(buckets(&merged_histogram), buckets(&three), "{id}: three shards read as four");
        assert_eq!(merged_run.metrics["latency"].summary, Some(Summary::of(&sum, scale)), "{id}");
        assert!(p(merged_run, 0.5) >= 0.001, "{id}: a 1 ms sleep measured {}s", p(merged_run, 0.5));
        // The rate is the merged count over the union of the shards' windows.
        let seconds = merged_run.elapsed_ns as f64 / 1e9;
        assert!(relative(throughput(merged_run), merged_run.operations as f64 / seconds) < 1e-9, "{id}");
        // How the split run's figures compare with the unsplit one's is
        // printed, not asserted: they are wall-clock figures of separate
        // runs, and a busy machine moves them apart.
        eprintln!(
            "{id}: operations {} / {}; p50 {:.4}ms / {:.4}ms; p90 {:.4}ms / {:.4}ms; throughput {:.1} / {:.1}  [merged / whole]",
            merged_run.operations,
            whole_run.operations,
            p(merged_run, 0.5) * 1e3,
            p(whole_run, 0.5) * 1e3,
            p(merged_run, 0.9) * 1e3,
            p(whole_run, 0.9) * 1e3,
            throughput(merged_run),
            throughput(whole_run),
        );
    }
    // The open loop's arrivals: the merged run was scheduled at the whole
    // rate, and its four quarters kept to it.
    let open = run(&merged, "open");
    let LoadRecord::Open { rate, .. } = open.load else { panic!("open loop") };
    assert_eq!(rate, 800.0);
    assert!(relative(throughput(open), rate) < 0.25, "merged open loop ran at {} ops/s", throughput(open));
}

#[test]
fn shard_options_that_cannot_be_followed_exit_2_and_write_nothing() {
    let scenario = Scenario::new(SCENARIO);
    for (arguments, culprit) in [
        (&["--shard", "4/4"][..], "shard 4 of 4: indexes run from 0 to 3"),
        (&["--shard", "two"][..], "`two` is not I/N"),
        (&["--shard", "0/0"][..], "0 shards"),
        (&["--shard", "auto/4"][..], "neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX"),
        (&["--start-at", "tomorrow"][..], "`tomorrow` is not an RFC 3339 time"),
    ] {
        let output = phasebench()
            .arg("run")
            .arg(&scenario.file)
            .arg("--out")
            .arg(scenario.out())
            .args(arguments)
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("JOB_COMPLETION_INDEX")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(status(&output), 2, "{arguments:?}: {stderr}");
        assert!(stderr.contains(culprit), "{arguments:?}: {stderr}");
        assert!(!scenario.out().exists(), "{arguments:?} created the run folder");
    }
    // The same scenario with a valid shard runs (so the rows above fail for
    // the reason they name, not for a broken scenario). Under --smoke each
    // run has 3 operations: shard 1 of 4 takes one of each, shard 3 none,
    // and still leaves its results file for the merge to count.
    let output = scenario.run(&["--shard", "1/4", "--smoke"]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    assert_eq!(results.shard.map(|shard| (shard.index, shard.count)), Some((1, 4)));
    assert_eq!(results.runs.iter().map(|run| run.operations).collect::<Vec<_>>(), [1, 1]);
    std::fs::remove_dir_all(scenario.out()).unwrap();
    let output = scenario.run(&["--shard", "3/4", "--smoke"]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    assert!(scenario.results().runs.is_empty());
}
