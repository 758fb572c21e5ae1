//! phasebench against llama.cpp on the same GGUF files: the last position's
//! logits within a tolerance per type, and the same 16 greedy tokens.
//!
//! `peers/llm/gguf_reference.py` writes the files with the `gguf` package
//! (and, where llama-cpp-python is installed, quantizes Q4_K with llama.cpp
//! and asks llama.cpp for its answers). Where llama-cpp-python is present
//! (`PHASEBENCH_LLAMACPP_PYTHON`, or a `python3` that imports `llama_cpp`)
//! the answers are llama.cpp's own, made in this run; elsewhere they are the
//! committed `tests/fixtures/gguf/reference.json`, and the regenerated files
//! must hash as the reference says they did. `.ci/run` installs `gguf` and
//! requires it (`PHASEBENCH_REQUIRE_GGUF_PY`).
//!
//! Tolerances, as a share of the largest |logit| (what llama.cpp computes
//! differently, and the largest difference seen in the run that made the
//! committed reference, in brackets):
//!
//! - f32, the two converted transformers fixtures (one with Llama 3 rope
//!   scaling as `rope_freqs.weight`) and the Qwen2 file (q, k and v biases,
//!   rows not interleaved), 1e-4: both compute in f32; only the order of
//!   additions differs.
//! - f16, 1e-2: llama.cpp rounds the activations to f16 (a relative 5e-4
//!   each) before every product with an f16 matrix; phasebench keeps them f32.
//! - Q8_0, 2e-3: both round the activations to the same 8-bit blocks and
//!   sum the same integer products; what is left is float order and the odd
//!   activation that rounds the other way at a tie (seen: 6.7e-8).
//! - Q4_K, 1e-2: the same with Q8_K blocks of 256 and their 16-value sums.
//!   Each Q4_K matrix alone, the rest of the model f32, agrees to 2–5e-7;
//!   with every matrix Q4_K the difference is 6.4e-3, from a step of
//!   llama.cpp's repacked Q4_K path we have not pinned down. The tolerance
//!   is that figure with room, and the greedy tokens must still match.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::DType;
use phasebench::engines::llm::sampling::argmax;
use phasebench::engines::llm::weights::{Storage, WeightSource};
use phasebench::engines::llm::{AttentionKind, Cache, Model, Profile};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
struct Reference {
    prompt: Vec<u32>,
    files: std::collections::BTreeMap<String, Answer>,
}

#[derive(Deserialize)]
struct Answer {
    sha256: String,
    last_logits: Vec<f32>,
    greedy: Vec<u32>,
}

fn tolerance(kind: &str) -> f32 {
    match kind {
        "f32" | "fixture" | "fixture-llama3" | "qwen2" => 1e-4,
        "f16" => 1e-2,
        "q4_k" => 1e-2,
        _ => 2e-3,
    }
}

/// A Python that imports `modules`, if there is one.
fn python_with(modules: &str, preferred: Option<std::ffi::OsString>) -> Option<PathBuf> {
    let candidates = preferred.into_iter().map(PathBuf::from).chain([PathBuf::from("python3")]);
    for python in candidates {
        let works = Command::new(&python)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|out| out.status.success());
        if works {
            return Some(python);
        }
    }
    None
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn answers(model: &Model, prompt: &[u32], steps: usize) -> (Vec<f32>, Vec<u32>) {
    let mut cache = Cache::default();
    let mut profile = Profile::default();
    let last = model.forward(prompt, &mut cache, &mut profile, false).unwrap().to_vec1::<f32>().unwrap();
    let mut token = argmax(&last) as u32;
    let mut greedy = Vec::new();
    for _ in 0..steps {
        greedy.push(token);
        let logits = model.forward(&[token], &mut cache, &mut profile, false).unwrap().to_vec1::<f32>().unwrap();
        token = argmax(&logits) as u32;
    }
    (last, greedy)
}

#[test]
fn phasebench_agrees_with_llama_cpp_on_the_same_gguf_files() {
    let Some(python) = python_with("gguf, numpy", std::env::var_os("PHASEBENCH_LLAMACPP_PYTHON")) else {
        assert!(
            std::env::var_os("PHASEBENCH_REQUIRE_GGUF_PY").is_none(),
            "the gguf and numpy Python packages are required here"
        );
        eprintln!("no Python with gguf and numpy (pip install gguf numpy): skipped");
        return;
    };
    let live = python_with("llama_cpp", Some(python.clone().into_os_string())).is_some();
    let dir = tempfile::tempdir().unwrap();
    let script = common::root().join("peers/llm/gguf_reference.py");
    let mut command = Command::new(&python);
    command.arg(&script).arg(dir.path());
    let reference_path = if live {
        let path = dir.path().join("reference.json");
        command.arg("--reference").arg(&path);
        path
    } else {
        common::root().join("tests/fixtures/gguf/reference.json")
    };
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let reference: Reference = serde_json::from_str(&std::fs::read_to_string(&reference_path).unwrap()).unwrap();
    assert_eq!(reference.files.len(), 7, "f32, f16, q8_0, q4_k, qwen2 and the two fixtures");
    eprintln!("llama.cpp's answers: {}", if live { "made in this run" } else { "the committed reference" });
    let mut report = Vec::new();
    for (kind, answer) in &reference.files {
        let mut path = dir.path().join(format!("{kind}.gguf"));
        if !path.exists() {
            // Q4_K comes from llama.cpp's quantizer; without it, the committed copy.
            path = common::root().join(format!("tests/fixtures/gguf/{kind}.gguf"));
        }
        assert_eq!(sha256(&path), answer.sha256, "{kind}: the file is not the one llama.cpp answered for");
        let (config, source) = WeightSource::gguf(&path).unwrap();
        let model = Model::load_as(config, &source, Storage::Dense(DType::F32), AttentionKind::Naive).unwrap();
        let (last, greedy) = answers(&model, &reference.prompt, answer.greedy.len());
        let scale = answer.last_logits.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
        let worst = last.iter().zip(&answer.last_logits).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max) / scale;
        report.push(format!("{kind}: {worst:.2e} of max |logit| {scale:.3}, types {:?}", model.weight_types()));
        eprintln!("{}", report.last().unwrap());
        assert!(
            worst < tolerance(kind),
            "{kind}: logits differ by {worst:e} of the largest (tolerance {:e})",
            tolerance(kind)
        );
        assert_eq!(greedy, answer.greedy, "{kind}: greedy continuations differ");
    }
    eprintln!("{}", report.join("\n"));
}
