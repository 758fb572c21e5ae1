//! Where a model's tensors come from: seeded random values for the presets,
//! the `*.safetensors` files of a Hugging Face checkpoint directory, or a
//! GGUF file; and how a weight matrix is stored once loaded.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::gguf::{self, Gguf, TensorType};
use super::quant::{QMatrix, QuantType};
use super::LlmError;
use crate::engines::rng::SplitMix;

/// How a model's weight matrices are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// A candle tensor of this type (f32, f16 or bf16).
    Dense(DType),
    /// Blocks of a quantized type.
    Quant(QuantType),
}

impl Storage {
    /// The `dtype` option's value.
    pub fn parse(name: &str) -> Option<Storage> {
        Some(match name {
            "f32" => Storage::Dense(DType::F32),
            "f16" => Storage::Dense(DType::F16),
            "bf16" => Storage::Dense(DType::BF16),
            "q8_0" => Storage::Quant(QuantType::Q8_0),
            "q4_0" => Storage::Quant(QuantType::Q4_0),
            "q4_k" => Storage::Quant(QuantType::Q4K),
            "q6_k" => Storage::Quant(QuantType::Q6K),
            _ => return None,
        })
    }

    /// Why a model of these row lengths cannot be stored so, if it cannot.
    pub fn unfit(self, row_lengths: &[usize]) -> Option<String> {
        let Storage::Quant(kind) = self else { return None };
        let block = kind.block_elements();
        row_lengths.iter().find(|&&n| n % block != 0).map(|n| {
            format!("{} stores rows in blocks of {block} values, and this model has rows of {n}", kind.name())
        })
    }
}

/// A loaded weight matrix `(out, in)`.
#[derive(Clone)]
pub enum Weight {
    /// A dense candle tensor.
    Dense(Tensor),
    /// Quantized blocks, multiplied as they are.
    Quant(Arc<QMatrix>),
}

impl Weight {
    /// Bytes the matrix occupies: what a product reads.
    pub fn bytes(&self) -> usize {
        match self {
            Weight::Dense(tensor) => tensor.elem_count() * tensor.dtype().size_in_bytes(),
            Weight::Quant(matrix) => matrix.bytes(),
        }
    }

    /// The stored type's name.
    pub fn type_name(&self) -> String {
        match self {
            Weight::Dense(tensor) => format!("{:?}", tensor.dtype()).to_lowercase(),
            Weight::Quant(matrix) => matrix.kind().name().to_lowercase(),
        }
    }
}

/// A GGUF file's tensors, served by the Hugging Face names the model asks for.
pub struct GgufSource {
    path: PathBuf,
    file: Gguf,
    heads: usize,
    kv_heads: usize,
    /// Whether llama.cpp's converter interleaved the q and k rows (every
    /// supported architecture but Qwen2, whose rotary is on halves).
    interleaved: bool,
}

/// A source of named tensors.
pub enum WeightSource {
    /// Uniform random values derived from a seed and the tensor's name.
    Random {
        /// The engine's seed.
        seed: u64,
    },
    /// Tensors read from a checkpoint, by name.
    Checkpoint(HashMap<String, Tensor>),
    /// A GGUF file, read tensor by tensor as the model loads.
    Gguf(GgufSource),
}

impl WeightSource {
    /// Reads every safetensors file of a checkpoint directory, each checked
    /// for truncation first.
    pub fn checkpoint(dir: &Path) -> Result<WeightSource, LlmError> {
        let mut tensors = HashMap::new();
        for file in safetensors_files(dir)? {
            check_safetensors(&file)?;
            let loaded = candle_core::safetensors::load(&file, &Device::Cpu)
                .map_err(|error| LlmError::Checkpoint(format!("{}: {error}", file.display())))?;
            tensors.extend(loaded);
        }
        Ok(WeightSource::Checkpoint(tensors))
    }

    /// A GGUF file, parsed and checked (its tensors are read as the model loads).
    pub fn gguf(path: &Path) -> Result<(super::Config, WeightSource), LlmError> {
        let file = Gguf::open(path)?;
        let mut config = file.config().map_err(|why| LlmError::Checkpoint(format!("{}: {why}", path.display())))?;
        config.rope_factors = gguf::rope_factors(path, &file)?;
        let interleaved = file.architecture().map_err(LlmError::Checkpoint)? != gguf::QWEN2;
        let source =
            GgufSource { path: path.to_path_buf(), file, heads: config.heads, kv_heads: config.kv_heads, interleaved };
        Ok((config, WeightSource::Gguf(source)))
    }

