//! What an open store holds, in three parts by who may touch them:
//!
//! - [`Shared`], behind an `Arc`: what readers and the write path share
//!   (directories, options, the metadata, the [`Catalog`] of live rows,
//!   histories, the indexer and the trainer). Readers use it without locks.
//! - [`WriteState`], behind the write lock: the log writer, the
//!   [`ManifestState`] and when the last checkpoint was.
//! - [`ManifestState`]: the committed manifest and the next sequence number.
//!   Apart from `WriteState` because recovery applies records to it before
//!   the log writer exists.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::history::Histories;
use super::indexer;
use super::trainer::Trainer;
use crate::error::Result;
use crate::meta::records::Manifest;
use crate::meta::MetaStore;
use crate::options::Options;
use crate::segment::Location;
use crate::version::Version;
use crate::wal::writer::WalWriter;
use crate::wal::{frame, Position};

/// What readers and the write path share.
pub(crate) struct Shared {
    pub path: PathBuf,
    pub wal_dir: PathBuf,
    pub segments_dir: PathBuf,
    pub opts: Options,
    pub meta: Arc<dyn MetaStore>,
    /// The live version and where each item's sealed row is.
    pub catalog: Catalog,
    pub histories: Histories,
    pub indexer: indexer::Indexer,
    /// Trained stores: the trainer.
    pub trainer: Option<Trainer>,
}

/// The rows readers can see: the current [`Version`], and the item
/// registry (the metadata's, with the retirements not yet committed to it).
pub(crate) struct Catalog {
    pub version: ArcSwap<Version>,
    pub meta: Arc<dyn MetaStore>,
    /// Sealed rows retired (deleted or superseded) since the last
    /// checkpoint: id -> its old row. The registry in the metadata still
    /// names them until the checkpoint commits these.
    pub retired: Mutex<HashMap<u64, Location>>,
    /// Counts sealed-row retirements; bumped before each one is visible, so
    /// a reader that found an item missing can tell whether a retirement
    /// (an upsert moving the item, its new row published first) ran while
    /// it looked (see `lookup::get`).
    pub retirements: AtomicU64,
}

impl Catalog {
    pub fn new(version: Version, meta: Arc<dyn MetaStore>) -> Self {
        Catalog {
            version: ArcSwap::from_pointee(version),
            meta,
            retired: Mutex::new(HashMap::new()),
            retirements: AtomicU64::new(0),
        }
    }

    /// The sealed row that holds `id`, if it is live in a sealed segment.
    pub fn sealed_location(&self, id: u64) -> Result<Option<Location>> {
        if let Some(directory) = &self.version.load().directory {
            return Ok(directory.get(&id).copied());
        }
        if self.retired.lock().contains_key(&id) {
            return Ok(None);
        }
        self.meta.location(id)
    }

    /// The retirements to commit with the next checkpoint.
    pub fn pending_retirements(&self) -> Vec<(u64, Location)> {
        self.retired.lock().iter().map(|(id, at)| (*id, *at)).collect()
    }

    /// Drops retirements that the metadata now holds. (The write lock is
    /// held, so none of these was changed since `pending_retirements`.)
    pub fn forget_committed(&self, committed: &[(u64, Location)]) {
        let mut retired = self.retired.lock();
        for (id, _) in committed {
            retired.remove(id);
        }
    }

    /// Kills the sealed row `at` of `id` and records the retirement in
    /// memory; the next checkpoint writes it to the metadata (see
    /// `MetaStore::commit`).
    pub fn retire(&self, version: &Version, id: u64, at: Location) {
        self.retirements.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.retired.lock().insert(id, at);
        if let Some(segment) = version.segment(at.segment) {
            segment.dead().kill(at.row as usize);
        }
    }
}

/// State changed only under the write lock (or during recovery, before the
/// store is shared).
pub(crate) struct ManifestState {
    pub manifest: Manifest,
    /// The sequence number the next operation gets.
    pub next_seq: u64,
}

impl ManifestState {
    /// Reserves `n` consecutive segment file ids; returns the first.
    pub fn reserve_segment_ids(&mut self, n: u64) -> u64 {
        let first = self.manifest.next_segment_id;
        self.manifest.next_segment_id += n;
        first
    }
}

/// Everything behind the write lock.
pub(crate) struct WriteState {
    pub core: ManifestState,
    pub wal: WalWriter,
    /// The log end at the last checkpoint, to decide when the next is due.
    pub checkpointed_at: Position,
    pub payload: Vec<u8>,
    pub frames: Vec<u8>,
    pub meta: Arc<dyn MetaStore>,
}

impl WriteState {
    /// Frames and appends the payload built by `encode`; returns where the
    /// record starts and ends in the log.
    pub fn log(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<(Position, Position)> {
        if self.meta.failed() {
            // A failed metadata write leaves a checkpoint impossible until
            // reopen; accepting writes meanwhile would only grow the log.
            self.wal.poison();
        }
        self.payload.clear();
        encode(&mut self.payload);
        self.frames.clear();
        frame::encode_into(&mut self.frames, &self.payload);
        self.wal.append(&self.frames)
    }

    /// Runs `checkpoint` (anything that commits a manifest covering the
    /// whole log) at the log's end, once the log's bytes are in the file,
    /// and records that end as the last checkpoint. The one way every
    /// caller holding the write lock checkpoints.
    pub fn checkpoint_at_end<T>(
        &mut self,
        checkpoint: impl FnOnce(&mut ManifestState, Position) -> Result<T>,
    ) -> Result<T> {
        self.wal.write_pending()?;
        let end = self.wal.end();
        let out = checkpoint(&mut self.core, end)?;
        self.checkpointed_at = end;
        Ok(out)
    }
}
