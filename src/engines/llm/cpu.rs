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

/// Rows of `x` at or below which a product runs as [`gemv`].
pub const GEMV_MAX_ROWS: usize = 4;

/// Output rows per parallel task: big enough to amortize the task, small
/// enough to spread a layer over every core.
const ROWS_PER_TASK: usize = 64;

/// Whether `x (rows, ·) · Wᵀ` is faster here than in candle's matmul:
/// for a few rows, when the weights are bf16 (no widened copy) or big
/// enough to be worth both cores. Only tiny f32 matrices stay with candle.
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
        DType::F32 => with_slice::<f32, _>(weight, |w| products(&x, rows, input, w, &mut result, dot_f32))?,
        DType::BF16 => with_slice::<bf16, _>(weight, |w| products(&x, rows, input, w, &mut result, dot_bf16))?,
        other => return Err(LlmError::Input(format!("gemv: weights of type {other:?} are not supported"))),
    }
    let transposed = Tensor::from_vec(result, (out, rows), &Device::Cpu)?;
    Ok(if rows == 1 { transposed.reshape((1, out))? } else { transposed.t()?.contiguous()? })
}

fn products<W: Sync>(
    x: &[f32],
    rows: usize,
    input: usize,
    weight: &[W],
    result: &mut [f32],
    dot: fn(&[f32], &[W]) -> f32,
) {
    let task = |(index, block): (usize, &mut [f32])| {
        let first = index * ROWS_PER_TASK;
        for (offset, cells) in block.chunks_mut(rows).enumerate() {
            let row = &weight[(first + offset) * input..(first + offset + 1) * input];
            for (cell, xs) in cells.iter_mut().zip(x.chunks_exact(input)) {
                *cell = dot(xs, row);
            }
        }
    };
    if weight.len() < PARALLEL_MIN_WEIGHTS {
        // Waking the other threads would cost more than the product.
        result.chunks_mut(ROWS_PER_TASK * rows).enumerate().for_each(task);
    } else {
        result.par_chunks_mut(ROWS_PER_TASK * rows).enumerate().for_each(task);
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
                let mut weights: Vec<f32> =
                    keys.chunks_exact(head_dim).map(|key| dot_f32(query, key) * scale).collect();
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
