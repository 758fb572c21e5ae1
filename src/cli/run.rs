//! `phasebench run`: check, create the run folder, measure, save, summarize.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::Status;
use phasebench::analysis::{capacity, Analysis, CompareSettings};
use phasebench::metric::names;
use phasebench::plan::{Plan, PlanOptions, RunSpec, Shard};
use phasebench::quantity::{format_value, Dim};
use phasebench::report::{self, summary};
use phasebench::results::live::Live;
use phasebench::results::store::{self, StoreError};
use phasebench::results::{ProbeRecord, Results, RunRecord};
use phasebench::run::{execute_plan, Control, Observer, RunProgress};
use phasebench::{dsl, plan};

/// Arguments of `phasebench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file.
    pub file: PathBuf,
    /// Run folder to create (default: runs/<scenario>-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Shrink every workload to a few iterations.
    #[arg(long)]
    pub smoke: bool,
    /// Run only this phase, workload or experiment.
    #[arg(long)]
    pub only: Option<String>,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run every phase's runs N times, in passes (1 to 100); experiments keep their rounds.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(plan::MAX_REPEAT)))]
    pub repeat: u32,
    /// Set a variable of the scenario's `vars:`, e.g. `--var endurance=1h` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Run only this shard's share of every workload, `I/N` (I from 0), or
    /// `auto/N` to read I from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Wait until this instant (RFC 3339, e.g. 2026-12-01T09:00:00Z) before
    /// the first run, so that every shard measures the same window.
    #[arg(long, value_name = "TIME", value_parser = parse_start)]
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Print only the summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Serve the running campaign's counters and latency histograms for Prometheus at http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub record: super::history::RecordArgs,
}

/// `--start-at`: an RFC 3339 instant.
pub fn parse_start(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&chrono::Utc))
        .map_err(|error| format!("`{text}` is not an RFC 3339 time such as 2026-12-01T09:00:00Z ({error})"))
}

/// The environment variables a scheduler sets to a task's index.
const SHARD_INDEX_VARIABLES: [&str; 2] = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"];

/// `--shard I/N` or `auto/N`, with `auto` read from the scheduler's environment.
fn shard_of(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
    match text.strip_prefix("auto/") {
        Some(count) => {
            let Some((name, index)) =
                SHARD_INDEX_VARIABLES.iter().find_map(|name| env(name).map(|value| (*name, value)))
            else {
                return Err(format!(
                    "--shard auto/{count}: neither {} is set; give the index, --shard I/{count}",
                    SHARD_INDEX_VARIABLES.join(" nor ")
                ));
            };
            format!("{}/{count}", index.trim())
                .parse()
                .map_err(|error| format!("--shard auto/{count} ({name}={index}): {error}"))
        }
        None => text.parse().map_err(|error| format!("--shard {text}: {error}")),
    }
}

/// `NAME=VALUE` from `--var`.
fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

/// What the arguments ask of the planner.
pub fn plan_options(args: &RunArgs) -> PlanOptions {
    PlanOptions {
        smoke: args.smoke,
        only: args.only.clone(),
        seed: args.seed,
        vars: args.vars.iter().cloned().collect(),
        repeat: args.repeat,
    }
}

