//! The llm engine against an outside reference: logits and greedy tokens
//! written by Hugging Face transformers' `LlamaForCausalLM` for two tiny
//! random checkpoints (see tests/fixtures/README.md for what each covers).

use std::path::{Path, PathBuf};

use candle_core::DType;
use phasebench::engines::llm::sampling::argmax;
use phasebench::engines::llm::weights::WeightSource;
use phasebench::engines::llm::{AttentionKind, Cache, Config, Model, Profile};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    tokens: Vec<u32>,
    logits: Vec<Vec<f32>>,
    last_logits: Vec<f32>,
    greedy: Greedy,
}

#[derive(Deserialize)]
struct Greedy {
    prompt: Vec<u32>,
    generated: Vec<u32>,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn reference(dir: &Path) -> Reference {
    let text = std::fs::read_to_string(dir.join("reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("reference.json parses")
}

fn load(dir: &Path, attention: AttentionKind) -> Model {
    let config = Config::from_checkpoint(dir).expect("config.json");
    let source = WeightSource::checkpoint(dir).expect("safetensors");
    Model::load(config, &source, DType::F32, attention).expect("model loads")
}

/// Largest absolute difference between two rows.
fn max_abs_diff(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len(), "logit rows differ in length");
    ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

fn check_logits(name: &str, attention: AttentionKind) {
    let dir = fixture(name);
    let reference = reference(&dir);
    let model = load(&dir, attention);
    let all = model
        .forward(&reference.tokens, &mut Cache::default(), &mut Profile::default(), true)
        .expect("forward")
        .to_vec2::<f32>()
        .expect("logits");
    assert_eq!(all.len(), reference.logits.len());
    for (position, (ours, theirs)) in all.iter().zip(&reference.logits).enumerate() {
        let diff = max_abs_diff(ours, theirs);
        assert!(diff < 1e-4, "{name} {attention:?}: position {position} differs by {diff}");
    }
    // The last position alone, as `inspect logits` computes it.
    let last = model
        .forward(&reference.tokens, &mut Cache::default(), &mut Profile::default(), false)
        .expect("forward")
        .to_vec1::<f32>()
        .expect("logits");
    let diff = max_abs_diff(&last, &reference.last_logits);
    assert!(diff < 1e-4, "{name} {attention:?}: last position differs by {diff}");
}

/// Greedy decoding one token at a time through the KV cache, as `generate` runs.
fn check_greedy(name: &str, attention: AttentionKind) {
    let dir = fixture(name);
    let reference = reference(&dir);
    let model = load(&dir, attention);
    let mut cache = Cache::default();
    let mut profile = Profile::default();
    let mut logits = model.forward(&reference.greedy.prompt, &mut cache, &mut profile, false).expect("prefill");
    let mut generated = Vec::new();
    for _ in 0..reference.greedy.generated.len() {
        let token = argmax(&logits.to_vec1::<f32>().expect("logits"));
        generated.push(token);
        logits = model.forward(&[token], &mut cache, &mut profile, false).expect("decode step");
    }
    assert_eq!(generated, reference.greedy.generated, "{name} {attention:?}: greedy tokens differ");
}

#[test]
fn untied_gqa_f32_checkpoint_matches_transformers() {
    check_logits("llama-tiny", AttentionKind::Naive);
    check_logits("llama-tiny", AttentionKind::Flash);
}

#[test]
fn tied_mqa_llama3_bf16_sharded_checkpoint_matches_transformers() {
    check_logits("llama-tiny-llama3", AttentionKind::Naive);
    check_logits("llama-tiny-llama3", AttentionKind::Flash);
}

#[test]
fn greedy_continuations_match_transformers() {
    for name in ["llama-tiny", "llama-tiny-llama3"] {
        check_greedy(name, AttentionKind::Naive);
        check_greedy(name, AttentionKind::Flash);
    }
}

#[test]
fn both_config_layouts_are_read() {
    let classic = Config::from_checkpoint(&fixture("llama-tiny")).unwrap();
    assert_eq!((classic.heads, classic.kv_heads, classic.head_dim), (4, 2, 16));
    assert_eq!(classic.rope_theta, 50_000.0);
    assert!(classic.rope_scaling.is_none() && !classic.tied);
    let nested = Config::from_checkpoint(&fixture("llama-tiny-llama3")).unwrap();
    assert_eq!(nested.rope_theta, 500_000.0);
    let scaling = nested.rope_scaling.expect("llama3 scaling read from rope_parameters");
    assert_eq!((scaling.factor, scaling.original_context), (8.0, 64));
    assert!(nested.tied && nested.kv_heads == 1);
}
