//! Hand-written CPU kernels where candle's general ones lose the most:
//!
//! - [`gemv`]: the products of a decoding step. One token multiplies every
//!   weight matrix by a single row, so the step streams each weight once and
//!   its speed is memory bandwidth; a row-parallel dot product gets there,
//!   and reads bf16 weights at half the bytes without widening the matrix.
//!   Several rows (a batched decoding step) go through tiles of 4 weight
//!   rows × 2 input rows, so the weights are read once per step and every
//!   load feeds several products, with the weights of a later tile
//!   prefetched while one computes.
//! - [`attend_head`]: a decoding position's attention over one head of the
//!   KV cache (scores, softmax, weighted sum), prefetching the next head's
//!   keys and values; with [`rotate_half`], [`rms_norm`] and [`silu_mul`]
//!   it keeps a decoding step's small elementwise work off tensor ops whose
//!   overhead would exceed the work.
//! - [`causal_softmax`]: scale, causal mask and softmax of a score matrix in
//!   one parallel pass over its rows, instead of one allocating pass each.

use candle_core::{DType, Device, Storage, Tensor, WithDType};
use half::{bf16, f16};
use rayon::prelude::*;

use super::LlmError;

/// Rows of `x` at or below which a product runs as [`gemv`]: a decoding
/// step of up to this many sequences (continuous batching). Past it, the
/// product is a prompt's prefill, and candle's matmul is the better kernel.
pub const GEMV_MAX_ROWS: usize = 64;

/// Output rows per parallel task: big enough to amortize the task, small
/// enough to spread a layer over every core.
const ROWS_PER_TASK: usize = 64;

/// Output rows per parallel task when `x` has several rows: each costs
/// `rows` times more, and a layer of a few hundred outputs must still split
/// evenly over the cores (288 outputs in 64s is 3 tasks to one core, 2 to
/// the other).
const ROWS_PER_BATCHED_TASK: usize = 16;

/// Batched tasks each thread gets at least, when a product has outputs
/// enough for tasks larger than [`ROWS_PER_BATCHED_TASK`]: some slack for
/// a thread that falls behind.
const BATCHED_TASKS_PER_THREAD: usize = 16;

/// Output rows per batched task at most.
const MAX_ROWS_PER_BATCHED_TASK: usize = 256;

/// Whether `x (rows, ·) · Wᵀ` is faster here than in candle's matmul:
/// for the rows of a decoding step, when the weights are bf16 (no widened
/// copy) or big enough to be worth both cores. Only tiny f32 matrices stay
/// with candle.
/// (Measured in decode, where a model's weights come from memory: a
/// microbenchmark that multiplies one hot matrix again and again favours
/// candle up to ~1M weights, the `small` preset's decode favours the gemv
/// by ~12% from 64k weights on.)
pub fn prefers_gemv(rows: usize, weight: &Tensor) -> bool {
    rows <= GEMV_MAX_ROWS && (weight.dtype() != DType::F32 || weight.elem_count() >= PARALLEL_MIN_WEIGHTS)
}

/// Runs `work` on the contiguous data of a CPU tensor, without a copy:
/// how a decoding step's logits `(batch, vocab)` are sampled row by row.
pub fn with_slice<T: WithDType, R>(tensor: &Tensor, work: impl FnOnce(&[T]) -> R) -> Result<R, LlmError> {
    let (storage, layout) = tensor.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(LlmError::Input("the CPU kernels need a CPU tensor".into()));
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Err(LlmError::Input("the CPU kernels need a contiguous tensor".into()));
    };
    Ok(work(&cpu.as_slice::<T>()?[start..end]))
}

/// `x · Wᵀ` for a few rows `x (rows, in)` and `W (out, in)` stored as f32 or bf16.
pub fn gemv(x: &Tensor, weight: &Tensor) -> Result<Tensor, LlmError> {
    let (rows, input) = x.dims2()?;
    let (out, weight_input) = weight.dims2()?;
    if input != weight_input {
        return Err(LlmError::Input(format!("gemv: x has {input} columns, the weight {weight_input}")));
    }
    if rows == 0 || out == 0 || input == 0 {
        // Nothing to multiply: every sum is empty (and the kernels split by these sizes).
        return Ok(Tensor::zeros((rows, out), DType::F32, &Device::Cpu)?);
    }
    let x = x.to_dtype(DType::F32)?.contiguous()?;
    let x: Vec<f32> = with_slice(&x, <[f32]>::to_vec)?;
    let mut result = vec![0.0_f32; rows * out];
    match weight.dtype() {
        DType::F32 => with_slice::<f32, _>(weight, |w| products(&x, rows, input, w, &mut result, Kernels::F32))?,
        DType::BF16 => with_slice::<bf16, _>(weight, |w| products(&x, rows, input, w, &mut result, Kernels::BF16))?,
        DType::F16 => with_slice::<f16, _>(weight, |w| products(&x, rows, input, w, &mut result, Kernels::F16))?,
        other => return Err(LlmError::Input(format!("gemv: weights of type {other:?} are not supported"))),
    }
    Ok(Tensor::from_vec(result, (rows, out), &Device::Cpu)?)
}

/// The kernels of one weight type: a dot product for one row, the dot
/// products of one row of `x` with consecutive weight rows, and a tile of
/// [`TILE_OUTS`] weight rows by [`TILE_ROWS`] rows of `x`.
struct Kernels<W: 'static> {
    dot: fn(&[f32], &[W]) -> f32,
    rows: Rows<W>,
    tiles: Tiles<W>,
}

