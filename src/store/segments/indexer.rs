//! The background worker that gives sealed segments their Faiss index:
//! loads the index file when it is there and was built with the current
//! spec, or builds the index from the segment's rows and writes the file.
//! Until a segment's index is installed, queries scan that segment exactly,
//! so a row is searchable the moment its write returns.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::error::Result;
use crate::index::ivf_training::IvfTraining;
use crate::index::{file, IndexSpec, SegmentIndex};
use crate::metric::Metric;
use crate::segment::sealed::SealedSegment;

/// Counts of the worker's work since the store was opened.
#[derive(Default)]
pub(crate) struct IndexCounters {
    pub builds: AtomicU64,
    pub loads: AtomicU64,
    pub failures: AtomicU64,
}

/// How the segments of one space are indexed.
#[derive(Debug)]
pub(crate) struct IndexConfig {
    pub spec: IndexSpec,
    pub metric: Metric,
    pub dim: usize,
    pub flat_below: usize,
    /// IVF quantisers: trained on a sample, shared across the space's
    /// segments.
    pub training: IvfTraining,
}

impl IndexConfig {
    /// Whether a segment of `rows` rows gets an index at all.
    fn wants_index(&self, rows: usize) -> bool {
        self.spec != IndexSpec::Flat && rows >= self.flat_below
    }

