//! The model on the GPU: [`CudaModel`] holds a checkpoint's weights,
//! uploaded once and shared by an engine's workers, and runs the forward
//! pass (embedding, then per block RMSNorm, fused q/k/v projection, rotary
//! embeddings into the KV cache, attention, o projection, RMSNorm, fused
//! gate/up projection, SwiGLU and down projection, then the final norm and
//! the output head) on a worker's [`CudaState`], marking its timeline by
//! category as the CPU model times its own.

use candle_core::DType;

use super::attention::{attention, AttentionShape, MAX_HEAD_DIM};
use super::device::{cuda_error, Arg, Buffer, Gpu, Storage};
use super::state::CudaState;
use crate::engines::llm::config::Config;
use crate::engines::llm::model::{AttentionKind, Category};
use crate::engines::llm::weights::WeightSource;
use crate::engines::llm::LlmError;

/// Why this configuration cannot run on the GPU, if it cannot.
pub fn unsupported(config: &Config) -> Option<String> {
    if config.qkv_bias {
        return Some("the CUDA path has no q, k and v biases (Qwen2)".into());
    }
    (config.head_dim > MAX_HEAD_DIM).then(|| {
        format!("the CUDA kernels take head sizes up to {MAX_HEAD_DIM}, and this model's is {}", config.head_dim)
    })
}

/// One block's weights on the device.
struct Layer {
    input_norm: Buffer,
    /// q, k and v projections stacked: `((heads + 2·kv_heads)·D, dim)`.
    qkv: Buffer,
    o: Buffer,
    post_norm: Buffer,
    /// gate and up projections stacked: `(2·hidden, dim)`.
    gate_up: Buffer,
    down: Buffer,
}

/// A model's weights on the GPU, shared by the workers of an engine.
pub struct CudaModel {
    pub(super) config: Config,
    pub(super) storage: Storage,
    attention: AttentionKind,
    embedding: Buffer,
    layers: Vec<Layer>,
    norm: Buffer,
    /// The untied output head (tied models use `embedding`).
    head: Option<Buffer>,
    inverse_frequencies: Buffer,
    /// Keeps the context (and the uploads' stream) alive as long as the weights.
    _loader: Gpu,
}

