//! Item titles and attributes from a CSV or TSV file with a header: the
//! first column is the item id, every other column an attribute named by
//! its header (`ember ingest --items`). A column named `genres` holds
//! `|`-joined values and becomes one `genre` pair per value, so
//! MovieLens's `items.csv` (`item_id,title,year,genres`) is read as it is.

use std::path::Path;

use anyhow::{bail, Context as _};

use crate::delimited::Delimited;
use crate::input::{parse_id, Bad};

/// Each item's (key, value) pairs, and the bad lines.
pub type Items = Vec<(u64, Vec<(String, String)>)>;

pub fn read(path: &Path) -> anyhow::Result<(Items, Vec<Bad>)> {
    let mut file = Delimited::open(path)?;
    let (mut items, mut bad) = (Vec::new(), Vec::new());
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
                bail!(
                    "{}: the first line must name the columns (item id, then one attribute per column, e.g. item_id,title,year,genres)",
                    path.display()
                );
            }
            header = Some(names);
            continue;
        };
        let mut cells = fields.iter();
        let item = match cells.next().map(|f| parse_id(f, "item id")) {
            Some(Ok(item)) => item,
            Some(Err(reason)) => {
                bad.push((n, reason));
                continue;
            }
            None => continue,
        };
        let mut attributes = Vec::new();
        for (key, value) in names[1..].iter().zip(cells) {
            if value.is_empty() {
                continue;
            }
            if key == "genres" {
                for genre in value.split('|').map(str::trim).filter(|g| !g.is_empty()) {
                    attributes.push(("genre".to_string(), genre.to_string()));
                }
            } else {
                attributes.push((key.clone(), value.to_string()));
            }
        }
        items.push((item, attributes));
    }
    Ok((items, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn movielens_items_read_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.csv");
        std::fs::write(
            &path,
            "item_id,title,year,genres\n1,Toy Story,1995,Animation|Children's|Comedy\n2,\"Heat, The\",,Action\nx,Bad,1,A\n",
        )
        .unwrap();
        let (items, bad) = read(&path).unwrap();
        let pairs = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            items,
            vec![
                (
                    1,
                    pairs(&[
                        ("title", "Toy Story"),
                        ("year", "1995"),
                        ("genre", "Animation"),
                        ("genre", "Children's"),
                        ("genre", "Comedy")
                    ])
                ),
                (2, pairs(&[("title", "Heat, The"), ("genre", "Action")])),
            ]
        );
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 4);
    }
}
