//! Peer benchmark: candle-transformers' `models::llama` on CPU, f32, random
//! weights made from a seed (no hub downloads).
//!
//! For each preset it measures
//!   * prefill: one forward of the whole prompt (KV cache on, fresh cache),
//!     producing the last position's logits, for each prompt length;
//!   * decode: after a prefill of `--decode-prompt` tokens, `--decode-gen`
//!     greedy (argmax) steps of one token each with the KV cache; tok/s is
//!     gen / wall time of those steps (the prefill is not counted).
//! Each measurement is repeated `--reps` times after one untimed warm-up;
//! median, min and max are reported. Output: one JSON line per measurement.
//!
//! Usage: candle-peer [--preset small|base|all] [--reps N] [--prefill 128,2048]
//!                    [--decode-prompt 128] [--decode-gen 64] [--seed S]
//! Threads: candle's CPU matmul uses RAYON_NUM_THREADS (default: all cores).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama::{Cache, Config, Llama};
use std::collections::HashMap;
use std::time::Instant;

struct Preset {
    name: &'static str,
    vocab: usize,
    dim: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    hidden: usize,
    max_ctx: usize,
}

const PRESETS: [Preset; 2] = [
    Preset {
        name: "small",
        vocab: 32000,
        dim: 288,
        layers: 6,
        heads: 6,
        kv_heads: 6,
        hidden: 768,
        max_ctx: 2048,
    },
    Preset {
        name: "base",
        vocab: 32000,
        dim: 768,
        layers: 12,
        heads: 12,
        kv_heads: 12,
        hidden: 2048,
        max_ctx: 2048,
    },
];

fn config(p: &Preset) -> Config {
    Config {
        hidden_size: p.dim,
        intermediate_size: p.hidden,
        vocab_size: p.vocab,
        num_hidden_layers: p.layers,
        num_attention_heads: p.heads,
        num_key_value_heads: p.kv_heads,
        use_flash_attn: false,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        bos_token_id: Some(1),
        eos_token_id: None,
        rope_scaling: None,
        max_position_embeddings: p.max_ctx,
        tie_word_embeddings: true,
    }
}

/// SplitMix64: small, seedable, good enough for benchmark weights.
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// uniform in [-1, 1)
    fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Uniform values with standard deviation `std` (uniform on [-a, a] has std a/sqrt(3)).
fn rand_tensor(rng: &mut Rng, shape: (usize, usize), std: f32, dev: &Device) -> candle_core::Result<Tensor> {
    let a = std * 3f32.sqrt();
    let v: Vec<f32> = (0..shape.0 * shape.1).map(|_| rng.unit() * a).collect();
    Tensor::from_vec(v, shape, dev)
}

fn build_weights(p: &Preset, seed: u64, dev: &Device) -> candle_core::Result<HashMap<String, Tensor>> {
    let mut rng = Rng(seed);
    let mut w = HashMap::new();
    let kv_dim = p.dim / p.heads * p.kv_heads;
    // Embedding (also the tied output head): std 0.02 like common inits.
    w.insert("model.embed_tokens.weight".into(), rand_tensor(&mut rng, (p.vocab, p.dim), 0.02, dev)?);
    let ones = |n: usize| Tensor::ones(n, DType::F32, dev);
    for l in 0..p.layers {
        let pre = format!("model.layers.{l}");
        // linear weights are (out, in); std 1/sqrt(in) keeps activations O(1)
        let s_in = 1.0 / (p.dim as f32).sqrt();
        let s_hid = 1.0 / (p.hidden as f32).sqrt();
        w.insert(format!("{pre}.self_attn.q_proj.weight"), rand_tensor(&mut rng, (p.dim, p.dim), s_in, dev)?);
        w.insert(format!("{pre}.self_attn.k_proj.weight"), rand_tensor(&mut rng, (kv_dim, p.dim), s_in, dev)?);
        w.insert(format!("{pre}.self_attn.v_proj.weight"), rand_tensor(&mut rng, (kv_dim, p.dim), s_in, dev)?);
        w.insert(format!("{pre}.self_attn.o_proj.weight"), rand_tensor(&mut rng, (p.dim, p.dim), s_in, dev)?);
        w.insert(format!("{pre}.mlp.gate_proj.weight"), rand_tensor(&mut rng, (p.hidden, p.dim), s_in, dev)?);
        w.insert(format!("{pre}.mlp.up_proj.weight"), rand_tensor(&mut rng, (p.hidden, p.dim), s_in, dev)?);
        w.insert(format!("{pre}.mlp.down_proj.weight"), rand_tensor(&mut rng, (p.dim, p.hidden), s_hid, dev)?);
        w.insert(format!("{pre}.input_layernorm.weight"), ones(p.dim)?);
        w.insert(format!("{pre}.post_attention_layernorm.weight"), ones(p.dim)?);
    }
    w.insert("model.norm.weight".into(), ones(p.dim)?);
    Ok(w)
}

fn prompt_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng(seed ^ 0x5EED_70C5);
    (0..n).map(|_| (rng.next_u64() % vocab as u64) as u32).collect()
}

fn argmax(logits: &Tensor) -> candle_core::Result<(u32, bool)> {
    let v: Vec<f32> = logits.flatten_all()?.to_vec1()?;
    let mut best = 0usize;
    let mut finite = true;
    for (i, &x) in v.iter().enumerate() {
        if !x.is_finite() {
            finite = false;
        }
        if x > v[best] {
            best = i;
        }
    }
    Ok((best as u32, finite))
}

