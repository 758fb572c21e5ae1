//! vault-peer: YCSB core workloads A, B and C against redb and sled, and W:
//! durable blind updates from N concurrent writer threads.
//!
//! The protocol (keys, values, key choice, op mix, timing, output) is specified
//! in peers/vault/README.md; phasebench's own `vault` store implements the same
//! protocol so that the numbers can be compared row by row. Keep the two in
//! step: any change here is a change to the README's protocol section.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hdrhistogram::Histogram;
use redb::ReadableDatabase;

type Res<T> = Result<T, Box<dyn Error>>;

// ---------------------------------------------------------------- generators

/// SplitMix64 (Steele, Lea, Flood 2014), the exact constants of the reference.
#[derive(Clone)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform double in [0, 1): the top 53 bits of one draw.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Fill `buf` with the splitmix64 stream seeded by `seed`: each draw written as
/// 8 little-endian bytes, the last draw truncated to what is left.
fn fill_value(buf: &mut [u8], seed: u64) {
    let mut g = SplitMix64::new(seed);
    for chunk in buf.chunks_mut(8) {
        let w = g.next_u64().to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// FNV-1a 64 over the 8 little-endian bytes of `v` (same as YCSB's fnvhash64).
fn fnv1a_64(v: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_le_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// YCSB's ZipfianGenerator (Gray et al., "Quickly generating billion-record
/// synthetic databases", SIGMOD 1994) over items 0..n with constant theta.
struct Zipfian {
    items: u64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    half_pow_theta: f64,
}

/// zeta(n, theta) = sum_{i=1..n} 1 / i^theta, summed in increasing i in f64.
fn zeta(n: u64, theta: f64) -> f64 {
    let mut sum = 0.0f64;
    for i in 0..n {
        sum += 1.0 / ((i + 1) as f64).powf(theta);
    }
    sum
}

impl Zipfian {
    fn new(items: u64, theta: f64) -> Self {
        let zeta2theta = zeta(2, theta);
        let zetan = zeta(items, theta);
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2theta / zetan);
        Zipfian { items, alpha, zetan, eta, half_pow_theta: 0.5f64.powf(theta) }
    }

    /// Rank for a uniform u in [0, 1); rank 0 is the most popular.
    fn rank(&self, u: f64) -> u64 {
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + self.half_pow_theta {
            return 1;
        }
        let r = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.items - 1)
    }
}

/// YCSB's ScrambledZipfianGenerator, but with the Zipfian taken over `keys`
/// items (see README): index = fnv1a_64(rank) mod keys.
fn scrambled_index(z: &Zipfian, u: f64, keys: u64) -> u64 {
    fnv1a_64(z.rank(u)) % keys
}

const KEY_LEN: usize = 14;

/// `user` + index zero-padded to 10 decimal digits.
fn format_key(buf: &mut [u8; KEY_LEN], index: u64) {
    buf[..4].copy_from_slice(b"user");
    let mut v = index;
    for i in (4..KEY_LEN).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    assert!(v == 0, "key index {index} does not fit in 10 digits");
}

// ---------------------------------------------------------------- stores

const TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("usertable");

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum StoreKind {
    Redb,
    Sled,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Durab {
    Durable,
    None,
}

enum Store {
    Redb(redb::Database),
    Sled(sled::Db),
}

impl Store {
    fn path(kind: StoreKind, dir: &Path) -> PathBuf {
        match kind {
            StoreKind::Redb => dir.join("redb.redb"),
            StoreKind::Sled => dir.join("sled"),
        }
    }

    fn open(kind: StoreKind, dir: &Path) -> Res<Store> {
        let p = Store::path(kind, dir);
        Ok(match kind {
            StoreKind::Redb => Store::Redb(redb::Database::create(&p)?),
            StoreKind::Sled => Store::Sled(sled::Config::new().path(&p).open()?),
        })
    }

    /// Close: for sled, flush then drop; for redb, drop (which writes the
    /// allocator state and fsyncs).
    fn close(self) -> Res<()> {
        match self {
            Store::Redb(db) => drop(db),
            Store::Sled(db) => {
                db.flush()?;
                drop(db);
            }
        }
        Ok(())
    }

    /// Insert every key in index order. redb commits every `redb_batch` keys
    /// (default durability, Immediate); sled inserts all, then flushes once.
    fn preload(&mut self, keys: u64, value_size: usize, seed: u64, redb_batch: u64) -> Res<()> {
        let mut key = [0u8; KEY_LEN];
        let mut val = vec![0u8; value_size];
        match self {
            Store::Redb(db) => {
                let mut i = 0u64;
                while i < keys {
                    let end = i.saturating_add(redb_batch.max(1)).min(keys);
                    let txn = db.begin_write()?; // default durability: Immediate
                    {
                        let mut t = txn.open_table(TABLE)?;
                        for j in i..end {
                            format_key(&mut key, j);
                            fill_value(&mut val, seed ^ j);
                            t.insert(&key[..], &val[..])?;
                        }
                    }
                    txn.commit()?;
                    i = end;
                }
            }
            Store::Sled(db) => {
                for j in 0..keys {
                    format_key(&mut key, j);
                    fill_value(&mut val, seed ^ j);
                    db.insert(&key[..], &val[..])?;
                }
                db.flush()?;
            }
        }
        Ok(())
    }

    #[inline]
    fn read(&self, key: &[u8]) -> Res<Option<Vec<u8>>> {
        match self {
            Store::Redb(db) => {
                let rtx = db.begin_read()?;
                let t = rtx.open_table(TABLE)?;
                let v = t.get(key)?.map(|g| g.value().to_vec());
                Ok(v)
            }
            Store::Sled(db) => Ok(db.get(key)?.map(|iv| iv.to_vec())),
        }
    }

    #[inline]
    fn update(&self, key: &[u8], val: &[u8], d: Durab) -> Res<()> {
        match self {
            Store::Redb(db) => {
                let mut txn = db.begin_write()?;
                txn.set_durability(match d {
                    Durab::Durable => redb::Durability::Immediate,
                    Durab::None => redb::Durability::None,
                })?;
                {
                    let mut t = txn.open_table(TABLE)?;
                    t.insert(key, val)?;
                }
                txn.commit()?;
            }
            Store::Sled(db) => {
                db.insert(key, val)?;
                if d == Durab::Durable {
                    db.flush()?;
                }
            }
        }
        Ok(())
    }
}

/// (apparent, allocated) bytes of every regular file under `p` (or of `p`
/// itself): apparent = st_size, allocated = st_blocks * 512 (files can be
/// sparse: redb's is).
fn disk_bytes(p: &Path) -> (u64, u64) {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return (0, 0);
    };
    if md.is_file() {
        #[cfg(unix)]
        let alloc = std::os::unix::fs::MetadataExt::blocks(&md) * 512;
        #[cfg(not(unix))]
        let alloc = md.len();
        return (md.len(), alloc);
    }
    if !md.is_dir() {
        return (0, 0);
    }
    let mut total = (0, 0);
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let (a, b) = disk_bytes(&e.path());
            total.0 += a;
            total.1 += b;
        }
    }
    total
}

