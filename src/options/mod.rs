//! `Options`: what a store is created with. `dim`, `metric` and the kind of
//! each space are persisted and checked on every open; the rest may change
//! between opens.

pub(crate) mod space;

use crate::durability::Durability;
use crate::error::{Error, Result};
use crate::index::IndexSpec;
use crate::metric::Metric;
use crate::train::TrainOptions;
pub use space::{SpaceKind, SpaceSpec, DEFAULT_SPACE, MAX_SPACE_NAME};

/// Configuration of a store. Only the dimension is required. `dim`,
/// `metric`, `index` and `train_options` describe the default space (named
/// [`DEFAULT_SPACE`]); [`Options::space`] adds others.
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) dim: usize,
    pub(crate) metric: Metric,
    pub(crate) durability: Durability,
    pub(crate) segment_rows: usize,
    pub(crate) history_len: usize,
    pub(crate) wal_file_bytes: u64,
    pub(crate) checkpoint_wal_bytes: u64,
    pub(crate) index: IndexSpec,
    /// Whether `index` was given (else an existing store's stored spec is
    /// kept).
    pub(crate) index_given: bool,
    /// Whether `metric` was called: with `existing()`, the store's metric
    /// must then be that one.
    pub(crate) metric_given: bool,
    pub(crate) flat_below: usize,
    /// IVF quantiser training: points per list, and whether segments share
    /// centroids (see [`Options::ivf_training`]).
    pub(crate) ivf_points_per_list: usize,
    pub(crate) share_ivf_centroids: bool,
    /// Whether sealed segments get their indexes loaded or built in the
    /// background (else every segment is searched exactly).
    pub(crate) background_indexing: bool,
    /// Merger threads (0: no merges in the background).
    pub(crate) merge_threads: usize,
    /// Kept for hosts that set it; histories live in runs now.
    pub(crate) history_cache_bytes: usize,
    /// Memory for the behaviour applied since the last checkpoint.
    pub(crate) recent_bytes: usize,
    /// sled's page cache.
    pub(crate) meta_cache_bytes: u64,
    /// Some for a store that trains its own item vectors (persisted).
    pub(crate) train: Option<TrainOptions>,
    /// Take `dim` and `metric` from the existing store (see [`Options::existing`]).
    pub(crate) from_store: bool,
    /// The spaces besides the default one, in the order given.
    pub(crate) spaces: Vec<(String, SpaceSpec)>,
    /// The trending channel's window, in the events' timestamp units (None:
    /// the store's stored window, or the default for a new store).
    pub(crate) trending_window: Option<u64>,
    /// Whether the trending channel counts events (`Options::trending`).
    pub(crate) trending: bool,
}

/// Merger threads by default (see [`Options::merge_threads`]).
pub const DEFAULT_MERGE_THREADS: usize = 1;

/// The smallest metadata page cache (`Options::meta_cache_bytes`): sled
/// cannot run with less.
pub const MIN_META_CACHE_BYTES: u64 = 1 << 20;

/// The default `Options::recent_bytes`: 64 MiB.
pub const DEFAULT_RECENT_BYTES: usize = 64 << 20;
/// The smallest `Options::recent_bytes` accepted: 4 KiB.
pub const MIN_RECENT_BYTES: usize = 4 << 10;

/// The trending window unless `Options::trending_window` says otherwise:
/// 7 days in milliseconds (the unit `Event::ts` documents).
pub const DEFAULT_TRENDING_WINDOW: u64 = 7 * 24 * 3600 * 1000;

/// The largest dimension we accept: far beyond any embedding in use, small
/// enough that `dim * 4` bytes per row never overflows anything.
pub const MAX_DIM: usize = 65_536;

impl Options {
    /// Options for vectors of `dim` components, with defaults for the rest:
    /// cosine, `Durability::Sync`, segments of 131,072 rows indexed with
    /// HNSW (m 32, ef_construction 100, ef_search 96), histories of the last
    /// 1,000 items per user. The host brings the vectors (`upsert`); see
    /// [`Options::trained`] for a store that learns them from events.
    ///
    /// ```
    /// use emberdb::{Durability, IndexSpec, Metric, Options, Store};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let opts = Options::new(2)
    ///     .metric(Metric::Cosine)
    ///     .index(IndexSpec::hnsw())
    ///     .durability(Durability::Buffered);
    /// let store = Store::open(&path, opts)?;
    /// store.upsert(7, &[3.0, 4.0])?;
    /// // Under cosine, vectors are stored normalised.
    /// assert_eq!(store.get(7)?, Some(vec![0.6, 0.8]));
    /// # Ok(()) }
    /// ```
    pub fn new(dim: usize) -> Self {
        Options {
            dim,
            metric: Metric::Cosine,
            durability: Durability::Sync,
            segment_rows: 131_072,
            history_len: 1000,
            wal_file_bytes: 64 << 20,
            checkpoint_wal_bytes: 256 << 20,
            index: IndexSpec::default(),
            index_given: false,
            metric_given: false,
            flat_below: 10_000,
            ivf_points_per_list: crate::index::ivf_training::DEFAULT_POINTS_PER_LIST,
            share_ivf_centroids: true,
            background_indexing: true,
            merge_threads: DEFAULT_MERGE_THREADS,
            history_cache_bytes: 1 << 30,
            recent_bytes: DEFAULT_RECENT_BYTES,
            meta_cache_bytes: 64 << 20,
            train: None,
            from_store: false,
            spaces: Vec::new(),
            trending_window: None,
            trending: true,
        }
    }

