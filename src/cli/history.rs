//! `phasebench history`: import run folders, show series with their change
//! points, check the newest runs for a regression, write the HTML page of
//! the series and projections, tag a campaign. Also the `--history` flags
//! `run` and `merge` share, and the recording they do.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use phasebench::analysis::changepoint::Settings;
use phasebench::analysis::{Analysis, CompareSettings};
use phasebench::history::{self, Change, History, HistoryError, Location, Recorded, Series};
use phasebench::quantity::format_value;
use phasebench::report::charts::{p_text, test_name};
use phasebench::report::history::{realized_interval, short_commit, started};
use phasebench::results::{store, Results};

use super::Status;

/// Where runs are recorded: shared by `run`, `merge` and `history`.
#[derive(Debug, Args, Clone, Default)]
pub struct HistoryArgs {
    /// The history database: a SQLite file (default runs/history.sqlite, or PHASEBENCH_HISTORY), or a postgres:// URL.
    #[arg(long, value_name = "FILE|URL")]
    pub history: Option<String>,
}

impl HistoryArgs {
    fn location(&self) -> Result<Location, HistoryError> {
        let environment = std::env::var("PHASEBENCH_HISTORY").ok();
        Location::choose(self.history.as_deref(), environment.as_deref())
    }

    fn open(&self) -> Result<History, HistoryError> {
        self.location()?.open()
    }
}

/// What `run` and `merge` add to the history, beside where it is.
#[derive(Debug, Args, Clone, Default)]
pub struct RecordArgs {
    #[command(flatten)]
    pub history: HistoryArgs,
    /// Record nothing in the history.
    #[arg(long, conflicts_with_all = ["history", "tag", "after_candidate"])]
    pub no_history: bool,
    /// Tag the campaign in the history (repeatable).
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Tag it as the first campaign after a roadmap candidate landed.
    #[arg(long, value_name = "NAME")]
    pub after_candidate: Option<String>,
}

impl RecordArgs {
    fn tags(&self) -> Vec<String> {
        let mut tags = self.tag.clone();
        tags.extend(self.after_candidate.iter().map(|name| format!("after:{name}")));
        tags
    }
}

/// Records a saved results file, after it is safe on disk. A history that
/// cannot be written is a warning: the results file is the record.
pub fn record_saved(args: &RecordArgs, results: &Results, analysis: &Analysis, folder: &Path) {
    if args.no_history {
        return;
    }
    let recorded =
        args.history.open().and_then(|mut history| history.record(results, analysis, Some(folder), &args.tags()));
    match recorded {
        Ok(Recorded::Added(runs)) => {
            let location = args.history.location().map(|l| l.to_string()).unwrap_or_default();
            let plural = if runs == 1 { "" } else { "s" };
            println!("history: recorded in {location} ({runs} run{plural})");
        }
        Ok(Recorded::Known) => {}
        Err(error) => eprintln!("warning: not recorded in the history: {error}"),
    }
}

/// `phasebench history`.
#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Record existing run folders (or results.json files); a file recorded before is skipped.
    Import {
        #[command(flatten)]
        history: HistoryArgs,
        /// Tag every campaign imported (repeatable).
        #[arg(long, value_name = "TAG")]
        tag: Vec<String>,
        /// Run folders or results.json files, oldest first.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// The series as tables with a sparkline, and their change points.
    Show(FilterArgs),
    /// Exit 1 when a change point for the worse starts in the newest campaigns of a series.
    Check {
        #[command(flatten)]
        filter: FilterArgs,
        /// How many of each series' newest points a regression must start in.
        #[arg(long, default_value_t = 5)]
        newest: usize,
        /// Smallest regression that fails the check (`5%`); smaller change points are listed, not failed on.
        #[arg(long = "min-effect", value_name = "PERCENT", default_value = "5%", value_parser = super::report::parse_percent)]
        min_effect: f64,
    },
    /// One HTML page: each series' trend chart with its change points and points, and the projections checked.
    Report {
        #[command(flatten)]
        filter: FilterArgs,
        /// Where to write the page.
        #[arg(long, value_name = "FILE", default_value = "runs/history.html")]
        out: PathBuf,
    },
    /// Each campaign tagged `after:NAME`: the gain its roadmap projected against the gain realized.
    Projections {
        #[command(flatten)]
        history: HistoryArgs,
    },
    /// Tag a recorded campaign (its number in `history show`).
    Tag {
        #[command(flatten)]
        history: HistoryArgs,
        /// The campaign.
        campaign: i64,
        /// Tags to add, e.g. after:flash-attention.
        #[arg(required = true)]
        tags: Vec<String>,
    },
}

