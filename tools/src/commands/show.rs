//! `ember get` (an item's stored vector) and `ember history` (a user's
//! stored items, oldest first).

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use serde::Serialize;

use crate::commands::store::{open_read_only, refuse_untrained};

#[derive(Args, Debug)]
pub struct GetArgs {
    /// The store directory.
    store: PathBuf,
    /// The item's id.
    id: u64,
    /// The space to read (the default space by default).
    #[arg(long)]
    space: Option<String>,
    /// One JSON object, `{"id":7,"space":"default","vector":[0.1,...]}`,
    /// instead of the components separated by commas (the form `ember knn
    /// --vector` takes).
    #[arg(long)]
    json: bool,
}

/// `ember get --json`.
#[derive(Serialize)]
struct JsonVector<'a> {
    id: u64,
    space: &'a str,
    vector: &'a [f32],
}

pub fn get(a: GetArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let store = open_read_only(&a.store)?;
    let name = a.space.as_deref().unwrap_or(emberdb::DEFAULT_SPACE);
    let space = store.space(name)?;
    refuse_untrained(&store, &a.store, name)?;
    let Some(v) = space.get(a.id)? else {
        bail!(
            "item {} is not in space {name:?} of {} (or was deleted)",
            a.id,
            a.store.display()
        );
    };
    if a.json {
        let json = serde_json::to_string(&JsonVector {
            id: a.id,
            space: name,
            vector: &v,
        })?;
        writeln!(out, "{json}")?;
    } else {
        let text: Vec<String> = v.iter().map(f32::to_string).collect();
        writeln!(out, "{}", text.join(","))?;
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The store directory.
    store: PathBuf,
    /// The user's id.
    user: u64,
    /// One JSON object, `{"user":1,"items":[10,11]}`, instead of one item id
    /// a line.
    #[arg(long)]
    json: bool,
}

/// `ember history --json`.
#[derive(Serialize)]
struct JsonHistory<'a> {
    user: u64,
    items: &'a [u64],
}

pub fn history(a: HistoryArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let store = open_read_only(&a.store)?;
    let items = store.history(a.user)?;
    if items.is_empty() {
        bail!("user {} has no events in {}", a.user, a.store.display());
    }
    if a.json {
        let json = serde_json::to_string(&JsonHistory {
            user: a.user,
            items: &items,
        })?;
        writeln!(out, "{json}")?;
        return Ok(());
    }
    for item in &items {
        writeln!(out, "{item}")?;
    }
    Ok(())
}
