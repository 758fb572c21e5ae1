//! Rounds and repetitions are independent: every experiment arm of every
//! round starts from fresh engine instances, the arms' order is
//! counterbalanced, and `--repeat` runs the phases in passes.

mod common;

use common::{run, status, summary, Scenario};
use phasebench::results::{Results, RunRecord};

/// Two identical arms reading a vault whose cache can hold every key, at 4
/// concurrent readers. Uniform reads of 4,000 keys, 600 per run: a cold
/// cache hits about 7% of them, so the median read is a miss; a cache
/// carried over from earlier rounds fills up round after round.
fn vault_scenario(state: &str) -> Scenario {
    Scenario::new(&format!(
        "scenario: vault-rounds
seed: 3
engines:
  store: {{ kind: vault, sync: none, cache_size: 64MiB, cache_layout: global }}
phases:
  - name: p
    workloads:
      - name: readers
        engine: store
        op: read
        with: {{ keys: 4000, value_size: 8KiB, distribution: uniform }}
        load: {{ concurrency: 4 }}
        warmup: 10x
        iterations: 600
experiments:
  - name: twins
    workload: readers
    metric: latency.p50
    baseline: {{ engine: {{ cache_layout: global }} }}
    variants: {{ twin: {{ engine: {{ cache_layout: global }} }} }}
    rounds: 5
    state: {state}
"
    ))
}

/// The run of `arm` in `round` of experiment `twins`.
fn arm<'a>(results: &'a Results, arm: &str, round: u32) -> &'a RunRecord {
    run(results, &format!("twins:{arm}#{round}"))
}

fn hit_rate(run: &RunRecord) -> f64 {
    run.metrics["cache_hit_rate"].value.expect("cache_hit_rate is a scalar")
}

#[test]
fn fresh_rounds_start_from_the_same_cache() {
    let scenario = vault_scenario("fresh");
    assert_eq!(status(&scenario.run(&["--only", "twins"])), 0);
    let results = scenario.results();
    // Measured on a shared two-core machine: hit rates 0.04 to 0.095 in every
    // round (a round's 1-to-5 difference at most 0.03), read p50 8.4 to
    // 10.7 µs (round 5 / round 1 between 0.8 and 1.0).
    for name in ["baseline", "twin"] {
        let (first, last) = (arm(&results, name, 1), arm(&results, name, 5));
        let (hit_first, hit_last) = (hit_rate(first), hit_rate(last));
        assert!(hit_first < 0.2 && (hit_last - hit_first).abs() < 0.05, "{name}: hit rate {hit_first} -> {hit_last}");
        let ratio = summary(last, "latency").p50 / summary(first, "latency").p50;
        assert!((0.5..2.0).contains(&ratio), "{name}: read p50 round 5 / round 1 = {ratio}");
    }
}

#[test]
fn shared_rounds_inherit_the_cache_and_drift() {
    // The same scenario with `state: shared`: the test above has teeth.
    let scenario = vault_scenario("shared");
    assert_eq!(status(&scenario.run(&["--only", "twins"])), 0);
    let results = scenario.results();
    assert_eq!(results.experiments[0].state, phasebench::results::ArmState::Shared);
    // Measured: hit rate 0.06–0.2 in round 1, 0.7–0.75 in round 5; read p50
    // about 10 µs in round 1 and under 1.2 µs in round 5, once most reads hit.
    for name in ["baseline", "twin"] {
        let (first, last) = (arm(&results, name, 1), arm(&results, name, 5));
        let (hit_first, hit_last) = (hit_rate(first), hit_rate(last));
        assert!(hit_last - hit_first > 0.3, "{name}: hit rate only {hit_first} -> {hit_last}");
        let ratio = summary(last, "latency").p50 / summary(first, "latency").p50;
        assert!(ratio < 0.5, "{name}: read p50 round 5 / round 1 = {ratio}");
    }
}

