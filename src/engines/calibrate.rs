//! The `calibrate` engine: operations of known cost, for testing the harness.
//!
//! `noop` does nothing, so its measured latency is the harness's own cost;
//! `spin` keeps a core busy for a given time and `sleep` blocks for one, so a
//! report can be checked against a known answer; `hold` allocates memory and
//! keeps it, the known answer for the memory profilers and the leak verdict. Options inject failures and
//! a one-time stall of the whole engine (a stop-the-world pause), which is how
//! the tests show coordinated-omission correction at work.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::catalog::{EngineDecl, MetricDecl, OpDecl, OptionDecl, ValueType};
use super::{Engine, EngineError, EngineKind, EngineSetup, OpWorker, Operation, Params, Recorder};

const DURATION_PARAM: &[OptionDecl] =
    &[OptionDecl { name: "duration", ty: ValueType::Duration, default: None, doc: "how long one operation takes" }];

static DECL: EngineDecl = EngineDecl {
    kind: "calibrate",
    doc: "operations of known cost, for testing the harness and measuring its overhead",
    options: &[
        OptionDecl {
            name: "fail_every",
            ty: ValueType::Count { min: 0, max: u64::MAX },
            default: Some("0"),
            doc: "every Nth call fails (0: never)",
        },
        OptionDecl {
            name: "stall_at",
            ty: ValueType::Count { min: 0, max: u64::MAX },
            default: Some("0"),
            doc: "the Nth call stalls the whole engine (0: never)",
        },
        OptionDecl {
            name: "stall_for",
            ty: ValueType::Duration,
            default: Some("100ms"),
            doc: "how long the stall holds every call",
        },
    ],
    ops: &[
        OpDecl {
            name: "noop",
            doc: "returns at once: its latency is the harness's own cost",
            params: &[],
            metrics: &[],
        },
        OpDecl {
            name: "spin",
            doc: "keeps one core busy for `duration`",
            params: DURATION_PARAM,
            metrics: &["overshoot"],
        },
        OpDecl {
            name: "sleep",
            doc: "blocks the calling thread for `duration`",
            params: DURATION_PARAM,
            metrics: &["overshoot"],
        },
        OpDecl {
            name: "hold",
            doc: "allocates `bytes`, writes every page and keeps the newest `keep` bytes of all it allocated \
                  (0: keeps everything, a deliberate leak)",
            params: &[
                OptionDecl { name: "bytes", ty: ValueType::Size, default: None, doc: "bytes allocated per call" },
                OptionDecl {
                    name: "keep",
                    ty: ValueType::Size,
                    default: Some("0B"),
                    doc: "bytes kept across calls, oldest freed first (0: all, never freed)",
                },
            ],
            metrics: &[],
        },
    ],
    metrics: &[MetricDecl::time("overshoot", "how much longer the call took than asked (timer precision)")],
};

/// The `calibrate` engine kind.
pub struct Calibrate;

impl EngineKind for Calibrate {
    fn decl(&self) -> &'static EngineDecl {
        &DECL
    }

    fn create(&self, setup: &EngineSetup) -> Result<Arc<dyn Engine>, EngineError> {
        let options = &setup.options;
        Ok(Arc::new(CalibrateEngine {
            held: Arc::new(Mutex::new(Held::default())),
            injection: Arc::new(Injection {
                fail_every: options.count("fail_every")?,
                stall_at: options.count("stall_at")?,
                stall_for: options.duration("stall_for")?,
                epoch: Instant::now(),
                calls: AtomicU64::new(0),
                stalled_until: AtomicU64::new(0),
            }),
        }))
    }
}

struct CalibrateEngine {
    injection: Arc<Injection>,
    held: Arc<Mutex<Held>>,
}

/// What `hold` keeps, shared by every run of the engine instance.
#[derive(Default)]
struct Held {
    blocks: VecDeque<Vec<u8>>,
    bytes: u64,
}

