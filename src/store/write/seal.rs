//! Sealing the growing segment, and checkpointing without sealing; both are
//! installations (see `install`).
//!
//! A checkpoint records a WAL position `P` such that every record before
//! `P` is reflected in durable state (sealed segment files, the snapshot of
//! the growing segment, and the flushed metadata). Order: segment or
//! snapshot file durable, then histories and manifest written and sled
//! flushed, then the files the new manifest no longer names (old snapshot,
//! WAL files wholly before `P`) removed.
//! A crash between any two steps leaves either the old checkpoint (and the
//! log still holding everything after it) or the new one.

use std::sync::Arc;

use crate::error::Result;
use crate::segment::Location;
use crate::store::segments::install::{self, Growing, Installation, Placement};
use crate::store::space::SpaceState;
use crate::store::state::{ManifestState, Shared};
use crate::wal::Position;

/// Writes the live rows of `space`'s growing segment to a new sealed
/// segment, installs it with a checkpoint at `checkpoint` (the first log
/// record not included), and starts an empty growing segment. The new
/// segment is indexed in the background.
pub(crate) fn seal(shared: &Shared, core: &mut ManifestState, space: &SpaceState, checkpoint: Position) -> Result<()> {
    let (ids, values) = space.catalog.version.load().growing.live_copy();
    let mut change = Installation::of(space, Growing::Emptied);
    let mut sealed = None;
    if !ids.is_empty() {
        let id = core.reserve_segment_ids(1);
        let segment = install::write_segment(shared, space, id, &ids, &values)?;
        if space.trainer.is_some() {
            // A trained space's directory learns where the rows went (a
            // host-fed space finds them in the segment's id order).
            let rows = ids.iter().enumerate().map(|(row, item)| {
                let at = Location {
                    segment: id,
                    row: row as u32,
                };
                (*item, at)
            });
            change.placement = Placement::Moved(rows.collect());
        }
        change.added.push(Arc::clone(&segment));
        sealed = Some(segment);
    }
    let obsolete = install::install(shared, core, checkpoint, change)?;
    if let Some(segment) = sealed.filter(|_| shared.opts.background_indexing) {
        shared.indexer.submit(segment, &space.indexing);
    }
    obsolete.remove(shared)
}

/// Checkpoints at `wal_end` without sealing: the live rows of every growing
/// segment that changed are written to a snapshot file, so the log before
/// `wal_end` can go.
pub(crate) fn checkpoint(shared: &Shared, core: &mut ManifestState, wal_end: Position) -> Result<()> {
    install::install(shared, core, wal_end, Installation::checkpoint())?.remove(shared)
}
