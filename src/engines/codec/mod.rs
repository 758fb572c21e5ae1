//! The `codec` engine: compression ratio and speed of real compressors
//! (zstd, lz4, brotli, snappy, and `none` as the control) over a corpus
//! split into blocks, with every round trip checked byte for byte.
//!
//! `algorithm.rs` wraps the compressors; `corpus.rs` loads the built-in or a
//! named corpus and splits it into blocks.

pub mod algorithm;
pub mod corpus;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::catalog::{Better, Derive, EngineDecl, MetricDecl, OpDecl, OptionDecl, ValueType};
use super::rng::SplitMix;
use super::{Engine, EngineError, EngineKind, EngineSetup, Invalid, OpWorker, Operation, Params, Payload, Recorder};
use crate::quantity::Dim;
pub use algorithm::{Algorithm, Coder, Settings};
pub use corpus::{Block, Blocks, Corpus, BUILTIN};

/// Smallest dictionary zstd's trainer produces.
const MIN_DICTIONARY: u64 = 256;

const CORRUPT: OptionDecl = OptionDecl {
    name: "corrupt",
    ty: ValueType::Number { min: 0.0, max: 1.0 },
    default: Some("0%"),
    doc: "share of frames damaged on purpose (one byte flipped) before decompression, to show that \
          verification catches them; each is an error",
};

static DECL: EngineDecl = EngineDecl {
    kind: "codec",
    doc: "compression ratio and speed of zstd, lz4, brotli and snappy over a corpus split into blocks, \
          every round trip checked byte for byte",
    options: &[
        OptionDecl {
            name: "algorithm",
            ty: ValueType::Choice(Algorithm::NAMES),
            default: Some("zstd"),
            doc: "the compressor; none copies the bytes (the control)",
        },
        OptionDecl {
            name: "level",
            ty: ValueType::Count { min: 1, max: 22 },
            default: Some("3"),
            doc: "zstd 1–22 (19+ slow), brotli 1–11; lz4, snappy and none have one level",
        },
        OptionDecl {
            name: "dictionary",
            ty: ValueType::Size,
            default: Some("0B"),
            doc: "zstd only: train a dictionary of this size on the `train_share` blocks (0B: none)",
        },
        OptionDecl {
            name: "train_share",
            ty: ValueType::Number { min: 0.0, max: 0.9 },
            default: Some("0%"),
            doc: "share of the blocks (evenly spaced) set aside to train the dictionary and never measured; \
                  give the baseline the same share so both measure the same blocks",
        },
        OptionDecl {
            name: "checksum",
            ty: ValueType::Bool,
            default: Some("false"),
            doc: "zstd only: each frame carries a checksum of its content",
        },
        OptionDecl {
            name: "corpus",
            ty: ValueType::Text,
            default: Some(BUILTIN),
            doc: "builtin (9 MB of prose, records, code and JSON shipped with phasebench; \
                  `phasebench inspect corpus`), or a file or folder (read recursively)",
        },
        OptionDecl {
            name: "block_size",
            ty: ValueType::Size,
            default: Some("64KiB"),
            doc: "each file is split into blocks of this size (its last block may be shorter); \
                  one operation is one block",
        },
        OptionDecl {
            name: "max_corpus",
            ty: ValueType::Size,
            default: Some("1GiB"),
            doc: "a corpus larger than this is refused, since it is held in memory",
        },
    ],
    ops: &[
        OpDecl {
            name: "compress",
            doc: "compress the next block",
            params: &[],
            metrics: &["ratio", "speed", "block_ratio", "compress_time"],
        },
        OpDecl {
            name: "decompress",
            doc: "decompress the next block (compressed before the run) and compare it with the original",
            params: &[CORRUPT],
            metrics: &["ratio", "speed", "block_ratio", "decompress_time"],
        },
        OpDecl {
            name: "roundtrip",
            doc: "compress the next block, decompress it and compare it with the original",
            params: &[CORRUPT],
            metrics: &[
                "ratio",
                "speed",
                "compress_speed",
                "decompress_speed",
                "block_ratio",
                "compress_time",
                "decompress_time",
            ],
        },
    ],
    metrics: &[
        MetricDecl::scalar(
            "ratio",
            Dim::NONE,
            Better::Higher,
            "uncompressed over compressed bytes, over the blocks of the run",
        )
        .derived(Derive::Quotient { numerator: "plain_bytes", denominator: "packed_bytes" }),
        MetricDecl::scalar(
            "speed",
            Dim::BYTE_RATE,
            Better::Higher,
            "uncompressed bytes per second of compressor time (one caller; the figure zstd -b prints)",
        )
        .derived(Derive::PerSecond { amount: "plain_bytes", nanos: "codec_ns" }),
        MetricDecl::scalar(
            "compress_speed",
            Dim::BYTE_RATE,
            Better::Higher,
            "uncompressed bytes per second of compression",
        )
        .derived(Derive::PerSecond { amount: "plain_bytes", nanos: "compress_ns" }),
        MetricDecl::scalar(
            "decompress_speed",
            Dim::BYTE_RATE,
            Better::Higher,
            "uncompressed bytes per second of decompression",
        )
        .derived(Derive::PerSecond { amount: "plain_bytes", nanos: "decompress_ns" }),
        MetricDecl::distribution("block_ratio", Dim::NONE, Better::Higher, "ratio of each block"),
        MetricDecl::time("compress_time", "time to compress one block"),
        MetricDecl::time("decompress_time", "time to decompress one block"),
    ],
};

