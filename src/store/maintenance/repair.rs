//! `Store::repair`: new metadata for a store whose sled database is lost or
//! damaged, made from what the store can still trust: the `RECOVERY` copy
//! of the catalog (see `meta::recovery_file`), the segment files it names
//! (every checksum checked), the log after its checkpoint, and the trainer
//! files. The damaged metadata is moved aside, never deleted.
//!
//! Nothing acknowledged in a space is dropped: every sealed row comes back
//! (the segments carry their id orders; an item found live twice keeps its
//! newer row, the older is recorded dead), the growing
//! snapshot and the log after the checkpoint replay as at any open. User
//! histories, user features and item attributes come back whole: the copy
//! names the runs holding them through its checkpoint (each read whole
//! before anything changes), and the log after it holds the rest. The
//! trending counts are counted again from the histories. A copy written by
//! a format-5 store names no runs: then what only sled held (behaviour
//! before the checkpoint) is reported lost.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::meta::records::{RunManifest, StoredConfig, FORMAT_VERSION, RUNS_FORMAT};
use crate::meta::recovery_file::{self, RecoveryRecord};
use crate::meta::sled_meta::SledMeta;
use crate::meta::{Commit, MetaStore};
use crate::options::{Options, SpaceKind};
use crate::segment::sealed::{self, SealedSegment};
use crate::segment::Location;
use crate::store::open::lock::DirLock;
use crate::store::Store;

/// How `Store::repair_with` runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairOptions {
    /// Check everything and say what would be done (`RepairReport::plan`),
    /// changing nothing.
    pub dry_run: bool,
}

impl RepairOptions {
    /// A dry run: checks and the plan, nothing changed.
    pub fn dry_run() -> Self {
        RepairOptions { dry_run: true }
    }
}

/// What `Store::repair` did and what it could not bring back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// Nothing was changed: the report says what a repair would do.
    pub dry_run: bool,
    /// Why the metadata was found damaged (what the check met first).
    pub damage: String,
    /// What the repair does, step by step (done, or to be done in a dry run).
    pub plan: Vec<String>,
    /// Where the damaged metadata now is (kept for inspection); None if
    /// `meta/` was gone (or in a dry run).
    pub moved_aside: Option<PathBuf>,
    /// Spaces restored.
    pub spaces: usize,
    /// Segment, snapshot and trainer files whose checksums were checked.
    pub files_checked: usize,
    /// Items found live in the segments (host-fed spaces).
    pub rows_registered: usize,
    /// Dead rows restored from the copy.
    pub dead_rows: usize,
    /// Items deleted from the whole store, restored from the copy.
    pub deleted_items: usize,
    /// Log bytes replayed after the copy's checkpoint.
    pub replayed_bytes: u64,
    /// Users with a history after the repair (0 in a dry run).
    pub users_with_history: usize,
    /// Events in those histories, summed over the users.
    pub history_entries: u64,
    /// Run files (histories, features, attributes) read whole and kept.
    pub runs_checked: usize,
    /// Users with features after the repair (0 in a dry run).
    pub users_with_features: usize,
    /// Items with attributes after the repair (0 in a dry run).
    pub items_with_attributes: usize,
    /// Unfinished repairs of processes that died, removed first.
    pub removed_leftovers: Vec<PathBuf>,
    /// What could not be recovered, one line each.
    pub lost: Vec<String>,
}

/// The directory a repair builds the new metadata in, beside `meta/`.
const BUILD_PURPOSE: &str = "repair-tmp";

