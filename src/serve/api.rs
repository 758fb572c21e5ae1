//! The OpenAI wire format: requests as clients send them (`Raw*`), checked
//! once into a [`Generation`], the error shape, and the response bodies.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::text::chat_prompt;
use super::ServedModel;
use crate::engines::llm::sampling::Sampler;

/// Tokens generated when a request names no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: usize = 16;

/// The two generating endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/completions`: a prompt, text out.
    Completions,
    /// `POST /v1/chat/completions`: messages, an assistant message out.
    Chat,
}

/// A completions or chat request as the client sent it. Fields this server
/// does not use (`user`, `logprobs`, …) are accepted and ignored, as
/// OpenAI clients send them.
#[derive(Debug, Deserialize)]
pub struct RawRequest {
    model: String,
    #[serde(default)]
    prompt: Option<RawPrompt>,
    #[serde(default)]
    messages: Option<Vec<RawMessage>>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    max_completion_tokens: Option<i64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_k: Option<i64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    ignore_eos: Option<bool>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<RawStreamOptions>,
    #[serde(default)]
    n: Option<i64>,
}

/// A completion prompt: text, or token ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawPrompt {
    Text(String),
    Tokens(Vec<u32>),
}

/// A chat message; content as text or as a list of text parts.
#[derive(Debug, Deserialize)]
struct RawMessage {
    role: String,
    content: RawContent,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawContent {
    Text(String),
    Parts(Vec<RawPart>),
}

#[derive(Debug, Deserialize)]
struct RawPart {
    text: String,
}

#[derive(Debug, Deserialize)]
struct RawStreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// A checked request, ready for the scheduler.
#[derive(Debug)]
pub struct Generation {
    /// Which endpoint it came to.
    pub endpoint: Endpoint,
    /// The prompt's tokens.
    pub prompt: Vec<u32>,
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Sampling, seeded.
    pub sampler: Sampler,
    /// Tokens that end the generation early.
    pub stop_tokens: Vec<u32>,
    /// Server-sent events instead of one body.
    pub stream: bool,
    /// A final chunk with the usage before `[DONE]`.
    pub include_usage: bool,
}

/// An error in the OpenAI shape: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<String>,
    code: Option<&'static str>,
}

impl ApiError {
    /// A 400 `invalid_request_error` about `param`.
    pub fn invalid(message: impl Into<String>, param: Option<&str>, code: &'static str) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_owned),
            code: Some(code),
        }
    }

    /// The same error with another HTTP status.
    pub fn with_status(self, status: StatusCode) -> ApiError {
        ApiError { status, ..self }
    }

    /// A failure of the server, not of the request.
    pub fn server(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), kind: "server_error", param: None, code: None }
    }

    /// The body's JSON.
    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// Parses a request body; a malformed body or a field of the wrong type
/// is a 400 naming the field.
pub fn parse(body: &[u8]) -> Result<RawRequest, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let inner = error.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid(format!("the body is not valid JSON: {inner}"), None, "invalid_json");
        }
        let path = error.path().to_string();
        if path == "." || path.starts_with('[') {
            // serde reads a struct from an array too; either way the body is not an object.
            return ApiError::invalid(format!("the body must be a JSON object: {inner}"), None, "invalid_value");
        }
        let param = Some(path);
        ApiError::invalid(format!("invalid request: {inner}"), param.as_deref(), "invalid_value")
    })
}

