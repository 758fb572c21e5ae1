//! The formats `phasebench report` writes, and the one place that maps each
//! to the function that renders it.
//!
//! A new format is a variant of [`Format`] (its doc comment is its line in
//! `phasebench report --help`) and its arm in [`render`]; a machine-readable
//! one lives in a file of its own in [`super::export`].

use clap::ValueEnum;

use super::render::built_in;
use super::{export, flamegraph};
use crate::analysis::Analysis;
use crate::results::Results;

/// What `phasebench report` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The Markdown report (report.md).
    Md,
    /// The Markdown roadmap (roadmap.md).
    Roadmap,
    /// The HTML report with its charts (report.html).
    Html,
    /// The analysis as JSON (the data model templates receive).
    Json,
    /// One row per run, metric and statistic.
    Csv,
    /// Bencher Metric Format.
    Bmf,
    /// JUnit XML, one test case per target.
    Junit,
    /// The flame graph (SVG) of the CPU profile of the run named by `--run`.
    Flamegraph,
}

/// Saved results in `format`; `run` names the run whose flame graph
/// [`Format::Flamegraph`] draws.
pub fn render(format: Format, results: &Results, analysis: &Analysis, run: Option<&str>) -> Result<String, String> {
    let template = |name: &str| built_in(name, analysis).map_err(|error| error.to_string());
    match format {
        Format::Md => template("report.md"),
        Format::Roadmap => template("roadmap.md"),
        Format::Html => template("report.html"),
        Format::Json => Ok(export::json(analysis)),
        Format::Csv => Ok(export::csv(results)),
        Format::Bmf => Ok(export::bmf(results)),
        Format::Junit => Ok(export::junit(analysis)),
        Format::Flamegraph => flamegraph::of_run(results, run),
    }
}
