//! Keyed runs (`ft-<id:020>.run` user features, `at-<id:020>.run` item
//! attributes): one entry per id, its newest whole set or a deletion.
//!
//! Header and footer as in [`super::blocks`], with magic `EMBERKVR`,
//! version 1, entry_bytes 32, block_entries 128 (4 KiB a block), the
//! header's field at 20 the kind (1 user features, 2 item attributes;
//! checked against the file name), `BOTTOM` also meaning "no deletion
//! entries", and the footer's field at 24 `values_len`.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..64 | header | |
//! | 64.. | entries | count x [`KeyedEntry`], strictly ascending by id |
//! | index_offset.. | sparse index | blocks x u64: the first id of each block |
//! | crc_offset.. | crc table | blocks x u32, zero-padded to 8 |
//! | values_offset.. | values | the encoded sets, concatenated in entry order (`values_offset` = end of the padded table) |
//! | len-64.. | footer | |
//!
//! `KeyedEntry` (32 bytes):
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..8 | id u64 | user or item |
//! | 8..16 | seq u64 | the operation's seq (0 for upgraded records), in `[from_seq, to_seq)` |
//! | 16..24 | value_offset u64 | into values; 0 for a deletion |
//! | 24..28 | value_len u32 | 0 = deletion entry; a set is >= 2 bytes |
//! | 28..32 | value_crc u32 | crc32 of the value; 0 for a deletion |
//!
//! A value is the pair set of WAL kinds 6 and 9 (`wal::record::
//! encode_pair_set`: count u16, then count x (u16 length + UTF-8 key, u16
//! length + UTF-8 value)), decoded within `MAX_FEATURES` and
//! `MAX_FEATURE_BYTES`. A read checks the crc of the value it returns only,
//! so a damaged value fails its own id and no other.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::blocks::{self, corrupt, encode_footer, encode_header, refuse, BlockWriter, Format};
use super::frame::Frame;
use super::{file_name, RunHeader, RunKind};
use crate::error::{Error, IoContext, Result};
use crate::event::{MAX_FEATURES, MAX_FEATURE_BYTES};
use crate::faults::{self, Op};
use crate::fsutil;
use crate::stamp::HEADER_LEN;
use crate::wal::record::{decode_pair_set, encode_pair_set};

pub(crate) const MAGIC: &[u8; 8] = b"EMBERKVR";
pub(crate) const VERSION: u32 = 1;
pub(crate) const BLOCK_ENTRIES: usize = 128;
const ENTRY_BYTES: usize = std::mem::size_of::<KeyedEntry>();

pub(crate) const FORMAT: Format = Format {
    magic: MAGIC,
    version: VERSION,
    what: "keyed run",
    entry_bytes: ENTRY_BYTES,
    block_entries: BLOCK_ENTRIES,
    has_values: true,
    strict_keys: true,
    directory_since: None,
};

/// One id's entry as a run stores it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct KeyedEntry {
    pub id: u64,
    pub seq: u64,
    pub value_offset: u64,
    pub value_len: u32,
    pub value_crc: u32,
}

const _: () = assert!(ENTRY_BYTES == 32 && std::mem::align_of::<KeyedEntry>() == 8);

// SAFETY: `#[repr(C)]`, integer fields only (every bit pattern valid,
// `Copy`), 3 x 8 + 2 x 4 = 32 bytes with no padding (asserted above).
unsafe impl bytemuck::Zeroable for KeyedEntry {}
// SAFETY: as above.
unsafe impl bytemuck::Pod for KeyedEntry {}

/// One item of a keyed run's input: (id, seq, value), `None` = deletion.
pub(crate) type KeyedItem = (u64, u64, Option<Vec<(String, String)>>);

/// An id's value in a run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct KeyedValue {
    pub seq: u64,
    /// `None`: deleted (a deletion entry).
    pub value: Option<Vec<(String, String)>>,
}

/// The kind's number in the header.
fn kind_code(kind: RunKind) -> Result<u32> {
    match kind {
        RunKind::Features => Ok(1),
        RunKind::Attributes => Ok(2),
        RunKind::Events => Err(Error::InvalidOptions(
            "a keyed run holds features or attributes, not events".into(),
        )),
    }
}

/// The error refusing `id`'s value of `kind`.
fn invalid(kind: RunKind, id: u64, reason: String) -> Error {
    match kind {
        RunKind::Attributes => Error::InvalidAttributes { item: id, reason },
        _ => Error::InvalidFeatures { user: id, reason },
    }
}

