//! Attribute filters (`Query::filter`) and what they resolve to.
//!
//! A filter resolves, through the store's posting lists, to the sorted ids
//! that match it ([`Matching::Only`]) or to the sorted ids that do not
//! ([`Matching::AllBut`], what a `not` of a narrow filter gives). Either
//! way its size estimates the selectivity that the search plans with (see
//! `search.rs`): a narrow filter scans its matching rows exactly, a broad
//! one searches the index, asks it for more candidates and checks each.
//!
//! A filter on a key or value that no item has matches nothing: the query
//! returns no hits, it is not an error (a catalogue may simply not have
//! such items yet).

use crate::error::{Error, Result};

/// The deepest nesting of `and`, `or` and `not` a filter may have: a
/// deeper one is refused by the query (`Error::InvalidQuery`).
pub const MAX_FILTER_DEPTH: u32 = 64;
/// The most conditions and combinations a filter may hold: a larger one is
/// refused by the query.
pub const MAX_FILTER_NODES: u32 = 4096;

/// Which items a query may return, by their attributes
/// (`Store::set_attributes`). Build with [`Filter::eq`] and
/// [`Filter::range`], combine with [`Filter::and`], [`Filter::or`] and
/// [`Filter::not`].
///
/// ```
/// use emberdb::{Durability, Filter, Options, Query, Store};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("store");
/// let store = Store::open(&path, Options::new(2).durability(Durability::None))?;
/// for (id, v) in [(1, [1.0, 0.0]), (2, [0.9, 0.1]), (3, [0.8, 0.2]), (4, [0.7, 0.3])] {
///     store.upsert(id, &v)?;
/// }
/// store.set_attributes(1, &[("genre", "drama"), ("year", "1972")])?;
/// store.set_attributes(2, &[("genre", "comedy"), ("year", "1984")])?;
/// store.set_attributes(3, &[("genre", "comedy"), ("genre", "drama"), ("year", "1994")])?;
/// store.set_attributes(4, &[("genre", "comedy"), ("year", "2004")])?;
/// let ids = |q: Query| -> emberdb::Result<Vec<u64>> { Ok(store.knn(&q)?.iter().map(|h| h.id).collect()) };
/// let near_1 = || Query::vector(&[1.0, 0.0]).k(10);
///
/// // One value of a key that has several matches: item 3 is a drama too.
/// assert_eq!(ids(near_1().filter(Filter::eq("genre", "drama")))?, [1, 3]);
/// // Ranges are over integer values, both ends included.
/// let eighties_nineties = Filter::range("year", 1980, 1999);
/// assert_eq!(ids(near_1().filter(eighties_nineties.clone()))?, [2, 3]);
/// // Combined: comedies of 1980-1999 that are not dramas.
/// let f = Filter::eq("genre", "comedy").and(eighties_nineties).and(Filter::not(Filter::eq("genre", "drama")));
/// assert_eq!(ids(near_1().filter(f))?, [2]);
/// // A value no item has matches nothing: an empty answer, not an error.
/// assert!(ids(near_1().filter(Filter::eq("genre", "western")))?.is_empty());
/// # Ok(()) }
/// ```
///
/// A filter nested deeper than [`MAX_FILTER_DEPTH`] or holding more than
/// [`MAX_FILTER_NODES`] parts is refused when a query runs it. Such a
/// filter keeps none of its parts (combining stops at the limit), so no
/// walk over a filter, its drop included, can run out of stack whatever a
/// caller builds.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    node: Node,
    /// Levels of the tree (1 for a single condition).
    depth: u32,
    /// Conditions and combinations in the tree.
    nodes: u32,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Eq(String, String),
    Range(String, i64, i64),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    /// What combining past a limit gives: refused by `check`.
    TooLarge {
        depth: u32,
        nodes: u32,
    },
}

impl Filter {
    fn leaf(node: Node) -> Filter {
        Filter {
            node,
            depth: 1,
            nodes: 1,
        }
    }

