//! `Store::export_parquet`: a space's items, their batch top-N neighbours,
//! the events and (optionally) user vectors as Parquet files, written a
//! row group at a time so memory stays bounded by one row group (plus the
//! list of the space's live ids and, for events, the users' histories).
//!
//! | file | columns |
//! |---|---|
//! | `items.parquet` | `item_id: int64`, `vector: fixed_size_list<float32, dim>`, one `list<utf8>` column per attribute key, `space: utf8`, `generation: int64` |
//! | `items.parquet` with `milvus` | `item_id: int64`, `vector: fixed_size_list<float32, dim>` only: what Milvus bulk import takes for a collection with primary key `item_id` (INT64) and vector field `vector` (FLOAT_VECTOR, dim) |
//! | `neighbours.parquet` | `item_id: int64`, `rank: int32` (1 = nearest), `neighbour_id: int64`, `score: float32` |
//! | `events.parquet` | `user_id: int64`, `item_id: int64`, `ts: int64`, `weight: float32` |
//! | `user_vectors.parquet` | `user_id: int64`, `vector: fixed_size_list<float32, dim>` |
//!
//! Ids are the store's u64 ids as int64 (Spark, Milvus and DuckDB have no
//! unsigned 64-bit keys); an id above `i64::MAX` is refused rather than
//! wrapped. Events are the ones the store holds: each user's history (its
//! last `Options::history_len` events), oldest first.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Float32Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, IoContext, Result};
use crate::store::Store;

/// A parquet or arrow error as ours, naming the file.
pub(crate) fn parquet_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Parquet {
        path: path.to_path_buf(),
        reason: what.to_string(),
    }
}

/// What `Store::export_parquet` writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// The space exported (None: the default space).
    pub space: Option<String>,
    /// Neighbours per item in `neighbours.parquet` (0: no such file).
    pub neighbours: usize,
    /// Write `events.parquet`.
    pub events: bool,
    /// Write `user_vectors.parquet` (the user query vector of every user
    /// with events: pooled, or the space's user model).
    pub user_vectors: bool,
    /// `items.parquet` with only `item_id` and `vector`, as Milvus bulk
    /// import wants it.
    pub milvus: bool,
    /// Rows per row group (and per batch held in memory).
    pub row_group_rows: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            space: None,
            neighbours: 10,
            events: true,
            user_vectors: false,
            milvus: false,
            row_group_rows: 65_536,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ExportReport {
    /// Rows of `items.parquet`: the space's live items with a vector (no
    /// file is written when there are none).
    pub items: u64,
    /// Rows of `neighbours.parquet`: (item, neighbour) pairs, up to
    /// `ExportOptions::neighbours` per item; 0 when it was not asked for.
    pub neighbours: u64,
    /// Rows of `events.parquet`: every event of every user's history as
    /// the store holds it; 0 when it was not asked for.
    pub events: u64,
    /// Rows of `user_vectors.parquet`: the users who have a query vector
    /// in the space; 0 when it was not asked for.
    pub user_vectors: u64,
    /// The files written, in the order above (`items`, `neighbours`,
    /// `events`, `user_vectors`), each only if written.
    pub files: Vec<PathBuf>,
}

/// An open Parquet file being written a batch at a time.
struct Out {
    path: PathBuf,
    schema: Arc<Schema>,
    writer: ArrowWriter<File>,
}

impl Out {
    fn create(path: PathBuf, schema: Schema, row_group_rows: usize) -> Result<Self> {
        let file = File::create(&path).at(&path)?;
        let schema = Arc::new(schema);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_size(row_group_rows.max(1))
            .build();
        let writer =
            ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).map_err(|e| parquet_error(&path, e))?;
        Ok(Out { path, schema, writer })
    }

    fn write(&mut self, columns: Vec<ArrayRef>) -> Result<()> {
        let batch =
            RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|e| parquet_error(&self.path, e))?;
        self.writer.write(&batch).map_err(|e| parquet_error(&self.path, e))
    }

    fn finish(self) -> Result<PathBuf> {
        let file = self.writer.into_inner().map_err(|e| parquet_error(&self.path, e))?;
        file.sync_all().at(&self.path)?;
        Ok(self.path)
    }
}

/// `id` as int64, or an error naming it.
fn signed(id: u64, what: &str) -> Result<i64> {
    i64::try_from(id).map_err(|_| {
        Error::InvalidOptions(format!(
            "{what} {id} is above i64::MAX: Parquet exports ids as int64 (Spark, Milvus and DuckDB have no unsigned 64-bit keys)"
        ))
    })
}

