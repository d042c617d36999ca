//! The growing segment: an append-only block of rows in memory that readers
//! scan while the writer appends, with no lock on the read path.
//!
//! Rows live in chunks of [`CHUNK_ROWS`] contiguous rows (allocated when first
//! needed, so a large capacity costs nothing up front). The writer fills row
//! `len` and then publishes `len + 1` with a release store; readers load
//! `len` with acquire and read only rows below it. A published row is never
//! written again: an update appends a new row and kills the old one.
//! Durability comes from the WAL: after a crash the segment is rebuilt by
//! replaying the log from the checkpoint.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

use parking_lot::{Mutex, RwLock};

use super::tombstones::Tombstones;
use super::visibility::{Seen, Stamp};

/// Rows per chunk: 4096 rows of dim 64 are 1 MiB, a good unit to scan.
pub(crate) const CHUNK_ROWS: usize = 4096;

struct Chunk {
    values: Box<[UnsafeCell<f32>]>,
    ids: Box<[UnsafeCell<u64>]>,
    /// The stamp of the write that appended each row (see
    /// `segment::visibility`): never less than an earlier row's.
    births: Box<[UnsafeCell<u64>]>,
}

pub(crate) struct GrowingSegment {
    dim: usize,
    capacity: usize,
    chunks: Box<[OnceLock<Chunk>]>,
    len: AtomicUsize,
    /// Serialises appends; readers never take it.
    append_lock: Mutex<()>,
    /// The live row of each id (readers take it briefly for point lookups).
    rows_by_id: RwLock<HashMap<u64, u32>>,
    dead: Tombstones,
    /// Unique in the process: tells two segments apart (see `serial`).
    serial: u64,
}

/// The serial number of the next growing segment made.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

// SAFETY: the only interior mutability not behind a lock or an atomic is the
// `UnsafeCell` contents of the chunks. They are written only by `push_at`, which
// holds `append_lock` (one writer at a time) and writes only row `len`, a row
// no reader can reach because readers only form references to rows below the
// `len` they loaded with `Acquire`, and `push` publishes `len + 1` with
// `Release` after the write. A published row is never written again. So no
// row is ever read and written at the same time, and readers see complete rows.
unsafe impl Sync for GrowingSegment {}

impl GrowingSegment {
    /// Copies of the live rows: their ids, and their values row after row.
    pub fn live_copy(&self) -> (Vec<u64>, Vec<f32>) {
        let dim = self.dim;
        let mut ids = Vec::with_capacity(self.live_rows());
        let mut values = Vec::with_capacity(self.live_rows() * dim);
        self.for_each_chunk(|first, chunk_ids, rows| {
            for (r, (id, row)) in chunk_ids.iter().zip(rows.chunks_exact(dim)).enumerate() {
                if !self.dead.is_dead(first + r) {
                    ids.push(*id);
                    values.extend_from_slice(row);
                }
            }
        });
        (ids, values)
    }

