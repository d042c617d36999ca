//! Index files: Faiss's own serialisation inside our header, so the bytes are
//! checksummed by us before Faiss reads them.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..8 | magic | `b"EMBERIDX"` |
//! | 8..12 | version u32 LE | [`INDEX_VERSION`] |
//! | 12..16 | kind u32 LE | 1 HNSW, 2 IVF |
//! | 16..24 | segment_id u64 LE | the segment it indexes (also in the file name) |
//! | 24..32 | rows u64 LE | rows indexed (= the segment's row count) |
//! | 32..36 | param_a u32 LE | HNSW `m`, IVF `nlist` |
//! | 36..40 | param_b u32 LE | HNSW `ef_construction`, IVF 0 |
//! | 40..44 | metric u32 LE | 0 inner product (and cosine), 1 L2 (Faiss's numbering) |
//! | 44..48 | reserved | zero |
//! | 48..56 | body_len u64 LE | bytes of Faiss data after the header |
//! | 56..60 | body_crc u32 LE | crc32 of the body |
//! | 60..64 | header_crc u32 LE | crc32 of bytes 0..60 |
//! | 64.. | body | `faiss::write_index` output |

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use memmap2::Mmap;

use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::stamp::{Header, HeaderWriter, HEADER_LEN};

pub(crate) const MAGIC: &[u8; 8] = b"EMBERIDX";
pub(crate) const INDEX_VERSION: u32 = 1;

/// What an index file says it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexHeader {
    pub kind: u32,
    pub segment_id: u64,
    pub rows: u64,
    pub param_a: u32,
    pub param_b: u32,
    pub metric: u32,
}

/// The file name of the index of segment `id`.
pub(crate) fn file_name(id: u64) -> String {
    format!("seg-{id:020}.idx")
}

/// The segment id in an index file name, if it is one.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?.strip_suffix(".idx")?.parse().ok()
}

/// Writes an index file atomically and durably.
pub(crate) fn write(path: &Path, header: &IndexHeader, body: &[u8]) -> Result<()> {
    let h = HeaderWriter::new(MAGIC, INDEX_VERSION)
        .u32(12, header.kind)
        .u64(16, header.segment_id)
        .u64(24, header.rows)
        .u32(32, header.param_a)
        .u32(36, header.param_b)
        .u32(40, header.metric)
        .u64(48, body.len() as u64)
        .u32(56, crc32fast::hash(body))
        .finish();
    fsutil::write_atomically_with(path, |out| {
        out.write_all(&h)?;
        out.write_all(body)
    })
}

/// An index file mapped into memory, its header and body checked.
pub(crate) struct MappedIndexFile {
    pub header: IndexHeader,
    map: Mmap,
}

impl MappedIndexFile {
    /// The Faiss body (everything after our header).
    pub fn body(&self) -> &[u8] {
        &self.map[HEADER_LEN..]
    }
}

/// Maps an index file, checking magic, version, length and both checksums
/// before returning it: Faiss's reader is not safe on corrupted bytes. The
/// body checksum is one sequential pass over the file, and nothing is copied
/// onto the heap: the index is then read as views into this map
/// (`ffi::read_view`), so its pages are the page cache's, loaded on demand.
pub(crate) fn map(path: &Path) -> Result<MappedIndexFile> {
    let corrupt = |offset: u64, reason: String| Error::Corruption {
        file: path.to_path_buf(),
        offset,
        reason,
    };
    let mut file = File::open(path).at(path)?;
    let len = file.metadata().at(path)?.len();
    let mut head = [0u8; HEADER_LEN];
    let n = (len as usize).min(HEADER_LEN);
    file.read_exact(&mut head[..n]).at(path)?;
    let h = Header::check(&head[..n], MAGIC, INDEX_VERSION, path, "index")?;
    let (u32_at, u64_at) = (|i| h.u32(i), |i| h.u64(i));
    let body_len = u64_at(48);
    if body_len != len - HEADER_LEN as u64 {
        return Err(corrupt(
            48,
            format!(
                "header says {body_len} body bytes, the file holds {}",
                len - HEADER_LEN as u64
            ),
        ));
    }
    // SAFETY: as for sealed segments: index files are immutable by protocol
    // (written under a temporary name, renamed into place, never opened for
    // writing again, removed only when no version references their segment;
    // unlinking leaves an existing mapping intact), and the store directory
    // is locked against other emberdb processes.
    let map = unsafe { Mmap::map(&file) }.at(path)?;
    if map.len() as u64 != len {
        return Err(corrupt(0, format!("mapped {} bytes of {len}", map.len())));
    }
    if crc32fast::hash(&map[HEADER_LEN..]) != u32_at(56) {
        return Err(corrupt(HEADER_LEN as u64, "index body checksum mismatch".into()));
    }
    let header = IndexHeader {
        kind: u32_at(12),
        segment_id: u64_at(16),
        rows: u64_at(24),
        param_a: u32_at(32),
        param_b: u32_at(36),
        metric: u32_at(40),
    };
    Ok(MappedIndexFile { header, map })
}
