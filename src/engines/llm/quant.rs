//! Block-quantized weight matrices, multiplied on their blocks.
//!
//! The blocks are GGML's, byte for byte, so a GGUF file's tensors are used
//! as read and a matrix quantized here is what llama.cpp would store:
//!
//! | type | elements | bytes | value |
//! |---|---|---|---|
//! | Q8_0 | 32 | 34 | `d · q`, `d` f16, `q` i8 |
//! | Q4_0 | 32 | 18 | `d · (q − 8)`, `q` 4-bit |
//! | Q4_K | 256 | 144 | `d · sc · q − dmin · m`, 8 sub-blocks of 32 with 6-bit `sc`, `m` |
//! | Q6_K | 256 | 210 | `d · sc · (q − 32)`, 16 sub-blocks of 16 with i8 `sc`, `q` 6-bit |
//!
//! A product `x · Wᵀ` quantizes each row of `x` the way llama.cpp does
//! (to Q8_0 blocks for Q8_0 and Q4_0 weights, to Q8_K blocks of 256 with
//! their 16-element sums for the K types) and sums integer products per
//! block, scaled once per block: the weights are read at their stored size,
//! which is what a memory-bound decoding step's speed is, and the result
//! is the one llama.cpp computes up to the order of float additions.
//! Q8_0, Q4_0, Q4_K and Q6_K (the type of a Q4_K_M file's head and of some
//! of its layers) have AVX2 kernels, chosen at run time; the portable code
//! is the reference they are tested against.

use half::f16;
use rayon::prelude::*;

use super::LlmError;

/// A block-quantized type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantType {
    /// 32 × i8 and an f16 scale.
    Q8_0,
    /// 32 × 4 bits, offset 8, and an f16 scale.
    Q4_0,
    /// 256 × 4 bits in 8 sub-blocks with 6-bit scales and minimums.
    Q4K,
    /// 256 × 6 bits in 16 sub-blocks with i8 scales.
    Q6K,
}

impl QuantType {
    /// Elements per block.
    pub fn block_elements(self) -> usize {
        match self {
            QuantType::Q8_0 | QuantType::Q4_0 => 32,
            QuantType::Q4K | QuantType::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            QuantType::Q8_0 => 34,
            QuantType::Q4_0 => 18,
            QuantType::Q4K => 144,
            QuantType::Q6K => 210,
        }
    }

    /// llama.cpp's name.
    pub fn name(self) -> &'static str {
        match self {
            QuantType::Q8_0 => "Q8_0",
            QuantType::Q4_0 => "Q4_0",
            QuantType::Q4K => "Q4_K",
            QuantType::Q6K => "Q6_K",
        }
    }

    fn candle(self) -> candle_core::quantized::GgmlDType {
        use candle_core::quantized::GgmlDType;
        match self {
            QuantType::Q8_0 => GgmlDType::Q8_0,
            QuantType::Q4_0 => GgmlDType::Q4_0,
            QuantType::Q4K => GgmlDType::Q4K,
            QuantType::Q6K => GgmlDType::Q6K,
        }
    }
}

