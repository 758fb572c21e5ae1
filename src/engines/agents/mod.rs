//! The `agents` engine: a collective of `workers` agents taking tasks from
//! one shared queue, the campaign's "Agents Collective".
//!
//! Each call of an operation submits one task and waits until it is done,
//! so the harness's closed or open loop is the producer side and its
//! latency is submitted-to-done. Tasks: `cpu` (busy work of a given
//! duration), `message` (handed from agent to agent through the queue
//! `rounds` times) and `fanout` (spawns `tasks` subtasks and completes when
//! the last of them does; no agent blocks waiting) and `workflow` (other
//! engines' operations in a chain, each step a task of its own that passes
//! its data to the next, e.g. `llm.generate -> vault.write -> vault.read`).
//! The queue is the
//! variant an experiment flips: `mutex`, `lockfree` or `async`
//! (see [`queue`]). With `mutex`, every acquisition of the queue's lock is
//! timed, on the submitting side and the agents' side.

pub mod queue;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::catalog::{Better, Derive, EngineDecl, MetricDecl, OpDecl, OptionDecl, ValueType};
use super::{Engine, EngineError, EngineKind, EngineSetup, OpWorker, Operation, Params, Payload, Recorder};
use crate::quantity::Dim;
use queue::{Pool, QueueKind};

const DURATION: OptionDecl =
    OptionDecl { name: "duration", ty: ValueType::Duration, default: Some("100us"), doc: "busy work per task" };

const TASK_METRICS: &[&str] = &["queue_wait", "service", "lock_wait", "agent_utilization", "lock_share"];

static DECL: EngineDecl = EngineDecl {
    kind: "agents",
    doc: "a collective of agents taking tasks from one shared queue (mutex, lock-free or async)",
    options: &[
        OptionDecl {
            name: "queue",
            ty: ValueType::Choice(&["mutex", "lockfree", "async"]),
            default: Some("mutex"),
            doc: "mutex: Mutex<VecDeque> + Condvar; lockfree: a crossbeam channel; async: tokio tasks",
        },
        OptionDecl {
            name: "workers",
            ty: ValueType::Count { min: 1, max: 1024 },
            default: Some("4"),
            doc: "agents (threads) taking tasks",
        },
    ],
    ops: &[
        OpDecl { name: "cpu", doc: "one task of busy work", params: &[DURATION], metrics: TASK_METRICS },
        OpDecl {
            name: "message",
            doc: "a task handed from agent to agent through the queue `rounds` times",
            params: &[OptionDecl {
                name: "rounds",
                ty: ValueType::Count { min: 1, max: 1 << 20 },
                default: Some("10"),
                doc: "hand-offs through the queue",
            }],
            metrics: TASK_METRICS,
        },
        OpDecl {
            name: "fanout",
            doc: "a task that spawns `tasks` subtasks of busy work and is done when all are",
            params: &[
                OptionDecl {
                    name: "tasks",
                    ty: ValueType::Count { min: 1, max: 1 << 20 },
                    default: Some("8"),
                    doc: "subtasks per task",
                },
                DURATION,
            ],
            metrics: TASK_METRICS,
        },
        OpDecl {
            name: "workflow",
            doc: "a chain of other engines' operations, each step a task handed on through the queue with its data",
            params: &[OptionDecl {
                name: "steps",
                ty: ValueType::Steps,
                default: None,
                doc: "`engine.op -> engine.op -> …` with engines of this scenario (run with their default parameters)",
            }],
            metrics: TASK_METRICS,
        },
    ],
    metrics: &[
        MetricDecl::time("queue_wait", "time from submission until an agent picked the task up"),
        MetricDecl::time("service", "time from pick-up until done (hand-offs and subtasks included)"),
        MetricDecl::time("lock_wait", "time spent acquiring the queue's lock on the task's behalf (mutex queue)"),
        MetricDecl::distribution(
            "agent_utilization",
            Dim::NONE,
            Better::Higher,
            "each agent's busy fraction, sampled over windows of at least 20 ms",
        ),
        MetricDecl::scalar(
            "lock_share",
            Dim::NONE,
            Better::Lower,
            "time spent acquiring the queue's lock, of all task latency",
        )
        .derived(Derive::Quotient { numerator: "lock_wait_ns", denominator: "latency_ns" }),
    ],
};

