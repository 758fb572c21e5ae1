//! The `llm` engine on NVIDIA GPUs: the same model, weights and operations as
//! on the CPU, with cuBLAS for the matrix products and our own kernels
//! (`kernels/*.cu`, compiled by NVRTC at first use) for everything else.
//!
//! CUDA is loaded at run time ([`probe`]), so the binary builds and runs on
//! machines without it. Weights are uploaded once per engine and shared by
//! its workers; each worker has its own stream, cuBLAS handle, KV cache and
//! scratch buffers. Per generated token only the sampled id comes back to
//! the host; the time shares are measured with CUDA events.
//!
//! Activations between blocks (the residual stream) are f32; matrix inputs
//! and the KV cache are in the weights' type; products accumulate in f32.

pub mod kernels;
pub mod probe;

use std::ffi::c_void;
use std::sync::Arc;
use std::time::Duration;

use candle_core::DType;
use cudarc::cublas::{result as blas, sys as blas_sys, CudaBlas};
use cudarc::driver::{CudaContext, CudaEvent, CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg};

use super::config::Config;
use super::model::{AttentionKind, Category, Profile};
use super::sampling::Sampler;
use super::weights::WeightSource;
use super::LlmError;
use kernels::Kernels;

/// Largest head size the kernels take.
pub const MAX_HEAD_DIM: usize = 128;

fn cuda_error(what: &str) -> impl FnOnce(cudarc::driver::DriverError) -> LlmError + '_ {
    move |error| LlmError::Device(format!("{what}: {error}"))
}

fn blas_error(what: &str) -> impl FnOnce(cudarc::cublas::result::CublasError) -> LlmError + '_ {
    move |error| LlmError::Device(format!("{what}: {error:?}"))
}

/// Why this configuration cannot run on the GPU, if it cannot.
pub fn unsupported(config: &Config) -> Option<String> {
    (config.head_dim > MAX_HEAD_DIM).then(|| {
        format!("the CUDA kernels take head sizes up to {MAX_HEAD_DIM}, and this model's is {}", config.head_dim)
    })
}

/// Storage type of weights, matrix inputs and the KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// 32-bit floats.
    F32,
    /// bfloat16.
    Bf16,
}

impl Storage {
    fn from_dtype(dtype: DType) -> Result<Storage, LlmError> {
        match dtype {
            DType::F32 => Ok(Storage::F32),
            DType::BF16 => Ok(Storage::Bf16),
            other => Err(LlmError::Input(format!("the CUDA path stores weights as f32 or bf16, not {other:?}"))),
        }
    }

    fn bytes(self) -> usize {
        match self {
            Storage::F32 => 4,
            Storage::Bf16 => 2,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Storage::F32 => "f32",
            Storage::Bf16 => "bf16",
        }
    }

    fn blas_type(self) -> blas_sys::cudaDataType {
        match self {
            Storage::F32 => blas_sys::cudaDataType::CUDA_R_32F,
            Storage::Bf16 => blas_sys::cudaDataType::CUDA_R_16BF,
        }
    }

    /// `values` in this type, as little-endian bytes.
    fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            Storage::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Storage::Bf16 => values.iter().flat_map(|v| half::bf16::from_f32(*v).to_bits().to_le_bytes()).collect(),
        }
    }
}

/// Device memory and its address.
pub struct Buffer {
    _memory: CudaSlice<u8>,
    ptr: u64,
    bytes: usize,
}

impl Buffer {
    /// Uninitialized device memory of `bytes` (at least 1).
    pub fn new(stream: &Arc<CudaStream>, bytes: usize) -> Result<Buffer, LlmError> {
        // SAFETY: the memory is written before it is read (by kernels or copies).
        let memory = unsafe { stream.alloc::<u8>(bytes.max(1)) }
            .map_err(cuda_error(&format!("allocating {bytes} bytes on the GPU")))?;
        let (ptr, _) = memory.device_ptr(stream);
        Ok(Buffer { _memory: memory, ptr, bytes })
    }

    /// Device memory holding `data`.
    pub fn upload(stream: &Arc<CudaStream>, data: &[u8]) -> Result<Buffer, LlmError> {
        let mut buffer = Buffer::new(stream, data.len())?;
        stream.memcpy_htod(data, &mut buffer._memory).map_err(cuda_error("copying to the GPU"))?;
        Ok(buffer)
    }

    /// The device address.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    /// Fills every byte with `byte` (tests poison outputs this way).
    pub fn fill(&mut self, stream: &Arc<CudaStream>, byte: u8) -> Result<(), LlmError> {
        let pattern = vec![byte; self.bytes];
        stream.memcpy_htod(&pattern, &mut self._memory).map_err(cuda_error("filling GPU memory"))
    }

