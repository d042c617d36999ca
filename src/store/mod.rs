//! The public facade: [`Store`]. Writes go through one write lock (log,
//! then apply, in the same order replay will use), release it, and then wait
//! for durability in the group commit (`Store::mutate`, `write/path.rs`). Reads load the
//! current [`Version`] and never take the write lock.
//!
//! The facade's own files (this one, `handle`, `batch`, `recall`, `state`,
//! `space`) sit above the rooms, each a concern of its own: `open` (open,
//! recovery, lock, layout), `write` (applying records, deletes, seals and
//! checkpoints), `segments` (installing, indexing, looking up), `behaviour`
//! and `trending` (the tables of record), `training` (rounds, publishing,
//! the trainer), `maintenance` (compaction, snapshots, verify, repair) and
//! `interop` (Parquet). ARCHITECTURE.md, "Rooms of the store", says which
//! room may import which; `tests/layers.rs` enforces it.

pub(crate) mod batch;
pub(crate) mod behaviour;
pub(crate) mod handle;
pub(crate) mod interop;
pub(crate) mod maintenance;
pub(crate) mod open;
pub(crate) mod recall;
pub(crate) mod segments;
pub(crate) mod space;
pub(crate) mod state;
pub(crate) mod stats;
pub(crate) mod training;
pub(crate) mod trending;
pub(crate) mod write;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::Result;
use crate::event::Event;
use crate::options::Options;
use crate::query::plan::{self, Geometry};
use crate::query::{Hit, Query, Target};
use crate::train::TrainReport;
use crate::validate;
use crate::wal::frame;
use crate::wal::record::{self, EVENT_BYTES};
use crate::wal::writer::SyncShared;
pub use batch::VectorRows;
pub use behaviour::attributes::TITLE_KEY;
pub use behaviour::RunFileStats;
pub use handle::{Space, SpaceStats};
#[cfg(feature = "parquet")]
pub use interop::parquet_export::{ExportOptions, ExportReport};
#[cfg(feature = "parquet")]
pub use interop::parquet_import::{check_events_parquet, check_vectors_parquet, ImportOptions, ImportReport};
pub use maintenance::compact::{CompactOptions, CompactReport};
pub use maintenance::repair::{RepairOptions, RepairReport};
pub use maintenance::snapshot::{restore, SnapshotInfo};
pub use maintenance::verify::{VerifyOptions, VerifyReport};
use open::lock::DirLock;
pub use open::RecoveryReport;
pub use recall::{RECOMMEND_POPULAR_WEIGHT, RECOMMEND_USER_WEIGHT};
use space::SpaceState;
use state::{Shared, WriteState};
pub use stats::Stats;
pub use training::request::{Progress, TrainRequest};
pub use training::trainer::TrainerStats;
pub use training::RoundKind;
pub(crate) use write::path::Written;

/// Events per log record: keeps a frame well under `frame::MAX_PAYLOAD`.
const EVENTS_PER_RECORD: usize = (frame::MAX_PAYLOAD - 64) / EVENT_BYTES / 2;

/// An embedded vector store. See the crate documentation.
///
/// A `Store` is a cheap handle: cloning it clones a few `Arc`s, and every
/// clone reads and writes the same open store. It is `Send + Sync`, so a
/// service keeps one in its state and hands clones to its threads (or
/// shares one by reference). The store closes (background threads stopped,
/// a final flush and checkpoint, the directory unlocked) when the last
/// clone, and the last [`Space`] handle taken from it, is dropped.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    write: Arc<Mutex<WriteState>>,
    /// One compaction at a time.
    compaction: Arc<Mutex<()>>,
    sync: Arc<SyncShared>,
    recovery: Arc<RecoveryReport>,
    /// Shared by every clone: closes the store when the last one goes
    /// (held for its `Drop`; read only by the test hooks).
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    life: Arc<Lifetime>,
}

/// What closing a store needs, owned once for all of a store's handles.
struct Lifetime {
    shared: Arc<Shared>,
    write: Arc<Mutex<WriteState>>,
    /// The background trainer (trained stores with a policy).
    background: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The background merger of runs (stores open for writing).
    merger: Mutex<Option<behaviour::merger::Merger>>,
    crash_on_drop: std::sync::atomic::AtomicBool,
    // Dropped last: the directory stays locked until everything is closed.
    _lock: DirLock,
}

// Every handle is shared across threads by hosts: keep that a compile-time
// fact rather than an accident of today's fields.
const _: fn() = || {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Store>();
    shareable::<Space>();
};

