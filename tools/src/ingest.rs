//! `ember ingest`: events from CSV or JSON lines, vectors from `.fvecs`
//! or CSV; bad lines reported with their numbers, `--strict` writing
//! nothing unless every line is good.

use std::path::{Path, PathBuf};

use clap::Args;
use emberdb::{Event, Options};

use crate::cmd::{open_or_create, progress};

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// The store directory.
    store: PathBuf,
    /// Events as CSV (`user_id,item_id,timestamp[,weight]`, or MovieLens's
    /// `user_id,item_id,rating,timestamp`; a header line is detected) or
    /// JSON lines (`.jsonl`/`.json`: `{"user_id":1,"item_id":2,"timestamp":3}`,
    /// optional `"weight"`). With --vectors: `.fvecs` (ids are the row
    /// numbers, or one per line in FILE.ids) or CSV `id,v1,v2,...`.
    file: PathBuf,
    /// The file holds item vectors (for a host-fed store), not events.
    #[arg(long)]
    vectors: bool,
    /// Stop at the first bad line and ingest nothing.
    #[arg(long)]
    strict: bool,
    /// Create a store of this dimension if there is none (trained for
    /// events, host-fed for --vectors).
    #[arg(long)]
    dim: Option<usize>,
}

/// A JSON lines event: the fields we read from a flat object of numbers.
fn parse_json_event(line: &str) -> Result<Event, String> {
    let body = line
        .trim()
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .ok_or("not a JSON object")?;
    let mut fields = std::collections::HashMap::new();
    for pair in body.split(',') {
        let (k, v) = pair
            .split_once(':')
            .ok_or_else(|| format!("{pair:?} is not \"key\": value"))?;
        fields.insert(
            k.trim().trim_matches('"').to_string(),
            v.trim().trim_matches('"').to_string(),
        );
    }
    let int = |k: &str| -> Result<u64, String> {
        fields
            .get(k)
            .ok_or_else(|| format!("missing \"{k}\""))?
            .parse::<u64>()
            .map_err(|_| format!("\"{k}\" is not a non-negative integer"))
    };
    let (user, item) = (int("user_id")?, int("item_id")?);
    let ts = if fields.contains_key("ts") {
        int("ts")?
    } else {
        int("timestamp")?
    };
    let mut event = Event::new(user, item, ts);
    if let Some(w) = fields.get("weight") {
        let weight: f32 = w.parse().map_err(|_| format!("weight {w:?} is not a number"))?;
        if !weight.is_finite() {
            return Err(format!("weight {w:?} is not finite"));
        }
        event = event.with_weight(weight);
    }
    Ok(event)
}

