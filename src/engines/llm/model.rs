//! The llama-architecture decoder: embedding, RMSNorm, rotary embeddings,
//! grouped-query attention (naive or flash), SwiGLU MLP, KV cache and output
//! head, each with `load` and `forward`, timed by category.
//!
//! Activations are f32. With `dtype: bf16` weights are stored as bf16 and
//! widened to f32 right before each product, because candle's CPU matmul has
//! no bf16 kernel: the variant halves weight memory and shows what the
//! conversion costs.

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor, D};

use super::attention::{self, KvBuffer, KvRows, KvType};
use super::config::Config;
use super::cpu;
use super::weights::{Storage, Weight, WeightSource};
use super::LlmError;

/// How attention is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionKind {
    /// The full score matrix, masked, softmaxed, times V.
    Naive,
    /// Tiles of keys with an online softmax; the full score matrix never exists.
    Flash,
}

/// Where the time of a forward pass went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Profile {
    /// Token embedding lookup.
    pub embedding: Duration,
    /// q, k, v and o projections.
    pub projections: Duration,
    /// Rotary embeddings, KV cache and the attention core.
    pub attention: Duration,
    /// SwiGLU MLP.
    pub mlp: Duration,
    /// RMSNorms.
    pub norms: Duration,
    /// Output head.
    pub head: Duration,
    /// Token sampling.
    pub sampling: Duration,
}

/// A timing category of [`Profile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// Token embedding lookup.
    Embedding,
    /// q, k, v and o projections.
    Projections,
    /// Attention core.
    Attention,
    /// SwiGLU MLP.
    Mlp,
    /// RMSNorms.
    Norms,
    /// Output head.
    Head,
    /// Sampling.
    Sampling,
}

impl Profile {
    /// Runs `work`, adding its time to `category`.
    pub fn time<T>(&mut self, category: Category, work: impl FnOnce() -> Result<T, LlmError>) -> Result<T, LlmError> {
        let start = Instant::now();
        let result = work();
        self.add(category, start.elapsed());
        result
    }

    /// Adds `time` to `category` (for work timed elsewhere, such as with device events).
    pub fn add(&mut self, category: Category, time: Duration) {
        let slot = match category {
            Category::Embedding => &mut self.embedding,
            Category::Projections => &mut self.projections,
            Category::Attention => &mut self.attention,
            Category::Mlp => &mut self.mlp,
            Category::Norms => &mut self.norms,
            Category::Head => &mut self.head,
            Category::Sampling => &mut self.sampling,
        };
        *slot += time;
    }

    /// The accumulated times under their metric names.
    pub fn named(&self) -> [(&'static str, Duration); 7] {
        [
            ("embedding_time", self.embedding),
            ("projection_time", self.projections),
            ("attention_time", self.attention),
            ("mlp_time", self.mlp),
            ("norm_time", self.norms),
            ("head_time", self.head),
            ("sampling_time", self.sampling),
        ]
    }
}

/// The keys and values of every position seen so far, per layer.
///
/// Each layer keeps buffers with room to spare, written in place as
/// positions arrive and grown by doubling, so a decoding step copies only
/// its own keys and values. `clear` keeps the buffers for the next sequence.
/// Not `Clone`: a clone would share the buffers it writes into.
#[derive(Debug, Default)]
pub struct Cache {
    layers: Vec<Option<LayerCache>>,
    len: usize,
}

impl Cache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position (the buffers stay, to be written again).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// One layer's key and value buffers, `(kv_heads, capacity, head_dim)`,
/// in the cache's storage type.
#[derive(Debug)]
struct LayerCache {
    /// `(kv_heads, capacity, head_dim)`, row-major.
    keys: KvBuffer,
    values: KvBuffer,
    capacity: usize,
    head_dim: usize,
}

/// Positions a fresh layer buffer holds at least.
const CACHE_MIN_CAPACITY: usize = 64;

impl LayerCache {
    /// The layer in `slot`, with room for `needed` positions (grown by
    /// doubling, up to `context`, keeping the first `kept` positions).
    fn reserve(
        slot: &mut Option<LayerCache>,
        needed: usize,
        kept: usize,
        (kv_heads, head_dim, kind): (usize, usize, KvType),
        context: usize,
    ) -> &mut LayerCache {
        let layer = match slot.take() {
            Some(layer) if layer.capacity >= needed && layer.keys.kind() == kind => layer,
            old => {
                let capacity = old.as_ref().map_or(0, |layer| layer.capacity);
                // Twice what is needed: a prompt's prefill leaves room for
                // as many generated tokens before the first copy.
                let grown = (capacity * 2).max(needed * 2).max(CACHE_MIN_CAPACITY).min(context).max(needed);
                let size = kv_heads * grown * head_dim;
                let (keys, values) = (KvBuffer::zeros(kind, size), KvBuffer::zeros(kind, size));
                let mut layer = LayerCache { keys, values, capacity: grown, head_dim };
                if let Some(old) = old.filter(|old| old.keys.kind() == kind) {
                    for head in 0..kv_heads {
                        let (from, to, rows) = (old.at(head, 0), layer.at(head, 0), kept.min(old.capacity) * head_dim);
                        layer.keys.copy_from(to, &old.keys, from, rows);
                        layer.values.copy_from(to, &old.values, from, rows);
                    }
                }
                layer
            }
        };
        slot.insert(layer)
    }

    /// Where position `position` of `head` starts in either buffer.
    fn at(&self, head: usize, position: usize) -> usize {
        (head * self.capacity + position) * self.head_dim
    }

    /// Stores the key and value of `head` at `position`.
    fn write(&mut self, head: usize, position: usize, key: &[f32], value: &[f32]) {
        let at = self.at(head, position);
        self.keys.write(at, key);
        self.values.write(at, value);
    }

    /// The first `total` keys and values of `head`, `total · head_dim` each.
    fn head(&self, head: usize, total: usize) -> (KvRows<'_>, KvRows<'_>) {
        let at = self.at(head, 0);
        let end = at + total * self.head_dim;
        (self.keys.rows(at, end), self.values.rows(at, end))
    }