    /// The window of `Query::popular`, in the events' timestamp units
    /// (default [`DEFAULT_TRENDING_WINDOW`]: 7 days of milliseconds; with
    /// timestamps in seconds, give seconds). "Now" is the newest event's
    /// time. It may change between opens: the counts are then made again
    /// from the users' histories (their last `history_len` events each);
    /// an open that does not set it keeps the store's window.
    pub fn trending_window(mut self, window: u64) -> Self {
        self.trending_window = Some(window);
        self
    }

    /// Whether the trending channel (`Query::popular`, and the popular half
    /// of `Query::recommend`) counts events (default true). Off, an event
    /// costs nothing there, `popular` is refused and `recommend` is the
    /// user channel alone; it may change
    /// between opens: the counts are dropped at the next checkpoint and
    /// made again from the users' histories (their last `history_len`
    /// events each) by the next open with it on.
    pub fn trending(mut self, on: bool) -> Self {
        self.trending = on;
        self
    }

    /// Options for opening a store that already exists, whatever its
    /// dimension, metric and spaces (read from the store). Opening a
    /// directory that holds no store with these is an error. Add
    /// [`Options::space`] to give the store a new space.
    pub fn existing() -> Self {
        Options {
            from_store: true,
            ..Options::new(1)
        }
    }

    /// Options for a store whose default space trains its own item vectors
    /// of `dim` components (item2vec over the users' histories, see
    /// [`TrainOptions`]), searched by cosine. Whether a space is trained or
    /// host-fed is fixed when it is created: a trained space refuses
    /// `upsert` and `delete`.
    ///
    /// The default [`TrainOptions`] train 20 epochs on every core; pass
    /// your own with [`Options::train_options`]. The space has no vectors
    /// until its first round ([`Store::train`](crate::Store::train), or a
    /// [`TrainPolicy`](crate::TrainPolicy) in the background).
    ///
    /// ```
    /// use emberdb::{Durability, Error, Event, Options, Query, Store, TrainOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let opts = Options::trained(8)
    ///     .train_options(TrainOptions::default().epochs(5).threads(1))
    ///     .durability(Durability::None);
    /// let store = Store::open(&path, opts)?;
    /// // The store learns the item vectors: the host cannot write them.
    /// assert!(matches!(store.upsert(1, &[0.5; 8]), Err(Error::TrainedStore { .. })));
    ///
    /// // Users 0..20 each touch five of the items 0..10.
    /// let events: Vec<Event> = (0..20u64)
    ///     .flat_map(|u| (0..5u64).map(move |i| Event::new(u, (u + i) % 10, 1_700_000_000_000 + i)))
    ///     .collect();
    /// store.append_events(&events)?;
    /// assert!(store.get(1)?.is_none()); // nothing trained yet
    ///
    /// let report = store.train()?; // the first round is a full one
    /// assert_eq!((report.generation, report.items), (1, 10));
    /// assert_eq!(store.get(1)?.map(|v| v.len()), Some(8));
    /// assert_eq!(store.knn(&Query::item(1).k(3))?.len(), 3);
    /// # Ok(()) }
    /// ```
    pub fn trained(dim: usize) -> Self {
        Options::new(dim).train_options(TrainOptions::default())
    }

    /// Adds the space `name` (see [`SpaceSpec`]). A store opened without
    /// naming one of its spaces still opens it, with its stored spec; a
    /// space named here that the store lacks is created (a trained one
    /// trains, at its first round, from the histories already logged).
    pub fn space(mut self, name: impl Into<String>, spec: SpaceSpec) -> Self {
        self.spaces.push((name.into(), spec));
        self
    }

    /// The spaces added with [`Options::space`].
    pub fn spaces(&self) -> &[(String, SpaceSpec)] {
        &self.spaces
    }

