//! How `ember` writes query results: a table for people, JSON (through
//! serde_json) for programs. `knn --json` and `export --jsonl` share the
//! one JSON form of a hit.

use std::io::Write;

use std::collections::BTreeMap;

use emberdb::{Hit, Store, TITLE_KEY};
use serde::Serialize;

/// A hit as JSON: `{"id":7,"score":0.93}`, with `"attributes"` (key ->
/// values) when the item has any and the store was given.
#[derive(Serialize)]
pub struct JsonHit {
    pub id: u64,
    pub score: f32,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// The JSON form of each hit, in order, with its item's attributes from
/// `store` if given.
pub fn json(hits: &[Hit], store: Option<&Store>) -> Vec<JsonHit> {
    hits.iter()
        .map(|h| {
            let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (k, v) in store.map(|s| s.attributes(h.id)).unwrap_or_default() {
                attributes.entry(k).or_default().push(v);
            }
            JsonHit {
                id: h.id,
                score: h.score,
                attributes,
            }
        })
        .collect()
}

/// One JSON array on one line, or a table of rank, id and score, with a
/// title column when an item has a title.
pub fn print(out: &mut impl Write, hits: &[Hit], as_json: bool, store: &Store) -> anyhow::Result<()> {
    if as_json {
        // Formatted first, so that a write error stays an io::Error (main
        // tells a closed pipe by it).
        writeln!(out, "{}", serde_json::to_string(&json(hits, Some(store)))?)?;
        return Ok(());
    }
    let titles: Vec<Option<String>> = hits.iter().map(|h| store.title(h.id)).collect();
    let titled = titles.iter().any(Option::is_some);
    if titled {
        writeln!(out, "{:>4}  {:>12}  {:>10}  {TITLE_KEY}", "rank", "id", "score")?;
    } else {
        writeln!(out, "{:>4}  {:>12}  {:>10}", "rank", "id", "score")?;
    }
    for (r, (h, title)) in hits.iter().zip(&titles).enumerate() {
        match title {
            Some(t) => writeln!(out, "{:>4}  {:>12}  {:>10.6}  {t}", r + 1, h.id, h.score)?,
            None if titled => writeln!(out, "{:>4}  {:>12}  {:>10.6}  -", r + 1, h.id, h.score)?,
            None => writeln!(out, "{:>4}  {:>12}  {:>10.6}", r + 1, h.id, h.score)?,
        }
    }
    Ok(())
}
