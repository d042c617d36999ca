//! Reading events and host vectors from Parquet (`Store::import_events_parquet`,
//! `Store::import_vectors_parquet`): a batch of rows at a time, each bad
//! row reported by its number (1-based, in file order), nothing written in
//! strict mode unless every row is good.
//!
//! The file's columns are checked before anything is written. Rows are
//! checked as the store's own calls check them (`check_event`,
//! `check_vector`: a vector with a null component is a bad row, not
//! zeros). A file that fails part way (a corrupt row group) fails with the
//! row group and its first row, and says how many rows were written
//! before it. [`check_events_parquet`] and [`check_vectors_parquet`] read
//! a file the same way without a store, so a caller can refuse a file
//! before it creates or opens one.
//!
//! Events: columns `user_id` (or `user`), `item_id` (or `item`), `ts` (or
//! `timestamp`), optional `weight`; ids and timestamps int64, int32,
//! uint64 or uint32; the weight float32 or float64. Vectors: `item_id` (or
//! `id`) and `vector`, a `fixed_size_list` or `list` of float32.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, IoContext, Result};
use crate::event::Event;
use crate::metric::Metric;
use crate::store::interop::parquet_export::parquet_error;
use crate::store::Store;
use crate::validate;

/// How to import.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOptions {
    /// Write nothing unless every row is good (the file is read twice).
    pub strict: bool,
    /// Rows read (and written) per batch.
    pub batch_rows: usize,
    /// Vectors: the space that takes them (None: the default space).
    pub space: Option<String>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            strict: false,
            batch_rows: 65_536,
            space: None,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Rows in the file.
    pub rows: u64,
    /// Rows written.
    pub imported: u64,
    /// Bad rows: (row number, why), the first 1,000.
    pub bad: Vec<(u64, String)>,
    /// How many rows were bad in all.
    pub bad_rows: u64,
}

impl ImportReport {
    fn bad_row(&mut self, row: u64, why: String) {
        self.bad_rows += 1;
        if self.bad.len() < 1_000 {
            self.bad.push((row, why));
        }
    }
}

/// The columns a file must have: each entry names one column by its
/// accepted names.
type Columns = &'static [&'static [&'static str]];

const EVENT_COLUMNS: Columns = &[&["user_id", "user"], &["item_id", "item"], &["ts", "timestamp"]];
const VECTOR_COLUMNS: Columns = &[&["item_id", "id"], &["vector"]];

/// A checked file: its row count and the rows of each row group, read one
/// group at a time so that a failure names its group.
struct Opened {
    rows: u64,
    groups: Vec<u64>,
}

/// Opens `path` and checks that it has `columns` (by name), before any row
/// is read.
fn open(path: &Path, columns: Columns) -> Result<Opened> {
    let builder = builder(path)?;
    let schema = builder.schema();
    for names in columns {
        if !names.iter().any(|n| schema.field_with_name(n).is_ok()) {
            let has: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(parquet_error(
                path,
                format!(
                    "no column named {} (its columns: {})",
                    names.join(" or "),
                    if has.is_empty() {
                        "none".to_string()
                    } else {
                        has.join(", ")
                    }
                ),
            ));
        }
    }
    let metadata = builder.metadata();
    Ok(Opened {
        rows: metadata.file_metadata().num_rows().max(0) as u64,
        groups: metadata
            .row_groups()
            .iter()
            .map(|g| g.num_rows().max(0) as u64)
            .collect(),
    })
}

fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let file = File::open(path).at(path)?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(path, e))
}

/// The batches of row group `group` (from 0).
fn group_reader(
    path: &Path,
    group: usize,
    batch_rows: usize,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    builder(path)?
        .with_row_groups(vec![group])
        .with_batch_size(batch_rows.max(1))
        .build()
        .map_err(|e| parquet_error(path, e))
}

