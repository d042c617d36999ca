//! The 64-byte header that segment and index files share: a magic, a format
//! version, fields of the file's own, and a crc32 of the header itself.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..8 | magic | names the kind of file |
//! | 8..12 | version u32 LE | the file's format version |
//! | 12..60 | fields | the file's own (see each file's layout) |
//! | 60..64 | header_crc u32 LE | crc32 of bytes 0..60 |

use std::path::Path;

use crate::error::{Error, Result};

pub(crate) const HEADER_LEN: usize = 64;

/// Builds a header: fields are put at their offsets, then `finish` stamps
/// the checksum.
pub(crate) struct HeaderWriter([u8; HEADER_LEN]);

impl HeaderWriter {
    pub fn new(magic: &[u8; 8], version: u32) -> Self {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(magic);
        h[8..12].copy_from_slice(&version.to_le_bytes());
        HeaderWriter(h)
    }

    pub fn u32(mut self, at: usize, value: u32) -> Self {
        self.0[at..at + 4].copy_from_slice(&value.to_le_bytes());
        self
    }

    pub fn u64(mut self, at: usize, value: u64) -> Self {
        self.0[at..at + 8].copy_from_slice(&value.to_le_bytes());
        self
    }

    pub fn finish(mut self) -> [u8; HEADER_LEN] {
        let crc = crc32fast::hash(&self.0[0..60]);
        self.0[60..64].copy_from_slice(&crc.to_le_bytes());
        self.0
    }
}

/// A header whose magic, checksum and version have been checked.
pub(crate) struct Header<'a>(&'a [u8]);

impl<'a> Header<'a> {
    /// Checks the first 64 bytes of `bytes` (the start of the file at
    /// `path`, a `what` file): long enough, right magic, intact, and a
    /// version this build reads (up to `max_version`).
    pub fn check(bytes: &'a [u8], magic: &[u8; 8], max_version: u32, path: &Path, what: &str) -> Result<Self> {
        let corrupt = |reason: String| Error::Corruption {
            file: path.to_path_buf(),
            offset: 0,
            reason,
        };
        let Some(h) = bytes.get(..HEADER_LEN) else {
            return Err(corrupt(format!(
                "file of {} bytes is shorter than the {what} header",
                bytes.len()
            )));
        };
        if &h[0..8] != magic {
            return Err(corrupt(format!("bad magic: not an emberdb {what} file")));
        }
        let header = Header(h);
        if crc32fast::hash(&h[0..60]) != header.u32(60) {
            return Err(corrupt(format!("{what} header checksum mismatch")));
        }
        let version = header.u32(8);
        if version > max_version {
            return Err(Error::NewerFormat {
                path: path.to_path_buf(),
                found: version,
                supported: max_version,
            });
        }
        Ok(header)
    }

    pub fn u32(&self, at: usize) -> u32 {
        let b = &self.0[at..at + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn u64(&self, at: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[at..at + 8]);
        u64::from_le_bytes(b)
    }
}

/// A whole-body file's header: body length at 12, body crc32 at 20 (the
/// recovery file's and the trending counts' layout).
pub(crate) fn body_header(magic: &[u8; 8], version: u32, body: &[u8]) -> [u8; HEADER_LEN] {
    HeaderWriter::new(magic, version)
        .u64(12, body.len() as u64)
        .u32(20, crc32fast::hash(body))
        .finish()
}

/// Checks a file written with [`body_header`] (`bytes` whole, from `path`,
/// a `what` file) and returns its header and body: the header as
/// [`Header::check`] does, then the body's length and crc.
pub(crate) fn checked_body<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    max_version: u32,
    path: &Path,
    what: &str,
) -> Result<(Header<'a>, &'a [u8])> {
    let corrupt = |offset: u64, reason: String| Error::Corruption {
        file: path.to_path_buf(),
        offset,
        reason,
    };
    let header = Header::check(bytes, magic, max_version, path, what)?;
    let body = &bytes[HEADER_LEN.min(bytes.len())..];
    if header.u64(12) != body.len() as u64 {
        return Err(corrupt(
            12,
            format!("body of {} bytes, the header says {}", body.len(), header.u64(12)),
        ));
    }
    if crc32fast::hash(body) != header.u32(20) {
        return Err(corrupt(HEADER_LEN as u64, format!("{what} body checksum mismatch")));
    }
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_bit_flip_is_caught() {
        let bytes = HeaderWriter::new(b"TESTFILE", 2).u32(12, 7).u64(16, 1 << 40).finish();
        let path = Path::new("x");
        let h = Header::check(&bytes, b"TESTFILE", 2, path, "test").unwrap();
        assert_eq!((h.u32(12), h.u64(16)), (7, 1 << 40));
        for bit in 0..HEADER_LEN * 8 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Header::check(&bad, b"TESTFILE", 2, path, "test").is_err(), "bit {bit}");
        }
        assert!(matches!(
            Header::check(&bytes, b"TESTFILE", 1, path, "test"),
            Err(Error::NewerFormat { found: 2, .. })
        ));
        assert!(Header::check(&bytes[..63], b"TESTFILE", 2, path, "test").is_err());
    }
}