/// Fresh cache + one forward of the prompt; returns (seconds, next token, cache).
fn prefill(model: &Llama, cfg: &Config, toks: &[u32], dev: &Device) -> candle_core::Result<(f64, u32, Cache, bool)> {
    let mut cache = Cache::new(true, DType::F32, cfg, dev)?;
    let input = Tensor::new(toks, dev)?.unsqueeze(0)?;
    let t = Instant::now();
    let logits = model.forward(&input, 0, &mut cache)?;
    let (next, finite) = argmax(&logits)?;
    Ok((t.elapsed().as_secs_f64(), next, cache, finite))
}

fn decode(model: &Llama, cfg: &Config, toks: &[u32], gen: usize, dev: &Device) -> candle_core::Result<(f64, Vec<u32>)> {
    let (_, mut next, mut cache, _) = prefill(model, cfg, toks, dev)?;
    let mut out = Vec::with_capacity(gen);
    let mut pos = toks.len();
    let t = Instant::now();
    for _ in 0..gen {
        let input = Tensor::new(&[next], dev)?.unsqueeze(0)?;
        let logits = model.forward(&input, pos, &mut cache)?;
        next = argmax(&logits)?.0;
        out.push(next);
        pos += 1;
    }
    Ok((t.elapsed().as_secs_f64(), out))
}

fn stats(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    let med = if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) };
    (med, v[0], v[n - 1])
}

fn main() -> candle_core::Result<()> {
    let mut which = "all".to_string();
    let mut reps = 3usize;
    let mut prefills = vec![128usize, 2048];
    let mut decode_prompt = 128usize;
    let mut decode_gen = 64usize;
    let mut seed = 1234u64;
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let val = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--preset" => which = val,
            "--reps" => reps = val.parse().expect("--reps N"),
            "--prefill" => prefills = val.split(',').filter(|s| !s.is_empty()).map(|s| s.parse().expect("--prefill a,b")).collect(),
            "--decode-prompt" => decode_prompt = val.parse().expect("--decode-prompt N"),
            "--decode-gen" => decode_gen = val.parse().expect("--decode-gen N"),
            "--seed" => seed = val.parse().expect("--seed S"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(reps >= 1);
    let dev = Device::Cpu;
    let threads = candle_core::utils::get_num_threads();

    for p in PRESETS.iter().filter(|p| which == "all" || which == p.name) {
        let cfg = config(p);
        let t_load = Instant::now();
        let weights = build_weights(p, seed, &dev)?;
        let n_params: usize = weights.values().map(|t| t.elem_count()).sum();
        let vb = VarBuilder::from_tensors(weights, DType::F32, &dev);
        let model = Llama::load(vb, &cfg)?;
        let load_s = t_load.elapsed().as_secs_f64();
        println!(
            "{{\"bench\":\"candle-peer\",\"preset\":\"{}\",\"metric\":\"model\",\"params\":{},\"max_position_embeddings\":{},\"threads\":{},\"build_s\":{:.3}}}",
            p.name, n_params, cfg.max_position_embeddings, threads, load_s
        );

        for &n in &prefills {
            assert!(n <= p.max_ctx, "prompt longer than max context");
            let toks = prompt_tokens(n, p.vocab, seed);
            let (_, _, _, finite) = prefill(&model, &cfg, &toks, &dev)?; // warm-up
            let mut ms = Vec::with_capacity(reps);
            for _ in 0..reps {
                ms.push(prefill(&model, &cfg, &toks, &dev)?.0 * 1e3);
            }
            let (med, lo, hi) = stats(&mut ms);
            println!(
                "{{\"bench\":\"candle-peer\",\"preset\":\"{}\",\"metric\":\"prefill\",\"tokens\":{},\"reps\":{},\"median_ms\":{:.2},\"min_ms\":{:.2},\"max_ms\":{:.2},\"prefill_tok_s\":{:.1},\"logits_finite\":{}}}",
                p.name, n, reps, med, lo, hi, n as f64 / (med / 1e3), finite
            );
        }

        if decode_gen > 0 {
            assert!(decode_prompt + decode_gen <= p.max_ctx);
            let toks = prompt_tokens(decode_prompt, p.vocab, seed);
            let (_, first) = decode(&model, &cfg, &toks, decode_gen, &dev)?; // warm-up
            let mut tps = Vec::with_capacity(reps);
            for _ in 0..reps {
                let (s, out) = decode(&model, &cfg, &toks, decode_gen, &dev)?;
                assert_eq!(out, first, "greedy decode must be deterministic");
                tps.push(decode_gen as f64 / s);
            }
            let (med, lo, hi) = stats(&mut tps);
            let distinct = {
                let mut d = first.clone();
                d.sort();
                d.dedup();
                d.len()
            };
            println!(
                "{{\"bench\":\"candle-peer\",\"preset\":\"{}\",\"metric\":\"decode\",\"prompt\":{},\"gen\":{},\"reps\":{},\"median_tok_s\":{:.2},\"min_tok_s\":{:.2},\"max_tok_s\":{:.2},\"median_ms_per_tok\":{:.3},\"distinct_tokens\":{},\"first_tokens\":{:?}}}",
                p.name, decode_prompt, decode_gen, reps, med, lo, hi, 1e3 / med, distinct, &first[..first.len().min(8)]
            );
        }
    }
    Ok(())
}
