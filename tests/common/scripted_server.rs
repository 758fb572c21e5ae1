//! A scripted OpenAI-compatible server for tests and benches: hand-written
//! HTTP/1.1 over tokio TCP, so the test controls every byte and knows the
//! instant every event was written.
//!
//! It serves `GET /v1/models`, and `POST /v1/completions` and
//! `/v1/chat/completions`, streamed (chunked transfer, one SSE event per
//! chunk, `TCP_NODELAY`) or not. A streamed response sends its first token
//! `first_token` after the request was read, then one every `gap`, on a
//! fixed schedule (the tokio timer rounds each wait up to its millisecond
//! tick; the instants recorded are the true ones). It counts a prompt as
//! `overhead + per_word × words` tokens, reports usage if scripted to, and
//! can inject one fault into every streamed request. Include it with
//! `#[path = "…/tests/common/scripted_server.rs"] mod scripted_server;`.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A fault injected into every streamed response.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// None: a complete stream.
    None,
    /// Answer with this status and an OpenAI-style error message instead of a stream.
    Status(u16, &'static str),
    /// Close the connection after this many tokens, mid-chunk-stream.
    Drop { after: usize },
    /// Send an event that is not JSON after this many tokens.
    Malformed { after: usize },
    /// End the stream properly, but without `data: [DONE]`.
    NoDone,
    /// Send only empty text chunks.
    NoText,
    /// Stall this long before the first token (for timeouts).
    Stall(Duration),
    /// Report twice the prompt tokens counted (streamed requests only, so
    /// the calibration still sees the true count).
    Miscount,
}

/// What the server does with every request.
#[derive(Clone, Debug)]
pub struct Script {
    /// Delay from reading a request to its first token.
    pub first_token: Duration,
    /// Delay between tokens.
    pub gap: Duration,
    /// Tokens per streamed response (fewer if `max_tokens` asks for fewer).
    pub tokens: usize,
    /// Whether responses report `usage`.
    pub usage: bool,
    /// Prompt tokens per word of the prompt.
    pub per_word: f64,
    /// Prompt tokens added to every prompt.
    pub overhead: u64,
    /// Models listed at `/v1/models`.
    pub models: Vec<String>,
    /// A required bearer token; requests without it get 401.
    pub key: Option<String>,
    /// The fault every streamed request meets.
    pub fault: Fault,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            first_token: Duration::from_millis(20),
            gap: Duration::from_millis(5),
            tokens: 32,
            usage: true,
            per_word: 1.0,
            overhead: 1,
            models: vec!["scripted-model".into()],
            key: None,
            fault: Fault::None,
        }
    }
}

/// One request the server answered, with its true instants.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The route, such as `/v1/completions`.
    pub path: String,
    /// The request's `user` field, which benches use to pair requests.
    pub tag: Option<String>,
    /// Whether the response was streamed.
    pub stream: bool,
    /// When the whole request had been read.
    pub arrived: Instant,
    /// When each token event had been written to the socket.
    pub written: Vec<Instant>,
    /// Prompt tokens as the server counted them.
    pub prompt_tokens: u64,
    /// The request body.
    pub body: serde_json::Value,
}

/// A running scripted server; stops when dropped.
pub struct ScriptedServer {
    /// Base URL, `http://127.0.0.1:PORT/v1`.
    pub url: String,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedServer {
    /// Starts a server on a free port of 127.0.0.1, on a thread of its own.
    pub fn start(script: Script) -> ScriptedServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        std_listener.set_nonblocking(true).expect("non-blocking listener");
        let url = format!("http://{}/v1", std_listener.local_addr().expect("local address"));
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = Arc::clone(&exchanges);
        let script = Arc::new(script);
        let thread = std::thread::Builder::new()
            .name("scripted-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("tokio listener");
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            accepted = listener.accept() => {
                                let Ok((socket, _)) = accepted else { continue };
                                let _ = socket.set_nodelay(true);
                                tokio::spawn(serve(socket, Arc::clone(&script), Arc::clone(&shared)));
                            }
                        }
                    }
                });
            })
            .expect("server thread");
        ScriptedServer { url, exchanges, stop: Some(stop), thread: Some(thread) }
    }

    /// Every request answered so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().expect("exchanges").clone()
    }

    /// The streamed requests answered so far.
    pub fn streamed(&self) -> Vec<Exchange> {
        self.exchanges().into_iter().filter(|exchange| exchange.stream).collect()
    }

    /// Forgets the requests answered so far.
    pub fn clear(&self) {
        self.exchanges.lock().expect("exchanges").clear();
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A request as read off the socket.
struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

/// Reads one request; `None` at a clean end of the connection or on garbage.
async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 8192];
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, path) = (request_line.next()?.to_owned(), request_line.next()?.to_owned());
    let mut length = 0;
    let mut authorization = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().ok()?,
                "authorization" => authorization = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    while buffer.len() < head_end + length {
        let mut chunk = [0u8; 8192];
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    Some(Request { method, path, authorization, body })
}

async fn respond(socket: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let response =
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    socket.write_all(response.as_bytes()).await
}

