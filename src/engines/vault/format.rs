//! The bytes on disk: segment and hint records, their checksums, and the
//! file names. `docs/vault-format.md` describes the same layout for people.

use std::path::{Path, PathBuf};

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: &[u8; 8] = b"PBVSEG01";
/// First bytes of every hint file.
pub const HINT_MAGIC: &[u8; 8] = b"PBVHNT01";
/// Bytes before the first record of a segment: magic and segment id.
pub const SEGMENT_HEADER: u64 = 16;
/// Bytes of a record header: crc32c, sequence, key length, value length.
pub const RECORD_HEADER: usize = 4 + 8 + 4 + 4;
/// Bytes of a hint entry header: crc32c, sequence, key length, value length, record offset.
pub const HINT_HEADER: usize = 4 + 8 + 4 + 4 + 8;
/// Value length that marks a deletion.
pub const TOMBSTONE: u32 = u32::MAX;
/// Bits of the value-length field that hold the stored length; bits 29-30
/// name how the value is compressed ([`Codec`]), bit 31 is clear.
const LENGTH_BITS: u32 = (1 << 29) - 1;
const CODEC_SHIFT: u32 = 29;
/// Longest key.
pub const MAX_KEY: usize = 64 * 1024;
/// Longest value.
pub const MAX_VALUE: usize = 256 * 1024 * 1024;
/// The file that marks a directory as a vault.
pub const MARKER: &str = "VAULT";
/// The marker's contents.
pub const MARKER_TEXT: &str = "phasebench vault, format 1\n";
/// The lock file.
pub const LOCK: &str = "LOCK";

/// `dir/0000000042.seg`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:010}.seg"))
}

/// `dir/0000000042.hint`.
pub fn hint_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:010}.hint"))
}

/// The id of a `*.seg` or `*.hint` file name, with its extension.
pub fn parse_name(name: &str) -> Option<(u64, &str)> {
    let (stem, extension) = name.split_once('.')?;
    if stem.len() != 10 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, extension))
}

/// A segment file's header.
pub fn segment_header(id: u64) -> [u8; SEGMENT_HEADER as usize] {
    let mut header = [0_u8; SEGMENT_HEADER as usize];
    header[..8].copy_from_slice(SEGMENT_MAGIC);
    header[8..].copy_from_slice(&id.to_le_bytes());
    header
}

/// How a record's value is stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Codec {
    /// As written.
    #[default]
    Plain,
    /// An lz4 frame of the codec engine (4-byte length, then an lz4 block).
    Lz4,
    /// A zstd frame.
    Zstd,
}

impl Codec {
    fn bits(self) -> u32 {
        match self {
            Codec::Plain => 0,
            Codec::Lz4 => 1,
            Codec::Zstd => 2,
        }
    }
}

/// Encodes one record: `crc32c | seq | key_len | value_len | key | value`,
/// the checksum covering everything after it; `value: None` is a tombstone.
pub fn encode_record(out: &mut Vec<u8>, seq: u64, key: &[u8], value: Option<&[u8]>) {
    encode_stored(out, seq, key, value.map(|v| (Codec::Plain, v)));
}

/// Encodes one record whose value is stored with a codec (the checksum
/// covers the stored bytes).
pub fn encode_stored(out: &mut Vec<u8>, seq: u64, key: &[u8], value: Option<(Codec, &[u8])>) {
    let start = out.len();
    let field = value.map_or(TOMBSTONE, |(codec, v)| v.len() as u32 | codec.bits() << CODEC_SHIFT);
    let value = value.map(|(_, v)| v);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&field.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value.unwrap_or_default());
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// A record header as read, before its body is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Stored checksum.
    pub crc: u32,
    /// Sequence number.
    pub seq: u64,
    /// Key bytes.
    pub key_len: usize,
    /// Value bytes as stored, `None` for a tombstone.
    pub value_len: Option<usize>,
    /// How the value is stored.
    pub codec: Codec,
}

impl RecordHeader {
    /// Parses the fixed header; `None` if the lengths are impossible.
    pub fn parse(bytes: &[u8; RECORD_HEADER]) -> Option<RecordHeader> {
        let crc = u32::from_le_bytes(bytes[0..4].try_into().ok()?);
        let seq = u64::from_le_bytes(bytes[4..12].try_into().ok()?);
        let key_len = u32::from_le_bytes(bytes[12..16].try_into().ok()?) as usize;
        let raw_value = u32::from_le_bytes(bytes[16..20].try_into().ok()?);
        let (value_len, codec) = match raw_value {
            TOMBSTONE => (None, Codec::Plain),
            raw => {
                let codec = match raw >> CODEC_SHIFT {
                    0 => Codec::Plain,
                    1 => Codec::Lz4,
                    2 => Codec::Zstd,
                    _ => return None,
                };
                (Some((raw & LENGTH_BITS) as usize), codec)
            }
        };
        if key_len == 0 || key_len > MAX_KEY || value_len.is_some_and(|v| v > MAX_VALUE) {
            return None;
        }
        Some(RecordHeader { crc, seq, key_len, value_len, codec })
    }

