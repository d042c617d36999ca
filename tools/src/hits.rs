//! How `ember` writes query results: a table for people, JSON (through
//! serde_json) for programs. `knn --json` and `export --jsonl` share the
//! one JSON form of a hit.

use std::io::Write;

use emberdb::Hit;
use serde::Serialize;

/// A hit as JSON: `{"id":7,"score":0.93}`.
#[derive(Serialize)]
pub struct JsonHit {
    pub id: u64,
    pub score: f32,
}

/// The JSON form of each hit, in order.
pub fn json(hits: &[Hit]) -> Vec<JsonHit> {
    hits.iter()
        .map(|h| JsonHit {
            id: h.id,
            score: h.score,
        })
        .collect()
}

/// One JSON array on one line, or a table of rank, id and score.
pub fn print(out: &mut impl Write, hits: &[Hit], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        // Formatted first, so that a write error stays an io::Error (main
        // tells a closed pipe by it).
        writeln!(out, "{}", serde_json::to_string(&json(hits))?)?;
        return Ok(());
    }
    writeln!(out, "{:>4}  {:>12}  {:>10}", "rank", "id", "score")?;
    for (r, h) in hits.iter().enumerate() {
        writeln!(out, "{:>4}  {:>12}  {:>10.6}", r + 1, h.id, h.score)?;
    }
    Ok(())
}