/// `out[i] = x · weights[i]` for the consecutive rows of `x.len()` in
/// `weights`, one per cell of `out`: a decoding step's share of a product,
/// with the CPU's features checked once rather than once per row.
type Rows<W> = fn(&[f32], &[W], &mut [f32]);

/// Products of [`TILE_OUTS`] weight rows with every pair of rows of `x`
/// (an odd last row is left to the caller), written to `out[r][column + o]`;
/// the last argument is the weights the next tile reads, to prefetch.
type Tiles<W> = fn(&[&[f32]], &[&[W]; TILE_OUTS], &mut [&mut [f32]], usize, &[W]);

impl Kernels<f32> {
    const F32: Kernels<f32> = Kernels { dot: dot_f32, rows: rows_f32, tiles: tiles_f32 };
}

impl Kernels<bf16> {
    const BF16: Kernels<bf16> = Kernels { dot: dot_bf16, rows: rows_bf16, tiles: tiles_bf16 };
}

impl Kernels<f16> {
    const F16: Kernels<f16> = Kernels { dot: dot_f16, rows: rows_f16, tiles: tiles_f16 };
}

/// `result (rows, outs) = x (rows, input) · weightᵀ`, in tasks of
/// consecutive output columns spread over the engine's threads.
fn products<W: Sync>(x: &[f32], rows: usize, input: usize, weight: &[W], result: &mut [f32], kernels: Kernels<W>) {
    let outs = weight.len() / input;
    let x_rows: Vec<&[f32]> = x.chunks_exact(input).collect();
    let per_task = if rows >= TILE_ROWS {
        // A batched task costs `rows` times more: small enough tasks that a
        // layer of a few hundred outputs splits evenly (288 in 16s), large
        // enough that the head's 32,000 are not thousands of tasks.
        let even = outs / (rayon::current_num_threads() * BATCHED_TASKS_PER_THREAD);
        (even - even % TILE_OUTS).clamp(ROWS_PER_BATCHED_TASK, MAX_ROWS_PER_BATCHED_TASK)
    } else {
        ROWS_PER_TASK
    };
    // Each task owns its columns of every row of the result.
    let mut pieces: Vec<Vec<&mut [f32]>> = (0..outs.div_ceil(per_task)).map(|_| Vec::with_capacity(rows)).collect();
    for row in result.chunks_exact_mut(outs) {
        for (piece, task) in row.chunks_mut(per_task).zip(&mut pieces) {
            task.push(piece);
        }
    }
    let task = |(index, mut out): (usize, Vec<&mut [f32]>)| {
        let first = index * per_task;
        let count = out.first().map_or(0, |cells| cells.len());
        let weight_row = |offset: usize| &weight[(first + offset) * input..(first + offset + 1) * input];
        if rows == 1 {
            (kernels.rows)(x_rows[0], &weight[first * input..(first + count) * input], &mut out[0][..count]);
            return;
        }
        let mut offset = 0;
        // Several rows of x (a batched decoding step): each tile loads a
        // stretch of TILE_OUTS weight rows once and multiplies it into
        // TILE_ROWS rows of x, so the weights stream from memory once per
        // step and every load feeds several products.
        while rows >= TILE_ROWS && offset + TILE_OUTS <= count {
            let ws: [&[W]; TILE_OUTS] = std::array::from_fn(|o| weight_row(offset + o));
            let next_start = ((first + offset + 2 * TILE_OUTS) * input).min(weight.len());
            let next = &weight[next_start..(next_start + TILE_OUTS * input).min(weight.len())];
            (kernels.tiles)(&x_rows, &ws, &mut out, offset, next);
            for row in rows - rows % TILE_ROWS..rows {
                for (o, w) in ws.iter().enumerate() {
                    out[row][offset + o] = (kernels.dot)(x_rows[row], w);
                }
            }
            offset += TILE_OUTS;
        }
        for offset in offset..count {
            let w = weight_row(offset);
            for (cells, xs) in out.iter_mut().zip(&x_rows) {
                cells[offset] = (kernels.dot)(xs, w);
            }
        }
    };
    if weight.len() < PARALLEL_MIN_WEIGHTS {
        // Waking the other threads would cost more than the product.
        pieces.into_iter().enumerate().for_each(task);
    } else {
        pieces.into_par_iter().enumerate().for_each(task);
    }
}

/// Weight rows per tile of a multi-row product.
const TILE_OUTS: usize = 4;
/// Rows of `x` per tile: with [`TILE_OUTS`], 8 vector accumulators, 4
/// weight and 2 input vectors, within the 16 registers of AVX2.
const TILE_ROWS: usize = 2;
/// Lanes of one vector register of f32 (AVX2).
const TILE_LANES: usize = 8;

/// [`Tiles`] in portable code: each pair of rows through [`tile_body`].
#[inline(always)]
fn tiles_body<W: Copy>(
    x_rows: &[&[f32]],
    ws: &[&[W]; TILE_OUTS],
    out: &mut [&mut [f32]],
    column: usize,
    widen: impl Fn(W) -> f32 + Copy,
) {
    for (xs, cells) in x_rows.chunks_exact(TILE_ROWS).zip(out.chunks_exact_mut(TILE_ROWS)) {
        let xs: [&[f32]; TILE_ROWS] = std::array::from_fn(|r| xs[r]);
        let sums = tile_body(&xs, ws, widen);
        for (o, sums) in sums.iter().enumerate() {
            for (r, cells) in cells.iter_mut().enumerate() {
                cells[column + o] = sums[r];
            }
        }
    }
}