    /// Writes `k` and `v (kv_heads, seq, head_dim)` after `offset` positions
    /// of `slot` (a prompt's prefill) and returns the layer.
    fn append<'a>(
        slot: &'a mut Option<LayerCache>,
        k: &Tensor,
        v: &Tensor,
        (offset, kind): (usize, KvType),
        context: usize,
    ) -> Result<&'a mut LayerCache, LlmError> {
        let (kv_heads, seq, head_dim) = k.dims3()?;
        let layer = LayerCache::reserve(slot, offset + seq, offset, (kv_heads, head_dim, kind), context);
        let (k, v) = (k.flatten_all()?.to_vec1::<f32>()?, v.flatten_all()?.to_vec1::<f32>()?);
        for head in 0..kv_heads {
            for position in 0..seq {
                let at = (head * seq + position) * head_dim;
                layer.write(head, offset + position, &k[at..at + head_dim], &v[at..at + head_dim]);
            }
        }
        Ok(layer)
    }

    /// Copies of the first `total` keys and values of every head, widened
    /// to f32, as `(kv_heads, total, head_dim)` tensors.
    fn gathered(&self, kv_heads: usize, total: usize) -> Result<(Tensor, Tensor), LlmError> {
        let (mut keys, mut values) = (vec![0.0; kv_heads * total * self.head_dim], vec![0.0; kv_heads * total * self.head_dim]);
        let size = total * self.head_dim;
        for head in 0..kv_heads {
            let (k, v) = self.head(head, total);
            k.widen(0, &mut keys[head * size..(head + 1) * size]);
            v.widen(0, &mut values[head * size..(head + 1) * size]);
        }
        let shape = (kv_heads, total, self.head_dim);
        Ok((Tensor::from_vec(keys, shape, &Device::Cpu)?, Tensor::from_vec(values, shape, &Device::Cpu)?))
    }
}

/// A weight matrix `(out, in)` applied as `x · Wᵀ`.
struct Linear {
    weight: Weight,
    /// Added to every output row (Qwen2's q, k and v), f32 `(out,)`.
    bias: Option<Tensor>,
}

impl Linear {
    fn load(source: &WeightSource, name: &str, out: usize, input: usize, storage: Storage) -> Result<Linear, LlmError> {
        Ok(Linear { weight: source.matrix(name, [out, input], storage)?, bias: None })
    }

    /// The layer with the bias `name` of `out` values.
    fn with_bias(mut self, source: &WeightSource, name: &str, out: usize) -> Result<Linear, LlmError> {
        self.bias = Some(source.get(name, &[out], DType::F32)?);
        Ok(self)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, LlmError> {
        let product = self.product(x)?;
        match &self.bias {
            Some(bias) => Ok(product.broadcast_add(bias)?),
            None => Ok(product),
        }
    }

    fn product(&self, x: &Tensor) -> Result<Tensor, LlmError> {
        let weight = match &self.weight {
            Weight::Quant(matrix) => {
                let rows = x.dim(0)?;
                let x = x.to_dtype(DType::F32)?.contiguous()?;
                let out = cpu::with_slice(&x, |x: &[f32]| matrix.matmul(x, rows))??;
                return Ok(Tensor::from_vec(out, (rows, matrix.dims().0), &Device::Cpu)?);
            }
            Weight::Dense(weight) => weight,
        };
        if cpu::prefers_gemv(x.dim(0)?, weight) {
            // A decoding step: bandwidth-bound, streamed by the hand-written kernel.
            return cpu::gemv(x, weight);
        }
        let weight = if weight.dtype() == DType::F32 { weight.clone() } else { weight.to_dtype(DType::F32)? };
        Ok(x.matmul(&weight.t()?)?)
    }
}

struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    fn load(source: &WeightSource, name: &str, dim: usize, eps: f64) -> Result<RmsNorm, LlmError> {
        Ok(RmsNorm { weight: source.get(name, &[dim], DType::F32)?.to_vec1::<f32>()?, eps: eps as f32 })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, LlmError> {
        let (rows, dim) = x.dims2()?;
        if dim != self.weight.len() {
            return Err(LlmError::Input(format!("RMSNorm of {dim} columns with {} weights", self.weight.len())));
        }
        let x = x.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0.0; x.len()];
        cpu::rms_norm(&x, &self.weight, self.eps, &mut out);
        Ok(Tensor::from_vec(out, (rows, dim), &Device::Cpu)?)
    }
}

/// Grouped-query attention of one block: q/k/v projections, rotary
/// embeddings, the KV cache, the attention core (naive or flash) and the
/// output projection.
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    context: usize,
    kind: AttentionKind,
    /// The KV cache's storage type.
    kv: KvType,
}