    /// The filter `make(children)` of `depth` and `nodes`, or the refused
    /// stand-in once a limit is passed (its children dropped while they are
    /// still within the limits).
    fn combined(depth: u32, nodes: u32, make: impl FnOnce() -> Node) -> Filter {
        if depth > MAX_FILTER_DEPTH || nodes > MAX_FILTER_NODES {
            return Filter::too_large(depth, nodes);
        }
        Filter {
            node: make(),
            depth,
            nodes,
        }
    }

    /// The refused stand-in; `depth` `u32::MAX` when a part was one already
    /// (its size no longer known).
    fn too_large(depth: u32, nodes: u32) -> Filter {
        Filter {
            node: Node::TooLarge { depth, nodes },
            depth,
            nodes,
        }
    }

    fn pair(self, other: Filter, make: fn(Box<Node>, Box<Node>) -> Node) -> Filter {
        let depth = self.depth.max(other.depth).saturating_add(1);
        let nodes = self.nodes.saturating_add(other.nodes).saturating_add(1);
        if matches!(self.node, Node::TooLarge { .. }) || matches!(other.node, Node::TooLarge { .. }) {
            return Filter::too_large(u32::MAX, nodes);
        }
        Filter::combined(depth, nodes, || make(Box::new(self.node), Box::new(other.node)))
    }

    /// Items with the value `value` for `key` (one of its values, when the
    /// key has several).
    pub fn eq(key: &str, value: &str) -> Filter {
        Filter::leaf(Node::Eq(key.to_string(), value.to_string()))
    }

    /// Items with an integer value of `key` between `min` and `max`,
    /// inclusive (values that do not parse as integers never match).
    pub fn range(key: &str, min: i64, max: i64) -> Filter {
        Filter::leaf(Node::Range(key.to_string(), min, max))
    }

    /// Items that match both.
    pub fn and(self, other: Filter) -> Filter {
        self.pair(other, Node::And)
    }

    /// Items that match either.
    pub fn or(self, other: Filter) -> Filter {
        self.pair(other, Node::Or)
    }

    /// Items that do not match `filter` (items without attributes
    /// included).
    #[allow(clippy::should_implement_trait)]
    pub fn not(filter: Filter) -> Filter {
        let depth = filter.depth.saturating_add(1);
        let nodes = filter.nodes.saturating_add(1);
        if matches!(filter.node, Node::TooLarge { .. }) {
            return Filter::too_large(u32::MAX, nodes);
        }
        Filter::combined(depth, nodes, || Node::Not(Box::new(filter.node)))
    }

    /// Refuses a filter no store could run: past the size limits, an empty
    /// key, or a range whose minimum is above its maximum.
    pub(crate) fn check(&self) -> Result<()> {
        fn walk(node: &Node) -> Result<()> {
            match node {
                Node::TooLarge { depth, nodes } => Err(Error::InvalidQuery(format!(
                    "the filter is too large: at most {MAX_FILTER_DEPTH} levels of and/or/not and {MAX_FILTER_NODES} parts{}",
                    if *depth == u32::MAX {
                        String::new()
                    } else {
                        format!(" (it has {depth} levels, {nodes} parts)")
                    }
                ))),
                Node::Eq(key, _) | Node::Range(key, ..) if key.is_empty() => {
                    Err(Error::InvalidQuery("a filter names an empty key".into()))
                }
                Node::Range(key, min, max) if min > max => Err(Error::InvalidQuery(format!(
                    "the filter's range on {key:?} is empty ({min} > {max})"
                ))),
                Node::Eq(..) | Node::Range(..) => Ok(()),
                Node::And(a, b) | Node::Or(a, b) => walk(a).and_then(|_| walk(b)),
                Node::Not(a) => walk(a),
            }
        }
        walk(&self.node)
    }

