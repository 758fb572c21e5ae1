//! `phasebench serve` end to end: the built binary as a child process on a
//! free loopback port, spoken to with plain HTTP/1.1 over `TcpStream`:
//! completions and chat completions (streamed and whole) with exact usage,
//! every bad input answered in the OpenAI error shape while the server goes
//! on serving, a client that leaves mid-stream, a thousand idle connections,
//! batching that changes no token, the Prometheus text, bad command lines,
//! a graceful stop, and the official Python client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_phasebench");

/// A running server, killed when dropped (a failing test included).
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let port = free_port();
        let port_text = port.to_string();
        let mut args = vec!["serve", "--model", "tiny", "--port", &port_text, "--threads", "2"];
        args.extend_from_slice(extra);
        let child = Command::new(BINARY).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(response) = try_request(port, "GET", "/health", None) {
                assert_eq!(response.status, 200);
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not answer /health within 60 s");
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        try_request(self.port, method, path, body.map(Value::to_string).as_deref()).unwrap()
    }

    fn post(&self, path: &str, body: &Value) -> Response {
        self.request("POST", path, Some(body))
    }

    fn metric(&self, name: &str) -> f64 {
        let text = self.request("GET", "/metrics", None).body;
        let line = text.lines().find(|line| line.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("{name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[derive(Debug)]
struct Response {
    status: u16,
    content_type: String,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("{error}: {}", self.body))
    }

    /// The `data:` payloads of a server-sent event stream.
    fn events(&self) -> Vec<String> {
        assert_eq!(self.content_type, "text/event-stream", "{}", self.body);
        let events: Vec<String> = self
            .body
            .split("\n\n")
            .filter(|event| !event.is_empty())
            .map(|event| event.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {event:?}")).into())
            .collect();
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{}", self.body);
        events
    }
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(stream)
}

fn send(stream: &mut TcpStream, method: &str, path: &str, body: Option<&str>) -> std::io::Result<()> {
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One request on its own connection; the whole response read (chunked bodies decoded).
fn try_request(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<Response> {
    let mut stream = connect(port)?;
    send(&mut stream, method, path, body)?;
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader)?;
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16).map_err(std::io::Error::other)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        reader.read_to_end(&mut body)?;
    }
    let content_type = header("content-type").unwrap_or_default();
    Ok(Response { status, content_type, body: String::from_utf8(body).map_err(std::io::Error::other)? })
}

/// The status and headers (names lower-cased) of a response.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status =
        line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| std::io::Error::other(line.clone()))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            return Ok((status, headers));
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
}

fn completion(prompt: Value, max_tokens: u64, stream: bool) -> Value {
    json!({"model": "tiny", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": stream,
           "stream_options": {"include_usage": true}})
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// The text of a streamed completion or chat, and its number of token chunks.
fn streamed_text(events: &[String]) -> (String, usize) {
    let mut text = String::new();
    let mut tokens = 0;
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event).unwrap();
        let Some(choice) = chunk["choices"].get(0) else { continue };
        if let Some(piece) = choice["text"].as_str().or(choice["delta"]["content"].as_str()) {
            if choice["delta"]["role"].is_null() {
                tokens += 1;
            }
            text.push_str(piece);
        }
    }
    (text, tokens)
}

