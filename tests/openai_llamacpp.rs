//! The `openai` engine against a server no one here wrote: llama.cpp's, as
//! PyPI's `llama-cpp-python[server]` ships it, on a random-weight GGUF of
//! the `tiny` shape written with the `gguf` package
//! (`peers/llm/make_gguf.py`).
//!
//! llama-cpp-python compiles llama.cpp for about ten minutes, so CI does not
//! install it: this test runs where `$PHASEBENCH_PEER_PYTHON` (default
//! `python3`) can import `llama_cpp` and `gguf`, says it skipped otherwise,
//! and fails instead of skipping when `PHASEBENCH_REQUIRE_LLAMACPP=1`.
//! `peers/serving/run.sh` measures the same server at load, with its output
//! committed.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{root, run, status, summary, Scenario};

/// The Python that has llama-cpp-python, if there is one.
fn peer_python() -> Option<String> {
    let python = std::env::var("PHASEBENCH_PEER_PYTHON").unwrap_or_else(|_| "python3".into());
    let usable = Command::new(&python)
        .args(["-c", "import llama_cpp, gguf"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    let required = std::env::var("PHASEBENCH_REQUIRE_LLAMACPP").is_ok_and(|v| v == "1");
    match (usable, required) {
        (true, _) => Some(python),
        (false, true) => panic!("PHASEBENCH_REQUIRE_LLAMACPP=1 but `{python}` cannot import llama_cpp and gguf"),
        (false, false) => {
            eprintln!("skipped: `{python}` cannot import llama_cpp and gguf (set PHASEBENCH_PEER_PYTHON)");
            None
        }
    }
}

/// The server process, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether `GET /v1/models` answers 200.
fn lists_models(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

#[test]
fn the_openai_engine_measures_llama_cpp_server() {
    let Some(python) = peer_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny-f32.gguf");
    let made = Command::new(&python)
        .arg(root().join("peers/llm/make_gguf.py"))
        .args(["--preset", "tiny", "--out"])
        .arg(&gguf)
        .output()
        .unwrap();
    assert!(made.status.success(), "make_gguf.py: {}", String::from_utf8_lossy(&made.stderr));

    let port = free_port();
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let child = Command::new(&python)
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(&gguf)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--n_threads", "2", "--n_ctx", "2048"])
        // Queue concurrent requests instead of cutting off the one streaming.
        .args(["--interrupt_requests", "False"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _server = Server(child);
    let started = Instant::now();
    while !lists_models(port) {
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        assert!(started.elapsed() < Duration::from_secs(60), "llama.cpp's server did not start:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Greedy and end-of-sequence forbidden (token 2), so every request
    // decodes all 16 tokens; no `model`: the engine takes the one listed.
    let scenario = Scenario::new(&format!(
        r#"scenario: llamacpp
engines:
  llamacpp: {{ kind: openai, url: "http://127.0.0.1:{port}/v1", extra: '{{"temperature": 0, "logit_bias": {{"2": -100}}}}' }}
phases:
  - name: p
    workloads:
      - name: completions
        engine: llamacpp
        op: generate
        with: {{ prompt_tokens: 24, max_tokens: 16 }}
        load: {{ concurrency: 2 }}
        iterations: 8
        warmup: 1x
"#
    ));
    let output = scenario.run(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(status(&output), 0, "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    let record = run(&results, "completions");
    assert_eq!((record.operations, record.errors), (8, 0), "{:?}", record.error_messages);
    // llama-cpp-python streams no usage, so the client counts one token per
    // text chunk, and its detokenizer holds back a byte token that ends
    // inside a UTF-8 character until the next: a few chunks carry two.
    assert_eq!(record.counters["usage_counted"], 8, "{:?}", record.counters);
    let output = record.counters["output_tokens"];
    assert!((8 * 14..=8 * 16).contains(&output), "{output} tokens counted of 128 generated");
    assert_eq!(summary(record, "itl").count, output - 8, "one gap between each pair of chunks");
    let (ttft, e2e) = (summary(record, "ttft"), summary(record, "e2e"));
    assert!(ttft.p50 > 0.0 && e2e.p50 > ttft.p50, "ttft {ttft:?}, e2e {e2e:?}");
    // The prompt was sized by calibration in the server's own tokens (its
    // non-streamed answers report usage): 24 asked for.
    assert_eq!(record.counters["input_tokens"], 8 * 24, "{:?}", record.counters);
}
