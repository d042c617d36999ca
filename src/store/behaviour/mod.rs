//! The store's behaviour of record: user histories, user features and
//! item attributes, in immutable run files (`crate::runs`) and, for what
//! was applied since the last checkpoint, in memory ([`recent`]).
//!
//! A version ([`BehaviourVersion`]) is one consistent set of runs of each
//! kind together with the recent part they are read with; readers load it
//! once (a lock-free `ArcSwap`), so a checkpoint's flush (new runs, an
//! empty recent part) or a merge (one run replacing adjacent ones) is
//! installed as one swap, and a reader never sees an event twice or not
//! at all. Every change of the set of runs is committed in the metadata
//! (`RunManifest`, key `b"live_runs"`) before the swap, under the write lock:
//! a flush in the checkpoint's batch (with `through_seq`, the sequence
//! number below which replay skips behaviour records), a merge in a batch
//! of its own (`merger`).
//!
//! A history is the user's newest `history_len` events by (timestamp,
//! sequence number): the union of the user's entries in every run and in
//! the recent part, ordered and cut. Merges cut each user's entries to
//! that length, which cannot change the union's newest `history_len`, so a
//! history reads the same before and after a merge.

pub(crate) mod attributes;
pub(crate) mod check;
pub(crate) mod features;
pub(crate) mod flush;
pub(crate) mod merger;
pub(crate) mod orphans;
pub(crate) mod recent;
pub(crate) mod scan;
pub(crate) mod upgrade;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::error::{Error, IoContext, Result};
use crate::event::Event;
use crate::meta::records::{RunManifest, RunRecord};
use crate::runs::event_run::{self, EventEntry, EventRun};
use crate::runs::keyed_run::{self, KeyedRun};
use crate::runs::merge::history_of;
use crate::runs::{self, RunHeader, RunKind};
use crate::train::round::{Histories, HistoriesPart, RoundEvent};
use recent::{PairSet, Recent};

/// At most this many threads gather a round's histories side by side (one
/// merge over the runs per part of the user space): the gather reads
/// mapped runs and writes the round's events, so past a few threads it is
/// bound by memory, not by the cores.
pub(crate) const GATHER_THREADS: usize = 4;

/// Below this many entries (runs and recent part) a round's gather runs on
/// the caller's thread: starting threads would cost more than it saves.
const GATHER_SPLIT_ENTRIES: u64 = 1_000_000;

/// One consistent set of runs and the recent part read with them.
pub(crate) struct BehaviourVersion {
    /// Each kind's runs, oldest first (as the manifest lists them).
    pub events: Vec<Arc<EventRun>>,
    pub features: Vec<Arc<KeyedRun>>,
    pub attributes: Vec<Arc<KeyedRun>>,
    pub recent: Arc<Recent>,
}

impl BehaviourVersion {
    fn keyed(&self, kind: RunKind) -> &Vec<Arc<KeyedRun>> {
        match kind {
            RunKind::Features => &self.features,
            _ => &self.attributes,
        }
    }
}

/// Runs written by a checkpoint, installed once its commit is flushed.
#[must_use = "written runs are read only once installed"]
pub(crate) struct Flushed {
    events: Option<Arc<EventRun>>,
    features: Option<Arc<KeyedRun>>,
    attributes: Option<Arc<KeyedRun>>,
}

/// Histories, features and attributes (see the module docs).
pub(crate) struct Behaviour {
    dir: PathBuf,
    history_len: usize,
    version: ArcSwap<BehaviourVersion>,
    /// Held shared by each merge the policy picks, alone by a merge of
    /// everything (`compact`) and by `verify` (see `merger`).
    pub merging: parking_lot::RwLock<()>,
    /// The inputs of the merges in flight, by kind and id.
    pub merging_runs: parking_lot::Mutex<std::collections::HashSet<(RunKind, u64)>>,
    pub merge_stats: merger::MergeStats,
    /// Users with features (counted at open, kept by `set_features`).
    users_with_features: std::sync::atomic::AtomicUsize,
}