impl Store {
    /// Creates a store at `path`, or opens (and recovers) the one there.
    ///
    /// The directory is locked while any clone of the handle lives; the
    /// last one to go closes the store (and checkpoints). A store's
    /// dimension, metric and kind are fixed at its creation: reopen it
    /// with the same ones, or with [`Options::existing`].
    ///
    /// ```
    /// use emberdb::{Durability, Error, Options, Store};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let store = Store::open(&path, Options::new(3).durability(Durability::None))?;
    /// store.upsert(1, &[1.0, 0.0, 0.0])?;
    /// drop(store); // the last handle: closes the store and unlocks it
    ///
    /// // Reopened, whatever its dimension and metric: they are read from it.
    /// let store = Store::open(&path, Options::existing())?;
    /// assert_eq!(store.get(1)?, Some(vec![1.0, 0.0, 0.0]));
    ///
    /// // A second open while it is open is refused...
    /// assert!(matches!(Store::open(&path, Options::existing()), Err(Error::Locked { .. })));
    /// drop(store);
    /// // ...and so is another dimension than the one it was created with.
    /// let refused = Store::open(&path, Options::new(4));
    /// assert!(matches!(refused, Err(Error::ConfigMismatch { field: "dim", .. })));
    /// # Ok(()) }
    /// ```
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Store> {
        open::open(path.as_ref(), opts, open::Access::Write)
    }

