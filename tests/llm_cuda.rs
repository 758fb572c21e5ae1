//! The llm engine on NVIDIA GPUs.
//!
//! - Every kernel family compiles with NVRTC for sm_80 and sm_90. This needs
//!   only libnvrtc (`pip install nvidia-cuda-nvrtc`), so it runs in CI;
//!   with `PHASEBENCH_REQUIRE_NVRTC=1` a missing NVRTC fails instead of
//!   skipping.
//! - Without a GPU, `device: cuda` is refused with exit 2 and `device: auto`
//!   runs on the CPU.
//! - On a GPU: the attention paths against an f64 reference and against each
//!   other on fresh random inputs with poisoned outputs, the sampling kernels
//!   against the host, and CUDA logits against CPU logits on the same
//!   weights. These are `#[ignore]`d, so that a plain `cargo test` lists them
//!   as ignored rather than passed where there is no GPU (libtest has no
//!   run-time skip); `--include-ignored` runs them (scripts/gpu-check.sh),
//!   and then a missing GPU fails them.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::DType;
use common::{phasebench, root, status, Scenario};
use phasebench::engines::llm::cuda::{self, kernels, AttentionScratch, AttentionShape, Buffer, Gpu, Storage};
use phasebench::engines::llm::model::{Cache, Profile};
use phasebench::engines::llm::sampling::Sampler;
use phasebench::engines::llm::weights::WeightSource;
use phasebench::engines::llm::{AttentionKind, Config, Model};
use phasebench::engines::rng::SplitMix;

/// The GPU. The tests that need one run only when asked for
/// (`--include-ignored`), so a missing GPU fails them.
fn gpu(test: &str) -> Gpu {
    if let Err(reason) = cuda::probe::cuda() {
        panic!("{test}: this test needs an NVIDIA GPU and none is usable here: {reason}");
    }
    Gpu::new().expect("CUDA was found, so the GPU must open")
}

/// Whether NVRTC is here to compile kernels; a skip says why, and with
/// `PHASEBENCH_REQUIRE_NVRTC` set (as CI does) a missing NVRTC fails.
fn nvrtc_here() -> bool {
    let Err(missing) = cuda::probe::nvrtc() else { return true };
    assert!(
        std::env::var_os("PHASEBENCH_REQUIRE_NVRTC").is_none(),
        "PHASEBENCH_REQUIRE_NVRTC is set and NVRTC is missing: {missing}"
    );
    eprintln!("skipped: {missing} (pip install nvidia-cuda-nvrtc, then set PHASEBENCH_CUDA_LIBS)");
    false
}

/// A seed that differs on every run (printed, so a failure can be replayed
/// with PHASEBENCH_TEST_SEED).
fn fresh_seed() -> u64 {
    let seed = std::env::var("PHASEBENCH_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("seed {seed}");
    seed
}

#[test]
fn every_kernel_compiles_for_sm80_and_sm90() {
    if !nvrtc_here() {
        return;
    }
    let (major, minor) = kernels::nvrtc_version().unwrap();
    eprintln!("NVRTC {major}.{minor}");
    for arch in ["sm_80", "sm_90"] {
        for family in kernels::FAMILIES {
            let cubin = kernels::compile(family, arch).unwrap_or_else(|log| panic!("{log}"));
            // A CUBIN is an ELF file naming every kernel the family declares.
            assert_eq!(&cubin[..4], b"\x7fELF", "{} for {arch}", family.file);
            for kernel in family.kernels {
                let found = cubin
                    .windows(kernel.len() + 1)
                    .any(|w| &w[..kernel.len()] == kernel.as_bytes() && w[kernel.len()] == 0);
                assert!(found, "{} for {arch} lacks kernel {kernel}", family.file);
            }
        }
    }
}

#[test]
fn a_compile_error_names_the_file_and_line() {
    if !nvrtc_here() {
        return;
    }
    let broken = kernels::Family {
        file: "broken.cu",
        source: "\n\nextern \"C\" __global__ void k() { nope; }\n",
        kernels: &["k"],
    };
    let error = kernels::compile(&broken, "sm_90").unwrap_err();
    assert!(error.contains("broken.cu(3)"), "{error}");
}

fn cuda_scenario(device: &str) -> Scenario {
    Scenario::new(&format!(
        "scenario: gpu
engines:
  m: {{ kind: llm, model: tiny, device: {device} }}
phases:
  - name: p
    workloads:
      - {{ name: g, engine: m, op: generate, with: {{ prompt_tokens: 8, max_tokens: 4 }}, iterations: 2, warmup: 0x }}
"
    ))
}

#[test]
fn device_cuda_without_cuda_is_refused_before_running() {
    if cuda::probe::cuda().is_ok() {
        eprintln!("skipped: this machine has a usable GPU");
        return;
    }
    let scenario = cuda_scenario("cuda");
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("device") && stderr.contains("CUDA"), "{stderr}");
    assert!(stderr.contains("not found") || stderr.contains("GPU"), "{stderr}");
    assert!(!scenario.out().exists(), "nothing is written for a refused scenario");
}

