//! GGUF model files, read and checked by our own parser: the header, the
//! metadata, every tensor's name, shape, type and place in the file. Nothing
//! a file says is trusted before it is checked against the file's length, so
//! a truncated or mangled file is an error that says where, never a panic or
//! an allocation the size of a lie.
//!
//! What is read: GGUF versions 2 and 3, little-endian, the metadata value
//! types of the specification, and the tensor types [`TensorType`] names.
//! [`GgufModel`] turns a llama-architecture file (llama, mistral, or qwen2
//! with its q, k and v biases) into a [`Config`] and
//! serves its tensors under the Hugging Face names the model loads by.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::config::Config;
use super::quant::QuantType;
use super::LlmError;

/// `GGUF` as a little-endian u32.
const MAGIC: u32 = 0x4655_4747;
/// Alignment of the tensor data when the file does not name one.
const DEFAULT_ALIGNMENT: u64 = 32;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    /// Any of the integer types, widened.
    Int(i128),
    /// f32 or f64.
    Float(f64),
    /// A bool.
    Bool(bool),
    /// A UTF-8 string.
    Text(String),
    /// An array (kept only as its length: vocabularies are not needed here).
    Array(u64),
}

/// The stored type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorType {
    /// 32-bit floats.
    F32,
    /// IEEE half floats.
    F16,
    /// bfloat16.
    BF16,
    /// A block-quantized type.
    Quant(QuantType),
}

impl TensorType {
    /// The GGML type id, or the reason it is refused.
    fn from_id(id: u32) -> Result<TensorType, String> {
        Ok(match id {
            0 => TensorType::F32,
            1 => TensorType::F16,
            30 => TensorType::BF16,
            2 => TensorType::Quant(QuantType::Q4_0),
            8 => TensorType::Quant(QuantType::Q8_0),
            12 => TensorType::Quant(QuantType::Q4K),
            14 => TensorType::Quant(QuantType::Q6K),
            3 | 6 | 7 | 9 | 10 | 11 | 13 | 15 | 16..=29 | 31..=41 => {
                return Err(format!(
                    "tensor type {} (id {id}) is not supported; phasebench reads F32, F16, BF16, Q4_0, Q8_0, Q4_K and Q6_K",
                    ggml_name(id)
                ))
            }
            _ => return Err(format!("unknown tensor type id {id}")),
        })
    }

    /// Elements per block and bytes per block.
    pub fn block(self) -> (usize, usize) {
        match self {
            TensorType::F32 => (1, 4),
            TensorType::F16 | TensorType::BF16 => (1, 2),
            TensorType::Quant(kind) => (kind.block_elements(), kind.block_bytes()),
        }
    }

    /// The name llama.cpp gives the type.
    pub fn name(self) -> &'static str {
        match self {
            TensorType::F32 => "F32",
            TensorType::F16 => "F16",
            TensorType::BF16 => "BF16",
            TensorType::Quant(kind) => kind.name(),
        }
    }
}

/// GGML's name of a type id, for messages.
fn ggml_name(id: u32) -> &'static str {
    match id {
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        13 => "Q5_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        _ => "?",
    }
}

/// One tensor's entry in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Shape as GGUF writes it: the innermost (row) length first.
    pub dims: Vec<usize>,
    /// Stored type.
    pub kind: TensorType,
    /// Absolute byte offset of the data in the file.
    pub start: u64,
    /// Bytes of data.
    pub bytes: u64,
}

/// A parsed GGUF file: metadata and tensor entries, all checked against the
/// file's length.
#[derive(Debug)]
pub struct Gguf {
    /// Metadata by key.
    pub meta: HashMap<String, MetaValue>,
    /// Tensors by name.
    pub tensors: HashMap<String, TensorInfo>,
}

/// A reader that knows how many bytes are left, so no length read from the
/// file can make it allocate more than the file holds.
struct Bounded<R> {
    inner: R,
    left: u64,
    at: u64,
}

