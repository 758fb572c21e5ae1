//! Model configuration: the Hugging Face `config.json` as written, the
//! built-in presets, and the checked runtime [`Config`] both become.

use std::path::Path;

use serde::Deserialize;

use super::LlmError;

/// `config.json` of a Hugging Face Llama checkpoint, as written.
#[derive(Debug, Deserialize)]
pub struct HfConfig {
    /// Model width.
    pub hidden_size: usize,
    /// SwiGLU hidden width.
    pub intermediate_size: usize,
    /// Decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Width of one head; defaults to hidden / heads.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Rotary base (transformers 4.x layout).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// Rotary scaling, when present (transformers 4.x layout).
    #[serde(default)]
    pub rope_scaling: Option<HfRope>,
    /// Rotary base and scaling together (transformers 5.x layout).
    #[serde(default)]
    pub rope_parameters: Option<HfRope>,
    /// Longest sequence the model was made for.
    #[serde(default = "default_context")]
    pub max_position_embeddings: usize,
    /// Whether the output head reuses the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

/// `rope_scaling` (transformers 4.x) or `rope_parameters` (5.x): the
/// rotary base and the Llama 3 scaling, every field optional.
#[derive(Debug, Deserialize)]
pub struct HfRope {
    /// Rotary base (only in `rope_parameters`).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// `default` or `llama3` (older files say `type`).
    #[serde(default, alias = "type")]
    pub rope_type: Option<String>,
    /// Overall stretch factor.
    #[serde(default)]
    pub factor: Option<f64>,
    /// Wavelengths longer than `original / low_freq_factor` are stretched fully.
    #[serde(default = "one")]
    pub low_freq_factor: f64,
    /// Wavelengths shorter than `original / high_freq_factor` are kept.
    #[serde(default = "four")]
    pub high_freq_factor: f64,
    /// Context the model was pre-trained with.
    #[serde(default = "default_original")]
    pub original_max_position_embeddings: usize,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_context() -> usize {
    2048
}
fn one() -> f64 {
    1.0
}
fn four() -> f64 {
    4.0
}
fn default_original() -> usize {
    8192
}

/// Llama 3 rotary scaling, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeScaling {
    /// Overall stretch factor.
    pub factor: f64,
    /// Low-frequency boundary factor.
    pub low_freq_factor: f64,
    /// High-frequency boundary factor.
    pub high_freq_factor: f64,
    /// Pre-training context.
    pub original_context: usize,
}

/// A checked model configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Model width.
    pub dim: usize,
    /// SwiGLU hidden width.
    pub hidden: usize,
    /// Decoder blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// Rotary base.
    pub rope_theta: f64,
    /// Llama 3 rotary scaling.
    pub rope_scaling: Option<RopeScaling>,
    /// Divisors of the rotary frequencies, one per pair: how llama.cpp's
    /// converter stores Llama 3 scaling in a GGUF (`rope_freqs.weight`).
    pub rope_factors: Option<Vec<f64>>,
    /// Longest sequence.
    pub context: usize,
    /// Output head shares the embedding matrix.
    pub tied: bool,
    /// The q, k and v projections add a bias (Qwen2).
    pub qkv_bias: bool,
}

/// Names of the built-in presets.
pub const PRESETS: &[&str] = &["tiny", "small", "base", "1b"];

impl Config {
    /// A built-in preset, or `None` for an unknown name.
    pub fn preset(name: &str) -> Option<Config> {
        let plain = |dim, hidden, layers, heads, vocab| Config {
            dim,
            hidden,
            layers,
            heads,
            kv_heads: heads,
            head_dim: dim / heads,
            vocab,
            eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            rope_factors: None,
            context: 2048,
            tied: true,
            qkv_bias: false,
        };
        Some(match name {
            "tiny" => plain(128, 384, 4, 4, 2048),
            "small" => plain(288, 768, 6, 6, 32_000),
            "base" => plain(768, 2048, 12, 12, 32_000),
            // The Llama-3.2-1B shape.
            "1b" => Config {
                dim: 2048,
                hidden: 8192,
                layers: 16,
                heads: 32,
                kv_heads: 8,
                head_dim: 64,
                vocab: 128_256,
                eps: 1e-5,
                rope_theta: 500_000.0,
                rope_scaling: Some(RopeScaling {
                    factor: 32.0,
                    low_freq_factor: 1.0,
                    high_freq_factor: 4.0,
                    original_context: 8192,
                }),
                rope_factors: None,
                context: 131_072,
                tied: true,
                qkv_bias: false,
            },
            _ => return None,
        })
    }

