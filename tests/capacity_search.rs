//! Capacity searches on a system whose capacity is known: `calibrate sleep
//! 1ms` behind 4 in-flight slots serves at most 4 operations per service
//! time, about 4,000/s. Under evenly spaced arrivals below that rate no
//! operation waits; above it the queue grows by the excess, and a p99 of
//! 3 ms is missed as soon as the top 1% of a probe's operations have
//! waited about 2 ms, within 1% over the service rate ([`known_capacity`]
//! works it out from the service time each search measures; a 1 ms sleep
//! oversleeps by tens of microseconds, so it comes to about 3,930/s).
//!
//! Real sleeps measure the machine as well as the search: on a busy CI
//! machine a sleep is held up by milliseconds now and then, the edge
//! softens and moves, and the dispatcher lags. So the known answer in
//! real time is a benchmark, run alone by `peers/capacity/run.sh`, whose
//! committed output [`the_committed_known_answers_hold`] checks; the same
//! queue in virtual time is a deterministic test (`tests/capacity.rs`).
//! CI runs the ends of the range in release, alone: loads far from the
//! edge, with a target no hiccup misses.
//!
//! The searches run one after another, and the tests one at a time: they
//! measure time, and searches side by side would measure each other.

use phasebench::analysis::{Analysis, CompareSettings, TargetStatus};
use phasebench::metric::names;
use phasebench::plan::{self, PlanOptions};
use phasebench::results::store::StoreError;
use phasebench::results::{CapacityBound, ProbeOutcome, Results, RunRecord, SearchFinish};
use phasebench::run::{execute_plan, Control, Observer, RunProgress};

/// The tests here measure time: one at a time, so that none measures another.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Quiet;

