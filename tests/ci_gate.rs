//! The CI gate of `examples/ci/`: `gate.sh` runs a scenario, compares it
//! with a baseline, writes the job summary and exits 1 on a significant
//! regression; the GitHub Actions and GitLab CI files call it.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{root, status};

/// A 1 ms sleep (`nap`), 40 times a pass.
const SCENARIO: &str = "scenario: gate
vars: { nap: 1ms }
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - name: nap
        engine: cal
        op: sleep
        with: { duration: \"${nap}\" }
        warmup: 5x
        iterations: 40
        targets: [\"errors == 0\"]
";

/// Runs the gate in `dir` with the baseline folder `baseline`, into `out`.
fn gate(dir: &Path, baseline: &str, out: &str, extra: &[&str]) -> Output {
    Command::new("bash")
        .arg(root().join("examples/ci/gate.sh"))
        .args(["scenario.yaml", baseline, out])
        .args(extra)
        .current_dir(dir)
        .env("PHASEBENCH", assert_cmd::cargo::cargo_bin("phasebench"))
        .env("REPEAT", "5")
        .env("MIN_EFFECT", "25%")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap()
}

fn summary(dir: &Path, out: &str) -> String {
    std::fs::read_to_string(dir.join(out).join("summary.md")).unwrap_or_default()
}

#[test]
fn the_gate_passes_without_a_baseline_and_alike_and_fails_a_slowdown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("scenario.yaml"), SCENARIO).unwrap();

    let first = gate(dir.path(), "none", "main", &[]);
    assert_eq!(status(&first), 0, "{}", String::from_utf8_lossy(&first.stderr));
    let text = summary(dir.path(), "main");
    assert!(text.contains("No baseline yet") && text.contains("## phasebench: scenario.yaml"), "{text}");

    let alike = gate(dir.path(), "main", "alike", &[]);
    let text = summary(dir.path(), "alike");
    assert_eq!(status(&alike), 0, "{text}\n{}", String::from_utf8_lossy(&alike.stderr));
    assert!(
        text.contains("No significant regression")
            && text.contains("```text\nrun metric")
            && text.contains("nap latency.p50"),
        "{text}"
    );

    // Three times the sleep: every pass slower, a regression the gate fails.
    let slower = gate(dir.path(), "main", "slower", &["--var", "nap=3ms"]);
    let text = summary(dir.path(), "slower");
    assert_eq!(status(&slower), 1, "{text}\n{}", String::from_utf8_lossy(&slower.stderr));
    assert!(text.contains("**Significant regression**"), "{text}");

    // The summary goes where GitHub Actions says, appended.
    let step_summary = dir.path().join("step-summary.md");
    std::fs::write(&step_summary, "before\n").unwrap();
    let output = Command::new("bash")
        .arg(root().join("examples/ci/gate.sh"))
        .args(["scenario.yaml", "main", "github"])
        .current_dir(dir.path())
        .env("PHASEBENCH", assert_cmd::cargo::cargo_bin("phasebench"))
        .env("REPEAT", "2")
        .env("GITHUB_STEP_SUMMARY", &step_summary)
        .output()
        .unwrap();
    assert!(status(&output) <= 1, "{}", String::from_utf8_lossy(&output.stderr));
    let text = std::fs::read_to_string(&step_summary).unwrap();
    assert!(text.starts_with("before\n## phasebench: scenario.yaml"), "{text}");
    assert!(!dir.path().join("github/summary.md").exists());

    // Bad input is passed on: exit 2, and no summary.
    let bad = gate(dir.path(), "main", "bad", &["--var", "nosuch=1"]);
    assert_eq!(status(&bad), 2, "{}", String::from_utf8_lossy(&bad.stderr));
}

#[test]
fn the_ci_files_call_the_gate_and_parse() {
    for file in ["examples/ci/github-actions.yml", "examples/ci/gitlab-ci.yml"] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or_else(|error| panic!("{file}: {error}"));
        assert!(parsed.is_mapping(), "{file}");
        assert!(text.contains("examples/ci/gate.sh \"$SCENARIO\" perf-baseline perf-run"), "{file}");
    }
}
