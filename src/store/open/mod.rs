//! Opening a store: lock, layout (spaces) check, segments, recovery.

pub(crate) mod layout;
pub(crate) mod lock;

mod phases;
mod segments;
mod trending;

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, TMP_SUFFIX};
use crate::index::file as index_file;
use crate::index::ivf_training::IvfTraining;
use crate::meta::records::{Manifest, RunManifest, SpaceManifest, RUNS_FORMAT};
use crate::meta::sled_meta::SledMeta;
use crate::meta::MetaStore;
use crate::options::{Options, SpaceSpec};
use crate::runs;
use crate::segment::sealed;
use crate::segment::Location;
use crate::store::behaviour::attributes::ItemAttributes;
use crate::store::behaviour::merger::Merger;
use crate::store::behaviour::orphans::remove_orphan_runs;
use crate::store::behaviour::{upgrade, Behaviour};
use crate::store::open::layout::{Layout, ResolvedSpace};
use crate::store::open::lock::DirLock;
use crate::store::segments::indexer::{self, IndexConfig, Indexer};
use crate::store::space::{Catalog, SpaceState};
use crate::store::state::{GrowingMark, ManifestState, Shared, WriteState};
use crate::store::training;
use crate::store::training::trainer::{Model, ModelOptions, Trainer};
use crate::store::trending::Trending;
use crate::store::write::apply;
use crate::store::write::blocked::Blocked;
use crate::store::Store;
use crate::train::dnn::state::DnnState;
use crate::train::state::{self, TrainerState};
use crate::version::Version;
use crate::wal::replay::{self, ReplayMode};
use crate::wal::tracked::{LogCatalog, TrackedFiles};
use crate::wal::writer::WalWriter;
use phases::Phases;
use segments::{load_growing_snapshot, open_segments};

/// What recovery found, for `Stats` and the tools.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Bytes of log replayed since the last checkpoint.
    pub replayed_bytes: u64,
    /// A torn tail that was cut off: the file and the offset.
    pub truncated_tail: Option<(std::path::PathBuf, u64)>,
    /// Files left by an interrupted operation and removed.
    pub removed_garbage: Vec<std::path::PathBuf>,
    /// Read-only opens: files left by an interrupted operation, which a
    /// writable open would remove; left in place.
    pub leftover_files: Vec<std::path::PathBuf>,
}

/// Whether an open may write to the store's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Write,
    /// `Store::open_read_only`: nothing in the directory is written.
    ReadOnly,
}

/// Registry entries of an older store past which their removal is followed
/// by a rebuild of the metadata (see `open`).
const LEGACY_REBUILD_ENTRIES: u64 = 100_000;

