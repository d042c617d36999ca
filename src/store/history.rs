//! User histories: each user's most recent items. The metadata store holds
//! them all; memory holds the recently used ones, within a byte budget
//! (`Options::history_cache_bytes`).
//!
//! A history changed by an event is written to the metadata store at the
//! next checkpoint, or earlier when the cache outgrows its budget: the
//! write path then writes out the least recently used histories (changed
//! ones in one batch) and drops them from memory (`evict_to_budget`),
//! after handing the log's bytes to the OS. Both are safe because applying
//! an event is idempotent: each history remembers the sequence number
//! after the last event applied to it, replay skips older ones (a history
//! written after the checkpoint is never double-counted), and a live event
//! that finds its history already past its sequence number (the history
//! reached sled, the log tail did not survive a power failure) trims the
//! entries the log does not hold.
//!
//! A history is stored whole (one record per user), so when the histories
//! in use outgrow the budget each event on an evicted user costs a read and
//! a rewrite of that user's record: size the budget to the active users
//! (`ember bench-memory` measures both sides of that trade).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::Result;
use crate::event::Event;
use crate::meta::records::{HistoryEntry, UserHistory};
use crate::meta::MetaStore;
use crate::train::round::{RoundEvent, UserEvents};

const SHARDS: usize = 64;

/// A history held in memory, with when it was last used (for eviction).
struct Cached {
    history: UserHistory,
    last_used: u64,
}

/// Bytes a history occupies in memory, as the budget counts them.
fn footprint(h: &UserHistory) -> usize {
    std::mem::size_of::<Cached>() + 16 + h.items.capacity() * std::mem::size_of::<HistoryEntry>()
}

#[derive(Default)]
struct Shard {
    users: HashMap<u64, Cached>,
    /// Users whose history changed since it was last written to the
    /// metadata store: they leave memory only through a write.
    dirty: HashSet<u64>,
}

impl Shard {
    /// The least recently used histories whose footprints add up to at
    /// least `excess` bytes, oldest first; changed ones only if `changed_too`.
    fn victims(&self, excess: usize, changed_too: bool) -> Vec<u64> {
        let mut candidates: Vec<(u64, u64, usize)> = self
            .users
            .iter()
            .filter(|(u, _)| changed_too || !self.dirty.contains(u))
            .map(|(u, c)| (c.last_used, *u, footprint(&c.history)))
            .collect();
        candidates.sort_unstable();
        let mut freed = 0;
        candidates
            .into_iter()
            .take_while(|(_, _, bytes)| {
                let more = freed < excess;
                freed += bytes;
                more
            })
            .map(|(_, u, _)| u)
            .collect()
    }
}

/// Every user's recent history (see the module documentation).
pub(crate) struct Histories {
    meta: Arc<dyn MetaStore>,
    capacity: usize,
    shards: Box<[Mutex<Shard>]>,
    budget: usize,
    /// `footprint` summed over every cached history.
    bytes: AtomicUsize,
    clock: AtomicU64,
}

impl Histories {
    pub fn new(meta: Arc<dyn MetaStore>, capacity: usize, cache_bytes: usize) -> Self {
        Histories {
            meta,
            capacity,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            budget: cache_bytes.max(SHARDS),
            bytes: AtomicUsize::new(0),
            clock: AtomicU64::new(0),
        }
    }

