//! The `llm` engine: a llama-architecture decoder on candle-core (CPU).
//!
//! Presets with seeded random weights (`tiny`, `small`, `base`, `1b`), a
//! Hugging Face Llama checkpoint directory, or a llama-architecture GGUF
//! file (quantized weights run on their blocks). Operations `generate`,
//! `prefill` and `decode` record time to first token, inter-token latency,
//! decode and prefill rates, and where the time went (embedding,
//! projections, attention, MLP, norms, head, sampling). Generation always
//! runs to `max_tokens` (end-of-sequence is ignored, as serving benchmarks
//! do), so every call does the same amount of work.

pub mod attention;
pub mod config;
pub mod cpu;
pub mod cuda;
pub mod gguf;
pub mod model;
pub mod quant;
pub mod sampling;
pub mod weights;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::DType;

use super::catalog::{Better, EngineDecl, MetricDecl, OpDecl, OptionDecl, ValueType};
use super::{
    Engine, EngineError, EngineKind, EngineSetup, Invalid, OpWorker, Operation, Params, Payload, Recorder, Value,
};
use crate::engines::rng::SplitMix;
use crate::metric::names;
use crate::quantity::Dim;
pub use attention::KvType;
pub use config::Config;
pub use model::{AttentionKind, Cache, Model, Profile};
use sampling::Sampler;
use weights::{Storage, WeightSource};

/// Why the model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// A checkpoint file is missing, unreadable or inconsistent.
    #[error("{0}")]
    Checkpoint(String),
    /// A request the model cannot serve (too long, unknown token).
    #[error("{0}")]
    Input(String),
    /// The GPU is missing or failed.
    #[error("{0}")]
    Device(String),
    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl From<LlmError> for EngineError {
    fn from(error: LlmError) -> Self {
        EngineError::new(error.to_string())
    }
}

const PROMPT_TOKENS: OptionDecl = OptionDecl {
    name: "prompt_tokens",
    ty: ValueType::Count { min: 1, max: 1 << 20 },
    default: Some("128"),
    doc: "prompt length in tokens, ids drawn from the seed (ignored when `prompt` is set)",
};

const PROMPT: OptionDecl = OptionDecl {
    name: "prompt",
    ty: ValueType::Text,
    default: Some(""),
    doc: "prompt text: byte-level tokens on presets, the checkpoint's tokenizer.json otherwise",
};

const MAX_TOKENS: OptionDecl = OptionDecl {
    name: "max_tokens",
    ty: ValueType::Count { min: 1, max: 1 << 20 },
    default: Some("32"),
    doc: "tokens to generate per call",
};

/// A metric list followed by the seven time-share metrics every operation records.
macro_rules! with_time_shares {
    ($($name:literal),*) => {
        &[$($name,)* "embedding_time", "projection_time", "attention_time", "mlp_time", "norm_time", "head_time",
          "sampling_time"]
    };
}

const TIME_SHARES: &[&str] = with_time_shares!();

/// A time category of a call, shown as its share of `latency`.
const fn share_metric(name: &'static str, doc: &'static str) -> MetricDecl {
    MetricDecl::time(name, doc).part_of(names::LATENCY)
}

