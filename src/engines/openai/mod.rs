//! The `openai` engine: a streaming client for any OpenAI-compatible LLM
//! server (vLLM, SGLang, llama.cpp's server, TGI, `phasebench serve`, the
//! OpenAI API itself).
//!
//! Operation `generate` sends one streamed request to `/v1/completions` or
//! `/v1/chat/completions` and records what a serving benchmark does: time to
//! the first chunk carrying text (`ttft`), every gap between text chunks
//! (`itl`), time per output token after the first (`tpot`), the whole
//! request (`e2e`), and the prompt and output token counts, the server's
//! own (`usage`) when it reports them, else counted by the client. The
//! harness's `latency` is the same request timed from outside.
//!
//! Each worker owns a current-thread tokio runtime and an HTTP client with
//! its own keep-alive connection, so a worker's requests never wait for
//! another worker's, and each chunk's instant is taken as it is read.
//! Setup (the model list, the prompt calibration) is untimed and happens
//! once per instance and per operation, before measuring.

pub mod dataset;
pub mod prompts;
pub mod request;
pub mod stream;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json};

use super::catalog::{Better, EngineDecl, MetricDecl, OpDecl, OptionDecl, ValueType};
use super::{Engine, EngineError, EngineKind, EngineSetup, Invalid, OpWorker, Operation, Params, Recorder, Value};
use crate::engines::rng::SplitMix;
use crate::quantity::Dim;
use dataset::Dataset;
use prompts::Calibration;
use request::{Api, Connection, Endpoint, Failure};
use stream::Timeline;

static DECL: EngineDecl = EngineDecl {
    kind: "openai",
    doc: "a streaming client for an OpenAI-compatible LLM server (vLLM, SGLang, llama.cpp, TGI, …)",
    options: &[
        OptionDecl {
            name: "url",
            ty: ValueType::Text,
            default: None,
            doc: "the server's base URL, with or without a trailing /v1 (added when missing), \
                  e.g. http://127.0.0.1:8000/v1",
        },
        OptionDecl {
            name: "model",
            ty: ValueType::Text,
            default: Some(""),
            doc: "model name sent with every request (empty: the first the server lists at /v1/models)",
        },
        OptionDecl {
            name: "api",
            ty: ValueType::Choice(&["completions", "chat"]),
            default: Some("completions"),
            doc: "completions: /v1/completions with `prompt`; chat: /v1/chat/completions with one user message",
        },
        OptionDecl {
            name: "api_key_env",
            ty: ValueType::Text,
            default: Some(""),
            doc: "name of the environment variable holding the API key, sent as a bearer token (empty: no key); \
                  the key itself is never written anywhere",
        },
        OptionDecl {
            name: "connect_timeout",
            ty: ValueType::Duration,
            default: Some("5s"),
            doc: "longest wait for a connection",
        },
        OptionDecl {
            name: "timeout",
            ty: ValueType::Duration,
            default: Some("60s"),
            doc: "longest whole request, from sending it to the end of the stream",
        },
        OptionDecl {
            name: "extra",
            ty: ValueType::Text,
            default: Some(""),
            doc: "extra request fields as a JSON object, e.g. '{\"top_p\": 0.9, \"temperature\": 0}'",
        },
    ],
    ops: &[OpDecl {
        name: "generate",
        doc: "one streamed completion; the prompt is `dataset`, else `prompt`, else `prompt_tokens` of synthetic text",
        params: &[
            OptionDecl {
                name: "prompt_tokens",
                ty: ValueType::Count { min: 1, max: 1 << 20 },
                default: Some("128"),
                doc: "synthetic prompt length in the server's tokens, calibrated before measuring \
                      (ignored when `prompt` or `dataset` is set)",
            },
            OptionDecl {
                name: "prompt",
                ty: ValueType::Text,
                default: Some(""),
                doc: "prompt text, the same for every request",
            },
            OptionDecl {
                name: "dataset",
                ty: ValueType::Text,
                default: Some(""),
                doc: "a ShareGPT-style JSON or JSONL file; each request takes the first human turn of a \
                      conversation drawn from the seed (docs/openai.md)",
            },
            OptionDecl {
                name: "max_tokens",
                ty: ValueType::Count { min: 1, max: 1 << 20 },
                default: Some("128"),
                doc: "most tokens to generate per request",
            },
            OptionDecl {
                name: "ignore_eos",
                ty: ValueType::Bool,
                default: Some("false"),
                doc: "ask the server to generate all max_tokens (vLLM, llama.cpp and SGLang understand it; \
                      sent only when true)",
            },
        ],
        metrics: &["ttft", "itl", "tpot", "e2e", "input_tokens", "output_tokens"],
    }],
    metrics: &[
        MetricDecl::time("ttft", "time to first token: from sending the request to the first chunk carrying text").from_start(),
        MetricDecl::time("itl", "inter-token latency: every gap between consecutive chunks carrying text"),
        MetricDecl::time("tpot", "time per output token after the first: (e2e - ttft) / (output_tokens - 1)"),
        MetricDecl::time("e2e", "end-to-end time of one request, to [DONE]").from_start(),
        MetricDecl::distribution(
            "input_tokens",
            Dim::TOKENS,
            Better::Lower,
            "prompt tokens per request, as the server counted them (else words, counted by the client)",
        ),
        MetricDecl::distribution(
            "output_tokens",
            Dim::TOKENS,
            Better::Higher,
            "generated tokens per request, as the server counted them (else one per text chunk)",
        ),
    ],
};

