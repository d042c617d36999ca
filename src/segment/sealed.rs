//! Sealed segment files: immutable, memory-mapped read-only.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..8 | magic | `b"EMBERSEG"` |
//! | 8..12 | version u32 LE | [`SEGMENT_VERSION`] (1 or 2) |
//! | 12..16 | dim u32 LE | components per row |
//! | 16..24 | count u64 LE | rows |
//! | 24..32 | segment_id u64 LE | must match the file name |
//! | 32..40 | ids_offset u64 LE | always 64 |
//! | 40..48 | vectors_offset u64 LE | `64 + 8 * count`, rounded up to 64 |
//! | 48..52 | body_crc u32 LE | crc32 of bytes 64 to the end of the rows |
//! | 52..56 | order_crc u32 LE | version 2: crc32 of the id-order section; version 1: zero |
//! | 56..60 | reserved | zero |
//! | 60..64 | header_crc u32 LE | crc32 of bytes 0..60 |
//! | 64.. | ids | `count` x u64 LE, row by row |
//! | vectors_offset.. | rows | `count * dim` x f32 LE, 64-byte aligned for SIMD loads |
//! | rows end.. | id order | version 2: the rows ordered by id ([`super::id_order`]) |
//!
//! The header and the file length are checked before the file is mapped;
//! the body checksum is checked before the first read that trusts the rows
//! ([`SealedSegment::verified`]), the order's before the first lookup by id,
//! so opening a store reads no file whole, and finding an item (which asks
//! every segment's order) reads no rows. Version 1 files (no order section)
//! are still read; their order is built in memory from the ids, as is a
//! version 2 order that fails its checksum (it is derived data).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memmap2::Mmap;

use super::id_order::{self, IdOrder, OwnedIdOrder};
use super::tombstones::Tombstones;
use super::visibility::Seen;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::index::SegmentIndex;
use crate::stamp::{Header, HeaderWriter, HEADER_LEN};

pub(crate) const MAGIC: &[u8; 8] = b"EMBERSEG";
pub(crate) const SEGMENT_VERSION: u32 = 2;

/// The file name of segment `id`.
pub(crate) fn file_name(id: u64) -> String {
    format!("seg-{id:020}.emb")
}

/// The file name of growing-segment snapshot `id` (same layout as a
/// sealed segment; written at checkpoints so the log can be trimmed).
pub(crate) fn snapshot_file_name(id: u64) -> String {
    format!("grow-{id:020}.emb")
}

/// The segment id in a segment or snapshot file name, if it is one.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")
        .or_else(|| name.strip_prefix("grow-"))?
        .strip_suffix(".emb")?
        .parse()
        .ok()
}

fn vectors_offset(count: usize) -> usize {
    (HEADER_LEN + 8 * count).next_multiple_of(64)
}

/// Writes segment `id` holding `ids` and their rows (`ids.len() * dim`
/// values) to `path`, atomically and durably, with its id order.
pub(crate) fn write(path: &Path, id: u64, dim: usize, ids: &[u64], values: &[f32]) -> Result<()> {
    debug_assert_eq!(ids.len() * dim, values.len());
    let count = ids.len();
    let vec_off = vectors_offset(count);
    let id_bytes: &[u8] = bytemuck::cast_slice(ids);
    let value_bytes: &[u8] = bytemuck::cast_slice(values);
    let padding = vec![0u8; vec_off - HEADER_LEN - id_bytes.len()];
    let mut body_crc = crc32fast::Hasher::new();
    body_crc.update(id_bytes);
    body_crc.update(&padding);
    body_crc.update(value_bytes);

    let rows_end = vec_off + value_bytes.len();
    let order = OwnedIdOrder::build(ids);
    let order_padding = vec![0u8; id_order::section_offset(rows_end) - rows_end];
    let order_ids: &[u8] = bytemuck::cast_slice(&order.ids);
    let order_rows: &[u8] = bytemuck::cast_slice(&order.rows);
    let mut order_crc = crc32fast::Hasher::new();
    order_crc.update(&order_padding);
    order_crc.update(order_ids);
    order_crc.update(order_rows);

    let h = HeaderWriter::new(MAGIC, SEGMENT_VERSION)
        .u32(12, dim as u32)
        .u64(16, count as u64)
        .u64(24, id)
        .u64(32, HEADER_LEN as u64)
        .u64(40, vec_off as u64)
        .u32(48, body_crc.finalize())
        .u32(52, order_crc.finalize())
        .finish();

    fsutil::write_atomically_with(path, |out| {
        out.write_all(&h)?;
        out.write_all(id_bytes)?;
        out.write_all(&padding)?;
        out.write_all(value_bytes)?;
        out.write_all(&order_padding)?;
        out.write_all(order_ids)?;
        out.write_all(order_rows)
    })
}

/// The id order once asked for: the mapped section (its checksum held),
/// one built from the ids (version 1, or a mapped section that failed its
/// checksum: the order is derived data, so it is rebuilt rather than
/// refused), or why neither could be had.
enum OrderState {
    Mapped,
    Built(OwnedIdOrder),
    Failed(String),
}