impl<R: Read> Bounded<R> {
    fn bytes(&mut self, count: u64, what: &str) -> Result<Vec<u8>, String> {
        if count > self.left {
            return Err(format!(
                "truncated: {what} at byte {} needs {count} bytes, the file has {} left",
                self.at, self.left
            ));
        }
        let mut buffer = vec![0; count as usize];
        self.inner.read_exact(&mut buffer).map_err(|error| format!("reading {what} at byte {}: {error}", self.at))?;
        self.left -= count;
        self.at += count;
        Ok(buffer)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let bytes = self.bytes(N as u64, what)?;
        let mut array = [0; N];
        array.copy_from_slice(&bytes);
        Ok(array)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let length = self.u64(what)?;
        let bytes = self.bytes(length, what)?;
        String::from_utf8(bytes).map_err(|_| format!("{what} at byte {} is not UTF-8", self.at))
    }

    /// A value of type `kind`; arrays are skipped over, item by item.
    fn value(&mut self, kind: u32, key: &str, depth: usize) -> Result<MetaValue, String> {
        let what = format!("the value of `{key}`");
        Ok(match kind {
            0 => MetaValue::Int(self.array::<1>(&what)?[0].into()),
            1 => MetaValue::Int((self.array::<1>(&what)?[0] as i8).into()),
            2 => MetaValue::Int(u16::from_le_bytes(self.array(&what)?).into()),
            3 => MetaValue::Int(i16::from_le_bytes(self.array(&what)?).into()),
            4 => MetaValue::Int(self.u32(&what)?.into()),
            5 => MetaValue::Int(i32::from_le_bytes(self.array(&what)?).into()),
            6 => MetaValue::Float(f32::from_le_bytes(self.array(&what)?).into()),
            7 => match self.array::<1>(&what)?[0] {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                other => return Err(format!("{what} is a bool of value {other}")),
            },
            8 => MetaValue::Text(self.string(&what)?),
            9 => {
                if depth > 2 {
                    return Err(format!("{what}: arrays nested more than three deep"));
                }
                let item = self.u32(&what)?;
                let count = self.u64(&what)?;
                // Every item takes a byte at least: a count beyond the file is a lie.
                if count > self.left {
                    return Err(format!("{what}: an array of {count} items cannot fit in the {} bytes left", self.left));
                }
                for _ in 0..count {
                    self.value(item, key, depth + 1)?;
                }
                MetaValue::Array(count)
            }
            10 => MetaValue::Int(self.u64(&what)?.into()),
            11 => MetaValue::Int(i64::from_le_bytes(self.array(&what)?).into()),
            12 => MetaValue::Float(f64::from_le_bytes(self.array(&what)?)),
            other => return Err(format!("{what} has unknown value type {other}")),
        })
    }
}

impl Gguf {
    /// Parses the file at `path`.
    pub fn open(path: &Path) -> Result<Gguf, LlmError> {
        let fail = |what: String| LlmError::Checkpoint(format!("{}: {what}", path.display()));
        let file = File::open(path).map_err(|error| fail(error.to_string()))?;
        let length = file.metadata().map_err(|error| fail(error.to_string()))?.len();
        Gguf::parse(BufReader::new(file), length).map_err(fail)
    }

