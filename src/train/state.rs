//! The trainer's persistent state: the vocabulary (item ids and counts),
//! the input and output matrices, and how far the event log has been
//! trained. One file per generation, named by the manifest.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..8 | magic | `b"EMBERTRN"` |
//! | 8..12 | version u32 LE | [`STATE_VERSION`] |
//! | 12..16 | dim u32 LE | components per row |
//! | 16..24 | items u64 LE | vocabulary size `n` |
//! | 24..32 | generation u64 LE | the generation these vectors are |
//! | 32..40 | watermark u64 LE | events with a smaller sequence number are trained |
//! | 40..48 | rounds u64 LE | rounds run so far |
//! | 48..52 | body_crc u32 LE | crc32 of every byte from 64 to the end |
//! | 52..60 | reserved | zero |
//! | 60..64 | header_crc u32 LE | crc32 of bytes 0..60 |
//! | 64.. | ids | `n` x u64 LE |
//! | | counts | `n` x u64 LE |
//! | | input | `n * dim` x f32 LE (the item vectors, not normalised) |
//! | | output | `n * dim` x f32 LE |

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use super::rng::Rng;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::stamp::{Header, HeaderWriter, HEADER_LEN};

pub(crate) const MAGIC: &[u8; 8] = b"EMBERTRN";
pub(crate) const STATE_VERSION: u32 = 1;

/// The file name of trainer state `id` (ids come from the segment counter).
pub(crate) fn file_name(id: u64) -> String {
    format!("trainer-{id:020}.emb")
}

pub(crate) fn parse_name(name: &str) -> Option<u64> {
    name.strip_prefix("trainer-")?.strip_suffix(".emb")?.parse().ok()
}

/// What a trainer state's header says: enough for `Stats` and the policy
/// before the state itself is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StateSummary {
    pub items: usize,
    pub generation: u64,
    pub watermark: u64,
    pub rounds: u64,
}

