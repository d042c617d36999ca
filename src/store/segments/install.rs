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
//!    shared), [`install`] writes the live rows of each space's growing
//!    segment that changed since its last snapshot (the changed space's as
//!    its next version keeps it) to a snapshot file, and the behaviour
//!    applied since the last checkpoint to run files (`behaviour`), then
//!    makes one metadata commit: every space's retirements, dead rows, the
//!    manifest with its checkpoint and the list of runs, flushed; the new
//!    runs are swapped in with an empty recent part.
//! 3. The changed space's next version (segments, growing segment and
//!    trained directory together) is swapped in.
//! 4. [`Obsolete::remove`] deletes the files the new manifest no longer
//!    names: replaced segments and their indexes, the old snapshot and
//!    trainer file, and log files wholly before the checkpoint.
//!
//! A crash before (2) leaves new files that no manifest names; after it,
//! the old ones. The next open removes either. Readers keep the version
//! they loaded, so a query sees one set of segments from start to end.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use crate::error::{IoContext, Result};
use crate::meta::records::{SegmentEntry, TrainerEntry};
use crate::meta::{Commit, Placed};
use crate::segment::growing::GrowingSegment;
use crate::segment::sealed::{self, SealedSegment};
use crate::segment::Location;
use crate::store::space::SpaceState;
use crate::store::state::{GrowingMark, ManifestState, Shared};
use crate::train::dnn::state::DnnState;
use crate::train::state as trainer_file;
use crate::version::Version;
use crate::wal::{self, Position};

/// Writes `ids` and their `values` as sealed segment `id` of `space`: the
/// file is durable, opened and trusted when this returns.
pub(crate) fn write_segment(
    shared: &Shared,
    space: &SpaceState,
    id: u64,
    ids: &[u64],
    values: &[f32],
) -> Result<Arc<SealedSegment>> {
    let path = shared.segments_dir.join(sealed::file_name(id));
    sealed::write(&path, id, space.dim, ids, values)?;
    let segment = SealedSegment::open(&path, id, space.dim)?;
    segment.trust_fresh();
    Ok(Arc::new(segment))
}

/// [`write_segment`], then its index built now.
pub(crate) fn write_indexed_segment(
    shared: &Shared,
    space: &SpaceState,
    id: u64,
    ids: &[u64],
    values: &[f32],
) -> Result<Arc<SealedSegment>> {
    let segment = write_segment(shared, space, id, ids, values)?;
    shared.indexer.index_now(&space.indexing, &segment, values)?;
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
    /// These items moved to these rows of the added segments: directory
    /// entries of a trained space (a host-fed space finds them through the
    /// segments' id orders, and ignores this).
    Moved(Vec<(u64, Location)>),
    /// A new trained generation's whole directory.
    Directory(crate::idmap::IdMap<u64, Location>),
}

/// One change of the manifest and of one space's version (see the module
/// docs); a checkpoint changes no space.
pub(crate) struct Installation {
    /// The space whose segments change (its slot), if any.
    pub space: Option<usize>,
    /// New sealed segments, written by step (1).
    pub added: Vec<Arc<SealedSegment>>,
    /// Sealed segments that leave (their dead-row records go too).
    pub removed: Vec<u64>,
    pub growing: Growing,
    pub placement: Placement,
    /// Rows of added segments that died while they were written.
    pub dead: Vec<Location>,
    /// The new trainer state file, when it changes.
    pub trainer: Option<TrainerEntry>,
    /// A new DNN generation's model, served with its segments.
    pub model: Option<Arc<DnnState>>,
    /// Kill the rows of the store's deleted items in the new version
    /// before it is installed (a trained generation holds every item its
    /// round trained, deleted ones included, and some may have been
    /// deleted while it was written): no reader ever sees them.
    pub kill_deleted: bool,
}

impl Installation {
    /// A change of `space`, whose growing segment becomes `growing`.
    pub fn of(space: &SpaceState, growing: Growing) -> Self {
        Installation {
            space: Some(space.slot()),
            ..Installation::checkpoint()
        }
        .with_growing(growing)
    }

    /// No space changes: only the checkpoint moves.
    pub fn checkpoint() -> Self {
        Installation {
            space: None,
            added: Vec::new(),
            removed: Vec::new(),
            growing: Growing::Kept,
            placement: Placement::Moved(Vec::new()),
            dead: Vec::new(),
            trainer: None,
            model: None,
            kill_deleted: false,
        }
    }

    fn with_growing(mut self, growing: Growing) -> Self {
        self.growing = growing;
        self
    }
}

/// The files an installed manifest no longer names.
#[must_use = "the old files stay on disk until `remove` runs"]
pub(crate) struct Obsolete {
    segments: Vec<u64>,
    snapshots: Vec<SegmentEntry>,
    trainer: Option<TrainerEntry>,
    /// The trending counts' file a newer one replaced.
    trending: Option<u64>,
    checkpoint: Position,
}

