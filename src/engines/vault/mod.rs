//! The `vault` engine: a crash-safe, Bitcask-style key-value store
//! (append-only segments with CRC32C per record, an in-memory index, hint
//! files, compaction, a lock file), with a read cache whose layout
//! experiments can flip, and the YCSB core workloads.
//!
//! `docs/vault-format.md` is the on-disk format; `store/` the store;
//! `workload.rs` key choice and operation mixes.

pub mod cache;
pub mod format;
pub mod fs;
pub mod simfs;
pub mod store;
pub mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::catalog::{Better, Derive, EngineDecl, MetricDecl, OpDecl, OptionDecl, ValueType};
use super::rng::SplitMix;
use super::{
    Engine, EngineError, EngineKind, EngineSetup, Invalid, OpWorker, Operation, Params, Payload, Recorder, Value,
};
use crate::quantity::Dim;
pub use cache::CacheLayout;
pub use store::{SyncPolicy, Vault, VaultError, VaultOptions};
use workload::{KeyChooser, Mix, Step};

/// FNV-1a over bytes: shard choice and key scrambling.
pub fn format_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

/// Parses `always`, `none`, `group` or `group(2ms)`.
pub fn parse_sync(text: &str) -> Result<SyncPolicy, String> {
    let text = text.trim();
    match text {
        "always" => return Ok(SyncPolicy::Always),
        "none" => return Ok(SyncPolicy::None),
        "group" => return Ok(SyncPolicy::Group(Duration::from_millis(2))),
        _ => {}
    }
    let window = text
        .strip_prefix("group(")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| format!("`{text}` is not a sync policy: write always, none, group or group(2ms)"))?;
    let quantity = crate::quantity::parse_quantity(window).map_err(|error| format!("group window: {error}"))?;
    if quantity.dim() != Dim::TIME || !(0.0..=1.0).contains(&quantity.base_value()) {
        return Err(format!("group window `{window}` must be a duration of at most 1s, such as 2ms"));
    }
    Ok(SyncPolicy::Group(Duration::from_secs_f64(quantity.base_value())))
}

const KEYS: OptionDecl = OptionDecl {
    name: "keys",
    ty: ValueType::Count { min: 1, max: 100_000_000 },
    default: Some("100000"),
    doc: "keys in the data set (user0000000000, user0000000001, …), preloaded before measuring",
};
const VALUE_SIZE: OptionDecl =
    OptionDecl { name: "value_size", ty: ValueType::Size, default: Some("1KiB"), doc: "bytes per value" };
const DISTRIBUTION: OptionDecl = OptionDecl {
    name: "distribution",
    ty: ValueType::Choice(&["uniform", "zipfian", "latest"]),
    default: Some("zipfian"),
    doc: "key choice: uniform, YCSB's scrambled zipfian (theta 0.99), or latest (zipfian over recent inserts)",
};
const PRELOAD: OptionDecl = OptionDecl {
    name: "preload",
    ty: ValueType::Bool,
    default: Some("on"),
    doc: "write the missing keys before measuring (untimed, synced once)",
};

macro_rules! with_run_metrics {
    ($($name:literal),*) => {
        &[$($name,)* "cache_hit_rate", "bytes_written", "write_amplification", "syncs", "compactions"]
    };
}