static DECL: EngineDecl = EngineDecl {
    kind: "llm",
    doc: "a llama-architecture decoder on candle-core: presets with seeded weights or a Hugging Face checkpoint",
    options: &[
        OptionDecl {
            name: "model",
            ty: ValueType::Text,
            default: Some("small"),
            doc: "preset (tiny, small, base, 1b), a checkpoint directory (config.json + *.safetensors), or a \
                  llama-architecture .gguf file",
        },
        OptionDecl {
            name: "device",
            ty: ValueType::Choice(&["auto", "cpu", "cuda"]),
            default: Some("auto"),
            doc: "where to run: cpu, cuda (an NVIDIA GPU, CUDA 13), or auto (cuda when usable, else cpu)",
        },
        OptionDecl {
            name: "dtype",
            ty: ValueType::Choice(DTYPES),
            default: Some("f32"),
            doc: "weight storage type of presets and checkpoints (activations are f32): f32, f16, bf16, or \
                  quantized at load to q8_0, q4_0, q4_k or q6_k and multiplied on their blocks (CPU only); a GGUF \
                  file keeps the types it stores",
        },
        OptionDecl {
            name: "attention",
            ty: ValueType::Choice(&["naive", "flash"]),
            default: Some("naive"),
            doc: "naive: full score matrix; flash: key tiles with an online softmax",
        },
        OptionDecl {
            name: "kv_cache",
            ty: ValueType::Bool,
            default: Some("on"),
            doc: "keep keys and values between steps",
        },
        OptionDecl {
            name: "kv_dtype",
            ty: ValueType::Choice(KvType::NAMES),
            default: Some("f32"),
            doc: "storage type of the KV cache: f32, or f16/bf16 (half the bytes; keys and values rounded as \
                  they are stored and widened to f32 as attention reads them; CPU only)",
        },
        OptionDecl {
            name: "threads",
            ty: ValueType::Count { min: 0, max: 1024 },
            default: Some("0"),
            doc: "worker threads for tensor work on the CPU (0: all cores)",
        },
        OptionDecl {
            name: "temperature",
            ty: ValueType::Number { min: 0.0, max: 100.0 },
            default: Some("0"),
            doc: "sampling temperature (0: greedy)",
        },
        OptionDecl {
            name: "top_k",
            ty: ValueType::Count { min: 0, max: 1 << 20 },
            default: Some("0"),
            doc: "sample among the k likeliest tokens (0: all)",
        },
    ],
    ops: &[
        OpDecl {
            name: "generate",
            doc: "prefill the prompt, then decode until max_tokens tokens",
            params: &[PROMPT_TOKENS, PROMPT, MAX_TOKENS],
            metrics: with_time_shares!("ttft", "itl", "tpot", "e2e", "decode_rate", "prefill_rate"),
        },
        OpDecl {
            name: "prefill",
            doc: "run the prompt and sample the first token",
            params: &[PROMPT_TOKENS, PROMPT],
            metrics: with_time_shares!("ttft", "prefill_rate"),
        },
        OpDecl {
            name: "decode",
            doc: "continue a prefilled sequence by max_tokens tokens (the prompt is prefilled once, untimed)",
            params: &[PROMPT_TOKENS, PROMPT, MAX_TOKENS],
            metrics: with_time_shares!("itl", "tpot", "decode_rate"),
        },
    ],
    metrics: &[
        MetricDecl::time("ttft", "time to first token: prompt prefill plus the first sample").from_start(),
        MetricDecl::time("itl", "inter-token latency: every gap between consecutive tokens"),
        MetricDecl::time("tpot", "time per output token after the first, per call"),
        MetricDecl::time("e2e", "end-to-end time of one generation").from_start(),
        MetricDecl::distribution("decode_rate", Dim::TOKEN_RATE, Better::Higher, "tokens per second after the first"),
        MetricDecl::distribution(
            "prefill_rate",
            Dim::TOKEN_RATE,
            Better::Higher,
            "prompt tokens per second of time to first token",
        ),
        share_metric("embedding_time", "time in the token embedding lookup, per call"),
        share_metric("projection_time", "time in the q, k, v and o projections, per call"),
        share_metric("attention_time", "time in rotary embeddings, KV cache and the attention core, per call"),
        share_metric("mlp_time", "time in the SwiGLU MLP, per call"),
        share_metric("norm_time", "time in RMSNorms, per call"),
        share_metric("head_time", "time in the output head, per call"),
        share_metric("sampling_time", "time choosing tokens, per call"),
    ],
};

/// The `llm` engine kind.
pub struct Llm;

/// The values of the `dtype` option.
const DTYPES: &[&str] = &["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k"];

