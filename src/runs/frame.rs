//! An open run file: its header, footer, length, sparse index and crc
//! table checked at open (O(blocks), no entry read), the file mapped, and
//! the per-block checks of [`super::blocks`] run on first touch. The byte
//! layout is [`super::blocks`]'; event runs from version 2 on carry a
//! [`super::directory`] between the crc table and the footer.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use super::blocks::{
    corrupt, le_u64, BlockCheck, Fence, Format, FLAG_BOTTOM, FOOTER_LEN, FOOTER_MAGIC, FOOTER_VERSION,
};
use super::directory::{self, Directory};
use super::RunHeader;
use crate::error::{Error, IoContext, Result};
use crate::faults::{self, Op};
use crate::stamp::{Header, HEADER_LEN};

/// A run file whose header, footer, length, index and crc table have been
/// checked, mapped.
pub(crate) struct Frame {
    pub map: Mmap,
    pub header: RunHeader,
    /// The header's field at 20 (history_len or kind).
    pub field20: u32,
    pub count: usize,
    /// The footer's field at 24 (users or values_len).
    pub aux: u64,
    pub blocks: usize,
    pub index_offset: usize,
    pub crc_offset: usize,
    /// The end of the padded crc table and of the directory, if any: keyed
    /// runs' values start here.
    pub tail_offset: usize,
    /// Event runs of version 2 on: where each user begins.
    pub directory: Option<Directory>,
    pub fence: Fence,
    pub check: BlockCheck,
}

fn read_at(file: &File, path: &Path, at: u64, buf: &mut [u8]) -> Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at).at(path)
}

/// A stamp check's Corruption moved to where the block sits in the file.
fn at_offset(e: Error, offset: u64) -> Error {
    match e {
        Error::Corruption { file, reason, .. } => Error::Corruption { file, offset, reason },
        other => other,
    }
}

