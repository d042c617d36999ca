//! Query planning: what to search for, and what to leave out, for each
//! kind of query. A vector is searched as given; an item by its stored
//! vector, itself excluded; a user by the pooled vectors of their recent
//! items (`Pooling`), and seeds by each recent item in turn, merged by
//! recency; both leave the user's seen items out. Every lookup of a query
//! and its search use one loaded version, so a query never mixes two
//! generations of trained vectors.

use std::collections::{HashMap, HashSet};

use super::filter::{Matching, Postings};
use super::search::{self, Plan};
use super::{Hit, Pooling, Query, Target, SEED_RECENT_ITEMS, USER_RECENT_ITEMS};
use crate::error::{Error, Result};
use crate::index::SearchKnobs;
use crate::kernels::nearness;
use crate::metric::Metric;
use crate::validate;
use crate::version::View;

/// What planning needs from the store: the stored vector of an item (as
/// of `version`), a user's history, oldest first, and, in a space with a
/// user model, the user's vector.
pub(crate) trait Lookups {
    fn vector(&self, version: &View, id: u64) -> Result<Option<Vec<f32>>>;
    fn history(&self, user: u64) -> Result<Vec<u64>>;
    /// The history with each event's weight, oldest first.
    fn weighted_history(&self, user: u64) -> Result<Vec<(u64, f32)>>;
    /// How `Query::user` finds its query vector in this space.
    fn user_vector(&self, version: &View, user: u64, history: &[u64]) -> Result<UserVector>;
    /// The item attributes' posting lists, for filters.
    fn postings(&self) -> &dyn Postings;
}

/// What a query leaves out whatever its kind: its exclusion list, and the
/// items its filter does not allow (resolved once per query).
pub(crate) struct Rules<'a> {
    query: &'a Query,
    filter: Option<Matching>,
}

impl<'a> Rules<'a> {
    pub fn new(lookups: &dyn Lookups, query: &'a Query) -> Result<Self> {
        let filter = match &query.filter {
            Some(f) => {
                f.check()?;
                Some(f.resolve(lookups.postings()))
            }
            None => None,
        };
        Ok(Rules { query, filter })
    }

    /// The only ids the filter lets through, when it names them (None: no
    /// filter, or one that lets through all but some).
    pub fn only_ids(&self) -> Option<&[u64]> {
        match &self.filter {
            Some(Matching::Only(ids)) => Some(ids),
            _ => None,
        }
    }

    pub fn refuses(&self, id: u64) -> bool {
        self.query.excludes(id) || self.filter.as_ref().is_some_and(|f| !f.allows(id))
    }
}

/// Where a user query's vector comes from.
pub(crate) enum UserVector {
    /// Pool the vectors of the user's recent items (`Query::pooling`).
    Pool,
    /// The space's user model made this one.
    Model(Vec<f32>),
    /// The space has a user model, not trained yet: nothing to search.
    Untrained,
    /// The space has a user model, and knows nothing of this user (no
    /// events, no features).
    Unknown,
}

/// The vectors searched: their metric and dimension, and how errors name
/// their space ("" for the default space).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry<'a> {
    pub metric: Metric,
    pub dim: usize,
    pub space: &'a str,
    /// Item-to-item similarity is the cosine over the rows' first this
    /// many components (a DNN space: its item vectors without the bias
    /// folded in), searched exactly. None: the metric, through the indexes.
    pub item_prefix: Option<usize>,
}