    /// The ids this filter lets through, from `postings`.
    pub(crate) fn resolve(&self, postings: &dyn Postings) -> Matching {
        fn walk(node: &Node, postings: &dyn Postings) -> Matching {
            match node {
                Node::Eq(k, v) => Matching::Only(postings.with_value(k, v)),
                Node::Range(k, min, max) => Matching::Only(postings.in_range(k, *min, *max)),
                Node::And(a, b) => walk(a, postings).and(walk(b, postings)),
                Node::Or(a, b) => walk(a, postings).or(walk(b, postings)),
                Node::Not(a) => walk(a, postings).not(),
                // `check` refuses it before any query resolves a filter.
                Node::TooLarge { .. } => Matching::Only(Vec::new()),
            }
        }
        walk(&self.node, postings)
    }
}

/// What a filter needs from the store: its posting lists.
pub(crate) trait Postings {
    /// The items whose `key` has `value`, sorted.
    fn with_value(&self, key: &str, value: &str) -> Vec<u64>;
    /// The items with an integer value of `key` in `min..=max`, sorted.
    fn in_range(&self, key: &str, min: i64, max: i64) -> Vec<u64>;
}

/// The ids a filter lets through.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Matching {
    /// These ids (sorted, no duplicates), and no other.
    Only(Vec<u64>),
    /// Every id but these (sorted, no duplicates).
    AllBut(Vec<u64>),
}

impl Matching {
    pub fn allows(&self, id: u64) -> bool {
        match self {
            Matching::Only(ids) => ids.binary_search(&id).is_ok(),
            Matching::AllBut(ids) => ids.binary_search(&id).is_err(),
        }
    }

    /// About how many of `total` items pass (exact when every id listed is
    /// one of them).
    pub fn estimate(&self, total: usize) -> usize {
        match self {
            Matching::Only(ids) => ids.len().min(total),
            Matching::AllBut(ids) => total.saturating_sub(ids.len()),
        }
    }

    fn not(self) -> Matching {
        match self {
            Matching::Only(ids) => Matching::AllBut(ids),
            Matching::AllBut(ids) => Matching::Only(ids),
        }
    }

    fn and(self, other: Matching) -> Matching {
        use Matching::*;
        match (self, other) {
            (Only(a), Only(b)) => Only(intersect(&a, &b)),
            (Only(a), AllBut(b)) | (AllBut(b), Only(a)) => Only(minus(&a, &b)),
            (AllBut(a), AllBut(b)) => AllBut(union(&a, &b)),
        }
    }

    fn or(self, other: Matching) -> Matching {
        use Matching::*;
        match (self, other) {
            (Only(a), Only(b)) => Only(union(&a, &b)),
            (Only(a), AllBut(b)) | (AllBut(b), Only(a)) => AllBut(minus(&b, &a)),
            (AllBut(a), AllBut(b)) => AllBut(intersect(&a, &b)),
        }
    }
}

fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    small
        .iter()
        .copied()
        .filter(|id| large.binary_search(id).is_ok())
        .collect()
}

fn minus(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().copied().filter(|id| b.binary_search(id).is_err()).collect()
}

