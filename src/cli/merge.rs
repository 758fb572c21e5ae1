//! `phasebench merge`: the results of `--shard` runs merged into one run folder.

use std::path::{Path, PathBuf};

use clap::Args;

use super::Status;
use phasebench::analysis::{Analysis, CompareSettings};
use phasebench::merge::{merge, MergeOptions};
use phasebench::quantity::{format_value, Dim};
use phasebench::report::{self, summary};
use phasebench::results::store::{self, StoreError};
use phasebench::results::Results;

/// Arguments of `phasebench merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Run folder to create for the merged results; must not exist.
    pub out: PathBuf,
    /// The shards' run folders (or their results.json files).
    #[arg(required = true, value_name = "DIR")]
    pub shards: Vec<PathBuf>,
    /// Merge the shards that are there when some are missing, marking the results incomplete.
    #[arg(long)]
    pub allow_missing: bool,
    #[command(flatten)]
    pub record: super::history::RecordArgs,
}

/// Runs the command: every check before the folder is created, so a refused
/// merge writes nothing.
pub fn execute(args: &MergeArgs) -> Status {
    if args.out.exists() {
        eprintln!("error: `{}` already exists; a merge never overwrites a folder", args.out.display());
        return Status::InvalidInput;
    }
    let mut shards = Vec::with_capacity(args.shards.len());
    let mut files = Vec::with_capacity(args.shards.len());
    for path in &args.shards {
        let file = results_file(path);
        match store::load(&file) {
            Ok(results) => shards.push(results),
            Err(error) => {
                eprintln!("error: {error}");
                return Status::InvalidInput;
            }
        }
        files.push(file.display().to_string());
    }
    let options = MergeOptions { files, allow_missing: args.allow_missing };
    let results = match merge(&shards, &options) {
        Ok(results) => results,
        Err(error) => {
            eprintln!("error: {error}");
            return Status::InvalidInput;
        }
    };
    match store::create_run_folder(&args.out) {
        Ok(()) => {}
        Err(error @ StoreError::Exists(_)) => {
            eprintln!("error: {error}");
            return Status::InvalidInput;
        }
        Err(error) => {
            eprintln!("error: cannot create the run folder: {error}");
            return Status::Error;
        }
    }
    if let Err(error) = store::save(&args.out, &results) {
        eprintln!("error: results could not be saved: {error}");
        return Status::Error;
    }
    let analysis = Analysis::of(&results, &CompareSettings::default());
    super::history::record_saved(&args.record, &results, &analysis, &args.out);
    print!("{}", summary::render(&analysis));
    print!("{}", summary::experiments(&analysis));
    print!("{}", summary::profiles(&analysis.profiles, &args.out));
    for warning in report::folder::write_reports(&args.out, &results, &analysis) {
        eprintln!("warning: {warning}");
    }
    println!("{}", merged_line(&results));
    println!("results: {}", args.out.join("results.json").display());
    println!("reports: {0}/report.md, {0}/roadmap.md, {0}/report.html", args.out.display());
    print!("{}", summary::verdict(&analysis.verdict));
    if analysis.verdict.passed {
        Status::Success
    } else {
        Status::Failed
    }
}

/// A run folder's results.json, or the file itself.
fn results_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("results.json")
    } else {
        path.to_owned()
    }
}

/// `merged N shards (skew …)`, with the widest spread of one run's pieces
/// and the shards that were missing.
fn merged_line(results: &Results) -> String {
    let Some(merged) = &results.merged else { return String::new() };
    let run_skew = merged.run_skew_seconds.values().copied().fold(0.0, f64::max);
    let mut line = format!(
        "merged {} shard{} (skew {} between starts, at most {} within a run)",
        merged.shards.len(),
        if merged.shards.len() == 1 { "" } else { "s" },
        format_value(merged.skew_seconds, Dim::TIME),
        format_value(run_skew, Dim::TIME),
    );
    if !merged.missing.is_empty() {
        let missing: Vec<String> = merged.missing.iter().map(u32::to_string).collect();
        line.push_str(&format!("; INCOMPLETE: shard(s) {} missing", missing.join(", ")));
    }
    line
}