/// Counters every request adds to.
mod counters {
    /// Prompt tokens, summed over requests.
    pub const INPUT_TOKENS: &str = "input_tokens";
    /// Generated tokens, summed over requests.
    pub const OUTPUT_TOKENS: &str = "output_tokens";
    /// Requests whose token counts the server reported.
    pub const USAGE_REPORTED: &str = "usage_reported";
    /// Requests whose token counts the client counted (no usage in the stream).
    pub const USAGE_COUNTED: &str = "usage_counted";
}

/// The `openai` engine kind.
pub struct OpenAi;

fn text<'a>(params: &'a Params, name: &str) -> &'a str {
    match params.get(name) {
        Some(Value::Text(text)) => text,
        _ => "",
    }
}

fn duration(params: &Params, name: &str, default: Duration) -> Duration {
    match params.get(name) {
        Some(Value::Duration(duration)) => *duration,
        _ => default,
    }
}

fn count(params: &Params, name: &str) -> u64 {
    match params.get(name) {
        Some(Value::Count(n)) => *n,
        _ => 0,
    }
}

const DATASET_HINT: &str = "a JSON array or JSON Lines file of {\"conversations\": [{\"from\": \"human\", \"value\": \
                            …}]} or {\"messages\": [{\"role\": \"user\", \"content\": …}]} (docs/openai.md)";