/// The first column of `batch` named one of `names`.
fn column<'a>(batch: &'a RecordBatch, names: &[&str], path: &Path) -> Result<&'a ArrayRef> {
    names
        .iter()
        .find_map(|n| batch.column_by_name(n))
        .ok_or_else(|| parquet_error(path, format!("no column named {}", names.join(" or "))))
}

fn optional<'a>(batch: &'a RecordBatch, names: &[&str]) -> Option<&'a ArrayRef> {
    names.iter().find_map(|n| batch.column_by_name(n))
}

/// Row `i` of an integer column as u64: None for a null, Err for a
/// negative value or a column of another type.
fn unsigned(col: &ArrayRef, i: usize, path: &Path) -> Result<std::result::Result<u64, String>> {
    if col.is_null(i) {
        return Ok(Err("null".into()));
    }
    let signed = |v: i64| u64::try_from(v).map_err(|_| format!("negative value {v}"));
    Ok(match col.data_type() {
        DataType::Int64 => signed(col.as_primitive::<Int64Type>().value(i)),
        DataType::Int32 => signed(col.as_primitive::<Int32Type>().value(i) as i64),
        DataType::UInt64 => Ok(col.as_primitive::<UInt64Type>().value(i)),
        DataType::UInt32 => Ok(col.as_primitive::<UInt32Type>().value(i) as u64),
        other => {
            return Err(parquet_error(
                path,
                format!("an id or timestamp column of type {other}, not an integer"),
            ))
        }
    })
}

fn float(col: &ArrayRef, i: usize, path: &Path) -> Result<Option<f32>> {
    if col.is_null(i) {
        return Ok(None);
    }
    Ok(Some(match col.data_type() {
        DataType::Float32 => col.as_primitive::<Float32Type>().value(i),
        DataType::Float64 => col.as_primitive::<Float64Type>().value(i) as f32,
        other => {
            return Err(parquet_error(
                path,
                format!("a weight column of type {other}, not a float"),
            ))
        }
    }))
}

/// Row `i` of a vector column (fixed-size or variable list of float32):
/// None for a null vector, Err for a null component.
fn vector(col: &ArrayRef, i: usize, path: &Path) -> Result<Option<std::result::Result<Vec<f32>, String>>> {
    if col.is_null(i) {
        return Ok(None);
    }
    let values = match col.data_type() {
        DataType::FixedSizeList(..) => col.as_fixed_size_list().value(i),
        DataType::List(_) => col.as_list::<i32>().value(i),
        DataType::LargeList(_) => col.as_list::<i64>().value(i),
        other => {
            return Err(parquet_error(
                path,
                format!("a vector column of type {other}, not a list of floats"),
            ))
        }
    };
    if let Some(at) = (0..values.len()).find(|j| values.is_null(*j)) {
        return Ok(Some(Err(format!("component {at} of the vector is null"))));
    }
    match values.data_type() {
        DataType::Float32 => Ok(Some(Ok(values.as_primitive::<Float32Type>().values().to_vec()))),
        DataType::Float64 => Ok(Some(Ok(values
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .map(|x| *x as f32)
            .collect()))),
        other => Err(parquet_error(
            path,
            format!("vector components of type {other}, not floats"),
        )),
    }
}

/// The events of one batch whose first row is row `first` (1-based), and
/// the bad rows.
fn events_of(batch: &RecordBatch, first: u64, path: &Path, report: &mut ImportReport) -> Result<Vec<Event>> {
    let users = column(batch, &["user_id", "user"], path)?;
    let items = column(batch, &["item_id", "item"], path)?;
    let times = column(batch, &["ts", "timestamp"], path)?;
    let weights = optional(batch, &["weight"]);
    let latest = validate::latest_timestamp();
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let row = first + i as u64;
        let weight = match weights {
            Some(w) => float(w, i, path)?,
            None => Some(1.0),
        };
        match (
            unsigned(users, i, path)?,
            unsigned(items, i, path)?,
            unsigned(times, i, path)?,
            weight,
        ) {
            (Ok(user), Ok(item), Ok(ts), Some(w)) => {
                let event = Event::new(user, item, ts).with_weight(w);
                match validate::check_event_before(&event, latest) {
                    Ok(()) => out.push(event),
                    Err(e) => report.bad_row(row, e.to_string()),
                }
            }
            (Err(e), ..) => report.bad_row(row, format!("user_id: {e}")),
            (_, Err(e), ..) => report.bad_row(row, format!("item_id: {e}")),
            (_, _, Err(e), _) => report.bad_row(row, format!("ts: {e}")),
            (.., None) => report.bad_row(row, "weight: null".into()),
        }
    }
    Ok(out)
}