/// A `(rows, cols)` matrix of quantized rows, each `cols / block_elements`
/// whole blocks.
#[derive(Clone, Debug)]
pub struct QMatrix {
    kind: QuantType,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl QMatrix {
    /// A matrix from its stored blocks, checked for size.
    pub fn from_blocks(kind: QuantType, rows: usize, cols: usize, data: Vec<u8>) -> Result<QMatrix, LlmError> {
        if cols % kind.block_elements() != 0 {
            return Err(LlmError::Input(format!(
                "rows of {cols} elements are not whole {}-element blocks of {}",
                kind.block_elements(),
                kind.name()
            )));
        }
        let expected = rows * cols / kind.block_elements() * kind.block_bytes();
        if data.len() != expected {
            return Err(LlmError::Input(format!(
                "a {rows}×{cols} {} matrix takes {expected} bytes, not {}",
                kind.name(),
                data.len()
            )));
        }
        Ok(QMatrix { kind, rows, cols, data })
    }

    /// Quantizes `values (rows, cols)` (row-major f32) to `kind`, with the
    /// block rounding llama.cpp's reference quantizer uses (candle-core's port).
    pub fn quantize(kind: QuantType, values: &[f32], rows: usize, cols: usize) -> Result<QMatrix, LlmError> {
        if cols % kind.block_elements() != 0 {
            return Err(LlmError::Input(format!(
                "{} needs rows that are whole blocks of {} elements; these have {cols}",
                kind.name(),
                kind.block_elements()
            )));
        }
        let tensor = candle_core::Tensor::from_slice(values, (rows, cols), &candle_core::Device::Cpu)?;
        let quantized = candle_core::quantized::QTensor::quantize(&tensor, kind.candle())?;
        QMatrix::from_blocks(kind, rows, cols, quantized.data()?.into_owned())
    }

    /// The stored type.
    pub fn kind(&self) -> QuantType {
        self.kind
    }

    /// `(rows, cols)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Bytes stored, all rows.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The stored blocks, row after row, as GGML lays them out.
    pub fn blocks(&self) -> &[u8] {
        &self.data
    }

    fn row_bytes(&self) -> usize {
        self.cols / self.kind.block_elements() * self.kind.block_bytes()
    }

    fn row(&self, index: usize) -> &[u8] {
        let width = self.row_bytes();
        &self.data[index * width..(index + 1) * width]
    }

    /// Row `index` as f32 values (an embedding lookup).
    pub fn dequantize_row(&self, index: usize, out: &mut [f32]) {
        let (per_block, block_bytes) = (self.kind.block_elements(), self.kind.block_bytes());
        for (block, values) in self.row(index).chunks_exact(block_bytes).zip(out.chunks_exact_mut(per_block)) {
            match self.kind {
                QuantType::Q8_0 => dequantize_q8_0(block, values),
                QuantType::Q4_0 => dequantize_q4_0(block, values),
                QuantType::Q4K => dequantize_q4k(block, values),
                QuantType::Q6K => dequantize_q6k(block, values),
            }
        }
    }

    /// Every value, row-major (tests, and a check of the kernels).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.rows * self.cols];
        for (index, row) in out.chunks_exact_mut(self.cols).enumerate() {
            self.dequantize_row(index, row);
        }
        out
    }

    /// `x (m, cols) · Wᵀ`, row-major `(m, rows)`.
    pub fn matmul(&self, x: &[f32], m: usize) -> Result<Vec<f32>, LlmError> {
        if x.len() != m * self.cols {
            return Err(LlmError::Input(format!(
                "a product with a {}×{} matrix needs rows of {} values",
                self.rows, self.cols, self.cols
            )));
        }
        let mut out = vec![0.0_f32; m * self.rows];
        if m == 0 || self.rows == 0 || self.cols == 0 {
            return Ok(out);
        }
        let activations = Activations::quantize(self.kind, x, m, self.cols);
        let rows_kernel = self.rows_kernel();
        let row_bytes = self.row_bytes();
        // Tasks of consecutive weight rows; inside a task, tiles of rows of
        // x, so the task's weights stay in cache while every row of x meets them.
        let per_task = (self.rows / (rayon::current_num_threads() * 8)).clamp(4, 64);
        let tasks: Vec<(usize, Vec<f32>)> = (0..self.rows.div_ceil(per_task))
            .into_par_iter()
            .map(|task| {
                let first = task * per_task;
                let count = per_task.min(self.rows - first);
                let weights = &self.data[first * row_bytes..(first + count) * row_bytes];
                // sums[r · count + w]: row r of x with weight row first + w.
                let mut sums = vec![0.0_f32; count * m];
                for (r, cells) in sums.chunks_exact_mut(count).enumerate() {
                    rows_kernel(weights, activations.row(r), cells);
                }
                (first, sums)
            })
            .collect();
        for (first, sums) in tasks {
            let count = sums.len() / m;
            for (r, cells) in sums.chunks_exact(count).enumerate() {
                out[r * self.rows + first..][..count].copy_from_slice(cells);
            }
        }
        Ok(out)
    }

