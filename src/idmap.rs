//! Hash maps keyed by item or user ids. Opening a trained store builds
//! maps of a million ids (the trained space's directory, the trending
//! counts), where SipHash's hashing was a third of the time
//! (`perf record` of `ember bench-train --reopen-only`). ahash is keyed at
//! random per process, so ids chosen by an adversary still cannot force
//! collisions, and costs a fraction of SipHash on u64 keys.

/// A `HashMap` keyed by ids.
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// An empty [`IdMap`] with room for `n` entries.
pub(crate) fn with_capacity<K, V>(n: usize) -> IdMap<K, V> {
    IdMap::with_capacity_and_hasher(n, ahash::RandomState::new())
}
