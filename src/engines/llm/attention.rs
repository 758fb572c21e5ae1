//! Fused causal attention on the CPU, reading keys and values where the KV
//! cache keeps them, in the cache's storage type (`kv_dtype`: f32, f16 or
//! bf16).
//!
//! One call attends a set of query rows that share a key/value head (the
//! query heads of a group, at one or several positions) over that head's
//! keys, one tile of [`KEY_TILE`] keys at a time, with a running maximum and
//! sum per row (online softmax). Each tile is widened to f32 once into the
//! worker's scratch — the keys transposed, so a row's scores are
//! [`KEY_TILE`]-wide multiply-adds — and serves every row of the call.
//! Nothing is allocated per tile, and the exponentials are a polynomial the
//! compiler vectorizes. Prefill with `attention: flash` calls it per key/value
//! head and block of positions; decoding calls it per head when the cache is
//! f16 or bf16 (an f32 cache decodes through `cpu::attend_head`).

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

/// Storage type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvType {
    /// Four bytes per value (the default).
    #[default]
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16: f32's range, eight bits of mantissa.
    Bf16,
}

impl KvType {
    /// The names `kv_dtype` accepts.
    pub const NAMES: &'static [&'static str] = &["f32", "f16", "bf16"];

    /// The type of a `kv_dtype` name.
    pub fn parse(name: &str) -> Option<KvType> {
        match name {
            "f32" => Some(KvType::F32),
            "f16" => Some(KvType::F16),
            "bf16" => Some(KvType::Bf16),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            KvType::F32 => "f32",
            KvType::F16 => "f16",
            KvType::Bf16 => "bf16",
        }
    }

    /// Bytes per stored value.
    pub fn bytes(self) -> usize {
        match self {
            KvType::F32 => 4,
            KvType::F16 | KvType::Bf16 => 2,
        }
    }
}

/// Keys or values in the cache's storage type.
#[derive(Debug)]
pub enum KvBuffer {
    /// f32 values.
    F32(Vec<f32>),
    /// f16 values.
    F16(Vec<f16>),
    /// bf16 values.
    Bf16(Vec<bf16>),
}

impl KvBuffer {
    /// `len` zeros of `kind`.
    pub fn zeros(kind: KvType, len: usize) -> KvBuffer {
        match kind {
            KvType::F32 => KvBuffer::F32(vec![0.0; len]),
            KvType::F16 => KvBuffer::F16(vec![f16::ZERO; len]),
            KvType::Bf16 => KvBuffer::Bf16(vec![bf16::ZERO; len]),
        }
    }

    /// Its storage type.
    pub fn kind(&self) -> KvType {
        match self {
            KvBuffer::F32(_) => KvType::F32,
            KvBuffer::F16(_) => KvType::F16,
            KvBuffer::Bf16(_) => KvType::Bf16,
        }
    }

    /// Stores `row` at `at`, rounded to the storage type.
    pub fn write(&mut self, at: usize, row: &[f32]) {
        let end = at + row.len();
        match self {
            KvBuffer::F32(buffer) => buffer[at..end].copy_from_slice(row),
            KvBuffer::F16(buffer) => buffer[at..end].convert_from_f32_slice(row),
            KvBuffer::Bf16(buffer) => buffer[at..end].convert_from_f32_slice(row),
        }
    }

    /// Copies `len` values of `other` (the same type) from `from` to `to`.
    pub fn copy_from(&mut self, to: usize, other: &KvBuffer, from: usize, len: usize) {
        match (self, other) {
            (KvBuffer::F32(a), KvBuffer::F32(b)) => a[to..to + len].copy_from_slice(&b[from..from + len]),
            (KvBuffer::F16(a), KvBuffer::F16(b)) => a[to..to + len].copy_from_slice(&b[from..from + len]),
            (KvBuffer::Bf16(a), KvBuffer::Bf16(b)) => a[to..to + len].copy_from_slice(&b[from..from + len]),
            _ => unreachable!("a KV buffer grows into one of its own type"),
        }
    }

    /// The values `start..end`.
    pub fn rows(&self, start: usize, end: usize) -> KvRows<'_> {
        match self {
            KvBuffer::F32(buffer) => KvRows::F32(&buffer[start..end]),
            KvBuffer::F16(buffer) => KvRows::F16(&buffer[start..end]),
            KvBuffer::Bf16(buffer) => KvRows::Bf16(&buffer[start..end]),
        }
    }
}

