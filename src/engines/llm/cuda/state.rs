//! A worker's state on the GPU: its own stream and cuBLAS handle, the KV
//! cache (grown by doubling, copied on the device), the activation scratch
//! of the forward pass, attention scratch, and the timeline of CUDA events
//! that splits a step's device time into the categories of [`Profile`].
//! Per generated token only the sampled id comes back to the host.

use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::CudaEvent;

use super::attention::AttentionScratch;
use super::device::{cuda_error, Arg, Buffer, Gpu};
use super::model::CudaModel;
use crate::engines::llm::config::Config;
use crate::engines::llm::model::{Category, Profile};
use crate::engines::llm::sampling::Sampler;
use crate::engines::llm::LlmError;

/// Activations of one forward pass, grown to the longest seen.
#[derive(Default)]
pub(super) struct Scratch {
    rows: usize,
    pub(super) x: Option<Buffer>,
    pub(super) normed: Option<Buffer>,
    pub(super) qkv: Option<Buffer>,
    pub(super) q: Option<Buffer>,
    pub(super) mixed: Option<Buffer>,
    pub(super) gate_up: Option<Buffer>,
    pub(super) activated: Option<Buffer>,
    pub(super) ids: Option<Buffer>,
    pub(super) logits: Option<Buffer>,
    argmax: Option<Buffer>,
}

/// Events at category boundaries, timed after the step.
#[derive(Default)]
pub(super) struct Timeline {
    events: Vec<CudaEvent>,
    categories: Vec<Category>,
    pub(super) used: usize,
}

impl Timeline {
    /// From here on the stream's work counts as `category`.
    pub(super) fn mark(&mut self, gpu: &Gpu, category: Category) -> Result<(), LlmError> {
        if self.used == self.events.len() {
            let flags = cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT;
            self.events.push(gpu.context.new_event(Some(flags)).map_err(cuda_error("creating an event"))?);
            self.categories.push(category);
        }
        self.events[self.used].record(&gpu.stream).map_err(cuda_error("recording an event"))?;
        self.categories[self.used] = category;
        self.used += 1;
        Ok(())
    }

    /// Closes the last interval, waits for the stream and adds every interval to `profile`.
    fn finish(&mut self, gpu: &Gpu, profile: &mut Profile) -> Result<(), LlmError> {
        if self.used == 0 {
            return Ok(());
        }
        let last = self.categories[self.used - 1];
        self.mark(gpu, last)?;
        self.events[self.used - 1].synchronize().map_err(cuda_error("running on the GPU"))?;
        for i in 0..self.used - 1 {
            let ms = self.events[i].elapsed_ms(&self.events[i + 1]).map_err(cuda_error("reading an event"))?;
            profile.add(self.categories[i], Duration::from_secs_f64(f64::from(ms.max(0.0)) / 1e3));
        }
        self.used = 0;
        Ok(())
    }
}

/// A worker's state on the GPU: its stream, KV cache and scratch.
pub struct CudaState {
    model: Arc<CudaModel>,
    pub(super) gpu: Gpu,
    capacity: usize,
    pub(super) len: usize,
    pub(super) keys: Vec<Buffer>,
    pub(super) values: Vec<Buffer>,
    pub(super) scratch: Scratch,
    pub(super) attention: AttentionScratch,
    pub(super) timeline: Timeline,
    /// The token the device sampled last, already in `ids[0]`.
    pub(super) on_device: Option<u32>,
}