#[test]
fn completions_and_chats_answer_whole_and_streamed_with_exact_usage() {
    let server = Server::start(&[]);
    // Byte-level preset tokens: BOS, then one per byte.
    let whole = server.post("/v1/completions", &completion(json!("hello"), 7, false));
    assert_eq!(whole.status, 200, "{}", whole.body);
    let body = whole.json();
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["model"], "tiny");
    assert_eq!(body["usage"], usage(6, 7));
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let whole_text = body["choices"][0]["text"].as_str().unwrap().to_owned();

    let streamed = server.post("/v1/completions", &completion(json!("hello"), 7, true));
    assert_eq!(streamed.status, 200);
    let events = streamed.events();
    // Seven token chunks, the usage chunk, [DONE].
    assert_eq!(events.len(), 9, "{events:?}");
    let chunks: Vec<Value> = events[..8].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(chunks[..7].iter().all(|c| c["object"] == "text_completion" && c["id"] == chunks[0]["id"]));
    assert!(chunks[..6].iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[7]["choices"], json!([]));
    assert_eq!(chunks[7]["usage"], usage(6, 7));
    assert_eq!(streamed_text(&events), (whole_text, 7), "greedy: the same text streamed or whole");

    // Token ids as the prompt; no usage chunk unless asked.
    let ids = json!({"model": "tiny", "prompt": [1, 104, 105], "max_tokens": 3, "stream": true});
    let events = server.post("/v1/completions", &ids).events();
    assert_eq!(events.len(), 4, "{events:?}");
    let ids = json!({"model": "tiny", "prompt": [1, 104, 105], "max_tokens": 3});
    assert_eq!(server.post("/v1/completions", &ids).json()["usage"], usage(3, 3));
    // max_tokens defaults to 16.
    assert_eq!(server.post("/v1/completions", &json!({"model": "tiny", "prompt": "a"})).json()["usage"], usage(2, 16));

    // Chat: "user: hi\nassistant: " is 20 bytes, plus BOS.
    let messages = json!([{"role": "user", "content": "hi"}]);
    let chat = json!({"model": "tiny", "messages": messages, "max_tokens": 5, "temperature": 0});
    let whole = server.post("/v1/chat/completions", &chat).json();
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["message"]["role"], "assistant");
    assert_eq!(whole["usage"], usage(21, 5));
    let mut streaming = chat.clone();
    streaming["stream"] = json!(true);
    streaming["stream_options"] = json!({"include_usage": true});
    let events = server.post("/v1/chat/completions", &streaming).events();
    // The role chunk, five token chunks, the usage chunk, [DONE].
    assert_eq!(events.len(), 8, "{events:?}");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let last: Value = serde_json::from_str(&events[5]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    let usage_chunk: Value = serde_json::from_str(&events[6]).unwrap();
    assert_eq!(usage_chunk["usage"], usage(21, 5));
    assert_eq!(streamed_text(&events), (whole["choices"][0]["message"]["content"].as_str().unwrap().into(), 5));
    // Content as a list of text parts reads the same.
    let parts = json!({"model": "tiny", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                       "max_tokens": 5, "temperature": 0});
    assert_eq!(server.post("/v1/chat/completions", &parts).json()["choices"], whole["choices"]);

    let models = server.request("GET", "/v1/models", None).json();
    assert_eq!(models["data"][0]["id"], "tiny");
}

/// A bad request and its answer: method, path, body, status, error code, param.
type BadRequest = (&'static str, &'static str, String, u16, &'static str, Option<&'static str>);

#[test]
fn bad_requests_get_openai_errors_and_the_server_goes_on() {
    let server = Server::start(&[]);
    let good = completion(json!("ok"), 2, false);
    // (method, path, body, status, code, param)
    let cases: Vec<BadRequest> = vec![
        ("POST", "/v1/completions", "{\"model\": ".into(), 400, "invalid_json", None),
        ("POST", "/v1/completions", "".into(), 400, "invalid_json", None),
        ("POST", "/v1/completions", "[1, 2]".into(), 400, "invalid_value", None),
        (
            "POST",
            "/v1/completions",
            json!({"model": "gpt-4", "prompt": "x"}).to_string(),
            404,
            "model_not_found",
            Some("model"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "tiny", "prompt": "x", "max_tokens": 0}).to_string(),
            400,
            "invalid_value",
            Some("max_tokens"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "tiny", "prompt": "x", "max_tokens": -5}).to_string(),
            400,
            "invalid_value",
            Some("max_tokens"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "tiny", "prompt": "x", "max_tokens": "ten"}).to_string(),
            400,
            "invalid_value",
            Some("max_tokens"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "tiny", "prompt": "x", "max_tokens": 2047}).to_string(),
            400,
            "context_length_exceeded",
            Some("max_tokens"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "tiny", "prompt": "x".repeat(3000)}).to_string(),
            400,
            "context_length_exceeded",
            Some("max_tokens"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "tiny", "prompt": [1, 99999]}).to_string(),
            400,
            "invalid_value",
            Some("prompt"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "tiny", "prompt": []}).to_string(),
            400,
            "invalid_value",
            Some("prompt"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "tiny"}).to_string(),
            400,
            "missing_required_parameter",
            Some("prompt"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "tiny", "prompt": "x", "temperature": -1}).to_string(),
            400,
            "invalid_value",
            Some("temperature"),
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "tiny", "prompt": "x", "top_p": 0}).to_string(),
            400,
            "invalid_value",
            Some("top_p"),
        ),
        (
            "POST",
            "/v1/chat/completions",
            json!({"model": "tiny", "prompt": "x"}).to_string(),
            400,
            "missing_required_parameter",
            Some("messages"),
        ),
        (
            "POST",
            "/v1/chat/completions",
            json!({"model": "tiny", "messages": [{"role": "user"}]}).to_string(),
            400,
            "invalid_value",
            Some("messages[0]"),
        ),
        ("GET", "/v1/completions", String::new(), 405, "method_not_allowed", None),
        ("GET", "/v2/nothing", String::new(), 404, "not_found", None),
    ];
    for (method, path, body, status, code, param) in cases {
        let response = try_request(server.port, method, path, Some(&body)).unwrap();
        let shown = format!("{method} {path} {}: {}", &body[..body.len().min(80)], response.body);
        assert_eq!(response.status, status, "{shown}");
        let error = &response.json()["error"];
        assert_eq!(error["code"], code, "{shown}");
        assert_eq!(error["param"].as_str(), param, "{shown}");
        assert!(error["type"].is_string() && !error["message"].as_str().unwrap().is_empty(), "{shown}");
        let after = server.post("/v1/completions", &good);
        assert_eq!(after.status, 200, "after {shown}");
    }
    // Rubbish on the socket closes that connection only.
    let mut rubbish = connect(server.port).unwrap();
    rubbish.write_all(b"\x16\x03\x01 not http at all\r\n\r\n").unwrap();
    let _ = rubbish.read(&mut [0; 64]);
    assert_eq!(server.post("/v1/completions", &good).status, 200);
}

