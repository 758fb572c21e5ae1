//! The compressors, each behind one `Coder` that a worker owns, so that
//! contexts and buffers are made once and reused for every block (as
//! `zstd -b` does).
//!
//! Every algorithm writes a self-contained frame: zstd and brotli their own
//! formats, snappy its raw format (which starts with the length), lz4 a
//! 4-byte little-endian length followed by an lz4 block, and `none` the
//! bytes themselves.

use std::io::Read;
use std::sync::Arc;

/// A compression algorithm the engine offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// A copy: the control every other algorithm is compared with.
    None,
    /// Zstandard (the reference C library), levels 1–22, optionally with a dictionary.
    Zstd,
    /// LZ4 block format (lz4_flex); one level.
    Lz4,
    /// Brotli (the pure-Rust port of Google's library), qualities 1–11.
    Brotli,
    /// Snappy raw format (the snap crate); one level.
    Snappy,
}

impl Algorithm {
    /// Names as a scenario writes them.
    pub const NAMES: &'static [&'static str] = &["zstd", "lz4", "brotli", "snappy", "none"];

    /// The algorithm called `name`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "none" => Some(Algorithm::None),
            "zstd" => Some(Algorithm::Zstd),
            "lz4" => Some(Algorithm::Lz4),
            "brotli" => Some(Algorithm::Brotli),
            "snappy" => Some(Algorithm::Snappy),
            _ => None,
        }
    }

    /// Its name as a scenario writes it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::None => "none",
            Algorithm::Zstd => "zstd",
            Algorithm::Lz4 => "lz4",
            Algorithm::Brotli => "brotli",
            Algorithm::Snappy => "snappy",
        }
    }

    /// The levels it accepts, or `None` when it has only one.
    pub fn levels(self) -> Option<(u32, u32)> {
        match self {
            Algorithm::Zstd => Some((1, 22)),
            Algorithm::Brotli => Some((1, 11)),
            Algorithm::None | Algorithm::Lz4 | Algorithm::Snappy => None,
        }
    }
}

/// How blocks are compressed.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Which compressor.
    pub algorithm: Algorithm,
    /// Its level (ignored by the algorithms with one level).
    pub level: u32,
    /// A zstd dictionary, trained on part of the corpus.
    pub dictionary: Option<Arc<Vec<u8>>>,
    /// Whether zstd frames carry a content checksum.
    pub checksum: bool,
}

/// Brotli's window: 4 MiB, its default.
const BROTLI_WINDOW_BITS: i32 = 22;

/// Bytes of the length that starts an lz4 frame.
const LZ4_HEADER: usize = 4;

/// One worker's compressor and decompressor for one algorithm.
pub struct Coder {
    algorithm: Algorithm,
    level: u32,
    zstd: Option<(zstd::bulk::Compressor<'static>, zstd::bulk::Decompressor<'static>)>,
    snappy: Option<(snap::raw::Encoder, snap::raw::Decoder)>,
}

fn failed(what: &str, error: impl std::fmt::Display) -> String {
    format!("{what}: {error}")
}

impl Coder {
    /// A coder for `settings`, its contexts ready (and any dictionary loaded).
    pub fn new(settings: &Settings) -> Result<Coder, String> {
        let zstd = match settings.algorithm {
            Algorithm::Zstd => {
                let level = settings.level as i32;
                let (compressor, decompressor) = match &settings.dictionary {
                    Some(dictionary) => (
                        zstd::bulk::Compressor::with_dictionary(level, dictionary),
                        zstd::bulk::Decompressor::with_dictionary(dictionary),
                    ),
                    None => (zstd::bulk::Compressor::new(level), zstd::bulk::Decompressor::new()),
                };
                let mut compressor = compressor.map_err(|e| failed("zstd compressor", e))?;
                compressor.include_checksum(settings.checksum).map_err(|e| failed("zstd checksum flag", e))?;
                Some((compressor, decompressor.map_err(|e| failed("zstd decompressor", e))?))
            }
            _ => None,
        };
        let snappy =
            (settings.algorithm == Algorithm::Snappy).then(|| (snap::raw::Encoder::new(), snap::raw::Decoder::new()));
        Ok(Coder { algorithm: settings.algorithm, level: settings.level, zstd, snappy })
    }