/// The products of a tile: `sums[o][r] = xs[r] · ws[o]`, in portable code.
#[inline(always)]
fn tile_body<W: Copy>(
    xs: &[&[f32]; TILE_ROWS],
    ws: &[&[W]; TILE_OUTS],
    widen: impl Fn(W) -> f32,
) -> [[f32; TILE_ROWS]; TILE_OUTS] {
    let input = xs[0].len();
    // Every slice has `input` elements: the chunk loops below index within it.
    assert!(xs.iter().all(|x| x.len() == input) && ws.iter().all(|w| w.len() == input));
    let whole = input - input % TILE_LANES;
    let mut acc = [[[0.0_f32; TILE_LANES]; TILE_ROWS]; TILE_OUTS];
    for base in (0..whole).step_by(TILE_LANES) {
        let wv: [[f32; TILE_LANES]; TILE_OUTS] = std::array::from_fn(|o| {
            let chunk = &ws[o][base..base + TILE_LANES];
            std::array::from_fn(|lane| widen(chunk[lane]))
        });
        let xv: [[f32; TILE_LANES]; TILE_ROWS] = std::array::from_fn(|r| {
            let chunk = &xs[r][base..base + TILE_LANES];
            std::array::from_fn(|lane| chunk[lane])
        });
        for o in 0..TILE_OUTS {
            for r in 0..TILE_ROWS {
                for lane in 0..TILE_LANES {
                    acc[o][r][lane] += wv[o][lane] * xv[r][lane];
                }
            }
        }
    }
    std::array::from_fn(|o| {
        std::array::from_fn(|r| {
            let tail: f32 = (whole..input).map(|k| xs[r][k] * widen(ws[o][k])).sum();
            acc[o][r].iter().sum::<f32>() + tail
        })
    })
}

/// Defines a tile kernel that uses AVX2 and FMA when the CPU has them and
/// portable code otherwise, as [`dispatched_dot`] does for dot products.
/// The AVX2 path is written with intrinsics: the eight accumulators must
/// stay in registers, which the compiler does not do for an array of them.
macro_rules! dispatched_tile {
    ($name:ident, $weight:ty, $widen:expr) => {
        fn $name(x_rows: &[&[f32]], ws: &[&[$weight]; TILE_OUTS], out: &mut [&mut [f32]], column: usize, next: &[$weight]) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("f16c")
                {
                    // SAFETY: the CPU supports AVX2, FMA and F16C, checked just above.
                    return unsafe { avx2::tiles(x_rows, ws, (out, column), next, $widen) };
                }
            }
            let _ = next;
            tiles_body(x_rows, ws, out, column, $widen)
        }
    };
}

dispatched_tile!(tiles_f32, f32, |w: f32| w);
dispatched_tile!(tiles_bf16, bf16, widen);
dispatched_tile!(tiles_f16, f16, f16::to_f32);

/// [`Rows`] in portable code, or in the caller's instruction set when it
/// is inlined into a function that enables more.
#[inline(always)]
fn rows_body<W>(x: &[f32], weights: &[W], out: &mut [f32], dot: impl Fn(&[f32], &[W]) -> f32) {
    for (cell, w) in out.iter_mut().zip(weights.chunks_exact(x.len())) {
        *cell = dot(x, w);
    }
}

/// [`Rows`] for f16 weights: AVX2 with F16C where the CPU has them.
fn rows_f16(x: &[f32], weights: &[f16], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU supports AVX2, FMA and F16C, checked just above.
            return unsafe { avx2::rows_f16(x, weights, out) };
        }
    }
    rows_body(x, weights, out, |a, b| dot_body(a, b, f16::to_f32))
}