impl Observer for Quiet {
    fn run_started(&mut self, _index: usize, _total: usize, _spec: &plan::RunSpec) {}
    fn tick(&mut self, _spec: &plan::RunSpec, _progress: &RunProgress) {}
    fn run_finished(&mut self, _record: &RunRecord, _results: &Results) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A search of `calibrate sleep 1ms` through 4 slots over `range` with `targets`.
fn search(seed: u64, range: &str, targets: &str) -> Results {
    let scenario = format!(
        "scenario: known-capacity
seed: {seed}
engines: {{ cal: {{ kind: calibrate }} }}
phases:
  - name: p
    workloads:
      - name: queue
        engine: cal
        op: sleep
        with: {{ duration: 1ms }}
        warmup: 200x
        iterations: 1000
        load: {{ search: {{ rate: {range} }}, max_in_flight: 4 }}
        targets: {targets}
"
    );
    let document = phasebench::dsl::parse("known.yaml", scenario).expect("the scenario parses");
    let plan = plan::build(&document, &PlanOptions::default()).expect("the scenario plans");
    execute_plan(&plan, &Control::default(), &mut Quiet).expect("nothing to save")
}

/// The capacity of 4 slots at a p99 of 3 ms, from the mean service time
/// `S` the probes measured. The slots serve `μ = 4 / S` a second. Above
/// that the queue grows by `r − μ` a second from the first warm-up
/// operation, so the operation at place `k` (from 0) waits
/// `k (1 − μ / r) / μ`. The p99 of the 1,000 measured operations, after
/// 200 of warm-up, is the one at place `200 + 990`, and it takes longer
/// than 3 ms once its wait passes `3 ms − S`: at
/// `r = μ / (1 − (3 ms − S) μ / 1190)`, about 0.7% above `μ`.
fn known_capacity(run: &RunRecord) -> f64 {
    let search = run.search.as_ref().expect("a search record");
    let (mut total, mut count) = (0.0, 0.0);
    for probe in &search.probes {
        if let Some(summary) = probe.run.metrics.get(names::SERVICE_TIME).and_then(|m| m.summary) {
            total += summary.mean * summary.count as f64;
            count += summary.count as f64;
        }
    }
    let service = total / count;
    let rate = 4.0 / service;
    rate / (1.0 - (0.003 - service) * rate / 1190.0)
}

/// Timing-sensitive, and a benchmark rather than a check: a search
/// measures the machine's scheduling jitter with the queue, so this runs in
/// a release build with nothing beside it, from `peers/capacity/run.sh`.
///
/// A search whose dispatcher lagged twice at one load ends "out of reach":
/// it says it could not tell, which is the honest answer on a machine that
/// stalls, so it is not counted as an answer. Of the searches that answer
/// (narrowed, or stopped at the probe limit), nine in ten must be within 5%
/// with the interval around the truth, and at least 12 of the 20 must
/// answer, so that a machine where every search lags fails rather than
/// passing on nothing.
#[test]
#[ignore = "a benchmark of real sleeps: peers/capacity/run.sh runs it alone"]
fn the_capacity_of_a_known_queue_is_found() {
    let _alone = alone();
    let mut lines = Vec::new();
    for seed in 1..=20 {
        let results = search(seed, "[1000/s, 16000/s]", "[\"latency.p99 < 3ms\"]");
        let run = &results.runs[0];
        let search = run.search.as_ref().expect("a search record");
        let truth = known_capacity(run);
        // A sanity bound on the arithmetic, not on the machine: a 1 ms sleep
        // oversleeps by 20–60 µs on one 2-vCPU VM and by 140 µs on another.
        assert!((truth / 4_000.0 - 1.0).abs() < 0.2, "4 slots of 1 ms hold {truth:.0}/s, not about 4,000/s");
        let capacity = &search.capacity;
        let estimate = capacity.value.unwrap_or(f64::NAN);
        let [low, high] = capacity.interval.unwrap_or([f64::NAN; 2]);
        lines.push(format!(
            "seed {seed}: {estimate:.0}/s in [{low:.0}, {high:.0}], truth {truth:.0}/s, {} probes, {:?}",
            search.probes.len(),
            search.finish
        ));
    }
    let tally = KnownAnswers::of(&lines).expect("the lines read back");
    let told = format!("{}\n{}", tally.summary(), lines.join("\n"));
    println!("{told}");
    assert!(tally.answered >= 12 && tally.right * 10 >= tally.answered * 9, "{told}");
}

/// What a run of [`the_capacity_of_a_known_queue_is_found`] printed, read
/// back: how many searches answered and how many of those were right.
#[derive(Debug, PartialEq)]
struct KnownAnswers {
    searches: usize,
    answered: usize,
    right: usize,
}

impl KnownAnswers {
    /// Tallies lines `seed N: E/s in [L, H], truth T/s, P probes, Finish`.
    fn of(lines: &[impl AsRef<str>]) -> Result<KnownAnswers, String> {
        let mut tally = KnownAnswers { searches: 0, answered: 0, right: 0 };
        for line in lines {
            let line = line.as_ref();
            let number = |from: &str, to: &str| -> Result<f64, String> {
                let start = line.find(from).ok_or(format!("no {from:?} in {line:?}"))? + from.len();
                let end = start + line[start..].find(to).ok_or(format!("no {to:?} in {line:?}"))?;
                line[start..end].trim().parse().map_err(|_| format!("not a number at {from:?} in {line:?}"))
            };
            let estimate = number(": ", "/s in")?;
            let (low, high) = (number("in [", ",")?, number(", ", "], truth")?);
            let truth = number("truth ", "/s,")?;
            let finish = line.rsplit(", ").next().unwrap_or_default().trim();
            tally.searches += 1;
            if finish != "OutOfReach" {
                tally.answered += 1;
                let right = (estimate / truth - 1.0).abs() <= 0.05 && low <= truth && truth <= high;
                tally.right += usize::from(right);
            }
        }
        Ok(tally)
    }

