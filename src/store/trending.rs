//! The trending channel (`Query::popular`): how many events each item had
//! in the recent window, kept up to date as events arrive.
//!
//! The window (`Options::trending_window`, in the events' timestamp units)
//! is cut into [`BUCKETS`] buckets of equal width. Each event adds one to
//! its item in its bucket and in the running totals; when an event opens a
//! bucket past the newest, the buckets that fall out of the window are
//! subtracted from the totals and dropped. "Now" is the newest event's
//! time, not the wall clock, so replaying a log gives the same counts, and
//! an event older than the window counts for nothing. The window thus
//! slides by a bucket (a 24th of it) at a time.
//!
//! The counts are written to the metadata store (key `b"trending"`) at
//! each checkpoint, with the sequence number after the last event counted;
//! replay counts only the events from there, so no event is counted twice
//! whatever a crash cuts. A store without the record (format 3) or whose
//! window changed counts again from the users' histories at open.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::error::Result;
use crate::meta::records::TrendingRecord;
use crate::meta::MetaStore;

/// Buckets a window is cut into.
pub const BUCKETS: u64 = 24;
/// Above this many items in the window, the ranking served may be up to
/// [`RANKING_MAX_AGE`] behind the counts (sorting them costs more than a
/// query should); below it, it is always current.
const EXACT_RANKING_ITEMS: usize = 50_000;
const RANKING_MAX_AGE: Duration = Duration::from_secs(1);

/// Called with each stored history event: (sequence number, item, ts).
pub(crate) type EventVisitor<'a> = dyn FnMut(u64, u64, u64) + 'a;

struct Counts {
    window: u64,
    width: u64,
    applied_seq: u64,
    buckets: VecDeque<(u64, HashMap<u64, u32>)>,
    totals: HashMap<u64, u32>,
    /// Bumped by every change.
    changes: u64,
}

impl Counts {
    fn new(window: u64) -> Self {
        let window = window.max(BUCKETS);
        Counts {
            window,
            width: window / BUCKETS,
            applied_seq: 0,
            buckets: VecDeque::new(),
            totals: HashMap::new(),
            changes: 0,
        }
    }

    fn newest(&self) -> Option<u64> {
        self.buckets.back().map(|(b, _)| *b)
    }

    /// Counts one event of `item` at `ts`.
    fn add(&mut self, item: u64, ts: u64) {
        let bucket = ts / self.width;
        if let Some(newest) = self.newest() {
            if bucket.saturating_add(BUCKETS) <= newest {
                return; // older than the window
            }
        }
        if self.newest().is_none_or(|n| bucket > n) {
            self.buckets.push_back((bucket, HashMap::new()));
            while let Some((oldest, _)) = self.buckets.front() {
                if oldest.saturating_add(BUCKETS) > bucket {
                    break;
                }
                if let Some((_, gone)) = self.buckets.pop_front() {
                    for (id, n) in gone {
                        if let Some(total) = self.totals.get_mut(&id) {
                            *total = total.saturating_sub(n);
                            if *total == 0 {
                                self.totals.remove(&id);
                            }
                        }
                    }
                }
            }
        }
        // Buckets are sorted; an event in an older bucket finds (or opens)
        // its place.
        let at = self.buckets.partition_point(|(b, _)| *b < bucket);
        if self.buckets.get(at).is_none_or(|(b, _)| *b != bucket) {
            self.buckets.insert(at, (bucket, HashMap::new()));
        }
        let n = self.buckets[at].1.entry(item).or_insert(0);
        *n = n.saturating_add(1);
        let total = self.totals.entry(item).or_insert(0);
        *total = total.saturating_add(1);
        self.changes += 1;
    }

    fn record(&self) -> TrendingRecord {
        TrendingRecord {
            window: self.window,
            applied_seq: self.applied_seq,
            buckets: self
                .buckets
                .iter()
                .map(|(b, counts)| {
                    let mut pairs: Vec<(u64, u32)> = counts.iter().map(|(i, n)| (*i, *n)).collect();
                    pairs.sort_unstable();
                    (*b, pairs)
                })
                .collect(),
        }
    }

    fn from_record(record: &TrendingRecord) -> Self {
        let mut counts = Counts::new(record.window);
        counts.applied_seq = record.applied_seq;
        // Bytes from disk: keep the buckets sorted and the sums bounded
        // whatever they say.
        let mut buckets = record.buckets.clone();
        buckets.sort_by_key(|(b, _)| *b);
        buckets.dedup_by_key(|(b, _)| *b);
        for (bucket, pairs) in buckets {
            let mut map = HashMap::with_capacity(pairs.len());
            for (item, n) in pairs {
                map.insert(item, n);
                let total = counts.totals.entry(item).or_insert(0);
                *total = total.saturating_add(n);
            }
            counts.buckets.push_back((bucket, map));
        }
        counts
    }
}

/// The ranking of items by count (most first, then by id), with the
/// change count it was made at.
struct Ranking {
    changes: u64,
    made: Instant,
    items: Arc<Vec<(u64, u32)>>,
}

