//! What the codec compresses: the built-in corpus (`corpus/`, shipped
//! inside the binary) or the files a scenario names, split into blocks.
//!
//! A block never spans two files. Blocks are visited in a seeded shuffled
//! order, so that even a short run samples every file rather than only the
//! first one; any run of as many calls as there are blocks covers each
//! block exactly once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use crate::engines::rng::SplitMix;

/// One file of the built-in corpus: its name, what it is, its bytes as
/// zstd compressed them, and the size and SHA-256 of the original.
struct Shipped {
    name: &'static str,
    kind: &'static str,
    origin: &'static str,
    compressed: &'static [u8],
    size: usize,
    sha256: &'static str,
}

/// The built-in corpus; `corpus/README.md` says where each file comes from
/// and under which licence.
static SHIPPED: &[Shipped] = &[
    Shipped {
        name: "kjv.txt",
        kind: "English prose",
        origin: "King James Bible (public domain), Debian bible-kjv-text 4.38",
        compressed: include_bytes!("../../../corpus/kjv.txt.zst"),
        size: 4_298_239,
        sha256: "82fa5f3788c6a9a010fb128a0f0bf588984b5888a82058520620eded59b033ea",
    },
    Shipped {
        name: "UnicodeData.txt",
        kind: "semicolon-separated records",
        origin: "Unicode Character Database 15.0.0 (Unicode License)",
        compressed: include_bytes!("../../../corpus/UnicodeData.txt.zst"),
        size: 1_913_704,
        sha256: "806e9aed65037197f1ec85e12be6e8cd870fc5608b4de0fffd990f689f376a73",
    },
    Shipped {
        name: "python-stdlib.py",
        kind: "source code",
        origin: "23 modules of the CPython 3.11.7 standard library (PSF License)",
        compressed: include_bytes!("../../../corpus/python-stdlib.py.zst"),
        size: 1_496_481,
        sha256: "77633f524e83cb3bce0c8ce558aee126370065a0a51e85b65f1fc23c6bef3ebe",
    },
    Shipped {
        name: "iso_639-3.json",
        kind: "JSON",
        origin: "ISO 639-3 language codes, iso-codes 4.15.0 (LGPL-2.1+)",
        compressed: include_bytes!("../../../corpus/iso_639-3.json.zst"),
        size: 874_782,
        sha256: "9636ce5266053867627140ce5ada1f9aa897ca07a7501302c1b14b8d1147cdda",
    },
    Shipped {
        name: "iso_3166-2.json",
        kind: "JSON",
        origin: "ISO 3166-2 subdivision codes, iso-codes 4.15.0 (LGPL-2.1+)",
        compressed: include_bytes!("../../../corpus/iso_3166-2.json.zst"),
        size: 501_099,
        sha256: "078d2da1c3a868189765be5098ce9d551318d12be7e3c0b18e9282dd5481a831",
    },
];

/// The `corpus` option's value that names the built-in corpus.
pub const BUILTIN: &str = "builtin";

/// One file of a corpus.
#[derive(Debug)]
pub struct CorpusFile {
    /// Its name: relative to the folder the scenario named, or the built-in name.
    pub name: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// The files a codec compresses.
#[derive(Debug)]
pub struct Corpus {
    /// The files, in a stable order.
    pub files: Vec<CorpusFile>,
}

/// A description of one built-in file, for `phasebench inspect corpus`.
pub struct BuiltinFile {
    /// File name.
    pub name: &'static str,
    /// What kind of data it is.
    pub kind: &'static str,
    /// Where it comes from, with its licence.
    pub origin: &'static str,
    /// Its size in bytes.
    pub size: usize,
}

/// What the built-in corpus holds.
pub fn builtin_files() -> Vec<BuiltinFile> {
    SHIPPED
        .iter()
        .map(|file| BuiltinFile { name: file.name, kind: file.kind, origin: file.origin, size: file.size })
        .collect()
}

impl Corpus {
    /// The built-in corpus, unpacked once per process and checked against
    /// the recorded SHA-256 of every file.
    pub fn builtin() -> Result<Arc<Corpus>, String> {
        static BUILT: OnceLock<Result<Arc<Corpus>, String>> = OnceLock::new();
        BUILT.get_or_init(unpack_builtin).clone()
    }

