//! Nearest-neighbour queries: what is asked ([`Query`]), what comes back
//! ([`Hit`]), and the search over a version's segments.

pub(crate) mod blend;
pub(crate) mod filter;
pub(crate) mod plan;
pub(crate) mod search;
pub(crate) mod topk;

/// The largest `k` a query may ask for.
pub const MAX_K: usize = 10_000;
/// The most recent items a `user` or `seeds` query may pool or search
/// from (`Query::recent`); a user's history holds at most `history_len`
/// events anyway.
pub const MAX_RECENT: usize = 10_000;
/// The largest HNSW search depth a query may ask for (`Query::ef_search`).
pub const MAX_EF_SEARCH: usize = 100_000;
/// The most IVF lists a query may probe (`Query::nprobe`); an index with
/// fewer lists probes them all.
pub const MAX_NPROBE: usize = 65_536;

/// One result: an item id and its score under the store's metric (cosine
/// similarity or inner product, higher is nearer; squared L2 distance, lower
/// is nearer). Results come nearest first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The item's id.
    pub id: u64,
    /// The item's score: the metric's similarity or distance to the query
    /// for a vector, item or user query; the recency-weighted sum of
    /// similarities for `Query::seeds`; the number of events in the
    /// trending window for `Query::popular`; the weighted sum of
    /// normalised channel scores (0 to the sum of the weights) for a blend
    /// or `Query::recommend`.
    pub score: f32,
}

pub use filter::{Filter, MAX_FILTER_DEPTH, MAX_FILTER_NODES};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    /// What `Query::add` keeps of a blend or recommend given as a channel:
    /// refused by `Query::check`.
    NestedBlend,
    Vector(Vec<f32>),
    Item(u64),
    User(u64),
    Seeds(u64),
    /// The trending channel: most interacted with in the recent window,
    /// the user's seen items excluded when a user is given.
    Popular {
        user: Option<u64>,
    },
    /// Channels merged by weight (`Query::blend`).
    Blend(Vec<(Query, f32)>),
    /// The store's default recall for a user (`Query::recommend`).
    Recommend(u64),
}

/// How `Query::user` pools the vectors of the user's recent items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooling {
    /// The mean of the normalised vectors.
    #[default]
    Mean,
    /// The element-wise maximum of the normalised vectors.
    Max,
    /// The mean of the normalised vectors, each weighted by the weight of
    /// the user's latest event on that item (`Event::weight`; measured
    /// against `Mean` in ARCHITECTURE.md, "Event weights").
    Weighted,
}

/// Recent items pooled by `Query::user` unless `recent` says otherwise
/// (chosen by `ember eval` on MovieLens 100k, see ARCHITECTURE.md).
pub const USER_RECENT_ITEMS: usize = 2;
/// Seed items of `Query::seeds` unless `recent` says otherwise.
pub const SEED_RECENT_ITEMS: usize = 20;

/// A nearest-neighbour query, built as `Query::item(id).k(10)`.
///
/// Every kind takes `k`, `filter` and `exclude`. The other setters apply
/// to some kinds only; a setter that a kind does not take is refused with
/// `Error::InvalidQuery` (naming the setter and the kind) when the query
/// runs, never silently ignored:
///
/// | kind | also takes |
/// |---|---|
/// | `vector`, `item` | `space`, `exact`, `ef_search`, `nprobe` |
/// | `user` | the same, and `pooling`, `recent`, `include_seen` |
/// | `seeds` | the same as `user` but `pooling` |
/// | `popular` | `for_user`, `include_seen` |
/// | `blend` | `add` (each channel names its own space and settings) |
/// | `recommend` | nothing more |
///
/// ```
/// use emberdb::Query;
/// let similar = Query::item(42).k(10).space("text");
/// let for_you = Query::user(7).k(50).recent(5).include_seen();
/// let trending = Query::popular().for_user(7).k(20);
/// let mixed = Query::blend().add(Query::user(7), 1.0).add(Query::popular().for_user(7), 8.0).k(50);
/// # let _ = (similar, for_you, trending, mixed);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub(crate) target: Target,
    pub(crate) k: usize,
    pub(crate) exact: bool,
    pub(crate) ef_search: Option<usize>,
    pub(crate) nprobe: Option<usize>,
    pub(crate) pooling: Pooling,
    pub(crate) recent: Option<usize>,
    pub(crate) include_seen: bool,
    /// The space searched (None: the default space).
    pub(crate) space: Option<String>,
    /// Ids this query must not return (`exclude`), sorted, no duplicates.
    pub(crate) excluded: Vec<u64>,
    /// Only items this lets through (`filter`).
    pub(crate) filter: Option<Filter>,
    /// The first setter called that this kind of query does not take:
    /// refused by `check` rather than silently ignored.
    pub(crate) misapplied: Option<&'static str>,
}