/// A dot product with f16 weights: AVX2 with F16C conversions where the
/// CPU has them (every AVX2 CPU does), portable code otherwise.
fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU supports AVX2, FMA and F16C, checked just above.
            return unsafe { avx2::dot_f16(a, b) };
        }
    }
    dot_body(a, b, f16::to_f32)
}
#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The tile kernel in AVX2 and FMA intrinsics.

    use std::arch::x86_64::*;

    use half::{bf16, f16};

    use super::{TILE_LANES, TILE_OUTS, TILE_ROWS};

    impl Lanes for f16 {
        #[inline]
        #[target_feature(enable = "avx2,f16c")]
        unsafe fn load(w: &[f16], at: usize) -> __m256 {
            // SAFETY: the caller keeps the eight 16-bit lanes inside `w`.
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(w.as_ptr().add(at).cast())) }
        }
    }

    /// [`super::Rows`] for f16 weights, [`dot_f16`] inlined for each row.
    ///
    /// # Safety
    /// The CPU supports AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn rows_f16(x: &[f32], weights: &[f16], out: &mut [f32]) {
        // SAFETY: this function's own features are the ones `dot_f16` needs.
        super::rows_body(x, weights, out, |a, b| unsafe { dot_f16(a, b) })
    }

    /// `a · b` for f16 `b`, four accumulators of eight lanes.
    ///
    /// # Safety
    /// The CPU supports AVX2, FMA and F16C.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
        let n = a.len().min(b.len());
        let whole = n - n % 32;
        // SAFETY: every load reads lanes `at..at + 8` with `at + 8 <= whole <= n`.
        let sum = unsafe {
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut at = 0;
            while at < whole {
                for (lane, acc) in acc.iter_mut().enumerate() {
                    let offset = at + lane * TILE_LANES;
                    let w = _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().add(offset).cast()));
                    *acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(offset)), w, *acc);
                }
                at += 32;
            }
            let total = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            let quad = _mm_add_ps(_mm256_castps256_ps128(total), _mm256_extractf128_ps::<1>(total));
            let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
            _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
        };
        sum + (whole..n).map(|k| a[k] * b[k].to_f32()).sum::<f32>()
    }

    /// A weight type the tile loads eight at a time, widened to f32.
    pub trait Lanes: Copy {
        /// Eight weights from `w[at..at + 8]` as f32.
        ///
        /// # Safety
        /// The CPU supports AVX2, and `at + 8 <= w.len()`.
        unsafe fn load(w: &[Self], at: usize) -> __m256;
    }

    impl Lanes for f32 {
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn load(w: &[f32], at: usize) -> __m256 {
            // SAFETY: the caller keeps the eight lanes inside `w`.
            unsafe { _mm256_loadu_ps(w.as_ptr().add(at)) }
        }
    }

    impl Lanes for bf16 {
        /// A bf16 is the upper half of an f32: widen each lane and shift it up.
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn load(w: &[bf16], at: usize) -> __m256 {
            // SAFETY: the caller keeps the eight 16-bit lanes inside `w`.
            unsafe {
                let halves = _mm_loadu_si128(w.as_ptr().add(at).cast());
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(halves)))
            }
        }
    }

    /// The sums of the lanes of four accumulators, in order.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn sum4(a: __m256, b: __m256, c: __m256, d: __m256) -> __m128 {
        // Pairwise adds within each 128-bit half leave [a, b, c, d] partial
        // sums in both halves; adding the halves finishes them.
        let quads = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
        _mm_add_ps(_mm256_castps256_ps128(quads), _mm256_extractf128_ps::<1>(quads))
    }

    /// `scale · (query · key)` for every key in `keys` (rows of
    /// `query.len()`, a multiple of 8), four keys at a time, pushed to
    /// `scores`; each key's row of `values` and the same row of
    /// `next_keys` are prefetched as it is read.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scores(
        query: &[f32],
        keys: &[f32],
        (values, next_keys): (&[f32], &[f32]),
        scale: f32,
        scores: &mut Vec<f32>,
    ) {
        let width = query.len();
        assert!(width % TILE_LANES == 0 && values.len() >= keys.len());
        let quads = keys.chunks_exact(4 * width);
        let rest = quads.remainder();
        for (quad, keys) in quads.enumerate() {
            let rows = quad * 4 * width..(quad + 1) * 4 * width;
            super::prefetch(&values[rows.clone()]);
            super::prefetch(next_keys.get(rows).unwrap_or_default());
            // SAFETY: `at + 8 <= width`, and `keys` holds four rows of `width`.
            let sums = unsafe {
                let (mut a, mut b, mut c, mut d) =
                    (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
                for at in (0..width).step_by(TILE_LANES) {
                    let q = _mm256_loadu_ps(query.as_ptr().add(at));
                    a = _mm256_fmadd_ps(q, _mm256_loadu_ps(keys.as_ptr().add(at)), a);
                    b = _mm256_fmadd_ps(q, _mm256_loadu_ps(keys.as_ptr().add(width + at)), b);
                    c = _mm256_fmadd_ps(q, _mm256_loadu_ps(keys.as_ptr().add(2 * width + at)), c);
                    d = _mm256_fmadd_ps(q, _mm256_loadu_ps(keys.as_ptr().add(3 * width + at)), d);
                }
                _mm_mul_ps(sum4(a, b, c, d), _mm_set1_ps(scale))
            };
            let mut four = [0.0_f32; 4];
            // SAFETY: `four` holds four lanes.
            unsafe { _mm_storeu_ps(four.as_mut_ptr(), sums) };
            scores.extend_from_slice(&four);
        }
        for key in rest.chunks_exact(width) {
            scores.push(super::dot_body(query, key, |w: f32| w) * scale);
        }
    }

    /// [`super::Tiles`]: `out[r][column + o] = x_rows[r] · ws[o]` for every
    /// pair of rows, eight accumulators in registers per pair.
    ///
    /// # Safety
    /// The CPU supports AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn tiles<W: Lanes>(
        x_rows: &[&[f32]],
        ws: &[&[W]; TILE_OUTS],
        (out, column): (&mut [&mut [f32]], usize),
        next: &[W],
        widen: impl Fn(W) -> f32,
    ) {
        const { assert!(TILE_OUTS == 4 && TILE_ROWS == 2 && TILE_LANES == 8) };
        let rows = x_rows.len();
        let Some(input) = ws.first().map(|w| w.len()) else { return };
        assert!(x_rows.iter().all(|x| x.len() == input) && ws.iter().all(|w| w.len() == input));
        let whole = input - input % TILE_LANES;
        // The weights a later tile reads come in while this one computes,
        // one cache line at a time spread evenly over all its iterations:
        // rows of a few hundred weights are streams too short for the
        // hardware prefetcher, and a burst of requests would queue behind
        // one another.
        let (lines, iterations) = (std::mem::size_of_val(next).div_ceil(64), (rows / TILE_ROWS) * (whole / TILE_LANES));
        let prefetch = next.as_ptr().cast::<i8>();
        let (mut fetched, mut credit) = (0, 0);
        for pair in 0..rows / TILE_ROWS {
            let (x0, x1) = (x_rows[2 * pair], x_rows[2 * pair + 1]);
            // SAFETY: every load reads lanes `at..at + 8` with `at + 8 <=
            // whole <= input`, the length of every slice (asserted above);
            // every prefetch address is inside `next`.
            let rows_sums = unsafe {
                let (mut a00, mut a01, mut a10, mut a11) =
                    (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
                let (mut a20, mut a21, mut a30, mut a31) =
                    (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
                let mut at = 0;
                while at < whole {
                    credit += lines;
                    while credit >= iterations && fetched < lines {
                        _mm_prefetch::<_MM_HINT_T0>(prefetch.add(fetched * 64));
                        fetched += 1;
                        credit -= iterations;
                    }
                    let v0 = _mm256_loadu_ps(x0.as_ptr().add(at));
                    let v1 = _mm256_loadu_ps(x1.as_ptr().add(at));
                    let w0 = W::load(ws[0], at);
                    a00 = _mm256_fmadd_ps(w0, v0, a00);
                    a01 = _mm256_fmadd_ps(w0, v1, a01);
                    let w1 = W::load(ws[1], at);
                    a10 = _mm256_fmadd_ps(w1, v0, a10);
                    a11 = _mm256_fmadd_ps(w1, v1, a11);
                    let w2 = W::load(ws[2], at);
                    a20 = _mm256_fmadd_ps(w2, v0, a20);
                    a21 = _mm256_fmadd_ps(w2, v1, a21);
                    let w3 = W::load(ws[3], at);
                    a30 = _mm256_fmadd_ps(w3, v0, a30);
                    a31 = _mm256_fmadd_ps(w3, v1, a31);
                    at += TILE_LANES;
                }
                // Each row's four sums side by side, ready to store.
                [sum4(a00, a10, a20, a30), sum4(a01, a11, a21, a31)]
            };
            for (r, (x, sums)) in [x0, x1].into_iter().zip(rows_sums).enumerate() {
                let cells = &mut out[2 * pair + r][column..column + TILE_OUTS];
                // SAFETY: `cells` holds the four lanes stored.
                unsafe { _mm_storeu_ps(cells.as_mut_ptr(), sums) };
                if whole < input {
                    for (o, cell) in cells.iter_mut().enumerate() {
                        *cell += (whole..input).map(|k| x[k] * widen(ws[o][k])).sum::<f32>();
                    }
                }
            }
        }
    }
}

/// Weights below which a product runs on the calling thread alone, and an
/// f32 product stays with candle.
pub const PARALLEL_MIN_WEIGHTS: usize = 1 << 16;

/// Lanes of independent sums: enough for the compiler to keep several
/// vector registers busy.
const LANES: usize = 16;

/// bf16 is the upper half of an f32: widening is a shift.
#[inline(always)]
fn widen(value: bf16) -> f32 {
    f32::from_bits(u32::from(value.to_bits()) << 16)
}

/// A dot product with [`LANES`] independent sums; `widen` turns a weight into an f32.
#[inline(always)]
fn dot_body<W: Copy>(a: &[f32], b: &[W], widen: impl Fn(W) -> f32) -> f32 {
    let mut sums = [0.0_f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * widen(*y)).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            sums[lane] += x[lane] * widen(y[lane]);
        }
    }
    sums.iter().sum::<f32>() + tail
}


