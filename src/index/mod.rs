//! Faiss indexes over sealed segments: the only module that touches Faiss.
//!
//! Each sealed segment large enough gets its own index, built in the
//! background after sealing (or loaded from its file at open). Labels in the
//! index are the segment's row numbers; the segment maps them to item ids
//! and its tombstones filter dead rows inside the search (an id selector).

mod ffi;
pub(crate) mod file;
pub(crate) mod ivf_training;

pub use ffi::faiss_compile_options;

use std::path::Path;
use std::sync::Arc;

use faiss::index::IndexImpl;
use faiss::{index_factory, Index, MetricType};
use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::metric::Metric;
use file::IndexHeader;
use ivf_training::{Centroids, IvfTraining};

/// How sealed segments are indexed. Segments smaller than
/// `Options::flat_below` are always searched exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IndexSpec {
    /// No index: every row is scanned (exact).
    Flat,
    /// Faiss `HNSW{m},Flat`: a graph searched approximately.
    Hnsw {
        /// Links per node in the graph, 2 to 256 (32 by default): more is
        /// better recall for more memory and a slower build.
        m: usize,
        /// The candidate list's length while building, at least 1 (100 by
        /// default): more is a better graph for a slower build.
        ef_construction: usize,
        /// The candidate list's length while searching, at least 1 (96 by
        /// default): the default of a query that does not set
        /// `Query::ef_search`.
        ef_search: usize,
    },
    /// Faiss `IVF{nlist},Flat`: rows clustered into lists, of which a
    /// search scans the ones nearest the query.
    Ivf {
        /// The number of lists (k-means clusters), at least 1; `None`
        /// chooses about 4 * sqrt(rows) for each segment, fewer where a
        /// list would get under 39 training points.
        nlist: Option<usize>,
        /// Lists scanned per search, at least 1 (16 by default): the
        /// default of a query that does not set `Query::nprobe`.
        nprobe: usize,
    },
}

impl IndexSpec {
    /// HNSW with the defaults: m = 32, ef_construction = 100, ef_search = 96.
    pub fn hnsw() -> Self {
        IndexSpec::Hnsw {
            m: 32,
            ef_construction: 100,
            ef_search: 96,
        }
    }

    /// IVF with the defaults: nlist from the segment size, nprobe = 16.
    pub fn ivf() -> Self {
        IndexSpec::Ivf {
            nlist: None,
            nprobe: 16,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::InvalidOptions(format!("index spec: {what}")));
        match *self {
            IndexSpec::Flat => Ok(()),
            IndexSpec::Hnsw {
                m,
                ef_construction,
                ef_search,
            } => {
                if !(2..=256).contains(&m) {
                    return bad("HNSW m must be between 2 and 256");
                }
                if ef_construction == 0 || ef_search == 0 {
                    return bad("HNSW ef_construction and ef_search must be at least 1");
                }
                Ok(())
            }
            IndexSpec::Ivf { nlist, nprobe } => {
                if nlist == Some(0) || nprobe == 0 {
                    return bad("IVF nlist and nprobe must be at least 1");
                }
                Ok(())
            }
        }
    }
}

impl Default for IndexSpec {
    fn default() -> Self {
        IndexSpec::hnsw()
    }
}

/// Rows added to an index per Faiss call (see `SegmentIndex::build`).
const ADD_PIECE_ROWS: usize = 16_384;

const KIND_HNSW: u32 = 1;
const KIND_IVF: u32 = 2;

fn faiss_metric(metric: Metric) -> MetricType {
    match metric {
        // Cosine rows are stored normalised: cosine is their inner product.
        Metric::Cosine | Metric::InnerProduct => MetricType::InnerProduct,
        Metric::L2 => MetricType::L2,
    }
}

/// The IVF list count for a segment of `rows` rows: about 4 * sqrt(rows),
/// and never so many that a list gets fewer than 39 training points (below
/// which Faiss's k-means warns and degrades).
pub(crate) fn default_nlist(rows: usize) -> usize {
    let by_sqrt = (4.0 * (rows as f64).sqrt()) as usize;
    by_sqrt.min(rows / 39).max(1)
}