// ---------------------------------------------------------------- CLI

#[derive(Debug)]
struct Args {
    store: StoreKind,
    workload: char,
    durability: Durab,
    keys: u64,
    value_size: usize,
    ops: Option<u64>,
    dir: Option<PathBuf>,
    seed: u64,
    dump_ops: Option<u64>,
    /// Writer threads of workload W.
    writers: u64,
}

const USAGE: &str = "usage: vault-peer --store redb|sled --workload A|B|C --durability durable|none \
[--keys 100000] [--value-size 1024] [--ops N] [--dir DIR] [--seed S]\n\
       vault-peer --store redb|sled --workload W [--durability durable] [--writers 1] \
[--keys 100000] [--value-size 1024] [--ops 20000] [--dir DIR] [--seed S]   (durable concurrent writers)\n\
       vault-peer --workload A|B|C|W --dump-ops N [--writers W] [--keys K] [--value-size V] [--seed S]   (print the op stream, no store)";

/// Most writer threads of workload W.
const MAX_WRITERS: u64 = 1024;

fn parse_u64(s: &str) -> Res<u64> {
    let s = s.replace('_', "");
    Ok(if let Some(h) = s.strip_prefix("0x") { u64::from_str_radix(h, 16)? } else { s.parse::<u64>()? })
}

