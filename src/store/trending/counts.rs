//! The counts of one trending window: per item, its events in the window
//! and in the newest bucket; the older buckets' counts; and the kept
//! ranking of the most counted items (see the parent module).

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};

use super::BUCKETS;
use crate::meta::records::TrendingRecord;

/// Items the kept ranking holds (the most counted); `popular` reads past
/// them only for a filter that leaves out nearly all of them.
pub(super) const TOP: usize = 16_384;

/// A ranking entry: most counted first, then by id.
pub(super) type Ranked = (Reverse<u32>, u64);

/// One item of the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Entry {
    /// Its events in the window.
    pub total: u32,
    /// Of which in the newest bucket (kept here, not in a bucket map, so
    /// that an ordinary event touches one map entry).
    newest: u32,
    /// Whether it is in `Counts::top`.
    in_top: bool,
}

/// The counts of a window. Invariant: `top` holds the [`TOP`] best items
/// of `items` by (count, id), each marked `in_top`. An event only raises a
/// count, which keeps it (an item that passes the worst of `top` enters,
/// and the worst leaves); a bucket leaving the window lowers counts, after
/// which `top` is chosen again from every item.
pub(super) struct Counts {
    pub window: u64,
    width: u64,
    pub applied_seq: u64,
    /// The newest bucket's number (its counts are in the entries).
    newest: Option<u64>,
    /// The older buckets in the window, oldest first.
    closed: VecDeque<(u64, HashMap<u64, u32>)>,
    pub items: HashMap<u64, Entry>,
    pub top: BTreeSet<Ranked>,
}

impl Counts {
    pub fn new(window: u64) -> Self {
        let window = window.max(BUCKETS);
        Counts {
            window,
            width: window / BUCKETS,
            applied_seq: 0,
            newest: None,
            closed: VecDeque::new(),
            items: HashMap::new(),
            top: BTreeSet::new(),
        }
    }

    /// Counts one event of `item` at `ts`, unless `ts` is past `latest`
    /// (see the module docs) or older than the window.
    pub fn add(&mut self, item: u64, ts: u64, latest: u64) {
        if ts > latest {
            return;
        }
        let bucket = ts / self.width;
        let newest = match self.newest {
            None => {
                self.newest = Some(bucket);
                bucket
            }
            Some(n) if bucket > n => {
                self.roll(n, bucket);
                bucket
            }
            Some(n) => n,
        };
        if bucket.saturating_add(BUCKETS) <= newest {
            return; // older than the window
        }
        let entry = self.items.entry(item).or_default();
        if entry.total == u32::MAX {
            return;
        }
        if bucket == newest {
            entry.newest += 1;
        } else {
            // Late but inside the window: its bucket finds (or opens) its
            // place among the closed ones.
            let at = self.closed.partition_point(|(b, _)| *b < bucket);
            if self.closed.get(at).is_none_or(|(b, _)| *b != bucket) {
                self.closed.insert(at, (bucket, HashMap::new()));
            }
            let n = self.closed[at].1.entry(item).or_insert(0);
            *n = n.saturating_add(1);
        }
        entry.total += 1;
        let (total, in_top) = (entry.total, entry.in_top);
        self.raised(item, total - 1, total, in_top);
    }

    /// Keeps `top` true after `item`'s count rose from `old` to `new`.
    fn raised(&mut self, item: u64, old: u32, new: u32, in_top: bool) {
        let ranked = (Reverse(new), item);
        if in_top {
            self.top.remove(&(Reverse(old), item));
            self.top.insert(ranked);
            return;
        }
        let enters = self.top.len() < TOP || self.top.last().is_some_and(|worst| ranked < *worst);
        if !enters {
            return;
        }
        self.top.insert(ranked);
        if let Some(entry) = self.items.get_mut(&item) {
            entry.in_top = true;
        }
        if self.top.len() > TOP {
            if let Some((_, out)) = self.top.pop_last() {
                if let Some(entry) = self.items.get_mut(&out) {
                    entry.in_top = false;
                }
            }
        }
    }