/// A borrowed run of cached keys or values.
#[derive(Debug, Clone, Copy)]
pub enum KvRows<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// f16 values.
    F16(&'a [f16]),
    /// bf16 values.
    Bf16(&'a [bf16]),
}

impl KvRows<'_> {
    /// Values held.
    pub fn len(&self) -> usize {
        match self {
            KvRows::F32(rows) => rows.len(),
            KvRows::F16(rows) => rows.len(),
            KvRows::Bf16(rows) => rows.len(),
        }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values `start..start + out.len()` widened to f32 into `out`.
    pub fn widen(&self, start: usize, out: &mut [f32]) {
        let end = start + out.len();
        match self {
            KvRows::F32(rows) => out.copy_from_slice(&rows[start..end]),
            KvRows::F16(rows) => rows[start..end].convert_to_f32_slice(out),
            KvRows::Bf16(rows) => rows[start..end].convert_to_f32_slice(out),
        }
    }
}

/// Keys per tile.
pub const KEY_TILE: usize = 64;

/// Output lanes summed in registers at a time.
const LANES: usize = 16;

/// A worker's buffers, reused from call to call.
#[derive(Debug, Default)]
pub struct Scratch {
    /// One tile widened as it is read (see [`TileBuffer`]).
    tile: TileBuffer,
    /// The rows' queries, scaled by `scale · log2(e)`.
    queries: Vec<f32>,
    /// Per row: running maximum (log2 units), running sum, and the
    /// unnormalized output `(rows, head_dim)`.
    max: Vec<f32>,
    sum: Vec<f32>,
    acc: Vec<f32>,
}

/// One tile of keys, transposed to `(head_dim, KEY_TILE)` and zero past its
/// width, and its values widened to `(KEY_TILE, head_dim)`.
#[derive(Debug, Default)]
struct TileBuffer {
    keys: Vec<f32>,
    values: Vec<f32>,
}

impl TileBuffer {
    /// Fills the buffer with keys `start..start + width` of `keys`; the
    /// values too unless they are f32 already (then they are read in place).
    fn fill(&mut self, (keys, values): (KvRows, KvRows), start: usize, width: usize, d: usize) {
        self.keys.resize(d * KEY_TILE, 0.0);
        self.values.resize(KEY_TILE * d, 0.0);
        // The keys, widened into `values` first, then transposed.
        keys.widen(start * d, &mut self.values[..width * d]);
        transpose(&self.values[..width * d], d, &mut self.keys);
        if !matches!(values, KvRows::F32(_)) {
            values.widen(start * d, &mut self.values[..width * d]);
        }
    }
}

/// `rows (width, d)` into `out (d, KEY_TILE)`, zero past `width`.
fn transpose(rows: &[f32], d: usize, out: &mut [f32]) {
    let width = rows.len() / d;
    for (j, key) in rows.chunks_exact(d).enumerate() {
        for (c, &value) in key.iter().enumerate() {
            out[c * KEY_TILE + j] = value;
        }
    }
    if width < KEY_TILE {
        for c in 0..d {
            out[c * KEY_TILE + width..(c + 1) * KEY_TILE].fill(0.0);
        }
    }
}

/// A key/value head prepared once for many calls (a prompt's prefill): every
/// tile of keys transposed, and the values widened to f32 (borrowed when
/// they are f32 already).
#[derive(Debug)]
pub struct Tiles<'a> {
    /// `(tiles, head_dim, KEY_TILE)`.
    keys: Vec<f32>,
    values: std::borrow::Cow<'a, [f32]>,
    positions: usize,
    head_dim: usize,
}

impl<'a> Tiles<'a> {
    /// The first `positions` keys and values of a head, `head_dim` each.
    pub fn of((keys, values): (KvRows<'a>, KvRows<'a>), positions: usize, head_dim: usize) -> Tiles<'a> {
        let d = head_dim;
        let tiles = positions.div_ceil(KEY_TILE);
        let mut transposed = vec![0.0; tiles * d * KEY_TILE];
        let mut widened = vec![0.0; KEY_TILE * d];
        for (tile, out) in transposed.chunks_exact_mut(d * KEY_TILE).enumerate() {
            let (start, width) = (tile * KEY_TILE, KEY_TILE.min(positions - tile * KEY_TILE));
            keys.widen(start * d, &mut widened[..width * d]);
            transpose(&widened[..width * d], d, out);
        }
        let values = match values {
            KvRows::F32(values) => std::borrow::Cow::Borrowed(&values[..positions * d]),
            _ => {
                let mut all = vec![0.0; positions * d];
                values.widen(0, &mut all);
                std::borrow::Cow::Owned(all)
            }
        };
        Tiles { keys: transposed, values, positions, head_dim }
    }
}