impl Store {
    /// Makes new metadata for the store at `path` when its metadata
    /// database is lost or damaged, from the `RECOVERY` copy that every
    /// checkpoint writes, the segment files, the log and the trainer
    /// files; then opens the store once (replaying the log) and
    /// checkpoints. See [`Store::repair_with`].
    ///
    /// Here the metadata directory is lost whole; nothing acknowledged is:
    ///
    /// ```
    /// use emberdb::{Durability, Error, Event, Options, Store};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let store = Store::open(&path, Options::new(2).durability(Durability::None))?;
    /// store.upsert(1, &[1.0, 0.0])?;
    /// store.append_event(Event::new(7, 1, 1_700_000_000_000))?;
    /// drop(store); // closing checkpoints, which writes the recovery copy
    ///
    /// // A healthy store is refused: a repair replaces only damaged metadata.
    /// assert!(matches!(Store::repair(&path), Err(Error::NothingToRepair { .. })));
    ///
    /// std::fs::remove_dir_all(path.join("meta"))?; // the metadata is lost
    /// assert!(Store::open(&path, Options::existing()).is_err());
    /// let report = Store::repair(&path)?;
    /// assert!(report.lost.is_empty() && report.moved_aside.is_none());
    ///
    /// let store = Store::open(&path, Options::existing())?;
    /// assert_eq!(store.get(1)?, Some(vec![1.0, 0.0]));
    /// assert_eq!(store.history(7)?, vec![1]);
    /// # Ok(()) }
    /// ```
    pub fn repair(path: impl AsRef<Path>) -> Result<RepairReport> {
        Store::repair_with(path, &RepairOptions::default())
    }

    /// [`Store::repair`], or with `dry_run` only its checks and plan.
    ///
    /// Only metadata that is itself damaged or missing is replaced: a
    /// store whose metadata opens and whose every record decodes is
    /// refused (`Error::NothingToRepair`, with what `verify` found
    /// elsewhere), whatever else is wrong with it, since a repair loses
    /// the histories older than the log. Every input is checked before
    /// anything changes: the `RECOVERY` copy, every segment, growing
    /// snapshot and trainer file it names (whole, checksums included),
    /// and every frame of the log after its checkpoint; any failure
    /// refuses the repair with nothing changed.
    ///
    /// The new metadata is built beside `meta/`, complete and flushed,
    /// before anything is moved: then the damaged `meta/` is renamed to
    /// `meta.damaged-N` and the new one into its place. A repair killed
    /// before the first rename leaves the store as it was; between the
    /// two, a store without `meta/`, which a repair run again rebuilds;
    /// after, the repaired store. Unfinished builds of dead processes
    /// are removed by the next repair.
    pub fn repair_with(path: impl AsRef<Path>, opts: &RepairOptions) -> Result<RepairReport> {
        let path = path.as_ref();
        let lock = DirLock::acquire(path)?;
        let Some(damage) = metadata_damage(path) else {
            drop(lock);
            return Err(nothing_to_repair(path));
        };
        let Some(record) = recovery_file::read(path)? else {
            return Err(Error::Corruption {
                file: recovery_file::path(path),
                offset: 0,
                reason: "no recovery copy of the metadata (the store was last opened by a build that did not \
                         write one): restore the store from a snapshot"
                    .into(),
            });
        };
        let segments_dir = path.join("segments");
        let (files_checked, live_items, dead) = check_files(&segments_dir, &record)?;
        let runs_checked = check_runs(path, &record)?;
        let replayed_bytes = check_log(path, &record)?;
        let mut report = RepairReport {
            dry_run: opts.dry_run,
            damage,
            spaces: record.spaces.len(),
            files_checked,
            rows_registered: live_items,
            dead_rows: dead.len(),
            deleted_items: record.blocked.len(),
            replayed_bytes,
            runs_checked,
            ..RepairReport::default()
        };
        let meta = path.join("meta");
        let aside = free_aside_name(path);
        report.plan = vec![
            format!(
                "build new metadata from {} ({} spaces, {} dead rows, {} deleted items, {} runs of histories, \
                 features and attributes) beside meta/",
                recovery_file::path(path).display(),
                record.spaces.len(),
                dead.len(),
                record.blocked.len(),
                runs_checked
            ),
            if meta.exists() {
                format!("move the damaged {} to {}", meta.display(), aside.display())
            } else {
                format!("{} is missing: nothing to move aside", meta.display())
            },
            format!("put the new metadata at {}", meta.display()),
            format!(
                "open the store, replaying {replayed_bytes} bytes of log after the copy's checkpoint, and checkpoint"
            ),
        ];
        if opts.dry_run {
            return Ok(report);
        }

        report.removed_leftovers = fsutil::remove_dead_dirs_beside(&meta, BUILD_PURPOSE)?;
        let build = fsutil::create_unique_dir_beside(&meta, BUILD_PURPOSE)?;
        let built = build_metadata(&build, &record, &dead);
        if let Err(e) = built {
            let _ = std::fs::remove_dir_all(&build);
            return Err(e);
        }
        if meta.exists() {
            std::fs::rename(&meta, &aside).at(&meta)?;
            fsutil::sync_dir(path)?;
            report.moved_aside = Some(aside);
        }
        std::fs::rename(&build, &meta).at(&build)?;
        fsutil::sync_dir(path)?;
        drop(lock);

        let store = Store::open(path, Options::existing())?;
        report.replayed_bytes = store.recovery().replayed_bytes;
        store.flush()?;
        store.shared.behaviour.for_each_history(u64::MAX, &mut |_, entries| {
            report.users_with_history += 1;
            report.history_entries += entries.len() as u64;
            Ok(())
        })?;
        let features = store.shared.behaviour.users_with_features();
        let attributes = store.shared.attributes.len();
        report.users_with_features = features;
        report.items_with_attributes = attributes;
        if record.runs.is_some() {
            return Ok(report);
        }
        let at = record.manifest.checkpoint;
        report.lost = vec![
            format!(
                "user histories before the checkpoint (log file {}, byte {}): {} users have histories again, from \
                 the log after it; older events are gone from them",
                at.file_no, at.offset, report.users_with_history
            ),
            format!(
                "user features and item attributes set before the checkpoint ({features} users and {attributes} \
                 items have them again, from the log)"
            ),
            "the trending counts, counted again from the recovered histories".to_string(),
        ];
        Ok(report)
    }
}