    /// The contents, copied back.
    pub fn download(&self, stream: &Arc<CudaStream>) -> Result<Vec<u8>, LlmError> {
        let mut host = vec![0u8; self.bytes];
        stream.memcpy_dtoh(&self._memory, &mut host).map_err(cuda_error("copying from the GPU"))?;
        stream.synchronize().map_err(cuda_error("waiting for the GPU"))?;
        Ok(host)
    }
}

/// A kernel argument, kept alive until the launch.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    /// A device address.
    Ptr(u64),
    /// A 32-bit integer.
    Int(i32),
    /// A 32-bit float.
    Float(f32),
}

/// The GPU a worker uses: stream, kernels and cuBLAS handle.
pub struct Gpu {
    /// The context.
    pub context: Arc<CudaContext>,
    /// The worker's stream; everything runs on it in order.
    pub stream: Arc<CudaStream>,
    /// The compiled kernels.
    pub kernels: Arc<Kernels>,
    blas: CudaBlas,
}

/// One matrix of a cuBLAS product: address, element type, leading
/// dimension and the distance between the matrices of a batch (elements).
#[derive(Clone, Copy)]
pub struct Operand {
    ptr: u64,
    kind: blas_sys::cudaDataType,
    ld: usize,
    stride: usize,
}

impl Operand {
    /// A matrix at `ptr` of `storage` with leading dimension `ld`.
    pub fn new(ptr: u64, storage: Storage, ld: usize) -> Operand {
        Operand { ptr, kind: storage.blas_type(), ld, stride: 0 }
    }

    /// The same, as one of a batch `stride` elements apart.
    pub fn strided(self, stride: usize) -> Operand {
        Operand { stride, ..self }
    }
}

impl Gpu {
    /// A new stream and cuBLAS handle on GPU 0, with the kernels loaded.
    pub fn new() -> Result<Gpu, LlmError> {
        probe::cuda().map_err(LlmError::Device)?;
        let context = CudaContext::new(0).map_err(cuda_error("opening GPU 0"))?;
        // One stream per worker and no sharing between streams: cudarc's
        // event tracking would only add work to every launch.
        // SAFETY: called before any memory is allocated in this context by us.
        unsafe { context.disable_event_tracking() };
        let kernels = kernels::load(&context).map_err(LlmError::Device)?;
        let stream = context.new_stream().map_err(cuda_error("creating a stream"))?;
        let blas = CudaBlas::new(Arc::clone(&stream)).map_err(blas_error("creating a cuBLAS handle"))?;
        Ok(Gpu { context, stream, kernels, blas })
    }

    /// Runs kernel `name` on the stream.
    pub fn launch(
        &self,
        name: &str,
        grid: (u32, u32, u32),
        block: u32,
        shared: u32,
        args: &[Arg],
    ) -> Result<(), LlmError> {
        let function = self.kernels.get(name).map_err(LlmError::Device)?;
        let mut builder = self.stream.launch_builder(function);
        for arg in args {
            match arg {
                Arg::Ptr(p) => builder.arg(p),
                Arg::Int(i) => builder.arg(i),
                Arg::Float(f) => builder.arg(f),
            };
        }
        let config = LaunchConfig { grid_dim: grid, block_dim: (block, 1, 1), shared_mem_bytes: shared };
        // SAFETY: every kernel is called with the argument list its source declares.
        unsafe { builder.launch(config) }.map_err(cuda_error(&format!("launching {name}")))?;
        Ok(())
    }