impl RawRequest {
    /// Checks the request against the served model: its name, the prompt's
    /// tokens, `max_tokens` and the context, the sampling settings.
    pub fn check(self, endpoint: Endpoint, served: &ServedModel, request_seed: u64) -> Result<Generation, ApiError> {
        if self.model != served.name {
            return Err(ApiError::invalid(
                format!("the model `{}` does not exist; this server serves `{}`", self.model, served.name),
                Some("model"),
                "model_not_found",
            )
            .with_status(StatusCode::NOT_FOUND));
        }
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::invalid("only n = 1 is supported", Some("n"), "invalid_value"));
        }
        let encode = |text: &str, param| {
            served
                .text
                .encode(text, served.vocab)
                .map_err(|error| ApiError::invalid(error.to_string(), param, "invalid_value"))
        };
        let prompt = match endpoint {
            Endpoint::Completions => match self.prompt {
                None => {
                    return Err(ApiError::invalid("`prompt` is required", Some("prompt"), "missing_required_parameter"))
                }
                Some(RawPrompt::Text(text)) => encode(&text, Some("prompt"))?,
                Some(RawPrompt::Tokens(tokens)) => tokens,
            },
            Endpoint::Chat => {
                let Some(messages) = self.messages else {
                    return Err(ApiError::invalid(
                        "`messages` is required",
                        Some("messages"),
                        "missing_required_parameter",
                    ));
                };
                let contents: Vec<(String, String)> = messages
                    .into_iter()
                    .map(|message| {
                        let content = match message.content {
                            RawContent::Text(text) => text,
                            RawContent::Parts(parts) => parts.into_iter().map(|part| part.text).collect(),
                        };
                        (message.role, content)
                    })
                    .collect();
                encode(&chat_prompt(contents.iter().map(|(r, c)| (r.as_str(), c.as_str()))), Some("messages"))?
            }
        };
        if prompt.is_empty() {
            return Err(ApiError::invalid("the prompt has no tokens", Some("prompt"), "invalid_value"));
        }
        if let Some(bad) = prompt.iter().find(|&&token| token as usize >= served.vocab) {
            return Err(ApiError::invalid(
                format!("token {bad} is outside the model's vocabulary of {}", served.vocab),
                Some("prompt"),
                "invalid_value",
            ));
        }
        let (max_param, max_tokens) = match (self.max_tokens, self.max_completion_tokens) {
            (Some(n), _) => ("max_tokens", n),
            (None, Some(n)) => ("max_completion_tokens", n),
            (None, None) => ("max_tokens", DEFAULT_MAX_TOKENS as i64),
        };
        if max_tokens < 1 {
            return Err(ApiError::invalid(
                format!("{max_param} must be at least 1, not {max_tokens}"),
                Some(max_param),
                "invalid_value",
            ));
        }
        let max_tokens = usize::try_from(max_tokens).unwrap_or(usize::MAX);
        if prompt.len().saturating_add(max_tokens) > served.context {
            return Err(ApiError::invalid(
                format!(
                    "this model's context is {} tokens; the prompt has {} and {max_param} asks for {max_tokens}",
                    served.context,
                    prompt.len()
                ),
                Some(max_param),
                "context_length_exceeded",
            ));
        }
        let temperature = self.temperature.unwrap_or(1.0);
        if !(temperature.is_finite() && (0.0..=100.0).contains(&temperature)) {
            return Err(ApiError::invalid(
                "temperature must be between 0 and 100",
                Some("temperature"),
                "invalid_value",
            ));
        }
        let top_k = self.top_k.unwrap_or(0);
        if top_k < 0 && top_k != -1 {
            return Err(ApiError::invalid("top_k must be at least 0 (or -1: all)", Some("top_k"), "invalid_value"));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::invalid("top_p must be in (0, 1]", Some("top_p"), "invalid_value"));
        }
        let sampler =
            Sampler::new(temperature, top_k.max(0) as usize, self.seed.unwrap_or(request_seed)).with_top_p(top_p);
        let stop_tokens = if self.ignore_eos.unwrap_or(false) { Vec::new() } else { served.stop_tokens.clone() };
        let stream = self.stream.unwrap_or(false);
        let include_usage = stream && self.stream_options.and_then(|o| o.include_usage).unwrap_or(false);
        Ok(Generation { endpoint, prompt, max_tokens, sampler, stop_tokens, stream, include_usage })
    }
}

/// What every response body of one request shares.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// `cmpl-…` or `chatcmpl-…`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The served model's name.
    pub model: String,
    /// Which endpoint.
    pub endpoint: Endpoint,
}

impl Envelope {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.endpoint, chunk) {
            (Endpoint::Completions, _) => "text_completion",
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
        }
    }

    fn wrap(&self, chunk: bool, choices: Value, usage: Option<Value>) -> Value {
        let mut body = json!({
            "id": self.id, "object": self.object(chunk), "created": self.created, "model": self.model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            body["usage"] = usage;
        }
        body
    }

    /// A whole (non-streamed) response.
    pub fn complete(&self, text: &str, finish: &str, usage: Usage) -> Value {
        let choice = match self.endpoint {
            Endpoint::Completions => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
            }
            Endpoint::Chat => json!({
                "index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null,
                "finish_reason": finish,
            }),
        };
        self.wrap(false, json!([choice]), Some(usage.json()))
    }

    /// The chat stream's opening chunk, naming the role.
    pub fn role_chunk(&self) -> Value {
        let choice = json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null,
            "finish_reason": null});
        self.wrap(true, json!([choice]), None)
    }

    /// A streamed piece of text (one token), with its finish reason if last.
    pub fn chunk(&self, text: &str, finish: Option<&str>) -> Value {
        let choice = match self.endpoint {
            Endpoint::Completions => json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish}),
            Endpoint::Chat => {
                json!({"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": finish})
            }
        };
        self.wrap(true, json!([choice]), None)
    }

    /// The stream's usage chunk (`stream_options.include_usage`): no choices.
    pub fn usage_chunk(&self, usage: Usage) -> Value {
        self.wrap(true, json!([]), Some(usage.json()))
    }
}

/// Token counts of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens of the prompt.
    pub prompt: usize,
    /// Tokens generated.
    pub completion: usize,
}

impl Usage {
    fn json(self) -> Value {
        json!({"prompt_tokens": self.prompt, "completion_tokens": self.completion,
               "total_tokens": self.prompt + self.completion})
    }
}
