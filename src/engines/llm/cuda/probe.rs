//! Finding the CUDA libraries before cudarc touches them.
//!
//! cudarc loads the driver, NVRTC and cuBLAS on first use and panics when
//! one is missing, so phasebench looks for them first. Each library is
//! opened by its CUDA 13 name through the system loader, or by full path
//! from the folders in `PHASEBENCH_CUDA_LIBS` (colon-separated, searched
//! first), the CUDA toolkit and the `nvidia/*/lib` folders of Python
//! packages (where `pip install nvidia-cuda-nvrtc` puts NVRTC). A library
//! opened by full path stays loaded, so cudarc's later open by name finds
//! that one.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One library: its loader name and the libraries it needs from its own folder.
struct Wanted {
    what: &'static str,
    name: &'static str,
    /// Prefixes of files in the same folder to load first (their own
    /// dependencies, which they look up by name).
    companions: &'static [&'static str],
}

const DRIVER: Wanted = Wanted { what: "the CUDA driver", name: "libcuda.so.1", companions: &[] };
const NVRTC: Wanted = Wanted { what: "NVRTC", name: "libnvrtc.so.13", companions: &["libnvrtc-builtins.so.13."] };
const CUBLAS: Wanted = Wanted { what: "cuBLAS", name: "libcublas.so.13", companions: &["libcublasLt.so.13"] };

/// What was found on this machine.
#[derive(Clone, Debug)]
pub struct Found {
    /// Where the driver library came from (`loader` for the system loader's choice).
    pub driver: String,
    /// Where NVRTC came from.
    pub nvrtc: String,
    /// Where cuBLAS came from.
    pub cublas: String,
    /// The driver's CUDA version, as 13000 for 13.0.
    pub driver_version: i32,
    /// GPUs the driver sees.
    pub devices: i32,
}

/// NVRTC alone (enough to compile kernels), or why it is missing.
pub fn nvrtc() -> Result<&'static str, String> {
    static NVRTC_FOUND: OnceLock<Result<String, String>> = OnceLock::new();
    NVRTC_FOUND.get_or_init(|| open(&NVRTC)).as_ref().map(String::as_str).map_err(Clone::clone)
}

/// Everything `device: cuda` needs (the driver, a GPU, NVRTC and cuBLAS), or
/// a message naming what is missing and where it was looked for.
pub fn cuda() -> Result<&'static Found, String> {
    static CUDA_FOUND: OnceLock<Result<Found, String>> = OnceLock::new();
    CUDA_FOUND.get_or_init(find).as_ref().map_err(Clone::clone)
}

fn find() -> Result<Found, String> {
    let driver = open(&DRIVER);
    let nvrtc = nvrtc().map(str::to_owned);
    let cublas = open(&CUBLAS);
    let missing: Vec<String> = [&driver, &nvrtc, &cublas].iter().filter_map(|r| r.as_ref().err().cloned()).collect();
    if !missing.is_empty() {
        return Err(format!(
            "CUDA is not usable here: {}; searched the system loader's paths{}",
            missing.join("; "),
            describe_dirs()
        ));
    }
    // The driver library is loaded: cudarc's calls into it are safe now.
    use cudarc::driver::sys;
    let mut version = 0;
    let mut devices = 0;
    // SAFETY: plain driver calls with valid out-pointers; the library is loaded.
    unsafe {
        let init = sys::cuInit(0);
        if init != sys::CUresult::CUDA_SUCCESS {
            return Err(format!("the CUDA driver is installed but cuInit failed ({init:?}): no usable GPU"));
        }
        sys::cuDriverGetVersion(&mut version);
        sys::cuDeviceGetCount(&mut devices);
    }
    if devices < 1 {
        return Err("the CUDA driver sees no GPU".into());
    }
    if version < 13000 {
        return Err(format!(
            "the CUDA driver supports CUDA {}.{}, and phasebench needs 13.0 or later",
            version / 1000,
            version % 1000 / 10
        ));
    }
    Ok(Found {
        driver: driver.unwrap_or_default(),
        nvrtc: nvrtc.unwrap_or_default(),
        cublas: cublas.unwrap_or_default(),
        driver_version: version,
        devices,
    })
}

/// Opens `wanted` from the configured folders, then by name, then from the
/// usual install folders. Returns where it came from.
fn open(wanted: &Wanted) -> Result<String, String> {
    let (configured, usual) = search_dirs();
    for dir in &configured {
        if let Some(path) = open_in(dir, wanted) {
            return Ok(path);
        }
    }
    if dlopen(Path::new(wanted.name)) {
        return Ok(format!("{} (system loader)", wanted.name));
    }
    for dir in &usual {
        if let Some(path) = open_in(dir, wanted) {
            return Ok(path);
        }
    }
    Err(format!("{} ({}) not found", wanted.what, wanted.name))
}

fn open_in(dir: &Path, wanted: &Wanted) -> Option<String> {
    let path = dir.join(wanted.name);
    if !path.is_file() {
        return None;
    }
    for prefix in wanted.companions {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                dlopen(&entry.path());
            }
        }
    }
    dlopen(&path).then(|| path.display().to_string())
}

/// Loads a library for the rest of the process (never closed).
fn dlopen(path: &Path) -> bool {
    let Ok(name) = CString::new(path.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: a NUL-terminated path; the handle is deliberately kept open.
    !unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) }.is_null()
}

/// The folders from `PHASEBENCH_CUDA_LIBS`, and the usual install folders.
fn search_dirs() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let configured = std::env::var_os("PHASEBENCH_CUDA_LIBS")
        .map(|dirs| std::env::split_paths(&dirs).filter(|d| !d.as_os_str().is_empty()).collect())
        .unwrap_or_default();
    let mut usual: Vec<PathBuf> = Vec::new();
    for variable in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(root) = std::env::var_os(variable) {
            usual.push(Path::new(&root).join("lib64"));
            usual.push(Path::new(&root).join("lib"));
        }
    }
    for dir in [
        "/usr/local/cuda/lib64",
        "/usr/local/cuda/targets/x86_64-linux/lib",
        "/usr/local/nvidia/lib64",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib64",
    ] {
        usual.push(dir.into());
    }
    // Python packages: <root>/python3.*/{site,dist}-packages/nvidia/*/lib.
    let mut roots: Vec<PathBuf> =
        ["/usr/lib", "/usr/local/lib", "/opt/conda/lib", "/opt/torch/.venv/lib"].iter().map(PathBuf::from).collect();
    for variable in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
        if let Some(root) = std::env::var_os(variable) {
            roots.push(Path::new(&root).join("lib"));
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        roots.push(Path::new(&home).join(".local/lib"));
    }
    for root in roots {
        for python in children(&root).into_iter().filter(|p| name_starts(p, "python3")) {
            for packages in ["site-packages", "dist-packages"] {
                for package in children(&python.join(packages).join("nvidia")) {
                    usual.push(package.join("lib"));
                }
            }
        }
    }
    (configured, usual)
}

fn children(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    found.sort();
    found
}

fn name_starts(path: &Path, prefix: &str) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix))
}

fn describe_dirs() -> String {
    match std::env::var_os("PHASEBENCH_CUDA_LIBS") {
        Some(dirs) => format!(", PHASEBENCH_CUDA_LIBS ({}) and the usual CUDA folders", dirs.to_string_lossy()),
        None => {
            ", the usual CUDA folders and Python's nvidia packages (set PHASEBENCH_CUDA_LIBS to add folders)".into()
        }
    }
}
