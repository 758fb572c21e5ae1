//! The codec engine: its ratio for zstd level 3 on the built-in corpus is
//! the zstd library's on the same blocks; a full pass decompresses every
//! block of a user's folder back to its bytes under every algorithm;
//! deliberately corrupted frames are reported, never passed; workflows pass
//! data through it; the scenario runs.

mod common;

use common::{phasebench, root, run, status, Scenario};
use phasebench::engines::codec::{Algorithm, Coder, Corpus, Settings};
use phasebench::engines::{self, EngineSetup, Params, Payload, Recorder, Value};

const BLOCK: usize = 64 * 1024;

/// Blocks of `size` bytes of each built-in file, split here independently of the engine.
fn builtin_blocks(size: usize) -> Vec<Vec<u8>> {
    let corpus = Corpus::builtin().expect("built-in corpus");
    corpus.files.iter().flat_map(|file| file.data.chunks(size).map(<[u8]>::to_vec)).collect()
}

fn scalar(record: &phasebench::results::RunRecord, metric: &str) -> f64 {
    record.metrics[metric].value.unwrap_or_else(|| panic!("`{metric}` has no value"))
}

#[test]
fn zstd_level_3_ratio_matches_the_zstd_library_on_the_same_blocks() {
    let blocks = builtin_blocks(BLOCK);
    let plain: usize = blocks.iter().map(Vec::len).sum();
    let packed: usize = blocks.iter().map(|block| zstd::bulk::compress(block, 3).expect("zstd").len()).sum();
    let expected = plain as f64 / packed as f64;

    // As many calls as blocks cover each block once, whatever the callers' interleaving.
    let scenario = Scenario::new(&format!(
        "scenario: library
engines:
  z: {{ kind: codec, algorithm: zstd, level: 3 }}
phases:
  - name: p
    workloads:
      - {{ name: c, engine: z, op: compress, iterations: {}, warmup: 0x, load: {{ concurrency: 2 }} }}
",
        blocks.len()
    ));
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    let record = run(&results, "c");
    assert_eq!(record.errors, 0);
    assert_eq!(record.counters["plain_bytes"], plain as u64);
    assert_eq!(record.counters["packed_bytes"], packed as u64);
    let ratio = scalar(record, "ratio");
    assert!((ratio - expected).abs() < 1e-9 * expected, "phasebench {ratio} vs zstd library {expected}");
    // The corpus is real data: compressible, but not absurdly.
    assert!((3.0..5.0).contains(&ratio), "{ratio}");
    assert!(scalar(record, "speed") > 0.0);
    assert_eq!(common::summary(record, "block_ratio").count, blocks.len() as u64);
}

#[test]
fn a_full_decompress_pass_restores_every_block_of_a_folder_under_every_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    let text: String = (0..4000).map(|i| format!("{i};entry {};{}\n", i % 97, i * 31 % 1000)).collect();
    std::fs::write(dir.path().join("records.csv"), &text).unwrap();
    std::fs::write(dir.path().join("nested/prose.txt"), include_str!("../README.md")).unwrap();
    // 1 KiB blocks: a full pass is this many calls.
    let calls: usize = [text.len(), include_str!("../README.md").len()].iter().map(|len| len.div_ceil(1024)).sum();
    let corpus = dir.path().display();
    let mut engines = String::new();
    let mut workloads = String::new();
    for algorithm in Algorithm::NAMES {
        engines.push_str(&format!(
            "  {algorithm}: {{ kind: codec, algorithm: {algorithm}, corpus: \"{corpus}\", block_size: 1KiB }}\n"
        ));
        for op in ["decompress", "roundtrip"] {
            workloads.push_str(&format!(
                "      - {{ name: {algorithm}-{op}, engine: {algorithm}, op: {op}, iterations: {calls}, warmup: 0x }}\n"
            ));
        }
    }
    let scenario = Scenario::new(&format!(
        "scenario: folder\nengines:\n{engines}phases:\n  - name: p\n    workloads:\n{workloads}"
    ));
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    for algorithm in Algorithm::NAMES {
        for op in ["decompress", "roundtrip"] {
            let record = run(&results, &format!("{algorithm}-{op}"));
            assert_eq!(record.errors, 0, "{algorithm} {op}: {:?}", record.error_messages);
            assert_eq!(record.operations, calls as u64);
            let plain = text.len() + include_str!("../README.md").len();
            assert_eq!(record.counters["plain_bytes"], plain as u64, "{algorithm} {op}");
            let ratio = scalar(record, "ratio");
            if *algorithm == "none" {
                assert_eq!(ratio, 1.0);
            } else {
                assert!(ratio > 1.2, "{algorithm} {op}: {ratio}");
            }
        }
    }
}