/// Where the fused loop gets its tiles.
enum Source<'s, 'a> {
    /// Widened tile by tile as the loop reaches them (a decoding step reads
    /// each key once).
    Rows((KvRows<'a>, KvRows<'a>)),
    /// Prepared beforehand.
    Tiles(&'s Tiles<'a>),
}

/// Causal attention of `last.len()` query rows over one key/value head.
///
/// `queries` holds the rows, `head_dim` values each; row `i` sees keys
/// `0..=last[i]`. `keys` and `values` hold the head's positions, `head_dim`
/// values each, at least `max(last) + 1` of them. Writes row `i`'s output to
/// `out[i · head_dim..]`.
pub fn attend(
    queries: &[f32],
    last: &[usize],
    (keys, values): (KvRows, KvRows),
    head_dim: usize,
    scale: f32,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let positions = last.iter().max().map_or(0, |last| last + 1);
    assert!(
        keys.len() >= positions * head_dim && values.len() >= positions * head_dim,
        "attend: the cache holds fewer than {positions} positions"
    );
    dispatch(queries, last, Source::Rows((keys, values)), head_dim, scale, scratch, out)
}

/// [`attend`] over a head prepared as [`Tiles`].
pub fn attend_tiles(queries: &[f32], last: &[usize], tiles: &Tiles, scale: f32, scratch: &mut Scratch, out: &mut [f32]) {
    let positions = last.iter().max().map_or(0, |last| last + 1);
    assert!(tiles.positions >= positions, "attend: the tiles hold fewer than {positions} positions");
    dispatch(queries, last, Source::Tiles(tiles), tiles.head_dim, scale, scratch, out)
}

fn dispatch(
    queries: &[f32],
    last: &[usize],
    source: Source,
    head_dim: usize,
    scale: f32,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let rows = last.len();
    assert!(
        queries.len() == rows * head_dim && out.len() == rows * head_dim && head_dim > 0,
        "attend: {rows} rows of {head_dim} do not fit the queries or the output"
    );
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn wide(
            queries: &[f32],
            last: &[usize],
            source: Source,
            head_dim: usize,
            scale: f32,
            scratch: &mut Scratch,
            out: &mut [f32],
        ) {
            body::<true>(queries, last, source, head_dim, scale, scratch, out)
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            return unsafe { wide(queries, last, source, head_dim, scale, scratch, out) };
        }
    }
    body::<false>(queries, last, source, head_dim, scale, scratch, out)
}

