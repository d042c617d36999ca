//! Vector rows. New rows go to the one [`growing::GrowingSegment`] (in
//! memory, made durable by the WAL); when it is full its live rows are
//! written to an immutable [`sealed::SealedSegment`] file that is
//! memory-mapped read-only. Deletions are [`tombstones::Tombstones`] bits,
//! since neither kind of segment is ever modified in place.

pub(crate) mod growing;
pub(crate) mod id_order;
pub(crate) mod sealed;
pub(crate) mod tombstones;
pub(crate) mod visibility;

/// Where a row lives: a segment id and a row number in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Location {
    pub segment: u64,
    pub row: u32,
}