    /// Parses a GGUF image of `length` bytes.
    pub fn parse(reader: impl Read, length: u64) -> Result<Gguf, String> {
        let mut input = Bounded { inner: reader, left: length, at: 0 };
        if input.u32("the magic number").map_err(|_| "too short to be a GGUF file".to_string())? != MAGIC {
            return Err("not a GGUF file (it does not start with `GGUF`)".into());
        }
        let version = input.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(format!("GGUF version {version} is not supported (2 and 3 are)"));
        }
        let tensor_count = input.u64("the tensor count")?;
        let meta_count = input.u64("the metadata count")?;
        // A tensor entry or a metadata pair takes more than 8 bytes.
        if tensor_count.saturating_add(meta_count).saturating_mul(8) > input.left {
            return Err(format!(
                "{tensor_count} tensors and {meta_count} metadata pairs cannot fit in a {length}-byte file"
            ));
        }
        let mut meta = HashMap::new();
        for _ in 0..meta_count {
            let key = input.string("a metadata key")?;
            let kind = input.u32(&format!("the type of `{key}`"))?;
            let value = input.value(kind, &key, 0)?;
            if meta.insert(key.clone(), value).is_some() {
                return Err(format!("metadata key `{key}` appears twice"));
            }
        }
        let alignment = match meta.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(MetaValue::Int(n)) if *n > 0 && *n <= 1 << 20 && (*n as u64).is_power_of_two() => *n as u64,
            Some(other) => return Err(format!("general.alignment must be a power of two, not {other:?}")),
        };
        let mut entries = Vec::new();
        for index in 0..tensor_count {
            let name = input.string(&format!("the name of tensor {index}"))?;
            let rank = input.u32(&format!("the rank of `{name}`"))?;
            if rank == 0 || rank > 4 {
                return Err(format!("tensor `{name}` has {rank} dimensions (1 to 4 are allowed)"));
            }
            let mut dims = Vec::new();
            for _ in 0..rank {
                let dim = input.u64(&format!("the shape of `{name}`"))?;
                if dim == 0 || dim > length.saturating_mul(8) {
                    return Err(format!("tensor `{name}` has a dimension of {dim}"));
                }
                dims.push(dim as usize);
            }
            let kind = TensorType::from_id(input.u32(&format!("the type of `{name}`"))?)
                .map_err(|reason| format!("tensor `{name}`: {reason}"))?;
            let offset = input.u64(&format!("the offset of `{name}`"))?;
            entries.push((name, dims, kind, offset));
        }
        let data_start = input.at.div_ceil(alignment) * alignment;
        let mut tensors = HashMap::new();
        for (name, dims, kind, offset) in entries {
            let elements = dims.iter().try_fold(1_u64, |acc, &d| acc.checked_mul(d as u64));
            let (per_block, block_bytes) = kind.block();
            let Some(elements) = elements.filter(|&e| e <= length.saturating_mul(8)) else {
                return Err(format!("tensor `{name}`: a shape of {dims:?} is larger than the file"));
            };
            if dims[0] % per_block != 0 {
                return Err(format!(
                    "tensor `{name}`: rows of {} elements are not whole {}-element blocks of {}",
                    dims[0],
                    per_block,
                    kind.name()
                ));
            }
            let bytes = elements / per_block as u64 * block_bytes as u64;
            if offset % alignment != 0 {
                return Err(format!("tensor `{name}`: offset {offset} is not a multiple of the alignment {alignment}"));
            }
            let start = data_start.saturating_add(offset);
            if start.saturating_add(bytes) > length {
                return Err(format!(
                    "truncated: tensor `{name}` ({} {:?}) needs bytes {start}..{}, the file has {length}",
                    kind.name(),
                    dims,
                    start.saturating_add(bytes)
                ));
            }
            if tensors.insert(name.clone(), TensorInfo { dims, kind, start, bytes }).is_some() {
                return Err(format!("tensor `{name}` appears twice"));
            }
        }
        Ok(Gguf { meta, tensors })
    }

    fn int(&self, key: &str) -> Result<Option<usize>, String> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(MetaValue::Int(n)) if *n >= 0 && *n <= u32::MAX as i128 => Ok(Some(*n as usize)),
            Some(other) => Err(format!("metadata `{key}` should be a count, not {other:?}")),
        }
    }

    fn float(&self, key: &str) -> Result<Option<f64>, String> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(MetaValue::Float(x)) if x.is_finite() => Ok(Some(*x)),
            Some(MetaValue::Int(n)) => Ok(Some(*n as f64)),
            Some(other) => Err(format!("metadata `{key}` should be a number, not {other:?}")),
        }
    }

    fn required(&self, key: &str) -> Result<usize, String> {
        self.int(key)?.ok_or_else(|| format!("metadata `{key}` is missing"))
    }

    /// The model architecture, refused unless the llama block.
    pub fn architecture(&self) -> Result<&str, String> {
        match self.meta.get("general.architecture") {
            Some(MetaValue::Text(arch)) if SUPPORTED_ARCHITECTURES.contains(&arch.as_str()) => Ok(arch),
            Some(MetaValue::Text(arch)) => Err(format!(
                "architecture `{arch}` is not supported; phasebench runs the llama block ({})",
                SUPPORTED_ARCHITECTURES.join(", ")
            )),
            _ => Err("metadata `general.architecture` is missing".into()),
        }
    }

    /// The model configuration, from the metadata, checked against the
    /// shapes of the tensors.
    pub fn config(&self) -> Result<Config, String> {
        let arch = self.architecture()?;
        let key = |name: &str| format!("{arch}.{name}");
        let dim = self.required(&key("embedding_length"))?;
        let heads = self.required(&key("attention.head_count"))?;
        let layers = self.required(&key("block_count"))?;
        let hidden = self.required(&key("feed_forward_length"))?;
        if dim == 0 || heads == 0 || layers == 0 || hidden == 0 {
            return Err(format!("{arch}: embedding_length, head_count, block_count and feed_forward_length must be positive"));
        }
        let kv_heads = self.int(&key("attention.head_count_kv"))?.unwrap_or(heads);
        if kv_heads == 0 || heads % kv_heads != 0 {
            return Err(format!("{kv_heads} key/value heads do not divide {heads} query heads"));
        }
        let head_dim = match self.int(&key("attention.key_length"))? {
            Some(n) => n,
            None if dim % heads == 0 => dim / heads,
            None => return Err(format!("{heads} heads do not divide the width {dim}")),
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(format!("a head width of {head_dim} cannot be rotated (it must be even)"));
        }
        if let Some(rotated) = self.int(&key("rope.dimension_count"))? {
            if rotated != head_dim {
                return Err(format!("rope.dimension_count {rotated} differs from the head width {head_dim}: partial rotary is not supported"));
            }
        }
        if let Some(MetaValue::Text(kind)) = self.meta.get(&key("rope.scaling.type")) {
            if kind != "none" {
                return Err(format!("rope scaling `{kind}` is not supported"));
            }
        }
        let embedding = self.tensors.get("token_embd.weight").ok_or("the file has no tensor `token_embd.weight`")?;
        let vocab = match embedding.dims.as_slice() {
            [width, vocab] if *width == dim => *vocab,
            other => {
                return Err(format!(
                    "token_embd.weight has shape {other:?}, but embedding_length {dim} implies [{dim}, vocab]"
                ))
            }
        };
        let config = Config {
            dim,
            hidden,
            layers,
            heads,
            kv_heads,
            head_dim,
            vocab,
            eps: self.float(&key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5),
            rope_theta: self.float(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            rope_scaling: None,
            // Read by `GgufSource` once the file is open (`rope_freqs.weight`).
            rope_factors: None,
            context: self.int(&key("context_length"))?.unwrap_or(2048).max(1),
            tied: !self.tensors.contains_key("output.weight"),
            // Qwen2's q, k and v projections add a bias; `check_shapes`
            // requires the three vectors of every layer.
            qkv_bias: arch == QWEN2,
        };
        // `float` gives finite numbers only.
        if config.eps <= 0.0 || config.rope_theta <= 0.0 {
            return Err("rms epsilon and rope.freq_base must be positive".into());
        }
        self.check_shapes(&config)?;
        Ok(config)
    }

    /// Every tensor the model loads is present with the shape the metadata implies.
    fn check_shapes(&self, config: &Config) -> Result<(), String> {
        if let Some(info) = self.tensors.get(ROPE_FACTORS) {
            if info.dims != [config.head_dim / 2] || info.kind != TensorType::F32 {
                return Err(format!(
                    "`{ROPE_FACTORS}` is {} {:?}; the rotary factors of heads of {} are F32 [{}]",
                    info.kind.name(),
                    info.dims,
                    config.head_dim,
                    config.head_dim / 2
                ));
            }
        }
        for (hf, shape) in config.tensor_shapes() {
            let name = gguf_name(&hf).ok_or_else(|| format!("no GGUF name for `{hf}`"))?;
            let Some(info) = self.tensors.get(&name) else {
                return Err(format!("the file has no tensor `{name}`"));
            };
            let expected: Vec<usize> = shape.iter().rev().copied().collect();
            if info.dims != expected {
                return Err(format!(
                    "tensor `{name}` has shape {:?}, but the metadata implies {expected:?}",
                    info.dims
                ));
            }
            if shape.len() == 1 && !matches!(info.kind, TensorType::F32 | TensorType::F16 | TensorType::BF16) {
                return Err(format!("tensor `{name}` is a vector stored as {}", info.kind.name()));
            }
        }
        Ok(())
    }
}

