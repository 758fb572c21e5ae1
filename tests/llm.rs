//! The llm engine through the command line: `inspect logits` against the
//! transformers fixtures, a generation run with its metrics, and every bad
//! model input (missing or truncated weights, impossible shapes, a prompt
//! longer than the context, an unknown preset) refused with exit 2.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{phasebench, root, run, status, summary, Scenario};

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// A copy of a fixture checkpoint that a test may break.
fn copy_fixture(name: &str, into: &Path) -> PathBuf {
    let dir = into.join(name);
    fs::create_dir_all(&dir).unwrap();
    for entry in fs::read_dir(fixture(name)).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

#[test]
fn inspect_logits_matches_the_transformers_reference() {
    for name in ["llama-tiny", "llama-tiny-llama3"] {
        let dir = fixture(name);
        let reference: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
        let tokens: Vec<String> =
            reference["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap().to_string()).collect();
        let output = phasebench()
            .args(["inspect", "logits", "--model"])
            .arg(&dir)
            .args(["--tokens", &tokens.join(","), "--device", "cpu", "--dtype", "f32"])
            .output()
            .unwrap();
        assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
        let ours: Vec<f32> = serde_json::from_slice(&output.stdout).expect("stdout is a JSON array of numbers");
        let theirs: Vec<f32> =
            reference["last_logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(ours.len(), theirs.len());
        let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "{name}: worst difference {worst}");
    }
}

#[test]
fn inspect_logits_on_a_preset_is_seeded() {
    let logits = |seed: &str| {
        let output = phasebench()
            .args(["inspect", "logits", "--model", "tiny", "--tokens", "1,5,9", "--seed", seed])
            .output()
            .unwrap();
        assert_eq!(status(&output), 0);
        serde_json::from_slice::<Vec<f32>>(&output.stdout).unwrap()
    };
    let first = logits("0");
    assert_eq!(first.len(), 2048);
    assert_eq!(first, logits("0"));
    assert_ne!(first, logits("1"));
}

/// `inspect logits` with `model` and `tokens` must exit 2 with `message` on stderr.
fn inspect_refuses(model: &Path, tokens: &str, message: &str) {
    let output =
        phasebench().args(["inspect", "logits", "--model"]).arg(model).args(["--tokens", tokens]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status(&output), 2, "{model:?}: {stderr}");
    assert!(stderr.contains(message), "{model:?}: expected {message:?} in {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A scenario generating 4 tokens after a `prompt_tokens` prompt with `model`.
fn scenario(model: &str, prompt_tokens: u64) -> String {
    format!(
        "scenario: llm\nengines:\n  m: {{ kind: llm, model: \"{model}\" }}\nphases:\n  - name: p\n    workloads:\n      - name: g\n        engine: m\n        op: generate\n        with: {{ prompt_tokens: {prompt_tokens}, max_tokens: 4 }}\n        iterations: 1\n"
    )
}

/// A run of `yaml` must exit 2 with `message` at line 3 (the engine) or 10 (the workload), and write nothing.
fn run_refuses(yaml: &str, line: usize, message: &str) {
    let scenario = Scenario::new(yaml);
    let output = scenario.run(&[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status(&output), 2, "{stderr}");
    assert!(stderr.contains(message), "expected {message:?} in {stderr}");
    assert!(stderr.contains(&format!("scenario.yaml:{line}:")), "expected line {line} in {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!scenario.out().exists(), "a refused run wrote its folder");
}

#[test]
fn bad_models_are_refused_before_anything_runs() {
    let scratch = tempfile::tempdir().unwrap();

    // An unknown preset, with a suggestion.
    run_refuses(&scenario("smal", 8), 3, "unknown model preset `smal`");
    inspect_refuses(Path::new("smal"), "1", "unknown model preset");

    // A directory that does not exist.
    run_refuses(&scenario("./no/such/dir", 8), 3, "does not exist");

    // A checkpoint without weights.
    let missing = copy_fixture("llama-tiny", scratch.path());
    fs::remove_file(missing.join("model.safetensors")).unwrap();
    let missing = missing.display().to_string();
    run_refuses(&scenario(&missing, 8), 3, "holds no *.safetensors file");
    inspect_refuses(Path::new(&missing), "1", "holds no *.safetensors file");

    // A truncated download: one shard loses its tail.
    let truncated = copy_fixture("llama-tiny-llama3", &scratch.path().join("t"));
    let shard = truncated.join("model-00002-of-00002.safetensors");
    let bytes = fs::read(&shard).unwrap();
    fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    run_refuses(&scenario(&truncated.display().to_string(), 8), 3, "truncated");
    inspect_refuses(&truncated, "1", "truncated");

    // Heads that do not divide the width.
    let shapes = copy_fixture("llama-tiny", &scratch.path().join("s"));
    let config = fs::read_to_string(shapes.join("config.json")).unwrap();
    fs::write(shapes.join("config.json"), config.replace("\"num_attention_heads\": 4", "\"num_attention_heads\": 3"))
        .unwrap();
    run_refuses(&scenario(&shapes.display().to_string(), 8), 3, "does not divide");
    inspect_refuses(&shapes, "1", "does not divide");

    // Shapes that disagree with the tensors.
    let mismatch = copy_fixture("llama-tiny", &scratch.path().join("m"));
    let config = fs::read_to_string(mismatch.join("config.json")).unwrap();
    fs::write(mismatch.join("config.json"), config.replace("\"intermediate_size\": 176", "\"intermediate_size\": 180"))
        .unwrap();
    inspect_refuses(&mismatch, "1", "but config.json implies");

    // config.json that is not JSON.
    let garbled = copy_fixture("llama-tiny", &scratch.path().join("g"));
    fs::write(garbled.join("config.json"), "{ not json").unwrap();
    run_refuses(&scenario(&garbled.display().to_string(), 8), 3, "config.json");

    // A prompt longer than the context (2048 for presets, 256 for the fixture).
    run_refuses(&scenario("tiny", 5000), 10, "more than the model's context of 2048");
    run_refuses(
        &scenario(&fixture("llama-tiny").display().to_string(), 254),
        10,
        "257 positions, more than the model's context of 256",
    );
    let too_long = vec!["1"; 300].join(",");
    inspect_refuses(&fixture("llama-tiny"), &too_long, "exceed the model's context of 256");
}

#[test]
fn a_narrow_kv_cache_generates_with_both_attentions_and_an_unknown_type_is_refused() {
    for attention in ["naive", "flash"] {
        let yaml = format!(
            "scenario: llm\nengines:\n  m: {{ kind: llm, model: tiny, kv_dtype: f16, attention: {attention} }}\nphases:\n  - name: p\n    workloads:\n      - name: g\n        engine: m\n        op: generate\n        with: {{ prompt_tokens: 70, max_tokens: 6 }}\n        iterations: 2\n"
        );
        let scenario = Scenario::new(&yaml);
        let output = scenario.run(&[]);
        assert_eq!(status(&output), 0, "{attention}: {}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(run(&scenario.results(), "g").counters["generated_tokens"], 2 * 6, "{attention}");
    }
    let yaml = scenario("tiny", 8).replace("model: \"tiny\"", "model: tiny, kv_dtype: f8");
    run_refuses(&yaml, 3, "kv_dtype");
}

#[test]
fn generation_records_latencies_rates_and_time_shares() {
    let yaml = "scenario: llm\nengines:\n  m: { kind: llm, model: tiny, threads: 1 }\nphases:\n  - name: p\n    workloads:\n      - name: g\n        engine: m\n        op: generate\n        with: { prompt_tokens: 16, max_tokens: 8 }\n        iterations: 3\n";
    let scenario = Scenario::new(yaml);
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    let record = run(&results, "g");
    assert_eq!(summary(record, "ttft").count, 3);
    assert_eq!(summary(record, "itl").count, 3 * 7, "every gap after the first token");
    assert_eq!(summary(record, "decode_rate").count, 3);
    assert_eq!(record.counters["prompt_tokens"], 3 * 16);
    assert_eq!(record.counters["generated_tokens"], 3 * 8);
    // The categories are parts of one call: together no more than the whole.
    let shares: f64 = phasebench::engines::llm::time_share_metrics()
        .iter()
        .map(|name| {
            assert_eq!(record.metrics[*name].part_of.as_deref(), Some("latency"));
            summary(record, name).mean
        })
        .sum();
    let e2e = summary(record, "e2e").mean;
    assert!(shares > 0.3 * e2e && shares <= e2e * 1.01, "shares {shares} of e2e {e2e}");
}

#[test]
fn llm_cpu_scenario_smoke_runs_and_shows_where_the_time_goes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = phasebench()
        .args(["run", "--smoke", "--quiet", "--out"])
        .arg(&out)
        .arg(root().join("scenarios/llm-cpu.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(status(&output), 0, "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for shown in ["ttft ", "decode_rate ", "time shares of latency: ", "bottleneck: ", "decode_rate.p50 > "] {
        assert!(stdout.contains(shown), "the summary lacks {shown:?}:\n{stdout}");
    }
    let results = phasebench::results::store::load(&out.join("results.json")).unwrap();
    assert!(results.smoke && results.complete);
    // The experiment ran both arms at every prompt length.
    for arm in ["baseline", "flash"] {
        for n in [256, 1024, 2048] {
            let id = format!("flash-attention:{arm}#1[prompt={n}]");
            assert!(results.runs.iter().any(|run| run.id == id), "no run {id}");
        }
    }
}

#[test]
fn text_prompts_use_the_checkpoint_tokenizer_like_transformers() {
    let dir = fixture("llama-tiny");
    let reference: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("tokenizer_reference.json")).unwrap()).unwrap();
    let model = dir.display().to_string();
    for entry in reference["encodings"].as_array().unwrap() {
        let text = entry["text"].as_str().unwrap();
        let expected: Vec<u32> =
            entry["ids"].as_array().unwrap().iter().map(|id| id.as_u64().unwrap() as u32).collect();
        assert_eq!(phasebench::engines::llm::text_tokens(&model, text).unwrap(), expected, "{text:?}");
    }

    // `inspect logits --text` is `--tokens` of the same ids.
    let logits = |args: &[&str]| {
        let output = phasebench().args(["inspect", "logits", "--model", &model]).args(args).output().unwrap();
        assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
        output.stdout
    };
    assert_eq!(logits(&["--text", "Hello, world"]), logits(&["--tokens", "1,154,59"]));

    // A scenario prompt is tokenized once: 3 tokens per call.
    let yaml = format!(
        "scenario: llm\nengines:\n  m: {{ kind: llm, model: \"{model}\" }}\nphases:\n  - name: p\n    workloads:\n      - name: g\n        engine: m\n        op: generate\n        with: {{ prompt: \"Hello, world\", max_tokens: 4 }}\n        iterations: 2\n        warmup: 0x\n"
    );
    let scenario = Scenario::new(&yaml);
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(run(&scenario.results(), "g").counters["prompt_tokens"], 2 * 3);

    // Without tokenizer.json a text prompt is refused where it is written.
    let without = fixture("llama-tiny-llama3").display().to_string();
    run_refuses(&yaml.replace(&model, &without), 10, "there is no");
    let output = phasebench().args(["inspect", "logits", "--model", &without, "--text", "Hello"]).output().unwrap();
    assert_eq!(status(&output), 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("tokenizer.json"));
}