/// Runs the command.
pub fn execute(args: RunArgs) -> Status {
    let options = plan_options(&args);
    let document = match dsl::load(&args.file) {
        Ok(document) => document,
        Err(diagnostics) => return invalid(&diagnostics),
    };
    let mut plan = match plan::build(&document, &options) {
        Ok(plan) => plan,
        Err(diagnostics) => return invalid(&diagnostics),
    };
    if let Some(text) = &args.shard {
        let shard = shard_of(text, |name| std::env::var(name).ok());
        match shard {
            Ok(shard) => plan::split(&mut plan, shard),
            Err(error) => {
                eprintln!("error: {error}");
                return Status::InvalidInput;
            }
        }
    }
    // Listening comes before the run folder, so that a port in use leaves nothing behind.
    let live = match args.metrics_addr {
        None => None,
        Some(addr) => {
            let live = Arc::new(Live::new(&plan.scenario.name));
            match super::metrics::serve(addr, Arc::clone(&live)) {
                Ok(bound) => eprintln!("metrics: http://{bound}/metrics"),
                Err(error) => {
                    eprintln!("error: --metrics-addr {addr}: cannot listen: {error}");
                    eprintln!("  = hint: choose a free port, such as 127.0.0.1:9464");
                    return Status::InvalidInput;
                }
            }
            Some(live)
        }
    };
    let folder = match &args.out {
        Some(out) => store::create_run_folder(out).map(|()| out.clone()),
        None => store::default_run_folder(Path::new("runs"), &plan.scenario.name, chrono::Utc::now()),
    };
    let folder = match folder {
        Ok(folder) => folder,
        Err(error @ StoreError::Exists(_)) => {
            eprintln!("error: {error}\n  = hint: choose another --out folder");
            return Status::InvalidInput;
        }
        Err(error) => {
            eprintln!("error: cannot create the run folder: {error}");
            return Status::Error;
        }
    };
    if let Err(error) = store::write_atomic(&folder.join("scenario.yaml"), document.source.as_bytes()) {
        eprintln!("error: {error}");
        return Status::Error;
    }

    let results = match measure(&plan, &folder, args.quiet, args.start_at, live) {
        Ok(results) => results,
        Err(error) => {
            eprintln!("error: results could not be saved: {error}");
            return Status::Error;
        }
    };
    // Saved after every run; once more here so that a plan with no runs (a
    // shard with no share of any) still leaves its results file.
    if let Err(error) = store::save(&folder, &results) {
        eprintln!("error: results could not be saved: {error}");
        return Status::Error;
    }
    let analysis = Analysis::of(&results, &CompareSettings::default());
    if args.shard.is_none() {
        super::history::record_saved(&args.record, &results, &analysis, &folder);
    }
    print!("{}", summary::render(&analysis));
    print!("{}", summary::experiments(&analysis));
    print!("{}", summary::profiles(&analysis.profiles, &folder));
    for warning in report::folder::write_reports(&folder, &results, &analysis) {
        eprintln!("warning: {warning}");
    }
    println!("results: {}", folder.join("results.json").display());
    println!("reports: {0}/report.md, {0}/roadmap.md, {0}/report.html", folder.display());
    print!("{}", summary::verdict(&analysis.verdict));
    if analysis.verdict.passed {
        Status::Success
    } else {
        Status::Failed
    }
}

fn invalid(diagnostics: &phasebench::diagnostic::Diagnostics) -> Status {
    eprint!("{diagnostics}");
    Status::InvalidInput
}

/// Runs the plan with Ctrl-C handling: the first stops cleanly, the second aborts.
fn measure(
    plan: &Plan,
    folder: &Path,
    quiet: bool,
    start_at: Option<chrono::DateTime<chrono::Utc>>,
    live: Option<Arc<Live>>,
) -> Result<Results, StoreError> {
    let control = Arc::new(Control { start_at, live, ..Control::default() });
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("warning: Ctrl-C handling is unavailable ({error}); running without it");
            let mut observer = CliObserver::new(folder, quiet);
            return execute_plan(plan, &control, &mut observer);
        }
    };
    let signals = Arc::clone(&control);
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            signals.cancel.store(true, Ordering::Relaxed);
            eprintln!(
                "\nstopping: finishing the operations in flight and saving what was measured (Ctrl-C again aborts)"
            );
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("aborted; results of finished runs are saved");
                std::process::exit(130);
            }
        }
    });
    let _guard = runtime.enter();
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let mut observer = CliObserver::new(folder, quiet);
            execute_plan(plan, &control, &mut observer)
        });
        // Drive the runtime (and so the signal listener) until the plan is done.
        runtime.block_on(async {
            while !worker.is_finished() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        worker.join().unwrap_or_else(|_| {
            Err(StoreError::Format { path: folder.into(), message: "the interpreter panicked".into() })
        })
    })
}

/// Shows progress (a bar on a terminal, plain lines otherwise) and saves results after every run.
struct CliObserver<'a> {
    folder: &'a Path,
    quiet: bool,
    bar: Option<ProgressBar>,
    terminal: bool,
    index: usize,
    total: usize,
}

