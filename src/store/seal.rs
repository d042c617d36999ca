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
use crate::meta::records::{Manifest, SegmentEntry};
use crate::segment::growing::GrowingSegment;
use crate::segment::sealed::{self, SealedSegment};
use crate::segment::Location;
use crate::wal::{self, Position};

/// The live rows of the growing segment: ids and their values.
pub(crate) fn live_growing_rows(growing: &GrowingSegment, dim: usize) -> (Vec<u64>, Vec<f32>) {
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
        let entry = write_rows(shared, &mut manifest, sealed::file_name, &ids, &values)?;
        let path = shared.segments_dir.join(sealed::file_name(entry.id));
        let segment = SealedSegment::open(&path, entry.id, dim)?;
        segment.trust_fresh();
        let segment = Arc::new(segment);
        new_segment = Some(Arc::clone(&segment));
        sealed_list.push(segment);
        registry = ids
            .iter()
            .enumerate()
            .map(|(row, item)| {
                let at = Location {
                    segment: entry.id,
                    row: row as u32,
                };
                (*item, at)
            })
            .collect();
        manifest.segments.push(entry);
    }
    let old_snapshot = manifest.growing.take();
    // Trained stores keep locations in the version, not the registry.
    let registered: &[(u64, Location)] = if current.directory.is_some() { &[] } else { &registry };
    commit_manifest(shared, core, manifest, checkpoint, registered)?;
    // A trained store's version carries its own directory: extend it.
    let directory = current.directory.as_ref().map(|d| {
        let mut d = (**d).clone();
        d.extend(registry.iter().copied());
        Arc::new(d)
    });
    shared.version.store(Arc::new(Version {
        sealed: sealed_list,
        growing: Arc::new(GrowingSegment::new(dim, shared.opts.segment_rows)),
        directory,
        forwards: Arc::clone(&current.forwards),
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
        manifest.growing = Some(write_rows(
            shared,
            &mut manifest,
            sealed::snapshot_file_name,
            &ids,
            &values,
        )?);
    }
    commit_manifest(shared, core, manifest, wal_end, &[])?;
    remove_snapshot(shared, old_snapshot)?;
    remove_wal_before(shared, wal_end.file_no)
}

/// Writes `ids` and their rows to a new file named by `name` under the next
/// segment id (taken from `manifest`), durably; returns its manifest entry.
pub(crate) fn write_rows(
    shared: &Shared,
    manifest: &mut Manifest,
    name: fn(u64) -> String,
    ids: &[u64],
    values: &[f32],
) -> Result<SegmentEntry> {
    let id = manifest.next_segment_id;
    sealed::write(&shared.segments_dir.join(name(id)), id, shared.opts.dim, ids, values)?;
    manifest.next_segment_id = id + 1;
    Ok(SegmentEntry {
        id,
        rows: ids.len() as u64,
    })
}

/// Makes `manifest` durable with a checkpoint at `checkpoint`: dirty
/// histories, pending retirements, `registry` (rows of a new segment) and
/// the manifest go to the metadata in one batch, which is then flushed.
pub(crate) fn commit_manifest(
    shared: &Shared,
    core: &mut Core,
    manifest: Manifest,
    checkpoint: Position,
    registry: &[(u64, Location)],
) -> Result<()> {
    commit_manifest_dropping(shared, core, manifest, checkpoint, &Dropping::default(), registry)
}

/// What a compaction's checkpoint also commits.
#[derive(Default)]
pub(crate) struct Dropping<'a> {
    /// Segments removed: their dead-row records go.
    pub segments: &'a [u64],
    /// Rows of the new segments to record dead.
    pub dead: &'a [Location],
    /// The whole forwarding table, when it changed.
    pub forwards: Option<&'a [crate::meta::records::Forward]>,
}

/// `commit_manifest`, also committing what a compaction changed.
pub(crate) fn commit_manifest_dropping(
    shared: &Shared,
    core: &mut Core,
    mut manifest: Manifest,
    checkpoint: Position,
    dropping: &Dropping,
    registry: &[(u64, Location)],
) -> Result<()> {
    shared.histories.persist_dirty()?;
    manifest.checkpoint = checkpoint;
    manifest.next_seq = core.next_seq;
    let retired = shared.pending_retirements();
    shared.meta.commit(&crate::meta::Commit {
        manifest: &manifest,
        retired: &retired,
        rows: registry,
        dropped_segments: dropping.segments,
        dead: dropping.dead,
        forwards: dropping.forwards,
    })?;
    shared.meta.flush()?;
    forget_committed(shared, &retired);
    core.manifest = manifest;
    Ok(())
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
pub(crate) fn remove_snapshot(shared: &Shared, snapshot: Option<SegmentEntry>) -> Result<()> {
    if let Some(old) = snapshot {
        let path = shared.segments_dir.join(sealed::snapshot_file_name(old.id));
        std::fs::remove_file(&path).at(&path)?;
    }
    Ok(())
}

/// Removes the files of a sealed segment the manifest no longer names: the
/// segment and its index, if they are there.
pub(crate) fn remove_segment_files(shared: &Shared, id: u64) -> Result<()> {
    for name in [sealed::file_name(id), crate::index::file::file_name(id)] {
        let path = shared.segments_dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).at(&path)?;
        }
    }
    Ok(())
}

/// Removes the log files that the checkpoint has made obsolete.
pub(crate) fn remove_wal_before(shared: &Shared, file_no: u64) -> Result<()> {
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