    /// Row-major `C (rows × cols) = A (rows × k) · Bᵀ`, with B stored
    /// row-major `(cols × k)`, batched `batch` times, accumulating into C
    /// when `accumulate`. All strides in elements.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_bt(
        &self,
        rows: usize,
        cols: usize,
        k: usize,
        a: Operand,
        b: Operand,
        c: (u64, blas_sys::cudaDataType, usize, usize),
        batch: usize,
        accumulate: bool,
    ) -> Result<(), LlmError> {
        // Column-major view: Cᵀ (cols × rows) = B (cols × k, transposed from storage) · Aᵀ.
        self.gemm(blas_sys::cublasOperation_t::CUBLAS_OP_T, cols, rows, k, b, a, c, batch, accumulate)
    }

    /// Row-major `C (rows × cols) = A (rows × k) · B (k × cols)`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        rows: usize,
        cols: usize,
        k: usize,
        a: Operand,
        b: Operand,
        c: (u64, blas_sys::cudaDataType, usize, usize),
        batch: usize,
    ) -> Result<(), LlmError> {
        self.gemm(blas_sys::cublasOperation_t::CUBLAS_OP_N, cols, rows, k, b, a, c, batch, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        first_op: blas_sys::cublasOperation_t,
        m: usize,
        n: usize,
        k: usize,
        first: Operand,
        second: Operand,
        (c, c_type, ldc, stride_c): (u64, blas_sys::cudaDataType, usize, usize),
        batch: usize,
        accumulate: bool,
    ) -> Result<(), LlmError> {
        let alpha = 1.0f32;
        let beta = if accumulate { 1.0f32 } else { 0.0 };
        let int = |v: usize| i32::try_from(v).map_err(|_| LlmError::Input(format!("matrix size {v} is too large")));
        // SAFETY: the addresses point at live buffers of the sizes the callers
        // allocated for these shapes; alpha and beta are host values.
        unsafe {
            blas::gemm_strided_batched_ex(
                *self.blas.handle(),
                first_op,
                blas_sys::cublasOperation_t::CUBLAS_OP_N,
                int(m)?,
                int(n)?,
                int(k)?,
                (&alpha as *const f32).cast::<c_void>(),
                first.ptr as *const c_void,
                first.kind,
                int(first.ld)?,
                first.stride as i64,
                second.ptr as *const c_void,
                second.kind,
                int(second.ld)?,
                second.stride as i64,
                (&beta as *const f32).cast::<c_void>(),
                c as *mut c_void,
                c_type,
                int(ldc)?,
                stride_c as i64,
                int(batch)?,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(blas_error("cuBLAS matrix product"))
    }

    /// `y (rows × out, f32) = x (rows × input) · Wᵀ`, or `+=` with
    /// `accumulate`; W `(out × input)` and x in `storage`. One row (a
    /// decoding step) goes to the matrix-vector kernel, which streams the
    /// weights at close to the memory bandwidth; more rows go to cuBLAS.
    #[allow(clippy::too_many_arguments)]
    pub fn linear(
        &self,
        storage: Storage,
        rows: usize,
        out: usize,
        input: usize,
        (x, w, y): (u64, u64, u64),
        accumulate: bool,
    ) -> Result<(), LlmError> {
        if rows == 1 && input % 8 == 0 {
            let int = |v: usize| Arg::Int(v as i32);
            return self.launch(
                &format!("gemv_{}", storage.suffix()),
                (out.div_ceil(8) as u32, 1, 1),
                256,
                0,
                &[Arg::Ptr(w), Arg::Ptr(x), Arg::Ptr(y), int(out), int(input), int(usize::from(accumulate))],
            );
        }
        let (x, w) = (Operand::new(x, storage, input), Operand::new(w, storage, input));
        self.matmul_bt(rows, out, input, x, w, (y, F32, out, 0), 1, accumulate)
    }

    /// The index of the largest of `n` f32 logits (the lowest on ties, NaN
    /// never) into `out[0]`, over many blocks; `partial` holds
    /// [`Gpu::argmax_scratch_bytes`] bytes.
    pub fn argmax(&self, logits: u64, n: usize, partial: u64, out: u64) -> Result<(), LlmError> {
        let chunks = n.div_ceil(ARGMAX_CHUNK);
        let indices = partial + (chunks * 4) as u64;
        let int = |v: usize| Arg::Int(v as i32);
        self.launch(
            "argmax_chunks_f32",
            (chunks as u32, 1, 1),
            1024,
            0,
            &[Arg::Ptr(logits), int(n), int(ARGMAX_CHUNK), Arg::Ptr(partial), Arg::Ptr(indices)],
        )?;
        self.launch(
            "argmax_merge_f32",
            (1, 1, 1),
            32,
            0,
            &[Arg::Ptr(partial), Arg::Ptr(indices), int(chunks), Arg::Ptr(out)],
        )
    }

    /// Scratch bytes [`Gpu::argmax`] needs for `n` logits.
    pub fn argmax_scratch_bytes(n: usize) -> usize {
        n.div_ceil(ARGMAX_CHUNK) * 8
    }

    /// Waits for the stream and reports any error of earlier launches.
    pub fn synchronize(&self) -> Result<(), LlmError> {
        self.stream.synchronize().map_err(cuda_error("running on the GPU"))
    }
}

const F32: blas_sys::cudaDataType = blas_sys::cudaDataType::CUDA_R_32F;

/// Logits per block of the greedy choice.
const ARGMAX_CHUNK: usize = 4096;

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
    config: Config,
    storage: Storage,
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
}

/// Activations of one forward pass, grown to the longest seen.
#[derive(Default)]
struct Scratch {
    rows: usize,
    x: Option<Buffer>,
    normed: Option<Buffer>,
    qkv: Option<Buffer>,
    q: Option<Buffer>,
    mixed: Option<Buffer>,
    gate_up: Option<Buffer>,
    activated: Option<Buffer>,
    ids: Option<Buffer>,
    logits: Option<Buffer>,
    argmax: Option<Buffer>,
}

/// Events at category boundaries, timed after the step.
#[derive(Default)]
struct Timeline {
    events: Vec<CudaEvent>,
    categories: Vec<Category>,
    used: usize,
}

impl Timeline {
    /// From here on the stream's work counts as `category`.
    fn mark(&mut self, gpu: &Gpu, category: Category) -> Result<(), LlmError> {
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
    gpu: Gpu,
    capacity: usize,
    len: usize,
    keys: Vec<Buffer>,
    values: Vec<Buffer>,
    scratch: Scratch,
    attention: AttentionScratch,
    timeline: Timeline,
    /// The token the device sampled last, already in `ids[0]`.
    on_device: Option<u32>,
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
    fn reserve(&mut self, positions: usize) -> Result<(), LlmError> {
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
                        cudarc::driver::result::memcpy_dtod_async(new.ptr, old.ptr, self.len * row, stream.cu_stream())
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

    fn reserve_rows(&mut self, rows: usize) -> Result<(), LlmError> {
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
        let seq = tokens.len();
        let offset = self.len;
        let model = Arc::clone(&self.model);
        let c = &model.config;
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
        self.reserve(offset + seq)?;
        self.reserve_rows(seq)?;
        self.timeline.used = 0; // drop the marks of a step that failed half-way
        let storage = model.storage;
        let suffix = storage.suffix();
        let s = &self.scratch;
        let buffer = |b: &Option<Buffer>| b.as_ref().map_or(0, Buffer::ptr);
        let (x, normed, qkv, q, mixed) =
            (buffer(&s.x), buffer(&s.normed), buffer(&s.qkv), buffer(&s.q), buffer(&s.mixed));
        let (gate_up, activated, ids, logits) =
            (buffer(&s.gate_up), buffer(&s.activated), buffer(&s.ids), buffer(&s.logits));
        let gpu = &self.gpu;
        let timeline = &mut self.timeline;
        let int = |v: usize| Arg::Int(v as i32);

        timeline.mark(gpu, Category::Embedding)?;
        if !(seq == 1 && self.on_device == Some(tokens[0])) {
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
            &[Arg::Ptr(model.embedding.ptr()), Arg::Ptr(ids), Arg::Ptr(x), int(c.dim)],
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
        for (index, layer) in model.layers.iter().enumerate() {
            timeline.mark(gpu, Category::Norms)?;
            norm(&layer.input_norm, seq, x)?;
            timeline.mark(gpu, Category::Projections)?;
            gpu.linear(storage, seq, qkv_width, c.dim, (normed, layer.qkv.ptr(), qkv), false)?;
            timeline.mark(gpu, Category::Attention)?;
            let (k_cache, v_cache) = (self.keys[index].ptr(), self.values[index].ptr());
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
                    Arg::Ptr(model.inverse_frequencies.ptr()),
                    int(offset),
                    int(c.heads),
                    int(c.kv_heads),
                    int(c.head_dim),
                ],
            )?;
            let shape = AttentionShape { seq, offset, heads: c.heads, kv_heads: c.kv_heads, head_dim: c.head_dim };
            attention(gpu, model.attention, storage, &shape, (q, k_cache, v_cache, mixed), &mut self.attention)?;
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
        norm(&model.norm, 1, x + ((seq - 1) * c.dim * 4) as u64)?;
        timeline.mark(gpu, Category::Head)?;
        let head = model.head.as_ref().unwrap_or(&model.embedding);
        gpu.linear(storage, 1, c.vocab, c.dim, (normed, head.ptr(), logits), false)?;
        self.len = offset + seq;
        self.on_device = None;
        Ok(())
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

    #[test]
    fn weights_are_encoded_as_the_host_rounds_them() {
        let values = [1.0f32, -2.5, 1.0 + 1.0 / 256.0, 3.0e-3];
        let bytes = Storage::Bf16.encode(&values);
        let back: Vec<f32> = bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
        let expected: Vec<f32> = values.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect();
        assert_eq!(back, expected);
        assert_eq!(Storage::F32.encode(&values).len(), 16);
    }

    #[test]
    fn head_sizes_past_the_kernels_are_refused() {
        let mut config = Config::preset("tiny").unwrap();
        assert_eq!(unsupported(&config), None);
        config.head_dim = 256;
        assert!(unsupported(&config).unwrap().contains("up to 128"));
    }

    #[test]
    fn argmax_scratch_covers_every_chunk() {
        assert_eq!(Gpu::argmax_scratch_bytes(1), 8);
        assert_eq!(Gpu::argmax_scratch_bytes(128_256), 32 * 8);
    }
}
