//! Analysis and reports: A/A experiments come out unchanged and a true 20%
//! difference is found, on real `calibrate spin` runs; report.md and
//! roadmap.md match their snapshots for a fixed results file; no script
//! runs in the HTML of a hostile scenario; `report` renders every format.
//! `compare` has its own file, tests/compare.rs.

mod common;

use clap::ValueEnum;
use common::{phasebench, root, status, Scenario};
use phasebench::analysis::stats::Verdict;
use phasebench::analysis::{experiments, Analysis, CompareSettings};
use phasebench::plan::{self, PlanOptions};
use phasebench::report::format::Format;
use phasebench::report::render;
use phasebench::results::store::{self, StoreError};
use phasebench::results::{Results, RunRecord};
use phasebench::run::{execute_plan, Control, Observer, RunProgress};

/// Keeps results in memory: the experiments below make hundreds of runs.
struct Quiet;

impl Observer for Quiet {
    fn run_started(&mut self, _: usize, _: usize, _: &plan::RunSpec) {}
    fn tick(&mut self, _: &plan::RunSpec, _: &RunProgress) {}
    fn run_finished(&mut self, _: &RunRecord, _: &Results) -> Result<(), StoreError> {
        Ok(())
    }
}

/// `count` experiments on a 200 µs spin whose variant spins `variant`.
fn spin_experiments(count: usize, variant: &str, seed: u64) -> Vec<Verdict> {
    let mut yaml = String::from(
        "scenario: aa
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - { name: spin, engine: cal, op: spin, with: { duration: 200us }, iterations: 30, warmup: 3x }
experiments:
",
    );
    for index in 0..count {
        yaml.push_str(&format!(
            "  - {{ name: e{index}, workload: spin, metric: latency.p50, rounds: 5, \
             variants: {{ v: {{ with: {{ duration: {variant} }} }} }} }}\n"
        ));
    }
    let document = phasebench::dsl::parse("aa.yaml", yaml).expect("scenario parses");
    let plan = plan::build(&document, &PlanOptions { seed: Some(seed), ..PlanOptions::default() }).expect("plan");
    let results = execute_plan(&plan, &Control::default(), &mut Quiet).expect("runs");
    let settings = CompareSettings { seed, ..CompareSettings::default() };
    experiments::analyse(&results, &settings)
        .iter()
        .map(|outcome| outcome.arms[1].comparison.as_ref().expect("a comparison").verdict)
        .collect()
}

#[test]
fn identical_arms_are_rarely_significant_and_a_true_20_percent_is_found() {
    let aa = spin_experiments(40, "200us", 7);
    let flagged = aa.iter().filter(|verdict| **verdict != Verdict::NoSignificantChange).count();
    eprintln!("A/A: {flagged} of 40 flagged");
    assert!(flagged <= 4, "A/A: {flagged} of 40 flagged: {aa:?}");
    let faster = spin_experiments(40, "160us", 8);
    let improved = faster.iter().filter(|verdict| **verdict == Verdict::Improved).count();
    eprintln!("20% faster: {improved} of 40 improved");
    assert!(improved >= 38, "20% faster: {improved} of 40 improved: {faster:?}");
}

fn fixture() -> Results {
    store::load(&root().join("tests/fixtures/report/results.json")).expect("fixture reads")
}

#[test]
fn report_and_roadmap_match_their_snapshots() {
    let analysis = Analysis::of(&fixture(), &CompareSettings::default());
    insta::assert_snapshot!("report.md", render::built_in("report.md", &analysis).unwrap());
    insta::assert_snapshot!("roadmap.md", render::built_in("roadmap.md", &analysis).unwrap());
}

#[test]
fn no_script_runs_in_the_html_of_a_hostile_scenario() {
    let scenario = Scenario::new(
        "scenario: \"<script>alert(1)</script>\"
description: \"<img src=x onerror=alert(2)> & <b>bold</b>\"
engines: { cal: { kind: calibrate } }
phases:
  - name: \"<script>alert(3)</script>\"
    workloads:
      - { name: w, engine: cal, op: spin, with: { duration: 50us }, iterations: 20, targets: [ \"latency.p50 < 1s\" ] }
experiments:
  - { name: \"x<svg onload=alert(4)>\", workload: w, metric: latency.p50, rounds: 2,
      variants: { \"<script>v</script>\": { with: { duration: 40us } } }, rationale: \"</table><script>alert(5)</script>\" }
",
    );
    let output = scenario.run(&[]);
    assert!(status(&output) <= 1, "{}", String::from_utf8_lossy(&output.stderr));
    let html = std::fs::read_to_string(scenario.out().join("report.html")).expect("report.html");
    let document = scraper::Html::parse_document(&html);
    let scripts = scraper::Selector::parse("script").unwrap();
    assert_eq!(document.select(&scripts).count(), 0, "a script element made it into the page");
    let everything = scraper::Selector::parse("*").unwrap();
    for element in document.select(&everything) {
        for (name, value) in element.value().attrs() {
            assert!(!name.starts_with("on"), "event handler `{name}` on <{}>", element.value().name());
            assert!(!value.trim_start().to_lowercase().starts_with("javascript:"), "{name}={value}");
        }
    }
    // The text is there, shown as text.
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;") || html.contains("&lt;script&gt;alert(1)"));
    let markdown = std::fs::read_to_string(scenario.out().join("report.md")).unwrap();
    assert!(!markdown.contains("<script>"), "{markdown}");
}

#[test]
fn report_renders_every_format_and_a_users_template() {
    let folder = root().join("tests/fixtures/report");
    for (format, needle) in [
        ("md", "# quickstart — run report"),
        ("roadmap", "# Roadmap — quickstart"),
        ("html", "<svg"),
        ("json", "\"roadmap\""),
        ("csv", "run,phase,workload,experiment,arm,round,metric,statistic,value,unit"),
        ("bmf", "\"latency\""),
        ("junit", "<testsuites"),
    ] {
        let output = phasebench().args(["report", "--format", format]).arg(&folder).output().unwrap();
        assert_eq!(status(&output), 0, "{format}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(String::from_utf8_lossy(&output.stdout).contains(needle), "{format}");
    }
    // Every format the registry offers renders (a new one is covered without
    // being named here); the flame graph needs a profiled run and `--run`.
    for format in Format::value_variants().iter().filter(|format| format.name() != "flamegraph") {
        let output = phasebench().args(["report", "--format", format.name()]).arg(&folder).output().unwrap();
        assert_eq!(status(&output), 0, "{}: {}", format.name(), String::from_utf8_lossy(&output.stderr));
        assert!(!output.stdout.is_empty(), "{} wrote nothing", format.name());
    }
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("mine.txt");
    std::fs::write(&template, "{{ a.scenario.name }}: {{ a.targets_held }}/{{ a.targets_total }}").unwrap();
    let output = phasebench().arg("report").arg(&folder).arg("--template").arg(&template).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "quickstart: 7/7");
    std::fs::write(&template, "{{ a.nothing.here }}").unwrap();
    let output = phasebench().arg("report").arg(&folder).arg("--template").arg(&template).output().unwrap();
    assert_eq!(status(&output), 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("mine.txt"));
    let output = phasebench().args(["report", "/no/such/results.json"]).output().unwrap();
    assert_eq!(status(&output), 2);
}