/// Why `set` is more than a run may hold, if it is.
fn check_set(set: &[(String, String)]) -> std::result::Result<(), String> {
    if set.len() > MAX_FEATURES {
        return Err(format!("{} pairs, at most {MAX_FEATURES}", set.len()));
    }
    if set
        .iter()
        .any(|(k, v)| k.len() > MAX_FEATURE_BYTES || v.len() > MAX_FEATURE_BYTES)
    {
        return Err(format!("key or value of more than {MAX_FEATURE_BYTES} bytes"));
    }
    Ok(())
}

/// Writes keyed run `header.id` of `kind` into `dir` (see
/// [`write_keyed_run_from`]).
pub(crate) fn write_keyed_run(
    dir: &Path,
    kind: RunKind,
    header: RunHeader,
    entries: impl IntoIterator<Item = KeyedItem>,
) -> Result<Arc<KeyedRun>> {
    write_keyed_run_from(dir, kind, header, entries.into_iter().map(Ok))
}

/// Writes keyed run `header.id` of `kind` into `dir` durably, streaming
/// `(id, seq, value)` items (`None` = deletion; an `Err` item stops the
/// write). Ids strictly ascending, seq in `[from_seq, to_seq)`, sets
/// within the limits, no deletion in a bottom run, or the write is refused
/// (`InvalidFeatures` / `InvalidAttributes`) with nothing left behind.
///
/// Values follow the entries in the file, so while entries stream out the
/// values go to a scratch file beside the run (`*.values.tmp`), appended at
/// the end: memory stays at one set, whatever the run's size.
pub(crate) fn write_keyed_run_from(
    dir: &Path,
    kind: RunKind,
    header: RunHeader,
    entries: impl IntoIterator<Item = Result<KeyedItem>>,
) -> Result<Arc<KeyedRun>> {
    let code = kind_code(kind)?;
    if header.from_seq > header.to_seq {
        return Err(Error::InvalidOptions(format!(
            "keyed run {}: seq range [{}, {}) is reversed",
            header.id, header.from_seq, header.to_seq
        )));
    }
    let path = dir.join(file_name(kind, header.id));
    let spill_path = fsutil::tmp_path(&path.with_extension("values"));
    let spill = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&spill_path)
        .at(&spill_path)?;
    let outcome = blocks::write_run(&path, |out, refused| {
        faults::check(Op::Write, &spill_path)?;
        let mut values = std::io::BufWriter::with_capacity(1 << 20, &spill);
        out.write_all(&encode_header(&FORMAT, code, &header))?;
        let mut writer = BlockWriter::new(&FORMAT);
        let mut prev: Option<u64> = None;
        let mut values_len = 0u64;
        let mut buf = Vec::new();
        for item in entries {
            let (id, seq, value) = item.map_err(|e| refuse(refused, e))?;
            let fault = if prev.is_some_and(|p| p >= id) {
                Some(format!("id {id} does not follow id {}", prev.unwrap_or_default()))
            } else if seq < header.from_seq || seq >= header.to_seq {
                Some(format!("seq {seq} is outside [{}, {})", header.from_seq, header.to_seq))
            } else if value.is_none() && header.bottom {
                Some("a deletion entry in a bottom run".into())
            } else {
                value.as_deref().and_then(|set| check_set(set).err())
            };
            if let Some(reason) = fault {
                let reason = format!("keyed run {}: {reason}", header.id);
                return Err(refuse(refused, invalid(kind, id, reason)));
            }
            prev = Some(id);
            let entry = match value {
                None => KeyedEntry {
                    id,
                    seq,
                    value_offset: 0,
                    value_len: 0,
                    value_crc: 0,
                },
                Some(set) => {
                    buf.clear();
                    encode_pair_set(&mut buf, &set);
                    values.write_all(&buf)?;
                    let entry = KeyedEntry {
                        id,
                        seq,
                        value_offset: values_len,
                        // Bounded by check_set: 2 + 256 x 2 x (2 + 256).
                        value_len: buf.len() as u32,
                        value_crc: crc32fast::hash(&buf),
                    };
                    values_len += buf.len() as u64;
                    entry
                }
            };
            writer.push(out, id, bytemuck::bytes_of(&entry))?;
        }
        let sections = writer.finish(out, ENTRY_BYTES)?;
        values.flush()?;
        drop(values);
        let mut spilled: &File = &spill;
        spilled.rewind()?;
        let copied = std::io::copy(&mut spilled.take(values_len), out)?;
        if copied != values_len {
            return Err(std::io::Error::other("the values scratch file came back short"));
        }
        out.write_all(&encode_footer(&sections, values_len, 0))
    });
    drop(spill);
    let _ = std::fs::remove_file(&spill_path);
    outcome?;
    Ok(Arc::new(KeyedRun::open(&path, kind, header.id)?))
}

/// An open keyed run.
pub(crate) struct KeyedRun {
    path: PathBuf,
    kind: RunKind,
    frame: Frame,
}

