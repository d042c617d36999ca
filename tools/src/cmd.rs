//! The store-level commands: `ingest`, `train`, `knn`, `snapshot`,
//! `restore`.

use std::path::{Path, PathBuf};

use clap::Args;
use emberdb::{Durability, Event, Hit, Options, Query, Store};

/// A progress bar over `len` steps on a terminal; hidden otherwise (when
/// output goes to a file or a pipe).
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>10} [{bar:40}] {percent:>3}% {elapsed} (eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// Opens the store at `path`, or creates it with `create` (from `--dim`).
fn open_or_create(path: &Path, create: Option<Options>) -> Result<Store, String> {
    match (path.join("meta").is_dir(), create) {
        (true, _) => open_existing(path),
        (false, Some(opts)) => Store::open(path, opts.durability(Durability::Buffered)),
        (false, None) => Err(format!("{} is not a store; pass --dim N to create one", path.display()))?,
    }
    .map_err(|e| e.to_string())
}

/// Opens an existing store for a tool (its dim, metric and kind are read
/// from it).
pub fn open_existing(path: &Path) -> emberdb::Result<Store> {
    Store::open(path, Options::existing().durability(Durability::Buffered))
}

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

#[derive(Args, Debug)]
pub struct TrainArgs {
    store: PathBuf,
    /// Retrain from scratch instead of an incremental round.
    #[arg(long)]
    full: bool,
}

pub fn train(a: TrainArgs) -> Result<(), String> {
    let store = open_existing(&a.store).map_err(|e| e.to_string())?;
    let bar = progress(1_000, "training");
    let r = store
        .train_with_progress(a.full, &|f| bar.set_position((f * 1_000.0) as u64))
        .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    println!(
        "{} round: generation {}, {} new events, {} items ({} new), {} histories (+{} replayed), {} epochs, {} pairs in {:.2} s ({:.2} M pairs/s/thread on {} threads), published in {:.2} s",
        if r.full { "full" } else { "incremental" },
        r.generation,
        r.new_events,
        r.items,
        r.new_items,
        r.fresh_histories,
        r.replayed_histories,
        r.epochs,
        r.run.pairs,
        r.run.seconds,
        r.pairs_per_second_per_thread() / 1e6,
        r.run.threads,
        r.publish_seconds
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct KnnArgs {
    store: PathBuf,
    /// Items similar to this one.
    #[arg(long, group = "target")]
    item: Option<u64>,
    /// Personalised recall for this user.
    #[arg(long, group = "target")]
    user: Option<u64>,
    /// Seed-item recall for this user.
    #[arg(long, group = "target")]
    seeds: Option<u64>,
    /// Neighbours of this vector ("0.1,0.2,...").
    #[arg(long, group = "target", allow_hyphen_values = true)]
    vector: Option<String>,
    #[arg(short, long, default_value_t = 10)]
    k: usize,
    /// One JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn knn(a: KnnArgs) -> Result<(), String> {
    let query = match (a.item, a.user, a.seeds, &a.vector) {
        (Some(id), ..) => Query::item(id),
        (_, Some(id), ..) => Query::user(id),
        (_, _, Some(id), _) => Query::seeds(id),
        (_, _, _, Some(v)) => {
            let values: Result<Vec<f32>, _> = v.split(',').map(|x| x.trim().parse::<f32>()).collect();
            Query::vector(&values.map_err(|_| format!("--vector {v:?}: expected comma-separated numbers"))?)
        }
        _ => return Err("one of --item, --user, --seeds or --vector is needed".into()),
    }
    .k(a.k);
    let store = open_existing(&a.store).map_err(|e| e.to_string())?;
    store.wait_for_indexes();
    let hits = store.knn(&query).map_err(|e| e.to_string())?;
    print_hits(&hits, a.json);
    Ok(())
}

fn print_hits(hits: &[Hit], json: bool) {
    if json {
        let items: Vec<String> = hits
            .iter()
            .map(|h| format!("{{\"id\":{},\"score\":{}}}", h.id, h.score))
            .collect();
        println!("[{}]", items.join(","));
        return;
    }
    println!("{:>4}  {:>12}  {:>10}", "rank", "id", "score");
    for (r, h) in hits.iter().enumerate() {
        println!("{:>4}  {:>12}  {:>10.6}", r + 1, h.id, h.score);
    }
}

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    store: PathBuf,
    /// Where to write the snapshot (must not exist).
    dest: PathBuf,
}

pub fn snapshot(a: SnapshotArgs) -> Result<(), String> {
    let store = open_existing(&a.store).map_err(|e| e.to_string())?;
    let info = store.snapshot(&a.dest).map_err(|e| e.to_string())?;
    println!(
        "snapshot of {} at {}: operations before #{}; {} files hard-linked, {} copied ({} bytes)",
        a.store.display(),
        info.path.display(),
        info.next_seq,
        info.linked,
        info.copied,
        info.copied_bytes
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    snapshot: PathBuf,
    /// The new store's directory (must not exist).
    dest: PathBuf,
}

pub fn restore(a: RestoreArgs) -> Result<(), String> {
    let info = emberdb::restore(&a.snapshot, &a.dest).map_err(|e| e.to_string())?;
    println!(
        "restored {} to {}: {} files hard-linked, {} copied ({} bytes)",
        a.snapshot.display(),
        info.path.display(),
        info.linked,
        info.copied,
        info.copied_bytes
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    store: PathBuf,
}

/// Exit 0 when healthy; otherwise every problem, one per line, and exit 1.
pub fn verify(a: VerifyArgs) -> Result<(), String> {
    // Flat: the background indexer must not rebuild (heal) a damaged index
    // file before it is checked.
    let opts = Options::existing()
        .durability(Durability::Buffered)
        .index(emberdb::IndexSpec::Flat);
    let store = Store::open(&a.store, opts).map_err(|e| format!("cannot open the store: {e}"))?;
    let report = store.verify().map_err(|e| e.to_string())?;
    if report.problems.is_empty() {
        println!(
            "healthy: {} files and {} metadata records checked",
            report.files_checked, report.entries_checked
        );
        return Ok(());
    }
    for p in &report.problems {
        println!("problem: {p}");
    }
    Err(format!("{} problem(s) found", report.problems.len()))
}

#[derive(Args, Debug)]
pub struct CompactArgs {
    store: PathBuf,
    /// Only report what would be reclaimed.
    #[arg(long)]
    dry_run: bool,
}

pub fn compact(a: CompactArgs) -> Result<(), String> {
    let store = open_existing(&a.store).map_err(|e| e.to_string())?;
    let r = store.compact(a.dry_run).map_err(|e| e.to_string())?;
    if r.segments_in == 0 {
        println!("nothing to compact ({} bytes)", r.bytes_before);
        return Ok(());
    }
    println!(
        "{}{} segments ({} rows, {} live) -> {} segments; {} bytes before, {} after",
        if a.dry_run { "would rewrite " } else { "rewrote " },
        r.segments_in,
        r.rows_in,
        r.rows_kept,
        if a.dry_run {
            r.rows_kept.div_ceil(store.options().segment_rows_value())
        } else {
            r.segments_out
        },
        r.bytes_before,
        r.bytes_after
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    store: PathBuf,
    /// Write every item vector here (.fvecs), and the ids, one per line, to
    /// the same path with `.ids` appended.
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Write every item's top-N similar items here (CSV
    /// `item_id,rank,similar_id,score`, or JSON lines with --jsonl).
    #[arg(long)]
    similar: Option<PathBuf>,
    #[arg(long, default_value_t = 20)]
    top: usize,
    #[arg(long)]
    jsonl: bool,
}

pub fn export(a: ExportArgs) -> Result<(), String> {
    use std::io::Write as _;
    if a.vectors.is_none() && a.similar.is_none() {
        return Err("nothing to export: pass --vectors and/or --similar".into());
    }
    let store = open_existing(&a.store).map_err(|e| e.to_string())?;
    store.wait_for_indexes();
    let ids = store.ids().map_err(|e| e.to_string())?;
    let create = |p: &Path| {
        std::fs::File::create(p)
            .map(std::io::BufWriter::new)
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    if let Some(path) = &a.vectors {
        let ids_path = {
            let mut s = path.clone().into_os_string();
            s.push(".ids");
            PathBuf::from(s)
        };
        let (mut out, mut id_out) = (create(path)?, create(&ids_path)?);
        for id in &ids {
            let Some(v) = store.get(*id).map_err(|e| e.to_string())? else {
                continue;
            };
            let io = |e: std::io::Error| format!("{}: {e}", path.display());
            out.write_all(&(v.len() as i32).to_le_bytes()).map_err(io)?;
            for x in &v {
                out.write_all(&x.to_le_bytes()).map_err(io)?;
            }
            writeln!(id_out, "{id}").map_err(|e| format!("{}: {e}", ids_path.display()))?;
        }
        out.flush().map_err(|e| format!("{}: {e}", path.display()))?;
        id_out.flush().map_err(|e| format!("{}: {e}", ids_path.display()))?;
        println!(
            "{} vectors to {} (ids in {})",
            ids.len(),
            path.display(),
            ids_path.display()
        );
    }
    if let Some(path) = &a.similar {
        // Batches of items, searched by every core through the indexes.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut out = create(path)?;
        let bar = progress(ids.len() as u64, "exporting");
        if !a.jsonl {
            writeln!(out, "item_id,rank,similar_id,score").map_err(|e| e.to_string())?;
        }
        for batch in ids.chunks(4_096) {
            let per = batch.len().div_ceil(threads);
            let results: Vec<Result<Vec<(u64, Vec<Hit>)>, String>> = std::thread::scope(|s| {
                let handles: Vec<_> = batch
                    .chunks(per.max(1))
                    .map(|part| {
                        let store = &store;
                        s.spawn(move || {
                            part.iter()
                                .map(|id| {
                                    store
                                        .knn(&Query::item(*id).k(a.top))
                                        .map(|h| (*id, h))
                                        .map_err(|e| e.to_string())
                                })
                                .collect()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err("a search thread failed".into())))
                    .collect()
            });
            bar.inc(batch.len() as u64);
            for part in results {
                for (id, hits) in part? {
                    if a.jsonl {
                        let list: Vec<String> = hits
                            .iter()
                            .map(|h| format!("{{\"id\":{},\"score\":{}}}", h.id, h.score))
                            .collect();
                        writeln!(out, "{{\"item_id\":{id},\"similar\":[{}]}}", list.join(","))
                    } else {
                        hits.iter()
                            .enumerate()
                            .try_for_each(|(r, h)| writeln!(out, "{id},{},{},{}", r + 1, h.id, h.score))
                    }
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                }
            }
        }
        out.flush().map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "top {} similar items of {} items to {}",
            a.top,
            ids.len(),
            path.display()
        );
    }
    Ok(())
}
