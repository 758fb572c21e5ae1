//! The continuous-batching scheduler: one thread owns the model and runs
//! every sequence of every request, one decoding step at a time.
//!
//! Between two steps it takes the requests that arrived, admits waiting
//! ones first come, first served while the batch has room, prefills each
//! newcomer whole (its own forward over its prompt) and sends its first
//! token, then runs one [`Model::decode_batch`] over every running
//! sequence, samples a token for each and sends it. A sequence leaves the
//! batch when it reaches its `max_tokens` or a stop token, or when its
//! client is gone (its receiver dropped); its KV cache goes back to a pool
//! for the next newcomer.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::mpsc::UnboundedSender;

use super::metrics::Metrics;
use crate::engines::llm::sampling::Sampler;
use crate::engines::llm::{cpu, Cache, Model, Profile};

/// A checked generation request.
pub struct Job {
    /// The prompt's tokens (at least one; with `max_tokens`, within the context).
    pub prompt: Vec<u32>,
    /// Tokens to generate at most (at least one).
    pub max_tokens: usize,
    /// How this request chooses its tokens.
    pub sampler: Sampler,
    /// Tokens that end the generation early (empty: always run to `max_tokens`).
    pub stop_tokens: Vec<u32>,
    /// Where the tokens go; dropping the receiver cancels the request.
    pub events: UnboundedSender<Event>,
}

/// What a request hears from the scheduler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A generated token; `finish` is set on the last one.
    Token { id: u32, finish: Option<Finish> },
    /// The request could not be completed (the server is stopping, the model failed).
    Failed(String),
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// `max_tokens` reached.
    Length,
    /// A stop token generated.
    Stop,
}

impl Finish {
    /// The OpenAI `finish_reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Finish::Length => "length",
            Finish::Stop => "stop",
        }
    }
}

enum Message {
    Job(Box<Job>),
    Stop,
}

/// The handle on the scheduler thread: submit requests, stop it.
pub struct Scheduler {
    messages: Sender<Message>,
    thread: Option<JoinHandle<()>>,
}

/// The scheduler has stopped and takes no more requests.
#[derive(Debug)]
pub struct Stopped;

/// A cloneable way in for request handlers.
#[derive(Clone)]
pub struct Submitter(Sender<Message>);

impl Submitter {
    /// Queues `job`; `Err` when the scheduler has stopped.
    pub fn submit(&self, job: Job) -> Result<(), Stopped> {
        self.0.send(Message::Job(Box::new(job))).map_err(|_| Stopped)
    }
}

impl Scheduler {
    /// Starts the scheduler thread; it runs on `pool`, the model's threads.
    pub fn start(
        model: Arc<Model>,
        pool: Arc<rayon::ThreadPool>,
        max_batch: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Scheduler> {
        let (messages, inbox) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new().name("pb-serve-scheduler".into()).spawn(move || {
            let mut batch = Batch {
                model,
                inbox,
                max_batch: max_batch.max(1),
                metrics,
                waiting: VecDeque::new(),
                running: Vec::new(),
                caches: Vec::new(),
            };
            pool.install(|| batch.run());
        })?;
        Ok(Scheduler { messages, thread: Some(thread) })
    }

    /// A handle for submitting requests.
    pub fn submitter(&self) -> Submitter {
        Submitter(self.messages.clone())
    }

    /// Cancels every request still running or waiting (each hears
    /// [`Event::Failed`]) and waits for the thread to end.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let _ = self.messages.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// A request being decoded.
struct Sequence {
    job: Job,
    cache: Cache,
    generated: usize,
    /// The token to run next (the last one generated).
    last: u32,
}

/// The scheduler thread's state.
struct Batch {
    model: Arc<Model>,
    inbox: Receiver<Message>,
    max_batch: usize,
    metrics: Arc<Metrics>,
    waiting: VecDeque<Job>,
    running: Vec<Sequence>,
    /// Caches of finished sequences, kept for newcomers (at most `max_batch`).
    caches: Vec<Cache>,
}

impl Batch {
    fn run(&mut self) {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                // Nothing to do: sleep until a message comes.
                match self.inbox.recv() {
                    Ok(Message::Job(job)) => self.waiting.push_back(*job),
                    Ok(Message::Stop) | Err(_) => return self.cancel_all(),
                }
            }
            while let Ok(message) = self.inbox.try_recv() {
                match message {
                    Message::Job(job) => self.waiting.push_back(*job),
                    Message::Stop => return self.cancel_all(),
                }
            }
            self.admit();
            self.step();
            self.metrics.set_queues(self.running.len(), self.waiting.len());
        }
    }