impl KeyedRun {
    /// Opens and maps keyed run `id` of `kind` at `path`, checking its
    /// header (kind included), footer, exact length, index and crc table.
    pub fn open(path: &Path, kind: RunKind, id: u64) -> Result<KeyedRun> {
        let code = kind_code(kind)?;
        let frame = Frame::open(path, id, &FORMAT)?;
        if frame.field20 != code {
            return Err(corrupt(
                path,
                20,
                format!("header holds kind {}, the file name says {code}", frame.field20),
            ));
        }
        let run = KeyedRun {
            path: path.to_path_buf(),
            kind,
            frame,
        };
        run.all()?;
        Ok(run)
    }

    pub fn header(&self) -> RunHeader {
        self.frame.header
    }

    pub fn kind(&self) -> RunKind {
        self.kind
    }

    pub fn id(&self) -> u64 {
        self.frame.header.id
    }

    pub fn count(&self) -> u64 {
        self.frame.count as u64
    }

    pub fn bytes(&self) -> u64 {
        self.frame.map.len() as u64
    }

    #[cfg(any(test, feature = "test-hooks"))]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn all(&self) -> Result<&[KeyedEntry]> {
        bytemuck::try_cast_slice(self.frame.entry_bytes())
            .map_err(|_| corrupt(&self.path, HEADER_LEN as u64, "entries are misaligned in memory"))
    }

    /// Checks block `b` once: crc, ids ascending and agreeing with the
    /// index, seq range, value bounds.
    fn block(&self, b: usize) -> Result<()> {
        let values_len = self.frame.aux;
        let header = self.frame.header;
        self.frame.check_block(&self.path, &FORMAT, b, |bytes| {
            let entries: &[KeyedEntry] =
                bytemuck::try_cast_slice(bytes).map_err(|_| "entries are misaligned in memory".to_string())?;
            let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                return Err(format!("block {b} is empty"));
            };
            if Some(first.id) != self.frame.index_key(b) {
                return Err(format!("block {b} starts with id {}, its index key differs", first.id));
            }
            for (i, e) in entries.iter().enumerate() {
                let fault = if i > 0 && entries[i - 1].id >= e.id {
                    Some(format!("id {} does not follow id {}", e.id, entries[i - 1].id))
                } else if e.seq < header.from_seq || e.seq >= header.to_seq {
                    Some(format!(
                        "seq {} is outside [{}, {})",
                        e.seq, header.from_seq, header.to_seq
                    ))
                } else if e.value_len == 0 {
                    if header.bottom {
                        Some("a deletion entry in a bottom run".into())
                    } else if e.value_offset != 0 || e.value_crc != 0 {
                        Some("a deletion entry with a value".into())
                    } else {
                        None
                    }
                } else if e.value_len < 2
                    || e.value_offset
                        .checked_add(e.value_len as u64)
                        .is_none_or(|end| end > values_len)
                {
                    Some(format!(
                        "value of {} bytes at {} is outside the values",
                        e.value_len, e.value_offset
                    ))
                } else {
                    None
                };
                if let Some(reason) = fault {
                    return Err(format!("entry {} (id {}): {reason}", b * BLOCK_ENTRIES + i, e.id));
                }
            }
            match self.frame.index_key(b + 1) {
                Some(next) if last.id >= next => Err(format!(
                    "block {b} ends with id {}, not below the next block's first id {next}",
                    last.id
                )),
                _ => Ok(()),
            }
        })
    }

    /// The value of an entry of a checked block: its crc checked, decoded.
    fn value_of(&self, e: &KeyedEntry) -> Result<KeyedValue> {
        if e.value_len == 0 {
            return Ok(KeyedValue {
                seq: e.seq,
                value: None,
            });
        }
        let values = &self.frame.map[self.frame.tail_offset..self.frame.map.len() - blocks::FOOTER_LEN];
        // In bounds by the block check; still no slicing on trust.
        let start = usize::try_from(e.value_offset).unwrap_or(usize::MAX);
        let at = self.frame.tail_offset as u64 + e.value_offset;
        let bytes = start
            .checked_add(e.value_len as usize)
            .and_then(|end| values.get(start..end))
            .ok_or_else(|| corrupt(&self.path, at, format!("value of id {} is outside the values", e.id)))?;
        if crc32fast::hash(bytes) != e.value_crc {
            return Err(corrupt(
                &self.path,
                at,
                format!("value of id {} checksum mismatch", e.id),
            ));
        }
        let set = decode_pair_set(bytes)
            .map_err(|reason| corrupt(&self.path, at, format!("value of id {}: {reason}", e.id)))?;
        Ok(KeyedValue {
            seq: e.seq,
            value: Some(set),
        })
    }

    /// `id`'s entry in this run: `None` if the run has none (a deletion
    /// entry is `Some` with no value).
    pub fn get(&self, id: u64) -> Result<Option<KeyedValue>> {
        let index = self.frame.index(&self.path)?;
        let past = self.frame.fence.partition_point(index, |k| k <= id);
        let Some(b) = past.checked_sub(1) else {
            return Ok(None);
        };
        self.block(b)?;
        let all = self.all()?;
        let entries = &all[self.frame.block_range(&FORMAT, b)];
        match entries.binary_search_by_key(&id, |e| e.id) {
            Ok(i) => self.value_of(&entries[i]).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Every entry in id order. A damaged value is an `Err` for its id
    /// alone; a damaged block is one `Err`, and its ids are skipped.
    pub fn iter(&self) -> impl Iterator<Item = Result<(u64, KeyedValue)>> + '_ {
        KeyedIter {
            run: self,
            pos: 0,
            checked: None,
        }
    }

    /// The full check: every block, every value (crc, decoding, limits),
    /// values back to back in entry order and filling the section. Returns
    /// the entries checked.
    pub fn verify(&self) -> Result<u64> {
        let all = self.all()?;
        let mut expected = 0u64;
        for b in 0..self.frame.blocks {
            self.block(b)?;
            for e in &all[self.frame.block_range(&FORMAT, b)] {
                self.value_of(e)?;
                if e.value_len > 0 {
                    if e.value_offset != expected {
                        return Err(corrupt(
                            &self.path,
                            FORMAT.block_offset(b),
                            format!("value of id {} is not where the previous one ends", e.id),
                        ));
                    }
                    expected += e.value_len as u64;
                }
            }
        }
        if expected != self.frame.aux {
            return Err(corrupt(
                &self.path,
                self.frame.tail_offset as u64,
                format!("values fill {expected} of {} bytes", self.frame.aux),
            ));
        }
        Ok(self.count())
    }
}

