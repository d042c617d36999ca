//! Event runs (`ev-<id:020>.run`): user events sorted by (user, seq), so a
//! user's events are one contiguous, zero-copy `&[EventEntry]`.
//!
//! Header and footer as in [`super::blocks`], with magic `EMBEREVR`,
//! version 2, entry_bytes 40, block_entries 256 (10 KiB a block: its crc
//! on first touch costs about a microsecond), the header's field at 20 the
//! history length L the writing merge kept per user (0 = a flush, nothing
//! truncated), and the footer's field at 24 the number of distinct users.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..64 | header | |
//! | 64.. | entries | count x [`EventEntry`], strictly ascending by (user, seq) |
//! | index_offset.. | sparse index | blocks x u64: the first user of each block |
//! | crc_offset.. | crc table | blocks x u32: crc32 of each block's entries; zero-padded to 8 |
//! | .. | directory | version 2: where each user begins ([`super::directory`]); absent when empty |
//! | len-64.. | footer | |
//!
//! [`EventEntry`] (40 bytes, `#[repr(C)]`, cast in place):
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | user u64 |
//! | 8..16 | seq u64 (in `[from_seq, to_seq)`) |
//! | 16..24 | item u64 |
//! | 24..32 | ts u64 |
//! | 32..36 | weight f32 (finite, >= 0) |
//! | 36..40 | reserved u32 (zero) |
//!
//! A block's first touch checks its crc and every entry of it (order,
//! first user = index key, last user <= the next block's index key, seq
//! range, weight, reserved); where a user's entries cross a block boundary
//! the pair across it is checked by the read that crosses it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::blocks::{self, corrupt, encode_footer, encode_header, refuse, BlockWriter, Format};
use super::directory;
use super::frame::Frame;
use super::{file_name, RunHeader, RunKind};
use crate::error::{Error, Result};
use crate::stamp::HEADER_LEN;

pub(crate) const MAGIC: &[u8; 8] = b"EMBEREVR";
/// Version 2 added the directory; version 1 files (no directory) are read
/// by binary search over the sparse index.
pub(crate) const VERSION: u32 = 2;
pub(crate) const BLOCK_ENTRIES: usize = 256;
const ENTRY_BYTES: usize = std::mem::size_of::<EventEntry>();

pub(crate) const FORMAT: Format = Format {
    magic: MAGIC,
    version: VERSION,
    what: "event run",
    entry_bytes: ENTRY_BYTES,
    block_entries: BLOCK_ENTRIES,
    has_values: false,
    strict_keys: false,
    directory_since: Some(2),
};

/// One event as a run stores it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct EventEntry {
    pub user: u64,
    pub seq: u64,
    pub item: u64,
    pub ts: u64,
    pub weight: f32,
    pub reserved: u32,
}

const _: () = assert!(ENTRY_BYTES == 40 && std::mem::align_of::<EventEntry>() == 8);

// SAFETY: `EventEntry` is `#[repr(C)]` with only plain integer and float
// fields (every bit pattern valid, `Copy`), 4 x 8 + 2 x 4 = 40 bytes with no
// padding (the size is asserted above), so it is Zeroable and Pod. (The
// crate does not enable bytemuck's derive feature; these two lines are what
// the derive would check and emit.)
unsafe impl bytemuck::Zeroable for EventEntry {}
// SAFETY: as above.
unsafe impl bytemuck::Pod for EventEntry {}

impl EventEntry {
    fn key(&self) -> (u64, u64) {
        (self.user, self.seq)
    }
}

/// Why `e` cannot stand in a run with `header` after an entry of key
/// `prev`, if it cannot.
fn check_entry(e: &EventEntry, header: &RunHeader, prev: Option<(u64, u64)>) -> std::result::Result<(), String> {
    if let Some((user, seq)) = prev {
        if e.key() <= (user, seq) {
            return Err(format!(
                "(user, seq) ({}, {}) does not follow ({user}, {seq})",
                e.user, e.seq
            ));
        }
    }
    if e.seq < header.from_seq || e.seq >= header.to_seq {
        return Err(format!(
            "seq {} is outside the run's [{}, {})",
            e.seq, header.from_seq, header.to_seq
        ));
    }
    if e.reserved != 0 {
        return Err("reserved bytes are not zero".into());
    }
    if !(e.weight.is_finite() && e.weight >= 0.0) {
        return Err(format!("weight {} is not finite and >= 0", e.weight));
    }
    Ok(())
}

