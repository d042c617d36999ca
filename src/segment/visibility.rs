//! Which writes a reader sees: one step per write, for every segment at
//! once.
//!
//! A write that moves an item's row (an upsert appends the new row to the
//! growing segment and kills the old one, maybe in a sealed segment)
//! changes two places. Readers look at them one after the other, so
//! without more a reader could look at the growing segment before the new
//! row and at the old row after its death, and miss the item: a narrow
//! filter came back short, and `get` had to look twice.
//!
//! So every write (under the store's write lock) takes the next **stamp**
//! from the store's [`Clock`], marks what it does with it (the rows it
//! appends are born at it, the rows it kills die at it), and then
//! publishes it. A reader first takes the published stamp it **sees**, and
//! then treats every row as it was at that stamp: rows born later do not
//! exist for it, rows killed later are alive. A write is thus visible to a
//! reader whole or not at all. Rows that are not written by a stamped
//! write (loaded at open, replayed, carried into a new version) carry
//! stamp 0: every reader sees them.
//!
//! Deaths keep their stamp in a per-segment log (the tombstones'),
//! births in the growing segment's rows. A reader that sees the latest
//! stamp (the common case: no write ran during its query) pays one atomic
//! load per dead row it meets and never reads the log.

use std::sync::atomic::{AtomicU64, Ordering};

/// The stamp of one write: what it appends is born, what it kills dies,
/// at this stamp. 0: before every reader.
pub(crate) type Stamp = u64;

/// The writes a reader sees: those whose stamp is at most this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Seen(pub u64);

impl Seen {
    /// What a writer (holding the write lock) sees: everything.
    pub const NOW: Seen = Seen(u64::MAX);

    /// Whether a write stamped `at` is visible.
    pub fn sees(self, at: Stamp) -> bool {
        at <= self.0
    }
}

/// The store's clock: the last published stamp.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    published: AtomicU64,
}

impl Clock {
    /// What a reader sees from now on (acquire: every effect of a
    /// published write is visible with it).
    pub fn seen(&self) -> Seen {
        Seen(self.published.load(Ordering::Acquire))
    }

    /// The stamp of the next write. Called under the write lock (one
    /// writer at a time), followed by [`Clock::publish`] before the lock
    /// is released.
    pub fn next(&self) -> Stamp {
        self.published.load(Ordering::Relaxed) + 1
    }

    /// Makes the write stamped `at` visible, all at once (release: its
    /// births and deaths were made before).
    pub fn publish(&self, at: Stamp) {
        self.published.store(at, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_seen_only_once_published() {
        let clock = Clock::default();
        let before = clock.seen();
        let at = clock.next();
        assert!(!before.sees(at));
        assert!(before.sees(0));
        clock.publish(at);
        assert!(clock.seen().sees(at));
        assert!(!before.sees(at));
        assert_eq!(clock.next(), at + 1);
        assert!(Seen::NOW.sees(u64::MAX));
    }
}