pub(crate) fn open(path: &Path, mut opts: Options, access: Access) -> Result<Store> {
    opts.validate()?;
    let mut phases = Phases::start();
    let read_only = access == Access::ReadOnly;
    if (opts.from_store || read_only) && !path.join("meta").is_dir() {
        return Err(Error::NotAStore {
            path: path.to_path_buf(),
        });
    }
    let wal_dir = path.join("wal");
    let segments_dir = path.join("segments");
    let lock = if read_only {
        // No background work either: it would write index or trainer files.
        opts.background_indexing = false;
        DirLock::acquire_shared(path)?
    } else {
        let fresh_dir = !path.exists();
        std::fs::create_dir_all(path).at(path)?;
        if fresh_dir {
            fsutil::sync_dir(fsutil::parent_of(path))?;
        }
        let lock = DirLock::acquire(path)?;
        for dir in [&wal_dir, &segments_dir] {
            std::fs::create_dir_all(dir).at(dir)?;
        }
        lock
    };

    let has_data = holds_data(&wal_dir)? || holds_data(&segments_dir)? || {
        // Runs alone (their log removed by a checkpoint) are data too: new
        // metadata would make them orphans.
        let runs = path.join(runs::RUNS_DIR);
        runs.is_dir() && holds_data(&runs)?
    };
    let meta: Arc<dyn MetaStore> = if read_only {
        Arc::new(SledMeta::open_copy(&path.join("meta"), opts.meta_cache_bytes)?)
    } else {
        Arc::new(SledMeta::open(&path.join("meta"), has_data, opts.meta_cache_bytes)?)
    };
    phases.end("metadata");
    let config = meta.load_config()?;
    if has_data && config.is_none() {
        // Creating metadata here would make every segment file an orphan.
        return Err(Error::Corruption {
            file: path.join("meta"),
            offset: 0,
            reason:
                "the metadata holds no configuration, but the store holds log or segment files; nothing was changed"
                    .into(),
        });
    }
    if opts.from_store && config.is_none() {
        return Err(Error::NotAStore {
            path: path.to_path_buf(),
        });
    }
    let mut resolved: Layout = layout::resolve(path, &opts, meta.as_ref())?;
    describe_in_options(&mut opts, &resolved.spaces);

    let mut report = RecoveryReport::default();
    // Files the `RECOVERY` copy still names (a crash between a
    // checkpoint's metadata flush and its copy leaves the previous copy)
    // stay until the store has opened and the copy is rewritten below.
    let copy = crate::meta::recovery_file::read(path).ok().flatten();
    if let Some(copy) = &copy {
        // The copy is written after each commit is flushed, so it is never
        // ahead of the metadata unless the metadata lost commits (sled
        // recovered an older state from a damaged file). Opening that
        // state would remove, as leftovers, the files those commits made.
        if copy.manifest.checkpoint > resolved.manifest.checkpoint {
            return Err(Error::Corruption {
                file: path.join("meta"),
                offset: 0,
                reason: format!(
                    "the metadata is older than its recovery copy {} (checkpoint at log file {} byte {}, the \
                     copy's at file {} byte {}): it lost its latest commits; nothing was changed; `Store::repair` \
                     (`ember repair`) rebuilds it from the copy",
                    crate::meta::recovery_file::path(path).display(),
                    resolved.manifest.checkpoint.file_no,
                    resolved.manifest.checkpoint.offset,
                    copy.manifest.checkpoint.file_no,
                    copy.manifest.checkpoint.offset
                ),
            });
        }
    }
    let copied: Vec<u64> = copy
        .as_ref()
        .map(|record| record.manifest.file_ids().collect())
        .unwrap_or_default();
    let copied_runs = copy
        .as_ref()
        .and_then(|record| record.runs.as_ref())
        .map(|runs| runs.file_names())
        .unwrap_or_default();
    let tracked = meta.load_wal_files()?;
    replay::precheck(&wal_dir, resolved.manifest.checkpoint, tracked.as_ref())?;
    remove_orphans(&segments_dir, &resolved.manifest, &copied, access, &mut report)?;
    // Behaviour: a format-6 store names its runs; a new store starts with
    // none; an older store's is moved out of sled now, and committed with
    // the layout below (see `behaviour::upgrade`). A read-only open moves
    // it into its private directory.
    let legacy = config.as_ref().is_some_and(|c| c.format_version < RUNS_FORMAT);
    let runs_dir = match (legacy && read_only, meta.scratch_dir()) {
        (true, Some(scratch)) => scratch.join(runs::RUNS_DIR),
        _ => path.join(runs::RUNS_DIR),
    };
    let stored_runs = meta.load_runs()?;
    remove_orphan_runs(
        &runs_dir,
        stored_runs.as_ref().filter(|_| !legacy),
        &copied_runs,
        read_only && !legacy,
        &mut report.removed_garbage,
        &mut report.leftover_files,
    )?;
    let runs = match (config.is_some(), legacy, stored_runs) {
        (false, _, _) => {
            let runs = RunManifest::empty(resolved.manifest.next_seq);
            resolved.runs = Some(runs.clone());
            runs
        }
        (true, true, _) => {
            let runs = upgrade::legacy_to_runs(meta.as_ref(), &runs_dir, resolved.manifest.next_seq)?;
            resolved.runs = Some(runs.clone());
            runs
        }
        (true, false, Some(runs)) => runs,
        (true, false, None) => {
            return Err(Error::Corruption {
                file: path.join("meta"),
                offset: 0,
                reason: "the metadata of a format-6 store names no run files (key `runs` is missing)".into(),
            })
        }
    };
    phases.end("layout and leftovers");
    let behaviour = Behaviour::open(&runs_dir, &runs, opts.history_len)?;
    phases.end("runs");
    // The trending counts (their file and the map of a million items they
    // make) load on a second thread while this one opens the segments
    // (the trained space's directory is the other map of that size): the
    // two were 200-300 ms each of a reopen at a million items.
    let dead_rows = meta.dead_rows()?;
    let clock = Arc::new(crate::segment::visibility::Clock::default());
    let mut spaces = Vec::with_capacity(resolved.spaces.len());
    let mut snapshot_marks = Vec::with_capacity(resolved.spaces.len());
    let next_seq = resolved.manifest.next_seq;
    let (trending, trending_from_sled) = std::thread::scope(|scope| -> Result<(Trending, bool)> {
        let loading = std::thread::Builder::new()
            .name("emberdb-open-trending".into())
            .spawn_scoped(scope, || {
                trending::load_trending(
                    &runs,
                    &runs_dir,
                    legacy,
                    meta.as_ref(),
                    &behaviour,
                    &opts,
                    read_only,
                    next_seq,
                )
            })
            .at(path)?;
        for space in &resolved.spaces {
            let files = &resolved.manifest.spaces[space.number as usize];
            let (state, mark) = open_space(&segments_dir, &opts, space.clone(), files, &dead_rows, &clock)?;
            spaces.push(state);
            snapshot_marks.push(mark);
        }
        phases.end("segments");
        let loaded = loading.join().map_err(|_| Error::Corruption {
            file: runs_dir.clone(),
            offset: 0,
            reason: "loading the trending counts failed (the thread panicked)".into(),
        })?;
        phases.end("trending counts (beside the segments)");
        loaded
    })?;
    // Every space's files opened: now the layout may change on disk (in a
    // read-only open, only in the private copy of the metadata).
    resolved.save(meta.as_ref())?;
    // Stores before format 5 kept an item registry (and compaction's
    // forwards) in the metadata; items are found through the segments' id
    // orders now. Removed after the format number moved to 5 (saved and
    // flushed just above), so that no crash leaves a store an older build
    // would open without its registry. Not flushed: a crash brings the
    // entries back, and the next open removes them again. sled keeps the
    // space of deleted keys (and its open time grows with its pages), so a
    // large registry is followed by a rebuild of the metadata. A read-only
    // open works on a private copy and leaves this to the next open for
    // writing.
    if !read_only && meta.drop_legacy_locations()? + meta.drop_legacy_behaviour()? >= LEGACY_REBUILD_ENTRIES {
        meta.rebuild()?;
    }
    let manifest = resolved.manifest;
    phases.end("layout saved");

    let blocked = Blocked::load(Arc::clone(&meta))?;
    phases.end("blocklist");
    let attributes = ItemAttributes::load(&behaviour)?;
    phases.end("attribute postings");
    let shared = Arc::new(Shared {
        path: path.to_path_buf(),
        wal_dir: wal_dir.clone(),
        segments_dir: segments_dir.clone(),
        blocked,
        attributes,
        trending,
        behaviour,
        merge_signal: Arc::default(),
        indexer: Indexer::start(segments_dir.clone()),
        spaces,
        meta,
        opts: opts.clone(),
        read_only,
        clock,
    });
    if trending_from_sled && !read_only {
        // Into a file at the next checkpoint (the sled record is gone).
        shared.trending.mark_dirty();
    }
    let mut core = ManifestState {
        // Runs flushed since the checkpoint hold events past it.
        next_seq: manifest.next_seq.max(runs.through_seq),
        runs,
        manifest: manifest.clone(),
        snapshot_marks,
    };
    for space in &shared.spaces {
        for segment in &space.catalog.version.load().sealed {
            if read_only {
                indexer::load_existing(&segments_dir, &space.indexing, segment);
            } else if opts.background_indexing {
                shared.indexer.submit(Arc::clone(segment), &space.indexing);
            }
        }
    }
    let mode = if read_only {
        ReplayMode::ReadOnly
    } else {
        ReplayMode::Recover
    };
    phases.end("indexes queued");
    let end = replay::replay(
        &wal_dir,
        manifest.checkpoint,
        tracked.as_ref(),
        mode,
        |start, record| apply::apply_record(&shared, &mut core, start, record),
    )?;
    // Deleted items stay out of every trained generation (their rows are
    // killed in memory at each install, and so again here).
    for space in shared.trained_spaces() {
        shared.blocked.kill_in(&space.catalog.version.load());
    }
    phases.end("log replay");
    report.replayed_bytes = end.replayed_bytes;
    report.truncated_tail = end.truncated;
    let wal = if read_only {
        report.leftover_files.extend(end.removed);
        WalWriter::read_only(path, &wal_dir, end.end)?
    } else {
        report.removed_garbage.extend(end.removed);
        WalWriter::open(
            &wal_dir,
            (end.end.file_no, end.end.offset),
            opts.durability,
            opts.wal_file_bytes,
            Arc::new(MetaLogCatalog(Arc::clone(&shared.meta))),
            end.files,
        )?
    };
    for trainer in shared.trained_spaces().filter_map(|s| s.trainer.as_ref()) {
        trainer.count_untrained_after_open(core.next_seq);
    }
    if !read_only {
        // The metadata opened and the log replayed over it: copy it for
        // `Store::repair`, then remove what only the old copy named.
        crate::meta::recovery_file::write_from(path, shared.meta.as_ref())?;
        if !copied.is_empty() {
            remove_orphans(&segments_dir, &core.manifest, &[], access, &mut report)?;
        }
        if !copied_runs.is_empty() {
            remove_orphan_runs(
                &runs_dir,
                Some(&core.runs),
                &[],
                read_only,
                &mut report.removed_garbage,
                &mut report.leftover_files,
            )?;
        }
    }
    phases.end("recovery copy");
    let sync = wal.shared();
    let write = Arc::new(Mutex::new(WriteState {
        checkpointed_at: wal.end(),
        core,
        wal,
        payload: Vec::new(),
        frames: Vec::new(),
        meta: Arc::clone(&shared.meta),
    }));
    let merger = if read_only || opts.merge_threads == 0 {
        None
    } else {
        Some(Merger::start(
            Arc::clone(&shared),
            Arc::clone(&write),
            opts.merge_threads,
        )?)
    };
    let background = if read_only {
        None
    } else {
        training::spawn_background(Arc::clone(&shared), Arc::clone(&write))
    };
    phases.end("background threads");
    phases.log(path);
    let life = Arc::new(crate::store::Lifetime {
        shared: Arc::clone(&shared),
        write: Arc::clone(&write),
        background: Mutex::new(background),
        merger: Mutex::new(merger),
        crash_on_drop: std::sync::atomic::AtomicBool::new(false),
        _lock: lock,
    });
    Ok(Store {
        compaction: Arc::new(Mutex::new(())),
        write,
        sync,
        shared,
        recovery: Arc::new(report),
        life,
    })
}