/// What an index built from `spec` over `rows` rows would say in its header.
fn header_for(spec: IndexSpec, metric: Metric, segment_id: u64, rows: usize) -> Option<IndexHeader> {
    let (kind, param_a, param_b) = match spec {
        IndexSpec::Flat => return None,
        IndexSpec::Hnsw { m, ef_construction, .. } => (KIND_HNSW, m as u32, ef_construction as u32),
        IndexSpec::Ivf { nlist, .. } => (KIND_IVF, nlist.unwrap_or_else(|| default_nlist(rows)) as u32, 0),
    };
    Some(IndexHeader {
        kind,
        segment_id,
        rows: rows as u64,
        param_a,
        param_b,
        metric: faiss_metric(metric) as u32,
    })
}

/// The centroids of an IVF index, if Faiss gives them (a failure only means
/// nothing is shared).
fn centroids_of(index: &IndexImpl, dim: usize) -> Option<Centroids> {
    match ffi::ivf_centroids(index, dim) {
        Ok((nlist, values)) => Some(Centroids { nlist, dim, values }),
        Err(reason) => {
            log::warn!("IVF centroids not shared: {reason}");
            None
        }
    }
}

/// The coarse lists one query was assigned to, kept for the query's whole
/// search: every segment whose IVF index was built on the same centroids
/// probes the same lists, so the quantiser runs once per query, not once
/// per segment (Faiss's IVF search without its first step,
/// `ffi::search_preassigned`).
#[derive(Default)]
pub(crate) struct CoarseMemo {
    key: Option<(Arc<Centroids>, usize)>,
    lists: Vec<i64>,
    distances: Vec<f32>,
}

/// Per-query knobs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SearchKnobs {
    pub ef_search: Option<usize>,
    pub nprobe: Option<usize>,
}

/// The Faiss index of one sealed segment.
pub(crate) struct SegmentIndex {
    header: IndexHeader,
    spec: IndexSpec,
    /// The space's shared centroids, when this IVF index was built on them.
    shared: Option<Arc<Centroids>>,
    /// Searches take the read lock and call Faiss through a shared pointer
    /// (see `ffi::search`); changing HNSW's efSearch, which lives on the
    /// index, takes the write lock.
    index: RwLock<IndexImpl>,
    /// The mapped file a loaded index's arrays are views into. Declared
    /// after `index` so that it is dropped after it (fields drop in order):
    /// the index must never outlive the bytes it reads.
    _backing: Option<file::MappedIndexFile>,
}