/// The `codec` engine kind.
pub struct CodecKind;

fn invalid(key: &'static str, message: impl Into<String>, hint: &str) -> Invalid {
    Invalid { key, message: message.into(), hint: Some(hint.into()) }
}

/// The engine's options, read once.
struct Options {
    settings: Settings,
    dictionary: u64,
    train_share: f64,
    corpus: String,
    block_size: u64,
    max_corpus: u64,
}

impl Options {
    fn read(options: &Params) -> Result<Options, EngineError> {
        let algorithm = options.text("algorithm")?;
        let algorithm = Algorithm::from_name(algorithm)
            .ok_or_else(|| EngineError::new(format!("codec has no algorithm `{algorithm}`")))?;
        Ok(Options {
            settings: Settings {
                algorithm,
                level: options.count("level")? as u32,
                dictionary: None,
                checksum: options.flag("checksum")?,
            },
            dictionary: options.bytes("dictionary")?,
            train_share: options.number("train_share")?,
            corpus: options.text("corpus")?.to_owned(),
            block_size: options.bytes("block_size")?,
            max_corpus: options.bytes("max_corpus")?,
        })
    }

    fn check(&self) -> Result<(), Invalid> {
        let algorithm = self.settings.algorithm;
        let name = algorithm.name();
        match algorithm.levels() {
            Some((low, high)) if !(low..=high).contains(&self.settings.level) => {
                return Err(invalid(
                    "level",
                    format!("{name} levels run from {low} to {high}, not {}", self.settings.level),
                    "zstd takes 1–22, brotli 1–11",
                ));
            }
            None if self.settings.level != 3 => {
                return Err(invalid(
                    "level",
                    format!("{name} has a single level; `level: {}` would change nothing", self.settings.level),
                    "remove `level`, or compare zstd or brotli levels instead",
                ));
            }
            _ => {}
        }
        if self.settings.checksum && algorithm != Algorithm::Zstd {
            return Err(invalid("checksum", format!("{name} frames have no checksum option"), "use it with zstd"));
        }
        if !(64..=(64 << 20)).contains(&self.block_size) {
            return Err(invalid("block_size", "blocks must be 64B to 64MiB", "64KiB is zstd -b's usual choice"));
        }
        if self.dictionary > 0 {
            if algorithm != Algorithm::Zstd {
                return Err(invalid("dictionary", format!("{name} takes no dictionary here"), "use it with zstd"));
            }
            if self.dictionary < MIN_DICTIONARY || self.dictionary > (16 << 20) {
                return Err(invalid("dictionary", "a dictionary must be 256B to 16MiB", "zstd's default is 112KiB"));
            }
            if self.train_share == 0.0 {
                return Err(invalid(
                    "train_share",
                    "a dictionary needs blocks to train on, and `train_share` is 0",
                    "set train_share: 20% here and on the baseline you compare with, so both measure the same blocks",
                ));
            }
        }
        if self.corpus != BUILTIN {
            corpus::list(&self.corpus, self.max_corpus)
                .map_err(|message| invalid("corpus", message, "name a readable file or folder, or `builtin`"))?;
        }
        Ok(())
    }
}

