//! The immutable set of segments that readers work on. Writers build the
//! next version and swap it in atomically (`ArcSwap`), so a reader holding a
//! version never waits and never sees a half-made change. Tombstone bits and
//! growing-segment rows are the two things that change under a version, both
//! append-only and lock-free (see their modules).

use std::collections::HashMap;
use std::sync::Arc;

use crate::meta::records::Forward;
use crate::segment::growing::GrowingSegment;
use crate::segment::sealed::SealedSegment;
use crate::segment::Location;
use crate::train::dnn::state::DnnState;

pub(crate) struct Version {
    /// Sorted by segment id.
    pub sealed: Vec<Arc<SealedSegment>>,
    pub growing: Arc<GrowingSegment>,
    /// Trained stores: the sealed row of every item, held by the version
    /// itself so that a lookup always agrees with the segments it searches
    /// (a generation switch changes both in one swap). Host-fed stores keep
    /// this in the metadata registry instead (None here).
    pub directory: Option<Arc<HashMap<u64, Location>>>,
    /// Host-fed stores: segments merged whole by a compaction, by the id
    /// they had (see `meta::records::Forward`).
    pub forwards: Arc<HashMap<u64, Forward>>,
    /// YouTube DNN spaces: the model of this generation (its tower makes
    /// the user vectors searched here), swapped with the segments.
    pub model: Option<Arc<DnnState>>,
}

impl Version {
    /// Where a registry location is in this version: a row of a segment
    /// that was merged whole into another is followed to its new row.
    pub fn resolve(&self, mut at: Location) -> Location {
        // Chains are as long as the merges a row went through; the bound
        // only guards against a cycle in damaged metadata.
        for _ in 0..64 {
            if self.segment(at.segment).is_some() {
                break;
            }
            match self.forwards.get(&at.segment) {
                Some(f) => {
                    at = Location {
                        segment: f.to,
                        row: f.base + at.row,
                    }
                }
                None => break,
            }
        }
        at
    }

    pub fn segment(&self, id: u64) -> Option<&Arc<SealedSegment>> {
        self.sealed
            .binary_search_by_key(&id, |s| s.id())
            .ok()
            .map(|i| &self.sealed[i])
    }

    /// The vector of `id` in this version (trained stores), if it has one.
    pub fn trained_row(&self, id: u64) -> crate::error::Result<Option<&[f32]>> {
        if let Some(row) = self.growing.row_of(id) {
            return Ok(self.growing.row(row));
        }
        let Some(at) = self.directory.as_ref().and_then(|d| d.get(&id)) else {
            return Ok(None);
        };
        match self.segment(at.segment) {
            Some(segment) if !segment.dead().is_dead(at.row as usize) => segment.row(at.row),
            _ => Ok(None),
        }
    }

    /// Rows in all segments, dead or alive.
    pub fn rows(&self) -> usize {
        self.sealed.iter().map(|s| s.count()).sum::<usize>() + self.growing.len()
    }

    pub fn live_rows(&self) -> usize {
        self.sealed.iter().map(|s| s.live_rows()).sum::<usize>() + self.growing.live_rows()
    }
}
