//! Metadata: the configuration, the manifest (live segments, checkpoint), the
//! item registry (which sealed row holds each id), dead rows, and user
//! histories. [`MetaStore`] is the small interface the store needs; sled is
//! the engine behind it today ([`sled_meta::SledMeta`]).

pub(crate) mod records;
pub(crate) mod sled_meta;

use crate::error::Result;
use crate::segment::Location;
use records::{Manifest, StoredConfig, UserHistory};

/// What the store asks of its metadata engine. Writes become durable at
/// `flush`; anything newer than the last flush is rebuilt from the WAL, so
/// every write here must be safe to repeat (replay is idempotent).
pub(crate) trait MetaStore: Send + Sync {
    fn load_config(&self) -> Result<Option<StoredConfig>>;
    fn save_config(&self, config: &StoredConfig) -> Result<()>;
    fn load_manifest(&self) -> Result<Option<Manifest>>;
    fn save_manifest(&self, manifest: &Manifest) -> Result<()>;
    /// Atomically installs `manifest`, takes the `retired` ids out of the
    /// registry (recording their rows dead) and registers `rows` (ids of a
    /// segment the manifest adds, if any): after a crash, all of it is there
    /// or none. Retirements reach the metadata only this way, together with
    /// the checkpoint that covers their log records: a retirement whose
    /// record did not survive a crash must not survive it either.
    /// `dropped_segments` (removed by a compaction) lose their dead-row
    /// records in the same batch; `dead` rows are recorded dead without
    /// touching the registry.
    fn commit(
        &self,
        manifest: &Manifest,
        retired: &[(u64, Location)],
        rows: &[(u64, Location)],
        dropped_segments: &[u64],
        dead: &[Location],
    ) -> Result<()>;
    /// The sealed row that holds `id`, if it is live in a sealed segment.
    fn location(&self, id: u64) -> Result<Option<Location>>;
    /// Every registry entry: (item, the sealed row that holds it).
    fn registry(&self) -> Result<Vec<(u64, Location)>>;
    /// Every dead row of every sealed segment.
    fn dead_rows(&self) -> Result<Vec<Location>>;
    fn load_history(&self, user: u64) -> Result<Option<UserHistory>>;
    /// Calls `f` with every stored history (in user id order).
    fn for_each_history(&self, f: &mut dyn FnMut(u64, UserHistory) -> Result<()>) -> Result<()>;
    fn save_histories(&self, histories: &[(u64, UserHistory)]) -> Result<()>;
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
