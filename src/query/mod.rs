//! Nearest-neighbour queries: what is asked ([`Query`]), what comes back
//! ([`Hit`]), and the exact scan over a version's segments.

pub(crate) mod exact;
pub(crate) mod kernels;
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
}

impl Query {
    /// The neighbours of a vector the host brings (10 by default).
    pub fn vector(vector: &[f32]) -> Self {
        Query {
            target: Target::Vector(vector.to_vec()),
            k: 10,
        }
    }

    /// Items similar to `id`, the item itself excluded.
    pub fn item(id: u64) -> Self {
        Query {
            target: Target::Item(id),
            k: 10,
        }
    }

    /// How many hits to return (1..=[`MAX_K`]).
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }
}
