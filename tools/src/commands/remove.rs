//! `ember delete STORE ID...` and `ember undelete STORE ID...`: items out of
//! (and back into) every space of a store (`Store::delete`,
//! `Store::undelete`).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::commands::store::open_existing;
use crate::input::count;

#[derive(Args, Debug)]
pub struct DeleteArgs {
    store: PathBuf,
    /// The items; each leaves every space (trained ones too, and their
    /// later rounds do not bring it back) until `ember undelete`.
    #[arg(required = true)]
    ids: Vec<u64>,
}

pub fn delete(a: DeleteArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let store = open_existing(&a.store)?;
    let mut live = 0;
    for id in &a.ids {
        live += u64::from(store.delete(*id)?);
    }
    store.flush()?;
    writeln!(
        out,
        "deleted {} ({} live in some space before); `ember undelete` brings them back",
        count(a.ids.len() as u64, "item", "items"),
        live
    )?;
    Ok(())
}

pub fn undelete(a: DeleteArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let store = open_existing(&a.store)?;
    let mut lifted = 0;
    for id in &a.ids {
        lifted += u64::from(store.undelete(*id)?);
    }
    store.flush()?;
    writeln!(
        out,
        "undeleted {} of {}; trained spaces serve them from their next round, host-fed spaces once they are upserted again",
        lifted,
        count(a.ids.len() as u64, "item", "items"),
    )?;
    Ok(())
}