/// The `agents` engine kind.
pub struct Agents;

impl EngineKind for Agents {
    fn decl(&self) -> &'static EngineDecl {
        &DECL
    }

    fn create(&self, setup: &EngineSetup) -> Result<Arc<dyn Engine>, EngineError> {
        let kind = match setup.options.text("queue")? {
            "lockfree" => QueueKind::LockFree,
            "async" => QueueKind::Async,
            _ => QueueKind::Mutex,
        };
        let workers = setup.options.count("workers")? as usize;
        let pool = Pool::start(kind, workers).map_err(EngineError::new)?;
        Ok(Arc::new(AgentsEngine { pool: Arc::new(Crew(pool)) }))
    }
}

/// The pool, closed when the engine and the last of its operations and
/// workers are gone (the agents' own threads hold the pool, not this).
struct Crew(Arc<Pool>);

impl Drop for Crew {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl std::ops::Deref for Crew {
    type Target = Arc<Pool>;

    fn deref(&self) -> &Arc<Pool> {
        &self.0
    }
}

struct AgentsEngine {
    pool: Arc<Crew>,
}

/// What a task is.
#[derive(Clone, Copy, Debug)]
enum Job {
    Cpu(Duration),
    Message(u64),
    Fanout(u64, Duration),
    /// That many steps, each another engine's operation.
    Workflow(u64),
}

impl Job {
    /// Pieces of work an agent runs for one task.
    fn pieces(self) -> u64 {
        match self {
            Job::Cpu(_) => 1,
            Job::Message(rounds) => rounds + 1,
            Job::Fanout(tasks, _) => tasks + 1,
            Job::Workflow(steps) => steps,
        }
    }
}

impl Engine for AgentsEngine {
    fn operation(&self, op: &str, params: &Params) -> Result<Arc<dyn Operation>, EngineError> {
        self.linked_operation(op, params, Vec::new())
    }

    fn linked_operation(
        &self,
        op: &str,
        params: &Params,
        steps: Vec<Arc<dyn Operation>>,
    ) -> Result<Arc<dyn Operation>, EngineError> {
        let job = match op {
            "cpu" => Job::Cpu(params.duration("duration")?),
            "message" => Job::Message(params.count("rounds")?),
            "fanout" => Job::Fanout(params.count("tasks")?, params.duration("duration")?),
            "workflow" if steps.is_empty() => return Err(EngineError::new("a workflow needs at least one step")),
            "workflow" => Job::Workflow(steps.len() as u64),
            other => return Err(EngineError::new(format!("agents has no operation `{other}`"))),
        };
        let window = Window { since: Instant::now(), busy: self.pool.busy() };
        Ok(Arc::new(AgentsOperation { pool: Arc::clone(&self.pool), job, window: Arc::new(Mutex::new(window)), steps }))
    }
}

/// The last utilization sample: when, and each agent's busy time then.
struct Window {
    since: Instant,
    busy: Vec<u64>,
}

const WINDOW: Duration = Duration::from_millis(20);

struct AgentsOperation {
    pool: Arc<Crew>,
    job: Job,
    window: Arc<Mutex<Window>>,
    steps: Vec<Arc<dyn Operation>>,
}

impl Operation for AgentsOperation {
    fn worker(&self, index: usize, seed: u64) -> Result<Box<dyn OpWorker>, EngineError> {
        let steps = self
            .steps
            .iter()
            .enumerate()
            .map(|(step, operation)| operation.worker(index, seed ^ (step as u64 + 1).wrapping_mul(0x9e37_79b9)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(AgentsWorker {
            pool: Arc::clone(&self.pool),
            job: self.job,
            window: Arc::clone(&self.window),
            steps: Some(steps),
        }))
    }
}

/// The workers of a workflow's steps: lent to the task while it runs.
type StepWorkers = Vec<Box<dyn OpWorker>>;

struct AgentsWorker {
    pool: Arc<Crew>,
    job: Job,
    window: Arc<Mutex<Window>>,
    steps: Option<StepWorkers>,
}

/// What a finished task reports to the caller waiting for it.
#[derive(Debug)]
struct Tally {
    queue_wait: Duration,
    picked: Instant,
    /// Lock acquisitions made for the task by agents (pick-ups, hand-offs, subtasks).
    lock_wait_ns: u64,
    pieces: u64,
}

/// Shared by the pieces of one task.
struct Shared {
    done: crossbeam_channel::Sender<Tally>,
    /// A workflow's step workers and its outcome, handed back when it ends.
    returned: Mutex<Option<(StepWorkers, Result<Payload, EngineError>)>>,
    picked: Mutex<Option<(Instant, Duration)>>,
    lock_wait_ns: AtomicU64,
    pieces: AtomicU64,
    remaining: AtomicUsize,
}

impl Shared {
    /// Counts a piece of the task and the lock wait of its pick-up.
    fn piece(&self, pickup: queue::Pickup) {
        self.pieces.fetch_add(1, Ordering::Relaxed);
        self.lock_wait_ns.fetch_add(pickup.lock_wait.as_nanos() as u64, Ordering::Relaxed);
    }