fn union(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Table(BTreeMap<(String, String), Vec<u64>>);

    impl Postings for Table {
        fn with_value(&self, key: &str, value: &str) -> Vec<u64> {
            self.0
                .get(&(key.to_string(), value.to_string()))
                .cloned()
                .unwrap_or_default()
        }
        fn in_range(&self, key: &str, min: i64, max: i64) -> Vec<u64> {
            let mut out: Vec<u64> = self
                .0
                .iter()
                .filter(|((k, v), _)| k == key && v.parse::<i64>().is_ok_and(|n| n >= min && n <= max))
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect();
            out.sort_unstable();
            out.dedup();
            out
        }
    }

    /// Items 0..100: genre "a" for even ids, "b" for multiples of 3; year
    /// 1990 + id % 10.
    fn table() -> Table {
        let mut t = BTreeMap::new();
        for id in 0..100u64 {
            let mut add = |k: &str, v: String| t.entry((k.to_string(), v)).or_insert_with(Vec::new).push(id);
            if id.is_multiple_of(2) {
                add("genre", "a".into());
            }
            if id.is_multiple_of(3) {
                add("genre", "b".into());
            }
            add("year", (1990 + id % 10).to_string());
        }
        Table(t)
    }

    /// Every combination agrees with the predicate it stands for, on
    /// every id (ids past 100 have no attributes).
    #[test]
    fn resolution_agrees_with_the_predicate() {
        let t = table();
        let a = || Filter::eq("genre", "a");
        let b = || Filter::eq("genre", "b");
        let y = || Filter::range("year", 1992, 1994);
        type Pred = Box<dyn Fn(u64) -> bool>;
        let in_a = |id: u64| id < 100 && id.is_multiple_of(2);
        let in_b = |id: u64| id < 100 && id.is_multiple_of(3);
        let in_y = |id: u64| id < 100 && (2..=4).contains(&(id % 10));
        let cases: Vec<(Filter, Pred)> = vec![
            (a(), Box::new(in_a)),
            (a().and(b()), Box::new(move |id| in_a(id) && in_b(id))),
            (a().or(b()), Box::new(move |id| in_a(id) || in_b(id))),
            (Filter::not(a()), Box::new(move |id| !in_a(id))),
            (a().and(Filter::not(b())), Box::new(move |id| in_a(id) && !in_b(id))),
            (Filter::not(a()).or(b()), Box::new(move |id| !in_a(id) || in_b(id))),
            (
                Filter::not(a()).and(Filter::not(y())),
                Box::new(move |id| !in_a(id) && !in_y(id)),
            ),
            (
                Filter::not(a()).or(Filter::not(y())),
                Box::new(move |id| !in_a(id) || !in_y(id)),
            ),
            (
                Filter::not(Filter::not(y()).and(b())),
                Box::new(move |id| in_y(id) || !in_b(id)),
            ),
            (Filter::eq("genre", "none"), Box::new(|_| false)),
            (Filter::eq("nokey", "x").or(y()), Box::new(in_y)),
        ];
        for (n, (filter, pred)) in cases.iter().enumerate() {
            filter.check().unwrap();
            let m = filter.resolve(&t);
            for id in 0..130 {
                assert_eq!(m.allows(id), pred(id), "case {n}, id {id}: {filter:?}");
            }
            let exact = (0..100).filter(|id| pred(*id)).count();
            if let Matching::Only(_) = m {
                assert_eq!(m.estimate(100), exact, "case {n}");
            }
        }
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(matches!(Filter::eq("", "x").check(), Err(Error::InvalidQuery(_))));
        assert!(Filter::not(Filter::range("", 1, 2)).check().is_err());
        assert!(Filter::range("year", 3, 2).check().is_err());
        assert!(Filter::eq("k", "").check().is_ok());
    }

    #[test]
    fn filters_past_the_limits_are_refused_and_stay_small() {
        let mut deep = Filter::eq("genre", "a");
        for _ in 1..MAX_FILTER_DEPTH {
            deep = Filter::not(deep);
        }
        assert_eq!(deep.depth, MAX_FILTER_DEPTH);
        assert!(deep.check().is_ok());
        let deeper = Filter::not(deep.clone());
        let err = deeper.check().unwrap_err().to_string();
        assert!(err.contains("too large") && err.contains("65 levels"), "{err}");
        // A hundred thousand levels: built, checked, cloned and dropped
        // without recursion past the limit.
        let mut huge = deeper;
        for _ in 0..100_000 {
            huge = Filter::not(huge).and(Filter::eq("k", "v"));
        }
        assert!(matches!(huge.node, Node::TooLarge { .. }));
        assert!(huge.clone().check().is_err());
        // Wide but shallow: refused past the node count.
        let mut wide: Vec<Filter> = (0..MAX_FILTER_NODES).map(|i| Filter::eq("k", &i.to_string())).collect();
        while wide.len() > 1 {
            let next: Vec<Filter> = wide
                .chunks(2)
                .map(|c| match c {
                    [a, b] => a.clone().or(b.clone()),
                    [a] => a.clone(),
                    _ => unreachable!(),
                })
                .collect();
            wide = next;
        }
        assert!(wide[0].depth <= 14);
        let err = wide[0].check().unwrap_err().to_string();
        assert!(err.contains("parts"), "{err}");
    }
}