#[test]
fn a_client_that_leaves_mid_stream_frees_its_place() {
    let server = Server::start(&[]);
    let mut stream = connect(server.port).unwrap();
    let body = completion(json!("x"), 2000, true).to_string();
    send(&mut stream, "POST", "/v1/completions", Some(&body)).unwrap();
    let mut reader = BufReader::new(stream);
    let (status, _) = read_head(&mut reader).unwrap();
    assert_eq!(status, 200);
    let mut seen = 0;
    while seen < 3 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        seen += usize::from(line.contains("data: "));
    }
    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.metric("phasebench_running_sequences") > 0.0 {
        assert!(Instant::now() < deadline, "the stream kept running after its client left");
        std::thread::sleep(Duration::from_millis(20));
    }
    let generated = server.metric("phasebench_generated_tokens_total");
    assert!(generated < 2000.0, "{generated} tokens: the whole stream was generated");
    let after = server.post("/v1/completions", &completion(json!("y"), 4, false));
    assert_eq!(after.json()["usage"], usage(2, 4));
}

/// Raises this process's open-file limit so that it can hold many connections.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain calls with a struct passed by pointer.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

#[test]
fn a_thousand_idle_connections_leave_room_for_a_request() {
    raise_open_file_limit();
    let server = Server::start(&[]);
    let idle: Vec<TcpStream> = (0..1000).map(|_| connect(server.port).unwrap()).collect();
    let response = server.post("/v1/completions", &completion(json!("still here"), 3, false));
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["usage"], usage(11, 3));
    drop(idle);
    assert_eq!(server.request("GET", "/health", None).status, 200);
}

