//! Search over a version: each sealed segment through its Faiss index when
//! it has one (filtering dead rows inside the search), exactly otherwise;
//! the growing segment exactly; then the top k of all.
//!
//! An index may return fewer live rows than asked (IVF's probed lists may be
//! small; HNSW's candidate list, or IVF's lists, can hold too few live rows
//! when much of a segment is dead). IVF then probes 8 times as many lists,
//! up to all of them; if that is still short, or for HNSW, the segment is
//! scanned exactly. So a query returns k hits whenever k live items exist.
//! Segments more than half dead skip the index.

use super::topk::TopK;
use super::Hit;
use crate::error::Result;
use crate::index::SearchKnobs;
use crate::kernels::{cosine_prefix_rows, nearness, score_rows};
use crate::metric::Metric;
use crate::segment::tombstones::Tombstones;
use crate::version::Version;

/// What a scan looks for.
struct Probe<'a> {
    metric: Metric,
    query: &'a [f32],
    exclude: &'a dyn Fn(u64) -> bool,
}

/// Rows scored per kernel call: one dispatch per block, and the block's
/// scores (1 KiB) stay in L1 while they are filtered.
const SCAN_BLOCK: usize = 256;

impl Probe<'_> {
    /// Scans `ids.len()` contiguous rows starting at row `first_row` of a
    /// segment, skipping dead rows and excluded ids, into `top`.
    fn scan(&self, first_row: usize, ids: &[u64], rows: &[f32], dead: &Tombstones, top: &mut TopK) {
        let dim = self.query.len().max(1);
        let any_dead = dead.count() > 0;
        let mut block_scores = [0f32; SCAN_BLOCK];
        for (b, (block_ids, block_rows)) in ids.chunks(SCAN_BLOCK).zip(rows.chunks(SCAN_BLOCK * dim)).enumerate() {
            let scores = &mut block_scores[..block_ids.len()];
            score_rows(self.metric, self.query, block_rows, scores);
            for (i, (id, &s)) in block_ids.iter().zip(scores.iter()).enumerate() {
                let near = nearness(self.metric, s);
                if near < top.threshold() {
                    continue;
                }
                let r = first_row + b * SCAN_BLOCK + i;
                if (any_dead && dead.is_dead(r)) || (self.exclude)(*id) {
                    continue;
                }
                top.push(near, Hit { id: *id, score: s });
            }
        }
    }
}

/// How to run one query.
pub(crate) struct Plan<'a> {
    pub k: usize,
    pub exact: bool,
    pub knobs: SearchKnobs,
    /// Ids never to return.
    pub exclude: &'a dyn Fn(u64) -> bool,
    /// How many ids `exclude` may reject: indexes are asked for this many
    /// more than `k`.
    pub excluded: usize,
}

/// The `k` nearest live rows of `version` to `query` (already normalised for
/// cosine), skipping ids for which `exclude` is true.
pub(crate) fn search(version: &Version, metric: Metric, query: &[f32], plan: &Plan) -> Result<Vec<Hit>> {
    let probe = Probe {
        metric,
        query,
        exclude: plan.exclude,
    };
    let mut top = TopK::new(plan.k);
    for segment in &version.sealed {
        let (ids, rows) = segment.data()?;
        let index = segment
            .index()
            .filter(|_| !plan.exact && segment.dead().count() * 2 <= segment.count());
        if let Some(index) = index {
            let dead = if segment.dead().count() > 0 {
                segment.dead_bitmap()
            } else {
                Vec::new()
            };
            // Ask for enough that `k` survive the excluded ids.
            let want = (plan.k + plan.excluded).min(segment.live_rows());
            let mut knobs = plan.knobs;
            let mut found = index.search(query, want, knobs, &dead)?;
            // Too few (IVF's probed lists were small): probe deeper first.
            while found.len() < want {
                let Some(deeper) = index.deeper(knobs) else { break };
                knobs = deeper;
                found = index.search(query, want, knobs, &dead)?;
            }
            if found.len() >= want {
                for (row, score) in found {
                    let id = ids[row as usize];
                    if !(plan.exclude)(id) {
                        top.push(nearness(metric, score), Hit { id, score });
                    }
                }
                continue;
            }
        }
        probe.scan(0, ids, rows, segment.dead(), &mut top);
    }
    version
        .growing
        .for_each_chunk(|first, ids, rows| probe.scan(first, ids, rows, version.growing.dead(), &mut top));
    Ok(top.into_sorted())
}

/// The `k` live rows of `version` with the highest cosine between `query`
/// (a unit vector of `d` components) and their first `d` components,
/// skipping ids for which `exclude` is true; scanned exactly (no index
/// holds these similarities).
pub(crate) fn search_cosine_prefix(
    version: &Version,
    query: &[f32],
    k: usize,
    exclude: &dyn Fn(u64) -> bool,
) -> Result<Vec<Hit>> {
    let mut top = TopK::new(k);
    let mut scores = [0f32; SCAN_BLOCK];
    let mut scan = |first_row: usize, ids: &[u64], rows: &[f32], dead: &Tombstones, stride: usize, top: &mut TopK| {
        for (b, (block_ids, block_rows)) in ids.chunks(SCAN_BLOCK).zip(rows.chunks(SCAN_BLOCK * stride)).enumerate() {
            let s = &mut scores[..block_ids.len()];
            cosine_prefix_rows(query, block_rows, stride, s);
            for (i, (id, &score)) in block_ids.iter().zip(s.iter()).enumerate() {
                if score < top.threshold() || dead.is_dead(first_row + b * SCAN_BLOCK + i) || exclude(*id) {
                    continue;
                }
                top.push(score, Hit { id: *id, score });
            }
        }
    };
    for segment in &version.sealed {
        let (ids, rows) = segment.data()?;
        let stride = rows.len() / ids.len().max(1);
        scan(0, ids, rows, segment.dead(), stride, &mut top);
    }
    let stride = version.growing.dim();
    version
        .growing
        .for_each_chunk(|first, ids, rows| scan(first, ids, rows, version.growing.dead(), stride, &mut top));
    Ok(top.into_sorted())
}