/// The tensor of Llama 3's rotary frequency divisors, one per pair.
pub const ROPE_FACTORS: &str = "rope_freqs.weight";

/// Reads the rotary frequency divisors of `config`'s file, if it has them:
/// positive, finite f32 values.
pub fn rope_factors(path: &Path, file: &Gguf) -> Result<Option<Vec<f64>>, LlmError> {
    let Some(info) = file.tensors.get(ROPE_FACTORS) else { return Ok(None) };
    let bytes = read_tensor(path, info)?;
    let factors: Vec<f64> =
        bytes.chunks_exact(4).map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect();
    if let Some(bad) = factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
        return Err(LlmError::Checkpoint(format!(
            "{}: `{ROPE_FACTORS}` holds {bad}; rotary factors must be positive",
            path.display()
        )));
    }
    Ok(Some(factors))
}

/// Architectures whose block is the llama one (Mistral's GGUF files say
/// `llama`; Qwen2's adds biases to q, k and v).
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "mistral", QWEN2];

/// Qwen2: the llama block with q, k and v biases, and rotary on halves
/// (NeoX order), so llama.cpp's converter leaves its q and k rows as they are.
pub const QWEN2: &str = "qwen2";

/// The GGUF name of a tensor the model loads by its Hugging Face name.
pub fn gguf_name(hf: &str) -> Option<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (index, part) = rest.split_once('.')?;
    let index: usize = index.parse().ok()?;
    let part = match part {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "self_attn.q_proj.bias" => "attn_q.bias",
        "self_attn.k_proj.bias" => "attn_k.bias",
        "self_attn.v_proj.bias" => "attn_v.bias",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        _ => return None,
    };
    Some(format!("blk.{index}.{part}"))
}

