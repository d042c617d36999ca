//! The hash directory of an event run (version 2 on): where each user's
//! entries begin, found in one or two probes instead of a binary search.
//!
//! A binary search over a run of 100 M entries touches about 30 cache
//! lines that no cache holds (the fence, an index page, then the block),
//! and a history is read from every run: at 100 M events in 12 runs that
//! was 27 us at p50 (ARCHITECTURE, "Limits of one machine"). A probe here
//! touches one slot, then the entries themselves.
//!
//! Section, after the crc table (8-aligned):
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..8 | seed u64 | mixed into the hash; random per run |
//! | 8.. | slots | `slots` x u64: `tag << 40 \| pos`, or `u64::MAX` when empty |
//! | .. | crc table | `slots / 512` x u32: crc32 of each 4 KiB block of slots; zero-padded to 8 |
//!
//! `slots` is the smallest power of two that is at least twice the run's
//! users and at least 512 (so the table is at most half full and its
//! blocks are whole); 0 for a run without entries. A user `u` hashes to
//! `h = mix(u ^ seed)` (splitmix64's finaliser); its slot is found by linear
//! probing from `h & (slots - 1)`; `tag = h >> 40` (24 bits) rejects other
//! users' slots without reading their entries, and `pos` (40 bits) is the
//! index of the user's first entry. The random seed keeps ids an outsider
//! chose from piling into one probe sequence.
//!
//! The footer's field at 56 holds the crc32 of the seed followed by the
//! crc table (checked at open); a block of slots is checked against its crc
//! on first touch, as the entries' blocks are. What a probe finds is
//! checked against the entries (the user at `pos`, and that the entry
//! before it is another user's), so even a directory that passed its crcs
//! cannot hand out another user's events; `verify` checks that every user
//! is found at its first entry and nothing else is in the table.

use std::io::Write;
use std::path::Path;

use super::blocks::{corrupt, BlockCheck};
use crate::error::Result;

/// Slots per crc block: 4 KiB, one page.
const BLOCK_SLOTS: usize = 512;
const EMPTY: u64 = u64::MAX;
const POS_BITS: u32 = 40;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
/// The largest entry position a slot can hold (`EMPTY`'s own position is
/// excluded so that no real slot equals it).
pub(crate) const MAX_POS: u64 = POS_MASK - 1;

fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Slots for a run of `users` distinct users (None if it overflows).
pub(crate) fn slots_for(users: u64) -> Option<u64> {
    if users == 0 {
        return Some(0);
    }
    users
        .checked_mul(2)?
        .checked_next_power_of_two()
        .map(|s| s.max(BLOCK_SLOTS as u64))
}

/// Bytes of the directory section of a run of `users` users.
pub(crate) fn section_len(users: u64) -> Option<u64> {
    let slots = slots_for(users)?;
    if slots == 0 {
        return Some(0);
    }
    let table = (slots / BLOCK_SLOTS as u64)
        .checked_mul(4)?
        .checked_next_multiple_of(8)?;
    slots.checked_mul(8)?.checked_add(8)?.checked_add(table)
}

/// Writes the directory of `starts` (each user and the index of its first
/// entry, in any order, users distinct) to `out`; returns the crc for the
/// footer's field at 56.
pub(crate) fn write(out: &mut impl Write, starts: &[(u64, u64)]) -> std::io::Result<u32> {
    let slots = slots_for(starts.len() as u64)
        .and_then(|s| usize::try_from(s).ok())
        .ok_or_else(|| std::io::Error::other(format!("{} users do not fit a run directory", starts.len())))?;
    if slots == 0 {
        return Ok(0);
    }
    // std's per-process random hash keys: enough that an outsider cannot
    // predict a run's seed.
    let seed = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), starts.len());
    let mut table = vec![EMPTY; slots];
    let mask = slots.wrapping_sub(1);
    for &(user, pos) in starts {
        if pos > MAX_POS {
            return Err(std::io::Error::other(format!(
                "entry {pos} is past what a run directory can address"
            )));
        }
        let h = mix(user ^ seed);
        let mut i = h as usize & mask;
        // At most half full: an empty slot is always reached.
        while table[i] != EMPTY {
            i = (i + 1) & mask;
        }
        table[i] = (h >> POS_BITS) << POS_BITS | pos;
    }
    let slot_bytes: &[u8] = bytemuck::cast_slice(&table);
    let mut crcs: Vec<u8> = slot_bytes
        .chunks(BLOCK_SLOTS * 8)
        .flat_map(|block| crc32fast::hash(block).to_le_bytes())
        .collect();
    crcs.resize(crcs.len().next_multiple_of(8), 0);
    out.write_all(&seed.to_le_bytes())?;
    out.write_all(slot_bytes)?;
    out.write_all(&crcs)?;
    Ok(table_crc(&seed.to_le_bytes(), &crcs))
}

fn table_crc(seed: &[u8], crcs: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(seed);
    h.update(crcs);
    h.finalize()
}

/// An event run's directory, its seed and crc table checked.
pub(crate) struct Directory {
    /// The section's offset in the file.
    at: usize,
    seed: u64,
    slots: usize,
    check: BlockCheck,
}