/// An open sealed segment.
pub(crate) struct SealedSegment {
    id: u64,
    path: PathBuf,
    dim: usize,
    count: usize,
    vectors_offset: usize,
    body_crc: u32,
    map: Mmap,
    /// The outcome of the body checksum, computed once on first use.
    verified: OnceLock<std::result::Result<(), String>>,
    dead: Tombstones,
    /// Set once by the indexer; until then the segment is searched exactly.
    index: OnceLock<SegmentIndex>,
    /// The id order section's crc32 (version 2); None for version 1,
    /// whose order is built from the ids on first use.
    order_crc: Option<u32>,
    /// The rows ordered by id: for lookups by id and filtered queries.
    order: OnceLock<OrderState>,
}

impl SealedSegment {
    /// Opens and maps segment `id` at `path`, checking its header and length
    /// (not yet its body checksum).
    pub fn open(path: &Path, id: u64, expected_dim: usize) -> Result<Self> {
        let corrupt = |offset: u64, reason: String| Error::Corruption {
            file: path.to_path_buf(),
            offset,
            reason,
        };
        let mut file = File::open(path).at(path)?;
        let len = file.metadata().at(path)?.len();
        let mut h = [0u8; HEADER_LEN];
        let n = (len as usize).min(HEADER_LEN);
        std::io::Read::read_exact(&mut file, &mut h[..n]).at(path)?;
        let header = Header::check(&h[..n], MAGIC, SEGMENT_VERSION, path, "segment")?;
        let version = header.u32(8);
        if version == 0 {
            return Err(corrupt(8, "segment format version 0 does not exist".into()));
        }
        if version >= 2 && header.u32(56) != 0 {
            return Err(corrupt(56, "reserved header bytes are not zero".into()));
        }
        let (u32_at, u64_at) = (|i| header.u32(i), |i| header.u64(i));
        let dim = u32_at(12) as usize;
        let count = u64_at(16);
        if dim != expected_dim {
            return Err(corrupt(
                12,
                format!("segment dim {dim} differs from the store's {expected_dim}"),
            ));
        }
        if u64_at(24) != id {
            return Err(corrupt(
                24,
                format!("header names segment {}, file name says {id}", u64_at(24)),
            ));
        }
        let count = usize::try_from(count)
            .ok()
            .filter(|&c| c <= u32::MAX as usize)
            .ok_or_else(|| corrupt(16, format!("row count {count} is out of range")))?;
        let vec_off = vectors_offset(count);
        if u64_at(32) != HEADER_LEN as u64 || u64_at(40) != vec_off as u64 {
            return Err(corrupt(32, "section offsets disagree with the row count".into()));
        }
        let rows_end = vec_off as u64 + (count as u64) * (dim as u64) * 4;
        let expected_len = match version {
            1 => rows_end,
            _ => rows_end + id_order::section_len(rows_end as usize, count) as u64,
        };
        if len != expected_len {
            return Err(corrupt(
                len.min(expected_len),
                format!("file is {len} bytes, header implies {expected_len}"),
            ));
        }
        crate::faults::check(crate::faults::Op::Mmap, path).at(path)?;
        // SAFETY: mapping a file is sound as long as nobody modifies or
        // truncates it while mapped. Sealed files are immutable by protocol:
        // written once under a temporary name, renamed into place, never
        // opened for writing again, and removed only after no version
        // references them (unlinking does not disturb an existing mapping).
        // The store directory is locked against other emberdb processes;
        // an outside process writing into it is beyond what we can defend.
        let map = unsafe { Mmap::map(&file) }.at(path)?;
        Ok(SealedSegment {
            id,
            path: path.to_path_buf(),
            dim,
            count,
            vectors_offset: vec_off,
            body_crc: u32_at(48),
            map,
            verified: OnceLock::new(),
            dead: Tombstones::new(count),
            index: OnceLock::new(),
            order_crc: (version >= 2).then(|| u32_at(52)),
            order: OnceLock::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn dead(&self) -> &Tombstones {
        &self.dead
    }

    /// The segment's Faiss index, once built or loaded.
    pub fn index(&self) -> Option<&SegmentIndex> {
        self.index.get()
    }

    /// Installs the index (the first one wins).
    pub fn set_index(&self, index: SegmentIndex) {
        let _ = self.index.set(index);
    }

    /// The dead-row bitmap as bytes (bit `r % 8` of byte `r / 8`), a copy
    /// taken now as a reader that sees `seen` has it, for Faiss's id
    /// selector.
    pub fn dead_bitmap(&self, seen: Seen) -> Vec<u8> {
        self.dead.to_bytes(seen)
    }

    pub fn live_rows(&self) -> usize {
        self.count - self.dead.count()
    }

    pub fn file_bytes(&self) -> u64 {
        self.map.len() as u64
    }

    /// Checks the body checksum (once; later calls return the first outcome).
    pub fn verified(&self) -> Result<()> {
        self.verified
            .get_or_init(|| {
                if crc32fast::hash(&self.map[HEADER_LEN..self.rows_end()]) == self.body_crc {
                    Ok(())
                } else {
                    Err("segment body checksum mismatch".to_string())
                }
            })
            .clone()
            .map_err(|reason| Error::Corruption {
                file: self.path.clone(),
                offset: HEADER_LEN as u64,
                reason,
            })
    }

    /// Whether the file carries its id order (version 2).
    pub fn has_id_order(&self) -> bool {
        self.order_crc.is_some()
    }

    /// Whether the mapped id order (version 2) holds its checksum; a
    /// version 1 file has none to hold. For `verify`: lookups rebuild a
    /// damaged order instead (see [`SealedSegment::order`]).
    pub fn order_checksum(&self) -> Result<()> {
        match self.order_crc {
            Some(crc) if crc32fast::hash(&self.map[self.rows_end()..]) != crc => Err(Error::Corruption {
                file: self.path.clone(),
                offset: self.rows_end() as u64,
                reason: "id order checksum mismatch".into(),
            }),
            _ => Ok(()),
        }
    }

    /// Marks the body as verified (we just wrote it ourselves).
    pub fn trust_fresh(&self) {
        let _ = self.verified.set(Ok(()));
    }

    /// The ids and rows, after the checksum has been verified.
    pub fn data(&self) -> Result<(&[u64], &[f32])> {
        self.verified()?;
        let ids_bytes = &self.map[HEADER_LEN..HEADER_LEN + 8 * self.count];
        let values_bytes = &self.map[self.vectors_offset..self.rows_end()];
        let cast_err = |what: &str| Error::Corruption {
            file: self.path.clone(),
            offset: 0,
            reason: format!("{what} section is misaligned in memory"),
        };
        let ids = bytemuck::try_cast_slice(ids_bytes).map_err(|_| cast_err("ids"))?;
        let values = bytemuck::try_cast_slice(values_bytes).map_err(|_| cast_err("vector"))?;
        Ok((ids, values))
    }

    fn rows_end(&self) -> usize {
        self.vectors_offset + self.count * self.dim * 4
    }

    /// The rows ordered by id. A version 2 file's section is checked
    /// against its crc32 on first use; a version 1 file's order is built
    /// from its (verified) ids, and so is a version 2 file's whose section
    /// fails its checksum (logged; `verify` reports it): the order is
    /// derived from the ids, and refusing it would refuse every write of a
    /// new item (each asks every segment).
    pub fn order(&self) -> Result<IdOrder<'_>> {
        let state = self.order.get_or_init(|| {
            if self.has_id_order() {
                match self.order_checksum() {
                    Ok(()) => return OrderState::Mapped,
                    Err(e) => log::error!("{e}; rebuilding the order from the segment's ids"),
                }
            }
            match self.data() {
                Ok((ids, _)) => OrderState::Built(OwnedIdOrder::build(ids)),
                Err(Error::Corruption { reason, .. }) => OrderState::Failed(reason),
                Err(e) => OrderState::Failed(e.to_string()),
            }
        });
        match state {
            OrderState::Built(built) => Ok(built.view()),
            OrderState::Mapped => {
                let offset = id_order::section_offset(self.rows_end());
                let rows_at = offset + 8 * self.count;
                let cast_err = || Error::Corruption {
                    file: self.path.clone(),
                    offset: offset as u64,
                    reason: "id order section is misaligned in memory".into(),
                };
                Ok(IdOrder {
                    ids: bytemuck::try_cast_slice(&self.map[offset..rows_at]).map_err(|_| cast_err())?,
                    rows: bytemuck::try_cast_slice(&self.map[rows_at..rows_at + 4 * self.count])
                        .map_err(|_| cast_err())?,
                })
            }
            OrderState::Failed(reason) => Err(Error::Corruption {
                file: self.path.clone(),
                offset: HEADER_LEN as u64,
                reason: reason.clone(),
            }),
        }
    }

    /// Calls `f(id, row)` for each id of `wanted` (sorted) that this
    /// segment holds, dead rows included.
    pub fn rows_of(&self, wanted: &[u64], f: impl FnMut(u64, u32)) -> Result<()> {
        self.order()?.each_of(wanted, f);
        Ok(())
    }

    /// The row holding `id` that is live to a reader that sees `seen`, if
    /// this segment has one.
    pub fn live_row_of(&self, id: u64, seen: Seen) -> Result<Option<u32>> {
        Ok(self
            .order()?
            .rows_of(id)
            .find(|&row| (row as usize) < self.count && !self.dead.is_dead_to(row as usize, seen)))
    }

    /// Checks the id order against the id column, and its checksum (for
    /// `verify`).
    pub fn check_order(&self) -> Result<()> {
        self.order_checksum()?;
        let (ids, _) = self.data()?;
        self.order()?.check_against(ids).map_err(|reason| Error::Corruption {
            file: self.path.clone(),
            offset: self.rows_end() as u64,
            reason,
        })
    }

    /// One row's values.
    pub fn row(&self, row: u32) -> Result<Option<&[f32]>> {
        let (_, values) = self.data()?;
        let r = row as usize;
        Ok(values.get(r * self.dim..(r + 1) * self.dim))
    }
}
