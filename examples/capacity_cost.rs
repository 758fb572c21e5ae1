//! What a capacity search costs against a fixed grid of loads that pins the
//! capacity as tightly: operations measured and wall time.
//!
//! The system is the known queue of `tests/capacity_search.rs`: `calibrate
//! sleep 1ms` behind 4 in-flight slots, a p99 of 3 ms, rates from 1,000/s to
//! 16,000/s, 1,000 measured operations and 200 of warm-up per load. Each
//! search is followed by a grid over the same range whose geometric step is
//! that search's relative interval width, every load run once (a vLLM-style
//! sweep); the grid's capacity and interval come from the same fit.
//!
//!   cargo run --release --example capacity_cost [-- PAIRS]
//!
//! Figures from one run are in docs/performance.md.

use std::time::Instant;

use phasebench::analysis::capacity::estimate;
use phasebench::analysis::{Analysis, CompareSettings, TargetStatus};
use phasebench::plan::{self, PlanOptions, RunSpec};
use phasebench::results::store::StoreError;
use phasebench::results::{ProbeOutcome, Results, RunRecord};
use phasebench::run::{execute_plan, Control, Observer, RunProgress};

const LOW: f64 = 1_000.0;
const HIGH: f64 = 16_000.0;

struct Quiet;

impl Observer for Quiet {
    fn run_started(&mut self, _index: usize, _total: usize, _spec: &RunSpec) {}
    fn tick(&mut self, _spec: &RunSpec, _progress: &RunProgress) {}
    fn run_finished(&mut self, _record: &RunRecord, _results: &Results) -> Result<(), StoreError> {
        Ok(())
    }
}

fn scenario(load: &str, matrix: &str) -> String {
    format!(
        "scenario: capacity-cost
engines: {{ cal: {{ kind: calibrate }} }}
phases:
  - name: p
    workloads:
      - name: queue
        engine: cal
        op: sleep
        with: {{ duration: 1ms }}
        warmup: 200x
        iterations: 1000
        {matrix}
        load: {load}
        targets: [\"latency.p99 < 3ms\"]
"
    )
}

fn run(text: String) -> Result<(Results, f64), Box<dyn std::error::Error>> {
    let document = phasebench::dsl::parse("capacity-cost.yaml", text)?;
    let plan = plan::build(&document, &PlanOptions::default())?;
    let start = Instant::now();
    let results = execute_plan(&plan, &Control::default(), &mut Quiet)?;
    Ok((results, start.elapsed().as_secs_f64()))
}

/// Operations measured, warm-up included.
fn operations(run: &RunRecord) -> u64 {
    run.operations + run.errors + run.dropped + 200
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pairs: usize = std::env::args().nth(1).map_or(Ok(3), |n| n.parse())?;
    println!("| pair | method | loads run | operations | wall | capacity | 95% interval | width | note |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |");
    for pair in 1..=pairs {
        let (results, wall) =
            run(scenario(&format!("{{ search: {{ rate: [{LOW}/s, {HIGH}/s] }}, max_in_flight: 4 }}"), ""))?;
        let search = results.runs[0].search.as_ref().ok_or("the search left no record")?;
        let operations_run: u64 = search.probes.iter().map(|probe| operations(&probe.run)).sum();
        let lagged = search.probes.iter().filter(|probe| probe.outcome == ProbeOutcome::Lagged).count();
        let note = format!("{:?}, {lagged} lagged", search.finish);
        let Some([low, high]) = search.capacity.interval else {
            println!(
                "| {pair} | search | {} | {operations_run} | {wall:.1} s | – | – | – | {note}, {:?} |",
                search.probes.len(),
                search.capacity.bound
            );
            continue;
        };
        let width = high / low - 1.0;
        println!(
            "| {pair} | search | {} | {operations_run} | {wall:.1} s | {:.0}/s | {low:.0}–{high:.0}/s | {:.1}% | {note} |",
            search.probes.len(),
            search.capacity.value.unwrap_or(f64::NAN),
            width * 100.0
        );

        // A grid whose step is the search's interval width.
        let steps = ((HIGH / LOW).ln() / (1.0 + width).ln()).ceil() as usize;
        let rates: Vec<String> =
            (0..=steps).map(|k| format!("{:.1}", LOW * (HIGH / LOW).powf(k as f64 / steps as f64))).collect();
        let matrix = format!("matrix: {{ rate: [{}] }}", rates.join(", "));
        let (grid, wall) = run(scenario("{ rate: \"${rate}\", max_in_flight: 4 }", &matrix))?;
        let analysis = Analysis::of(&grid, &CompareSettings::default());
        let mut points = Vec::new();
        for (record, rate) in grid.runs.iter().zip(&rates) {
            let outcome = analysis.targets.iter().find(|target| target.run == record.id);
            match outcome.map(|target| &target.status) {
                Some(TargetStatus::Held) => points.push((rate.parse::<f64>()?, true)),
                Some(TargetStatus::Missed) => points.push((rate.parse::<f64>()?, false)),
                _ => {}
            }
        }
        let fit = estimate(&points);
        let operations_run: u64 = grid.runs.iter().map(operations).sum();
        let (low, high) = fit.interval.unwrap_or((f64::NAN, f64::NAN));
        // Misses below the highest load that held: the noise one run per load cannot see past.
        let highest_pass = fit.highest_pass.unwrap_or(0.0);
        let early: Vec<String> = points
            .iter()
            .filter(|(load, passed)| !passed && *load < highest_pass)
            .map(|(load, _)| format!("{load:.0}"))
            .collect();
        let note = if early.is_empty() { "monotone".to_string() } else { format!("missed at {}/s", early.join(", ")) };
        println!(
            "| {pair} | grid | {} | {operations_run} | {wall:.1} s | {:.0}/s | {low:.0}–{high:.0}/s | {:.1}% | {note} |",
            grid.runs.len(),
            fit.capacity.unwrap_or(f64::NAN),
            (high / low - 1.0) * 100.0
        );
    }
    Ok(())
}
