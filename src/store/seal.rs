//! Sealing the growing segment and checkpointing.
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

use super::apply::Core;
use super::version::Version;
use super::Shared;
use crate::error::{IoContext, Result};
use crate::meta::records::SegmentEntry;
use crate::segment::growing::GrowingSegment;
use crate::segment::sealed::{self, SealedSegment};
use crate::segment::Location;
use crate::wal::{self, Position};

/// The live rows of the growing segment: ids and their values.
fn live_growing_rows(growing: &GrowingSegment, dim: usize) -> (Vec<u64>, Vec<f32>) {
    let mut ids = Vec::with_capacity(growing.live_rows());
    let mut values = Vec::with_capacity(growing.live_rows() * dim);
    growing.for_each_chunk(|first, chunk_ids, rows| {
        for (r, (id, row)) in chunk_ids.iter().zip(rows.chunks_exact(dim)).enumerate() {
            if !growing.dead().is_dead(first + r) {
                ids.push(*id);
                values.extend_from_slice(row);
            }
        }
    });
    (ids, values)
}

/// Writes the live rows of the growing segment to a new sealed segment,
/// installs it with a checkpoint at `checkpoint` (the first log record not
/// included), and starts an empty growing segment.
pub(crate) fn seal(shared: &Shared, core: &mut Core, checkpoint: Position) -> Result<()> {
    let current = shared.version.load_full();
    let dim = shared.opts.dim;
    let (ids, values) = live_growing_rows(&current.growing, dim);

    let mut sealed_list = current.sealed.clone();
    let mut manifest = core.manifest.clone();
    let mut registry = Vec::new();
    let mut new_segment = None;
    if !ids.is_empty() {
        let id = manifest.next_segment_id;
        let path = shared.segments_dir.join(sealed::file_name(id));
        sealed::write(&path, id, dim, &ids, &values)?;
        let segment = SealedSegment::open(&path, id, dim)?;
        segment.trust_fresh();
        let segment = Arc::new(segment);
        new_segment = Some(Arc::clone(&segment));
        sealed_list.push(segment);
        manifest.segments.push(SegmentEntry {
            id,
            rows: ids.len() as u64,
        });
        manifest.next_segment_id = id + 1;
        registry = ids
            .iter()
            .enumerate()
            .map(|(row, item)| {
                (
                    *item,
                    Location {
                        segment: id,
                        row: row as u32,
                    },
                )
            })
            .collect();
    }
    let old_snapshot = manifest.growing.take();
    shared.histories.persist_dirty()?;
    manifest.checkpoint = checkpoint;
    manifest.next_seq = core.next_seq;
    let retired = shared.pending_retirements();
    shared.meta.commit(&manifest, &retired, &registry)?;
    shared.meta.flush()?;
    forget_committed(shared, &retired);
    core.manifest = manifest;
    shared.version.store(Arc::new(Version {
        sealed: sealed_list,
        growing: Arc::new(GrowingSegment::new(dim, shared.opts.segment_rows)),
    }));
    if let Some(segment) = new_segment {
        shared.indexer.submit(segment);
    }
    remove_snapshot(shared, old_snapshot)?;
    remove_wal_before(shared, checkpoint.file_no)
}

/// Checkpoints at `wal_end` without sealing: the growing segment's live rows
/// are written to a snapshot file, so the log before `wal_end` can go.
pub(crate) fn checkpoint(shared: &Shared, core: &mut Core, wal_end: Position) -> Result<()> {
    let current = shared.version.load_full();
    let dim = shared.opts.dim;
    let mut manifest = core.manifest.clone();
    let old_snapshot = manifest.growing.take();
    let (ids, values) = live_growing_rows(&current.growing, dim);
    if !ids.is_empty() {
        let id = manifest.next_segment_id;
        let path = shared.segments_dir.join(sealed::snapshot_file_name(id));
        sealed::write(&path, id, dim, &ids, &values)?;
        manifest.growing = Some(SegmentEntry {
            id,
            rows: ids.len() as u64,
        });
        manifest.next_segment_id = id + 1;
    }
    shared.histories.persist_dirty()?;
    manifest.checkpoint = wal_end;
    manifest.next_seq = core.next_seq;
    let retired = shared.pending_retirements();
    shared.meta.commit(&manifest, &retired, &[])?;
    shared.meta.flush()?;
    forget_committed(shared, &retired);
    core.manifest = manifest;
    remove_snapshot(shared, old_snapshot)?;
    remove_wal_before(shared, wal_end.file_no)
}

/// Drops retirements that the metadata now holds. (The write lock is held,
/// so none of these was changed since `pending_retirements`.)
fn forget_committed(shared: &Shared, committed: &[(u64, Location)]) {
    let mut retired = shared.retired.lock();
    for (id, _) in committed {
        retired.remove(id);
    }
}

/// Removes a growing-segment snapshot that the manifest no longer names.
fn remove_snapshot(shared: &Shared, snapshot: Option<SegmentEntry>) -> Result<()> {
    if let Some(old) = snapshot {
        let path = shared.segments_dir.join(sealed::snapshot_file_name(old.id));
        std::fs::remove_file(&path).at(&path)?;
    }
    Ok(())
}

/// Removes the log files that the checkpoint has made obsolete.
fn remove_wal_before(shared: &Shared, file_no: u64) -> Result<()> {
    let mut removed = false;
    for (no, path) in wal::file::list(&shared.wal_dir)? {
        if no < file_no {
            std::fs::remove_file(&path).at(&path)?;
            removed = true;
        }
    }
    if removed {
        crate::fsutil::sync_dir(&shared.wal_dir)?;
    }
    Ok(())
}
