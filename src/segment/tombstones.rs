//! A fixed-size set of dead rows, shared between the writer (which sets
//! bits) and readers (which test them) without a lock. A row of an
//! immutable segment, once dead, stays dead, so bits are only ever set.
//!
//! A row killed by a stamped write also has its stamp kept in a log (see
//! [`super::visibility`]): a reader that does not see that write yet
//! treats the row as alive. The log only grows, in stamp order, and is
//! bounded by the segment's rows; a reader reads it only when a kill was
//! stamped after what it sees (`latest` says whether one was).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::RwLock;

use super::visibility::{Seen, Stamp};

pub(crate) struct Tombstones {
    rows: usize,
    words: Box<[AtomicU64]>,
    count: AtomicUsize,
    /// (stamp, row) of every stamped kill, stamps ascending.
    log: RwLock<Vec<(Stamp, u32)>>,
    /// The greatest stamp in `log` (0: none).
    latest: AtomicU64,
}

impl Tombstones {
    pub fn new(rows: usize) -> Self {
        Tombstones {
            rows,
            words: (0..rows.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicUsize::new(0),
            log: RwLock::new(Vec::new()),
            latest: AtomicU64::new(0),
        }
    }

    /// Marks `row` dead for every reader; false if it already was (or is
    /// out of range).
    pub fn kill(&self, row: usize) -> bool {
        self.kill_at(row, 0)
    }

    /// Marks `row` dead by the write stamped `at` (0: for every reader);
    /// false if it already was (or is out of range). Called by one writer
    /// at a time, with stamps that never go down.
    pub fn kill_at(&self, row: usize, at: Stamp) -> bool {
        let Some(word) = self.words.get(row / 64).filter(|_| row < self.rows) else {
            return false;
        };
        let bit = 1u64 << (row % 64);
        if word.load(Ordering::Acquire) & bit != 0 {
            return false;
        }
        if at > 0 {
            // Logged before the bit is set (release below): a reader that
            // sees the bit sees `latest` at least this.
            self.log.write().push((at, row as u32));
            self.latest.fetch_max(at, Ordering::Release);
        }
        let before = word.fetch_or(bit, Ordering::AcqRel);
        let newly = before & bit == 0;
        if newly {
            self.count.fetch_add(1, Ordering::AcqRel);
        }
        newly
    }

    /// Whether `row` is dead now (what a writer sees).
    pub fn is_dead(&self, row: usize) -> bool {
        self.words
            .get(row / 64)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1u64 << (row % 64)) != 0)
    }

    /// Whether `row` is dead to a reader that sees `seen`.
    pub fn is_dead_to(&self, row: usize, seen: Seen) -> bool {
        if !self.is_dead(row) {
            return false;
        }
        if seen.sees(self.latest.load(Ordering::Acquire)) {
            return true;
        }
        // Killed after what the reader sees?
        let log = self.log.read();
        let later = log.partition_point(|(at, _)| seen.sees(*at));
        !log[later..].iter().any(|(_, r)| *r as usize == row)
    }

    /// The stamp `row` died at (0: unstamped, or alive).
    pub fn stamp_of(&self, row: usize) -> Stamp {
        if self.latest.load(Ordering::Acquire) == 0 {
            return 0;
        }
        self.log
            .read()
            .iter()
            .find(|(_, r)| *r as usize == row)
            .map_or(0, |(at, _)| *at)
    }

    /// The bits as bytes, as a reader that sees `seen` has them: bit
    /// `r % 8` of byte `r / 8` is row `r`.
    pub fn to_bytes(&self, seen: Seen) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.words.len() * 8);
        for word in self.words.iter() {
            out.extend_from_slice(&word.load(Ordering::Acquire).to_le_bytes());
        }
        if !seen.sees(self.latest.load(Ordering::Acquire)) {
            let log = self.log.read();
            let later = log.partition_point(|(at, _)| seen.sees(*at));
            for (_, row) in &log[later..] {
                let r = *row as usize;
                if let Some(byte) = out.get_mut(r / 8) {
                    *byte &= !(1u8 << (r % 8));
                }
            }
        }
        out
    }

    /// Number of dead rows (now).
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_is_idempotent_and_counted() {
        let t = Tombstones::new(130);
        assert!(t.kill(129));
        assert!(!t.kill(129));
        assert!(t.kill(0));
        assert!(!t.kill(130), "out of range");
        assert!(t.is_dead(0) && t.is_dead(129) && !t.is_dead(64));
        assert_eq!(t.count(), 2);
        let bytes = t.to_bytes(Seen::NOW);
        assert_eq!(bytes.len(), 24);
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes[129 / 8], 1 << (129 % 8));
    }

    #[test]
    fn a_stamped_kill_is_invisible_to_readers_before_it() {
        let t = Tombstones::new(100);
        t.kill(1);
        t.kill_at(5, 3);
        t.kill_at(9, 7);
        for (seen, five, nine) in [(2, false, false), (3, true, false), (6, true, false), (7, true, true)] {
            let seen = Seen(seen);
            assert!(t.is_dead_to(1, seen), "unstamped kills are seen by all");
            assert_eq!(t.is_dead_to(5, seen), five, "{seen:?}");
            assert_eq!(t.is_dead_to(9, seen), nine, "{seen:?}");
            let bytes = t.to_bytes(seen);
            assert_eq!(bytes[0] & (1 << 5) != 0, five);
            assert_eq!(bytes[1] & (1 << 1) != 0, nine);
            assert_eq!(bytes[0] & (1 << 1), 1 << 1);
        }
        assert_eq!(t.stamp_of(9), 7);
        assert_eq!(t.stamp_of(1), 0);
        assert!(!t.kill_at(9, 8), "already dead: the first stamp stays");
        assert_eq!(t.stamp_of(9), 7);
    }
}
