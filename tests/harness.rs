//! The harness measures what it claims: timers, open-loop arrival rates,
//! coordinated-omission correction, error counting and clean interruption.

mod common;

use common::{run, status, summary, Scenario};

#[test]
fn sleep_of_two_milliseconds_reads_back_as_two_milliseconds() {
    let scenario = Scenario::new(
        "scenario: sleep-check
engines: { cal: { kind: calibrate } }
phases:
  - name: timers
    workloads:
      - { name: sleep, engine: cal, op: sleep, with: { duration: 2ms }, iterations: 200, warmup: 5x }
",
    );
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    let sleep = run(&results, "sleep");
    assert_eq!(sleep.operations, 200);
    // The engine times its own sleep and records how much longer than 2 ms
    // it took (`overshoot`: the operating system's timer slack, which a busy
    // machine widens). The harness's latency is that sleep plus the
    // harness's own cost, so it is compared with the engine's clock in the
    // same run rather than with a fixed figure: never shorter than the
    // engine's time (a histogram keeps three digits, hence 0.2%), and longer
    // by less than a tenth of the sleep.
    let p50 = summary(sleep, "latency").p50;
    let engine = 0.002 + summary(sleep, "overshoot").p50;
    assert!(p50 >= engine * 0.998, "latency p50 {p50}s is shorter than the engine's own {engine}s");
    assert!(p50 <= engine + 0.0002, "latency p50 {p50}s exceeds the engine's own {engine}s by more than 0.2 ms");
}

#[test]
fn open_loop_issues_the_planned_number_of_operations() {
    let scenario = Scenario::new(
        "scenario: open-rate
engines: { cal: { kind: calibrate } }
phases:
  - name: open
    workloads:
      - { name: noop, engine: cal, op: noop, load: { rate: 10000/s }, duration: 5s, warmup: 0x }
",
    );
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    let noop = run(&results, "noop");
    let issued = noop.operations + noop.errors + noop.dropped;
    assert!((49_500..=50_500).contains(&issued), "issued {issued} operations, wanted 50,000 ± 1%");
    assert_eq!(noop.dropped, 0);
    let throughput = noop.metrics["throughput"].value.unwrap();
    assert!((throughput - 10_000.0).abs() < 500.0, "throughput {throughput}/s, wanted about 10,000/s");
}

#[test]
fn open_loop_overload_drops_work_and_records_its_wait() {
    // Four workers of a 2 ms sleep serve about 2,000/s; 5,000 operations
    // are scheduled in 500 ms and the queue may drain for one second more,
    // so about 2,000 are still queued at the deadline and dropped.
    let scenario = Scenario::new(
        "scenario: overload
engines: { cal: { kind: calibrate } }
phases:
  - name: open
    workloads:
      - name: overloaded
        engine: cal
        op: sleep
        with: { duration: 2ms }
        load: { rate: 10000/s, max_in_flight: 4 }
        duration: 500ms
        warmup: 0x
        targets: [\"dropped == 0\", \"schedule_lag.p99 < 1ms\"]
",
    );
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 1, "missed targets exit 1: {}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    let overloaded = run(&results, "overloaded");
    assert!(overloaded.dropped > 500, "only {} of {} dropped", overloaded.dropped, overloaded.scheduled);
    assert_eq!(overloaded.operations + overloaded.errors + overloaded.dropped, overloaded.scheduled);
    assert!((4_900..=5_000).contains(&overloaded.scheduled), "scheduled {}", overloaded.scheduled);
    assert_eq!(overloaded.metrics["dropped"].value, Some(overloaded.dropped as f64));
    let latency = summary(overloaded, "latency");
    assert_eq!(latency.count, overloaded.operations + overloaded.dropped, "dropped work is in the latency figures");
    assert!(latency.max >= 1.0, "the last dropped operation waited {}s", latency.max);
    let lag = summary(overloaded, "schedule_lag");
    assert_eq!(lag.count, overloaded.scheduled);
    assert!(lag.p99 >= 0.5, "schedule lag p99 {}s", lag.p99);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("FAIL  dropped == 0"), "{stdout}");
    assert!(stdout.contains("FAIL  schedule_lag.p99 < 1ms"), "{stdout}");
}

#[test]
fn open_loop_within_capacity_drops_nothing_and_keeps_schedule() {
    let scenario = Scenario::new(
        "scenario: comfortable
engines: { cal: { kind: calibrate } }
phases:
  - name: open
    workloads:
      - name: easy
        engine: cal
        op: sleep
        with: { duration: 1ms }
        load: { rate: 200/s, max_in_flight: 8 }
        duration: 1s
        warmup: 0x
      - { name: closed, engine: cal, op: noop, iterations: 100, warmup: 0x }
",
    );
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    let easy = run(&results, "easy");
    assert_eq!(easy.dropped, 0);
    assert_eq!(easy.metrics["dropped"].value, Some(0.0));
    assert_eq!(easy.operations + easy.errors, easy.scheduled);
    assert_eq!(easy.scheduled, 200);
    let lag = summary(easy, "schedule_lag");
    assert_eq!(lag.count, 200);
    assert!(lag.p50 < 0.001, "schedule lag p50 {}s with eight idle workers", lag.p50);
    let closed = run(&results, "closed");
    assert_eq!((closed.dropped, closed.scheduled), (0, 0));
    assert_eq!(closed.metrics["dropped"].value, Some(0.0));
    assert!(!closed.metrics.contains_key("schedule_lag"), "a closed loop has no schedule");
}

