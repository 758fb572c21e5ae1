//! `phasebench inspect`: look inside an engine without running a scenario.

use std::io::Write;

use clap::{Args, Subcommand, ValueEnum};

use phasebench::engines::{codec, llm};

use super::Status;

/// What to inspect.
#[derive(Debug, Subcommand)]
pub enum InspectCommand {
    /// Print the final position's logits for a token list as a JSON array.
    Logits(LogitsArgs),
    /// Print a model's shape, its weights' stored types and the bytes a
    /// decoding step reads (for a memory roofline), as JSON.
    Model(ModelArgs),
    /// Say which CUDA libraries and GPU `device: cuda` would use (exit 1 if none).
    Cuda,
    /// List the codec's built-in corpus; `--export DIR` writes its files there.
    Corpus {
        /// A folder to write the corpus files into (created if missing), for `zstd -b` and other tools.
        #[arg(long)]
        export: Option<std::path::PathBuf>,
    },
}

/// Where the model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The GPU when CUDA is usable, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// An NVIDIA GPU (CUDA 13).
    Cuda,
}

/// How the weights are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    /// 32-bit floats.
    F32,
    /// IEEE half weights, f32 activations.
    F16,
    /// bfloat16 weights, f32 activations.
    Bf16,
    /// Weights quantized to Q8_0 blocks at load.
    #[value(name = "q8_0")]
    Q8_0,
    /// Weights quantized to Q4_K blocks at load.
    #[value(name = "q4_k")]
    Q4K,
}

/// How the KV cache is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KvArg {
    /// 32-bit floats.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
}

/// `phasebench inspect logits`.
#[derive(Debug, Args)]
pub struct LogitsArgs {
    /// A preset (tiny, small, base, 1b) or a checkpoint directory.
    #[arg(long)]
    pub model: String,
    /// Token ids, comma-separated: `1,5,9`.
    #[arg(long, required_unless_present = "text", conflicts_with = "text")]
    pub tokens: Option<String>,
    /// Text instead of ids: byte-level tokens on presets, the checkpoint's tokenizer.json otherwise.
    #[arg(long)]
    pub text: Option<String>,
    /// Where to run.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// Weight storage type.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DtypeArg,
    /// Seed of a preset's random weights (a scenario's engines use the scenario seed, 0 unless set).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `phasebench inspect model`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A preset (tiny, small, base, 1b), a checkpoint directory or a .gguf file.
    #[arg(long)]
    pub model: String,
    /// Weight storage type of a preset or checkpoint (a GGUF file keeps its own).
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DtypeArg,
    /// Context positions a decoding step reads the KV cache of.
    #[arg(long, default_value_t = 160)]
    pub positions: usize,
    /// Storage type of the KV cache.
    #[arg(long, value_enum, default_value = "f32")]
    pub kv_dtype: KvArg,
}

/// Runs an inspect command.
pub fn execute(command: InspectCommand) -> Status {
    match command {
        InspectCommand::Logits(args) => logits(&args),
        InspectCommand::Model(args) => model(&args),
        InspectCommand::Cuda => cuda(),
        InspectCommand::Corpus { export } => corpus(export.as_deref()),
    }
}

fn corpus(export: Option<&std::path::Path>) -> Status {
    let mut out = std::io::stdout().lock();
    let files = codec::corpus::builtin_files();
    let total: usize = files.iter().map(|file| file.size).sum();
    for file in &files {
        let _ = writeln!(out, "{:<18} {:>9} bytes  {:<28} {}", file.name, file.size, file.kind, file.origin);
    }
    let _ = writeln!(out, "{:<18} {total:>9} bytes  (origins and licences: corpus/README.md)", "total");
    let Some(folder) = export else { return Status::Success };
    let corpus = match codec::Corpus::builtin() {
        Ok(corpus) => corpus,
        Err(message) => {
            eprintln!("error: {message}");
            return Status::Error;
        }
    };
    let written = std::fs::create_dir_all(folder).and_then(|()| {
        corpus.files.iter().try_for_each(|file| {
            let path = folder.join(&file.name);
            let partial = folder.join(format!(".{}.partial", file.name));
            std::fs::write(&partial, &file.data)?;
            std::fs::rename(&partial, &path)
        })
    });
    match written {
        Ok(()) => {
            let _ = writeln!(out, "written to {}", folder.display());
            Status::Success
        }
        Err(error) => {
            eprintln!("error: --export {}: {error}", folder.display());
            Status::InvalidInput
        }
    }
}

fn cuda() -> Status {
    let mut out = std::io::stdout().lock();
    let found = match llm::cuda::probe::cuda() {
        Ok(found) => found,
        Err(missing) => {
            let _ = writeln!(out, "{missing}");
            if let Ok(nvrtc) = llm::cuda::probe::nvrtc() {
                let _ = writeln!(out, "NVRTC alone was found (kernels can be compiled): {nvrtc}");
            }
            return Status::Failed;
        }
    };
    let _ = writeln!(
        out,
        "driver:  {} (CUDA {}.{})",
        found.driver,
        found.driver_version / 1000,
        found.driver_version % 1000 / 10
    );
    let _ = writeln!(out, "nvrtc:   {}", found.nvrtc);
    let _ = writeln!(out, "cublas:  {}", found.cublas);
    let _ = writeln!(out, "devices: {}", found.devices);
    match llm::cuda::Gpu::new() {
        Ok(gpu) => {
            let name = gpu.context.name().unwrap_or_default();
            let memory = gpu.context.total_mem().unwrap_or(0) as f64 / (1u64 << 30) as f64;
            let _ = writeln!(out, "gpu 0:   {name}, {memory:.1} GiB, kernels compiled for {}", gpu.kernels.arch);
            Status::Success
        }
        Err(error) => {
            let _ = writeln!(out, "gpu 0:   cannot be used: {error}");
            Status::Failed
        }
    }
}

