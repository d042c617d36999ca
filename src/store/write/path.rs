//! The write path every mutation takes ([`Store::mutate`]): announce a
//! synced write to the group commit, take the write lock, log and apply,
//! checkpoint when one is due, release the lock, wait for durability; and
//! the steps mutations share under the lock.

use crate::durability::Durability;
use crate::error::{Error, Result};
use crate::store::space::SpaceState;
use crate::store::state::WriteState;
use crate::store::{behaviour, write, Store};
use crate::wal::record;
use crate::wal::Position;

/// What a mutation's step under the write lock did: logged up to a
/// position, or nothing (nothing to wait for).
pub(crate) enum Written<T> {
    At(Position, T),
    Nothing(T),
}

impl Store {
    /// Logs and applies an upsert of a validated vector; returns the log end.
    pub(in crate::store) fn log_upsert(
        &self,
        w: &mut WriteState,
        space: &SpaceState,
        id: u64,
        vector: &[f32],
    ) -> Result<Position> {
        let seq = w.core.next_seq;
        let (start, end) = w.log(|out| record::encode_upsert(out, seq, space.number, id, vector))?;
        w.core.next_seq += 1;
        if space.catalog.version.load().growing.is_full() {
            // Sealing checkpoints up to this record: its bytes must be in
            // the file before the checkpoint names a later position.
            w.wal.write_pending()?;
        }
        write::apply::apply_upsert(&self.shared, &mut w.core, space, start, id, vector)?;
        Ok(end)
    }

    pub(in crate::store) fn refuse_if_trained(&self, space: &SpaceState, operation: &'static str) -> Result<()> {
        match space.trainer {
            Some(_) => Err(Error::TrainedStore {
                path: self.shared.path.clone(),
                space: space.name.clone(),
                operation,
            }),
            None => Ok(()),
        }
    }

    pub(in crate::store) fn maybe_checkpoint(&self, w: &mut WriteState) -> Result<()> {
        let end = w.wal.end();
        let since = if end.file_no == w.checkpointed_at.file_no {
            end.offset.saturating_sub(w.checkpointed_at.offset)
        } else {
            (end.file_no - w.checkpointed_at.file_no) * self.shared.opts.wal_file_bytes + end.offset
        };
        if since < self.shared.opts.checkpoint_wal_bytes {
            // The recent part of the behaviour is bounded too: past its
            // budget it goes out as runs, without a whole checkpoint.
            if self.shared.behaviour.recent_bytes() >= self.shared.opts.recent_bytes {
                return behaviour::flush::flush_recent(&self.shared, w);
            }
            return Ok(());
        }
        w.checkpoint_at_end(|core, end| write::seal::checkpoint(&self.shared, core, end))
    }

    /// The write path of every mutation: tell the group commit a synced
    /// write is coming, take the write lock, log and apply (`f`, in the
    /// order replay will use), checkpoint if one is due, release the lock,
    /// then wait until the log is durable up to what `f` wrote. A write
    /// that logs nothing (`Written::Nothing`) returns at once.
    pub(crate) fn mutate<T>(&self, f: impl FnOnce(&mut WriteState) -> Result<Written<T>>) -> Result<T> {
        let (end, value) = {
            let _in_flight = self.begin_write();
            let mut w = self.write.lock();
            match f(&mut w)? {
                Written::Nothing(value) => return Ok(value),
                Written::At(end, value) => {
                    self.maybe_checkpoint(&mut w)?;
                    (end, value)
                }
            }
        };
        self.wait_durable(end)?;
        Ok(value)
    }

    /// Tells the group commit that a synced write is on its way.
    pub(in crate::store) fn begin_write(&self) -> Option<crate::wal::writer::InFlight<'_>> {
        (self.shared.opts.durability == Durability::Sync).then(|| self.sync.begin_write())
    }

    pub(in crate::store) fn wait_durable(&self, end: Position) -> Result<()> {
        match self.shared.opts.durability {
            Durability::Sync => self.sync.sync_to(end),
            Durability::Buffered | Durability::None => Ok(()),
        }
    }
}
