//! CSV or TSV files with a header whose first column is an id and every
//! other column a key named by its header: user features (`users.rs`) and
//! item attributes (`items.rs`). Each reader says how one cell becomes
//! (key, value) pairs.

use std::path::Path;

use anyhow::{bail, Context as _};

use crate::input::delimited::Delimited;
use crate::input::{parse_id, BadLines};

/// Each row's line number, id and (key, value) pairs, in file order.
pub type Keyed = Vec<(u64, u64, Vec<(String, String)>)>;

/// The rows of `path` and its bad lines. `columns` describes the expected
/// header in the error for a file without one; `cell(key, value, out)`
/// turns each non-empty cell (the key lowercased) into pairs.
pub fn read(
    path: &Path,
    id_name: &str,
    columns: &str,
    cell: impl Fn(&str, &str, &mut Vec<(String, String)>),
) -> anyhow::Result<(Keyed, BadLines)> {
    let mut file = Delimited::open(path)?;
    let (mut rows, mut bad) = (Vec::new(), BadLines::default());
    let mut header: Option<Vec<String>> = None;
    while let Some((n, fields)) = file.next_line().with_context(|| path.display().to_string())? {
        let fields = match fields {
            Ok(fields) => fields,
            Err(reason) => {
                bad.push((n, reason));
                continue;
            }
        };
        let Some(names) = &header else {
            let names: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
            if names.len() < 2 || names[1..].iter().any(|n| n.is_empty()) {
                bail!("{}: the first line must name the columns ({columns})", path.display());
            }
            header = Some(names);
            continue;
        };
        let mut cells = fields.iter();
        let id = match cells.next().map(|f| parse_id(f, id_name)) {
            Some(Ok(id)) => id,
            Some(Err(reason)) => {
                bad.push((n, reason));
                continue;
            }
            None => continue,
        };
        let mut pairs = Vec::new();
        for (key, value) in names[1..].iter().zip(cells).filter(|(_, v)| !v.is_empty()) {
            cell(key, value, &mut pairs);
        }
        rows.push((n, id, pairs));
    }
    Ok((rows, bad))
}