/// The log writer records its files in the metadata.
struct MetaLogCatalog(Arc<dyn MetaStore>);

impl LogCatalog for MetaLogCatalog {
    fn record(&self, files: &TrackedFiles) -> Result<()> {
        self.0.save_wal_files(files)
    }
}

/// Opens one space: its segments, its growing segment as of the checkpoint
/// (and the mark saying that its snapshot holds it), its trainer and, for a
/// trained space, the directory of its rows.
fn open_space(
    dir: &Path,
    opts: &Options,
    space: ResolvedSpace,
    files: &SpaceManifest,
    dead_rows: &[Location],
    clock: &Arc<crate::segment::visibility::Clock>,
) -> Result<(SpaceState, Option<GrowingMark>)> {
    let row_dim = space.kind.row_dim(space.dim);
    let sealed = open_segments(dir, files, row_dim)?;
    let growing = load_growing_snapshot(dir, files, row_dim, opts.segment_rows)?;
    let mark = files.growing.as_ref().map(|_| GrowingMark::of(&growing));
    let trainer_path = files.trainer.map(|t| dir.join(state::file_name(t.file_id)));
    let model: Option<(ModelOptions, Model)> = match (&space.train, &space.dnn) {
        (Some(train), _) => {
            let model = match &trainer_path {
                Some(path) => Model::Item2vecStored {
                    path: path.clone(),
                    dim: space.dim,
                    summary: TrainerState::read_summary(path, space.dim)?,
                },
                None => Model::Item2vec(Arc::new(TrainerState::empty(space.dim))),
            };
            Some((ModelOptions::Item2vec(train.clone()), model))
        }
        (None, Some(dnn)) => {
            let state = match &trainer_path {
                Some(path) => DnnState::read(path, space.dim)?,
                None => DnnState::empty(space.dim, dnn),
            };
            Some((ModelOptions::Dnn(dnn.clone()), Model::Dnn(Arc::new(state))))
        }
        (None, None) => None,
    };
    let serving = match &model {
        Some((_, Model::Dnn(state))) => Some(Arc::clone(state)),
        _ => None,
    };
    let (trainer, directory) = match model {
        None => (None, None),
        Some((options, model)) => {
            let rows: usize = sealed.iter().map(|s| s.count()).sum();
            let mut directory = crate::idmap::with_capacity(rows);
            // From each segment's id order (its own crc, an eighth of the
            // file at dim 64), not its id column, whose crc covers the rows
            // too: 240 ms of open at a million items. Equal ids come by
            // row, so the last row of an id wins, as row by row.
            for segment in &sealed {
                let order = segment.order()?;
                for (id, row) in order.ids.iter().zip(order.rows) {
                    if *row as usize >= segment.count() {
                        return Err(Error::Corruption {
                            file: segment.path().to_path_buf(),
                            offset: 0,
                            reason: format!("id order names row {row} of {} rows", segment.count()),
                        });
                    }
                    directory.insert(
                        *id,
                        Location {
                            segment: segment.id(),
                            row: *row,
                        },
                    );
                }
            }
            (Some(Trainer::new(options, model)), Some(Arc::new(directory)))
        }
    };
    let version = Version {
        sealed,
        growing: Arc::new(growing),
        directory,
        model: serving,
    };
    for at in dead_rows {
        if let Some(segment) = version.segment(at.segment) {
            segment.dead().kill(at.row as usize);
        }
    }
    let indexing = Arc::new(IndexConfig {
        spec: space.index,
        metric: space.metric,
        dim: row_dim,
        flat_below: opts.flat_below,
        training: IvfTraining::new(opts.ivf_points_per_list, opts.share_ivf_centroids),
    });
    let state = SpaceState {
        number: space.number,
        name: space.name,
        dim: row_dim,
        model_dim: space.dim,
        metric: space.metric,
        kind: space.kind,
        indexing,
        catalog: Catalog::new(space.number, version, Arc::clone(clock)),
        trainer,
    };
    Ok((state, mark))
}