/// The hits of `query` in `version`, nearest first.
pub(crate) fn knn(lookups: &dyn Lookups, version: &View, space: Geometry<'_>, query: &Query) -> Result<Vec<Hit>> {
    query.check()?;
    let rules = Rules::new(lookups, query)?;
    let excluded = query.excluded.len();
    match &query.target {
        Target::Vector(v) => {
            let v = validate::prepare_vector(space.metric, space.dim, v, || query_context(space.space))?;
            search_with(
                version,
                space.metric,
                &v,
                query,
                &rules,
                &|id| rules.refuses(id),
                excluded,
            )
        }
        Target::Item(id) => {
            let id = *id;
            let v = lookups.vector(version, id)?.ok_or(Error::UnknownItem { id })?;
            similar(
                version,
                space,
                &v,
                query,
                &rules,
                &|hit| hit == id || rules.refuses(hit),
                1 + excluded,
            )
        }
        Target::User(user) => {
            let Some((v, seen)) = user_query(lookups, version, space, *user, query)? else {
                return Ok(Vec::new());
            };
            search_with(
                version,
                space.metric,
                &v,
                query,
                &rules,
                &|id| seen.contains(&id) || rules.refuses(id),
                seen.len() + excluded,
            )
        }
        Target::Seeds(user) => seeds(lookups, version, space, *user, query, &rules),
        Target::Popular { .. } | Target::Blend(_) | Target::Recommend(_) | Target::NestedBlend => Err(
            Error::InvalidQuery("popular and blended queries are answered by the store, not by one space".into()),
        ),
    }
}

/// The vector a user query searches with, and the items it leaves out;
/// None when there is nothing to search with (an untrained model, or no
/// recent item with a vector).
pub(crate) fn user_query(
    lookups: &dyn Lookups,
    version: &View,
    space: Geometry<'_>,
    user: u64,
    query: &Query,
) -> Result<Option<(Vec<f32>, HashSet<u64>)>> {
    let history = lookups.history(user)?;
    let v = match lookups.user_vector(version, user, &history)? {
        UserVector::Model(v) => v,
        UserVector::Untrained => return Ok(None),
        UserVector::Unknown => return Err(Error::UnknownUser { id: user }),
        UserVector::Pool => {
            let (recent, _) = user_items(lookups, user, query, USER_RECENT_ITEMS)?;
            let weights: Vec<f32> = if query.pooling == Pooling::Weighted {
                // Each item weighs what its latest event weighs.
                let mut latest = HashMap::new();
                for (item, w) in lookups.weighted_history(user)? {
                    latest.insert(item, w);
                }
                recent.iter().map(|i| latest.get(i).copied().unwrap_or(1.0)).collect()
            } else {
                vec![1.0; recent.len()]
            };
            match pool(lookups, version, space, &recent, &weights, query.pooling)? {
                Some(v) => v,
                None => return Ok(None),
            }
        }
    };
    let seen: HashSet<u64> = if query.include_seen {
        HashSet::new()
    } else {
        history.into_iter().collect()
    };
    Ok(Some((v, seen)))
}

/// Items near the vector `v` of an item: by the space's metric, or, where
/// the space says so, by the cosine over a prefix of the rows.
fn similar(
    version: &View,
    space: Geometry<'_>,
    v: &[f32],
    query: &Query,
    rules: &Rules<'_>,
    exclude: &dyn Fn(u64) -> bool,
    excluded: usize,
) -> Result<Vec<Hit>> {
    let Some(prefix) = space.item_prefix else {
        return search_with(version, space.metric, v, query, rules, exclude, excluded);
    };
    let q = &v[..prefix.min(v.len())];
    let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Ok(Vec::new());
    }
    let q: Vec<f32> = q.iter().map(|x| x / norm).collect();
    search::search_cosine_prefix(version, &q, query.k, exclude)
}

/// How errors name a query vector: `the query`, or `the query in space
/// "text"`.
fn query_context(space: &str) -> String {
    if space.is_empty() {
        "the query".to_string()
    } else {
        format!("the query in space {space:?}")
    }
}