static DECL: EngineDecl = EngineDecl {
    kind: "vault",
    doc: "a crash-safe log-structured key-value store (Bitcask design) with a read cache and YCSB workloads",
    options: &[
        OptionDecl {
            name: "dir",
            ty: ValueType::Text,
            default: Some(""),
            doc: "vault directory (empty: a fresh temporary one, removed afterwards)",
        },
        OptionDecl {
            name: "sync",
            ty: ValueType::Text,
            default: Some("always"),
            doc: "always (synced before acknowledged), group or group(2ms) (writers share syncs: those arriving during a sync form the next group; the bound caps how long a leader gathers), none (a crash loses recent writes)",
        },
        OptionDecl {
            name: "segment_size",
            ty: ValueType::Size,
            default: Some("64MiB"),
            doc: "a segment is sealed and a new one started at this size",
        },
        OptionDecl { name: "cache_size", ty: ValueType::Size, default: Some("64MiB"), doc: "read cache capacity (0: none)" },
        OptionDecl {
            name: "compression",
            ty: ValueType::Choice(&["none", "lz4", "zstd"]),
            default: Some("none"),
            doc: "values compressed on disk with the codec engine's coders (zstd at level 3), each kept compressed only if that saves bytes; the checksum covers the stored bytes",
        },
        OptionDecl {
            name: "compact_at",
            ty: ValueType::Number { min: 0.0, max: 1.0 },
            default: Some("0"),
            doc: "compact in the background once dead bytes (replaced and deleted records) reach this share of all record bytes and at least one segment's worth, e.g. 50%; 0: never",
        },
        OptionDecl {
            name: "cache_layout",
            ty: ValueType::Choice(&["global", "sharded"]),
            default: Some("sharded"),
            doc: "global: one lock; sharded: lock striping, each shard on its own cache lines",
        },
        OptionDecl {
            name: "cache_shards",
            ty: ValueType::Count { min: 1, max: 4096 },
            default: Some("16"),
            doc: "shards of a sharded cache",
        },
    ],
    ops: &[
        OpDecl {
            name: "read",
            doc: "get a key chosen by `distribution`",
            params: &[KEYS, VALUE_SIZE, DISTRIBUTION, PRELOAD],
            metrics: with_run_metrics!(),
        },
        OpDecl {
            name: "write",
            doc: "overwrite a key chosen by `distribution` with a fresh value",
            params: &[KEYS, VALUE_SIZE, DISTRIBUTION, PRELOAD],
            metrics: with_run_metrics!(),
        },
        OpDecl {
            name: "delete",
            doc: "delete the preloaded keys one after another (an error once all are gone)",
            params: &[KEYS, VALUE_SIZE, PRELOAD],
            metrics: with_run_metrics!(),
        },
        OpDecl {
            name: "mixed",
            doc: "one YCSB core operation per call: mix A (50% read/50% update), B (95/5), C (read only), \
                  D (95% read latest/5% insert), E (95% scan/5% insert), F (50% read/50% read-modify-write)",
            params: &[
                KEYS,
                VALUE_SIZE,
                DISTRIBUTION,
                PRELOAD,
                OptionDecl {
                    name: "mix",
                    ty: ValueType::Choice(&["A", "B", "C", "D", "E", "F"]),
                    default: Some("A"),
                    doc: "the YCSB core workload",
                },
                OptionDecl {
                    name: "scan_length",
                    ty: ValueType::Count { min: 1, max: 100_000 },
                    default: Some("100"),
                    doc: "longest scan of mix E (lengths uniform from 1)",
                },
            ],
            metrics: with_run_metrics!("read_latency", "update_latency", "insert_latency", "scan_latency"),
        },
    ],
    metrics: &[
        MetricDecl::time("read_latency", "time of the reads of a mixed workload"),
        MetricDecl::time("update_latency", "time of the updates (and read-modify-writes) of a mixed workload"),
        MetricDecl::time("insert_latency", "time of the inserts of a mixed workload"),
        MetricDecl::time("scan_latency", "time of the scans of a mixed workload"),
        MetricDecl::scalar("cache_hit_rate", Dim::NONE, Better::Higher, "reads served by the read cache, of all reads").derived(Derive::Share { part: "cache_hits", other: "cache_misses" }),
        MetricDecl::scalar("bytes_written", Dim::BYTES, Better::Lower, "bytes written to disk during the run")
            .derived(Derive::Counter("disk_bytes")),
        MetricDecl::scalar("write_amplification", Dim::NONE, Better::Lower, "bytes written to disk per byte of keys and values written").derived(Derive::Quotient { numerator: "disk_bytes", denominator: "user_bytes" }),
        MetricDecl::scalar("syncs", Dim::NONE, Better::Lower, "fsync calls during the run").derived(Derive::Counter("syncs")),
        MetricDecl::scalar("compactions", Dim::NONE, Better::Lower, "compactions that ran during the run (compact_at)").derived(Derive::Counter("compactions")),
    ],
};

/// The `vault` engine kind.
pub struct VaultKind;

fn text<'a>(params: &'a Params, name: &str) -> &'a str {
    match params.get(name) {
        Some(Value::Text(text)) => text,
        _ => "",
    }
}