    /// Opens the store at `path` for reading only: queries, `get`,
    /// `history`, `stats` and `verify` work; everything that writes
    /// (upserts, events, training, compaction, flush, snapshot) returns
    /// `Error::ReadOnly`. Nothing in the store's directory is written:
    /// the log's torn tail is left in place (and not replayed), leftover
    /// files are reported, not removed (`RecoveryReport::leftover_files`),
    /// and the metadata is read from a private copy of it under the
    /// system's temporary directory (sled cannot open a database without
    /// writing to it), which costs the metadata's size.
    ///
    /// Read-only opens take a shared lock on the store's `LOCK` file, so
    /// any number of them coexist, in this process or others. They do
    /// **not** coexist with a writer: while a `Store::open` holds the store
    /// (in this or another process), this returns `Error::Locked`, since
    /// the metadata and the log change under a writer and a copy of them
    /// would not be consistent. To read a store that a process keeps open,
    /// have that process take `Store::snapshot` and open the snapshot
    /// read-only. A store directory without a `LOCK` file (a snapshot
    /// never opened for writing) is read without a lock.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store> {
        open::open(path.as_ref(), Options::existing(), open::Access::ReadOnly)
    }

    /// Whether the store was opened with [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.shared.read_only
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

    /// The store's shared state, for the rooms of this module.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Records one event durably (per the store's `Durability`).
    pub fn append_event(&self, event: Event) -> Result<()> {
        self.append_events(std::slice::from_ref(&event))
    }

    /// Records a batch of events with one log write and one fsync. Batches
    /// above about a million events are logged as several records. Every
    /// event is checked first ([`crate::check_event`]): if one is refused,
    /// none is recorded.
    ///
    /// ```
    /// use emberdb::{Durability, Error, Event, Options, Query, Store};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let store = Store::open(&path, Options::new(4).durability(Durability::None))?;
    /// let t = 1_700_000_000_000; // milliseconds since the Unix epoch
    /// store.append_events(&[
    ///     Event::new(7, 1, t),
    ///     Event::new(7, 2, t + 1_000).with_weight(3.0), // a purchase, say
    ///     Event::new(8, 2, t + 2_000),
    /// ])?;
    /// assert_eq!(store.history(7)?, vec![1, 2]); // oldest first
    ///
    /// // The trending channel counts them as they arrive.
    /// let trending = store.knn(&Query::popular().k(2))?;
    /// assert_eq!((trending[0].id, trending[0].score), (2, 2.0));
    ///
    /// // A refused event (a negative weight) refuses the whole batch.
    /// let bad = [Event::new(9, 3, t), Event::new(9, 4, t).with_weight(-1.0)];
    /// assert!(matches!(store.append_events(&bad), Err(Error::InvalidEvent { item: 4, .. })));
    /// assert!(store.history(9)?.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn append_events(&self, events: &[Event]) -> Result<()> {
        validate::check_events(events)?;
        if events.is_empty() {
            return Ok(());
        }
        self.mutate(|w| {
            let mut end = w.wal.end();
            for chunk in events.chunks(EVENTS_PER_RECORD) {
                let seq = w.core.next_seq;
                (_, end) = w.log(|out| record::encode_events(out, seq, chunk))?;
                w.core.next_seq += chunk.len() as u64;
                for (i, event) in chunk.iter().enumerate() {
                    self.shared.behaviour.append(seq + i as u64, event);
                    self.shared.trending.apply(seq + i as u64, event.item, event.ts);
                }
            }
            for space in self.shared.trained_spaces() {
                if let Some(trainer) = &space.trainer {
                    trainer
                        .events_since_round
                        .fetch_add(events.len() as u64, Ordering::Relaxed);
                }
                for (id, vector) in training::provisional_vectors(&self.shared, space, events)? {
                    end = self.log_upsert(w, space, id, &vector)?;
                }
            }
            Ok(Written::At(end, ()))
        })
    }

    /// Sets `user`'s categorical features, replacing any set before:
    /// `(key, value)` pairs, a key repeated for several values (`("genre",
    /// "Comedy"), ("genre", "Drama")`). The YouTube DNN spaces feed them to
    /// their tower (a value a round has not seen maps to an "other" row
    /// until the next round). Logged and durable like an event; an empty
    /// slice removes them. Keys must not be empty; keys and values are at
    /// most 256 bytes, at most 256 pairs.
    pub fn set_user_features(&self, user: u64, features: &[(&str, &str)]) -> Result<()> {
        behaviour::features::check(user, features)?;
        self.mutate(|w| {
            let seq = w.core.next_seq;
            let (_, end) = w.log(|out| record::encode_features(out, seq, user, features))?;
            w.core.next_seq += 1;
            let set = features.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            self.shared.behaviour.set_features(seq, user, set);
            Ok(Written::At(end, ()))
        })
    }

    /// `user`'s features (empty if none were set). A run that cannot be
    /// read answers empty and is logged: `try_user_features` says why.
    pub fn user_features(&self, user: u64) -> Vec<(String, String)> {
        self.try_user_features(user).unwrap_or_else(|e| {
            log::error!("features of user {user}: {e}");
            Vec::new()
        })
    }

    /// `user`'s features (empty if none were set), or why the runs holding
    /// them cannot be read.
    pub fn try_user_features(&self, user: u64) -> Result<Vec<(String, String)>> {
        self.shared.behaviour.features(user)
    }

    /// Inserts or replaces the vector of `id` in the default space. It is
    /// searchable when this returns.
    ///
    /// An upsert is an explicit write that says the item exists: if `id`
    /// was deleted from the whole store ([`Store::delete`]), the upsert
    /// lifts that delete as [`Store::undelete`] would (trained spaces serve
    /// it again from their next round). The README's "Deletes" table has
    /// every delete and what lifts it.
    pub fn upsert(&self, id: u64, vector: &[f32]) -> Result<()> {
        self.upsert_in(self.shared.default_space(), id, vector)
    }

    pub(crate) fn upsert_in(&self, space: &SpaceState, id: u64, vector: &[f32]) -> Result<()> {
        self.refuse_if_trained(space, "upsert")?;
        let vector = validate::prepare_vector(space.metric, space.dim, vector, || item_context(space, id))?;
        self.mutate(|w| Ok(Written::At(self.log_upsert(w, space, id, &vector)?, ())))
    }

    /// The stored vector of `id` in the default space (normalised under
    /// cosine), if it is live.
    pub fn get(&self, id: u64) -> Result<Option<Vec<f32>>> {
        segments::lookup::get(self.shared.default_space(), id)
    }

    /// The space named `name` (the default space is [`crate::DEFAULT_SPACE`]):
    /// a handle to write, read and count its vectors.
    ///
    /// A host-fed space for text embeddings beside a trained default space;
    /// item ids are the store's, shared by its spaces:
    ///
    /// ```
    /// use emberdb::{Durability, Error, Event, Options, Query, SpaceKind, SpaceSpec, Store, TrainOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let opts = Options::trained(8)
    ///     .train_options(TrainOptions::default().epochs(5).threads(1))
    ///     .space("text", SpaceSpec::host(3))
    ///     .durability(Durability::None);
    /// let store = Store::open(&path, opts)?;
    ///
    /// let text = store.space("text")?;
    /// assert_eq!((text.kind(), text.dim()), (SpaceKind::Host, 3));
    /// text.upsert(1, &[1.0, 0.0, 0.0])?;
    /// text.upsert(2, &[0.9, 0.1, 0.0])?;
    /// text.upsert(3, &[0.0, 0.0, 1.0])?;
    /// let hits = store.knn(&Query::item(1).space("text").k(1))?;
    /// assert_eq!(hits[0].id, 2);
    ///
    /// // The default space learns its vectors from the events, and refuses
    /// // the host's.
    /// let default = store.space(emberdb::DEFAULT_SPACE)?;
    /// assert_eq!(default.kind(), SpaceKind::Item2vec);
    /// assert!(matches!(default.upsert(1, &[0.0; 8]), Err(Error::TrainedStore { .. })));
    /// let events: Vec<Event> = (0..10u64)
    ///     .flat_map(|u| (1..=3u64).map(move |i| Event::new(u, i, 1_700_000_000_000 + i)))
    ///     .collect();
    /// store.append_events(&events)?;
    /// default.train()?;
    /// assert_eq!(default.stats().live_rows, 3);
    /// assert_eq!(store.knn(&Query::item(1).k(2))?.len(), 2);
    ///
    /// // A space the store does not have.
    /// assert!(matches!(store.space("image"), Err(Error::UnknownSpace { .. })));
    /// # Ok(()) }
    /// ```
    pub fn space(&self, name: &str) -> Result<Space> {
        let state = self.shared.space(name)?;
        let index = self
            .shared
            .spaces
            .iter()
            .position(|s| std::ptr::eq(s, state))
            .unwrap_or_default(); // `space` found it in this very list.
        Ok(Space::new(self.clone(), index))
    }

    /// Every space of the store, the default one first.
    pub fn spaces(&self) -> Vec<Space> {
        (0..self.shared.spaces.len())
            .map(|i| Space::new(self.clone(), i))
            .collect()
    }

    /// Every live item id of the default space (sealed segments in id
    /// order, then the growing segment), as of the current version.
    pub fn ids(&self) -> Result<Vec<u64>> {
        ids_in(self.shared.default_space())
    }

    /// The user's most recent items (up to `history_len`), oldest first.
    pub fn history(&self, user: u64) -> Result<Vec<u64>> {
        self.shared.behaviour.items(user)
    }

    /// The nearest neighbours for `query`, nearest first, in the query's
    /// space (the default one unless `Query::space` says otherwise). Never
    /// waits for writers: it searches the version current when it starts.
    ///
    /// The kinds of [`Query`] that search a space, on a host-fed store:
    ///
    /// ```
    /// use emberdb::{Durability, Event, Options, Query, Store};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let store = Store::open(&path, Options::new(3).durability(Durability::None))?;
    /// store.upsert(1, &[1.0, 0.0, 0.0])?;
    /// store.upsert(2, &[0.9, 0.1, 0.0])?; // near 1
    /// store.upsert(3, &[0.0, 1.0, 0.0])?;
    /// store.upsert(4, &[0.0, 0.9, 0.1])?; // near 3
    /// store.upsert(5, &[0.7, 0.7, 0.0])?; // between 1 and 3
    /// let ids = |hits: Vec<emberdb::Hit>| hits.iter().map(|h| h.id).collect::<Vec<_>>();
    ///
    /// // A vector the host brings: nearest first (cosine, higher is nearer).
    /// let hits = store.knn(&Query::vector(&[1.0, 0.0, 0.0]).k(2))?;
    /// assert_eq!(ids(hits), [1, 2]);
    ///
    /// // Items like item 1 (item 1 itself left out).
    /// assert_eq!(ids(store.knn(&Query::item(1).k(2))?), [2, 5]);
    ///
    /// // User 7 touched items 1, then 3. Both user kinds leave out what
    /// // the user has seen.
    /// store.append_events(&[Event::new(7, 1, 1_700_000_000_000), Event::new(7, 3, 1_700_000_001_000)])?;
    /// // `user`: near the mean of the user's recent items.
    /// assert_eq!(ids(store.knn(&Query::user(7).k(1))?), [5]);
    /// // `seeds`: near each recent item, the newest (3) weighing most, so
    /// // 4 (near 3) comes before 2 (near 1).
    /// assert_eq!(ids(store.knn(&Query::seeds(7).k(3))?), [5, 4, 2]);
    /// # Ok(()) }
    /// ```
    pub fn knn(&self, query: &Query) -> Result<Vec<Hit>> {
        if let Target::Popular { .. } | Target::Blend(_) | Target::Recommend(_) = query.target {
            return self.recall(query);
        }
        let shared = &*self.shared;
        let space = self.query_space(query)?;
        let version = space.catalog.view();
        plan::knn(
            &segments::lookup::SpaceLookups { shared },
            &version,
            geometry(space),
            query,
        )
    }

    /// The space a query names (the default one when it names none).
    pub(crate) fn query_space(&self, query: &Query) -> Result<&SpaceState> {
        match &query.space {
            Some(name) => self.shared.space(name),
            None => Ok(self.shared.default_space()),
        }
    }

    /// The vector a user query searches with (see `Space::user_vector`).
    pub(crate) fn query_vector(&self, query: &Query) -> Result<Option<Vec<f32>>> {
        let shared = &*self.shared;
        let space = self.query_space(query)?;
        let version = space.catalog.view();
        let crate::query::Target::User(user) = query.target else {
            return Ok(None);
        };
        let lookups = segments::lookup::SpaceLookups { shared };
        Ok(plan::user_query(&lookups, &version, geometry(space), user, query)?.map(|(v, _)| v))
    }
    /// Makes every earlier write durable and checkpoints, so that reopening
    /// replays little.
    pub fn flush(&self) -> Result<()> {
        flush(&self.shared, &self.write)
    }

    /// Seals the growing segment of every space that has rows in it into
    /// a file now, instead of when it fills.
    pub fn seal(&self) -> Result<()> {
        let mut w = self.write.lock();
        let mut sealed = false;
        for space in &self.shared.spaces {
            if space.catalog.version.load().growing.len() > 0 {
                w.checkpoint_at_end(|core, end| write::seal::seal(&self.shared, core, space, end))?;
                sealed = true;
            }
        }
        if !sealed {
            w.checkpoint_at_end(|core, end| write::seal::checkpoint(&self.shared, core, end))?;
        }
        Ok(())
    }

    /// Blocks until every sealed segment queued for indexing has its index
    /// (built or loaded). Queries never need this: unindexed segments are
    /// searched exactly.
    pub fn wait_for_indexes(&self) {
        self.shared.indexer.wait_idle();
    }

    /// Closes the store like a crash would: no checkpoint, no final flush of
    /// buffered log bytes. For recovery tests. Other clones of this handle
    /// keep the store open until they are dropped, and then close it the
    /// same way.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn close_without_checkpoint(self) {
        self.life.crash_on_drop.store(true, Ordering::Release);
    }
}