pub(crate) struct Trending {
    meta: Arc<dyn MetaStore>,
    counts: RwLock<Counts>,
    ranking: Mutex<Option<Ranking>>,
    /// Changed since the last checkpoint.
    dirty: Mutex<bool>,
}

impl Trending {
    /// The stored counts, if they were kept for this window (None: the
    /// stored window, else [`crate::options::DEFAULT_TRENDING_WINDOW`]);
    /// else counts made again from the stored histories' events before
    /// `next_seq` (the checkpoint's: replay counts the rest).
    pub fn load(
        meta: Arc<dyn MetaStore>,
        window: Option<u64>,
        next_seq: u64,
        histories: &mut dyn FnMut(&mut EventVisitor<'_>) -> Result<()>,
    ) -> Result<Self> {
        let stored = meta.load_trending()?;
        let window = window
            .or(stored.as_ref().map(|r| r.window))
            .unwrap_or(crate::options::DEFAULT_TRENDING_WINDOW);
        let stored = stored.as_ref().filter(|r| r.window == window.max(BUCKETS));
        let counts = match stored {
            Some(record) => Counts::from_record(record),
            None => {
                let mut events: Vec<(u64, u64)> = Vec::new();
                histories(&mut |seq, item, ts| {
                    if seq < next_seq {
                        events.push((ts, item));
                    }
                })?;
                // Oldest first, so the window ends at the newest event.
                events.sort_unstable();
                let mut counts = Counts::new(window);
                for (ts, item) in events {
                    counts.add(item, ts);
                }
                counts.applied_seq = next_seq;
                counts
            }
        };
        let dirty = Mutex::new(stored.is_none());
        Ok(Trending {
            meta,
            counts: RwLock::new(counts),
            ranking: Mutex::new(None),
            dirty,
        })
    }

    /// Counts the event of sequence number `seq` (once: replay skips the
    /// events counted before the checkpoint).
    pub fn apply(&self, seq: u64, item: u64, ts: u64) {
        let mut counts = self.counts.write();
        if seq < counts.applied_seq {
            return;
        }
        counts.applied_seq = seq + 1;
        counts.add(item, ts);
        *self.dirty.lock() = true;
    }

    /// Items by their count in the window, most first (ties by id).
    pub fn ranking(&self) -> Arc<Vec<(u64, u32)>> {
        let mut cached = self.ranking.lock();
        let counts = self.counts.read();
        if let Some(r) = cached.as_ref() {
            let current = r.changes == counts.changes;
            let recent_enough = counts.totals.len() > EXACT_RANKING_ITEMS && r.made.elapsed() < RANKING_MAX_AGE;
            if current || recent_enough {
                return Arc::clone(&r.items);
            }
        }
        let mut items: Vec<(u64, u32)> = counts.totals.iter().map(|(i, n)| (*i, *n)).collect();
        let changes = counts.changes;
        drop(counts);
        items.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let items = Arc::new(items);
        *cached = Some(Ranking {
            changes,
            made: Instant::now(),
            items: Arc::clone(&items),
        });
        items
    }

    /// Items with at least one event in the window.
    pub fn len(&self) -> usize {
        self.counts.read().totals.len()
    }

    /// Writes the counts to the metadata store if they changed (not
    /// flushed): the checkpoint's part.
    pub fn persist_dirty(&self) -> Result<()> {
        let mut dirty = self.dirty.lock();
        if !*dirty {
            return Ok(());
        }
        let record = self.counts.read().record();
        self.meta.save_trending(&record)?;
        *dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(c: &Counts) -> Vec<(u64, u32)> {
        let mut t: Vec<(u64, u32)> = c.totals.iter().map(|(i, n)| (*i, *n)).collect();
        t.sort_unstable();
        t
    }

    #[test]
    fn the_window_slides_with_the_newest_event() {
        // Window 240: buckets of 10.
        let mut c = Counts::new(240);
        c.add(1, 0);
        c.add(1, 5);
        c.add(2, 100);
        assert_eq!(totals(&c), vec![(1, 2), (2, 1)]);
        // Bucket 24 pushes bucket 0 out of the window.
        c.add(3, 240);
        assert_eq!(totals(&c), vec![(2, 1), (3, 1)]);
        // Too old now: not counted.
        c.add(1, 9);
        assert_eq!(totals(&c), vec![(2, 1), (3, 1)]);
        // Late but inside the window: counted in its bucket, and leaves
        // with it.
        c.add(4, 15);
        assert_eq!(totals(&c), vec![(2, 1), (3, 1), (4, 1)]);
        c.add(5, 250);
        assert_eq!(totals(&c), vec![(2, 1), (3, 1), (5, 1)]);
        // A jump past the whole window empties it.
        c.add(6, 10_000);
        assert_eq!(totals(&c), vec![(6, 1)]);
    }

    #[test]
    fn a_record_round_trips() {
        let mut c = Counts::new(1000);
        for (i, ts) in [(1, 10), (2, 500), (1, 990), (3, 999)] {
            c.add(i, ts);
        }
        c.applied_seq = 7;
        let back = Counts::from_record(&c.record());
        assert_eq!(totals(&back), totals(&c));
        assert_eq!(back.record(), c.record());
    }
}