/// Makes `opts` (what `Store::options` returns) say what the store runs:
/// the default space's settings, and every other space's spec.
fn describe_in_options(opts: &mut Options, spaces: &[ResolvedSpace]) {
    let default = &spaces[0];
    opts.dim = default.dim;
    opts.metric = default.metric;
    opts.index = default.index;
    opts.train = default.train.clone();
    opts.from_store = false;
    opts.spaces = spaces[1..]
        .iter()
        .map(|s| {
            let spec = SpaceSpec {
                dim: s.dim,
                metric: s.metric,
                kind: s.kind,
                index: Some(s.index),
                train: s.train.clone(),
                dnn: s.dnn.clone(),
            };
            (s.name.clone(), spec)
        })
        .collect();
}

/// Whether `dir` holds any file: a store whose log or segment directory
/// holds files was created, so it must have metadata.
fn holds_data(dir: &Path) -> Result<bool> {
    for entry in std::fs::read_dir(dir).at(dir)? {
        if entry.at(dir)?.file_type().at(dir)?.is_file() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Removes the files in the segment directory that no space of the manifest
/// names (left by a seal, compaction or round that crashed before its
/// manifest was durable, or made obsolete by one).
/// A read-only open only lists them (`leftover_files`).
fn remove_orphans(
    dir: &Path,
    manifest: &Manifest,
    keep: &[u64],
    access: Access,
    report: &mut RecoveryReport,
) -> Result<()> {
    let live: std::collections::HashSet<u64> = manifest.file_ids().chain(keep.iter().copied()).collect();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let known = sealed::parse_name(&name)
            .or_else(|| index_file::parse_name(&name))
            .or_else(|| state::parse_name(&name));
        let orphan = match known {
            Some(id) => !live.contains(&id),
            None => name.ends_with(TMP_SUFFIX),
        };
        if orphan && access == Access::ReadOnly {
            report.leftover_files.push(entry.path());
        } else if orphan {
            std::fs::remove_file(entry.path()).at(&entry.path())?;
            report.removed_garbage.push(entry.path());
        }
    }
    Ok(())
}