impl EngineKind for CodecKind {
    fn decl(&self) -> &'static EngineDecl {
        &DECL
    }

    fn validate(&self, options: &Params) -> Result<(), Invalid> {
        let options =
            Options::read(options).map_err(|error| Invalid { key: "algorithm", message: error.message, hint: None })?;
        options.check()
    }

    fn create(&self, setup: &EngineSetup) -> Result<Arc<dyn Engine>, EngineError> {
        let mut options = Options::read(&setup.options)?;
        let corpus = Corpus::load(&options.corpus, options.max_corpus).map_err(EngineError::new)?;
        let blocks = Blocks::split(corpus, options.block_size as usize, options.train_share, setup.seed);
        if blocks.measured.is_empty() {
            return Err(EngineError::new("the corpus leaves no block to measure after the training share"));
        }
        if options.dictionary > 0 {
            let samples: Vec<&[u8]> = blocks.training.iter().map(|block| blocks.data(block)).collect();
            let dictionary = algorithm::train_dictionary(&samples, options.dictionary as usize)
                .map_err(|message| EngineError::new(format!("{message} ({} training blocks)", samples.len())))?;
            options.settings.dictionary = Some(Arc::new(dictionary));
        }
        Ok(Arc::new(CodecEngine { settings: options.settings, blocks: Arc::new(blocks) }))
    }
}

struct CodecEngine {
    settings: Settings,
    blocks: Arc<Blocks>,
}

/// The three operations.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Compress,
    Decompress,
    Roundtrip,
}

impl Engine for CodecEngine {
    fn operation(&self, op: &str, params: &Params) -> Result<Arc<dyn Operation>, EngineError> {
        let kind = match op {
            "compress" => Kind::Compress,
            "decompress" => Kind::Decompress,
            "roundtrip" => Kind::Roundtrip,
            other => return Err(EngineError::new(format!("codec has no operation `{other}`"))),
        };
        let corrupt = if kind == Kind::Compress { 0.0 } else { params.number("corrupt")? };
        let frames = if kind == Kind::Decompress { Some(Arc::new(self.compress_all()?)) } else { None };
        Ok(Arc::new(CodecOperation {
            kind,
            settings: self.settings.clone(),
            blocks: Arc::clone(&self.blocks),
            frames,
            corrupt,
            cursor: Arc::new(AtomicUsize::new(0)),
        }))
    }
}

impl CodecEngine {
    /// Every measured block compressed, in visiting order (before the run, untimed).
    fn compress_all(&self) -> Result<Vec<Vec<u8>>, EngineError> {
        self.blocks
            .measured
            .par_iter()
            .map_init(
                || Coder::new(&self.settings),
                |coder, block| {
                    let coder = coder.as_mut().map_err(|message| EngineError::new(message.clone()))?;
                    let mut frame = Vec::new();
                    coder.compress(self.blocks.data(block), &mut frame).map_err(EngineError::new)?;
                    Ok(frame)
                },
            )
            .collect()
    }
}

