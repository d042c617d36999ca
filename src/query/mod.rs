//! Nearest-neighbour queries: what is asked ([`Query`]), what comes back
//! ([`Hit`]), and the search over a version's segments.

pub(crate) mod kernels;
pub(crate) mod search;
pub(crate) mod topk;

/// The largest `k` a query may ask for.
pub const MAX_K: usize = 10_000;

/// One result: an item id and its score under the store's metric (cosine
/// similarity or inner product, higher is nearer; squared L2 distance, lower
/// is nearer). Results come nearest first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub id: u64,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    Vector(Vec<f32>),
    Item(u64),
}

/// A nearest-neighbour query, built as `Query::item(id).k(10)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub(crate) target: Target,
    pub(crate) k: usize,
    pub(crate) exact: bool,
    pub(crate) ef_search: Option<usize>,
    pub(crate) nprobe: Option<usize>,
}

impl Query {
    /// The neighbours of a vector the host brings (10 by default).
    pub fn vector(vector: &[f32]) -> Self {
        Query::with_target(Target::Vector(vector.to_vec()))
    }

    /// Items similar to `id`, the item itself excluded.
    pub fn item(id: u64) -> Self {
        Query::with_target(Target::Item(id))
    }

    fn with_target(target: Target) -> Self {
        Query {
            target,
            k: 10,
            exact: false,
            ef_search: None,
            nprobe: None,
        }
    }

    /// Scan every row instead of using the segments' indexes.
    pub fn exact(mut self) -> Self {
        self.exact = true;
        self
    }

    /// HNSW search depth for this query (default: the index spec's).
    pub fn ef_search(mut self, ef: usize) -> Self {
        self.ef_search = Some(ef);
        self
    }

    /// IVF lists probed for this query (default: the index spec's).
    pub fn nprobe(mut self, nprobe: usize) -> Self {
        self.nprobe = Some(nprobe);
        self
    }

    /// How many hits to return (1..=[`MAX_K`]).
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }
}