    /// The corpus `spec` names: [`BUILTIN`], a file, or a folder (every
    /// regular file below it, by path). More than `limit` bytes is an error.
    pub fn load(spec: &str, limit: u64) -> Result<Arc<Corpus>, String> {
        if spec == BUILTIN {
            return Corpus::builtin();
        }
        let paths = list(spec, limit)?;
        let root = Path::new(spec);
        let mut files = Vec::with_capacity(paths.len());
        for (path, _) in paths {
            let data = std::fs::read(&path).map_err(|error| format!("cannot read `{}`: {error}", path.display()))?;
            let name = path.strip_prefix(root).ok().filter(|p| !p.as_os_str().is_empty()).unwrap_or(&path);
            files.push(CorpusFile { name: name.display().to_string(), data });
        }
        Ok(Arc::new(Corpus { files }))
    }

    /// Total bytes.
    pub fn bytes(&self) -> usize {
        self.files.iter().map(|file| file.data.len()).sum()
    }
}

fn unpack_builtin() -> Result<Arc<Corpus>, String> {
    let mut files = Vec::with_capacity(SHIPPED.len());
    for shipped in SHIPPED {
        let data = zstd::bulk::decompress(shipped.compressed, shipped.size)
            .map_err(|error| format!("built-in corpus file `{}` does not unpack: {error}", shipped.name))?;
        let digest = format!("{:x}", Sha256::digest(&data));
        if data.len() != shipped.size || digest != shipped.sha256 {
            return Err(format!(
                "built-in corpus file `{}` does not match its recorded size and SHA-256",
                shipped.name
            ));
        }
        files.push(CorpusFile { name: shipped.name.to_owned(), data });
    }
    Ok(Arc::new(Corpus { files }))
}

/// The regular files `spec` names, with their sizes, sorted by path; checks
/// that there is something to compress and not more than `limit` bytes.
/// Reads metadata only, so validation can call it.
pub fn list(spec: &str, limit: u64) -> Result<Vec<(PathBuf, u64)>, String> {
    let root = Path::new(spec);
    let metadata =
        std::fs::metadata(root).map_err(|error| format!("corpus `{spec}` cannot be read: {}", plain_io(&error)))?;
    let mut files = Vec::new();
    if metadata.is_dir() {
        walk(root, &mut files)?;
    } else if metadata.is_file() {
        files.push((root.to_path_buf(), metadata.len()));
    } else {
        return Err(format!("corpus `{spec}` is neither a file nor a folder"));
    }
    files.sort();
    let total: u64 = files.iter().map(|(_, size)| size).sum();
    if total == 0 {
        return Err(format!("corpus `{spec}` holds no bytes to compress"));
    }
    if total > limit {
        return Err(format!("corpus `{spec}` holds {total} bytes, more than `max_corpus` ({limit} bytes)"));
    }
    Ok(files)
}

fn plain_io(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

fn walk(folder: &Path, files: &mut Vec<(PathBuf, u64)>) -> Result<(), String> {
    let entries = std::fs::read_dir(folder)
        .map_err(|error| format!("cannot list `{}`: {}", folder.display(), plain_io(&error)))?;
    for entry in entries {
        let entry = entry.map_err(|error| format!("cannot list `{}`: {error}", folder.display()))?;
        let path = entry.path();
        // Follows links, as `zstd -r` does; a dangling link is skipped.
        let Ok(metadata) = std::fs::metadata(&path) else { continue };
        if metadata.is_dir() {
            walk(&path, files)?;
        } else if metadata.is_file() && metadata.len() > 0 {
            files.push((path, metadata.len()));
        }
    }
    Ok(())
}

/// One block: a range of one corpus file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Index of its file.
    pub file: usize,
    /// Offset in the file.
    pub start: usize,
    /// Bytes.
    pub len: usize,
}

/// A corpus split into blocks: those measured, in visiting order, and
/// those set aside to train a dictionary.
#[derive(Debug)]
pub struct Blocks {
    /// The corpus.
    pub corpus: Arc<Corpus>,
    /// Measured blocks, in a seeded shuffled order.
    pub measured: Vec<Block>,
    /// Blocks set aside for dictionary training, never measured.
    pub training: Vec<Block>,
}

impl Blocks {
    /// Splits every file into blocks of `size` bytes (the last block of a
    /// file may be shorter), sets `train_share` of them aside, evenly spaced,
    /// and shuffles the rest with `seed`.
    pub fn split(corpus: Arc<Corpus>, size: usize, train_share: f64, seed: u64) -> Blocks {
        let size = size.max(1);
        let mut all = Vec::new();
        for (file, data) in corpus.files.iter().enumerate() {
            let mut start = 0;
            while start < data.data.len() {
                let len = size.min(data.data.len() - start);
                all.push(Block { file, start, len });
                start += len;
            }
        }
        let (mut measured, mut training) = (Vec::new(), Vec::new());
        for (index, block) in all.into_iter().enumerate() {
            let taken = |i: usize| (i as f64 * train_share).floor();
            if train_share > 0.0 && taken(index + 1) > taken(index) {
                training.push(block);
            } else {
                measured.push(block);
            }
        }
        let mut rng = SplitMix::new(seed);
        for i in (1..measured.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            measured.swap(i, j);
        }
        Blocks { corpus, measured, training }
    }

