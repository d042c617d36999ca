//! `ember ingest`: events from CSV or JSON lines, vectors from `.fvecs`
//! or CSV; bad lines reported with their numbers, `--strict` writing
//! nothing unless every line is good.

use std::path::{Path, PathBuf};

use clap::Args;
use emberdb::{Event, Options, Store};

use crate::cmd::{open_or_create, progress};

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// The store directory.
    store: PathBuf,
    /// Events as CSV (`user_id,item_id,timestamp[,weight]`, or MovieLens's
    /// `user_id,item_id,rating,timestamp`; a first line of column names is
    /// a header) or JSON lines (`.jsonl`/`.json`:
    /// `{"user_id":1,"item_id":2,"timestamp":3}`, optional `"weight"`).
    /// With --vectors: `.fvecs` (ids are the row numbers, or one per line in
    /// FILE.ids) or CSV `id,v1,v2,...`. A leading UTF-8 BOM is ignored.
    file: PathBuf,
    /// The file holds item vectors (for a host-fed store), not events.
    #[arg(long)]
    vectors: bool,
    /// Ingest nothing unless every line is good; the bad lines are listed
    /// (the first 20, then a count).
    #[arg(long)]
    strict: bool,
    /// Create a store of this dimension if there is none (trained for
    /// events, host-fed for --vectors); an existing store must have it.
    #[arg(long)]
    dim: Option<usize>,
}

/// A bad line or vector: its number (from 1) and the reason.
type Bad = (usize, String);

/// The vectors read from a file (id, components) and its bad entries.
type ParsedVectors = (Vec<(u64, Vec<f32>)>, Vec<Bad>);

/// How an error message shows a piece of the input (a field, a line, a
/// pair): quoted, and when longer than 80 characters cut to its first 80
/// (on a char boundary) with an ellipsis and the original length in bytes,
/// `"aaaa…" (10485760 bytes)`, so that one huge field cannot flood stderr.
fn shown(input: &str) -> String {
    const MAX_CHARS: usize = 80;
    match input.char_indices().nth(MAX_CHARS) {
        None => format!("{input:?}"),
        Some((cut, _)) => format!("{:?} ({} bytes)", format!("{}…", &input[..cut]), input.len()),
    }
}

/// The text without a leading UTF-8 byte order mark.
fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// A column name in a header: a field (trimmed, optionally in double
/// quotes) that is an ASCII letter or `_` followed by ASCII letters,
/// digits, `_`, `-` or `.`; returned lowercased without `_` and `-`
/// (`userId`, `user_id` and `USER-ID` are all `userid`). Never a number.
fn column_name(field: &str) -> Option<String> {
    let f = field.trim();
    let f = f.strip_prefix('"').and_then(|f| f.strip_suffix('"')).unwrap_or(f);
    let mut chars = f.chars();
    let first = chars.next()?;
    let identifier = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    identifier.then(|| {
        f.chars()
            .filter(|c| !matches!(c, '_' | '-'))
            .collect::<String>()
            .to_ascii_lowercase()
    })
}

/// The column names of an events CSV that mark its first line as a header
/// (compared as [`column_name`] gives them).
const EVENT_COLUMNS: &[&str] = &[
    "user",
    "userid",
    "item",
    "itemid",
    "movie",
    "movieid",
    "timestamp",
    "ts",
    "time",
    "rating",
    "weight",
];

/// The names of the id column that mark a vectors CSV's first line as a
/// header.
const ID_COLUMNS: &[&str] = &["id", "item", "itemid", "movie", "movieid"];

/// Whether the first line of an events CSV is a header: a header by its
/// names, not because a field fails to parse. Every field must be a column
/// name ([`column_name`]: identifier-like, never a number), and at least one
/// must name a known column: user_id/user/userId, item_id/item/itemId,
/// movie_id/movieId, timestamp/ts/time, rating or weight (case, `_` and `-`
/// ignored). So `user_id,item_id,timestamp` and `userId,movieId,rating,timestamp`
/// are headers; `1,abc,3` and `abc,def,ghi` are data lines (bad ones).
fn is_events_header(line: &str) -> bool {
    let names: Option<Vec<String>> = line.split(',').map(column_name).collect();
    names.is_some_and(|names| names.iter().any(|n| EVENT_COLUMNS.contains(&n.as_str())))
}

