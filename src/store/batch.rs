//! Batches: many upserts under one write lock and one wait for
//! durability (`Store::upsert_batch`, `Space::upsert_batch`), and many
//! queries answered on every core (`Store::knn_batch`).

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};
use crate::query::{Hit, Query};
use crate::store::space::SpaceState;
use crate::store::{item_context, Store, Written};
use crate::validate;

/// Rows of vectors for [`Store::upsert_batch`]: one flat slice of
/// `ids.len() * dim` numbers (row after row), or one slice per row.
pub trait VectorRows {
    /// How many rows of `dim` numbers these are: None if a flat slice's
    /// length is not a multiple of `dim`.
    fn count(&self, dim: usize) -> Option<usize>;
    /// Row `i` of `rows` rows of `dim` numbers; None if there are not
    /// `rows` rows of `dim` numbers.
    fn row(&self, i: usize, rows: usize, dim: usize) -> Option<&[f32]>;
    /// How many numbers, or rows, the caller gave (for the error).
    fn describe(&self) -> String;
}

impl VectorRows for [f32] {
    fn count(&self, dim: usize) -> Option<usize> {
        (dim > 0 && self.len().is_multiple_of(dim)).then(|| self.len() / dim)
    }

    fn row(&self, i: usize, rows: usize, dim: usize) -> Option<&[f32]> {
        if Some(self.len()) != rows.checked_mul(dim) {
            return None;
        }
        self.get(i * dim..(i + 1) * dim)
    }

    fn describe(&self) -> String {
        format!("{} numbers", self.len())
    }
}

impl VectorRows for Vec<f32> {
    fn count(&self, dim: usize) -> Option<usize> {
        self.as_slice().count(dim)
    }

    fn row(&self, i: usize, rows: usize, dim: usize) -> Option<&[f32]> {
        self.as_slice().row(i, rows, dim)
    }

    fn describe(&self) -> String {
        self.as_slice().describe()
    }
}

impl<const N: usize> VectorRows for [f32; N] {
    fn count(&self, dim: usize) -> Option<usize> {
        self.as_slice().count(dim)
    }

    fn row(&self, i: usize, rows: usize, dim: usize) -> Option<&[f32]> {
        self.as_slice().row(i, rows, dim)
    }

    fn describe(&self) -> String {
        self.as_slice().describe()
    }
}

/// Rows as separate slices; each row's length is checked against the
/// space's dimension like a single upsert's.
fn row_of<R: AsRef<[f32]>>(rows: &[R], i: usize, count: usize) -> Option<&[f32]> {
    if rows.len() != count {
        return None;
    }
    rows.get(i).map(AsRef::as_ref)
}

macro_rules! rows_of_slices {
    ($($row:ty),*) => {$(
        impl VectorRows for [$row] {
            fn count(&self, _dim: usize) -> Option<usize> {
                Some(self.len())
            }

            fn row(&self, i: usize, rows: usize, _dim: usize) -> Option<&[f32]> {
                row_of(self, i, rows)
            }

            fn describe(&self) -> String {
                format!("{} rows", self.len())
            }
        }

        impl VectorRows for Vec<$row> {
            fn count(&self, _dim: usize) -> Option<usize> {
                Some(self.len())
            }

            fn row(&self, i: usize, rows: usize, _dim: usize) -> Option<&[f32]> {
                row_of(self, i, rows)
            }

            fn describe(&self) -> String {
                format!("{} rows", self.len())
            }
        }
    )*};
}

rows_of_slices!(Vec<f32>, &[f32], &Vec<f32>);

impl<const N: usize> VectorRows for [[f32; N]] {
    fn count(&self, _dim: usize) -> Option<usize> {
        Some(self.len())
    }

    fn row(&self, i: usize, rows: usize, _dim: usize) -> Option<&[f32]> {
        row_of(self, i, rows)
    }

    fn describe(&self) -> String {
        format!("{} rows", self.len())
    }
}

impl<const N: usize> VectorRows for Vec<[f32; N]> {
    fn count(&self, _dim: usize) -> Option<usize> {
        Some(self.len())
    }

    fn row(&self, i: usize, rows: usize, _dim: usize) -> Option<&[f32]> {
        row_of(self, i, rows)
    }

    fn describe(&self) -> String {
        format!("{} rows", self.len())
    }
}

/// Queries in a batch below this are answered on the calling thread:
/// starting threads costs more than the queries.
const SERIAL_BATCH: usize = 2;