impl EngineKind for OpenAi {
    fn decl(&self) -> &'static EngineDecl {
        &DECL
    }

    fn validate(&self, options: &Params) -> Result<(), Invalid> {
        Endpoint::parse(text(options, "url")).map_err(|message| Invalid {
            key: "url",
            message,
            hint: Some("the server's base URL, such as http://127.0.0.1:8000/v1".into()),
        })?;
        request::parse_extra(text(options, "extra")).map_err(|message| Invalid {
            key: "extra",
            message,
            hint: Some("write a JSON object in single quotes: extra: '{\"top_p\": 0.9}'".into()),
        })?;
        let variable = text(options, "api_key_env");
        if !variable.is_empty() && std::env::var_os(variable).is_none() {
            return Err(Invalid {
                key: "api_key_env",
                message: format!("environment variable `{variable}` is not set"),
                hint: Some(format!(
                    "export {variable} with the API key before running, or leave `api_key_env` empty for a server \
                     without a key"
                )),
            });
        }
        Ok(())
    }

    fn validate_op(&self, _options: &Params, _op: &str, params: &Params) -> Result<(), Invalid> {
        let path = text(params, "dataset");
        if path.is_empty() {
            return Ok(());
        }
        if !text(params, "prompt").is_empty() {
            return Err(Invalid {
                key: "dataset",
                message: "both `prompt` and `dataset` are set".into(),
                hint: Some("give one prompt source: `dataset`, `prompt` or `prompt_tokens`".into()),
            });
        }
        Dataset::load(Path::new(path)).map_err(|error| Invalid {
            key: "dataset",
            message: error.message,
            hint: Some(DATASET_HINT.into()),
        })?;
        Ok(())
    }

    fn create(&self, setup: &EngineSetup) -> Result<Arc<dyn Engine>, EngineError> {
        let options = &setup.options;
        let endpoint = Endpoint::parse(text(options, "url")).map_err(EngineError::new)?;
        let variable = text(options, "api_key_env");
        let secret = if variable.is_empty() {
            None
        } else {
            Some(std::env::var(variable).map_err(|_| {
                EngineError::new(format!("environment variable `{variable}` is not set or not UTF-8"))
            })?)
        };
        let connection = Connection {
            endpoint,
            headers: Connection::headers(secret.as_deref()).map_err(EngineError::new)?,
            connect_timeout: duration(options, "connect_timeout", Duration::from_secs(5)),
            timeout: duration(options, "timeout", Duration::from_secs(60)),
            secret,
        };
        let extra = request::parse_extra(text(options, "extra")).map_err(EngineError::new)?;
        let api = if text(options, "api") == "chat" { Api::Chat } else { Api::Completions };
        let model = match text(options, "model") {
            "" => first_model(&connection)?,
            name => name.to_owned(),
        };
        Ok(Arc::new(OpenAiEngine { connection, model, api, extra }))
    }
}

/// Runs setup work to completion on a runtime of its own, on a thread of its
/// own, so that it works whether or not the caller is inside a runtime.
fn untimed<T: Send>(work: impl Future<Output = T> + Send) -> Result<T, EngineError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| EngineError::new(format!("cannot start an I/O runtime: {error}")))?;
                Ok(runtime.block_on(work))
            })
            .join()
            .unwrap_or_else(|_| Err(EngineError::new("the setup request panicked")))
    })
}

/// The first model the server lists at `/v1/models`.
fn first_model(connection: &Connection) -> Result<String, EngineError> {
    let url = connection.endpoint.url("models");
    let client = connection.client().map_err(EngineError::new)?;
    let listed = untimed(async move { connection.json(&client, "models", None).await })?
        .map_err(|failure| EngineError::new(connection.scrub(format!("listing models at {url}: {failure}"))))?;
    listed
        .get("data")
        .and_then(Json::as_array)
        .and_then(|models| models.iter().find_map(|model| model.get("id")?.as_str()))
        .map(str::to_owned)
        .ok_or_else(|| EngineError::new(format!("the server lists no models at {url}; set the `model` option")))
}

/// A configured client of one server.
struct OpenAiEngine {
    connection: Connection,
    model: String,
    api: Api,
    extra: Map<String, Json>,
}

impl OpenAiEngine {
    /// The fields every request of an operation shares: model, limits, extras.
    fn body(&self, max_tokens: u64, stream: bool) -> Map<String, Json> {
        let mut body = self.extra.clone();
        body.insert("model".into(), Json::String(self.model.clone()));
        body.insert("max_tokens".into(), max_tokens.into());
        body.insert("stream".into(), stream.into());
        if stream {
            body.insert("stream_options".into(), serde_json::json!({ "include_usage": true }));
        }
        body
    }

