//! The device layer: GPU 0's context and a worker's stream, the compiled
//! kernels and a cuBLAS handle ([`Gpu`]), with helpers to launch a kernel,
//! run a matrix product (cuBLAS, or the matrix-vector kernel for one row)
//! and pick the greedy token; device memory ([`Buffer`]) and the storage
//! types of weights and activations ([`Storage`]).
//!
//! Nothing here knows the model: callers pass device addresses and shapes.

use std::ffi::c_void;
use std::sync::Arc;

use candle_core::DType;
use cudarc::cublas::{result as blas, sys as blas_sys, CudaBlas};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg};

use super::kernels::{self, Kernels};
use super::probe;
use crate::engines::llm::LlmError;

pub(super) fn cuda_error(what: &str) -> impl FnOnce(cudarc::driver::DriverError) -> LlmError + '_ {
    move |error| LlmError::Device(format!("{what}: {error}"))
}

fn blas_error(what: &str) -> impl FnOnce(cudarc::cublas::result::CublasError) -> LlmError + '_ {
    move |error| LlmError::Device(format!("{what}: {error:?}"))
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
    pub(super) fn from_dtype(dtype: DType) -> Result<Storage, LlmError> {
        match dtype {
            DType::F32 => Ok(Storage::F32),
            DType::BF16 => Ok(Storage::Bf16),
            other => Err(LlmError::Input(format!("the CUDA path stores weights as f32 or bf16, not {other:?}"))),
        }
    }

    pub(super) fn bytes(self) -> usize {
        match self {
            Storage::F32 => 4,
            Storage::Bf16 => 2,
        }
    }

    pub(super) fn suffix(self) -> &'static str {
        match self {
            Storage::F32 => "f32",
            Storage::Bf16 => "bf16",
        }
    }

    pub(super) fn blas_type(self) -> blas_sys::cudaDataType {
        match self {
            Storage::F32 => blas_sys::cudaDataType::CUDA_R_32F,
            Storage::Bf16 => blas_sys::cudaDataType::CUDA_R_16BF,
        }
    }

    /// `values` in this type, as little-endian bytes.
    pub(super) fn encode(self, values: &[f32]) -> Vec<u8> {
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
    pub(super) bytes: usize,
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

/// The element type of f32 matrices in cuBLAS calls.
pub(super) const F32: blas_sys::cudaDataType = blas_sys::cudaDataType::CUDA_R_32F;

/// Logits per block of the greedy choice.
const ARGMAX_CHUNK: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

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
    fn argmax_scratch_covers_every_chunk() {
        assert_eq!(Gpu::argmax_scratch_bytes(1), 8);
        assert_eq!(Gpu::argmax_scratch_bytes(128_256), 32 * 8);
    }
}