    /// The products of several consecutive weight rows with one quantized
    /// activation row: `out[w] = row w · x`.
    fn rows_kernel(&self) -> fn(&[u8], &[u8], &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            match self.kind {
                QuantType::Q8_0 => return avx2::rows_q8_0,
                QuantType::Q4_0 => return avx2::rows_q4_0,
                QuantType::Q4K => return avx2::rows_q4k,
                QuantType::Q6K => return avx2::rows_q6k,
            }
        }
        fn rows<const KIND: u8>(weights: &[u8], x: &[u8], out: &mut [f32]) {
            let width = weights.len() / out.len().max(1);
            let dot = match KIND {
                0 => dot_q8_0,
                1 => dot_q4_0,
                2 => dot_q4k,
                _ => dot_q6k,
            };
            for (w, cell) in weights.chunks_exact(width).zip(out) {
                *cell = dot(w, x);
            }
        }
        match self.kind {
            QuantType::Q8_0 => rows::<0>,
            QuantType::Q4_0 => rows::<1>,
            QuantType::Q4K => rows::<2>,
            QuantType::Q6K => rows::<3>,
        }
    }
}

/// Rows of `x` from which their quantization is spread over the threads.
const PARALLEL_MIN_ROWS: usize = 16;

/// Bytes of a Q8_K block: f32 scale, 256 × i8, 16 × i16 sums.
const Q8K_BYTES: usize = 4 + 256 + 32;

/// Rows of `x` quantized for the dot products with one weight type.
struct Activations {
    data: Vec<u8>,
    row_bytes: usize,
}

impl Activations {
    fn quantize(kind: QuantType, x: &[f32], m: usize, cols: usize) -> Activations {
        let k_type = matches!(kind, QuantType::Q4K | QuantType::Q6K);
        let (per_block, block_bytes) = if k_type { (256, Q8K_BYTES) } else { (32, 34) };
        let row_bytes = cols / per_block * block_bytes;
        let mut data = vec![0_u8; m * row_bytes];
        let quantize_row = |(out, row): (&mut [u8], &[f32])| {
            for (block, values) in out.chunks_exact_mut(block_bytes).zip(row.chunks_exact(per_block)) {
                if k_type {
                    quantize_q8k(values, block);
                } else {
                    quantize_q8_0(values, block);
                }
            }
        };
        if m < PARALLEL_MIN_ROWS {
            // A decoding step's row or few: less work than waking the other threads.
            data.chunks_mut(row_bytes).zip(x.chunks(cols)).for_each(quantize_row);
        } else {
            data.par_chunks_mut(row_bytes).zip(x.par_chunks(cols)).for_each(quantize_row);
        }
        Activations { data, row_bytes }
    }

    fn row(&self, index: usize) -> &[u8] {
        &self.data[index * self.row_bytes..(index + 1) * self.row_bytes]
    }
}

fn half_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Q8_0 of 32 values, as llama.cpp's reference: `d = max|x| / 127`, `q = round(x / d)`.
fn quantize_q8_0(values: &[f32], block: &mut [u8]) {
    let amax = values.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
    block[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    for (q, v) in block[2..34].iter_mut().zip(values) {
        *q = (v * inverse).round_ties_even() as i8 as u8;
    }
}

/// Q8_K of 256 values, as llama.cpp's reference: the scale maps the value
/// of largest magnitude to −127, and each 16 values' sum is kept.
fn quantize_q8k(values: &[f32], block: &mut [u8]) {
    let (mut amax, mut max) = (0.0_f32, 0.0_f32);
    for &v in values {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        block.fill(0);
        return;
    }
    let inverse = -127.0 / max;
    let mut quants = [0_i8; 256];
    for (q, v) in quants.iter_mut().zip(values) {
        *q = ((inverse * v).round_ties_even() as i32).min(127) as i8;
    }
    block[..4].copy_from_slice(&(1.0 / inverse).to_le_bytes());
    for (byte, q) in block[4..260].iter_mut().zip(quants) {
        *byte = q as u8;
    }
    for (group, sums) in quants.chunks_exact(16).zip(block[260..].chunks_exact_mut(2)) {
        let sum: i16 = group.iter().map(|&q| i16::from(q)).sum();
        sums.copy_from_slice(&sum.to_le_bytes());
    }
}

fn dequantize_q8_0(block: &[u8], out: &mut [f32]) {
    let d = half_at(block, 0);
    for (o, &q) in out.iter_mut().zip(&block[2..34]) {
        *o = d * f32::from(q as i8);
    }
}

fn dequantize_q4_0(block: &[u8], out: &mut [f32]) {
    let d = half_at(block, 0);
    for (j, &q) in block[2..18].iter().enumerate() {
        out[j] = d * (i32::from(q & 0xF) - 8) as f32;
        out[j + 16] = d * (i32::from(q >> 4) - 8) as f32;
    }
}

/// The 6-bit scale and minimum of sub-block `j` of a Q4_K block.
fn scale_min_k4(j: usize, scales: &[u8]) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        ((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4), (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4))
    }
}