/// A model named by a preset, a checkpoint directory or a GGUF file.
enum ModelSource<'a> {
    Preset(Config),
    Checkpoint(&'a Path),
    Gguf(&'a Path),
}

fn model_source(name: &str) -> Result<ModelSource<'_>, Invalid> {
    if let Some(config) = Config::preset(name) {
        return Ok(ModelSource::Preset(config));
    }
    let path = Path::new(name);
    if path.is_dir() {
        return Ok(ModelSource::Checkpoint(path));
    }
    if path.is_file() {
        return Ok(ModelSource::Gguf(path));
    }
    let looks_like_path = name.contains(['/', '\\', '.']);
    Err(Invalid {
        key: "model",
        message: if looks_like_path {
            format!("model `{name}` does not exist (neither a directory nor a file)")
        } else {
            format!("unknown model preset `{name}`")
        },
        hint: crate::diagnostic::did_you_mean(name, config::PRESETS.iter().copied())
            .or_else(|| {
                Some(format!("use a preset ({}), a checkpoint directory or a .gguf file", config::PRESETS.join(", ")))
            }),
    })
}

/// How text prompts become tokens.
#[derive(Clone)]
pub enum TextTokens {
    /// Presets: a beginning-of-sequence token (1), then one token per byte.
    Bytes,
    /// A checkpoint's `tokenizer.json`, with its special tokens.
    Tokenizer(Arc<tokenizers::Tokenizer>),
    /// A checkpoint without `tokenizer.json`: text prompts cannot be read.
    Missing(std::path::PathBuf),
}

impl TextTokens {
    /// The tokenizer for a model named by a preset or checkpoint directory.
    /// A GGUF file's tokenizer is the `tokenizer.json` beside it.
    pub fn for_model(name: &str) -> Result<TextTokens, LlmError> {
        if Config::preset(name).is_some() {
            return Ok(TextTokens::Bytes);
        }
        let model = Path::new(name);
        let path = if model.is_file() { model.with_file_name("tokenizer.json") } else { model.join("tokenizer.json") };
        if !path.is_file() {
            return Ok(TextTokens::Missing(path));
        }
        let tokenizer = tokenizers::Tokenizer::from_file(&path)
            .map_err(|error| LlmError::Checkpoint(format!("{}: {error}", path.display())))?;
        Ok(TextTokens::Tokenizer(Arc::new(tokenizer)))
    }

    /// The tokens of `text`, checked against the model's vocabulary.
    pub fn encode(&self, text: &str, vocab: usize) -> Result<Vec<u32>, LlmError> {
        let tokens = match self {
            TextTokens::Bytes => byte_tokens(text),
            TextTokens::Tokenizer(tokenizer) => tokenizer
                .encode(text, true)
                .map_err(|error| LlmError::Input(format!("the tokenizer failed on the prompt: {error}")))?
                .get_ids()
                .to_vec(),
            TextTokens::Missing(path) => {
                return Err(LlmError::Input(format!(
                    "text prompts need the checkpoint's tokenizer, and there is no {}",
                    path.display()
                )))
            }
        };
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(LlmError::Input(format!(
                "the tokenizer produced token {bad}, outside the model's vocabulary of {vocab}"
            )));
        }
        Ok(tokens)
    }
}

/// The configuration an instance would load, checked as far as possible
/// without loading weights (a GGUF file's header is read and every tensor
/// checked against the file's length), with the weights' storage checked
/// against it.
fn checked_config(options: &Params) -> Result<(Config, bool), Invalid> {
    let name = text(options, "model");
    let dtype = text(options, "dtype");
    let storage = Storage::parse(dtype).unwrap_or(Storage::Dense(DType::F32));
    let (config, preset) = match model_source(name)? {
        ModelSource::Preset(config) => (config, true),
        ModelSource::Gguf(path) => {
            let (config, _) = WeightSource::gguf(path).map_err(|error| Invalid {
                key: "model",
                message: error.to_string(),
                hint: Some("a GGUF model is a llama-architecture file of F32, F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K tensors".into()),
            })?;
            if !matches!(dtype, "" | "f32") {
                return Err(Invalid {
                    key: "dtype",
                    message: format!("`dtype: {dtype}` applies to presets and checkpoints; a GGUF file keeps the types it stores"),
                    hint: Some("leave `dtype` out, or quantize the file with llama.cpp".into()),
                });
            }
            return Ok((config, false));
        }
        ModelSource::Checkpoint(dir) => {
            let invalid = |error: LlmError| Invalid {
                key: "model",
                message: error.to_string(),
                hint: Some("a checkpoint is config.json plus *.safetensors in f32, f16 or bf16".into()),
            };
            let config = Config::from_checkpoint(dir).map_err(invalid)?;
            for file in weights::safetensors_files(dir).map_err(invalid)? {
                weights::check_safetensors(&file).map_err(invalid)?;
            }
            (config, false)
        }
    };
    if let Some(why) = storage.unfit(&config.row_lengths()) {
        return Err(Invalid { key: "dtype", message: why, hint: Some("use q8_0 or q4_0 (blocks of 32), or f32/bf16".into()) });
    }
    Ok((config, preset))
}