/// Writes one SSE event as one HTTP chunk.
async fn event(socket: &mut TcpStream, data: &str) -> std::io::Result<()> {
    let payload = format!("data: {data}\n\n");
    socket.write_all(format!("{:x}\r\n{payload}\r\n", payload.len()).as_bytes()).await
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

async fn serve(mut socket: TcpStream, script: Arc<Script>, exchanges: Arc<Mutex<Vec<Exchange>>>) {
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut socket, &mut buffer).await {
        let arrived = Instant::now();
        if answer(&mut socket, request, arrived, &script, &exchanges).await.is_err() {
            return;
        }
    }
}

/// Answers one request; an error ends the connection.
async fn answer(
    socket: &mut TcpStream,
    request: Request,
    arrived: Instant,
    script: &Script,
    exchanges: &Mutex<Vec<Exchange>>,
) -> Result<(), ()> {
    let io = |_: std::io::Error| ();
    if let Some(key) = &script.key {
        if request.authorization.as_deref() != Some(format!("Bearer {key}").as_str()) {
            let body = r#"{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}"#;
            return respond(socket, "401 Unauthorized", body).await.map_err(io);
        }
    }
    if request.method == "GET" && request.path == "/v1/models" {
        let data: Vec<_> = script.models.iter().map(|id| serde_json::json!({"id": id, "object": "model"})).collect();
        let body = serde_json::json!({"object": "list", "data": data}).to_string();
        return respond(socket, "200 OK", &body).await.map_err(io);
    }
    let chat = match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/v1/completions") => false,
        ("POST", "/v1/chat/completions") => true,
        _ => return respond(socket, "404 Not Found", r#"{"detail": "Not Found"}"#).await.map_err(io),
    };
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&request.body) else {
        return respond(socket, "400 Bad Request", r#"{"error": {"message": "body is not JSON"}}"#).await.map_err(io);
    };
    let prompt = if chat { body.pointer("/messages/0/content") } else { body.get("prompt") };
    let words = prompt.and_then(|p| p.as_str()).map_or(0, |p| p.split_whitespace().count());
    let prompt_tokens = script.overhead + (words as f64 * script.per_word).round() as u64;
    let max_tokens = body.get("max_tokens").and_then(|m| m.as_u64()).unwrap_or(16) as usize;
    let tokens = script.tokens.min(max_tokens).max(1);
    let stream = body.get("stream").and_then(|s| s.as_bool()).unwrap_or(false);
    let mut exchange = Exchange {
        path: request.path.clone(),
        tag: body.get("user").and_then(|u| u.as_str()).map(str::to_owned),
        stream,
        arrived,
        written: Vec::new(),
        prompt_tokens,
        body: body.clone(),
    };
    let reported = if stream && script.fault == Fault::Miscount { 2 * prompt_tokens } else { prompt_tokens };
    let usage = serde_json::json!({
        "prompt_tokens": reported, "completion_tokens": tokens, "total_tokens": prompt_tokens + tokens as u64
    });
    if !stream {
        let mut response = if chat {
            serde_json::json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": " tok"}}]})
        } else {
            serde_json::json!({"choices": [{"index": 0, "text": " tok"}]})
        };
        if script.usage {
            response["usage"] = usage;
        }
        exchanges.lock().expect("exchanges").push(exchange);
        return respond(socket, "200 OK", &response.to_string()).await.map_err(io);
    }
    if let Fault::Status(status, message) = script.fault {
        exchanges.lock().expect("exchanges").push(exchange);
        let body = serde_json::json!({"error": {"message": message, "type": "server_error", "code": status}});
        return respond(socket, &format!("{status} {}", reason(status)), &body.to_string()).await.map_err(io);
    }
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    socket.write_all(head.as_bytes()).await.map_err(io)?;
    if chat {
        event(socket, r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#).await.map_err(io)?;
    }
    if let Fault::Stall(stall) = script.fault {
        tokio::time::sleep(stall).await;
    }
    let text = if script.fault == Fault::NoText { "" } else { " tok" };
    let chunk = if chat {
        serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}}]}).to_string()
    } else {
        serde_json::json!({"choices": [{"index": 0, "text": text}]}).to_string()
    };
    for index in 0..tokens {
        match script.fault {
            Fault::Drop { after } if index == after => {
                exchanges.lock().expect("exchanges").push(exchange);
                return Err(());
            }
            Fault::Malformed { after } if index == after => {
                event(socket, "{\"choices\": [{\"text\": oops").await.map_err(io)?;
            }
            _ => {}
        }
        tokio::time::sleep_until((arrived + script.first_token + script.gap * index as u32).into()).await;
        event(socket, &chunk).await.map_err(io)?;
        exchange.written.push(Instant::now());
    }
    if script.usage {
        event(socket, &serde_json::json!({"choices": [], "usage": usage}).to_string()).await.map_err(io)?;
    }
    if script.fault != Fault::NoDone {
        event(socket, "[DONE]").await.map_err(io)?;
    }
    socket.write_all(b"0\r\n\r\n").await.map_err(io)?;
    exchanges.lock().expect("exchanges").push(exchange);
    Ok(())
}
