//! Shared by the store commands (opening stores, progress bars), and the
//! query commands: `train` and `knn`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;
use emberdb::{
    Durability, Filter, Options, Query, RoundKind, RoundOverrides, Store, TrainReport, TrainRequest, DEFAULT_SPACE,
};

use crate::input::{count, shown};
use crate::output::hits;

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
pub fn open_or_create(path: &Path, create: Option<Options>) -> anyhow::Result<Store> {
    Ok(match (path.join("meta").is_dir(), create) {
        (true, _) => open_existing(path)?,
        (false, Some(opts)) => Store::open(path, opts.durability(Durability::Buffered))?,
        (false, None) => bail!("{} is not a store; pass --dim N to create one", path.display()),
    })
}

/// Opens an existing store to read it only (`knn`, `get`, `history`,
/// `stats`, `verify`, `export`): nothing in it is written, and any number
/// of these run at once. A store held by a writing process is refused.
pub fn open_read_only(path: &Path) -> emberdb::Result<Store> {
    Store::open_read_only(path)
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
    /// Train only this space (every trained space by default).
    #[arg(long)]
    space: Option<String>,
    /// For this round only (the store keeps the options it was created or
    /// last opened with): passes over the data.
    #[arg(long)]
    epochs: Option<usize>,
    /// For this round only: the starting learning rate (item2vec's alpha,
    /// the DNN's Adam step).
    #[arg(long)]
    lr: Option<f32>,
    /// For this round only: negative samples (item2vec per pair, the DNN
    /// per batch).
    #[arg(long)]
    negatives: Option<usize>,
    /// For this round only: item2vec's context window (0: the whole
    /// history). Refused for a YouTube DNN space.
    #[arg(long)]
    window: Option<usize>,
    /// For this round only: training threads.
    #[arg(long)]
    threads: Option<usize>,
    /// For this round only: the random seed.
    #[arg(long)]
    seed: Option<u64>,
}

pub fn train(a: TrainArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let store = open_existing(&a.store)?;
    let kind = if a.full {
        RoundKind::Full
    } else {
        RoundKind::Incremental
    };
    let names: Vec<String> = match &a.space {
        Some(name) => vec![store.space(name)?.name().to_string()],
        None => store
            .spaces()
            .iter()
            .filter(|s| s.kind().is_trained())
            .map(|s| s.name().to_string())
            .collect(),
    };
    if names.is_empty() {
        bail!(
            "store {} has no trained space (its vectors are host-fed, from `ember ingest --vectors`); a store made by `ember ingest STORE EVENTS --dim N` trains its vectors from events",
            a.store.display()
        );
    }
    let overrides = RoundOverrides {
        epochs: a.epochs,
        learning_rate: a.lr,
        negatives: a.negatives,
        window: a.window,
        threads: a.threads,
        seed: a.seed,
    };
    for name in names {
        let bar = progress(1_000, "training");
        let progress = |_: &str, f: f64| bar.set_position((f * 1_000.0) as u64);
        let request = TrainRequest::new()
            .space(&name)
            .kind(kind)
            .overrides(overrides.clone())
            .progress(&progress);
        let r = one_report(store.train_with(&request)?)?;
        bar.finish_and_clear();
        print_round(out, &name, &r)?;
    }
    Ok(())
}

/// The one report of a request that named one space.
pub fn one_report(reports: Vec<TrainReport>) -> anyhow::Result<TrainReport> {
    reports
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("the round returned no report"))
}

fn print_round(out: &mut impl Write, space: &str, r: &TrainReport) -> anyhow::Result<()> {
    writeln!(
        out,
        "space {space:?}: {} round: generation {}, {}, {} ({} new), {} (+{} replayed), {}, {} in {:.2} s ({:.2} M pairs/s/thread on {}), published in {:.2} s",
        if r.full { "full" } else { "incremental" },
        r.generation,
        count(r.new_events, "new event", "new events"),
        count(r.items as u64, "item", "items"),
        r.new_items,
        count(r.fresh_histories as u64, "history", "histories"),
        r.replayed_histories,
        count(r.epochs as u64, "epoch", "epochs"),
        count(r.run.pairs, "pair", "pairs"),
        r.run.seconds,
        r.pairs_per_second_per_thread() / 1e6,
        count(r.run.threads as u64, "thread", "threads"),
        r.publish_seconds
    )?;
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
    /// Neighbours of this vector: comma-separated numbers ("0.1,0.2,...")
    /// or a JSON array ("[0.1, 0.2, ...]").
    #[arg(long, group = "target", allow_hyphen_values = true)]
    vector: Option<String>,
    /// The trending items (most events in the recent window); with
    /// --for-user, without what that user has seen.
    #[arg(long, group = "target")]
    popular: bool,
    /// The store's default recall for this user (`Query::recommend`): its
    /// trained recall blended with the trending items.
    #[arg(long, group = "target")]
    recommend: Option<u64>,
    /// With --popular: leave out the items this user has seen.
    #[arg(long, requires = "popular")]
    for_user: Option<u64>,
    /// Only items with this attribute: KEY=VALUE (repeat for several, all
    /// must hold), or KEY=MIN..MAX for an integer range.
    #[arg(long, value_name = "KEY=VALUE")]
    filter: Vec<String>,
    #[arg(short, long, default_value_t = 10)]
    k: usize,
    /// One JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Search this space (the default space by default).
    #[arg(long)]
    space: Option<String>,
}

