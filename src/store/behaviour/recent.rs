//! The behaviour applied since the last checkpoint, in memory: each user's
//! new events, and the users' features and items' attributes set since.
//! The log is the record of all of it; a checkpoint writes it out as runs
//! (`super::Behaviour::write_recent`) and starts an empty one. Its size is
//! bounded by `Options::recent_bytes`: past that the write path
//! checkpoints.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::runs::event_run::EventEntry;

/// A user's or an item's pairs (features, attributes).
pub(crate) type PairSet = Vec<(String, String)>;

const SHARDS: usize = 64;

/// One shard of the recent events: users to their entries.
type Shard = Mutex<HashMap<u64, Vec<EventEntry>>>;

/// Bytes a new user's entry in the table costs beyond its events (the map
/// slot and the vector's header), as the budget counts it.
const USER_BYTES: usize = 64;
const ENTRY_BYTES: usize = std::mem::size_of::<EventEntry>();

/// Events since the last checkpoint, by user, in the order applied (which
/// is sequence order: the log applies them in order).
pub(crate) struct RecentEvents {
    shards: Box<[Shard]>,
    bytes: AtomicUsize,
    entries: AtomicUsize,
}

impl Default for RecentEvents {
    fn default() -> Self {
        RecentEvents {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            bytes: AtomicUsize::new(0),
            entries: AtomicUsize::new(0),
        }
    }
}

impl RecentEvents {
    fn shard(&self, user: u64) -> &Shard {
        // Fibonacci hashing spreads sequential user ids over the shards.
        &self.shards[(user.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS]
    }

    pub fn push(&self, entry: EventEntry) {
        let mut shard = self.shard(entry.user).lock();
        let list = shard.entry(entry.user).or_insert_with(|| {
            self.bytes.fetch_add(USER_BYTES, Ordering::Relaxed);
            Vec::new()
        });
        list.push(entry);
        self.bytes.fetch_add(ENTRY_BYTES, Ordering::Relaxed);
        self.entries.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends `user`'s entries to `out`.
    pub fn extend_user(&self, user: u64, out: &mut Vec<EventEntry>) {
        if let Some(list) = self.shard(user).lock().get(&user) {
            out.extend_from_slice(list);
        }
    }

    /// Every user's entries, sorted by user (a copy: bounded by the budget).
    pub fn sorted(&self) -> Vec<(u64, Vec<EventEntry>)> {
        let mut out: Vec<(u64, Vec<EventEntry>)> = Vec::new();
        for shard in self.shards.iter() {
            out.extend(shard.lock().iter().map(|(u, list)| (*u, list.clone())));
        }
        out.sort_unstable_by_key(|(u, _)| *u);
        out
    }

    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn entries(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    pub fn users(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// The value an id was given since the last checkpoint: the record's
/// sequence number and its pairs (`None`: removed).
pub(crate) type RecentValue = (u64, Option<Arc<PairSet>>);

/// Features or attributes set since the last checkpoint, by id; the last
/// set wins.
#[derive(Default)]
pub(crate) struct RecentKeyed {
    map: RwLock<BTreeMap<u64, RecentValue>>,
    bytes: AtomicUsize,
}

fn pair_bytes(set: &PairSet) -> usize {
    48 + set.iter().map(|(k, v)| 48 + k.len() + v.len()).sum::<usize>()
}

impl RecentKeyed {
    pub fn set(&self, id: u64, seq: u64, pairs: PairSet) {
        let bytes = pair_bytes(&pairs);
        let value = (!pairs.is_empty()).then(|| Arc::new(pairs));
        let mut map = self.map.write();
        let old = map.insert(id, (seq, value));
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some((_, old)) = old {
            let freed = old.map_or(pair_bytes(&PairSet::new()), |old| pair_bytes(&old));
            self.bytes.fetch_sub(freed, Ordering::Relaxed);
        }
    }

    /// `Some` if the id was set since the last checkpoint.
    pub fn get(&self, id: u64) -> Option<RecentValue> {
        self.map.read().get(&id).cloned()
    }

    /// Every id set, in id order.
    pub fn sorted(&self) -> Vec<(u64, RecentValue)> {
        self.map.read().iter().map(|(id, v)| (*id, v.clone())).collect()
    }

    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.map.read().len()
    }
}

/// Everything applied since the last checkpoint.
#[derive(Default)]
pub(crate) struct Recent {
    pub events: RecentEvents,
    pub features: RecentKeyed,
    pub attributes: RecentKeyed,
}

impl Recent {
    /// Bytes held, as `Options::recent_bytes` counts them.
    pub fn bytes(&self) -> usize {
        self.events.bytes() + self.features.bytes() + self.attributes.bytes()
    }
}