fn logits(args: &LogitsArgs) -> Status {
    let tokens = match (&args.tokens, &args.text) {
        (Some(list), _) => parse_tokens(list).map_err(|message| format!("--tokens: {message}")),
        (None, Some(text)) => llm::text_tokens(&args.model, text).map_err(|error| format!("--text: {error}")),
        (None, None) => Err("give --tokens or --text".into()),
    };
    let tokens = match tokens {
        Ok(tokens) => tokens,
        Err(message) => {
            eprintln!("error: {message}");
            return Status::InvalidInput;
        }
    };
    let dtype = storage(args.dtype);
    let device = match args.device {
        DeviceArg::Cpu => Ok(llm::Device::Cpu),
        DeviceArg::Cuda => llm::cuda::probe::cuda().map(|_| llm::Device::Cuda),
        DeviceArg::Auto => Ok(if llm::cuda::probe::cuda().is_ok() { llm::Device::Cuda } else { llm::Device::Cpu }),
    };
    let device = match device {
        Ok(device) => device,
        Err(missing) => {
            eprintln!("error: --device cuda: {missing}");
            return Status::InvalidInput;
        }
    };
    match llm::inspect_logits(&args.model, &tokens, dtype, args.seed, device) {
        Ok(logits) => {
            // A closed pipe (`| head`) is the reader's choice, not an error.
            let json = serde_json::to_string(&logits).unwrap_or_else(|_| "[]".into());
            let _ = writeln!(std::io::stdout().lock(), "{json}");
            Status::Success
        }
        Err(error) => {
            eprintln!("error: --model {}: {error}", args.model);
            Status::InvalidInput
        }
    }
}

/// The weight storage a `--dtype` names.
fn storage(dtype: DtypeArg) -> llm::weights::Storage {
    use llm::weights::Storage;
    match dtype {
        DtypeArg::F32 => Storage::Dense(candle_core::DType::F32),
        DtypeArg::F16 => Storage::Dense(candle_core::DType::F16),
        DtypeArg::Bf16 => Storage::Dense(candle_core::DType::BF16),
        DtypeArg::Q8_0 => Storage::Quant(llm::quant::QuantType::Q8_0),
        DtypeArg::Q4K => Storage::Quant(llm::quant::QuantType::Q4K),
    }
}

fn model(args: &ModelArgs) -> Status {
    let loaded = llm::load_cpu_model_as(&args.model, 0, storage(args.dtype), llm::AttentionKind::Naive);
    let kv = match args.kv_dtype {
        KvArg::F32 => llm::KvType::F32,
        KvArg::F16 => llm::KvType::F16,
        KvArg::Bf16 => llm::KvType::Bf16,
    };
    let model = match loaded {
        Ok(model) => model.with_kv(kv),
        Err(error) => {
            eprintln!("error: --model {}: {error}", args.model);
            return Status::InvalidInput;
        }
    };
    let config = model.config();
    let types: serde_json::Map<String, serde_json::Value> =
        model.weight_types().into_iter().map(|(name, count)| (name, count.into())).collect();
    let report = serde_json::json!({
        "model": args.model,
        "dim": config.dim,
        "hidden": config.hidden,
        "layers": config.layers,
        "heads": config.heads,
        "kv_heads": config.kv_heads,
        "head_dim": config.head_dim,
        "vocab": config.vocab,
        "context": config.context,
        "tied": config.tied,
        "weight_types": types,
        "positions": args.positions,
        "kv_dtype": kv.name(),
        "bytes_per_token": model.bytes_per_token(args.positions),
    });
    let _ = writeln!(std::io::stdout().lock(), "{report}");
    Status::Success
}

/// `1,5,9` → `[1, 5, 9]`, saying which item is wrong.
pub fn parse_tokens(text: &str) -> Result<Vec<u32>, String> {
    if text.trim().is_empty() {
        return Err("no tokens given; write ids separated by commas, e.g. `1,5,9`".into());
    }
    text.split(',')
        .enumerate()
        .map(|(index, item)| {
            item.trim().parse::<u32>().map_err(|_| {
                format!(
                    "item {} (`{}`) is not a token id; write ids separated by commas, e.g. `1,5,9`",
                    index + 1,
                    item.trim()
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_tokens;

    #[test]
    fn token_lists() {
        assert_eq!(parse_tokens("1,5,9").unwrap(), vec![1, 5, 9]);
        assert_eq!(parse_tokens(" 7 , 8").unwrap(), vec![7, 8]);
        assert!(parse_tokens("").unwrap_err().contains("no tokens"));
        assert!(parse_tokens("1,,2").unwrap_err().contains("item 2"));
        assert!(parse_tokens("1,-3").unwrap_err().contains("`-3`"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in ".{0,40}") {
            let _ = parse_tokens(&text);
        }
    }
}
