//! Item vectors for `ember ingest --vectors`: from `.fvecs` (ids in
//! FILE.ids, or the row numbers) or from CSV / TSV `id,v1,v2,...`.

use std::path::Path;

use anyhow::{bail, Context as _};

use crate::input::delimited::Delimited;
use crate::input::events::column_name;
use crate::input::fvecs;
use crate::input::{count, report_header, shown, BadLines};

/// A vector read from a file: where it was (its line, or its vector
/// number in `.fvecs`), its id and its components.
pub struct Row {
    pub at: u64,
    pub id: u64,
    pub v: Vec<f32>,
}

/// The vectors read from a file and its bad entries.
pub type ParsedVectors = (Vec<Row>, BadLines);

/// The names of the id column that mark a vectors CSV's first line as a
/// header.
const ID_COLUMNS: &[&str] = &["id", "item", "itemid", "movie", "movieid"];

/// Whether the first line of a vectors CSV is a header: every field is a
/// column name ([`column_name`]) and the first names the id column: id,
/// item/item_id/itemId or movie/movie_id/movieId (`id,v1,v2,...`). So
/// `abc,1,0` or `x,y,z` are data lines (bad ones).
fn is_header(fields: &csv::StringRecord) -> bool {
    let names: Option<Vec<String>> = fields.iter().map(column_name).collect();
    names.is_some_and(|names| names.first().is_some_and(|n| ID_COLUMNS.contains(&n.as_str())))
}

/// Whether the file is read as `.fvecs` (by its extension).
pub fn is_fvecs(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "fvecs")
}

/// The vectors of an `.fvecs` file and its bad entries (vector number,
/// reason; only a cut-off last record can be bad). With FILE.ids, it must
/// hold exactly one id per record (a cut-off last one included); without
/// it, the ids are the row numbers.
fn read_fvecs(path: &Path) -> anyhow::Result<ParsedVectors> {
    let (rows, cut) = fvecs::read_rows(path)?;
    let ids_path = fvecs::ids_path(path);
    let ids = fvecs::read_ids(&ids_path)?;
    let records = rows.len() + usize::from(cut.is_some());
    let bad: BadLines = cut
        .map(|reason| (records as u64, reason))
        .into_iter()
        .collect::<Vec<_>>()
        .into();
    let out = match ids {
        None => rows
            .into_iter()
            .enumerate()
            .map(|(n, v)| Row {
                at: n as u64 + 1,
                id: n as u64,
                v,
            })
            .collect(),
        Some(ids) if ids.len() != records => bail!(
            "{}: {} for the {} of {}",
            ids_path.display(),
            count(ids.len() as u64, "id", "ids"),
            count(records as u64, "vector", "vectors"),
            path.display()
        ),
        Some(ids) => ids
            .into_iter()
            .zip(rows)
            .enumerate()
            .map(|(n, (id, v))| Row {
                at: n as u64 + 1,
                id,
                v,
            })
            .collect(),
    };
    Ok((out, bad))
}

/// One CSV line's vector.
fn parse(fields: &csv::StringRecord) -> Result<(u64, Vec<f32>), String> {
    let first = fields.get(0).unwrap_or_default();
    let id = first
        .parse::<u64>()
        .map_err(|_| format!("id {} is not a non-negative integer", shown(first)))?;
    let v = fields
        .iter()
        .skip(1)
        .map(|x| {
            x.parse::<f32>()
                .map_err(|_| format!("component {} is not a number", shown(x)))
        })
        .collect::<Result<Vec<f32>, String>>()?;
    if v.is_empty() {
        return Err("no components".into());
    }
    Ok((id, v))
}

/// Vectors from `.fvecs` (ids: FILE.ids, one per line, or the row numbers)
/// or CSV `id,v1,...` (a first line of column names, see [`is_header`], is
/// a header); with bad entries (line or vector number, reason).
pub fn read(path: &Path) -> anyhow::Result<ParsedVectors> {
    if is_fvecs(path) {
        return read_fvecs(path);
    }
    let mut file = Delimited::open(path)?;
    let (mut out, mut bad) = (Vec::new(), BadLines::default());
    let mut first = true;
    while let Some((n, fields)) = file.next_line().with_context(|| path.display().to_string())? {
        let header = std::mem::take(&mut first) && fields.as_ref().is_ok_and(|f| is_header(f));
        match fields.and_then(parse) {
            _ if header => report_header(path, n),
            Ok((id, v)) => out.push(Row { at: n, id, v }),
            Err(reason) => bad.push((n, reason)),
        }
    }
    Ok((out, bad))
}
