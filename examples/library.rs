//! Using phasebench as a library: parse a scenario, plan it, run it, and read
//! the figures and target outcomes without the command line.
//!
//! `cargo run --release --example library`

use phasebench::analysis::{Analysis, CompareSettings};
use phasebench::plan::{self, PlanOptions};
use phasebench::results::store::StoreError;
use phasebench::results::{Results, RunRecord};
use phasebench::run::{execute_plan, Control, Observer, RunProgress};

const SCENARIO: &str = "scenario: from-rust
engines: { cal: { kind: calibrate } }
phases:
  - name: timers
    workloads:
      - name: spin
        engine: cal
        op: spin
        with: { duration: 200us }
        matrix: { c: [1, 2] }
        load: { concurrency: \"${c}\" }
        iterations: 2000
        warmup: 50x
        targets: [ \"latency.p99 < 1ms\" ]
";

/// Prints one line per finished run instead of saving files.
struct Print;

impl Observer for Print {
    fn run_started(&mut self, _index: usize, _total: usize, _spec: &plan::RunSpec) {}
    fn tick(&mut self, _spec: &plan::RunSpec, _progress: &RunProgress) {}
    fn run_finished(&mut self, record: &RunRecord, _results: &Results) -> Result<(), StoreError> {
        println!("{}: {} operations in {:.3}s", record.id, record.operations, record.elapsed_seconds());
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let document = phasebench::dsl::parse("from-rust.yaml", SCENARIO.to_owned())?;
    let plan = plan::build(&document, &PlanOptions::default())?;
    let results = execute_plan(&plan, &Control::default(), &mut Print)?;
    let analysis = Analysis::of(&results, &CompareSettings::default());
    for target in &analysis.targets {
        println!("{} {}: {} ({})", target.run, target.target, target.measured, target.status_text);
    }
    println!("{}", analysis.verdict.text);
    Ok(())
}
