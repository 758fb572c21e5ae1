//! `phasebench report` (render saved results again) and `phasebench compare`
//! (two saved runs side by side): their arguments, and which library call
//! each makes.

use std::path::{Path, PathBuf};

use clap::Args;

use phasebench::analysis::compare::CompareOptions;
use phasebench::analysis::{self, Analysis, CompareSettings};
use phasebench::report::format::{self, Format};
use phasebench::report::{compare, render};
use phasebench::results::{store, Results};

use super::Status;

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
    /// Side A (before): run folders or results.json files; with `--`, side B follows it.
    #[arg(required = true, num_args = 1..)]
    pub a: Vec<PathBuf>,
    /// Side B (after), after `--`: `compare A1 A2 -- B1 B2`.
    #[arg(last = true)]
    pub b: Vec<PathBuf>,
    /// Smallest change that counts, globally (`2%`) or per metric (`latency=5%`); repeatable.
    #[arg(long = "min-effect", value_name = "[METRIC=]PERCENT", value_parser = parse_min_effect)]
    pub min_effect: Vec<(Option<String>, f64)>,
    /// Fail (exit 1) on any change for the worse above this (`10%`), tested or not.
    #[arg(long = "fail-above", value_name = "PERCENT", value_parser = parse_percent)]
    pub fail_above: Option<f64>,
}

/// `5%` or `0.05` as a fraction.
pub(super) fn parse_percent(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let value = match trimmed.strip_suffix('%') {
        Some(number) => number.trim().parse::<f64>().map(|v| v / 100.0),
        None => trimmed.parse::<f64>(),
    };
    match value {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not a percentage such as 5%")),
    }
}

/// `5%` (global) or `latency=5%` (one metric).
fn parse_min_effect(text: &str) -> Result<(Option<String>, f64), String> {
    match text.split_once('=') {
        Some((metric, value)) if !metric.trim().is_empty() => {
            Ok((Some(metric.trim().to_owned()), parse_percent(value)?))
        }
        Some(_) => Err(format!("`{text}` names no metric before `=`")),
        None => Ok((None, parse_percent(text)?)),
    }
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
    let rendered = match &args.template {
        Some(template) => render::user(template, &analysis).map_err(|error| error.to_string()),
        None => format::render(args.format, &results, &analysis, args.run.as_deref()),
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

/// Compares saved runs on two sides; a significant regression exits 1.
pub fn compare(args: &CompareArgs) -> Status {
    let (a_paths, b_paths) = match (args.a.as_slice(), args.b.is_empty()) {
        (_, false) => (args.a.clone(), args.b.clone()),
        ([a, b], true) => (vec![a.clone()], vec![b.clone()]),
        _ => {
            eprintln!("error: give the two sides separated by `--`: phasebench compare A1 [A2 …] -- B1 [B2 …]");
            return Status::InvalidInput;
        }
    };
    let load_side = |paths: &[PathBuf]| paths.iter().map(|path| load(path)).collect::<Result<Vec<_>, _>>();
    let (a, b) = match (load_side(&a_paths), load_side(&b_paths)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(message), _) | (_, Err(message)) => {
            eprintln!("error: {message}");
            return Status::InvalidInput;
        }
    };
    let mut options = CompareOptions { fail_above: args.fail_above, ..CompareOptions::default() };
    for (metric, value) in &args.min_effect {
        match metric {
            Some(metric) => {
                options.min_effect.insert(metric.clone(), *value);
            }
            None => options.settings.noise = *value,
        }
    }
    let outcome = analysis::compare::compare(&a, &b, &options);
    if outcome.rows.is_empty() {
        eprintln!("error: the two sides share no run id with a common metric (experiment arms are not compared)");
        return Status::InvalidInput;
    }
    let name = |side: &[Results], fallback: &str| match side {
        [one] => format!("{} ({})", fallback, one.started_at.format("%Y-%m-%d %H:%M")),
        many => format!("{fallback} ({} files)", many.len()),
    };
    print!("{}", compare::table(&outcome, &name(&a, "A"), &name(&b, "B")));
    if outcome.fails {
        Status::Failed
    } else {
        Status::Success
    }
}
