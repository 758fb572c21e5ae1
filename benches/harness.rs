//! The harness's own cost per recorded operation, against peers in the same run.
//!
//! `noop` does nothing, so the closed-loop executor's time per operation is
//! the cost of measuring: claiming an iteration, two clock reads, the
//! histogram record and the dynamic call. Two peers bound it from below:
//! calling the operation with no measurement at all, and the same call
//! between two clock reads with no bookkeeping.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use phasebench::engines::{self, EngineSetup, Operation, Recorder};
use phasebench::plan::{self, PlanOptions, RunSpec, Stop, Warmup};
use phasebench::run::{execute, Control};

/// The binary's allocator, so that the harness is measured as `phasebench`
/// runs it: the counting allocator's flag is checked on every allocation.
#[global_allocator]
static ALLOCATOR: phasebench::run::memory::CountingAllocator = phasebench::run::memory::CountingAllocator;

const SCENARIO: &str = "scenario: bench
engines: { cal: { kind: calibrate } }
phases:
  - name: p
    workloads:
      - { name: noop, engine: cal, op: noop, iterations: 1000, warmup: 0x }
";

fn noop_run() -> (RunSpec, std::sync::Arc<dyn Operation>) {
    let document = phasebench::dsl::parse("bench.yaml", SCENARIO.into()).expect("bench scenario parses");
    let plan = plan::build(&document, &PlanOptions::default()).expect("bench scenario checks");
    let spec = plan.runs.into_iter().next().expect("one run");
    let kind = engines::find(spec.engine.kind).expect("calibrate is built in");
    let engine = kind.create(&EngineSetup { options: spec.engine.options.clone(), seed: 0 }).expect("engine");
    let operation = engine.operation(&spec.op, &spec.params).expect("noop");
    (spec, operation)
}

fn harness(c: &mut Criterion) {
    let (spec, operation) = noop_run();
    let mut group = c.benchmark_group("noop");

    group.bench_function("bare call (peer)", |b| {
        let mut worker = operation.worker(0, 0).expect("worker");
        let mut recorder = Recorder::default();
        b.iter(|| black_box(worker.call(&mut recorder)));
    });

    group.bench_function("call between two clock reads (peer)", |b| {
        let mut worker = operation.worker(0, 0).expect("worker");
        let mut recorder = Recorder::default();
        b.iter(|| {
            let start = Instant::now();
            let result = worker.call(&mut recorder);
            black_box((result, start.elapsed()))
        });
    });

    group.bench_function("closed-loop executor, per recorded operation", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            // One executor pass per batch of up to a million operations keeps
            // thread start-up (tens of microseconds) a negligible share.
            let mut left = iterations;
            while left > 0 {
                let batch = left.min(1_000_000);
                let spec = RunSpec { stop: Stop::Iterations(batch), warmup: Warmup::None, ..spec.clone() };
                let measurement = execute(&spec, operation.as_ref(), &Control::default()).expect("noop runs");
                assert_eq!(measurement.tally.operations, batch);
                total += measurement.elapsed;
                left -= batch;
            }
            total
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = harness
}
criterion_main!(benches);
