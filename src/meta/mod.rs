//! Metadata: the configuration, the manifest (live segments, checkpoint),
//! dead rows, the list of run files (behaviour lives in those). (Which sealed row holds an item is the
//! segments' business: each carries its rows ordered by id.) [`MetaStore`] is the small interface the store needs; sled is
//! the engine behind it today ([`sled_meta::SledMeta`]).

mod engine;
pub(crate) mod records;
pub(crate) mod recovery_file;
pub(crate) mod sled_meta;
mod sled_records;

use crate::error::Result;
use crate::segment::Location;
use crate::wal::tracked::TrackedFiles;
use records::{Manifest, ManifestV1, RunManifest, StoredConfig, StoredSpace, UserHistory};

/// A user's feature pairs, as the metadata keeps them.
/// A user's features or an item's attributes: its id and its pairs.
pub(crate) type UserFeaturePairs = (u64, Vec<(String, String)>);

/// An item's row in a space: (space number, item id, location).
pub(crate) type Placed = (u32, u64, Location);

/// One atomic change of the catalog (see [`MetaStore::commit`]).
pub(crate) struct Commit<'a> {
    pub manifest: &'a Manifest,
    /// Sealed rows retired (their item deleted or given a newer row):
    /// recorded dead.
    pub retired: &'a [Placed],
    /// Segments a compaction removed: their dead-row records go.
    pub dropped_segments: &'a [u64],
    /// Rows of added segments recorded dead (they died while the segment
    /// was written).
    pub dead: &'a [Location],
    /// The run files (format 6), with the sequence number they hold
    /// behaviour through.
    pub runs: &'a RunManifest,
}

/// What the store asks of its metadata engine. Writes become durable at
/// `flush`; anything newer than the last flush is rebuilt from the WAL, so
/// every write here must be safe to repeat (replay is idempotent).
pub(crate) trait MetaStore: Send + Sync {
    fn load_config(&self) -> Result<Option<StoredConfig>>;
    /// The spaces of a format-2 store.
    fn load_spaces(&self) -> Result<Option<Vec<StoredSpace>>>;
    /// The manifest of a format-2 store.
    fn load_manifest(&self) -> Result<Option<Manifest>>;
    /// The manifest of a format-1 store (before its upgrade).
    fn load_manifest_v1(&self) -> Result<Option<ManifestV1>>;
    /// Writes the configuration, the spaces and the manifest in one batch:
    /// at creation, at the upgrade of a format-1 store, and when spaces are
    /// added or their index spec changes; with `runs` when they change
    /// too (the upgrade to format 6, which moves histories, features and
    /// attributes into runs, commits here). Not flushed.
    fn save_layout(
        &self,
        config: &StoredConfig,
        spaces: &[StoredSpace],
        manifest: &Manifest,
        runs: Option<&RunManifest>,
    ) -> Result<()>;
    /// The run files of a format-6 store (`None` before format 6).
    fn load_runs(&self) -> Result<Option<RunManifest>>;
    /// Replaces the list of run files (a merge's install). Not flushed.
    fn save_runs(&self, runs: &RunManifest) -> Result<()>;
    /// Removes the trees `histories`, `features` and `attributes` and the
    /// trending record that stores before format 6 kept behaviour in;
    /// returns the records removed. Not flushed.
    fn drop_legacy_behaviour(&self) -> Result<u64>;
    /// A read-only open's private directory (its copy of the metadata
    /// lives there, and goes with it): where the runs of an older store's
    /// behaviour are made when it is opened read-only.
    fn scratch_dir(&self) -> Option<std::path::PathBuf>;
    /// Atomically applies `commit`: after a crash, all of it is there or
    /// none. Retirements reach the metadata only this way, together with
    /// the checkpoint that covers their log records: a retirement whose
    /// record did not survive a crash must not survive it either.
    fn commit(&self, commit: &Commit) -> Result<()>;
    /// Removes the item registry and the forwarding table that stores
    /// before format 5 kept here; returns the records removed. Items are
    /// found through the segments' id orders now (see `segment::id_order`).
    /// Not flushed.
    fn drop_legacy_locations(&self) -> Result<u64>;
    /// Every dead row of every sealed segment.
    fn dead_rows(&self) -> Result<Vec<Location>>;
    /// Calls `f` with every history a store before format 6 kept (tree
    /// `histories`, in user id order), for its upgrade.
    fn for_each_legacy_history(&self, f: &mut dyn FnMut(u64, UserHistory) -> Result<()>) -> Result<()>;
    /// Every user's features a store before format 6 kept (tree
    /// `features`, in user id order).
    fn load_legacy_features(&self) -> Result<Vec<UserFeaturePairs>>;
    /// Every item's attributes a store before format 6 kept (tree
    /// `attributes`, in item id order).
    fn load_legacy_attributes(&self) -> Result<Vec<UserFeaturePairs>>;
    /// The recent-popularity counts a store before format 6 kept here
    /// (format 6 keeps them in a file the list of runs names).
    fn load_trending(&self) -> Result<Option<records::TrendingRecord>>;
    /// The items deleted from the whole store (`Store::delete`).
    fn load_blocked(&self) -> Result<Vec<u64>>;
    /// Replaces the set of deleted items. Not flushed.
    fn save_blocked(&self, ids: &[u64]) -> Result<()>;
    /// The log files recorded by `save_wal_files`; `None` for a store
    /// written before they were recorded.
    fn load_wal_files(&self) -> Result<Option<TrackedFiles>>;
    /// Records the log files and flushes: durable when it returns.
    fn save_wal_files(&self, files: &TrackedFiles) -> Result<()>;
    /// Makes every earlier write durable.
    fn flush(&self) -> Result<()>;
    /// Whether a write or flush has failed since the store was opened:
    /// the engine's state on disk is then unknown, and the store refuses
    /// writes (`Error::Poisoned`) until it is reopened.
    fn failed(&self) -> bool;
    /// Bytes the engine occupies on disk.
    fn disk_bytes(&self) -> Result<u64>;
    /// Files or directories under the metadata root that the live
    /// metadata does not explain (for `verify`; open never deletes them).
    fn strays(&self) -> Result<Vec<std::path::PathBuf>>;
    /// Rewrites the engine's files holding only the live records, to give
    /// back the space of deleted ones. Called with nothing else writing.
    fn rebuild(&self) -> Result<()>;
}