/// The fused loop; `WIDE`: called from a function compiled for AVX2 and
/// FMA, so the two products take their AVX2 kernels.
#[inline(always)]
fn body<const WIDE: bool>(
    queries: &[f32],
    last: &[usize],
    source: Source,
    d: usize,
    scale: f32,
    s: &mut Scratch,
    out: &mut [f32],
) {
    let rows = last.len();
    let positions = last.iter().max().map_or(0, |last| last + 1);
    let factor = scale * std::f32::consts::LOG2_E;
    s.queries.clear();
    s.queries.extend(queries.iter().map(|q| q * factor));
    s.max.clear();
    s.max.resize(rows, f32::NEG_INFINITY);
    s.sum.clear();
    s.sum.resize(rows, 0.0);
    s.acc.clear();
    s.acc.resize(rows * d, 0.0);
    for start in (0..positions).step_by(KEY_TILE) {
        let width = KEY_TILE.min(positions - start);
        let (tile_keys, tile_values): (&[f32], &[f32]) = match &source {
            Source::Rows(kv) => {
                s.tile.fill(*kv, start, width, d);
                let values = match kv.1 {
                    KvRows::F32(values) => &values[start * d..(start + width) * d],
                    _ => &s.tile.values[..width * d],
                };
                (&s.tile.keys, values)
            }
            Source::Tiles(tiles) => {
                let tile = start / KEY_TILE;
                (&tiles.keys[tile * d * KEY_TILE..(tile + 1) * d * KEY_TILE], &tiles.values[start * d..(start + width) * d])
            }
        };
        for (row, &last) in last.iter().enumerate() {
            if last < start {
                continue;
            }
            let allowed = (last - start + 1).min(width);
            let query = &s.queries[row * d..(row + 1) * d];
            // Sixty-four scores in eight registers, one multiply-add per
            // key and dimension.
            let mut scores = [0.0_f32; KEY_TILE];
            scores_of::<WIDE>(query, tile_keys, &mut scores);
            scores[allowed..].fill(f32::NEG_INFINITY);
            // Maximum and sum over eight independent lanes, so they vectorize.
            let mut lanes = [f32::NEG_INFINITY; 8];
            for chunk in scores.chunks_exact(8) {
                for lane in 0..8 {
                    lanes[lane] = if chunk[lane] > lanes[lane] { chunk[lane] } else { lanes[lane] };
                }
            }
            let tile_max = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let new_max = s.max[row].max(tile_max);
            let correction = exp2(s.max[row] - new_max);
            let mut sums = [0.0_f32; 8];
            for chunk in scores.chunks_exact_mut(8) {
                for lane in 0..8 {
                    chunk[lane] = exp2(chunk[lane] - new_max);
                    sums[lane] += chunk[lane];
                }
            }
            s.max[row] = new_max;
            s.sum[row] = s.sum[row] * correction + sums.iter().sum::<f32>();
            let acc = &mut s.acc[row * d..(row + 1) * d];
            accumulate::<WIDE>(acc, correction, &scores[..allowed], tile_values, d);
        }
    }
    for row in 0..rows {
        let inverse = 1.0 / s.sum[row];
        for (o, a) in out[row * d..(row + 1) * d].iter_mut().zip(&s.acc[row * d..(row + 1) * d]) {
            *o = a * inverse;
        }
    }
}

/// `scores[j] = Σ_c query[c] · keys[c · KEY_TILE + j]`: the query against a
/// transposed key tile.
#[inline(always)]
fn scores_of<const WIDE: bool>(query: &[f32], keys: &[f32], scores: &mut [f32; KEY_TILE]) {
    #[cfg(target_arch = "x86_64")]
    if WIDE {
        // SAFETY: `WIDE` is set only by the caller compiled for AVX2 and
        // FMA after checking the CPU has them.
        return unsafe { avx2::scores(query, keys, scores) };
    }
    for (&q, column) in query.iter().zip(keys.chunks_exact(KEY_TILE)) {
        for j in 0..KEY_TILE {
            scores[j] = q.mul_add(column[j], scores[j]);
        }
    }
}

