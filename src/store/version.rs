//! The immutable set of segments that readers work on. Writers build the
//! next version and swap it in atomically (`ArcSwap`), so a reader holding a
//! version never waits and never sees a half-made change. Tombstone bits and
//! growing-segment rows are the two things that change under a version, both
//! append-only and lock-free (see their modules).

use std::sync::Arc;

use crate::segment::growing::GrowingSegment;
use crate::segment::sealed::SealedSegment;

pub(crate) struct Version {
    /// Sorted by segment id.
    pub sealed: Vec<Arc<SealedSegment>>,
    pub growing: Arc<GrowingSegment>,
}

impl Version {
    pub fn segment(&self, id: u64) -> Option<&Arc<SealedSegment>> {
        self.sealed
            .binary_search_by_key(&id, |s| s.id())
            .ok()
            .map(|i| &self.sealed[i])
    }

    /// Rows in all segments, dead or alive.
    pub fn rows(&self) -> usize {
        self.sealed.iter().map(|s| s.count()).sum::<usize>() + self.growing.len()
    }

    pub fn live_rows(&self) -> usize {
        self.sealed.iter().map(|s| s.live_rows()).sum::<usize>() + self.growing.live_rows()
    }
}
