//! The agents engine: every task runs exactly once under each queue, with
//! many submitters at once; hand-offs and fan-outs complete whole; a
//! workflow passes its data through every step; the scenario runs.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{root, run, status, Scenario};
use phasebench::engines::agents::queue::{Pool, QueueKind};
use phasebench::engines::{self, EngineSetup, Payload, Recorder};

const KINDS: [QueueKind; 3] = [QueueKind::Mutex, QueueKind::LockFree, QueueKind::Async];

#[test]
fn every_task_runs_exactly_once_under_each_queue() {
    for kind in KINDS {
        let pool = Pool::start(kind, 4).unwrap();
        let (submitters, each) = (8usize, 5_000usize);
        let runs: Arc<Vec<AtomicU8>> = Arc::new((0..submitters * each).map(|_| AtomicU8::new(0)).collect());
        let done = Arc::new(AtomicU64::new(0));
        std::thread::scope(|scope| {
            for submitter in 0..submitters {
                let (pool, runs, done) = (Arc::clone(&pool), Arc::clone(&runs), Arc::clone(&done));
                scope.spawn(move || {
                    for i in 0..each {
                        let (runs, done) = (Arc::clone(&runs), Arc::clone(&done));
                        pool.submit(Box::new(move |_, _| {
                            runs[submitter * each + i].fetch_add(1, Ordering::Relaxed);
                            done.fetch_add(1, Ordering::Release);
                        }));
                    }
                });
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while done.load(Ordering::Acquire) < (submitters * each) as u64 {
            assert!(
                Instant::now() < deadline,
                "{kind:?}: only {} of {} tasks ran",
                done.load(Ordering::Relaxed),
                submitters * each
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        pool.close();
        let wrong: Vec<usize> = (0..runs.len()).filter(|&i| runs[i].load(Ordering::Relaxed) != 1).collect();
        assert!(
            wrong.is_empty(),
            "{kind:?}: {} tasks ran other than once (first: {:?})",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
        assert_eq!(pool.busy().len(), 4);
    }
}

#[test]
fn hand_offs_and_fan_outs_complete_whole_under_concurrency() {
    for queue in ["mutex", "lockfree", "async"] {
        let scenario = Scenario::new(&format!(
            "scenario: whole
engines:
  crew: {{ kind: agents, queue: {queue}, workers: 3 }}
phases:
  - name: p
    workloads:
      - {{ name: hops, engine: crew, op: message, with: {{ rounds: 7 }}, iterations: 300, warmup: 0x, load: {{ concurrency: 4 }} }}
      - {{ name: fan, engine: crew, op: fanout, with: {{ tasks: 6, duration: 5us }}, iterations: 300, warmup: 0x, load: {{ concurrency: 4 }} }}
"
        ));
        let output = scenario.run(&[]);
        assert_eq!(status(&output), 0, "{queue}: {}", String::from_utf8_lossy(&output.stderr));
        let results = scenario.results();
        for (id, pieces) in [("hops", 8), ("fan", 7)] {
            let record = run(&results, id);
            assert_eq!(record.errors, 0, "{queue} {id}");
            let counter = |name: &str| record.counters.get(name).copied().unwrap_or(0);
            assert_eq!(counter("tasks"), 300, "{queue} {id}: every submitted task completed once");
            assert_eq!(counter("pieces"), 300 * pieces, "{queue} {id}: every piece ran once");
            let samples = record.metrics.get("lock_wait").and_then(|m| m.summary).map_or(0, |s| s.count);
            assert_eq!(samples > 0, queue == "mutex", "{queue} {id}: lock wait is measured for the mutex queue only");
        }
    }
}

/// The first run of `yaml`'s plan as a ready operation worker, built the way
/// the interpreter builds it.
fn workflow_worker(yaml: &str) -> Box<dyn engines::OpWorker> {
    let doc = phasebench::dsl::parse("w.yaml", yaml.to_owned()).expect("parses");
    let plan = phasebench::plan::build(&doc, &Default::default()).expect("plans");
    let spec = &plan.runs[0];
    // One instance per engine name, as the interpreter shares them.
    let mut created: HashMap<String, Arc<dyn engines::Engine>> = HashMap::new();
    let mut create = |engine: &phasebench::plan::EngineConfig| {
        Arc::clone(created.entry(engine.name.clone()).or_insert_with(|| {
            engines::find(engine.kind)
                .unwrap()
                .create(&EngineSetup { options: engine.options.clone(), seed: 1 })
                .unwrap()
        }))
    };
    let steps = spec.steps.iter().map(|step| create(&step.engine).operation(&step.op, &step.params).unwrap()).collect();
    let operation = create(&spec.engine).linked_operation(&spec.op, &spec.params, steps).unwrap();
    operation.worker(0, 7).unwrap()
}

#[test]
fn a_workflow_passes_its_data_through_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault");
    let yaml = |steps: &str| {
        format!(
            "scenario: w
engines:
  llm: {{ kind: llm, model: tiny, device: cpu, threads: 1 }}
  store: {{ kind: vault, dir: \"{}\" }}
  crew: {{ kind: agents, queue: lockfree, workers: 2 }}
phases:
  - name: p
    workloads:
      - {{ name: w, engine: crew, op: workflow, with: {{ steps: \"{steps}\" }} }}
",
            vault.display()
        )
    };
    let mut recorder = Recorder::default();
    // What goes in comes out of the store.
    {
        let mut store_and_read = workflow_worker(&yaml("store.write -> store.read"));
        let sent = Payload { key: b"wf-key".to_vec(), data: b"handed through the queue".to_vec() };
        let back = store_and_read.pipe(&mut recorder, sent.clone()).unwrap();
        assert_eq!(back, sent);
    } // closes the store for the next workflow
      // The model's tokens are stored and read back: 32 generated tokens as u32s.
    let mut chain = workflow_worker(&yaml("llm.generate -> store.write -> store.read"));
    let out = chain.pipe(&mut recorder, Payload::default()).unwrap();
    assert_eq!(out.data.len(), 32 * 4);
    assert!(!out.key.is_empty(), "the write step chose a key");
    let again = chain.pipe(&mut recorder, Payload::default()).unwrap();
    assert_eq!(again.data.len(), 32 * 4, "the steps' workers come back for the next call");
    let counters: Vec<_> = recorder.counters().to_vec();
    assert!(counters.contains(&("payload_bytes", 24 + 2 * 128)), "{counters:?}");
}

#[test]
fn agents_scenario_smoke_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = common::phasebench()
        .args(["run", "--smoke", "--quiet", "--out"])
        .arg(&out)
        .arg(root().join("scenarios/agents.yaml"))
        .output()
        .unwrap();
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
}