impl SegmentIndex {
    /// Builds the index of `spec` over `rows` (`dim` values each); an IVF
    /// quantiser comes from `training` (shared centroids, or k-means on a
    /// sample). Returns `Ok(None)` for `Flat`, or when `stop` turns true
    /// part way.
    pub fn build(
        spec: IndexSpec,
        metric: Metric,
        dim: usize,
        segment_id: u64,
        rows: &[f32],
        training: &IvfTraining,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Self>> {
        let count = rows.len() / dim;
        let Some(header) = header_for(spec, metric, segment_id, count) else {
            return Ok(None);
        };
        let fail = |reason: String| Error::Index {
            segment: segment_id,
            reason,
        };
        let faiss_err = |e: faiss::error::Error| fail(e.to_string());
        let nlist = header.param_a as usize;
        let mut shared = None;
        let mut index = match header.kind {
            KIND_HNSW => {
                let description = format!("HNSW{},Flat", header.param_a);
                let index = index_factory(dim as u32, &description, faiss_metric(metric)).map_err(faiss_err)?;
                let space = faiss::index::autotune::ParameterSpace::new().map_err(faiss_err)?;
                space
                    .set_index_parameter(&index, "efConstruction", header.param_b)
                    .map_err(faiss_err)?;
                index
            }
            _ => match training.shared(nlist, dim) {
                Some(centroids) => {
                    let index = ffi::ivf_flat_on(dim, nlist, faiss_metric(metric), &centroids.values).map_err(fail)?;
                    shared = Some(centroids);
                    index
                }
                None => {
                    let mut index = index_factory(dim as u32, format!("IVF{nlist},Flat"), faiss_metric(metric))
                        .map_err(faiss_err)?;
                    index.train(&training.sample(rows, dim, nlist)).map_err(faiss_err)?;
                    shared = training.share(|| centroids_of(&index, dim));
                    index
                }
            },
        };
        // In pieces, so that closing the store need not wait for a whole
        // build: each HNSW add also does work proportional to the index size
        // (locks, visited tables), so pieces are large enough for that to stay
        // a small fraction of the work.
        for piece in rows.chunks(ADD_PIECE_ROWS * dim) {
            if stop() {
                return Ok(None);
            }
            index.add(piece).map_err(faiss_err)?;
        }
        let built = SegmentIndex {
            header,
            spec,
            shared,
            index: RwLock::new(index),
            _backing: None,
        };
        built.apply_default_ef()?;
        Ok(Some(built))
    }

    /// Loads the index file at `path` if it was built with `spec` and
    /// `metric` over `rows` rows of segment `segment_id`; `Ok(None)` if it
    /// was built differently (the caller rebuilds it).
    /// An IVF index offers its centroids to `training` to share.
    pub fn load(
        path: &Path,
        spec: IndexSpec,
        metric: Metric,
        dim: usize,
        segment_id: u64,
        rows: usize,
        training: &IvfTraining,
    ) -> Result<Option<Self>> {
        let mapped = file::map(path)?;
        let header = mapped.header;
        if Some(header) != header_for(spec, metric, segment_id, rows) {
            return Ok(None);
        }
        // SAFETY: the views point into `mapped`, which the returned
        // `SegmentIndex` owns in `_backing`, dropped after the index; the
        // map is read-only and the file immutable (see `file::map`).
        let index = unsafe { ffi::read_view(mapped.body()) }.map_err(|reason| Error::Index {
            segment: segment_id,
            reason,
        })?;
        if index.ntotal() != rows as u64 || index.d() as usize != dim {
            return Err(Error::Corruption {
                file: path.to_path_buf(),
                offset: 64,
                reason: format!(
                    "index holds {} rows of {} values, the segment {rows} of {dim}",
                    index.ntotal(),
                    index.d()
                ),
            });
        }
        let shared = match header.kind {
            KIND_IVF => training.share(|| centroids_of(&index, dim)),
            _ => None,
        };
        let loaded = SegmentIndex {
            header,
            spec,
            shared,
            index: RwLock::new(index),
            _backing: Some(mapped),
        };
        loaded.apply_default_ef()?;
        Ok(Some(loaded))
    }

    /// Writes the index to `path` (atomically, with our checksum).
    pub fn save(&self, path: &Path) -> Result<()> {
        let body = ffi::write_to_vec(&self.index.read()).map_err(|reason| Error::Index {
            segment: self.header.segment_id,
            reason,
        })?;
        file::write(path, &self.header, &body)
    }

    fn default_ef(&self) -> Option<usize> {
        match self.spec {
            IndexSpec::Hnsw { ef_search, .. } => Some(ef_search),
            _ => None,
        }
    }

    fn default_nprobe(&self) -> Option<usize> {
        match self.spec {
            IndexSpec::Ivf { nprobe, .. } => Some(nprobe),
            _ => None,
        }
    }

    /// Stores the spec's efSearch / nprobe on the index, so that queries
    /// with default knobs need no per-call parameters.
    fn apply_default_ef(&self) -> Result<()> {
        let index = self.index.write();
        if let Some(ef) = self.default_ef() {
            self.set_parameter(&index, "efSearch", ef)?;
        }
        if let Some(nprobe) = self.default_nprobe() {
            self.set_parameter(&index, "nprobe", nprobe)?;
        }
        Ok(())
    }

    fn set_ef(&self, index: &IndexImpl, ef: usize) -> Result<()> {
        self.set_parameter(index, "efSearch", ef)
    }

    fn set_parameter(&self, index: &IndexImpl, name: &str, value: usize) -> Result<()> {
        let space = faiss::index::autotune::ParameterSpace::new().map_err(|e| self.error(e.to_string()))?;
        space
            .set_index_parameter(index, name, value as f64)
            .map_err(|e| self.error(e.to_string()))
    }

    fn error(&self, reason: String) -> Error {
        Error::Index {
            segment: self.header.segment_id,
            reason,
        }
    }

    /// The `k` nearest rows to `query`, skipping rows set in `dead` (a
    /// bitmap, bit `r % 8` of byte `r / 8`; empty when none are dead).
    /// Returns `(row, score)`; may return fewer than `k` when the graph or
    /// the probed lists hold fewer live rows.
    /// `coarse` carries one query's coarse lists from segment to segment.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        knobs: SearchKnobs,
        dead: &[u8],
        coarse: &mut CoarseMemo,
    ) -> Result<Vec<(u32, f32)>> {
        let nprobe = self.default_nprobe().map(|default| knobs.nprobe.unwrap_or(default));
        let needs_params = !dead.is_empty() || nprobe != self.default_nprobe();
        let k = k.min(self.header.rows as usize).max(1);
        let mut run = |index: &IndexImpl| match (&self.shared, nprobe) {
            (Some(centroids), Some(nprobe)) => {
                let nprobe = nprobe.clamp(1, self.header.param_a.max(1) as usize);
                self.search_shared(index, centroids, query, k, nprobe, dead, coarse)
            }
            _ if needs_params => ffi::search(index, query, k, nprobe, dead),
            _ => ffi::search_plain(index, query, k),
        };
        let found = match (knobs.ef_search, self.default_ef()) {
            (Some(ef), Some(default)) if ef != default => {
                let index = self.index.write();
                self.set_ef(&index, ef)?;
                let found = run(&index);
                self.set_ef(&index, default)?;
                found
            }
            _ => run(&self.index.read()),
        }
        .map_err(|reason| self.error(reason))?;
        Ok(found
            .into_iter()
            .filter(|(label, _)| *label >= 0 && (*label as u64) < self.header.rows)
            .map(|(label, score)| (label as u32, score))
            .collect())
    }