impl CudaState {
    /// A worker on `model`'s GPU with its own stream.
    pub fn new(model: Arc<CudaModel>) -> Result<CudaState, LlmError> {
        let gpu = Gpu::new()?;
        Ok(CudaState {
            model,
            gpu,
            capacity: 0,
            len: 0,
            keys: Vec::new(),
            values: Vec::new(),
            scratch: Scratch::default(),
            attention: AttentionScratch::default(),
            timeline: Timeline::default(),
            on_device: None,
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &Config {
        &self.model.config
    }

    /// Forgets every cached position.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Room for `positions` in the cache (copying what it holds when it grows).
    pub(super) fn reserve(&mut self, positions: usize) -> Result<(), LlmError> {
        if positions <= self.capacity {
            return Ok(());
        }
        let config = &self.model.config;
        let capacity = positions.max(self.capacity * 2).min(config.context).max(positions);
        let row = config.kv_heads * config.head_dim * self.model.storage.bytes();
        let stream = &self.gpu.stream;
        let mut keys = Vec::with_capacity(config.layers);
        let mut values = Vec::with_capacity(config.layers);
        for layer in 0..config.layers {
            let (k, v) = (Buffer::new(stream, capacity * row)?, Buffer::new(stream, capacity * row)?);
            if self.len > 0 {
                for (new, old) in [(&k, &self.keys[layer]), (&v, &self.values[layer])] {
                    // SAFETY: both ranges lie inside live allocations on this stream.
                    unsafe {
                        cudarc::driver::result::memcpy_dtod_async(
                            new.ptr(),
                            old.ptr(),
                            self.len * row,
                            stream.cu_stream(),
                        )
                    }
                    .map_err(cuda_error("growing the KV cache"))?;
                }
            }
            keys.push(k);
            values.push(v);
        }
        self.keys = keys;
        self.values = values;
        self.capacity = capacity;
        Ok(())
    }

    /// Scratch for `rows` positions (reallocated, not copied, when it grows).
    pub(super) fn reserve_rows(&mut self, rows: usize) -> Result<(), LlmError> {
        if rows <= self.scratch.rows {
            return Ok(());
        }
        let c = &self.model.config;
        let size = self.model.storage.bytes();
        let stream = &self.gpu.stream;
        let qkv_width = (c.heads + 2 * c.kv_heads) * c.head_dim;
        self.scratch = Scratch::default(); // free before allocating more
        self.scratch = Scratch {
            rows,
            x: Some(Buffer::new(stream, rows * c.dim * 4)?),
            normed: Some(Buffer::new(stream, rows * c.dim * size)?),
            qkv: Some(Buffer::new(stream, rows * qkv_width * 4)?),
            q: Some(Buffer::new(stream, rows * c.heads * c.head_dim * size)?),
            mixed: Some(Buffer::new(stream, rows * c.heads * c.head_dim * size)?),
            gate_up: Some(Buffer::new(stream, rows * 2 * c.hidden * 4)?),
            activated: Some(Buffer::new(stream, rows * c.hidden * size)?),
            ids: Some(Buffer::new(stream, rows * 4)?),
            logits: Some(Buffer::new(stream, c.vocab * 4)?),
            argmax: Some(Buffer::new(stream, Gpu::argmax_scratch_bytes(c.vocab))?),
        };
        self.on_device = None;
        Ok(())
    }

    /// Runs `tokens` after the cached positions and leaves the last
    /// position's logits on the device.
    fn forward(&mut self, tokens: &[u32]) -> Result<(), LlmError> {
        let model = Arc::clone(&self.model);
        model.forward(tokens, self)
    }

    /// Runs `tokens` and picks the next token on the device; only its id
    /// comes back. Time shares go to `profile`.
    pub fn next_token(
        &mut self,
        tokens: &[u32],
        profile: &mut Profile,
        sampler: &mut Sampler,
    ) -> Result<u32, LlmError> {
        self.forward(tokens)?;
        let gpu = &self.gpu;
        self.timeline.mark(gpu, Category::Sampling)?;
        let logits = self.scratch.logits.as_ref().map_or(0, Buffer::ptr);
        let ids = self.scratch.ids.as_ref().map_or(0, Buffer::ptr);
        let vocab = Arg::Int(self.model.config.vocab as i32);
        if sampler.temperature() > 0.0 {
            let top_k = sampler.top_k().min(i32::MAX as usize) as i32;
            let draw = sampler.draw();
            gpu.launch(
                "sample_f32",
                (1, 1, 1),
                1024,
                0,
                &[
                    Arg::Ptr(logits),
                    vocab,
                    Arg::Float(sampler.temperature() as f32),
                    Arg::Int(top_k),
                    Arg::Float(draw),
                    Arg::Ptr(ids),
                ],
            )?;
        } else {
            let partial = self.scratch.argmax.as_ref().map_or(0, Buffer::ptr);
            gpu.argmax(logits, self.model.config.vocab, partial, ids)?;
        }
        let mut id = [0u8; 4];
        // SAFETY: `ids` holds at least one u32 written by the kernel above.
        unsafe {
            cudarc::driver::result::memcpy_dtoh_async(&mut id, ids, gpu.stream.cu_stream())
                .map_err(cuda_error("copying the token back"))?;
        }
        self.timeline.finish(gpu, profile)?;
        let token = u32::from_le_bytes(id);
        self.on_device = Some(token);
        Ok(token)
    }

    /// The last position's logits after running `tokens` (for checks against the CPU).
    pub fn logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>, LlmError> {
        let mut profile = Profile::default();
        self.forward(tokens)?;
        self.timeline.finish(&self.gpu, &mut profile)?;
        let logits = self.scratch.logits.as_ref().ok_or_else(|| LlmError::Device("no logits".into()))?;
        let bytes = logits.download(&self.gpu.stream)?;
        Ok(bytes
            .chunks_exact(4)
            .take(self.model.config.vocab)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}