    /// The weight matrix `name` with `shape (out, in)`, stored as `storage`
    /// (a GGUF file's matrices stay in the types the file stores).
    pub fn matrix(&self, name: &str, shape: [usize; 2], storage: Storage) -> Result<Weight, LlmError> {
        if let WeightSource::Gguf(source) = self {
            return source.tensor(name, &shape);
        }
        match storage {
            Storage::Dense(dtype) => Ok(Weight::Dense(self.get(name, &shape, dtype)?)),
            Storage::Quant(kind) => {
                let values = self.get(name, &shape, DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                Ok(Weight::Quant(Arc::new(QMatrix::quantize(kind, &values, shape[0], shape[1])?)))
            }
        }
    }

    /// The tensor `name` with `shape`, converted to `dtype`.
    ///
    /// Random matrices are uniform with the variance of a unit-variance
    /// input kept through a product (`1/fan_in`); vectors (norm weights) are
    /// ones, as a freshly initialized model has them.
    pub fn get(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor, LlmError> {
        let tensor = match self {
            WeightSource::Random { seed } => {
                let count: usize = shape.iter().product();
                let values = if shape.len() == 1 {
                    vec![1.0_f32; count]
                } else {
                    let fan_in = shape.last().copied().unwrap_or(1).max(1) as f32;
                    let bound = (3.0 / fan_in).sqrt();
                    let mut rng = SplitMix::new(*seed ^ fnv1a(name));
                    (0..count).map(|_| (rng.next_f32() * 2.0 - 1.0) * bound).collect()
                };
                Tensor::from_vec(values, shape, &Device::Cpu)?
            }
            WeightSource::Checkpoint(tensors) => {
                let tensor = tensors
                    .get(name)
                    .ok_or_else(|| LlmError::Checkpoint(format!("the checkpoint has no tensor `{name}`")))?;
                if tensor.dims() != shape {
                    return Err(LlmError::Checkpoint(format!(
                        "tensor `{name}` has shape {:?}, but config.json implies {shape:?}",
                        tensor.dims()
                    )));
                }
                tensor.clone()
            }
            WeightSource::Gguf(source) => match source.tensor(name, shape)? {
                Weight::Dense(tensor) => tensor.reshape(shape)?,
                Weight::Quant(matrix) => Tensor::from_vec(matrix.dequantize(), shape, &Device::Cpu)?,
            },
        };
        Ok(tensor.to_dtype(dtype)?)
    }
}

impl GgufSource {
    /// The tensor of Hugging Face name `name` and `shape` (`(out, in)` for
    /// a matrix), as stored; q and k projections back in rotate-half order.
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Weight, LlmError> {
        let fail = |what: String| LlmError::Checkpoint(format!("{}: {what}", self.path.display()));
        let gguf_name = gguf::gguf_name(name).ok_or_else(|| fail(format!("no GGUF tensor stands for `{name}`")))?;
        let info = self.file.tensors.get(&gguf_name).ok_or_else(|| fail(format!("the file has no tensor `{gguf_name}`")))?;
        let expected: Vec<usize> = shape.iter().rev().copied().collect();
        if info.dims != expected {
            return Err(fail(format!("tensor `{gguf_name}` has shape {:?}, the model needs {expected:?}", info.dims)));
        }
        let (rows, cols) = (shape[0], shape.get(1).copied().unwrap_or(1));
        let mut bytes = gguf::read_tensor(&self.path, info)?;
        let heads = if !self.interleaved {
            None
        } else if gguf_name.ends_with("attn_q.weight") {
            Some(self.heads)
        } else if gguf_name.ends_with("attn_k.weight") {
            Some(self.kv_heads)
        } else {
            None
        };
        if let Some(heads) = heads {
            bytes = gguf::unpermute_rows(&bytes, rows, heads);
        }
        let dense = |dtype: DType| -> Result<Weight, LlmError> {
            Ok(Weight::Dense(Tensor::from_raw_buffer(&bytes, dtype, shape, &Device::Cpu)?))
        };
        match info.kind {
            TensorType::F32 => dense(DType::F32),
            TensorType::F16 => dense(DType::F16),
            TensorType::BF16 => dense(DType::BF16),
            TensorType::Quant(kind) => Ok(Weight::Quant(Arc::new(
                QMatrix::from_blocks(kind, rows, cols, bytes).map_err(|error| fail(format!("`{gguf_name}`: {error}")))?,
            ))),
        }
    }
}

/// The `*.safetensors` files of a checkpoint directory, in name order.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>, LlmError> {
    let entries =
        std::fs::read_dir(dir).map_err(|error| LlmError::Checkpoint(format!("{}: {error}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(LlmError::Checkpoint(format!("{} holds no *.safetensors file", dir.display())));
    }
    Ok(files)
}

/// Checks a safetensors file without loading it: the header parses, names
/// a known dtype for every tensor, and the file is long enough for every
/// tensor's data (a truncated download fails here, before anything runs).
pub fn check_safetensors(path: &Path) -> Result<(), LlmError> {
    let fail = |what: String| LlmError::Checkpoint(format!("{}: {what}", path.display()));
    let mut file = std::fs::File::open(path).map_err(|error| fail(error.to_string()))?;
    let file_len = file.metadata().map_err(|error| fail(error.to_string()))?.len();
    let mut prefix = [0_u8; 8];
    file.read_exact(&mut prefix).map_err(|_| fail("too short to be a safetensors file".into()))?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > 100_000_000 || 8 + header_len > file_len {
        return Err(fail(format!("header of {header_len} bytes does not fit in a {file_len}-byte file")));
    }
    let mut header = vec![0_u8; header_len as usize];
    file.read_exact(&mut header).map_err(|error| fail(error.to_string()))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|error| fail(format!("header is not JSON: {error}")))?;
    let data_len = file_len - 8 - header_len;
    for (name, info) in &header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info.get("dtype").and_then(|d| d.as_str()).unwrap_or("");
        if !matches!(dtype, "F32" | "F16" | "BF16" | "F64" | "I64" | "U8" | "U32") {
            return Err(fail(format!("tensor `{name}` has unsupported dtype `{dtype}`")));
        }
        let end = info
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .and_then(|o| o.get(1))
            .and_then(|e| e.as_u64())
            .ok_or_else(|| fail(format!("tensor `{name}` has no data_offsets")))?;
        if end > data_len {
            return Err(fail(format!(
                "truncated: tensor `{name}` ends at byte {end} of the data, which holds {data_len}"
            )));
        }
    }
    Ok(())
}

/// FNV-1a hash of a name, to give every tensor its own random stream.
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
