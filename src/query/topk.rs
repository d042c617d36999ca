//! Keeping the k nearest hits of a scan.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

use super::Hit;

/// A candidate ordered so that the heap's top is the *worst* kept hit.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    nearness: f32,
    hit: Hit,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// Worse first: lower nearness, then larger id (ties go to smaller ids).
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .nearness
            .total_cmp(&self.nearness)
            .then(self.hit.id.cmp(&other.hit.id))
    }
}

/// The `k` nearest hits seen so far.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Candidate>,
    /// The ids in `heap`, kept only for large `k` (small heaps are scanned).
    ids: Option<HashSet<u64>>,
}

/// Up to this `k`, a linear scan of the heap finds duplicates faster than a
/// hash set.
const SCAN_BELOW: usize = 64;

impl TopK {
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
            ids: (k >= SCAN_BELOW).then(|| HashSet::with_capacity(k + 1)),
        }
    }

    /// The nearness a new hit must beat to enter, once full.
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f32::NEG_INFINITY, |c| c.nearness)
        }
    }

    #[inline]
    pub fn push(&mut self, nearness: f32, hit: Hit) {
        if self.k == 0 {
            return;
        }
        let candidate = Candidate { nearness, hit };
        // An id can be met twice when an update moves it between segments
        // while a scan is under way: keep its nearer row only.
        let present = match &self.ids {
            Some(ids) => ids.contains(&hit.id),
            None => self.heap.iter().any(|c| c.hit.id == hit.id),
        };
        if present {
            let twin = self.heap.iter().find(|c| c.hit.id == hit.id).copied();
            if twin.is_some_and(|twin| candidate < twin) {
                self.heap.retain(|c| c.hit.id != hit.id);
                self.heap.push(candidate);
            }
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(candidate);
            if let Some(ids) = &mut self.ids {
                ids.insert(hit.id);
            }
        } else if let Some(worst) = self.heap.peek() {
            if candidate < *worst {
                // `Ord` is reversed: smaller means nearer.
                let out = self.heap.pop();
                self.heap.push(candidate);
                if let Some(ids) = &mut self.ids {
                    if let Some(out) = out {
                        ids.remove(&out.hit.id);
                    }
                    ids.insert(hit.id);
                }
            }
        }
    }

    /// The hits, nearest first.
    pub fn into_sorted(self) -> Vec<Hit> {
        self.heap.into_sorted_vec().into_iter().map(|c| c.hit).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_k_nearest_in_order_with_id_tiebreak() {
        let mut top = TopK::new(3);
        for (id, near) in [(1u64, 0.5f32), (2, 0.9), (3, 0.1), (4, 0.9), (5, 0.7)] {
            top.push(near, Hit { id, score: near });
        }
        let ids: Vec<u64> = top.into_sorted().iter().map(|h| h.id).collect();
        assert_eq!(ids, vec![2, 4, 5]);
    }

    #[test]
    fn large_k_uses_the_id_set_and_still_dedupes() {
        let mut top = TopK::new(100);
        for round in 0..3 {
            for id in 0..150u64 {
                let near = (id as f32) + round as f32 * 0.1;
                top.push(near, Hit { id, score: near });
            }
        }
        let hits = top.into_sorted();
        assert_eq!(hits.len(), 100);
        assert_eq!(hits[0].id, 149);
        assert!((hits[0].score - 149.2).abs() < 1e-4, "kept the nearer twin");
        let mut ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 100);
    }

    #[test]
    fn an_id_met_twice_is_kept_once() {
        let mut top = TopK::new(3);
        top.push(0.5, Hit { id: 1, score: 0.5 });
        top.push(0.8, Hit { id: 1, score: 0.8 });
        top.push(0.6, Hit { id: 2, score: 0.6 });
        let hits = top.into_sorted();
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(hits[0].score, 0.8);
    }
}
