//! User histories: each user's most recent items, kept in memory for the
//! query path and written to the metadata store at checkpoints.
//!
//! Applying an event is idempotent: each history remembers the sequence
//! number after the last event applied to it, and replay skips older ones.
//! So a history written to sled *after* the checkpoint (by a later
//! checkpoint that crashed half-way, or by sled's background flush) is never
//! double-counted.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::Result;
use crate::event::Event;
use crate::meta::records::{HistoryEntry, UserHistory};
use crate::meta::MetaStore;
use crate::train::round::UserEvents;

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
    /// metadata store: they stay in memory until written.
    dirty: HashSet<u64>,
    /// `footprint` summed over `users`.
    bytes: usize,
}

impl Shard {
    /// Evicts the least recently used clean histories until the shard is
    /// back under `budget` (to three quarters of it, so that eviction runs
    /// once in a while rather than at every load).
    fn evict(&mut self, budget: usize) {
        if self.bytes <= budget {
            return;
        }
        let mut clean: Vec<(u64, u64)> = self
            .users
            .iter()
            .filter(|(u, _)| !self.dirty.contains(u))
            .map(|(u, c)| (c.last_used, *u))
            .collect();
        clean.sort_unstable();
        for (_, user) in clean {
            if self.bytes <= budget / 4 * 3 {
                break;
            }
            if let Some(c) = self.users.remove(&user) {
                self.bytes = self.bytes.saturating_sub(footprint(&c.history));
            }
        }
    }
}

/// Every user's recent history: the ones in use in memory (an LRU bounded
/// by `cache_bytes`, plus the dirty ones until they are written out), the
/// rest in the metadata store. The metadata store is the backing store,
/// not only the checkpoint: a history may be written there before a
/// checkpoint (when dirty histories outgrow the budget), which is safe
/// because applying an event is idempotent in replay, and a live event
/// that finds its history ahead of the log trims it back (see `append`).
pub(crate) struct Histories {
    meta: Arc<dyn MetaStore>,
    capacity: usize,
    shards: Box<[Mutex<Shard>]>,
    shard_budget: usize,
    /// Bytes of dirty histories, all shards: above half the budget, the
    /// write path writes them out (`spill_if_over_budget`).
    dirty_bytes: AtomicUsize,
    clock: AtomicU64,
}

impl Histories {
    pub fn new(meta: Arc<dyn MetaStore>, capacity: usize, cache_bytes: usize) -> Self {
        Histories {
            meta,
            capacity,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_budget: (cache_bytes / SHARDS).max(1),
            dirty_bytes: AtomicUsize::new(0),
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

    /// Replay: applies the event with sequence number `seq` unless the
    /// history already holds it (idempotent).
    pub fn apply(&self, seq: u64, event: &Event) -> Result<()> {
        self.record(seq, event, false)
    }

    /// The live write path: applies a new event, the log having just given
    /// it sequence number `seq`. A history that already counts `seq` holds
    /// events whose log records were lost (written to the metadata store
    /// before a power failure cut the log): the log is the record, so those
    /// entries are dropped before this one goes in.
    pub fn append(&self, seq: u64, event: &Event) -> Result<()> {
        self.record(seq, event, true)
    }

    fn record(&self, seq: u64, event: &Event, live: bool) -> Result<()> {
        let now = self.tick();
        let mut shard = self.shard(event.user).lock();
        let shard = &mut *shard;
        if !shard.users.contains_key(&event.user) {
            let history = self.meta.load_history(event.user)?.unwrap_or_default();
            shard.bytes += footprint(&history);
            shard.users.insert(
                event.user,
                Cached {
                    history,
                    last_used: now,
                },
            );
        }
        let Some(cached) = shard.users.get_mut(&event.user) else {
            return Ok(()); // inserted just above, under the same lock
        };
        cached.last_used = now;
        let history = &mut cached.history;
        if seq < history.next_seq {
            if !live {
                return Ok(());
            }
            history.items.retain(|e| e.seq < seq);
        }
        let before = footprint(history);
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
        shard.bytes = shard.bytes.saturating_sub(before) + after;
        if shard.dirty.insert(event.user) {
            self.dirty_bytes.fetch_add(after, Ordering::Relaxed);
        } else if after > before {
            self.dirty_bytes.fetch_add(after - before, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The user's recent items, oldest first.
    pub fn items(&self, user: u64) -> Result<Vec<u64>> {
        let now = self.tick();
        let mut shard = self.shard(user).lock();
        if let Some(c) = shard.users.get_mut(&user) {
            c.last_used = now;
            return Ok(c.history.items.iter().map(|e| e.item).collect());
        }
        match self.meta.load_history(user)? {
            Some(history) => {
                let items = history.items.iter().map(|e| e.item).collect();
                shard.bytes += footprint(&history);
                shard.users.insert(
                    user,
                    Cached {
                        history,
                        last_used: now,
                    },
                );
                shard.evict(self.shard_budget);
                Ok(items)
            }
            None => Ok(Vec::new()),
        }
    }

    /// Histories held in memory, and their bytes (for `Stats`).
    pub fn cached(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), s| {
            let s = s.lock();
            (n + s.users.len(), b + s.bytes)
        })
    }

    /// Whether dirty histories have outgrown half the memory budget, so
    /// that the write path should write them out (after handing the log's
    /// bytes to the OS: a history must not reach the metadata store ahead
    /// of the log records of its events where a `kill -9` could lose them).
    pub fn over_budget(&self) -> bool {
        self.dirty_bytes.load(Ordering::Relaxed) > self.shard_budget * SHARDS / 2
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
                .map(|e| (e.item, e.seq))
                .collect(),
        };
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for (&user, c) in &shard.users {
                in_memory.insert(user);
                out.push(take(user, &c.history));
            }
        }
        // Users not in memory (never loaded, or evicted clean) have no
        // events that the metadata store lacks: the stored history is theirs. (One loaded after the walk above
        // still has the same events below the cut.)
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

    /// Writes every changed history to the metadata store (not yet flushed)
    /// and evicts what the budget no longer has room for.
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
            if batch.is_empty() {
                continue;
            }
            if let Err(e) = self.meta.save_histories(&batch) {
                // Keep them dirty so a later checkpoint writes them.
                shard.lock().dirty.extend(batch.iter().map(|(u, _)| *u));
                return Err(e);
            }
            let written: usize = batch.iter().map(|(_, h)| footprint(h)).sum();
            let _ = self
                .dirty_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                    Some(d.saturating_sub(written))
                });
            shard.lock().evict(self.shard_budget);
        }
        Ok(())
    }
}