/// The vectors of one batch that a space of `dim` components and `metric`
/// (named `name` in reasons) can take, and the bad rows.
fn vectors_of(
    batch: &RecordBatch,
    first: u64,
    path: &Path,
    (name, dim, metric): (&str, usize, Metric),
    report: &mut ImportReport,
) -> Result<Vec<(u64, Vec<f32>)>> {
    let ids = column(batch, &["item_id", "id"], path)?;
    let vectors = column(batch, &["vector"], path)?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let row = first + i as u64;
        let id = match unsigned(ids, i, path)? {
            Ok(id) => id,
            Err(e) => {
                report.bad_row(row, format!("item_id: {e}"));
                continue;
            }
        };
        let v = match vector(vectors, i, path)? {
            None => {
                report.bad_row(row, "vector: null".into());
                continue;
            }
            Some(Err(why)) => {
                report.bad_row(row, format!("item {id}: {why}"));
                continue;
            }
            Some(Ok(v)) => v,
        };
        match validate::check_vector(metric, dim, &v, &format!("item {id} in space {name:?}")) {
            Ok(()) => out.push((id, v)),
            Err(e) => report.bad_row(row, e.to_string()),
        }
    }
    Ok(out)
}

/// Reads `path` a batch at a time, calling `each(batch, first row, report,
/// write)`; under `strict` a first pass checks every row (`write` false)
/// and the second, run only if none was bad, writes. `columns` are checked
/// before the first row is read.
fn import(
    path: &Path,
    opts: &ImportOptions,
    columns: Columns,
    passes: &[bool],
    progress: &dyn Fn(u64),
    mut each: impl FnMut(&RecordBatch, u64, &mut ImportReport, bool) -> Result<()>,
) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    for &write in passes {
        report = ImportReport::default();
        let opened = open(path, columns)?;
        report.rows = opened.rows;
        let mut first = 1;
        for (group, group_rows) in opened.groups.iter().enumerate() {
            let group_start = first;
            let failed = |e: &dyn std::fmt::Display, report: &ImportReport| {
                let written = if write {
                    format!("; {} before it were written", count_rows(report.imported))
                } else {
                    "; nothing was written".to_string()
                };
                parquet_error(
                    path,
                    format!(
                        "row group {} of {} (rows {group_start} to {}): {e}{written}",
                        group + 1,
                        opened.groups.len(),
                        group_start + group_rows.saturating_sub(1)
                    ),
                )
            };
            let reader = group_reader(path, group, opts.batch_rows).map_err(|e| failed(&e, &report))?;
            for batch in reader {
                let batch = batch.map_err(|e| failed(&e, &report))?;
                match each(&batch, first, &mut report, write) {
                    Ok(()) => {}
                    Err(Error::Parquet { reason, .. }) => return Err(failed(&reason, &report)),
                    Err(e) => return Err(e),
                }
                first += batch.num_rows() as u64;
                progress(first - 1);
            }
        }
        if !write && report.bad_rows > 0 {
            break;
        }
    }
    Ok(report)
}

/// "1 row", "65536 rows".
fn count_rows(n: u64) -> String {
    format!("{n} row{}", if n == 1 { "" } else { "s" })
}

fn passes(strict: bool) -> &'static [bool] {
    if strict {
        &[false, true]
    } else {
        &[true]
    }
}