/// `acc = acc · correction + Σ weights[j] · values[j]`, [`LANES`] outputs at
/// a time summed in registers over the tile's rows: four sums, of every
/// fourth row, so four chains of multiply-adds run at once.
#[inline(always)]
fn accumulate<const WIDE: bool>(acc: &mut [f32], correction: f32, weights: &[f32], values: &[f32], d: usize) {
    #[cfg(target_arch = "x86_64")]
    if WIDE {
        // SAFETY: as in `scores_of`.
        return unsafe { avx2::accumulate(acc, correction, weights, values, d) };
    }
    let whole = d - d % LANES;
    let quads = weights.len() / 4;
    for start in (0..whole).step_by(LANES) {
        let mut sums = [[0.0_f32; LANES]; 4];
        for quad in 0..quads {
            for (part, sum) in sums.iter_mut().enumerate() {
                let j = quad * 4 + part;
                let (weight, value) = (weights[j], &values[j * d + start..j * d + start + LANES]);
                for lane in 0..LANES {
                    sum[lane] = weight.mul_add(value[lane], sum[lane]);
                }
            }
        }
        for j in quads * 4..weights.len() {
            let (weight, value) = (weights[j], &values[j * d + start..j * d + start + LANES]);
            for lane in 0..LANES {
                sums[0][lane] = weight.mul_add(value[lane], sums[0][lane]);
            }
        }
        for lane in 0..LANES {
            let total = (sums[0][lane] + sums[1][lane]) + (sums[2][lane] + sums[3][lane]);
            acc[start + lane] = acc[start + lane].mul_add(correction, total);
        }
    }
    for c in whole..d {
        acc[c] = acc[c] * correction + weights.iter().enumerate().map(|(j, w)| w * values[j * d + c]).sum::<f32>();
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{KEY_TILE, LANES};

    /// [`super::scores_of`] with the 64 scores in eight registers.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scores(query: &[f32], keys: &[f32], scores: &mut [f32; KEY_TILE]) {
        assert!(keys.len() >= query.len() * KEY_TILE);
        let mut sums = [_mm256_setzero_ps(); KEY_TILE / 8];
        for (c, &q) in query.iter().enumerate() {
            let q = _mm256_set1_ps(q);
            // SAFETY: row c of the tile is within `keys` (asserted above).
            let column = unsafe { keys.as_ptr().add(c * KEY_TILE) };
            for (lane, sum) in sums.iter_mut().enumerate() {
                *sum = _mm256_fmadd_ps(q, unsafe { _mm256_loadu_ps(column.add(lane * 8)) }, *sum);
            }
        }
        for (lane, sum) in sums.iter().enumerate() {
            // SAFETY: eight floats at lane · 8 of the 64.
            unsafe { _mm256_storeu_ps(scores.as_mut_ptr().add(lane * 8), *sum) };
        }
    }

    /// [`super::accumulate`]. A head of 32 to 64 values (a multiple of 8)
    /// is summed whole in registers, so one broadcast weight serves the
    /// whole row; with six registers or fewer, two sums over alternate rows
    /// keep enough multiply-adds in flight. Other widths go sixteen outputs
    /// at a time.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn accumulate(acc: &mut [f32], correction: f32, weights: &[f32], values: &[f32], d: usize) {
        assert!(acc.len() == d && values.len() >= weights.len() * d);
        // SAFETY (each arm): d = 8 · N, the arm's requirement.
        unsafe {
            match d {
                32 => return whole_row::<4, 2>(acc, correction, weights, values),
                40 => return whole_row::<5, 2>(acc, correction, weights, values),
                48 => return whole_row::<6, 2>(acc, correction, weights, values),
                56 => return whole_row::<7, 1>(acc, correction, weights, values),
                64 => return whole_row::<8, 1>(acc, correction, weights, values),
                _ => {}
            }
        }
        sixteen_at_a_time(acc, correction, weights, values, d)
    }

    /// Rows of `8 · N` values summed in `N` registers, `U` sums over rows
    /// `j ≡ u (mod U)`. The caller guarantees `acc.len() == 8 · N` and
    /// `values.len() ≥ weights.len() · 8 · N`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn whole_row<const N: usize, const U: usize>(
        acc: &mut [f32],
        correction: f32,
        weights: &[f32],
        values: &[f32],
    ) {
        let d = 8 * N;
        let mut sums = [[_mm256_setzero_ps(); N]; U];
        let base = values.as_ptr();
        let groups = weights.len() / U;
        for group in 0..groups {
            for (part, sum) in sums.iter_mut().enumerate() {
                let j = group * U + part;
                let weight = _mm256_set1_ps(weights[j]);
                for (lane, cell) in sum.iter_mut().enumerate() {
                    // SAFETY: row j < weights.len() holds d values from j · d.
                    *cell = _mm256_fmadd_ps(weight, unsafe { _mm256_loadu_ps(base.add(j * d + lane * 8)) }, *cell);
                }
            }
        }
        for (j, &weight) in weights.iter().enumerate().skip(groups * U) {
            let weight = _mm256_set1_ps(weight);
            for (lane, cell) in sums[0].iter_mut().enumerate() {
                // SAFETY: as above.
                *cell = _mm256_fmadd_ps(weight, unsafe { _mm256_loadu_ps(base.add(j * d + lane * 8)) }, *cell);
            }
        }
        let correction = _mm256_set1_ps(correction);
        for lane in 0..N {
            let mut total = sums[0][lane];
            for sum in &sums[1..] {
                total = _mm256_add_ps(total, sum[lane]);
            }
            // SAFETY: lane · 8 + 8 ≤ d = acc.len().
            let out = unsafe { acc.as_mut_ptr().add(lane * 8) };
            unsafe { _mm256_storeu_ps(out, _mm256_fmadd_ps(_mm256_loadu_ps(out), correction, total)) };
        }
    }

    /// Sixteen outputs at a time in two registers, four sums over every
    /// fourth row, then the remaining outputs one by one.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sixteen_at_a_time(acc: &mut [f32], correction: f32, weights: &[f32], values: &[f32], d: usize) {
        let whole = d - d % LANES;
        let quads = weights.len() / 4;
        let base = values.as_ptr();
        for start in (0..whole).step_by(LANES) {
            let mut sums = [[_mm256_setzero_ps(); 2]; 4];
            // SAFETY: every row j < weights.len() has d values from j · d
            // (asserted above), and start + 16 ≤ d.
            let load = |j: usize, half: usize| unsafe { _mm256_loadu_ps(base.add(j * d + start + half * 8)) };
            for quad in 0..quads {
                for (part, sum) in sums.iter_mut().enumerate() {
                    let j = quad * 4 + part;
                    let weight = _mm256_set1_ps(weights[j]);
                    sum[0] = _mm256_fmadd_ps(weight, load(j, 0), sum[0]);
                    sum[1] = _mm256_fmadd_ps(weight, load(j, 1), sum[1]);
                }
            }
            for (j, &weight) in weights.iter().enumerate().skip(quads * 4) {
                let weight = _mm256_set1_ps(weight);
                sums[0][0] = _mm256_fmadd_ps(weight, load(j, 0), sums[0][0]);
                sums[0][1] = _mm256_fmadd_ps(weight, load(j, 1), sums[0][1]);
            }
            let correction = _mm256_set1_ps(correction);
            for half in [0, 1] {
                let [a, b, c, e] = [sums[0][half], sums[1][half], sums[2][half], sums[3][half]];
                let total = _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, e));
                // SAFETY: start + 16 ≤ d = acc.len().
                let out = unsafe { acc.as_mut_ptr().add(start + half * 8) };
                unsafe { _mm256_storeu_ps(out, _mm256_fmadd_ps(_mm256_loadu_ps(out), correction, total)) };
            }
        }
        for c in whole..d {
            acc[c] = acc[c] * correction + weights.iter().enumerate().map(|(j, w)| w * values[j * d + c]).sum::<f32>();
        }
    }
}

