//! Exact (brute-force) search over every live row of a version.

use super::kernels::{nearness, score};
use super::topk::TopK;
use super::Hit;
use crate::error::Result;
use crate::options::Metric;
use crate::segment::tombstones::Tombstones;
use crate::store::version::Version;

/// Scans `rows` (`ids.len()` rows of `query.len()` values), skipping dead rows
/// and excluded ids, into `top`.
fn scan(
    metric: Metric,
    query: &[f32],
    first_row: usize,
    ids: &[u64],
    rows: &[f32],
    dead: &Tombstones,
    exclude: &dyn Fn(u64) -> bool,
    top: &mut TopK,
) {
    let dim = query.len();
    let any_dead = dead.count() > 0;
    for (r, (id, row)) in ids.iter().zip(rows.chunks_exact(dim)).enumerate() {
        let s = score(metric, query, row);
        let near = nearness(metric, s);
        if near < top.threshold() {
            continue;
        }
        if (any_dead && dead.is_dead(first_row + r)) || exclude(*id) {
            continue;
        }
        top.push(near, Hit { id: *id, score: s });
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
    let mut top = TopK::new(k);
    for segment in &version.sealed {
        let (ids, rows) = segment.data()?;
        scan(metric, query, 0, ids, rows, segment.dead(), exclude, &mut top);
    }
    version.growing.for_each_chunk(|first, ids, rows| {
        scan(
            metric,
            query,
            first,
            ids,
            rows,
            version.growing.dead(),
            exclude,
            &mut top,
        )
    });
    Ok(top.into_sorted())
}
