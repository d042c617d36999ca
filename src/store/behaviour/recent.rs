//! The behaviour applied since the last checkpoint, in memory: each user's
//! new events, and the users' features and items' attributes set since.
//! The log is the record of all of it; a checkpoint writes it out as runs
//! (`crate::store::behaviour::Behaviour::write_recent`) and starts an empty one. Its size is
//! bounded by `Options::recent_bytes`: past that the write path
//! checkpoints.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::runs::event_run::EventEntry;

/// A user's or an item's pairs (features, attributes).
pub(crate) type PairSet = Vec<(String, String)>;

const SHARDS: usize = 64;

/// Where a chain ends.
const NONE: u32 = u32::MAX;

/// One shard's events, in the order applied: every entry in one vector
/// (no allocation per user), each user's linked from its first to its last
/// by `next`, so a user's entries are found without a scan and come out in
/// sequence order.
#[derive(Default)]
struct Shard {
    entries: Vec<EventEntry>,
    next: Vec<u32>,
    /// user -> (first entry, last entry)
    users: crate::idmap::IdMap<u64, (u32, u32)>,
}

impl Shard {
    fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<EventEntry>()
            + self.next.capacity() * 4
            // A map slot (key, value, control byte) at its load factor.
            + self.users.capacity() * 32
    }
}

/// Events since the last checkpoint, by user, in the order applied (which
/// is sequence order: the log applies them in order).
pub(crate) struct RecentEvents {
    shards: Box<[Mutex<Shard>]>,
    entries: AtomicUsize,
    /// `Shard::bytes` summed, kept at each push (no lock to read it).
    bytes: AtomicUsize,
}

impl Default for RecentEvents {
    fn default() -> Self {
        RecentEvents {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        }
    }
}

impl RecentEvents {
    fn shard(&self, user: u64) -> &Mutex<Shard> {
        // Fibonacci hashing spreads sequential user ids over the shards.
        &self.shards[(user.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS]
    }

    pub fn push(&self, entry: EventEntry) {
        let mut shard = self.shard(entry.user).lock();
        let shard = &mut *shard;
        let before = shard.bytes();
        // A shard holds far fewer than 2^32 entries: the budget
        // (`Options::recent_bytes`, at most a few GiB) bounds it well below.
        let at = u32::try_from(shard.entries.len()).unwrap_or(NONE - 1);
        shard.entries.push(entry);
        shard.next.push(NONE);
        match shard.users.get_mut(&entry.user) {
            Some((_, last)) => {
                if let Some(link) = shard.next.get_mut(*last as usize) {
                    *link = at;
                }
                *last = at;
            }
            None => {
                shard.users.insert(entry.user, (at, at));
            }
        }
        self.entries.fetch_add(1, Ordering::Relaxed);
        // Reservations only grow while the part is current.
        self.bytes
            .fetch_add(shard.bytes().saturating_sub(before), Ordering::Relaxed);
    }

    /// Appends `user`'s entries to `out`, in sequence order.
    pub fn extend_user(&self, user: u64, out: &mut Vec<EventEntry>) {
        let shard = self.shard(user).lock();
        let Some(&(first, _)) = shard.users.get(&user) else {
            return;
        };
        let mut at = first;
        while let (Some(e), Some(&next)) = (shard.entries.get(at as usize), shard.next.get(at as usize)) {
            out.push(*e);
            at = next;
        }
    }

    /// Every entry, sorted by (user, seq): a copy (bounded by the budget),
    /// each shard locked only while it is copied.
    pub fn sorted(&self) -> Vec<EventEntry> {
        let mut out: Vec<EventEntry> = Vec::with_capacity(self.entries());
        for shard in self.shards.iter() {
            out.extend_from_slice(&shard.lock().entries);
        }
        out.sort_unstable_by_key(|e| (e.user, e.seq));
        out
    }

    /// Bytes held (what the vectors and maps reserve).
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn entries(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    pub fn users(&self) -> usize {
        self.shards.iter().map(|s| s.lock().users.len()).sum()
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
