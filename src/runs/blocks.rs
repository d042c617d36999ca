//! What event and keyed runs share: the 64-byte header and footer, the
//! sections between them, the per-block crc table and its lazy checks, the
//! fence that narrows a lookup, and writing a run file durably.
//!
//! Header (a [`crate::stamp`] block):
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..8 | magic | `EMBEREVR` (events) or `EMBERKVR` (keyed) |
//! | 8..12 | version u32 | events 2 (1 is read: no directory); keyed 1 |
//! | 12..16 | entry_bytes u32 | 40 (events) or 32 (keyed) |
//! | 16..20 | block_entries u32 | 256 (events) or 128 (keyed) |
//! | 20..24 | field u32 | events: history_len (0 = a flush); keyed: kind (1 features, 2 attributes) |
//! | 24..32 | run_id u64 | must match the file name |
//! | 32..40 | from_seq u64 | every entry's seq >= from |
//! | 40..48 | to_seq u64 | every entry's seq < to |
//! | 48..52 | flags u32 | bit 0 `BOTTOM`; other bits zero |
//! | 52..60 | reserved | zero |
//! | 60..64 | header_crc u32 | crc32 of 0..60 |
//!
//! Sections, in order: entries at 64 (`count` fixed-width entries, so
//! entries are 8-aligned in the map and cast in place), the sparse index at
//! `index_offset` (`blocks` x u64: the first key of each block), the crc
//! table at `crc_offset` (`blocks` x u32: crc32 of each block's entry
//! bytes, zero-padded to 8), then event runs' directory (version 2 on) or
//! keyed runs' values, then the footer.
//! `blocks = ceil(count / block_entries)`.
//!
//! Footer (a stamp block, the last 64 bytes):
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..8 | magic | `EMBRFOOT` |
//! | 8..12 | version u32 | 1 |
//! | 12..16 | reserved | zero |
//! | 16..24 | count u64 | entries |
//! | 24..32 | aux u64 | events: distinct users; keyed: values_len |
//! | 32..40 | index_offset u64 | `64 + count * entry_bytes` |
//! | 40..48 | crc_offset u64 | `index_offset + 8 * blocks` |
//! | 48..52 | index_crc u32 | crc32 of the sparse index |
//! | 52..56 | table_crc u32 | crc32 of the crc table with its padding |
//! | 56..60 | directory_crc u32 | event runs from version 2: crc32 of the `runs/directory.rs`'s seed and crc table; otherwise zero |
//! | 60..64 | footer_crc u32 | crc32 of 0..60 |
//!
//! The counts are in the footer so a writer can stream entries without
//! knowing how many a merge will keep. Opening checks the header, the
//! footer, the exact length they imply, the index and table crcs and that
//! the index ascends: O(blocks), no entry read. A block's own crc (and the
//! order of its entries) is checked on its first touch and the outcome kept
//! in [`BlockCheck`]; a bad block keeps failing with the same `Corruption`,
//! offset at the block's start, as a segment body does.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::RunHeader;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::stamp::{HeaderWriter, HEADER_LEN};

pub(crate) const FOOTER_LEN: usize = 64;
pub(crate) const FOOTER_MAGIC: &[u8; 8] = b"EMBRFOOT";
pub(crate) const FOOTER_VERSION: u32 = 1;
/// Header flag: the merge that wrote the run included the oldest run.
pub(crate) const FLAG_BOTTOM: u32 = 1;
/// Index keys per fence key: 512 u64 keys are one 4 KiB page of the index,
/// so a lookup touches one index page after the (heap) fence.
pub(crate) const FENCE_STRIDE: usize = 512;

