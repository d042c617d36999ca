//! Opening a store: lock, configuration check, segments, recovery.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::apply;
use super::history::Histories;
use super::indexer::Indexer;
use super::lock::DirLock;
use super::state::{Catalog, ManifestState, Shared, WriteState};
use super::trainer::Trainer;
use super::training;
use super::Store;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, TMP_SUFFIX};
use crate::index::file as index_file;
use crate::meta::records::{Manifest, StoredConfig, FORMAT_VERSION};
use crate::meta::sled_meta::SledMeta;
use crate::meta::MetaStore;
use crate::options::Options;
use crate::segment::growing::GrowingSegment;
use crate::segment::sealed::{self, SealedSegment};
use crate::segment::Location;
use crate::train::state::{self, TrainerState};
use crate::version::Version;
use crate::wal::replay;
use crate::wal::writer::WalWriter;

/// What recovery found, for `Stats` and the tools.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// Bytes of log replayed since the last checkpoint.
    pub replayed_bytes: u64,
    /// A torn tail that was cut off: the file and the offset.
    pub truncated_tail: Option<(std::path::PathBuf, u64)>,
    /// Files left by an interrupted operation and removed.
    pub removed_garbage: Vec<std::path::PathBuf>,
}

pub(crate) fn open(path: &Path, mut opts: Options) -> Result<Store> {
    opts.validate()?;
    if opts.from_store && !path.join("meta").is_dir() {
        return Err(Error::NotAStore {
            path: path.to_path_buf(),
        });
    }
    let fresh_dir = !path.exists();
    std::fs::create_dir_all(path).at(path)?;
    if fresh_dir {
        fsutil::sync_dir(fsutil::parent_of(path))?;
    }
    let lock = DirLock::acquire(path)?;
    let wal_dir = path.join("wal");
    let segments_dir = path.join("segments");
    for dir in [&wal_dir, &segments_dir] {
        std::fs::create_dir_all(dir).at(dir)?;
    }

    let has_data = holds_data(&wal_dir)? || holds_data(&segments_dir)?;
    let meta: Arc<dyn MetaStore> = Arc::new(SledMeta::open(&path.join("meta"), has_data, opts.meta_cache_bytes)?);
    if has_data && meta.load_config()?.is_none() {
        // Creating metadata here would make every segment file an orphan.
        return Err(Error::Corruption {
            file: path.join("meta"),
            offset: 0,
            reason:
                "the metadata holds no configuration, but the store holds log or segment files; nothing was changed"
                    .into(),
        });
    }
    if opts.from_store {
        let stored = meta.load_config()?.ok_or_else(|| Error::NotAStore {
            path: path.to_path_buf(),
        })?;
        opts.dim = stored.dim as usize;
        opts.metric = stored.metric;
        if stored.trained && opts.train.is_none() {
            opts.train = Some(crate::train::TrainOptions::default());
        }
    }
    let manifest = check_config(path, &opts, meta.as_ref())?;

    let mut report = RecoveryReport::default();
    let sealed = open_segments(&segments_dir, &manifest, opts.dim, &mut report)?;
    let growing = load_growing_snapshot(&segments_dir, &manifest, opts.dim, opts.segment_rows)?;
    let (trainer, directory) = match &opts.train {
        None => (None, None),
        Some(train) => {
            let state = match &manifest.trainer {
                Some(t) => TrainerState::read(&segments_dir.join(state::file_name(t.file_id)), opts.dim)?,
                None => TrainerState::empty(opts.dim),
            };
            let mut directory = HashMap::new();
            for segment in &sealed {
                let (ids, _) = segment.data()?;
                for (row, id) in ids.iter().enumerate() {
                    directory.insert(
                        *id,
                        Location {
                            segment: segment.id(),
                            row: row as u32,
                        },
                    );
                }
            }
            (Some(Trainer::new(train.clone(), state)), Some(Arc::new(directory)))
        }
    };
    let forwards = meta.load_forwards()?.into_iter().map(|f| (f.from, f)).collect();
    let version = Version {
        sealed,
        growing: Arc::new(growing),
        directory,
        forwards: Arc::new(forwards),
    };
    for at in meta.dead_rows()? {
        if let Some(segment) = version.segment(at.segment) {
            segment.dead().kill(at.row as usize);
        }
    }

    let shared = Arc::new(Shared {
        path: path.to_path_buf(),
        wal_dir: wal_dir.clone(),
        segments_dir: segments_dir.clone(),
        histories: Histories::new(Arc::clone(&meta), opts.history_len, opts.history_cache_bytes),
        indexer: Indexer::start(segments_dir.clone(), opts.index, opts.metric, opts.dim, opts.flat_below),
        catalog: Catalog::new(version, Arc::clone(&meta)),
        meta,
        trainer,
        opts: opts.clone(),
    });
    let mut core = ManifestState {
        next_seq: manifest.next_seq,
        manifest: manifest.clone(),
    };
    for segment in &shared.catalog.version.load().sealed {
        shared.indexer.submit(Arc::clone(segment));
    }
    let end = replay::replay(&wal_dir, manifest.checkpoint, |start, record| {
        apply::apply_record(&shared, &mut core, start, record)
    })?;
    report.replayed_bytes = end.replayed_bytes;
    report.truncated_tail = end.truncated;
    let wal = WalWriter::open(
        &wal_dir,
        end.end.file_no,
        end.end.offset,
        opts.durability,
        opts.wal_file_bytes,
    )?;
    if let Some(trainer) = &shared.trainer {
        trainer.count_untrained_after_open(core.next_seq);
    }
    let sync = wal.shared();
    let write = Arc::new(Mutex::new(WriteState {
        checkpointed_at: wal.end(),
        core,
        wal,
        payload: Vec::new(),
        frames: Vec::new(),
        meta: Arc::clone(&shared.meta),
    }));
    Ok(Store {
        background: training::spawn_background(Arc::clone(&shared), Arc::clone(&write)),
        compaction: Mutex::new(()),
        write,
        sync,
        shared,
        recovery: report,
        crash_on_drop: false,
        _lock: lock,
    })
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

/// Checks (or, for a new store, writes) the configuration; returns the manifest.
fn check_config(path: &Path, opts: &Options, meta: &dyn MetaStore) -> Result<Manifest> {
    match meta.load_config()? {
        None => {
            meta.save_config(&StoredConfig {
                format_version: FORMAT_VERSION,
                dim: opts.dim as u32,
                metric: opts.metric,
                trained: opts.train.is_some(),
            })?;
            let manifest = Manifest::default();
            meta.save_manifest(&manifest)?;
            meta.flush()?;
            Ok(manifest)
        }
        Some(stored) => {
            if stored.format_version > FORMAT_VERSION {
                return Err(Error::NewerFormat {
                    path: path.to_path_buf(),
                    found: stored.format_version,
                    supported: FORMAT_VERSION,
                });
            }
            if stored.dim as usize != opts.dim {
                return Err(Error::ConfigMismatch {
                    path: path.to_path_buf(),
                    field: "dim",
                    stored: stored.dim.to_string(),
                    requested: opts.dim.to_string(),
                });
            }
            if stored.metric != opts.metric {
                return Err(Error::ConfigMismatch {
                    path: path.to_path_buf(),
                    field: "metric",
                    stored: format!("{:?}", stored.metric),
                    requested: format!("{:?}", opts.metric),
                });
            }
            if stored.trained != opts.train.is_some() {
                let kind = |trained: bool| if trained { "trained" } else { "host-fed" }.to_string();
                return Err(Error::ConfigMismatch {
                    path: path.to_path_buf(),
                    field: "vectors",
                    stored: kind(stored.trained),
                    requested: kind(opts.train.is_some()),
                });
            }
            meta.load_manifest()?.ok_or_else(|| Error::Corruption {
                file: path.join("meta"),
                offset: 0,
                reason: "the configuration is there but the manifest is missing".into(),
            })
        }
    }
}

/// Opens the manifest's segments and removes files no manifest names (left
/// by a seal or compaction that crashed before its manifest was durable).
fn open_segments(
    dir: &Path,
    manifest: &Manifest,
    dim: usize,
    report: &mut RecoveryReport,
) -> Result<Vec<Arc<SealedSegment>>> {
    let live: std::collections::HashSet<u64> = manifest
        .segments
        .iter()
        .chain(&manifest.growing)
        .map(|s| s.id)
        .chain(manifest.trainer.map(|t| t.file_id))
        .collect();
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
        if orphan {
            std::fs::remove_file(entry.path()).at(&entry.path())?;
            report.removed_garbage.push(entry.path());
        }
    }
    let mut segments = Vec::with_capacity(manifest.segments.len());
    for entry in &manifest.segments {
        let path = dir.join(sealed::file_name(entry.id));
        let segment = SealedSegment::open(&path, entry.id, dim)?;
        if segment.count() as u64 != entry.rows {
            return Err(Error::Corruption {
                file: path,
                offset: 16,
                reason: format!(
                    "segment holds {} rows, the manifest says {}",
                    segment.count(),
                    entry.rows
                ),
            });
        }
        segments.push(Arc::new(segment));
    }
    segments.sort_by_key(|s| s.id());
    Ok(segments)
}

/// The growing segment as of the checkpoint: the manifest's snapshot loaded
/// back into memory (checksum verified first), or an empty segment.
fn load_growing_snapshot(dir: &Path, manifest: &Manifest, dim: usize, segment_rows: usize) -> Result<GrowingSegment> {
    let Some(entry) = &manifest.growing else {
        return Ok(GrowingSegment::new(dim, segment_rows));
    };
    let path = dir.join(sealed::snapshot_file_name(entry.id));
    let snapshot = SealedSegment::open(&path, entry.id, dim)?;
    let (ids, values) = snapshot.data()?;
    // Room for every snapshot row even if `segment_rows` shrank since.
    let growing = GrowingSegment::new(dim, segment_rows.max(ids.len()));
    for (id, row) in ids.iter().zip(values.chunks_exact(dim)) {
        growing.push(*id, row);
    }
    Ok(growing)
}
