//! GGUF models: a file written here from a preset's weights, laid out as
//! llama.cpp's converter lays them out (q and k rows interleaved for its
//! rotary), runs as the preset does in f32, f16, Q8_0 and Q4_K; and broken
//! files are refused with the reason, exit status 2, never a panic (a
//! table of mistakes and a property test over mangled files).
//!
//! The comparison with llama.cpp itself is `tests/llm_llamacpp.rs`.

mod common;

use std::path::Path;

use candle_core::DType;
use phasebench::engines::llm::gguf::Gguf;
use phasebench::engines::llm::quant::{QMatrix, QuantType};
use phasebench::engines::llm::weights::{Storage, WeightSource};
use phasebench::engines::llm::{AttentionKind, Cache, Config, Model, Profile};
use proptest::prelude::*;

/// A metadata value as written.
#[derive(Clone)]
enum Meta {
    U32(u32),
    F32(f32),
    Text(&'static str),
}

/// One tensor: name, GGUF dims (innermost first), GGML type id, bytes.
type Tensor = (String, Vec<u64>, u32, Vec<u8>);

/// Writes a GGUF v3 image.
fn write_gguf(meta: &[(String, Meta)], tensors: &[Tensor]) -> Vec<u8> {
    let mut out = Vec::new();
    let string = |out: &mut Vec<u8>, text: &str| {
        out.extend((text.len() as u64).to_le_bytes());
        out.extend(text.as_bytes());
    };
    out.extend(b"GGUF");
    out.extend(3_u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((meta.len() as u64).to_le_bytes());
    for (key, value) in meta {
        string(&mut out, key);
        match value {
            Meta::U32(n) => {
                out.extend(4_u32.to_le_bytes());
                out.extend(n.to_le_bytes());
            }
            Meta::F32(x) => {
                out.extend(6_u32.to_le_bytes());
                out.extend(x.to_le_bytes());
            }
            Meta::Text(text) => {
                out.extend(8_u32.to_le_bytes());
                string(&mut out, text);
            }
        }
    }
    let mut offset = 0_u64;
    for (name, dims, kind, bytes) in tensors {
        string(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        for dim in dims {
            out.extend(dim.to_le_bytes());
        }
        out.extend(kind.to_le_bytes());
        out.extend(offset.to_le_bytes());
        offset += (bytes.len() as u64).div_ceil(32) * 32;
    }
    while out.len() % 32 != 0 {
        out.push(0);
    }
    for (_, _, _, bytes) in tensors {
        out.extend(bytes);
        while out.len() % 32 != 0 {
            out.push(0);
        }
    }
    out
}

/// The test shape: every row a whole Q4_K block, grouped-query attention,
/// an untied head.
fn shape() -> Config {
    Config {
        dim: 256,
        hidden: 512,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        head_dim: 64,
        vocab: 320,
        // As the file stores it (f32).
        eps: f64::from(1e-5_f32),
        rope_theta: 10_000.0,
        rope_scaling: None,
        rope_factors: None,
        qkv_bias: false,
        context: 512,
        tied: false,
    }
}

/// llama.cpp's converter's row order for a q or k projection: each head's
/// rotary pairs made adjacent.
fn permute(values: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let (head_rows, half) = (rows / heads, rows / heads / 2);
    let mut out = vec![0.0; values.len()];
    for head in 0..heads {
        for pair in 0..half {
            for side in 0..2 {
                let to = head * head_rows + pair * 2 + side;
                let from = head * head_rows + side * half + pair;
                out[to * cols..(to + 1) * cols].copy_from_slice(&values[from * cols..(from + 1) * cols]);
            }
        }
    }
    out
}

/// GGML type id and bytes of `values (rows, cols)` stored as `kind`.
fn encode(values: &[f32], rows: usize, cols: usize, kind: &str) -> (u32, Vec<u8>) {
    let quantized = |kind| QMatrix::quantize(kind, values, rows, cols).unwrap().blocks().to_vec();
    match kind {
        "f32" => (0, values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        "f16" => (1, values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()),
        "q8_0" => (8, quantized(QuantType::Q8_0)),
        "q4_k" => (12, quantized(QuantType::Q4K)),
        other => panic!("no type {other}"),
    }
}

/// A GGUF of `config`'s random weights (seed 5), matrices stored as `kind`.
fn gguf_of(config: &Config, kind: &str) -> Vec<u8> {
    gguf_from(config, &WeightSource::Random { seed: 5 }, kind, Vec::new())
}

/// A GGUF of `config` with the tensors of `source`, matrices stored as
/// `kind`, and `extra` tensors after them.
fn gguf_from(config: &Config, source: &WeightSource, kind: &str, extra: Vec<Tensor>) -> Vec<u8> {
    let meta: Vec<(String, Meta)> = vec![
        ("general.architecture".into(), Meta::Text("llama")),
        ("llama.embedding_length".into(), Meta::U32(config.dim as u32)),
        ("llama.feed_forward_length".into(), Meta::U32(config.hidden as u32)),
        ("llama.block_count".into(), Meta::U32(config.layers as u32)),
        ("llama.attention.head_count".into(), Meta::U32(config.heads as u32)),
        ("llama.attention.head_count_kv".into(), Meta::U32(config.kv_heads as u32)),
        ("llama.context_length".into(), Meta::U32(config.context as u32)),
        ("llama.rope.freq_base".into(), Meta::F32(config.rope_theta as f32)),
        ("llama.attention.layer_norm_rms_epsilon".into(), Meta::F32(config.eps as f32)),
    ];
    let tensors: Vec<Tensor> = config
        .tensor_shapes()
        .into_iter()
        .map(|(hf, shape)| {
            let name = phasebench::engines::llm::gguf::gguf_name(&hf).unwrap();
            let mut values =
                source.get(&hf, &shape, DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
            if shape.len() == 1 {
                return (name, dims, 0, values.iter().flat_map(|v| v.to_le_bytes()).collect());
            }
            let (rows, cols) = (shape[0], shape[1]);
            if name.ends_with("attn_q.weight") {
                values = permute(&values, rows, cols, config.heads);
            } else if name.ends_with("attn_k.weight") {
                values = permute(&values, rows, cols, config.kv_heads);
            }
            let (id, bytes) = encode(&values, rows, cols, kind);
            (name, dims, id, bytes)
        })
        .chain(extra)
        .collect();
    write_gguf(&meta, &tensors)
}

/// An F32 `rope_freqs.weight` of `factors`.
fn rope_freqs(factors: &[f32]) -> Tensor {
    let bytes = factors.iter().flat_map(|f| f.to_le_bytes()).collect();
    ("rope_freqs.weight".into(), vec![factors.len() as u64], 0, bytes)
}

#[test]
fn llama_3_scaling_as_rotary_factors_runs_as_the_checkpoint() {
    // The transformers fixture with Llama 3 rope scaling, written as
    // llama.cpp's converter writes it: no scaling metadata, a divisor per
    // frequency pair in `rope_freqs.weight`.
    let dir = common::root().join("tests/fixtures/llama-tiny-llama3");
    let config = Config::from_checkpoint(&dir).unwrap();
    assert!(config.rope_scaling.is_some());
    let source = WeightSource::checkpoint(&dir).unwrap();
    let scaled = config.inverse_frequencies();
    let plain = Config { rope_scaling: None, ..config.clone() }.inverse_frequencies();
    let factors: Vec<f32> = plain.iter().zip(&scaled).map(|(p, s)| (p / s) as f32).collect();
    assert!(factors.iter().any(|f| *f > 1.5), "the fixture's scaling divides some frequencies");
    let file = tempfile::tempdir().unwrap();
    let path = file.path().join("llama3.gguf");
    let plain_config = Config { rope_scaling: None, ..config.clone() };
    std::fs::write(&path, gguf_from(&plain_config, &source, "f32", vec![rope_freqs(&factors)])).unwrap();
    let (read, gguf) = WeightSource::gguf(&path).unwrap();
    assert!(read.rope_factors.is_some());
    let tokens: Vec<u32> = (0..60).map(|i| (i * 7 % 200) as u32 + 3).collect();
    let from_file = Model::load_as(read, &gguf, Storage::Dense(DType::F32), AttentionKind::Naive).unwrap();
    let checkpoint = Model::load(config, &source, DType::F32, AttentionKind::Naive).unwrap();
    let (a, b) = (last_logits(&from_file, &tokens), last_logits(&checkpoint, &tokens));
    assert!(max_relative(&a, &b) < 1e-5, "{}", max_relative(&a, &b));
    // Without the factors the file would be a different model: the check has teeth.
    std::fs::write(&path, gguf_from(&plain_config, &source, "f32", Vec::new())).unwrap();
    let (read, gguf) = WeightSource::gguf(&path).unwrap();
    let unscaled = Model::load_as(read, &gguf, Storage::Dense(DType::F32), AttentionKind::Naive).unwrap();
    assert!(max_relative(&last_logits(&unscaled, &tokens), &b) > 1e-4);
}

fn last_logits(model: &Model, tokens: &[u32]) -> Vec<f32> {
    model.forward(tokens, &mut Cache::default(), &mut Profile::default(), false).unwrap().to_vec1::<f32>().unwrap()
}

fn max_relative(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0_f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / scale).fold(0.0, f32::max)
}

#[test]
fn a_gguf_runs_as_the_preset_it_was_written_from_in_every_type() {
    let config = shape();
    let dir = tempfile::tempdir().unwrap();
    let tokens: Vec<u32> = (0..40).map(|i| (i * 37 % 320) as u32).collect();
    let random = WeightSource::Random { seed: 5 };
    for (kind, storage) in [
        ("f32", Storage::Dense(DType::F32)),
        ("f16", Storage::Dense(DType::F16)),
        ("q8_0", Storage::Quant(QuantType::Q8_0)),
        ("q4_k", Storage::Quant(QuantType::Q4K)),
    ] {
        let path = dir.path().join(format!("{kind}.gguf"));
        std::fs::write(&path, gguf_of(&config, kind)).unwrap();
        let (read, source) = WeightSource::gguf(&path).unwrap();
        assert_eq!(read, config, "{kind}: the metadata gives back the configuration");
        let from_file = Model::load_as(read, &source, Storage::Dense(DType::F32), AttentionKind::Naive).unwrap();
        let preset = Model::load_as(config.clone(), &random, storage, AttentionKind::Naive).unwrap();
        // Same stored values, same kernels: the only difference may be the
        // order rows were permuted in, which moves no value.
        assert_eq!(from_file.bytes_per_token(100), preset.bytes_per_token(100), "{kind}");
        let (a, b) = (last_logits(&from_file, &tokens), last_logits(&preset, &tokens));
        assert!(max_relative(&a, &b) < 1e-5, "{kind}: {}", max_relative(&a, &b));
        // And the quantized model is still the model: close to f32.
        let exact = Model::load_as(config.clone(), &random, Storage::Dense(DType::F32), AttentionKind::Naive).unwrap();
        let drift = max_relative(&b, &last_logits(&exact, &tokens));
        let bound = match kind {
            "f32" => 1e-6,
            "f16" => 0.01,
            "q8_0" => 0.03,
            _ => 0.25,
        };
        assert!(drift < bound, "{kind} drifts {drift} from f32");
    }
}

#[test]
fn without_the_row_order_fix_the_gguf_would_differ() {
    // The check above has teeth: reading q and k as stored (interleaved)
    // gives different logits.
    let config = shape();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f32.gguf");
    std::fs::write(&path, gguf_of(&config, "f32")).unwrap();
    let (read, _) = WeightSource::gguf(&path).unwrap();
    // A file whose q/k were written without the converter's permutation
    // stands for a reader that forgot to undo it.
    let mut unpermuted = gguf_of(&config, "f32");
    let permuted = unpermuted.clone();
    let file = Gguf::parse(&permuted[..], permuted.len() as u64).unwrap();
    for (name, info) in &file.tensors {
        if name.ends_with("attn_q.weight") || name.ends_with("attn_k.weight") {
            let (start, end) = (info.start as usize, (info.start + info.bytes) as usize);
            let rows = info.dims[1];
            let heads = if name.ends_with("attn_q.weight") { config.heads } else { config.kv_heads };
            let fixed = phasebench::engines::llm::gguf::unpermute_rows(&permuted[start..end], rows, heads);
            unpermuted[start..end].copy_from_slice(&fixed);
        }
    }
    let wrong = dir.path().join("wrong.gguf");
    std::fs::write(&wrong, unpermuted).unwrap();
    let tokens: Vec<u32> = (0..20).collect();
    let load = |path: &Path| {
        let (_, source) = WeightSource::gguf(path).unwrap();
        Model::load_as(read.clone(), &source, Storage::Dense(DType::F32), AttentionKind::Naive).unwrap()
    };
    let preset =
        Model::load(config.clone(), &WeightSource::Random { seed: 5 }, DType::F32, AttentionKind::Naive).unwrap();
    let right = max_relative(&last_logits(&load(&path), &tokens), &last_logits(&preset, &tokens));
    let off = max_relative(&last_logits(&load(&wrong), &tokens), &last_logits(&preset, &tokens));
    assert!(right < 1e-5 && off > 1e-3, "right {right}, off {off}");
}

/// The shape of [`small_file`].
fn small() -> Config {
    Config { dim: 32, hidden: 64, layers: 1, heads: 2, kv_heads: 1, head_dim: 16, vocab: 40, ..shape() }
}

/// A small valid file (Q8_0, dim 32) to break.
fn small_file() -> Vec<u8> {
    gguf_of(&small(), "q8_0")
}

/// Rewrites the first metadata value whose key is `key` (a u32 or text of the same length).
fn set_meta(mut file: Vec<u8>, key: &str, value: &[u8]) -> Vec<u8> {
    let mut needle = (key.len() as u64).to_le_bytes().to_vec();
    needle.extend(key.as_bytes());
    let at = file.windows(needle.len()).position(|w| w == needle.as_slice()).expect("key present") + needle.len() + 4;
    let at = if file[at - 4] == 8 { at + 8 } else { at };
    file[at..at + value.len()].copy_from_slice(value);
    file
}

/// The type id of tensor `name` in the file, rewritten.
fn set_tensor_type(mut file: Vec<u8>, name: &str, id: u32) -> Vec<u8> {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend(name.as_bytes());
    let at = file.windows(needle.len()).position(|w| w == needle.as_slice()).expect("tensor present") + needle.len();
    let rank = u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
    let type_at = at + 4 + 8 * rank;
    file[type_at..type_at + 4].copy_from_slice(&id.to_le_bytes());
    file
}

#[test]
fn broken_files_are_refused_with_the_reason_and_exit_status_2() {
    let good = small_file();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() - 100].to_vec(), "truncated: tensor"),
        ("cut in the header", good[..200].to_vec(), "truncated"),
        ("empty", Vec::new(), "too short to be a GGUF file"),
        ("not GGUF", b"PK\x03\x04 a zip file, not a model".to_vec(), "not a GGUF file"),
        (
            "version 1",
            {
                let mut f = good.clone();
                f[4] = 1;
                f
            },
            "GGUF version 1 is not supported",
        ),
        (
            "architecture",
            set_meta(good.clone(), "general.architecture", b"gemma"),
            "architecture `gemma` is not supported",
        ),
        (
            "qwen2 with llama keys",
            set_meta(good.clone(), "general.architecture", b"qwen2"),
            "metadata `qwen2.embedding_length` is missing",
        ),
        (
            "unsupported tensor type",
            set_tensor_type(good.clone(), "blk.0.ffn_up.weight", 13),
            "Q5_K (id 13) is not supported",
        ),
        ("unknown tensor type", set_tensor_type(good.clone(), "blk.0.ffn_up.weight", 99), "unknown tensor type id 99"),
        (
            "width contradicts the tensors",
            set_meta(good.clone(), "llama.embedding_length", &64_u32.to_le_bytes()),
            "token_embd.weight has shape [32, 40], but embedding_length 64",
        ),
        (
            "hidden contradicts the tensors",
            set_meta(good.clone(), "llama.feed_forward_length", &96_u32.to_le_bytes()),
            "tensor `blk.0.ffn_gate.weight` has shape [32, 64], but the metadata implies [32, 96]",
        ),
        (
            "heads contradict the tensors",
            set_meta(good.clone(), "llama.attention.head_count_kv", &2_u32.to_le_bytes()),
            "tensor `blk.0.attn_k.weight` has shape [32, 16], but the metadata implies [32, 32]",
        ),
        (
            "layers contradict the tensors",
            set_meta(good.clone(), "llama.block_count", &2_u32.to_le_bytes()),
            "the file has no tensor `blk.1.attn_norm.weight`",
        ),
        (
            "heads that do not divide",
            set_meta(good.clone(), "llama.attention.head_count", &3_u32.to_le_bytes()),
            "do not divide",
        ),
        (
            "rotary factors of the wrong shape",
            gguf_from(&small(), &WeightSource::Random { seed: 5 }, "q8_0", vec![rope_freqs(&[1.0; 4])]),
            "`rope_freqs.weight` is F32 [4]; the rotary factors of heads of 16 are F32 [8]",
        ),
        (
            "a rotary factor of zero",
            gguf_from(
                &small(),
                &WeightSource::Random { seed: 5 },
                "q8_0",
                vec![rope_freqs(&[1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])],
            ),
            "`rope_freqs.weight` holds 0; rotary factors must be positive",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, reason) in cases {
        let path = dir.path().join(format!("{}.gguf", name.replace(' ', "-")));
        std::fs::write(&path, &bytes).unwrap();
        let error = WeightSource::gguf(&path).err().unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(error.to_string().contains(reason), "{name}: {error}");
        let scenario = dir.path().join(format!("{}.yaml", name.replace(' ', "-")));
        std::fs::write(
            &scenario,
            format!(
                "scenario: g\nengines:\n  m: {{ kind: llm, model: {}, device: cpu }}\nphases:\n  - name: p\n    workloads:\n      - {{ name: w, engine: m, op: prefill, iterations: 1 }}\n",
                path.display()
            ),
        )
        .unwrap();
        let out = dir.path().join(format!("out-{}", name.replace(' ', "-")));
        let output = common::phasebench().arg("run").arg(&scenario).arg("--out").arg(&out).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(reason) && stderr.contains("model"), "{name}: {stderr}");
        assert!(!out.exists(), "{name}: a refused run wrote {}", out.display());
    }
}

#[test]
fn a_gguf_model_takes_no_dtype_and_no_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, small_file()).unwrap();
    for (options, reason) in [
        ("dtype: bf16", "a GGUF file keeps the types it stores"),
        ("dtype: q4_k", "a GGUF file keeps the types it stores"),
    ] {
        let scenario = dir.path().join("s.yaml");
        std::fs::write(
            &scenario,
            format!(
                "scenario: g\nengines:\n  m: {{ kind: llm, model: {}, {options} }}\nphases:\n  - name: p\n    workloads:\n      - {{ name: w, engine: m, op: prefill, iterations: 1 }}\n",
                path.display()
            ),
        )
        .unwrap();
        let output = common::phasebench().arg("validate").arg(&scenario).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{options}: {stderr}");
        assert!(stderr.contains(reason), "{options}: {stderr}");
    }
}