/// Whether the first line of a vectors CSV is a header: every field is a
/// column name ([`column_name`]) and the first names the id column: id,
/// item/item_id/itemId or movie/movie_id/movieId (`id,v1,v2,...`). So
/// `abc,1,0` or `x,y,z` are data lines (bad ones).
fn is_vectors_header(line: &str) -> bool {
    let names: Option<Vec<String>> = line.split(',').map(column_name).collect();
    names.is_some_and(|names| names.first().is_some_and(|n| ID_COLUMNS.contains(&n.as_str())))
}

/// An event's weight: a finite number.
fn parse_weight(w: &str) -> Result<f32, String> {
    let weight: f32 = w.parse().map_err(|_| format!("weight {} is not a number", shown(w)))?;
    if !weight.is_finite() {
        return Err(format!("weight {} is not finite", shown(w)));
    }
    Ok(weight)
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
            .ok_or_else(|| format!("{} is not \"key\": value", shown(pair)))?;
        fields.insert(
            k.trim().trim_matches('"').to_string(),
            v.trim().trim_matches('"').to_string(),
        );
    }
    let int = |k: &str| -> Result<u64, String> {
        let v = fields.get(k).ok_or_else(|| format!("missing \"{k}\""))?;
        v.parse::<u64>()
            .map_err(|_| format!("\"{k}\" {} is not a non-negative integer", shown(v)))
    };
    let (user, item) = (int("user_id")?, int("item_id")?);
    let ts = if fields.contains_key("ts") {
        int("ts")?
    } else {
        int("timestamp")?
    };
    let mut event = Event::new(user, item, ts);
    if let Some(w) = fields.get("weight") {
        event = event.with_weight(parse_weight(w)?);
    }
    Ok(event)
}

/// FILE.ids next to FILE (`x.fvecs` -> `x.fvecs.ids`), kept as an OS string
/// so a non-UTF-8 path is not mangled.
fn ids_path_of(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".ids");
    PathBuf::from(p)
}

