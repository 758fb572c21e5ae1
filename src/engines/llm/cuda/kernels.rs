//! Our CUDA kernels: the sources in `kernels/`, compiled at first use with
//! NVRTC for the device's architecture, kept per device for the process and
//! on disk between runs.

use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, CudaFunction};
use cudarc::nvrtc::sys as nvrtc;
use sha2::{Digest, Sha256};

/// Helpers every family shares, put in front of each source.
pub const COMMON: &str = include_str!("../../../../kernels/common.cuh");

/// One `.cu` file and the kernels it defines.
pub struct Family {
    /// File name under `kernels/`.
    pub file: &'static str,
    /// Its source.
    pub source: &'static str,
    /// The `extern "C"` kernels it defines, named `op_dtype`.
    pub kernels: &'static [&'static str],
}

/// Every kernel family.
pub const FAMILIES: &[Family] = &[
    Family {
        file: "embedding.cu",
        source: include_str!("../../../../kernels/embedding.cu"),
        kernels: &["embedding_f32", "embedding_bf16"],
    },
    Family {
        file: "rmsnorm.cu",
        source: include_str!("../../../../kernels/rmsnorm.cu"),
        kernels: &["rmsnorm_f32", "rmsnorm_bf16"],
    },
    Family {
        file: "rotary.cu",
        source: include_str!("../../../../kernels/rotary.cu"),
        kernels: &["rotary_f32", "rotary_bf16"],
    },
    Family {
        file: "silu.cu",
        source: include_str!("../../../../kernels/silu.cu"),
        kernels: &["silu_mul_f32", "silu_mul_bf16"],
    },
    Family {
        file: "softmax.cu",
        source: include_str!("../../../../kernels/softmax.cu"),
        kernels: &["causal_softmax_f32", "causal_softmax_bf16"],
    },
    Family {
        file: "gemv.cu",
        source: include_str!("../../../../kernels/gemv.cu"),
        kernels: &["gemv_f32", "gemv_bf16"],
    },
    Family {
        file: "sampling.cu",
        source: include_str!("../../../../kernels/sampling.cu"),
        kernels: &["argmax_f32", "argmax_chunks_f32", "argmax_merge_f32", "sample_f32"],
    },
    Family {
        file: "attention.cu",
        source: include_str!("../../../../kernels/attention.cu"),
        kernels: &[
            "flash_prefill_mma64_bf16",
            "flash_prefill_mma128_bf16",
            "flash_prefill_mma64_f16",
            "flash_prefill_mma128_f16",
            "flash_prefill_f32",
            "flash_prefill_bf16",
            "flash_decode_f32",
            "flash_decode_bf16",
            "flash_decode_combine_f32",
            "flash_decode_combine_bf16",
        ],
    },
];

impl Family {
    /// The source NVRTC compiles: the shared helpers, then the file, with
    /// line numbers that point into the file.
    pub fn full_source(&self) -> String {
        format!("{COMMON}\n#line 1 \"{}\"\n{}", self.file, self.source)
    }
}

/// The NVRTC version, as (major, minor).
pub fn nvrtc_version() -> Result<(i32, i32), String> {
    super::probe::nvrtc()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is loaded (checked above); valid out-pointers.
    let status = unsafe { nvrtc::nvrtcVersion(&mut major, &mut minor) };
    check(status, "nvrtcVersion")?;
    Ok((major, minor))
}

fn check(status: nvrtc::nvrtcResult, call: &str) -> Result<(), String> {
    if status == nvrtc::nvrtcResult::NVRTC_SUCCESS {
        Ok(())
    } else {
        Err(format!("{call} failed: {status:?}"))
    }
}

/// Compiles `family` to a CUBIN for `arch` (such as `sm_90`). The error is
/// NVRTC's log, with file and line.
pub fn compile(family: &Family, arch: &str) -> Result<Vec<u8>, String> {
    super::probe::nvrtc()?;
    let source = CString::new(family.full_source()).map_err(|_| format!("{} contains a NUL byte", family.file))?;
    let name = CString::new(family.file).map_err(|_| "bad file name".to_string())?;
    let options: Vec<CString> = [format!("--gpu-architecture={arch}"), "--std=c++17".into(), "-lineinfo".into()]
        .into_iter()
        .map(|o| CString::new(o).expect("options have no NUL"))
        .collect();
    let pointers: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();
    let mut program: nvrtc::nvrtcProgram = std::ptr::null_mut();
    // SAFETY: NVRTC is loaded; every pointer is valid for the calls below and
    // the program is destroyed on every path after creation.
    unsafe {
        check(
            nvrtc::nvrtcCreateProgram(
                &mut program,
                source.as_ptr(),
                name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            ),
            "nvrtcCreateProgram",
        )?;
        let compiled = nvrtc::nvrtcCompileProgram(program, pointers.len() as i32, pointers.as_ptr());
        let result = if compiled == nvrtc::nvrtcResult::NVRTC_SUCCESS {
            let mut size = 0usize;
            check(nvrtc::nvrtcGetCUBINSize(program, &mut size), "nvrtcGetCUBINSize").and_then(|()| {
                let mut cubin = vec![0u8; size];
                check(nvrtc::nvrtcGetCUBIN(program, cubin.as_mut_ptr().cast()), "nvrtcGetCUBIN").map(|()| cubin)
            })
        } else {
            let mut size = 0usize;
            nvrtc::nvrtcGetProgramLogSize(program, &mut size);
            let mut log = vec![0u8; size.max(1)];
            nvrtc::nvrtcGetProgramLog(program, log.as_mut_ptr().cast());
            let log = String::from_utf8_lossy(&log).trim_end_matches('\0').trim().to_string();
            Err(format!("NVRTC could not compile {} for {arch} ({compiled:?}):\n{log}", family.file))
        };
        nvrtc::nvrtcDestroyProgram(&mut program);
        result
    }
}