#[test]
fn a_quantized_dtype_needs_rows_of_whole_blocks() {
    // `small` has rows of 288: Q8_0's blocks of 32 fit, Q4_K's of 256 do not.
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.yaml");
    for (dtype, code) in [("q8_0", 0), ("q4_k", 2)] {
        std::fs::write(
            &scenario,
            format!(
                "scenario: g\nengines:\n  m: {{ kind: llm, model: small, dtype: {dtype}, device: cpu }}\nphases:\n  - name: p\n    workloads:\n      - {{ name: w, engine: m, op: prefill, iterations: 1 }}\n"
            ),
        )
        .unwrap();
        let output = common::phasebench().arg("validate").arg(&scenario).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{dtype}: {stderr}");
        if code == 2 {
            assert!(
                stderr.contains("Q4_K stores rows in blocks of 256 values, and this model has rows of 288"),
                "{stderr}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Any mangling of a valid file is either read (and then loads and runs,
    /// or is refused) or refused; nothing panics.
    #[test]
    fn mangled_files_never_panic(
        cut in prop::option::of(0_usize..4000),
        edits in prop::collection::vec((0_usize..4000, any::<u8>()), 0..6),
        word in prop::option::of((0_usize..500, any::<u64>())),
    ) {
        let mut file = small_file();
        for (at, byte) in edits {
            let at = at % file.len();
            file[at] = byte;
        }
        if let Some((at, value)) = word {
            // A u64 somewhere in the header: a length, a count, a dimension or an offset.
            let at = (at * 4).min(file.len() - 8);
            file[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        if let Some(cut) = cut {
            file.truncate(cut.min(file.len()));
        }
        let parsed = Gguf::parse(&file[..], file.len() as u64);
        if let Ok(parsed) = parsed {
            if parsed.config().is_ok() {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("m.gguf");
                std::fs::write(&path, &file).unwrap();
                if let Ok((config, source)) = WeightSource::gguf(&path) {
                    if let Ok(model) = Model::load_as(config, &source, Storage::Dense(DType::F32), AttentionKind::Naive) {
                        let _ = model.forward(&[1, 2, 3], &mut Cache::default(), &mut Profile::default(), false);
                    }
                }
            }
        }
    }
}

#[test]
fn inspect_model_counts_the_bytes_of_the_stored_types() {
    // The committed Q4_K file: 16 matrices of 256-value rows in 144-byte
    // blocks, five f32 norms of 256, and the f32 keys and values of 10
    // positions in 2 layers of 2 kv heads of 64.
    let path = common::root().join("tests/fixtures/gguf/q4_k.gguf");
    let output =
        common::phasebench().args(["inspect", "model", "--positions", "10", "--model"]).arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["weight_types"], serde_json::json!({ "q4_k": 16 }));
    let config = shape();
    let matrices: usize = config
        .tensor_shapes()
        .iter()
        .filter(|(name, shape)| shape.len() == 2 && name != "model.embed_tokens.weight")
        .map(|(_, shape)| shape[0] * shape[1] / 256 * 144)
        .sum();
    let norms = (2 * config.layers + 1) * config.dim * 4;
    let cache = 2 * config.layers * config.kv_heads * config.head_dim * 10 * 4;
    assert_eq!(report["bytes_per_token"], serde_json::json!(matrices + norms + cache));
    // A file that is not a model: exit 2 with the reason.
    let output = common::phasebench().args(["inspect", "model", "--model", "Cargo.toml"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a GGUF file"));
}