/// Writes event run `header.id` into `dir` (see [`write_event_run_from`]).
pub(crate) fn write_event_run(
    dir: &Path,
    header: RunHeader,
    entries: impl IntoIterator<Item = EventEntry>,
) -> Result<Arc<EventRun>> {
    write_event_run_from(dir, header, entries.into_iter().map(Ok))
}

/// Writes event run `header.id` into `dir` durably, streaming `entries`
/// (a merge's output: an `Err` item stops the write with that error).
/// Entries must be strictly ascending by (user, seq), with seq in
/// `[from_seq, to_seq)`, weight finite and >= 0 and reserved zero, or the
/// write is refused (`InvalidEvent`) with nothing left behind. Returns the
/// opened run.
pub(crate) fn write_event_run_from(
    dir: &Path,
    header: RunHeader,
    entries: impl IntoIterator<Item = Result<EventEntry>>,
) -> Result<Arc<EventRun>> {
    if header.from_seq > header.to_seq {
        return Err(Error::InvalidOptions(format!(
            "event run {}: seq range [{}, {}) is reversed",
            header.id, header.from_seq, header.to_seq
        )));
    }
    let path = dir.join(file_name(RunKind::Events, header.id));
    blocks::write_run(&path, |out, refused| {
        out.write_all(&encode_header(&FORMAT, header.history_len, &header))?;
        let mut writer = BlockWriter::new(&FORMAT);
        let mut prev: Option<(u64, u64)> = None;
        // Each user and its first entry, for the directory: 16 bytes a
        // user on the heap while the run is written (16 MiB for a run of
        // 1 M users).
        let mut starts: Vec<(u64, u64)> = Vec::new();
        for (written, e) in (0u64..).zip(entries) {
            let e = e.map_err(|err| refuse(refused, err))?;
            if let Err(reason) = check_entry(&e, &header, prev) {
                return Err(refuse(
                    refused,
                    Error::InvalidEvent {
                        user: e.user,
                        item: e.item,
                        reason: format!("event run {}: {reason}", header.id),
                    },
                ));
            }
            if prev.is_none_or(|(user, _)| user != e.user) {
                starts.push((e.user, written));
            }
            prev = Some(e.key());
            writer.push(out, e.user, bytemuck::bytes_of(&e))?;
        }
        let sections = writer.finish(out, ENTRY_BYTES)?;
        let directory_crc = directory::write(out, &starts)?;
        out.write_all(&encode_footer(&sections, starts.len() as u64, directory_crc))
    })?;
    Ok(Arc::new(EventRun::open(&path, header.id)?))
}

/// An open event run.
pub(crate) struct EventRun {
    path: PathBuf,
    frame: Frame,
}

impl EventRun {
    /// Opens and maps event run `id` at `path`, checking its header,
    /// footer, exact length, index and crc table (not yet its blocks).
    pub fn open(path: &Path, id: u64) -> Result<EventRun> {
        let frame = Frame::open(path, id, &FORMAT)?;
        let run = EventRun {
            path: path.to_path_buf(),
            frame,
        };
        // Cast once here, so a misaligned map fails at open, not later.
        run.all()?;
        Ok(run)
    }

    pub fn header(&self) -> RunHeader {
        RunHeader {
            history_len: self.frame.field20,
            ..self.frame.header
        }
    }

    pub fn id(&self) -> u64 {
        self.frame.header.id
    }

    pub fn count(&self) -> u64 {
        self.frame.count as u64
    }

    pub fn users(&self) -> u64 {
        self.frame.aux
    }