struct CodecOperation {
    kind: Kind,
    settings: Settings,
    blocks: Arc<Blocks>,
    /// The measured blocks compressed, for `decompress`.
    frames: Option<Arc<Vec<Vec<u8>>>>,
    corrupt: f64,
    /// Next block, shared by the workers so that they share one pass over the blocks.
    cursor: Arc<AtomicUsize>,
}

impl Operation for CodecOperation {
    fn worker(&self, _index: usize, seed: u64) -> Result<Box<dyn OpWorker>, EngineError> {
        Ok(Box::new(CodecWorker {
            kind: self.kind,
            coder: Coder::new(&self.settings).map_err(EngineError::new)?,
            blocks: Arc::clone(&self.blocks),
            frames: self.frames.clone(),
            corrupt: self.corrupt,
            cursor: Arc::clone(&self.cursor),
            frame: Vec::new(),
            output: Vec::new(),
            corrupted: false,
            rng: SplitMix::new(seed),
        }))
    }
}

struct CodecWorker {
    kind: Kind,
    coder: Coder,
    blocks: Arc<Blocks>,
    frames: Option<Arc<Vec<Vec<u8>>>>,
    corrupt: f64,
    cursor: Arc<AtomicUsize>,
    frame: Vec<u8>,
    output: Vec<u8>,
    /// Whether this call's frame was damaged on purpose.
    corrupted: bool,
    rng: SplitMix,
}

/// Largest output a workflow's decompress step accepts per input byte.
const PIPE_EXPANSION: usize = 256;

/// Largest output a workflow's decompress step accepts.
const PIPE_LIMIT: usize = 1 << 30;

/// Where two byte strings first differ, for a mismatch message.
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()))
}

impl CodecWorker {
    /// The next block in visiting order.
    fn next_block(&mut self) -> (usize, Block) {
        let index = self.cursor.fetch_add(1, Ordering::Relaxed) % self.blocks.measured.len();
        (index, self.blocks.measured[index])
    }

    /// Flips one byte of the frame when this call is one of the `corrupt` share.
    fn maybe_corrupt(&mut self) {
        self.corrupted = false;
        if self.corrupt == 0.0 || self.frame.is_empty() || self.rng.next_f64() >= self.corrupt {
            return;
        }
        let position = self.rng.below(self.frame.len() as u64) as usize;
        self.frame[position] ^= 1 + self.rng.below(255) as u8;
        self.corrupted = true;
    }

    /// Compresses `input` into `self.frame`, recording its time.
    fn compress(&mut self, recorder: &mut Recorder, input: &[u8]) -> Result<Duration, String> {
        let start = Instant::now();
        self.coder.compress(input, &mut self.frame)?;
        let elapsed = start.elapsed();
        recorder.record_duration("compress_time", elapsed);
        Ok(elapsed)
    }

    /// Decompresses `self.frame` into `self.output` (at most `limit` bytes), recording its time.
    fn decompress(&mut self, recorder: &mut Recorder, limit: usize) -> Result<Duration, String> {
        let start = Instant::now();
        self.coder.decompress(&self.frame, &mut self.output, limit)?;
        let elapsed = start.elapsed();
        recorder.record_duration("decompress_time", elapsed);
        Ok(elapsed)
    }

    /// Compares the output with `original`.
    fn verify(&self, original: &[u8]) -> Result<(), String> {
        if self.output == original {
            return Ok(());
        }
        Err(format!(
            "round trip failed: the decompressed bytes differ from the original at byte {} \
             ({} bytes expected, {} produced)",
            first_difference(&self.output, original),
            original.len(),
            self.output.len()
        ))
    }