/// The head size of a tensor-core flash kernel (`flash_prefill_mma64_bf16` → 64).
fn mma_head_dim(name: &str) -> Option<usize> {
    name.strip_prefix("flash_prefill_mma")?.split('_').next()?.parse().ok()
}

/// Dynamic shared memory of the tensor-core flash kernel for head size `d`:
/// two stages of a 64-key K tile and V tile, rows padded by 8 elements.
pub fn mma_shared_bytes(head_dim: usize) -> usize {
    2 * 2 * 64 * (head_dim + 8) * 2
}

/// The kernels loaded into one device's context.
pub struct Kernels {
    functions: HashMap<&'static str, CudaFunction>,
    /// The architecture they were compiled for.
    pub arch: String,
}

impl Kernels {
    /// The kernel `name`.
    pub fn get(&self, name: &str) -> Result<&CudaFunction, String> {
        self.functions.get(name).ok_or_else(|| format!("no kernel `{name}`"))
    }
}

/// Every kernel, compiled for `context`'s device and loaded into it; once per
/// device and process.
pub fn load(context: &Arc<CudaContext>) -> Result<Arc<Kernels>, String> {
    static LOADED: OnceLock<Mutex<HashMap<usize, Arc<Kernels>>>> = OnceLock::new();
    let loaded = LOADED.get_or_init(Default::default);
    let mut loaded = loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(kernels) = loaded.get(&context.ordinal()) {
        return Ok(Arc::clone(kernels));
    }
    let (major, minor) = context.compute_capability().map_err(|e| format!("reading the compute capability: {e}"))?;
    let arch = format!("sm_{major}{minor}");
    let mut functions = HashMap::new();
    for family in FAMILIES {
        let cubin = cached_compile(family, &arch)?;
        let module = context
            .load_module(cudarc::nvrtc::Ptx::from_binary(cubin))
            .map_err(|e| format!("loading {} for {arch}: {e}", family.file))?;
        for &name in family.kernels {
            let function = module.load_function(name).map_err(|e| format!("finding kernel {name}: {e}"))?;
            if let Some(head_dim) = mma_head_dim(name) {
                // Past 48 KiB, dynamic shared memory must be asked for.
                let attribute =
                    cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
                function
                    .set_attribute(attribute, mma_shared_bytes(head_dim) as i32)
                    .map_err(|e| format!("allowing {name} its shared memory: {e}"))?;
            }
            functions.insert(name, function);
        }
    }
    let kernels = Arc::new(Kernels { functions, arch });
    loaded.insert(context.ordinal(), Arc::clone(&kernels));
    Ok(kernels)
}

/// `compile`, through a disk cache keyed by the source, the architecture and
/// NVRTC's version (`$XDG_CACHE_HOME` or `~/.cache`, under `phasebench/kernels`).
fn cached_compile(family: &Family, arch: &str) -> Result<Vec<u8>, String> {
    let (major, minor) = nvrtc_version()?;
    let mut hash = Sha256::new();
    hash.update(family.full_source().as_bytes());
    hash.update(format!("{arch} nvrtc {major}.{minor}").as_bytes());
    let key: String = hash.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
    let path = cache_dir().map(|dir| dir.join(format!("{}-{arch}-{key}.cubin", family.file.trim_end_matches(".cu"))));
    if let Some(cubin) = path.as_ref().and_then(|p| std::fs::read(p).ok()) {
        return Ok(cubin);
    }
    let cubin = compile(family, arch)?;
    if let Some(path) = path {
        // A cache only: failing to write it costs a compile next time, nothing more.
        let _ = path.parent().map(std::fs::create_dir_all);
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&temporary, &cubin).is_ok() {
            let _ = std::fs::rename(&temporary, &path);
        }
    }
    Ok(cubin)
}

fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("phasebench").join("kernels"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_kernel_is_defined_in_its_source() {
        for family in FAMILIES {
            for kernel in family.kernels {
                let definition = format!(" {kernel}(");
                let by_macro = format!("MMA_KERNEL({kernel},");
                assert!(
                    family.source.contains(&definition) || family.source.contains(&by_macro),
                    "{} does not define {kernel}",
                    family.file
                );
            }
        }
    }

    #[test]
    fn tensor_core_kernels_get_their_shared_memory() {
        assert_eq!(mma_head_dim("flash_prefill_mma64_bf16"), Some(64));
        assert_eq!(mma_head_dim("flash_prefill_mma128_f16"), Some(128));
        assert_eq!(mma_head_dim("flash_prefill_bf16"), None);
        // Two stages of K and V, 64 keys, rows padded by 8 two-byte elements.
        assert_eq!(mma_shared_bytes(64), 36_864);
        assert_eq!(mma_shared_bytes(128), 69_632);
    }
}
