//! Compaction: sealed segments with many dead rows (or too few rows) are
//! merged into new segments holding only their live rows.
//!
//! Order, as for a seal: (1) without locks, the live rows of the chosen
//! segments are copied into new segment files (ids reserved from the
//! manifest) and indexed; (2) under the write lock, rows that died during
//! (1) are killed in the new segments too, and one metadata batch commits a
//! checkpoint at the log's end with the manifest naming the new segments
//! instead of the old (the new segments' id orders say where each moved
//! item lives now), and the old segments' dead-row records gone; (3) the new version is
//! swapped in; (4) the old files are removed. A crash before (2) leaves the
//! new files unnamed, after it the old ones: the next open removes either.
//! Readers keep the version they hold; writers wait only for (2).

use std::sync::Arc;

use crate::error::Result;
use crate::segment::sealed::SealedSegment;
use crate::segment::Location;
use crate::store::segments::install::{self, Growing, Installation};
use crate::store::space::SpaceState;
use crate::store::Store;
use crate::version::Version;

/// A segment is rewritten when at least this share of its rows is dead...
const DEAD_SHARE: f64 = 0.2;
/// ...or when it is smaller than this share of `segment_rows` (merged with
/// other small ones).
const SMALL_SHARE: f64 = 0.25;

/// What a compaction did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CompactReport {
    /// Sealed segments chosen for rewriting (for a dry run: that would be
    /// rewritten), over every space compacted.
    pub segments_in: usize,
    /// Segments written in their place; 0 for a dry run, which does not
    /// plan the new segments.
    pub segments_out: usize,
    /// Rows in the segments chosen, dead ones included.
    pub rows_in: usize,
    /// Live rows of those segments, copied into the new ones (for a dry
    /// run: that would be).
    pub rows_kept: usize,
    /// Bytes of everything under the store directory before the
    /// compaction.
    pub bytes_before: u64,
    /// Bytes under the store directory after it; for a dry run, an
    /// estimate: `bytes_before` less the chosen segment files' dead share.
    pub bytes_after: u64,
    /// Run files of histories, features and attributes before the
    /// compaction.
    pub runs_before: usize,
    /// Run files after it: a whole-store compaction merges each kind into
    /// one; a dry run and a one-space compaction leave them as they were.
    pub runs_after: usize,
    /// Bytes of run files that the compaction's merges wrote (0 when it
    /// merged none).
    pub run_bytes_written: u64,
}

/// The segments worth rewriting: many dead rows, too few rows, or a file
/// without its id order (written before format 5; rewriting it gives
/// lookups the mapped order instead of one built in memory).
fn choose(version: &Version, segment_rows: usize) -> Vec<Arc<SealedSegment>> {
    let small = (segment_rows as f64 * SMALL_SHARE) as usize;
    let chosen: Vec<_> = version
        .sealed
        .iter()
        .filter(|s| {
            let dead = s.dead().count();
            dead as f64 >= DEAD_SHARE * s.count() as f64 && dead > 0 || s.count() < small || !s.has_id_order()
        })
        .cloned()
        .collect();
    // One small segment with no dead rows and its id order gains nothing
    // from a rewrite.
    if chosen.len() == 1 && chosen[0].dead().count() == 0 && chosen[0].has_id_order() {
        return Vec::new();
    }
    chosen
}

/// What [`Store::compact_with`] does: by default, compact every space.
///
/// ```
/// use emberdb::{CompactOptions, Durability, Options, SpaceSpec, Store};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("store");
/// let opts = Options::new(4).space("text", SpaceSpec::host(2)).durability(Durability::None);
/// let store = Store::open(&path, opts)?;
/// let text = store.space("text")?;
/// text.upsert_batch(&[1, 2, 3, 4], &[1.0, 0.0, 0.0, 1.0, 0.7, 0.7, 0.6, 0.8])?;
/// store.seal()?; // into a segment file
/// text.delete(3)?;
/// text.delete(4)?; // half its rows are dead now
///
/// let would = store.compact_with(&CompactOptions::new().space("text").dry_run())?;
/// assert_eq!((would.segments_in, would.rows_in, would.rows_kept), (1, 4, 2));
/// println!("would reclaim {} bytes", would.bytes_before - would.bytes_after);
/// assert_eq!(store.space("text")?.stats().rows, 4); // a dry run changes nothing
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactOptions {
    dry_run: bool,
    space: Option<String>,
}