/// The SwiGLU MLP: `down(silu(gate(x)) · up(x))`.
struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Mlp {
    fn load(source: &WeightSource, config: &Config, prefix: &str, storage: Storage) -> Result<Mlp, LlmError> {
        let linear =
            |name: &str, out, input| Linear::load(source, &format!("{prefix}.{name}.weight"), out, input, storage);
        Ok(Mlp {
            gate: linear("gate_proj", config.hidden, config.dim)?,
            up: linear("up_proj", config.hidden, config.dim)?,
            down: linear("down_proj", config.dim, config.hidden)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, LlmError> {
        let gate = self.gate.forward(x)?;
        let shape = gate.shape().clone();
        let mut gated = gate.flatten_all()?.to_vec1::<f32>()?;
        cpu::silu_mul(&mut gated, &self.up.forward(x)?.flatten_all()?.to_vec1::<f32>()?);
        self.down.forward(&Tensor::from_vec(gated, shape, &Device::Cpu)?)
    }
}

/// One decoder block: pre-norm attention and pre-norm MLP, each residual.
struct Block {
    input_norm: RmsNorm,
    attention: Attention,
    post_norm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    fn load(
        source: &WeightSource,
        config: &Config,
        index: usize,
        storage: Storage,
        kind: AttentionKind,
    ) -> Result<Block, LlmError> {
        let prefix = format!("model.layers.{index}");
        let norm = |name: &str| RmsNorm::load(source, &format!("{prefix}.{name}.weight"), config.dim, config.eps);
        Ok(Block {
            input_norm: norm("input_layernorm")?,
            attention: Attention::load(source, config, &format!("{prefix}.self_attn"), storage, kind)?,
            post_norm: norm("post_attention_layernorm")?,
            mlp: Mlp::load(source, config, &format!("{prefix}.mlp"), storage)?,
        })
    }

    /// `x (rows, dim)` through the block; `attend` is the attention of the
    /// normed rows (one sequence's positions, or one row per sequence).
    fn forward(
        &self,
        x: Tensor,
        profile: &mut Profile,
        attend: impl FnOnce(&Attention, &Tensor, &mut Profile) -> Result<Tensor, LlmError>,
    ) -> Result<Tensor, LlmError> {
        let h = profile.time(Category::Norms, || self.input_norm.forward(&x))?;
        let attended = attend(&self.attention, &h, profile)?;
        let x = (x + attended)?;
        let h = profile.time(Category::Norms, || self.post_norm.forward(&x))?;
        let m = profile.time(Category::Mlp, || self.mlp.forward(&h))?;
        Ok((x + m)?)
    }
}

/// A loaded decoder.
pub struct Model {
    config: Config,
    embedding: Weight,
    blocks: Vec<Block>,
    norm: RmsNorm,
    head: Linear,
    inverse_frequencies: Vec<f64>,
}

/// Positions per unit of flash-attention work (each unit attends them for
/// every query head of a group).
const FLASH_QUERY_ROWS: usize = 64;

impl Model {
    /// Loads every tensor of `config` from `source`, storing matrices as `dtype`.
    pub fn load(
        config: Config,
        source: &WeightSource,
        dtype: DType,
        attention: AttentionKind,
    ) -> Result<Model, LlmError> {
        Model::load_as(config, source, Storage::Dense(dtype), attention)
    }

    /// Loads every tensor of `config` from `source`, storing matrices as
    /// `storage` (quantized ones as blocks; a GGUF file's as the file has them).
    pub fn load_as(
        config: Config,
        source: &WeightSource,
        storage: Storage,
        attention: AttentionKind,
    ) -> Result<Model, LlmError> {
        if !matches!(source, WeightSource::Gguf(_)) {
            if let Some(why) = storage.unfit(&config.row_lengths()) {
                return Err(LlmError::Input(why));
            }
        }
        let embedding = source.matrix("model.embed_tokens.weight", [config.vocab, config.dim], storage)?;
        let blocks = (0..config.layers)
            .map(|index| Block::load(source, &config, index, storage, attention))
            .collect::<Result<_, _>>()?;
        let norm = RmsNorm::load(source, "model.norm.weight", config.dim, config.eps)?;
        let head = if config.tied {
            Linear { weight: embedding.clone(), bias: None }
        } else {
            Linear::load(source, "lm_head.weight", config.vocab, config.dim, storage)?
        };
        let inverse_frequencies = config.inverse_frequencies();
        Ok(Model { config, embedding, blocks, norm, head, inverse_frequencies })
    }

    /// The model with its KV cache stored as `kv` (caches it filled
    /// before in another type start again from empty buffers).
    pub fn with_kv(mut self, kv: KvType) -> Model {
        for block in &mut self.blocks {
            block.attention.kv = kv;
        }
        self
    }

    /// The KV cache's storage type.
    pub fn kv(&self) -> KvType {
        self.blocks.first().map_or(KvType::F32, |block| block.attention.kv)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Bytes a decoding step reads at a context of `positions`: every
    /// matrix and norm at its stored size, the output head (once, even when
    /// it is the embedding), and the keys and values of every layer in the
    /// cache's storage type.
    /// The embedding row looked up is left out. Divide a measured memory
    /// bandwidth by it for the step's roofline.
    pub fn bytes_per_token(&self, positions: usize) -> usize {
        let config = &self.config;
        let norms = (2 * config.layers + 1) * config.dim * 4;
        let blocks: usize = self
            .blocks
            .iter()
            .map(|block| {
                let attention = &block.attention;
                let mlp = &block.mlp;
                [&attention.q, &attention.k, &attention.v, &attention.o, &mlp.gate, &mlp.up, &mlp.down]
                    .iter()
                    .map(|linear| linear.weight.bytes() + linear.bias.as_ref().map_or(0, |bias| bias.elem_count() * 4))
                    .sum::<usize>()
            })
            .sum();
        let cache = 2 * config.layers * config.kv_heads * config.head_dim * positions * self.kv().bytes();
        norms + blocks + self.head.weight.bytes() + cache
    }

    /// The stored type of every weight matrix, with how many matrices have it.
    pub fn weight_types(&self) -> Vec<(String, usize)> {
        let mut types: Vec<(String, usize)> = Vec::new();
        let mut count = |weight: &Weight| {
            let name = weight.type_name();
            match types.iter_mut().find(|(known, _)| *known == name) {
                Some((_, n)) => *n += 1,
                None => types.push((name, 1)),
            }
        };
        count(&self.embedding);
        for block in &self.blocks {
            let (attention, mlp) = (&block.attention, &block.mlp);
            for linear in [&attention.q, &attention.k, &attention.v, &attention.o, &mlp.gate, &mlp.up, &mlp.down] {
                count(&linear.weight);
            }
        }
        if !self.config.tied {
            count(&self.head.weight);
        }
        types
    }

    /// Runs `tokens` after the positions in `cache`, appending theirs, and
    /// returns the logits of the last position (`all_positions`: of every
    /// position, one row each).
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut Cache,
        profile: &mut Profile,
        all_positions: bool,
    ) -> Result<Tensor, LlmError> {
        let seq = tokens.len();
        let offset = cache.len;
        if seq == 0 {
            return Err(LlmError::Input("no tokens to run".into()));
        }
        self.check(tokens, offset + seq)?;
        self.prepare(cache);
        let mut x = self.embed(tokens, profile)?;
        let rotary = profile.time(Category::Attention, || self.rotary(offset..offset + seq))?;
        for (block, slot) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            x = block.forward(x, profile, |attention, h, profile| attention.forward(h, &rotary, slot, offset, profile))?;
        }
        cache.len = offset + seq;
        let last = if all_positions { x } else { x.narrow(0, seq - 1, 1)? };
        let logits = self.logits(&last, profile)?;
        Ok(if all_positions { logits } else { logits.squeeze(0)? })
    }

    /// One decoding step of `tokens.len()` sequences at once: token `i`
    /// runs after the positions in `caches[i]`, appending its own, and row
    /// `i` of the result `(batch, vocab)` is its logits. Every weight matrix
    /// is applied once to all the rows; attention is per sequence over its
    /// own cache.
    pub fn decode_batch(
        &self,
        tokens: &[u32],
        caches: &mut [&mut Cache],
        profile: &mut Profile,
    ) -> Result<Tensor, LlmError> {
        if tokens.is_empty() || tokens.len() != caches.len() {
            return Err(LlmError::Input(format!(
                "a decoding step needs one token per sequence: {} tokens for {} sequences",
                tokens.len(),
                caches.len()
            )));
        }
        let offsets: Vec<usize> = caches.iter().map(|cache| cache.len).collect();
        let longest = offsets.iter().max().copied().unwrap_or(0);
        self.check(tokens, longest + 1)?;
        for cache in caches.iter_mut() {
            self.prepare(cache);
        }
        let mut x = self.embed(tokens, profile)?;
        let rotary = profile.time(Category::Attention, || self.rotary(offsets.iter().copied()))?;
        for (layer, block) in self.blocks.iter().enumerate() {
            let mut slots: Vec<&mut Option<LayerCache>> =
                caches.iter_mut().map(|cache| &mut cache.layers[layer]).collect();
            x = block.forward(x, profile, |attention, h, profile| {
                attention.forward_batch(h, &rotary, &mut slots, &offsets, profile)
            })?;
        }
        for cache in caches.iter_mut() {
            cache.len += 1;
        }
        self.logits(&x, profile)
    }

    /// Refuses tokens outside the vocabulary and sequences past the context.
    fn check(&self, tokens: &[u32], positions: usize) -> Result<(), LlmError> {
        if positions > self.config.context {
            return Err(LlmError::Input(format!(
                "{positions} positions exceed the model's context of {}",
                self.config.context
            )));
        }
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= self.config.vocab) {
            return Err(LlmError::Input(format!("token {bad} is outside the vocabulary of {}", self.config.vocab)));
        }
        Ok(())
    }

    /// Gives a cache one slot per layer.
    fn prepare(&self, cache: &mut Cache) {
        if cache.layers.len() != self.blocks.len() {
            cache.layers = (0..self.blocks.len()).map(|_| None).collect();
        }
    }

    /// The embeddings of `tokens`, one f32 row each.
    fn embed(&self, tokens: &[u32], profile: &mut Profile) -> Result<Tensor, LlmError> {
        profile.time(Category::Embedding, || match &self.embedding {
            Weight::Dense(table) => {
                let ids = Tensor::from_slice(tokens, tokens.len(), &Device::Cpu)?;
                Ok(table.index_select(&ids, 0)?.to_dtype(DType::F32)?)
            }
            Weight::Quant(table) => {
                let dim = self.config.dim;
                let mut rows = vec![0.0_f32; tokens.len() * dim];
                for (token, row) in tokens.iter().zip(rows.chunks_exact_mut(dim)) {
                    table.dequantize_row(*token as usize, row);
                }
                Ok(Tensor::from_vec(rows, (tokens.len(), dim), &Device::Cpu)?)
            }
        })
    }

    /// Final norm and output head of `x (rows, dim)`: `(rows, vocab)`.
    fn logits(&self, x: &Tensor, profile: &mut Profile) -> Result<Tensor, LlmError> {
        let normed = profile.time(Category::Norms, || self.norm.forward(x))?;
        profile.time(Category::Head, || self.head.forward(&normed))
    }

    /// Cosine and sine tables `(rows, head_dim)`, one row per position,
    /// laid out for the rotate-half convention of Hugging Face Llama.
    fn rotary(&self, positions: impl ExactSizeIterator<Item = usize>) -> Result<(Tensor, Tensor), LlmError> {
        let half = self.config.head_dim / 2;
        let rows = positions.len();
        let mut cos = Vec::with_capacity(rows * half * 2);
        let mut sin = Vec::with_capacity(rows * half * 2);
        for position in positions {
            let angles = self.inverse_frequencies.iter().map(|inv| position as f64 * inv);
            let row: Vec<f64> = angles.collect();
            for _ in 0..2 {
                cos.extend(row.iter().map(|a| a.cos() as f32));
                sin.extend(row.iter().map(|a| a.sin() as f32));
            }
        }
        let shape = (rows, half * 2);
        Ok((Tensor::from_vec(cos, shape, &Device::Cpu)?, Tensor::from_vec(sin, shape, &Device::Cpu)?))
    }
}

impl Attention {
    fn load(
        source: &WeightSource,
        config: &Config,
        prefix: &str,
        storage: Storage,
        kind: AttentionKind,
    ) -> Result<Attention, LlmError> {
        let (dim, q_dim, kv_dim) = (config.dim, config.heads * config.head_dim, config.kv_heads * config.head_dim);
        let linear =
            |name: &str, out, input| Linear::load(source, &format!("{prefix}.{name}.weight"), out, input, storage);
        let biased = |name: &str, out| -> Result<Linear, LlmError> {
            let layer = linear(name, out, dim)?;
            match config.qkv_bias {
                true => layer.with_bias(source, &format!("{prefix}.{name}.bias"), out),
                false => Ok(layer),
            }
        };
        Ok(Attention {
            q: biased("q_proj", q_dim)?,
            k: biased("k_proj", kv_dim)?,
            v: biased("v_proj", kv_dim)?,
            o: linear("o_proj", dim, q_dim)?,
            heads: config.heads,
            kv_heads: config.kv_heads,
            head_dim: config.head_dim,
            context: config.context,
            kind,
            kv: KvType::F32,
        })
    }

    /// The q, k and v projections of `x (rows, dim)`.
    fn project(&self, x: &Tensor, profile: &mut Profile) -> Result<(Tensor, Tensor, Tensor), LlmError> {
        profile.time(Category::Projections, || Ok((self.q.forward(x)?, self.k.forward(x)?, self.v.forward(x)?)))
    }

    /// Attention of `x (seq, dim)` over the `offset` cached positions in
    /// `slot` and its own, which it appends to `slot`.
    fn forward(
        &self,
        x: &Tensor,
        rotary: &(Tensor, Tensor),
        slot: &mut Option<LayerCache>,
        offset: usize,
        profile: &mut Profile,
    ) -> Result<Tensor, LlmError> {
        let seq = x.dim(0)?;
        let (q, k, v) = self.project(x, profile)?;
        let mixed = profile.time(Category::Attention, || {
            if seq == 1 {
                return self.decode_rows(&q, &k, &v, rotary, &mut [slot], &[offset]);
            }
            if self.kind == AttentionKind::Flash {
                return self.flash_attention(&q, &k, &v, rotary, slot, offset);
            }
            let (cos, sin) = rotary;
            let q = rotate(&self.split_heads(&q, self.heads, seq)?, cos, sin)?;
            let k = rotate(&self.split_heads(&k, self.kv_heads, seq)?, cos, sin)?;
            let v = self.split_heads(&v, self.kv_heads, seq)?;
            let layer = LayerCache::append(slot, &k, &v, (offset, self.kv), self.context)?;
            let (k, v) = layer.gathered(self.kv_heads, offset + seq)?;
            let out = self.naive_attention(&q, &k, &v, offset)?;
            // (heads, seq, head_dim) → (seq, heads · head_dim)
            Ok(out.transpose(0, 1)?.contiguous()?.reshape((seq, self.heads * self.head_dim))?)
        })?;
        profile.time(Category::Projections, || self.o.forward(&mixed))
    }

    /// Attention of one row per sequence, `x (batch, dim)`: row `i` is at
    /// position `offsets[i]` of the sequence whose cache is `slots[i]`.
    fn forward_batch(
        &self,
        x: &Tensor,
        rotary: &(Tensor, Tensor),
        slots: &mut [&mut Option<LayerCache>],
        offsets: &[usize],
        profile: &mut Profile,
    ) -> Result<Tensor, LlmError> {
        let (q, k, v) = self.project(x, profile)?;
        let mixed = profile.time(Category::Attention, || self.decode_rows(&q, &k, &v, rotary, slots, offsets))?;
        profile.time(Category::Projections, || self.o.forward(&mixed))
    }

    /// Attention of decoding rows, one per sequence: `q (batch, heads ·
    /// head_dim)` and `k`, `v (batch, kv_heads · head_dim)`; row `i` is at
    /// position `offsets[i]` of the sequence whose cache is `slots[i]`,
    /// rotated by row `i` of the tables `(batch, head_dim)`. Returns `(batch,
    /// heads · head_dim)`. Rotation, the cache write and each head's
    /// attention work on plain slices: a head's share of a step is a few
    /// thousand multiply-adds, less than the overhead of one tensor op.
    fn decode_rows(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        (cos, sin): &(Tensor, Tensor),
        slots: &mut [&mut Option<LayerCache>],
        offsets: &[usize],
    ) -> Result<Tensor, LlmError> {
        let flat = |t: &Tensor| -> Result<Vec<f32>, LlmError> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
        let (mut q, mut k, v, cos, sin) = (flat(q)?, flat(k)?, flat(v)?, flat(cos)?, flat(sin)?);
        let (batch, head_dim) = (offsets.len(), self.head_dim);
        let (q_width, kv_width) = (self.heads * head_dim, self.kv_heads * head_dim);
        if q.len() != batch * q_width || k.len() != batch * kv_width || cos.len() != batch * head_dim {
            return Err(LlmError::Input(format!("decoding {batch} rows: q, k or the rotary tables do not fit")));
        }
        for (index, slot) in slots.iter_mut().enumerate() {
            let (cos, sin) = (&cos[index * head_dim..][..head_dim], &sin[index * head_dim..][..head_dim]);
            q[index * q_width..][..q_width].chunks_exact_mut(head_dim).for_each(|h| cpu::rotate_half(h, cos, sin));
            let keys = &mut k[index * kv_width..][..kv_width];
            keys.chunks_exact_mut(head_dim).for_each(|h| cpu::rotate_half(h, cos, sin));
            let offset = offsets[index];
            let layer =
                LayerCache::reserve(slot, offset + 1, offset, (self.kv_heads, head_dim, self.kv), self.context);
            let values = &v[index * kv_width..][..kv_width];
            for (head, (key, value)) in keys.chunks_exact(head_dim).zip(values.chunks_exact(head_dim)).enumerate() {
                layer.write(head, offset, key, value);
            }
        }
        let layers: Vec<&LayerCache> = slots
            .iter()
            .map(|slot| slot.as_ref().ok_or_else(|| LlmError::Input("the KV cache lost a layer".into())))
            .collect::<Result<_, _>>()?;
        let (heads, group, scale) = (self.heads, self.heads / self.kv_heads, self.scale() as f32);
        let mut out = vec![0.0_f32; batch * q_width];
        if self.kv != KvType::F32 {
            self.decode_narrow(&q, &layers, offsets, &mut out);
            return Ok(Tensor::from_vec(out, (batch, q_width), &Device::Cpu)?);
        }
        let head = |(index, out): (usize, &mut [f32])| {
            let (row, head) = (index / heads, index % heads);
            let (keys, values) = f32_rows(layers[row].head(head / group, offsets[row] + 1));
            // The next head's keys, which this thread most likely takes next.
            let (next_row, next_head) = ((index + 1) / heads, (index + 1) % heads);
            let next = layers.get(next_row).map_or((&[][..], &[][..]), |layer| {
                f32_rows(layer.head(next_head / group, offsets[next_row] + 1))
            });
            cpu::attend_head(&q[index * head_dim..][..head_dim], (keys, values), next, scale, out);
        };
        let work: usize = offsets.iter().map(|offset| (offset + 1) * q_width).sum();
        if work < cpu::PARALLEL_MIN_WEIGHTS {
            out.chunks_mut(head_dim).enumerate().for_each(head);
        } else {
            use rayon::prelude::*;
            out.par_chunks_mut(head_dim).enumerate().for_each(head);
        }
        Ok(Tensor::from_vec(out, (batch, q_width), &Device::Cpu)?)
    }

    /// `(seq, heads · head_dim)` → `(heads, seq, head_dim)`.
    fn split_heads(&self, x: &Tensor, heads: usize, seq: usize) -> Result<Tensor, LlmError> {
        Ok(x.reshape((seq, heads, self.head_dim))?.transpose(0, 1)?.contiguous()?)
    }

    /// Query heads grouped under their key/value head: `(kv_heads, rep · rows, head_dim)`.
    fn grouped(&self, q: &Tensor, start: usize, rows: usize) -> Result<Tensor, LlmError> {
        let (kv_heads, rep) = (self.kv_heads, self.heads / self.kv_heads);
        let seq = q.dim(1)?;
        let q = q.reshape((kv_heads, rep, seq, self.head_dim))?.narrow(2, start, rows)?;
        Ok(q.contiguous()?.reshape((kv_heads, rep * rows, self.head_dim))?)
    }

    /// Back from grouped rows to `(heads, rows, head_dim)`.
    fn ungrouped(&self, x: &Tensor, rows: usize) -> Result<Tensor, LlmError> {
        Ok(x.reshape((self.heads, rows, self.head_dim))?)
    }

    fn scale(&self) -> f64 {
        1.0 / (self.head_dim as f64).sqrt()
    }

    fn naive_attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, offset: usize) -> Result<Tensor, LlmError> {
        let seq = q.dim(1)?;
        let total = k.dim(1)?;
        let (kv_heads, rep) = (self.kv_heads, self.heads / self.kv_heads);
        let q = self.grouped(q, 0, seq)?;
        let scores = q.matmul(&k.t()?)?;
        debug_assert_eq!(scores.dims(), [kv_heads, rep * seq, total]);
        let probabilities = cpu::causal_softmax(&scores, self.scale() as f32, seq, offset)?;
        self.ungrouped(&probabilities.matmul(v)?, seq)
    }

    /// Flash attention of a prompt's rows `q (seq, heads · head_dim)` and
    /// `k`, `v (seq, kv_heads · head_dim)`, after the `offset` positions in
    /// `slot`: rotated and written to the cache on plain slices, then each
    /// key/value head is prepared once as [`attention::Tiles`] and attended
    /// by one fused call per block of [`FLASH_QUERY_ROWS`] positions (the
    /// group's query heads together), on the engine's threads. Returns
    /// `(seq, heads · head_dim)`.
    fn flash_attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        (cos, sin): &(Tensor, Tensor),
        slot: &mut Option<LayerCache>,
        offset: usize,
    ) -> Result<Tensor, LlmError> {
        use rayon::prelude::*;
        let flat = |t: &Tensor| -> Result<Vec<f32>, LlmError> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
        let (mut q, mut k, v, cos, sin) = (flat(q)?, flat(k)?, flat(v)?, flat(cos)?, flat(sin)?);
        let (heads, d) = (self.heads, self.head_dim);
        let (width, kv_width) = (heads * d, self.kv_heads * d);
        let seq = q.len() / width;
        if k.len() != seq * kv_width || v.len() != seq * kv_width || cos.len() != seq * d {
            return Err(LlmError::Input(format!("attention of {seq} rows: k, v or the rotary tables do not fit")));
        }
        let rotate_rows = |rows: &mut [f32], row_width: usize| {
            rows.par_chunks_mut(row_width).enumerate().for_each(|(position, row)| {
                let (cos, sin) = (&cos[position * d..(position + 1) * d], &sin[position * d..(position + 1) * d]);
                row.chunks_exact_mut(d).for_each(|head| cpu::rotate_half(head, cos, sin));
            })
        };
        rotate_rows(&mut q, width);
        rotate_rows(&mut k, kv_width);
        let total = offset + seq;
        let layer = LayerCache::reserve(slot, total, offset, (self.kv_heads, d, self.kv), self.context);
        for position in 0..seq {
            let (keys, values) = (&k[position * kv_width..][..kv_width], &v[position * kv_width..][..kv_width]);
            for (head, (key, value)) in keys.chunks_exact(d).zip(values.chunks_exact(d)).enumerate() {
                layer.write(head, offset + position, key, value);
            }
        }
        let layer = &*layer;
        let tiles: Vec<attention::Tiles> =
            (0..self.kv_heads).into_par_iter().map(|head| attention::Tiles::of(layer.head(head, total), total, d)).collect();
        let (group, scale) = (heads / self.kv_heads, self.scale() as f32);
        let blocks = seq.div_ceil(FLASH_QUERY_ROWS);
        let block_of = |block: usize| (block * FLASH_QUERY_ROWS, ((block + 1) * FLASH_QUERY_ROWS).min(seq));
        let units: Vec<(usize, usize)> =
            (0..self.kv_heads).flat_map(|head| (0..blocks).map(move |block| (head, block))).collect();
        // Rows of a unit ordered (query head of the group, position).
        let outputs: Vec<Vec<f32>> = units
            .par_iter()
            .map_init(attention::Scratch::default, |scratch, &(kv_head, block)| {
                let (start, end) = block_of(block);
                let mut queries = Vec::with_capacity(group * (end - start) * d);
                let mut last = Vec::with_capacity(group * (end - start));
                for head in kv_head * group..(kv_head + 1) * group {
                    for position in start..end {
                        queries.extend_from_slice(&q[position * width + head * d..][..d]);
                    }
                    last.extend((start..end).map(|position| offset + position));
                }
                let mut out = vec![0.0; queries.len()];
                attention::attend_tiles(&queries, &last, &tiles[kv_head], scale, scratch, &mut out);
                out
            })
            .collect();
        let mut mixed = q;
        for (&(kv_head, block), out) in units.iter().zip(&outputs) {
            let (start, end) = block_of(block);
            for (index, row) in out.chunks_exact(d).enumerate() {
                let (head, position) = (kv_head * group + index / (end - start), start + index % (end - start));
                mixed[position * width + head * d..][..d].copy_from_slice(row);
            }
        }
        Ok(Tensor::from_vec(mixed, (seq, width), &Device::Cpu)?)
    }

    /// Decoding attention over an f16 or bf16 cache: each sequence's query
    /// heads of a group attend their key/value head in one fused call.
    /// `q (batch, heads · head_dim)`, rotated; writes `out` alike.
    fn decode_narrow(&self, q: &[f32], layers: &[&LayerCache], offsets: &[usize], out: &mut [f32]) {
        use rayon::prelude::*;
        let (group, d, scale) = (self.heads / self.kv_heads, self.head_dim, self.scale() as f32);
        let width = group * d;
        let attend = |scratch: &mut attention::Scratch, (index, out): (usize, &mut [f32])| {
            let (row, kv_head) = (index / self.kv_heads, index % self.kv_heads);
            let last = vec![offsets[row]; group];
            let queries = &q[index * width..(index + 1) * width];
            let kv = layers[row].head(kv_head, offsets[row] + 1);
            attention::attend(queries, &last, kv, d, scale, scratch, out);
        };
        let work: usize = offsets.iter().map(|offset| (offset + 1) * self.heads * d).sum();
        if work < cpu::PARALLEL_MIN_WEIGHTS {
            let mut scratch = attention::Scratch::default();
            out.chunks_mut(width).enumerate().for_each(|unit| attend(&mut scratch, unit));
        } else {
            out.par_chunks_mut(width).enumerate().for_each_init(attention::Scratch::default, attend);
        }
    }
}