    /// Compresses `input` into `frame` (cleared first).
    pub fn compress(&mut self, input: &[u8], frame: &mut Vec<u8>) -> Result<(), String> {
        frame.clear();
        match self.algorithm {
            Algorithm::None => frame.extend_from_slice(input),
            Algorithm::Zstd => {
                let (compressor, _) = self.zstd.as_mut().ok_or("zstd context missing")?;
                frame.reserve(zstd::zstd_safe::compress_bound(input.len()));
                compressor.compress_to_buffer(input, frame).map_err(|e| failed("zstd", e))?;
            }
            Algorithm::Lz4 => {
                let length = u32::try_from(input.len()).map_err(|_| "lz4: a block must be under 4 GiB".to_owned())?;
                frame.resize(LZ4_HEADER + lz4_flex::block::get_maximum_output_size(input.len()), 0);
                frame[..LZ4_HEADER].copy_from_slice(&length.to_le_bytes());
                let written =
                    lz4_flex::block::compress_into(input, &mut frame[LZ4_HEADER..]).map_err(|e| failed("lz4", e))?;
                frame.truncate(LZ4_HEADER + written);
            }
            Algorithm::Brotli => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: self.level as i32,
                    lgwin: BROTLI_WINDOW_BITS,
                    size_hint: input.len(),
                    ..Default::default()
                };
                let mut reader = input;
                brotli::BrotliCompress(&mut reader, frame, &params).map_err(|e| failed("brotli", e))?;
            }
            Algorithm::Snappy => {
                let (encoder, _) = self.snappy.as_mut().ok_or("snappy context missing")?;
                frame.resize(snap::raw::max_compress_len(input.len()), 0);
                let written = encoder.compress(input, frame).map_err(|e| failed("snappy", e))?;
                frame.truncate(written);
            }
        }
        Ok(())
    }

    /// Decompresses `frame` into `output` (cleared first), refusing to
    /// produce more than `limit` bytes. A frame the decoder rejects is an
    /// error naming the decoder's reason.
    pub fn decompress(&mut self, frame: &[u8], output: &mut Vec<u8>, limit: usize) -> Result<(), String> {
        output.clear();
        match self.algorithm {
            Algorithm::None => {
                if frame.len() > limit {
                    return Err(format!("frame holds {} bytes, more than the {limit} expected", frame.len()));
                }
                output.extend_from_slice(frame);
            }
            Algorithm::Zstd => {
                let (_, decompressor) = self.zstd.as_mut().ok_or("zstd context missing")?;
                output.reserve(limit);
                decompressor.decompress_to_buffer(frame, output).map_err(|e| failed("zstd rejected the frame", e))?;
            }
            Algorithm::Lz4 => {
                let header: [u8; LZ4_HEADER] = frame
                    .get(..LZ4_HEADER)
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or_else(|| "lz4 rejected the frame: shorter than its length header".to_owned())?;
                let length = u32::from_le_bytes(header) as usize;
                if length > limit {
                    return Err(format!(
                        "lz4 rejected the frame: it declares {length} bytes, over the {limit} expected"
                    ));
                }
                output.resize(length, 0);
                let written = lz4_flex::block::decompress_into(&frame[LZ4_HEADER..], output)
                    .map_err(|e| failed("lz4 rejected the frame", e))?;
                output.truncate(written);
            }
            Algorithm::Brotli => {
                let mut decoder = brotli::Decompressor::new(frame, 64 * 1024).take(limit as u64 + 1);
                decoder.read_to_end(output).map_err(|e| failed("brotli rejected the frame", e))?;
                if output.len() > limit {
                    return Err(format!("brotli rejected the frame: it holds more than the {limit} bytes expected"));
                }
            }
            Algorithm::Snappy => {
                let (_, decoder) = self.snappy.as_mut().ok_or("snappy context missing")?;
                let length = snap::raw::decompress_len(frame).map_err(|e| failed("snappy rejected the frame", e))?;
                if length > limit {
                    return Err(format!(
                        "snappy rejected the frame: it declares {length} bytes, over the {limit} expected"
                    ));
                }
                output.resize(length, 0);
                let written = decoder.decompress(frame, output).map_err(|e| failed("snappy rejected the frame", e))?;
                output.truncate(written);
            }
        }
        Ok(())
    }
}

