//! `phasebench report` (render saved results again) and `phasebench compare`
//! (two saved runs side by side), plus writing the reports into a run folder.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use phasebench::analysis::profiles::flamegraph_file;
use phasebench::analysis::{Analysis, CompareSettings};
use phasebench::report::{compare, export, flamegraph, render};
use phasebench::results::{store, Results};

use super::Status;

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

/// `phasebench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run folder or its results.json.
    pub results: PathBuf,
    /// A Tera template of your own (a name ending in .html is HTML-escaped and gets the charts).
    #[arg(long, conflicts_with = "format")]
    pub template: Option<PathBuf>,
    /// What to write to standard output.
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
    /// The run whose flame graph `--format flamegraph` draws (its id, e.g. `llm-time-breakdown`).
    #[arg(long)]
    pub run: Option<String>,
}

/// `phasebench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The earlier run: a run folder or its results.json.
    pub a: PathBuf,
    /// The later run.
    pub b: PathBuf,
}

fn load(path: &Path) -> Result<Results, String> {
    let file = if path.is_dir() { path.join("results.json") } else { path.to_path_buf() };
    store::load(&file).map_err(|error| format!("{}: {error}", file.display()))
}

/// Renders saved results again.
pub fn report(args: &ReportArgs) -> Status {
    let results = match load(&args.results) {
        Ok(results) => results,
        Err(message) => {
            eprintln!("error: {message}");
            return Status::InvalidInput;
        }
    };
    let analysis = Analysis::of(&results, &CompareSettings::default());
    let rendered = match (&args.template, args.format) {
        (Some(template), _) => render::user(template, &analysis).map_err(|error| error.to_string()),
        (None, Format::Md) => render::built_in("report.md", &analysis).map_err(|error| error.to_string()),
        (None, Format::Roadmap) => render::built_in("roadmap.md", &analysis).map_err(|error| error.to_string()),
        (None, Format::Html) => render::built_in("report.html", &analysis).map_err(|error| error.to_string()),
        (None, Format::Json) => Ok(export::json(&analysis)),
        (None, Format::Csv) => Ok(export::csv(&results)),
        (None, Format::Bmf) => Ok(export::bmf(&results)),
        (None, Format::Junit) => Ok(export::junit(&analysis)),
        (None, Format::Flamegraph) => flamegraph_of(&results, args.run.as_deref()),
    };
    match rendered {
        Ok(text) => {
            use std::io::Write as _;
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            Status::Success
        }
        Err(message) => {
            eprintln!("error: {message}");
            Status::InvalidInput
        }
    }
}

/// The flame graph of one profiled run, or which runs have one.
fn flamegraph_of(results: &Results, run: Option<&str>) -> Result<String, String> {
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
    flamegraph::svg(id, &results.scenario.name, cpu)
}

/// Compares two saved runs; a significant regression exits 1.
pub fn compare(args: &CompareArgs) -> Status {
    let (a, b) = match (load(&args.a), load(&args.b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(message), _) | (_, Err(message)) => {
            eprintln!("error: {message}");
            return Status::InvalidInput;
        }
    };
    let rows = compare::compare(&a, &b, &CompareSettings::default());
    if rows.is_empty() {
        eprintln!("error: the two results share no run id with a common metric");
        return Status::InvalidInput;
    }
    let name =
        |results: &Results, fallback: &str| format!("{} ({})", fallback, results.started_at.format("%Y-%m-%d %H:%M"));
    print!("{}", compare::table(&rows, &name(&a, "A"), &name(&b, "B")));
    let regressions = rows.iter().filter(|row| row.regressed()).count();
    if regressions > 0 {
        println!("{regressions} significant regression{}", if regressions == 1 { "" } else { "s" });
        Status::TargetMissed
    } else {
        println!("no significant regression");
        Status::Success
    }
}

/// Writes report.md, roadmap.md, report.html and the flame graphs into a
/// run folder; a failure is reported and the results stay.
pub fn write_reports(folder: &Path, results: &Results, analysis: &Analysis) {
    write_flamegraphs(folder, results);
    for name in ["report.md", "roadmap.md", "report.html"] {
        let written = render::built_in(name, analysis)
            .map_err(|error| error.to_string())
            .and_then(|text| store::write_atomic(&folder.join(name), text.as_bytes()).map_err(|e| e.to_string()));
        if let Err(message) = written {
            eprintln!("warning: {name} was not written: {message}");
        }
    }
}

/// Writes the flame graph of every run with a CPU profile into `folder`.
pub fn write_flamegraphs(folder: &Path, results: &Results) {
    for (index, run) in results.runs.iter().enumerate() {
        let Some(cpu) = run.profile.as_ref().and_then(|profile| profile.cpu.as_ref()) else { continue };
        if cpu.samples == 0 {
            continue;
        }
        let name = flamegraph_file(index, &run.id);
        let written = flamegraph::svg(&run.id, &results.scenario.name, cpu)
            .and_then(|svg| store::write_atomic(&folder.join(&name), svg.as_bytes()).map_err(|e| e.to_string()));
        if let Err(message) = written {
            eprintln!("warning: {name} was not written: {message}");
        }
    }
}