    /// An IVF search whose coarse lists come from `coarse` when an earlier
    /// segment of this query, built on the same centroids, found them.
    #[allow(clippy::too_many_arguments)]
    fn search_shared(
        &self,
        index: &IndexImpl,
        centroids: &Arc<Centroids>,
        query: &[f32],
        k: usize,
        nprobe: usize,
        dead: &[u8],
        coarse: &mut CoarseMemo,
    ) -> std::result::Result<Vec<(i64, f32)>, String> {
        let known = matches!(&coarse.key, Some((c, n)) if Arc::ptr_eq(c, centroids) && *n == nprobe);
        if !known {
            let (lists, distances) = ffi::coarse_lists(index, query, nprobe)?;
            *coarse = CoarseMemo {
                key: Some((Arc::clone(centroids), nprobe)),
                lists,
                distances,
            };
        }
        ffi::search_preassigned(index, query, k, &coarse.lists, &coarse.distances, dead)
    }

    /// Knobs that search deeper than `knobs`, if the index has any left:
    /// IVF probes 8 times as many lists (up to all of them).
    pub fn deeper(&self, knobs: SearchKnobs) -> Option<SearchKnobs> {
        let nlist = self.header.param_a as usize;
        let current = knobs.nprobe.or(self.default_nprobe())?;
        (current < nlist).then(|| SearchKnobs {
            nprobe: Some((current * 8).min(nlist)),
            ..knobs
        })
    }

    /// Knobs for a filtered search that needs `factor` times more
    /// candidates: IVF probes `factor` times as many lists (up to all of
    /// them), since the filtered neighbours lie that much further out.
    /// HNSW needs nothing: asking for more results widens its beam.
    pub fn widened(&self, knobs: SearchKnobs, factor: f64) -> SearchKnobs {
        let nlist = self.header.param_a as usize;
        match knobs.nprobe.or(self.default_nprobe()) {
            Some(current) => SearchKnobs {
                nprobe: Some(((current as f64 * factor).ceil() as usize).clamp(1, nlist.max(1))),
                ..knobs
            },
            None => knobs,
        }
    }

    /// A short name for stats: `hnsw32`, `ivf894`.
    pub fn describe(&self) -> String {
        match self.header.kind {
            KIND_HNSW => format!("hnsw{}", self.header.param_a),
            _ => format!("ivf{}", self.header.param_a),
        }
    }
}

#[cfg(test)]
mod tests;
