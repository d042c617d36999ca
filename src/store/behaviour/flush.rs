//! Writing the recent part out as runs between checkpoints, when it
//! reaches `Options::recent_bytes`: the write path's bound on memory.
//!
//! A checkpoint also writes the growing segments' snapshots and the
//! trending counts, and moves the log's start; this writes only runs. The
//! list of runs is committed with `through_seq` = the next sequence number
//! (replay skips behaviour records below it) and the checkpoint stays
//! where it was: replay still starts there for everything else. The log
//! is fsynced through the run's last event first, so no run ever holds an
//! event whose log record a power failure could take back (its sequence
//! number would then be given again). A crash before the commit leaves a
//! run no list names (removed at open, its events replayed from the log);
//! after it, the run and a replay that skips its events. `RECOVERY` is not
//! rewritten: the copy it holds names older runs that are all still there
//! (only a merge removes runs, and a merge rewrites it), and the log holds
//! what the newer ones do.

use crate::error::Result;
use crate::store::behaviour::merger;
use crate::store::state::{Shared, WriteState};

/// Writes the recent part as runs and installs them (see the module docs).
/// Under the write lock.
pub(crate) fn flush_recent(shared: &Shared, w: &mut WriteState) -> Result<()> {
    w.wal.refuse_if_read_only()?;
    w.wal.write_pending()?;
    w.wal.sync_all()?;
    let mut runs = w.core.runs.clone();
    let flushed = shared.behaviour.write_recent(&mut runs, w.core.next_seq)?;
    shared.meta.save_runs(&runs)?;
    shared.meta.flush()?;
    w.core.runs = runs;
    shared.behaviour.install_flushed(flushed);
    merger::wake(&shared.merge_signal);
    Ok(())
}
