//! Command-line arguments and the small commands; `run` has its own file.

pub mod completions;
pub mod editor;
pub mod history;
pub mod inspect;
pub mod launch;
pub mod list;
pub mod merge;
pub mod metrics;
pub mod report;
pub mod run;
pub mod serve;
pub mod vault;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use phasebench::{dsl, plan};

/// Exit statuses, as documented in the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done, and the answer is yes: every target held, no significant regression, the key was found.
    Success = 0,
    /// Done, and the answer is no: a target missed or not judged, work dropped, the load generator
    /// behind, a run cut short, a significant regression, no such key, corruption found.
    Failed = 1,
    /// The input was invalid; nothing ran or was written.
    InvalidInput = 2,
    /// The tool could not do its work: a file or folder could not be written.
    Error = 3,
}

/// Declarative performance campaigns.
#[derive(Debug, Parser)]
#[command(name = "phasebench", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario and write its run folder.
    Run(run::RunArgs),
    /// Parse and check a scenario; run nothing.
    Validate {
        /// The scenario file.
        file: PathBuf,
    },
    /// List engines, operations, options and metrics with their units.
    List,
    /// Render saved results again: Markdown, HTML, JSON, CSV, Bencher Metric Format, JUnit, or your template.
    Report(report::ReportArgs),
    /// Compare saved runs (A… -- B…) metric by metric over their repetitions; exit 1 on a significant regression.
    Compare(report::CompareArgs),
    /// Merge the results of `run --shard I/N` runs into one run folder: OUT DIR…
    Merge(merge::MergeArgs),
    /// The vault store: put, get, check, compact.
    Vault {
        /// What to do.
        #[command(subcommand)]
        what: vault::VaultCommand,
    },
    /// Scripts that run a scenario as N shards under Slurm or Kubernetes, then merge them.
    Launch {
        /// Which scheduler.
        #[command(subcommand)]
        scheduler: launch::LaunchCommand,
    },
    /// Serve the llm engine's model over an OpenAI-compatible HTTP API, with continuous batching.
    Serve(serve::ServeArgs),
    /// The history of every run: import, show series and change points, check for a regression, tag.
    History {
        /// What to do.
        #[command(subcommand)]
        what: history::HistoryCommand,
    },
    /// Look inside an engine: `inspect logits`, `inspect cuda`, `inspect corpus`.
    Inspect {
        /// What to inspect.
        #[command(subcommand)]
        what: inspect::InspectCommand,
    },
    /// Print the shell completion script for bash, zsh, fish, elvish or PowerShell.
    Completions {
        /// Which shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the scenario format's JSON Schema (draft 2020-12), for editors and validators.
    Schema {
        /// Narrow it to this scenario's engine instances: `engine:` offers them, `op:` only the instance's.
        #[arg(long = "for", value_name = "SCENARIO")]
        scenario: Option<PathBuf>,
        /// Write it to this file instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Write a commented starter scenario that validates, and the schema beside it for editors.
    Init {
        /// The scenario file to write; it must not exist.
        #[arg(default_value = "scenario.yaml")]
        file: PathBuf,
        /// The engine kind it measures (`phasebench list` shows them).
        #[arg(long, default_value = "calibrate", value_name = "KIND")]
        engine: String,
    },
    /// Write man pages: phasebench.1 and one per subcommand (phasebench-run.1, phasebench-history-show.1…).
    Man {
        /// The folder to write them in, e.g. ~/.local/share/man/man1.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// `phasebench validate FILE`.
pub fn validate(file: &Path) -> Status {
    let checked = dsl::load(file).and_then(|doc| plan::build(&doc, &plan::PlanOptions::default()));
    match checked {
        Ok(plan) => {
            let experiments = plan.experiments.len();
            println!(
                "{}: ok — scenario `{}`, {} runs, {} experiment{}",
                file.display(),
                plan.scenario.name,
                plan.runs.len(),
                experiments,
                if experiments == 1 { "" } else { "s" }
            );
            Status::Success
        }
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            Status::InvalidInput
        }
    }
}

/// `phasebench list`.
pub fn list() -> Status {
    print!("{}", list::render());
    Status::Success
}
