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
//!
//! A filtered query plans by the filter's estimated selectivity (the size
//! of its resolved id list against the live rows), as Qdrant's planner
//! does. A narrow filter (at most [`NARROW_SHARE`] of the rows, or at most
//! [`NARROW_ROWS`]) scores exactly its matching rows, found by id; a broad
//! one searches each index for about `1 / selectivity` times more
//! candidates than it needs ([`OVERFETCH`]) and checks each one; a segment
//! whose candidates leave fewer than `k` hits is then scanned exactly. So
//! filtered answers keep the unfiltered recall at any selectivity, and
//! never come back short while `k` matching items exist.

use super::filter::Matching;
use super::topk::TopK;
use super::Hit;
use crate::error::Result;
use crate::index::{CoarseMemo, SearchKnobs};
use crate::kernels::{cosine_prefix_rows, nearness, score_rows};
use crate::metric::Metric;
use crate::segment::tombstones::Tombstones;
use crate::segment::visibility::Seen;
use crate::version::View;

/// What a scan looks for.
struct Probe<'a> {
    metric: Metric,
    query: &'a [f32],
    exclude: &'a dyn Fn(u64) -> bool,
    /// The writes the reader sees (`segment::visibility`).
    seen: Seen,
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
                if (any_dead && dead.is_dead_to(r, self.seen)) || (self.exclude)(*id) {
                    continue;
                }
                top.push(near, Hit { id: *id, score: s });
            }
        }
    }
}

impl Probe<'_> {
    /// Scores the live rows of `wanted` (sorted ids) in `version`, found by
    /// id: a narrow filter's plan. An item moving between segments is
    /// found in one of them: its move is visible whole or not at all.
    fn rows_of(&self, version: &View, wanted: &[u64], top: &mut TopK) -> Result<()> {
        let dim = self.query.len();
        let mut block_ids: Vec<u64> = Vec::with_capacity(SCAN_BLOCK);
        let mut block_rows: Vec<f32> = Vec::with_capacity(SCAN_BLOCK * dim);
        let mut scores = [0f32; SCAN_BLOCK];
        let mut flush = |block_ids: &mut Vec<u64>, block_rows: &mut Vec<f32>, top: &mut TopK| {
            let scores = &mut scores[..block_ids.len()];
            score_rows(self.metric, self.query, block_rows, scores);
            for (id, &s) in block_ids.iter().zip(scores.iter()) {
                top.push(nearness(self.metric, s), Hit { id: *id, score: s });
            }
            block_ids.clear();
            block_rows.clear();
        };
        let mut take = |id: u64, row: Option<&[f32]>, top: &mut TopK| {
            let Some(row) = row else { return };
            if (self.exclude)(id) {
                return;
            }
            block_ids.push(id);
            block_rows.extend_from_slice(row);
            if block_ids.len() == SCAN_BLOCK {
                flush(&mut block_ids, &mut block_rows, top);
            }
        };
        if version.directory.is_some() {
            // A trained version: its directory (and growing segment) say
            // where each item's one live row is.
            for &id in wanted {
                take(id, version.trained_row(id, self.seen)?, top);
            }
        } else {
            // A host-fed version: an item has at most one live row, in the
            // growing segment or in one sealed segment.
            // The growing segment's map holds each item's newest row (a
            // write since `seen` only made it newer); a sealed row counts
            // until a kill the reader sees. An item found twice (its old
            // row killed after `seen`, its new one here) is kept once by
            // `TopK`.
            let growing = &version.growing;
            if growing.len() > 0 {
                for &id in wanted {
                    if let Some(row) = growing.row_of(id) {
                        take(id, growing.row(row), top);
                    }
                }
            }
            for segment in &version.sealed {
                let mut failed = None;
                segment.rows_of(wanted, |id, row| {
                    if failed.is_some() || segment.dead().is_dead_to(row as usize, self.seen) {
                        return;
                    }
                    match segment.row(row) {
                        Ok(values) => take(id, values, top),
                        Err(e) => failed = Some(e),
                    }
                })?;
                if let Some(e) = failed {
                    return Err(e);
                }
            }
        }
        if !block_ids.is_empty() {
            flush(&mut block_ids, &mut block_rows, top);
        }
        Ok(())
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
    /// The query's filter, resolved (`exclude` already refuses the ids it
    /// does not allow): what the plan estimates the selectivity from.
    pub filter: Option<&'a Matching>,
}

/// Filters matching at most this share of the live rows are scanned
/// exactly over their matching rows (chosen by `ember bench-filter`).
pub(crate) const NARROW_SHARE: f64 = 0.02;
/// ... and so are filters matching at most this many rows.
pub(crate) const NARROW_ROWS: usize = 2048;
/// A broad filter asks each index for this many times `k / selectivity`.
pub(crate) const OVERFETCH: f64 = 1.5;

/// How a filtered query runs.
enum FilterPlan<'a> {
    /// Score these ids' rows, and no others.
    Rows(&'a [u64]),
    /// Scan every row (a narrow filter given as the ids it leaves out).
    Scan,
    /// Search the indexes for this many times more candidates.
    Overfetch(f64),
}