impl Frame {
    /// Gives the pages of `range` (bytes of the file) that this process
    /// touched back from its resident set; they stay in the page cache.
    /// Scans call it behind their cursor so that reading every run (a
    /// merge, a round's gather, an export, verify) does not hold the
    /// whole file resident. Best effort: a refusal changes nothing.
    pub fn release(&self, range: std::ops::Range<usize>) {
        const PAGE: usize = 4096;
        let start = range.start.div_ceil(PAGE) * PAGE;
        let end = (range.end.min(self.map.len()) / PAGE) * PAGE;
        if end <= start {
            return;
        }
        // SAFETY: MADV_DONTNEED on this read-only, shared mapping of an
        // immutable file only drops the page-table entries of the range:
        // a later read of any byte in it (a slice still held, another
        // reader) faults the same bytes back in from the page cache or the
        // file, so nothing can observe a change. The range lies inside the
        // mapping (clamped above) and starts on a page boundary.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
        };
    }

    /// Opens run `id` of `format` at `path`: checks everything but the
    /// blocks (see the module documentation), then maps the file.
    pub fn open(path: &Path, id: u64, format: &Format) -> Result<Frame> {
        let bad = |offset: u64, reason: String| corrupt(path, offset, reason);
        let file = File::open(path).at(path)?;
        let len = file.metadata().at(path)?.len();
        let mut h = [0u8; HEADER_LEN];
        let n = len.min(HEADER_LEN as u64) as usize;
        read_at(&file, path, 0, &mut h[..n])?;
        let header = Header::check(&h[..n], format.magic, format.version, path, format.what)?;
        if header.u32(8) == 0 {
            return Err(bad(8, format!("{} format version 0 does not exist", format.what)));
        }
        if header.u32(12) as usize != format.entry_bytes || header.u32(16) as usize != format.block_entries {
            return Err(bad(
                12,
                format!(
                    "entries of {} bytes in blocks of {}, version 1 has {} in {}",
                    header.u32(12),
                    header.u32(16),
                    format.entry_bytes,
                    format.block_entries
                ),
            ));
        }
        if header.u64(24) != id {
            return Err(bad(
                24,
                format!("header names run {}, file name says {id}", header.u64(24)),
            ));
        }
        let (from_seq, to_seq) = (header.u64(32), header.u64(40));
        if from_seq > to_seq {
            return Err(bad(32, format!("seq range [{from_seq}, {to_seq}) is reversed")));
        }
        let flags = header.u32(48);
        if flags & !FLAG_BOTTOM != 0 {
            return Err(bad(48, format!("unknown flags {flags:#x}")));
        }
        if header.u32(52) != 0 || header.u32(56) != 0 {
            return Err(bad(52, "reserved header bytes are not zero".into()));
        }
        let min_len = (HEADER_LEN + FOOTER_LEN) as u64;
        if len < min_len {
            return Err(bad(
                len,
                format!("file of {len} bytes cannot hold a header and a footer"),
            ));
        }
        let footer_at = len - FOOTER_LEN as u64;
        let mut f = [0u8; FOOTER_LEN];
        read_at(&file, path, footer_at, &mut f)?;
        let footer =
            Header::check(&f, FOOTER_MAGIC, FOOTER_VERSION, path, "run footer").map_err(|e| at_offset(e, footer_at))?;
        if footer.u32(8) == 0 {
            return Err(bad(footer_at + 8, "run footer version 0 does not exist".into()));
        }
        let has_directory = format.directory_since.is_some_and(|v| header.u32(8) >= v);
        if footer.u32(12) != 0 || (!has_directory && footer.u32(56) != 0) {
            return Err(bad(footer_at + 12, "reserved footer bytes are not zero".into()));
        }
        let (count, aux) = (footer.u64(16), footer.u64(24));
        let (index_offset, crc_offset) = (footer.u64(32), footer.u64(40));
        let (index_crc, table_crc) = (footer.u32(48), footer.u32(52));

        // Every size from disk is checked arithmetic: the footer may lie.
        let entry_bytes = format.entry_bytes as u64;
        let blocks = count.div_ceil(format.block_entries as u64);
        let layout = (|| {
            let index_at = count.checked_mul(entry_bytes)?.checked_add(HEADER_LEN as u64)?;
            let crc_at = index_at.checked_add(blocks.checked_mul(8)?)?;
            let dir_at = crc_at.checked_add(blocks.checked_mul(4)?.checked_next_multiple_of(8)?)?;
            let dir_len = if has_directory { directory::section_len(aux)? } else { 0 };
            let tail_at = dir_at.checked_add(dir_len)?;
            let values = if format.has_values { aux } else { 0 };
            let end = tail_at.checked_add(values)?.checked_add(FOOTER_LEN as u64)?;
            Some((index_at, crc_at, dir_at, tail_at, end))
        })();
        let Some((index_at, crc_at, dir_at, tail_at, expected_len)) = layout else {
            return Err(bad(footer_at + 16, format!("entry count {count} is out of range")));
        };
        if index_offset != index_at || crc_offset != crc_at {
            return Err(bad(
                footer_at + 32,
                "section offsets disagree with the entry count".into(),
            ));
        }
        if len != expected_len {
            return Err(bad(
                len.min(expected_len),
                format!("file is {len} bytes, its footer implies {expected_len}"),
            ));
        }
        if !format.has_values && (aux > count || (aux == 0) != (count == 0)) {
            return Err(bad(footer_at + 24, format!("{aux} users for {count} entries")));
        }
        let too_big = || bad(0, format!("file of {len} bytes is too large to map here"));
        let to_usize = |v: u64| usize::try_from(v).map_err(|_| too_big());
        let (count, blocks) = (to_usize(count)?, to_usize(blocks)?);
        let (index_offset, crc_offset, tail_offset) = (to_usize(index_at)?, to_usize(crc_at)?, to_usize(tail_at)?);
        let dir_offset = to_usize(dir_at)?;

        faults::check(Op::Mmap, path).at(path)?;
        // SAFETY: mapping a file is sound as long as nobody modifies or
        // truncates it while mapped. Run files are immutable by protocol:
        // written once under a temporary name, renamed into place, never
        // opened for writing again, and removed only after no version
        // references them (unlinking does not disturb an existing mapping).
        // The store directory is locked against other emberdb processes;
        // an outside process writing into it is beyond what we can defend.
        let map = unsafe { Mmap::map(&file) }.at(path)?;
        if map.len() as u64 != len {
            return Err(bad(0, "file changed size while it was opened".into()));
        }
        let index_bytes = &map[index_offset..crc_offset];
        if crc32fast::hash(index_bytes) != index_crc {
            return Err(bad(index_at, "sparse index checksum mismatch".into()));
        }
        let table_bytes = &map[crc_offset..dir_offset];
        if crc32fast::hash(table_bytes) != table_crc {
            return Err(bad(crc_at, "crc table checksum mismatch".into()));
        }
        if table_bytes[4 * blocks..].iter().any(|&b| b != 0) {
            return Err(bad(crc_at, "crc table padding is not zero".into()));
        }
        let index: &[u64] =
            bytemuck::try_cast_slice(index_bytes).map_err(|_| bad(index_at, "sparse index is misaligned".into()))?;
        let disordered = index
            .windows(2)
            .position(|w| if format.strict_keys { w[0] >= w[1] } else { w[0] > w[1] });
        if let Some(i) = disordered {
            return Err(bad(
                index_at + 8 * (i as u64 + 1),
                format!("sparse index goes down at block {}", i + 1),
            ));
        }
        let fence = Fence::build(index);
        let directory = if has_directory {
            Some(Directory::open(&map, dir_offset, aux, footer.u32(56), path)?)
        } else {
            None
        };
        Ok(Frame {
            header: RunHeader {
                id,
                from_seq,
                to_seq,
                history_len: 0,
                bottom: flags & FLAG_BOTTOM != 0,
            },
            field20: header.u32(20),
            count,
            aux,
            blocks,
            index_offset,
            crc_offset,
            tail_offset,
            directory,
            fence,
            check: BlockCheck::new(blocks),
            map,
        })
    }

    /// The sparse index: the first key of each block.
    pub fn index(&self, path: &Path) -> Result<&[u64]> {
        bytemuck::try_cast_slice(&self.map[self.index_offset..self.crc_offset])
            .map_err(|_| corrupt(path, self.index_offset as u64, "sparse index is misaligned"))
    }

    /// The key of block `b`'s first entry per the index (checked at open).
    pub fn index_key(&self, b: usize) -> Option<u64> {
        if b >= self.blocks {
            return None;
        }
        let at = self.index_offset + 8 * b;
        self.map.get(at..at + 8).map(le_u64)
    }

    /// All entry bytes.
    pub fn entry_bytes(&self) -> &[u8] {
        &self.map[HEADER_LEN..self.index_offset]
    }

    /// The entry indexes of block `b`.
    pub fn block_range(&self, format: &Format, b: usize) -> std::ops::Range<usize> {
        let start = (b * format.block_entries).min(self.count);
        start..((b + 1) * format.block_entries).min(self.count)
    }

    /// Checks block `b` once (its crc, then `typed` over its entry bytes);
    /// a failure is `Corruption` at the block's start, every time.
    pub fn check_block(
        &self,
        path: &Path,
        format: &Format,
        b: usize,
        typed: impl FnOnce(&[u8]) -> std::result::Result<(), String>,
    ) -> Result<()> {
        self.check
            .run(b, || {
                let range = self.block_range(format, b);
                let bytes = self
                    .entry_bytes()
                    .get(range.start * format.entry_bytes..range.end * format.entry_bytes)
                    .ok_or_else(|| format!("block {b} is past the entries"))?;
                let at = self.crc_offset + 4 * b;
                let stored = self
                    .map
                    .get(at..at + 4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .ok_or_else(|| format!("block {b} has no crc"))?;
                if crc32fast::hash(bytes) != stored {
                    return Err(format!("block {b} checksum mismatch"));
                }
                typed(bytes)
            })
            .map_err(|reason| corrupt(path, format.block_offset(b), reason))
    }
}