/// Writes the new metadata database into `dir` (a fresh directory that
/// becomes `meta/`): the layout, manifest, dead rows and deleted items of
/// the copy, flushed, and then its `CURRENT`.
fn build_metadata(dir: &Path, record: &RecoveryRecord, dead: &[Location]) -> Result<()> {
    let meta = SledMeta::open(dir, false, Options::existing().meta_cache_bytes)?;
    // This build's format: the new metadata holds no registry, so an
    // older build must not take it for its own.
    let config = StoredConfig {
        format_version: FORMAT_VERSION,
        ..record.config.clone()
    };
    // A format-5 copy names no runs: behaviour restarts at its checkpoint.
    let runs = record
        .runs
        .clone()
        .unwrap_or_else(|| RunManifest::empty(record.manifest.next_seq));
    meta.save_layout(&config, &record.spaces, &record.manifest, Some(&runs))?;
    meta.commit(&Commit {
        manifest: &record.manifest,
        retired: &[],
        dropped_segments: &[],
        dead,
        runs: &runs,
    })?;
    meta.save_blocked(&record.blocked)?;
    meta.flush()?;
    drop(meta);
    // `SledMeta::open` wrote `CURRENT` before the records: it names a
    // database that is complete only now, so the directory is only made
    // durable (and moved into place) from here on.
    fsutil::sync_dir(dir)
}

