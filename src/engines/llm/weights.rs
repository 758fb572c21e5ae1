//! Where a model's tensors come from: seeded random values for the presets,
//! or the `*.safetensors` files of a Hugging Face checkpoint directory.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::LlmError;
use crate::engines::rng::SplitMix;

/// A source of named tensors.
pub enum WeightSource {
    /// Uniform random values derived from a seed and the tensor's name.
    Random {
        /// The engine's seed.
        seed: u64,
    },
    /// Tensors read from a checkpoint, by name.
    Checkpoint(HashMap<String, Tensor>),
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
        };
        Ok(tensor.to_dtype(dtype)?)
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
