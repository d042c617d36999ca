//! Item titles and attributes from a CSV or TSV file with a header: the
//! first column is the item id, every other column an attribute named by
//! its header (`ember ingest --items`). A column named `genres` holds
//! `|`-joined values and becomes one `genre` pair per value, so
//! MovieLens's `items.csv` (`item_id,title,year,genres`) is read as it is.

use std::path::Path;

/// Each item's (key, value) pairs.
pub type Items = crate::input::keyed::Keyed;

/// The items' attributes and the bad lines.
pub fn read(path: &Path) -> anyhow::Result<(Items, crate::input::BadLines)> {
    crate::input::keyed::read(
        path,
        "item id",
        "item id, then one attribute per column, e.g. item_id,title,year,genres",
        |key, value, out| {
            if key == "genres" {
                for genre in value.split('|').map(str::trim).filter(|g| !g.is_empty()) {
                    out.push(("genre".to_string(), genre.to_string()));
                }
            } else {
                out.push((key.to_string(), value.to_string()));
            }
        },
    )
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
        let items: Vec<_> = items.into_iter().map(|(_, id, p)| (id, p)).collect();
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
        assert_eq!(bad.first()[0].0, 4);
    }
}