#[test]
fn deliberately_corrupted_frames_are_reported_not_passed() {
    let mut engines = String::new();
    let mut workloads = String::new();
    for algorithm in Algorithm::NAMES {
        engines.push_str(&format!("  {algorithm}: {{ kind: codec, algorithm: {algorithm}, block_size: 16KiB }}\n"));
        for op in ["decompress", "roundtrip"] {
            workloads.push_str(&format!(
                "      - {{ name: {algorithm}-{op}, engine: {algorithm}, op: {op}, with: {{ corrupt: 100% }}, \
                 iterations: 40, warmup: 0x, targets: [ \"errors == 0\" ] }}\n"
            ));
        }
    }
    workloads.push_str("      - { name: clean, engine: zstd, op: roundtrip, iterations: 40, warmup: 0x }\n");
    let scenario = Scenario::new(&format!(
        "scenario: corrupt\nengines:\n{engines}phases:\n  - name: p\n    workloads:\n{workloads}"
    ));
    let output = phasebench().arg("run").arg(&scenario.file).arg("--out").arg(scenario.out()).output().unwrap();
    // The `errors == 0` targets fail: the run says so in its exit status.
    assert_eq!(status(&output), 1, "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("error ×"), "{stdout}");
    assert!(stdout.contains("corrupted on purpose"), "{stdout}");
    let results = scenario.results();
    for algorithm in Algorithm::NAMES {
        for op in ["decompress", "roundtrip"] {
            let record = run(&results, &format!("{algorithm}-{op}"));
            // A flipped byte can land where a decoder ignores it (a reserved
            // bit), leaving the output intact; anything else must be caught.
            let floor = if *algorithm == "none" { 40 } else { 36 };
            assert!(record.errors >= floor, "{algorithm} {op}: {} of 40 caught", record.errors);
            assert!(
                record.error_messages.iter().all(|error| error.message.contains("corrupted on purpose")
                    && (error.message.contains("rejected the frame")
                        || error.message.contains("differ from the original"))),
                "{algorithm} {op}: {:?}",
                record.error_messages
            );
        }
    }
    assert_eq!(run(&results, "clean").errors, 0);
}

#[test]
fn every_flipped_byte_of_a_frame_is_rejected_or_changes_the_output() {
    let block = &builtin_blocks(4096)[3];
    for name in Algorithm::NAMES {
        let algorithm = Algorithm::from_name(name).unwrap();
        let settings = Settings { algorithm, level: 3, dictionary: None, checksum: algorithm == Algorithm::Zstd };
        let mut coder = Coder::new(&settings).unwrap();
        let (mut frame, mut output) = (Vec::new(), Vec::new());
        coder.compress(block, &mut frame).unwrap();
        let mut unnoticed = 0;
        for position in 0..frame.len() {
            let mut damaged = frame.clone();
            damaged[position] ^= 0x41;
            match coder.decompress(&damaged, &mut output, block.len()) {
                Err(_) => {}
                Ok(()) => {
                    assert!(output.len() <= block.len(), "{name}: the limit was passed");
                    if output == *block {
                        unnoticed += 1;
                    }
                }
            }
        }
        // With a content checksum zstd catches every change that matters; a
        // frame byte that changes nothing is harmless, and rare.
        assert!(unnoticed * 100 <= frame.len(), "{name}: {unnoticed} of {} flips left the output intact", frame.len());
    }
}

fn codec_operation(algorithm: &str, op: &str) -> std::sync::Arc<dyn engines::Operation> {
    let kind = engines::find("codec").unwrap();
    let mut options = Params::default();
    for option in kind.decl().options {
        let value = match (option.name, option.default.unwrap()) {
            ("algorithm", _) => Value::Text(algorithm.into()),
            ("level", _) => Value::Count(3),
            ("dictionary", _) => Value::Bytes(0),
            ("train_share", _) => Value::Number(0.0),
            ("checksum", _) => Value::Bool(false),
            ("corpus", default) => Value::Text(default.into()),
            ("block_size", _) => Value::Bytes(64 * 1024),
            ("max_corpus", _) => Value::Bytes(1 << 30),
            (other, _) => panic!("option `{other}` is new: set it here"),
        };
        options.0.insert(option.name.into(), value);
    }
    let engine = kind.create(&EngineSetup { options, seed: 1 }).unwrap();
    let mut params = Params::default();
    if op != "compress" {
        params.0.insert("corrupt".into(), Value::Number(0.0));
    }
    engine.operation(op, &params).unwrap()
}

#[test]
fn workflow_steps_pass_compressed_data_on_and_restore_it() {
    let data = include_bytes!("../ARCHITECTURE.md").to_vec();
    for algorithm in Algorithm::NAMES {
        let mut compress = codec_operation(algorithm, "compress").worker(0, 1).unwrap();
        let mut decompress = codec_operation(algorithm, "decompress").worker(0, 1).unwrap();
        let mut roundtrip = codec_operation(algorithm, "roundtrip").worker(0, 1).unwrap();
        let mut recorder = Recorder::default();
        let input = Payload { key: b"k".to_vec(), data: data.clone() };
        let packed = compress.pipe(&mut recorder, input.clone()).unwrap();
        assert_eq!(packed.key, b"k");
        if *algorithm != "none" {
            assert!(packed.data.len() * 4 < data.len() * 3, "{algorithm}");
        }
        let restored = decompress.pipe(&mut recorder, packed).unwrap();
        assert_eq!(restored, input, "{algorithm}");
        assert_eq!(roundtrip.pipe(&mut recorder, input.clone()).unwrap(), input, "{algorithm}");
        // Garbage handed to a decompress step is an error, not a panic.
        let garbage = Payload { key: Vec::new(), data: vec![0xA5; 300] };
        if *algorithm != "none" {
            assert!(decompress.pipe(&mut recorder, garbage).is_err(), "{algorithm}");
        }
    }
}

#[test]
fn an_agents_workflow_stores_compressed_blocks_in_the_vault_and_reads_them_back() {
    let scenario = Scenario::new(
        "scenario: chain
engines:
  crew: { kind: agents, workers: 2 }
  zip: { kind: codec, algorithm: zstd, level: 3, block_size: 8KiB }
  store: { kind: vault, sync: none }
phases:
  - name: p
    workloads:
      - name: chain
        engine: crew
        op: workflow
        with: { steps: \"zip.compress -> store.write -> store.read -> zip.decompress\" }
        iterations: 50
        warmup: 0x
",
    );
    let output = scenario.run(&[]);
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let results = scenario.results();
    let record = run(&results, "chain");
    assert_eq!(record.errors, 0, "{:?}", record.error_messages);
    assert_eq!(record.operations, 50);
}

#[test]
fn the_codec_scenario_runs_in_smoke_mode() {
    let out = tempfile::tempdir().unwrap();
    let output = phasebench()
        .arg("run")
        .arg(root().join("scenarios/codec.yaml"))
        .arg("--smoke")
        .arg("--out")
        .arg(out.path().join("run"))
        .output()
        .unwrap();
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for algorithm in Algorithm::NAMES {
        assert!(stdout.lines().any(|line| line.starts_with(algorithm)), "no {algorithm} row:\n{stdout}");
    }
    assert!(stdout.contains("ratio "), "{stdout}");
    assert!(stdout.contains("speed "), "{stdout}");
    assert!(stdout.contains("experiment zstd-levels"), "{stdout}");
}

#[test]
fn inspect_corpus_lists_and_exports_the_builtin_files() {
    let out = tempfile::tempdir().unwrap();
    let folder = out.path().join("corpus");
    let output = phasebench().args(["inspect", "corpus", "--export"]).arg(&folder).output().unwrap();
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let corpus = Corpus::builtin().unwrap();
    for file in &corpus.files {
        assert!(stdout.contains(&file.name), "{stdout}");
        assert_eq!(std::fs::read(folder.join(&file.name)).unwrap(), file.data);
    }
    assert!(stdout.contains(&corpus.bytes().to_string()), "{stdout}");
    let blocked = out.path().join("file");
    std::fs::write(&blocked, b"x").unwrap();
    let output = phasebench().args(["inspect", "corpus", "--export"]).arg(blocked.join("sub")).output().unwrap();
    assert_eq!(status(&output), 2);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Whatever bytes a decoder is handed (a workflow's data, a damaged
    /// frame), it answers with an error or bytes within the limit; it never
    /// panics.
    #[test]
    fn any_bytes_handed_to_a_decoder_are_an_error_or_bounded_output(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        limit in 0usize..100_000,
    ) {
        for name in Algorithm::NAMES {
            let algorithm = Algorithm::from_name(name).unwrap();
            let mut coder = Coder::new(&Settings { algorithm, level: 3, dictionary: None, checksum: false }).unwrap();
            let mut output = Vec::new();
            if coder.decompress(&bytes, &mut output, limit).is_ok() {
                proptest::prop_assert!(output.len() <= limit, "{}: {} > {}", name, output.len(), limit);
            }
        }
    }
}