fn parse_args() -> Res<Args> {
    let mut store = None;
    let mut workload = None;
    let mut durability = None;
    let mut keys = 100_000u64;
    let mut value_size = 1024usize;
    let mut ops = None;
    let mut dir = None;
    let mut seed = 42u64;
    let mut dump_ops = None;
    let mut writers = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let mut val = || -> Res<String> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) => Ok(v),
                None => Err(format!("{flag} needs a value\n{USAGE}").into()),
            }
        };
        match flag.as_str() {
            "--store" => {
                store = Some(match val()?.to_ascii_lowercase().as_str() {
                    "redb" => StoreKind::Redb,
                    "sled" => StoreKind::Sled,
                    o => return Err(format!("unknown store {o:?}").into()),
                })
            }
            "--workload" => {
                workload = Some(match val()?.to_ascii_uppercase().as_str() {
                    "A" => 'A',
                    "B" => 'B',
                    "C" => 'C',
                    "W" => 'W',
                    o => return Err(format!("unknown workload {o:?} (A, B, C or W)").into()),
                })
            }
            "--durability" => {
                durability = Some(match val()?.to_ascii_lowercase().as_str() {
                    "durable" => Durab::Durable,
                    "none" => Durab::None,
                    o => return Err(format!("unknown durability {o:?}").into()),
                })
            }
            "--keys" => keys = parse_u64(&val()?)?,
            "--value-size" => value_size = parse_u64(&val()?)? as usize,
            "--ops" => ops = Some(parse_u64(&val()?)?),
            "--dir" => dir = Some(PathBuf::from(val()?)),
            "--seed" => seed = parse_u64(&val()?)?,
            "--dump-ops" => dump_ops = Some(parse_u64(&val()?)?),
            "--writers" => writers = Some(parse_u64(&val()?)?),
            o => return Err(format!("unknown argument {o:?}\n{USAGE}").into()),
        }
    }
    if dump_ops.is_some() {
        store = store.or(Some(StoreKind::Redb));
        durability = durability.or(Some(if workload == Some('W') { Durab::Durable } else { Durab::None }));
    }
    if workload == Some('W') {
        // W measures durable writes only.
        match durability {
            Some(Durab::None) => {
                return Err("workload W is durable writes only: --durability durable (or leave it out)".into())
            }
            _ => durability = Some(Durab::Durable),
        }
    } else if writers.is_some() {
        return Err("--writers applies to workload W only".into());
    }
    let writers = writers.unwrap_or(1);
    if writers == 0 || writers > MAX_WRITERS {
        return Err(format!("--writers must be in 1..={MAX_WRITERS}").into());
    }
    let (Some(store), Some(workload), Some(durability)) = (store, workload, durability) else {
        return Err(format!("--store, --workload and --durability are required\n{USAGE}").into());
    };
    if keys == 0 || keys > 9_999_999_999 {
        return Err("--keys must be in 1..=9999999999".into());
    }
    Ok(Args { store, workload, durability, keys, value_size, ops, dir, seed, dump_ops, writers })
}

fn default_ops(workload: char, d: Durab) -> u64 {
    match (d, workload) {
        (Durab::Durable, _) => 20_000,
        (Durab::None, 'A') => 50_000,
        _ => 200_000,
    }
}

/// Seed of the operation stream (op choice and key choice).
const OP_STREAM_SALT: u64 = 0x6F70_735F_7374_7265; // "ops_stre"

/// Workload W: writer `t` (from 0) draws from splitmix64(seed ^ WRITERS_SALT ^ t).
const WRITERS_SALT: u64 = 0x7772_6974_6572_735F; // "writers_"

/// Workload W: the generator of writer thread `t`.
fn writer_rng(seed: u64, t: u64) -> SplitMix64 {
    SplitMix64::new(seed ^ WRITERS_SALT ^ t)
}

/// Workload W: one write's key index and value seed, two draws in this order.
/// The key is uniform: floor(u * keys), capped at keys - 1.
fn writer_draw(rng: &mut SplitMix64, keys: u64) -> (u64, u64) {
    let idx = ((rng.next_f64() * keys as f64) as u64).min(keys - 1);
    (idx, rng.next_u64())
}