fn vector_field(name: &str, dim: usize) -> Field {
    Field::new(
        name,
        DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), dim as i32),
        false,
    )
}

fn vectors_array(rows: &[Vec<f32>], dim: usize) -> ArrayRef {
    let mut b =
        FixedSizeListBuilder::with_capacity(Float32Builder::with_capacity(rows.len() * dim), dim as i32, rows.len())
            .with_field(Arc::new(Field::new("item", DataType::Float32, false)));
    for row in rows {
        b.values().append_slice(row);
        b.append(true);
    }
    Arc::new(b.finish())
}

impl Store {
    /// Writes a space's items, their top-N neighbours, the events and
    /// optionally user vectors to Parquet files in `dir` (created if
    /// needed; files there of the same names are replaced): columns and
    /// the Milvus layout in ARCHITECTURE.md ("Parquet"). Behind the
    /// default `parquet` feature.
    pub fn export_parquet(&self, dir: impl AsRef<Path>, opts: &ExportOptions) -> Result<ExportReport> {
        let dir = dir.as_ref();
        // Files written among the store's own would be taken for leftovers
        // (or, in segments/, for damage) by the next open and verify.
        if crate::fsutil::is_inside(dir, self.path())? {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "the export directory is inside the store {}; choose a directory outside it",
                        self.path().display()
                    ),
                ),
            });
        }
        std::fs::create_dir_all(dir).at(dir)?;
        let name = opts
            .space
            .clone()
            .unwrap_or_else(|| crate::options::DEFAULT_SPACE.to_string());
        let space = self.space(&name)?;
        let rows_per_group = opts.row_group_rows.max(1);
        let mut report = ExportReport::default();
        let mut ids = space.ids()?;
        ids.sort_unstable();
        ids.dedup();
        let generation = space.stats().trainer.map_or(0, |t| t.generation) as i64;

        // items.parquet
        let keys: Vec<String> = if opts.milvus {
            Vec::new()
        } else {
            self.shared.attributes.keys()
        };
        let mut dim = None;
        let mut out: Option<Out> = None;
        for chunk in ids.chunks(rows_per_group) {
            let mut kept_ids = Vec::with_capacity(chunk.len());
            let mut rows = Vec::with_capacity(chunk.len());
            for id in chunk {
                // An item deleted since the ids were listed is left out.
                if let Some(v) = space.get(*id)? {
                    kept_ids.push(signed(*id, "item id")?);
                    rows.push(v);
                }
            }
            let Some(first) = rows.first() else { continue };
            let d = *dim.get_or_insert(first.len());
            if out.is_none() {
                let mut fields = vec![Field::new("item_id", DataType::Int64, false), vector_field("vector", d)];
                for key in &keys {
                    fields.push(Field::new(
                        key,
                        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                        true,
                    ));
                }
                if !opts.milvus {
                    fields.push(Field::new("space", DataType::Utf8, false));
                    fields.push(Field::new("generation", DataType::Int64, false));
                }
                out = Some(Out::create(
                    dir.join("items.parquet"),
                    Schema::new(fields),
                    rows_per_group,
                )?);
            }
            let mut columns: Vec<ArrayRef> =
                vec![Arc::new(Int64Array::from(kept_ids.clone())), vectors_array(&rows, d)];
            for key in &keys {
                let mut b = ListBuilder::new(StringBuilder::new());
                for id in &kept_ids {
                    let attrs = self.shared.attributes.get(*id as u64);
                    for (k, v) in attrs.iter() {
                        if k == key {
                            b.values().append_value(v);
                        }
                    }
                    b.append(true);
                }
                columns.push(Arc::new(b.finish()));
            }
            if !opts.milvus {
                columns.push(Arc::new(StringArray::from(vec![name.as_str(); kept_ids.len()])));
                columns.push(Arc::new(Int64Array::from(vec![generation; kept_ids.len()])));
            }
            report.items += kept_ids.len() as u64;
            if let Some(o) = out.as_mut() {
                o.write(columns)?;
            }
        }
        if let Some(o) = out {
            report.files.push(o.finish()?);
        }

        // neighbours.parquet
        if opts.neighbours > 0 {
            let schema = Schema::new(vec![
                Field::new("item_id", DataType::Int64, false),
                Field::new("rank", DataType::Int32, false),
                Field::new("neighbour_id", DataType::Int64, false),
                Field::new("score", DataType::Float32, false),
            ]);
            let mut out = Out::create(dir.join("neighbours.parquet"), schema, rows_per_group)?;
            let per_batch = rows_per_group.checked_div(opts.neighbours).unwrap_or(1).max(1);
            for chunk in ids.chunks(per_batch) {
                let (mut item, mut rank, mut neighbour, mut score) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for (id, hits) in self.neighbours(&name, chunk, opts.neighbours)? {
                    for (r, h) in hits.iter().enumerate() {
                        item.push(signed(id, "item id")?);
                        rank.push(r as i32 + 1);
                        neighbour.push(signed(h.id, "item id")?);
                        score.push(h.score);
                    }
                }
                report.neighbours += item.len() as u64;
                out.write(vec![
                    Arc::new(Int64Array::from(item)),
                    Arc::new(Int32Array::from(rank)),
                    Arc::new(Int64Array::from(neighbour)),
                    Arc::new(Float32Array::from(score)),
                ])?;
            }
            report.files.push(out.finish()?);
        }

        // events.parquet, user_vectors.parquet
        if opts.events || opts.user_vectors {
            // Streamed from one merge over the runs, a row group at a time.
            let behaviour = &self.shared.behaviour;
            if opts.events {
                let schema = Schema::new(vec![
                    Field::new("user_id", DataType::Int64, false),
                    Field::new("item_id", DataType::Int64, false),
                    Field::new("ts", DataType::Int64, false),
                    Field::new("weight", DataType::Float32, false),
                ]);
                let mut out = Out::create(dir.join("events.parquet"), schema, rows_per_group)?;
                let (mut user, mut item, mut ts, mut weight) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                behaviour.for_each_history(u64::MAX, &mut |h_user, events| {
                    for e in events {
                        user.push(signed(h_user, "user id")?);
                        item.push(signed(e.item, "item id")?);
                        ts.push(signed(e.ts, "timestamp")?);
                        weight.push(e.weight);
                        if user.len() == rows_per_group {
                            report.events += user.len() as u64;
                            out.write(vec![
                                Arc::new(Int64Array::from(std::mem::take(&mut user))),
                                Arc::new(Int64Array::from(std::mem::take(&mut item))),
                                Arc::new(Int64Array::from(std::mem::take(&mut ts))),
                                Arc::new(Float32Array::from(std::mem::take(&mut weight))),
                            ])?;
                        }
                    }
                    Ok(())
                })?;
                report.events += user.len() as u64;
                out.write(vec![
                    Arc::new(Int64Array::from(user)),
                    Arc::new(Int64Array::from(item)),
                    Arc::new(Int64Array::from(ts)),
                    Arc::new(Float32Array::from(weight)),
                ])?;
                report.files.push(out.finish()?);
            }
            if opts.user_vectors {
                let mut out: Option<Out> = None;
                let (mut users, mut rows) = (Vec::new(), Vec::new());
                let flush = |out: &mut Option<Out>, users: &mut Vec<i64>, rows: &mut Vec<Vec<f32>>| -> Result<()> {
                    let Some(first) = rows.first() else { return Ok(()) };
                    let d = first.len();
                    if out.is_none() {
                        let schema = Schema::new(vec![
                            Field::new("user_id", DataType::Int64, false),
                            vector_field("vector", d),
                        ]);
                        *out = Some(Out::create(dir.join("user_vectors.parquet"), schema, rows_per_group)?);
                    }
                    let columns: Vec<ArrayRef> = vec![
                        Arc::new(Int64Array::from(std::mem::take(users))),
                        vectors_array(rows, d),
                    ];
                    rows.clear();
                    match out.as_mut() {
                        Some(o) => o.write(columns),
                        None => Ok(()),
                    }
                };
                behaviour.for_each_history(u64::MAX, &mut |user, _| {
                    if let Some(v) = space.user_vector(user)? {
                        users.push(signed(user, "user id")?);
                        rows.push(v);
                        report.user_vectors += 1;
                    }
                    if rows.len() == rows_per_group {
                        flush(&mut out, &mut users, &mut rows)?;
                    }
                    Ok(())
                })?;
                flush(&mut out, &mut users, &mut rows)?;
                if let Some(o) = out {
                    report.files.push(o.finish()?);
                }
            }
        }
        Ok(report)
    }
}
