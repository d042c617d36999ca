//! The background worker that gives sealed segments their Faiss index:
//! loads the index file when it is there and was built with the current
//! spec, or builds the index from the segment's rows and writes the file.
//! Until a segment's index is installed, queries scan that segment exactly,
//! so a row is searchable the moment its write returns.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::error::Result;
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

/// How segments of this store are indexed.
struct Config {
    dir: PathBuf,
    spec: IndexSpec,
    metric: Metric,
    dim: usize,
    flat_below: usize,
}

impl Config {
    /// Whether a segment of `rows` rows gets an index at all.
    fn wants_index(&self, rows: usize) -> bool {
        self.spec != IndexSpec::Flat && rows >= self.flat_below
    }

    /// Builds the index of `segment` from its `rows` and writes its file
    /// (None for segments searched exactly, or if `stop` said so).
    fn build(&self, segment: &SealedSegment, rows: &[f32], stop: &dyn Fn() -> bool) -> Result<Option<SegmentIndex>> {
        if !self.wants_index(segment.count()) {
            return Ok(None);
        }
        let Some(index) = SegmentIndex::build(self.spec, self.metric, self.dim, segment.id(), rows, stop)? else {
            return Ok(None);
        };
        index.save(&self.dir.join(file::file_name(segment.id())))?;
        Ok(Some(index))
    }
}

struct Pending {
    jobs: Mutex<usize>,
    idle: Condvar,
}

pub(crate) struct Indexer {
    sender: Mutex<Option<Sender<Arc<SealedSegment>>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    pending: Arc<Pending>,
    stop: Arc<AtomicBool>,
    config: Arc<Config>,
    pub counters: Arc<IndexCounters>,
}

impl Indexer {
    pub fn start(dir: PathBuf, spec: IndexSpec, metric: Metric, dim: usize, flat_below: usize) -> Self {
        let (sender, receiver) = channel::<Arc<SealedSegment>>();
        let pending = Arc::new(Pending {
            jobs: Mutex::new(0),
            idle: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(IndexCounters::default());
        let config = Arc::new(Config {
            dir,
            spec,
            metric,
            dim,
            flat_below,
        });
        let worker = {
            let (pending, stop, counters, config) = (pending.clone(), stop.clone(), counters.clone(), config.clone());
            std::thread::Builder::new()
                .name("emberdb-indexer".into())
                .spawn(move || {
                    for segment in receiver {
                        if !stop.load(Ordering::Acquire) {
                            index_segment(&config, &segment, &counters, &|| stop.load(Ordering::Acquire));
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
            config,
            counters,
        }
    }

    /// Indexes `segment` now, from `rows` (its values), on the caller's
    /// thread: compaction and publishing hand readers indexed segments.
    pub fn index_now(&self, segment: &SealedSegment, rows: &[f32]) -> Result<()> {
        if let Some(index) = self.config.build(segment, rows, &|| false)? {
            segment.set_index(index);
            self.counters.builds.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Queues `segment` for indexing (a no-op for small segments or `Flat`).
    pub fn submit(&self, segment: Arc<SealedSegment>) {
        let sender = self.sender.lock();
        let Some(sender) = sender.as_ref() else { return };
        *self.pending.jobs.lock() += 1;
        if sender.send(segment).is_err() {
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

/// Loads or builds the index of one segment and installs it.
fn index_segment(config: &Config, segment: &SealedSegment, counters: &IndexCounters, stop: &dyn Fn() -> bool) {
    if !config.wants_index(segment.count()) || segment.index().is_some() {
        return;
    }
    let path = config.dir.join(file::file_name(segment.id()));
    if path.exists() {
        match SegmentIndex::load(&path, config.spec, config.metric, segment.id(), segment.count()) {
            Ok(Some(index)) => {
                segment.set_index(index);
                counters.loads.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(None) => log::info!("{}: built with other settings; rebuilding", path.display()),
            Err(e) => log::warn!("{}: unusable ({e}); rebuilding it from its segment", path.display()),
        }
    }
    let built = segment.data().and_then(|(_, rows)| config.build(segment, rows, stop));
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
}
