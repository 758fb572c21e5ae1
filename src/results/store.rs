//! Run folders and atomic writes.
//!
//! A file is written to a temporary name in the same folder, flushed to disk,
//! then renamed over the target, so a reader (or a crash) sees either the old
//! complete file or the new complete file, never half of one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::Results;

/// Why results could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The folder exists already; runs never overwrite one.
    #[error("the run folder `{0}` already exists; runs never overwrite one")]
    Exists(PathBuf),
    /// An I/O failure on a path.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// The file is not a results file of a readable version.
    #[error("{path}: not a phasebench results file: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

/// Creates a new, empty run folder; fails if it exists.
pub fn create_run_folder(path: &Path) -> Result<(), StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Err(StoreError::Exists(path.to_owned())),
        Err(error) => Err(StoreError::Io { path: path.to_owned(), source: error }),
    }
}

/// `text` with every character but ASCII letters, digits, `-` and `_`
/// replaced by `-`, for a file or folder name.
pub fn file_slug(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

/// A fresh folder under `runs/` named for the scenario and the time, with a
/// numeric suffix when that name is taken.
pub fn default_run_folder(
    base: &Path,
    scenario: &str,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<PathBuf, StoreError> {
    let stem = format!("{}-{}", file_slug(scenario), started.format("%Y%m%d-%H%M%S"));
    for attempt in 1..1000 {
        let name = if attempt == 1 { stem.clone() } else { format!("{stem}-{attempt}") };
        let path = base.join(name);
        match create_run_folder(&path) {
            Ok(()) => return Ok(path),
            Err(StoreError::Exists(_)) => continue,
            Err(other) => return Err(other),
        }
    }
    Err(StoreError::Exists(base.join(stem)))
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.tmp"));
    let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
    file.write_all(bytes).map_err(io_error(&temporary))?;
    file.sync_all().map_err(io_error(&temporary))?;
    drop(file);
    fs::rename(&temporary, path).map_err(io_error(path))?;
    // Make the rename itself durable.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(folder) = File::open(parent) {
            let _ = folder.sync_all();
        }
    }
    Ok(())
}

/// Writes `results.json` into `folder` atomically.
pub fn save(folder: &Path, results: &Results) -> Result<(), StoreError> {
    let path = folder.join("results.json");
    let json = serde_json::to_vec_pretty(results)
        .map_err(|error| StoreError::Format { path: path.clone(), message: error.to_string() })?;
    write_atomic(&path, &json)
}

/// Reads a results file, checking its format and version.
pub fn load(path: &Path) -> Result<Results, StoreError> {
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    let header: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| StoreError::Format { path: path.to_owned(), message: error.to_string() })?;
    if header.get("format").and_then(|f| f.as_str()) != Some(super::FORMAT) {
        return Err(StoreError::Format {
            path: path.to_owned(),
            message: "missing `format: phasebench-results`".into(),
        });
    }
    let version = header.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version != u64::from(super::FORMAT_VERSION) {
        return Err(StoreError::Format {
            path: path.to_owned(),
            message: format!("version {version}; this phasebench reads version {}", super::FORMAT_VERSION),
        });
    }
    // From the text, not from `header`: a `Value` keeps its keys sorted,
    // and the order of a run's metrics is the order the reports show.
    serde_json::from_str(&text)
        .map_err(|error| StoreError::Format { path: path.to_owned(), message: error.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn run_folders_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run");
        create_run_folder(&path).unwrap();
        assert!(matches!(create_run_folder(&path), Err(StoreError::Exists(_))));
        let started = chrono::Utc::now();
        let a = default_run_folder(dir.path(), "demo scenario", started).unwrap();
        let b = default_run_folder(dir.path(), "demo scenario", started).unwrap();
        assert_ne!(a, b);
        assert!(a.file_name().unwrap().to_string_lossy().starts_with("demo-scenario-"));
    }
}
