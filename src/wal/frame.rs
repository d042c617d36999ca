//! Framing of WAL records.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..4 | len u32 LE | payload length in bytes, at most [`MAX_PAYLOAD`] |
//! | 4..8 | payload_crc u32 LE | crc32 of the payload |
//! | 8..12 | header_crc u32 LE | crc32 of bytes 0..8 |
//! | 12..12+len | payload | a [`super::record`] |
//!
//! The header has its own checksum so that a flipped bit in `len` is told
//! apart from a frame cut short by a crash: recovery can then tell a torn
//! tail (no valid frame anywhere after the bad one) from corruption in the
//! middle of the log (a valid frame follows), without trusting `len`.

pub(crate) const HEADER_LEN: usize = 12;
/// Larger batches are split over several frames by the writer.
pub(crate) const MAX_PAYLOAD: usize = 64 << 20;

/// Appends one frame holding `payload` to `out`.
pub(crate) fn encode_into(out: &mut Vec<u8>, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let mut header = [0u8; HEADER_LEN];
    header[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4..8].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&header[0..8]);
    header[8..12].copy_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
}

/// What is found at an offset of a log file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    /// A whole, valid frame, and the offset just after it.
    Frame { payload: &'a [u8], next: usize },
    /// The file ends exactly here.
    End,
    /// Not a valid frame (cut short, or failing a checksum).
    Bad { reason: &'static str },
}

/// Parses the frame that starts at `offset` of `bytes`.
pub(crate) fn parse_at(bytes: &[u8], offset: usize) -> Parsed<'_> {
    let rest = match bytes.get(offset..) {
        Some(rest) if !rest.is_empty() => rest,
        _ => return Parsed::End,
    };
    if rest.len() < HEADER_LEN {
        return Parsed::Bad {
            reason: "frame header cut short",
        };
    }
    let word = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
    if crc32fast::hash(&rest[0..8]) != word(8) {
        return Parsed::Bad {
            reason: "frame header checksum mismatch",
        };
    }
    let len = word(0) as usize;
    if len > MAX_PAYLOAD {
        return Parsed::Bad {
            reason: "frame length above the limit",
        };
    }
    let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
        return Parsed::Bad {
            reason: "frame payload cut short",
        };
    };
    if crc32fast::hash(payload) != word(4) {
        return Parsed::Bad {
            reason: "frame payload checksum mismatch",
        };
    }
    Parsed::Frame {
        payload,
        next: offset + HEADER_LEN + len,
    }
}

/// The offset of the first valid frame that starts after `offset`, if any.
/// Used only on the recovery path, after a bad frame.
pub(crate) fn next_valid_after(bytes: &[u8], offset: usize) -> Option<usize> {
    (offset + 1..bytes.len().saturating_sub(HEADER_LEN - 1))
        .find(|&at| matches!(parse_at(bytes, at), Parsed::Frame { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_frames() -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(&mut out, b"first payload");
        encode_into(&mut out, b"second");
        out
    }

    #[test]
    fn parses_frames_in_order_then_end() {
        let bytes = two_frames();
        let Parsed::Frame { payload, next } = parse_at(&bytes, 0) else {
            panic!("first frame")
        };
        assert_eq!(payload, b"first payload");
        let Parsed::Frame { payload, next } = parse_at(&bytes, next) else {
            panic!("second frame")
        };
        assert_eq!(payload, b"second");
        assert_eq!(parse_at(&bytes, next), Parsed::End);
    }

    #[test]
    fn every_truncation_of_last_frame_is_bad_with_nothing_after() {
        let bytes = two_frames();
        let second = HEADER_LEN + b"first payload".len();
        for cut in second + 1..bytes.len() {
            let cut_bytes = &bytes[..cut];
            assert!(matches!(parse_at(cut_bytes, second), Parsed::Bad { .. }), "cut {cut}");
            assert_eq!(next_valid_after(cut_bytes, second), None, "cut {cut}");
        }
    }

    #[test]
    fn flipped_length_bit_is_caught_and_next_frame_found() {
        let mut bytes = two_frames();
        bytes[1] ^= 0x40;
        assert!(matches!(parse_at(&bytes, 0), Parsed::Bad { .. }));
        assert_eq!(next_valid_after(&bytes, 0), Some(HEADER_LEN + 13));
    }
}
