//! `run --metrics-addr`: the running campaign's figures in the Prometheus
//! text format, scraped while it runs. `tests/metrics_prometheus.rs` has a
//! real Prometheus scrape them (`scripts/prometheus-check.sh`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{phasebench, status, Scenario};

/// A 2 ms sleep on 2 workers for `seconds`.
fn sleeping(seconds: u32) -> String {
    format!(
        "scenario: live
engines: {{ cal: {{ kind: calibrate }} }}
phases:
  - name: p
    workloads:
      - name: nap
        engine: cal
        op: sleep
        with: {{ duration: 2ms }}
        warmup: 10x
        duration: {seconds}s
        load: {{ concurrency: 2 }}
"
    )
}

/// The address `run` announces on stderr, the rest of which is drained.
pub fn announced(child: &mut std::process::Child) -> String {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut url = None;
    let mut line = String::new();
    while url.is_none() && stderr.read_line(&mut line).unwrap_or(0) > 0 {
        url = line.trim().strip_prefix("metrics: ").map(str::to_owned);
        line.clear();
    }
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    url.expect("no `metrics: URL` line on stderr")
}

/// GET `url`'s body with reqwest.
fn get(url: &str) -> Option<(u16, String, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    runtime.block_on(async {
        let response = reqwest::get(url).await.ok()?;
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        Some((status, content_type, response.text().await.ok()?))
    })
}

/// The value of the sample `name{…}` in an exposition (the first one).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(&format!("{name}{{")))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[test]
fn the_figures_grow_while_it_runs_and_end_at_the_results() {
    let scenario = Scenario::new(&sleeping(3));
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("phasebench"))
        .arg("run")
        .arg(&scenario.file)
        .arg("--out")
        .arg(scenario.out())
        .args(["--metrics-addr", "127.0.0.1:0", "--no-history", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = announced(&mut child);
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"), "{url}");

    let mut counts = Vec::new();
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        if let Some((code, content_type, body)) = get(&url) {
            assert_eq!(code, 200);
            assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
            if let Some(count) = sample(&body, "phasebench_operations_total") {
                counts.push(count);
                last = body;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(child.wait().unwrap().success());
    let results = scenario.results();
    let operations = results.runs[0].operations as f64;
    assert!(counts.len() >= 4, "scraped {counts:?}");
    assert!(counts.windows(2).all(|pair| pair[0] <= pair[1]), "a counter went down: {counts:?}");
    assert!(counts.iter().any(|count| *count > 0.0 && *count < operations), "never seen mid-run: {counts:?}");
    assert!(*counts.last().unwrap() <= operations, "{counts:?} against {operations}");
    // The histogram counts what the counters count.
    let histogram = sample(&last, "phasebench_latency_seconds_count").unwrap();
    let dropped = sample(&last, "phasebench_dropped_total").unwrap();
    assert_eq!(histogram, sample(&last, "phasebench_operations_total").unwrap() + dropped, "{last}");
    let buckets: Vec<f64> = last
        .lines()
        .filter(|line| line.starts_with("phasebench_latency_seconds_bucket{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(buckets.len(), 26, "{last}");
    assert!(buckets.windows(2).all(|pair| pair[0] <= pair[1]), "buckets are cumulative: {buckets:?}");
    // 2 ms sleeps: none at or under 1 ms.
    let under_a_millisecond = last
        .lines()
        .find(|line| line.starts_with("phasebench_latency_seconds_bucket{") && line.contains("le=\"0.001\""))
        .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok());
    assert_eq!(under_a_millisecond, Some(0.0), "{last}");
    assert!(last.contains("run=\"nap\",phase=\"p\",workload=\"nap\""), "{last}");
}

#[test]
fn a_port_in_use_is_refused_before_anything_is_written() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let scenario = Scenario::new(&sleeping(1));
    let output = phasebench()
        .arg("run")
        .arg(&scenario.file)
        .arg("--out")
        .arg(scenario.out())
        .args(["--metrics-addr", &addr, "--no-history"])
        .output()
        .unwrap();
    assert_eq!(status(&output), 2, "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen"));
    assert!(!scenario.out().exists(), "the run folder was created");

    let output = phasebench()
        .arg("run")
        .arg(&scenario.file)
        .args(["--metrics-addr", "localhost-9090", "--no-history"])
        .output()
        .unwrap();
    assert_eq!(status(&output), 2);
}