    /// The default space as a spec.
    pub(crate) fn default_spec(&self) -> SpaceSpec {
        SpaceSpec {
            dim: self.dim,
            metric: self.metric,
            kind: if self.train.is_some() {
                SpaceKind::Item2vec
            } else {
                SpaceKind::Host
            },
            index: self.index_given.then_some(self.index),
            train: self.train.clone(),
            dnn: None,
        }
    }

    /// Makes the store a trained one, with these hyperparameters (they may
    /// change between opens; being trained may not).
    pub fn train_options(mut self, train: TrainOptions) -> Self {
        self.train = Some(train);
        self
    }

    /// Ignored since format 6: histories are read from memory-mapped runs
    /// (their pages are the OS's page cache) and from the part since the
    /// last checkpoint, which [`Options::recent_bytes`] bounds. Kept so
    /// that hosts that set it still build.
    pub fn history_cache_bytes(mut self, bytes: usize) -> Self {
        self.history_cache_bytes = bytes;
        self
    }

    /// Bytes of memory for the behaviour applied since the last checkpoint
    /// (events at about 40 bytes each, plus 64 per user with new events;
    /// features and attributes set), default 64 MiB, at least 4 KiB. Past
    /// it the write path checkpoints, which writes that part out as runs.
    /// Larger means fewer, larger runs (fewer merges), and more memory. May
    /// change between opens.
    pub fn recent_bytes(mut self, bytes: usize) -> Self {
        self.recent_bytes = bytes;
        self
    }

    /// Bytes of the metadata store's (sled's) page cache (default 64 MiB;
    /// sled's own default is 1 GiB; at least [`MIN_META_CACHE_BYTES`]). May
    /// change between opens.
    pub fn meta_cache_bytes(mut self, bytes: u64) -> Self {
        self.meta_cache_bytes = bytes;
        self
    }

    /// The training options, for a trained store.
    #[deprecated(note = "use Options::get_train_options")]
    pub fn training(&self) -> Option<&TrainOptions> {
        self.get_train_options()
    }

