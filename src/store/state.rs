//! What an open store holds, in three parts by who may touch them:
//!
//! - [`Shared`], behind an `Arc`: what readers and the write path share
//!   (directories, options, the metadata, the spaces, each with its
//!   [`Catalog`] of live rows and its trainer, the histories and the
//!   indexer). Readers use it without locks.
//! - [`WriteState`], behind the write lock: the log writer, the
//!   [`ManifestState`] and when the last checkpoint was.
//! - [`ManifestState`]: the committed manifest and the next sequence number.
//!   Apart from `WriteState` because recovery applies records to it before
//!   the log writer exists.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::meta::records::{Manifest, RunManifest};
use crate::meta::MetaStore;
use crate::options::Options;
use crate::store::behaviour::Behaviour;
use crate::store::segments::indexer;
use crate::store::space::SpaceState;
use crate::wal::writer::WalWriter;
use crate::wal::{frame, Position};

/// What readers and the write path share.
pub(crate) struct Shared {
    pub path: PathBuf,
    pub wal_dir: PathBuf,
    pub segments_dir: PathBuf,
    pub opts: Options,
    pub meta: Arc<dyn MetaStore>,
    /// By number: the default space first.
    pub spaces: Vec<SpaceState>,
    /// User histories, user features and item attributes: runs and the
    /// part since the last checkpoint.
    pub behaviour: Behaviour,
    /// Wakes the background merger of runs (`behaviour::merger`).
    pub merge_signal: Arc<(parking_lot::Mutex<bool>, parking_lot::Condvar)>,
    pub indexer: indexer::Indexer,
    /// Opened with `Store::open_read_only`: nothing may be written.
    pub read_only: bool,
    /// Items deleted from the whole store.
    pub blocked: crate::store::write::blocked::Blocked,
    /// Items' attributes and their posting lists.
    pub attributes: crate::store::behaviour::attributes::ItemAttributes,
    /// Recent popularity (`Query::popular`).
    pub trending: crate::store::trending::Trending,
    /// Which writes readers see (every space's catalog holds it too).
    pub clock: Arc<crate::segment::visibility::Clock>,
}

impl Shared {
    /// `Error::ReadOnly` for a store opened read-only: called first by
    /// everything that writes files outside the log (training rounds,
    /// compaction, snapshots), which the log writer cannot see coming.
    pub fn refuse_if_read_only(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// The space named `name`.
    pub fn space(&self, name: &str) -> Result<&SpaceState> {
        self.spaces
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::UnknownSpace {
                path: self.path.clone(),
                name: name.to_string(),
                known: self.spaces.iter().map(|s| s.name.clone()).collect(),
            })
    }

    /// The default space (number 0).
    pub fn default_space(&self) -> &SpaceState {
        &self.spaces[0]
    }

    /// The spaces whose vectors the store trains.
    pub fn trained_spaces(&self) -> impl Iterator<Item = &SpaceState> {
        self.spaces.iter().filter(|s| s.trainer.is_some())
    }
}

/// State changed only under the write lock (or during recovery, before the
/// store is shared).
pub(crate) struct ManifestState {
    pub manifest: Manifest,
    /// The committed list of run files (and the run ids reserved since).
    pub runs: RunManifest,
    /// The sequence number the next operation gets.
    pub next_seq: u64,
    /// By space: what the growing segment was when its snapshot in the
    /// manifest was written, so that a checkpoint rewrites only the
    /// snapshots of spaces that changed.
    pub snapshot_marks: Vec<Option<GrowingMark>>,
}

/// A growing segment's state, enough to tell that it has not changed:
/// rows are only appended and tombstones only set, so the same segment
/// (by its serial number) with the same row and dead counts holds the same
/// live rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GrowingMark {
    pub serial: u64,
    pub rows: usize,
    pub dead: usize,
}

impl GrowingMark {
    pub fn of(growing: &crate::segment::growing::GrowingSegment) -> Self {
        GrowingMark {
            serial: growing.serial(),
            rows: growing.len(),
            dead: growing.dead().count(),
        }
    }
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
        self.wal.refuse_if_read_only()?;
        self.wal.write_pending()?;
        let end = self.wal.end();
        let out = checkpoint(&mut self.core, end)?;
        self.checkpointed_at = end;
        self.wal.forget_before(end);
        Ok(out)
    }
}