    /// Learns how the server counts synthetic text: two untimed requests of
    /// `words / 2` and `words` words, one token generated each. `None` when
    /// the server reports no usage.
    fn calibrate(&self, words: usize, seed: u64) -> Result<Option<Calibration>, EngineError> {
        let (short, long) = ((words / 2).max(1), words.max(2));
        let mut rng = SplitMix::new(seed ^ 0xca11_b8a7e);
        let mut bodies = Vec::new();
        for length in [short, long] {
            let mut text = String::new();
            prompts::synthetic(&mut text, length, &mut rng);
            let mut body = self.body(1, false);
            self.api.put_prompt(&mut body, &text);
            bodies.push(Json::Object(body));
        }
        let connection = &self.connection;
        let route = self.api.route();
        let client = connection.client().map_err(EngineError::new)?;
        let counts = untimed(async move {
            let mut counts = Vec::new();
            for body in &bodies {
                let response = connection.json(&client, route, Some(body)).await?;
                counts.push(response.pointer("/usage/prompt_tokens").and_then(Json::as_u64));
            }
            Ok::<_, Failure>(counts)
        })?
        .map_err(|failure| EngineError::new(connection.scrub(format!("calibrating prompt length: {failure}"))))?;
        let (Some(short_count), Some(long_count)) = (counts[0], counts[1]) else {
            static NOTICE: std::sync::Once = std::sync::Once::new();
            NOTICE.call_once(|| {
                eprintln!(
                    "notice: openai: the server reports no usage; prompts are one word per token and token counts \
                     are the client's (counter usage_counted)"
                )
            });
            return Ok(None);
        };
        Calibration::from_counts(short, short_count, long, long_count).map(Some).ok_or_else(|| {
            EngineError::new(format!(
                "calibrating prompt length: the server counted {short} words as {short_count} tokens and {long} \
                 words as {long_count}; cannot size synthetic prompts"
            ))
        })
    }
}

/// Where each request's prompt comes from.
enum PromptSource {
    /// The same text every time.
    Text(Arc<str>),
    /// A conversation drawn per request.
    Dataset(Arc<[String]>),
    /// Synthetic text of `words` words, meant to be `tokens` tokens;
    /// `calibrated` when the server's count of it is known and checked.
    Synthetic { tokens: u64, words: usize, calibrated: bool },
}

impl Engine for OpenAiEngine {
    fn operation(&self, op: &str, params: &Params) -> Result<Arc<dyn Operation>, EngineError> {
        if op != "generate" {
            return Err(EngineError::new(format!("openai has no operation `{op}`")));
        }
        let prompt = if !text(params, "dataset").is_empty() {
            let dataset = Dataset::load(Path::new(text(params, "dataset"))).map_err(|e| EngineError::new(e.message))?;
            PromptSource::Dataset(dataset.prompts.into())
        } else if !text(params, "prompt").is_empty() {
            PromptSource::Text(text(params, "prompt").into())
        } else {
            let tokens = count(params, "prompt_tokens").max(1);
            match self.calibrate(tokens as usize, tokens)? {
                Some(calibration) => {
                    let words = calibration.words_for(tokens).ok_or_else(|| {
                        EngineError::new(format!(
                            "prompt_tokens {tokens} is shorter than the {:.0} tokens the server adds to every prompt",
                            calibration.overhead
                        ))
                    })?;
                    PromptSource::Synthetic { tokens, words, calibrated: true }
                }
                None => PromptSource::Synthetic { tokens, words: tokens as usize, calibrated: false },
            }
        };
        let mut body = self.body(count(params, "max_tokens").max(1), true);
        if matches!(params.get("ignore_eos"), Some(Value::Bool(true))) {
            body.insert("ignore_eos".into(), true.into());
        }
        Ok(Arc::new(OpenAiOperation {
            connection: self.connection.clone(),
            url: self.connection.endpoint.url(self.api.route()),
            api: self.api,
            body,
            prompt: Arc::new(prompt),
        }))
    }
}

/// A prepared `generate`: the request every worker sends, less the prompt.
struct OpenAiOperation {
    connection: Connection,
    url: String,
    api: Api,
    body: Map<String, Json>,
    prompt: Arc<PromptSource>,
}

impl Operation for OpenAiOperation {
    fn worker(&self, _index: usize, seed: u64) -> Result<Box<dyn OpWorker>, EngineError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| EngineError::new(format!("cannot start an I/O runtime: {error}")))?;
        Ok(Box::new(OpenAiWorker {
            runtime,
            client: self.connection.client().map_err(EngineError::new)?,
            connection: self.connection.clone(),
            url: self.url.clone(),
            api: self.api,
            body: self.body.clone(),
            prompt: Arc::clone(&self.prompt),
            rng: SplitMix::new(seed),
            text: String::new(),
            timeline: Timeline::default(),
        }))
    }
}

/// One caller: its own runtime, client and connection.
struct OpenAiWorker {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    connection: Connection,
    url: String,
    api: Api,
    body: Map<String, Json>,
    prompt: Arc<PromptSource>,
    rng: SplitMix,
    /// The synthetic prompt being built (reused).
    text: String,
    timeline: Timeline,
}