#[test]
fn a_stall_shows_in_open_loop_tail_latency() {
    // Call 5,000 stops the whole engine for 100 ms. Measured from intended
    // start times, the ~1,000 operations scheduled during the stall all wait,
    // so well over 0.1% of samples are tens of milliseconds late.
    let scenario = Scenario::new(
        "scenario: stall
engines:
  open: { kind: calibrate, stall_at: 5000, stall_for: 100ms }
  closed: { kind: calibrate, stall_at: 5000, stall_for: 100ms }
phases:
  - name: open
    workloads:
      - { name: stalled, engine: open, op: noop, load: { rate: 10000/s, max_in_flight: 16 }, duration: 2s, warmup: 0x }
      - { name: closed, engine: closed, op: noop, iterations: 20000, warmup: 0x }
",
    );
    // While the engine stalls, all 16 slots are taken and the operations
    // behind them start late: the generator fell behind, which fails the run.
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 1, "{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    let stalled = run(&results, "stalled");
    assert!(summary(stalled, "schedule_lag").max >= 0.050, "the stall is not in the schedule lag");
    let latency = summary(stalled, "latency");
    assert!(latency.p999 >= 0.050, "p99.9 {}s does not show the 100ms stall", latency.p999);
    assert!(latency.max >= 0.095 && latency.max < 0.5, "max {}s", latency.max);
    assert!(latency.p50 < 0.010, "p50 {}s should be unaffected", latency.p50);
    // The closed loop over its own, identical stall records one slow sample:
    // the stall is in its max but hidden from its p99.9.
    let closed = summary(run(&results, "closed"), "latency");
    assert!(closed.max >= 0.095, "closed-loop max {}s misses the stall", closed.max);
    assert!(closed.p999 < 0.010, "closed-loop p99.9 {}s", closed.p999);
}

#[test]
fn engine_errors_are_counted_and_the_run_goes_on() {
    let scenario = Scenario::new(
        "scenario: failures
engines: { flaky: { kind: calibrate, fail_every: 10 } }
phases:
  - name: errors
    workloads:
      - name: flaky
        engine: flaky
        op: noop
        iterations: 1000
        warmup: 0x
        targets: [ \"error_rate < 5%\", \"errors == 100x\" ]
",
    );
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 1, "a missed target exits 1");
    let results = scenario.results();
    let flaky = run(&results, "flaky");
    assert_eq!((flaky.operations, flaky.errors), (900, 100));
    assert!((flaky.metrics["error_rate"].value.unwrap() - 0.1).abs() < 1e-12);
    assert_eq!(flaky.error_messages.len(), 1);
    assert_eq!(flaky.error_messages[0].count, 100);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("FAIL  error_rate < 5%"), "{stdout}");
    assert!(stdout.contains("PASS  errors == 100x"), "{stdout}");
}

#[test]
fn closed_loop_workers_share_the_iteration_count() {
    let scenario = Scenario::new(
        "scenario: closed
engines: { cal: { kind: calibrate } }
phases:
  - name: closed
    workloads:
      - name: spin
        engine: cal
        op: spin
        with: { duration: 100us }
        matrix: { c: [1, 2, 3] }
        load: { concurrency: \"${c}\" }
        iterations: 300
        warmup: 10x
",
    );
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    for c in 1..=3 {
        let spin = run(&results, &format!("spin[c={c}]"));
        assert_eq!(spin.operations, 300);
        assert_eq!(spin.matrix["c"], c.to_string());
        assert!(summary(spin, "latency").p50 >= 0.0001);
    }
}

#[test]
fn interrupted_run_keeps_what_it_measured() {
    let scenario = Scenario::new(
        "scenario: interrupt
engines: { cal: { kind: calibrate } }
phases:
  - name: both
    workloads:
      - { name: quick, engine: cal, op: noop, iterations: 1000, warmup: 0x }
      - { name: long, engine: cal, op: sleep, with: { duration: 1ms }, duration: 60s, warmup: 0x }
",
    );
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("phasebench"))
        .arg("run")
        .arg(&scenario.file)
        .arg("--out")
        .arg(scenario.out())
        .arg("--quiet")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start phasebench");
    // Wait until the first run is saved and the second has measured a while.
    let results_file = scenario.out().join("results.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !results_file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: sending SIGINT to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let exit = child.wait().expect("phasebench exits");
    assert_eq!(exit.code(), Some(1), "an interrupted run exits 1");
    let results = scenario.results();
    assert!(results.interrupted && !results.complete);
    assert_eq!(results.runs.len(), 2);
    assert!(results.runs[0].complete);
    let long = &results.runs[1];
    assert!(!long.complete);
    assert!(long.operations > 50, "the cut-short run kept {} operations", long.operations);
    assert!(long.elapsed_ns < 30_000_000_000);
}

#[test]
fn histograms_are_stored_losslessly() {
    let scenario = Scenario::new(
        "scenario: lossless
engines: { cal: { kind: calibrate } }
phases:
  - name: one
    workloads:
      - { name: spin, engine: cal, op: spin, with: { duration: 50us }, iterations: 500, warmup: 0x }
",
    );
    assert_eq!(status(&scenario.run(&[])), 0);
    let results = scenario.results();
    let spin = run(&results, "spin");
    let latency = &spin.metrics["latency"];
    let histogram = phasebench::results::histogram::decode(latency.histogram.as_ref().unwrap()).unwrap();
    assert_eq!(histogram.len(), 500);
    let again = phasebench::results::Summary::of(&histogram, latency.scale.unwrap());
    assert_eq!(again, latency.summary.unwrap());
    let overshoot = summary(spin, "overshoot");
    assert_eq!(overshoot.count, 500);
}