    /// Reads and checks `config.json` in a checkpoint directory.
    pub fn from_checkpoint(dir: &Path) -> Result<Config, LlmError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|error| LlmError::Checkpoint(format!("{}: {error}", path.display())))?;
        let raw: HfConfig = serde_json::from_str(&text)
            .map_err(|error| LlmError::Checkpoint(format!("{}: {error}", path.display())))?;
        Config::from_hf(&raw).map_err(|error| LlmError::Checkpoint(format!("{}: {error}", path.display())))
    }

    /// Checks a raw configuration.
    pub fn from_hf(raw: &HfConfig) -> Result<Config, String> {
        if raw.num_attention_heads == 0 || raw.hidden_size == 0 || raw.num_hidden_layers == 0 {
            return Err("hidden_size, num_attention_heads and num_hidden_layers must be positive".into());
        }
        let kv_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        if raw.head_dim.is_none() && raw.hidden_size % raw.num_attention_heads != 0 {
            return Err(format!(
                "num_attention_heads ({}) does not divide hidden_size ({})",
                raw.num_attention_heads, raw.hidden_size
            ));
        }
        if kv_heads == 0 || raw.num_attention_heads % kv_heads != 0 {
            return Err(format!(
                "num_key_value_heads ({kv_heads}) does not divide num_attention_heads ({})",
                raw.num_attention_heads
            ));
        }
        let head_dim = raw.head_dim.unwrap_or(raw.hidden_size / raw.num_attention_heads);
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(format!("head_dim ({head_dim}) must be even and positive for rotary embeddings"));
        }
        if raw.vocab_size == 0 || raw.intermediate_size == 0 || raw.max_position_embeddings == 0 {
            return Err("vocab_size, intermediate_size and max_position_embeddings must be positive".into());
        }
        let rope = raw.rope_parameters.as_ref().or(raw.rope_scaling.as_ref());
        let rope_theta = rope.and_then(|rope| rope.rope_theta).or(raw.rope_theta).unwrap_or_else(default_theta);
        let eps_ok = raw.rms_norm_eps.is_finite() && raw.rms_norm_eps >= 0.0;
        if !(rope_theta > 0.0 && rope_theta.is_finite() && eps_ok) {
            return Err("rope_theta must be positive and rms_norm_eps not negative".into());
        }
        let rope_scaling = match rope.map(|rope| (rope, rope.rope_type.as_deref().unwrap_or("default"))) {
            None | Some((_, "default")) => None,
            Some((scaling, "llama3")) => {
                let factor = scaling.factor.unwrap_or(0.0);
                if !(factor > 0.0 && scaling.high_freq_factor > scaling.low_freq_factor) {
                    return Err("llama3 rope scaling needs factor > 0 and high_freq_factor > low_freq_factor".into());
                }
                Some(RopeScaling {
                    factor,
                    low_freq_factor: scaling.low_freq_factor,
                    high_freq_factor: scaling.high_freq_factor,
                    original_context: scaling.original_max_position_embeddings,
                })
            }
            Some((_, other)) => {
                return Err(format!("rope type `{other}` is not supported (only `default` and `llama3`)"))
            }
        };
        Ok(Config {
            dim: raw.hidden_size,
            hidden: raw.intermediate_size,
            layers: raw.num_hidden_layers,
            heads: raw.num_attention_heads,
            kv_heads,
            head_dim,
            vocab: raw.vocab_size,
            eps: raw.rms_norm_eps,
            rope_theta,
            rope_scaling,
            rope_factors: None,
            context: raw.max_position_embeddings,
            tied: raw.tie_word_embeddings,
            qkv_bias: false,
        })
    }

    /// Parameters in the model (the embedding counted once when tied).
    pub fn parameters(&self) -> usize {
        let attention = self.dim * self.heads * self.head_dim * 2 + self.dim * self.kv_heads * self.head_dim * 2;
        let block = attention + 3 * self.dim * self.hidden + 2 * self.dim;
        let head = if self.tied { 0 } else { self.vocab * self.dim };
        self.vocab * self.dim + self.layers * block + self.dim + head
    }

    /// Every tensor the model loads: Hugging Face name and shape (`(out, in)`
    /// for a matrix).
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (q_dim, kv_dim) = (self.heads * self.head_dim, self.kv_heads * self.head_dim);
        let mut shapes = vec![
            ("model.embed_tokens.weight".to_string(), vec![self.vocab, self.dim]),
            ("model.norm.weight".to_string(), vec![self.dim]),
        ];
        if !self.tied {
            shapes.push(("lm_head.weight".to_string(), vec![self.vocab, self.dim]));
        }
        for layer in 0..self.layers {
            let prefix = format!("model.layers.{layer}");
            for (name, shape) in [
                ("input_layernorm", vec![self.dim]),
                ("post_attention_layernorm", vec![self.dim]),
                ("self_attn.q_proj", vec![q_dim, self.dim]),
                ("self_attn.k_proj", vec![kv_dim, self.dim]),
                ("self_attn.v_proj", vec![kv_dim, self.dim]),
                ("self_attn.o_proj", vec![self.dim, q_dim]),
                ("mlp.gate_proj", vec![self.hidden, self.dim]),
                ("mlp.up_proj", vec![self.hidden, self.dim]),
                ("mlp.down_proj", vec![self.dim, self.hidden]),
            ] {
                shapes.push((format!("{prefix}.{name}.weight"), shape));
            }
            if self.qkv_bias {
                for (name, width) in [("q_proj", q_dim), ("k_proj", kv_dim), ("v_proj", kv_dim)] {
                    shapes.push((format!("{prefix}.self_attn.{name}.bias"), vec![width]));
                }
            }
        }
        shapes
    }

    /// The row lengths of the weight matrices (what a block-quantized type must divide).
    pub fn row_lengths(&self) -> Vec<usize> {
        vec![self.dim, self.heads * self.head_dim, self.hidden]
    }

    /// Rotary inverse frequencies, with Llama 3 scaling when configured.
    pub fn inverse_frequencies(&self) -> Vec<f64> {
        let half = self.head_dim / 2;
        (0..half)
            .map(|i| {
                let inv = 1.0 / self.rope_theta.powf((2 * i) as f64 / self.head_dim as f64);
                let inv = match &self.rope_scaling {
                    None => inv,
                    Some(scaling) => llama3_scale(inv, scaling),
                };
                match &self.rope_factors {
                    Some(factors) => inv / factors.get(i).copied().unwrap_or(1.0),
                    None => inv,
                }
            })
            .collect()
    }
}