impl Store {
    /// Inserts or replaces the vectors of `ids` in the default space, as
    /// `upsert` one by one would, under one write lock and one wait for
    /// durability. `vectors` holds a row of the space's dimension per id
    /// (flat, row after row, or one slice per row). Every row is checked
    /// first: if any is refused, nothing is written. A repeated id takes
    /// its last row. Every row is searchable when this returns; like
    /// `upsert`, each lifts a store-wide [`Store::delete`] of its id.
    ///
    /// ```
    /// use emberdb::{Durability, Error, Options, Store};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let store = Store::open(&path, Options::new(2).durability(Durability::None))?;
    /// store.upsert_batch(&[1, 2], &[0.1, 0.2, 0.3, 0.4])?; // flat
    /// store.upsert_batch(&[3, 4], &vec![vec![0.5, 0.6], vec![0.7, 0.8]])?; // rows
    /// assert_eq!(store.stats()?.live_rows, 4);
    ///
    /// // Three numbers for two rows of two: refused, nothing written.
    /// let refused = store.upsert_batch(&[5, 6], &[0.1, 0.2, 0.3]);
    /// assert!(matches!(refused, Err(Error::InvalidBatch(_))));
    /// // One bad row (NaN) refuses the batch too.
    /// let refused = store.upsert_batch(&[5, 6], &vec![[0.1, 0.2], [f32::NAN, 0.0]]);
    /// assert!(matches!(refused, Err(Error::NonFiniteVector { index: 0, .. })));
    /// assert!(store.get(5)?.is_none());
    /// # Ok(()) }
    /// ```
    pub fn upsert_batch<R: VectorRows + ?Sized>(&self, ids: &[u64], vectors: &R) -> Result<()> {
        self.upsert_batch_in(self.shared.default_space(), ids, vectors)
    }

    pub(crate) fn upsert_batch_in<R: VectorRows + ?Sized>(
        &self,
        space: &SpaceState,
        ids: &[u64],
        vectors: &R,
    ) -> Result<()> {
        self.refuse_if_trained(space, "upsert")?;
        let mismatch = || {
            Error::InvalidBatch(format!(
                "upsert_batch into {}: {} ids but {} (a row of {} numbers is needed per id)",
                space.describe(),
                ids.len(),
                vectors.describe(),
                space.dim
            ))
        };
        if vectors.count(space.dim) != Some(ids.len()) {
            return Err(mismatch());
        }
        let mut rows = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            let Some(row) = vectors.row(i, ids.len(), space.dim) else {
                return Err(mismatch());
            };
            rows.push(validate::prepare_vector(space.metric, space.dim, row, || {
                item_context(space, id)
            })?);
        }
        if ids.is_empty() {
            return Ok(());
        }
        self.mutate(|w| {
            let mut end = w.wal.end();
            for (&id, row) in ids.iter().zip(&rows) {
                end = self.log_upsert(w, space, id, row)?;
            }
            Ok(Written::At(end, ()))
        })
    }

    /// Answers every query of `queries`, in order, as `knn` one by one
    /// would, on up to one thread per core. The first query that fails (in
    /// the batch's order) fails the batch.
    ///
    /// ```
    /// use emberdb::{Durability, Error, Event, Options, Query, Store};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let store = Store::open(&path, Options::new(2).durability(Durability::None))?;
    /// store.upsert_batch(&[1, 2, 3], &vec![[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])?;
    /// store.append_event(Event::new(7, 3, 1_700_000_000_000))?;
    ///
    /// let answers = store.knn_batch(&[Query::item(1).k(1), Query::user(7).k(1), Query::popular()])?;
    /// let firsts: Vec<u64> = answers.iter().map(|hits| hits[0].id).collect();
    /// assert_eq!(firsts, [2, 2, 3]); // in the order asked
    ///
    /// // One failing query fails the batch: user 8 has no events.
    /// let failed = store.knn_batch(&[Query::item(1), Query::user(8)]);
    /// assert!(matches!(failed, Err(Error::UnknownUser { id: 8 })));
    /// # Ok(()) }
    /// ```
    pub fn knn_batch(&self, queries: &[Query]) -> Result<Vec<Vec<Hit>>> {
        self.knn_each(queries).into_iter().collect()
    }

    /// The top `k` similar items of each of `ids` in the space `space`
    /// (`Query::item(id).k(k).space(space)`), on every core, in the order
    /// of `ids`: what a "top-N for every item" export writes. An id with
    /// no live vector there (deleted meanwhile, or never in the space) is
    /// left out; any other failure fails the call.
    pub fn neighbours(&self, space: &str, ids: &[u64], k: usize) -> Result<Vec<(u64, Vec<Hit>)>> {
        let queries: Vec<Query> = ids.iter().map(|id| Query::item(*id).k(k).space(space)).collect();
        let mut out = Vec::with_capacity(ids.len());
        for (id, answer) in ids.iter().zip(self.knn_each(&queries)) {
            match answer {
                Ok(hits) => out.push((*id, hits)),
                Err(Error::UnknownItem { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Every query's answer, in order, on up to one thread per core.
    fn knn_each(&self, queries: &[Query]) -> Vec<Result<Vec<Hit>>> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(queries.len());
        if queries.len() < SERIAL_BATCH || threads <= 1 {
            return queries.iter().map(|q| self.knn(q)).collect();
        }
        let next = AtomicUsize::new(0);
        let answered: Vec<Vec<(usize, Result<Vec<Hit>>)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(query) = queries.get(i) else { break };
                            mine.push((i, self.knn(query)));
                        }
                        mine
                    })
                })
                .collect();
            workers
                .into_iter()
                // `knn` returns its failures; a panic in it would be a bug,
                // passed on to the caller as the one-by-one call would.
                .map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        });
        let mut answers: Vec<Option<Result<Vec<Hit>>>> = (0..queries.len()).map(|_| None).collect();
        for (i, answer) in answered.into_iter().flatten() {
            answers[i] = Some(answer);
        }
        // Every index below the batch's length was taken by one worker.
        answers.into_iter().flatten().collect()
    }
}
