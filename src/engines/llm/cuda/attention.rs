//! The attention core on device buffers, as on the CPU naive or flash: the
//! naive path writes the whole score matrix with cuBLAS and a causal-softmax
//! kernel; the flash paths are our kernels (one for a decoding step, two for
//! prefill), chosen by [`attention_path`] from the shape and storage type.

use std::sync::Arc;

use cudarc::driver::CudaStream;

use super::device::{Arg, Buffer, Gpu, Operand, Storage, F32};
use super::kernels;
use crate::engines::llm::model::AttentionKind;
use crate::engines::llm::LlmError;

/// Largest head size the kernels take.
pub const MAX_HEAD_DIM: usize = 128;

/// The attention core on device buffers: `q (seq, heads·D)` against the
/// first `offset + seq` positions of `k`/`v` `(capacity, kv_heads·D)`, into
/// `out (seq, heads·D)`, all in `storage`. Scratch is grown as needed.
pub struct AttentionShape {
    /// Query rows.
    pub seq: usize,
    /// Cached positions before them.
    pub offset: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Head size.
    pub head_dim: usize,
}

/// Scratch memory of one attention call, kept between calls.
#[derive(Default)]
pub struct AttentionScratch {
    scores: Option<Buffer>,
    probs: Option<Buffer>,
    partial_out: Option<Buffer>,
    partial_stats: Option<Buffer>,
}

fn ensure(slot: &mut Option<Buffer>, stream: &Arc<CudaStream>, bytes: usize) -> Result<u64, LlmError> {
    if slot.as_ref().is_none_or(|b| b.bytes < bytes) {
        *slot = None; // free the old one first
        *slot = Some(Buffer::new(stream, bytes)?);
    }
    Ok(slot.as_ref().map_or(0, Buffer::ptr))
}

/// Keys per block of the decode kernel (one per lane).
const DECODE_KEYS: usize = 32;
/// Query heads per block of the decode kernel, at most.
const DECODE_GROUP: usize = 8;

/// Which kernel path a call takes (for tests and reports).
pub fn attention_path(kind: AttentionKind, storage: Storage, shape: &AttentionShape) -> &'static str {
    match kind {
        AttentionKind::Naive => "naive",
        AttentionKind::Flash if shape.seq == 1 => "flash_decode",
        AttentionKind::Flash if storage == Storage::Bf16 && matches!(shape.head_dim, 64 | 128) => "flash_prefill_mma",
        AttentionKind::Flash => "flash_prefill",
    }
}

