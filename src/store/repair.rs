//! `Store::repair`: new metadata for a store whose sled database is lost or
//! damaged, made from what the store can still trust: the `RECOVERY` copy
//! of the catalog (see `meta::recovery_file`), the segment files it names
//! (every checksum checked), the log after its checkpoint, and the trainer
//! files. The damaged metadata is moved aside, never deleted.
//!
//! Nothing acknowledged in a space is dropped: every sealed row comes back
//! (the segments carry their id orders; an item found live twice keeps its
//! newer row, the older is recorded dead), the growing
//! snapshot and the log after the checkpoint replay as at any open. What
//! only sled held is reported lost: user histories before the checkpoint
//! (the log after it rebuilds the rest), user features and item
//! attributes set before it, and so the trending counts, which are counted
//! again from the recovered histories.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lock::DirLock;
use super::Store;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::meta::records::{StoredConfig, FORMAT_VERSION};
use crate::meta::recovery_file::{self, RecoveryRecord};
use crate::meta::sled_meta::SledMeta;
use crate::meta::{Commit, MetaStore};
use crate::options::{Options, SpaceKind};
use crate::segment::sealed::{self, SealedSegment};
use crate::segment::Location;

/// What `Store::repair` did and what it could not bring back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Where the damaged metadata now is (kept for inspection); None if
    /// `meta/` was gone.
    pub moved_aside: Option<PathBuf>,
    /// Spaces restored.
    pub spaces: usize,
    /// Segment and snapshot files whose checksums were checked.
    pub files_checked: usize,
    /// Items found live in the segments (host-fed spaces).
    pub rows_registered: usize,
    /// Dead rows restored from the copy.
    pub dead_rows: usize,
    /// Items deleted from the whole store, restored from the copy.
    pub deleted_items: usize,
    /// Log bytes replayed after the copy's checkpoint.
    pub replayed_bytes: u64,
    /// Users with a history after the repair (from the log).
    pub users_with_history: usize,
    /// What could not be recovered, one line each.
    pub lost: Vec<String>,
}

impl Store {
    /// Makes new metadata for the store at `path` when its metadata
    /// database is lost or damaged (an open fails with `Error::Corruption`
    /// naming `meta/`), from the `RECOVERY` copy that every checkpoint
    /// writes, the segment files, the log and the trainer files; then opens
    /// the store once (replaying the log) and checkpoints. The damaged
    /// `meta/` is moved aside to `meta.damaged-N`. Refused, with nothing
    /// changed: a store whose metadata opens and verifies (nothing to
    /// repair), a store without a `RECOVERY` copy (last written by a build
    /// before it existed: restore a snapshot), a segment file that is
    /// missing or fails its checksum (its rows cannot be rebuilt), and a
    /// store another `Store` holds. The report says what could not be
    /// recovered (histories, features and attributes older than the log).
    pub fn repair(path: impl AsRef<Path>) -> Result<RepairReport> {
        let path = path.as_ref();
        let Some(record) = recovery_file::read(path)? else {
            return Err(Error::Corruption {
                file: recovery_file::path(path),
                offset: 0,
                reason: "no recovery copy of the metadata (the store was last opened by a build that did not \
                         write one): restore the store from a snapshot"
                    .into(),
            });
        };
        refuse_if_healthy(path)?;
        let lock = DirLock::acquire(path)?;
        let segments_dir = path.join("segments");
        let (files_checked, live_items, dead) = check_files(&segments_dir, &record)?;
        let moved_aside = move_aside(path)?;
        {
            let meta = SledMeta::open(&path.join("meta"), false, Options::existing().meta_cache_bytes)?;
            // This build's format: the new metadata holds no registry, so
            // an older build must not take it for its own.
            let config = StoredConfig {
                format_version: FORMAT_VERSION,
                ..record.config.clone()
            };
            meta.save_layout(&config, &record.spaces, &record.manifest)?;
            meta.commit(&Commit {
                manifest: &record.manifest,
                retired: &[],
                dropped_segments: &[],
                dead: &dead,
            })?;
            meta.save_blocked(&record.blocked)?;
            meta.flush()?;
        }
        drop(lock);
        let store = Store::open(path, Options::existing())?;
        let replayed_bytes = store.recovery().replayed_bytes;
        store.flush()?;
        let mut users_with_history = 0;
        store.shared.meta.for_each_history(&mut |_, _| {
            users_with_history += 1;
            Ok(())
        })?;
        let features = store.shared.features.len();
        let attributes = store.shared.attributes.len();
        let at = record.manifest.checkpoint;
        Ok(RepairReport {
            moved_aside,
            spaces: record.spaces.len(),
            files_checked,
            rows_registered: live_items,
            dead_rows: dead.len(),
            deleted_items: record.blocked.len(),
            replayed_bytes,
            users_with_history,
            lost: vec![
                format!(
                    "user histories before the checkpoint (log file {}, byte {}): {users_with_history} users have \
                     histories again, from the log after it; older events are gone from them",
                    at.file_no, at.offset
                ),
                format!(
                    "user features and item attributes set before the checkpoint ({features} users and {attributes} \
                     items have them again, from the log)"
                ),
                "the trending counts, counted again from the recovered histories".to_string(),
            ],
        })
    }
}

