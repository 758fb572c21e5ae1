//! The `openai` engine through the command line, against the scripted server
//! (`tests/common/scripted_server.rs`): time to first token and inter-token
//! latency within loose bounds of the scripted delays with exact token
//! counts, each scripted fault its own group of errors, the API key never
//! written, and bad options refused with exit 2 at their line.
//!
//! The bounds catch a broken clock or a lost token, not noise: they hold on
//! a busy two-core CI machine. `benches/openai_client.rs` measures the
//! client's accuracy itself.

mod common;
#[path = "common/scripted_server.rs"]
mod scripted_server;

use std::path::Path;
use std::time::Duration;

use common::{phasebench, run, status, summary, Scenario};
use scripted_server::{Fault, Script, ScriptedServer};

/// One workload per (name, engine options, `with:` params), each on its own engine.
fn scenario(workloads: &[(&str, String, &str)], iterations: u32, concurrency: u32) -> String {
    let mut yaml = String::from("scenario: openai\nengines:\n");
    for (name, engine, _) in workloads {
        yaml.push_str(&format!("  {name}: {{ kind: openai, {engine} }}\n"));
    }
    yaml.push_str("phases:\n  - name: p\n    workloads:\n");
    for (name, _, with) in workloads {
        yaml.push_str(&format!(
            "      - {{ name: {name}, engine: {name}, op: generate, with: {{ {with} }}, iterations: {iterations}, \
             warmup: 0x, load: {{ concurrency: {concurrency} }} }}\n"
        ));
    }
    yaml
}

fn run_ok(scenario: &Scenario) {
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
}

fn ms(seconds: f64) -> f64 {
    seconds * 1e3
}

#[test]
fn ttft_itl_and_token_counts_match_the_script_on_one_stream() {
    matches_the_script(1, 12);
}

#[test]
fn ttft_itl_and_token_counts_match_the_script_on_64_streams() {
    matches_the_script(64, 128);
}

/// `requests` requests on `streams` concurrent streams, each timed within
/// loose bounds of the script, with every token counted.
fn matches_the_script(streams: u32, requests: u32) {
    // 1.5 tokens per word and 7 tokens of template: the calibration must find both.
    let server = ScriptedServer::start(Script { per_word: 1.5, overhead: 7, ..Script::default() });
    let engine = format!("url: \"{}\"", server.url.trim_end_matches("/v1"));
    let scenario = Scenario::new(&scenario(
        &[("scripted", engine, "prompt_tokens: 64, max_tokens: 32, ignore_eos: true")],
        requests,
        streams,
    ));
    run_ok(&scenario);
    let results = scenario.results();
    let record = run(&results, "scripted");
    assert_eq!((record.operations, record.errors), (u64::from(requests), 0));

    // Scripted: first token 20 ms after the request was read, then one every 5 ms.
    let ttft = summary(record, "ttft");
    assert!((19.5..27.0).contains(&ms(ttft.p50)), "ttft p50 {} ms", ms(ttft.p50));
    let itl = summary(record, "itl");
    assert_eq!(itl.count, u64::from(requests) * 31, "one gap between each pair of the 32 tokens");
    assert!((4.0..6.5).contains(&ms(itl.p50)), "itl p50 {} ms", ms(itl.p50));
    let tpot = summary(record, "tpot");
    assert!((4.5..6.5).contains(&ms(tpot.p50)), "tpot p50 {} ms", ms(tpot.p50));
    let e2e = summary(record, "e2e");
    assert!(e2e.p50 > ttft.p50 + 30.0 * 0.004, "e2e p50 {} ms", ms(e2e.p50));

    // Histograms keep three significant digits; the counters are exact.
    let output = summary(record, "output_tokens");
    assert!((31.9..32.1).contains(&output.min) && (31.9..32.1).contains(&output.max), "{output:?}");
    let input = summary(record, "input_tokens");
    assert!((58.0..=70.0).contains(&input.min) && (58.0..=70.0).contains(&input.max), "{input:?}");
    assert_eq!(record.counters["output_tokens"], u64::from(requests) * 32);
    assert_eq!(record.counters["usage_reported"], u64::from(requests));
    assert!(!record.counters.contains_key("usage_counted"));

    // Two calibration requests, then the measured ones, all with the listed
    // model; the streamed ones ask for usage and ignore_eos.
    let exchanges = server.exchanges();
    let calibration: Vec<_> = exchanges.iter().filter(|e| !e.stream).collect();
    assert_eq!(calibration.len(), 2);
    let streamed = server.streamed();
    assert_eq!(streamed.len(), requests as usize);
    for exchange in &streamed {
        assert_eq!(exchange.body["model"], "scripted-model");
        assert_eq!(exchange.body["stream_options"]["include_usage"], true);
        assert_eq!(exchange.body["ignore_eos"], true);
        assert_eq!(exchange.written.len(), 32);
    }
    // Each request's prompt is drawn anew.
    assert_ne!(streamed[0].body["prompt"], streamed[1].body["prompt"]);
}

