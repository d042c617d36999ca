//! Deleting items: from the whole store (`Store::delete`, `undelete`;
//! the set they go into is `blocked.rs`) and from one host-fed space
//! (`Space::delete`).

use crate::error::Result;
use crate::store::space::SpaceState;
use crate::store::write::apply;
use crate::store::{Store, Written};
use crate::wal::record;

impl Store {
    /// Deletes `id` from the whole store, in every kind of space: it leaves
    /// every space's results at once (its rows in host-fed spaces are
    /// retired, in trained spaces killed), and training rounds do not bring
    /// it back. Events naming it are still logged and still serve as
    /// context in histories and training. It comes back only when the host
    /// says so: [`Store::undelete`] (trained spaces serve it again from
    /// their next round that publishes), or an upsert into a host-fed space
    /// (an explicit write says the item exists). An item can be deleted before it appears (a blocklist: neither a
    /// round nor the trending channel will bring it in). Returns whether it
    /// was live in some space; deleting an item that is already deleted
    /// and live nowhere logs nothing. Logged, durable as the store's
    /// durability says.
    pub fn delete(&self, id: u64) -> Result<bool> {
        self.mutate(|w| {
            let mut live = false;
            for space in &self.shared.spaces {
                live |= is_live(space, id)?;
            }
            // An item live nowhere is still worth blocking: events can
            // bring it into a trained space or the trending channel.
            if !live && self.shared.blocked.contains(id) {
                return Ok(Written::Nothing(false));
            }
            let seq = w.core.next_seq;
            let (_, end) = w.log(|out| record::encode_block(out, seq, id, true))?;
            w.core.next_seq += 1;
            apply::apply_block(&self.shared, id)?;
            Ok(Written::At(end, live))
        })
    }

    /// Lifts [`Store::delete`]: trained spaces serve the item again from
    /// their next round that publishes a generation (one with new events,
    /// or a full round: the rows of the generation serving now stay dead);
    /// host-fed spaces need it upserted again (its rows were retired).
    /// Returns whether it was deleted.
    pub fn undelete(&self, id: u64) -> Result<bool> {
        self.mutate(|w| {
            if !self.shared.blocked.contains(id) {
                return Ok(Written::Nothing(false));
            }
            let seq = w.core.next_seq;
            let (_, end) = w.log(|out| record::encode_block(out, seq, id, false))?;
            w.core.next_seq += 1;
            self.shared.blocked.remove(id);
            Ok(Written::At(end, true))
        })
    }

    /// Whether `id` was deleted with [`Store::delete`] (and not undeleted
    /// or upserted since).
    pub fn is_deleted(&self, id: u64) -> bool {
        self.shared.blocked.contains(id)
    }

    pub(crate) fn delete_in(&self, space: &SpaceState, id: u64) -> Result<bool> {
        self.refuse_if_trained(space, "delete")?;
        self.mutate(|w| {
            if !is_live(space, id)? {
                return Ok(Written::Nothing(false));
            }
            let seq = w.core.next_seq;
            let (_, end) = w.log(|out| record::encode_delete(out, seq, space.number, id))?;
            w.core.next_seq += 1;
            apply::apply_delete(space, id)?;
            Ok(Written::At(end, true))
        })
    }
}

/// Whether `id` has a live row in `space` (a trained space's directory
/// still names the rows of deleted items: their rows are dead).
pub(crate) fn is_live(space: &SpaceState, id: u64) -> Result<bool> {
    let version = space.catalog.version.load();
    if version.growing.row_of(id).is_some() {
        return Ok(true);
    }
    Ok(match space.catalog.sealed_location(&version, id)? {
        Some(at) => version
            .segment(at.segment)
            .is_some_and(|segment| !segment.dead().is_dead(at.row as usize)),
        None => false,
    })
}