struct KeyedIter<'a> {
    run: &'a KeyedRun,
    pos: usize,
    checked: Option<usize>,
}

impl Iterator for KeyedIter<'_> {
    type Item = Result<(u64, KeyedValue)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.run.frame.count {
            return None;
        }
        let b = self.pos / BLOCK_ENTRIES;
        if self.checked != Some(b) {
            self.checked = Some(b);
            if let Err(e) = self.run.block(b) {
                self.pos = (b + 1) * BLOCK_ENTRIES;
                return Some(Err(e));
            }
        }
        let all = match self.run.all() {
            Ok(all) => all,
            Err(e) => {
                self.pos = usize::MAX;
                return Some(Err(e));
            }
        };
        let e = all[self.pos];
        self.pos += 1;
        Some(self.run.value_of(&e).map(|v| (e.id, v)))
    }
}

/// Restamps every checksum of keyed run `bytes`, the values' too (tests
/// and fuzzing). Never panics on any bytes.
#[cfg(any(test, feature = "test-hooks"))]
pub(crate) fn restamp(bytes: &mut [u8]) {
    let len = bytes.len();
    if len >= HEADER_LEN + blocks::FOOTER_LEN {
        let footer = len - blocks::FOOTER_LEN;
        let field = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[footer + at..footer + at + 8]);
            usize::try_from(u64::from_le_bytes(a)).ok()
        };
        if let (Some(count), Some(index_at), Some(crc_at)) = (field(16), field(32), field(40)) {
            let blocks = count.div_ceil(BLOCK_ENTRIES);
            let tail = blocks
                .checked_mul(4)
                .and_then(|t| t.checked_next_multiple_of(8))
                .and_then(|t| t.checked_add(crc_at))
                .filter(|&t| t <= footer);
            let entries_end = count.checked_mul(ENTRY_BYTES).and_then(|n| n.checked_add(HEADER_LEN));
            if let (Some(tail), Some(end)) = (tail, entries_end.filter(|&e| e <= index_at.min(footer))) {
                for at in (HEADER_LEN..end).step_by(ENTRY_BYTES) {
                    let entry: KeyedEntry = bytemuck::pod_read_unaligned(&bytes[at..at + ENTRY_BYTES]);
                    let value = usize::try_from(entry.value_offset)
                        .ok()
                        .and_then(|o| o.checked_add(tail))
                        .and_then(|s| Some(s..s.checked_add(entry.value_len as usize)?))
                        .filter(|r| r.end <= footer && entry.value_len > 0);
                    if let Some(r) = value {
                        let crc = crc32fast::hash(&bytes[r]);
                        bytes[at + 28..at + 32].copy_from_slice(&crc.to_le_bytes());
                    }
                }
            }
        }
    }
    blocks::restamp(bytes, &FORMAT);
}

#[cfg(test)]
mod tests;
