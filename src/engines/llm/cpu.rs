//! Hand-written CPU kernels where candle's general ones lose the most:
//!
//! - [`gemv`]: the products of a decoding step. One token multiplies every
//!   weight matrix by a single row, so the step streams each weight once and
//!   its speed is memory bandwidth; a row-parallel dot product gets there,
//!   and reads bf16 weights at half the bytes without widening the matrix.
//! - [`causal_softmax`]: scale, causal mask and softmax of a score matrix in
//!   one parallel pass over its rows, instead of one allocating pass each.

use candle_core::{DType, Device, Storage, Tensor, WithDType};
use half::bf16;
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

/// Runs `work` on the contiguous data of a CPU tensor.
fn with_slice<T: WithDType, R>(tensor: &Tensor, work: impl FnOnce(&[T]) -> R) -> Result<R, LlmError> {
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
    let x = x.to_dtype(DType::F32)?.contiguous()?;
    let x: Vec<f32> = with_slice(&x, <[f32]>::to_vec)?;
    // Output laid out (out, rows) while computing, so each task owns a contiguous block.
    let mut result = vec![0.0_f32; out * rows];
    match weight.dtype() {
        DType::F32 => with_slice::<f32, _>(weight, |w| products(&x, rows, input, w, &mut result, Kernels::F32))?,
        DType::BF16 => with_slice::<bf16, _>(weight, |w| products(&x, rows, input, w, &mut result, Kernels::BF16))?,
        other => return Err(LlmError::Input(format!("gemv: weights of type {other:?} are not supported"))),
    }
    if rows == 1 {
        return Ok(Tensor::from_vec(result, (1, out), &Device::Cpu)?);
    }
    // Back to (rows, out): a plain loop over the rows, much cheaper than a
    // strided tensor copy for the head's (vocab, rows) result.
    let mut rows_first = vec![0.0_f32; out * rows];
    for (row, cells) in rows_first.chunks_exact_mut(out).enumerate() {
        for (cell, column) in cells.iter_mut().zip(result.chunks_exact(rows)) {
            *cell = column[row];
        }
    }
    Ok(Tensor::from_vec(rows_first, (rows, out), &Device::Cpu)?)
}

/// The kernels of one weight type: a dot product for one row, and a tile
/// of [`TILE_OUTS`] weight rows by [`TILE_ROWS`] rows of `x`.
struct Kernels<W: 'static> {
    dot: fn(&[f32], &[W]) -> f32,
    tiles: Tiles<W>,
}

/// Products of [`TILE_OUTS`] weight rows with every pair of rows of `x`
/// (an odd last row is left to the caller), written to `out[o · rows + r]`.
type Tiles<W> = fn(&[&[f32]], &[&[W]; TILE_OUTS], &mut [f32]);

impl Kernels<f32> {
    const F32: Kernels<f32> = Kernels { dot: dot_f32, tiles: tiles_f32 };
}

impl Kernels<bf16> {
    const BF16: Kernels<bf16> = Kernels { dot: dot_bf16, tiles: tiles_bf16 };
}

fn products<W: Sync>(x: &[f32], rows: usize, input: usize, weight: &[W], result: &mut [f32], kernels: Kernels<W>) {
    let x_rows: Vec<&[f32]> = x.chunks_exact(input).collect();
    let per_task = if rows >= TILE_ROWS { ROWS_PER_BATCHED_TASK } else { ROWS_PER_TASK };
    let task = |(index, block): (usize, &mut [f32])| {
        let first = index * per_task;
        let outs = block.len() / rows;
        let weight_row = |offset: usize| &weight[(first + offset) * input..(first + offset + 1) * input];
        let mut offset = 0;
        // Several rows of x (a batched decoding step): each tile loads a
        // stretch of TILE_OUTS weight rows once and multiplies it into
        // TILE_ROWS rows of x, so the weights stream from memory once per
        // step and every load feeds several products.
        while rows >= TILE_ROWS && offset + TILE_OUTS <= outs {
            let ws: [&[W]; TILE_OUTS] = std::array::from_fn(|o| weight_row(offset + o));
            (kernels.tiles)(&x_rows, &ws, &mut block[offset * rows..(offset + TILE_OUTS) * rows]);
            for row in rows - rows % TILE_ROWS..rows {
                for (o, w) in ws.iter().enumerate() {
                    block[(offset + o) * rows + row] = (kernels.dot)(x_rows[row], w);
                }
            }
            offset += TILE_OUTS;
        }
        for offset in offset..outs {
            let w = weight_row(offset);
            for (cell, xs) in block[offset * rows..(offset + 1) * rows].iter_mut().zip(&x_rows) {
                *cell = (kernels.dot)(xs, w);
            }
        }
    };
    if weight.len() < PARALLEL_MIN_WEIGHTS {
        // Waking the other threads would cost more than the product.
        result.chunks_mut(per_task * rows).enumerate().for_each(task);
    } else {
        result.par_chunks_mut(per_task * rows).enumerate().for_each(task);
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
fn tiles_body<W: Copy>(x_rows: &[&[f32]], ws: &[&[W]; TILE_OUTS], out: &mut [f32], widen: impl Fn(W) -> f32 + Copy) {
    let rows = x_rows.len();
    for (pair, xs) in x_rows.chunks_exact(TILE_ROWS).enumerate() {
        let xs: [&[f32]; TILE_ROWS] = std::array::from_fn(|r| xs[r]);
        let sums = tile_body(&xs, ws, widen);
        for (o, sums) in sums.iter().enumerate() {
            out[o * rows + pair * TILE_ROWS..][..TILE_ROWS].copy_from_slice(sums);
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
        fn $name(x_rows: &[&[f32]], ws: &[&[$weight]; TILE_OUTS], out: &mut [f32]) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                    return unsafe { avx2::tiles(x_rows, ws, out, $widen) };
                }
            }
            tiles_body(x_rows, ws, out, $widen)
        }
    };
}