impl<'a> CliObserver<'a> {
    fn new(folder: &'a Path, quiet: bool) -> Self {
        CliObserver { folder, quiet, bar: None, terminal: std::io::stderr().is_terminal(), index: 0, total: 0 }
    }
}

impl Observer for CliObserver<'_> {
    fn run_started(&mut self, index: usize, total: usize, spec: &RunSpec) {
        (self.index, self.total) = (index + 1, total);
        if self.quiet {
            return;
        }
        if self.terminal {
            let bar = ProgressBar::new(1000);
            if let Ok(style) = ProgressStyle::with_template("{prefix} {wide_msg} [{bar:30}] {elapsed}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(format!("[{}/{}]", self.index, total));
            bar.set_message(spec.id.clone());
            self.bar = Some(bar);
        } else {
            eprintln!("[{}/{}] {} …", self.index, total, spec.id);
        }
    }

    fn tick(&mut self, spec: &RunSpec, progress: &RunProgress) {
        if let Some(bar) = &self.bar {
            bar.set_position((progress.fraction(spec.stop) * 1000.0) as u64);
        }
    }

    fn probe_finished(&mut self, _spec: &RunSpec, probe: &ProbeRecord, results: &Results) -> Result<(), StoreError> {
        store::save(self.folder, results)?;
        if self.quiet {
            return Ok(());
        }
        let count = results.runs.last().and_then(|run| run.search.as_ref()).map_or(0, |search| search.probes.len());
        let line = format!("      probe {count}: {}", capacity::probe_text(probe));
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
        Ok(())
    }

    fn run_finished(&mut self, record: &RunRecord, results: &Results) -> Result<(), StoreError> {
        store::save(self.folder, results)?;
        if self.quiet {
            return Ok(());
        }
        let line = finished_line(self.index, self.total, record);
        match self.bar.take() {
            Some(bar) => {
                bar.finish_and_clear();
                eprintln!("{line}");
            }
            None => eprintln!("{line}"),
        }
        Ok(())
    }
}

fn finished_line(index: usize, total: usize, record: &RunRecord) -> String {
    let latency = record.metrics.get(names::LATENCY).and_then(|m| m.summary).filter(|s| s.count > 0);
    let figures = latency.map_or_else(
        || "no successful operation".to_owned(),
        |s| format!("p50 {}, p99 {}", format_value(s.p50, Dim::TIME), format_value(s.p99, Dim::TIME)),
    );
    let mut line = match capacity::describe(record) {
        Some(found) => format!("[{index}/{total}] {}: capacity {found}", record.id),
        None => {
            format!("[{index}/{total}] {}: {} ops, {figures}, {} errors", record.id, record.operations, record.errors)
        }
    };
    if record.dropped > 0 {
        line.push_str(&format!(", {} DROPPED", record.dropped));
    }
    if let Some(failure) = &record.failure {
        line.push_str(&format!(" ({failure})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_index_comes_from_the_scheduler_when_asked() {
        let slurm = |name: &str| (name == "SLURM_ARRAY_TASK_ID").then(|| "3".to_owned());
        assert_eq!(shard_of("auto/4", slurm), Ok(Shard { index: 3, count: 4 }));
        let kubernetes = |name: &str| (name == "JOB_COMPLETION_INDEX").then(|| "0".to_owned());
        assert_eq!(shard_of("auto/2", kubernetes), Ok(Shard { index: 0, count: 2 }));
        assert_eq!(shard_of("1/2", |_| None), Ok(Shard { index: 1, count: 2 }));
        assert!(shard_of("auto/4", |_| None)
            .unwrap_err()
            .contains("neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX"));
        assert!(shard_of("auto/4", slurm_of("7")).unwrap_err().contains("SLURM_ARRAY_TASK_ID=7"));
        assert!(parse_start("tomorrow").is_err());
        assert!(parse_start("2026-12-01T09:00:00Z").is_ok());
    }

    fn slurm_of(value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |name| (name == "SLURM_ARRAY_TASK_ID").then(|| value.to_owned())
    }
}