/// Defines a dot product that uses AVX2 when the CPU has it (checked once
/// per call, a cached flag) and portable vector code otherwise, so one
/// binary runs everywhere and is fast where it can be.
/// With `$rows`, defines the [`Rows`] kernel of the same weight type,
/// dispatched once for all its rows.
macro_rules! dispatched_dot {
    ($name:ident, $rows:ident, $weight:ty, $widen:expr) => {
        fn $name(a: &[f32], b: &[$weight]) -> f32 {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn wide(a: &[f32], b: &[$weight]) -> f32 {
                    dot_body(a, b, $widen)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { wide(a, b) };
                }
            }
            dot_body(a, b, $widen)
        }

        fn $rows(x: &[f32], weights: &[$weight], out: &mut [f32]) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn wide(x: &[f32], weights: &[$weight], out: &mut [f32]) {
                    rows_body(x, weights, out, |a, b| dot_body(a, b, $widen))
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { wide(x, weights, out) };
                }
            }
            rows_body(x, weights, out, |a, b| dot_body(a, b, $widen))
        }
    };
}

dispatched_dot!(dot_f32, rows_f32, f32, |w: f32| w);

/// `scale · (query · key)` for every key in `keys` (rows of `query.len()`),
/// prefetching each key's row of `values` and of `next_keys` as the key is
/// read, so they stream in while the scores are computed.
fn scores_f32(query: &[f32], keys: &[f32], (values, next_keys): (&[f32], &[f32]), scale: f32) -> Vec<f32> {
    let mut scores = Vec::with_capacity(keys.len() / query.len().max(1));
    #[cfg(target_arch = "x86_64")]
    {
        if query.len() % TILE_LANES == 0
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            unsafe { avx2::scores(query, keys, (values, next_keys), scale, &mut scores) };
            return scores;
        }
    }
    for (index, (key, value)) in keys.chunks_exact(query.len()).zip(values.chunks_exact(query.len())).enumerate() {
        prefetch(value);
        prefetch(next_keys.get(index * query.len()..(index + 1) * query.len()).unwrap_or_default());
        scores.push(dot_f32(query, key) * scale);
    }
    scores
}

