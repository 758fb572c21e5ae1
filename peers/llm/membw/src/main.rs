//! Streaming read-bandwidth probe.
//!
//! Allocates a large f32 buffer (default 2 GiB, at least 1 GiB), fills it
//! (so every page is really backed), then sums it in several passes, both on
//! one thread and on all rayon threads. Each pass reads every byte once;
//! bandwidth = bytes / seconds (decimal GB/s, 1e9 bytes).
//!
//! Usage: membw [--gib N] [--passes P]
//! Prints a single JSON line on stdout.

use rayon::prelude::*;
use std::time::Instant;

/// Sum a slice with several independent accumulators so the loop is bound
/// by loads, not by the floating-point add latency chain. The compiler
/// vectorises the inner 16-wide body.
#[inline(never)]
fn stream_sum(xs: &[f32]) -> f32 {
    const W: usize = 32;
    let mut acc = [0.0f32; W];
    let chunks = xs.chunks_exact(W);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..W {
            acc[i] += c[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for &x in rest {
        s += x;
    }
    s
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn measure<F: Fn() -> f32>(bytes: usize, passes: usize, f: F) -> (f64, f64, f32) {
    // one untimed warm-up pass
    let mut guard = f();
    let mut gbs = Vec::with_capacity(passes);
    for _ in 0..passes {
        let t = Instant::now();
        let s = f();
        let dt = t.elapsed().as_secs_f64();
        guard += s;
        gbs.push(bytes as f64 / dt / 1e9);
    }
    let best = gbs.iter().cloned().fold(0.0, f64::max);
    let med = median(&mut gbs);
    (best, med, guard)
}

fn main() {
    let mut gib: f64 = 2.0;
    let mut passes: usize = 7;
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--gib" => {
                gib = args[i + 1].parse().expect("--gib N");
                i += 1;
            }
            "--passes" => {
                passes = args[i + 1].parse().expect("--passes P");
                i += 1;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 1;
    }
    assert!(gib >= 1.0, "use at least 1 GiB so caches do not matter");
    assert!(passes >= 1);

    let n = (gib * (1u64 << 30) as f64) as usize / 4;
    let bytes = n * 4;
    let threads = rayon::current_num_threads();

    // Fill in parallel (first touch on the threads that will read it).
    let mut buf: Vec<f32> = Vec::with_capacity(n);
    unsafe { buf.set_len(n) };
    buf.par_chunks_mut(1 << 20)
        .enumerate()
        .for_each(|(ci, c)| {
            for (j, x) in c.iter_mut().enumerate() {
                *x = ((ci * 7 + j) % 1024) as f32 * 1e-3;
            }
        });
    let data = &buf[..];

    let (st_best, st_med, g1) = measure(bytes, passes, || stream_sum(std::hint::black_box(data)));
    let chunk = (n / (threads * 16)).max(1 << 16);
    let (mt_best, mt_med, g2) = measure(bytes, passes, || {
        std::hint::black_box(data)
            .par_chunks(chunk)
            .map(stream_sum)
            .sum::<f32>()
    });

    println!(
        "{{\"bench\":\"membw\",\"bytes\":{bytes},\"gib\":{gib},\"passes\":{passes},\"threads\":{threads},\
\"single_thread_best_gbs\":{st_best:.3},\"single_thread_median_gbs\":{st_med:.3},\
\"all_threads_best_gbs\":{mt_best:.3},\"all_threads_median_gbs\":{mt_med:.3},\"checksum\":{:.1}}}",
        (g1 + g2) as f64
    );
}