/// The ids in FILE.ids, one per line; `None` only when there is no such
/// file (the ids are then the row numbers). A FILE.ids that exists but
/// cannot be read or is not UTF-8, or holds a line that is not an id, is an
/// error: never a silent fall back to row numbers.
fn read_ids(ids_path: &Path) -> Result<Option<Vec<u64>>, String> {
    let text = match std::fs::read_to_string(ids_path) {
        Ok(text) => text,
        // A dangling symlink is NotFound too, but it is there: an error.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && ids_path.symlink_metadata().is_err() => {
            return Ok(None);
        }
        Err(e) => return Err(format!("{}: {e}; nothing ingested", ids_path.display())),
    };
    strip_bom(&text)
        .lines()
        .enumerate()
        .map(|(n, l)| {
            let l = l.trim();
            l.parse().map_err(|_| {
                format!(
                    "{}: line {}: id {} is not a non-negative integer; nothing ingested",
                    ids_path.display(),
                    n + 1,
                    shown(l)
                )
            })
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// The vectors of an `.fvecs` file and its bad entries (vector number,
/// reason; only a cut-off last record can be bad). With FILE.ids, it must
/// hold exactly one id per record (a cut-off last one included); without
/// it, the ids are the row numbers.
fn parse_fvecs(path: &Path) -> Result<ParsedVectors, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let ids_path = ids_path_of(path);
    let ids = read_ids(&ids_path)?;
    let (mut rows, mut bad) = (Vec::new(), Vec::new());
    let mut at = 0;
    while at < bytes.len() {
        let n = rows.len();
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
        rows.push(
            body.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<f32>>(),
        );
        at += 4 + 4 * len;
    }
    let out = match ids {
        None => rows.into_iter().enumerate().map(|(n, v)| (n as u64, v)).collect(),
        Some(ids) => {
            let records = rows.len() + bad.len();
            if ids.len() != records {
                return Err(format!(
                    "{}: {} ids for the {records} vectors of {}; nothing ingested",
                    ids_path.display(),
                    ids.len(),
                    path.display()
                ));
            }
            ids.into_iter().zip(rows).collect()
        }
    };
    Ok((out, bad))
}

/// Vectors from `.fvecs` (ids: FILE.ids, one per line, or the row numbers)
/// or CSV `id,v1,...` (a first line of column names, see
/// [`is_vectors_header`], is a header); with bad entries (line or vector
/// number, reason).
fn parse_vectors(path: &Path) -> Result<ParsedVectors, String> {
    if path.extension().is_some_and(|e| e == "fvecs") {
        return parse_fvecs(path);
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    for (n, line) in strip_bom(&text).lines().enumerate() {
        if line.trim().is_empty() || (n == 0 && is_vectors_header(line)) {
            continue;
        }
        let mut f = line.split(',').map(str::trim);
        let first = f.next().unwrap_or_default();
        let Ok(id) = first.parse::<u64>() else {
            bad.push((n + 1, format!("id {} is not a non-negative integer", shown(first))));
            continue;
        };
        let mut v = Vec::new();
        let mut reason = None;
        for x in f {
            match x.parse::<f32>() {
                Ok(x) => v.push(x),
                Err(_) => {
                    reason = Some(format!("component {} is not a number", shown(x)));
                    break;
                }
            }
        }
        match reason {
            Some(reason) => bad.push((n + 1, reason)),
            None if v.is_empty() => bad.push((n + 1, "no components".into())),
            None => out.push((id, v)),
        }
    }
    Ok((out, bad))
}

fn report_bad(path: &Path, bad: &[Bad], what: &str) {
    for (n, reason) in bad.iter().take(20) {
        eprintln!("{}: {what} {n}: {reason}", path.display());
    }
    if bad.len() > 20 {
        eprintln!("{}: {} more bad entries", path.display(), bad.len() - 20);
    }
}

/// Opens the store at `a.store`, or creates it with `create(dim)` when
/// --dim is given. A --dim that differs from an existing store's dimension
/// is an error, found before anything is written.
fn open_store(a: &IngestArgs, create: fn(usize) -> Options) -> Result<Store, String> {
    let store = open_or_create(&a.store, a.dim.map(create))?;
    let dim = store.options().dim();
    match a.dim {
        Some(asked) if asked != dim => Err(format!(
            "--dim {asked} differs from the dimension {dim} of the store at {}; nothing ingested",
            a.store.display()
        )),
        _ => Ok(store),
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
    let store = open_store(a, Options::new)?;
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

/// Parses the events CSV: the events and the bad lines (number, reason).
/// The first line is skipped as a header only when [`is_events_header`]
/// says so; otherwise it is data like any other line.
fn parse_events(text: &str) -> (Vec<Event>, Vec<Bad>) {
    let mut lines = text.lines().enumerate().peekable();
    let mut movielens = false;
    if let Some((_, first)) = lines.next_if(|(_, first)| is_events_header(first)) {
        movielens = first
            .split(',')
            .nth(2)
            .and_then(column_name)
            .is_some_and(|f| f == "rating");
    }
    let (mut events, mut bad) = (Vec::new(), Vec::new());
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed = (|| -> Result<Event, String> {
            let int = |i: usize, what: &str| -> Result<u64, String> {
                let v = f.get(i).ok_or_else(|| format!("missing {what}"))?;
                v.parse::<u64>()
                    .map_err(|_| format!("{what} {} is not a non-negative integer", shown(v)))
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
                event = event.with_weight(parse_weight(w)?);
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
    let text = strip_bom(&text);
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
        parse_events(text)
    };
    report_bad(&a.file, &bad, "line");
    if a.strict && !bad.is_empty() {
        return Err(format!("{} bad line(s); nothing ingested (--strict)", bad.len()));
    }
    let store = open_store(&a, Options::trained)?;
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
