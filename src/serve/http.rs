//! The HTTP side: routes, request counting, and each generating request
//! handed to the scheduler and answered as one body or as server-sent events.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::api::{self, ApiError, Endpoint, Envelope, Generation, Usage};
use super::metrics::Metrics;
use super::scheduler::{Event, Job, Submitter};
use super::text::Detokenizer;
use super::ServedModel;

/// What every handler shares.
pub struct AppState {
    /// The model's name, context and text.
    pub served: ServedModel,
    /// The way into the scheduler.
    pub submitter: Submitter,
    /// The server's figures.
    pub metrics: Arc<Metrics>,
    /// Seeds requests that name none: the server's seed and a request count.
    pub seed: u64,
    /// Requests so far, for ids and seeds.
    pub requests: AtomicU64,
}

/// The routes; anything else is a 404 and a wrong method a 405, both in the OpenAI error shape.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), count_requests))
        .with_state(state)
}

/// The `endpoint` label of a path: the routes by name, anything else `other`.
fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/v1/completions" => "completions",
        "/v1/chat/completions" => "chat_completions",
        "/v1/models" => "models",
        "/health" => "health",
        "/metrics" => "metrics",
        _ => "other",
    }
}

async fn count_requests(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let endpoint = endpoint_label(request.uri().path());
    let response = next.run(request).await;
    state.metrics.request(endpoint, response.status().as_u16());
    response
}

async fn not_found(request: Request) -> ApiError {
    let message = format!("no route {} {}", request.method(), request.uri().path());
    ApiError::invalid(message, None, "not_found").with_status(StatusCode::NOT_FOUND)
}

async fn method_not_allowed(request: Request) -> ApiError {
    let message = format!("{} is not allowed on {}", request.method(), request.uri().path());
    ApiError::invalid(message, None, "method_not_allowed").with_status(StatusCode::METHOD_NOT_ALLOWED)
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"object": "list", "data": [{
        "id": state.served.name, "object": "model", "created": state.served.created, "owned_by": "phasebench",
        "max_model_len": state.served.context,
    }]}))
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
}

async fn completions(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    generate(&state, Endpoint::Completions, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn chat(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    generate(&state, Endpoint::Chat, body).await.unwrap_or_else(IntoResponse::into_response)
}

/// Checks the request, queues it, and answers with a body or a stream.
async fn generate(
    state: &AppState,
    endpoint: Endpoint,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        ApiError::invalid(rejection.body_text(), None, "invalid_body").with_status(rejection.status())
    })?;
    let number = state.requests.fetch_add(1, Ordering::Relaxed);
    let request_seed = state.seed ^ number.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let generation = api::parse(&body)?.check(endpoint, &state.served, request_seed)?;
    let envelope = Envelope {
        id: format!("{}-{number}", if endpoint == Endpoint::Chat { "chatcmpl" } else { "cmpl" }),
        created: unix_now(),
        model: state.served.name.clone(),
        endpoint,
    };
    let Generation { prompt, max_tokens, sampler, stop_tokens, stream, include_usage, .. } = generation;
    let usage = Usage { prompt: prompt.len(), completion: 0 };
    let (events, receiver) = unbounded_channel();
    let job = Job { prompt, max_tokens, sampler, stop_tokens, events };
    state.submitter.submit(job).map_err(|_| shutting_down())?;
    let answer = Answer { receiver, text: Detokenizer::new(state.served.text.clone()), envelope, usage };
    if stream {
        Ok(answer.stream(include_usage))
    } else {
        answer.whole().await
    }
}

fn shutting_down() -> ApiError {
    ApiError::server(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// One request's tokens on their way to the client.
struct Answer {
    receiver: UnboundedReceiver<Event>,
    text: Detokenizer,
    envelope: Envelope,
    usage: Usage,
}

impl Answer {
    /// Waits for the last token and answers with one body.
    async fn whole(mut self) -> Result<Response, ApiError> {
        let mut text = String::new();
        loop {
            match self.receiver.recv().await {
                Some(Event::Token { id, finish }) => {
                    self.usage.completion += 1;
                    text.push_str(&self.text.push(id));
                    if let Some(finish) = finish {
                        text.push_str(&self.text.flush());
                        return Ok(Json(self.envelope.complete(&text, finish.reason(), self.usage)).into_response());
                    }
                }
                Some(Event::Failed(message)) => return Err(ApiError::server(StatusCode::SERVICE_UNAVAILABLE, message)),
                None => return Err(shutting_down()),
            }
        }
    }

    /// Server-sent events: (chat: a role chunk,) a chunk per token, the
    /// usage chunk if asked, then `[DONE]`. A failure after the headers
    /// went out is an `error` event before `[DONE]`.
    fn stream(self, include_usage: bool) -> Response {
        let mut frames = VecDeque::new();
        if self.envelope.endpoint == Endpoint::Chat {
            frames.push_back(event(&self.envelope.role_chunk()));
        }
        let state = StreamState { answer: self, frames, include_usage, done: false };
        let stream = futures_util::stream::unfold(state, |mut state| async move {
            loop {
                if let Some(frame) = state.frames.pop_front() {
                    return Some((Ok::<Bytes, Infallible>(frame), state));
                }
                if state.done {
                    return None;
                }
                state.next().await;
            }
        });
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| shutting_down().into_response())
    }
}

/// A stream's progress: frames ready to send, and whether the last is queued.
struct StreamState {
    answer: Answer,
    frames: VecDeque<Bytes>,
    include_usage: bool,
    done: bool,
}

impl StreamState {
    /// Waits for the scheduler's next event and queues its frames.
    async fn next(&mut self) {
        let answer = &mut self.answer;
        match answer.receiver.recv().await {
            Some(Event::Token { id, finish }) => {
                answer.usage.completion += 1;
                let mut piece = answer.text.push(id);
                if finish.is_some() {
                    piece.push_str(&answer.text.flush());
                }
                let finish = finish.map(|finish| finish.reason());
                self.frames.push_back(event(&answer.envelope.chunk(&piece, finish)));
                if finish.is_some() {
                    if self.include_usage {
                        self.frames.push_back(event(&answer.envelope.usage_chunk(answer.usage)));
                    }
                    self.end();
                }
            }
            Some(Event::Failed(message)) => {
                let error = ApiError::server(StatusCode::SERVICE_UNAVAILABLE, message);
                self.frames.push_back(event(&error.body()));
                self.end();
            }
            None => {
                self.frames.push_back(event(&shutting_down().body()));
                self.end();
            }
        }
    }

    fn end(&mut self) {
        self.frames.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
        self.done = true;
    }
}

/// One server-sent event carrying `body`.
fn event(body: &Value) -> Bytes {
    Bytes::from(format!("data: {body}\n\n"))
}