#[test]
fn device_auto_runs_everywhere() {
    let scenario = cuda_scenario("auto");
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    if cuda::probe::cuda().is_err() {
        assert!(String::from_utf8_lossy(&output.stderr).contains("runs on the CPU"));
    }
}

#[test]
fn inspect_cuda_says_what_it_found() {
    let output = phasebench().args(["inspect", "cuda"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    match cuda::probe::cuda() {
        Ok(_) => assert!(output.status.success() && text.contains("driver"), "{text}"),
        Err(_) => {
            assert_eq!(output.status.code(), Some(1));
            assert!(text.contains("not usable"), "{text}");
        }
    }
}

// ---------------------------------------------------------------- on a GPU

/// Host values in a storage type, and the values it really holds.
fn encode(storage: Option<Storage>, values: &[f32]) -> (Vec<u8>, Vec<f64>) {
    match storage {
        Some(Storage::F32) => {
            (values.iter().flat_map(|v| v.to_le_bytes()).collect(), values.iter().map(|&v| f64::from(v)).collect())
        }
        Some(Storage::Bf16) => {
            let held: Vec<half::bf16> = values.iter().map(|&v| half::bf16::from_f32(v)).collect();
            (
                held.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect(),
                held.iter().map(|v| f64::from(v.to_f32())).collect(),
            )
        }
        None => {
            let held: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
            (
                held.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect(),
                held.iter().map(|v| f64::from(v.to_f32())).collect(),
            )
        }
    }
}

fn decode(storage: Option<Storage>, bytes: &[u8]) -> Vec<f64> {
    match storage {
        Some(Storage::F32) => {
            bytes.chunks_exact(4).map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect()
        }
        Some(Storage::Bf16) => {
            bytes.chunks_exact(2).map(|b| f64::from(half::bf16::from_le_bytes([b[0], b[1]]).to_f32())).collect()
        }
        None => bytes.chunks_exact(2).map(|b| f64::from(half::f16::from_le_bytes([b[0], b[1]]).to_f32())).collect(),
    }
}

/// ‖a − b‖ / ‖b‖, infinite when a holds a NaN (an unwritten, poisoned element).
fn relative(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    if a.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let norm: f64 = b.iter().map(|y| y * y).sum();
    (diff / norm.max(1e-300)).sqrt()
}

/// Causal grouped-query attention in f64.
fn reference(q: &[f64], k: &[f64], v: &[f64], shape: &AttentionShape) -> Vec<f64> {
    let AttentionShape { seq, offset, heads, kv_heads, head_dim: d } = *shape;
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0.0; seq * heads * d];
    for h in 0..heads {
        let g = h / (heads / kv_heads);
        for i in 0..seq {
            let visible = offset + i + 1;
            let qi = &q[(i * heads + h) * d..][..d];
            let scores: Vec<f64> = (0..visible)
                .map(|j| (0..d).map(|e| qi[e] * k[(j * kv_heads + g) * d + e]).sum::<f64>() * scale)
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = weights.iter().sum();
            for e in 0..d {
                out[(i * heads + h) * d + e] =
                    (0..visible).map(|j| weights[j] * v[(j * kv_heads + g) * d + e]).sum::<f64>() / total;
            }
        }
    }
    out
}

struct Inputs {
    q: Buffer,
    k: Buffer,
    v: Buffer,
    out: Buffer,
    expected: Vec<f64>,
}

fn inputs(gpu: &Gpu, storage: Option<Storage>, shape: &AttentionShape, rng: &mut SplitMix) -> Inputs {
    let total = shape.offset + shape.seq;
    let mut draw =
        |n: usize, spread: f32| -> Vec<f32> { (0..n).map(|_| (rng.next_f32() * 2.0 - 1.0) * spread).collect() };
    let (q_bytes, q) = encode(storage, &draw(shape.seq * shape.heads * shape.head_dim, 2.0));
    let (k_bytes, k) = encode(storage, &draw(total * shape.kv_heads * shape.head_dim, 2.0));
    let (v_bytes, v) = encode(storage, &draw(total * shape.kv_heads * shape.head_dim, 1.0));
    let expected = reference(&q, &k, &v, shape);
    let out_bytes = q_bytes.len();
    Inputs {
        q: Buffer::upload(&gpu.stream, &q_bytes).unwrap(),
        k: Buffer::upload(&gpu.stream, &k_bytes).unwrap(),
        v: Buffer::upload(&gpu.stream, &v_bytes).unwrap(),
        out: Buffer::new(&gpu.stream, out_bytes).unwrap(),
        expected,
    }
}

const SHAPES: &[(usize, usize, usize, usize, usize)] = &[
    // (seq, offset, heads, kv_heads, head_dim)
    (1, 0, 4, 4, 64),
    (1, 300, 8, 2, 64),
    (1, 1000, 4, 1, 128),
    (7, 0, 4, 2, 64),
    (64, 0, 4, 4, 64),
    (129, 0, 8, 2, 64),
    (300, 0, 4, 1, 128),
    (100, 37, 4, 2, 64),
    (77, 5, 2, 2, 48),
    (50, 0, 2, 1, 16),
    (200, 0, 2, 1, 32),
    (1, 500, 16, 1, 64),
    (1, 77, 12, 3, 40),
];

#[test]
#[ignore = "needs an NVIDIA GPU; scripts/gpu-check.sh runs them"]
fn flash_and_naive_attention_match_the_reference_and_each_other() {
    let gpu = gpu("attention");
    let mut rng = SplitMix::new(fresh_seed());
    let mut scratch = AttentionScratch::default();
    for storage in [Storage::F32, Storage::Bf16] {
        let tolerance = if storage == Storage::F32 { 1e-4 } else { 2e-2 };
        for &(seq, offset, heads, kv_heads, head_dim) in SHAPES {
            let shape = AttentionShape { seq, offset, heads, kv_heads, head_dim };
            let mut x = inputs(&gpu, Some(storage), &shape, &mut rng);
            let mut results = Vec::new();
            for kind in [AttentionKind::Naive, AttentionKind::Flash] {
                x.out.fill(&gpu.stream, 0xff).unwrap(); // NaN in every storage type
                cuda::attention(
                    &gpu,
                    kind,
                    storage,
                    &shape,
                    (x.q.ptr(), x.k.ptr(), x.v.ptr(), x.out.ptr()),
                    &mut scratch,
                )
                .unwrap();
                gpu.synchronize().unwrap();
                let got = decode(Some(storage), &x.out.download(&gpu.stream).unwrap());
                let error = relative(&got, &x.expected);
                let path = cuda::attention_path(kind, storage, &shape);
                eprintln!("{storage:?} {path:<18} seq {seq:>4} offset {offset:>4} heads {heads}/{kv_heads} d {head_dim:>3}: {error:.2e}");
                assert!(
                    error < tolerance,
                    "{storage:?} {path} {shape:?}: relative error {error:.3e}",
                    shape = (seq, offset, heads, kv_heads, head_dim)
                );
                results.push(got);
            }
            let between = relative(&results[1], &results[0]);
            assert!(between < tolerance, "flash against naive: {between:.3e}");
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU; scripts/gpu-check.sh runs them"]
fn the_f16_tensor_core_kernel_matches_the_reference() {
    let gpu = gpu("f16 attention");
    let mut rng = SplitMix::new(fresh_seed());
    for (seq, offset, head_dim) in [(100, 0, 64), (200, 20, 128)] {
        let shape = AttentionShape { seq, offset, heads: 4, kv_heads: 2, head_dim };
        let mut x = inputs(&gpu, None, &shape, &mut rng);
        x.out.fill(&gpu.stream, 0xff).unwrap();
        use cuda::Arg::{Float, Int, Ptr};
        gpu.launch(
            &format!("flash_prefill_mma{head_dim}_f16"),
            (seq.div_ceil(64) as u32, 4, 1),
            128,
            kernels::mma_shared_bytes(head_dim) as u32,
            &[
                Ptr(x.q.ptr()),
                Ptr(x.k.ptr()),
                Ptr(x.v.ptr()),
                Ptr(x.out.ptr()),
                Int(seq as i32),
                Int(offset as i32),
                Int(4),
                Int(2),
                Float(std::f32::consts::LOG2_E / (head_dim as f32).sqrt()),
            ],
        )
        .unwrap();
        gpu.synchronize().unwrap();
        let error = relative(&decode(None, &x.out.download(&gpu.stream).unwrap()), &x.expected);
        assert!(error < 1e-2, "f16 d {head_dim}: {error:.3e}");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU; scripts/gpu-check.sh runs them"]
fn sampling_on_the_device_agrees_with_the_host() {
    let gpu = gpu("sampling");
    let mut rng = SplitMix::new(fresh_seed());
    for n in [2usize, 1000, 32_000, 128_256] {
        let logits: Vec<f32> = (0..n).map(|_| rng.next_f32() * 20.0 - 10.0).collect();
        let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
        let device = Buffer::upload(&gpu.stream, &bytes).unwrap();
        let mut out = Buffer::new(&gpu.stream, 4).unwrap();
        let chosen = |args: Vec<cuda::Arg>, name: &str, out: &mut Buffer| {
            out.fill(&gpu.stream, 0xff).unwrap();
            gpu.launch(name, (1, 1, 1), 1024, 0, &args).unwrap();
            gpu.synchronize().unwrap();
            let b = out.download(&gpu.stream).unwrap();
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        };
        use cuda::Arg::{Float, Int, Ptr};
        let greedy = chosen(vec![Ptr(device.ptr()), Int(n as i32), Ptr(out.ptr())], "argmax_f32", &mut out);
        assert_eq!(greedy, phasebench::engines::llm::sampling::argmax(&logits), "argmax over {n}");
        // The many-block greedy choice of decoding steps, with the maximum
        // repeated (the first must win) and NaNs (they never win).
        let mut tricky = logits.clone();
        let top = tricky.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for at in [n - 1, n / 2, n / 3] {
            tricky[at] = top + 1.0;
        }
        tricky[0] = f32::NAN;
        for values in [&logits, &tricky] {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let input = Buffer::upload(&gpu.stream, &bytes).unwrap();
            let partial = Buffer::new(&gpu.stream, Gpu::argmax_scratch_bytes(n)).unwrap();
            out.fill(&gpu.stream, 0xff).unwrap();
            gpu.argmax(input.ptr(), n, partial.ptr(), out.ptr()).unwrap();
            gpu.synchronize().unwrap();
            let b = out.download(&gpu.stream).unwrap();
            let got = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            assert_eq!(got, phasebench::engines::llm::sampling::argmax(values), "many-block argmax over {n}");
        }
        let top1 = chosen(
            vec![Ptr(device.ptr()), Int(n as i32), Float(0.8), Int(1), Float(0.7), Ptr(out.ptr())],
            "sample_f32",
            &mut out,
        );
        assert_eq!(top1, greedy, "top-1 sampling is greedy");
        for (temperature, u) in [(1.0f32, 0.25f32), (0.7, 0.9), (2.0, 0.01)] {
            let token = chosen(
                vec![Ptr(device.ptr()), Int(n as i32), Float(temperature), Int(0), Float(u), Ptr(out.ptr())],
                "sample_f32",
                &mut out,
            ) as usize;
            // The first index whose running weight reaches u · total, computed in f64 on the host.
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let weights: Vec<f64> =
                logits.iter().map(|&l| (f64::from(l - max) / f64::from(temperature)).exp()).collect();
            let total: f64 = weights.iter().sum();
            let target = f64::from(u) * total;
            let before: f64 = weights[..token].iter().sum();
            let slack = 1e-9 * total;
            assert!(
                before <= target + slack && before + weights[token] >= target - slack,
                "n {n} T {temperature} u {u}: token {token}"
            );
        }
        // With top-k, only the k largest can come out.
        let mut sorted = logits.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let k = 5.min(n);
        for u in [0.0f32, 0.5, 0.999] {
            let token = chosen(
                vec![Ptr(device.ptr()), Int(n as i32), Float(1.0), Int(k as i32), Float(u), Ptr(out.ptr())],
                "sample_f32",
                &mut out,
            );
            assert!(logits[token as usize] >= sorted[k - 1], "top-{k} sampled a token outside the top {k}");
        }
    }
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// CUDA logits against CPU logits on the same weights, for a prompt and
/// then three decoding steps through the KV cache.
fn compare_logits(name: &str, config: Config, source: &WeightSource, dtype: DType, attention: AttentionKind) {
    let tolerance = if dtype == DType::F32 { 1e-3 } else { 2e-2 };
    let cpu = Model::load(config.clone(), source, dtype, attention).unwrap();
    let gpu = Arc::new(cuda::CudaModel::load(config.clone(), source, dtype, attention).unwrap());
    let mut state = cuda::CudaState::new(gpu).unwrap();
    let mut cache = Cache::default();
    let mut rng = SplitMix::new(fresh_seed());
    let prompt: Vec<u32> = (0..50).map(|_| rng.below(config.vocab as u64) as u32).collect();
    let mut steps: Vec<Vec<u32>> = vec![prompt];
    for _ in 0..3 {
        steps.push(vec![rng.below(config.vocab as u64) as u32]);
    }
    for (index, tokens) in steps.iter().enumerate() {
        let expected =
            cpu.forward(tokens, &mut cache, &mut Profile::default(), false).unwrap().to_vec1::<f32>().unwrap();
        let got = state.logits(tokens).unwrap();
        let expected: Vec<f64> = expected.iter().map(|&v| f64::from(v)).collect();
        let got: Vec<f64> = got.iter().map(|&v| f64::from(v)).collect();
        let error = relative(&got, &expected);
        eprintln!("{name} {dtype:?} {attention:?} step {index}: {error:.2e}");
        assert!(error < tolerance, "{name} {dtype:?} {attention:?} step {index}: relative error {error:.3e}");
    }
}

fn config(dim: usize, heads: usize, kv_heads: usize, head_dim: usize) -> Config {
    let mut config = Config::preset("tiny").unwrap();
    config.dim = dim;
    config.heads = heads;
    config.kv_heads = kv_heads;
    config.head_dim = head_dim;
    config.hidden = 2 * dim;
    config.layers = 2;
    config.vocab = 1000;
    config.tied = false;
    config
}

#[test]
#[ignore = "needs an NVIDIA GPU; scripts/gpu-check.sh runs them"]
fn cuda_logits_match_cpu_logits() {
    gpu("logits");
    let seeded = WeightSource::Random { seed: fresh_seed() };
    let models: Vec<(&str, Config, WeightSource)> = vec![
        ("tiny", Config::preset("tiny").unwrap(), WeightSource::Random { seed: 3 }),
        ("gqa-d64", config(256, 4, 2, 64), WeightSource::Random { seed: 4 }),
        ("mqa-d128", config(256, 4, 1, 128), WeightSource::Random { seed: 5 }),
        ("d48", config(192, 4, 4, 48), seeded),
        (
            "llama-tiny",
            Config::from_checkpoint(&fixture("llama-tiny")).unwrap(),
            WeightSource::checkpoint(&fixture("llama-tiny")).unwrap(),
        ),
        (
            "llama-tiny-llama3",
            Config::from_checkpoint(&fixture("llama-tiny-llama3")).unwrap(),
            WeightSource::checkpoint(&fixture("llama-tiny-llama3")).unwrap(),
        ),
    ];
    for (name, config, source) in &models {
        for dtype in [DType::F32, DType::BF16] {
            for attention in [AttentionKind::Naive, AttentionKind::Flash] {
                compare_logits(name, config.clone(), source, dtype, attention);
            }
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU; scripts/gpu-check.sh runs them"]
fn generation_on_the_gpu_follows_the_cpu_greedily() {
    gpu("generation");
    // The f32 fixture: greedy continuations on both devices, token by token.
    let dir = fixture("llama-tiny");
    let config = Config::from_checkpoint(&dir).unwrap();
    let source = WeightSource::checkpoint(&dir).unwrap();
    let cpu = Model::load(config.clone(), &source, DType::F32, AttentionKind::Flash).unwrap();
    let gpu = Arc::new(cuda::CudaModel::load(config, &source, DType::F32, AttentionKind::Flash).unwrap());
    let mut state = cuda::CudaState::new(gpu).unwrap();
    let (mut cache, mut sampler) = (Cache::default(), Sampler::new(0.0, 0, 1));
    let mut tokens = vec![1u32, 15, 27, 99, 4];
    let (mut cpu_next, mut gpu_next) = (tokens.clone(), tokens.clone());
    for _ in 0..10 {
        let logits = cpu.forward(&cpu_next, &mut cache, &mut Profile::default(), false).unwrap();
        let c = phasebench::engines::llm::sampling::argmax(&logits.to_vec1::<f32>().unwrap());
        let g = state.next_token(&gpu_next, &mut Profile::default(), &mut sampler).unwrap();
        assert_eq!(g, c, "after {tokens:?}");
        tokens.push(c);
        cpu_next = vec![c];
        gpu_next = vec![g];
    }
}

/// Not a test: the attention throughput table of docs/performance.md (run by
/// scripts/gpu-check.sh with `--ignored`, apart from the tests). Causal bf16 attention with the
/// `1b` preset's heads (32 query, 8 key/value) at several lengths; median
/// of 20 timed calls after 3 warm-ups, timed with CUDA events. FLOPs count
/// the causal half of 4·seq²·D per head, as FlashAttention's benchmarks do.
#[test]
#[ignore = "a benchmark on an NVIDIA GPU; scripts/gpu-check.sh runs it"]
fn attention_throughput() {
    let gpu = gpu("attention throughput");
    let mut rng = SplitMix::new(1);
    let mut scratch = AttentionScratch::default();
    let event = || gpu.context.new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT)).unwrap();
    let (start, end) = (event(), event());
    println!("kernel             seq  heads  d    median_ms  tflops");
    for head_dim in [64usize, 128] {
        for seq in [512usize, 2048, 8192] {
            let heads = 32;
            let shape = AttentionShape { seq, offset: 0, heads, kv_heads: 8, head_dim };
            let total = seq;
            let mut draw = |n: usize| -> Vec<u8> {
                (0..n).flat_map(|_| half::bf16::from_f32(rng.next_f32() * 2.0 - 1.0).to_bits().to_le_bytes()).collect()
            };
            let q = Buffer::upload(&gpu.stream, &draw(seq * heads * head_dim)).unwrap();
            let k = Buffer::upload(&gpu.stream, &draw(total * 8 * head_dim)).unwrap();
            let v = Buffer::upload(&gpu.stream, &draw(total * 8 * head_dim)).unwrap();
            let out = Buffer::new(&gpu.stream, seq * heads * head_dim * 2).unwrap();
            for kind in [AttentionKind::Flash, AttentionKind::Naive] {
                let path = cuda::attention_path(kind, Storage::Bf16, &shape);
                let mut run = || {
                    cuda::attention(
                        &gpu,
                        kind,
                        Storage::Bf16,
                        &shape,
                        (q.ptr(), k.ptr(), v.ptr(), out.ptr()),
                        &mut scratch,
                    )
                    .unwrap()
                };
                for _ in 0..3 {
                    run();
                }
                let mut times = Vec::new();
                for _ in 0..20 {
                    start.record(&gpu.stream).unwrap();
                    run();
                    end.record(&gpu.stream).unwrap();
                    end.synchronize().unwrap();
                    times.push(f64::from(start.elapsed_ms(&end).unwrap()));
                }
                times.sort_by(f64::total_cmp);
                let median = times[times.len() / 2];
                let flops = 4.0 * (seq * seq) as f64 * head_dim as f64 * heads as f64 / 2.0;
                println!(
                    "{path:<18} {seq:>5} {heads:>5} {head_dim:>3} {median:>12.4} {:>7.1}",
                    flops / (median / 1e3) / 1e12
                );
            }
        }
    }
}
