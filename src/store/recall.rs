//! The queries the store answers across spaces: the trending channel
//! (`Query::popular`), blends of channels (`Query::blend`) and the store's
//! default recall for a user (`Query::recommend`).

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::kernels::nearness;
use crate::metric::Metric;
use crate::query::plan::Rules;
use crate::query::{blend, Hit, Query, Target, MAX_K};
use crate::store::segments::lookup::SpaceLookups;
use crate::store::Store;

/// `Query::recommend`'s weight on the user channel (`Query::user` in the
/// default space), chosen with [`RECOMMEND_POPULAR_WEIGHT`] by `ember eval
/// --split temporal` on MovieLens 100k (see ARCHITECTURE.md, "Recall for
/// a user").
pub const RECOMMEND_USER_WEIGHT: f32 = 1.0;
/// `Query::recommend`'s weight on the trending channel
/// (`Query::popular().for_user`), left out when the store's trending
/// channel is off. Both weights apply to scores normalised to 0..1 per
/// channel (see `Query::blend`), so their ratio, not their scale, decides
/// the order.
pub const RECOMMEND_POPULAR_WEIGHT: f32 = 8.0;

impl Store {
    /// Answers the query kinds that are not one space's search.
    pub(crate) fn recall(&self, query: &Query) -> Result<Vec<Hit>> {
        query.check()?;
        // Popular, blend and recommend answers span spaces, but a space the
        // caller names must exist (a misspelt name is a mistake, not a
        // query that ignores it).
        self.query_space(query)?;
        match &query.target {
            Target::Popular { user } => self.popular(query, *user),
            Target::Blend(channels) => self.blend(query, channels),
            Target::Recommend(user) => self.blend(query, &recommend_channels(*user, self.shared.trending.enabled())),
            _ => Err(Error::InvalidQuery("not a cross-space query".into())),
        }
    }

    /// The most interacted-with items of the window, most first, without
    /// deleted items, the user's seen ones (unless `include_seen`), and
    /// what the query's filter and exclusions leave out.
    fn popular(&self, query: &Query, user: Option<u64>) -> Result<Vec<Hit>> {
        let shared = &*self.shared;
        let lookups = SpaceLookups { shared };
        let rules = Rules::new(&lookups, query)?;
        let seen: HashSet<u64> = match user {
            Some(user) if !query.include_seen => shared.behaviour.items(user)?.into_iter().collect(),
            _ => HashSet::new(),
        };
        if !shared.trending.enabled() {
            return Err(Error::InvalidQuery(
                "the trending channel is off in this store (opened with Options::trending(false))".into(),
            ));
        }
        let mut hits = Vec::with_capacity(query.k);
        let mut take = |id: u64, count: u32| {
            if !seen.contains(&id) && !rules.refuses(id) && !shared.blocked.contains(id) {
                hits.push(Hit {
                    id,
                    score: count as f32,
                });
            }
            hits.len() < query.k
        };
        // A filter that names fewer items than the window holds is cheaper
        // to rank by its items' counts than to walk the ranking past all
        // the items it refuses.
        match rules.only_ids() {
            Some(ids) if ids.len() < shared.trending.len() => {
                for (id, count) in shared.trending.ranking_of(ids) {
                    if !take(id, count) {
                        break;
                    }
                }
            }
            _ => shared.trending.visit_ranking(take),
        }
        Ok(hits)
    }

    /// Each channel asked for `DEPTH * k` candidates under the blend's
    /// filter and exclusions, merged by `query::blend`. A channel that has
    /// nothing to say (a user with no events, a space not trained yet)
    /// adds nothing; any other error fails the blend.
    fn blend(&self, query: &Query, channels: &[(Query, f32)]) -> Result<Vec<Hit>> {
        let weights: Vec<f32> = channels.iter().map(|(_, w)| *w).collect();
        blend::check(&weights)?;
        let depth = query.k.saturating_mul(blend::DEPTH).min(MAX_K);
        let mut found = Vec::with_capacity(channels.len());
        for (channel, weight) in channels {
            let mut asked = channel.clone().k(depth).exclude(&query.excluded);
            if let Some(filter) = &query.filter {
                asked = asked.filter(filter.clone());
            }
            let hits = match self.knn(&asked) {
                Ok(hits) => hits,
                Err(Error::UnknownUser { .. }) | Err(Error::NotTrained { .. }) => continue,
                Err(e) => return Err(e),
            };
            let metric = self.channel_metric(&asked)?;
            let candidates = hits.iter().map(|h| (h.id, nearness(metric, h.score))).collect();
            found.push((candidates, *weight));
        }
        Ok(blend::merge(&found, query.k))
    }

    /// How a channel's scores read: by its space's metric; higher is
    /// nearer for the kinds whose scores are sums or counts (seeds sum
    /// nearness; popular counts; blends sum normalised scores).
    fn channel_metric(&self, query: &Query) -> Result<Metric> {
        Ok(match query.target {
            Target::Seeds(_) | Target::Popular { .. } | Target::Blend(_) | Target::Recommend(_) => Metric::InnerProduct,
            _ => self.query_space(query)?.metric,
        })
    }
}

/// `Query::recommend(user)`'s channels: the user's recall in the default
/// space and the trending items the user has not seen.
/// With the trending channel off (`Options::trending(false)`), the user
/// channel alone.
fn recommend_channels(user: u64, trending: bool) -> Vec<(Query, f32)> {
    let mut channels = vec![(Query::user(user), RECOMMEND_USER_WEIGHT)];
    if trending {
        channels.push((Query::popular().for_user(user), RECOMMEND_POPULAR_WEIGHT));
    }
    channels
}