    /// One share of a fan-out done; the last finishes the task.
    fn done_one(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }

    fn finish(&self) {
        let (picked, queue_wait) =
            self.picked.lock().unwrap_or_else(|p| p.into_inner()).unwrap_or((Instant::now(), Duration::ZERO));
        let tally = Tally {
            queue_wait,
            picked,
            lock_wait_ns: self.lock_wait_ns.load(Ordering::Relaxed),
            pieces: self.pieces.load(Ordering::Relaxed),
        };
        // The caller waits on the other end until it gets this.
        let _ = self.done.send(tally);
    }
}

/// Keeps a core busy for `duration`.
fn spin(duration: Duration) {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < duration {
        for _ in 0..64 {
            x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
}

/// The first piece of a task: notes when it was picked up, then does the job.
fn start(job: Job, shared: Arc<Shared>) -> queue::Work {
    Box::new(move |pool, pickup| {
        *shared.picked.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), pickup.queue_wait));
        shared.piece(pickup);
        match job {
            Job::Cpu(duration) => {
                spin(duration);
                shared.finish();
            }
            Job::Message(rounds) => hop(pool, rounds, shared),
            Job::Workflow(_) => {
                let taken = shared.returned.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some((workers, Ok(payload))) = taken {
                    step(pool, workers, 0, payload, shared);
                }
            }
            Job::Fanout(tasks, duration) => {
                // One more than the subtasks: the parent's own share, given up
                // last, so its lock waits are counted before the task finishes.
                shared.remaining.store(tasks as usize + 1, Ordering::Release);
                let mut waited = Duration::ZERO;
                for _ in 0..tasks {
                    let sub = Arc::clone(&shared);
                    waited += pool.submit(Box::new(move |_, pickup| {
                        sub.piece(pickup);
                        spin(duration);
                        sub.done_one();
                    }));
                }
                shared.lock_wait_ns.fetch_add(waited.as_nanos() as u64, Ordering::Relaxed);
                shared.done_one();
            }
        }
    })
}

/// Runs workflow step `index` here, then hands the next step on through the
/// queue with the data; the last step (or a failed one) finishes the task.
fn step(pool: &Arc<Pool>, mut workers: StepWorkers, index: usize, payload: Payload, shared: Arc<Shared>) {
    // Step metrics belong to the steps' engines; the workflow measures the chain.
    let mut scratch = Recorder::default();
    let outcome = workers[index].pipe(&mut scratch, payload);
    match outcome {
        Ok(payload) if index + 1 < workers.len() => {
            let next = Arc::clone(&shared);
            let waited = pool.submit(Box::new(move |pool, pickup| {
                next.piece(pickup);
                step(pool, workers, index + 1, payload, next);
            }));
            shared.lock_wait_ns.fetch_add(waited.as_nanos() as u64, Ordering::Relaxed);
        }
        outcome => {
            let outcome =
                outcome.map_err(|error| EngineError::new(format!("workflow step {}: {}", index + 1, error.message)));
            *shared.returned.lock().unwrap_or_else(|p| p.into_inner()) = Some((workers, outcome));
            shared.finish();
        }
    }
}

/// Hands the task on through the queue `left` more times, then finishes it.
fn hop(pool: &Arc<Pool>, left: u64, shared: Arc<Shared>) {
    if left == 0 {
        shared.finish();
        return;
    }
    let next = Arc::clone(&shared);
    let waited = pool.submit(Box::new(move |pool, pickup| {
        next.piece(pickup);
        hop(pool, left - 1, next);
    }));
    shared.lock_wait_ns.fetch_add(waited.as_nanos() as u64, Ordering::Relaxed);
}

impl OpWorker for AgentsWorker {
    fn call(&mut self, recorder: &mut Recorder) -> Result<(), EngineError> {
        self.pipe(recorder, Payload::default()).map(|_| ())
    }

