//! Writing the reports of a run into its run folder: report.md, roadmap.md,
//! report.html and one flame graph per CPU-profiled run.
//!
//! A report that cannot be written does not stop the others, and never the
//! results, which are saved before; each failure comes back as a warning for
//! the caller to show.

use std::path::Path;

use super::{flamegraph, render};
use crate::analysis::profiles::flamegraph_file;
use crate::analysis::Analysis;
use crate::results::{store, Results};

/// Writes the flame graphs, report.md, roadmap.md and report.html into
/// `folder`; returns one warning per file that was not written.
pub fn write_reports(folder: &Path, results: &Results, analysis: &Analysis) -> Vec<String> {
    let mut warnings = write_flamegraphs(folder, results);
    for name in ["report.md", "roadmap.md", "report.html"] {
        let written = render::built_in(name, analysis)
            .map_err(|error| error.to_string())
            .and_then(|text| store::write_atomic(&folder.join(name), text.as_bytes()).map_err(|e| e.to_string()));
        if let Err(message) = written {
            warnings.push(format!("{name} was not written: {message}"));
        }
    }
    warnings
}

/// Writes the flame graph of every run with a CPU profile into `folder`;
/// returns one warning per graph that was not written.
pub fn write_flamegraphs(folder: &Path, results: &Results) -> Vec<String> {
    let mut warnings = Vec::new();
    for (index, run) in results.runs.iter().enumerate() {
        let Some(cpu) = run.profile.as_ref().and_then(|profile| profile.cpu.as_ref()) else { continue };
        if cpu.samples == 0 {
            continue;
        }
        let name = flamegraph_file(index, &run.id);
        let written = flamegraph::svg(&run.id, &results.scenario.name, cpu)
            .and_then(|svg| store::write_atomic(&folder.join(&name), svg.as_bytes()).map_err(|e| e.to_string()));
        if let Err(message) = written {
            warnings.push(format!("{name} was not written: {message}"));
        }
    }
    warnings
}