/// A `Corruption` in run file `path`.
pub(crate) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::Corruption {
        file: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// The fixed shape of one run format.
pub(crate) struct Format {
    pub magic: &'static [u8; 8],
    pub version: u32,
    /// "event run" or "keyed run", for messages.
    pub what: &'static str,
    pub entry_bytes: usize,
    pub block_entries: usize,
    /// Keyed runs: a values section follows the crc table, `aux` bytes long.
    pub has_values: bool,
    /// Keyed runs: one entry per key, so index keys strictly ascend (event
    /// runs' may repeat: a user can fill several blocks).
    pub strict_keys: bool,
    /// Event runs: files of this version or later carry a
    /// `runs/directory.rs` of `aux` users after the crc table, its crc in
    /// the footer's field at 56.
    pub directory_since: Option<u32>,
}

impl Format {
    /// The bytes of block `b`'s entries start here.
    pub fn block_offset(&self, b: usize) -> u64 {
        (HEADER_LEN + b * self.block_entries * self.entry_bytes) as u64
    }
}

/// The header of a run of `format` (field 20 is the format's own).
pub(crate) fn encode_header(format: &Format, field20: u32, h: &RunHeader) -> [u8; HEADER_LEN] {
    HeaderWriter::new(format.magic, format.version)
        .u32(12, format.entry_bytes as u32)
        .u32(16, format.block_entries as u32)
        .u32(20, field20)
        .u64(24, h.id)
        .u64(32, h.from_seq)
        .u64(40, h.to_seq)
        .u32(48, if h.bottom { FLAG_BOTTOM } else { 0 })
        .finish()
}

/// Streams entries into a run, collecting each block's crc and first key.
pub(crate) struct BlockWriter {
    block_entries: usize,
    in_block: usize,
    count: u64,
    hasher: crc32fast::Hasher,
    crcs: Vec<u32>,
    index: Vec<u64>,
}

/// The section layout a [`BlockWriter`] wrote.
pub(crate) struct Sections {
    pub count: u64,
    pub index_offset: u64,
    pub crc_offset: u64,
    pub index_crc: u32,
    pub table_crc: u32,
}

impl BlockWriter {
    pub fn new(format: &Format) -> Self {
        BlockWriter {
            block_entries: format.block_entries,
            in_block: 0,
            count: 0,
            hasher: crc32fast::Hasher::new(),
            crcs: Vec::new(),
            index: Vec::new(),
        }
    }

    /// Writes one entry (`bytes`, whose key is `key`).
    pub fn push(&mut self, out: &mut impl Write, key: u64, bytes: &[u8]) -> std::io::Result<()> {
        if self.in_block == 0 {
            self.index.push(key);
        }
        out.write_all(bytes)?;
        self.hasher.update(bytes);
        self.count += 1;
        self.in_block += 1;
        if self.in_block == self.block_entries {
            self.close_block();
        }
        Ok(())
    }

    fn close_block(&mut self) {
        let hasher = std::mem::take(&mut self.hasher);
        self.crcs.push(hasher.finalize());
        self.in_block = 0;
    }

    /// Writes the sparse index and the crc table (padded to 8) after the
    /// entries, `entry_bytes` wide each.
    pub fn finish(mut self, out: &mut impl Write, entry_bytes: usize) -> std::io::Result<Sections> {
        if self.in_block > 0 {
            self.close_block();
        }
        let index: &[u8] = bytemuck::cast_slice(&self.index);
        let mut table: Vec<u8> = bytemuck::cast_slice(&self.crcs).to_vec();
        table.resize(table.len().next_multiple_of(8), 0);
        out.write_all(index)?;
        out.write_all(&table)?;
        let index_offset = HEADER_LEN as u64 + self.count * entry_bytes as u64;
        Ok(Sections {
            count: self.count,
            index_offset,
            crc_offset: index_offset + index.len() as u64,
            index_crc: crc32fast::hash(index),
            table_crc: crc32fast::hash(&table),
        })
    }
}

/// The footer closing a run whose sections are `s`.
/// `directory_crc` is the crc of an event run's directory (0 without one).
pub(crate) fn encode_footer(s: &Sections, aux: u64, directory_crc: u32) -> [u8; FOOTER_LEN] {
    HeaderWriter::new(FOOTER_MAGIC, FOOTER_VERSION)
        .u64(16, s.count)
        .u64(24, aux)
        .u64(32, s.index_offset)
        .u64(40, s.crc_offset)
        .u32(48, s.index_crc)
        .u32(52, s.table_crc)
        .u32(56, directory_crc)
        .finish()
}

/// Writes a run to `path` durably (tmp, fsync, rename, dir fsync). `fill`
/// may refuse its input by putting the error in its second argument and
/// returning any io error; then, and on any failure, the temporary file is
/// removed, so a refused or failed write leaves nothing behind.
pub(crate) fn write_run(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&File>, &mut Option<Error>) -> std::io::Result<()>,
) -> Result<()> {
    let mut refused = None;
    let outcome = fsutil::write_atomically_with(path, |out| fill(out, &mut refused));
    if outcome.is_err() {
        // Best effort: the store's orphan sweep removes `*.tmp` anyway.
        let _ = std::fs::remove_file(fsutil::tmp_path(path));
    }
    match refused {
        Some(e) => Err(e),
        None => outcome,
    }
}

/// The caller's refusal, as the io error that stops `write_atomically_with`.
pub(crate) fn refuse(slot: &mut Option<Error>, e: Error) -> std::io::Error {
    *slot = Some(e);
    std::io::Error::other("entries refused")
}

/// Per-block outcome of the lazy check: 2 bits a block (checked, bad).
pub(crate) struct BlockCheck {
    bits: Box<[AtomicU64]>,
}