    /// Builds the index of `segment` from its `rows` and writes its file
    /// in `dir` (None for segments searched exactly, or if `stop` said so).
    fn build(
        &self,
        dir: &Path,
        segment: &SealedSegment,
        rows: &[f32],
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<SegmentIndex>> {
        if !self.wants_index(segment.count()) {
            return Ok(None);
        }
        let Some(built) = SegmentIndex::build(
            self.spec,
            self.metric,
            self.dim,
            segment.id(),
            rows,
            &self.training,
            stop,
        )?
        else {
            return Ok(None);
        };
        let path = dir.join(file::file_name(segment.id()));
        built.save(&path)?;
        // Served from the file just written, as views into its map: the
        // built index holds every row a second time on the heap, which a
        // store of many segments cannot keep (the map's pages are the page
        // cache's, evictable). Reading it back also proves the file.
        drop(built);
        match self.load(&path, segment)? {
            Some(index) => Ok(Some(index)),
            None => Err(crate::error::Error::Index {
                segment: segment.id(),
                reason: "the index file just written does not match its settings".into(),
            }),
        }
    }

    /// Loads the index file at `path` if it was built with these settings.
    fn load(&self, path: &Path, segment: &SealedSegment) -> Result<Option<SegmentIndex>> {
        SegmentIndex::load(
            path,
            self.spec,
            self.metric,
            self.dim,
            segment.id(),
            segment.count(),
            &self.training,
        )
    }
}

/// One segment to index, and how.
type Job = (Arc<SealedSegment>, Arc<IndexConfig>);

struct Pending {
    jobs: Mutex<usize>,
    idle: Condvar,
}

pub(crate) struct Indexer {
    sender: Mutex<Option<Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    pending: Arc<Pending>,
    stop: Arc<AtomicBool>,
    dir: PathBuf,
    pub counters: Arc<IndexCounters>,
}

impl Indexer {
    /// Starts the worker for the segment files in `dir`.
    pub fn start(dir: PathBuf) -> Self {
        let (sender, receiver) = channel::<Job>();
        let pending = Arc::new(Pending {
            jobs: Mutex::new(0),
            idle: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(IndexCounters::default());
        let worker = {
            let (pending, stop, counters, dir) = (pending.clone(), stop.clone(), counters.clone(), dir.clone());
            std::thread::Builder::new()
                .name("emberdb-indexer".into())
                .spawn(move || {
                    // Segments whose index was loaded, not built from their
                    // rows: their bodies are checked once the queue is empty,
                    // so that checking one does not hold up the next load.
                    let mut unchecked: Vec<Arc<SealedSegment>> = Vec::new();
                    for (segment, config) in receiver {
                        let stopping = || stop.load(Ordering::Acquire);
                        if !stopping() && index_segment(&dir, &config, &segment, &counters, &stopping) {
                            unchecked.push(segment);
                        }
                        if *pending.jobs.lock() == 1 {
                            for segment in unchecked.drain(..) {
                                if stopping() {
                                    break;
                                }
                                check_body(&segment);
                            }
                        }
                        let mut jobs = pending.jobs.lock();
                        *jobs -= 1;
                        if *jobs == 0 {
                            pending.idle.notify_all();
                        }
                    }
                })
                .ok()
        };
        Indexer {
            sender: Mutex::new(Some(sender)),
            worker: Mutex::new(worker),
            pending,
            stop,
            dir,
            counters,
        }
    }

    /// Indexes `segment` now, from `rows` (its values), on the caller's
    /// thread: compaction and publishing hand readers indexed segments.
    pub fn index_now(&self, config: &IndexConfig, segment: &SealedSegment, rows: &[f32]) -> Result<()> {
        if let Some(index) = config.build(&self.dir, segment, rows, &|| false)? {
            segment.set_index(index);
            self.counters.builds.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Queues `segment` for indexing as `config` says (a no-op for small
    /// segments or `Flat`).
    pub fn submit(&self, segment: Arc<SealedSegment>, config: &Arc<IndexConfig>) {
        let sender = self.sender.lock();
        let Some(sender) = sender.as_ref() else { return };
        *self.pending.jobs.lock() += 1;
        if sender.send((segment, Arc::clone(config))).is_err() {
            // The worker is gone (it could not be spawned): the segment
            // stays exactly searched.
            *self.pending.jobs.lock() -= 1;
        }
    }

    /// Blocks until every queued segment has been indexed.
    pub fn wait_idle(&self) {
        let mut jobs = self.pending.jobs.lock();
        while *jobs > 0 {
            self.pending.idle.wait(&mut jobs);
        }
    }

    /// Stops the worker: the index being built is abandoned at its next
    /// piece (16,384 rows), queued ones are dropped; they are built again at
    /// the next open.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        self.sender.lock().take();
        if let Some(worker) = self.worker.lock().take() {
            let _ = worker.join();
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Loads the index file of `segment` and installs it, if the file is there
/// and was built with `config`'s settings; builds and writes nothing (a
/// read-only open: segments without a usable file are searched exactly).
pub(crate) fn load_existing(dir: &Path, config: &IndexConfig, segment: &SealedSegment) {
    if !config.wants_index(segment.count()) || segment.index().is_some() {
        return;
    }
    let path = dir.join(file::file_name(segment.id()));
    if path.exists() {
        match config.load(&path, segment) {
            Ok(Some(index)) => segment.set_index(index),
            Ok(None) => log::info!("{}: built with other settings; searching exactly", path.display()),
            Err(e) => log::warn!("{}: unusable ({e}); searching its segment exactly", path.display()),
        }
    }
}

/// Checks the segment's checksums (body and id order) now, in the
/// background, rather than in the first query that reads the segment (a
/// pass over its whole file: seconds for a store of many gigabytes). A body
/// mismatch is logged here and refused again, as `Error::Corruption`, to every query of the segment. A
/// segment whose index was built has been checked already (the build read
/// its rows).
fn check_body(segment: &SealedSegment) {
    // The order of a version-2 file is checked too (and rebuilt, logged,
    // if it fails: see `SealedSegment::order`).
    if let Err(e) = segment.verified().and_then(|()| segment.order().map(drop)) {
        log::error!("{e}");
    }
}

/// Loads or builds the index of one segment and installs it. True when the
/// index was loaded from its file (the segment's body is not checked yet).
fn index_segment(
    dir: &Path,
    config: &IndexConfig,
    segment: &SealedSegment,
    counters: &IndexCounters,
    stop: &dyn Fn() -> bool,
) -> bool {
    if !config.wants_index(segment.count()) || segment.index().is_some() {
        return false;
    }
    let path = dir.join(file::file_name(segment.id()));
    if path.exists() {
        match config.load(&path, segment) {
            Ok(Some(index)) => {
                segment.set_index(index);
                counters.loads.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Ok(None) => log::info!("{}: built with other settings; rebuilding", path.display()),
            Err(e) => log::warn!("{}: unusable ({e}); rebuilding it from its segment", path.display()),
        }
    }
    let built = segment
        .data()
        .and_then(|(_, rows)| config.build(dir, segment, rows, stop));
    match built {
        Ok(Some(index)) => {
            segment.set_index(index);
            counters.builds.fetch_add(1, Ordering::Relaxed);
        }
        Ok(None) => {}
        Err(e) => {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            log::error!(
                "index of segment {} not built ({e}); it is searched exactly",
                segment.id()
            );
        }
    }
    false
}