#[test]
fn chat_without_usage_counts_on_the_client() {
    let server = ScriptedServer::start(Script {
        usage: false,
        first_token: Duration::from_millis(2),
        gap: Duration::from_millis(1),
        tokens: 16,
        ..Script::default()
    });
    let engine = format!("url: \"{}\", api: chat, model: m1, extra: '{{\"top_p\": 0.5}}'", server.url);
    let scenario = Scenario::new(&scenario(&[("chat", engine, "prompt_tokens: 20, max_tokens: 16")], 6, 1));
    run_ok(&scenario);
    let results = scenario.results();
    let record = run(&results, "chat");
    assert_eq!((record.operations, record.errors), (6, 0));
    // One token per text chunk (the role-only chunk carries none); one per word.
    assert_eq!(record.counters["output_tokens"], 6 * 16);
    assert!((15.9..16.1).contains(&summary(record, "output_tokens").max));
    assert_eq!(record.counters["usage_counted"], 6);
    assert_eq!(record.counters["input_tokens"], 6 * 20);
    for exchange in server.streamed() {
        assert_eq!(exchange.path, "/v1/chat/completions");
        assert_eq!(exchange.body["model"], "m1");
        assert_eq!(exchange.body["top_p"], 0.5);
        assert_eq!(exchange.body["messages"][0]["role"], "user");
        assert!(exchange.body.get("ignore_eos").is_none());
    }
}

#[test]
fn each_fault_is_its_own_group_of_errors() {
    let quick = |fault| Script {
        first_token: Duration::from_millis(1),
        gap: Duration::ZERO,
        tokens: 4,
        fault,
        ..Script::default()
    };
    let servers = [
        ("status500", ScriptedServer::start(quick(Fault::Status(500, "engine crashed at step 1234")))),
        ("status429", ScriptedServer::start(quick(Fault::Status(429, "Rate limit reached")))),
        ("dropped", ScriptedServer::start(quick(Fault::Drop { after: 2 }))),
        ("notjson", ScriptedServer::start(quick(Fault::Malformed { after: 1 }))),
        ("nodone", ScriptedServer::start(quick(Fault::NoDone))),
        ("notext", ScriptedServer::start(quick(Fault::NoText))),
        ("stalled", ScriptedServer::start(quick(Fault::Stall(Duration::from_secs(2))))),
    ];
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut workloads: Vec<(&str, String, &str)> = servers
        .iter()
        .map(|(name, server)| {
            (*name, format!("url: \"{}\", model: m, timeout: 300ms", server.url), "prompt: hello there")
        })
        .collect();
    workloads.push(("refused", format!("url: \"http://{closed}/v1\", model: m"), "prompt: hello there"));
    let miscount = ScriptedServer::start(quick(Fault::Miscount));
    workloads.push(("miscount", format!("url: \"{}\", model: m", miscount.url), "prompt_tokens: 64"));
    let scenario = Scenario::new(&scenario(&workloads, 3, 1));
    let output = scenario.run(&[]);
    assert_ne!(status(&output), 2, "{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    let expected = [
        ("status500", "HTTP 500 Internal Server Error: engine crashed at step #"),
        ("status429", "HTTP 429 Too Many Requests: Rate limit reached"),
        ("dropped", "stream broken: "),
        ("notjson", "malformed stream: an event is not a JSON completion chunk"),
        ("nodone", "malformed stream: the stream ended without [DONE]"),
        ("notext", "malformed stream: no text in the response"),
        ("stalled", "timeout after 300ms"),
        ("refused", "connect: connection refused"),
        ("miscount", "prompt length: the server counted the 64-token prompt more than 10% off (see input_tokens)"),
    ];
    for (name, message) in expected {
        let record = run(&results, name);
        assert_eq!((record.operations, record.errors), (0, 3), "{name}: {:?}", record.error_messages);
        assert_eq!(record.error_messages.len(), 1, "{name}: {:?}", record.error_messages);
        let group = &record.error_messages[0];
        assert!(group.message.starts_with(message), "{name}: `{}` is not `{message}…`", group.message);
        assert_eq!(group.count, 3);
    }
    // The miscounted prompts are still recorded, so the user sees the server's count.
    let input = summary(run(&results, "miscount"), "input_tokens");
    assert!((127.0..=129.0).contains(&input.p50), "{input:?}");
}

/// Every file under `dir`, as text.
fn all_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&all_text(&path));
        } else {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    text
}

