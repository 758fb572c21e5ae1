//! The serving peers' committed output (`peers/serving/run.sh`, which needs
//! llama-cpp-python and AIPerf and is not run in CI) says what the docs
//! say: docs/performance.md shows the committed tables as measured, no run
//! in them failed a request, and the side-by-side figures agree with AIPerf
//! within the stated tolerances. Rerunning the peers and committing the new
//! folder without updating the docs fails here.

mod common;

use common::root;
use serde_json::Value;

const OUTPUT: &str = "peers/serving/results-20261130";

#[test]
fn the_docs_show_the_committed_serving_tables() {
    let tables = std::fs::read_to_string(root().join(OUTPUT).join("tables.md")).unwrap();
    let docs = std::fs::read_to_string(root().join("docs/performance.md")).unwrap();
    for line in tables.lines().filter(|line| line.starts_with("| ")) {
        assert!(docs.contains(line), "docs/performance.md lacks the measured line\n{line}");
    }
}

#[test]
fn the_committed_serving_runs_failed_nothing_and_agree_with_aiperf() {
    let text = std::fs::read_to_string(root().join(OUTPUT).join("tables.json")).unwrap();
    let tables: Value = serde_json::from_str(&text).unwrap();
    let rows = tables["throughput"].as_array().unwrap();
    assert_eq!(rows.len(), 12, "2 presets × 2 servers × 3 stream counts");
    for row in rows {
        assert_eq!(row["errors"], 0, "{row}");
        assert!(row["tokens_per_second"].as_f64().unwrap() > 0.0, "{row}");
    }
    for figure in ["ttft_ms", "itl_ms", "tpot_ms"] {
        let agreement = &tables["agreement"][figure];
        let (difference, tolerance) =
            (agreement["difference"].as_f64().unwrap(), agreement["tolerance"].as_f64().unwrap());
        assert!(difference.abs() <= tolerance, "{figure}: {agreement}");
    }
}