pub fn knn(a: KnnArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let query = match (a.item, a.user, a.seeds, &a.vector) {
        (Some(id), ..) => Query::item(id),
        (_, Some(id), ..) => Query::user(id),
        (_, _, Some(id), _) => Query::seeds(id),
        (_, _, _, Some(v)) => Query::vector(&parse_vector(v)?),
        _ if a.popular => match a.for_user {
            Some(user) => Query::popular().for_user(user),
            None => Query::popular(),
        },
        _ => match a.recommend {
            Some(user) => Query::recommend(user),
            None => bail!("one of --item, --user, --seeds, --vector, --popular or --recommend is needed"),
        },
    }
    .k(a.k);
    let mut query = query;
    for f in &a.filter {
        query = query.filter(parse_filter(f)?);
    }
    let query = match &a.space {
        Some(_) if a.popular || a.recommend.is_some() => bail!(
            "--space goes with --item, --user, --seeds or --vector: --popular and --recommend span the store's spaces"
        ),
        Some(name) => query.space(name),
        None => query,
    };
    let store = open_read_only(&a.store)?;
    if !a.popular && a.recommend.is_none() {
        refuse_untrained(&store, &a.store, a.space.as_deref().unwrap_or(DEFAULT_SPACE))?;
    }
    store.wait_for_indexes();
    let hits = store.knn(&query)?;
    hits::print(out, &hits, a.json, &store)
}

/// `--filter KEY=VALUE` or `KEY=MIN..MAX` (both integers, inclusive). A
/// value holding `..` is a range: one whose ends are not both integers is
/// refused rather than taken as a value to match.
fn parse_filter(f: &str) -> anyhow::Result<Filter> {
    let Some((key, value)) = f.split_once('=') else {
        bail!("--filter {f:?}: expected KEY=VALUE or KEY=MIN..MAX");
    };
    if key.trim().is_empty() {
        bail!("--filter {f:?}: an empty key before `=`");
    }
    if let Some((min, max)) = value.split_once("..") {
        let end = |text: &str, which: &str| {
            text.trim().parse::<i64>().map_err(|_| {
                anyhow::anyhow!(
                    "--filter {f:?}: the range's {which} {:?} is not an integer (expected KEY=MIN..MAX, both ends given)",
                    text.trim()
                )
            })
        };
        let (min, max) = (end(min, "minimum")?, end(max, "maximum")?);
        if min > max {
            bail!("--filter {f:?}: the range is empty ({min} > {max})");
        }
        return Ok(Filter::range(key, min, max));
    }
    Ok(Filter::eq(key, value))
}

/// `--vector`: a JSON array (`[0.1, 0.2]`) or comma-separated numbers
/// (`0.1,0.2`).
fn parse_vector(v: &str) -> anyhow::Result<Vec<f32>> {
    let expected = "expected a JSON array of numbers ([0.1, 0.2]) or comma-separated numbers (0.1,0.2)";
    let text = v.trim();
    let values: Option<Vec<f32>> = if text.starts_with('[') {
        serde_json::from_str::<Vec<f64>>(text)
            .ok()
            .map(|xs| xs.into_iter().map(|x| x as f32).collect())
    } else {
        text.split(',').map(|x| x.trim().parse::<f32>().ok()).collect()
    };
    match values {
        Some(values) if !values.is_empty() => Ok(values),
        _ => bail!("--vector {}: {expected}", shown(v)),
    }
}

/// Refuses to query the trained space `name` before its first training
/// round: it has no vectors yet (an item would be "not in the store" and a
/// user's recall empty), which `ember train` changes.
pub fn refuse_untrained(store: &Store, path: &Path, name: &str) -> anyhow::Result<()> {
    let space = store.space(name)?;
    if space.stats().trainer.is_none_or(|t| t.generation > 0) {
        return Ok(());
    }
    let (what, train) = if name == DEFAULT_SPACE {
        (
            format!("the store {}", path.display()),
            format!("ember train {}", path.display()),
        )
    } else {
        (
            format!("space {name:?} of {}", path.display()),
            format!("ember train {} --space {name}", path.display()),
        )
    };
    bail!("{what} has not been trained yet: it learns its item vectors from the events ingested, at its first round; run `{train}` first")
}