#[test]
fn the_api_key_is_sent_but_never_written() {
    let key = "sk-test-4f3b2a1c9d8e";
    let server = ScriptedServer::start(Script {
        key: Some(key.into()),
        tokens: 4,
        first_token: Duration::from_millis(1),
        gap: Duration::ZERO,
        ..Script::default()
    });
    let wrong = "sk-wrong-77aa66bb55cc";
    let scenario = Scenario::new(&scenario(
        &[
            ("keyed", format!("url: \"{}\", api_key_env: PB_TEST_KEY", server.url), "prompt_tokens: 16"),
            ("wrong", format!("url: \"{}\", model: m, api_key_env: PB_WRONG_KEY", server.url), "prompt: hi"),
        ],
        3,
        1,
    ));
    let output = phasebench()
        .arg("run")
        .arg(&scenario.file)
        .arg("--out")
        .arg(scenario.out())
        .env("PB_TEST_KEY", key)
        .env("PB_WRONG_KEY", wrong)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(status(&output), 2, "{stderr}");
    let results = scenario.results();
    assert_eq!(run(&results, "keyed").operations, 3);
    let wrong_run = run(&results, "wrong");
    assert_eq!(wrong_run.error_messages[0].message, "HTTP 401 Unauthorized: Incorrect API key provided");
    let written = all_text(&scenario.out());
    assert!(written.contains("PB_TEST_KEY"), "the variable's name is kept");
    for secret in [key, wrong] {
        assert!(!written.contains(secret) && !stdout.contains(secret) && !stderr.contains(secret));
    }
}

#[test]
fn dataset_prompts_are_drawn_from_the_seed() {
    let server = ScriptedServer::start(Script {
        tokens: 2,
        first_token: Duration::from_millis(1),
        gap: Duration::ZERO,
        ..Script::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("set.jsonl");
    std::fs::write(
        &dataset,
        "{\"conversations\": [{\"from\": \"human\", \"value\": \"alpha one\"}, {\"from\": \"gpt\", \"value\": \"x\"}]}\n\
         {\"messages\": [{\"role\": \"user\", \"content\": \"beta two\"}]}\n\
         {\"conversations\": [{\"from\": \"human\", \"value\": \"gamma three\"}]}\n",
    )
    .unwrap();
    let with = format!("dataset: \"{}\", max_tokens: 2", dataset.display());
    let prompts = || {
        server.clear();
        let scenario = Scenario::new(&scenario(&[("set", format!("url: \"{}\"", server.url), &with)], 12, 1));
        run_ok(&scenario);
        server.streamed().iter().map(|e| e.body["prompt"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let first = prompts();
    assert_eq!(first.len(), 12);
    for prompt in &first {
        assert!(["alpha one", "beta two", "gamma three"].contains(&prompt.as_str()), "{prompt}");
    }
    assert!(first.iter().any(|p| p != &first[0]), "draws vary: {first:?}");
    assert_eq!(prompts(), first, "the same seed draws the same prompts");
}

#[test]
fn bad_options_are_refused_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, "{\"messages\": []}\n{oops\n").unwrap();
    let missing = dir.path().join("missing.json");
    // (engine options, `with:` params, line of the fault, message)
    let cases: Vec<(String, String, usize, String)> = vec![
        ("url: \"ftp://host/v1\"".into(), "prompt: hi".into(), 3, "not an http or https URL".into()),
        ("url: \"localhost:8000\"".into(), "prompt: hi".into(), 3, "URL".into()),
        ("url: \"http://h/v1\", extra: '{\"top_p\": '".into(), "prompt: hi".into(), 3, "`extra` is not JSON".into()),
        ("url: \"http://h/v1\", extra: '[1]'".into(), "prompt: hi".into(), 3, "must be a JSON object".into()),
        (
            "url: \"http://h/v1\", api_key_env: PB_SURELY_UNSET_VARIABLE".into(),
            "prompt: hi".into(),
            3,
            "environment variable `PB_SURELY_UNSET_VARIABLE` is not set".into(),
        ),
        ("url: \"http://h/v1\"".into(), format!("dataset: \"{}\"", missing.display()), 7, "cannot read".into()),
        ("url: \"http://h/v1\"".into(), format!("dataset: \"{}\"", broken.display()), 7, "line 2".into()),
        ("url: \"http://h/v1\"".into(), "prompt: hi, dataset: x.json".into(), 7, "both `prompt` and `dataset`".into()),
    ];
    for (engine, with, line, message) in cases {
        let yaml = format!(
            "scenario: bad\nengines:\n  e: {{ kind: openai, {engine} }}\nphases:\n  - name: p\n    workloads:\n\
             \x20     - {{ name: w, engine: e, op: generate, with: {{ {with} }}, iterations: 1 }}\n"
        );
        let scenario = Scenario::new(&yaml);
        let output = scenario.run(&[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(status(&output), 2, "{engine} {with}: {stderr}");
        assert!(stderr.contains(&message), "{engine} {with}: expected {message:?} in {stderr}");
        assert!(stderr.contains(&format!("scenario.yaml:{line}:")), "{engine} {with}: line {line} in {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_server_without_models_is_a_clear_error() {
    let server = ScriptedServer::start(Script { models: vec![], ..Script::default() });
    let scenario = Scenario::new(&scenario(&[("empty", format!("url: \"{}\"", server.url), "prompt: hi")], 1, 1));
    let output = scenario.run(&[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stderr.contains("lists no models") || stdout.contains("lists no models"),
        "status {}: {stdout}{stderr}",
        status(&output)
    );
}
