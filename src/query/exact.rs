//! Exact (brute-force) search over every live row of a version.

use super::kernels::{nearness, score};
use super::topk::TopK;
use super::Hit;
use crate::error::Result;
use crate::options::Metric;
use crate::segment::tombstones::Tombstones;
use crate::store::version::Version;

/// What a scan looks for.
struct Probe<'a> {
    metric: Metric,
    query: &'a [f32],
    exclude: &'a dyn Fn(u64) -> bool,
}

impl Probe<'_> {
    /// Scans `ids.len()` contiguous rows starting at row `first_row` of a
    /// segment, skipping dead rows and excluded ids, into `top`.
    fn scan(&self, first_row: usize, ids: &[u64], rows: &[f32], dead: &Tombstones, top: &mut TopK) {
        let dim = self.query.len();
        let any_dead = dead.count() > 0;
        for (r, (id, row)) in ids.iter().zip(rows.chunks_exact(dim)).enumerate() {
            let s = score(self.metric, self.query, row);
            let near = nearness(self.metric, s);
            if near < top.threshold() {
                continue;
            }
            if (any_dead && dead.is_dead(first_row + r)) || (self.exclude)(*id) {
                continue;
            }
            top.push(near, Hit { id: *id, score: s });
        }
    }
}

/// The `k` nearest live rows of `version` to `query` (already normalised for
/// cosine), skipping ids for which `exclude` is true.
pub(crate) fn search(
    version: &Version,
    metric: Metric,
    query: &[f32],
    k: usize,
    exclude: &dyn Fn(u64) -> bool,
) -> Result<Vec<Hit>> {
    let probe = Probe { metric, query, exclude };
    let mut top = TopK::new(k);
    for segment in &version.sealed {
        let (ids, rows) = segment.data()?;
        probe.scan(0, ids, rows, segment.dead(), &mut top);
    }
    version
        .growing
        .for_each_chunk(|first, ids, rows| probe.scan(first, ids, rows, version.growing.dead(), &mut top));
    Ok(top.into_sorted())
}