    fn shard(&self, user: u64) -> &Mutex<Shard> {
        // Fibonacci hashing spreads sequential user ids over the shards.
        &self.shards[(user.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS]
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Accounts for a cached history going from `before` to `after` bytes.
    fn resized(&self, before: usize, after: usize) {
        if after >= before {
            self.bytes.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.bytes.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    /// Caches a history just read from the metadata store.
    fn insert(&self, shard: &mut Shard, user: u64, history: UserHistory, now: u64) {
        self.resized(0, footprint(&history));
        if let Some(old) = shard.users.insert(
            user,
            Cached {
                history,
                last_used: now,
            },
        ) {
            self.resized(footprint(&old.history), 0);
        }
    }

    fn save(&self, batch: &[(u64, UserHistory)]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.meta.save_histories(batch)
    }

    fn remove(&self, shard: &mut Shard, user: u64) {
        if let Some(c) = shard.users.remove(&user) {
            self.resized(footprint(&c.history), 0);
        }
    }

    /// Replay: applies the event with sequence number `seq` unless the
    /// history already holds it (idempotent).
    pub fn apply(&self, seq: u64, event: &Event) -> Result<()> {
        self.record(seq, event, false)
    }

    /// The live write path: applies a new event, the log having just given
    /// it sequence number `seq`. A history that already counts `seq` holds
    /// events whose log records were lost (see the module documentation):
    /// the log is the record, so those entries go before this one goes in.
    pub fn append(&self, seq: u64, event: &Event) -> Result<()> {
        self.record(seq, event, true)
    }

    fn record(&self, seq: u64, event: &Event, live: bool) -> Result<()> {
        let now = self.tick();
        let mut shard = self.shard(event.user).lock();
        let shard = &mut *shard;
        if !shard.users.contains_key(&event.user) {
            let history = self.meta.load_history(event.user)?.unwrap_or_default();
            self.insert(shard, event.user, history, now);
        }
        let Some(cached) = shard.users.get_mut(&event.user) else {
            return Ok(()); // inserted just above, under the same lock
        };
        cached.last_used = now;
        let history = &mut cached.history;
        let before = footprint(history);
        if seq < history.next_seq {
            if !live {
                return Ok(());
            }
            history.items.retain(|e| e.seq < seq);
        }
        history.next_seq = seq + 1;
        let entry = HistoryEntry {
            seq,
            item: event.item,
            ts: event.ts,
            weight: event.weight,
        };
        // Events mostly arrive in time order: search from the newest end.
        let at = history
            .items
            .iter()
            .rposition(|e| e.ts <= event.ts)
            .map_or(0, |i| i + 1);
        history.items.insert(at, entry);
        while history.items.len() > self.capacity {
            history.items.pop_front();
        }
        let after = footprint(history);
        self.resized(before, after);
        shard.dirty.insert(event.user);
        Ok(())
    }

    /// The user's recent items, oldest first.
    pub fn items(&self, user: u64) -> Result<Vec<u64>> {
        self.entries(user, |e| e.item)
    }

    /// The user's items with their events' weights, oldest first.
    pub fn weighted_items(&self, user: u64) -> Result<Vec<(u64, f32)>> {
        self.entries(user, |e| (e.item, e.weight))
    }

    fn entries<T>(&self, user: u64, f: impl Fn(&HistoryEntry) -> T) -> Result<Vec<T>> {
        let now = self.tick();
        let mut shard = self.shard(user).lock();
        if let Some(c) = shard.users.get_mut(&user) {
            c.last_used = now;
            return Ok(c.history.items.iter().map(&f).collect());
        }
        let Some(history) = self.meta.load_history(user)? else {
            return Ok(Vec::new());
        };
        let items = history.items.iter().map(&f).collect();
        self.insert(&mut shard, user, history, now);
        if self.over_budget() {
            // Readers hold no write lock, so they drop only unchanged
            // histories (a changed one leaves memory through a write).
            for user in shard.victims(self.excess_per_shard(), false) {
                self.remove(&mut shard, user);
            }
        }
        Ok(items)
    }

    /// Histories held in memory, and their bytes (for `Stats`).
    pub fn cached(&self) -> (usize, usize) {
        let n = self.shards.iter().map(|s| s.lock().users.len()).sum();
        (n, self.bytes.load(Ordering::Relaxed))
    }

    /// Whether the cache holds more than its budget, so that the write path
    /// should call `evict_to_budget`.
    pub fn over_budget(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) > self.budget
    }

    /// Bytes each shard should give up to bring the whole cache back to
    /// three quarters of its budget (so that eviction runs once in a while,
    /// not at every event).
    fn excess_per_shard(&self) -> usize {
        let target = self.budget / 4 * 3;
        self.bytes.load(Ordering::Relaxed).saturating_sub(target) / SHARDS
    }

    /// Brings the cache back under its budget: the least recently used
    /// histories leave memory, the changed ones among them written to the
    /// metadata store first (in one batch, not flushed: the next checkpoint
    /// makes them durable, and until then the log has their events). Called
    /// by the write path, under the write lock, after the log's bytes were
    /// handed to the OS: no history changes meanwhile, and none reaches the
    /// metadata store ahead of its events' log records.
    pub fn evict_to_budget(&self) -> Result<()> {
        let excess = self.excess_per_shard();
        let mut chosen = Vec::with_capacity(SHARDS);
        let mut batch = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            let victims = shard.victims(excess, true);
            batch.extend(
                victims
                    .iter()
                    .filter(|u| shard.dirty.contains(u))
                    .filter_map(|u| shard.users.get(u).map(|c| (*u, c.history.clone()))),
            );
            chosen.push(victims);
        }
        self.save(&batch)?;
        for (shard, victims) in self.shards.iter().zip(chosen) {
            let mut shard = shard.lock();
            for user in victims {
                shard.dirty.remove(&user);
                self.remove(&mut shard, user);
            }
        }
        Ok(())
    }

    /// Every user's events with a sequence number below `cut`, as (item,
    /// seq) oldest first, sorted by user: what a training round trains on.
    /// Events applied concurrently are at or above the cut, so they are
    /// left out whether or not they land during the walk.
    pub fn snapshot(&self, cut: u64) -> Result<Vec<UserEvents>> {
        let mut out = Vec::new();
        let mut in_memory = HashSet::new();
        let take = |user: u64, h: &UserHistory| UserEvents {
            user,
            events: h
                .items
                .iter()
                .filter(|e| e.seq < cut)
                .map(|e| RoundEvent {
                    item: e.item,
                    seq: e.seq,
                    ts: e.ts,
                    weight: e.weight,
                })
                .collect(),
        };
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for (&user, c) in &shard.users {
                in_memory.insert(user);
                out.push(take(user, &c.history));
            }
        }
        // Users not in memory (never loaded, or evicted, which writes a
        // changed history out first) have no events that the metadata
        // store lacks: the stored history is theirs. (One loaded after the
        // walk above still has the same events below the cut.)
        self.meta.for_each_history(&mut |user, h| {
            if !in_memory.contains(&user) {
                out.push(take(user, &h));
            }
            Ok(())
        })?;
        out.retain(|u| !u.events.is_empty());
        out.sort_unstable_by_key(|u| u.user);
        Ok(out)
    }

    /// The user's `n` most recent items, newest first.
    pub fn recent(&self, user: u64, n: usize) -> Result<Vec<u64>> {
        let shard = self.shard(user).lock();
        if let Some(c) = shard.users.get(&user) {
            return Ok(c.history.items.iter().rev().take(n).map(|e| e.item).collect());
        }
        drop(shard);
        Ok(self.items(user)?.into_iter().rev().take(n).collect())
    }

    /// Writes every changed history to the metadata store (not yet
    /// flushed): the checkpoint's part.
    pub fn persist_dirty(&self) -> Result<()> {
        for shard in self.shards.iter() {
            let batch: Vec<(u64, UserHistory)> = {
                let mut shard = shard.lock();
                let dirty = std::mem::take(&mut shard.dirty);
                dirty
                    .into_iter()
                    .filter_map(|u| shard.users.get(&u).map(|c| (u, c.history.clone())))
                    .collect()
            };
            if let Err(e) = self.save(&batch) {
                // Keep them dirty so a later checkpoint writes them.
                shard.lock().dirty.extend(batch.iter().map(|(u, _)| *u));
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::sled_meta::SledMeta;

    fn histories(dir: &std::path::Path, budget: usize) -> Histories {
        let meta: Arc<dyn MetaStore> = Arc::new(SledMeta::open(dir, false, 1 << 20).unwrap());
        Histories::new(meta, 100, budget)
    }

    #[test]
    fn memory_stays_within_the_budget_and_evicted_histories_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let budget = 256 << 10;
        let h = histories(dir.path(), budget);
        let users = 20_000u64;
        let mut seq = 1;
        for round in 0..5u64 {
            for user in 0..users {
                h.append(seq, &Event::new(user, user * 10 + round, round)).unwrap();
                seq += 1;
                if h.over_budget() {
                    h.evict_to_budget().unwrap();
                }
                let (_, bytes) = h.cached();
                // At most one event's growth past the budget.
                assert!(bytes <= budget + 4096, "{bytes} bytes cached");
            }
        }
        let (cached, bytes) = h.cached();
        assert!(
            cached < users as usize / 4,
            "everything stayed in memory: {cached} histories"
        );
        assert!(bytes <= budget + 4096, "{bytes} bytes");
        // Every history is whole, in memory or not.
        for user in (0..users).step_by(97) {
            let expected: Vec<u64> = (0..5).map(|round| user * 10 + round).collect();
            assert_eq!(h.items(user).unwrap(), expected, "user {user}");
        }
        let snapshot = h.snapshot(u64::MAX).unwrap();
        assert_eq!(snapshot.len(), users as usize);
        assert!(snapshot.iter().all(|u| u.events.len() == 5));
    }

    #[test]
    fn replay_skips_what_a_history_holds_but_a_live_event_trims_a_history_ahead_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let h = histories(dir.path(), 1 << 20);
        for seq in 1..=5 {
            h.apply(seq, &Event::new(7, 100 + seq, seq)).unwrap();
        }
        // Replay of an event the history already holds changes nothing.
        h.apply(3, &Event::new(7, 103, 3)).unwrap();
        assert_eq!(h.items(7).unwrap(), vec![101, 102, 103, 104, 105]);
        // The log lost seq 4 and 5 (never durable): the next live event
        // gets seq 4, and the entries the log does not hold go.
        h.append(4, &Event::new(7, 999, 4)).unwrap();
        assert_eq!(h.items(7).unwrap(), vec![101, 102, 103, 999]);
    }
}
