//! `phasebench launch`: the scripts that run a scenario's shards under an
//! existing scheduler (Slurm, Kubernetes) and merge them, so that nobody
//! writes them by hand. We build no scheduler: every shard is one
//! `phasebench run --shard auto/N --start-at T`, the scheduler's index picks
//! the shard, and one agreed instant `T` starts them together.
//!
//! Everything is checked before anything is written or submitted: the shard
//! count, the scenario (planned with the extra run arguments, as each shard
//! will plan it) and the arguments themselves; a refusal exits 2.

mod kubernetes;
mod slurm;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use super::run::{self, RunArgs};
use super::Status;
use phasebench::{dsl, plan};

/// The schedulers `launch` writes for.
#[derive(Debug, Subcommand)]
pub enum LaunchCommand {
    /// Print (or, with --submit, submit) an sbatch array job of N shards and a merge job that waits for it.
    Slurm(slurm::SlurmArgs),
    /// Print Kubernetes manifests: the scenario in a ConfigMap, an Indexed Job of N shards, a merge Job.
    Kubernetes(kubernetes::KubernetesArgs),
}

/// What every scheduler needs: the scenario, the shards, when they start, and how each runs.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// The scenario file.
    pub file: PathBuf,
    /// How many shards (1 to 10000); each runs its share of every workload.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(plan::MAX_SHARDS)))]
    pub shards: u32,
    /// The shards start together this many seconds after submission (default 30): give
    /// the scheduler time to start every one of them, as a shard started late runs at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=MAX_START_IN))]
    pub start_in: u32,
    /// Start the shards at this instant instead (RFC 3339, e.g. 2026-12-01T09:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = run::parse_start, conflicts_with = "start_in")]
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The phasebench the shards run (Slurm: this program's own path; Kubernetes: `phasebench` in the image).
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Arguments for every shard's `phasebench run` after `--`, e.g. `-- --smoke --var nap=1ms`.
    #[arg(last = true, value_name = "RUN ARGS")]
    pub run_args: Vec<String>,
}

/// A week: a start further off is a typing mistake, not a plan.
const MAX_START_IN: i64 = 7 * 24 * 3600;

/// When the shards start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// This many seconds after submission, computed once when the jobs are submitted.
    In(u32),
    /// At this instant.
    At(chrono::DateTime<chrono::Utc>),
}

impl Start {
    /// The instant, for a launch submitted now.
    pub fn instant(self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        match self {
            Start::In(seconds) => now + chrono::Duration::seconds(i64::from(seconds)),
            Start::At(time) => time,
        }
    }
}

/// A launch whose every part was checked.
#[derive(Debug)]
pub struct Launch {
    /// The scenario file, absolute.
    pub scenario: PathBuf,
    /// Its text, as checked.
    pub source: String,
    /// The scenario's name (`scenario:`).
    pub name: String,
    /// How many shards.
    pub shards: u32,
    /// When they start.
    pub start: Start,
    /// The extra `phasebench run` arguments, as given.
    pub run_args: Vec<String>,
}

/// `phasebench run`'s own parser, to check the extra run arguments exactly as a shard will read them.
#[derive(Debug, Parser)]
#[command(name = "phasebench run", no_binary_name = true)]
struct RunLine {
    #[command(flatten)]
    run: RunArgs,
}

/// Runs the command.
pub fn execute(command: LaunchCommand) -> Status {
    match command {
        LaunchCommand::Slurm(args) => slurm::execute(&args),
        LaunchCommand::Kubernetes(args) => kubernetes::execute(&args),
    }
}

/// Checks the scenario and the run arguments; prints why not and returns exit 2 on a refusal.
fn check(args: &LaunchArgs) -> Result<Launch, Status> {
    let refuse = |message: String| {
        eprintln!("error: {message}");
        Status::InvalidInput
    };
    if let Some(bad) = args.run_args.iter().find(|arg| arg.chars().any(char::is_control)) {
        return Err(refuse(format!("run argument {bad:?} holds a control character")));
    }
    let line = std::iter::once(args.file.as_os_str().to_owned()).chain(args.run_args.iter().map(Into::into));
    let run = match RunLine::try_parse_from(line) {
        Ok(line) => line.run,
        Err(error) => {
            eprintln!("error: the run arguments after `--` are not what `phasebench run` takes:");
            eprint!("{error}");
            return Err(Status::InvalidInput);
        }
    };
    for (given, flag) in
        [(run.shard.is_some(), "--shard"), (run.start_at.is_some(), "--start-at"), (run.out.is_some(), "--out")]
    {
        if given {
            return Err(refuse(format!(
                "{flag} is the launcher's to set for each shard; leave it out of the run arguments"
            )));
        }
    }
    let scenario =
        std::path::absolute(&args.file).map_err(|error| refuse(format!("{}: {error}", args.file.display())))?;
    let document = dsl::load(&args.file).map_err(|diagnostics| {
        eprint!("{diagnostics}");
        Status::InvalidInput
    })?;
    let plan = plan::build(&document, &run::plan_options(&run)).map_err(|diagnostics| {
        eprint!("{diagnostics}");
        Status::InvalidInput
    })?;
    let start = args.start_at.map_or(Start::In(args.start_in), Start::At);
    Ok(Launch {
        scenario,
        source: document.source,
        name: plan.scenario.name,
        shards: args.shards,
        start,
        run_args: args.run_args.clone(),
    })
}

/// `text` as one word for a POSIX shell: bare when that is safe, otherwise single-quoted.
fn shell_word(text: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !text.is_empty() && text.chars().all(bare) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The extra run arguments as shell words, each after a space.
fn shell_tail(words: &[String]) -> String {
    words.iter().map(|word| format!(" {}", shell_word(word))).collect()
}

/// `path` as shell text, or why it cannot be.
fn path_text(path: &Path) -> Result<&str, String> {
    path.to_str().ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_survive_any_text() {
        assert_eq!(shell_word("--var"), "--var");
        assert_eq!(shell_word("nap=1ms"), "nap=1ms");
        assert_eq!(shell_word("two words"), "'two words'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn the_start_is_one_instant() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z").unwrap().to_utc();
        assert_eq!(Start::In(30).instant(now).to_rfc3339(), "2026-12-01T09:00:30+00:00");
        assert_eq!(Start::At(now).instant(chrono::Utc::now()), now);
    }
}
