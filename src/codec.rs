//! The envelope around every serde record we store (sled values): bincode 2
//! inside our own versioned, checksummed frame, so a flipped bit is an error
//! and the codec can be swapped by bumping the version: a later build that
//! moves off bincode writes version 2 and still reads version 1 bodies with
//! bincode, and this build refuses version 2 with `Error::NewerFormat`.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..2 | `version` u16 LE | envelope version, [`ENVELOPE_VERSION`] |
//! | 2..6 | `crc` u32 LE | crc32 of the body |
//! | 6.. | body | `bincode::serde` with the standard config |

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// The envelope version this build writes and the newest it reads.
pub(crate) const ENVELOPE_VERSION: u16 = 1;
const HEADER: usize = 6;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes `value` into an envelope.
pub(crate) fn encode<T: Serialize>(value: &T, context: &str) -> Result<Vec<u8>> {
    let body = bincode::serde::encode_to_vec(value, config()).map_err(|e| Error::Codec {
        context: context.to_string(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&ENVELOPE_VERSION.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes an envelope, checking version and checksum first. `context` names
/// the record (tree and key) in the error.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], context: &str) -> Result<T> {
    let corrupt = |reason: String| Error::Codec {
        context: context.to_string(),
        reason,
    };
    if bytes.len() < HEADER {
        return Err(corrupt(format!(
            "record of {} bytes is shorter than its header",
            bytes.len()
        )));
    }
    let version = u16::from_le_bytes([bytes[0], bytes[1]]);
    if version > ENVELOPE_VERSION {
        // Written by a newer emberdb: say so, rather than "corrupt". The
        // record is named by its context (the database and key).
        return Err(Error::NewerFormat {
            path: context.into(),
            found: version.into(),
            supported: ENVELOPE_VERSION.into(),
        });
    }
    if version == 0 {
        return Err(corrupt(format!(
            "envelope version {version} is not one this build reads (1..={ENVELOPE_VERSION})"
        )));
    }
    let stored_crc = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    let body = &bytes[HEADER..];
    if crc32fast::hash(body) != stored_crc {
        return Err(corrupt("checksum mismatch".to_string()));
    }
    let (value, used) = decode_bounded(body).map_err(|e| corrupt(e.to_string()))?;
    if used != body.len() {
        return Err(corrupt(format!("{} trailing bytes", body.len() - used)));
    }
    Ok(value)
}

/// `bincode::serde::decode_from_slice` with the standard configuration and
/// a limit on what the decoder may claim: the first power of 16 (from 4
/// KiB) at least 64 times the size of `body`. Without a limit, bincode
/// allocates a string's length, as the input says it, before reading it: a
/// corrupt length asked for any amount of memory and, past `isize::MAX`,
/// panicked ("capacity overflow"; found by `tests/fuzz_decoders.rs`).
/// bincode counts against the limit a string's bytes and a sequence's
/// length times its element's size in memory; an element takes at least
/// one byte of input and none of ours is larger than 64 bytes in memory
/// for each byte of its smallest encoding, so no valid input reaches the
/// limit, and no input can make the decoder allocate more than about a
/// thousand times its own size.
pub(crate) fn decode_bounded<T: DeserializeOwned>(body: &[u8]) -> Result<(T, usize), bincode::error::DecodeError> {
    use bincode::serde::decode_from_slice;
    let base = bincode::config::standard();
    let n = body.len().saturating_mul(64);
    if n <= 0x1000 {
        decode_from_slice(body, base.with_limit::<0x1000>())
    } else if n <= 0x1_0000 {
        decode_from_slice(body, base.with_limit::<0x1_0000>())
    } else if n <= 0x10_0000 {
        decode_from_slice(body, base.with_limit::<0x10_0000>())
    } else if n <= 0x100_0000 {
        decode_from_slice(body, base.with_limit::<0x100_0000>())
    } else if n <= 0x1000_0000 {
        decode_from_slice(body, base.with_limit::<0x1000_0000>())
    } else if n <= 0x1_0000_0000 {
        decode_from_slice(body, base.with_limit::<0x1_0000_0000>())
    } else if n <= 0x10_0000_0000 {
        decode_from_slice(body, base.with_limit::<0x10_0000_0000>())
    } else {
        decode_from_slice(body, base.with_limit::<{ usize::MAX }>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_length_past_the_input_is_refused_without_allocating_it() {
        // A one-string record whose length says 2^60 bytes.
        let mut body = vec![0xfd_u8]; // varint marker: a u64 follows
        body.extend_from_slice(&(1u64 << 60).to_le_bytes());
        let err = decode_bounded::<String>(&body).unwrap_err();
        assert!(err.to_string().to_lowercase().contains("limit"), "{err}");
        let ok: (String, usize) = decode_bounded(&bincode::serde::encode_to_vec("abc", config()).unwrap()).unwrap();
        assert_eq!(ok.0, "abc");
    }

    #[test]
    fn round_trip_and_bit_flip_detected() {
        let value = (7u64, vec![1.5f32, -2.0], "x".to_string());
        let mut bytes = encode(&value, "test").unwrap();
        let back: (u64, Vec<f32>, String) = decode(&bytes, "test").unwrap();
        assert_eq!(back, value);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        assert!(decode::<(u64, Vec<f32>, String)>(&bytes, "test").is_err());
    }

    #[test]
    fn newer_version_refused() {
        let mut bytes = encode(&1u32, "test").unwrap();
        bytes[0] = 9;
        let err = decode::<u32>(&bytes, "test").unwrap_err();
        assert!(
            matches!(
                err,
                Error::NewerFormat {
                    found: 9,
                    supported: 1,
                    ..
                }
            ),
            "{err}"
        );
    }
}
