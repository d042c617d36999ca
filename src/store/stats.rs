//! [`Stats`]: what a store holds and occupies, space by space.

use std::sync::atomic::Ordering;

use super::{RunFileStats, Space, SpaceStats, Store, TrainerStats};
use crate::error::Result;

/// Counts of what a store holds and occupies. Row and segment counts are
/// totals over every space; `spaces` has each space's own.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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
    /// Sealed segments whose Faiss index is in use (the others are
    /// searched exactly: too small to index, not indexed yet, or their
    /// build failed).
    pub indexed_segments: usize,
    /// How each sealed segment is searched, one short description per
    /// segment, space by space (`hnsw32`, `ivf894`, `exact`).
    pub segment_kinds: Vec<String>,
    /// Faiss indexes built since the store was opened (in the background
    /// after a seal, or by a compaction).
    pub index_builds: u64,
    /// Index files loaded from disk since the store was opened (at open,
    /// mostly).
    pub index_loads: u64,
    /// Index builds that failed since the store was opened (logged; those
    /// segments are searched exactly).
    pub index_failures: u64,
    /// The default space's trainer (or, when the default space is
    /// host-fed, the first trained space's): generation, vocabulary, rounds.
    pub trainer: Option<TrainerStats>,
    /// Every space, the default one first.
    pub spaces: Vec<SpaceStats>,
    /// Users with events since the last checkpoint, whose newest events
    /// are in memory; the rest of every history is in runs.
    pub cached_histories: usize,
    /// Bytes of behaviour (events, features, attributes) held in memory
    /// since the last checkpoint, bounded by `Options::recent_bytes`.
    pub cached_history_bytes: usize,
    /// Users with features (`Store::set_user_features`), kept in runs.
    pub users_with_features: usize,
    /// Items with attributes (`Store::set_attributes`), kept in runs and,
    /// with their posting lists, in memory.
    pub items_with_attributes: usize,
    /// The run files holding histories, features and attributes.
    pub runs: RunFileStats,
    /// Items with events in the trending window (`Query::popular`).
    pub trending_items: usize,
    /// Items deleted from the whole store (`Store::delete`) and not
    /// undeleted since.
    pub deleted_items: usize,
    /// The instruction set the distance and training kernels run on,
    /// chosen at run time from the CPU (`avx2+fma`, `portable`).
    pub kernels: &'static str,
    /// What the linked Faiss was compiled for, in Faiss's words (`OPTIMIZE
    /// AVX512`, `OPTIMIZE AVX2`, or `OPTIMIZE GENERIC` for a build without
    /// `-march`: see the README, "Faiss flags").
    pub faiss_build: String,
}

impl Store {
    /// Counts of rows, segments and bytes.
    pub fn stats(&self) -> Result<Stats> {
        let counters = &self.shared.indexer.counters;
        let wal_bytes = crate::fsutil::dir_size(&self.shared.wal_dir)?;
        let runs = self.shared.behaviour.stats();
        let spaces: Vec<SpaceStats> = self.spaces().iter().map(Space::stats).collect();
        let total = |f: fn(&SpaceStats) -> usize| spaces.iter().map(f).sum::<usize>();
        Ok(Stats {
            rows: total(|s| s.rows),
            live_rows: total(|s| s.live_rows),
            sealed_segments: total(|s| s.sealed_segments),
            growing_rows: total(|s| s.growing_rows),
            wal_bytes,
            segment_bytes: spaces.iter().map(|s| s.segment_bytes).sum(),
            meta_bytes: self.shared.meta.disk_bytes()?,
            disk_bytes: crate::fsutil::dir_size(&self.shared.path)?,
            wal_fsyncs: self.sync.fsync_count(),
            indexed_segments: total(|s| s.indexed_segments),
            segment_kinds: spaces.iter().flat_map(|s| s.segment_kinds.iter().cloned()).collect(),
            index_builds: counters.builds.load(Ordering::Relaxed),
            index_loads: counters.loads.load(Ordering::Relaxed),
            index_failures: counters.failures.load(Ordering::Relaxed),
            trainer: spaces.iter().find_map(|s| s.trainer.clone()),
            spaces,
            cached_histories: runs.recent_users as usize,
            cached_history_bytes: runs.recent_bytes as usize,
            users_with_features: self.shared.behaviour.users_with_features(),
            runs,
            items_with_attributes: self.shared.attributes.len(),
            trending_items: self.shared.trending.len(),
            deleted_items: self.shared.blocked.len(),
            kernels: crate::kernels::simd_level().name(),
            faiss_build: crate::index::faiss_compile_options(),
        })
    }
}