fn dequantize_q4k(block: &[u8], out: &mut [f32]) {
    let (d, dmin) = (half_at(block, 0), half_at(block, 2));
    let (scales, qs) = (&block[4..16], &block[16..144]);
    for chunk in 0..4 {
        let q = &qs[chunk * 32..(chunk + 1) * 32];
        let (sc1, m1) = scale_min_k4(2 * chunk, scales);
        let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
        let (d1, min1) = (d * f32::from(sc1), dmin * f32::from(m1));
        let (d2, min2) = (d * f32::from(sc2), dmin * f32::from(m2));
        for l in 0..32 {
            out[chunk * 64 + l] = d1 * f32::from(q[l] & 0xF) - min1;
            out[chunk * 64 + 32 + l] = d2 * f32::from(q[l] >> 4) - min2;
        }
    }
}

/// The 256 6-bit values of a Q6_K block, offset by −32, in order.
fn q6k_values(block: &[u8]) -> [i8; 256] {
    let (ql, qh) = (&block[..128], &block[128..192]);
    let mut values = [0_i8; 256];
    for half in 0..2 {
        let (ql, qh) = (&ql[half * 64..], &qh[half * 32..]);
        let out = &mut values[half * 128..];
        for l in 0..32 {
            out[l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
            out[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            out[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            out[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    values
}

fn dequantize_q6k(block: &[u8], out: &mut [f32]) {
    let d = half_at(block, 208);
    let scales = &block[192..208];
    for (index, (o, q)) in out.iter_mut().zip(q6k_values(block)).enumerate() {
        *o = d * f32::from(scales[index / 16] as i8) * f32::from(q);
    }
}

fn i8s(bytes: &[u8]) -> impl Iterator<Item = i32> + '_ {
    bytes.iter().map(|&b| i32::from(b as i8))
}

fn dot_q8_0(weights: &[u8], x: &[u8]) -> f32 {
    weights
        .chunks_exact(34)
        .zip(x.chunks_exact(34))
        .map(|(w, a)| {
            let sum: i32 = i8s(&w[2..]).zip(i8s(&a[2..])).map(|(p, q)| p * q).sum();
            half_at(w, 0) * half_at(a, 0) * sum as f32
        })
        .sum()
}

fn dot_q4_0(weights: &[u8], x: &[u8]) -> f32 {
    weights
        .chunks_exact(18)
        .zip(x.chunks_exact(34))
        .map(|(w, a)| {
            let q = &a[2..];
            let sum: i32 = (0..16)
                .map(|j| {
                    (i32::from(w[2 + j] & 0xF) - 8) * i32::from(q[j] as i8)
                        + (i32::from(w[2 + j] >> 4) - 8) * i32::from(q[j + 16] as i8)
                })
                .sum();
            half_at(w, 0) * half_at(a, 0) * sum as f32
        })
        .sum()
}

/// A Q8_K block's scale, values and 16-element sums.
fn q8k_parts(block: &[u8]) -> (f32, &[u8], impl Iterator<Item = i32> + '_) {
    let d = f32::from_le_bytes([block[0], block[1], block[2], block[3]]);
    let sums = block[260..292].chunks_exact(2).map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])));
    (d, &block[4..260], sums)
}

fn dot_q4k(weights: &[u8], x: &[u8]) -> f32 {
    weights
        .chunks_exact(144)
        .zip(x.chunks_exact(Q8K_BYTES))
        .map(|(w, a)| {
            let (ad, q8, sums) = q8k_parts(a);
            let sums: Vec<i32> = sums.collect();
            let (scales, qs) = (&w[4..16], &w[16..144]);
            let (mut dot, mut mins) = (0_i32, 0_i32);
            for chunk in 0..4 {
                let q = &qs[chunk * 32..(chunk + 1) * 32];
                let y = &q8[chunk * 64..(chunk + 1) * 64];
                for (half, shift) in [(0, 0), (1, 4)] {
                    let (sc, m) = scale_min_k4(2 * chunk + half, scales);
                    let sub: i32 =
                        (0..32).map(|l| i32::from((q[l] >> shift) & 0xF) * i32::from(y[half * 32 + l] as i8)).sum();
                    dot += i32::from(sc) * sub;
                    let group = (2 * chunk + half) * 2;
                    mins += i32::from(m) * (sums[group] + sums[group + 1]);
                }
            }
            ad * half_at(w, 0) * dot as f32 - ad * half_at(w, 2) * mins as f32
        })
        .sum()
}

fn dot_q6k(weights: &[u8], x: &[u8]) -> f32 {
    weights
        .chunks_exact(210)
        .zip(x.chunks_exact(Q8K_BYTES))
        .map(|(w, a)| {
            let (ad, q8, _) = q8k_parts(a);
            let values = q6k_values(w);
            let scales = &w[192..208];
            let dot: i32 = (0..16)
                .map(|group| {
                    let sub: i32 = (group * 16..(group + 1) * 16)
                        .map(|l| i32::from(values[l]) * i32::from(q8[l] as i8))
                        .sum();
                    i32::from(scales[group] as i8) * sub
                })
                .sum();
            ad * half_at(w, 208) * dot as f32
        })
        .sum()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The Q8_0 and Q4_K dot products in AVX2: 32 byte products per
    //! instruction (`maddubs`), summed in 32-bit lanes.

    use std::arch::x86_64::*;

    use super::Q8K_BYTES;

    /// Defines the products of consecutive weight rows with one activation
    /// row around a dot product, in one function with its target features,
    /// so the dot product is inlined into the loop over rows.
    /// Defines the products of consecutive weight rows with one activation
    /// row around a dot product, in one function with its target features,
    /// so the dot product is inlined into the loop over rows. (Four rows at
    /// a time sharing the activation loads measured slower: 1b Q4_K decode
    /// 21.6 → 12.3 tok/s.)
    macro_rules! rows {
        ($name:ident, $inner:ident, $dot:ident) => {
            pub fn $name(weights: &[u8], x: &[u8], out: &mut [f32]) {
                #[target_feature(enable = "avx2,fma,f16c")]
                unsafe fn $inner(weights: &[u8], x: &[u8], out: &mut [f32]) {
                    let width = weights.len() / out.len().max(1);
                    for (w, cell) in weights.chunks_exact(width).zip(out) {
                        // SAFETY: the caller's CPU has the features of `$dot`.
                        *cell = unsafe { $dot(w, x) };
                    }
                }
                // SAFETY: chosen only when the CPU has AVX2, FMA and F16C.
                unsafe { $inner(weights, x, out) }
            }
        };
    }

    rows!(rows_q8_0, rows_q8_0_avx2, dot_q8_0);
    rows!(rows_q4_0, rows_q4_0_avx2, dot_q4_0);
    rows!(rows_q4k, rows_q4k_avx2, dot_q4k);
    rows!(rows_q6k, rows_q6k_avx2, dot_q6k);

    /// [`super::dot_q6k`] in AVX2: each half-block's 128 six-bit values
    /// are rebuilt from their low nibbles and high bit pairs as unsigned
    /// bytes (0–63) and multiplied with the activations; the offset of 32
    /// is taken off once per block from the activations' 16-value sums.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_q6k(weights: &[u8], x: &[u8]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let nibble = _mm256_set1_epi8(0xF);
        let high = _mm256_set1_epi8(0x30);
        for (w, a) in weights.chunks_exact(210).zip(x.chunks_exact(Q8K_BYTES)) {
            let scale = f32::from_le_bytes([a[0], a[1], a[2], a[3]]) * half_at(w, 208);
            // SAFETY: every load stays inside the 210-byte weight block
            // (ql 0..128, qh 128..192, scales 192..208) or the 292-byte
            // activation block (values 4..260, sums 260..292).
            let block = unsafe {
                let scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.as_ptr().add(192).cast()));
                let sums = _mm256_loadu_si256(a.as_ptr().add(260).cast());
                let offset = _mm256_madd_epi16(scales, sums);
                let mut total = _mm256_setzero_si256();
                for half in 0..2 {
                    let ql0 = _mm256_loadu_si256(w.as_ptr().add(64 * half).cast());
                    let ql1 = _mm256_loadu_si256(w.as_ptr().add(64 * half + 32).cast());
                    let qh = _mm256_loadu_si256(w.as_ptr().add(128 + 32 * half).cast());
                    let values = [
                        _mm256_or_si256(_mm256_and_si256(ql0, nibble), _mm256_and_si256(_mm256_slli_epi16::<4>(qh), high)),
                        _mm256_or_si256(_mm256_and_si256(ql1, nibble), _mm256_and_si256(_mm256_slli_epi16::<2>(qh), high)),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(ql0), nibble), _mm256_and_si256(qh, high)),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), nibble),
                            _mm256_and_si256(_mm256_srli_epi16::<2>(qh), high),
                        ),
                    ];
                    for (k, v) in values.into_iter().enumerate() {
                        let group = 8 * half + 2 * k;
                        let y = _mm256_loadu_si256(a.as_ptr().add(4 + 128 * half + 32 * k).cast());
                        let group_scales = _mm256_set_m128i(
                            _mm_set1_epi16(i16::from(w[192 + group + 1] as i8)),
                            _mm_set1_epi16(i16::from(w[192 + group] as i8)),
                        );
                        total = _mm256_add_epi32(total, _mm256_madd_epi16(_mm256_maddubs_epi16(v, y), group_scales));
                    }
                }
                _mm256_sub_epi32(total, _mm256_slli_epi32::<5>(offset))
            };
            acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(block), acc);
        }
        horizontal(acc)
    }

    /// The f16 at `bytes[at..at + 2]`, converted by the F16C instruction
    /// (the portable conversion costs more than a block's products).
    #[inline]
    #[target_feature(enable = "f16c")]
    fn half_at(bytes: &[u8], at: usize) -> f32 {
        let bits = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
    }

    /// Eight i32 sums of `u · s` for 32 unsigned bytes `u` (below 128) and 32 signed `s`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn products(u: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn horizontal(v: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_q8_0(weights: &[u8], x: &[u8]) -> f32 {
        // Two accumulators: consecutive blocks' multiply-adds do not wait on each other.
        let mut acc = [_mm256_setzero_ps(); 2];
        for (index, (w, a)) in weights.chunks_exact(34).zip(x.chunks_exact(34)).enumerate() {
            // SAFETY: each block holds 32 bytes from offset 2.
            let (qw, qa) = unsafe {
                (_mm256_loadu_si256(w.as_ptr().add(2).cast()), _mm256_loadu_si256(a.as_ptr().add(2).cast()))
            };
            // |w| · (a with w's sign): the unsigned-times-signed product maddubs takes.
            let sums = products(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qa, qw));
            let scale = _mm256_set1_ps(half_at(w, 0) * half_at(a, 0));
            acc[index % 2] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sums), acc[index % 2]);
        }
        horizontal(_mm256_add_ps(acc[0], acc[1]))
    }

    /// [`super::dot_q4_0`] in AVX2: a block's 32 nibbles spread to bytes
    /// (low nibbles the first 16 values, high the last 16), less 8, then
    /// multiplied as Q8_0's signed bytes are.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_q4_0(weights: &[u8], x: &[u8]) -> f32 {
        let mut acc = [_mm256_setzero_ps(); 2];
        let (nibble, eight) = (_mm_set1_epi8(0x0F), _mm256_set1_epi8(8));
        for (index, (w, a)) in weights.chunks_exact(18).zip(x.chunks_exact(34)).enumerate() {
            // SAFETY: a weight block holds 16 bytes from offset 2, an activation block 32.
            let (packed, qa) = unsafe {
                (_mm_loadu_si128(w.as_ptr().add(2).cast()), _mm256_loadu_si256(a.as_ptr().add(2).cast()))
            };
            let low = _mm_and_si128(packed, nibble);
            let high = _mm_and_si128(_mm_srli_epi16::<4>(packed), nibble);
            let qw = _mm256_sub_epi8(_mm256_set_m128i(high, low), eight);
            let sums = products(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qa, qw));
            let scale = _mm256_set1_ps(half_at(w, 0) * half_at(a, 0));
            acc[index % 2] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sums), acc[index % 2]);
        }
        horizontal(_mm256_add_ps(acc[0], acc[1]))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_q4k(weights: &[u8], x: &[u8]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut acc_mins = _mm_setzero_ps();
        let low = _mm256_set1_epi8(0xF);
        for (w, a) in weights.chunks_exact(144).zip(x.chunks_exact(Q8K_BYTES)) {
            let ad = f32::from_le_bytes([a[0], a[1], a[2], a[3]]);
            let (scales, mins) = unpack_scales(&w[4..16]);
            // The minimums times each sub-block's sum of activations: the
            // 16 sums of 16 added in pairs, then multiplied by the 8 minimums.
            // SAFETY: the 32 bytes of sums start at 260 of a 292-byte block.
            let sums = unsafe { _mm256_loadu_si256(a.as_ptr().add(260).cast()) };
            let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(sums), _mm256_extracti128_si256::<1>(sums));
            let mins = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(mins as i64)), pairs);
            acc_mins = _mm_fmadd_ps(_mm_set1_ps(ad * half_at(w, 2)), _mm_cvtepi32_ps(mins), acc_mins);
            let mut block = _mm256_setzero_si256();
            for chunk in 0..4 {
                let scale = |sub: usize| _mm256_set1_epi16(((scales >> (8 * sub)) & 0xFF) as i16);
                // SAFETY: 32 bytes of 4-bit pairs at 16 + 32·chunk (< 144),
                // 64 bytes of Q8_K values at 4 + 64·chunk (< 260).
                let (q4, y1, y2) = unsafe {
                    (
                        _mm256_loadu_si256(w.as_ptr().add(16 + chunk * 32).cast()),
                        _mm256_loadu_si256(a.as_ptr().add(4 + chunk * 64).cast()),
                        _mm256_loadu_si256(a.as_ptr().add(4 + chunk * 64 + 32).cast()),
                    )
                };
                let lo = _mm256_and_si256(q4, low);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q4), low);
                let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y1), scale(2 * chunk));
                let p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y2), scale(2 * chunk + 1));
                block = _mm256_add_epi32(block, _mm256_add_epi32(p1, p2));
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(ad * half_at(w, 0)), _mm256_cvtepi32_ps(block), acc);
        }
        let quad = _mm_add_ps(acc_mins, _mm_movehl_ps(acc_mins, acc_mins));
        let mins = _mm_cvtss_f32(_mm_add_ss(quad, _mm_movehdup_ps(quad)));
        horizontal(acc) - mins
    }

    /// The eight 6-bit scales and eight 6-bit minimums of a Q4_K block's
    /// 12 packed bytes, one per byte of each u64 (what [`scale_min_k4`]
    /// gives one at a time): bytes 0–3 hold scales 0–3 and, in their top
    /// two bits, the high bits of scales 4–7; bytes 4–7 likewise for the
    /// minimums; bytes 8–11 the low nibbles of scales (low) and minimums
    /// (high) 4–7.
    #[inline]
    fn unpack_scales(packed: &[u8]) -> (u64, u64) {
        let word = |at: usize| u32::from_le_bytes([packed[at], packed[at + 1], packed[at + 2], packed[at + 3]]);
        let (first, second, third) = (word(0), word(4), word(8));
        const SIX: u32 = 0x3f3f_3f3f;
        const NIBBLE: u32 = 0x0f0f_0f0f;
        const TWO: u32 = 0x0303_0303;
        let scales_low = first & SIX;
        let scales_high = (third & NIBBLE) | (((first >> 6) & TWO) << 4);
        let mins_low = second & SIX;
        let mins_high = ((third >> 4) & NIBBLE) | (((second >> 6) & TWO) << 4);
        (
            u64::from(scales_low) | (u64::from(scales_high) << 32),
            u64::from(mins_low) | (u64::from(mins_high) << 32),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::rng::SplitMix;

    fn values(count: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix::new(seed);
        (0..count).map(|_| rng.next_f32() * 2.0 - 1.0).collect()
    }

    fn reference(x: &[f32], w: &[f32], m: usize, rows: usize, cols: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * rows];
        for r in 0..m {
            for o in 0..rows {
                out[r * rows + o] = (0..cols).map(|k| x[r * cols + k] * w[o * cols + k]).sum();
            }
        }
        out
    }

    #[test]
    fn every_type_multiplies_close_to_its_dequantized_values() {
        let (rows, cols) = (70, 512);
        let w = values(rows * cols, 1);
        for kind in [QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4K, QuantType::Q6K] {
            let matrix = QMatrix::quantize(kind, &w, rows, cols).unwrap();
            assert_eq!(matrix.bytes(), rows * cols / kind.block_elements() * kind.block_bytes());
            let dequantized = matrix.dequantize();
            // The stored values are close to the originals, by the type's resolution.
            let error = w.iter().zip(&dequantized).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            let bound = match kind {
                QuantType::Q8_0 => 0.005,
                QuantType::Q6K => 0.05,
                _ => 0.15,
            };
            assert!(error < bound, "{kind:?}: {error}");
            for m in [1, 3, 65] {
                let x = values(m * cols, 7 + m as u64);
                let got = matrix.matmul(&x, m).unwrap();
                let want = reference(&x, &dequantized, m, rows, cols);
                let scale = want.iter().fold(0.0_f32, |a, v| a.max(v.abs()));
                let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs() / scale).fold(0.0, f32::max);
                // Only the activations' 8-bit rounding separates them.
                assert!(worst < 0.02, "{kind:?}, m {m}: {worst}");
            }
        }
    }

    #[test]
    fn the_vector_kernels_equal_the_portable_ones() {
        let (rows, cols) = (9, 768);
        let w = values(rows * cols, 2);
        let x = values(2 * cols, 3);
        for kind in [QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4K, QuantType::Q6K] {
            let matrix = QMatrix::quantize(kind, &w, rows, cols).unwrap();
            let activations = Activations::quantize(kind, &x, 2, cols);
            let portable = match kind {
                QuantType::Q8_0 => dot_q8_0,
                QuantType::Q4_0 => dot_q4_0,
                QuantType::Q4K => dot_q4k,
                _ => dot_q6k,
            };
            for r in 0..2 {
                // Nine rows at once, as a task gives them.
                let mut cells = vec![0.0_f32; rows];
                (matrix.rows_kernel())(matrix.blocks(), activations.row(r), &mut cells);
                for (o, a) in cells.iter().enumerate() {
                    let b = portable(matrix.row(o), activations.row(r));
                    assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "{kind:?} {o} {r}: {a} {b}");
                }
            }
        }
    }

    #[test]
    fn refuses_rows_that_are_not_whole_blocks_and_data_of_the_wrong_size() {
        assert!(QMatrix::quantize(QuantType::Q4K, &values(2 * 288, 1), 2, 288).is_err());
        assert!(QMatrix::from_blocks(QuantType::Q8_0, 2, 64, vec![0; 135]).is_err());
        assert!(QMatrix::from_blocks(QuantType::Q8_0, 2, 64, vec![0; 136]).is_ok());
    }
}
