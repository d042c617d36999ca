//! Looking items up by id in a space: in the growing segment, then through
//! the sealed segments' id orders (host-fed spaces) or the version's
//! directory (trained spaces). This is the store's side of a query; the planning is
//! `query::plan`'s.

use super::space::SpaceState;
use super::state::Shared;
use crate::error::Result;
use crate::query::plan::{Lookups, UserVector};
use crate::version::Version;

/// The stored vector of `id`, live in `version` (or, for host-fed spaces,
/// in the current version: see [`get`]).
fn vector_of(space: &SpaceState, version: &Version, id: u64) -> Result<Option<Vec<f32>>> {
    if version.directory.is_some() {
        return trained_vector(version, id);
    }
    get(space, id)
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

/// One look for `id` in a host-fed `version`: its growing segment, then
/// the live sealed row its segments' id orders name.
fn lookup(version: &Version, id: u64) -> Result<Option<Vec<f32>>> {
    if let Some(row) = version.growing.row_of(id) {
        return Ok(version.growing.row(row).map(<[f32]>::to_vec));
    }
    match version.live_sealed(id)? {
        Some((segment, row)) => Ok(segment.row(row)?.map(<[f32]>::to_vec)),
        None => Ok(None),
    }
}

/// The stored vector of `id` in `space` (normalised under cosine), if it is
/// live.
pub(crate) fn get(space: &SpaceState, id: u64) -> Result<Option<Vec<f32>>> {
    let catalog = &space.catalog;
    // Retirements can run without pause under a heavy upsert load: past
    // this, the look that found nothing answers "absent".
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        // An upsert publishes the new row before it retires the sealed one
        // and bumps `retirements` before the retirement is visible. So an
        // absent answer is true unless a retirement ran during the look
        // (then the look may have missed the new row and found the old one
        // retired): look again. The count is read before the version, so
        // that a retirement it already counts had its new row, and the
        // version holding that row, published before the look began.
        let before = catalog.retirements.load(std::sync::atomic::Ordering::Acquire);
        let version = catalog.version.load_full();
        if version.directory.is_some() {
            return trained_vector(&version, id);
        }
        match lookup(&version, id)? {
            Some(v) => return Ok(Some(v)),
            None if catalog.retirements.load(std::sync::atomic::Ordering::Acquire) == before
                || std::time::Instant::now() >= deadline =>
            {
                return Ok(None)
            }
            None => continue,
        }
    }
}

/// Query planning's view of one space.
pub(crate) struct SpaceLookups<'a> {
    pub shared: &'a Shared,
    pub space: &'a SpaceState,
}

impl Lookups for SpaceLookups<'_> {
    fn postings(&self) -> &dyn crate::query::filter::Postings {
        &self.shared.attributes
    }

    fn vector(&self, version: &Version, id: u64) -> Result<Option<Vec<f32>>> {
        vector_of(self.space, version, id)
    }

    fn history(&self, user: u64) -> Result<Vec<u64>> {
        self.shared.histories.items(user)
    }

    fn weighted_history(&self, user: u64) -> Result<Vec<(u64, f32)>> {
        self.shared.histories.weighted_items(user)
    }

    fn user_vector(&self, version: &Version, user: u64, history: &[u64]) -> Result<UserVector> {
        let Some(model) = &version.model else {
            return Ok(UserVector::Pool);
        };
        let features = self.shared.features.get(user);
        if history.is_empty() && features.is_empty() {
            return Ok(UserVector::Unknown);
        }
        Ok(match crate::train::dnn::serve::user_query(model, history, &features) {
            Some(v) => UserVector::Model(v),
            None => UserVector::Untrained,
        })
    }
}