/// 2^x for x ≤ 0 (the caller's range; larger x is clamped at 2^127), to
/// about 2e-7 relative: 2^floor(x) from the exponent bits times a degree-5
/// polynomial of the fraction. Below −126 it returns 0, so −∞ (a masked
/// key, or the maximum before any key) gives 0. Plain arithmetic the
/// compiler vectorizes, where `f32::exp` is a call per value.
#[inline(always)]
pub fn exp2(x: f32) -> f32 {
    // Comparisons rather than `clamp`, and the power of two from the bits
    // of `whole + 2²³ + 127` (whose low mantissa bits are `whole + 127`)
    // rather than a float-to-integer cast: both vectorize.
    let x = if x < -127.0 { -127.0 } else { x };
    let x = if x > 127.0 { 127.0 } else { x };
    let whole = x.floor();
    let f = x - whole;
    let p = 0.001_876_233_f32
        .mul_add(f, 0.008_992_584)
        .mul_add(f, 0.055_823_606)
        .mul_add(f, 0.240_154_53)
        .mul_add(f, 0.693_152_96)
        .mul_add(f, 0.999_999_94);
    p * f32::from_bits((whole + 8_388_735.0).to_bits() << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn textbook(queries: &[f32], last: &[usize], keys: &[f32], values: &[f32], d: usize, scale: f32) -> Vec<f32> {
        let mut out = vec![0.0; queries.len()];
        for (row, &last) in last.iter().enumerate() {
            let q = &queries[row * d..(row + 1) * d];
            let scores: Vec<f64> = (0..=last)
                .map(|j| q.iter().zip(&keys[j * d..(j + 1) * d]).map(|(a, b)| (a * b) as f64).sum::<f64>() * scale as f64)
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = weights.iter().sum();
            for c in 0..d {
                let value: f64 = weights.iter().enumerate().map(|(j, w)| w * values[j * d + c] as f64).sum();
                out[row * d + c] = (value / total) as f32;
            }
        }
        out
    }

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::engines::rng::SplitMix::new(seed);
        (0..n).map(|_| (rng.below(2001) as f32 - 1000.0) / 400.0).collect()
    }

    #[test]
    fn exp2_is_close_everywhere_it_is_used_and_zero_below_its_range() {
        let mut worst = 0.0_f64;
        for step in 0..=200_000 {
            let x = -(step as f32) * 0.0006;
            let relative = (exp2(x) as f64 / 2f64.powf(x as f64) - 1.0).abs();
            worst = worst.max(relative);
        }
        assert!(worst < 3e-7, "exp2 off by {worst}");
        assert_eq!(exp2(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp2(-130.0), 0.0);
        assert!((exp2(0.0) - 1.0).abs() < 1e-7 && (exp2(-1.0) - 0.5).abs() < 1e-7);
    }

    #[test]
    fn attend_equals_the_textbook_formula_at_every_width_and_storage() {
        for d in [48, 64, 20, 32, 40, 56, 80] {
            for positions in [1, 5, 63, 64, 65, 130, 300] {
                let keys = random(positions * d, 1);
                let values = random(positions * d, 2);
                // Rows at the last positions, a causal block, and one row that sees only key 0.
                let mut last: Vec<usize> = (positions.saturating_sub(7)..positions).collect();
                last.push(0);
                let queries = random(last.len() * d, 3);
                let scale = 1.0 / (d as f32).sqrt();
                let expected = textbook(&queries, &last, &keys, &values, d, scale);
                for kind in [KvType::F32, KvType::F16, KvType::Bf16] {
                    let (mut k, mut v) = (KvBuffer::zeros(kind, keys.len()), KvBuffer::zeros(kind, values.len()));
                    k.write(0, &keys);
                    v.write(0, &values);
                    let mut out = vec![0.0; queries.len()];
                    let kv = (k.rows(0, keys.len()), v.rows(0, values.len()));
                    attend(&queries, &last, kv, d, scale, &mut Scratch::default(), &mut out);
                    // What the storage type's rounding of the inputs allows.
                    let tolerance = match kind {
                        KvType::F32 => 2e-5,
                        KvType::F16 => 4e-3,
                        KvType::Bf16 => 3e-2,
                    };
                    let worst = out.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                    assert!(worst < tolerance, "d {d}, {positions} positions, {kind:?}: off by {worst}");
                }
            }
        }
    }

    #[test]
    fn the_portable_loop_and_prepared_tiles_give_what_attend_gives() {
        let d = 48;
        let (keys, values) = (random(150 * d, 7), random(150 * d, 8));
        let last: Vec<usize> = (100..150).chain([0, 63, 64]).collect();
        let queries = random(last.len() * d, 9);
        for kind in [KvType::F32, KvType::F16] {
            let (mut k, mut v) = (KvBuffer::zeros(kind, keys.len()), KvBuffer::zeros(kind, values.len()));
            k.write(0, &keys);
            v.write(0, &values);
            let kv = (k.rows(0, keys.len()), v.rows(0, values.len()));
            let mut expected = vec![0.0; queries.len()];
            attend(&queries, &last, kv, d, 0.2, &mut Scratch::default(), &mut expected);
            let mut portable = vec![0.0; queries.len()];
            body::<false>(&queries, &last, Source::Rows(kv), d, 0.2, &mut Scratch::default(), &mut portable);
            let mut tiled = vec![0.0; queries.len()];
            attend_tiles(&queries, &last, &Tiles::of(kv, 150, d), 0.2, &mut Scratch::default(), &mut tiled);
            let apart = |a: &[f32]| a.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(apart(&portable) < 1e-5, "{kind:?}: portable off by {}", apart(&portable));
            assert_eq!(tiled, expected, "{kind:?}: prepared tiles");
        }
    }

    #[test]
    fn a_reused_scratch_gives_the_same_answer() {
        let d = 64;
        let keys = random(200 * d, 4);
        let values = random(200 * d, 5);
        let kv = KvBuffer::F32(keys);
        let vv = KvBuffer::F32(values);
        let mut scratch = Scratch::default();
        let mut first = vec![0.0; 3 * d];
        let mut again = vec![0.0; 3 * d];
        let queries = random(3 * d, 6);
        attend(&queries, &[199, 150, 10], (kv.rows(0, 200 * d), vv.rows(0, 200 * d)), d, 0.125, &mut scratch, &mut first);
        let mut other = vec![0.0; d];
        attend(&queries[..d], &[3], (kv.rows(0, 200 * d), vv.rows(0, 200 * d)), d, 0.125, &mut scratch, &mut other);
        attend(&queries, &[199, 150, 10], (kv.rows(0, 200 * d), vv.rows(0, 200 * d)), d, 0.125, &mut scratch, &mut again);
        assert_eq!(first, again);
    }
}