/// Why a model of these options can only run on the CPU, if it can.
fn cpu_only(options: &Params) -> Option<String> {
    let dtype = text(options, "dtype");
    let kv = text(options, "kv_dtype");
    if !matches!(kv, "" | "f32") {
        return Some(format!("`kv_dtype: {kv}` runs on the CPU (the CUDA kernels keep an f32 cache)"));
    }
    if matches!(model_source(text(options, "model")), Ok(ModelSource::Gguf(_))) {
        return Some("GGUF models run on the CPU".into());
    }
    (!matches!(dtype, "" | "f32" | "bf16")).then(|| format!("`dtype: {dtype}` runs on the CPU (the CUDA kernels take f32 and bf16)"))
}

fn text<'a>(params: &'a Params, name: &str) -> &'a str {
    match params.get(name) {
        Some(Value::Text(text)) => text,
        _ => "",
    }
}

fn count(params: &Params, name: &str) -> u64 {
    match params.get(name) {
        Some(Value::Count(n)) => *n,
        _ => 0,
    }
}

impl EngineKind for Llm {
    fn decl(&self) -> &'static EngineDecl {
        &DECL
    }

    fn validate(&self, options: &Params) -> Result<(), Invalid> {
        let (config, _) = checked_config(options)?;
        if text(options, "device") == "cuda" {
            cuda::probe::cuda().map_err(|missing| Invalid {
                key: "device",
                message: format!("device `cuda` cannot run here: {missing}"),
                hint: Some("use `device: cpu`, or `auto` to use a GPU only where there is one".into()),
            })?;
            if let Some(reason) = cuda::unsupported(&config).or_else(|| cpu_only(options)) {
                return Err(Invalid { key: "device", message: reason, hint: Some("use `device: cpu`".into()) });
            }
        }
        Ok(())
    }

    fn validate_op(&self, options: &Params, op: &str, params: &Params) -> Result<(), Invalid> {
        let Ok((config, preset)) = checked_config(options) else {
            // The option itself is reported by `validate`.
            return Ok(());
        };
        let prompt = text(params, "prompt");
        let prompt_len = if prompt.is_empty() {
            count(params, "prompt_tokens")
        } else {
            let invalid = |error: LlmError| Invalid {
                key: "prompt",
                message: error.to_string(),
                hint: Some(if preset {
                    "check the text".into()
                } else {
                    "put the checkpoint's tokenizer.json beside config.json, or give `prompt_tokens` instead".into()
                }),
            };
            let tokens = TextTokens::for_model(text(options, "model")).map_err(invalid)?;
            tokens.encode(prompt, config.vocab).map_err(invalid)?.len() as u64
        };
        let generated = if op == "prefill" { 1 } else { count(params, "max_tokens") };
        // Positions the model runs: the prompt, then every generated token but
        // the last (decode feeds each of its tokens after the prefill's first).
        let positions = match op {
            "prefill" => prompt_len,
            "decode" => prompt_len + generated,
            _ => prompt_len + generated - 1,
        };
        if positions > config.context as u64 {
            return Err(Invalid {
                key: if prompt.is_empty() { "prompt_tokens" } else { "prompt" },
                message: format!(
                    "a {prompt_len}-token prompt and {generated} generated tokens need {positions} positions, more than \
                     the model's context of {}",
                    config.context
                ),
                hint: Some(format!("keep the prompt and max_tokens within {} positions", config.context)),
            });
        }
        Ok(())
    }

    fn create(&self, setup: &EngineSetup) -> Result<Arc<dyn Engine>, EngineError> {
        let options = &setup.options;
        let storage = Storage::parse(text(options, "dtype")).unwrap_or(Storage::Dense(DType::F32));
        let attention = if text(options, "attention") == "flash" { AttentionKind::Flash } else { AttentionKind::Naive };
        let name = text(options, "model");
        let (config, source) = load_source(name, setup.seed)?;
        let device = match cpu_only(options) {
            Some(reason) if text(options, "device") == "auto" => {
                static NOTICE: std::sync::Once = std::sync::Once::new();
                NOTICE.call_once(|| eprintln!("notice: llm runs on the CPU (device: auto): {reason}"));
                Device::Cpu
            }
            _ => choose_device(text(options, "device"), &config)?,
        };
        let runner = match (device, storage) {
            (Device::Cuda, Storage::Dense(dtype)) => {
                Runner::Cuda(Arc::new(cuda::CudaModel::load(config, &source, dtype, attention)?))
            }
            (Device::Cuda, Storage::Quant(kind)) => {
                return Err(LlmError::Device(format!("{} weights run on the CPU", kind.name())).into())
            }
            (Device::Cpu, storage) => {
                let pool = thread_pool(count(options, "threads") as usize)?;
                let kv = KvType::parse(text(options, "kv_dtype")).unwrap_or_default();
                let model = pool.install(|| Model::load_as(config, &source, storage, attention))?.with_kv(kv);
                Runner::Cpu { model: Arc::new(model), pool: Arc::new(pool) }
            }
        };
        let temperature = match options.get("temperature") {
            Some(Value::Number(t)) => *t,
            _ => 0.0,
        };
        Ok(Arc::new(LlmEngine {
            runner,
            kv_cache: !matches!(options.get("kv_cache"), Some(Value::Bool(false))),
            temperature,
            top_k: count(options, "top_k") as usize,
            text_tokens: TextTokens::for_model(name)?,
        }))
    }
}

