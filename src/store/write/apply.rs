//! Applying logged operations to the in-memory state and the metadata. The
//! same functions serve the live write path (after the WAL append) and
//! recovery (replaying the WAL), so both reach the same state.

use crate::error::{Error, Result};
use crate::event::Event;
use crate::segment::visibility::Stamp;
use crate::store::space::SpaceState;
use crate::store::state::{ManifestState, Shared};
use crate::store::write::seal;
use crate::wal::record::Record;
use crate::wal::Position;

/// Applies one logged record that starts at `start`.
pub(crate) fn apply_record(shared: &Shared, core: &mut ManifestState, start: Position, record: Record) -> Result<()> {
    core.next_seq = core.next_seq.max(record.end_seq());
    // Checksummed but not ours to apply: never half-apply it.
    let corrupt = |reason: String| Error::Corruption {
        file: crate::wal::file::path_of(&shared.wal_dir, start.file_no),
        offset: start.offset,
        reason,
    };
    let space_of = |number: u32, id: u64| {
        shared.spaces.get(number as usize).ok_or_else(|| {
            corrupt(format!(
                "a record for item {id} in space {number}, which the store does not have"
            ))
        })
    };
    match record {
        Record::Events { first_seq, events } => {
            apply_events(shared, core.runs.through_seq, first_seq, &events);
            Ok(())
        }
        Record::Upsert { space, id, vector, .. } => {
            let space = space_of(space, id)?;
            if vector.len() != space.dim {
                return Err(corrupt(format!(
                    "upsert of item {id} has {} components, the dimension of {} is {}",
                    vector.len(),
                    space.describe(),
                    space.dim
                )));
            }
            apply_upsert(shared, core, space, start, id, &vector)
        }
        Record::Delete { space, id, .. } => apply_delete(space_of(space, id)?, id).map(|_| ()),
        Record::Features { seq, user, features } => {
            if seq >= core.runs.through_seq {
                shared.behaviour.set_features(seq, user, features);
            }
            Ok(())
        }
        Record::Block { id, .. } => apply_block(shared, id).map(|_| ()),
        Record::Unblock { id, .. } => {
            shared.blocked.remove(id);
            Ok(())
        }
        Record::Attributes { seq, item, attributes } => {
            if seq >= core.runs.through_seq {
                shared.behaviour.set_attributes(seq, item, attributes.clone());
                shared.attributes.set(item, attributes);
            }
            Ok(())
        }
    }
}

/// Replays logged events: those below `through_seq` are in runs already
/// (trending skips what it counted on its own).
pub(crate) fn apply_events(shared: &Shared, through_seq: u64, first_seq: u64, events: &[Event]) {
    for (i, event) in events.iter().enumerate() {
        let seq = first_seq + i as u64;
        if seq >= through_seq {
            shared.behaviour.append(seq, event);
        }
        shared.trending.apply(seq, event.item, event.ts);
    }
}

/// Stores `vector` (already validated and normalised) for `id` in `space`,
/// whose log record starts at `start`.
pub(crate) fn apply_upsert(
    shared: &Shared,
    core: &mut ManifestState,
    space: &SpaceState,
    start: Position,
    id: u64,
    vector: &[f32],
) -> Result<()> {
    if space.trainer.is_none() {
        // An explicit write says the item exists: a deletion is lifted.
        // (Provisional vectors of trained spaces are never made for
        // deleted items, so they never lift one.)
        shared.blocked.remove(id);
    }
    let catalog = &space.catalog;
    if catalog.version.load().growing.is_full() {
        // The rows before this record are all in the growing segment, so
        // this record's start is where replay must begin after the seal.
        seal::seal(shared, core, space, start)?;
    }
    let version = catalog.version.load();
    // Where the item lives now, found before the new row hides it.
    let sealed = match version.growing.row_of(id) {
        Some(_) => None,
        None => catalog.sealed_location(&version, id)?,
    };
    // The new row is published before the old one dies, so a reader never
    // finds the item missing (one that sees both keeps one: `TopK` drops
    // duplicate ids). The growing segment was not full above and only this
    // (locked) path appends to it, so `push` has room.
    // Both under one stamp, published after both: a reader sees the move
    // whole or not at all (`segment::visibility`).
    let stamp = catalog.clock.next();
    if version.growing.push_at(id, vector, stamp).is_none() {
        return Err(Error::InvalidOptions(format!(
            "growing segment of {} refused item {id}: its dimension differs",
            space.describe()
        )));
    }
    if let Some(at) = sealed {
        catalog.retire(&version, id, at, stamp);
    }
    catalog.clock.publish(stamp);
    Ok(())
}

/// Deletes `id` from the whole store (`Store::delete`): blocked, and out of
/// every space. Whether some space had a row of it.
pub(crate) fn apply_block(shared: &Shared, id: u64) -> Result<bool> {
    shared.blocked.insert(id);
    // One stamp for every space: the item leaves them all at once.
    let stamp = shared.clock.next();
    let mut any = false;
    for space in &shared.spaces {
        any |= match space.trainer {
            Some(_) => crate::store::write::blocked::Blocked::kill_one(&space.catalog.version.load(), id, stamp),
            None => delete_at(space, id, stamp)?,
        };
    }
    shared.clock.publish(stamp);
    Ok(any)
}

/// Deletes `id` from `space`; false if it was not there.
pub(crate) fn apply_delete(space: &SpaceState, id: u64) -> Result<bool> {
    let stamp = space.catalog.clock.next();
    let deleted = delete_at(space, id, stamp)?;
    space.catalog.clock.publish(stamp);
    Ok(deleted)
}

/// Kills `id`'s row in `space` by the write stamped `stamp`.
fn delete_at(space: &SpaceState, id: u64, stamp: Stamp) -> Result<bool> {
    let catalog = &space.catalog;
    let version = catalog.version.load();
    if version.growing.remove_at(id, stamp) {
        return Ok(true);
    }
    match catalog.sealed_location(&version, id)? {
        Some(at) => {
            catalog.retire(&version, id, at, stamp);
            Ok(true)
        }
        None => Ok(false),
    }
}
