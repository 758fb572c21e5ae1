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
//!
//! The files follow the layering of the CPU model (`../model.rs`):
//! `device.rs` is the GPU layer (stream, kernels, cuBLAS handle, launch
//! helpers, buffers), `attention.rs` the attention core (naive and flash),
//! `model.rs` the weights and the forward pass, `state.rs` what each worker
//! owns (KV cache, scratch, event timeline). `kernels.rs` compiles our
//! kernels; `probe.rs` finds the CUDA libraries.

mod attention;
mod device;
pub mod kernels;
mod model;
pub mod probe;
mod state;

pub use attention::{attention, attention_path, AttentionScratch, AttentionShape, MAX_HEAD_DIM};
pub use device::{Arg, Buffer, Gpu, Operand, Storage};
pub use model::{unsupported, CudaModel};
pub use state::CudaState;