/// The thread pool of a CPU model: `threads` workers (0: all cores).
///
/// Always an own pool, even for "all cores": the calling worker thread then
/// takes part in the tensor work instead of waiting for the global pool's
/// threads to wake up (about 30% of a small decode step).
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool, LlmError> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|index| format!("pb-llm-{index}"))
        .build()
        .map_err(|error| LlmError::Device(format!("cannot start {threads} threads: {error}")))
}

/// A CPU model named by a preset (seeded random weights) or a checkpoint
/// directory, with how its text becomes tokens.
pub fn load_cpu_model(
    name: &str,
    seed: u64,
    dtype: DType,
    attention: AttentionKind,
) -> Result<(Model, TextTokens), LlmError> {
    let (config, source) = load_source(name, seed)?;
    Ok((Model::load(config, &source, dtype, attention)?, TextTokens::for_model(name)?))
}

/// A CPU model named by a preset, checkpoint directory or GGUF file, its
/// matrices stored as `storage` (a GGUF file's as the file has them).
pub fn load_cpu_model_as(
    name: &str,
    seed: u64,
    storage: Storage,
    attention: AttentionKind,
) -> Result<Model, LlmError> {
    let (config, source) = load_source(name, seed)?;
    Model::load_as(config, &source, storage, attention)
}

/// The configuration and weights a model name stands for.
fn load_source(name: &str, seed: u64) -> Result<(Config, WeightSource), LlmError> {
    Ok(match model_source(name).map_err(|invalid| LlmError::Input(invalid.message))? {
        ModelSource::Preset(config) => (config, WeightSource::Random { seed }),
        ModelSource::Checkpoint(dir) => (Config::from_checkpoint(dir)?, WeightSource::checkpoint(dir)?),
        ModelSource::Gguf(path) => WeightSource::gguf(path)?,
    })
}