/// The user's most recent distinct items (newest first, up to `recent`)
/// and the set of items to exclude (all the history, unless `include_seen`).
fn user_items(
    lookups: &dyn Lookups,
    user: u64,
    query: &Query,
    default_recent: usize,
) -> Result<(Vec<u64>, HashSet<u64>)> {
    let history = lookups.history(user)?;
    if history.is_empty() {
        return Err(Error::UnknownUser { id: user });
    }
    // `Query::check` bounds `recent`; the history bounds it again.
    let n = query.recent.unwrap_or(default_recent).clamp(1, history.len());
    let mut recent = Vec::with_capacity(n);
    let mut taken = HashSet::with_capacity(n);
    for item in history.iter().rev() {
        if recent.len() == n {
            break;
        }
        if taken.insert(*item) {
            recent.push(*item);
        }
    }
    let seen = if query.include_seen {
        HashSet::new()
    } else {
        history.into_iter().collect()
    };
    Ok((recent, seen))
}

/// The pooled query vector of `items`, or None if none has a vector.
fn pool(
    lookups: &dyn Lookups,
    version: &View,
    space: Geometry<'_>,
    items: &[u64],
    weights: &[f32],
    pooling: Pooling,
) -> Result<Option<Vec<f32>>> {
    let dim = space.dim;
    let mut pooled: Option<Vec<f32>> = None;
    for (item, weight) in items.iter().zip(weights) {
        let Some(v) = lookups.vector(version, *item)? else {
            continue;
        };
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let acc = pooled.get_or_insert_with(|| match pooling {
            Pooling::Mean | Pooling::Weighted => vec![0.0; dim],
            Pooling::Max => vec![f32::NEG_INFINITY; dim],
        });
        match pooling {
            Pooling::Mean => {
                crate::kernels::add_unit(acc, &v, 1.0);
            }
            Pooling::Weighted => {
                crate::kernels::add_unit(acc, &v, *weight);
            }
            Pooling::Max => acc.iter_mut().zip(&v).for_each(|(a, x)| *a = a.max(x / norm)),
        }
    }
    let Some(v) = pooled else { return Ok(None) };
    match validate::prepare_vector(space.metric, dim, &v, || "the pooled user vector".to_string()) {
        Ok(v) => Ok(Some(v.into_owned())),
        // Opposite vectors can cancel out: nothing to search from.
        Err(Error::ZeroVector { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn seeds(
    lookups: &dyn Lookups,
    version: &View,
    space: Geometry<'_>,
    user: u64,
    query: &Query,
    rules: &Rules<'_>,
) -> Result<Vec<Hit>> {
    let metric = match space.item_prefix {
        Some(_) => Metric::Cosine,
        None => space.metric,
    };
    let (recent, seen) = user_items(lookups, user, query, SEED_RECENT_ITEMS)?;
    let mut merged: HashMap<u64, f32> = HashMap::new();
    let mut rank = 0;
    for seed in &recent {
        let Some(v) = lookups.vector(version, *seed)? else {
            continue;
        };
        let weight = 1.0 / (rank as f32 + 1.0);
        rank += 1;
        let seed = *seed;
        let exclude = |id: u64| id == seed || seen.contains(&id) || rules.refuses(id);
        let hits = similar(
            version,
            space,
            &v,
            query,
            rules,
            &exclude,
            seen.len() + 1 + query.excluded.len(),
        )?;
        for hit in hits {
            *merged.entry(hit.id).or_insert(0.0) += weight * nearness(metric, hit.score);
        }
    }
    let mut hits: Vec<Hit> = merged.into_iter().map(|(id, score)| Hit { id, score }).collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    hits.truncate(query.k);
    Ok(hits)
}

fn search_with(
    version: &View,
    metric: Metric,
    v: &[f32],
    query: &Query,
    rules: &Rules<'_>,
    exclude: &dyn Fn(u64) -> bool,
    excluded: usize,
) -> Result<Vec<Hit>> {
    search::search(
        version,
        metric,
        v,
        &Plan {
            k: query.k,
            exact: query.exact,
            knobs: SearchKnobs {
                ef_search: query.ef_search,
                nprobe: query.nprobe,
            },
            exclude,
            excluded,
            filter: rules.filter.as_ref(),
        },
    )
}
