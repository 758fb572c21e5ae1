//! `run --metrics-addr` scraped by a real Prometheus (Debian's package),
//! which `scripts/prometheus-check.sh` starts on loopback with a 1 s scrape
//! interval against `PHASEBENCH_TEST_SCRAPE_ADDR`, and names in
//! `PHASEBENCH_TEST_PROMETHEUS` (its base URL). Ignored otherwise.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Scenario;

/// The scrape interval the script configures.
const SCRAPE: Duration = Duration::from_secs(1);

fn get_json(url: &str) -> serde_json::Value {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let response = reqwest::get(url).await.unwrap_or_else(|error| panic!("{url}: {error}"));
        let text = response.text().await.unwrap_or_else(|error| panic!("{url}: {error}"));
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{url}: {error}: {text}"))
    })
}

/// The one value of an instant query, or `None` when it has no series.
fn query(prometheus: &str, promql: &str) -> Option<f64> {
    let mut url = format!("{prometheus}/api/v1/query?query=");
    for byte in promql.bytes() {
        if byte.is_ascii_alphanumeric() || b"_.-~".contains(&byte) {
            url.push(byte as char);
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    let answer = get_json(&url);
    assert_eq!(answer["status"], "success", "{answer}");
    let result = answer["data"]["result"].as_array().cloned().unwrap_or_default();
    assert!(result.len() <= 1, "{answer}");
    result.first().and_then(|series| series["value"][1].as_str()?.parse().ok())
}

#[test]
#[ignore = "needs a Prometheus scraping PHASEBENCH_TEST_SCRAPE_ADDR: scripts/prometheus-check.sh"]
fn prometheus_scrapes_the_running_campaign_to_within_one_scrape_of_its_final_count() {
    let prometheus = std::env::var("PHASEBENCH_TEST_PROMETHEUS").expect("PHASEBENCH_TEST_PROMETHEUS");
    let addr = std::env::var("PHASEBENCH_TEST_SCRAPE_ADDR").expect("PHASEBENCH_TEST_SCRAPE_ADDR");
    let scenario = Scenario::new(
        "scenario: scraped
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - name: nap
        engine: cal
        op: sleep
        with: { duration: 2ms }
        warmup: 10x
        duration: 10s
        load: { concurrency: 2 }
",
    );
    let started = Instant::now();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("phasebench"))
        .arg("run")
        .arg(&scenario.file)
        .arg("--out")
        .arg(scenario.out())
        .args(["--metrics-addr", &addr, "--no-history", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let results = scenario.results();
    let run = &results.runs[0];
    let operations = run.operations as f64;
    // Prometheus answers for the samples it has ingested; the last scrape
    // lands within an interval of the run's end.
    std::thread::sleep(SCRAPE * 2);
    let window = started.elapsed().as_secs() + 30;
    let selector = format!("phasebench_operations_total{{scenario=\"scraped\",run=\"{}\"}}", run.id);
    let scraped = query(&prometheus, &format!("max_over_time({selector}[{window}s])"))
        .unwrap_or_else(|| panic!("Prometheus has no {selector}"));
    let scrapes = query(&prometheus, &format!("count_over_time({selector}[{window}s])")).unwrap_or(0.0);
    let per_scrape = operations / run.elapsed_seconds() * SCRAPE.as_secs_f64();
    eprintln!(
        "final {operations}, scraped at most {scraped} in {scrapes} scrapes; one scrape is {per_scrape:.0} operations"
    );
    // A sanity bound: Prometheus scraped the run repeatedly (9 and 6 of 10 s here).
    assert!(scrapes >= 3.0, "only {scrapes} scrapes of a 10 s run");
    assert!(scraped <= operations, "Prometheus saw {scraped}, more than the {operations} measured");
    assert!(
        operations - scraped <= per_scrape * 1.5,
        "the last scrape ({scraped}) is more than one scrape ({per_scrape:.0}) short of the final count ({operations})"
    );
    // The query has teeth: another scenario's series is not there.
    assert_eq!(query(&prometheus, "max_over_time(phasebench_operations_total{scenario=\"other\"}[1h])"), None);
    // And the histogram arrived as one: its count agrees with the counters.
    let count = query(
        &prometheus,
        &format!("max_over_time(phasebench_latency_seconds_count{{run=\"{}\"}}[{window}s])", run.id),
    );
    assert_eq!(count, Some(scraped), "the histogram's count");
}
