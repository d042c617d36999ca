//! The trending counts at open, loaded on a thread of their own beside the
//! segments (see `store/open/mod.rs`).

use std::path::Path;

use crate::error::Result;
use crate::meta::records::RunManifest;
use crate::meta::MetaStore;
use crate::options::Options;
use crate::store::behaviour::Behaviour;
use crate::store::trending::Trending;

/// The trending counts: format 6's file, or an older store's record in
/// sled (written to a file at the next checkpoint; the bool says so);
/// without either, counted again from the histories.
#[allow(clippy::too_many_arguments)]
pub(crate) fn load_trending(
    runs: &RunManifest,
    runs_dir: &Path,
    legacy: bool,
    meta: &dyn MetaStore,
    behaviour: &Behaviour,
    opts: &Options,
    read_only: bool,
    next_seq: u64,
) -> Result<(Trending, bool)> {
    let record = match runs.trending {
        Some(id) => Some(crate::store::trending::file::read(runs_dir, id)?),
        None if legacy => meta.load_trending()?,
        None => None,
    };
    let from_sled = legacy && record.is_some();
    let trending = Trending::load(
        record,
        opts.trending,
        !read_only,
        opts.trending_window,
        next_seq,
        &mut |count| {
            behaviour.for_each_history(u64::MAX, &mut |_, history| {
                for e in history {
                    count(e.seq, e.item, e.ts);
                }
                Ok(())
            })
        },
    )?;
    Ok((trending, from_sled))
}
