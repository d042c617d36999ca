//! `ember ingest`: events from CSV, TSV or JSON lines, vectors from
//! `.fvecs` or CSV; bad lines reported with their numbers, `--strict`
//! writing nothing unless every line is good.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;
use emberdb::{Metric, Options, SpaceSpec, Store, DEFAULT_SPACE};

use crate::commands::store::{open_existing, open_or_create, progress};
use crate::input::events::{self, Layout};
use crate::input::vectors::Row;
use crate::input::{count, report_bad, Bad, BadLines};
use crate::{input::jsonl, input::vectors};

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
    /// The file holds users' features (`user_id,feature,...` with a header;
    /// MovieLens's users.csv as it is, ages and zip codes bucketed), for
    /// the YouTube DNN spaces.
    #[arg(long, conflicts_with = "vectors")]
    users: bool,
    /// The file holds item titles and attributes (`item_id,title,...` with
    /// a header, one attribute per column; a `genres` column of `|`-joined
    /// values gives one `genre` per value): MovieLens's items.csv as it is.
    /// `ember knn` shows the titles; `Query::filter` selects on the rest.
    #[arg(long, conflicts_with_all = ["vectors", "users"])]
    items: bool,
    /// Ingest nothing unless every line is good; the bad lines are listed
    /// (the first 20, then a count).
    #[arg(long)]
    strict: bool,
    /// Create a store of this dimension if there is none (trained for
    /// events, host-fed for --vectors); an existing store must have it.
    /// With --space, the dimension of that space (created host-fed if the
    /// store lacks it).
    #[arg(long)]
    dim: Option<usize>,
    /// With --vectors: the space that takes them (the default space by
    /// default). Events belong to every space and take none.
    #[arg(long)]
    space: Option<String>,
}

/// How a refusal ends: what became of the store (nothing was written).
fn untouched(store: &Path) -> &'static str {
    if store.join("meta").is_dir() {
        "the store is unchanged"
    } else {
        "no store created"
    }
}

/// Whether `v` can be stored in a space of `dim` components and `metric`
/// (the store's own check).
fn fits(v: &[f32], dim: usize, metric: Metric) -> bool {
    emberdb::check_vector(metric, dim, v, "").is_ok()
}