fn number(params: &Params, name: &str) -> u64 {
    match params.get(name) {
        Some(Value::Count(n) | Value::Bytes(n)) => *n,
        _ => 0,
    }
}

fn real(params: &Params, name: &str) -> f64 {
    match params.get(name) {
        Some(Value::Number(x)) => *x,
        _ => 0.0,
    }
}

fn flag(params: &Params, name: &str) -> bool {
    !matches!(params.get(name), Some(Value::Bool(false)))
}

/// Checks a vault directory option without opening it (which would take its lock).
fn check_dir(dir: &str) -> Result<(), Invalid> {
    if dir.is_empty() {
        return Ok(());
    }
    let path = std::path::Path::new(dir);
    let invalid = |message: String, hint: &str| Invalid { key: "dir", message, hint: Some(hint.into()) };
    if path.exists() && !path.is_dir() {
        return Err(invalid(format!("`{dir}` is a file, not a directory"), "name a vault directory or a new one"));
    }
    if path.join(format::MARKER).is_file() {
        return store::probe_lock(path).map_err(|error| invalid(error.to_string(), "close the other process first"));
    }
    if path.is_dir() && !path.join(format::MARKER).is_file() {
        let empty = std::fs::read_dir(path).map(|mut entries| entries.next().is_none()).unwrap_or(false);
        if !empty {
            return Err(invalid(
                format!("`{dir}` is not a vault: it holds other files and no VAULT marker"),
                "name an empty or new directory, or an existing vault",
            ));
        }
    }
    Ok(())
}

impl EngineKind for VaultKind {
    fn decl(&self) -> &'static EngineDecl {
        &DECL
    }

    fn validate(&self, options: &Params) -> Result<(), Invalid> {
        parse_sync(text(options, "sync")).map_err(|message| Invalid {
            key: "sync",
            message,
            hint: Some("always, none, group or group(2ms)".into()),
        })?;
        if number(options, "segment_size") < 4096 {
            return Err(Invalid {
                key: "segment_size",
                message: "segments must be at least 4KiB".into(),
                hint: Some("the default is 64MiB".into()),
            });
        }
        check_dir(text(options, "dir"))
    }

    fn create(&self, setup: &EngineSetup) -> Result<Arc<dyn Engine>, EngineError> {
        let options = &setup.options;
        let sync = parse_sync(text(options, "sync")).map_err(EngineError::new)?;
        let (dir, temporary) = match text(options, "dir") {
            "" => (fresh_temporary_dir(), true),
            dir => (PathBuf::from(dir), false),
        };
        let vault = Vault::open(
            &dir,
            VaultOptions {
                sync,
                segment_size: number(options, "segment_size"),
                cache_bytes: number(options, "cache_size") as usize,
                cache_layout: if text(options, "cache_layout") == "global" {
                    CacheLayout::Global
                } else {
                    CacheLayout::Sharded
                },
                cache_shards: number(options, "cache_shards").max(1) as usize,
                compression: match text(options, "compression") {
                    "lz4" => format::Codec::Lz4,
                    "zstd" => format::Codec::Zstd,
                    _ => format::Codec::Plain,
                },
                compact_at: real(options, "compact_at"),
                ..VaultOptions::default()
            },
        )
        .map_err(|error| EngineError::new(error.to_string()))?;
        let vault = Arc::new(vault);
        let compactor = (real(options, "compact_at") > 0.0).then(|| Compactor::start(Arc::clone(&vault)));
        Ok(Arc::new(VaultEngine { vault, dir, temporary, seed: setup.seed, compactor }))
    }
}

/// A temporary vault directory that no other engine instance uses.
fn fresh_temporary_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("phasebench-vault-{}-{n}", std::process::id()))
}

struct VaultEngine {
    vault: Arc<Vault>,
    dir: PathBuf,
    temporary: bool,
    seed: u64,
    compactor: Option<Compactor>,
}

/// A thread that compacts the vault whenever dead bytes pass `compact_at`.
struct Compactor {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Compactor {
    /// How often the thread looks at the vault's dead bytes.
    const PERIOD: Duration = Duration::from_millis(10);