#[test]
fn fresh_llm_rounds_decode_alike() {
    // Identical arms of the tiny preset with the KV cache on.
    let scenario = Scenario::new(
        "scenario: llm-rounds
seed: 5
engines:
  llm: { kind: llm, model: tiny, device: cpu, kv_cache: on, threads: 1 }
phases:
  - name: p
    workloads:
      - name: chat
        engine: llm
        op: generate
        with: { prompt_tokens: 32, max_tokens: 16 }
        warmup: 2x
        iterations: 10
experiments:
  - name: twins
    workload: chat
    metric: itl.p50
    baseline: { engine: { kv_cache: on } }
    variants: { twin: { engine: { kv_cache: on } } }
    rounds: 5
",
    );
    assert_eq!(status(&scenario.run(&["--only", "twins"])), 0);
    let results = scenario.results();
    // Measured on a shared two-core machine: inter-token latency p50 0.51 to
    // 0.79 ms over all rounds; round 5 / round 1 between 0.65 and 1.5.
    for name in ["baseline", "twin"] {
        let ratio = summary(arm(&results, name, 5), "itl").p50 / summary(arm(&results, name, 1), "itl").p50;
        assert!((0.5..2.0).contains(&ratio), "{name}: itl p50 round 5 / round 1 = {ratio}");
    }
}

#[test]
fn arms_take_every_position_equally_often() {
    let scenario = Scenario::new(
        "scenario: order
seed: 9
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - { name: w, engine: cal, op: noop, iterations: 3, warmup: 0x }
experiments:
  - name: e
    workload: w
    metric: latency.p50
    variants: { b: {}, c: {} }
    rounds: 6
",
    );
    assert_eq!(status(&scenario.run(&["--only", "e"])), 0);
    let results = scenario.results();
    let arms: Vec<_> = results.runs.iter().map(|run| run.arm.clone().expect("an arm")).collect();
    assert_eq!(arms.len(), 18);
    for round in 1..=6 {
        let positions: Vec<u32> = arms.iter().filter(|a| a.round == round).map(|a| a.position).collect();
        assert_eq!(positions, [1, 2, 3], "round {round} runs in order of position");
    }
    for name in ["baseline", "b", "c"] {
        for position in 1..=3 {
            let times = arms.iter().filter(|a| a.arm == name && a.position == position).count();
            assert_eq!(times, 2, "`{name}` in position {position}");
        }
    }
}

#[test]
fn repeat_runs_the_phases_in_passes() {
    let scenario = Scenario::new(
        "scenario: passes
seed: 1
engines: { cal: { kind: calibrate } }
phases:
  - name: first
    workloads:
      - { name: a, engine: cal, op: noop, iterations: 5, warmup: 0x, matrix: { c: [1, 2] }, load: { concurrency: \"${c}\" } }
  - name: second
    workloads:
      - { name: b, engine: cal, op: noop, iterations: 5, warmup: 0x }
experiments:
  - name: e
    workload: b
    metric: latency.p50
    variants: { v: {} }
    rounds: 2
",
    );
    assert_eq!(status(&scenario.run(&["--repeat", "3", "--smoke"])), 0);
    let results = scenario.results();
    let ids: Vec<&str> = results.runs.iter().map(|run| run.id.as_str()).collect();
    let phases = ["a[c=1]", "a[c=2]", "b"];
    let expected: Vec<String> = (1..=3).flat_map(|pass| phases.iter().map(move |id| format!("{id}@{pass}"))).collect();
    assert_eq!(ids[..9], expected, "every phase run, pass after pass");
    assert_eq!(ids.len(), 9 + 4, "experiment arms are not repeated");
    for (index, record) in results.runs.iter().take(9).enumerate() {
        assert_eq!(record.repetition, Some(index as u32 / 3 + 1));
        assert_eq!(record.base_id(), phases[index % 3]);
    }
    let arm = &results.runs[9];
    assert_eq!((arm.repetition, arm.base_id()), (None, arm.id.as_str()));
    let mut seeds: Vec<u64> = results.runs.iter().map(|run| run.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    assert_eq!(seeds.len(), results.runs.len(), "every repetition has its own seed");

    let only = Scenario::new(&std::fs::read_to_string(&scenario.file).unwrap());
    assert_eq!(status(&only.run(&["--repeat", "2", "--only", "first"])), 0);
    let ids: Vec<String> = only.results().runs.iter().map(|run| run.id.clone()).collect();
    assert_eq!(ids, ["a[c=1]@1", "a[c=2]@1", "a[c=1]@2", "a[c=2]@2"]);
}

#[test]
fn repeat_out_of_range_is_refused() {
    let scenario = Scenario::new(
        "scenario: passes
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - { name: a, engine: cal, op: noop, iterations: 1, warmup: 0x }
",
    );
    for bad in ["0", "101", "two"] {
        let output = scenario.run(&["--repeat", bad]);
        assert_eq!(status(&output), 2, "--repeat {bad}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("--repeat"), "--repeat {bad}");
        assert!(!scenario.out().exists());
    }
}