/// Refuses, before anything is written (or created), a file none of whose
/// vectors the space `name` (of `dim` components) can take.
fn refuse_if_none_fits(a: &IngestArgs, vectors: &[Row], name: &str, dim: usize, metric: Metric) -> anyhow::Result<()> {
    if vectors.iter().any(|r| fits(&r.v, dim, metric)) {
        return Ok(());
    }
    let zeros = if metric == Metric::Cosine {
        ", not all zeros"
    } else {
        ""
    };
    bail!(
        "{}: none of its {} fits space {name:?} ({}{zeros}); nothing ingested, {}",
        a.file.display(),
        count(vectors.len() as u64, "vector", "vectors"),
        count(dim as u64, "finite component", "finite components"),
        untouched(&a.store)
    )
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

/// Opens the store for vectors of the space `name`: a space the store
/// lacks is created host-fed with --dim (a new store gets a host-fed
/// default space of that dimension too), unless none of `vectors` fits it.
fn open_for_space(a: &IngestArgs, name: &str, vectors: &[Row]) -> anyhow::Result<Store> {
    open_space_checked(a, name, &|dim| {
        refuse_if_none_fits(a, vectors, name, dim, Metric::Cosine)
    })
}

/// Opens the store for vectors of the space `name` as [`open_for_space`]
/// does, calling `fits(dim)` before a store or space of `dim` components
/// is created.
fn open_space_checked(a: &IngestArgs, name: &str, fits: &dyn Fn(usize) -> anyhow::Result<()>) -> anyhow::Result<Store> {
    let with_space = |base: Options, dim: usize| {
        base.space(name, SpaceSpec::host(dim))
            .durability(emberdb::Durability::Buffered)
    };
    if !a.store.join("meta").is_dir() {
        let Some(dim) = a.dim else {
            bail!("{} is not a store; pass --dim N to create one", a.store.display());
        };
        fits(dim)?;
        return Ok(Store::open(&a.store, with_space(Options::new(dim), dim))?);
    }
    let store = open_existing(&a.store)?;
    if let Ok(space) = store.space(name) {
        let dim = space.dim();
        if let Some(asked) = a.dim.filter(|d| *d != dim) {
            bail!("--dim {asked} differs from the dimension {dim} of space {name:?}; nothing ingested");
        }
        return Ok(store);
    }
    let Some(dim) = a.dim else {
        bail!("the store has no space {name:?}; pass --dim N to create it (host-fed)");
    };
    drop(store);
    fits(dim)?;
    Ok(Store::open(&a.store, with_space(Options::existing(), dim))?)
}

/// Whether `path` names a Parquet file (by its extension).
fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

/// The dimension and metric of space `name` of the store at `a.store` (read
/// without writing), or those a new store of `--dim` would have; None when
/// there is no store and no --dim (the open then says why).
fn vector_shape(a: &IngestArgs, name: &str) -> anyhow::Result<Option<(usize, Metric)>> {
    if !a.store.join("meta").is_dir() {
        return Ok(a.dim.map(|d| (d, Metric::Cosine)));
    }
    let store = crate::commands::store::open_read_only(&a.store)?;
    let shape = store.space(name).ok().map(|s| (s.dim(), s.metric()));
    Ok(shape.or(a.dim.map(|d| (d, Metric::Cosine))))
}

/// Events (or, with `vectors`, item vectors) from a Parquet file, a batch
/// at a time with a progress bar; bad rows listed by number. The file is
/// read through once before the store is opened (or created): a file that
/// cannot be read, or holds no good row, or (with --strict) any bad one,
/// is refused with nothing written.
fn ingest_parquet(a: &IngestArgs, vectors: bool, out: &mut impl Write) -> anyhow::Result<()> {
    // Not the library's strict mode: the check below is the strict pass,
    // and the import then writes in one more.
    let opts = emberdb::ImportOptions {
        strict: false,
        space: a.space.clone(),
        ..emberdb::ImportOptions::default()
    };
    let name = a.space.as_deref().unwrap_or(DEFAULT_SPACE);
    let what = if vectors {
        ("vector", "vectors")
    } else {
        ("event", "events")
    };
    let bar = progress(0, "checking");
    let checked = if vectors {
        vector_shape(a, name)?.map(|(dim, metric)| {
            emberdb::check_vectors_parquet(&a.file, dim, metric, &opts, &|rows| bar.set_position(rows))
        })
    } else {
        Some(emberdb::check_events_parquet(&a.file, &opts, &|rows| {
            bar.set_position(rows)
        }))
    };
    bar.finish_and_clear();
    if let Some(checked) = checked {
        let checked = checked.map_err(|e| anyhow::anyhow!("{e}; nothing ingested, {}", untouched(&a.store)))?;
        let bad = BadLines::counted(checked.bad.clone(), checked.bad_rows);
        report_bad(&a.file, &bad, "row");
        if a.strict && checked.bad_rows > 0 {
            bail!(
                "{}; nothing ingested (--strict), {}",
                count(checked.bad_rows, "bad row", "bad rows"),
                untouched(&a.store)
            );
        }
        if checked.imported == 0 {
            bail!(
                "{}: no good {} in the file ({} of {}); nothing ingested, {}",
                a.file.display(),
                what.0,
                count(checked.bad_rows, "bad row", "bad rows"),
                count(checked.rows, "row", "rows"),
                untouched(&a.store)
            );
        }
    }
    let store = if !vectors {
        open_store(a, Options::trained)?
    } else if name == DEFAULT_SPACE {
        open_store(a, Options::new)?
    } else {
        // Checked above against the shape the space has or will have.
        open_space_checked(a, name, &|_| Ok(()))?
    };
    let bar = progress(0, "ingesting");
    let report = if vectors {
        store.import_vectors_parquet(&a.file, &opts, &|rows| bar.set_position(rows))?
    } else {
        store.import_events_parquet(&a.file, &opts, &|rows| bar.set_position(rows))?
    };
    bar.finish_and_clear();
    store.flush()?;
    writeln!(
        out,
        "ingested {} ({} skipped)",
        count(report.imported, what.0, what.1),
        count(report.bad_rows, "bad row", "bad rows"),
    )?;
    Ok(())
}

fn ingest_vectors(a: &IngestArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if is_parquet(&a.file) {
        return ingest_parquet(a, true, out);
    }
    let (vectors, bad) = vectors::read(&a.file).context("nothing ingested")?;
    let what = if vectors::is_fvecs(&a.file) { "vector" } else { "line" };
    report_bad(&a.file, &bad, what);
    if a.strict && !bad.is_empty() {
        bail!(
            "{}; nothing ingested (--strict), {}",
            count(bad.len(), "bad entry", "bad entries"),
            untouched(&a.store)
        );
    }
    if vectors.is_empty() {
        bail!(
            "{}: no vector in the file ({}; expected `id,v1,v2,...` or .fvecs); nothing ingested, {}",
            a.file.display(),
            count(bad.len(), "bad entry", "bad entries"),
            untouched(&a.store)
        );
    }
    let name = a.space.as_deref().unwrap_or(DEFAULT_SPACE);
    let store = if name == DEFAULT_SPACE {
        if !a.store.join("meta").is_dir() {
            if let Some(dim) = a.dim {
                refuse_if_none_fits(a, &vectors, name, dim, Metric::Cosine)?;
            }
        }
        open_store(a, Options::new)?
    } else {
        open_for_space(a, name, &vectors)?
    };
    let space = store.space(name)?;
    if space.kind().is_trained() {
        bail!(
            "space {name:?} of {} trains its item vectors from events (`ember train`); vectors go into a host-fed space: pass --space NAME --dim N to create one; nothing ingested",
            a.store.display()
        );
    }
    let (dim, metric) = (space.dim(), space.metric());
    refuse_if_none_fits(a, &vectors, name, dim, metric)?;
    if a.strict {
        // Check every vector before writing any, so nothing is half-ingested.
        let unfit: BadLines = vectors
            .iter()
            .filter(|r| !fits(&r.v, dim, metric))
            .map(|r| (r.at, unfit_reason(r, name, dim, metric)))
            .collect::<Vec<Bad>>()
            .into();
        if !unfit.is_empty() {
            report_bad(&a.file, &unfit, what);
            bail!(
                "{}; nothing ingested (--strict), {}",
                count(unfit.len(), "bad entry", "bad entries"),
                untouched(&a.store)
            );
        }
    }
    let mut refused = 0u64;
    for r in &vectors {
        match space.upsert(r.id, &r.v) {
            Ok(()) => {}
            Err(
                e @ (emberdb::Error::DimensionMismatch { .. }
                | emberdb::Error::NonFiniteVector { .. }
                | emberdb::Error::VectorTooLong { .. }
                | emberdb::Error::ZeroVector { .. }),
            ) => {
                eprintln!("{}: {what} {}: {e}", a.file.display(), r.at);
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
        count(bad.len(), "bad entry", "bad entries"),
    )?;
    Ok(())
}

/// Why a vector does not fit a space of `dim` components under `metric`.
fn unfit_reason(r: &Row, name: &str, dim: usize, metric: Metric) -> String {
    if r.v.len() != dim {
        return format!(
            "item {} has {} (the dimension of space {name:?} is {dim})",
            r.id,
            count(r.v.len() as u64, "component", "components")
        );
    }
    match emberdb::check_vector(metric, dim, &r.v, &format!("item {}", r.id)) {
        Err(e) => e.to_string(),
        Ok(()) => format!("item {} fits", r.id),
    }
}

/// `--items` or `--users`: what the file's rows are, and how one is set.
struct KeyedKind {
    /// "the attributes of" / "the features of".
    what: &'static str,
    /// Singular and plural of the ids' noun.
    noun: (&'static str, &'static str),
    read: ReadKeyed,
    /// The store's check of one id's pairs (what `set` would refuse).
    check: SetCheck,
    set: SetPairs,
}

/// Checks one id's pairs as the store would.
type SetCheck = fn(u64, &[(&str, &str)]) -> emberdb::Result<()>;

/// Reads a keyed file: its rows and its bad lines.
type ReadKeyed = fn(&Path) -> anyhow::Result<(crate::input::keyed::Keyed, BadLines)>;
/// Sets one id's pairs.
type SetPairs = fn(&Store, u64, &[(&str, &str)]) -> emberdb::Result<()>;

/// `--items`: every item's title and attributes (`Store::set_attributes`).
const ITEMS: KeyedKind = KeyedKind {
    what: "the attributes of",
    noun: ("item", "items"),
    read: crate::input::items::read,
    check: emberdb::check_attributes,
    set: |store, id, pairs| store.set_attributes(id, pairs),
};

/// `--users`: every user's features (`Store::set_user_features`).
const USERS: KeyedKind = KeyedKind {
    what: "the features of",
    noun: ("user", "users"),
    read: crate::input::users::read,
    check: emberdb::check_user_features,
    set: |store, id, pairs| store.set_user_features(id, pairs),
};

/// Sets each row's pairs. Every row is checked before the store is opened:
/// a row with no pairs (only an id: that is not how attributes are
/// removed) or one the store would refuse (an empty key, a value too long)
/// is a bad line; a file with no good row is refused with nothing written,
/// and with --strict, a file with any bad one.
fn ingest_keyed(a: &IngestArgs, kind: &KeyedKind, out: &mut impl Write) -> anyhow::Result<()> {
    let (rows, mut bad) = (kind.read)(&a.file).context("nothing ingested")?;
    let mut good = Vec::with_capacity(rows.len());
    for (at, id, pairs) in rows {
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if refs.is_empty() {
            bad.push((
                at,
                format!(
                    "{} {id} has no value (a row needs at least one non-empty column; it does not remove what is set)",
                    kind.noun.0
                ),
            ));
        } else if let Err(e) = (kind.check)(id, &refs) {
            bad.push((at, e.to_string()));
        } else {
            good.push((id, pairs));
        }
    }
    report_bad(&a.file, &bad, "line");
    if a.strict && !bad.is_empty() {
        bail!(
            "{}; nothing ingested (--strict), {}",
            count(bad.len(), "bad line", "bad lines"),
            untouched(&a.store)
        );
    }
    if good.is_empty() {
        bail!(
            "{}: no good {}'s row in the file ({}); nothing ingested, {}",
            a.file.display(),
            kind.noun.0,
            count(bad.len(), "bad line", "bad lines"),
            untouched(&a.store)
        );
    }
    let store = open_store(a, Options::trained)?;
    let bar = progress(good.len() as u64, "ingesting");
    for (id, pairs) in &good {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        (kind.set)(&store, *id, &pairs)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    store.flush()?;
    writeln!(
        out,
        "ingested {} {} ({} skipped)",
        kind.what,
        count(good.len() as u64, kind.noun.0, kind.noun.1),
        count(bad.len(), "bad line", "bad lines"),
    )?;
    Ok(())
}

pub fn ingest(a: IngestArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if a.vectors {
        return ingest_vectors(&a, out);
    }
    if a.users {
        return ingest_keyed(&a, &USERS, out);
    }
    if a.items {
        return ingest_keyed(&a, &ITEMS, out);
    }
    if let Some(name) = &a.space {
        bail!("events belong to every space: leave out --space {name:?} (it is for --vectors)");
    }
    if is_parquet(&a.file) {
        return ingest_parquet(&a, false, out);
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
            "{}; nothing ingested (--strict), {}",
            count(bad.len(), "bad line", "bad lines"),
            untouched(&a.store)
        );
    }
    if events.is_empty() {
        bail!(
            "{}: no event in the file ({}; expected {}); nothing ingested, {}",
            a.file.display(),
            count(bad.len(), "bad line", "bad lines"),
            if json {
                "JSON lines {\"user_id\":1,\"item_id\":2,\"timestamp\":3}"
            } else {
                "user_id,item_id,timestamp[,weight] or user_id,item_id,rating,timestamp"
            },
            untouched(&a.store)
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
        count(bad.len(), "bad line", "bad lines"),
    )?;
    Ok(())
}
