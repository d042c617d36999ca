//! Shared by the store commands (opening stores, progress bars), and the
//! query commands: `train` and `knn`.

use std::path::{Path, PathBuf};

use clap::Args;
use emberdb::{Durability, Hit, Options, Query, RoundKind, Store};

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
pub fn open_or_create(path: &Path, create: Option<Options>) -> Result<Store, String> {
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
        .train_with_progress(
            if a.full {
                RoundKind::Full
            } else {
                RoundKind::Incremental
            },
            &|f| bar.set_position((f * 1_000.0) as u64),
        )
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