/// Sends one streamed request and reads its stream into `timeline`;
/// returns the instant it was sent. Every worker's call runs this, and
/// `benches/openai_client.rs` runs it to pair each instant with the server's.
pub async fn exchange(
    connection: &Connection,
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    timeline: &mut Timeline,
) -> Result<Instant, Failure> {
    let request =
        client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body).build().map_err(
            |error| Failure::Connect(format!("cannot build the request: {}", request::mask_digits(&error.to_string()))),
        )?;
    let start = Instant::now();
    let response = client.execute(request).await.map_err(|error| connection.transport(&error))?;
    if !response.status().is_success() {
        return Err(connection.refused(response).await);
    }
    stream::read(response.bytes_stream(), timeline, |error| connection.transport(&error)).await?;
    Ok(start)
}

impl OpenAiWorker {
    /// One request; the prompt's word count when the client has to count it.
    fn run(&mut self, recorder: &mut Recorder) -> Result<(), Failure> {
        let (words, requested) = match self.prompt.as_ref() {
            PromptSource::Text(text) => {
                self.api.put_prompt(&mut self.body, text);
                (text.split_whitespace().count(), None)
            }
            PromptSource::Dataset(prompts) => {
                let prompt = &prompts[self.rng.below(prompts.len() as u64) as usize];
                self.api.put_prompt(&mut self.body, prompt);
                (prompt.split_whitespace().count(), None)
            }
            PromptSource::Synthetic { tokens, words, calibrated } => {
                self.text.clear();
                prompts::synthetic(&mut self.text, *words, &mut self.rng);
                self.api.put_prompt(&mut self.body, &self.text);
                (*words, calibrated.then_some(*tokens))
            }
        };
        // A map of JSON values always serializes.
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        self.timeline.clear();
        let timeout = self.connection.timeout;
        let (connection, client, url, timeline) = (&self.connection, &self.client, &self.url, &mut self.timeline);
        let start = self.runtime.block_on(async {
            tokio::time::timeout(timeout, exchange(connection, client, url, body, timeline))
                .await
                .unwrap_or(Err(Failure::Timeout(timeout)))
        })?;
        let timeline = &self.timeline;
        let usage = timeline.usage.unwrap_or_default();
        let reported = usage.completion_tokens.is_some();
        // Without usage in the stream: the calibrated length asked for, else one token per word.
        let input = usage.prompt_tokens.or(requested).unwrap_or(words as u64);
        let output = usage.completion_tokens.unwrap_or(timeline.text_at.len() as u64);
        recorder.record("input_tokens", input as f64);
        if let (Some(requested), Some(counted)) = (requested, usage.prompt_tokens) {
            if !prompts::close_enough(counted, requested) {
                return Err(Failure::PromptLength { requested });
            }
        }
        // `read` succeeds only with text and [DONE], so both instants exist.
        let (Some(&first), Some(done)) = (timeline.text_at.first(), timeline.done_at) else {
            return Err(Failure::Malformed("no text in the response"));
        };
        let ttft = first - start;
        let e2e = done - start;
        recorder.record_duration("ttft", ttft);
        for gap in timeline.text_at.windows(2) {
            recorder.record_duration("itl", gap[1] - gap[0]);
        }
        recorder.record_duration("e2e", e2e);
        if output > 1 {
            recorder.record("tpot", e2e.saturating_sub(ttft).as_secs_f64() / (output - 1) as f64);
        }
        recorder.record("output_tokens", output as f64);
        recorder.count(counters::INPUT_TOKENS, input);
        recorder.count(counters::OUTPUT_TOKENS, output);
        recorder.count(if reported { counters::USAGE_REPORTED } else { counters::USAGE_COUNTED }, 1);
        Ok(())
    }
}

impl OpWorker for OpenAiWorker {
    fn call(&mut self, recorder: &mut Recorder) -> Result<(), EngineError> {
        self.run(recorder).map_err(|failure| EngineError::new(self.connection.scrub(failure.to_string())))
    }
}