dispatched_tile!(tiles_f32, f32, |w: f32| w);
dispatched_tile!(tiles_bf16, bf16, widen);

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The tile kernel in AVX2 and FMA intrinsics.

    use std::arch::x86_64::*;

    use half::bf16;

    use super::{TILE_LANES, TILE_OUTS, TILE_ROWS};

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

    /// [`super::Tiles`]: `out[o · rows + r] = x_rows[r] · ws[o]` for every
    /// pair of rows, eight accumulators in registers per pair.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tiles<W: Lanes>(x_rows: &[&[f32]], ws: &[&[W]; TILE_OUTS], out: &mut [f32], widen: impl Fn(W) -> f32) {
        const { assert!(TILE_OUTS == 4 && TILE_ROWS == 2 && TILE_LANES == 8) };
        let rows = x_rows.len();
        let Some(input) = ws.first().map(|w| w.len()) else { return };
        assert!(x_rows.iter().all(|x| x.len() == input) && ws.iter().all(|w| w.len() == input));
        assert!(out.len() >= TILE_OUTS * rows);
        let whole = input - input % TILE_LANES;
        for pair in 0..rows / TILE_ROWS {
            let (x0, x1) = (x_rows[2 * pair], x_rows[2 * pair + 1]);
            // SAFETY: every load reads lanes `at..at + 8` with `at + 8 <=
            // whole <= input`, the length of every slice (asserted above).
            let sums = unsafe {
                let (mut a00, mut a01, mut a10, mut a11) =
                    (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
                let (mut a20, mut a21, mut a30, mut a31) =
                    (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
                let mut at = 0;
                while at < whole {
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
                // Horizontal sums of all eight at once: pairwise adds within
                // each 128-bit half, then the halves added, leave the sums in
                // the order [o0r0, o0r1, o1r0, o1r1, o2r0, o2r1, o3r0, o3r1].
                let upper = _mm256_hadd_ps(_mm256_hadd_ps(a00, a01), _mm256_hadd_ps(a10, a11));
                let lower = _mm256_hadd_ps(_mm256_hadd_ps(a20, a21), _mm256_hadd_ps(a30, a31));
                let sums = _mm256_add_ps(
                    _mm256_permute2f128_ps::<0x20>(upper, lower),
                    _mm256_permute2f128_ps::<0x31>(upper, lower),
                );
                let mut flat = [0.0_f32; TILE_OUTS * TILE_ROWS];
                _mm256_storeu_ps(flat.as_mut_ptr(), sums);
                flat
            };
            for o in 0..TILE_OUTS {
                for (r, x) in [x0, x1].into_iter().enumerate() {
                    let tail: f32 = (whole..input).map(|k| x[k] * widen(ws[o][k])).sum();
                    out[o * rows + 2 * pair + r] = sums[2 * o + r] + tail;
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
macro_rules! dispatched_dot {
    ($name:ident, $weight:ty, $widen:expr) => {
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
    };
}

dispatched_dot!(dot_f32, f32, |w: f32| w);

/// `scale · (query · key)` for every key in `keys` (rows of `query.len()`):
/// one dispatch for all of a head's keys, each dot product inlined.
fn scores_f32(query: &[f32], keys: &[f32], scale: f32) -> Vec<f32> {
    #[inline(always)]
    fn body(query: &[f32], keys: &[f32], scale: f32) -> Vec<f32> {
        keys.chunks_exact(query.len()).map(|key| dot_body(query, key, |w: f32| w) * scale).collect()
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn wide(query: &[f32], keys: &[f32], scale: f32) -> Vec<f32> {
            body(query, keys, scale)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { wide(query, keys, scale) };
        }
    }
    body(query, keys, scale)
}
dispatched_dot!(dot_bf16, bf16, widen);

/// Attention of one query position: `q (heads, 1, head_dim)` over the first
/// `total` rows of the key and value buffers `(kv_heads, capacity, head_dim)`
/// (grouped-query: query head `h` reads key/value head `h / (heads / kv_heads)`).
/// Scores, softmax and the weighted sum of values in one pass per head,
/// returned as `(heads, 1, head_dim)`.
pub fn decode_attention(
    q: &Tensor,
    keys: &Tensor,
    values: &Tensor,
    total: usize,
    scale: f32,
) -> Result<Tensor, LlmError> {
    let (heads, rows, head_dim) = q.dims3()?;
    let (kv_heads, capacity, kv_head_dim) = keys.dims3()?;
    if rows != 1 || kv_head_dim != head_dim || kv_heads == 0 || heads % kv_heads != 0 || total > capacity {
        return Err(LlmError::Input(format!(
            "decode_attention: q {:?} does not fit keys {:?} at {total} positions",
            q.dims(),
            keys.dims()
        )));
    }
    let group = heads / kv_heads;
    let q: Vec<f32> = with_slice(&q.contiguous()?, <[f32]>::to_vec)?;
    let mut out = vec![0.0_f32; heads * head_dim];
    with_slice::<f32, _>(keys, |keys| {
        with_slice::<f32, _>(values, |values| {
            let head = |(index, out): (usize, &mut [f32])| {
                let start = (index / group) * capacity * head_dim;
                let keys = &keys[start..start + total * head_dim];
                let values = &values[start..start + total * head_dim];
                let query = &q[index * head_dim..(index + 1) * head_dim];
                let mut weights = scores_f32(query, keys, scale);
                let max = weights.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for weight in &mut weights {
                    *weight = (*weight - max).exp();
                    sum += *weight;
                }
                for (weight, value) in weights.iter().zip(values.chunks_exact(head_dim)) {
                    let weight = weight / sum;
                    out.iter_mut().zip(value).for_each(|(o, v)| *o += weight * v);
                }
            };
            if heads * total * head_dim < PARALLEL_MIN_WEIGHTS {
                out.chunks_mut(head_dim).enumerate().for_each(head);
            } else {
                out.par_chunks_mut(head_dim).enumerate().for_each(head);
            }
        })
    })??;
    Ok(Tensor::from_vec(out, (heads, 1, head_dim), &Device::Cpu)?)
}

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
    }

    #[test]
    fn the_portable_and_the_vector_tiles_compute_the_same_products() {
        // 5 rows (two pairs and one left to the caller), an input with a tail past the vector width.
        let (rows, input) = (5, 61);
        let x = random(&[rows, input], 8).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let w = random(&[TILE_OUTS, input], 9).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let x_rows: Vec<&[f32]> = x.chunks_exact(input).collect();
        let ws: [&[f32]; TILE_OUTS] = std::array::from_fn(|o| &w[o * input..(o + 1) * input]);
        let (mut portable, mut dispatched) = (vec![0.0; TILE_OUTS * rows], vec![0.0; TILE_OUTS * rows]);
        tiles_body(&x_rows, &ws, &mut portable, |w: f32| w);
        tiles_f32(&x_rows, &ws, &mut dispatched);
        for o in 0..TILE_OUTS {
            for r in 0..rows - 1 {
                let expected: f32 = x_rows[r].iter().zip(ws[o]).map(|(a, b)| a * b).sum();
                assert!((portable[o * rows + r] - expected).abs() < 1e-4, "portable {o} {r}");
                assert!((dispatched[o * rows + r] - expected).abs() < 1e-4, "dispatched {o} {r}");
            }
            // The odd last row is the caller's: neither kernel writes it.
            assert_eq!((portable[o * rows + rows - 1], dispatched[o * rows + rows - 1]), (0.0, 0.0));
        }
    }

    #[test]
    fn decode_attention_matches_the_textbook_formula() {
        let (heads, kv_heads, capacity, head_dim, total) = (6, 2, 40, 8, 33);
        let q = random(&[heads, 1, head_dim], 3);
        let keys = random(&[kv_heads, capacity, head_dim], 4);
        let values = random(&[kv_heads, capacity, head_dim], 5);
        let ours = decode_attention(&q, &keys, &values, total, 0.35).unwrap().to_vec3::<f32>().unwrap();
        let (qv, kv, vv) =
            (q.to_vec3::<f32>().unwrap(), keys.to_vec3::<f32>().unwrap(), values.to_vec3::<f32>().unwrap());
        for h in 0..heads {
            let g = h / (heads / kv_heads);
            let scores: Vec<f32> =
                (0..total).map(|j| (0..head_dim).map(|d| qv[h][0][d] * kv[g][j][d]).sum::<f32>() * 0.35).collect();
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = scores.iter().map(|s| (s - max).exp()).sum();
            for d in 0..head_dim {
                let expected: f32 = (0..total).map(|j| (scores[j] - max).exp() / sum * vv[g][j][d]).sum();
                assert!((ours[h][0][d] - expected).abs() < 1e-5, "head {h} dim {d}");
            }
        }
        assert!(decode_attention(&q, &keys, &values, capacity + 1, 0.35).is_err());
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