/// The header's summary, checked against the store's `dim` and the
/// file's `len`.
fn summary_of(h: &Header<'_>, dim: usize, len: u64, path: &Path) -> Result<StateSummary> {
    let corrupt = |offset: u64, reason: String| Error::Corruption {
        file: path.to_path_buf(),
        offset,
        reason,
    };
    if h.u32(12) as usize != dim {
        return Err(corrupt(
            12,
            format!("dimension {} in a store of dimension {dim}", h.u32(12)),
        ));
    }
    let n = h.u64(16);
    n.checked_mul(16 + 8 * dim as u64)
        .and_then(|b| b.checked_add(HEADER_LEN as u64))
        .filter(|&expected| expected == len)
        .and_then(|_| usize::try_from(n).ok())
        .map(|items| StateSummary {
            items,
            generation: h.u64(24),
            watermark: h.u64(32),
            rounds: h.u64(40),
        })
        .ok_or_else(|| corrupt(16, format!("{n} items do not fit a file of {len} bytes")))
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TrainerState {
    pub dim: usize,
    pub ids: Vec<u64>,
    pub counts: Vec<u64>,
    pub input: Vec<f32>,
    pub output: Vec<f32>,
    pub generation: u64,
    pub watermark: u64,
    pub rounds: u64,
    index: HashMap<u64, u32>,
}

impl TrainerState {
    pub fn empty(dim: usize) -> Self {
        TrainerState {
            dim,
            ids: Vec::new(),
            counts: Vec::new(),
            input: Vec::new(),
            output: Vec::new(),
            generation: 0,
            watermark: 0,
            rounds: 0,
            index: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn summary(&self) -> StateSummary {
        StateSummary {
            items: self.len(),
            generation: self.generation,
            watermark: self.watermark,
            rounds: self.rounds,
        }
    }

    #[cfg(test)]
    pub fn index_of(&self, item: u64) -> Option<u32> {
        self.index.get(&item).copied()
    }

    /// The vocabulary index of `item`, adding it (word2vec's initialisation:
    /// input uniform in +-0.5/dim, seeded by the item id so a vector does
    /// not depend on arrival order; output zero) if it is new.
    pub fn intern(&mut self, item: u64, seed: u64) -> u32 {
        if let Some(&i) = self.index.get(&item) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.ids.push(item);
        self.counts.push(0);
        self.index.insert(item, i);
        let mut rng = Rng::new(seed, item);
        let scale = 1.0 / self.dim as f32;
        self.input.extend((0..self.dim).map(|_| (rng.next_f32() - 0.5) * scale));
        self.output.extend(std::iter::repeat_n(0.0, self.dim));
        i
    }

    /// Forgets the vectors (a full retrain starts over), keeping the
    /// vocabulary.
    pub fn reinitialise(&mut self, seed: u64) {
        let ids = std::mem::take(&mut self.ids);
        let counts = std::mem::take(&mut self.counts);
        self.input.clear();
        self.output.clear();
        self.index.clear();
        for id in ids {
            self.intern(id, seed);
        }
        self.counts = counts;
    }

    pub fn row(&self, i: u32) -> &[f32] {
        &self.input[i as usize * self.dim..][..self.dim]
    }

    /// Writes the state to `path`, atomically and durably.
    pub fn write(&self, path: &Path) -> Result<()> {
        let body: [&[u8]; 4] = [
            bytemuck::cast_slice(&self.ids),
            bytemuck::cast_slice(&self.counts),
            bytemuck::cast_slice(&self.input),
            bytemuck::cast_slice(&self.output),
        ];
        let mut crc = crc32fast::Hasher::new();
        body.iter().for_each(|b| crc.update(b));
        let header = HeaderWriter::new(MAGIC, STATE_VERSION)
            .u32(12, self.dim as u32)
            .u64(16, self.ids.len() as u64)
            .u64(24, self.generation)
            .u64(32, self.watermark)
            .u64(40, self.rounds)
            .u32(48, crc.finalize())
            .finish();
        fsutil::write_atomically_with(path, |out| {
            out.write_all(&header)?;
            body.iter().try_for_each(|b| out.write_all(b))
        })
    }

    /// Reads and checks only the header of the state at `path` against the
    /// file's length (not the body's crc: [`TrainerState::read`] checks it
    /// when a round first needs the vectors). Opening a store reads this
    /// much: the state can be hundreds of MiB (1 M items at dim 64 is 528
    /// MiB) that only training needs.
    pub fn read_summary(path: &Path, dim: usize) -> Result<StateSummary> {
        let mut file = std::fs::File::open(path).at(path)?;
        let len = file.metadata().at(path)?.len();
        let mut h = [0u8; HEADER_LEN];
        let n = (len as usize).min(HEADER_LEN);
        std::io::Read::read_exact(&mut file, &mut h[..n]).at(path)?;
        let header = Header::check(&h[..n], MAGIC, STATE_VERSION, path, "trainer state")?;
        let summary = summary_of(&header, dim, len, path)?;
        Ok(summary)
    }

    /// Reads and checks the state at `path` for a store of dimension `dim`.
    pub fn read(path: &Path, dim: usize) -> Result<Self> {
        let bytes = std::fs::read(path).at(path)?;
        let corrupt = |offset: u64, reason: String| Error::Corruption {
            file: path.to_path_buf(),
            offset,
            reason,
        };
        let h = Header::check(&bytes, MAGIC, STATE_VERSION, path, "trainer state")?;
        let summary = summary_of(&h, dim, bytes.len() as u64, path)?;
        let body = &bytes[HEADER_LEN..];
        if crc32fast::hash(body) != h.u32(48) {
            return Err(corrupt(
                HEADER_LEN as u64,
                "trainer state body checksum mismatch".into(),
            ));
        }
        let n = summary.items;
        let (ids_b, rest) = body.split_at(8 * n);
        let (counts_b, rest) = rest.split_at(8 * n);
        let (input_b, output_b) = rest.split_at(4 * n * dim);
        // A Vec<u8> has no alignment promise: decode element by element.
        let u64s = |b: &[u8]| -> Vec<u64> {
            b.chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect()
        };
        let f32s = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let (ids, counts, input, output) = (u64s(ids_b), u64s(counts_b), f32s(input_b), f32s(output_b));
        let index: HashMap<u64, u32> = ids.iter().enumerate().map(|(i, &id)| (id, i as u32)).collect();
        if index.len() != n {
            return Err(corrupt(HEADER_LEN as u64, "an item id appears twice".into()));
        }
        Ok(TrainerState {
            dim,
            ids,
            counts,
            input,
            output,
            generation: h.u64(24),
            watermark: h.u64(32),
            rounds: h.u64(40),
            index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_round_trip_and_corruption_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(3));
        let mut s = TrainerState::empty(4);
        for id in [10, 7, 99] {
            s.intern(id, 1);
        }
        s.counts = vec![3, 1, 2];
        s.output[5] = 0.25;
        s.generation = 2;
        s.watermark = 17;
        s.rounds = 2;
        s.write(&path).unwrap();
        assert_eq!(TrainerState::read(&path, 4).unwrap(), s);
        assert!(TrainerState::read(&path, 5).is_err());
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(TrainerState::read(&path, 4), Err(Error::Corruption { .. })));
        assert_eq!(parse_name(&file_name(3)), Some(3));
    }

    #[test]
    fn interning_is_stable_and_seeded_by_id() {
        let mut a = TrainerState::empty(8);
        let mut b = TrainerState::empty(8);
        a.intern(5, 9);
        a.intern(6, 9);
        b.intern(6, 9);
        b.intern(5, 9);
        assert_eq!(a.row(a.index_of(5).unwrap()), b.row(b.index_of(5).unwrap()));
        assert_eq!(a.intern(5, 9), 0);
        assert_eq!(a.len(), 2);
    }
}