impl Held {
    /// Allocates and writes `bytes`, keeps them, and frees the oldest blocks
    /// beyond `keep` (0: frees nothing).
    fn hold(&mut self, bytes: u64, keep: u64) -> Result<(), EngineError> {
        let size = usize::try_from(bytes).map_err(|_| EngineError::new(format!("{bytes} bytes do not fit here")))?;
        let mut block = Vec::new();
        block
            .try_reserve_exact(size)
            .map_err(|_| EngineError::new(format!("cannot allocate {bytes} bytes (held so far: {})", self.bytes)))?;
        // Written, so that every page is resident, not only reserved.
        block.resize(size, 0x5a);
        self.blocks.push_back(black_box(block));
        self.bytes += bytes;
        while keep > 0 && self.bytes > keep {
            match self.blocks.pop_front() {
                Some(old) => self.bytes -= old.len() as u64,
                None => break,
            }
        }
        Ok(())
    }
}

/// Injected failures and stall, shared by every worker of the engine.
struct Injection {
    fail_every: u64,
    stall_at: u64,
    stall_for: Duration,
    epoch: Instant,
    calls: AtomicU64,
    /// End of the stall in nanoseconds since `epoch`; 0 while none was triggered.
    stalled_until: AtomicU64,
}

impl Injection {
    /// Applies the injected stall and failure; with neither set it touches nothing.
    fn before_call(&self) -> Result<(), EngineError> {
        if self.fail_every == 0 && self.stall_at == 0 {
            return Ok(());
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if call == self.stall_at {
            let until = self.epoch.elapsed() + self.stall_for;
            self.stalled_until.store(until.as_nanos() as u64, Ordering::Release);
            std::thread::sleep(self.stall_for);
        } else {
            let until = self.stalled_until.load(Ordering::Acquire);
            if until > 0 {
                let until = Duration::from_nanos(until);
                let now = self.epoch.elapsed();
                if now < until {
                    std::thread::sleep(until - now);
                }
            }
        }
        if self.fail_every > 0 && call % self.fail_every == 0 {
            return Err(EngineError::new(format!("injected failure (every {} calls)", self.fail_every)));
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Work {
    Noop,
    Spin(Duration),
    Sleep(Duration),
    Hold { bytes: u64, keep: u64 },
}

impl Engine for CalibrateEngine {
    fn operation(&self, op: &str, params: &Params) -> Result<Arc<dyn Operation>, EngineError> {
        let work = match op {
            "noop" => Work::Noop,
            "spin" => Work::Spin(params.duration("duration")?),
            "sleep" => Work::Sleep(params.duration("duration")?),
            "hold" => Work::Hold { bytes: params.bytes("bytes")?, keep: params.bytes("keep")? },
            other => return Err(EngineError::new(format!("calibrate has no operation `{other}`"))),
        };
        Ok(Arc::new(CalibrateOp { injection: Arc::clone(&self.injection), held: Arc::clone(&self.held), work }))
    }
}

struct CalibrateOp {
    injection: Arc<Injection>,
    held: Arc<Mutex<Held>>,
    work: Work,
}

impl Operation for CalibrateOp {
    fn worker(&self, _index: usize, _seed: u64) -> Result<Box<dyn OpWorker>, EngineError> {
        Ok(Box::new(CalibrateWorker {
            injection: Arc::clone(&self.injection),
            held: Arc::clone(&self.held),
            work: self.work,
        }))
    }
}

struct CalibrateWorker {
    injection: Arc<Injection>,
    held: Arc<Mutex<Held>>,
    work: Work,
}

impl OpWorker for CalibrateWorker {
    fn call(&mut self, recorder: &mut Recorder) -> Result<(), EngineError> {
        self.injection.before_call()?;
        match self.work {
            Work::Noop => Ok(()),
            Work::Spin(duration) => {
                let start = Instant::now();
                spin_for(start, duration);
                recorder.record_duration("overshoot", start.elapsed().saturating_sub(duration));
                Ok(())
            }
            Work::Sleep(duration) => {
                let start = Instant::now();
                std::thread::sleep(duration);
                recorder.record_duration("overshoot", start.elapsed().saturating_sub(duration));
                Ok(())
            }
            Work::Hold { bytes, keep } => match self.held.lock() {
                Ok(mut held) => held.hold(bytes, keep),
                Err(_) => Err(EngineError::new("another call panicked while holding memory")),
            },
        }
    }
}

/// Busy work (an xorshift sequence) until `duration` has passed since `start`.
fn spin_for(start: Instant, duration: Duration) {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    while start.elapsed() < duration {
        for _ in 0..64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
        }
        black_box(state);
    }
}