/// Where a model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// candle-core on the CPU.
    Cpu,
    /// An NVIDIA GPU.
    Cuda,
}

/// The device for the `device` option: `auto` takes the GPU when CUDA is
/// usable and the model fits the kernels, and says so when it falls back.
pub fn choose_device(option: &str, config: &Config) -> Result<Device, LlmError> {
    match option {
        "cuda" => {
            cuda::probe::cuda().map_err(LlmError::Device)?;
            Ok(Device::Cuda)
        }
        "auto" => match cuda::probe::cuda().map(|_| cuda::unsupported(config)) {
            Ok(None) => Ok(Device::Cuda),
            Ok(Some(reason)) | Err(reason) => {
                // Once: every experiment arm creates its own instance.
                static NOTICE: std::sync::Once = std::sync::Once::new();
                NOTICE.call_once(|| eprintln!("notice: llm runs on the CPU (device: auto): {reason}"));
                Ok(Device::Cpu)
            }
        },
        _ => Ok(Device::Cpu),
    }
}

/// A loaded model and what runs it.
#[derive(Clone)]
enum Runner {
    Cpu { model: Arc<Model>, pool: Arc<rayon::ThreadPool> },
    Cuda(Arc<cuda::CudaModel>),
}

impl Runner {
    fn config(&self) -> &Config {
        match self {
            Runner::Cpu { model, .. } => model.config(),
            Runner::Cuda(model) => model.config(),
        }
    }
}

struct LlmEngine {
    runner: Runner,
    kv_cache: bool,
    temperature: f64,
    top_k: usize,
    text_tokens: TextTokens,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Generate,
    Prefill,
    Decode,
}

impl Engine for LlmEngine {
    fn operation(&self, op: &str, params: &Params) -> Result<Arc<dyn Operation>, EngineError> {
        let mode = match op {
            "generate" => Mode::Generate,
            "prefill" => Mode::Prefill,
            "decode" => Mode::Decode,
            other => return Err(EngineError::new(format!("llm has no operation `{other}`"))),
        };
        let prompt_text = text(params, "prompt");
        // A text prompt is the same tokens for every worker: encode it once.
        let prompt = if prompt_text.is_empty() {
            Prompt::Drawn(count(params, "prompt_tokens") as usize)
        } else {
            Prompt::Tokens(self.text_tokens.encode(prompt_text, self.runner.config().vocab)?)
        };
        Ok(Arc::new(LlmOperation {
            runner: self.runner.clone(),
            kv_cache: self.kv_cache,
            temperature: self.temperature,
            top_k: self.top_k,
            mode,
            prompt,
            max_tokens: (count(params, "max_tokens") as usize).max(1),
        }))
    }
}

struct LlmOperation {
    runner: Runner,
    kv_cache: bool,
    temperature: f64,
    top_k: usize,
    mode: Mode,
    prompt: Prompt,
    max_tokens: usize,
}

/// A prompt: a length whose ids each worker draws from its seed, or fixed tokens.
enum Prompt {
    Drawn(usize),
    Tokens(Vec<u32>),
}

/// Byte-level tokens of a text prompt, after a beginning-of-sequence token (id 1).
pub fn byte_tokens(text: &str) -> Vec<u32> {
    std::iter::once(1).chain(text.bytes().map(u32::from)).collect()
}