    /// Runs the task; a workflow starts from `input` and returns its last
    /// step's payload, other tasks pass `input` on.
    fn pipe(&mut self, recorder: &mut Recorder, input: Payload) -> Result<Payload, EngineError> {
        let (sender, receiver) = crossbeam_channel::bounded(1);
        let workflow = matches!(self.job, Job::Workflow(_));
        let lent = if workflow {
            let workers = self.steps.take().ok_or_else(|| EngineError::new("a workflow step failed before"))?;
            Some((workers, Ok(input.clone())))
        } else {
            None
        };
        let shared = Arc::new(Shared {
            done: sender,
            returned: Mutex::new(lent),
            picked: Mutex::new(None),
            lock_wait_ns: AtomicU64::new(0),
            pieces: AtomicU64::new(0),
            remaining: AtomicUsize::new(0),
        });
        let submitted = Instant::now();
        let submit_wait = self.pool.submit(start(self.job, Arc::clone(&shared)));
        let tally = receiver.recv().map_err(|_| EngineError::new("the agents stopped before the task was done"))?;
        let done = Instant::now();
        let output = if workflow {
            let (workers, outcome) = shared
                .returned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .ok_or_else(|| EngineError::new("a workflow ended without its steps"))?;
            self.steps = Some(workers);
            let payload = outcome?;
            recorder.count("payload_bytes", payload.data.len() as u64);
            payload
        } else {
            input
        };
        if tally.pieces != self.job.pieces() {
            return Err(EngineError::new(format!(
                "a task ran {} pieces of work instead of {}: lost or duplicated work",
                tally.pieces,
                self.job.pieces()
            )));
        }
        let lock_wait = submit_wait + Duration::from_nanos(tally.lock_wait_ns);
        recorder.record_duration("queue_wait", tally.queue_wait);
        recorder.record_duration("service", done - tally.picked);
        if self.pool.kind() == QueueKind::Mutex {
            recorder.record_duration("lock_wait", lock_wait);
        }
        recorder.count("lock_wait_ns", lock_wait.as_nanos() as u64);
        recorder.count("latency_ns", (done - submitted).as_nanos() as u64);
        recorder.count("tasks", 1);
        recorder.count("pieces", tally.pieces);
        self.sample_utilization(recorder);
        Ok(output)
    }
}

impl AgentsWorker {
    /// Records each agent's busy fraction since the last sample, at most every 20 ms.
    fn sample_utilization(&self, recorder: &mut Recorder) {
        let Ok(mut window) = self.window.try_lock() else { return };
        let elapsed = window.since.elapsed();
        if elapsed < WINDOW {
            return;
        }
        let busy = self.pool.busy();
        for (now, before) in busy.iter().zip(&window.busy) {
            let fraction = now.saturating_sub(*before) as f64 / elapsed.as_nanos() as f64;
            recorder.record("agent_utilization", fraction.min(1.0));
        }
        *window = Window { since: Instant::now(), busy };
    }
}