#[test]
fn a_batch_changes_no_token() {
    let server = Server::start(&[]);
    let prompts: Vec<String> = (0..6).map(|i| format!("prompt {i}: {}", "ab".repeat(i * 5))).collect();
    let alone: Vec<String> = prompts
        .iter()
        .map(|prompt| server.post("/v1/completions", &completion(json!(prompt), 24, false)).json())
        .map(|body| body["choices"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    // A long stream keeps the batch busy so that the others join it, then
    // the six requests at once.
    let mut keeper = connect(server.port).unwrap();
    send(&mut keeper, "POST", "/v1/completions", Some(&completion(json!("keep"), 1500, true).to_string())).unwrap();
    let batched: Vec<Response> = std::thread::scope(|scope| {
        let server = &server;
        let handles: Vec<_> = prompts
            .iter()
            .map(|prompt| scope.spawn(move || server.post("/v1/completions", &completion(json!(prompt), 24, true))))
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    drop(keeper);
    for ((response, expected), prompt) in batched.iter().zip(&alone).zip(&prompts) {
        let (text, tokens) = streamed_text(&response.events());
        assert_eq!(tokens, 24, "{prompt}");
        assert_eq!(&text, expected, "{prompt}: served in a batch differs from served alone");
    }
    let text = server.request("GET", "/metrics", None).body;
    let bucket = |le: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(&format!("phasebench_batch_size_bucket{{le=\"{le}\"}}")));
        line.unwrap().rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(bucket("+Inf") > bucket("1"), "no step ran more than one sequence:\n{text}");
}

#[test]
fn metrics_are_prometheus_text() {
    let server = Server::start(&[]);
    server.post("/v1/completions", &completion(json!("count me"), 5, false));
    server.post("/v1/completions", &json!({"model": "nope", "prompt": "x"}));
    let response = server.request("GET", "/metrics", None);
    assert!(response.content_type.starts_with("text/plain; version=0.0.4"), "{}", response.content_type);
    let mut samples = std::collections::BTreeMap::new();
    for line in response.body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ").or(line.strip_prefix("# TYPE ")) {
            let (name, text) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            assert!(is_metric_name(name) && !text.is_empty(), "{line}");
            if line.starts_with("# TYPE") {
                assert!(["counter", "gauge", "histogram"].contains(&text), "{line}");
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of `{line}`"));
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                for label in labels.split(',') {
                    let (key, quoted) = label.split_once('=').unwrap_or_else(|| panic!("{line}"));
                    assert!(is_metric_name(key) && quoted.starts_with('"') && quoted.ends_with('"'), "{line}");
                }
                name
            }
            None => series,
        };
        assert!(is_metric_name(name), "{line}");
        samples.insert(series.to_owned(), value);
    }
    assert_eq!(samples["phasebench_requests_total{endpoint=\"completions\",status=\"200\"}"], 1.0);
    assert_eq!(samples["phasebench_requests_total{endpoint=\"completions\",status=\"404\"}"], 1.0);
    assert_eq!(samples["phasebench_prompt_tokens_total"], 9.0);
    assert_eq!(samples["phasebench_generated_tokens_total"], 5.0);
    // The first token comes from the prefill, the other four from steps.
    assert_eq!(samples["phasebench_decode_step_seconds_count"], 4.0);
    assert_eq!(samples["phasebench_batch_size_bucket{le=\"+Inf\"}"], 4.0);
    assert_eq!(samples["phasebench_running_sequences"], 0.0);
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[test]
fn bad_command_lines_exit_2_with_a_clear_error() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    let cases: [(&[&str], &str); 4] = [
        (&["serve", "--model", "tinyy", "--port", "0"], "unknown model preset"),
        (&["serve", "--model", "tiny", "--port", &busy_port], "cannot listen on 127.0.0.1"),
        (&["serve", "--model", "tiny", "--port", "0", "--device", "cuda"], "CPU model only"),
        (&["serve", "--model", "tiny", "--max-batch", "0"], "--max-batch"),
    ];
    for (args, message) in cases {
        let output = Command::new(BINARY).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn sigterm_lets_the_stream_in_flight_finish_and_exits_0() {
    let mut server = Server::start(&[]);
    let mut stream = connect(server.port).unwrap();
    send(&mut stream, "POST", "/v1/completions", Some(&completion(json!("bye"), 300, true).to_string())).unwrap();
    let mut reader = BufReader::new(stream);
    assert_eq!(read_head(&mut reader).unwrap().0, 200);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("\"finish_reason\":\"length\"") && rest.contains("data: [DONE]"), "{rest}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(TcpStream::connect(("127.0.0.1", server.port)).is_err(), "still accepting after the stop");
}

/// The official `openai` Python package against the server
/// (scripts/openai-client-check.py); skipped where it is not installed,
/// unless PHASEBENCH_REQUIRE_OPENAI=1 (CI), where its absence fails.
#[test]
fn the_official_python_client_streams_and_counts() {
    let importable =
        Command::new("python3").args(["-c", "import openai"]).output().is_ok_and(|output| output.status.success());
    if !importable {
        assert!(
            std::env::var("PHASEBENCH_REQUIRE_OPENAI").as_deref() != Ok("1"),
            "PHASEBENCH_REQUIRE_OPENAI=1 but python3 cannot import openai (PYTHONPATH?)"
        );
        eprintln!("skipped: python3 cannot import openai");
        return;
    }
    let server = Server::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/openai-client-check.py");
    let output = Command::new("python3")
        .args([script, &format!("http://127.0.0.1:{}/v1", server.port), "tiny"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
