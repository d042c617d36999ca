//! How IVF coarse quantisers are trained: on a sample of the segment, and
//! once per space rather than once per segment.
//!
//! Training (k-means) is most of an IVF build: Faiss clusters up to 256
//! points per list, 10 iterations, so a segment of 1 M rows into 4,000
//! lists spends about 100 s of this machine there and 4 s assigning the
//! rows. Two things cut it, both measured by `ember bench` (ARCHITECTURE,
//! "Limits of one machine"):
//!
//! - **A sample.** The quantiser is trained on `points_per_list` evenly
//!   spaced rows per list (default [`DEFAULT_POINTS_PER_LIST`]), not on
//!   every row. Faiss itself warns below 39.
//! - **Shared centroids.** The space remembers the first quantiser it
//!   trains (or finds in a loaded index file) and every later segment with
//!   the same list count is built on the same centroids: its build is only
//!   the assignment of its rows. Segments sealed at the space's
//!   `segment_rows` all have the same list count; a segment of another size
//!   (what a compaction leaves) trains its own, which later segments of
//!   that size share in turn. Centroids trained on one
//!   segment serve the later ones as well as the data stays alike; data
//!   that drifts makes lists uneven, which costs speed, not results (every
//!   row is still in exactly one list, and the probes find it).
//!
//! The centroids are held in memory only: every index file carries its own
//! quantiser, so after a restart the first IVF index loaded (or, if none,
//! the first built) provides them again.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// Points per list the coarse quantiser is trained on, by default.
pub const DEFAULT_POINTS_PER_LIST: usize = 64;

/// The fewest points per list we accept: Faiss's k-means warns and degrades
/// below 39.
pub const MIN_POINTS_PER_LIST: usize = 39;

/// Trained centroids: `nlist` rows of `dim` values.
#[derive(Debug)]
pub(crate) struct Centroids {
    pub nlist: usize,
    pub dim: usize,
    pub values: Vec<f32>,
}

/// One space's IVF training policy and the centroids it shares.
#[derive(Debug)]
pub(crate) struct IvfTraining {
    points_per_list: usize,
    share: bool,
    /// The first centroids trained or loaded for each (list count, dim).
    shared: Mutex<HashMap<(usize, usize), Arc<Centroids>>>,
}

impl IvfTraining {
    pub fn new(points_per_list: usize, share: bool) -> Self {
        IvfTraining {
            points_per_list: points_per_list.max(MIN_POINTS_PER_LIST),
            share,
            shared: Mutex::new(HashMap::new()),
        }
    }

    /// The shared centroids for `nlist` lists of `dim` values, if any.
    pub fn shared(&self, nlist: usize, dim: usize) -> Option<Arc<Centroids>> {
        if !self.share {
            return None;
        }
        self.shared.lock().get(&(nlist, dim)).cloned()
    }

    /// Offers centroids to share; the first offered for their list count
    /// and dimension is kept.
    pub fn offer(&self, centroids: impl FnOnce() -> Option<Centroids>) {
        if !self.share {
            return;
        }
        if let Some(c) = centroids() {
            self.shared
                .lock()
                .entry((c.nlist, c.dim))
                .or_insert_with(|| Arc::new(c));
        }
    }

    /// Whether an index of `nlist` lists of `dim` should offer its
    /// centroids (none are shared for that shape yet).
    pub fn wants(&self, nlist: usize, dim: usize) -> bool {
        self.share && !self.shared.lock().contains_key(&(nlist, dim))
    }

    /// The rows to train `nlist` lists on: all of `rows` when they are
    /// few, else `points_per_list * nlist` rows evenly spaced through them
    /// (a copy). Evenly spaced rather than random so that a rebuild trains
    /// on the same rows.
    pub fn sample<'a>(&self, rows: &'a [f32], dim: usize, nlist: usize) -> std::borrow::Cow<'a, [f32]> {
        let count = rows.len() / dim;
        let wanted = self.points_per_list.saturating_mul(nlist);
        if wanted >= count {
            return std::borrow::Cow::Borrowed(rows);
        }
        let mut sample = Vec::with_capacity(wanted * dim);
        for i in 0..wanted {
            // i * count / wanted < count for every i < wanted.
            let row = (i as u128 * count as u128 / wanted as u128) as usize;
            sample.extend_from_slice(&rows[row * dim..(row + 1) * dim]);
        }
        std::borrow::Cow::Owned(sample)
    }
}

impl Default for IvfTraining {
    fn default() -> Self {
        IvfTraining::new(DEFAULT_POINTS_PER_LIST, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_evenly_spaced_and_bounded() {
        let dim = 2;
        let rows: Vec<f32> = (0..10_000).flat_map(|i| [i as f32, -(i as f32)]).collect();
        let training = IvfTraining::new(40, true);
        let sample = training.sample(&rows, dim, 10);
        assert_eq!(sample.len(), 400 * dim);
        let firsts: Vec<f32> = sample.chunks_exact(dim).map(|r| r[0]).collect();
        assert_eq!(firsts[0], 0.0);
        assert_eq!(firsts[1], 25.0);
        assert_eq!(firsts[399], 9975.0);
        assert!(sample.chunks_exact(dim).all(|r| r[1] == -r[0]), "rows are copied whole");
        // Fewer rows than the sample wants: all of them, not copied.
        assert!(matches!(
            training.sample(&rows[..200], dim, 10),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn sharing_keeps_the_first_offer_and_matches_the_shape() {
        let training = IvfTraining::default();
        assert!(training.wants(4, 3));
        training.offer(|| {
            Some(Centroids {
                nlist: 4,
                dim: 3,
                values: vec![1.0; 12],
            })
        });
        training.offer(|| {
            Some(Centroids {
                nlist: 4,
                dim: 3,
                values: vec![2.0; 12],
            })
        });
        assert!(!training.wants(4, 3));
        assert_eq!(training.shared(4, 3).map(|c| c.values[0]), Some(1.0));
        assert!(training.shared(5, 3).is_none(), "another list count trains its own");
        assert!(training.shared(4, 2).is_none());
        assert!(training.wants(5, 3), "and offers it in turn");
        training.offer(|| {
            Some(Centroids {
                nlist: 5,
                dim: 3,
                values: vec![3.0; 15],
            })
        });
        assert_eq!(training.shared(5, 3).map(|c| c.values[0]), Some(3.0));
        assert_eq!(training.shared(4, 3).map(|c| c.values[0]), Some(1.0), "both kept");
        let private = IvfTraining::new(64, false);
        private.offer(|| {
            Some(Centroids {
                nlist: 4,
                dim: 3,
                values: vec![1.0; 12],
            })
        });
        assert!(private.shared(4, 3).is_none());
    }

    #[test]
    fn points_per_list_has_a_floor() {
        let training = IvfTraining::new(1, false);
        let rows = vec![0.0f32; 100_000];
        assert_eq!(training.sample(&rows, 1, 10).len(), MIN_POINTS_PER_LIST * 10);
    }
}