    /// One block through the operation: the times of compression and
    /// decompression, or what went wrong.
    fn process(&mut self, recorder: &mut Recorder, index: usize, original: &[u8]) -> Result<Timing, String> {
        let mut timing = Timing::default();
        self.corrupted = false;
        match self.kind {
            Kind::Compress => timing.compress = self.compress(recorder, original)?,
            Kind::Decompress => {
                let frames = self.frames.clone().ok_or("decompress has no frames")?;
                self.frame.clear();
                self.frame.extend_from_slice(&frames[index]);
                self.maybe_corrupt();
                timing.decompress = self.decompress(recorder, original.len())?;
                self.verify(original)?;
            }
            Kind::Roundtrip => {
                timing.compress = self.compress(recorder, original)?;
                self.maybe_corrupt();
                timing.decompress = self.decompress(recorder, original.len())?;
                self.verify(original)?;
            }
        }
        Ok(timing)
    }

    /// Counts one processed block.
    fn tally(&self, recorder: &mut Recorder, plain: usize, timing: &Timing) {
        let packed = self.frame.len();
        recorder.count("plain_bytes", plain as u64);
        recorder.count("packed_bytes", packed as u64);
        let nanos = |duration: Duration| duration.as_nanos().min(u128::from(u64::MAX)) as u64;
        recorder.count("compress_ns", nanos(timing.compress));
        recorder.count("decompress_ns", nanos(timing.decompress));
        recorder.count("codec_ns", nanos(timing.compress + timing.decompress));
        if packed > 0 {
            recorder.record("block_ratio", plain as f64 / packed as f64);
        }
    }
}

/// Where one block's time went.
#[derive(Default)]
struct Timing {
    compress: Duration,
    decompress: Duration,
}

impl OpWorker for CodecWorker {
    fn call(&mut self, recorder: &mut Recorder) -> Result<(), EngineError> {
        let (index, block) = self.next_block();
        let blocks = Arc::clone(&self.blocks);
        let original = blocks.data(&block);
        match self.process(recorder, index, original) {
            Ok(timing) => {
                self.tally(recorder, original.len(), &timing);
                Ok(())
            }
            Err(message) => {
                let cause = if self.corrupted { " (this frame was corrupted on purpose: `corrupt`)" } else { "" };
                Err(EngineError::new(format!("block {}: {message}{cause}", blocks.place(&block))))
            }
        }
    }

    /// As a workflow step: `compress` hands on the frame of the data it
    /// receives, `decompress` the bytes of the frame it receives, and
    /// `roundtrip` the data itself once it has come back intact. The first
    /// step of a workflow receives no data and takes the next corpus block
    /// (for `decompress`, that block's frame).
    fn pipe(&mut self, recorder: &mut Recorder, input: Payload) -> Result<Payload, EngineError> {
        let Payload { key, data } = input;
        let data = if data.is_empty() { self.next_input() } else { data };
        let in_step = |message: String| EngineError::new(format!("workflow data: {message}"));
        match self.kind {
            Kind::Compress => {
                let compress = self.compress(recorder, &data).map_err(in_step)?;
                self.tally(recorder, data.len(), &Timing { compress, ..Timing::default() });
                Ok(Payload { key, data: self.frame.clone() })
            }
            Kind::Decompress => {
                self.frame = data;
                let limit = self.frame.len().saturating_mul(PIPE_EXPANSION).clamp(self.blocks.largest(), PIPE_LIMIT);
                let decompress = self.decompress(recorder, limit).map_err(in_step)?;
                self.tally(recorder, self.output.len(), &Timing { decompress, ..Timing::default() });
                Ok(Payload { key, data: self.output.clone() })
            }
            Kind::Roundtrip => {
                let timing = self.process(recorder, 0, &data).map_err(in_step)?;
                self.tally(recorder, data.len(), &timing);
                Ok(Payload { key, data })
            }
        }
    }
}

impl CodecWorker {
    /// What a first workflow step works on: the next block, or its frame for `decompress`.
    fn next_input(&mut self) -> Vec<u8> {
        let (index, block) = self.next_block();
        match &self.frames {
            Some(frames) if self.kind == Kind::Decompress => frames[index].clone(),
            _ => self.blocks.data(&block).to_vec(),
        }
    }
}