/// Llama 3 frequency scaling: long wavelengths are stretched by `factor`,
/// short ones kept, and the band between blended smoothly.
fn llama3_scale(inv: f64, scaling: &RopeScaling) -> f64 {
    let original = scaling.original_context as f64;
    let low_wavelen = original / scaling.low_freq_factor;
    let high_wavelen = original / scaling.high_freq_factor;
    let wavelen = 2.0 * std::f64::consts::PI / inv;
    if wavelen < high_wavelen {
        inv
    } else if wavelen > low_wavelen {
        inv / scaling.factor
    } else {
        let smooth =
            (original / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor);
        (1.0 - smooth) * inv / scaling.factor + smooth * inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_documented_sizes() {
        let millions = |name: &str| Config::preset(name).unwrap().parameters() as f64 / 1e6;
        assert!((0.8..1.5).contains(&millions("tiny")), "{}", millions("tiny"));
        assert!((14.0..16.5).contains(&millions("small")), "{}", millions("small"));
        assert!((100.0..120.0).contains(&millions("base")), "{}", millions("base"));
        assert!((1200.0..1300.0).contains(&millions("1b")), "{}", millions("1b"));
        assert!(Config::preset("huge").is_none());
    }

    fn raw(json: &str) -> Result<Config, String> {
        Config::from_hf(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn rejects_impossible_shapes() {
        let base = r#""vocab_size": 16, "intermediate_size": 8, "num_hidden_layers": 1"#;
        assert!(raw(&format!(r#"{{"hidden_size": 10, "num_attention_heads": 3, {base}}}"#))
            .unwrap_err()
            .contains("does not divide"));
        assert!(raw(&format!(r#"{{"hidden_size": 12, "num_attention_heads": 4, "num_key_value_heads": 3, {base}}}"#))
            .is_err());
        assert!(raw(&format!(r#"{{"hidden_size": 12, "num_attention_heads": 4, {base}}}"#))
            .unwrap_err()
            .contains("even"));
        assert!(raw(&format!(r#"{{"hidden_size": 16, "num_attention_heads": 4, "num_key_value_heads": 2, {base}}}"#))
            .is_ok());
    }

    #[test]
    fn llama3_scaling_keeps_high_and_stretches_low_frequencies() {
        let mut config = Config::preset("1b").unwrap();
        let scaled = config.inverse_frequencies();
        config.rope_scaling = None;
        let plain = config.inverse_frequencies();
        assert_eq!(scaled[0], plain[0]);
        let last = plain.len() - 1;
        assert!((scaled[last] - plain[last] / 32.0).abs() < 1e-12);
    }
}