/// Trains a zstd dictionary of at most `size` bytes on `samples`.
pub fn train_dictionary(samples: &[&[u8]], size: usize) -> Result<Vec<u8>, String> {
    zstd::dict::from_samples(samples, size).map_err(|error| format!("zstd dictionary training failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> Vec<u8> {
        let mut text = Vec::new();
        for line in 0..2000 {
            text.extend_from_slice(
                format!("{line:05};LATIN LETTER {};Lu;0;L;;;;;N;;;;{:04X};\n", line % 26, line * 7).as_bytes(),
            );
        }
        text
    }

    fn settings(algorithm: Algorithm, level: u32) -> Settings {
        Settings { algorithm, level, dictionary: None, checksum: false }
    }

    #[test]
    fn every_algorithm_round_trips_and_compresses_text() {
        let input = text();
        for name in Algorithm::NAMES {
            let algorithm = Algorithm::from_name(name).unwrap();
            let level = algorithm.levels().map_or(1, |(low, _)| low.max(3));
            let mut coder = Coder::new(&settings(algorithm, level)).unwrap();
            let (mut frame, mut output) = (Vec::new(), Vec::new());
            for _ in 0..2 {
                coder.compress(&input, &mut frame).unwrap();
                coder.decompress(&frame, &mut output, input.len()).unwrap();
                assert_eq!(output, input, "{name}");
            }
            if algorithm == Algorithm::None {
                assert_eq!(frame.len(), input.len());
            } else {
                assert!(frame.len() * 3 < input.len(), "{name}: {} of {}", frame.len(), input.len());
            }
        }
    }

    #[test]
    fn empty_blocks_round_trip() {
        for name in Algorithm::NAMES {
            let algorithm = Algorithm::from_name(name).unwrap();
            let mut coder = Coder::new(&settings(algorithm, 3)).unwrap();
            let (mut frame, mut output) = (Vec::new(), vec![1]);
            coder.compress(&[], &mut frame).unwrap();
            coder.decompress(&frame, &mut output, 0).unwrap();
            assert!(output.is_empty(), "{name}");
        }
    }

    /// Every algorithm's coder, with `input` compressed by it.
    fn every_compressed(input: &[u8]) -> Vec<(&'static str, Coder, Vec<u8>)> {
        Algorithm::NAMES
            .iter()
            .map(|name| {
                let mut coder = Coder::new(&settings(Algorithm::from_name(name).unwrap(), 3)).unwrap();
                let mut frame = Vec::new();
                coder.compress(input, &mut frame).unwrap();
                (*name, coder, frame)
            })
            .collect()
    }

    #[test]
    fn the_limit_is_enforced() {
        let input = text();
        for (name, mut coder, frame) in every_compressed(&input) {
            let mut output = Vec::new();
            assert!(coder.decompress(&frame, &mut output, input.len() - 1).is_err(), "{name}");
        }
    }

    #[test]
    fn a_checksummed_zstd_frame_with_a_flipped_byte_is_rejected() {
        let input = text();
        let mut coder = Coder::new(&Settings { checksum: true, ..settings(Algorithm::Zstd, 3) }).unwrap();
        let (mut frame, mut output) = (Vec::new(), Vec::new());
        coder.compress(&input, &mut frame).unwrap();
        for position in [frame.len() / 2, frame.len() - 2] {
            let mut damaged = frame.clone();
            damaged[position] ^= 0x20;
            let error = coder.decompress(&damaged, &mut output, input.len()).unwrap_err();
            assert!(error.contains("zstd rejected the frame"), "{error}");
        }
    }

    #[test]
    fn a_dictionary_helps_small_blocks() {
        let input = text();
        let blocks: Vec<&[u8]> = input.chunks(512).collect();
        let (train, test) = blocks.split_at(blocks.len() / 2);
        let dictionary = Arc::new(train_dictionary(train, 4096).unwrap());
        let total = |dictionary: Option<Arc<Vec<u8>>>| {
            let mut coder = Coder::new(&Settings { dictionary, ..settings(Algorithm::Zstd, 3) }).unwrap();
            let (mut frame, mut output) = (Vec::new(), Vec::new());
            test.iter()
                .map(|block| {
                    coder.compress(block, &mut frame).unwrap();
                    coder.decompress(&frame, &mut output, block.len()).unwrap();
                    assert_eq!(&output, block);
                    frame.len()
                })
                .sum::<usize>()
        };
        let (plain, with_dictionary) = (total(None), total(Some(dictionary)));
        assert!(with_dictionary * 10 < plain * 9, "{with_dictionary} vs {plain}");
    }

    #[test]
    fn truncated_and_garbage_frames_are_errors_not_panics() {
        let input = text();
        for (name, mut coder, frame) in every_compressed(&input) {
            let mut output = Vec::new();
            for cut in [0, 1, 3, frame.len() / 2] {
                let result = coder.decompress(&frame[..cut], &mut output, input.len());
                assert!(result.is_err() || output != input, "{name} cut at {cut}");
            }
            let garbage: Vec<u8> = (0..300_u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            let result = coder.decompress(&garbage, &mut output, input.len());
            assert!(result.is_err() || output != input, "{name}");
        }
    }
}