/// Asks for every cache line of `data` ahead of its use (x86-64; a no-op
/// elsewhere).
#[inline(always)]
fn prefetch(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in (0..std::mem::size_of_val(data)).step_by(64) {
        // SAFETY: the address is inside `data`, and a prefetch reads nothing
        // into the program and cannot fault.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(data.as_ptr().cast::<i8>().add(line));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}
dispatched_dot!(dot_bf16, rows_bf16, bf16, widen);

/// Attention of one query head over the first keys and values of its
/// key/value head (rows of `query.len()`, as many in both): scores,
/// softmax and the weighted sum of values in one pass, written to `out`.
/// `next` are the keys and values the caller reads next (any length, may be
/// empty), prefetched row by row: the keys while the scores are computed,
/// the values while the values are summed. A head's keys are a stream too
/// short for the hardware prefetcher to catch in time.
pub fn attend_head(
    query: &[f32],
    (keys, values): (&[f32], &[f32]),
    (next_keys, next_values): (&[f32], &[f32]),
    scale: f32,
    out: &mut [f32],
) {
    let mut weights = scores_f32(query, keys, (values, next_keys), scale);
    let max = weights.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for weight in &mut weights {
        *weight = (*weight - max).exp();
        sum += *weight;
    }
    let inverse = 1.0 / sum;
    weights.iter_mut().for_each(|weight| *weight *= inverse);
    weighted_sum(&weights, values, next_values, out);
}

/// `out = Σ weights[j] · values[j]` over rows of `out.len()`: eight output
/// lanes at a time, each summed over every row in a register. The first
/// pass over the rows prefetches the same rows of `ahead`.
fn weighted_sum(weights: &[f32], values: &[f32], ahead: &[f32], out: &mut [f32]) {
    #[inline(always)]
    fn body(weights: &[f32], values: &[f32], ahead: &[f32], out: &mut [f32]) {
        let width = out.len();
        let whole = width - width % TILE_LANES;
        for start in (0..whole).step_by(TILE_LANES) {
            let mut sums = [0.0_f32; TILE_LANES];
            for (index, (weight, value)) in weights.iter().zip(values.chunks_exact(width)).enumerate() {
                if start == 0 {
                    prefetch(ahead.get(index * width..(index + 1) * width).unwrap_or_default());
                }
                let lanes = &value[start..start + TILE_LANES];
                for lane in 0..TILE_LANES {
                    sums[lane] += weight * lanes[lane];
                }
            }
            out[start..start + TILE_LANES].copy_from_slice(&sums);
        }
        for (index, cell) in out.iter_mut().enumerate().skip(whole) {
            *cell = weights.iter().zip(values.chunks_exact(width)).map(|(w, value)| w * value[index]).sum();
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn wide(weights: &[f32], values: &[f32], ahead: &[f32], out: &mut [f32]) {
            body(weights, values, ahead, out)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { wide(weights, values, ahead, out) };
        }
    }
    body(weights, values, ahead, out)
}

/// Rotary embedding of one head vector in place, rotate-half convention
/// (Hugging Face Llama): `x · cos + rotate_half(x) · sin` with the
/// position's `cos` and `sin` rows of the head's length.
pub fn rotate_half(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = x.len() / 2;
    let (first, second) = x.split_at_mut(half);
    for i in 0..half {
        let (a, b) = (first[i], second[i]);
        first[i] = a * cos[i] - b * sin[i];
        second[i] = b * cos[half + i] + a * sin[half + i];
    }
}

/// RMSNorm of every row of `x` (rows of `weight.len()`) into `out`:
/// `x / sqrt(mean(x²) + eps) · weight`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let dim = weight.len();
    for (row, out) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        // Independent lanes: a sum the compiler can keep in vector registers.
        let mut lanes = [0.0_f32; TILE_LANES];
        let chunks = row.chunks_exact(TILE_LANES);
        let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
        for chunk in chunks {
            for lane in 0..TILE_LANES {
                lanes[lane] += chunk[lane] * chunk[lane];
            }
        }
        let mean_square = (lanes.iter().sum::<f32>() + tail) / dim as f32;
        let inverse = 1.0 / (mean_square + eps).sqrt();
        for ((o, v), w) in out.iter_mut().zip(row).zip(weight) {
            *o = v * inverse * w;
        }
    }
}

/// The SwiGLU gate in place: `gate = silu(gate) · up`, element by element,
/// on the engine's threads when there is enough of it.
/// The exponential is `attention::exp2`, a polynomial the compiler
/// vectorizes (AVX2 chosen at run time), where `f32::exp` is a call per
/// value: a 2048-token prefill of `base` gates 19 M values.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    #[inline(always)]
    fn body(gate: &mut [f32], up: &[f32]) {
        for (g, u) in gate.iter_mut().zip(up) {
            *g = *g / (1.0 + super::attention::exp2(-*g * std::f32::consts::LOG2_E)) * u;
        }
    }
    let work = |(gate, up): (&mut [f32], &[f32])| {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn wide(gate: &mut [f32], up: &[f32]) {
                body(gate, up)
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                return unsafe { wide(gate, up) };
            }
        }
        body(gate, up)
    };
    if gate.len() < ELEMENTWISE_PARALLEL_MIN {
        work((gate, up));
    } else {
        gate.par_chunks_mut(ELEMENTWISE_PARALLEL_MIN / 2).zip(up.par_chunks(ELEMENTWISE_PARALLEL_MIN / 2)).for_each(work);
    }
}

/// Elements at which an elementwise pass with an `exp` each is worth
/// splitting over threads (a few microseconds of work).
const ELEMENTWISE_PARALLEL_MIN: usize = 4096;

