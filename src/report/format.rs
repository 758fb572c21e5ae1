//! The formats `phasebench report` writes, each declared once: its
//! `--format` name, its line in `phasebench report --help`, and the function
//! that renders it.
//!
//! The reports drawn from templates and the flame graph are declared here;
//! every machine-readable export declares itself in its own file under
//! [`super::export`], whose `exporters!` list names it. A new export format
//! is that file and one line in the list.

use std::sync::OnceLock;

use clap::builder::PossibleValue;
use clap::ValueEnum;

use super::render::built_in;
use super::{export, flamegraph};
use crate::analysis::Analysis;
use crate::results::Results;

/// What a format is rendered from.
pub struct Inputs<'a> {
    /// The saved results.
    pub results: &'a Results,
    /// Their analysis.
    pub analysis: &'a Analysis,
    /// The run `--run` names, for formats about one run.
    pub run: Option<&'a str>,
}

/// One format `phasebench report` can write.
#[derive(Debug)]
pub struct FormatDecl {
    /// Its `--format` value.
    pub name: &'static str,
    /// Its line in `--help`.
    pub help: &'static str,
    /// The rendering, or why there is none.
    pub render: fn(&Inputs<'_>) -> Result<String, String>,
}

/// A format chosen with `--format`.
#[derive(Clone, Copy, Debug)]
pub struct Format(&'static FormatDecl);

impl Format {
    /// Its `--format` value.
    pub fn name(self) -> &'static str {
        self.0.name
    }
}

impl PartialEq for Format {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Format {}

fn template(inputs: &Inputs<'_>, name: &str) -> Result<String, String> {
    built_in(name, inputs.analysis).map_err(|error| error.to_string())
}

static MD: FormatDecl =
    FormatDecl { name: "md", help: "The Markdown report (report.md)", render: |inputs| template(inputs, "report.md") };

static ROADMAP: FormatDecl = FormatDecl {
    name: "roadmap",
    help: "The Markdown roadmap (roadmap.md)",
    render: |inputs| template(inputs, "roadmap.md"),
};

static HTML: FormatDecl = FormatDecl {
    name: "html",
    help: "The HTML report with its charts (report.html)",
    render: |inputs| template(inputs, "report.html"),
};

static FLAMEGRAPH: FormatDecl = FormatDecl {
    name: "flamegraph",
    help: "The flame graph (SVG) of the CPU profile of the run named by `--run`",
    render: |inputs| flamegraph::of_run(inputs.results, inputs.run),
};

/// Every format, in the order `--help` lists them.
fn all() -> &'static [Format] {
    static ALL: OnceLock<Vec<Format>> = OnceLock::new();
    ALL.get_or_init(|| {
        let reports = [&MD, &ROADMAP, &HTML].into_iter();
        let exports = export::EXPORTERS.iter().copied();
        reports.chain(exports).chain([&FLAMEGRAPH]).map(Format).collect()
    })
}

impl ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Self] {
        all()
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.name).help(self.0.help))
    }
}

/// Saved results in `format`; `run` names the run whose flame graph the
/// `flamegraph` format draws.
pub fn render(format: Format, results: &Results, analysis: &Analysis, run: Option<&str>) -> Result<String, String> {
    (format.0.render)(&Inputs { results, analysis, run })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_has_one_name() {
        let names: Vec<&str> = all().iter().map(|format| format.name()).collect();
        assert_eq!(names[..3], ["md", "roadmap", "html"]);
        assert_eq!(names.last(), Some(&"flamegraph"));
        for export in ["json", "csv", "bmf", "junit"] {
            assert!(names.contains(&export), "{export} is not offered");
        }
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "two formats share a name: {names:?}");
        assert_eq!(Format::from_str("junit", false).map(Format::name), Ok("junit"));
        assert!(Format::from_str("xml", false).is_err());
    }
}