    fn summary(&self) -> String {
        format!(
            "{} of {} searches answered (the rest ended out of reach); {} of them within 5% and inside the interval",
            self.answered, self.searches, self.right
        )
    }
}

/// The benchmark's committed output: every file under `peers/capacity/`
/// named `known-answer.txt` holds 20 searches, of which at least 12
/// answered and nine in ten of those were right, recounted from its lines.
#[test]
fn the_committed_known_answers_hold() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/capacity");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&root).expect("peers/capacity/ is there") {
        let path = entry.expect("a directory entry").path().join("known-answer.txt");
        if path.is_file() {
            files.push(path);
        }
    }
    assert!(!files.is_empty(), "no peers/capacity/*/known-answer.txt");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("the file reads");
        let lines: Vec<&str> = text.lines().filter(|line| line.starts_with("seed ")).collect();
        let tally = KnownAnswers::of(&lines).unwrap_or_else(|why| panic!("{}: {why}", path.display()));
        assert_eq!(tally.searches, 20, "{}", path.display());
        assert!(
            tally.answered >= 12 && tally.right * 10 >= tally.answered * 9,
            "{}: {}",
            path.display(),
            tally.summary()
        );
        assert!(text.contains(&tally.summary()), "{}: the file's own tally is not {}", path.display(), tally.summary());
    }
    // The recount has teeth: the lines of stop 32's failing CI run (15
    // answered, 12 right) fail it.
    let failing = [
        "seed 2: 3738/s in [3695, 3792], truth 3792/s, 22 probes, Narrowed",
        "seed 15: 3764/s in [3728, 3814], truth 3823/s, 21 probes, Narrowed",
        "seed 16: 4351/s in [3233, 5148], truth 3802/s, 31 probes, Narrowed",
        "seed 7: NaN/s in [NaN, NaN], truth 3589/s, 2 probes, OutOfReach",
    ];
    let tally = KnownAnswers::of(&failing).unwrap();
    assert_eq!(tally, KnownAnswers { searches: 4, answered: 3, right: 1 });
}

/// A target that holds at every load reports "above the range", and one
/// that fails at the lowest "below the range" after one probe. The loads
/// are far from the edge and the target is 20 ms, which no hiccup of a
/// busy machine misses; `.ci/run` runs it in release, alone.
#[test]
#[ignore = "timing-sensitive: .ci/run runs it in release on its own"]
fn the_ends_of_the_range_are_reported() {
    let _alone = alone();
    let above = search(21, "[100/s, 1000/s]", "[\"latency.p99 < 20ms\", \"capacity > 500/s\"]");
    let run = &above.runs[0];
    let search_record = run.search.as_ref().unwrap();
    assert_eq!(search_record.finish, SearchFinish::AboveRange);
    assert_eq!(search_record.capacity.bound, CapacityBound::AboveRange);
    assert_eq!(search_record.capacity.highest_pass, Some(1000.0));
    assert!(search_record.probes.iter().all(|probe| probe.outcome != ProbeOutcome::Fail));
    let analysis = Analysis::of(&above, &CompareSettings::default());
    let target = analysis.targets.iter().find(|t| t.target == "capacity > 500/s").unwrap();
    assert_eq!(target.status, TargetStatus::Held, "a capacity above 1000/s is above 500/s");

    let below = search(22, "[8000/s, 16000/s]", "[\"latency.p99 < 20ms\", \"capacity > 500/s\"]");
    let run = &below.runs[0];
    let search_record = run.search.as_ref().unwrap();
    assert_eq!(search_record.finish, SearchFinish::BelowRange);
    assert_eq!(search_record.capacity.bound, CapacityBound::BelowRange);
    assert_eq!(search_record.probes.len(), 1, "the lowest load failed, so nothing above it is probed");
    let analysis = Analysis::of(&below, &CompareSettings::default());
    let target = analysis.targets.iter().find(|t| t.target == "capacity > 500/s").unwrap();
    assert_eq!(target.status, TargetStatus::NotJudged(target.status.why().unwrap_or_default().to_owned()));
}

/// Stops the plan after `after` probes and keeps the results it was handed.
struct StopAfter {
    after: usize,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
    saved: Vec<Results>,
}

