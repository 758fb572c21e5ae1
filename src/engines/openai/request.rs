//! Talking to the server: the endpoint, request bodies, the untimed setup
//! requests (the model list, the prompt calibration), and how every failure
//! is named.
//!
//! Failure messages group: the harness counts errors by their message, so
//! each message starts with its kind and holds nothing that changes from one
//! request to the next. A server's own error text is kept after the status
//! (it says why, which the status alone rarely does), with every run of
//! digits replaced by `#` (token counts, retry-after seconds, request ids),
//! and cut short.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde_json::{Map, Value as Json};

/// The most characters of a server's error message a failure keeps.
const MESSAGE_CHARS: usize = 100;

/// The most bytes of an error response read for its message.
const ERROR_BODY_BYTES: usize = 64 * 1024;

/// Why one request failed; its `Display` is the message errors are grouped by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with a status other than 2xx.
    Http {
        /// The status.
        status: StatusCode,
        /// The server's error message, digits masked, if it gave one.
        message: Option<String>,
    },
    /// No connection could be made.
    Connect(String),
    /// The whole request took longer than the timeout.
    Timeout(Duration),
    /// The connection failed while the response was being read.
    Broken(String),
    /// The response is not a well-formed completion stream.
    Malformed(&'static str),
    /// The server reported an error inside the stream.
    InStream(String),
    /// The server counted the prompt more than 10% off the length asked for.
    PromptLength {
        /// Tokens asked for.
        requested: u64,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Http { status, message } => {
                write!(f, "HTTP {} {}", status.as_u16(), status.canonical_reason().unwrap_or("(unknown status)"))?;
                match message {
                    Some(message) => write!(f, ": {message}"),
                    None => Ok(()),
                }
            }
            Failure::Connect(reason) => write!(f, "connect: {reason}"),
            Failure::Timeout(after) => write!(f, "timeout after {}", humantime(*after)),
            Failure::Broken(reason) => write!(f, "stream broken: {reason}"),
            Failure::Malformed(what) => write!(f, "malformed stream: {what}"),
            Failure::InStream(message) => write!(f, "server error in stream: {message}"),
            Failure::PromptLength { requested } => write!(
                f,
                "prompt length: the server counted the {requested}-token prompt more than 10% off (see input_tokens)"
            ),
        }
    }
}

/// A duration as the scenario writes it: `30s`, `250ms`, `1500us`.
fn humantime(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    match nanos {
        _ if nanos % 1_000_000_000 == 0 => format!("{}s", nanos / 1_000_000_000),
        _ if nanos % 1_000_000 == 0 => format!("{}ms", nanos / 1_000_000),
        _ if nanos % 1_000 == 0 => format!("{}us", nanos / 1_000),
        _ => format!("{nanos}ns"),
    }
}

/// `text` with every run of digits replaced by `#`, cut to [`MESSAGE_CHARS`]
/// characters, on one line.
pub fn mask_digits(text: &str) -> String {
    let mut masked = String::new();
    let mut in_digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                masked.push('#');
            }
            in_digits = true;
            continue;
        }
        in_digits = false;
        masked.push(if c.is_control() { ' ' } else { c });
    }
    let masked = masked.trim();
    match masked.char_indices().nth(MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &masked[..cut]),
        None => masked.to_owned(),
    }
}

/// The server's API: its base URL, ending in `/v1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    base: Url,
}

impl Endpoint {
    /// Checks a base URL: `http` or `https`, with or without a trailing `/v1`.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let mut url = Url::parse(text.trim()).map_err(|error| format!("`{text}` is not a URL: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{text}` is not an http or https URL"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{text}` names no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("`{text}` has a query or fragment; give the server's base URL"));
        }
        let path = url.path().trim_end_matches('/').to_owned();
        let path = if path.ends_with("/v1") { path } else { format!("{path}/v1") };
        url.set_path(&path);
        Ok(Endpoint { base: url })
    }

    /// The URL of `route` under the base, such as `completions`.
    pub fn url(&self, route: &str) -> String {
        format!("{}/{route}", self.base.as_str().trim_end_matches('/'))
    }
}

/// Which API generates: `/v1/completions` or `/v1/chat/completions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Text completions: `prompt`, chunks with `choices[].text`.
    Completions,
    /// Chat completions: one user message, chunks with `choices[].delta.content`.
    Chat,
}