impl CudaModel {
    /// Uploads every tensor of `config` from `source`, stored as `dtype`.
    pub fn load(
        config: Config,
        source: &WeightSource,
        dtype: DType,
        attention: AttentionKind,
    ) -> Result<CudaModel, LlmError> {
        if let Some(reason) = unsupported(&config) {
            return Err(LlmError::Input(reason));
        }
        let storage = Storage::from_dtype(dtype)?;
        let loader = Gpu::new()?;
        let stream = &loader.stream;
        let matrix = |names: &[(String, usize)], input: usize| -> Result<Buffer, LlmError> {
            let mut values = Vec::new();
            for (name, rows) in names {
                let tensor = source.get(name, &[*rows, input], DType::F32)?;
                values.extend(tensor.flatten_all()?.to_vec1::<f32>()?);
            }
            Buffer::upload(stream, &storage.encode(&values))
        };
        let vector = |name: &str| -> Result<Buffer, LlmError> {
            let values = source.get(name, &[config.dim], DType::F32)?.to_vec1::<f32>()?;
            Buffer::upload(stream, &Storage::F32.encode(&values))
        };
        let (q_dim, kv_dim) = (config.heads * config.head_dim, config.kv_heads * config.head_dim);
        let mut layers = Vec::with_capacity(config.layers);
        for index in 0..config.layers {
            let p = format!("model.layers.{index}");
            let name = |part: &str, rows: usize| (format!("{p}.{part}.weight"), rows);
            layers.push(Layer {
                input_norm: vector(&format!("{p}.input_layernorm.weight"))?,
                qkv: matrix(
                    &[
                        name("self_attn.q_proj", q_dim),
                        name("self_attn.k_proj", kv_dim),
                        name("self_attn.v_proj", kv_dim),
                    ],
                    config.dim,
                )?,
                o: matrix(&[name("self_attn.o_proj", config.dim)], q_dim)?,
                post_norm: vector(&format!("{p}.post_attention_layernorm.weight"))?,
                gate_up: matrix(
                    &[name("mlp.gate_proj", config.hidden), name("mlp.up_proj", config.hidden)],
                    config.dim,
                )?,
                down: matrix(&[name("mlp.down_proj", config.dim)], config.hidden)?,
            });
        }
        let embedding = matrix(&[("model.embed_tokens.weight".into(), config.vocab)], config.dim)?;
        let head =
            if config.tied { None } else { Some(matrix(&[("lm_head.weight".into(), config.vocab)], config.dim)?) };
        let norm = vector("model.norm.weight")?;
        let frequencies: Vec<u8> = config.inverse_frequencies().iter().flat_map(|f| f.to_le_bytes()).collect();
        let inverse_frequencies = Buffer::upload(stream, &frequencies)?;
        loader.synchronize()?;
        Ok(CudaModel {
            config,
            storage,
            attention,
            embedding,
            layers,
            norm,
            head,
            inverse_frequencies,
            _loader: loader,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs `tokens` after the positions cached in `state` and leaves the
    /// last position's logits in its scratch, on the device.
    pub(super) fn forward(&self, tokens: &[u32], state: &mut CudaState) -> Result<(), LlmError> {
        let seq = tokens.len();
        let offset = state.len;
        let c = &self.config;
        if seq == 0 {
            return Err(LlmError::Input("no tokens to run".into()));
        }
        if offset + seq > c.context {
            return Err(LlmError::Input(format!(
                "{} positions exceed the model's context of {}",
                offset + seq,
                c.context
            )));
        }
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= c.vocab) {
            return Err(LlmError::Input(format!("token {bad} is outside the vocabulary of {}", c.vocab)));
        }
        state.reserve(offset + seq)?;
        state.reserve_rows(seq)?;
        state.timeline.used = 0; // drop the marks of a step that failed half-way
        let storage = self.storage;
        let suffix = storage.suffix();
        let s = &state.scratch;
        let buffer = |b: &Option<Buffer>| b.as_ref().map_or(0, Buffer::ptr);
        let (x, normed, qkv, q, mixed) =
            (buffer(&s.x), buffer(&s.normed), buffer(&s.qkv), buffer(&s.q), buffer(&s.mixed));
        let (gate_up, activated, ids, logits) =
            (buffer(&s.gate_up), buffer(&s.activated), buffer(&s.ids), buffer(&s.logits));
        let gpu = &state.gpu;
        let timeline = &mut state.timeline;
        let int = |v: usize| Arg::Int(v as i32);

        timeline.mark(gpu, Category::Embedding)?;
        if !(seq == 1 && state.on_device == Some(tokens[0])) {
            let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
            // SAFETY: `ids` holds at least `seq` u32s. From pageable host memory
            // the driver has taken the bytes by the time the call returns.
            unsafe {
                cudarc::driver::result::memcpy_htod_async(ids, &bytes, gpu.stream.cu_stream())
                    .map_err(cuda_error("copying tokens to the GPU"))?;
            }
        }
        gpu.launch(
            &format!("embedding_{suffix}"),
            (seq as u32, 1, 1),
            256,
            0,
            &[Arg::Ptr(self.embedding.ptr()), Arg::Ptr(ids), Arg::Ptr(x), int(c.dim)],
        )?;
        let qkv_width = (c.heads + 2 * c.kv_heads) * c.head_dim;
        let q_width = c.heads * c.head_dim;
        // Four elements per thread stay in registers between the kernel's two passes.
        let norm_threads = c.dim.div_ceil(4).next_multiple_of(32).clamp(32, 1024) as u32;
        let norm = |weights: &Buffer, rows: usize, input: u64| {
            gpu.launch(
                &format!("rmsnorm_{suffix}"),
                (rows as u32, 1, 1),
                norm_threads,
                0,
                &[Arg::Ptr(input), Arg::Ptr(weights.ptr()), Arg::Ptr(normed), int(c.dim), Arg::Float(c.eps as f32)],
            )
        };
        for (index, layer) in self.layers.iter().enumerate() {
            timeline.mark(gpu, Category::Norms)?;
            norm(&layer.input_norm, seq, x)?;
            timeline.mark(gpu, Category::Projections)?;
            gpu.linear(storage, seq, qkv_width, c.dim, (normed, layer.qkv.ptr(), qkv), false)?;
            timeline.mark(gpu, Category::Attention)?;
            let (k_cache, v_cache) = (state.keys[index].ptr(), state.values[index].ptr());
            gpu.launch(
                &format!("rotary_{suffix}"),
                (seq as u32, 1, 1),
                256,
                0,
                &[
                    Arg::Ptr(qkv),
                    Arg::Ptr(q),
                    Arg::Ptr(k_cache),
                    Arg::Ptr(v_cache),
                    Arg::Ptr(self.inverse_frequencies.ptr()),
                    int(offset),
                    int(c.heads),
                    int(c.kv_heads),
                    int(c.head_dim),
                ],
            )?;
            let shape = AttentionShape { seq, offset, heads: c.heads, kv_heads: c.kv_heads, head_dim: c.head_dim };
            attention(gpu, self.attention, storage, &shape, (q, k_cache, v_cache, mixed), &mut state.attention)?;
            timeline.mark(gpu, Category::Projections)?;
            gpu.linear(storage, seq, c.dim, q_width, (mixed, layer.o.ptr(), x), true)?;
            timeline.mark(gpu, Category::Norms)?;
            norm(&layer.post_norm, seq, x)?;
            timeline.mark(gpu, Category::Mlp)?;
            gpu.linear(storage, seq, 2 * c.hidden, c.dim, (normed, layer.gate_up.ptr(), gate_up), false)?;
            gpu.launch(
                &format!("silu_mul_{suffix}"),
                (seq as u32, c.hidden.div_ceil(256) as u32, 1),
                256,
                0,
                &[Arg::Ptr(gate_up), Arg::Ptr(activated), int(c.hidden)],
            )?;
            gpu.linear(storage, seq, c.dim, c.hidden, (activated, layer.down.ptr(), x), true)?;
        }
        timeline.mark(gpu, Category::Norms)?;
        norm(&self.norm, 1, x + ((seq - 1) * c.dim * 4) as u64)?;
        timeline.mark(gpu, Category::Head)?;
        let head = self.head.as_ref().unwrap_or(&self.embedding);
        gpu.linear(storage, 1, c.vocab, c.dim, (normed, head.ptr(), logits), false)?;
        state.len = offset + seq;
        state.on_device = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_sizes_past_the_kernels_are_refused() {
        let mut config = Config::preset("tiny").unwrap();
        assert_eq!(unsupported(&config), None);
        config.head_dim = 256;
        assert!(unsupported(&config).unwrap().contains("up to 128"));
    }
}
