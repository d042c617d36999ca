//! `ember ingest`: events from CSV, TSV or JSON lines, vectors from
//! `.fvecs` or CSV; bad lines reported with their numbers, `--strict`
//! writing nothing unless every line is good.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;
use emberdb::{Options, Store};

use crate::cmd::{open_or_create, progress};
use crate::events::{self, Layout};
use crate::input::{count, report_bad};
use crate::{jsonl, vectors};

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// The store directory.
    store: PathBuf,
    /// Events as CSV or TSV (`user_id,item_id,timestamp[,weight]`, or
    /// MovieLens's `user_id,item_id,rating,timestamp`; a first line of
    /// column names is a header; tab-separated when the first line holds
    /// tabs and no comma) or JSON lines (`.jsonl`/`.json`:
    /// `{"user_id":1,"item_id":2,"timestamp":3}`, optional `"weight"`; also
    /// `user`, `item`, `ts`; other fields ignored). With --vectors: `.fvecs`
    /// (ids are the row numbers, or one per line in FILE.ids) or CSV
    /// `id,v1,v2,...`. A leading UTF-8 BOM is ignored.
    file: PathBuf,
    /// The file holds item vectors (for a host-fed store), not events.
    #[arg(long)]
    vectors: bool,
    /// Ingest nothing unless every line is good; the bad lines are listed
    /// (the first 20, then a count).
    #[arg(long)]
    strict: bool,
    /// Create a store of this dimension if there is none (trained for
    /// events, host-fed for --vectors); an existing store must have it.
    #[arg(long)]
    dim: Option<usize>,
}

/// Opens the store at `a.store`, or creates it with `create(dim)` when
/// --dim is given. A --dim that differs from an existing store's dimension
/// is an error, found before anything is written.
fn open_store(a: &IngestArgs, create: fn(usize) -> Options) -> anyhow::Result<Store> {
    let store = open_or_create(&a.store, a.dim.map(create))?;
    let dim = store.options().dim();
    match a.dim {
        Some(asked) if asked != dim => bail!(
            "--dim {asked} differs from the dimension {dim} of the store at {}; nothing ingested",
            a.store.display()
        ),
        _ => Ok(store),
    }
}

fn ingest_vectors(a: &IngestArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let (vectors, bad) = vectors::read(&a.file).context("nothing ingested")?;
    let what = if vectors::is_fvecs(&a.file) { "vector" } else { "line" };
    report_bad(&a.file, &bad, what);
    if a.strict && !bad.is_empty() {
        bail!(
            "{}; nothing ingested (--strict)",
            count(bad.len() as u64, "bad entry", "bad entries")
        );
    }
    let store = open_store(a, Options::new)?;
    if a.strict {
        // Check every vector before writing any, so nothing is half-ingested.
        let dim = store.options().dim();
        if let Some((i, (id, v))) = vectors
            .iter()
            .enumerate()
            .find(|(_, (_, v))| v.len() != dim || v.iter().any(|x| !x.is_finite()))
        {
            bail!(
                "{}: {what} {}: item {id} has {} (the store's dimension is {dim}) or a non-finite one; nothing ingested (--strict)",
                a.file.display(),
                i + 1,
                count(v.len() as u64, "component", "components"),
            );
        }
    }
    let mut refused = 0u64;
    for (id, v) in &vectors {
        match store.upsert(*id, v) {
            Ok(()) => {}
            Err(
                e @ (emberdb::Error::DimensionMismatch { .. }
                | emberdb::Error::NonFiniteVector { .. }
                | emberdb::Error::ZeroVector { .. }),
            ) => {
                eprintln!("{}: item {id}: {e}", a.file.display());
                refused += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    store.flush()?;
    writeln!(
        out,
        "ingested {} ({} skipped, {refused} refused)",
        count(vectors.len() as u64 - refused, "vector", "vectors"),
        count(bad.len() as u64, "bad entry", "bad entries"),
    )?;
    Ok(())
}

pub fn ingest(a: IngestArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if a.vectors {
        return ingest_vectors(&a, out);
    }
    let json = a.file.extension().is_some_and(|e| e == "jsonl" || e == "json");
    let (events, bad) = if json {
        jsonl::read(&a.file)?
    } else {
        events::read(&a.file, Layout::Detect)?
    };
    report_bad(&a.file, &bad, "line");
    if a.strict && !bad.is_empty() {
        bail!(
            "{}; nothing ingested (--strict)",
            count(bad.len() as u64, "bad line", "bad lines")
        );
    }
    let store = open_store(&a, Options::trained)?;
    let bar = progress(events.len() as u64, "ingesting");
    for chunk in events.chunks(10_000) {
        store.append_events(chunk)?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    store.flush()?;
    writeln!(
        out,
        "ingested {} ({} skipped)",
        count(events.len() as u64, "event", "events"),
        count(bad.len() as u64, "bad line", "bad lines"),
    )?;
    Ok(())
}
