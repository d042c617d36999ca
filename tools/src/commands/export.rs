//! `ember export`: item vectors to `.fvecs` (ids beside them), and every
//! item's top-N similar items to CSV or JSON lines, searched in batches
//! through the indexes by every core.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;
use emberdb::{Hit, Store};
use serde::Serialize;

use crate::commands::store::{open_read_only, progress};
use crate::input::count;
use crate::{input::fvecs, output::hits};

/// Each item of a batch with its similar items.
type Neighbours = Vec<(u64, Vec<Hit>)>;

#[derive(Args, Debug)]
pub struct ExportArgs {
    store: PathBuf,
    /// Write every item vector here (.fvecs), and the ids, one per line, to
    /// the same path with `.ids` appended.
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Write every item's top-N similar items here, in the form its
    /// extension names: `.json`, one JSON array of
    /// `{"item_id":1,"similar":[{"id":7,"score":0.93},...]}`; `.jsonl`, one
    /// such object a line; anything else CSV `item_id,rank,similar_id,score`
    /// (JSON lines with --jsonl).
    #[arg(long)]
    similar: Option<PathBuf>,
    /// How many similar items per item (N); with --format parquet, the
    /// neighbours per item in neighbours.parquet (0: no such file).
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// `parquet`: write items.parquet, neighbours.parquet and events.parquet
    /// (and with --user-vectors, user_vectors.parquet) into --out DIR, for
    /// Spark, DuckDB, pyarrow and Milvus bulk import; one space (--space,
    /// the default space by default).
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// With --format parquet: the directory to write into.
    #[arg(long)]
    out: Option<PathBuf>,
    /// With --format parquet: items.parquet holds only `item_id` and
    /// `vector`, the fields of a Milvus collection (no attribute, space or
    /// generation columns).
    #[arg(long)]
    milvus: bool,
    /// With --format parquet: also write user_vectors.parquet.
    #[arg(long)]
    user_vectors: bool,
    /// Write --similar as JSON lines whatever its extension.
    #[arg(long)]
    jsonl: bool,
    /// Export only this space. By default every space is exported: the
    /// default space to the paths given, each other space to them with
    /// `.SPACE` before the extension (`vectors.text.fvecs`).
    #[arg(long)]
    space: Option<String>,
}

/// One object of `--similar x.json` (an array of them) or `x.jsonl` (one a
/// line).
#[derive(Serialize)]
struct SimilarLine {
    item_id: u64,
    similar: Vec<hits::JsonHit>,
}

/// Where the similar items go: CSV rows, JSON lines, or one JSON array
/// (written an object at a time; `items` says whether a comma comes first).
enum SimilarOut {
    Csv(Box<csv::Writer<BufWriter<File>>>),
    Jsonl(BufWriter<File>),
    Json { out: BufWriter<File>, items: u64 },
}

/// The form of `--similar`'s file.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    Csv,
    Jsonl,
    Json,
}

impl Form {
    /// By the extension (`.json`, `.jsonl`, else CSV); --jsonl forces JSON
    /// lines.
    fn of(path: &Path, jsonl: bool) -> Self {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            _ if jsonl => Form::Jsonl,
            "jsonl" => Form::Jsonl,
            "json" => Form::Json,
            _ => Form::Csv,
        }
    }
}

impl SimilarOut {
    fn create(path: &Path, form: Form) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| path.display().to_string())?;
        let mut file = BufWriter::new(file);
        match form {
            Form::Jsonl => return Ok(Self::Jsonl(file)),
            Form::Json => {
                file.write_all(b"[")?;
                return Ok(Self::Json { out: file, items: 0 });
            }
            Form::Csv => {}
        }
        // The header is written here, so that an empty store still gets one.
        let mut csv = csv::WriterBuilder::new().has_headers(false).from_writer(file);
        csv.write_record(["item_id", "rank", "similar_id", "score"])?;
        Ok(Self::Csv(Box::new(csv)))
    }

    fn write(&mut self, id: u64, hits: &[Hit]) -> anyhow::Result<()> {
        match self {
            Self::Csv(csv) => {
                for (r, h) in hits.iter().enumerate() {
                    csv.serialize((id, r + 1, h.id, h.score))?;
                }
            }
            Self::Jsonl(out) => {
                let line = SimilarLine {
                    item_id: id,
                    similar: hits::json(hits, None),
                };
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
            }
            Self::Json { out, items } => {
                let line = SimilarLine {
                    item_id: id,
                    similar: hits::json(hits, None),
                };
                out.write_all(if *items == 0 { b"\n" } else { b",\n" })?;
                serde_json::to_writer(&mut *out, &line)?;
                *items += 1;
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Self::Csv(mut csv) => csv.flush()?,
            Self::Jsonl(mut out) => out.flush()?,
            Self::Json { mut out, .. } => {
                out.write_all(b"\n]\n")?;
                out.flush()?;
            }
        }
        Ok(())
    }
}

