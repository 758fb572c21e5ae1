//! `phasebench serve`: an OpenAI-compatible HTTP server over the `llm`
//! engine's CPU model, with continuous batching.
//!
//! - `api.rs` — the wire format: requests checked once, the error shape,
//!   response bodies.
//! - `http.rs` — axum routes, request counting, one body or server-sent events.
//! - `scheduler.rs` — the thread that owns the model and batches every request.
//! - `metrics.rs` — the Prometheus figures; `text.rs` — the chat template and
//!   the streaming detokenizer.
//!
//! **Scheduling policy.** Requests are served first come, first served.
//! The scheduler loops over decoding steps; before each step it admits
//! waiting requests in arrival order while fewer than `max_batch`
//! sequences run, and prefills each newcomer whole, one prompt at a time,
//! sending its first token right away. Then one batched decoding step runs
//! every running sequence at once (the weights are read once for all of
//! them) and each sequence's token is sampled with its own sampler and
//! sent. Sequences leave after any step (`max_tokens` reached, a stop
//! token, or the client gone) and newcomers join before the next, so the
//! batch changes at every step. Prefill is not chunked: a long prompt
//! delays the running sequences' next token by its prefill time.
//!
//! **Architecture invariant:** the server knows the model only through
//! `engines::llm` (load, `forward`, `decode_batch`, the samplers); it knows
//! nothing of scenarios, plans or results.

pub mod api;
pub mod http;
pub mod metrics;
pub mod scheduler;
pub mod text;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use candle_core::DType;

use crate::engines::llm::{self, AttentionKind, LlmError, Model, TextTokens};
pub use metrics::Metrics;
pub use scheduler::Scheduler;

/// What the HTTP side knows of the served model.
pub struct ServedModel {
    /// The name requests must give: the preset's, or the checkpoint directory's.
    pub name: String,
    /// Longest sequence (prompt plus generated tokens).
    pub context: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// How text becomes tokens and back.
    pub text: TextTokens,
    /// Tokens that end a generation unless `ignore_eos` (none for presets,
    /// whose random weights would stop at random).
    pub stop_tokens: Vec<u32>,
    /// When the model was loaded (Unix seconds), for `/v1/models`.
    pub created: u64,
}

/// A loaded model: its description and the model itself.
pub struct Loaded {
    /// What requests are checked against.
    pub served: ServedModel,
    /// The CPU model.
    pub model: Model,
}

/// Loads a preset (seeded random weights) or a checkpoint directory onto the CPU.
pub fn load(name: &str, seed: u64) -> Result<Loaded, LlmError> {
    let (model, text) = llm::load_cpu_model(name, seed, DType::F32, AttentionKind::Naive)?;
    let preset = llm::Config::preset(name).is_some();
    let stop_tokens = if preset { Vec::new() } else { eos_tokens(Path::new(name))? };
    let served_name = if preset {
        name.to_owned()
    } else {
        let path = Path::new(name);
        path.canonicalize()
            .ok()
            .and_then(|full| full.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| name.to_owned())
    };
    let config = model.config();
    let served = ServedModel {
        name: served_name,
        context: config.context,
        vocab: config.vocab,
        text,
        stop_tokens,
        created: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    Ok(Loaded { served, model })
}

/// A checkpoint's end-of-sequence tokens: `eos_token_id` of `config.json`
/// (a number or a list), else of `generation_config.json`; none if neither says.
fn eos_tokens(dir: &Path) -> Result<Vec<u32>, LlmError> {
    for file in ["config.json", "generation_config.json"] {
        let path = dir.join(file);
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|error| LlmError::Checkpoint(format!("{}: {error}", path.display())))?;
        let ids = match &json["eos_token_id"] {
            serde_json::Value::Number(n) => n.as_u64().into_iter().collect(),
            serde_json::Value::Array(items) => items.iter().filter_map(serde_json::Value::as_u64).collect(),
            _ => Vec::new(),
        };
        if !ids.is_empty() {
            return Ok(ids.into_iter().filter_map(|id| u32::try_from(id).ok()).collect());
        }
    }
    Ok(Vec::new())
}

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Sequences decoded together at most.
    pub max_batch: usize,
    /// Seeds requests that name no seed.
    pub seed: u64,
    /// How long streams in flight may go on after a shutdown signal before they are cancelled.
    pub grace: Duration,
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener or a thread failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Serves `loaded` on `listener` until `shutdown` resolves; then stops
/// accepting, lets the streams in flight finish for up to `options.grace`,
/// cancels the rest and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    loaded: Loaded,
    pool: rayon::ThreadPool,
    options: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::default());
    let scheduler = Scheduler::start(Arc::new(loaded.model), Arc::new(pool), options.max_batch, Arc::clone(&metrics))?;
    let state = Arc::new(http::AppState {
        served: loaded.served,
        submitter: scheduler.submitter(),
        metrics,
        seed: options.seed,
        requests: AtomicU64::new(0),
    });
    let (stop_accepting, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, http::router(state)).with_graceful_shutdown(async move {
        let _ = stopped.await;
    });
    let mut server = tokio::spawn(async move { server.await });
    tokio::select! {
        finished = &mut server => return finished.map_err(std::io::Error::other)?.map_err(ServeError::from),
        () = shutdown => {}
    }
    let _ = stop_accepting.send(());
    if tokio::time::timeout(options.grace, &mut server).await.is_err() {
        // Streams still running: cancel them, so each ends with an error event.
        scheduler.stop();
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut server).await;
    }
    Ok(())
}