impl CompactOptions {
    /// Compact every space.
    pub fn new() -> Self {
        CompactOptions::default()
    }

    /// Report what would be done, without doing it.
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// Compact the space `name` only (its segments; the runs of
    /// histories, features and attributes are store-wide and left).
    pub fn space(mut self, name: &str) -> Self {
        self.space = Some(name.to_string());
        self
    }

    /// Whether this is a dry run.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The one space compacted, if one is named.
    pub fn only_space(&self) -> Option<&str> {
        self.space.as_deref()
    }
}

impl Store {
    /// Rewrites the sealed segments whose dead rows (at least 20%) or size
    /// (under a quarter of `segment_rows`) warrant it, keeping only live
    /// rows, rebuilding their indexes, merging the runs and trimming the
    /// log. Runs while other threads query and write.
    /// [`Store::compact_with`] takes a dry run and one space.
    pub fn compact(&self) -> Result<CompactReport> {
        self.compact_with(&CompactOptions::new())
    }

    /// [`Store::compact`] as `options` say: a dry run (nothing changes;
    /// the report says what would), one space, or both.
    pub fn compact_with(&self, options: &CompactOptions) -> Result<CompactReport> {
        let mode = if options.dry_run {
            Compaction::DryRun
        } else {
            Compaction::Run
        };
        let only = match &options.space {
            Some(name) => Some(self.shared.space(name)?),
            None => None,
        };
        self.run_compaction(mode, only)
    }

    /// Runs, in the calling thread, every merge of runs (histories,
    /// features, attributes) that the background merger would pick now,
    /// beside any merges in flight, and returns how many it made: for hosts
    /// that set [`crate::Options::merge_threads`]`(0)` and merge at times of
    /// their choosing. Readers never wait for it.
    pub fn merge_runs(&self) -> Result<u64> {
        self.shared.refuse_if_read_only()?;
        crate::store::behaviour::merger::merge_due(&self.shared, &self.write, None)
    }

    /// What [`Store::compact`] would do now, without doing it.
    #[deprecated(note = "use Store::compact_with(&CompactOptions::new().dry_run())")]
    pub fn compact_dry_run(&self) -> Result<CompactReport> {
        self.compact_with(&CompactOptions::new().dry_run())
    }

    /// [`Store::compact`] of the space `name` only.
    #[deprecated(note = "use Store::compact_with(&CompactOptions::new().space(name))")]
    pub fn compact_space(&self, name: &str) -> Result<CompactReport> {
        self.compact_with(&CompactOptions::new().space(name))
    }

    fn run_compaction(&self, mode: Compaction, only: Option<&SpaceState>) -> Result<CompactReport> {
        let shared = &self.shared;
        shared.refuse_if_read_only()?;
        let _one = self.compaction.lock();
        let mut report = CompactReport {
            bytes_before: crate::fsutil::dir_size(&shared.path)?,
            ..CompactReport::default()
        };
        let mut reclaim = 0;
        let rows_before: usize = shared.spaces.iter().map(|s| s.catalog.version.load().rows()).sum();
        for space in &shared.spaces {
            if only.is_some_and(|o| o.number != space.number) {
                continue;
            }
            reclaim += self.compact_space_now(space, mode, &mut report)?;
        }
        // sled keeps the space of the dead-row records just deleted; when
        // they were a sizable share (a tenth of all rows, of every space:
        // the rebuild copies the whole database), copy the live records
        // into a fresh database. Under the write lock: nothing else writes
        // the metadata. (Rows merely moved cost the metadata nothing: their
        // new segments' id orders place them. See ARCHITECTURE.md,
        // Compaction.)
        let count_runs = || {
            let v = shared.behaviour.load();
            v.events.len() + v.features.len() + v.attributes.len()
        };
        report.runs_before = count_runs();
        if mode == Compaction::Run && only.is_none() {
            let written = shared.behaviour.merge_stats.bytes_written();
            crate::store::behaviour::merger::merge_all(shared, &self.write)?;
            report.run_bytes_written = shared.behaviour.merge_stats.bytes_written() - written;
        }
        report.runs_after = count_runs();
        let dropped_rows = report.rows_in - report.rows_kept;
        if mode == Compaction::Run && dropped_rows > 0 && dropped_rows * 10 >= rows_before.max(1) {
            let _writers_wait = self.write.lock();
            shared.meta.rebuild()?;
        }
        report.bytes_after = match mode {
            Compaction::DryRun => report.bytes_before.saturating_sub(reclaim),
            Compaction::Run => crate::fsutil::dir_size(&shared.path)?,
        };
        Ok(report)
    }