/// Softmax over the last dimension of `scores (groups, rep · seq, total)`
/// after scaling by `scale` and masking key `j` from query `i` (the row's
/// position within its `seq` block) unless `j ≤ offset + i`.
pub fn causal_softmax(scores: &Tensor, scale: f32, seq: usize, offset: usize) -> Result<Tensor, LlmError> {
    let dims = scores.dims().to_vec();
    let total = *dims.last().ok_or_else(|| LlmError::Input("causal_softmax: a scalar".into()))?;
    let mut values: Vec<f32> = with_slice(&scores.contiguous()?, <[f32]>::to_vec)?;
    values.par_chunks_mut(total).enumerate().for_each(|(row, cells)| {
        let allowed = (offset + row % seq + 1).min(total);
        let (kept, masked) = cells.split_at_mut(allowed);
        let mut max = f32::NEG_INFINITY;
        for cell in kept.iter_mut() {
            *cell *= scale;
            max = max.max(*cell);
        }
        let mut sum = 0.0_f32;
        for cell in kept.iter_mut() {
            *cell = (*cell - max).exp();
            sum += *cell;
        }
        let inverse = 1.0 / sum;
        kept.iter_mut().for_each(|cell| *cell *= inverse);
        masked.fill(0.0);
    });
    Ok(Tensor::from_vec(values, dims, &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = crate::engines::rng::SplitMix::new(seed);
        let count = shape.iter().product();
        let values: Vec<f32> = (0..count).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    fn worst(a: &Tensor, b: &Tensor) -> f32 {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), b.len());
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn gemv_matches_matmul_for_f32_and_bf16() {
        // Odd sizes: a partial last task and a dot-product tail.
        for rows in 1..=GEMV_MAX_ROWS {
            let x = random(&[rows, 301], 1);
            let w = random(&[197, 301], 2);
            let expected = x.matmul(&w.t().unwrap()).unwrap();
            assert!(worst(&gemv(&x, &w).unwrap(), &expected) < 1e-4);
            let w16 = w.to_dtype(DType::BF16).unwrap();
            let expected = x.matmul(&w16.to_dtype(DType::F32).unwrap().t().unwrap()).unwrap();
            assert!(worst(&gemv(&x, &w16).unwrap(), &expected) < 1e-4);
        }
        assert!(gemv(&random(&[1, 3], 1), &random(&[2, 4], 1)).is_err());
        // Empty shapes give empty or zero products, not a panic.
        let zeros = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(gemv(&zeros(&[0, 5]), &zeros(&[3, 5])).unwrap().dims(), [0, 3]);
        assert_eq!(gemv(&zeros(&[2, 5]), &zeros(&[0, 5])).unwrap().dims(), [2, 0]);
        assert_eq!(gemv(&zeros(&[2, 0]), &zeros(&[3, 0])).unwrap().to_vec2::<f32>().unwrap(), vec![vec![0.0; 3]; 2]);
    }

    #[test]
    fn gemv_of_f16_weights_matches_matmul_of_the_widened_weights() {
        for rows in [1, 2, 3, 8] {
            let x = random(&[rows, 301], 3);
            let w = random(&[197, 301], 4).to_dtype(DType::F16).unwrap();
            let expected = x.matmul(&w.to_dtype(DType::F32).unwrap().t().unwrap()).unwrap();
            assert!(worst(&gemv(&x, &w).unwrap(), &expected) < 1e-4, "{rows} rows");
        }
    }

    #[test]
    fn the_row_kernels_compute_each_rows_dot_product() {
        // 301 columns: the vector loops and a tail. Each kernel writes 5
        // rows into the first 5 of 7 cells; the other two must stay as they were.
        let (rows, input) = (5, 301);
        let x = random(&[input], 5).to_vec1::<f32>().unwrap();
        let w = random(&[rows, input], 6).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let check = |name: &str, widened: Vec<f32>, kernel: &dyn Fn(&mut [f32])| {
            let mut out = vec![7.0_f32; rows + 2];
            kernel(&mut out[..rows]);
            assert_eq!(out[rows..], [7.0, 7.0], "{name} wrote past its rows");
            for (r, row) in widened.chunks_exact(input).enumerate() {
                let want = row.iter().zip(&x).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>() as f32;
                assert!((out[r] - want).abs() < 1e-4, "{name}, row {r}: {} against {want}", out[r]);
            }
        };
        check("f32", w.clone(), &|out| rows_f32(&x, &w, out));
        check("portable f32", w.clone(), &|out| rows_body(&x, &w, out, |a, b| dot_body(a, b, |v: f32| v)));
        // Narrow weights: the products are those of the rounded weights.
        let halves: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
        let widened: Vec<f32> = halves.iter().map(|v| v.to_f32()).collect();
        check("f16", widened.clone(), &|out| rows_f16(&x, &halves, out));
        check("portable f16", widened, &|out| rows_body(&x, &halves, out, |a, b| dot_body(a, b, f16::to_f32)));
        let brains: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
        let widened: Vec<f32> = brains.iter().map(|v| v.to_f32()).collect();
        check("bf16", widened.clone(), &|out| rows_bf16(&x, &brains, out));
        check("portable bf16", widened, &|out| rows_body(&x, &brains, out, |a, b| dot_body(a, b, widen)));
    }

    #[test]
    fn the_portable_and_the_vector_tiles_compute_the_same_products() {
        // 5 rows (two pairs and one left to the caller), an input with a tail past the vector width.
        let (rows, input) = (5, 61);
        let x = random(&[rows, input], 8).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let w = random(&[TILE_OUTS, input], 9).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let x_rows: Vec<&[f32]> = x.chunks_exact(input).collect();
        let ws: [&[f32]; TILE_OUTS] = std::array::from_fn(|o| &w[o * input..(o + 1) * input]);
        // Written at column 3 of rows 9 wide: the kernels touch only their four columns.
        let (width, column) = (9, 3);
        let (mut portable, mut dispatched) = (vec![0.0; width * rows], vec![0.0; width * rows]);
        tiles_body(&x_rows, &ws, &mut portable.chunks_mut(width).collect::<Vec<_>>(), column, |w: f32| w);
        tiles_f32(&x_rows, &ws, &mut dispatched.chunks_mut(width).collect::<Vec<_>>(), column, &[]);
        for r in 0..rows {
            for c in 0..width {
                let (p, d) = (portable[r * width + c], dispatched[r * width + c]);
                if r == rows - 1 || !(column..column + TILE_OUTS).contains(&c) {
                    // The odd last row is the caller's, as are other columns.
                    assert_eq!((p, d), (0.0, 0.0), "row {r} column {c}");
                    continue;
                }
                let expected: f32 = x_rows[r].iter().zip(ws[c - column]).map(|(a, b)| a * b).sum();
                assert!((p - expected).abs() < 1e-4, "portable {r} {c}");
                assert!((d - expected).abs() < 1e-4, "dispatched {r} {c}");
            }
        }
    }

    #[test]
    fn attend_head_matches_the_textbook_formula() {
        // 8 wide: the AVX2 scores, four keys at a time and one left over;
        // 12 wide: the portable scores and a weighted sum with a tail past
        // the vector width.
        for (total, head_dim) in [(33, 8), (33, 12)] {
            let flat = |shape: &[usize], seed| random(shape, seed).flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let (q, keys, values) = (flat(&[head_dim], 3), flat(&[total, head_dim], 4), flat(&[total, head_dim], 5));
            let mut ours = vec![f32::NAN; head_dim];
            attend_head(&q, (&keys, &values), (&keys, &values), 0.35, &mut ours);
            let key = |j: usize| &keys[j * head_dim..(j + 1) * head_dim];
            let scores: Vec<f32> =
                (0..total).map(|j| q.iter().zip(key(j)).map(|(a, b)| a * b).sum::<f32>() * 0.35).collect();
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = scores.iter().map(|s| (s - max).exp()).sum();
            for d in 0..head_dim {
                let expected: f32 =
                    (0..total).map(|j| (scores[j] - max).exp() / sum * values[j * head_dim + d]).sum();
                assert!((ours[d] - expected).abs() < 1e-5, "width {head_dim}, dim {d}");
            }
        }
    }

    #[test]
    fn rotate_half_rms_norm_and_silu_mul_match_candle() {
        let (rows, dim) = (3, 16);
        let x = random(&[rows, dim], 6);
        let (cos, sin) = (random(&[rows, dim], 7), random(&[rows, dim], 8));
        let half = dim / 2;
        let rotated = Tensor::cat(&[&x.narrow(1, half, half).unwrap().neg().unwrap(), &x.narrow(1, 0, half).unwrap()], 1)
            .unwrap();
        let expected = ((&x * &cos).unwrap() + (rotated * &sin).unwrap()).unwrap();
        let mut ours = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (c, s) = (cos.flatten_all().unwrap().to_vec1::<f32>().unwrap(), sin.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        for r in 0..rows {
            rotate_half(&mut ours[r * dim..(r + 1) * dim], &c[r * dim..(r + 1) * dim], &s[r * dim..(r + 1) * dim]);
        }
        assert!(worst(&Tensor::from_vec(ours, (rows, dim), &Device::Cpu).unwrap(), &expected) < 1e-6);

        let (gate, up) = (random(&[rows, dim], 10), random(&[rows, dim], 11));
        let expected = (gate.silu().unwrap() * &up).unwrap();
        let mut ours = gate.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        silu_mul(&mut ours, &up.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert!(worst(&Tensor::from_vec(ours, (rows, dim), &Device::Cpu).unwrap(), &expected) < 1e-6);

        let weight = random(&[dim], 9);
        let mean_square = x.sqr().unwrap().mean_keepdim(1).unwrap();
        let expected = x.broadcast_div(&(mean_square + 1e-5).unwrap().sqrt().unwrap()).unwrap().broadcast_mul(&weight).unwrap();
        let mut ours = vec![0.0; rows * dim];
        rms_norm(
            &x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &weight.to_vec1::<f32>().unwrap(),
            1e-5,
            &mut ours,
        );
        assert!(worst(&Tensor::from_vec(ours, (rows, dim), &Device::Cpu).unwrap(), &expected) < 1e-5);
    }

    #[test]
    fn causal_softmax_matches_masked_softmax() {
        let (groups, rep, seq, offset) = (2, 3, 5, 4);
        let total = offset + seq;
        let scores = random(&[groups, rep * seq, total], 7);
        let ours = causal_softmax(&scores, 0.5, seq, offset).unwrap().to_vec3::<f32>().unwrap();
        let raw = scores.to_vec3::<f32>().unwrap();
        for g in 0..groups {
            for r in 0..rep * seq {
                let allowed = offset + r % seq + 1;
                let max = raw[g][r][..allowed].iter().map(|v| v * 0.5).fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = raw[g][r][..allowed].iter().map(|v| (v * 0.5 - max).exp()).sum();
                for j in 0..total {
                    let expected = if j < allowed { (raw[g][r][j] * 0.5 - max).exp() / sum } else { 0.0 };
                    assert!((ours[g][r][j] - expected).abs() < 1e-6, "{g} {r} {j}");
                }
            }
        }
    }
}

