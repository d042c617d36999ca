//! The counts of one trending window: per item, its events in the window
//! and in the newest bucket; the older buckets' counts; and the kept
//! ranking of the most counted items (see the parent module).

use std::cmp::Reverse;
use std::collections::{BTreeSet, VecDeque};

use crate::idmap::IdMap;
use crate::meta::records::TrendingRecord;
use crate::store::trending::BUCKETS;

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
    /// The older buckets in the window, oldest first: each its (item,
    /// count) pairs, an item possibly more than once (a late event appends
    /// a pair). Only ever walked whole (when the bucket leaves, and into
    /// the record), so a list: opening a store rebuilds no map per bucket.
    closed: VecDeque<(u64, Vec<(u64, u32)>)>,
    pub items: IdMap<u64, Entry>,
    pub top: BTreeSet<Ranked>,
    /// [`Counts::add_many`]'s sums per item, kept for its next batch.
    pending: IdMap<u64, u32>,
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
            items: IdMap::default(),
            top: BTreeSet::new(),
            pending: IdMap::default(),
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
        // (Before the entry below borrows the map; this event adds at most
        // one item.)
        let limit = 2 * (self.items.len() + 1) + 64;
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
                self.closed.insert(at, (bucket, Vec::new()));
            }
            let pairs = &mut self.closed[at].1;
            pairs.push((item, 1));
            // A bucket holds at most every item of the window once: past
            // twice that, its pairs are summed (amortised: at least as many
            // late events again before the next time).
            if pairs.len() > limit {
                coalesce(pairs);
            }
        }
        entry.total += 1;
        let (total, in_top) = (entry.total, entry.in_top);
        self.raised(item, total - 1, total, in_top);
    }

    /// [`Counts::add`] of each of `events` (item, ts) in turn, with the
    /// events of the newest bucket summed per item first and each item
    /// raised once: a batch of a popular item's events costs one ranking
    /// update, not one each (the ranking's two `BTreeSet` operations per
    /// event were most of the counting thread's time at 1 M events/s).
    /// The result is the same: `top` is the best of the counts whatever
    /// order they rose in.
    pub fn add_many(&mut self, events: impl IntoIterator<Item = (u64, u64)>, latest: u64) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.clear();
        for (item, ts) in events {
            if ts > latest {
                continue;
            }
            let bucket = ts / self.width;
            if self.newest == Some(bucket) {
                let n = pending.entry(item).or_default();
                *n = n.saturating_add(1);
                continue;
            }
            // A new bucket (it rolls the window) or a late event: the
            // newest bucket's sums go in first, in their place.
            self.add_pending(&mut pending);
            self.add(item, ts, latest);
        }
        self.add_pending(&mut pending);
        self.pending = pending;
    }

    /// Adds `pending`'s counts to the newest bucket, and empties it.
    fn add_pending(&mut self, pending: &mut IdMap<u64, u32>) {
        for (item, n) in pending.drain() {
            let entry = self.items.entry(item).or_default();
            let n = n.min(u32::MAX - entry.total);
            if n == 0 {
                continue;
            }
            entry.newest += n;
            entry.total += n;
            let (total, in_top) = (entry.total, entry.in_top);
            self.raised(item, total - n, total, in_top);
        }
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
        let mut closing = Vec::new();
        for (id, entry) in self.items.iter_mut() {
            if entry.newest > 0 {
                closing.push((*id, std::mem::take(&mut entry.newest)));
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
            .map(|(b, pairs)| {
                let mut pairs = pairs.clone();
                coalesce(&mut pairs);
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
    pub fn from_record(record: TrendingRecord, latest: u64) -> Self {
        let mut counts = Counts::new(record.window);
        counts.applied_seq = record.applied_seq;
        // Bytes from disk: keep the buckets sorted and the sums bounded
        // whatever they say.
        let mut buckets = record.buckets;
        buckets.sort_by_key(|(b, _)| *b);
        buckets.dedup_by_key(|(b, _)| *b);
        let last_bucket = latest / counts.width;
        buckets.retain(|(b, _)| *b <= last_bucket);
        let Some((newest, _)) = buckets.last().map(|(b, p)| (*b, p.len())) else {
            return counts;
        };
        buckets.retain(|(b, _)| b.saturating_add(BUCKETS) > newest);
        counts.newest = Some(newest);
        // Each bucket's pairs sorted by item (the file writes them so; bytes
        // from disk are sorted again if not), then one k-way merge of the
        // buckets gives every item's total in item order, and each item is
        // inserted into the map once: hashing every pair of every bucket
        // into the map took 1.4 s for four buckets of a million items.
        for (_, pairs) in buckets.iter_mut() {
            if !pairs.is_sorted_by_key(|p| p.0) {
                coalesce(pairs);
            }
        }
        let started = std::time::Instant::now();
        let mut heap: std::collections::BinaryHeap<Reverse<(u64, usize, usize)>> = buckets
            .iter()
            .enumerate()
            .filter_map(|(b, (_, pairs))| pairs.first().map(|p| Reverse((p.0, b, 0))))
            .collect();
        // Merged into a list first, so the map is made at its final size.
        let mut merged: Vec<(u64, Entry)> = Vec::new();
        let newest_at = buckets.len() - 1;
        let mut current: Option<(u64, Entry)> = None;
        while let Some(Reverse((item, b, i))) = heap.pop() {
            let n = buckets[b].1[i].1;
            if let Some(next) = buckets[b].1.get(i + 1) {
                heap.push(Reverse((next.0, b, i + 1)));
            }
            if current.as_ref().is_some_and(|(id, _)| *id != item) {
                merged.extend(current.take());
            }
            let (_, entry) = current.get_or_insert((item, Entry::default()));
            entry.total = entry.total.saturating_add(n);
            if b == newest_at {
                entry.newest = entry.newest.saturating_add(n);
            }
        }
        merged.extend(current);
        counts.items = crate::idmap::with_capacity(merged.len());
        counts.items.extend(merged);
        for (bucket, pairs) in buckets {
            if bucket != newest {
                counts.closed.push_back((bucket, pairs));
            }
        }
        let summed = started.elapsed();
        counts.items.retain(|_, e| e.total > 0);
        counts.choose_top();
        log::debug!(
            "trending counts of {} items: summed in {:.1} ms, ranked in {:.1} ms",
            counts.items.len(),
            summed.as_secs_f64() * 1e3,
            (started.elapsed() - summed).as_secs_f64() * 1e3
        );
        counts
    }
}

/// Sorts `pairs` by item and sums each item's counts into one pair.
fn coalesce(pairs: &mut Vec<(u64, u32)>) {
    pairs.sort_unstable();
    pairs.dedup_by(|later, first| {
        let same = later.0 == first.0;
        if same {
            first.1 = first.1.saturating_add(later.1);
        }
        same
    });
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
    fn counting_a_batch_at_once_counts_as_each_event_in_turn() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (mut one_by_one, mut batched) = (Counts::new(48_000), Counts::new(48_000));
        let mut now = 0u64;
        for round in 0..200 {
            let batch: Vec<(u64, u64)> = (0..rng.gen_range(1..2_000))
                .map(|_| {
                    now += rng.gen_range(0..2);
                    // Zipf-like items (a few hot ones), some late events,
                    // some past `latest`.
                    let item = if rng.gen_bool(0.5) {
                        rng.gen_range(0..8)
                    } else {
                        rng.gen_range(0..100_000)
                    };
                    let ts = if rng.gen_bool(0.05) {
                        now.saturating_sub(rng.gen_range(0..3_000))
                    } else {
                        now
                    };
                    (item, ts)
                })
                .collect();
            let latest = now.saturating_sub(if round % 7 == 0 { 2 } else { 0 });
            for &(item, ts) in &batch {
                one_by_one.add(item, ts, latest);
            }
            batched.add_many(batch, latest);
            assert!(batched.pending.is_empty());
            assert_eq!(totals(&batched), totals(&one_by_one), "round {round}");
            assert_eq!(batched.top, one_by_one.top, "round {round}");
            assert_eq!(batched.record(), one_by_one.record(), "round {round}");
        }
        // Both regimes were crossed: the ranking full (items entering and
        // leaving it) and buckets leaving the window.
        assert_eq!(one_by_one.top.len(), TOP);
        assert!(now > 2 * 48_000, "the window slid: {now}");
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
        let back = Counts::from_record(c.record(), u64::MAX);
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
        let back = Counts::from_record(record.clone(), 1_000);
        assert_eq!(totals(&back), vec![(1, 1), (3, 1)]);
        assert_eq!(ranking(&back), vec![(1, 1), (3, 1)]);
    }

    /// Late events into a closed bucket are pairs appended to its list:
    /// the list stays bounded by the items, the totals are exact, the
    /// record holds one pair per item, and a store reopened from it counts
    /// the same and drops the bucket when it leaves the window.
    #[test]
    fn late_events_keep_a_closed_bucket_bounded_and_exact() {
        let mut c = Counts::new(2_400); // buckets of 100
        for item in 0..50u64 {
            c.add(item, 150, u64::MAX); // bucket 1
        }
        c.add(7, 250, u64::MAX); // bucket 2 opens: bucket 1 closes
        let mut expected: std::collections::HashMap<u64, u32> = (0..50).map(|i| (i, 1)).collect();
        *expected.entry(7).or_default() += 1;
        for n in 0..10_000u64 {
            let item = n % 60;
            c.add(item, 120 + n % 50, u64::MAX); // late: into bucket 1
            *expected.entry(item).or_default() += 1;
            let pairs = &c.closed.iter().find(|(b, _)| *b == 1).unwrap().1;
            assert!(pairs.len() <= 2 * (c.items.len() + 1) + 64, "{} pairs", pairs.len());
        }
        let mut want: Vec<(u64, u32)> = expected.into_iter().collect();
        want.sort_unstable();
        assert_eq!(totals(&c), want);
        let record = c.record();
        for (_, pairs) in &record.buckets {
            assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0), "one pair per item, sorted");
        }
        let mut back = Counts::from_record(record.clone(), u64::MAX);
        assert_eq!(totals(&back), want);
        assert_eq!(ranking(&back), best(&back, TOP));
        // Bucket 1 leaves the window when bucket 25 opens: what is left is
        // bucket 2's one event and the new one.
        back.add(3, 2_550, u64::MAX);
        assert_eq!(totals(&back), vec![(3, 1), (7, 1)]);
    }
}
