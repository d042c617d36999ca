//! Installing a new set of segments: the one path by which a seal, a
//! checkpoint, a compaction and a published training round change the
//! manifest and the version.
//!
//! Each goes through the same steps:
//! 1. New sealed segment files are written under ids reserved from the
//!    manifest, made durable, opened and trusted ([`write_segment`]);
//!    compaction and publishing also index them now, a seal leaves that to
//!    the background indexer. Compaction and publishing do this without
//!    the write lock.
//! 2. Under the write lock (or during recovery, before the store is
//!    shared), [`install`] writes the live rows of the growing segment the
//!    next version keeps to a snapshot file, then makes one metadata commit:
//!    dirty histories, retirements, registry rows, dead rows, forwards and
//!    the manifest with its checkpoint, flushed.
//! 3. The next version (segments, growing segment and trained directory
//!    together) is swapped in.
//! 4. [`Obsolete::remove`] deletes the files the new manifest no longer
//!    names: replaced segments and their indexes, the old snapshot and
//!    trainer file, and log files wholly before the checkpoint.
//!
//! A crash before (2) leaves new files that no manifest names; after it,
//! the old ones. The next open removes either. Readers keep the version
//! they loaded, so a query sees one set of segments from start to end.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::state::{ManifestState, Shared};
use crate::error::{IoContext, Result};
use crate::meta::records::{Forward, SegmentEntry, TrainerEntry};
use crate::meta::Commit;
use crate::segment::growing::GrowingSegment;
use crate::segment::sealed::{self, SealedSegment};
use crate::segment::Location;
use crate::train::state as trainer_file;
use crate::version::Version;
use crate::wal::{self, Position};

/// Writes `ids` and their `values` as sealed segment `id`: the file is
/// durable, opened and trusted when this returns.
pub(crate) fn write_segment(shared: &Shared, id: u64, ids: &[u64], values: &[f32]) -> Result<Arc<SealedSegment>> {
    let path = shared.segments_dir.join(sealed::file_name(id));
    sealed::write(&path, id, shared.opts.dim, ids, values)?;
    let segment = SealedSegment::open(&path, id, shared.opts.dim)?;
    segment.trust_fresh();
    Ok(Arc::new(segment))
}

/// [`write_segment`], then its index built now.
pub(crate) fn write_indexed_segment(
    shared: &Shared,
    id: u64,
    ids: &[u64],
    values: &[f32],
) -> Result<Arc<SealedSegment>> {
    let segment = write_segment(shared, id, ids, values)?;
    shared.indexer.index_now(&segment, values)?;
    Ok(segment)
}

/// What becomes of the growing segment.
pub(crate) enum Growing {
    /// Its rows went into a sealed segment: the next version starts empty.
    Emptied,
    /// It stays as it is.
    Kept,
    /// It is replaced by this one (publishing: provisional rows carried
    /// over into the new generation).
    Replaced(GrowingSegment),
}

/// Where items live after the change.
pub(crate) enum Placement {
    /// These items moved to these rows of the added segments: registry
    /// rows of a host-fed store, directory entries of a trained one.
    Moved(Vec<(u64, Location)>),
    /// A new trained generation's whole directory.
    Directory(HashMap<u64, Location>),
}

/// One change of the manifest and the version (see the module docs).
pub(crate) struct Installation {
    /// New sealed segments, written by step (1).
    pub added: Vec<Arc<SealedSegment>>,
    /// Sealed segments that leave (their dead-row records go too).
    pub removed: Vec<u64>,
    pub growing: Growing,
    pub placement: Placement,
    /// Rows of added segments that died while they were written.
    pub dead: Vec<Location>,
    /// The new forwarding table, when it changes.
    pub forwards: Option<HashMap<u64, Forward>>,
    /// The new trainer state file, when it changes.
    pub trainer: Option<TrainerEntry>,
}

impl Installation {
    pub fn new(growing: Growing) -> Self {
        Installation {
            added: Vec::new(),
            removed: Vec::new(),
            growing,
            placement: Placement::Moved(Vec::new()),
            dead: Vec::new(),
            forwards: None,
            trainer: None,
        }
    }
}

/// The files an installed manifest no longer names.
#[must_use = "the old files stay on disk until `remove` runs"]
pub(crate) struct Obsolete {
    segments: Vec<u64>,
    snapshot: Option<SegmentEntry>,
    trainer: Option<TrainerEntry>,
    checkpoint: Position,
}