/// Which series, and how sure a change point must be.
#[derive(Debug, Args)]
pub struct FilterArgs {
    #[command(flatten)]
    pub history: HistoryArgs,
    /// Only this scenario.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Only this run (its name without `@repetition` or `#round`).
    #[arg(long)]
    pub run: Option<String>,
    /// Only this metric.
    #[arg(long)]
    pub metric: Option<String>,
    /// The permutation test's p-value a change point must reach.
    #[arg(long, default_value_t = 0.05)]
    pub p_value: f64,
    /// Shuffles per permutation test.
    #[arg(long, default_value_t = 1000)]
    pub permutations: usize,
}

impl FilterArgs {
    fn settings(&self) -> Result<Settings, String> {
        if !(self.p_value > 0.0 && self.p_value < 1.0) {
            return Err(format!("--p-value {} is not between 0 and 1", self.p_value));
        }
        if self.permutations == 0 {
            return Err("--permutations must be at least 1".into());
        }
        Ok(Settings { p_value: self.p_value, permutations: self.permutations, ..Settings::default() })
    }

    /// The filters given, as a page names them (`scenario quickstart, run sleep`).
    fn selection(&self) -> Option<String> {
        let named: Vec<String> = [("scenario", &self.scenario), ("run", &self.run), ("metric", &self.metric)]
            .into_iter()
            .filter_map(|(what, value)| Some(format!("{what} {}", value.as_ref()?)))
            .collect();
        (!named.is_empty()).then(|| named.join(", "))
    }

    fn series(&self) -> Result<Vec<Series>, HistoryError> {
        self.history.open()?.series(self.scenario.as_deref(), self.run.as_deref(), self.metric.as_deref())
    }

    /// The settings and the series they select, or the status to exit with
    /// (the error already printed).
    fn load(&self) -> Result<(Settings, Vec<Series>), Status> {
        let settings = self.settings().map_err(|message| {
            eprintln!("error: {message}");
            Status::InvalidInput
        })?;
        let series = self.series().map_err(failure)?;
        Ok((settings, series))
    }
}

/// Runs a `history` command.
pub fn history(command: HistoryCommand) -> Status {
    match command {
        HistoryCommand::Import { history, tag, paths } => import(&history, &tag, &paths),
        HistoryCommand::Show(filter) => show(&filter),
        HistoryCommand::Check { filter, newest, min_effect } => check(&filter, newest, min_effect),
        HistoryCommand::Report { filter, out } => report(&filter, &out),
        HistoryCommand::Projections { history } => projections(&history),
        HistoryCommand::Tag { history, campaign, tags } => {
            match history.open().and_then(|mut h| h.tag(campaign, &tags)) {
                Ok(()) => Status::Success,
                Err(error) => failure(error),
            }
        }
    }
}

fn failure(error: HistoryError) -> Status {
    eprintln!("error: {error}");
    match error {
        HistoryError::Newer { .. } | HistoryError::Location(_) | HistoryError::Url { .. } => Status::InvalidInput,
        HistoryError::Database { .. } => Status::Error,
    }
}