/// Runs the attention core (see [`AttentionShape`]).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    gpu: &Gpu,
    kind: AttentionKind,
    storage: Storage,
    shape: &AttentionShape,
    (q, k, v, out): (u64, u64, u64, u64),
    scratch: &mut AttentionScratch,
) -> Result<(), LlmError> {
    let AttentionShape { seq, offset, heads, kv_heads, head_dim } = *shape;
    if head_dim > MAX_HEAD_DIM || head_dim % 2 != 0 || kv_heads == 0 || heads % kv_heads != 0 {
        return Err(LlmError::Input(format!(
            "attention shape {heads}/{kv_heads} heads of {head_dim} is not supported"
        )));
    }
    let total = offset + seq;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let int = |v: usize| Arg::Int(v as i32);
    let suffix = storage.suffix();
    // Both prefill kernels start with the same arguments.
    let prefill_args = |rest: &[Arg]| -> Vec<Arg> {
        let common = [q, k, v, out].map(Arg::Ptr).into_iter().chain([seq, offset, heads, kv_heads].map(int));
        common.chain(rest.iter().copied()).collect()
    };
    match attention_path(kind, storage, shape) {
        "flash_decode" => {
            let splits = total.div_ceil(DECODE_KEYS);
            let partial_out = ensure(&mut scratch.partial_out, &gpu.stream, splits * heads * head_dim * 4)?;
            let partial_stats = ensure(&mut scratch.partial_stats, &gpu.stream, splits * heads * 2 * 4)?;
            let shared = ((DECODE_GROUP * head_dim + DECODE_GROUP * DECODE_KEYS) * 4) as u32;
            let groups = (heads / kv_heads).div_ceil(DECODE_GROUP);
            gpu.launch(
                &format!("flash_decode_{suffix}"),
                ((kv_heads * groups) as u32, splits as u32, 1),
                128,
                shared,
                &[
                    Arg::Ptr(q),
                    Arg::Ptr(k),
                    Arg::Ptr(v),
                    Arg::Ptr(partial_out),
                    Arg::Ptr(partial_stats),
                    int(total),
                    int(heads),
                    int(kv_heads),
                    int(head_dim),
                    Arg::Float(scale),
                ],
            )?;
            gpu.launch(
                &format!("flash_decode_combine_{suffix}"),
                (heads as u32, 1, 1),
                128,
                0,
                &[
                    Arg::Ptr(partial_out),
                    Arg::Ptr(partial_stats),
                    Arg::Ptr(out),
                    int(splits),
                    int(heads),
                    int(head_dim),
                ],
            )
        }
        "flash_prefill_mma" => {
            let args = prefill_args(&[Arg::Float(scale * std::f32::consts::LOG2_E)]);
            let shared = kernels::mma_shared_bytes(head_dim) as u32;
            let grid = (seq.div_ceil(64) as u32, heads as u32, 1);
            gpu.launch(&format!("flash_prefill_mma{head_dim}_{suffix}"), grid, 128, shared, &args)
        }
        "flash_prefill" => {
            let args = prefill_args(&[int(head_dim), Arg::Float(scale)]);
            let shared = ((32 * (head_dim + 1) + 32 * head_dim + 8 * head_dim) * 4) as u32;
            let grid = (seq.div_ceil(8) as u32, heads as u32, 1);
            gpu.launch(&format!("flash_prefill_{suffix}"), grid, 256, shared, &args)
        }
        _ => {
            // Naive: the whole score matrix (heads, seq, total) in f32.
            let rep = heads / kv_heads;
            let cells = heads * seq * total;
            let scores = ensure(&mut scratch.scores, &gpu.stream, cells * 4)?;
            let probs = match storage {
                Storage::F32 => scores,
                Storage::Bf16 => ensure(&mut scratch.probs, &gpu.stream, cells * 2)?,
            };
            let size = storage.bytes();
            // Query heads r, r + rep, … share a stride, and so do their kv heads.
            for r in 0..rep {
                let query =
                    Operand::new(q + (r * head_dim * size) as u64, storage, heads * head_dim).strided(rep * head_dim);
                let keys = Operand::new(k, storage, kv_heads * head_dim).strided(head_dim);
                let c = scores + (r * seq * total * 4) as u64;
                gpu.matmul_bt(seq, total, head_dim, query, keys, (c, F32, total, rep * seq * total), kv_heads, false)?;
            }
            gpu.launch(
                &format!("causal_softmax_{suffix}"),
                ((heads * seq) as u32, 1, 1),
                256,
                0,
                &[Arg::Ptr(scores), Arg::Ptr(probs), int(seq), int(total), int(offset), Arg::Float(scale)],
            )?;
            for r in 0..rep {
                let p =
                    Operand::new(probs + (r * seq * total * size) as u64, storage, total).strided(rep * seq * total);
                let values = Operand::new(v, storage, kv_heads * head_dim).strided(head_dim);
                let c = out + (r * head_dim * size) as u64;
                gpu.matmul(
                    seq,
                    head_dim,
                    total,
                    p,
                    values,
                    (c, storage.blas_type(), heads * head_dim, rep * head_dim),
                    kv_heads,
                )?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(seq: usize, head_dim: usize) -> AttentionShape {
        AttentionShape { seq, offset: 0, heads: 4, kv_heads: 2, head_dim }
    }

    #[test]
    fn attention_takes_the_path_its_shape_allows() {
        assert_eq!(attention_path(AttentionKind::Naive, Storage::Bf16, &shape(100, 64)), "naive");
        assert_eq!(attention_path(AttentionKind::Flash, Storage::Bf16, &shape(1, 64)), "flash_decode");
        assert_eq!(attention_path(AttentionKind::Flash, Storage::Bf16, &shape(100, 64)), "flash_prefill_mma");
        assert_eq!(attention_path(AttentionKind::Flash, Storage::Bf16, &shape(100, 128)), "flash_prefill_mma");
        assert_eq!(attention_path(AttentionKind::Flash, Storage::Bf16, &shape(100, 48)), "flash_prefill");
        assert_eq!(attention_path(AttentionKind::Flash, Storage::F32, &shape(100, 64)), "flash_prefill");
    }
}