    pub fn new(dim: usize, capacity: usize) -> Self {
        GrowingSegment {
            dim,
            capacity,
            chunks: (0..capacity.div_ceil(CHUNK_ROWS)).map(|_| OnceLock::new()).collect(),
            len: AtomicUsize::new(0),
            append_lock: Mutex::new(()),
            rows_by_id: RwLock::new(HashMap::new()),
            dead: Tombstones::new(capacity),
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A number no other growing segment of this process has: with the row
    /// and dead counts (rows are only appended, tombstones only set), it
    /// tells whether a segment changed since it was last looked at.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Components of a row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Rows appended so far (live or dead).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity
    }

    pub fn dead(&self) -> &Tombstones {
        &self.dead
    }

    /// Appends a row for `id` (killing the id's previous row here, if any)
    /// and returns its row number, or `None` when the segment is full.
    /// `values.len()` must equal the dimension (the store checks it).
    /// Visible to every reader (stamp 0): rows loaded or carried over.
    pub fn push(&self, id: u64, values: &[f32]) -> Option<u32> {
        self.push_at(id, values, 0)
    }

    /// [`GrowingSegment::push`] by the write stamped `at`: born, and the
    /// previous row killed, at `at`. Stamps never go down.
    pub fn push_at(&self, id: u64, values: &[f32], at: Stamp) -> Option<u32> {
        debug_assert_eq!(values.len(), self.dim);
        let _guard = self.append_lock.lock();
        let row = self.len.load(Ordering::Acquire);
        if row >= self.capacity || values.len() != self.dim {
            return None;
        }
        let chunk = self.chunks[row / CHUNK_ROWS].get_or_init(|| Chunk {
            values: (0..CHUNK_ROWS * self.dim).map(|_| UnsafeCell::new(0.0)).collect(),
            ids: (0..CHUNK_ROWS).map(|_| UnsafeCell::new(0)).collect(),
            births: (0..CHUNK_ROWS).map(|_| UnsafeCell::new(0)).collect(),
        });
        let at_row = row % CHUNK_ROWS;
        let born = at;
        // SAFETY: `row` is not yet published (it equals `len`), we hold the
        // append lock, so no other reference to these cells exists (see the
        // `Sync` impl above).
        unsafe {
            let dst = chunk.values[at_row * self.dim..(at_row + 1) * self.dim].as_ptr() as *mut f32;
            std::ptr::copy_nonoverlapping(values.as_ptr(), dst, self.dim);
            *chunk.ids[at_row].get() = id;
            *chunk.births[at_row].get() = born;
        }
        self.len.store(row + 1, Ordering::Release);
        let row = row as u32;
        if let Some(old) = self.rows_by_id.write().insert(id, row) {
            self.dead.kill_at(old as usize, born);
        }
        Some(row)
    }

    /// Kills the live row of `id` by the write stamped `at`; false if there
    /// is none.
    pub fn remove_at(&self, id: u64, at: Stamp) -> bool {
        match self.rows_by_id.write().remove(&id) {
            Some(row) => self.dead.kill_at(row as usize, at),
            None => false,
        }
    }

    /// The rows a reader that sees `seen` has: those below this, of the
    /// published ones, were born at a stamp it sees (births never go down).
    pub fn visible_len(&self, seen: Seen) -> usize {
        let len = self.len();
        let born = |row: usize| -> Stamp {
            match self.chunks.get(row / CHUNK_ROWS).and_then(|c| c.get()) {
                // SAFETY: `row` is below the published `len`, so its cell is
                // never written again (see the `Sync` impl).
                Some(chunk) => unsafe { *chunk.births[row % CHUNK_ROWS].get() },
                None => Stamp::MAX,
            }
        };
        if len == 0 || seen.sees(born(len - 1)) {
            return len;
        }
        let (mut lo, mut hi) = (0, len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if seen.sees(born(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The live row of `id`, if it is here.
    pub fn row_of(&self, id: u64) -> Option<u32> {
        self.rows_by_id.read().get(&id).copied()
    }

    /// Number of live rows.
    pub fn live_rows(&self) -> usize {
        self.rows_by_id.read().len()
    }

    /// The values of a published row.
    pub fn row(&self, row: u32) -> Option<&[f32]> {
        let row = row as usize;
        if row >= self.len() {
            return None;
        }
        let (_, values) = self.chunk_view(row / CHUNK_ROWS, self.len())?;
        let at = row % CHUNK_ROWS;
        values.get(at * self.dim..(at + 1) * self.dim)
    }

    /// Calls `f(first_row, ids, values)` for each run of published rows,
    /// `values` holding `ids.len()` contiguous rows.
    pub fn for_each_chunk(&self, f: impl FnMut(usize, &[u64], &[f32])) {
        self.for_each_chunk_to(Seen::NOW, f)
    }

    /// [`GrowingSegment::for_each_chunk`] over the rows a reader that sees
    /// `seen` has.
    pub fn for_each_chunk_to(&self, seen: Seen, mut f: impl FnMut(usize, &[u64], &[f32])) {
        let len = self.visible_len(seen);
        for c in 0..len.div_ceil(CHUNK_ROWS) {
            if let Some((ids, values)) = self.chunk_view(c, len) {
                f(c * CHUNK_ROWS, ids, values);
            }
        }
    }

    /// The published part of chunk `c`, given a `len` loaded with acquire.
    fn chunk_view(&self, c: usize, len: usize) -> Option<(&[u64], &[f32])> {
        let chunk = self.chunks.get(c)?.get()?;
        let rows = len.saturating_sub(c * CHUNK_ROWS).min(CHUNK_ROWS);
        // SAFETY: these `rows` rows are below the published `len`, so they
        // are never written again (see the `Sync` impl); `UnsafeCell<T>` has
        // the layout of `T`, so the cells form valid `u64`/`f32` slices.
        unsafe {
            let ids = std::slice::from_raw_parts(chunk.ids.as_ptr() as *const u64, rows);
            let values = std::slice::from_raw_parts(chunk.values.as_ptr() as *const f32, rows * self.dim);
            Some((ids, values))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_read_update_remove() {
        let g = GrowingSegment::new(2, CHUNK_ROWS + 3);
        for i in 0..(CHUNK_ROWS as u64 + 3) {
            assert_eq!(g.push(i, &[i as f32, -(i as f32)]), Some(i as u32));
        }
        assert!(g.is_full());
        assert_eq!(g.push(99, &[0.0, 0.0]), None);
        assert_eq!(g.row(CHUNK_ROWS as u32 + 1), Some(&[4097.0, -4097.0][..]));
        let mut seen = 0;
        g.for_each_chunk(|first, ids, values| {
            assert_eq!(values.len(), ids.len() * 2);
            assert_eq!(ids[0], first as u64);
            seen += ids.len();
        });
        assert_eq!(seen, CHUNK_ROWS + 3);
        assert!(g.remove_at(5, 0));
        assert!(!g.remove_at(5, 0));
        assert!(g.dead().is_dead(5));
        assert_eq!(g.live_rows(), CHUNK_ROWS + 2);
    }

    #[test]
    fn a_reader_has_only_the_rows_born_at_stamps_it_sees() {
        let g = GrowingSegment::new(1, 10);
        g.push(1, &[1.0]);
        g.push_at(2, &[2.0], 4);
        g.push_at(1, &[1.5], 6);
        assert_eq!(g.visible_len(Seen(0)), 1);
        assert_eq!(g.visible_len(Seen(5)), 2);
        assert_eq!(g.visible_len(Seen::NOW), 3);
        // Item 1's first row died when its second was born.
        assert!(!g.dead().is_dead_to(0, Seen(5)));
        assert!(g.dead().is_dead_to(0, Seen(6)));
        let mut seen = Vec::new();
        g.for_each_chunk_to(Seen(5), |_, ids, _| seen.extend_from_slice(ids));
        assert_eq!(seen, vec![1, 2]);
    }

    #[test]
    fn readers_see_whole_rows_while_writer_appends() {
        let g = std::sync::Arc::new(GrowingSegment::new(16, 20_000));
        let writer = {
            let g = g.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    g.push(i, &[i as f32; 16]);
                }
            })
        };
        while !g.is_full() {
            g.for_each_chunk(|_, ids, values| {
                for (r, id) in ids.iter().enumerate() {
                    assert!(values[r * 16..(r + 1) * 16].iter().all(|&v| v == *id as f32));
                }
            });
        }
        writer.join().unwrap();
    }
}