impl Behaviour {
    /// Opens the runs that `runs` names in `dir`, each checked (header,
    /// footer, index; keyed runs whole, since opening reads them anyway).
    pub fn open(dir: &Path, runs: &RunManifest, history_len: usize) -> Result<Self> {
        let path = |kind, id| dir.join(runs::file_name(kind, id));
        let events = runs
            .events
            .iter()
            .map(|r| EventRun::open(&path(RunKind::Events, r.id), r.id).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        let keyed = |kind| {
            runs.of(kind)
                .iter()
                .map(|r| KeyedRun::open(&path(kind, r.id), kind, r.id).map(Arc::new))
                .collect::<Result<Vec<_>>>()
        };
        let behaviour = Behaviour {
            dir: dir.to_path_buf(),
            history_len,
            version: ArcSwap::from_pointee(BehaviourVersion {
                events,
                features: keyed(RunKind::Features)?,
                attributes: keyed(RunKind::Attributes)?,
                recent: Arc::new(Recent::default()),
            }),
            merging: parking_lot::RwLock::new(()),
            merging_runs: parking_lot::Mutex::default(),
            merge_stats: merger::MergeStats::default(),
            users_with_features: std::sync::atomic::AtomicUsize::new(0),
        };
        let mut users = 0;
        behaviour.for_each_keyed(RunKind::Features, &mut |_, _| {
            users += 1;
            Ok(())
        })?;
        behaviour.users_with_features.store(users, Ordering::Relaxed);
        Ok(behaviour)
    }

    pub fn users_with_features(&self) -> usize {
        self.users_with_features.load(Ordering::Relaxed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn history_len(&self) -> usize {
        self.history_len
    }

    pub fn load(&self) -> arc_swap::Guard<Arc<BehaviourVersion>> {
        self.version.load()
    }

    /// Applies a logged event with sequence number `seq`.
    pub fn append(&self, seq: u64, event: &Event) {
        self.load().recent.events.push(EventEntry {
            user: event.user,
            seq,
            item: event.item,
            ts: event.ts,
            weight: event.weight,
            reserved: 0,
        });
    }

    /// Applies a logged features record (an empty set removes them).
    pub fn set_features(&self, seq: u64, user: u64, features: PairSet) {
        // A run that cannot be read counts as none: the count is for Stats.
        let had = self.features(user).is_ok_and(|f| !f.is_empty());
        let has = !features.is_empty();
        self.load().recent.features.set(user, seq, features);
        match (had, has) {
            (false, true) => {
                self.users_with_features.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                self.users_with_features.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Applies a logged attributes record (the runs' side; the postings
    /// are `ItemAttributes`').
    pub fn set_attributes(&self, seq: u64, item: u64, attributes: PairSet) {
        self.load().recent.attributes.set(item, seq, attributes);
    }

    /// Bytes of the recent part.
    pub fn recent_bytes(&self) -> usize {
        self.load().recent.bytes()
    }

    /// The user's history, oldest first.
    pub fn history(&self, user: u64) -> Result<Vec<EventEntry>> {
        let v = self.load();
        prefetch(&v.events, user);
        // The slices first, so the history is allocated once.
        let mut slices: Vec<&[EventEntry]> = Vec::with_capacity(v.events.len());
        for run in &v.events {
            slices.push(run.user_slice(user)?);
        }
        let mut out = Vec::with_capacity(slices.iter().map(|s| s.len()).sum::<usize>() + 8);
        for slice in slices {
            out.extend_from_slice(slice);
        }
        v.recent.events.extend_user(user, &mut out);
        history_of(&mut out, self.history_len);
        Ok(out)
    }

    /// The user's recent items, oldest first.
    pub fn items(&self, user: u64) -> Result<Vec<u64>> {
        Ok(self.history(user)?.iter().map(|e| e.item).collect())
    }

    /// The user's items with their events' weights, oldest first.
    pub fn weighted_items(&self, user: u64) -> Result<Vec<(u64, f32)>> {
        Ok(self.history(user)?.iter().map(|e| (e.item, e.weight)).collect())
    }

    /// The user's `n` most recent items, newest first.
    pub fn recent(&self, user: u64, n: usize) -> Result<Vec<u64>> {
        Ok(self.history(user)?.iter().rev().take(n).map(|e| e.item).collect())
    }

    /// The user's features (empty if none).
    pub fn features(&self, user: u64) -> Result<PairSet> {
        self.keyed_value(RunKind::Features, user)
    }

    fn keyed_value(&self, kind: RunKind, id: u64) -> Result<PairSet> {
        let v = self.load();
        let recent = match kind {
            RunKind::Features => &v.recent.features,
            _ => &v.recent.attributes,
        };
        if let Some((_, value)) = recent.get(id) {
            return Ok(value.map(|set| set.as_ref().clone()).unwrap_or_default());
        }
        for run in v.keyed(kind).iter().rev() {
            if let Some(found) = run.get(id)? {
                return Ok(found.value.unwrap_or_default());
            }
        }
        Ok(Vec::new())
    }

    /// Calls `f` with every user's history below `cut` (its newest
    /// `history_len` events, then those with a smaller sequence number),
    /// in user order; users with none below the cut are skipped.
    pub fn for_each_history(&self, cut: u64, f: &mut dyn FnMut(u64, &[EventEntry]) -> Result<()>) -> Result<()> {
        let v = self.load_full();
        let mut below = Vec::new();
        scan::histories(&v.events, &v.recent, self.history_len, &mut |user, entries| {
            below.clear();
            below.extend(entries.iter().filter(|e| e.seq < cut).copied());
            if below.is_empty() {
                return Ok(());
            }
            f(user, &below)
        })
    }

    /// Every user's events below `cut`, sorted by user: what a training
    /// round trains on. Gathered by merges over the runs, one per part of
    /// the user space, side by side on up to [`GATHER_THREADS`] threads
    /// (split where the largest run's blocks split evenly), then joined in
    /// user order.
    pub fn round_events(&self, cut: u64) -> Result<Histories> {
        let v = self.load();
        let entries: u64 = v.events.iter().map(|r| r.count()).sum::<u64>() + v.recent.events.entries() as u64;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(GATHER_THREADS);
        self.round_events_in(cut, if entries < GATHER_SPLIT_ENTRIES { 1 } else { threads })
    }

    /// [`Self::round_events`] in (up to) `parts` parts side by side.
    pub(crate) fn round_events_in(&self, cut: u64, parts: usize) -> Result<Histories> {
        let v = self.load_full();
        let recent = v.recent.events.sorted();
        let bounds = match v.events.iter().max_by_key(|r| r.count()) {
            Some(largest) if parts > 1 => largest.user_quantiles(parts)?,
            _ => Vec::new(),
        };
        let ranges: Vec<(u64, Option<u64>)> = std::iter::once(0)
            .chain(bounds.iter().copied())
            .zip(bounds.iter().copied().map(Some).chain(std::iter::once(None)))
            .collect();
        // Room for every entry, spread over the parts (reserved address
        // space, touched only as it fills; a history's truncation and the
        // cut only make it less).
        let entries = v.events.iter().map(|r| r.count() as usize).sum::<usize>() + recent.len();
        let room = entries.div_ceil(ranges.len()) + entries / 8;
        let gather = |(from, to): (u64, Option<u64>)| -> Result<HistoriesPart> {
            let started = std::time::Instant::now();
            let mut part = HistoriesPart::with_capacity(room);
            scan::histories_between(&v.events, &recent, self.history_len, from, to, &mut |user, entries| {
                part.push(
                    user,
                    entries.iter().filter(|e| e.seq < cut).map(|e| RoundEvent {
                        item: e.item,
                        seq: e.seq,
                        ts: e.ts,
                    }),
                );
                Ok(())
            })?;
            log::debug!(
                "gathered users [{from}, {to:?}) in {:.2} s",
                started.elapsed().as_secs_f64()
            );
            Ok(part)
        };
        if ranges.len() == 1 {
            return Ok(Histories::from_parts(vec![gather(ranges[0])?]));
        }
        let parts: Vec<Result<HistoriesPart>> = std::thread::scope(|scope| {
            let handles: Vec<_> = ranges
                .iter()
                .map(|&range| {
                    std::thread::Builder::new()
                        .name("emberdb-gather".into())
                        .spawn_scoped(scope, move || gather(range))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.at(&self.dir)?.join().unwrap_or_else(|_| {
                        Err(Error::Corruption {
                            file: self.dir.clone(),
                            offset: 0,
                            reason: "gathering the histories failed (a gather thread panicked)".into(),
                        })
                    })
                })
                .collect()
        });
        Ok(Histories::from_parts(parts.into_iter().collect::<Result<Vec<_>>>()?))
    }

    /// Calls `f` with every user's features (or item's attributes), in id
    /// order.
    pub fn for_each_keyed(&self, kind: RunKind, f: &mut dyn FnMut(u64, PairSet) -> Result<()>) -> Result<()> {
        let v = self.load_full();
        let recent = match kind {
            RunKind::Features => v.recent.features.sorted(),
            _ => v.recent.attributes.sorted(),
        };
        scan::keyed(v.keyed(kind), &recent, f)
    }

    pub fn load_full(&self) -> Arc<BehaviourVersion> {
        self.version.load_full()
    }

    /// Writes the recent part as runs (at most one of each kind), each under
    /// an id reserved from `runs`, which is updated to name them with
    /// `through_seq` (every record before it is now in a run). Called under
    /// the write lock by a checkpoint, whose commit carries `runs`; nothing
    /// is read from the new runs until [`Behaviour::install_flushed`].
    pub fn write_recent(&self, runs: &mut RunManifest, through_seq: u64) -> Result<Flushed> {
        std::fs::create_dir_all(&self.dir).at(&self.dir)?;
        let v = self.load();
        // Each kind's runs stay adjacent: a new one starts where the
        // kind's last one ended (a checkpoint without features writes no
        // features run).
        let header = |runs: &mut RunManifest, kind: RunKind| {
            let id = runs.next_id;
            runs.next_id += 1;
            let from_seq = runs.of(kind).last().map_or(0, |r| r.to_seq);
            RunHeader {
                id,
                from_seq,
                to_seq: through_seq.max(from_seq),
                history_len: 0,
                bottom: false,
            }
        };
        let mut flushed = Flushed {
            events: None,
            features: None,
            attributes: None,
        };
        if v.recent.events.entries() > 0 {
            let sorted = v.recent.events.sorted();
            let run = event_run::write_event_run(&self.dir, header(runs, RunKind::Events), sorted)?;
            runs.events.push(record_of_events(&run));
            flushed.events = Some(run);
        }
        for kind in [RunKind::Features, RunKind::Attributes] {
            let recent = match kind {
                RunKind::Features => &v.recent.features,
                _ => &v.recent.attributes,
            };
            if recent.len() == 0 {
                continue;
            }
            let values = recent.sorted();
            let run = keyed_run::write_keyed_run(
                &self.dir,
                kind,
                header(runs, kind),
                values
                    .into_iter()
                    .map(|(id, (seq, set))| (id, seq, set.map(|s| s.as_ref().clone()))),
            )?;
            runs.of_mut(kind).push(record_of_keyed(&run));
            match kind {
                RunKind::Features => flushed.features = Some(run),
                _ => flushed.attributes = Some(run),
            }
        }
        runs.through_seq = runs.through_seq.max(through_seq);
        Ok(flushed)
    }

    /// Installs a checkpoint's runs with an empty recent part: one swap.
    /// Under the write lock, after the commit naming them is flushed.
    pub fn install_flushed(&self, flushed: Flushed) {
        let v = self.load_full();
        let mut events = v.events.clone();
        events.extend(flushed.events);
        let mut features = v.features.clone();
        features.extend(flushed.features);
        let mut attributes = v.attributes.clone();
        attributes.extend(flushed.attributes);
        self.version.store(Arc::new(BehaviourVersion {
            events,
            features,
            attributes,
            recent: Arc::new(Recent::default()),
        }));
    }

    /// Swaps `next` in (a merge's install, under the write lock).
    fn store(&self, next: BehaviourVersion) {
        self.version.store(Arc::new(next));
    }

    /// What `Stats` reports.
    pub fn stats(&self) -> RunFileStats {
        let v = self.load();
        let keyed_bytes = |runs: &Vec<Arc<KeyedRun>>| runs.iter().map(|r| r.bytes()).sum::<u64>();
        RunFileStats {
            event_runs: v.events.len(),
            event_entries: v.events.iter().map(|r| r.count()).sum(),
            event_run_bytes: v.events.iter().map(|r| r.bytes()).sum(),
            feature_runs: v.features.len(),
            attribute_runs: v.attributes.len(),
            keyed_run_bytes: keyed_bytes(&v.features) + keyed_bytes(&v.attributes),
            recent_events: v.recent.events.entries() as u64,
            recent_users: v.recent.events.users() as u64,
            recent_bytes: v.recent.bytes() as u64,
            merges: self.merge_stats.merges(),
            merged_bytes: self.merge_stats.bytes_written(),
            merges_in_flight: self.merge_stats.in_flight(),
            most_merges_at_once: self.merge_stats.most_at_once(),
        }
    }
}

/// The manifest's record of a run (`count` entries, `bytes` long).
fn record_of(id: u64, count: u64, bytes: u64, header: RunHeader) -> RunRecord {
    RunRecord {
        id,
        entries: count,
        bytes,
        from_seq: header.from_seq,
        to_seq: header.to_seq,
    }
}

/// The manifest's record of an event run.
pub(crate) fn record_of_events(run: &EventRun) -> RunRecord {
    record_of(run.id(), run.count(), run.bytes(), run.header())
}

/// The manifest's record of a keyed run.
pub(crate) fn record_of_keyed(run: &KeyedRun) -> RunRecord {
    record_of(run.id(), run.count(), run.bytes(), run.header())
}

/// The runs that hold the store's behaviour, and the part in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunFileStats {
    /// Event runs (`ev-*.run` files) in use.
    pub event_runs: usize,
    /// Events held in the event runs, summed over them.
    pub event_entries: u64,
    /// Bytes of the event run files.
    pub event_run_bytes: u64,
    /// Runs of user features (`Store::set_user_features`) in use.
    pub feature_runs: usize,
    /// Runs of item attributes (`Store::set_attributes`) in use.
    pub attribute_runs: usize,
    /// Bytes of the feature and attribute run files together.
    pub keyed_run_bytes: u64,
    /// Events applied since the last checkpoint, held in memory.
    pub recent_events: u64,
    /// Distinct users of those events.
    pub recent_users: u64,
    /// Bytes of everything held in memory since the last checkpoint
    /// (events, features, attributes), as `Options::recent_bytes` bounds it.
    pub recent_bytes: u64,
    /// Merges of runs finished since the store was opened.
    pub merges: u64,
    /// Bytes of run files those merges wrote.
    pub merged_bytes: u64,
    /// Merges running now.
    pub merges_in_flight: usize,
    /// The most merges that ran at once since the store was opened (at
    /// most `Options::merge_threads`, plus callers of `Store::merge_runs`).
    pub most_merges_at_once: usize,
}

/// Loads the cache lines a history of `user` reads first, every run's
/// directory slot and then every run's first entry, so that the misses
/// of all runs overlap (two rounds of misses, not two a run in turn).
fn prefetch(runs: &[Arc<EventRun>], user: u64) {
    const AT_ONCE: usize = 32;
    for chunk in runs.chunks(AT_ONCE) {
        let mut hints = [None; AT_ONCE];
        for (hint, run) in hints.iter_mut().zip(chunk) {
            *hint = run.peek(user);
        }
        let touched = hints
            .iter()
            .zip(chunk)
            .filter_map(|(hint, run)| hint.map(|pos| run.touch_entry(pos)))
            .fold(0, |acc, v| acc ^ v);
        std::hint::black_box(touched);
    }
}

#[cfg(test)]
mod tests;