    /// Bucket `bucket` opens past the newest, `newest`: the newest's counts
    /// become a closed bucket, and the buckets now out of the window leave
    /// (then `top` is chosen again). Once a bucket: a pass over the items.
    fn roll(&mut self, newest: u64, bucket: u64) {
        let mut closing = HashMap::new();
        for (id, entry) in self.items.iter_mut() {
            if entry.newest > 0 {
                closing.insert(*id, std::mem::take(&mut entry.newest));
            }
        }
        self.closed.push_back((newest, closing));
        self.newest = Some(bucket);
        let mut lowered = false;
        while let Some((oldest, _)) = self.closed.front() {
            if oldest.saturating_add(BUCKETS) > bucket {
                break;
            }
            if let Some((_, gone)) = self.closed.pop_front() {
                for (id, n) in gone {
                    if let Some(entry) = self.items.get_mut(&id) {
                        entry.total = entry.total.saturating_sub(n);
                        lowered = true;
                    }
                }
            }
        }
        if lowered {
            self.items.retain(|_, e| e.total > 0);
            self.choose_top();
        }
    }

    /// `top` chosen again from every item.
    fn choose_top(&mut self) {
        let mut all: Vec<Ranked> = self.items.iter().map(|(id, e)| (Reverse(e.total), *id)).collect();
        if all.len() > TOP {
            all.select_nth_unstable(TOP - 1);
            all.truncate(TOP);
        }
        for entry in self.items.values_mut() {
            entry.in_top = false;
        }
        for (_, id) in &all {
            if let Some(entry) = self.items.get_mut(id) {
                entry.in_top = true;
            }
        }
        self.top = all.into_iter().collect();
    }

    /// Every item's count, for a reader going past `top`: those not in
    /// it, unsorted (the reader sorts them once it has let go of the lock).
    pub fn beyond_top(&self) -> Vec<Ranked> {
        self.items
            .iter()
            .filter(|(_, e)| !e.in_top)
            .map(|(id, e)| (Reverse(e.total), *id))
            .collect()
    }

    pub fn record(&self) -> TrendingRecord {
        let sorted = |pairs: &mut Vec<(u64, u32)>| pairs.sort_unstable();
        let mut buckets: Vec<(u64, Vec<(u64, u32)>)> = self
            .closed
            .iter()
            .map(|(b, counts)| {
                let mut pairs: Vec<(u64, u32)> = counts.iter().map(|(i, n)| (*i, *n)).collect();
                sorted(&mut pairs);
                (*b, pairs)
            })
            .collect();
        if let Some(newest) = self.newest {
            let mut pairs: Vec<(u64, u32)> = self
                .items
                .iter()
                .filter(|(_, e)| e.newest > 0)
                .map(|(i, e)| (*i, e.newest))
                .collect();
            sorted(&mut pairs);
            buckets.push((newest, pairs));
        }
        TrendingRecord {
            window: self.window,
            applied_seq: self.applied_seq,
            buckets,
        }
    }

