//! Looking items up by id in a space: in the growing segment, then through
//! the sealed segments' id orders (host-fed spaces) or the version's
//! directory (trained spaces). This is the store's side of a query; the planning is
//! `query::plan`'s.

use crate::error::Result;
use crate::query::plan::{Lookups, UserVector};
use crate::store::space::SpaceState;
use crate::store::state::Shared;
use crate::version::View;

/// The stored vector of `id` live in `view`.
fn vector_of(view: &View, id: u64) -> Result<Option<Vec<f32>>> {
    if view.directory.is_some() {
        return Ok(view.trained_row(id, view.seen)?.map(<[f32]>::to_vec));
    }
    lookup(view, id)
}

/// `id` in a host-fed `view`: its growing segment's row, then the sealed
/// row live to the reader. One look is enough: a write that moves the
/// item (new row, old row killed) is visible whole or not at all
/// (`segment::visibility`), and the growing segment's map holds the item's
/// newest row from before the old one dies.
fn lookup(view: &View, id: u64) -> Result<Option<Vec<f32>>> {
    if let Some(row) = view.growing.row_of(id) {
        return Ok(view.growing.row(row).map(<[f32]>::to_vec));
    }
    match view.live_sealed(id, view.seen)? {
        Some((segment, row)) => Ok(segment.row(row)?.map(<[f32]>::to_vec)),
        None => Ok(None),
    }
}

/// The stored vector of `id` in `space` (normalised under cosine), if it is
/// live.
pub(crate) fn get(space: &SpaceState, id: u64) -> Result<Option<Vec<f32>>> {
    vector_of(&space.catalog.view(), id)
}

/// Query planning's view of the store (the space is the view's).
pub(crate) struct SpaceLookups<'a> {
    pub shared: &'a Shared,
}

impl Lookups for SpaceLookups<'_> {
    fn postings(&self) -> &dyn crate::query::filter::Postings {
        &self.shared.attributes
    }

    fn vector(&self, view: &View, id: u64) -> Result<Option<Vec<f32>>> {
        vector_of(view, id)
    }

    fn history(&self, user: u64) -> Result<Vec<u64>> {
        self.shared.behaviour.items(user)
    }

    fn weighted_history(&self, user: u64) -> Result<Vec<(u64, f32)>> {
        self.shared.behaviour.weighted_items(user)
    }

    fn user_vector(&self, view: &View, user: u64, history: &[u64]) -> Result<UserVector> {
        let Some(model) = &view.model else {
            return Ok(UserVector::Pool);
        };
        let features = self.shared.behaviour.features(user)?;
        if history.is_empty() && features.is_empty() {
            return Ok(UserVector::Unknown);
        }
        Ok(match crate::train::dnn::serve::user_query(model, history, &features) {
            Some(v) => UserVector::Model(v),
            None => UserVector::Untrained,
        })
    }
}