    /// Compacts one space, adding to `report`; for a dry run, returns the
    /// segment bytes it would reclaim.
    fn compact_space_now(&self, space: &SpaceState, mode: Compaction, report: &mut CompactReport) -> Result<u64> {
        let shared = &self.shared;
        if space.trainer.is_some() {
            // A trained space's segments are rewritten whole by each round
            // that publishes (without the rows of deleted items); merging
            // them here would leave its directory of rows behind.
            return Ok(0);
        }
        let dim = space.dim;
        let version = space.catalog.version.load_full();
        let chosen = choose(&version, shared.opts.segment_rows);
        let rows_in: usize = chosen.iter().map(|s| s.count()).sum();
        let rows_kept: usize = chosen.iter().map(|s| s.live_rows()).sum();
        report.segments_in += chosen.len();
        report.rows_in += rows_in;
        report.rows_kept += rows_kept;
        if mode == Compaction::DryRun || chosen.is_empty() {
            return Ok(chosen
                .iter()
                .map(|s| s.file_bytes() * s.dead().count() as u64 / s.count().max(1) as u64)
                .sum());
        }

        // (1) Live rows, with where each came from, packed into pieces of
        // `segment_rows`.
        let per = shared.opts.segment_rows.max(1);
        let mut ids = Vec::with_capacity(rows_kept);
        let mut values = Vec::with_capacity(rows_kept * dim);
        let mut origins = Vec::with_capacity(rows_kept);
        for segment in &chosen {
            let (s_ids, s_values) = segment.data()?;
            for (r, (id, row)) in s_ids.iter().zip(s_values.chunks_exact(dim)).enumerate() {
                if !segment.dead().is_dead(r) {
                    ids.push(*id);
                    values.extend_from_slice(row);
                    origins.push((Arc::clone(segment), r));
                }
            }
        }
        let pieces = ids.len().div_ceil(per);
        let first_id = self.write.lock().core.reserve_segment_ids(pieces as u64);
        let mut fresh = Vec::with_capacity(pieces);
        for (p, lo) in (0..ids.len()).step_by(per).enumerate() {
            let hi = (lo + per).min(ids.len());
            let id = first_id + p as u64;
            let rows = &values[lo * dim..hi * dim];
            fresh.push(install::write_indexed_segment(shared, space, id, &ids[lo..hi], rows)?);
        }

        // (2) + (3) Under the write lock.
        let dropped: Vec<u64> = chosen.iter().map(|s| s.id()).collect();
        let obsolete = self.write.lock().checkpoint_at_end(|core, end| {
            let mut change = Installation::of(space, Growing::Kept);
            // Deleted or replaced while we copied: dead here too, and
            // recorded so. Killed at the stamp its origin died at (in
            // stamp order), so that a reader behind that write, which
            // still has the origin alive, has this row alive too.
            let mut died = Vec::new();
            for (i, (segment, row)) in origins.iter().enumerate() {
                if segment.dead().is_dead(*row) {
                    died.push((segment.dead().stamp_of(*row), i));
                }
            }
            died.sort_unstable();
            for (stamp, i) in died {
                let at = Location {
                    segment: first_id + (i / per) as u64,
                    row: (i % per) as u32,
                };
                fresh[i / per].dead().kill_at(at.row as usize, stamp);
                change.dead.push(at);
            }
            change.added = fresh.clone();
            change.removed = dropped.clone();
            install::install(shared, core, end, change)
        })?;

        // (4) The old files.
        obsolete.remove(shared)?;
        report.segments_out += fresh.len();
        Ok(0)
    }
}

/// Whether a compaction runs or only reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compaction {
    Run,
    DryRun,
}