/// The setters a query kind takes beyond `k`, `filter` and `exclude`
/// (which every kind takes).
const SEARCH_SETTERS: &[&str] = &["space", "exact", "ef_search", "nprobe"];

impl Query {
    /// The neighbours of a vector the host brings (10 by default).
    pub fn vector(vector: &[f32]) -> Self {
        Query::with_target(Target::Vector(vector.to_vec()))
    }

    /// Items similar to `id`, the item itself excluded.
    pub fn item(id: u64) -> Self {
        Query::with_target(Target::Item(id))
    }

    /// Personalised recall for user `id`: the neighbours of the pooled
    /// (mean by default) normalised vectors of the user's most recent items,
    /// the items the user already interacted with excluded.
    pub fn user(id: u64) -> Self {
        Query::with_target(Target::User(id))
    }

    /// Seed-item recall for user `id`: the neighbours of each of the user's
    /// most recent items, merged with scores weighted by recency (the
    /// newest seed weighs 1, the next 1/2, then 1/3...), seen items
    /// excluded. The hit's score is the weighted sum of its similarities.
    pub fn seeds(id: u64) -> Self {
        Query::with_target(Target::Seeds(id))
    }

    /// The trending channel: the items most interacted with in the recent
    /// window (`Options::trending_window`), most first; the score is the
    /// number of events in the window. Maintained from events as they
    /// arrive, it answers on every store, trained or not. Add
    /// [`Query::for_user`] to leave out what a user has seen.
    ///
    /// ```
    /// use emberdb::{Durability, Event, Options, Query, Store};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let store = Store::open(&path, Options::new(4).durability(Durability::None))?;
    /// let t = 1_700_000_000_000;
    /// // Item 10 has three events, item 11 two, item 12 one.
    /// store.append_events(&[
    ///     Event::new(1, 10, t),
    ///     Event::new(2, 10, t + 1),
    ///     Event::new(3, 10, t + 2),
    ///     Event::new(2, 11, t + 3),
    ///     Event::new(3, 11, t + 4),
    ///     Event::new(3, 12, t + 5),
    /// ])?;
    /// let hits = store.knn(&Query::popular().k(3))?;
    /// let ranked: Vec<(u64, f32)> = hits.iter().map(|h| (h.id, h.score)).collect();
    /// assert_eq!(ranked, [(10, 3.0), (11, 2.0), (12, 1.0)]);
    ///
    /// // User 1 has seen item 10.
    /// let for_1 = store.knn(&Query::popular().for_user(1).k(3))?;
    /// assert_eq!(for_1.iter().map(|h| h.id).collect::<Vec<_>>(), [11, 12]);
    /// # Ok(()) }
    /// ```
    pub fn popular() -> Self {
        Query::with_target(Target::Popular { user: None })
    }

    /// On a `popular` query: leave out the items `user` interacted with.
    /// Other kinds refuse it (`Error::InvalidQuery` when the query runs).
    pub fn for_user(mut self, user: u64) -> Self {
        match &mut self.target {
            Target::Popular { user: u } => *u = Some(user),
            _ => self.misapply("for_user"),
        }
        self
    }

    /// Several channels merged into one answer: build with
    /// [`Query::add`]. Each channel's scores are normalised to 0..1 over
    /// its own candidates (its best 1, the worst it returned 0, see
    /// `query::blend`), weighted, and summed per item; an item found by
    /// several channels adds up. The blend's `k`, filter and exclusions
    /// apply to every channel; `k` hits come back whenever the channels
    /// together find `k` items. A hit's score is its blended score.
    ///
    /// ```
    /// use emberdb::{Durability, Event, Options, Query, Store};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let store = Store::open(&path, Options::new(2).durability(Durability::None))?;
    /// store.upsert(1, &[1.0, 0.0])?;
    /// store.upsert(2, &[0.9, 0.1])?; // near 1
    /// store.upsert(3, &[0.6, 0.4])?; // farther from 1
    /// store.upsert(4, &[0.0, 1.0])?;
    /// let t = 1_700_000_000_000;
    /// // Item 3 is by far the most popular; item 2 is not popular at all.
    /// let mut events: Vec<Event> = (0..5).map(|u| Event::new(u, 3, t + u)).collect();
    /// events.push(Event::new(9, 4, t + 9));
    /// store.append_events(&events)?;
    ///
    /// // Similar to item 1 alone: 2 first. Weighted towards the trending
    /// // channel, item 3 (found by both channels) wins.
    /// assert_eq!(store.knn(&Query::item(1).k(1))?[0].id, 2);
    /// let blended = Query::blend().add(Query::item(1), 1.0).add(Query::popular(), 2.0).k(3);
    /// let hits = store.knn(&blended)?;
    /// assert_eq!(hits[0].id, 3);
    /// assert!(hits[0].score > hits[1].score);
    /// # Ok(()) }
    /// ```
    pub fn blend() -> Self {
        Query::with_target(Target::Blend(Vec::new()))
    }

