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

use std::borrow::Cow;
use std::collections::hash_map::Entry;
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

    /// The shared centroids an index built or loaded with `own` centroids
    /// (asked for only when sharing is on) takes part in: `own` become
    /// them when none of their list count and dimension are shared yet;
    /// otherwise the shared ones, if `own` are the same. None when the
    /// index is on centroids of its own.
    pub fn share(&self, own: impl FnOnce() -> Option<Centroids>) -> Option<Arc<Centroids>> {
        if !self.share {
            return None;
        }
        let own = own()?;
        match self.shared.lock().entry((own.nlist, own.dim)) {
            Entry::Vacant(slot) => Some(Arc::clone(slot.insert(Arc::new(own)))),
            Entry::Occupied(kept) => (kept.get().values == own.values).then(|| Arc::clone(kept.get())),
        }
    }

    /// The rows to train `nlist` lists on ([`training_sample`]).
    pub fn sample<'a>(&self, rows: &'a [f32], dim: usize, nlist: usize) -> Cow<'a, [f32]> {
        training_sample(rows, dim, nlist, self.points_per_list)
    }
}

/// The rows an IVF quantiser of `nlist` lists is trained on: all of `rows`
/// (`dim` values each) when they are few, else `points_per_list * nlist`
/// rows (at least [`MIN_POINTS_PER_LIST`] per list) evenly spaced through
/// them, copied. Evenly spaced rather than random so that a rebuild trains
/// on the same rows; public so that a benchmark can train a plain Faiss
/// index on exactly what the store trains on.
pub fn training_sample(rows: &[f32], dim: usize, nlist: usize, points_per_list: usize) -> Cow<'_, [f32]> {
    let count = rows.len() / dim.max(1);
    let wanted = points_per_list.max(MIN_POINTS_PER_LIST).saturating_mul(nlist);
    if wanted >= count {
        return Cow::Borrowed(rows);
    }
    let mut sample = Vec::with_capacity(wanted * dim);
    for i in 0..wanted {
        // i * count / wanted < count for every i < wanted.
        let row = (i as u128 * count as u128 / wanted as u128) as usize;
        sample.extend_from_slice(&rows[row * dim..(row + 1) * dim]);
    }
    Cow::Owned(sample)
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

    fn centroids(nlist: usize, dim: usize, value: f32) -> Option<Centroids> {
        Some(Centroids {
            nlist,
            dim,
            values: vec![value; nlist * dim],
        })
    }

    #[test]
    fn sharing_keeps_the_first_offer_and_matches_the_shape() {
        let training = IvfTraining::default();
        assert!(training.shared(4, 3).is_none());
        let first = training
            .share(|| centroids(4, 3, 1.0))
            .expect("the first becomes the shared");
        assert_eq!(first.values[0], 1.0);
        assert!(
            training.share(|| centroids(4, 3, 2.0)).is_none(),
            "other centroids of the same shape are not the shared ones"
        );
        assert_eq!(training.shared(4, 3).map(|c| c.values[0]), Some(1.0));
        assert!(
            training
                .share(|| centroids(4, 3, 1.0))
                .is_some_and(|c| Arc::ptr_eq(&c, &first)),
            "the same centroids are"
        );
        assert!(training.shared(5, 3).is_none(), "another list count trains its own");
        assert!(training.shared(4, 2).is_none());
        training.share(|| centroids(5, 3, 3.0)).expect("and shares it in turn");
        assert_eq!(training.shared(5, 3).map(|c| c.values[0]), Some(3.0));
        assert_eq!(training.shared(4, 3).map(|c| c.values[0]), Some(1.0), "both kept");
        let private = IvfTraining::new(64, false);
        assert!(private
            .share(|| panic!("centroids are not even read when sharing is off"))
            .is_none());
        assert!(private.shared(4, 3).is_none());
    }

    #[test]
    fn points_per_list_has_a_floor() {
        let training = IvfTraining::new(1, false);
        let rows = vec![0.0f32; 100_000];
        assert_eq!(training.sample(&rows, 1, 10).len(), MIN_POINTS_PER_LIST * 10);
    }
}