/// Reads the events of a Parquet file as [`Store::import_events_parquet`]
/// would, writing nothing and needing no store: the report counts the good
/// rows in `imported` (what an import would write) and lists the bad ones.
pub fn check_events_parquet(
    path: impl AsRef<Path>,
    opts: &ImportOptions,
    progress: &dyn Fn(u64),
) -> Result<ImportReport> {
    let path = path.as_ref();
    import(
        path,
        opts,
        EVENT_COLUMNS,
        &[false],
        progress,
        |batch, first, report, _| {
            let events = events_of(batch, first, path, report)?;
            report.imported += events.len() as u64;
            Ok(())
        },
    )
}

/// Reads the vectors of a Parquet file as [`Store::import_vectors_parquet`]
/// would into a space of `dim` components under `metric`, writing nothing
/// and needing no store (see [`check_events_parquet`]).
pub fn check_vectors_parquet(
    path: impl AsRef<Path>,
    dim: usize,
    metric: Metric,
    opts: &ImportOptions,
    progress: &dyn Fn(u64),
) -> Result<ImportReport> {
    let path = path.as_ref();
    let name = opts.space.as_deref().unwrap_or(crate::options::DEFAULT_SPACE);
    import(
        path,
        opts,
        VECTOR_COLUMNS,
        &[false],
        progress,
        |batch, first, report, _| {
            let vectors = vectors_of(batch, first, path, (name, dim, metric), report)?;
            report.imported += vectors.len() as u64;
            Ok(())
        },
    )
}

impl Store {
    /// Appends the events of a Parquet file (see the module docs for the
    /// columns), a batch at a time; `progress` is called with the rows read
    /// so far. Bad rows are skipped and reported; with `strict`, nothing is
    /// written unless every row is good.
    pub fn import_events_parquet(
        &self,
        path: impl AsRef<Path>,
        opts: &ImportOptions,
        progress: &dyn Fn(u64),
    ) -> Result<ImportReport> {
        let path = path.as_ref();
        import(
            path,
            opts,
            EVENT_COLUMNS,
            passes(opts.strict),
            progress,
            |batch, first, report, write| {
                let events = events_of(batch, first, path, report)?;
                if write {
                    self.append_events(&events)?;
                    report.imported += events.len() as u64;
                }
                Ok(())
            },
        )
    }

    /// Upserts the vectors of a Parquet file (`item_id` and `vector`) into
    /// a host-fed space (`opts.space`, the default space by default). Rows
    /// whose vector the space cannot take (wrong length, non-finite, all
    /// zeros under cosine, null) are bad rows; with `strict`, nothing is
    /// written unless every row is good.
    pub fn import_vectors_parquet(
        &self,
        path: impl AsRef<Path>,
        opts: &ImportOptions,
        progress: &dyn Fn(u64),
    ) -> Result<ImportReport> {
        let path = path.as_ref();
        let name = opts
            .space
            .clone()
            .unwrap_or_else(|| crate::options::DEFAULT_SPACE.to_string());
        let space = self.space(&name)?;
        let shape = (name.as_str(), space.row_dim(), space.metric());
        import(
            path,
            opts,
            VECTOR_COLUMNS,
            passes(opts.strict),
            progress,
            |batch, first, report, write| {
                let vectors = vectors_of(batch, first, path, shape, report)?;
                if write && !vectors.is_empty() {
                    // One batch of the file, one write lock and one wait;
                    // every row was checked above. As with events, an I/O
                    // failure part way (which poisons the store) may leave
                    // part of this batch written beside the rows counted.
                    let ids: Vec<u64> = vectors.iter().map(|(id, _)| *id).collect();
                    let rows: Vec<&[f32]> = vectors.iter().map(|(_, v)| v.as_slice()).collect();
                    space.upsert_batch(&ids, &rows)?;
                    report.imported += ids.len() as u64;
                }
                Ok(())
            },
        )
    }
}
