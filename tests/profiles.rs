//! The profilers against known answers: a spinning workload's flame graph,
//! the heap counted to the byte around `calibrate hold`, and the leak verdict
//! on memory that keeps growing next to memory that levels off. The scenarios
//! run in the `phasebench` binary, which installs the counting allocator;
//! this test program does not, and its own library run says so.

mod common;

use common::{run, status, Scenario};
use phasebench::analysis::trend::LeakVerdict;
use phasebench::analysis::{Analysis, CompareSettings};
use phasebench::plan::{self, PlanOptions, RunSpec};
use phasebench::results::store::StoreError;
use phasebench::results::{Results, RunRecord};
use phasebench::run::{execute_plan, memory, Control, Observer, RunProgress};

const MIB: f64 = 1024.0 * 1024.0;

fn scalar(run: &phasebench::results::RunRecord, metric: &str) -> f64 {
    run.metrics.get(metric).and_then(|m| m.value).unwrap_or_else(|| panic!("no scalar `{metric}` in {}", run.id))
}

#[test]
fn cpu_profile_finds_the_spinning_function_and_draws_its_flame_graph() {
    let scenario = Scenario::new(
        "scenario: cpu-profile
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - { name: spin, engine: cal, op: spin, with: { duration: 200us }, duration: 2s, warmup: 0x, profile: cpu }
      - { name: plain, engine: cal, op: noop, iterations: 100, warmup: 0x }
",
    );
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    assert!(run(&results, "plain").profile.is_none(), "unprofiled runs carry no profile");
    let cpu = run(&results, "spin").profile.as_ref().and_then(|p| p.cpu.clone()).expect("a CPU profile");
    assert!(cpu.samples >= 30, "2 s of one busy core gave only {} samples", cpu.samples);
    assert_eq!(cpu.samples, cpu.stacks.iter().map(|s| s.samples).sum::<u64>());
    assert!(cpu.stacks.iter().all(|s| !s.stack.starts_with("pb-profiler")), "the profiler's own thread is left out");

    let spinning: u64 = cpu.stacks.iter().filter(|s| s.stack.contains("spin_for")).map(|s| s.samples).sum();
    assert!(spinning * 2 > cpu.samples, "spin_for on the stack in {spinning} of {} samples", cpu.samples);
    let analysis = Analysis::of(&results, &CompareSettings::default());
    let summary = &analysis.profiles.cpu[0];
    assert!(!summary.hottest.is_empty() && summary.hottest.len() <= 12);
    assert!(summary.hottest.windows(2).all(|pair| pair[0].own >= pair[1].own), "hottest first");
    let worker = cpu.stacks.iter().filter(|s| s.stack.starts_with("pb-caller;")).map(|s| s.samples).sum::<u64>();
    assert!(worker * 2 > cpu.samples, "the caller thread holds most samples ({worker} of {})", cpu.samples);

    let file = summary.flamegraph.as_ref().expect("a flame graph");
    let svg = std::fs::read_to_string(scenario.out().join(file)).expect("flame graph written");
    assert!(svg.starts_with("<?xml") && svg.contains("<svg") && svg.contains("spin_for"));
    let report = std::fs::read_to_string(scenario.out().join("report.md")).unwrap();
    assert!(report.contains(&format!("]({file})")), "report.md links the flame graph");
    let html = std::fs::read_to_string(scenario.out().join("report.html")).unwrap();
    assert!(html.contains(&format!("href=\"{file}\"")), "report.html links the flame graph");
}