    pub fn bytes(&self) -> u64 {
        self.frame.map.len() as u64
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry, unchecked: callers check the blocks they hand out.
    fn all(&self) -> Result<&[EventEntry]> {
        bytemuck::try_cast_slice(self.frame.entry_bytes())
            .map_err(|_| corrupt(&self.path, HEADER_LEN as u64, "entries are misaligned in memory"))
    }

    /// Checks block `b` (once; see the module documentation).
    fn block(&self, b: usize) -> Result<()> {
        self.frame.check_block(&self.path, &FORMAT, b, |bytes| {
            let entries: &[EventEntry] =
                bytemuck::try_cast_slice(bytes).map_err(|_| "entries are misaligned in memory".to_string())?;
            let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                return Err(format!("block {b} is empty"));
            };
            if Some(first.user) != self.frame.index_key(b) {
                return Err(format!(
                    "block {b} starts with user {}, its index key differs",
                    first.user
                ));
            }
            let mut prev = None;
            for (i, e) in entries.iter().enumerate() {
                check_entry(e, &self.frame.header, prev)
                    .map_err(|reason| format!("entry {}: {reason}", b * BLOCK_ENTRIES + i))?;
                prev = Some(e.key());
            }
            match self.frame.index_key(b + 1) {
                Some(next) if last.user > next => Err(format!(
                    "block {b} ends with user {}, past the next block's first user {next}",
                    last.user
                )),
                _ => Ok(()),
            }
        })
    }

    /// Entries `at - 1` and `at` (the first of block `b`) must ascend.
    fn check_across(&self, all: &[EventEntry], b: usize) -> Result<()> {
        let at = b * BLOCK_ENTRIES;
        match (at.checked_sub(1).and_then(|i| all.get(i)), all.get(at)) {
            (Some(before), Some(after)) if before.key() >= after.key() => Err(corrupt(
                &self.path,
                FORMAT.block_offset(b),
                format!("block {b} does not follow block {} in (user, seq) order", b - 1),
            )),
            _ => Ok(()),
        }
    }

    /// `user`'s entries in seq order (empty if the run has none), read in
    /// place; each block they touch is checked once.
    pub fn user_slice(&self, user: u64) -> Result<&[EventEntry]> {
        if let Some(dir) = &self.frame.directory {
            return self.user_slice_by_directory(dir, user);
        }
        let index = self.frame.index(&self.path)?;
        let past = self.frame.fence.partition_point(index, |k| k <= user);
        if past == 0 {
            return Ok(&[]);
        }
        // The user may begin in the tail of the last block starting below it.
        let first = self.frame.fence.partition_point(index, |k| k < user).saturating_sub(1);
        for b in first..past {
            self.block(b)?;
        }
        let all = self.all()?;
        let lo = first * BLOCK_ENTRIES;
        let window = all
            .get(lo..(past * BLOCK_ENTRIES).min(all.len()))
            .ok_or_else(|| corrupt(&self.path, FORMAT.block_offset(first), "blocks past the entries"))?;
        let start = window.partition_point(|e| e.user < user);
        let end = window.partition_point(|e| e.user <= user);
        for b in first + 1..past {
            let at = b * BLOCK_ENTRIES;
            if at > lo + start && at < lo + end {
                self.check_across(all, b)?;
            }
        }
        Ok(&window[start..end])
    }

    /// The entry position `user`'s home directory slot names, read
    /// unchecked: the first half of a prefetch (see [`Self::touch_entry`]),
    /// never an answer. Loading every run's slot before any run's entry
    /// lets the misses of all runs overlap instead of queueing one run
    /// after another (measured: p50 of a history over 12 runs,
    /// ARCHITECTURE "Limits of one machine").
    pub fn peek(&self, user: u64) -> Option<u64> {
        self.frame.directory.as_ref()?.peek(&self.frame.map, user)
    }

    /// Loads the cache line of entry `pos` (a [`Self::peek`] hint,
    /// unchecked: any byte of the map is a harmless hint) and returns a
    /// value only for `std::hint::black_box`.
    pub fn touch_entry(&self, pos: u64) -> u64 {
        let at = usize::try_from(pos)
            .ok()
            .and_then(|p| p.checked_mul(ENTRY_BYTES))
            .and_then(|b| b.checked_add(HEADER_LEN));
        at.and_then(|at| self.frame.map.get(at..at.checked_add(8)?))
            .map_or(0, blocks::le_u64)
    }