/// The first free `meta.damaged-N` of the store.
fn free_aside_name(path: &Path) -> PathBuf {
    (1u64..)
        .map(|n| path.join(format!("meta.damaged-{n}")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| path.join("meta.damaged"))
}

/// Why the store's metadata is damaged or missing, or None when it opens
/// and every record decodes (then there is nothing for a repair to do,
/// whatever else is wrong). Works on a private copy of the database, as a
/// read-only open does.
fn metadata_damage(path: &Path) -> Option<String> {
    let root = path.join("meta");
    if !root.is_dir() {
        return Some(format!("{} is missing", root.display()));
    }
    let meta = match SledMeta::open_copy(&root, Options::existing().meta_cache_bytes) {
        Ok(meta) => meta,
        Err(e) => return Some(e.to_string()),
    };
    let check = || -> Result<Option<String>> {
        let Some(config) = meta.load_config()? else {
            return Ok(Some("the metadata holds no configuration".into()));
        };
        if config.format_version == 1 {
            if meta.load_manifest_v1()?.is_none() {
                return Ok(Some("the metadata holds no manifest".into()));
            }
        } else {
            if meta.load_spaces()?.is_none() {
                return Ok(Some("the metadata holds no list of spaces".into()));
            }
            let Some(manifest) = meta.load_manifest()? else {
                return Ok(Some("the metadata holds no manifest".into()));
            };
            // Metadata that went back in time (sled recovered an older
            // state from a damaged file) is older than the copy written
            // after its last checkpoint, and may name files a later
            // checkpoint removed.
            if let Ok(Some(copy)) = recovery_file::read(path) {
                if copy.manifest.checkpoint > manifest.checkpoint {
                    return Ok(Some(format!(
                        "the metadata is older than its recovery copy (checkpoint at log file {} byte {}, the copy's \
                         at file {} byte {}): it lost its latest commits",
                        manifest.checkpoint.file_no,
                        manifest.checkpoint.offset,
                        copy.manifest.checkpoint.file_no,
                        copy.manifest.checkpoint.offset
                    )));
                }
            }
            let dir = path.join("segments");
            for space in &manifest.spaces {
                for entry in &space.segments {
                    let file = dir.join(sealed::file_name(entry.id));
                    if !file.exists() {
                        return Ok(Some(format!("the manifest names {}, which is gone", file.display())));
                    }
                }
            }
        }
        meta.dead_rows()?;
        meta.load_blocked()?;
        meta.load_wal_files()?;
        meta.load_trending()?;
        if config.format_version >= RUNS_FORMAT {
            let Some(runs) = meta.load_runs()? else {
                return Ok(Some("the metadata holds no list of run files".into()));
            };
            let dir = path.join(crate::runs::RUNS_DIR);
            for (kind, id) in runs.files() {
                let file = dir.join(crate::runs::file_name(kind, id));
                if !file.exists() {
                    return Ok(Some(format!(
                        "the list of runs names {}, which is gone",
                        file.display()
                    )));
                }
            }
        } else {
            meta.load_legacy_features()?;
            meta.load_legacy_attributes()?;
            meta.for_each_legacy_history(&mut |_, _| Ok(()))?;
        }
        Ok(None)
    };
    match check() {
        Ok(found) => found,
        Err(e) => Some(e.to_string()),
    }
}

/// The refusal of a repair whose metadata is healthy, with what `verify`
/// finds elsewhere (a repair would not fix it).
fn nothing_to_repair(path: &Path) -> Error {
    let problems = Store::open_read_only(path)
        .and_then(|s| s.verify())
        .map(|r| r.problems)
        .unwrap_or_else(|e| vec![e.to_string()]);
    Error::NothingToRepair {
        path: path.to_path_buf(),
        problems,
    }
}

/// Replays the log after the copy's checkpoint without applying it: every
/// frame after the checkpoint must be whole and decode (a torn tail is
/// cut at the open after the repair). Returns the bytes it would replay.
fn check_log(path: &Path, record: &RecoveryRecord) -> Result<u64> {
    let end = crate::wal::replay::replay(
        &path.join("wal"),
        record.manifest.checkpoint,
        None,
        crate::wal::replay::ReplayMode::ReadOnly,
        |_, _| Ok(()),
    )?;
    Ok(end.replayed_bytes)
}

/// Reads every run the copy names whole (a repair that failed at its open,
/// after moving the metadata, would leave the store worse than it found
/// it); returns how many.
fn check_runs(path: &Path, record: &RecoveryRecord) -> Result<usize> {
    let Some(runs) = &record.runs else {
        return Ok(0);
    };
    let dir = path.join(crate::runs::RUNS_DIR);
    let mut checked = 0;
    for (kind, id) in runs.files() {
        let file = dir.join(crate::runs::file_name(kind, id));
        match kind {
            crate::runs::RunKind::Events => {
                crate::runs::event_run::EventRun::open(&file, id)?.verify()?;
            }
            _ => {
                crate::runs::keyed_run::KeyedRun::open(&file, kind, id)?.verify()?;
            }
        }
        checked += 1;
    }
    if let Some(id) = runs.trending {
        crate::store::trending::file::read(&dir, id)?;
        checked += 1;
    }
    Ok(checked)
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
            // Read whole (both checksums, the shapes): a repair that
            // failed at its open, after moving the metadata, would leave
            // the store worse than it found it.
            let path = dir.join(crate::train::state::file_name(trainer.file_id));
            let generation = match space.kind {
                SpaceKind::YoutubeDnn => {
                    crate::train::dnn::state::DnnState::read(&path, space.dim as usize)?.generation
                }
                _ => crate::train::state::TrainerState::read(&path, space.dim as usize)?.generation,
            };
            if generation != trainer.generation {
                return Err(Error::Corruption {
                    file: path,
                    offset: 24,
                    reason: format!("generation {generation}, the recovery copy says {}", trainer.generation),
                });
            }
            checked += 1;
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
