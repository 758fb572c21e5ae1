//! The shared task queues agents take work from, and the agents themselves.
//!
//! Three executors an experiment can flip: `mutex` (a `Mutex<VecDeque>`
//! with a condition variable, the contended baseline; every acquisition of
//! its lock is timed), `lockfree` (a crossbeam channel: no lock to wait
//! for) and `async` (tokio: the runtime's own work-stealing queues, one
//! worker thread per agent).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Which executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    /// `Mutex<VecDeque>` + `Condvar`.
    Mutex,
    /// crossbeam-channel.
    LockFree,
    /// tokio tasks.
    Async,
}

/// A piece of work: runs on an agent, may submit more work through the pool.
pub type Work = Box<dyn FnOnce(&Arc<Pool>, Pickup) + Send>;

/// How a piece of work was picked up.
#[derive(Clone, Copy, Debug)]
pub struct Pickup {
    /// The agent running it.
    pub agent: usize,
    /// Time from submission to pick-up.
    pub queue_wait: Duration,
    /// Time the agent spent acquiring the queue's lock to take it (mutex queue).
    pub lock_wait: Duration,
}

/// A task waiting in a queue: when it was submitted and what it does.
pub struct Task {
    submitted: Instant,
    work: Work,
}

impl Task {
    fn run(self, pool: &Arc<Pool>, agent: usize, lock_wait: Duration) {
        let queue_wait = self.submitted.elapsed();
        let start = Instant::now();
        (self.work)(pool, Pickup { agent, queue_wait, lock_wait });
        pool.busy[agent].fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

struct MutexQueue {
    state: Mutex<(VecDeque<Task>, bool)>,
    ready: Condvar,
}

enum Queue {
    Mutex(MutexQueue),
    /// `None` tells one agent to stop.
    Channel(crossbeam_channel::Sender<Option<Task>>, crossbeam_channel::Receiver<Option<Task>>),
    /// Taken out (and shut down from the closing thread) by `close`.
    Tokio(Mutex<Option<tokio::runtime::Runtime>>),
}

/// `workers` agents and the queue between them and whoever submits work.
pub struct Pool {
    kind: QueueKind,
    queue: Queue,
    /// Nanoseconds each agent spent running work.
    busy: Vec<AtomicU64>,
    closed: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

thread_local! {
    /// The agent index of a tokio worker thread.
    static AGENT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Pool {
    /// Starts `workers` agents on a queue of `kind`.
    pub fn start(kind: QueueKind, workers: usize) -> Result<Arc<Pool>, String> {
        let queue = match kind {
            QueueKind::Mutex => {
                Queue::Mutex(MutexQueue { state: Mutex::new((VecDeque::new(), false)), ready: Condvar::new() })
            }
            QueueKind::LockFree => {
                let (sender, receiver) = crossbeam_channel::unbounded();
                Queue::Channel(sender, receiver)
            }
            QueueKind::Async => {
                let next = Arc::new(AtomicUsize::new(0));
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .thread_name("phasebench-agent")
                    .on_thread_start(move || {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        AGENT.with(|agent| agent.set(index));
                    })
                    .build()
                    .map_err(|error| format!("cannot start {workers} async agents: {error}"))?;
                Queue::Tokio(Mutex::new(Some(runtime)))
            }
        };
        let pool = Arc::new(Pool {
            kind,
            queue,
            busy: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            closed: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        if kind != QueueKind::Async {
            let mut threads = Vec::with_capacity(workers);
            for agent in 0..workers {
                let pool = Arc::clone(&pool);
                let thread = std::thread::Builder::new()
                    .name(format!("phasebench-agent-{agent}"))
                    .spawn(move || pool.agent_loop(agent))
                    .map_err(|error| format!("cannot start agent {agent}: {error}"))?;
                threads.push(thread);
            }
            *pool.threads.lock().unwrap_or_else(|p| p.into_inner()) = threads;
        }
        Ok(pool)
    }

    /// The executor kind.
    pub fn kind(&self) -> QueueKind {
        self.kind
    }

    /// Agents.
    pub fn workers(&self) -> usize {
        self.busy.len()
    }

    /// Nanoseconds each agent has spent running work so far.
    pub fn busy(&self) -> Vec<u64> {
        self.busy.iter().map(|b| b.load(Ordering::Relaxed)).collect()
    }

    /// Queues `work` (from a caller or from running work); returns how long
    /// the queue's lock took to acquire.
    pub fn submit(self: &Arc<Self>, work: Work) -> Duration {
        let task = Task { submitted: Instant::now(), work };
        match &self.queue {
            Queue::Mutex(queue) => {
                let start = Instant::now();
                let mut state = queue.state.lock().unwrap_or_else(|p| p.into_inner());
                let waited = start.elapsed();
                state.0.push_back(task);
                drop(state);
                queue.ready.notify_one();
                waited
            }
            Queue::Channel(sender, _) => {
                // The receiver lives as long as the pool: sending cannot fail.
                let _ = sender.send(Some(task));
                Duration::ZERO
            }
            Queue::Tokio(runtime) => {
                let pool = Arc::clone(self);
                if let Some(runtime) = runtime.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    runtime.spawn(async move {
                        let agent = AGENT.with(std::cell::Cell::get) % pool.workers();
                        task.run(&pool, agent, Duration::ZERO);
                    });
                }
                Duration::ZERO
            }
        }
    }

    fn agent_loop(self: Arc<Self>, agent: usize) {
        loop {
            let (task, lock_wait) = match &self.queue {
                Queue::Mutex(queue) => {
                    let start = Instant::now();
                    let mut state = queue.state.lock().unwrap_or_else(|p| p.into_inner());
                    let lock_wait = start.elapsed();
                    let task = loop {
                        if let Some(task) = state.0.pop_front() {
                            break Some(task);
                        }
                        if state.1 {
                            break None;
                        }
                        state = queue.ready.wait(state).unwrap_or_else(|p| p.into_inner());
                    };
                    (task, lock_wait)
                }
                Queue::Channel(_, receiver) => (receiver.recv().ok().flatten(), Duration::ZERO),
                Queue::Tokio(_) => (None, Duration::ZERO),
            };
            match task {
                Some(task) => task.run(&self, agent, lock_wait),
                None => return,
            }
        }
    }

    /// Stops the agents once the work queued so far is done, and waits for
    /// their threads. Call it from outside the pool's own agents.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        match &self.queue {
            Queue::Mutex(queue) => {
                queue.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
                queue.ready.notify_all();
            }
            Queue::Channel(sender, _) => {
                for _ in 0..self.workers() {
                    let _ = sender.send(None);
                }
            }
            Queue::Tokio(runtime) => {
                if let Some(runtime) = runtime.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    runtime.shutdown_background();
                }
            }
        }
        for thread in std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner())) {
            let _ = thread.join();
        }
    }
}