    fn start(vault: Arc<Vault>) -> Compactor {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("vault-compactor".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    // A failed compaction leaves the old segments in use; the
                    // writes that need them report any lasting trouble.
                    if !matches!(vault.compact_if_due(), Ok(true)) {
                        std::thread::sleep(Compactor::PERIOD);
                    }
                }
            })
            .ok();
        Compactor { stop, thread }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for VaultEngine {
    fn drop(&mut self) {
        self.compactor.take();
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Key `index` as the workloads name it.
pub fn key_name(index: u64) -> Vec<u8> {
    format!("user{index:010}").into_bytes()
}

/// Fills `value` with bytes derived from `seed`.
pub fn fill_value(value: &mut [u8], seed: u64) {
    let mut state = seed;
    for chunk in value.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

impl Engine for VaultEngine {
    fn operation(&self, op: &str, params: &Params) -> Result<Arc<dyn Operation>, EngineError> {
        let keys = number(params, "keys").max(1);
        let value_size = number(params, "value_size") as usize;
        if flag(params, "preload") && (self.vault.len() as u64) < keys {
            let mut value = vec![0_u8; value_size];
            for index in 0..keys {
                let key = key_name(index);
                if self.vault.get(&key).map_err(|e| EngineError::new(e.to_string()))?.is_none() {
                    fill_value(&mut value, self.seed ^ index);
                    self.vault.put_unsynced(&key, &value).map_err(|e| EngineError::new(e.to_string()))?;
                }
            }
            self.vault.sync().map_err(|e| EngineError::new(e.to_string()))?;
            // The preload's work is not the run's.
            store::take_thread_stats();
        }
        let mix = match op {
            "read" => Mix::single(Step::Read),
            "write" => Mix::single(Step::Update),
            "delete" => Mix::single(Step::Delete),
            "mixed" => Mix::ycsb(text(params, "mix")).ok_or_else(|| EngineError::new("unknown YCSB mix"))?,
            other => return Err(EngineError::new(format!("vault has no operation `{other}`"))),
        };
        let distribution = match text(params, "distribution") {
            "" => "zipfian",
            other => other,
        };
        Ok(Arc::new(VaultOperation {
            vault: Arc::clone(&self.vault),
            chooser: Arc::new(KeyChooser::new(distribution, keys)),
            mix,
            value_size,
            scan_length: number(params, "scan_length").max(1),
            inserted: Arc::new(AtomicU64::new(keys)),
            deleted: Arc::new(AtomicU64::new(0)),
            per_step_metrics: op == "mixed",
            piped: match op {
                "write" => Piped::Write,
                "read" => Piped::Read,
                _ => Piped::PassOn,
            },
        }))
    }
}

/// What the operation does as a workflow step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Piped {
    /// Stores the payload (under its key, or a chosen one) and passes it on.
    Write,
    /// Reads the payload's key (or a chosen one) and passes on what it holds.
    Read,
    /// Runs as usual and passes the payload on unchanged.
    PassOn,
}

struct VaultOperation {
    vault: Arc<Vault>,
    chooser: Arc<KeyChooser>,
    mix: Mix,
    value_size: usize,
    scan_length: u64,
    /// Keys that exist: the preloaded ones and every insert so far.
    inserted: Arc<AtomicU64>,
    /// Next preloaded key the `delete` operation removes.
    deleted: Arc<AtomicU64>,
    per_step_metrics: bool,
    piped: Piped,
}

impl Operation for VaultOperation {
    fn worker(&self, _index: usize, seed: u64) -> Result<Box<dyn OpWorker>, EngineError> {
        Ok(Box::new(VaultWorker {
            vault: Arc::clone(&self.vault),
            chooser: Arc::clone(&self.chooser),
            mix: self.mix,
            value: vec![0_u8; self.value_size],
            scan_length: self.scan_length,
            inserted: Arc::clone(&self.inserted),
            deleted: Arc::clone(&self.deleted),
            per_step_metrics: self.per_step_metrics,
            piped: self.piped,
            rng: SplitMix::new(seed),
        }))
    }
}

struct VaultWorker {
    vault: Arc<Vault>,
    chooser: Arc<KeyChooser>,
    mix: Mix,
    value: Vec<u8>,
    scan_length: u64,
    inserted: Arc<AtomicU64>,
    deleted: Arc<AtomicU64>,
    per_step_metrics: bool,
    piped: Piped,
    rng: SplitMix,
}

impl VaultWorker {
    fn step(&mut self, step: Step) -> Result<(), EngineError> {
        let fail = |error: VaultError| EngineError::new(error.to_string());
        let existing = self.inserted.load(Ordering::Relaxed);
        match step {
            Step::Read => {
                let key = key_name(self.chooser.next(&mut self.rng, existing));
                if self.vault.get(&key).map_err(fail)?.is_none() {
                    return Err(EngineError::new("a chosen key has no value"));
                }
            }
            Step::Update => {
                let key = key_name(self.chooser.next(&mut self.rng, existing));
                fill_value(&mut self.value, self.rng.next_u64());
                self.vault.put(&key, &self.value).map_err(fail)?;
            }
            Step::ReadModifyWrite => {
                let key = key_name(self.chooser.next(&mut self.rng, existing));
                let old =
                    self.vault.get(&key).map_err(fail)?.ok_or_else(|| EngineError::new("a chosen key has no value"))?;
                let kept = self.value.len().min(old.len());
                self.value[..kept].copy_from_slice(&old[..kept]);
                let salt = self.rng.next_u64().to_le_bytes();
                for (byte, s) in self.value.iter_mut().zip(salt.iter().cycle()) {
                    *byte ^= s;
                }
                self.vault.put(&key, &self.value).map_err(fail)?;
            }
            Step::Insert => {
                let index = self.inserted.fetch_add(1, Ordering::Relaxed);
                fill_value(&mut self.value, self.rng.next_u64());
                self.vault.put(&key_name(index), &self.value).map_err(fail)?;
            }
            Step::Scan => {
                let start = key_name(self.chooser.next(&mut self.rng, existing));
                let length = 1 + self.rng.below(self.scan_length);
                self.vault.scan(&start, length as usize).map_err(fail)?;
            }
            Step::Delete => {
                let index = self.deleted.fetch_add(1, Ordering::Relaxed);
                if index >= existing {
                    return Err(EngineError::new("every key is deleted already"));
                }
                self.vault.delete(&key_name(index)).map_err(fail)?;
            }
        }
        Ok(())
    }
}

impl OpWorker for VaultWorker {
    fn call(&mut self, recorder: &mut Recorder) -> Result<(), EngineError> {
        let step = self.mix.choose(&mut self.rng);
        let start = Instant::now();
        let result = self.step(step);
        if self.per_step_metrics && result.is_ok() {
            recorder.record_duration(step.metric(), start.elapsed());
        }
        record_stats(recorder, &self.vault);
        result
    }

    fn pipe(&mut self, recorder: &mut Recorder, input: Payload) -> Result<Payload, EngineError> {
        if self.piped == Piped::PassOn {
            self.call(recorder)?;
            return Ok(input);
        }
        let fail = |error: VaultError| EngineError::new(error.to_string());
        let key = if input.key.is_empty() {
            key_name(self.chooser.next(&mut self.rng, self.inserted.load(Ordering::Relaxed)))
        } else {
            input.key
        };
        let result = match self.piped {
            Piped::Write => {
                let data = if input.data.is_empty() {
                    fill_value(&mut self.value, self.rng.next_u64());
                    self.value.clone()
                } else {
                    input.data
                };
                self.vault.put(&key, &data).map_err(fail).map(|()| Payload { key, data })
            }
            _ => match self.vault.get(&key).map_err(fail) {
                Ok(Some(value)) => Ok(Payload { key, data: value.to_vec() }),
                Ok(None) => Err(EngineError::new(format!(
                    "workflow read: no value for key `{}`",
                    String::from_utf8_lossy(&key)
                ))),
                Err(error) => Err(error),
            },
        };
        record_stats(recorder, &self.vault);
        result
    }
}

/// The store's counters of this thread's work since the last call, with
/// those of background compactions since any worker last reported.
fn record_stats(recorder: &mut Recorder, vault: &Vault) {
    let mut stats = store::take_thread_stats();
    stats.add(vault.take_background());
    recorder.count("compactions", stats.compactions);
    recorder.count("cache_hits", stats.cache_hits);
    recorder.count("cache_misses", stats.cache_misses);
    recorder.count("user_bytes", stats.user_bytes);
    recorder.count("disk_bytes", stats.disk_bytes);
    recorder.count("syncs", stats.syncs);
}