/// Refuses to rebuild metadata that opens and verifies: a repair loses the
/// histories older than the log.
fn refuse_if_healthy(path: &Path) -> Result<()> {
    let healthy = match Store::open_read_only(path) {
        Ok(store) => store.verify().map(|r| r.problems.is_empty()).unwrap_or(false),
        Err(e @ Error::Locked { .. }) => return Err(e),
        Err(_) => false,
    };
    if healthy {
        return Err(Error::InvalidOptions(format!(
            "store {} opens and verifies: nothing to repair (a repair would lose the user histories older than \
             the log)",
            path.display()
        )));
    }
    Ok(())
}

/// Checks every file the copy names and walks the live rows of host-fed
/// spaces' segments. Returns the files checked, where each item lives and
/// the dead rows (the copy's, plus the older row of any item found live
/// twice).
fn check_files(dir: &Path, record: &RecoveryRecord) -> Result<(usize, usize, Vec<Location>)> {
    let mut dead: Vec<Location> = record.dead.clone();
    let dead_set: HashSet<(u64, u32)> = dead.iter().map(|l| (l.segment, l.row)).collect();
    let mut live: HashMap<(u32, u64), Location> = HashMap::new();
    let mut checked = 0;
    for space in &record.spaces {
        let files = record
            .manifest
            .spaces
            .get(space.number as usize)
            .ok_or_else(|| Error::Corruption {
                file: recovery_file::path(fsutil::parent_of(dir)),
                offset: 0,
                reason: format!("no files listed for space {:?}", space.name),
            })?;
        // The rows' width: a DNN space stores [v, b].
        let dim = space.kind.row_dim(space.dim as usize);
        if let Some(trainer) = &files.trainer {
            // Its contents are checked when the store opens after the repair.
            let path = dir.join(crate::train::state::file_name(trainer.file_id));
            std::fs::metadata(&path).at(&path)?;
        }
        if let Some(growing) = &files.growing {
            let path = dir.join(sealed::snapshot_file_name(growing.id));
            SealedSegment::open(&path, growing.id, dim)?.verified()?;
            checked += 1;
        }
        for entry in &files.segments {
            let path = dir.join(sealed::file_name(entry.id));
            let segment = Arc::new(SealedSegment::open(&path, entry.id, dim)?);
            segment.verified()?;
            checked += 1;
            if space.kind != SpaceKind::Host {
                continue;
            }
            let (ids, _) = segment.data()?;
            for (row, id) in ids.iter().enumerate() {
                let at = Location {
                    segment: entry.id,
                    row: row as u32,
                };
                if dead_set.contains(&(at.segment, at.row)) {
                    continue;
                }
                // Segments are listed oldest first: a later live row wins.
                if let Some(older) = live.insert((space.number, *id), at) {
                    dead.push(older);
                }
            }
        }
    }
    Ok((checked, live.len(), dead))
}

/// Renames `meta/` to the first free `meta.damaged-N`; None when there
/// is no `meta/` at all.
fn move_aside(path: &Path) -> Result<Option<PathBuf>> {
    let meta = path.join("meta");
    if !meta.exists() {
        return Ok(None);
    }
    let mut n: u64 = 1;
    loop {
        let aside = path.join(format!("meta.damaged-{n}"));
        if !aside.exists() {
            std::fs::rename(&meta, &aside).at(&meta)?;
            fsutil::sync_dir(path)?;
            return Ok(Some(aside));
        }
        n += 1;
    }
}