/// Vectors from `.fvecs` (ids: FILE.ids, one per line, or the row numbers)
/// or CSV `id,v1,...`; with bad entries (line or vector number, reason).
fn parse_vectors(path: &Path) -> Result<(Vec<(u64, Vec<f32>)>, Vec<(usize, String)>), String> {
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    if path.extension().is_some_and(|e| e == "fvecs") {
        let bytes = std::fs::read(path).map_err(io)?;
        let ids_path = PathBuf::from(format!("{}.ids", path.display()));
        let ids: Option<Vec<u64>> = match std::fs::read_to_string(&ids_path) {
            Ok(t) => Some(
                t.lines()
                    .enumerate()
                    .map(|(n, l)| {
                        l.trim()
                            .parse()
                            .map_err(|_| format!("{}: line {}: bad id", ids_path.display(), n + 1))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Err(_) => None,
        };
        let mut at = 0;
        while at < bytes.len() {
            let n = out.len() + bad.len();
            let Some(d) = bytes
                .get(at..at + 4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            else {
                bad.push((n + 1, "truncated dimension".into()));
                break;
            };
            let len = usize::try_from(d).unwrap_or(0);
            let Some(body) = bytes.get(at + 4..at + 4 + 4 * len).filter(|_| len > 0) else {
                bad.push((n + 1, format!("dimension {d} does not fit the file")));
                break;
            };
            let v: Vec<f32> = body
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let id = match &ids {
                Some(ids) => *ids
                    .get(n)
                    .ok_or_else(|| format!("{}: fewer ids than vectors", ids_path.display()))?,
                None => n as u64,
            };
            out.push((id, v));
            at += 4 + 4 * len;
        }
        return Ok((out, bad));
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut f = line.split(',').map(str::trim);
        let first = f.next().unwrap_or_default();
        let Ok(id) = first.parse::<u64>() else {
            if n == 0 {
                continue; // a header
            }
            bad.push((n + 1, format!("id {first:?} is not a non-negative integer")));
            continue;
        };
        match f.map(|x| x.parse::<f32>()).collect::<Result<Vec<f32>, _>>() {
            Ok(v) if !v.is_empty() => out.push((id, v)),
            _ => bad.push((n + 1, "components must be numbers".into())),
        }
    }
    Ok((out, bad))
}

fn report_bad(path: &Path, bad: &[(usize, String)], what: &str) {
    for (n, reason) in bad.iter().take(20) {
        eprintln!("{}: {what} {n}: {reason}", path.display());
    }
    if bad.len() > 20 {
        eprintln!("{}: {} more bad entries", path.display(), bad.len() - 20);
    }
}

fn ingest_vectors(a: &IngestArgs) -> Result<(), String> {
    let (vectors, bad) = parse_vectors(&a.file)?;
    let what = if a.file.extension().is_some_and(|e| e == "fvecs") {
        "vector"
    } else {
        "line"
    };
    report_bad(&a.file, &bad, what);
    if a.strict && !bad.is_empty() {
        return Err(format!("{} bad entr(ies); nothing ingested (--strict)", bad.len()));
    }
    let store = open_or_create(&a.store, a.dim.map(Options::new))?;
    if a.strict {
        // Check every vector before writing any, so nothing is half-ingested.
        let dim = store.options().dim();
        if let Some((i, (id, v))) = vectors
            .iter()
            .enumerate()
            .find(|(_, (_, v))| v.len() != dim || v.iter().any(|x| !x.is_finite()))
        {
            return Err(format!(
                "{}: {what} {}: item {id} has {} components (the store's dimension is {dim}) or a non-finite one; nothing ingested (--strict)",
                a.file.display(),
                i + 1,
                v.len()
            ));
        }
    }
    let mut refused = 0;
    for (id, v) in &vectors {
        match store.upsert(*id, v) {
            Ok(()) => {}
            Err(
                e @ (emberdb::Error::DimensionMismatch { .. }
                | emberdb::Error::NonFiniteVector { .. }
                | emberdb::Error::ZeroVector { .. }),
            ) => {
                eprintln!("{}: item {id}: {e}", a.file.display());
                refused += 1;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    store.flush().map_err(|e| e.to_string())?;
    println!(
        "ingested {} vectors ({} bad entries skipped, {} refused)",
        vectors.len() - refused,
        bad.len(),
        refused
    );
    Ok(())
}

/// Parses the events file: the events and the bad lines (number, reason).
fn parse_events(text: &str) -> (Vec<Event>, Vec<(usize, String)>) {
    let mut lines = text.lines().enumerate().peekable();
    let mut movielens = false;
    if let Some((_, first)) = lines.peek() {
        let fields: Vec<&str> = first.split(',').map(str::trim).collect();
        if fields.iter().any(|f| f.parse::<f64>().is_err()) {
            movielens = fields.get(2).is_some_and(|f| f.eq_ignore_ascii_case("rating"));
            lines.next();
        }
    }
    let (mut events, mut bad) = (Vec::new(), Vec::new());
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed = (|| -> Result<Event, String> {
            let int = |i: usize, what: &str| -> Result<u64, String> {
                f.get(i)
                    .ok_or_else(|| format!("missing {what}"))?
                    .parse::<u64>()
                    .map_err(|_| format!("{what} {:?} is not a non-negative integer", f[i]))
            };
            if f.len() < 3 || f.len() > 4 {
                return Err(format!("expected 3 or 4 fields, found {}", f.len()));
            }
            let (user, item) = (int(0, "user_id")?, int(1, "item_id")?);
            if movielens {
                return Ok(Event::new(user, item, int(3, "timestamp")?));
            }
            let mut event = Event::new(user, item, int(2, "timestamp")?);
            if let Some(w) = f.get(3) {
                let weight: f32 = w.parse().map_err(|_| format!("weight {w:?} is not a number"))?;
                if !weight.is_finite() {
                    return Err(format!("weight {w:?} is not finite"));
                }
                event = event.with_weight(weight);
            }
            Ok(event)
        })();
        match parsed {
            Ok(e) => events.push(e),
            Err(reason) => bad.push((n + 1, reason)),
        }
    }
    (events, bad)
}

pub fn ingest(a: IngestArgs) -> Result<(), String> {
    if a.vectors {
        return ingest_vectors(&a);
    }
    let text = std::fs::read_to_string(&a.file).map_err(|e| format!("{}: {e}", a.file.display()))?;
    let json = a.file.extension().is_some_and(|e| e == "jsonl" || e == "json");
    let (events, bad) = if json {
        let (mut events, mut bad) = (Vec::new(), Vec::new());
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            match parse_json_event(line) {
                Ok(e) => events.push(e),
                Err(reason) => bad.push((n + 1, reason)),
            }
        }
        (events, bad)
    } else {
        parse_events(&text)
    };
    report_bad(&a.file, &bad, "line");
    if a.strict && !bad.is_empty() {
        return Err(format!("{} bad line(s); nothing ingested (--strict)", bad.len()));
    }
    let store = open_or_create(&a.store, a.dim.map(Options::trained))?;
    let bar = progress(events.len() as u64, "ingesting");
    for chunk in events.chunks(10_000) {
        store.append_events(chunk).map_err(|e| e.to_string())?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    store.flush().map_err(|e| e.to_string())?;
    println!("ingested {} events ({} bad lines skipped)", events.len(), bad.len());
    Ok(())
}
