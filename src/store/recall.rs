//! Answering queries: plain vectors, similar items, and the personalised
//! `user` and `seeds` recall built from the user's history. Every lookup of
//! a query and its search use one loaded version, so a query never mixes
//! two generations of trained vectors.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::version::Version;
use super::{validate, Shared};
use crate::error::{Error, Result};
use crate::index::SearchKnobs;
use crate::query::kernels::nearness;
use crate::query::search::{self, Plan};
use crate::query::{Hit, Pooling, Query, Target, SEED_RECENT_ITEMS, USER_RECENT_ITEMS};

/// The stored vector of `id`, live in `version` (or, for host-fed stores,
/// in the current version: see [`get`]).
fn vector_of(shared: &Shared, version: &Version, id: u64) -> Result<Option<Vec<f32>>> {
    if version.directory.is_some() {
        return trained_vector(version, id);
    }
    get(shared, id)
}

/// A trained version's vector of `id`. An upsert (a provisional vector)
/// publishes its growing row before it kills the sealed one, so a lookup
/// that missed the growing segment and then found the sealed row dead
/// looks at the growing segment once more before answering "absent".
fn trained_vector(version: &Version, id: u64) -> Result<Option<Vec<f32>>> {
    match version.trained_row(id)? {
        Some(row) => Ok(Some(row.to_vec())),
        None => Ok(version.trained_row(id)?.map(<[f32]>::to_vec)),
    }
}

/// One look for `id` in `version`: found, absent, or registered in a
/// segment the version does not hold yet.
enum Lookup {
    Found(Option<Vec<f32>>),
    Ahead(u64),
}

fn lookup(shared: &Shared, version: &Version, id: u64) -> Result<Lookup> {
    if let Some(row) = version.growing.row_of(id) {
        return Ok(Lookup::Found(version.growing.row(row).map(<[f32]>::to_vec)));
    }
    let Some(at) = shared.sealed_location(id)? else {
        return Ok(Lookup::Found(None));
    };
    let at = version.resolve(at);
    match version.segment(at.segment) {
        Some(segment) if segment.dead().is_dead(at.row as usize) => Ok(Lookup::Found(None)),
        Some(segment) => Ok(Lookup::Found(segment.row(at.row)?.map(<[f32]>::to_vec))),
        None => Ok(Lookup::Ahead(at.segment)),
    }
}

/// The stored vector of `id` (normalised under cosine), if it is live.
pub(crate) fn get(shared: &Shared, id: u64) -> Result<Option<Vec<f32>>> {
    // The registry changes in the metadata commit of a seal or compaction,
    // the version a moment later (after the flush, under the write lock):
    // a registry entry can name a segment one version ahead. Such a window
    // lasts one fsync; wait it out rather than fail.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        // An upsert publishes the new row before it retires the sealed one
        // and bumps `retirements` before the retirement is visible. So an
        // absent answer is true unless a retirement ran during the look
        // (then the look may have missed the new row and found the old one
        // retired): look again. The count is read before the version, so
        // that a retirement it already counts had its new row, and the
        // version holding that row, published before the look began.
        let before = shared.retirements.load(std::sync::atomic::Ordering::Acquire);
        let version = shared.version.load_full();
        if version.directory.is_some() {
            return trained_vector(&version, id);
        }
        let segment = match lookup(shared, &version, id)? {
            Lookup::Found(Some(v)) => return Ok(Some(v)),
            Lookup::Found(None) => {
                if shared.retirements.load(std::sync::atomic::Ordering::Acquire) == before
                    || std::time::Instant::now() >= deadline
                {
                    return Ok(None);
                }
                continue;
            }
            Lookup::Ahead(segment) => segment,
        };
        if std::time::Instant::now() >= deadline {
            return Err(Error::Corruption {
                file: shared.path.join("meta"),
                offset: 0,
                reason: format!("the registry places item {id} in segment {segment}, which is not in the manifest"),
            });
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
}

pub(crate) fn knn(shared: &Shared, query: &Query) -> Result<Vec<Hit>> {
    validate::check_k(query.k)?;
    let opts = &shared.opts;
    let version = shared.version.load_full();
    match &query.target {
        Target::Vector(v) => {
            let v = validate::prepare_vector(opts.metric, opts.dim, v, || "the query".to_string())?;
            search_with(&version, opts.metric, &v, query, &|_| false, 0)
        }
        Target::Item(id) => {
            let id = *id;
            let v = vector_of(shared, &version, id)?.ok_or(Error::UnknownItem { id })?;
            search_with(&version, opts.metric, &v, query, &|hit| hit == id, 1)
        }
        Target::User(user) => {
            let (recent, seen) = user_items(shared, *user, query, USER_RECENT_ITEMS)?;
            let Some(v) = pool(shared, &version, &recent, query.pooling)? else {
                return Ok(Vec::new());
            };
            search_with(&version, opts.metric, &v, query, &|id| seen.contains(&id), seen.len())
        }
        Target::Seeds(user) => seeds(shared, &version, *user, query),
    }
}

/// The user's most recent distinct items (newest first, up to `recent`)
/// and the set of items to exclude (all the history, unless `include_seen`).
fn user_items(shared: &Shared, user: u64, query: &Query, default_recent: usize) -> Result<(Vec<u64>, HashSet<u64>)> {
    let history = shared.histories.items(user)?;
    if history.is_empty() {
        return Err(Error::UnknownUser { id: user });
    }
    let n = query.recent.unwrap_or(default_recent).max(1);
    let mut recent = Vec::with_capacity(n);
    for item in history.iter().rev() {
        if recent.len() == n {
            break;
        }
        if !recent.contains(item) {
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
fn pool(shared: &Shared, version: &Arc<Version>, items: &[u64], pooling: Pooling) -> Result<Option<Vec<f32>>> {
    let dim = shared.opts.dim;
    let mut pooled: Option<Vec<f32>> = None;
    for item in items {
        let Some(v) = vector_of(shared, version, *item)? else {
            continue;
        };
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let acc = pooled.get_or_insert_with(|| match pooling {
            Pooling::Mean => vec![0.0; dim],
            Pooling::Max => vec![f32::NEG_INFINITY; dim],
        });
        for (a, x) in acc.iter_mut().zip(&v) {
            match pooling {
                Pooling::Mean => *a += x / norm,
                Pooling::Max => *a = a.max(x / norm),
            }
        }
    }
    let Some(v) = pooled else { return Ok(None) };
    match validate::prepare_vector(shared.opts.metric, dim, &v, || "the pooled user vector".to_string()) {
        Ok(v) => Ok(Some(v.into_owned())),
        // Opposite vectors can cancel out: nothing to search from.
        Err(Error::ZeroVector { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn seeds(shared: &Shared, version: &Arc<Version>, user: u64, query: &Query) -> Result<Vec<Hit>> {
    let (recent, seen) = user_items(shared, user, query, SEED_RECENT_ITEMS)?;
    let metric = shared.opts.metric;
    let mut merged: HashMap<u64, f32> = HashMap::new();
    let mut rank = 0;
    for seed in &recent {
        let Some(v) = vector_of(shared, version, *seed)? else {
            continue;
        };
        let weight = 1.0 / (rank as f32 + 1.0);
        rank += 1;
        let seed = *seed;
        let exclude = |id: u64| id == seed || seen.contains(&id);
        let hits = search_with(version, metric, &v, query, &exclude, seen.len() + 1)?;
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
    version: &Version,
    metric: crate::options::Metric,
    v: &[f32],
    query: &Query,
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
        },
    )
}