#[test]
fn heap_counts_match_what_the_workload_allocates() {
    // 40 calls of 1 MiB each: kept (a leak) in one run, at most 2 MiB kept in the other.
    let scenario = Scenario::new(
        "scenario: heap
engines:
  keeper: { kind: calibrate }
  recycler: { kind: calibrate }
phases:
  - name: p
    workloads:
      - { name: keep-all, engine: keeper, op: hold, with: { bytes: 1MiB }, iterations: 40, warmup: 0x, profile: memory }
      - { name: keep-2mib, engine: recycler, op: hold, with: { bytes: 1MiB, keep: 2MiB }, iterations: 40, warmup: 0x,
          profile: memory, targets: [ \"heap_peak < 8MiB\" ] }
      - { name: unprofiled, engine: recycler, op: hold, with: { bytes: 1MiB, keep: 2MiB }, iterations: 40, warmup: 0x }
",
    );
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();

    let all = run(&results, "keep-all");
    let allocated = scalar(all, "allocated");
    assert!((40.0 * MIB..44.0 * MIB).contains(&allocated), "allocated {:.2} MiB for 40 MiB", allocated / MIB);
    let peak = scalar(all, "heap_peak");
    assert!((39.0 * MIB..44.0 * MIB).contains(&peak), "peak {:.2} MiB with 40 MiB kept", peak / MIB);
    let heap = all.profile.as_ref().and_then(|p| p.heap).unwrap();
    assert!(heap.end_bytes as f64 > 39.0 * MIB, "40 MiB still live at the end: {}", heap.end_bytes);
    // Over time: bytes allocated never fall and reach the total.
    let series: Vec<u64> = all.profile.as_ref().unwrap().memory.iter().map(|s| s.allocated.unwrap()).collect();
    assert!(series.windows(2).all(|pair| pair[0] <= pair[1]));
    let last = *series.last().unwrap() as f64;
    assert!(last <= heap.allocated_bytes as f64 && last > 39.0 * MIB, "last sample {last} of {}", heap.allocated_bytes);
    assert!(scalar(all, "rss_peak") > 40.0 * MIB);

    let recycled = run(&results, "keep-2mib");
    assert!((40.0 * MIB..44.0 * MIB).contains(&scalar(recycled, "allocated")));
    let peak = scalar(recycled, "heap_peak");
    assert!((2.0 * MIB..6.0 * MIB).contains(&peak), "peak {:.2} MiB with 2 MiB kept", peak / MIB);
    assert!(scalar(recycled, "allocs_per_op") >= 1.0);

    let bare = run(&results, "unprofiled");
    assert!(bare.profile.is_none() && !bare.metrics.contains_key("heap_peak"));
}

#[test]
fn a_growing_process_is_flagged_and_a_levelled_one_is_not() {
    // 64 KiB a call at 200 calls a second: 12.5 MiB/s kept, or recycled within 4 MiB.
    let scenario = Scenario::new(
        "scenario: leak
engines:
  leaky: { kind: calibrate }
  tidy: { kind: calibrate }
phases:
  - name: endurance
    workloads:
      - { name: leaky, engine: leaky, op: hold, with: { bytes: 64KiB }, load: { rate: 200/s, max_in_flight: 2 }, duration: 11s,
          warmup: 0x, profile: rss }
      - { name: tidy, engine: tidy, op: hold, with: { bytes: 64KiB, keep: 4MiB }, load: { rate: 200/s, max_in_flight: 2 },
          duration: 11s, warmup: 1s, profile: memory }
",
    );
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    let analysis = Analysis::of(&results, &CompareSettings::default());
    let leaky = analysis.profiles.memory.iter().find(|m| m.run == "leaky").unwrap();
    assert_eq!(leaky.verdict, LeakVerdict::LeakSuspected, "{leaky:?}");
    let growth = leaky.rss_growth.as_ref().unwrap().growth;
    // 200 × 64 KiB = 12.5 MiB/s of pages written and kept.
    assert!(
        (8.0 * MIB..16.0 * MIB).contains(&growth.slope),
        "resident growth {:.2} MiB/s for 12.5 MiB/s kept",
        growth.slope / MIB
    );
    assert!(leaky.heap_growth.is_none(), "`rss` alone does not count the heap");

    let tidy = analysis.profiles.memory.iter().find(|m| m.run == "tidy").unwrap();
    assert!(matches!(tidy.verdict, LeakVerdict::NoLeak | LeakVerdict::SlowGrowth), "{tidy:?}");
    assert!(tidy.heap_growth.is_some() && tidy.rss_growth.is_some());

    let report = std::fs::read_to_string(scenario.out().join("report.md")).unwrap();
    assert!(report.contains("LEAK SUSPECTED") && report.contains("goes unseen in a run this long"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("memory profile leaky:") && stdout.contains("LEAK SUSPECTED"), "{stdout}");
}

/// Keeps results in memory.
struct Quiet;

impl Observer for Quiet {
    fn run_started(&mut self, _: usize, _: usize, _: &RunSpec) {}
    fn tick(&mut self, _: &RunSpec, _: &RunProgress) {}
    fn run_finished(&mut self, _: &RunRecord, _: &Results) -> Result<(), StoreError> {
        Ok(())
    }
}

#[test]
fn a_program_without_the_counting_allocator_is_told_its_heap_was_not_counted() {
    let yaml = "scenario: no-allocator
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - { name: hold, engine: cal, op: hold, with: { bytes: 64KiB }, iterations: 20, warmup: 0x, profile: memory }
";
    let document = phasebench::dsl::parse("no-allocator.yaml", yaml.into()).expect("scenario parses");
    let plan = plan::build(&document, &PlanOptions::default()).expect("plan");
    let results = execute_plan(&plan, &Control::default(), &mut Quiet).expect("runs");
    assert!(!memory::installed(), "this test program installs no global allocator");
    let profile = run(&results, "hold").profile.as_ref().expect("a profile");
    assert_eq!(profile.problems, [memory::NOT_INSTALLED], "{profile:?}");
    assert!(profile.heap.is_none() && profile.memory.iter().all(|sample| sample.heap.is_none()));
    assert!(!run(&results, "hold").metrics.contains_key("heap_peak"), "no heap figure of zero bytes");
}