/// `total` split over `parts` as evenly as possible: the first `total % parts`
/// parts get one more.
fn share(total: u64, parts: u64, index: u64) -> u64 {
    total / parts + u64::from(index < total % parts)
}

fn read_fraction(workload: char) -> f64 {
    match workload {
        'A' => 0.50,
        'B' => 0.95,
        _ => 1.00,
    }
}

fn json_f(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "null".into()
    }
}

fn quantile_us(h: &Histogram<u64>, q: f64) -> String {
    if h.is_empty() {
        "null".into()
    } else {
        json_f(h.value_at_quantile(q) as f64 / 1000.0, 3)
    }
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("vault-peer: error: {e}");
        std::process::exit(1);
    }
}

fn hex16(v: &[u8]) -> String {
    v.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Print the protocol's generated streams (test vectors for other peers).
fn dump(a: &Args, n: u64) {
    let mut val = vec![0u8; a.value_size];
    let mut key = [0u8; KEY_LEN];
    for i in 0..3u64.min(a.keys) {
        format_key(&mut key, i);
        fill_value(&mut val, a.seed ^ i);
        println!("preload {} value[..16]={}", std::str::from_utf8(&key).unwrap(), hex16(&val));
    }
    if a.workload == 'W' {
        // First n writes of each writer thread (warm-up ones first).
        for t in 0..a.writers {
            let mut rng = writer_rng(a.seed, t);
            for seq in 0..n {
                let (idx, vseed) = writer_draw(&mut rng, a.keys);
                format_key(&mut key, idx);
                fill_value(&mut val, vseed);
                println!("writer {t} {seq} update {} value[..16]={}", std::str::from_utf8(&key).unwrap(), hex16(&val));
            }
        }
        return;
    }
    let zipf = Zipfian::new(a.keys, 0.99);
    println!("zetan={:.12} eta={:.12}", zipf.zetan, zipf.eta);
    let mut rng = SplitMix64::new(a.seed ^ OP_STREAM_SALT);
    let rf = read_fraction(a.workload);
    for seq in 0..n {
        let u_op = rng.next_f64();
        let u_key = rng.next_f64();
        let rank = zipf.rank(u_key);
        let idx = fnv1a_64(rank) % a.keys;
        format_key(&mut key, idx);
        let k = std::str::from_utf8(&key).unwrap();
        if u_op < rf {
            println!("{seq} read {k} rank={rank} u_op={u_op:.6} u_key={u_key:.6}");
        } else {
            fill_value(&mut val, a.seed ^ idx ^ ((seq + 1) << 34));
            println!("{seq} update {k} rank={rank} u_op={u_op:.6} u_key={u_key:.6} value[..16]={}", hex16(&val));
        }
    }
}

fn real_main() -> Res<()> {
    let a = parse_args()?;
    if let Some(n) = a.dump_ops {
        dump(&a, n);
        return Ok(());
    }
    let ops = a.ops.unwrap_or_else(|| default_ops(a.workload, a.durability));
    let warmup = ops / 10;
    if a.workload == 'W' && ops < a.writers {
        return Err(format!("--ops {ops} is fewer than --writers {}: every writer needs an operation", a.writers).into());
    }
    let store_name = match a.store {
        StoreKind::Redb => "redb",
        StoreKind::Sled => "sled",
    };
    let dur_name = match a.durability {
        Durab::Durable => "durable",
        Durab::None => "none",
    };

    // Database directory: --dir (kept), or a temporary one (removed at exit).
    let _tmp;
    let dir: PathBuf = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            let base = std::env::var_os("VAULT_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
            std::fs::create_dir_all(&base)?;
            let t = tempfile::Builder::new().prefix("vault-peer-").tempdir_in(base)?;
            let p = t.path().to_path_buf();
            _tmp = t;
            p
        }
    };
    let db_path = Store::path(a.store, &dir);
    if db_path.exists() {
        return Err(format!("{} already exists: give a fresh --dir", db_path.display()).into());
    }

    // Preload (not timed), then close so everything is on disk.
    let t0 = Instant::now();
    let mut st = Store::open(a.store, &dir)?;
    // A, B, C: 1000 keys per redb transaction; W: one transaction for all.
    st.preload(a.keys, a.value_size, a.seed, if a.workload == 'W' { a.keys } else { 1000 })?;
    st.close()?;
    let preload_s = t0.elapsed().as_secs_f64();
    let (preload_bytes, _) = disk_bytes(&db_path);
    eprintln!(
        "vault-peer: {store_name} {} {dur_name}: preloaded {} keys x {} B in {preload_s:.2}s ({preload_bytes} bytes on disk); \
         {warmup} warm-up + {ops} measured ops{}",
        a.workload,
        a.keys,
        a.value_size,
        if a.workload == 'W' { format!(" over {} writer thread(s)", a.writers) } else { String::new() }
    );

    // Reopen: the measurement starts from the on-disk state, cold app cache.
    let st = Store::open(a.store, &dir)?;
    if a.workload == 'W' {
        return run_writers(&a, st, ops, warmup, &db_path, preload_s);
    }

    let zipf = Zipfian::new(a.keys, 0.99);
    let mut rng = SplitMix64::new(a.seed ^ OP_STREAM_SALT);
    let rf = read_fraction(a.workload);
    let mut key = [0u8; KEY_LEN];
    let mut val = vec![0u8; a.value_size];
    let mut rh = Histogram::<u64>::new(3)?;
    let mut uh = Histogram::<u64>::new(3)?;
    let mut n_reads = 0u64;
    let mut n_updates = 0u64;
    let mut elapsed_s = 0.0;

    let total = warmup + ops;
    let mut t_start = Instant::now();
    for seq in 0..total {
        if seq == warmup {
            t_start = Instant::now();
        }
        let measured = seq >= warmup;
        // Exactly two draws per op, in this order: op choice, then key choice.
        let is_read = rng.next_f64() < rf;
        let idx = scrambled_index(&zipf, rng.next_f64(), a.keys);
        format_key(&mut key, idx);
        if is_read {
            let t = Instant::now();
            let v = st.read(&key)?;
            let ns = t.elapsed().as_nanos() as u64;
            match v {
                Some(v) if v.len() == a.value_size => {}
                Some(v) => return Err(format!("read {idx}: {} bytes, expected {}", v.len(), a.value_size).into()),
                None => return Err(format!("read {idx}: key missing").into()),
            }
            if measured {
                rh.record(ns.max(1))?;
                n_reads += 1;
            }
        } else {
            fill_value(&mut val, a.seed ^ idx ^ ((seq + 1) << 34));
            let t = Instant::now();
            st.update(&key, &val, a.durability)?;
            let ns = t.elapsed().as_nanos() as u64;
            if measured {
                uh.record(ns.max(1))?;
                n_updates += 1;
            }
        }
        if seq + 1 == total {
            elapsed_s = t_start.elapsed().as_secs_f64();
        }
    }
    if ops == 0 {
        elapsed_s = 0.0;
    }

    st.close()?;
    let (db_bytes, db_alloc_bytes) = disk_bytes(&db_path);

    let mut s = String::new();
    write!(
        s,
        "{{\"bench\":\"{store_name}\",\"workload\":\"{}\",\"durability\":\"{dur_name}\",\"keys\":{},\"value_size\":{},\"ops\":{ops},\
         \"elapsed_s\":{},\"throughput_ops_s\":{},\
         \"read_p50_us\":{},\"read_p99_us\":{},\"read_p999_us\":{},\
         \"update_p50_us\":{},\"update_p99_us\":{},\"db_bytes\":{db_bytes},\"db_alloc_bytes\":{db_alloc_bytes},\
         \"reads\":{n_reads},\"updates\":{n_updates},\"warmup_ops\":{warmup},\"seed\":{},\"preload_s\":{}}}",
        a.workload,
        a.keys,
        a.value_size,
        json_f(elapsed_s, 6),
        if elapsed_s > 0.0 { json_f(ops as f64 / elapsed_s, 1) } else { "null".into() },
        quantile_us(&rh, 0.50),
        quantile_us(&rh, 0.99),
        quantile_us(&rh, 0.999),
        quantile_us(&uh, 0.50),
        quantile_us(&uh, 0.99),
        a.seed,
        json_f(preload_s, 3),
    )?;
    println!("{s}");
    Ok(())
}