fn filter_plan(filter: &Matching, live_rows: usize) -> FilterPlan<'_> {
    let matching = filter.estimate(live_rows);
    let narrow = matching <= NARROW_ROWS || (matching as f64) <= NARROW_SHARE * live_rows as f64;
    match filter {
        Matching::Only(ids) if narrow => FilterPlan::Rows(ids),
        Matching::AllBut(_) if narrow => FilterPlan::Scan,
        _ => FilterPlan::Overfetch((OVERFETCH * live_rows as f64 / matching.max(1) as f64).max(1.0)),
    }
}

/// The `k` nearest live rows of `version` to `query` (already normalised for
/// cosine), skipping ids for which `exclude` is true.
pub(crate) fn search(version: &View, metric: Metric, query: &[f32], plan: &Plan) -> Result<Vec<Hit>> {
    let probe = Probe {
        metric,
        query,
        exclude: plan.exclude,
        seen: version.seen,
    };
    let mut top = TopK::new(plan.k);
    let mut exact = plan.exact;
    let mut overfetch = 1.0;
    if let Some(filter) = plan.filter {
        match filter_plan(filter, version.live_rows()) {
            FilterPlan::Rows(ids) => {
                probe.rows_of(version, ids, &mut top)?;
                return Ok(top.into_sorted());
            }
            FilterPlan::Scan => exact = true,
            FilterPlan::Overfetch(factor) => overfetch = factor,
        }
    }
    let mut coarse = CoarseMemo::default();
    for segment in &version.sealed {
        let (ids, rows) = segment.data()?;
        let index = segment
            .index()
            .filter(|_| !exact && segment.dead().count() * 2 <= segment.count());
        if let Some(index) = index {
            let dead = if segment.dead().count() > 0 {
                segment.dead_bitmap(version.seen)
            } else {
                Vec::new()
            };
            // Live as this reader sees the segment: a row killed after the
            // reader began is still its to find (the new version is past
            // what it sees). `live_rows()` counts it dead already, and a
            // search that asked for that many stopped one row short.
            let dead_seen: usize = dead.iter().map(|b| b.count_ones() as usize).sum();
            let live = segment.count().saturating_sub(dead_seen);
            // Ask for enough that `k` survive the excluded ids (and, under a
            // filter, the ids it does not allow).
            let asked = ((plan.k as f64 * overfetch).ceil() as usize).saturating_add(plan.excluded);
            let want = asked.min(live);
            let mut knobs = if overfetch > 1.0 {
                index.widened(plan.knobs, overfetch / OVERFETCH)
            } else {
                plan.knobs
            };
            let mut found = index.search(query, want, knobs, &dead, &mut coarse)?;
            // Too few (IVF's probed lists were small): probe deeper first.
            while found.len() < want {
                let Some(deeper) = index.deeper(knobs) else { break };
                knobs = deeper;
                found = index.search(query, want, knobs, &dead, &mut coarse)?;
            }
            if found.len() >= want {
                let mut kept = 0;
                for (row, score) in &found {
                    let id = ids[*row as usize];
                    if !(plan.exclude)(id) {
                        top.push(nearness(metric, *score), Hit { id, score: *score });
                        kept += 1;
                    }
                }
                // Every candidate this segment has was looked at, or `k`
                // survived: this segment's part is complete.
                if kept >= plan.k || want == live || plan.filter.is_none() {
                    continue;
                }
            }
        }
        probe.scan(0, ids, rows, segment.dead(), &mut top);
    }
    version.growing.for_each_chunk_to(version.seen, |first, ids, rows| {
        probe.scan(first, ids, rows, version.growing.dead(), &mut top)
    });
    Ok(top.into_sorted())
}

/// The `k` live rows of `version` with the highest cosine between `query`
/// (a unit vector of `d` components) and their first `d` components,
/// skipping ids for which `exclude` is true; scanned exactly (no index
/// holds these similarities).
pub(crate) fn search_cosine_prefix(
    version: &View,
    query: &[f32],
    k: usize,
    exclude: &dyn Fn(u64) -> bool,
) -> Result<Vec<Hit>> {
    let mut top = TopK::new(k);
    let mut scores = [0f32; SCAN_BLOCK];
    let seen = version.seen;
    let mut scan = |first_row: usize, ids: &[u64], rows: &[f32], dead: &Tombstones, stride: usize, top: &mut TopK| {
        for (b, (block_ids, block_rows)) in ids.chunks(SCAN_BLOCK).zip(rows.chunks(SCAN_BLOCK * stride)).enumerate() {
            let s = &mut scores[..block_ids.len()];
            cosine_prefix_rows(query, block_rows, stride, s);
            for (i, (id, &score)) in block_ids.iter().zip(s.iter()).enumerate() {
                if score < top.threshold() || dead.is_dead_to(first_row + b * SCAN_BLOCK + i, seen) || exclude(*id) {
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
    version.growing.for_each_chunk_to(seen, |first, ids, rows| {
        scan(first, ids, rows, version.growing.dead(), stride, &mut top)
    });
    Ok(top.into_sorted())
}
