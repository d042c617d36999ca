//! The public facade: [`Store`]. Writes go through one write lock (log,
//! then apply, in the same order replay will use), release it, and then wait
//! for durability in the group commit. Reads load the current [`Version`]
//! and never take the write lock.

pub(crate) mod apply;
pub(crate) mod compact;
pub(crate) mod history;
pub(crate) mod indexer;
pub(crate) mod install;
pub(crate) mod lock;
pub(crate) mod lookup;
pub(crate) mod open;
pub(crate) mod publish;
pub(crate) mod seal;
pub(crate) mod snapshot;
pub(crate) mod state;
pub(crate) mod trainer;
pub(crate) mod training;
pub(crate) mod verify;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::durability::Durability;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::options::Options;
use crate::query::plan::{self, Space};
use crate::query::{Hit, Query};
use crate::train::TrainReport;
use crate::validate;
use crate::wal::record::{self, EVENT_BYTES};
use crate::wal::writer::SyncShared;
use crate::wal::{frame, Position};
pub use compact::CompactReport;
use lock::DirLock;
pub use open::RecoveryReport;
pub use snapshot::{restore, SnapshotInfo};
use state::{Shared, WriteState};
pub use trainer::TrainerStats;
pub use training::RoundKind;
pub use verify::VerifyReport;

/// Events per log record: keeps a frame well under `frame::MAX_PAYLOAD`.
const EVENTS_PER_RECORD: usize = (frame::MAX_PAYLOAD - 64) / EVENT_BYTES / 2;

/// Counts of what a store holds and occupies.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Rows in all segments, including dead (deleted or superseded) ones.
    pub rows: usize,
    /// Rows that queries can return.
    pub live_rows: usize,
    /// Sealed (file-backed) segments.
    pub sealed_segments: usize,
    /// Rows in the growing (in-memory, logged) segment.
    pub growing_rows: usize,
    /// Bytes of write-ahead log on disk.
    pub wal_bytes: u64,
    /// Bytes of sealed segment files.
    pub segment_bytes: u64,
    /// Bytes of the metadata store.
    pub meta_bytes: u64,
    /// All bytes under the store directory.
    pub disk_bytes: u64,
    /// fsyncs of the log since the store was opened (group commit makes
    /// this far smaller than the number of synced writes).
    pub wal_fsyncs: u64,
    /// Sealed segments whose Faiss index is in use, and a short
    /// description of each segment's search (`hnsw32`, `ivf894`, `exact`).
    pub indexed_segments: usize,
    pub segment_kinds: Vec<String>,
    /// Indexes built, and index files loaded, since the store was opened.
    pub index_builds: u64,
    pub index_loads: u64,
    /// Index builds that failed since the store was opened (logged; those
    /// segments are searched exactly).
    pub index_failures: u64,
    /// Trained stores: the generation, vocabulary and rounds.
    pub trainer: Option<TrainerStats>,
    /// User histories held in memory and their bytes (bounded by
    /// `Options::history_cache_bytes`).
    pub cached_histories: usize,
    pub cached_history_bytes: usize,
    /// The instruction set the distance and training kernels run on,
    /// chosen at run time from the CPU (`avx2+fma`, `portable`).
    pub kernels: &'static str,
    /// What the linked Faiss was compiled for, in Faiss's words (`OPTIMIZE
    /// AVX512`, `OPTIMIZE AVX2`, or `OPTIMIZE GENERIC` for a build without
    /// `-march`: see the README, "Faiss flags").
    pub faiss_build: String,
}

/// An embedded vector store. See the crate documentation.
pub struct Store {
    shared: Arc<Shared>,
    write: Arc<Mutex<WriteState>>,
    /// One compaction at a time.
    compaction: Mutex<()>,
    /// The background trainer (trained stores with a policy).
    background: Option<std::thread::JoinHandle<()>>,
    sync: Arc<SyncShared>,
    recovery: RecoveryReport,
    crash_on_drop: bool,
    // Dropped last: the directory stays locked until everything is closed.
    _lock: DirLock,
}

impl Store {
    /// Creates a store at `path`, or opens (and recovers) the one there.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Store> {
        open::open(path.as_ref(), opts)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &Options {
        &self.shared.opts
    }

    /// What recovery did when the store was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Records one event durably (per the store's `Durability`).
    pub fn append_event(&self, event: Event) -> Result<()> {
        self.append_events(std::slice::from_ref(&event))
    }