/// A barrier that can be called off: if a writer thread cannot be started,
/// the ones already waiting are released instead of waiting forever.
struct StartLine {
    state: std::sync::Mutex<(u64, bool)>, // (arrived, called off)
    changed: std::sync::Condvar,
    parties: u64,
}

impl StartLine {
    fn new(parties: u64) -> Self {
        StartLine { state: std::sync::Mutex::new((0, false)), changed: std::sync::Condvar::new(), parties }
    }

    /// Waits until every party has arrived (true) or the start is called off (false).
    fn arrive(&self) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 += 1;
        self.changed.notify_all();
        loop {
            if st.1 {
                return false;
            }
            if st.0 >= self.parties {
                return true;
            }
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn call_off(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.changed.notify_all();
    }
}

/// One writer thread's measured part.
struct WriterTally {
    hist: Histogram<u64>,
    updates: u64,
    /// When its first measured write began and its last one ended.
    first: Option<Instant>,
    last: Option<Instant>,
}

/// Workload W: `a.writers` threads, each doing its share of `warmup` writes,
/// then (after all have warmed up) its share of `ops` measured writes: blind
/// updates of uniform keys, each acknowledged only when durable (redb: one
/// write transaction per update committed with Durability::Immediate, so the
/// threads queue on begin_write; sled: insert, then flush()).
fn run_writers(a: &Args, st: Store, ops: u64, warmup: u64, db_path: &Path, preload_s: f64) -> Res<()> {
    let writers = a.writers;
    let store_name = match a.store {
        StoreKind::Redb => "redb",
        StoreKind::Sled => "sled",
    };
    // Every writer waits here after its warm-up, so the measured parts start together.
    let warmed = StartLine::new(writers);
    // Thread results carry their errors as text (Box<dyn Error> is not Send).
    let results: Vec<Result<WriterTally, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|t| {
                let (st, warmed) = (&st, &warmed);
                let (my_warmup, my_ops) = (share(warmup, writers, t), share(ops, writers, t));
                std::thread::Builder::new()
                    .name(format!("writer-{t}"))
                    .spawn_scoped(scope, move || -> Result<WriterTally, String> {
                        let mut rng = writer_rng(a.seed, t);
                        let mut key = [0u8; KEY_LEN];
                        let mut val = vec![0u8; a.value_size];
                        let hist = Histogram::<u64>::new(3).map_err(|e| e.to_string());
                        let mut tally = WriterTally { hist: hist?, updates: 0, first: None, last: None };
                        // An error must not leave the others waiting at the barrier:
                        // finish the warm-up loop, remember the error, wait, then return it.
                        let mut failed = None;
                        for _ in 0..my_warmup {
                            let (idx, vseed) = writer_draw(&mut rng, a.keys);
                            format_key(&mut key, idx);
                            fill_value(&mut val, vseed);
                            if let Err(e) = st.update(&key, &val, Durab::Durable) {
                                failed = Some(e.to_string());
                                break;
                            }
                        }
                        let go = warmed.arrive();
                        if let Some(e) = failed {
                            return Err(format!("writer {t}, warm-up: {e}"));
                        }
                        if !go {
                            return Err(format!("writer {t}: called off (another writer could not start)"));
                        }
                        for _ in 0..my_ops {
                            let (idx, vseed) = writer_draw(&mut rng, a.keys);
                            format_key(&mut key, idx);
                            fill_value(&mut val, vseed);
                            let t0 = Instant::now();
                            st.update(&key, &val, Durab::Durable).map_err(|e| format!("writer {t}: {e}"))?;
                            let t1 = Instant::now();
                            tally.first.get_or_insert(t0);
                            tally.last = Some(t1);
                            tally.hist.record(((t1 - t0).as_nanos() as u64).max(1)).map_err(|e| e.to_string())?;
                            tally.updates += 1;
                        }
                        Ok(tally)
                    })
            })
            .collect();
        if handles.iter().any(|h| h.is_err()) {
            warmed.call_off();
        }
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| Err("a writer thread panicked".into())),
                Err(e) => Err(format!("cannot start a writer thread: {e}")),
            })
            .collect()
    });

    let mut uh = Histogram::<u64>::new(3)?;
    let mut n_updates = 0u64;
    let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
    for r in results {
        let tally = r?;
        uh.add(&tally.hist)?;
        n_updates += tally.updates;
        if let Some(f) = tally.first {
            first = Some(first.map_or(f, |x| x.min(f)));
        }
        if let Some(l) = tally.last {
            last = Some(last.map_or(l, |x| x.max(l)));
        }
    }
    // From the start of the first measured write (of any thread) to the end of the last.
    let elapsed_s = match (first, last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => 0.0,
    };

    st.close()?;
    let (db_bytes, db_alloc_bytes) = disk_bytes(db_path);

    let mut s = String::new();
    write!(
        s,
        "{{\"bench\":\"{store_name}\",\"workload\":\"W\",\"durability\":\"durable\",\"writers\":{writers},\
         \"keys\":{},\"value_size\":{},\"ops\":{ops},\"elapsed_s\":{},\"throughput_ops_s\":{},\
         \"update_p50_us\":{},\"update_p99_us\":{},\"update_p999_us\":{},\"update_max_us\":{},\
         \"db_bytes\":{db_bytes},\"db_alloc_bytes\":{db_alloc_bytes},\"updates\":{n_updates},\"warmup_ops\":{warmup},\
         \"seed\":{},\"preload_s\":{}}}",
        a.keys,
        a.value_size,
        json_f(elapsed_s, 6),
        if elapsed_s > 0.0 { json_f(n_updates as f64 / elapsed_s, 1) } else { "null".into() },
        quantile_us(&uh, 0.50),
        quantile_us(&uh, 0.99),
        quantile_us(&uh, 0.999),
        quantile_us(&uh, 1.0),
        a.seed,
        json_f(preload_s, 3),
    )?;
    println!("{s}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference() {
        // Reference values for seed 1234567 (from the C reference splitmix64.c).
        let mut g = SplitMix64::new(1234567);
        assert_eq!(g.next_u64(), 6457827717110365317);
        assert_eq!(g.next_u64(), 3203168211198807973);
    }

    #[test]
    fn fnv_known() {
        // FNV-1a 64 of 8 zero bytes.
        let mut h: u64 = 0xcbf29ce484222325;
        for _ in 0..8 {
            h = h.wrapping_mul(0x100000001b3);
        }
        assert_eq!(fnv1a_64(0), h);
    }

    #[test]
    fn key_format() {
        let mut k = [0u8; KEY_LEN];
        format_key(&mut k, 42);
        assert_eq!(&k, b"user0000000042");
    }

    #[test]
    fn shares_add_up() {
        for (total, parts) in [(20_000, 1), (20_000, 8), (20_000, 32), (2_000, 32), (7, 3), (0, 4)] {
            let sum: u64 = (0..parts).map(|i| share(total, parts, i)).sum();
            assert_eq!(sum, total);
            let (lo, hi) = (share(total, parts, parts - 1), share(total, parts, 0));
            assert!(hi - lo <= 1);
        }
    }

    #[test]
    fn writer_keys_uniform_in_range() {
        let mut g = writer_rng(42, 3);
        let mut low = 0;
        for _ in 0..10_000 {
            let (idx, _) = writer_draw(&mut g, 1000);
            assert!(idx < 1000);
            low += u32::from(idx < 500);
        }
        assert!((4_700..5_300).contains(&low), "{low}");
        // Different writers draw different streams.
        assert_ne!(writer_draw(&mut writer_rng(42, 0), 1 << 40), writer_draw(&mut writer_rng(42, 1), 1 << 40));
    }

    #[test]
    fn zipf_in_range_and_skewed() {
        let z = Zipfian::new(1000, 0.99);
        let mut g = SplitMix64::new(7);
        let mut zero = 0;
        for _ in 0..100_000 {
            let r = z.rank(g.next_f64());
            assert!(r < 1000);
            if r == 0 {
                zero += 1;
            }
        }
        // P(rank 0) = 1/zeta(1000, .99) ~ 0.13
        assert!(zero > 10_000 && zero < 16_000, "{zero}");
    }
}