/// Steps (2) and (3): commits `change` with a checkpoint at `checkpoint`
/// (the first log record it does not cover) and swaps in the changed
/// space's next version. Every space whose growing segment changed since
/// its snapshot gets a new snapshot (the checkpoint covers their rows too).
/// Called under the write lock, or during recovery.
pub(crate) fn install(
    shared: &Shared,
    core: &mut ManifestState,
    checkpoint: Position,
    change: Installation,
) -> Result<Obsolete> {
    let Installation {
        space: changed,
        added,
        removed,
        growing,
        placement,
        dead,
        trainer,
        model,
        kill_deleted,
    } = change;
    let removed_set: HashSet<u64> = removed.iter().copied().collect();
    let mut manifest = core.manifest.clone();
    let mut obsolete = Obsolete {
        segments: removed.clone(),
        snapshots: Vec::new(),
        trainer: None,
        trending: None,
        checkpoint,
    };
    if let Some(slot) = changed {
        let files = &mut manifest.spaces[slot];
        files.segments.retain(|s| !removed_set.contains(&s.id));
        files.segments.extend(added.iter().map(|s| SegmentEntry {
            id: s.id(),
            rows: s.count() as u64,
        }));
        files.segments.sort_by_key(|s| s.id);
        obsolete.trainer = trainer.and_then(|t| files.trainer.replace(t));
    }

    // The changed space's next growing segment; then a snapshot of every
    // space's growing segment that changed since its last one.
    let mut growing = Some(growing);
    let mut next_growing = None;
    let mut marks = core.snapshot_marks.clone();
    for space in &shared.spaces {
        let slot = space.slot();
        let current = Arc::clone(&space.catalog.version.load().growing);
        let segment = match (changed == Some(slot)).then(|| growing.take()).flatten() {
            Some(Growing::Emptied) => Arc::new(GrowingSegment::new(space.dim, shared.opts.segment_rows)),
            Some(Growing::Replaced(replacement)) => Arc::new(replacement),
            Some(Growing::Kept) | None => current,
        };
        let mark = GrowingMark::of(&segment);
        if marks[slot] != Some(mark) {
            let files = &mut manifest.spaces[slot];
            obsolete.snapshots.extend(files.growing.take());
            let (ids, values) = segment.live_copy();
            if !ids.is_empty() {
                let id = manifest.next_segment_id;
                sealed::write(
                    &shared.segments_dir.join(sealed::snapshot_file_name(id)),
                    id,
                    space.dim,
                    &ids,
                    &values,
                )?;
                manifest.next_segment_id = id + 1;
                manifest.spaces[slot].growing = Some(SegmentEntry {
                    id,
                    rows: ids.len() as u64,
                });
            }
            marks[slot] = Some(mark);
        }
        if changed == Some(slot) {
            next_growing = Some(segment);
        }
    }

    let target = changed.map(|slot| &shared.spaces[slot]);
    // The behaviour applied since the last checkpoint, as runs (durable
    // files, named by the commit below); then one batch, flushed: the
    // pending retirements of every space and the rest of the change, with
    // the manifest and the list of runs.
    let mut runs = core.runs.clone();
    let flushed = shared.behaviour.write_recent(&mut runs, core.next_seq)?;
    shared.blocked.persist_dirty()?;
    let trending = shared.trending.take_dirty_record();
    if let Some(record) = &trending {
        let id = runs.next_id;
        runs.next_id += 1;
        if let Err(e) = crate::store::trending::file::write(shared.behaviour.dir(), id, record) {
            shared.trending.mark_dirty();
            return Err(e);
        }
        obsolete.trending = runs.trending.replace(id);
    }
    manifest.checkpoint = checkpoint;
    manifest.next_seq = core.next_seq;
    let retired: Vec<Placed> = shared
        .spaces
        .iter()
        .flat_map(|s| s.catalog.pending_retirements())
        .collect();
    let committed = shared
        .meta
        .commit(&Commit {
            manifest: &manifest,
            retired: &retired,
            dropped_segments: &removed,
            dead: &dead,
            runs: &runs,
        })
        .and_then(|()| shared.meta.flush());
    if let Err(e) = committed {
        if trending.is_some() {
            shared.trending.mark_dirty();
        }
        return Err(e);
    }
    for space in &shared.spaces {
        space.catalog.forget_committed(&retired);
    }
    let added_runs = runs.events.len() + runs.features.len() + runs.attributes.len()
        > core.runs.events.len() + core.runs.features.len() + core.runs.attributes.len();
    core.manifest = manifest;
    core.runs = runs;
    shared.behaviour.install_flushed(flushed);
    if added_runs {
        crate::store::behaviour::merger::wake(&shared.merge_signal);
    }
    core.snapshot_marks = marks;

    if let (Some(space), Some(growing)) = (target, next_growing) {
        let current = space.catalog.version.load_full();
        let directory = match placement {
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
            .filter(|s| !removed_set.contains(&s.id()))
            .cloned()
            .chain(added)
            .collect();
        sealed.sort_by_key(|s| s.id());
        let next = Version {
            sealed,
            growing,
            directory,
            model: model.or_else(|| current.model.clone()),
        };
        if kill_deleted {
            shared.blocked.kill_in(&next);
        }
        space.catalog.version.store(Arc::new(next));
    }
    // Step (3b): the catalog copy `Store::repair` works from, read and
    // written under the write lock (so copies never race or mix two
    // commits) and before step (4) removes anything the old copy names.
    // If it fails, the change is in place; the error says so, and nothing
    // is removed (the next open writes the copy).
    crate::meta::recovery_file::write_from(&shared.path, shared.meta.as_ref())?;
    Ok(obsolete)
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
        names.extend(self.snapshots.iter().map(|s| sealed::snapshot_file_name(s.id)));
        names.extend(self.trainer.map(|t| trainer_file::file_name(t.file_id)));
        if remove_existing(dir, &names)? {
            crate::fsutil::sync_dir(dir)?;
        }
        if let Some(id) = self.trending {
            let runs = shared.behaviour.dir();
            if remove_existing(runs, &[crate::store::trending::file::file_name(id)])? {
                crate::fsutil::sync_dir(runs)?;
            }
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