impl Observer for StopAfter {
    fn run_started(&mut self, _index: usize, _total: usize, _spec: &plan::RunSpec) {}
    fn tick(&mut self, _spec: &plan::RunSpec, _progress: &RunProgress) {}
    fn probe_finished(
        &mut self,
        _spec: &plan::RunSpec,
        _probe: &phasebench::results::ProbeRecord,
        results: &Results,
    ) -> Result<(), StoreError> {
        self.saved.push(results.clone());
        if self.saved.len() >= self.after {
            self.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }
    fn run_finished(&mut self, _record: &RunRecord, _results: &Results) -> Result<(), StoreError> {
        Ok(())
    }
}

#[test]
fn a_search_cut_short_keeps_every_probe_it_measured() {
    let _alone = alone();
    let scenario = "scenario: cut
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - name: queue
        engine: cal
        op: sleep
        with: { duration: 100us }
        warmup: 0x
        iterations: 1000
        load: { search: { rate: [5000/s, 100000/s] }, max_in_flight: 8 }
        targets: [\"latency.p99 < 50ms\"]
";
    let document = phasebench::dsl::parse("cut.yaml", scenario.into()).unwrap();
    let plan = plan::build(&document, &PlanOptions::default()).unwrap();
    let control = Control::default();
    let mut observer = StopAfter { after: 2, cancel: control.cancel.clone(), saved: Vec::new() };
    let results = execute_plan(&plan, &control, &mut observer).unwrap();
    // What was saved after each probe already held the search so far.
    for (index, saved) in observer.saved.iter().enumerate() {
        let search = saved.runs[0].search.as_ref().expect("the saved search");
        assert_eq!(search.probes.len(), index + 1);
        assert_eq!(search.finish, SearchFinish::Interrupted);
        assert!(!saved.runs[0].complete);
    }
    let run = &results.runs[0];
    let search = run.search.as_ref().unwrap();
    assert_eq!(search.finish, SearchFinish::Interrupted);
    assert_eq!(search.probes.len(), 2, "the search went on after Ctrl-C");
    assert!(!run.complete && results.interrupted);
    assert!(search.probes.iter().all(|probe| probe.run.operations >= 1000));
}

#[test]
fn a_smoke_run_probes_once_and_judges_nothing() {
    let _alone = alone();
    let scenario = "scenario: smoke
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - name: queue
        engine: cal
        op: noop
        load: { search: { concurrency: [1, 64] } }
        targets: [\"latency.p99 < 1ms\", \"capacity > 4\"]
";
    let document = phasebench::dsl::parse("smoke.yaml", scenario.into()).unwrap();
    let options = PlanOptions { smoke: true, ..PlanOptions::default() };
    let plan = plan::build(&document, &options).unwrap();
    let results = execute_plan(&plan, &Control::default(), &mut Quiet).unwrap();
    let search = results.runs[0].search.as_ref().unwrap();
    assert_eq!(search.finish, SearchFinish::Smoke);
    assert_eq!(search.probes.len(), 1);
    assert_eq!(search.probes[0].outcome, ProbeOutcome::NotJudged);
    assert_eq!(search.capacity.bound, CapacityBound::Unknown);
    let analysis = Analysis::of(&results, &CompareSettings::default());
    assert!(analysis.targets.iter().all(|target| !target.status.held()), "a smoke run judged a target");
}

#[test]
fn an_experiment_may_compare_capacity_and_its_arms_keep_the_condition() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/capacity.yaml")).unwrap();
    let text = format!(
        "{text}
experiments:
  - name: smaller-values
    workload: ycsb-b
    metric: capacity
    baseline: {{ with: {{ value_size: 1KiB }} }}
    variants: {{ half: {{ with: {{ value_size: 512B }} }} }}
    rounds: 2
"
    );
    let document = phasebench::dsl::parse("capacity.yaml", text).unwrap();
    let plan = plan::build(&document, &PlanOptions::default()).unwrap();
    let arms: Vec<_> = plan.runs.iter().filter(|run| run.arm.is_some()).collect();
    assert_eq!(arms.len(), 4);
    for arm in arms {
        let targets: Vec<&str> = arm.targets.iter().map(|target| target.text.as_str()).collect();
        assert_eq!(targets, ["latency.p99 < 1ms"], "an arm searches by the condition and nothing else");
        assert!(matches!(arm.load, plan::Load::Search(_)));
    }
}
