//! [`Space`]: the public handle on one space of an open store.

use crate::error::Result;
use crate::index::IndexSpec;
use crate::metric::Metric;
use crate::options::SpaceKind;
use crate::store::segments::lookup;
use crate::store::space::SpaceState;
use crate::store::{Store, TrainReport, TrainerStats};

/// A handle on one space of an open store (`Store::space`): its vectors
/// are written, read and counted here; queries name it with
/// `Query::space`. It owns a clone of its [`Store`], so a service can keep
/// it in its own state; the store stays open while it lives. See
/// [`Store::space`] for an example.
#[derive(Clone)]
pub struct Space {
    store: Store,
    /// Its place in the store's list of spaces, fixed while the store is open.
    index: usize,
}

/// What one space holds.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SpaceStats {
    /// The space's name (`"default"` for the default space).
    pub name: String,
    /// Where its vectors come from: the host, or training of which kind.
    pub kind: SpaceKind,
    /// The dimension it was created with (as [`Space::dim`]).
    pub dim: usize,
    /// Components of a stored row (as [`Space::row_dim`]): `dim`, or one
    /// more in a YouTube DNN space (`[v, b]`).
    pub row_dim: usize,
    /// The metric it is searched by.
    pub metric: Metric,
    /// How its sealed segments are indexed.
    pub index: IndexSpec,
    /// Rows in all its segments, including dead (deleted or superseded)
    /// ones.
    pub rows: usize,
    /// Rows still live (neither deleted nor superseded): one per item with
    /// a vector in this space.
    pub live_rows: usize,
    /// Its sealed (immutable, on-disk) segments.
    pub sealed_segments: usize,
    /// Rows in its growing (in-memory, logged) segment.
    pub growing_rows: usize,
    /// Bytes of its sealed segment files.
    pub segment_bytes: u64,
    /// Its sealed segments with a Faiss index in use (the others are
    /// searched exactly).
    pub indexed_segments: usize,
    /// How each of its sealed segments is searched, one short description
    /// per segment (`hnsw32`, `ivf894`, `exact`).
    pub segment_kinds: Vec<String>,
    /// Trained spaces: the generation, vocabulary and rounds.
    pub trainer: Option<TrainerStats>,
}

impl Space {
    pub(super) fn new(store: Store, index: usize) -> Self {
        Space { store, index }
    }

    fn state(&self) -> &SpaceState {
        &self.store.shared().spaces[self.index]
    }

    /// The store this space belongs to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The space's name, as `Store::space` and `Query::space` take it
    /// (`"default"` for the default space).
    pub fn name(&self) -> &str {
        &self.state().name
    }

    /// Where the space's vectors come from: the host (`upsert`), or
    /// training of which kind.
    pub fn kind(&self) -> SpaceKind {
        self.state().kind
    }

    /// The dimension the space was created with (`SpaceSpec::youtube_dnn(64)`:
    /// 64).
    // The dimension asked for is the model's; `dim` in the state is the
    // row's (one more in a DNN space).
    #[allow(clippy::misnamed_getters)]
    pub fn dim(&self) -> usize {
        self.state().model_dim
    }

    /// Components of a stored row, which `get` returns and a `vector`
    /// query in this space takes: the dimension, and one more in a YouTube
    /// DNN space (its item rows are `[v, b]`, its user vectors `[u, 1]`).
    pub fn row_dim(&self) -> usize {
        self.state().dim
    }

    /// The metric the space is searched by, fixed at its creation (inner
    /// product in a YouTube DNN space).
    pub fn metric(&self) -> Metric {
        self.state().metric
    }

    /// Inserts or replaces the vector of `id` in this space (host-fed
    /// spaces only). It is searchable when this returns. Like
    /// [`Store::upsert`], it lifts a store-wide [`Store::delete`] of `id`.
    pub fn upsert(&self, id: u64, vector: &[f32]) -> Result<()> {
        self.store.upsert_in(self.state(), id, vector)
    }

    /// Inserts or replaces the vectors of `ids` in this space (host-fed
    /// spaces only), as [`Store::upsert_batch`] does in the default space.
    pub fn upsert_batch<R: crate::store::VectorRows + ?Sized>(&self, ids: &[u64], vectors: &R) -> Result<()> {
        self.store.upsert_batch_in(self.state(), ids, vectors)
    }

    /// Deletes `id` from this space (host-fed spaces only); false if it
    /// was not there.
    pub fn delete(&self, id: u64) -> Result<bool> {
        self.store.delete_in(self.state(), id)
    }

    /// The stored vector of `id` in this space (normalised under cosine).
    pub fn get(&self, id: u64) -> Result<Option<Vec<f32>>> {
        lookup::get(self.state(), id)
    }

    /// The vector `Query::user(user).space(..)` searches with in this space:
    /// the user model's (a YouTube DNN space: `[u, 1]`, to meet the stored
    /// `[v, b]`), or the pooled vectors of the user's recent items. None
    /// before the model's first round, or when no recent item has a vector.
    pub fn user_vector(&self, user: u64) -> Result<Option<Vec<f32>>> {
        let query = crate::Query::user(user).space(&self.state().name).include_seen();
        self.store.query_vector(&query)
    }

    /// Every live item id of this space.
    pub fn ids(&self) -> Result<Vec<u64>> {
        crate::store::ids_in(self.state())
    }

    /// One incremental training round of this space (trained spaces);
    /// `Store::train_with` with `TrainRequest::space` takes options.
    pub fn train(&self) -> Result<TrainReport> {
        let request = crate::store::TrainRequest::new().space(&self.state().name);
        let mut reports = self.store.train_with(&request)?;
        reports.pop().ok_or_else(|| crate::Error::NotTrained {
            path: self.store.path().to_path_buf(),
            space: self.state().name.clone(),
        })
    }

    /// Counts of what this space holds now (its part of `Store::stats`).
    pub fn stats(&self) -> SpaceStats {
        let version = self.state().catalog.version.load_full();
        SpaceStats {
            name: self.state().name.clone(),
            kind: self.state().kind,
            dim: self.state().model_dim,
            row_dim: self.state().dim,
            metric: self.state().metric,
            index: self.state().indexing.spec,
            rows: version.rows(),
            live_rows: version.live_rows(),
            sealed_segments: version.sealed.len(),
            growing_rows: version.growing.len(),
            segment_bytes: version.sealed.iter().map(|s| s.file_bytes()).sum(),
            indexed_segments: version.sealed.iter().filter(|s| s.index().is_some()).count(),
            segment_kinds: version
                .sealed
                .iter()
                .map(|s| s.index().map_or_else(|| "exact".to_string(), |i| i.describe()))
                .collect(),
            trainer: self.state().trainer.as_ref().map(|t| t.stats()),
        }
    }
}