impl Directory {
    /// The directory at `at` of `map` (a run of `users` users), checked
    /// against `crc` (the footer's field at 56). The caller has checked
    /// that the section lies inside the map.
    pub fn open(map: &[u8], at: usize, users: u64, crc: u32, path: &Path) -> Result<Directory> {
        let bad = |reason: &str| corrupt(path, at as u64, reason);
        let slots = slots_for(users)
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| bad("the directory is too large to map here"))?;
        if slots == 0 {
            // A run without entries has no directory section.
            if crc != 0 {
                return Err(bad("an empty run's directory checksum is not zero"));
            }
            return Ok(Directory {
                at,
                seed: 0,
                slots,
                check: BlockCheck::new(0),
            });
        }
        let blocks = slots / BLOCK_SLOTS;
        let table_at = at + 8 + slots * 8;
        let table_len = (blocks * 4).next_multiple_of(8);
        let (Some(seed), Some(table)) = (map.get(at..at + 8), map.get(table_at..table_at + table_len)) else {
            return Err(bad("the directory lies past the end of the file"));
        };
        if table_crc(seed, table) != crc {
            return Err(bad("directory checksum mismatch"));
        }
        if table[4 * blocks..].iter().any(|&b| b != 0) {
            return Err(bad("directory crc table padding is not zero"));
        }
        Ok(Directory {
            at,
            seed: u64::from_le_bytes(seed.try_into().map_err(|_| bad("the directory has no seed"))?),
            slots,
            check: BlockCheck::new(blocks),
        })
    }

    /// The section's offset in the file (for messages).
    pub fn offset(&self) -> u64 {
        self.at as u64
    }

    /// The bytes of the slots (tests damage them).
    #[cfg(test)]
    pub fn slot_range(&self) -> std::ops::Range<usize> {
        self.at + 8..self.at + 8 + self.slots * 8
    }

    fn slot(&self, map: &[u8], i: usize, path: &Path) -> Result<u64> {
        let b = i / BLOCK_SLOTS;
        let block_at = self.at + 8 + b * BLOCK_SLOTS * 8;
        self.check
            .run(b, || {
                let bytes = map
                    .get(block_at..block_at + BLOCK_SLOTS * 8)
                    .ok_or("directory block past the end")?;
                let crc_at = self.at + 8 + self.slots * 8 + 4 * b;
                let stored = map
                    .get(crc_at..crc_at + 4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .ok_or("directory block has no crc")?;
                if crc32fast::hash(bytes) != stored {
                    return Err(format!("directory block {b} checksum mismatch"));
                }
                Ok(())
            })
            .map_err(|reason| corrupt(path, block_at as u64, reason))?;
        let at = self.at + 8 + i * 8;
        map.get(at..at + 8)
            .map(|s| u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]))
            .ok_or_else(|| corrupt(path, at as u64, "directory slot past the end"))
    }

    /// The position of `user`'s first entry, if the run has it: each
    /// candidate whose tag matches is confirmed by `is_user(pos)` (which
    /// reads the entry there).
    pub fn find(
        &self,
        map: &[u8],
        path: &Path,
        user: u64,
        mut is_user: impl FnMut(u64) -> Result<bool>,
    ) -> Result<Option<u64>> {
        if self.slots == 0 {
            return Ok(None);
        }
        let h = mix(user ^ self.seed);
        let tag = h >> POS_BITS;
        let mask = self.slots - 1;
        let mut i = h as usize & mask;
        for _ in 0..self.slots {
            let slot = self.slot(map, i, path)?;
            if slot == EMPTY {
                return Ok(None);
            }
            if slot >> POS_BITS == tag && is_user(slot & POS_MASK)? {
                return Ok(Some(slot & POS_MASK));
            }
            i = (i + 1) & mask;
        }
        Ok(None)
    }

    /// The entry position the home slot of `user` names, read without any
    /// check: a hint for [`super::event_run::EventRun::touch`], never an
    /// answer.
    pub fn peek(&self, map: &[u8], user: u64) -> Option<u64> {
        if self.slots == 0 {
            return None;
        }
        let h = mix(user ^ self.seed);
        let at = self.at + 8 + (h as usize & (self.slots - 1)) * 8;
        let slot = u64::from_le_bytes(map.get(at..at + 8)?.try_into().ok()?);
        (slot != EMPTY && slot >> POS_BITS == h >> POS_BITS).then_some(slot & POS_MASK)
    }

    /// Slots in use (every block checked on the way): `verify` compares it
    /// with the users.
    pub fn occupied(&self, map: &[u8], path: &Path) -> Result<u64> {
        let mut n = 0;
        for i in 0..self.slots {
            if self.slot(map, i, path)? != EMPTY {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Restamps the directory crcs of a run whose directory section starts at
/// `at` (tests and fuzzing), returning the crc for the footer's field at
/// 56, if the bytes hold the section.
#[cfg(any(test, feature = "test-hooks"))]
pub(crate) fn restamp(bytes: &mut [u8], at: usize, users: u64) -> Option<u32> {
    let slots = usize::try_from(slots_for(users)?).ok()?;
    if slots == 0 {
        return Some(0);
    }
    let blocks = slots / BLOCK_SLOTS;
    let table_at = at.checked_add(8)?.checked_add(slots.checked_mul(8)?)?;
    let table_len = (blocks * 4).next_multiple_of(8);
    if table_at.checked_add(table_len)? > bytes.len() {
        return None;
    }
    for b in 0..blocks {
        let start = at + 8 + b * BLOCK_SLOTS * 8;
        let crc = crc32fast::hash(&bytes[start..start + BLOCK_SLOTS * 8]);
        bytes[table_at + 4 * b..table_at + 4 * b + 4].copy_from_slice(&crc.to_le_bytes());
    }
    Some(table_crc(&bytes[at..at + 8], &bytes[table_at..table_at + table_len]))
}