    /// [`Self::user_slice`] through the directory: a probe or two, then the
    /// user's own entries (see [`directory`] for what is checked).
    fn user_slice_by_directory(&self, dir: &directory::Directory, user: u64) -> Result<&[EventEntry]> {
        let all = self.all()?;
        let found = dir.find(&self.frame.map, &self.path, user, |pos| {
            let at = usize::try_from(pos).ok().filter(|&p| p < all.len()).ok_or_else(|| {
                corrupt(
                    &self.path,
                    dir.offset(),
                    format!("the directory points at entry {pos}, past the run's {}", all.len()),
                )
            })?;
            self.block(at / BLOCK_ENTRIES)?;
            Ok(all[at].user == user)
        })?;
        let Some(start) = found else {
            return Ok(&[]);
        };
        let start = start as usize;
        if let Some(before) = start.checked_sub(1) {
            self.block(before / BLOCK_ENTRIES)?;
            if all[before].user == user {
                return Err(corrupt(
                    &self.path,
                    FORMAT.block_offset(before / BLOCK_ENTRIES),
                    format!("the directory says user {user} begins at entry {start}, entry {before} is theirs too"),
                ));
            }
        }
        Ok(self.user_at(start)?.0)
    }

    /// The entries of the user whose first entry is at `pos`, and where the
    /// next user begins.
    fn user_at(&self, pos: usize) -> Result<(&[EventEntry], usize)> {
        let all = self.all()?;
        let mut b = pos / BLOCK_ENTRIES;
        self.block(b)?;
        let user = all[pos].user;
        let mut end = pos;
        loop {
            let block_end = ((b + 1) * BLOCK_ENTRIES).min(all.len());
            // From `pos` on, the block ascends, so the user's entries are a prefix.
            end += prefix_of(&all[end..block_end], user);
            if end < block_end || end == all.len() {
                return Ok((&all[pos..end], end));
            }
            b += 1;
            self.block(b)?;
            self.check_across(all, b)?;
        }
    }

    /// Every user's entries, in user order, block-checked as they are
    /// reached. After an error the scan ends.
    pub fn entries(&self) -> EventScan<'_> {
        EventScan {
            run: self,
            pos: 0,
            released: 0,
            failed: false,
        }
    }

    /// Every user's entries from the first user at or above `user` on, like
    /// [`Self::entries`]; the scan may first yield a few users below it
    /// (from the start of the block it begins in), which a caller skips.
    /// A gather split by user range starts each part's scans here.
    pub fn entries_from(&self, user: u64) -> Result<EventScan<'_>> {
        let index = self.frame.index(&self.path)?;
        // The last block whose first user is below `user` (or the first
        // block): a user at or above it cannot begin before that block.
        let block = self.frame.fence.partition_point(index, |k| k < user).saturating_sub(1);
        let pos = block * BLOCK_ENTRIES;
        Ok(EventScan {
            run: self,
            pos,
            released: HEADER_LEN + pos * ENTRY_BYTES,
            failed: false,
        })
    }

    /// `parts - 1` users that split this run's entries into `parts` parts
    /// of about as many blocks each (ascending; fewer when the run has
    /// fewer blocks): where a parallel gather divides the user space.
    pub fn user_quantiles(&self, parts: usize) -> Result<Vec<u64>> {
        let index = self.frame.index(&self.path)?;
        let mut keys: Vec<u64> = (1..parts.max(1))
            .filter_map(|i| index.get(index.len() * i / parts))
            .copied()
            .collect();
        keys.dedup();
        Ok(keys)
    }

    /// The full check: every block, (user, seq) order across blocks, and the
    /// footer's user count. Returns the entries checked.
    pub fn verify(&self) -> Result<u64> {
        let all = self.all()?;
        let mut users = 0u64;
        for b in 0..self.frame.blocks {
            self.block(b)?;
            self.check_across(all, b)?;
            let range = self.frame.block_range(&FORMAT, b);
            let prev_user = range.start.checked_sub(1).map(|i| all[i].user);
            let mut last = prev_user;
            for e in &all[range] {
                if last != Some(e.user) {
                    users += 1;
                    last = Some(e.user);
                }
            }
        }
        self.frame.release(0..self.frame.map.len());
        if users != self.frame.aux {
            return Err(corrupt(
                &self.path,
                self.bytes() - blocks::FOOTER_LEN as u64 + 24,
                format!("footer counts {} users, the entries hold {users}", self.frame.aux),
            ));
        }
        if let Some(dir) = &self.frame.directory {
            self.verify_directory(dir)?;
        }
        Ok(self.count())
    }

    /// Every user is found by the directory at its first entry, and the
    /// table holds nothing else.
    fn verify_directory(&self, dir: &directory::Directory) -> Result<()> {
        let mut scan = self.entries();
        let mut pos = 0u64;
        while let Some(slice) = scan.next().transpose()? {
            let Some(first) = slice.first() else { break };
            let found = dir.find(&self.frame.map, &self.path, first.user, |at| Ok(at == pos))?;
            if found != Some(pos) {
                return Err(corrupt(
                    &self.path,
                    dir.offset(),
                    format!(
                        "the directory does not find user {} at its first entry {pos}",
                        first.user
                    ),
                ));
            }
            pos += slice.len() as u64;
        }
        let occupied = dir.occupied(&self.frame.map, &self.path)?;
        if occupied != self.frame.aux {
            return Err(corrupt(
                &self.path,
                dir.offset(),
                format!("the directory holds {occupied} slots for {} users", self.frame.aux),
            ));
        }
        self.frame.release(0..self.frame.map.len());
        Ok(())
    }
}

