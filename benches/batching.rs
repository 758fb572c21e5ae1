//! Decode rate of `Model::decode_batch` at 1, 4 and 16 sequences: what
//! continuous batching buys on the CPU, where one sequence's decoding step
//! is bound by reading the weights and a batch reads them once for all.
//!
//! Presets `small` and `base`, f32, the engine's own pool of 2 threads;
//! every sequence prefilled with its own 64-token prompt (untimed), then 64
//! greedy decoding steps timed, with the greedy token taken from every row
//! as `phasebench serve` does. One warm-up, then `BENCH_REPS` repetitions
//! (default 5) that interleave the batch sizes: tokens/s as median
//! (min–max) and the median's ratio to one sequence, as a Markdown table.
//!
//! `cargo bench --bench batching`; figures in docs/performance.md. With
//! `BENCH_PROFILE=1` it also prints where each step's time went (to stderr).

use std::time::Instant;

use candle_core::DType;
use phasebench::engines::llm::model::Category;
use phasebench::engines::llm::sampling::argmax;
use phasebench::engines::llm::{cpu, load_cpu_model, thread_pool, AttentionKind, Cache, Model, Profile};
use phasebench::rng::SplitMix;

const PROMPT_TOKENS: usize = 64;
const STEPS: usize = 64;
const THREADS: usize = 2;
const BATCHES: [usize; 3] = [1, 4, 16];

/// Tokens per second of `STEPS` batched steps over fresh sequences, one
/// per cache in `caches`. The caches are cleared, not made anew, as
/// `phasebench serve` recycles the cache of a finished sequence: their
/// buffers are memory the process has already touched.
fn decode_rate(model: &Model, caches: &mut [Cache], seed: u64, profile: &mut Profile) -> f64 {
    let mut rng = SplitMix::new(seed);
    let vocab = model.config().vocab as u64;
    let batch = caches.len();
    caches.iter_mut().for_each(Cache::clear);
    let mut tokens: Vec<u32> = caches
        .iter_mut()
        .map(|cache| {
            let prompt: Vec<u32> = (0..PROMPT_TOKENS).map(|_| 3 + rng.below(vocab - 3) as u32).collect();
            let logits = model.forward(&prompt, cache, &mut Profile::default(), false).expect("prefill");
            argmax(&logits.to_vec1::<f32>().expect("logits"))
        })
        .collect();
    let start = Instant::now();
    for _ in 0..STEPS {
        let mut refs: Vec<&mut Cache> = caches.iter_mut().collect();
        let logits = model.decode_batch(&tokens, &mut refs, profile).expect("decode step");
        tokens = profile
            .time(Category::Sampling, || {
                // As `phasebench serve` does: every row where the step wrote it.
                cpu::with_slice::<f32, _>(&logits, |rows| rows.chunks_exact(vocab as usize).map(argmax).collect())
            })
            .expect("logits");
    }
    (batch * STEPS) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter names presets to run.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let reps: usize = std::env::var("BENCH_REPS").ok().and_then(|r| r.parse().ok()).unwrap_or(5).max(1);
    let show_profile = std::env::var_os("BENCH_PROFILE").is_some();
    let pool = thread_pool(THREADS).expect("thread pool");
    println!("decode_batch, f32, {THREADS} threads, {PROMPT_TOKENS}-token prompts, {STEPS} steps, {reps} repetitions");
    println!();
    println!("| preset | sequences | decode tok/s, median (min–max) | × one sequence |");
    println!("|---|---:|---:|---:|");
    for preset in ["small", "base"] {
        if !filters.is_empty() && !filters.iter().any(|f| preset.contains(f.as_str())) {
            continue;
        }
        let (model, _) = load_cpu_model(preset, 0, DType::F32, AttentionKind::Naive).expect("preset");
        // Repetitions interleave the batch sizes, so a slow spell of a
        // shared machine falls on all of them rather than on one.
        let mut profiles = [Profile::default(); BATCHES.len()];
        let mut rates = [(); BATCHES.len()].map(|_| Vec::with_capacity(reps));
        let mut caches = BATCHES.map(|batch| (0..batch).map(|_| Cache::default()).collect::<Vec<_>>());
        pool.install(|| {
            for caches in &mut caches {
                decode_rate(&model, caches, 99, &mut Profile::default());
            }
            for rep in 0..reps {
                for index in 0..BATCHES.len() {
                    rates[index].push(decode_rate(&model, &mut caches[index], rep as u64, &mut profiles[index]));
                }
            }
        });
        let mut single = None;
        for ((batch, rates), profile) in BATCHES.into_iter().zip(&mut rates).zip(&profiles) {
            rates.sort_by(f64::total_cmp);
            let median = rates[rates.len() / 2];
            let single = *single.get_or_insert(median);
            println!(
                "| {preset} | {batch} | {median:.1} ({:.1}–{:.1}) | {:.2} |",
                rates[0],
                rates[rates.len() - 1],
                median / single
            );
            if show_profile {
                let steps = (reps * STEPS) as f64;
                let parts: Vec<String> = profile
                    .named()
                    .iter()
                    .map(|(name, time)| format!("{name} {:.0} µs", time.as_secs_f64() * 1e6 / steps))
                    .collect();
                eprintln!("  per step: {}", parts.join(", "));
            }
        }
    }
}