/// Steps (2) and (3): commits `change` with a checkpoint at `checkpoint`
/// (the first log record it does not cover) and swaps in the next version.
/// Called under the write lock, or during recovery.
pub(crate) fn install(
    shared: &Shared,
    core: &mut ManifestState,
    checkpoint: Position,
    change: Installation,
) -> Result<Obsolete> {
    let current = shared.catalog.version.load_full();
    let dim = shared.opts.dim;
    let removed: HashSet<u64> = change.removed.iter().copied().collect();
    let mut manifest = core.manifest.clone();
    manifest.segments.retain(|s| !removed.contains(&s.id));
    manifest.segments.extend(change.added.iter().map(|s| SegmentEntry {
        id: s.id(),
        rows: s.count() as u64,
    }));
    manifest.segments.sort_by_key(|s| s.id);

    let growing = match change.growing {
        Growing::Emptied => Arc::new(GrowingSegment::new(dim, shared.opts.segment_rows)),
        Growing::Kept => Arc::clone(&current.growing),
        Growing::Replaced(growing) => Arc::new(growing),
    };
    let old_snapshot = manifest.growing.take();
    let (ids, values) = growing.live_copy();
    if !ids.is_empty() {
        let id = manifest.next_segment_id;
        sealed::write(
            &shared.segments_dir.join(sealed::snapshot_file_name(id)),
            id,
            dim,
            &ids,
            &values,
        )?;
        manifest.next_segment_id = id + 1;
        manifest.growing = Some(SegmentEntry {
            id,
            rows: ids.len() as u64,
        });
    }
    let old_trainer = change.trainer.and_then(|t| manifest.trainer.replace(t));

    // Trained stores keep locations in the version, not the registry.
    let trained = current.directory.is_some() || matches!(change.placement, Placement::Directory(_));
    let registry: &[(u64, Location)] = match &change.placement {
        Placement::Moved(moved) if !trained => moved,
        _ => &[],
    };
    let table: Option<Vec<Forward>> = change.forwards.as_ref().map(|f| f.values().copied().collect());
    // One batch, then flushed: the histories' dirty entries, the pending
    // retirements and the rest of the change, with the manifest.
    shared.histories.persist_dirty()?;
    manifest.checkpoint = checkpoint;
    manifest.next_seq = core.next_seq;
    let retired = shared.catalog.pending_retirements();
    shared.meta.commit(&Commit {
        manifest: &manifest,
        retired: &retired,
        rows: registry,
        dropped_segments: &change.removed,
        dead: &change.dead,
        forwards: table.as_deref(),
    })?;
    shared.meta.flush()?;
    shared.catalog.forget_committed(&retired);
    core.manifest = manifest;

    let directory = match change.placement {
        Placement::Directory(directory) => Some(Arc::new(directory)),
        Placement::Moved(moved) => current.directory.as_ref().map(|d| {
            if moved.is_empty() {
                Arc::clone(d)
            } else {
                let mut d = (**d).clone();
                d.extend(moved);
                Arc::new(d)
            }
        }),
    };
    let mut sealed: Vec<_> = current
        .sealed
        .iter()
        .filter(|s| !removed.contains(&s.id()))
        .cloned()
        .chain(change.added)
        .collect();
    sealed.sort_by_key(|s| s.id());
    shared.catalog.version.store(Arc::new(Version {
        sealed,
        growing,
        directory,
        forwards: change.forwards.map_or_else(|| Arc::clone(&current.forwards), Arc::new),
    }));
    Ok(Obsolete {
        segments: change.removed,
        snapshot: old_snapshot,
        trainer: old_trainer,
        checkpoint,
    })
}

impl Obsolete {
    /// Step (4): removes the files the installed manifest no longer names.
    pub fn remove(self, shared: &Shared) -> Result<()> {
        let dir = &shared.segments_dir;
        let mut names: Vec<String> = Vec::new();
        for id in &self.segments {
            names.push(sealed::file_name(*id));
            names.push(crate::index::file::file_name(*id));
        }
        names.extend(self.snapshot.map(|s| sealed::snapshot_file_name(s.id)));
        names.extend(self.trainer.map(|t| trainer_file::file_name(t.file_id)));
        if remove_existing(dir, &names)? {
            crate::fsutil::sync_dir(dir)?;
        }
        remove_wal_before(&shared.wal_dir, self.checkpoint.file_no)
    }
}

/// Removes those of `names` under `dir` that exist; whether any did.
fn remove_existing(dir: &Path, names: &[String]) -> Result<bool> {
    let mut removed = false;
    for name in names {
        let path = dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).at(&path)?;
            removed = true;
        }
    }
    Ok(removed)
}

/// Removes the log files that a checkpoint in file `file_no` made obsolete.
fn remove_wal_before(wal_dir: &Path, file_no: u64) -> Result<()> {
    let mut removed = false;
    for (no, path) in wal::file::list(wal_dir)? {
        if no < file_no {
            std::fs::remove_file(&path).at(&path)?;
            removed = true;
        }
    }
    if removed {
        crate::fsutil::sync_dir(wal_dir)?;
    }
    Ok(())
}