    /// Records a batch of events with one log write and one fsync. Batches
    /// above about a million events are logged as several records.
    pub fn append_events(&self, events: &[Event]) -> Result<()> {
        validate::check_events(events)?;
        if events.is_empty() {
            return Ok(());
        }
        let end = {
            let _in_flight = self.begin_write();
            let mut w = self.write.lock();
            let mut end = w.wal.end();
            for chunk in events.chunks(EVENTS_PER_RECORD) {
                let seq = w.core.next_seq;
                (_, end) = w.log(|out| record::encode_events(out, seq, chunk))?;
                w.core.next_seq += chunk.len() as u64;
                for (i, event) in chunk.iter().enumerate() {
                    self.shared.histories.append(seq + i as u64, event)?;
                }
            }
            if self.shared.histories.over_budget() {
                // Their log records reach the OS first (see `Histories`).
                w.wal.write_pending()?;
                self.shared.histories.evict_to_budget()?;
            }
            if let Some(trainer) = &self.shared.trainer {
                trainer
                    .events_since_round
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                for (id, vector) in training::provisional_vectors(&self.shared, events)? {
                    end = self.log_upsert(&mut w, id, &vector)?;
                }
            }
            self.maybe_checkpoint(&mut w)?;
            end
        };
        self.wait_durable(end)
    }

    /// Inserts or replaces the vector of `id`. It is searchable when this
    /// returns.
    pub fn upsert(&self, id: u64, vector: &[f32]) -> Result<()> {
        self.refuse_if_trained("upsert")?;
        let opts = &self.shared.opts;
        let vector = validate::prepare_vector(opts.metric, opts.dim, vector, || format!("item {id}"))?;
        let end = {
            let _in_flight = self.begin_write();
            let mut w = self.write.lock();
            let end = self.log_upsert(&mut w, id, &vector)?;
            self.maybe_checkpoint(&mut w)?;
            end
        };
        self.wait_durable(end)
    }

    /// Logs and applies an upsert of a validated vector; returns the log end.
    fn log_upsert(&self, w: &mut WriteState, id: u64, vector: &[f32]) -> Result<Position> {
        let seq = w.core.next_seq;
        let (start, end) = w.log(|out| record::encode_upsert(out, seq, id, vector))?;
        w.core.next_seq += 1;
        if self.shared.catalog.version.load().growing.is_full() {
            // Sealing checkpoints up to this record: its bytes must be in
            // the file before the checkpoint names a later position.
            w.wal.write_pending()?;
        }
        apply::apply_upsert(&self.shared, &mut w.core, start, id, vector)?;
        Ok(end)
    }

    fn refuse_if_trained(&self, operation: &'static str) -> Result<()> {
        match self.shared.trainer {
            Some(_) => Err(Error::TrainedStore {
                path: self.shared.path.clone(),
                operation,
            }),
            None => Ok(()),
        }
    }

    /// Trains one round on the events that arrived since the last one
    /// (incremental, warm-started; or a full retrain if the options ask for
    /// it, or the store was never trained) and publishes the new generation
    /// of item vectors. Readers keep answering from the old generation until
    /// the new one is swapped in whole. Returns at once, with the current
    /// generation, when nothing is new.
    pub fn train(&self) -> Result<TrainReport> {
        training::round(&self.shared, &self.write, RoundKind::Incremental, &|_| {})
    }

    /// Retrains from scratch on every history, then publishes.
    pub fn train_full(&self) -> Result<TrainReport> {
        training::round(&self.shared, &self.write, RoundKind::Full, &|_| {})
    }

    /// `train` ([`RoundKind::Incremental`]) or `train_full`
    /// ([`RoundKind::Full`]), calling `progress` with the fraction done.
    pub fn train_with_progress(&self, kind: RoundKind, progress: &(dyn Fn(f64) + Sync)) -> Result<TrainReport> {
        training::round(&self.shared, &self.write, kind, progress)
    }

    /// Deletes `id`. Returns false (and logs nothing) if it was not there.
    pub fn delete(&self, id: u64) -> Result<bool> {
        self.refuse_if_trained("delete")?;
        let end = {
            let _in_flight = self.begin_write();
            let mut w = self.write.lock();
            if !self.contains(id)? {
                return Ok(false);
            }
            let seq = w.core.next_seq;
            let (_, end) = w.log(|out| record::encode_delete(out, seq, id))?;
            w.core.next_seq += 1;
            apply::apply_delete(&self.shared, id)?;
            self.maybe_checkpoint(&mut w)?;
            end
        };
        self.wait_durable(end)?;
        Ok(true)
    }

    fn contains(&self, id: u64) -> Result<bool> {
        Ok(self.shared.catalog.version.load().growing.row_of(id).is_some()
            || self.shared.catalog.sealed_location(id)?.is_some())
    }

    /// The stored vector of `id` (normalised under cosine), if it is live.
    pub fn get(&self, id: u64) -> Result<Option<Vec<f32>>> {
        lookup::get(&self.shared, id)
    }

    /// Every live item id (sealed segments in id order, then the growing
    /// segment), as of the current version.
    pub fn ids(&self) -> Result<Vec<u64>> {
        let version = self.shared.catalog.version.load_full();
        let mut out = Vec::with_capacity(version.live_rows());
        for segment in &version.sealed {
            let (ids, _) = segment.data()?;
            out.extend(
                ids.iter()
                    .enumerate()
                    .filter(|(r, _)| !segment.dead().is_dead(*r))
                    .map(|(_, id)| *id),
            );
        }
        version.growing.for_each_chunk(|first, ids, _| {
            out.extend(
                ids.iter()
                    .enumerate()
                    .filter(|(r, _)| !version.growing.dead().is_dead(first + r))
                    .map(|(_, id)| *id),
            );
        });
        Ok(out)
    }

