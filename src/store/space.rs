//! One vector space of an open store: its settings, the rows readers see
//! (its [`Catalog`]), how its segments are indexed and, for a trained
//! space, its trainer. Spaces share the store's log, histories, metadata
//! and segment directory (file ids are unique across spaces).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::error::Result;
use crate::meta::Placed;
use crate::metric::Metric;
use crate::options::SpaceKind;
use crate::segment::visibility::{Clock, Seen, Stamp};
use crate::segment::Location;
use crate::store::segments::indexer::IndexConfig;
use crate::store::training::trainer::Trainer;
use crate::version::{Version, View};

pub(crate) struct SpaceState {
    /// Its number in log records and the manifest.
    pub number: u32,
    pub name: String,
    /// Components of a stored row.
    pub dim: usize,
    /// Components of the model's vectors (a DNN space stores `[v, b]`:
    /// one more).
    pub model_dim: usize,
    pub metric: Metric,
    pub kind: SpaceKind,
    pub indexing: Arc<IndexConfig>,
    pub catalog: Catalog,
    /// Trained spaces: the trainer.
    pub trainer: Option<Trainer>,
}

impl SpaceState {
    /// Its index in `Shared::spaces` and `Manifest::spaces`.
    pub fn slot(&self) -> usize {
        self.number as usize
    }

    /// How messages name it: `space "text"`.
    pub fn describe(&self) -> String {
        format!("space {:?}", self.name)
    }
}

/// The rows readers can see in one space: the current [`Version`], and the
/// sealed rows retired since the last checkpoint (their dead-row records
/// are written by the next one).
pub(crate) struct Catalog {
    /// The space's number (in the metadata's records).
    pub space: u32,
    pub version: ArcSwap<Version>,
    /// Sealed rows retired (deleted or superseded) since the last
    /// checkpoint: id -> its old row. Their rows are dead in memory at
    /// once; the metadata records them dead when the checkpoint commits.
    pub retired: Mutex<HashMap<u64, Location>>,
    /// The store's clock (one for every space): which writes a reader sees.
    pub clock: Arc<Clock>,
}

impl Catalog {
    pub fn new(space: u32, version: Version, clock: Arc<Clock>) -> Self {
        Catalog {
            space,
            version: ArcSwap::from_pointee(version),
            retired: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// What a reader works on: the writes it sees, then the version (in
    /// that order: a version installed since holds every row those writes
    /// made, and its own kills are unstamped or carry their origin's
    /// stamp; see `segment::visibility`).
    pub fn view(&self) -> View {
        let seen = self.clock.seen();
        View {
            version: self.version.load_full(),
            seen,
        }
    }

    /// The sealed row of `version` that holds `id`: a trained space's
    /// directory entry (its row may be dead), or a host-fed space's live
    /// row, found through the segments' id orders.
    pub fn sealed_location(&self, version: &Version, id: u64) -> Result<Option<Location>> {
        if let Some(directory) = &version.directory {
            return Ok(directory.get(&id).copied());
        }
        Ok(version.live_sealed(id, Seen::NOW)?.map(|(segment, row)| Location {
            segment: segment.id(),
            row,
        }))
    }

    /// The retirements to commit with the next checkpoint.
    pub fn pending_retirements(&self) -> Vec<Placed> {
        self.retired
            .lock()
            .iter()
            .map(|(id, at)| (self.space, *id, *at))
            .collect()
    }

    /// Drops retirements that the metadata now holds. (The write lock is
    /// held, so none of these was changed since `pending_retirements`.)
    pub fn forget_committed(&self, committed: &[Placed]) {
        let mut retired = self.retired.lock();
        for (space, id, _) in committed {
            if *space == self.space {
                retired.remove(id);
            }
        }
    }

    /// Kills the sealed row `at` of `id` by the write stamped `stamp` and
    /// records the retirement in memory; the next checkpoint writes it to
    /// the metadata (see `MetaStore::commit`).
    pub fn retire(&self, version: &Version, id: u64, at: Location, stamp: Stamp) {
        self.retired.lock().insert(id, at);
        if let Some(segment) = version.segment(at.segment) {
            segment.dead().kill_at(at.row as usize, stamp);
        }
    }
}
