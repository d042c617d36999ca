//! Items deleted from the whole store (`Store::delete`): out of every
//! space's results at once, and kept out of trained spaces by their later
//! rounds, until `Store::undelete` or an explicit upsert into a host-fed
//! space says the item exists again. Events naming a deleted item are
//! still logged and still serve as context (histories, training).
//!
//! Each deletion is a log record (kind 7, undelete kind 8); the set is held
//! in memory and written whole to the metadata (key `b"blocked"`) at the
//! checkpoint after it changed. A deleted item's rows are retired in host
//! spaces like `Space::delete`'s; in trained spaces its rows are killed, in
//! memory only, in every version the store installs: at the deletion, at
//! each publish of a round, and at open (so a generation published after
//! the deletion never serves it, even after a crash before the next
//! checkpoint). Recording them in the metadata as dead rows would race
//! with a round that replaces those segments.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::Result;
use crate::meta::MetaStore;
use crate::segment::visibility::Stamp;
use crate::version::Version;

pub(crate) struct Blocked {
    meta: Arc<dyn MetaStore>,
    ids: RwLock<HashSet<u64>>,
    /// Changed since the last checkpoint.
    dirty: AtomicBool,
}

impl Blocked {
    pub fn load(meta: Arc<dyn MetaStore>) -> Result<Self> {
        let ids = meta.load_blocked()?.into_iter().collect();
        Ok(Blocked {
            meta,
            ids: RwLock::new(ids),
            dirty: AtomicBool::new(false),
        })
    }

    /// Adds `id`; whether it was not there.
    pub fn insert(&self, id: u64) -> bool {
        let added = self.ids.write().insert(id);
        if added {
            self.dirty.store(true, Ordering::Release);
        }
        added
    }

    /// Removes `id`; whether it was there.
    pub fn remove(&self, id: u64) -> bool {
        // Most upserts name items that were never deleted: a read first.
        if !self.ids.read().contains(&id) {
            return false;
        }
        let removed = self.ids.write().remove(&id);
        if removed {
            self.dirty.store(true, Ordering::Release);
        }
        removed
    }

    pub fn contains(&self, id: u64) -> bool {
        self.ids.read().contains(&id)
    }

    pub fn len(&self) -> usize {
        self.ids.read().len()
    }

    pub fn ids(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self.ids.read().iter().copied().collect();
        out.sort_unstable();
        out
    }

    /// Kills `id`'s rows in a trained space's `version` by the write
    /// stamped `stamp` (0: for every reader); whether one was live. In
    /// memory only (see `kill_in`): a trained space's dead rows are not
    /// recorded in the metadata, since its next round replaces its
    /// segments whole.
    pub fn kill_one(version: &Version, id: u64, stamp: Stamp) -> bool {
        let mut live = version.growing.remove_at(id, stamp);
        if let Some(at) = version.directory.as_ref().and_then(|d| d.get(&id)) {
            if let Some(segment) = version.segment(at.segment) {
                live |= segment.dead().kill_at(at.row as usize, stamp);
            }
        }
        live
    }

    /// Kills the rows of deleted items in a trained space's `version`
    /// (found through its directory and its growing segment), for every
    /// reader: each of those deletions is published already. In memory
    /// only: every open and every publish does it again, publish before
    /// the version is installed.
    pub fn kill_in(&self, version: &Version) {
        let ids = self.ids.read();
        if ids.is_empty() {
            return;
        }
        for id in ids.iter() {
            Self::kill_one(version, *id, 0);
        }
    }

    /// Writes the set to the metadata store if it changed (not flushed):
    /// the checkpoint's part.
    pub fn persist_dirty(&self) -> Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let outcome = self.meta.save_blocked(&self.ids());
        if outcome.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        outcome
    }
}