/// The f32 slices of cached rows (empty for another storage type).
fn f32_rows<'a>((keys, values): (KvRows<'a>, KvRows<'a>)) -> (&'a [f32], &'a [f32]) {
    match (keys, values) {
        (KvRows::F32(keys), KvRows::F32(values)) => (keys, values),
        _ => (&[][..], &[][..]),
    }
}

/// Rotary embedding, rotate-half convention: `x·cos + rotate_half(x)·sin`.
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor, LlmError> {
    let half = x.dim(D::Minus1)? / 2;
    let first = x.narrow(D::Minus1, 0, half)?;
    let second = x.narrow(D::Minus1, half, half)?;
    let rotated = Tensor::cat(&[&second.neg()?, &first], D::Minus1)?;
    Ok((x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(attention: AttentionKind, kv_heads: usize) -> Model {
        let mut config = Config::preset("tiny").unwrap();
        config.kv_heads = kv_heads;
        config.context = 1024;
        Model::load(config, &WeightSource::Random { seed: 3 }, DType::F32, attention).unwrap()
    }

    fn tokens(n: usize, seed: u64) -> Vec<u32> {
        let mut rng = crate::engines::rng::SplitMix::new(seed);
        (0..n).map(|_| rng.below(2048) as u32).collect()
    }

    fn max_relative(a: &Tensor, b: &Tensor) -> f32 {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let scale = a.iter().map(|x| x.abs()).fold(0.0_f32, f32::max).max(1e-6);
        a.iter().zip(&b).map(|(x, y)| (x - y).abs() / scale).fold(0.0, f32::max)
    }

    #[test]
    fn flash_matches_naive_at_several_lengths_with_and_without_cache() {
        for kv_heads in [4, 2, 1] {
            let naive = tiny(AttentionKind::Naive, kv_heads);
            let flash = tiny(AttentionKind::Flash, kv_heads);
            for length in [1, 7, 128, 129, 300] {
                let prompt = tokens(length, length as u64);
                let run = |model: &Model| {
                    let mut cache = Cache::default();
                    model.forward(&prompt, &mut cache, &mut Profile::default(), true).unwrap()
                };
                let difference = max_relative(&run(&naive), &run(&flash));
                assert!(difference < 1e-5, "kv_heads {kv_heads}, length {length}: {difference}");
            }
            // Decoding with the cache: a 200-token prompt, then 5 single tokens.
            let prompt = tokens(205, 9);
            let mut caches = (Cache::default(), Cache::default());
            let mut last = (None, None);
            for (index, chunk) in
                [&prompt[..200], &prompt[200..201], &prompt[201..202], &prompt[202..205]].iter().enumerate()
            {
                let a = naive.forward(chunk, &mut caches.0, &mut Profile::default(), false).unwrap();
                let b = flash.forward(chunk, &mut caches.1, &mut Profile::default(), false).unwrap();
                assert!(max_relative(&a, &b) < 1e-5, "step {index}");
                last = (Some(a), Some(b));
            }
            // And the cached run equals a fresh run over the whole sequence.
            let whole = naive.forward(&prompt, &mut Cache::default(), &mut Profile::default(), false).unwrap();
            assert!(max_relative(&whole, last.0.as_ref().unwrap()) < 1e-5);
        }
    }

    #[test]
    fn a_narrow_cache_attends_alike_in_every_path_and_stays_close_to_f32() {
        for (kv, tolerance) in [(KvType::F16, 2e-3), (KvType::Bf16, 2e-2)] {
            for kv_heads in [4, 1] {
                let exact = tiny(AttentionKind::Naive, kv_heads);
                let naive = tiny(AttentionKind::Naive, kv_heads).with_kv(kv);
                let flash = tiny(AttentionKind::Flash, kv_heads).with_kv(kv);
                // A prompt, then single tokens decoded through the cache.
                let prompt = tokens(203, 11);
                let mut caches = (Cache::default(), Cache::default(), Cache::default());
                for (index, chunk) in [&prompt[..200], &prompt[200..201], &prompt[201..203]].iter().enumerate() {
                    let a = naive.forward(chunk, &mut caches.0, &mut Profile::default(), false).unwrap();
                    let b = flash.forward(chunk, &mut caches.1, &mut Profile::default(), false).unwrap();
                    let f32_logits = exact.forward(chunk, &mut caches.2, &mut Profile::default(), false).unwrap();
                    // Naive and flash read the same stored values, but they sum in
                    // different orders, and a key that lands the other side of a
                    // rounding boundary moves by a unit of the narrow type.
                    let apart = max_relative(&a, &b);
                    assert!(apart < tolerance / 20.0, "{kv:?}, kv_heads {kv_heads}, step {index}: {apart}");
                    // The rounding of keys and values shows, within what the type allows.
                    let off = max_relative(&f32_logits, &a);
                    assert!(off > 1e-7 && off < tolerance, "{kv:?}, kv_heads {kv_heads}, step {index}: {off}");
                }
            }
        }
    }

    #[test]
    fn a_cache_that_grows_while_decoding_keeps_every_position() {
        // One prompt token leaves room for 64; decoding one token at a time
        // past that copies the cache into a larger one, twice.
        let model = tiny(AttentionKind::Naive, 2);
        let sequence = tokens(150, 11);
        let mut cache = Cache::default();
        let mut last = None;
        for token in &sequence {
            last = Some(model.forward(std::slice::from_ref(token), &mut cache, &mut Profile::default(), false).unwrap());
        }
        let whole = model.forward(&sequence, &mut Cache::default(), &mut Profile::default(), false).unwrap();
        assert!(max_relative(&whole, &last.unwrap()) < 1e-5);
        // And a recycled cache forgets its old positions.
        cache.clear();
        let again = model.forward(&sequence[..20], &mut cache, &mut Profile::default(), false).unwrap();
        let fresh = model.forward(&sequence[..20], &mut Cache::default(), &mut Profile::default(), false).unwrap();
        assert!(max_relative(&again, &fresh) < 1e-6);
    }

    #[test]
    fn rejects_sequences_past_the_context_and_unknown_tokens() {
        let model = tiny(AttentionKind::Naive, 4);
        let mut cache = Cache::default();
        assert!(model.forward(&vec![1; 1025], &mut cache, &mut Profile::default(), false).is_err());
        assert!(model.forward(&[5000], &mut cache, &mut Profile::default(), false).is_err());
        assert!(model.forward(&[], &mut cache, &mut Profile::default(), false).is_err());
    }

    #[test]
    fn a_batched_step_equals_each_sequence_stepping_alone() {
        // An f16 cache: a batched product that rounds a key the other way
        // moves it by a unit of f16 (see the narrow-cache test).
        for (kv_heads, kv, tolerance) in [(4, KvType::F32, 1e-5), (2, KvType::F32, 1e-5), (2, KvType::F16, 1e-4)] {
            let model = tiny(AttentionKind::Naive, kv_heads).with_kv(kv);
            for batch in [1, 3, 7] {
                // Prompts of different lengths, so every row is at its own position.
                let prompts: Vec<Vec<u32>> =
                    (0..batch).map(|i| tokens(1 + 13 * i + (i % 2) * 60, 100 + i as u64)).collect();
                let prefill = |model: &Model| -> Vec<Cache> {
                    prompts
                        .iter()
                        .map(|prompt| {
                            let mut cache = Cache::default();
                            model.forward(prompt, &mut cache, &mut Profile::default(), false).unwrap();
                            cache
                        })
                        .collect()
                };
                let (mut alone, mut batched) = (prefill(&model), prefill(&model));
                for step in 0..3 {
                    let next = tokens(batch, 7 * step as u64 + batch as u64);
                    let mut refs: Vec<&mut Cache> = batched.iter_mut().collect();
                    let logits = model.decode_batch(&next, &mut refs, &mut Profile::default()).unwrap();
                    assert_eq!(logits.dims(), [batch, 2048]);
                    for (index, cache) in alone.iter_mut().enumerate() {
                        let expected = model.forward(&next[index..=index], cache, &mut Profile::default(), false);
                        let row = logits.get(index).unwrap();
                        let difference = max_relative(&expected.unwrap(), &row);
                        assert!(difference < tolerance, "kv_heads {kv_heads}, {kv:?}, batch {batch}, step {step}, row {index}");
                        assert_eq!(cache.len(), batched[index].len());
                    }
                }
            }
        }
    }

    #[test]
    fn a_batched_step_refuses_what_a_sequence_would() {
        let model = tiny(AttentionKind::Naive, 4);
        let (mut short, mut full) = (Cache::default(), Cache::default());
        model.forward(&[1, 2, 3], &mut short, &mut Profile::default(), false).unwrap();
        model.forward(&vec![1; 1024], &mut full, &mut Profile::default(), false).unwrap();
        let step = |tokens: &[u32], caches: &mut [&mut Cache]| {
            model.decode_batch(tokens, caches, &mut Profile::default()).map(|_| ()).unwrap_err().to_string()
        };
        assert!(step(&[5, 5], &mut [&mut short, &mut full]).contains("exceed the model's context"));
        assert!(step(&[5, 5000], &mut [&mut short, &mut Cache::default()]).contains("outside the vocabulary"));
        assert!(step(&[5], &mut [&mut short, &mut Cache::default()]).contains("one token per sequence"));
        assert!(step(&[], &mut []).contains("one token per sequence"));
        // A refused step leaves every cache as it was.
        assert_eq!((short.len(), full.len()), (3, 1024));
    }

    #[test]
    fn bf16_weights_stay_close_to_f32() {
        let config = Config::preset("tiny").unwrap();
        let source = WeightSource::Random { seed: 3 };
        let f32_model = Model::load(config.clone(), &source, DType::F32, AttentionKind::Naive).unwrap();
        let bf16_model = Model::load(config, &source, DType::BF16, AttentionKind::Naive).unwrap();
        let prompt = tokens(16, 1);
        let a = f32_model.forward(&prompt, &mut Cache::default(), &mut Profile::default(), false).unwrap();
        let b = bf16_model.forward(&prompt, &mut Cache::default(), &mut Profile::default(), false).unwrap();
        assert!(max_relative(&a, &b) < 0.05, "{}", max_relative(&a, &b));
    }
}