/// Every item's top `top` similar items in `space`, one batch of items at
/// a time, searched by every core (`Store::neighbours`).
fn search_batch(store: &Store, space: &str, batch: &[u64], top: usize) -> anyhow::Result<Neighbours> {
    Ok(store.neighbours(space, batch, top)?)
}

/// `path` for the space `name`: as given for the default space (or when
/// only one space is exported), else with `.name` before the extension.
fn path_for(path: &Path, name: &str, suffixed: bool) -> PathBuf {
    if !suffixed {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = match path.extension() {
        Some(ext) => format!("{stem}.{name}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{name}"),
    };
    path.with_file_name(file)
}

/// `--format parquet --out DIR`.
fn export_parquet(a: &ExportArgs, dir: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    let store = open_read_only(&a.store)?;
    store.wait_for_indexes();
    let opts = emberdb::ExportOptions {
        space: a.space.clone(),
        neighbours: a.top,
        user_vectors: a.user_vectors,
        milvus: a.milvus,
        ..emberdb::ExportOptions::default()
    };
    let r = store.export_parquet(dir, &opts)?;
    writeln!(
        out,
        "{}, {}, {}{} to {}",
        count(r.items, "item", "items"),
        count(r.neighbours, "neighbour row", "neighbour rows"),
        count(r.events, "event", "events"),
        if a.user_vectors {
            format!(", {}", count(r.user_vectors, "user vector", "user vectors"))
        } else {
            String::new()
        },
        dir.display()
    )?;
    for f in &r.files {
        writeln!(out, "  {}", f.display())?;
    }
    Ok(())
}

pub fn export(a: ExportArgs, out: &mut impl Write) -> anyhow::Result<()> {
    match (a.format.as_deref(), &a.out) {
        (Some("parquet"), Some(dir)) => return export_parquet(&a, &dir.clone(), out),
        (Some("parquet"), None) => bail!("--format parquet needs --out DIR"),
        (Some("fvecs") | None, None) => {}
        (Some("fvecs") | None, Some(_)) => bail!("--out is for --format parquet"),
        (Some(other), _) => bail!("--format must be parquet (or leave it out for --vectors/--similar), not {other}"),
    }
    if a.vectors.is_none() && a.similar.is_none() {
        bail!("nothing to export: pass --vectors and/or --similar");
    }
    let store = open_read_only(&a.store)?;
    store.wait_for_indexes();
    let names: Vec<String> = match &a.space {
        Some(name) => vec![store.space(name)?.name().to_string()],
        None => store.spaces().iter().map(|s| s.name().to_string()).collect(),
    };
    for name in &names {
        let suffixed = a.space.is_none() && name != emberdb::DEFAULT_SPACE;
        export_space(&store, &a, name, suffixed, out)?;
    }
    Ok(())
}

fn export_space(store: &Store, a: &ExportArgs, name: &str, suffixed: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let space = store.space(name)?;
    let ids = space.ids()?;
    if let Some(path) = &a.vectors {
        let path = &path_for(path, name, suffixed);
        let mut vectors = fvecs::Writer::create(path)?;
        for id in &ids {
            if let Some(v) = space.get(*id)? {
                vectors.push(*id, &v)?;
            }
        }
        let ids_path = vectors.ids_path().to_owned();
        let written = vectors.finish()?;
        writeln!(
            out,
            "space {name:?}: {} to {} (ids in {})",
            count(written as u64, "vector", "vectors"),
            path.display(),
            ids_path.display()
        )?;
    }
    if let Some(path) = &a.similar {
        let path = &path_for(path, name, suffixed);
        let mut similar = SimilarOut::create(path, Form::of(path, a.jsonl))?;
        let bar = progress(ids.len() as u64, "exporting");
        for batch in ids.chunks(4_096) {
            for (id, hits) in search_batch(store, name, batch, a.top)? {
                similar.write(id, &hits).with_context(|| path.display().to_string())?;
            }
            bar.inc(batch.len() as u64);
        }
        similar.finish().with_context(|| path.display().to_string())?;
        bar.finish_and_clear();
        writeln!(
            out,
            "space {name:?}: the {} of {} to {}",
            count(a.top as u64, "most similar item", "most similar items"),
            count(ids.len() as u64, "item", "items"),
            path.display()
        )?;
    }
    Ok(())
}
