//! Flame graphs of CPU profiles, drawn by inferno from the folded stacks a
//! results file keeps, so that `phasebench report` can draw them again.
//!
//! The SVG is a file of its own beside the reports (inferno's, with its
//! small script for zooming and searching), linked from them and never
//! inlined: the HTML report forbids scripts.

use crate::results::{CpuProfile, Results};

/// The flame graph of one run's CPU profile.
pub fn svg(run: &str, scenario: &str, cpu: &CpuProfile) -> Result<String, String> {
    let mut options = inferno::flamegraph::Options::default();
    options.title = format!("{scenario}: {run}");
    let over = cpu.cpu_seconds.map(|seconds| format!(" over {seconds:.2} s of CPU time")).unwrap_or_default();
    options.subtitle = Some(format!(
        "{} stacks sampled{over} (asked {} Hz), every thread of the process",
        cpu.samples, cpu.frequency_hz
    ));
    options.count_name = "samples".into();
    // Colours from the function name, so the same function has the same
    // colour in every graph and every run.
    options.hash = true;
    options.deterministic = true;
    let lines: Vec<String> = cpu.stacks.iter().map(|stack| format!("{} {}", stack.stack, stack.samples)).collect();
    if lines.is_empty() {
        return Err(format!("run `{run}` has a CPU profile without samples"));
    }
    let mut out = Vec::new();
    inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut out)
        .map_err(|error| format!("the flame graph of `{run}` could not be drawn: {error}"))?;
    String::from_utf8(out).map_err(|_| format!("the flame graph of `{run}` is not UTF-8"))
}

/// The flame graph of the run named `run`, or an error that lists the runs
/// with a CPU profile.
pub fn of_run(results: &Results, run: Option<&str>) -> Result<String, String> {
    let profiled: Vec<&str> = results
        .runs
        .iter()
        .filter(|run| run.profile.as_ref().is_some_and(|profile| profile.cpu.is_some()))
        .map(|run| run.id.as_str())
        .collect();
    let choices = if profiled.is_empty() {
        "no run of these results has `profile: cpu`".to_owned()
    } else {
        format!("runs with a CPU profile: {}", profiled.join(", "))
    };
    let Some(id) = run else { return Err(format!("--format flamegraph needs --run ID; {choices}")) };
    let cpu = results
        .runs
        .iter()
        .find(|candidate| candidate.id == id)
        .and_then(|run| run.profile.as_ref())
        .and_then(|profile| profile.cpu.as_ref())
        .ok_or_else(|| format!("run `{id}` has no CPU profile; {choices}"))?;
    svg(id, &results.scenario.name, cpu)
}