    /// Adds a channel of weight `weight` to a blend. Refused when the
    /// query runs: on other kinds of query, a weight that is negative or
    /// not finite, and a channel that is itself a blend or a `recommend`
    /// (a blend is one level of channels).
    pub fn add(mut self, channel: Query, weight: f32) -> Self {
        if !matches!(self.target, Target::Blend(_)) {
            self.misapply("add");
        }
        if let Target::Blend(channels) = &mut self.target {
            // A nested blend is kept as a stand-in, its channels dropped
            // here, so that no blend is ever deeper than one level (no
            // walk over a query, its drop included, recurses further).
            let channel = match channel.target {
                Target::Blend(_) | Target::Recommend(_) | Target::NestedBlend => {
                    Query::with_target(Target::NestedBlend)
                }
                _ => channel,
            };
            channels.push((channel, weight));
        }
        self
    }

    /// The store's default recall for `user`: the blend that evaluation
    /// chose (see `Store::knn` and ARCHITECTURE.md, "Recall for a user").
    /// It works before the first training round (trending only) and gets
    /// better as spaces train.
    ///
    /// ```
    /// use emberdb::{Durability, Event, Options, Query, Store, TrainOptions};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let opts = Options::trained(8)
    ///     .train_options(TrainOptions::default().epochs(5).threads(1))
    ///     .durability(Durability::None);
    /// let store = Store::open(&path, opts)?;
    /// let t = 1_700_000_000_000;
    /// // Users 0..20 each touch five of the items 0..10; item 0 most often.
    /// let mut events: Vec<Event> = (0..20u64)
    ///     .flat_map(|u| (0..5u64).map(move |i| Event::new(u, (u + i) % 10, t + i)))
    ///     .collect();
    /// events.extend((0..20u64).map(|u| Event::new(u, 0, t + 10)));
    /// store.append_events(&events)?;
    /// store.append_event(Event::new(99, 5, t + 20))?; // a new user
    ///
    /// // Before any training round: the trending items user 99 has not seen.
    /// let hits = store.knn(&Query::recommend(99).k(5))?;
    /// assert_eq!(hits[0].id, 0);
    /// assert!(hits.iter().all(|h| h.id != 5));
    ///
    /// // After one, the user's own recall joins in.
    /// store.train()?;
    /// let hits = store.knn(&Query::recommend(99).k(5))?;
    /// assert_eq!(hits.len(), 5);
    /// assert!(hits.iter().all(|h| h.id != 5));
    /// # Ok(()) }
    /// ```
    pub fn recommend(user: u64) -> Self {
        Query::with_target(Target::Recommend(user))
    }