impl Operation for LlmOperation {
    fn worker(&self, _index: usize, seed: u64) -> Result<Box<dyn OpWorker>, EngineError> {
        let prompt = match &self.prompt {
            Prompt::Drawn(length) => {
                // Ids from 3 upward avoid the special tokens most vocabularies start with.
                let vocab = self.runner.config().vocab.max(4) as u64;
                let mut rng = SplitMix::new(seed);
                (0..*length).map(|_| 3 + rng.below(vocab - 3) as u32).collect()
            }
            Prompt::Tokens(tokens) => tokens.clone(),
        };
        let state = match &self.runner {
            Runner::Cpu { model, pool } => {
                State::Cpu { model: Arc::clone(model), pool: Arc::clone(pool), cache: Cache::default() }
            }
            Runner::Cuda(model) => State::Cuda(Box::new(cuda::CudaState::new(Arc::clone(model))?)),
        };
        let mut worker = LlmWorker {
            state,
            kv_cache: self.kv_cache,
            mode: self.mode,
            prompt,
            max_tokens: self.max_tokens,
            sampler: Sampler::new(self.temperature, self.top_k, seed ^ 0x5eed),
            sequence: Vec::new(),
        };
        if self.mode == Mode::Decode {
            worker.install(|w| w.prefill_untimed())?;
        }
        Ok(Box::new(worker))
    }
}

/// A worker's model state: the CPU cache and thread pool, or a GPU stream and its cache.
enum State {
    Cpu { model: Arc<Model>, pool: Arc<rayon::ThreadPool>, cache: Cache },
    Cuda(Box<cuda::CudaState>),
}

struct LlmWorker {
    state: State,
    kv_cache: bool,
    mode: Mode,
    prompt: Vec<u32>,
    max_tokens: usize,
    sampler: Sampler,
    /// The sequence so far (decode mode continues it on every call).
    sequence: Vec<u32>,
}

impl LlmWorker {
    /// Runs `work` on the engine's thread pool (CPU) or directly (GPU).
    fn install<T: Send>(&mut self, work: impl FnOnce(&mut Self) -> T + Send) -> T {
        match &self.state {
            State::Cpu { pool, .. } => Arc::clone(pool).install(|| work(self)),
            State::Cuda(_) => work(self),
        }
    }

    fn context(&self) -> usize {
        match &self.state {
            State::Cpu { model, .. } => model.config().context,
            State::Cuda(state) => state.config().context,
        }
    }

    fn clear(&mut self) {
        match &mut self.state {
            State::Cpu { cache, .. } => cache.clear(),
            State::Cuda(state) => state.clear(),
        }
    }

    /// Runs `tokens` after the cached positions and chooses the next token.
    fn next_token(&mut self, tokens: &[u32], profile: &mut Profile) -> Result<u32, EngineError> {
        match &mut self.state {
            State::Cpu { model, cache, .. } => {
                let logits = model.forward(tokens, cache, profile, false)?;
                let sampler = &mut self.sampler;
                Ok(profile.time(model::Category::Sampling, || Ok(sampler.sample(&logits.to_vec1::<f32>()?)))?)
            }
            State::Cuda(state) => Ok(state.next_token(tokens, profile, &mut self.sampler)?),
        }
    }

    fn prefill_untimed(&mut self) -> Result<(), EngineError> {
        self.clear();
        let prompt = self.prompt.clone();
        let first = self.next_token(&prompt, &mut Profile::default())?;
        self.sequence = prompt;
        self.sequence.push(first);
        Ok(())
    }

    /// One decoding step after `sequence`: with the cache, only the last
    /// token runs; without it, the whole sequence runs again.
    fn step(&mut self, profile: &mut Profile) -> Result<u32, EngineError> {
        let token = if self.kv_cache {
            let last = *self.sequence.last().ok_or_else(|| EngineError::new("empty sequence"))?;
            self.next_token(&[last], profile)?
        } else {
            self.clear();
            let sequence = std::mem::take(&mut self.sequence);
            let token = self.next_token(&sequence, profile);
            self.sequence = sequence;
            token?
        };
        self.sequence.push(token);
        Ok(token)
    }

