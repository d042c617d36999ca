//! A fixed-size set of dead rows, shared between the writer (which sets bits)
//! and readers (which test them) without a lock. A row of an immutable
//! segment, once dead, stays dead, so bits are only ever set.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub(crate) struct Tombstones {
    rows: usize,
    words: Box<[AtomicU64]>,
    count: AtomicUsize,
}

impl Tombstones {
    pub fn new(rows: usize) -> Self {
        Tombstones {
            rows,
            words: (0..rows.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicUsize::new(0),
        }
    }

    /// Marks `row` dead; false if it already was (or is out of range).
    pub fn kill(&self, row: usize) -> bool {
        let Some(word) = self.words.get(row / 64).filter(|_| row < self.rows) else {
            return false;
        };
        let bit = 1u64 << (row % 64);
        let before = word.fetch_or(bit, Ordering::AcqRel);
        let newly = before & bit == 0;
        if newly {
            self.count.fetch_add(1, Ordering::AcqRel);
        }
        newly
    }

    pub fn is_dead(&self, row: usize) -> bool {
        self.words
            .get(row / 64)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1u64 << (row % 64)) != 0)
    }

    /// A snapshot of the bits as bytes: bit `r % 8` of byte `r / 8` is row `r`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.words.len() * 8);
        for word in self.words.iter() {
            out.extend_from_slice(&word.load(Ordering::Acquire).to_le_bytes());
        }
        out
    }

    /// Number of dead rows.
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
        let bytes = t.to_bytes();
        assert_eq!(bytes.len(), 24);
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes[129 / 8], 1 << (129 % 8));
    }
}