    /// The metric (persisted: reopening with another metric is an error,
    /// `Error::ConfigMismatch`, with [`Options::existing`] too).
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metric = metric;
        self.metric_given = true;
        self
    }

    /// When write calls return (may differ between opens).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Rows the growing segment takes before it is sealed into a file.
    pub fn segment_rows(mut self, rows: usize) -> Self {
        self.segment_rows = rows;
        self
    }

    /// How many of each user's most recent items `history` keeps (default
    /// 1,000). It applies when histories are read (a history is the
    /// user's newest `history_len` events) and when runs are merged (a
    /// merge keeps each user's newest `history_len`): opening with a
    /// smaller value serves shorter histories, and once a merge has run,
    /// a larger value later cannot bring the older events back. May change
    /// between opens.
    pub fn history_len(mut self, len: usize) -> Self {
        self.history_len = len;
        self
    }

    /// Size at which the write-ahead log moves on to a new file.
    pub fn wal_file_bytes(mut self, bytes: u64) -> Self {
        self.wal_file_bytes = bytes;
        self
    }

    /// Log written since the last checkpoint that triggers a new one.
    pub fn checkpoint_wal_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_wal_bytes = bytes;
        self
    }

    /// How the default space's sealed segments are indexed (HNSW by
    /// default; may change between opens, and is remembered).
    pub fn index(mut self, spec: IndexSpec) -> Self {
        self.index = spec;
        self.index_given = true;
        self
    }

    /// Sealed segments with fewer rows than this are searched exactly,
    /// without an index (default 10,000).
    pub fn flat_below(mut self, rows: usize) -> Self {
        self.flat_below = rows;
        self
    }

    /// How IVF coarse quantisers are trained: k-means on `points_per_list`
    /// evenly spaced rows per list (default 64; at least 39, Faiss's own
    /// floor; Faiss alone uses up to 256), and, with `share_centroids`
    /// (default true), once per space: later segments with the same list
    /// count reuse the first quantiser and only assign their rows. Both cut
    /// the build of a large store several times over; ARCHITECTURE ("Limits
    /// of one machine") has the measurements. May change between opens.
    pub fn ivf_training(mut self, points_per_list: usize, share_centroids: bool) -> Self {
        self.ivf_points_per_list = points_per_list;
        self.share_ivf_centroids = share_centroids;
        self
    }

    /// Whether to load or build the sealed segments' indexes in the
    /// background (default true). Off, every segment is searched exactly
    /// and no index file is read or written: for tools that inspect a store
    /// (`ember verify` checks index files without the indexer healing them
    /// first). May change between opens.
    pub fn background_indexing(mut self, on: bool) -> Self {
        self.background_indexing = on;
        self
    }

    /// Whether runs of histories, features and attributes are merged in the
    /// background: `false` is [`Options::merge_threads`]`(0)`, `true` keeps
    /// the threads set (one by default, or one if it was 0). May change
    /// between opens.
    pub fn background_merges(mut self, on: bool) -> Self {
        self.merge_threads = match (on, self.merge_threads) {
            (false, _) => 0,
            (true, 0) => DEFAULT_MERGE_THREADS,
            (true, n) => n,
        };
        self
    }

    /// The merge concurrency budget: how many merges of runs may run at once
    /// in the background, each on a thread of the store's (default 1, so
    /// merges take at most one core beside ingest and queries). Merges in
    /// flight at once have disjoint inputs. 0 turns background merges off:
    /// runs accumulate (one per checkpoint, each a probe per history read)
    /// until [`crate::Store::merge_runs`] or [`crate::Store::compact`]
    /// merges them. More than one helps when several tiers fill at once
    /// (a large backlog after a bulk load); ARCHITECTURE ("Limits of one
    /// machine") has the measurements. May change between opens.
    pub fn merge_threads(mut self, threads: usize) -> Self {
        self.merge_threads = threads;
        self
    }

    // Getters. A builder method takes each plain name (`metric(..)`), so
    // the getters are `get_*`, as `std::process::Command`'s are; what an
    // open store actually has is on `Store` and `Space`.

    /// The default space's dimension, as given to [`Options::new`] or
    /// [`Options::trained`] (1 for [`Options::existing`]).
    pub fn get_dim(&self) -> usize {
        self.dim
    }

    /// The default space's metric, as set (cosine unless [`Options::metric`]
    /// says otherwise).
    pub fn get_metric(&self) -> Metric {
        self.metric
    }

    /// Rows the growing segment takes before it is sealed.
    pub fn get_segment_rows(&self) -> usize {
        self.segment_rows
    }

    /// The default space's index spec, as set.
    pub fn get_index(&self) -> IndexSpec {
        self.index
    }

    /// The default space's training options, for a trained store.
    pub fn get_train_options(&self) -> Option<&TrainOptions> {
        self.train.as_ref()
    }

    /// The vector dimension ([`Options::get_dim`]).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The index spec.
    #[deprecated(note = "use Options::get_index")]
    pub fn index_spec(&self) -> IndexSpec {
        self.get_index()
    }

    /// Rows of a full segment.
    #[deprecated(note = "use Options::get_segment_rows")]
    pub fn segment_rows_value(&self) -> usize {
        self.get_segment_rows()
    }

    /// The metric.
    #[deprecated(note = "use Options::get_metric")]
    pub fn metric_kind(&self) -> Metric {
        self.get_metric()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(Error::InvalidOptions(format!(
                "dim must be between 1 and {MAX_DIM}, got {}",
                self.dim
            )));
        }
        if self.segment_rows == 0 || self.segment_rows > u32::MAX as usize {
            return Err(Error::InvalidOptions(format!(
                "segment_rows must be between 1 and {}, got {}",
                u32::MAX,
                self.segment_rows
            )));
        }
        self.index.validate()?;
        if self.recent_bytes < MIN_RECENT_BYTES {
            return Err(Error::InvalidOptions(format!(
                "recent_bytes must be at least {MIN_RECENT_BYTES} (4 KiB), got {}",
                self.recent_bytes
            )));
        }
        if self.history_len == 0 {
            return Err(Error::InvalidOptions("history_len must be at least 1".into()));
        }
        if let Some(train) = &self.train {
            train.validate()?;
        }
        let mut names = std::collections::HashSet::new();
        for (name, spec) in &self.spaces {
            space::check_name(name)?;
            if name == DEFAULT_SPACE {
                return Err(Error::InvalidOptions(format!(
                    "space {name:?} is the default space: set it with Options::new or Options::trained"
                )));
            }
            if !names.insert(name.as_str()) {
                return Err(Error::InvalidOptions(format!("space {name:?} is given twice")));
            }
            spec.validate(name)?;
        }
        if self.meta_cache_bytes < MIN_META_CACHE_BYTES {
            return Err(Error::InvalidOptions(format!(
                "meta_cache_bytes must be at least {MIN_META_CACHE_BYTES} (1 MiB), got {}",
                self.meta_cache_bytes
            )));
        }
        if self.wal_file_bytes < 4096 {
            return Err(Error::InvalidOptions("wal_file_bytes must be at least 4096".into()));
        }
        Ok(())
    }
}