    fn run(&mut self, recorder: &mut Recorder) -> Result<(), EngineError> {
        let mut profile = Profile::default();
        let start = Instant::now();
        let mut decode_from = start;
        let mut steps = self.max_tokens;
        if self.mode == Mode::Decode {
            // The model has run every token of `sequence` but the last.
            if self.sequence.len() - 1 + self.max_tokens > self.context() {
                // The sequence reached the context: start it again (counted in this call).
                self.prefill_untimed()?;
                recorder.count("resets", 1);
            }
        } else {
            self.clear();
            let prompt = std::mem::take(&mut self.prompt);
            let first = self.next_token(&prompt, &mut profile);
            self.prompt = prompt;
            self.sequence = self.prompt.clone();
            self.sequence.push(first?);
            let ttft = start.elapsed();
            recorder.record_duration("ttft", ttft);
            recorder.record("prefill_rate", self.prompt.len() as f64 / ttft.as_secs_f64().max(1e-12));
            recorder.count("prompt_tokens", self.prompt.len() as u64);
            recorder.count("generated_tokens", 1);
            decode_from = Instant::now();
            steps = if self.mode == Mode::Prefill { 0 } else { self.max_tokens - 1 };
        }
        let mut previous = decode_from;
        for _ in 0..steps {
            self.step(&mut profile)?;
            let now = Instant::now();
            recorder.record_duration("itl", now - previous);
            previous = now;
        }
        let end = Instant::now();
        if self.mode == Mode::Generate {
            recorder.record_duration("e2e", end - start);
        }
        if steps > 0 {
            let decoding: Duration = end - decode_from;
            recorder.record_duration("tpot", decoding / steps as u32);
            recorder.record("decode_rate", steps as f64 / decoding.as_secs_f64().max(1e-12));
            recorder.count("generated_tokens", steps as u64);
        }
        for (name, time) in profile.named() {
            recorder.record_duration(name, time);
        }
        Ok(())
    }
}

impl OpWorker for LlmWorker {
    fn call(&mut self, recorder: &mut Recorder) -> Result<(), EngineError> {
        self.install(|worker| worker.run(recorder))
    }

    /// As a workflow step, `generate` passes on the tokens it generated
    /// (little-endian u32 ids) under the incoming key; the other operations
    /// pass the payload on.
    fn pipe(&mut self, recorder: &mut Recorder, input: Payload) -> Result<Payload, EngineError> {
        self.call(recorder)?;
        if self.mode != Mode::Generate {
            return Ok(input);
        }
        let generated = &self.sequence[self.prompt.len().min(self.sequence.len())..];
        Ok(Payload { key: input.key, data: generated.iter().flat_map(|t| t.to_le_bytes()).collect() })
    }
}

/// The final position's logits for `tokens`, for checking against other
/// implementations (on the CPU or, with `device: cuda`, the GPU).
pub fn inspect_logits(
    model: &str,
    tokens: &[u32],
    storage: Storage,
    seed: u64,
    device: Device,
) -> Result<Vec<f32>, LlmError> {
    let (config, source) = load_source(model, seed)?;
    match (device, storage) {
        (Device::Cpu, storage) => {
            let model = Model::load_as(config, &source, storage, AttentionKind::Naive)?;
            let logits = model.forward(tokens, &mut Cache::default(), &mut Profile::default(), false)?;
            Ok(logits.to_vec1::<f32>()?)
        }
        (Device::Cuda, Storage::Quant(kind)) => Err(LlmError::Device(format!("{} weights run on the CPU", kind.name()))),
        (Device::Cuda, Storage::Dense(dtype)) => {
            let model = Arc::new(cuda::CudaModel::load(config, &source, dtype, AttentionKind::Naive)?);
            cuda::CudaState::new(model)?.logits(tokens)
        }
    }
}

/// The tokens of `text` for a model named by a preset or checkpoint directory.
pub fn text_tokens(model: &str, text: &str) -> Result<Vec<u32>, LlmError> {
    let config = match model_source(model).map_err(|invalid| LlmError::Input(invalid.message))? {
        ModelSource::Preset(config) => config,
        ModelSource::Checkpoint(dir) => Config::from_checkpoint(dir)?,
        ModelSource::Gguf(path) => WeightSource::gguf(path)?.0,
    };
    TextTokens::for_model(model)?.encode(text, config.vocab)
}

/// Names of the time-share metrics, in the order reports list them.
pub fn time_share_metrics() -> &'static [&'static str] {
    TIME_SHARES
}