    /// Only return items that `filter` lets through (combined with `and`
    /// when called again). Filters work on every query kind and keep `k`
    /// and recall at any selectivity; a filter on a key or value no item
    /// has matches nothing (an empty answer, not an error).
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(match self.filter.take() {
            Some(f) => f.and(filter),
            None => filter,
        });
        self
    }

    fn with_target(target: Target) -> Self {
        Query {
            target,
            k: 10,
            exact: false,
            ef_search: None,
            nprobe: None,
            pooling: Pooling::Mean,
            recent: None,
            include_seen: false,
            space: None,
            excluded: Vec::new(),
            filter: None,
            misapplied: None,
        }
    }

    /// The kind of query, as errors name it.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self.target {
            Target::NestedBlend | Target::Blend(_) => "blend",
            Target::Vector(_) => "vector",
            Target::Item(_) => "item",
            Target::User(_) => "user",
            Target::Seeds(_) => "seeds",
            Target::Popular { .. } => "popular",
            Target::Recommend(_) => "recommend",
        }
    }

    /// The setters this kind takes besides `k`, `filter` and `exclude`.
    fn setters(&self) -> &'static [&'static str] {
        match self.target {
            Target::Vector(_) | Target::Item(_) => SEARCH_SETTERS,
            Target::User(_) => &[
                "space",
                "exact",
                "ef_search",
                "nprobe",
                "pooling",
                "recent",
                "include_seen",
            ],
            Target::Seeds(_) => &["space", "exact", "ef_search", "nprobe", "recent", "include_seen"],
            Target::Popular { .. } => &["for_user", "include_seen"],
            Target::Blend(_) | Target::NestedBlend => &["add"],
            Target::Recommend(_) => &[],
        }
    }

    /// Notes `setter` as refused if this kind does not take it.
    fn misapply(&mut self, setter: &'static str) {
        if self.misapplied.is_none() && !self.setters().contains(&setter) {
            self.misapplied = Some(setter);
        }
    }

    /// Never return these ids (a per-query exclusion list: items already
    /// shown, out of stock, ...), whatever the query kind; `k` is still
    /// returned whenever `k` other items qualify. Calls add up.
    pub fn exclude(mut self, ids: &[u64]) -> Self {
        self.excluded.extend_from_slice(ids);
        self.excluded.sort_unstable();
        self.excluded.dedup();
        self
    }

    /// Whether `id` is on this query's exclusion list.
    pub(crate) fn excludes(&self, id: u64) -> bool {
        self.excluded.binary_search(&id).is_ok()
    }

    /// Search the space `name` instead of the default one. Item ids are the
    /// store's, so `Query::item(i).space("text")` finds items near `i`'s
    /// vector in that space, and user queries pool the user's items'
    /// vectors there.
    pub fn space(mut self, name: &str) -> Self {
        self.misapply("space");
        self.space = Some(name.to_string());
        self
    }

    /// How `user` queries pool the recent items' vectors.
    pub fn pooling(mut self, pooling: Pooling) -> Self {
        self.misapply("pooling");
        self.pooling = pooling;
        self
    }

    /// How many of the user's most recent items a `user` query pools, or a
    /// `seeds` query searches from (defaults: [`USER_RECENT_ITEMS`],
    /// [`SEED_RECENT_ITEMS`]).
    pub fn recent(mut self, items: usize) -> Self {
        self.misapply("recent");
        self.recent = Some(items);
        self
    }

    /// Keep the items the user already interacted with in `user` and
    /// `seeds` results.
    pub fn include_seen(mut self) -> Self {
        self.misapply("include_seen");
        self.include_seen = true;
        self
    }

    /// Scan every row instead of using the segments' indexes.
    pub fn exact(mut self) -> Self {
        self.misapply("exact");
        self.exact = true;
        self
    }

    /// HNSW search depth for this query (default: the index spec's).
    pub fn ef_search(mut self, ef: usize) -> Self {
        self.misapply("ef_search");
        self.ef_search = Some(ef);
        self
    }

    /// IVF lists probed for this query (default: the index spec's).
    pub fn nprobe(mut self, nprobe: usize) -> Self {
        self.misapply("nprobe");
        self.nprobe = Some(nprobe);
        self
    }

    /// Refuses a `k` outside 1..=[`MAX_K`], and every other size a caller
    /// gives outside its documented range, before anything is allocated
    /// for it.
    pub(crate) fn check(&self) -> crate::Result<()> {
        if let Some(setter) = self.misapplied {
            let takes = match self.setters() {
                [] => "none but k, filter and exclude".to_string(),
                setters => setters.join(", "),
            };
            return Err(crate::Error::InvalidQuery(format!(
                "`{setter}` does not apply to a {} query (it takes {takes})",
                self.kind_name()
            )));
        }
        if self.k == 0 || self.k > MAX_K {
            return Err(crate::Error::InvalidK { k: self.k, max: MAX_K });
        }
        let sizes = [
            ("recent", self.recent, MAX_RECENT),
            ("ef_search", self.ef_search, MAX_EF_SEARCH),
            ("nprobe", self.nprobe, MAX_NPROBE),
        ];
        for (name, value, max) in sizes {
            if let Some(value) = value.filter(|v| *v == 0 || *v > max) {
                return Err(crate::Error::InvalidQuery(format!(
                    "{name} = {value} is out of range: it must be between 1 and {max}"
                )));
            }
        }
        match &self.target {
            Target::NestedBlend => {
                return Err(crate::Error::InvalidQuery(
                    "a blend's channel is itself a blend or a recommend: add its channels to the outer blend".into(),
                ))
            }
            Target::Blend(channels) => {
                for (channel, _) in channels {
                    // A channel's k is the blend's to set.
                    channel.clone().k(1).check()?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// How many hits to return (1..=[`MAX_K`]).
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }
}