/// Reads one tensor's bytes.
pub fn read_tensor(path: &Path, info: &TensorInfo) -> Result<Vec<u8>, LlmError> {
    let fail = |error: std::io::Error| LlmError::Checkpoint(format!("{}: {error}", path.display()));
    let mut file = File::open(path).map_err(fail)?;
    file.seek(SeekFrom::Start(info.start)).map_err(fail)?;
    let mut bytes = vec![0; info.bytes as usize];
    file.read_exact(&mut bytes).map_err(fail)?;
    Ok(bytes)
}

/// Hugging Face's rotate-half layout of a q or k projection from llama.cpp's
/// interleaved one: llama.cpp's converter reorders each head's output rows
/// so that rotary pairs are adjacent (`(half, 2)` where Hugging Face has
/// `(2, half)`); this puts them back, moving whole rows (and so whole
/// quantized blocks) without touching a value.
pub fn unpermute_rows(bytes: &[u8], rows: usize, heads: usize) -> Vec<u8> {
    let row_bytes = bytes.len() / rows.max(1);
    let head_rows = rows / heads.max(1);
    let half = head_rows / 2;
    let mut out = vec![0; bytes.len()];
    for head in 0..heads {
        for pair in 0..half {
            for side in 0..2 {
                let from = head * head_rows + pair * 2 + side;
                let to = head * head_rows + side * half + pair;
                out[to * row_bytes..(to + 1) * row_bytes].copy_from_slice(&bytes[from * row_bytes..(from + 1) * row_bytes]);
            }
        }
    }
    out
}