    /// Bytes of the whole record.
    pub fn total_len(&self) -> usize {
        RECORD_HEADER + self.key_len + self.value_len.unwrap_or(0)
    }

    /// Whether `record` (header and body) matches the stored checksum.
    pub fn verify(&self, record: &[u8]) -> bool {
        record.len() == self.total_len() && crc32c::crc32c(&record[4..]) == self.crc
    }
}

/// One hint entry: where a compacted segment holds a key's record.
pub fn encode_hint(out: &mut Vec<u8>, seq: u64, key: &[u8], value_len: u32, offset: u64) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&value_len.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(key);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// A decoded hint entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// Sequence number of the record.
    pub seq: u64,
    /// The key.
    pub key: Vec<u8>,
    /// Value bytes.
    pub value_len: u32,
    /// Offset of the record in its segment.
    pub offset: u64,
}

/// Every entry of a hint file's contents, or `None` if any is damaged
/// (the segment is then scanned instead).
pub fn decode_hints(bytes: &[u8]) -> Option<Vec<Hint>> {
    let mut rest = bytes.strip_prefix(HINT_MAGIC.as_slice())?;
    let mut hints = Vec::new();
    while !rest.is_empty() {
        if rest.len() < HINT_HEADER {
            return None;
        }
        let crc = u32::from_le_bytes(rest[0..4].try_into().ok()?);
        let seq = u64::from_le_bytes(rest[4..12].try_into().ok()?);
        let key_len = u32::from_le_bytes(rest[12..16].try_into().ok()?) as usize;
        let value_len = u32::from_le_bytes(rest[16..20].try_into().ok()?);
        let offset = u64::from_le_bytes(rest[20..28].try_into().ok()?);
        let end = HINT_HEADER.checked_add(key_len)?;
        if key_len == 0 || key_len > MAX_KEY || rest.len() < end || crc32c::crc32c(&rest[4..end]) != crc {
            return None;
        }
        hints.push(Hint { seq, key: rest[HINT_HEADER..end].to_vec(), value_len, offset });
        rest = &rest[end..];
    }
    Some(hints)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_detect_flips() {
        let mut bytes = Vec::new();
        encode_record(&mut bytes, 7, b"key", Some(b"value"));
        let header = RecordHeader::parse(bytes[..RECORD_HEADER].try_into().unwrap()).unwrap();
        assert_eq!((header.seq, header.key_len, header.value_len), (7, 3, Some(5)));
        assert!(header.verify(&bytes));
        for index in 4..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[index] ^= 0x10;
            let parsed = RecordHeader::parse(flipped[..RECORD_HEADER].try_into().unwrap());
            assert!(parsed.is_none_or(|h| !h.verify(&flipped)), "flip at {index} went unnoticed");
        }
        let mut packed = Vec::new();
        encode_stored(&mut packed, 9, b"k", Some((Codec::Zstd, b"frame")));
        let header = RecordHeader::parse(packed[..RECORD_HEADER].try_into().unwrap()).unwrap();
        assert_eq!((header.value_len, header.codec), (Some(5), Codec::Zstd));
        assert!(header.verify(&packed));
        let mut tomb = Vec::new();
        encode_record(&mut tomb, 8, b"key", None);
        let header = RecordHeader::parse(tomb[..RECORD_HEADER].try_into().unwrap()).unwrap();
        assert_eq!(header.value_len, None);
        assert!(header.verify(&tomb));
    }

    #[test]
    fn hints_round_trip_and_reject_damage() {
        let mut bytes = HINT_MAGIC.to_vec();
        encode_hint(&mut bytes, 3, b"a", 10, 16);
        encode_hint(&mut bytes, 4, b"bb", 20, 46);
        let hints = decode_hints(&bytes).unwrap();
        assert_eq!(hints[1], Hint { seq: 4, key: b"bb".to_vec(), value_len: 20, offset: 46 });
        let mut damaged = bytes.clone();
        damaged[12] ^= 1;
        assert!(decode_hints(&damaged).is_none());
        assert!(decode_hints(&bytes[..bytes.len() - 1]).is_none());
    }

    #[test]
    fn names() {
        assert_eq!(parse_name("0000000042.seg"), Some((42, "seg")));
        assert_eq!(parse_name("42.seg"), None);
        assert_eq!(segment_path(Path::new("/v"), 3), Path::new("/v/0000000003.seg"));
    }
}