/// How many of `entries` (ascending by user from `user`'s first entry
/// on, or not `user`'s at all) are `user`'s: an exponential search, so a
/// lookup touches the lines near the user's own entries and not the
/// middle of a 10 KiB block, as a binary search over the block's rest
/// did (a cache miss a step, in every run of a history).
fn prefix_of(entries: &[EventEntry], user: u64) -> usize {
    let mut bound = 1;
    while bound < entries.len() && entries[bound].user == user {
        bound *= 2;
    }
    let from = bound / 2;
    let to = bound.min(entries.len());
    from + entries[from..to].partition_point(|e| e.user == user)
}

/// Every user's entries of a run, in user order ([`EventRun::entries`]).
pub(crate) struct EventScan<'a> {
    run: &'a EventRun,
    pos: usize,
    /// Bytes of the file behind the cursor already given back.
    released: usize,
    failed: bool,
}

/// How far a scan reads past what it gave back before it gives back more.
const RELEASE_EVERY: usize = 8 << 20;

impl<'a> Iterator for EventScan<'a> {
    type Item = Result<&'a [EventEntry]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.run.frame.count {
            return None;
        }
        match self.run.user_at(self.pos) {
            Ok((slice, next)) => {
                self.pos = next;
                // Behind the slice just returned (its own pages stay).
                let behind = HEADER_LEN + (self.pos.saturating_sub(slice.len())) * ENTRY_BYTES;
                if behind >= self.released + RELEASE_EVERY {
                    self.run.frame.release(self.released..behind);
                    self.released = behind;
                }
                Some(Ok(slice))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Restamps every checksum of event run `bytes` (tests and fuzzing).
#[cfg(any(test, feature = "test-hooks"))]
pub(crate) fn restamp(bytes: &mut [u8]) {
    restamp_directory(bytes);
    blocks::restamp(bytes, &FORMAT);
}

/// The directory's crcs and the footer's field at 56, where the bytes say
/// there is a directory and hold it.
#[cfg(any(test, feature = "test-hooks"))]
fn restamp_directory(bytes: &mut [u8]) {
    let version = bytes.get(8..12).map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]));
    if version.is_none_or(|v| v < 2) {
        return;
    }
    let Some(footer_at) = bytes.len().checked_sub(blocks::FOOTER_LEN).filter(|&f| f >= HEADER_LEN) else {
        return;
    };
    let field = |at: usize| blocks::le_u64(&bytes[footer_at + at..]);
    let (count, users, crc_at) = (field(16), field(24), field(40));
    let dir_at = count
        .div_ceil(BLOCK_ENTRIES as u64)
        .checked_mul(4)
        .and_then(|t| t.checked_next_multiple_of(8))
        .and_then(|t| t.checked_add(crc_at))
        .and_then(|at| usize::try_from(at).ok());
    let Some(dir_at) = dir_at else { return };
    if let Some(crc) = directory::restamp(&mut bytes[..footer_at], dir_at, users) {
        bytes[footer_at + 56..footer_at + 60].copy_from_slice(&crc.to_le_bytes());
    }
}

#[cfg(test)]
mod tests;