const CHECKED: u64 = 1;
const BAD: u64 = 2;

impl BlockCheck {
    pub fn new(blocks: usize) -> Self {
        BlockCheck {
            bits: (0..blocks.div_ceil(32)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn state(&self, b: usize) -> u64 {
        self.bits
            .get(b / 32)
            .map_or(0, |w| w.load(Ordering::Acquire) >> (2 * (b % 32)) & 3)
    }

    /// Runs `check` for block `b` unless it already passed. A block that
    /// failed is checked again to name its fault (the file never changes,
    /// so the reason is the same) and fails whatever that says: the
    /// verdict is sticky.
    pub fn run(
        &self,
        b: usize,
        check: impl FnOnce() -> std::result::Result<(), String>,
    ) -> std::result::Result<(), String> {
        let before = self.state(b);
        if before == CHECKED {
            return Ok(());
        }
        let outcome = check();
        let bits = if outcome.is_err() { CHECKED | BAD } else { CHECKED };
        if let Some(w) = self.bits.get(b / 32) {
            // Two threads checking one block at once agree (same bytes).
            w.fetch_or(bits << (2 * (b % 32)), Ordering::AcqRel);
        }
        match outcome {
            Ok(()) if before & BAD != 0 => Err("the block failed its check earlier".into()),
            other => other,
        }
    }
}

/// Every [`FENCE_STRIDE`]th key of the sparse index, on the heap: a binary
/// search over it, then over one index page, finds a key's block.
pub(crate) struct Fence {
    keys: Vec<u64>,
}

impl Fence {
    pub fn build(index: &[u64]) -> Self {
        Fence {
            keys: index.iter().step_by(FENCE_STRIDE).copied().collect(),
        }
    }

    /// `index.partition_point(pred)` for an ascending `index` (the one the
    /// fence was built from) and a predicate true on a prefix of it.
    pub fn partition_point(&self, index: &[u64], pred: impl Fn(u64) -> bool) -> usize {
        let f = self.keys.partition_point(|&k| pred(k));
        // index[(f-1)*STRIDE] passes and index[f*STRIDE] fails (if any), so
        // the boundary lies between them.
        let lo = f.saturating_sub(1) * FENCE_STRIDE;
        let hi = (f * FENCE_STRIDE).min(index.len());
        match index.get(lo..hi) {
            Some(page) => lo + page.partition_point(|&k| pred(k)),
            None => index.partition_point(|&k| pred(k)),
        }
    }
}

pub(crate) fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Restamps every checksum of a run file's `bytes` of `format` that the
/// bytes are long enough to hold: block crcs, the index and table crcs, the
/// header and footer crcs (for tests and `fuzz::fix_checksums`, so damage
/// reaches the checks behind the checksums). Never panics on any bytes.
#[cfg(any(test, feature = "test-hooks"))]
pub(crate) fn restamp(bytes: &mut [u8], format: &Format) {
    fn put(bytes: &mut [u8], at: usize, of: std::ops::Range<usize>) {
        if at.checked_add(4).is_some_and(|e| e <= bytes.len()) && of.start <= of.end && of.end <= bytes.len() {
            let crc = crc32fast::hash(&bytes[of]);
            bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let len = bytes.len();
    put(bytes, 60, 0..60);
    let Some(footer_at) = len.checked_sub(FOOTER_LEN).filter(|&f| f >= HEADER_LEN) else {
        return;
    };
    let field = |bytes: &[u8], at: usize| usize::try_from(le_u64(&bytes[footer_at + at..])).ok();
    if let (Some(count), Some(index_at), Some(crc_at)) = (field(bytes, 16), field(bytes, 32), field(bytes, 40)) {
        let blocks = count.div_ceil(format.block_entries);
        let block_bytes = format.block_entries * format.entry_bytes;
        let table_end = blocks
            .checked_mul(4)
            .and_then(|t| t.checked_next_multiple_of(8))
            .and_then(|t| t.checked_add(crc_at))
            .filter(|&end| end <= footer_at && index_at <= crc_at);
        if let Some(table_end) = table_end {
            // blocks <= len / 4 here, so this loop is bounded by the input.
            for b in 0..blocks {
                let start = HEADER_LEN + b * block_bytes;
                let end = (start + block_bytes).min(index_at);
                put(bytes, crc_at + 4 * b, start.min(end)..end);
            }
            put(bytes, footer_at + 52, crc_at..table_end);
        }
        put(bytes, footer_at + 48, index_at.min(crc_at)..crc_at);
    }
    put(bytes, footer_at + 60, footer_at..footer_at + 60);
}

#[cfg(test)]
mod tests;