    /// Prefills waiting requests, first come first served, while the batch has room.
    fn admit(&mut self) {
        while self.running.len() < self.max_batch {
            let Some(mut job) = self.waiting.pop_front() else { break };
            if job.events.is_closed() {
                continue;
            }
            self.metrics.set_queues(self.running.len() + 1, self.waiting.len());
            let mut cache = self.caches.pop().unwrap_or_default();
            let logits = self
                .model
                .forward(&job.prompt, &mut cache, &mut Profile::default(), false)
                .and_then(|logits| Ok(logits.to_vec1::<f32>()?));
            match logits {
                Ok(logits) => {
                    self.metrics.prompt(job.prompt.len());
                    let first = job.sampler.sample(&logits);
                    let sequence = Sequence { job, cache, generated: 0, last: first };
                    if let Some(sequence) = self.emit(sequence, first) {
                        self.running.push(sequence);
                    }
                }
                Err(error) => {
                    let _ = job.events.send(Event::Failed(format!("the prompt could not be run: {error}")));
                    self.recycle(cache);
                }
            }
        }
    }

    /// One decoding step of every running sequence whose client is still there.
    fn step(&mut self) {
        let (gone, running): (Vec<Sequence>, Vec<Sequence>) =
            std::mem::take(&mut self.running).into_iter().partition(|s| s.job.events.is_closed());
        gone.into_iter().for_each(|sequence| self.recycle(sequence.cache));
        self.running = running;
        if self.running.is_empty() {
            return;
        }
        let tokens: Vec<u32> = self.running.iter().map(|sequence| sequence.last).collect();
        let start = Instant::now();
        let logits = {
            let mut caches: Vec<&mut Cache> = self.running.iter_mut().map(|sequence| &mut sequence.cache).collect();
            self.model.decode_batch(&tokens, &mut caches, &mut Profile::default())
        };
        self.metrics.step(start.elapsed(), tokens.len());
        // Every row sampled where the step wrote it: no copy of the logits.
        let mut running = std::mem::take(&mut self.running);
        let count = running.len().max(1);
        let tokens = logits.and_then(|logits| {
            cpu::with_slice::<f32, _>(&logits, |rows| {
                let vocab = (rows.len() / count).max(1);
                let rows = running.iter_mut().zip(rows.chunks_exact(vocab));
                rows.map(|(sequence, row)| sequence.job.sampler.sample(row)).collect::<Vec<u32>>()
            })
        });
        match tokens {
            Ok(tokens) => {
                for (sequence, token) in running.into_iter().zip(tokens) {
                    if let Some(sequence) = self.emit(sequence, token) {
                        self.running.push(sequence);
                    }
                }
            }
            Err(error) => {
                for sequence in running {
                    let _ = sequence.job.events.send(Event::Failed(format!("the decoding step failed: {error}")));
                    self.recycle(sequence.cache);
                }
            }
        }
    }

    /// Sends `token`; the sequence back if it goes on, `None` once it has finished or its client is gone.
    fn emit(&mut self, mut sequence: Sequence, token: u32) -> Option<Sequence> {
        sequence.generated += 1;
        sequence.last = token;
        self.metrics.generated();
        let finish = if sequence.job.stop_tokens.contains(&token) {
            Some(Finish::Stop)
        } else if sequence.generated >= sequence.job.max_tokens {
            Some(Finish::Length)
        } else {
            None
        };
        let sent = sequence.job.events.send(Event::Token { id: token, finish });
        if sent.is_err() || finish.is_some() {
            self.recycle(sequence.cache);
            return None;
        }
        Some(sequence)
    }

    fn recycle(&mut self, mut cache: Cache) {
        if self.caches.len() < self.max_batch {
            cache.clear();
            self.caches.push(cache);
        }
    }

    fn cancel_all(&mut self) {
        let message = "the server is shutting down".to_owned();
        for sequence in self.running.drain(..) {
            let _ = sequence.job.events.send(Event::Failed(message.clone()));
        }
        for job in self.waiting.drain(..) {
            let _ = job.events.send(Event::Failed(message.clone()));
        }
        while let Ok(Message::Job(job)) = self.inbox.try_recv() {
            let _ = job.events.send(Event::Failed(message.clone()));
        }
        self.metrics.set_queues(0, 0);
    }
}
