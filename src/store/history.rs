//! User histories: each user's most recent items, kept in memory for the
//! query path and written to the metadata store at checkpoints.
//!
//! Applying an event is idempotent: each history remembers the sequence
//! number after the last event applied to it, and replay skips older ones.
//! So a history written to sled *after* the checkpoint (by a later
//! checkpoint that crashed half-way, or by sled's background flush) is never
//! double-counted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::Result;
use crate::event::Event;
use crate::meta::records::{HistoryEntry, UserHistory};
use crate::meta::MetaStore;
use crate::train::round::UserEvents;

const SHARDS: usize = 64;

#[derive(Default)]
struct Shard {
    users: HashMap<u64, UserHistory>,
    dirty: HashSet<u64>,
}

pub(crate) struct Histories {
    meta: Arc<dyn MetaStore>,
    capacity: usize,
    shards: Box<[Mutex<Shard>]>,
}

impl Histories {
    pub fn new(meta: Arc<dyn MetaStore>, capacity: usize) -> Self {
        Histories {
            meta,
            capacity,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    fn shard(&self, user: u64) -> &Mutex<Shard> {
        // Fibonacci hashing spreads sequential user ids over the shards.
        &self.shards[(user.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS]
    }

    /// Applies the event with sequence number `seq`.
    pub fn apply(&self, seq: u64, event: &Event) -> Result<()> {
        let mut shard = self.shard(event.user).lock();
        let shard = &mut *shard;
        let history = match shard.users.entry(event.user) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(self.meta.load_history(event.user)?.unwrap_or_default())
            }
        };
        if seq < history.next_seq {
            return Ok(());
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
        shard.dirty.insert(event.user);
        Ok(())
    }

    /// The user's recent items, oldest first.
    pub fn items(&self, user: u64) -> Result<Vec<u64>> {
        let mut shard = self.shard(user).lock();
        if let Some(h) = shard.users.get(&user) {
            return Ok(h.items.iter().map(|e| e.item).collect());
        }
        match self.meta.load_history(user)? {
            Some(h) => {
                let items = h.items.iter().map(|e| e.item).collect();
                shard.users.insert(user, h);
                Ok(items)
            }
            None => Ok(Vec::new()),
        }
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
            for (&user, h) in &shard.users {
                in_memory.insert(user);
                out.push(take(user, h));
            }
        }
        // Users not loaded since the store opened have had no events since:
        // the stored history is theirs. (One loaded after the walk above
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
        if let Some(h) = shard.users.get(&user) {
            return Ok(h.items.iter().rev().take(n).map(|e| e.item).collect());
        }
        drop(shard);
        Ok(self.items(user)?.into_iter().rev().take(n).collect())
    }

    /// Writes every changed history to the metadata store (not yet flushed).
    pub fn persist_dirty(&self) -> Result<()> {
        for shard in self.shards.iter() {
            let batch: Vec<(u64, UserHistory)> = {
                let mut shard = shard.lock();
                let dirty = std::mem::take(&mut shard.dirty);
                dirty
                    .into_iter()
                    .filter_map(|u| shard.users.get(&u).map(|h| (u, h.clone())))
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
        }
        Ok(())
    }
}