fn import(args: &HistoryArgs, tags: &[String], paths: &[PathBuf]) -> Status {
    // Every file is read first: a bad one records nothing.
    let mut files = Vec::new();
    for path in paths {
        let file = if path.is_dir() { path.join("results.json") } else { path.clone() };
        match store::load(&file) {
            Ok(results) => files.push((file, results)),
            Err(error) => {
                eprintln!("error: {}: {error}", file.display());
                return Status::InvalidInput;
            }
        }
    }
    let mut history = match args.open() {
        Ok(history) => history,
        Err(error) => return failure(error),
    };
    let (mut added, mut known, mut runs) = (0, 0, 0);
    for (file, results) in &files {
        let folder = file.parent().unwrap_or(Path::new("."));
        let analysis = Analysis::of(results, &CompareSettings::default());
        match history.record(results, &analysis, Some(folder), tags) {
            Ok(Recorded::Added(count)) => {
                added += 1;
                runs += count;
            }
            Ok(Recorded::Known) => known += 1,
            Err(error) => return failure(error),
        }
    }
    println!("history: {added} campaigns ({runs} runs) recorded, {known} recorded before");
    Status::Success
}

fn show(filter: &FilterArgs) -> Status {
    let (settings, series) = match filter.load() {
        Ok(loaded) => loaded,
        Err(status) => return status,
    };
    if series.is_empty() {
        println!("history: no series match");
        return Status::Success;
    }
    for one in &series {
        print!("{}", render_series(one, &history::changes(one, &settings)));
    }
    Status::Success
}

fn check(filter: &FilterArgs, newest: usize, min_effect: f64) -> Status {
    let (settings, series) = match filter.load() {
        Ok(loaded) => loaded,
        Err(status) => return status,
    };
    let mut regressions = 0;
    for one in &series {
        let recent = one.points.len().saturating_sub(newest);
        for change in history::changes(one, &settings) {
            if !change.regression || change.index < recent {
                continue;
            }
            let small = change.change.abs() < min_effect;
            regressions += usize::from(!small);
            println!(
                "{}: {} / {} / {}: {} from campaign {} ({} test, {}){}",
                if small { "below --min-effect" } else { "regression" },
                one.key.scenario,
                one.key.run,
                one.key.metric,
                signed_percent(change.change),
                change.campaign,
                test_name(change.test),
                p_text(change.p_value),
                commits(&change)
            );
        }
    }
    if regressions == 0 {
        println!("history: no regression starts in the newest {newest} campaigns of {} series", series.len());
        Status::Success
    } else {
        Status::Failed
    }
}

fn projections(args: &HistoryArgs) -> Status {
    let projections = match args.open().and_then(|mut history| history.projections()) {
        Ok(projections) => projections,
        Err(error) => return failure(error),
    };
    if projections.is_empty() {
        println!("history: no campaign is tagged after:NAME (run --after-candidate NAME, or history tag)");
        return Status::Success;
    }
    println!(
        "| scenario | candidate | proposed in | landed in | figure | projected | realized | 95% interval | realized / projected |"
    );
    println!("| --- | --- | ---: | ---: | --- | ---: | ---: | --- | ---: |");
    for one in &projections {
        let candidate = match &one.variant {
            Some(variant) => format!("{}: {variant}", one.experiment),
            None => one.experiment.clone(),
        };
        let percent = |value: Option<f64>| value.map_or("–".to_string(), signed_percent);
        let ratio = one.ratio().map_or("–".to_string(), |ratio| format!("{ratio:.2}"));
        let interval = realized_interval(one);
        println!(
            "| {} | {candidate} | {} | {} | {} | {} | {}{} | {interval} | {ratio} |",
            one.scenario,
            one.before.map_or("–".to_string(), |id| id.to_string()),
            one.after,
            one.figure,
            percent(one.projected),
            percent(one.realized),
            one.why.as_ref().map_or(String::new(), |why| format!(" ({why})"))
        );
    }
    Status::Success
}