impl Api {
    /// The route under the base URL.
    pub fn route(self) -> &'static str {
        match self {
            Api::Completions => "completions",
            Api::Chat => "chat/completions",
        }
    }

    /// Puts the prompt into a request body in this API's shape.
    pub fn put_prompt(self, body: &mut Map<String, Json>, prompt: &str) {
        match self {
            Api::Completions => body.insert("prompt".into(), Json::String(prompt.into())),
            Api::Chat => body.insert(
                "messages".into(),
                serde_json::json!([{ "role": "user", "content": prompt }]),
            ),
        };
    }
}

/// Request fields phasebench sets itself, which `extra` may not replace.
pub const OWN_FIELDS: &[&str] = &["model", "prompt", "messages", "stream", "stream_options", "max_tokens"];

/// Checks `extra`: a JSON object that sets none of [`OWN_FIELDS`].
pub fn parse_extra(text: &str) -> Result<Map<String, Json>, String> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let value: Json = serde_json::from_str(text).map_err(|error| format!("`extra` is not JSON: {error}"))?;
    let Json::Object(fields) = value else {
        return Err("`extra` must be a JSON object, such as '{\"top_p\": 0.9}'".into());
    };
    if let Some(own) = fields.keys().find(|key| OWN_FIELDS.contains(&key.as_str())) {
        return Err(format!("`extra` sets `{own}`, which phasebench sets itself"));
    }
    Ok(fields)
}

/// What every request of an engine instance shares.
#[derive(Clone)]
pub struct Connection {
    /// The server.
    pub endpoint: Endpoint,
    /// Headers of every request (the API key, marked sensitive).
    pub headers: HeaderMap,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest whole request, from sending to the end of the response.
    pub timeout: Duration,
    /// The API key, kept only to scrub it from any message a server echoes it in.
    pub secret: Option<String>,
}

impl Connection {
    /// Headers for a key (`Authorization: Bearer …`), or none.
    pub fn headers(key: Option<&str>) -> Result<HeaderMap, String> {
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| "the API key holds characters an HTTP header cannot".to_owned())?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        Ok(headers)
    }

    /// A client with its own connection pool (keep-alive), for one worker.
    pub fn client(&self) -> Result<reqwest::Client, String> {
        reqwest::Client::builder()
            .default_headers(self.headers.clone())
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|error| format!("cannot build an HTTP client: {error}"))
    }

    /// `text` without the API key in it.
    pub fn scrub(&self, text: String) -> String {
        match &self.secret {
            Some(secret) if !secret.is_empty() && text.contains(secret.as_str()) => text.replace(secret.as_str(), "***"),
            _ => text,
        }
    }

    /// Names a transport error of reqwest: a connection refused, a timeout, a broken stream.
    pub fn transport(&self, error: &reqwest::Error) -> Failure {
        if error.is_timeout() {
            return if error.is_connect() {
                Failure::Connect(format!("timeout after {}", humantime(self.connect_timeout)))
            } else {
                Failure::Timeout(self.timeout)
            };
        }
        let reason = root_cause(error);
        if error.is_connect() {
            Failure::Connect(reason)
        } else {
            Failure::Broken(reason)
        }
    }

    /// The failure for a response whose status is not 2xx, with the server's message.
    pub async fn refused(&self, response: reqwest::Response) -> Failure {
        let status = response.status();
        let mut body = Vec::new();
        let mut response = response;
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= ERROR_BODY_BYTES {
                break;
            }
        }
        let message = server_message(&body).map(|message| mask_digits(&self.scrub(message)));
        Failure::Http { status, message: message.filter(|m| !m.is_empty()) }
    }

    /// One untimed, non-streamed request whose response is JSON (setup only).
    pub async fn json(&self, client: &reqwest::Client, route: &str, body: Option<&Json>) -> Result<Json, Failure> {
        let url = self.endpoint.url(route);
        let request = match body {
            Some(body) => client.post(url).header(CONTENT_TYPE, "application/json").body(body.to_string()),
            None => client.get(url),
        };
        let work = async {
            let response = request.send().await.map_err(|error| self.transport(&error))?;
            if !response.status().is_success() {
                return Err(self.refused(response).await);
            }
            let bytes = response.bytes().await.map_err(|error| self.transport(&error))?;
            serde_json::from_slice(&bytes).map_err(|_| Failure::Malformed("the response is not JSON"))
        };
        tokio::time::timeout(self.timeout, work).await.unwrap_or(Err(Failure::Timeout(self.timeout)))
    }
}