    /// The bytes of `block`.
    pub fn data(&self, block: &Block) -> &[u8] {
        &self.corpus.files[block.file].data[block.start..block.start + block.len]
    }

    /// Where `block` is, for messages: `kjv.txt @ 131072`.
    pub fn place(&self, block: &Block) -> String {
        format!("{} @ {}", self.corpus.files[block.file].name, block.start)
    }

    /// The largest block.
    pub fn largest(&self) -> usize {
        self.measured.iter().chain(&self.training).map(|block| block.len).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(sizes: &[usize]) -> Arc<Corpus> {
        Arc::new(Corpus {
            files: sizes
                .iter()
                .enumerate()
                .map(|(i, size)| CorpusFile { name: format!("f{i}"), data: vec![i as u8; *size] })
                .collect(),
        })
    }

    #[test]
    fn the_builtin_corpus_unpacks_and_matches_its_digests() {
        let corpus = Corpus::builtin().unwrap();
        assert_eq!(corpus.files.len(), SHIPPED.len());
        assert_eq!(corpus.bytes(), SHIPPED.iter().map(|file| file.size).sum::<usize>());
    }

    #[test]
    fn blocks_cover_every_byte_once_and_never_span_files() {
        let blocks = Blocks::split(corpus(&[10, 0, 25, 3]), 8, 0.0, 7);
        let mut seen: Vec<Block> = blocks.measured.clone();
        seen.sort_by_key(|block| (block.file, block.start));
        let lens: Vec<(usize, usize, usize)> = seen.iter().map(|b| (b.file, b.start, b.len)).collect();
        assert_eq!(lens, vec![(0, 0, 8), (0, 8, 2), (2, 0, 8), (2, 8, 8), (2, 16, 8), (2, 24, 1), (3, 0, 3)]);
        assert!(blocks.training.is_empty());
    }

    #[test]
    fn the_training_share_is_set_aside_evenly_and_the_order_is_seeded() {
        let blocks = Blocks::split(corpus(&[1000]), 10, 0.2, 1);
        assert_eq!(blocks.training.len(), 20);
        assert_eq!(blocks.measured.len(), 80);
        let starts: Vec<usize> = blocks.training.iter().map(|block| block.start).collect();
        assert!(starts.windows(2).all(|pair| pair[1] - pair[0] == 50), "{starts:?}");
        assert!(blocks.measured.iter().all(|block| !starts.contains(&block.start)));
        let again = Blocks::split(corpus(&[1000]), 10, 0.2, 1);
        assert_eq!(blocks.measured, again.measured);
        let other = Blocks::split(corpus(&[1000]), 10, 0.2, 2);
        assert_ne!(blocks.measured, other.measured);
    }

    #[test]
    fn folders_are_read_recursively_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b/inner.txt"), b"inner").unwrap();
        std::fs::write(dir.path().join("a.txt"), b"first").unwrap();
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        let spec = dir.path().to_str().unwrap();
        let corpus = Corpus::load(spec, 1 << 20).unwrap();
        let names: Vec<&str> = corpus.files.iter().map(|file| file.name.as_str()).collect();
        assert_eq!(names, ["a.txt", "b/inner.txt"]);
        assert!(Corpus::load(spec, 5).unwrap_err().contains("more than `max_corpus`"));
        let missing = dir.path().join("missing");
        assert!(Corpus::load(missing.to_str().unwrap(), 1 << 20).unwrap_err().contains("no such file"));
        let empty = tempfile::tempdir().unwrap();
        assert!(Corpus::load(empty.path().to_str().unwrap(), 1 << 20).unwrap_err().contains("no bytes"));
    }
}