    /// The counts of `record`, without buckets past `latest` (a time no
    /// event may now carry) or out of the window that the newest of the
    /// rest ends.
    pub fn from_record(record: &TrendingRecord, latest: u64) -> Self {
        let mut counts = Counts::new(record.window);
        counts.applied_seq = record.applied_seq;
        // Bytes from disk: keep the buckets sorted and the sums bounded
        // whatever they say.
        let mut buckets = record.buckets.clone();
        buckets.sort_by_key(|(b, _)| *b);
        buckets.dedup_by_key(|(b, _)| *b);
        let last_bucket = latest / counts.width;
        buckets.retain(|(b, _)| *b <= last_bucket);
        let Some((newest, _)) = buckets.last().map(|(b, p)| (*b, p.len())) else {
            return counts;
        };
        buckets.retain(|(b, _)| b.saturating_add(BUCKETS) > newest);
        counts.newest = Some(newest);
        // Sized once for the largest bucket (every item of it is counted):
        // growing a map of 1 M items step by step was most of an open.
        counts
            .items
            .reserve(buckets.iter().map(|(_, pairs)| pairs.len()).max().unwrap_or(0));
        for (bucket, pairs) in buckets {
            let mut map = HashMap::with_capacity(pairs.len());
            for (item, n) in pairs {
                let entry = counts.items.entry(item).or_default();
                entry.total = entry.total.saturating_add(n);
                if bucket == newest {
                    entry.newest = entry.newest.saturating_add(n);
                } else {
                    let kept = map.entry(item).or_insert(0u32);
                    *kept = kept.saturating_add(n);
                }
            }
            if bucket != newest {
                counts.closed.push_back((bucket, map));
            }
        }
        counts.items.retain(|_, e| e.total > 0);
        counts.choose_top();
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(c: &Counts) -> Vec<(u64, u32)> {
        let mut t: Vec<(u64, u32)> = c.items.iter().map(|(i, e)| (*i, e.total)).collect();
        t.sort_unstable();
        t
    }

    #[test]
    fn the_window_slides_with_the_newest_event() {
        // Window 240: buckets of 10.
        let mut c = Counts::new(240);
        c.add(1, 0, u64::MAX);
        c.add(1, 5, u64::MAX);
        c.add(2, 100, u64::MAX);
        assert_eq!(totals(&c), vec![(1, 2), (2, 1)]);
        // Bucket 24 pushes bucket 0 out of the window.
        c.add(3, 240, u64::MAX);
        assert_eq!(totals(&c), vec![(2, 1), (3, 1)]);
        // Too old now: not counted.
        c.add(1, 9, u64::MAX);
        assert_eq!(totals(&c), vec![(2, 1), (3, 1)]);
        // Late but inside the window: counted in its bucket, and leaves
        // with it.
        c.add(4, 15, u64::MAX);
        assert_eq!(totals(&c), vec![(2, 1), (3, 1), (4, 1)]);
        c.add(5, 250, u64::MAX);
        assert_eq!(totals(&c), vec![(2, 1), (3, 1), (5, 1)]);
        // A jump past the whole window empties it.
        c.add(6, 10_000, u64::MAX);
        assert_eq!(totals(&c), vec![(6, 1)]);
    }

    #[test]
    fn a_record_round_trips() {
        let mut c = Counts::new(1000);
        for (i, ts) in [(1, 10), (2, 500), (1, 990), (3, 999)] {
            c.add(i, ts, u64::MAX);
        }
        c.applied_seq = 7;
        let back = Counts::from_record(&c.record(), u64::MAX);
        assert_eq!(totals(&back), totals(&c));
        assert_eq!(back.record(), c.record());
        assert_eq!(back.top, c.top);
    }

    fn ranking(c: &Counts) -> Vec<(u64, u32)> {
        c.top.iter().map(|(Reverse(n), i)| (*i, *n)).collect()
    }

    /// The kept ranking is the sort of the totals after every change,
    /// buckets leaving the window included.
    #[test]
    fn the_ranking_follows_the_totals() {
        let mut c = Counts::new(240);
        let mut rng = 7u64;
        for step in 0..5_000u64 {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let item = (rng >> 33) % 50;
            let ts = step / 4 + (rng >> 20) % 30;
            c.add(item, ts, u64::MAX);
            let mut sorted: Vec<(u64, u32)> = c.items.iter().map(|(i, e)| (*i, e.total)).collect();
            sorted.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            assert_eq!(ranking(&c), sorted, "step {step}");
        }
    }

    /// The best of every item by (count, id), as a full sort gives it.
    fn best(c: &Counts, n: usize) -> Vec<(u64, u32)> {
        let mut all: Vec<(u64, u32)> = c.items.iter().map(|(i, e)| (*i, e.total)).collect();
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// More items than the kept ranking holds: it is always the best
    /// [`TOP`] of them, through events raising counts, late events and
    /// buckets leaving the window; each entry's mark agrees with it.
    #[test]
    fn the_kept_ranking_is_the_best_of_many_items() {
        let mut c = Counts::new(2_400);
        let mut rng = 11u64;
        let items = TOP as u64 * 2;
        for step in 0..120_000u64 {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // Skewed: low ids are drawn more often.
            let item = ((rng >> 33) % items) * ((rng >> 13) % 4 + 1) / 4;
            let ts = step / 20 + (rng >> 40) % 200;
            c.add(item, ts, u64::MAX);
            if step % 10_000 == 9_999 {
                assert_eq!(ranking(&c), best(&c, TOP), "step {step}");
                let marked = c.items.values().filter(|e| e.in_top).count();
                assert_eq!(marked, c.top.len());
            }
        }
        assert!(c.items.len() > TOP, "{} items", c.items.len());
        assert!(!c.closed.is_empty());
    }

    #[test]
    fn events_past_the_latest_time_count_for_nothing() {
        let mut c = Counts::new(240);
        c.add(1, 100, 1_000);
        c.add(2, u64::MAX, 1_000);
        c.add(3, 200, 1_000);
        assert_eq!(totals(&c), vec![(1, 1), (3, 1)]);
        // A record holding a far-future bucket (from an older build) loses
        // it, and the window ends at the newest believable event.
        let mut record = c.record();
        record.buckets.push((u64::MAX / 10, vec![(9, 5)]));
        let back = Counts::from_record(&record, 1_000);
        assert_eq!(totals(&back), vec![(1, 1), (3, 1)]);
        assert_eq!(ranking(&back), vec![(1, 1), (3, 1)]);
    }
}