/// What query planning needs to know of `space`'s vectors.
fn geometry(space: &SpaceState) -> Geometry<'_> {
    Geometry {
        metric: space.metric,
        dim: space.dim,
        space: if space.number == 0 { "" } else { &space.name },
        item_prefix: (space.kind == crate::options::SpaceKind::YoutubeDnn).then_some(space.model_dim),
    }
}

/// How errors name an item of `space`: `item 7`, or `item 7 in space "text"`.
fn item_context(space: &SpaceState, id: u64) -> String {
    if space.number == 0 {
        format!("item {id}")
    } else {
        format!("item {id} in {}", space.describe())
    }
}

/// Every live item id of `space`.
fn ids_in(space: &SpaceState) -> Result<Vec<u64>> {
    let view = space.catalog.view();
    let mut out = Vec::with_capacity(view.live_rows());
    for segment in &view.sealed {
        let (ids, _) = segment.data()?;
        out.extend(
            ids.iter()
                .enumerate()
                .filter(|(r, _)| !segment.dead().is_dead_to(*r, view.seen))
                .map(|(_, id)| *id),
        );
    }
    view.growing.for_each_chunk_to(view.seen, |first, ids, _| {
        out.extend(
            ids.iter()
                .enumerate()
                .filter(|(r, _)| !view.growing.dead().is_dead_to(first + r, view.seen))
                .map(|(_, id)| *id),
        );
    });
    // An item moved while the reader looked may be met twice.
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Makes every earlier write durable and checkpoints.
fn flush(shared: &Shared, write: &Mutex<WriteState>) -> Result<()> {
    let mut w = write.lock();
    w.wal.sync_all()?;
    // A checkpoint frees whole log files only: start a new one so the
    // bytes before the checkpoint can go.
    w.wal.rotate_if_above(1 << 20)?;
    w.checkpoint_at_end(|core, end| write::seal::checkpoint(shared, core, end))
}

impl Drop for Lifetime {
    fn drop(&mut self) {
        for trainer in self.shared.spaces.iter().filter_map(|s| s.trainer.as_ref()) {
            trainer.stop.store(true, Ordering::Release);
        }
        if let Some(background) = self.background.get_mut().take() {
            background.thread().unpark();
            let _ = background.join();
        }
        if let Some(mut merger) = self.merger.get_mut().take() {
            merger.stop();
        }
        if self.crash_on_drop.load(Ordering::Acquire) || self.shared.read_only {
            return;
        }
        // A clean close: log bytes to disk, checkpoint so reopening is quick.
        // Errors cannot be returned from `drop`; whatever did not make it is
        // recovered from the log on the next open.
        let _ = flush(&self.shared, &self.write);
    }
}