    /// The user's most recent items (up to `history_len`), oldest first.
    pub fn history(&self, user: u64) -> Result<Vec<u64>> {
        self.shared.histories.items(user)
    }

    /// The nearest neighbours for `query`, nearest first. Never waits for
    /// writers: it searches the version current when it starts.
    pub fn knn(&self, query: &Query) -> Result<Vec<Hit>> {
        let shared = &*self.shared;
        let version = shared.catalog.version.load_full();
        let space = Space {
            metric: shared.opts.metric,
            dim: shared.opts.dim,
        };
        plan::knn(shared, &version, space, query)
    }

    /// Makes every earlier write durable and checkpoints, so that reopening
    /// replays little.
    pub fn flush(&self) -> Result<()> {
        let mut w = self.write.lock();
        w.wal.sync_all()?;
        // A checkpoint frees whole log files only: start a new one so the
        // bytes before the checkpoint can go.
        w.wal.rotate_if_above(1 << 20)?;
        w.checkpoint_at_end(|core, end| seal::checkpoint(&self.shared, core, end))
    }

    /// Seals the growing segment into a file now, instead of when it fills.
    pub fn seal(&self) -> Result<()> {
        let mut w = self.write.lock();
        w.checkpoint_at_end(|core, end| seal::seal(&self.shared, core, end))
    }

    /// Blocks until every sealed segment queued for indexing has its index
    /// (built or loaded). Queries never need this: unindexed segments are
    /// searched exactly.
    pub fn wait_for_indexes(&self) {
        self.shared.indexer.wait_idle();
    }

    /// Counts of rows, segments and bytes.
    pub fn stats(&self) -> Result<Stats> {
        let version = self.shared.catalog.version.load_full();
        let counters = &self.shared.indexer.counters;
        let wal_bytes = crate::fsutil::dir_size(&self.shared.wal_dir)?;
        let (cached_histories, cached_history_bytes) = self.shared.histories.cached();
        let segment_bytes = version.sealed.iter().map(|s| s.file_bytes()).sum();
        Ok(Stats {
            rows: version.rows(),
            live_rows: version.live_rows(),
            sealed_segments: version.sealed.len(),
            growing_rows: version.growing.len(),
            wal_bytes,
            segment_bytes,
            meta_bytes: self.shared.meta.disk_bytes()?,
            disk_bytes: crate::fsutil::dir_size(&self.shared.path)?,
            wal_fsyncs: self.sync.fsync_count(),
            indexed_segments: version.sealed.iter().filter(|s| s.index().is_some()).count(),
            segment_kinds: version
                .sealed
                .iter()
                .map(|s| s.index().map_or_else(|| "exact".to_string(), |i| i.describe()))
                .collect(),
            index_builds: counters.builds.load(Ordering::Relaxed),
            index_loads: counters.loads.load(Ordering::Relaxed),
            index_failures: counters.failures.load(Ordering::Relaxed),
            trainer: self.shared.trainer.as_ref().map(|t| t.stats()),
            cached_histories,
            cached_history_bytes,
            kernels: crate::kernels::simd_level().name(),
            faiss_build: crate::index::faiss_compile_options(),
        })
    }

    /// Closes the store like a crash would: no checkpoint, no final flush of
    /// buffered log bytes. For recovery tests.
    #[doc(hidden)]
    pub fn close_without_checkpoint(mut self) {
        self.crash_on_drop = true;
    }

    fn maybe_checkpoint(&self, w: &mut WriteState) -> Result<()> {
        let end = w.wal.end();
        let since = if end.file_no == w.checkpointed_at.file_no {
            end.offset.saturating_sub(w.checkpointed_at.offset)
        } else {
            (end.file_no - w.checkpointed_at.file_no) * self.shared.opts.wal_file_bytes + end.offset
        };
        if since < self.shared.opts.checkpoint_wal_bytes {
            return Ok(());
        }
        w.checkpoint_at_end(|core, end| seal::checkpoint(&self.shared, core, end))
    }

    /// Tells the group commit that a synced write is on its way.
    fn begin_write(&self) -> Option<crate::wal::writer::InFlight<'_>> {
        (self.shared.opts.durability == Durability::Sync).then(|| self.sync.begin_write())
    }

    fn wait_durable(&self, end: Position) -> Result<()> {
        match self.shared.opts.durability {
            Durability::Sync => self.sync.sync_to(end),
            Durability::Buffered | Durability::None => Ok(()),
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(trainer) = &self.shared.trainer {
            trainer.stop.store(true, Ordering::Release);
        }
        if let Some(background) = self.background.take() {
            background.thread().unpark();
            let _ = background.join();
        }
        if self.crash_on_drop {
            return;
        }
        // A clean close: log bytes to disk, checkpoint so reopening is quick.
        // Errors cannot be returned from `drop`; whatever did not make it is
        // recovered from the log on the next open.
        let _ = self.flush();
    }
}