/// The innermost cause of an error, the one that says what happened
/// (`connection refused`, not `error sending request for url (…)`, which
/// also repeats the URL). An I/O error is named by its kind, which reads the
/// same on every system.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    let mut io_kind = None;
    while let Some(source) = cause.source() {
        cause = source;
        if let Some(io) = source.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
    }
    match io_kind {
        Some(std::io::ErrorKind::Other) | None => mask_digits(&cause.to_string()),
        Some(kind) => kind.to_string(),
    }
}

/// The `error.message` (or `message`, or `detail`) of an OpenAI-style error body.
fn server_message(body: &[u8]) -> Option<String> {
    let json: Json = serde_json::from_slice(body).ok()?;
    let text = |value: &Json| value.as_str().map(str::to_owned);
    json.get("error")
        .and_then(|error| error.get("message").and_then(text).or_else(|| text(error)))
        .or_else(|| json.get("message").and_then(text))
        .or_else(|| json.get("detail").and_then(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_with_or_without_v1() {
        let cases = [
            ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/completions"),
            ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1/completions"),
            ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/completions"),
            ("https://api.example.com/v1/", "https://api.example.com/v1/completions"),
            ("http://host/openai", "http://host/openai/v1/completions"),
        ];
        for (text, expected) in cases {
            assert_eq!(Endpoint::parse(text).unwrap().url("completions"), expected, "{text}");
        }
        for bad in ["", "127.0.0.1:8000", "ftp://host/v1", "http://", "not a url", "http://h/v1?x=1"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn extra_must_be_an_object_of_other_fields() {
        assert_eq!(parse_extra("").unwrap().len(), 0);
        assert_eq!(parse_extra(r#"{"top_p": 0.9, "seed": 1}"#).unwrap().len(), 2);
        for (bad, expected) in [
            ("{", "not JSON"),
            ("[1]", "JSON object"),
            ("0.9", "JSON object"),
            (r#"{"stream": false}"#, "sets `stream`"),
        ] {
            let error = parse_extra(bad).unwrap_err();
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }

    #[test]
    fn messages_group() {
        assert_eq!(
            mask_digits("This model's maximum context length is 4096 tokens. However, you requested 4187"),
            "This model's maximum context length is # tokens. However, you requested #"
        );
        assert_eq!(mask_digits("a\nb"), "a b");
        assert_eq!(mask_digits(&"x".repeat(300)).chars().count(), MESSAGE_CHARS + 1);
        let cases = [
            (Failure::Http { status: StatusCode::SERVICE_UNAVAILABLE, message: None }, "HTTP 503 Service Unavailable"),
            (
                Failure::Http { status: StatusCode::TOO_MANY_REQUESTS, message: Some("slow down".into()) },
                "HTTP 429 Too Many Requests: slow down",
            ),
            (Failure::Connect("connection refused".into()), "connect: connection refused"),
            (Failure::Timeout(Duration::from_secs(30)), "timeout after 30s"),
            (Failure::Timeout(Duration::from_millis(1500)), "timeout after 1500ms"),
            (Failure::Malformed("no text in the response"), "malformed stream: no text in the response"),
        ];
        for (failure, expected) in cases {
            assert_eq!(failure.to_string(), expected);
        }
    }

    #[test]
    fn server_messages_in_their_usual_places() {
        let cases: &[(&str, Option<&str>)] = &[
            (r#"{"error": {"message": "bad model", "type": "invalid_request_error"}}"#, Some("bad model")),
            (r#"{"error": "overloaded"}"#, Some("overloaded")),
            (r#"{"object": "error", "message": "vllm says no"}"#, Some("vllm says no")),
            (r#"{"detail": "Not Found"}"#, Some("Not Found")),
            ("<html>", None),
        ];
        for (body, expected) in cases {
            assert_eq!(server_message(body.as_bytes()).as_deref(), *expected, "{body}");
        }
    }
}
