//! The immutable set of segments that readers work on. Writers build the
//! next version and swap it in atomically (`ArcSwap`), so a reader holding a
//! version never waits and never sees a half-made change. Tombstone bits and
//! growing-segment rows are the two things that change under a version, both
//! append-only and lock-free (see their modules).

use std::sync::Arc;

use crate::idmap::IdMap;
use crate::segment::growing::GrowingSegment;
use crate::segment::sealed::SealedSegment;
use crate::segment::visibility::Seen;
use crate::segment::Location;
use crate::train::dnn::state::DnnState;

pub(crate) struct Version {
    /// Sorted by segment id.
    pub sealed: Vec<Arc<SealedSegment>>,
    pub growing: Arc<GrowingSegment>,
    /// Trained stores: the sealed row of every item, held by the version
    /// itself so that a lookup always agrees with the segments it searches
    /// (a generation switch changes both in one swap). Host-fed stores find
    /// rows through their segments' id orders instead (None here; see
    /// [`Version::live_sealed`]).
    pub directory: Option<Arc<IdMap<u64, Location>>>,
    /// YouTube DNN spaces: the model of this generation (its tower makes
    /// the user vectors searched here), swapped with the segments.
    pub model: Option<Arc<DnnState>>,
}

impl Version {
    pub fn segment(&self, id: u64) -> Option<&Arc<SealedSegment>> {
        self.sealed
            .binary_search_by_key(&id, |s| s.id())
            .ok()
            .map(|i| &self.sealed[i])
    }

    /// The vector of `id` in this version (trained stores), if it has one,
    /// for a reader that sees `seen`. The growing segment's row is its
    /// newest (a write published since `seen` only made it newer); a
    /// sealed row counts as live until a kill the reader sees.
    pub fn trained_row(&self, id: u64, seen: Seen) -> crate::error::Result<Option<&[f32]>> {
        if let Some(row) = self.growing.row_of(id) {
            return Ok(self.growing.row(row));
        }
        let Some(at) = self.directory.as_ref().and_then(|d| d.get(&id)) else {
            return Ok(None);
        };
        match self.segment(at.segment) {
            Some(segment) if !segment.dead().is_dead_to(at.row as usize, seen) => segment.row(at.row),
            _ => Ok(None),
        }
    }

    /// Host-fed spaces: the segment of this version holding a row of `id`
    /// live to a reader that sees `seen`, and the row, found through each
    /// segment's id order (newest segment first). An item has at most one
    /// live sealed row now: a row is retired (killed) whenever its item
    /// gets a newer one, so the answer agrees with the segments this
    /// version searches. (A reader behind a kill may find the old row and
    /// the new one sealed since: either is the item.)
    pub fn live_sealed(&self, id: u64, seen: Seen) -> crate::error::Result<Option<(&Arc<SealedSegment>, u32)>> {
        for segment in self.sealed.iter().rev() {
            if let Some(row) = segment.live_row_of(id, seen)? {
                return Ok(Some((segment, row)));
            }
        }
        Ok(None)
    }

    /// Rows in all segments, dead or alive.
    pub fn rows(&self) -> usize {
        self.sealed.iter().map(|s| s.count()).sum::<usize>() + self.growing.len()
    }

    pub fn live_rows(&self) -> usize {
        self.sealed.iter().map(|s| s.live_rows()).sum::<usize>() + self.growing.live_rows()
    }
}

/// What a reader works on: the version it loaded and the writes it sees
/// (taken first: see `segment::visibility`).
pub(crate) struct View {
    pub version: Arc<Version>,
    pub seen: Seen,
}

impl std::ops::Deref for View {
    type Target = Version;

    fn deref(&self) -> &Version {
        &self.version
    }
}
