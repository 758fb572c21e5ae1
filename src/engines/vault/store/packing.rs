//! Values compressed with the codec engine's coders, one per thread and
//! algorithm (their contexts are made once), and kept compressed only when
//! that saves bytes.

use std::cell::RefCell;

use super::VaultError;
use crate::engines::codec::algorithm::{Algorithm, Coder, Settings};
use crate::engines::vault::format::{Codec, MAX_VALUE};

/// zstd's default level.
const ZSTD_LEVEL: u32 = 3;

thread_local! {
    static CODERS: RefCell<Vec<(Codec, Coder)>> = const { RefCell::new(Vec::new()) };
}

fn with_coder<T>(codec: Codec, work: impl FnOnce(&mut Coder) -> Result<T, String>) -> Result<T, String> {
    CODERS.with(|coders| {
        let mut coders = coders.borrow_mut();
        let at = match coders.iter().position(|(c, _)| *c == codec) {
            Some(at) => at,
            None => {
                let algorithm = match codec {
                    Codec::Lz4 => Algorithm::Lz4,
                    Codec::Zstd => Algorithm::Zstd,
                    Codec::Plain => Algorithm::None,
                };
                let settings = Settings { algorithm, level: ZSTD_LEVEL, dictionary: None, checksum: false };
                coders.push((codec, Coder::new(&settings)?));
                coders.len() - 1
            }
        };
        work(&mut coders[at].1)
    })
}

/// `value` compressed with `codec` into `frame`, and the codec to record:
/// `Plain` (and `frame` unused) when compressing does not make it smaller.
pub(super) fn pack(codec: Codec, value: &[u8], frame: &mut Vec<u8>) -> Result<Codec, VaultError> {
    if codec == Codec::Plain {
        return Ok(Codec::Plain);
    }
    with_coder(codec, |coder| coder.compress(value, frame)).map_err(VaultError::Invalid)?;
    Ok(if frame.len() < value.len() { codec } else { Codec::Plain })
}

/// The value stored as `stored` with `codec`.
pub(super) fn unpack(codec: Codec, stored: &[u8]) -> Result<Vec<u8>, String> {
    let mut value = Vec::new();
    with_coder(codec, |coder| coder.decompress(stored, &mut value, MAX_VALUE))?;
    Ok(value)
}