fn report(filter: &FilterArgs, out: &Path) -> Status {
    let (settings, series) = match filter.load() {
        Ok(loaded) => loaded,
        Err(status) => return status,
    };
    let projections = match filter.history.open().and_then(|mut history| history.projections()) {
        Ok(projections) => projections,
        Err(error) => return failure(error),
    };
    // The projections of the scenario asked for; a run or metric filter
    // narrows the series only, since a projection names a workload.
    let projections: Vec<_> = projections
        .into_iter()
        .filter(|one| filter.scenario.as_ref().is_none_or(|scenario| *scenario == one.scenario))
        .collect();
    let series: Vec<(Series, Vec<Change>)> = series
        .into_iter()
        .map(|one| {
            let changes = history::changes(&one, &settings);
            (one, changes)
        })
        .collect();
    let location = filter.history.location().map(|location| location.to_string()).unwrap_or_default();
    let selection = filter.selection();
    let inputs = phasebench::report::history::Inputs {
        location: &location,
        selection: selection.as_deref(),
        series: &series,
        projections: &projections,
        settings: &settings,
    };
    let page = match phasebench::report::history::page(&inputs) {
        Ok(page) => page,
        Err(error) => {
            eprintln!("error: {error}");
            return Status::Error;
        }
    };
    if let Some(folder) = out.parent().filter(|folder| !folder.as_os_str().is_empty()) {
        if let Err(error) = std::fs::create_dir_all(folder) {
            eprintln!("error: cannot create {}: {error}", folder.display());
            return Status::Error;
        }
    }
    if let Err(error) = store::write_atomic(out, page.as_bytes()) {
        eprintln!("error: {error}");
        return Status::Error;
    }
    let changes: usize = series.iter().map(|(_, changes)| changes.len()).sum();
    let plural = |count: usize| if count == 1 { "" } else { "s" };
    println!(
        "history: wrote {} ({} series, {changes} change point{}, {} projection{})",
        out.display(),
        series.len(),
        plural(changes),
        projections.len(),
        plural(projections.len())
    );
    Status::Success
}

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Values as a line of bars, lowest to highest.
pub fn sparkline(values: &[f64]) -> String {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = high - low;
    values
        .iter()
        .map(|value| {
            if span > 0.0 && span.is_finite() {
                BARS[(((value - low) / span) * 7.0).round().clamp(0.0, 7.0) as usize]
            } else {
                BARS[3]
            }
        })
        .collect()
}

fn render_series(series: &Series, changes: &[Change]) -> String {
    let values: Vec<f64> = series.points.iter().map(|point| point.value).collect();
    let mut out =
        format!("\n{} / {} / {}  {}\n", series.key.scenario, series.key.run, series.key.metric, sparkline(&values));
    let distribution = series.points.iter().any(|point| point.p99.is_some());
    out.push_str(if distribution {
        "  campaign  started              commit          median        p99  change\n"
    } else {
        "  campaign  started              commit           value  change\n"
    });
    for (index, point) in series.points.iter().enumerate() {
        let marks: Vec<String> = changes
            .iter()
            .filter(|change| change.index == index)
            .map(|change| {
                format!("◆ {} {} ({})", test_name(change.test), signed_percent(change.change), p_text(change.p_value))
            })
            .chain(point.tags.iter().map(|tag| format!("[{tag}]")))
            .collect();
        let commit = short_commit(&point.commit);
        let started = started(&point.started_at);
        let value = format_value(point.value, series.dim);
        match point.p99 {
            Some(p99) if distribution => out.push_str(&format!(
                "  {:>8}  {started:<19}  {commit:<13}  {value:>9}  {:>9}  {}\n",
                point.campaign,
                format_value(p99, series.dim),
                marks.join(" ")
            )),
            _ => out.push_str(&format!(
                "  {:>8}  {started:<19}  {commit:<13}  {value:>9}  {}\n",
                point.campaign,
                marks.join(" ")
            )),
        }
    }
    out
}

fn signed_percent(change: f64) -> String {
    format!("{:+.1}%", change * 100.0)
}

fn commits(change: &Change) -> String {
    match &change.from_commit {
        Some(from) => format!(", commits {from}..{}", change.commit),
        None => format!(", commit {} (unchanged)", change.commit),
    }
}
