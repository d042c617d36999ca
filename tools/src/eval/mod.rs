//! `ember eval RATINGS.csv`: the leave-last-out protocol on explicit
//! ratings treated as implicit events.
//!
//! Per user, events sorted by (timestamp, item id): the last is the test
//! item, the rest are ingested through `append_events` and trained on. For
//! every user, all items except the user's training items are ranked, and
//! HR@10 and NDCG@10 (one relevant item) are reported for popularity,
//! `Query::user` (mean and max pooling) and `Query::seeds`.
//! `--incremental` also checks incremental training: train on the events
//! before the 80th percentile of time, ingest the rest, run one incremental
//! round, and compare with a full retrain on everything.

pub mod dnn;
pub mod report;
pub mod temporal;

use report::Score;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use emberdb::{Durability, Event, Options, Pooling, Query, Sigmoid, Store, TrainOptions, TrainReport};

use crate::eval::report::{JsonDnn, JsonIncremental, JsonMethod, JsonRound, JsonSweep, Report};
use crate::input::count;
use crate::input::events::{self, Layout};

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// MovieLens ratings, `user_id,item_id,rating,timestamp` (CSV or TSV; a
    /// first line of column names is a header).
    pub(crate) ratings: PathBuf,
    #[arg(long, default_value_t = 64)]
    dim: usize,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    #[arg(long, default_value_t = 5)]
    negative: usize,
    #[arg(long, default_value_t = -0.5, allow_hyphen_values = true)]
    ns_exponent: f64,
    #[arg(long, default_value_t = 1e-3)]
    sample: f64,
    #[arg(long, default_value_t = 0.025)]
    alpha: f32,
    #[arg(long, default_value_t = 0.0001)]
    min_alpha: f32,
    /// Items on each side of an item that form its context (0 = whole history).
    #[arg(long, default_value_t = 0)]
    window: usize,
    /// Training threads (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// `table` (word2vec's) or `exact`.
    #[arg(long, default_value = "table")]
    sigmoid: String,
    /// Recent items `Query::user` pools (default: the library's).
    #[arg(long)]
    recent: Option<usize>,
    /// Seed items of `Query::seeds` (default: the library's).
    #[arg(long)]
    seeds: Option<usize>,
    /// Epochs of an incremental round (with --incremental).
    #[arg(long)]
    incremental_epochs: Option<usize>,
    /// Starting learning rate of an incremental round (with --incremental).
    #[arg(long)]
    incremental_alpha: Option<f32>,
    /// Replayed old histories per new one (with --incremental).
    #[arg(long)]
    replay_ratio: Option<f64>,
    /// Also measure incremental training against a full retrain.
    #[arg(long)]
    incremental: bool,
    /// Only train and report throughput (no ranking).
    #[arg(long)]
    train_only: bool,
    /// Also rank with `recent` = 1, 2, 3, 5, 10, 20 for both queries, on
    /// the same trained vectors (to choose the defaults).
    #[arg(long)]
    sweep_queries: bool,
    /// `item2vec`, or `youtube-dnn` to add a YouTube DNN space and rank it
    /// beside item2vec and popularity.
    #[arg(long, default_value = "item2vec")]
    space_kind: String,
    /// Users' features for the DNN (`user_id,feature,...` with a header;
    /// MovieLens's users.csv as it is).
    #[arg(long)]
    users: Option<PathBuf>,
    /// The cut-off of the hit rate and NDCG.
    #[arg(long, default_value_t = 10)]
    pub(crate) k: usize,
    /// `leave-last-out` (each user's last event is the test item), or
    /// `temporal`: train before a time cut, test on what each user does
    /// after it (see --cut).
    #[arg(long, default_value = "leave-last-out")]
    split: String,
    /// With --split temporal: the share of the events, by time, to train on.
    #[arg(long, default_value_t = 0.7)]
    pub(crate) cut: f64,
    /// With --split temporal: the trending window, in the ratings'
    /// timestamp units (MovieLens: seconds; default 30 days).
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    pub(crate) trending_window: u64,
    /// With --split temporal: also measure the blend at other trending
    /// weights and the popularity-prior alternative.
    #[arg(long)]
    pub(crate) sweep_blend: bool,
    /// Also rank `Query::user` with `Pooling::Weighted` (the recent items'
    /// vectors weighted by their events' weights: the MovieLens rating).
    #[arg(long)]
    weighted_pooling: bool,
    /// Train only on events of at least this weight (the MovieLens rating):
    /// how event weights would act as a threshold on the positives.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) min_weight: f32,
    #[command(flatten)]
    dnn: crate::eval::dnn::DnnArgs,
    /// One JSON object instead of the text: `ratings`, `users`,
    /// `training_events`, `options` (`dim`, `epochs`, `negative`,
    /// `ns_exponent`, `sample`, `alpha`, `min_alpha`, `window`, `threads`,
    /// `seed`, `sigmoid`, `k`, `space_kind`), `ingest_seconds`,
    /// `full_training` (a round: `wall_seconds`, `training_seconds`,
    /// `publish_seconds`, `epochs`, `histories`, `replayed_histories`,
    /// `items`, `pairs`, `pairs_per_second_per_thread`, `threads`), `dnn`
    /// (null, or `users_with_features` and `training`: `wall_seconds`,
    /// `training_seconds`, `epochs`, `items`, `examples`, `steps`, `loss`,
    /// `examples_per_second_per_thread`, `threads`, `gflops`), `methods`
    /// (null with --train-only, else an array of `method` ("popularity",
    /// "user_mean", "user_max", "seeds", "youtube_dnn_user"), `hr`, `ndcg`
    /// at `options.k`), `ranked_users`, `sweep` (null, or an array of
    /// `recent`, `user_mean`, `user_max`, `seeds`, each `{"hr","ndcg"}`) and
    /// `incremental` (null, or `cut`, `events_before`, `events_after`,
    /// `initial_round` and `incremental_round` (rounds), `hr`, `full_hr`,
    /// `seconds`, `full_seconds`).
    #[arg(long)]
    json: bool,
}

struct Split {
    /// Training events, in (timestamp, user, item) order.
    train: Vec<Event>,
    /// The held-out item of each user.
    test: HashMap<u64, u64>,
    /// Each user's training items.
    seen: HashMap<u64, HashSet<u64>>,
}

/// The ratings, split per user. A bad line is an error here: a measure
/// over part of the file would mislead.
fn read_split(path: &Path, a_min_weight: f32) -> anyhow::Result<Split> {
    let (events, bad) = events::read(path, Layout::MovieLens)?;
    if let Some((n, reason)) = bad.first().first() {
        bail!("{}: line {n}: {reason}", path.display());
    }
    let mut per_user: HashMap<u64, Vec<(u64, u64, f32)>> = HashMap::new();
    for e in events {
        per_user.entry(e.user).or_default().push((e.ts, e.item, e.weight));
    }
    let mut split = Split {
        train: Vec::new(),
        test: HashMap::new(),
        seen: HashMap::new(),
    };
    for (user, mut events) in per_user {
        events.sort_unstable_by_key(|&(ts, item, _)| (ts, item));
        let Some((_, last, _)) = events.pop() else { continue };
        split.test.insert(user, last);
        split.seen.insert(user, events.iter().map(|&(_, i, _)| i).collect());
        // The rating is kept as the weight; --min-weight drops the events
        // below it from training (they still count as seen).
        split.train.extend(
            events
                .into_iter()
                .filter(|&(_, _, w)| w >= a_min_weight)
                .map(|(ts, item, w)| Event::new(user, item, ts).with_weight(w)),
        );
    }
    split.train.sort_unstable_by_key(|e| (e.ts, e.user, e.item));
    Ok(split)
}

fn train_options(a: &EvalArgs) -> anyhow::Result<TrainOptions> {
    let sigmoid = match a.sigmoid.as_str() {
        "table" => Sigmoid::Table,
        "exact" => Sigmoid::Exact,
        other => bail!("--sigmoid must be table or exact, not {other}"),
    };
    let mut t = TrainOptions::default()
        .epochs(a.epochs)
        .negatives(a.negative)
        .ns_exponent(a.ns_exponent)
        .sample(a.sample)
        .learning_rate(a.alpha)
        .min_learning_rate(a.min_alpha)
        .window(a.window)
        .seed(a.seed)
        .sigmoid(sigmoid);
    if let Some(n) = a.threads {
        t = t.threads(n);
    }
    if let Some(n) = a.incremental_epochs {
        t = t.incremental_epochs(n);
    }
    if let Some(x) = a.incremental_alpha {
        t = t.incremental_learning_rate(x);
    }
    if let Some(r) = a.replay_ratio {
        t = t.replay_ratio(r);
    }
    Ok(t)
}

fn open_store(dir: &Path, a: &EvalArgs) -> anyhow::Result<Store> {
    open_store_with(dir, a, |o| o)
}

/// The evaluation's store, with `more` options.
pub(crate) fn open_store_with(
    dir: &Path,
    a: &EvalArgs,
    more: impl FnOnce(Options) -> Options,
) -> anyhow::Result<Store> {
    let mut opts = Options::trained(a.dim).train_options(train_options(a)?);
    match a.space_kind.as_str() {
        "item2vec" => {}
        "youtube-dnn" => {
            opts = opts.space(
                crate::eval::dnn::SPACE,
                crate::eval::dnn::spec(&a.dnn, a.dim, a.seed, a.threads, a.users.is_some()),
            )
        }
        other => bail!("--space-kind must be item2vec or youtube-dnn, not {other}"),
    }
    let opts = more(opts.durability(Durability::None));
    Ok(Store::open(dir, opts)?)
}

fn ingest(store: &Store, events: &[Event]) -> anyhow::Result<f64> {
    let started = Instant::now();
    for chunk in events.chunks(10_000) {
        store.append_events(chunk)?;
    }
    Ok(started.elapsed().as_secs_f64())
}

fn print_round(out: &mut impl Write, label: &str, r: &TrainReport, wall: f64) -> anyhow::Result<JsonRound> {
    writeln!(
        out,
        "{label}: {:.2} s wall ({:.2} s training, {:.2} s publish), {}, {} (+{} replayed), {}, {}, {:.2} M pairs/s/thread on {}",
        wall,
        r.run.seconds,
        r.publish_seconds,
        count(r.epochs as u64, "epoch", "epochs"),
        count(r.fresh_histories as u64, "history", "histories"),
        r.replayed_histories,
        count(r.items as u64, "item", "items"),
        count(r.run.pairs, "pair", "pairs"),
        r.pairs_per_second_per_thread() / 1e6,
        count(r.run.threads as u64, "thread", "threads")
    )?;
    Ok(JsonRound::of(r, wall))
}

/// The methods ranked, in the order printed: as the text and as `--json`
/// names them.
fn methods(a: &EvalArgs) -> Vec<(&'static str, &'static str)> {
    let mut names = vec![
        ("popularity", "popularity"),
        ("Query::user mean", "user_mean"),
        ("Query::user max", "user_max"),
        ("Query::seeds", "seeds"),
    ];
    if a.space_kind == "youtube-dnn" {
        names.push(("YouTube DNN user", "youtube_dnn_user"));
    }
    if a.weighted_pooling {
        names.push(("Query::user weighted", "user_weighted"));
    }
    names
}

fn rank(store: &Store, split: &Split, a: &EvalArgs) -> anyhow::Result<Vec<Score>> {
    let mut counts: HashMap<u64, u64> = HashMap::new();
    for e in &split.train {
        *counts.entry(e.item).or_default() += 1;
    }
    let mut popular: Vec<(u64, u64)> = counts.into_iter().collect();
    popular.sort_unstable_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let mut scores = vec![Score::default(); methods(a).len()];
    let mut users: Vec<_> = split.test.iter().collect();
    users.sort_unstable();
    for (&user, &test) in users {
        let seen = &split.seen[&user];
        let top: Vec<u64> = popular
            .iter()
            .map(|p| p.0)
            .filter(|i| !seen.contains(i))
            .take(a.k)
            .collect();
        scores[0].add(&top, test);
        let mut user_q = Query::user(user).k(a.k);
        let mut seeds_q = Query::seeds(user).k(a.k);
        if let Some(n) = a.recent {
            user_q = user_q.recent(n);
        }
        if let Some(n) = a.seeds {
            seeds_q = seeds_q.recent(n);
        }
        let mut queries = vec![user_q.clone(), user_q.pooling(Pooling::Max), seeds_q];
        if a.space_kind == "youtube-dnn" {
            queries.push(Query::user(user).k(a.k).space(crate::eval::dnn::SPACE));
        }
        if a.weighted_pooling {
            queries.push(queries[0].clone().pooling(Pooling::Weighted));
        }
        for (q, s) in queries.iter().zip(&mut scores[1..]) {
            let hits = match store.knn(q) {
                Ok(hits) => hits,
                // A user with no training event (and no features).
                Err(emberdb::Error::UnknownUser { .. }) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            s.add(&hits.iter().map(|h| h.id).collect::<Vec<_>>(), test);
        }
    }
    Ok(scores)
}

fn print_scores(out: &mut impl Write, a: &EvalArgs, scores: &[Score]) -> anyhow::Result<()> {
    let (hr, ndcg) = (format!("HR@{}", a.k), format!("NDCG@{}", a.k));
    writeln!(out, "{:<20} {:>8} {:>9}", "method", hr, ndcg)?;
    for ((n, _), s) in methods(a).iter().zip(scores) {
        writeln!(out, "{:<20} {:>8.4} {:>9.4}", n, s.hr(), s.ndcg())?;
    }
    writeln!(out, "({})", count(scores[0].users as u64, "user", "users"))?;
    Ok(())
}

pub fn run(a: EvalArgs, out: &mut impl Write) -> anyhow::Result<()> {
    match a.split.as_str() {
        "leave-last-out" => {}
        "temporal" if a.json => bail!("--json is for --split leave-last-out"),
        "temporal" => return crate::eval::temporal::run(&a, out),
        other => bail!("--split must be leave-last-out or temporal, not {other}"),
    }
    if a.json {
        let report = evaluate(&a, &mut std::io::sink())?;
        // Formatted first, so that a write error stays an io::Error (main
        // tells a closed pipe by it).
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return Ok(());
    }
    evaluate(&a, out)?;
    Ok(())
}

/// Runs the evaluation, printing its text to `out`; returns its figures.
fn evaluate(a: &EvalArgs, out: &mut impl Write) -> anyhow::Result<Report> {
    let split = read_split(&a.ratings, a.min_weight)?;
    let opts = train_options(a)?;
    let threads = a.threads.unwrap_or_else(|| opts_threads(&opts));
    writeln!(
        out,
        "{}: {}, {}; dim {}, epochs {}, negative {}, ns_exponent {}, sample {}, alpha {} -> {}, window {}, threads {}, seed {}, sigmoid {}",
        a.ratings.display(),
        count(split.test.len() as u64, "user", "users"),
        count(split.train.len() as u64, "training event", "training events"),
        a.dim,
        a.epochs,
        a.negative,
        a.ns_exponent,
        a.sample,
        a.alpha,
        a.min_alpha,
        a.window,
        a.threads.map_or_else(|| format!("{threads} (all cores)"), |t| t.to_string()),
        a.seed,
        a.sigmoid
    )?;
    let mut report = Report {
        ratings: a.ratings.display().to_string(),
        users: split.test.len(),
        training_events: split.train.len(),
        options: serde_json::json!({
            "dim": a.dim,
            "epochs": a.epochs,
            "negative": a.negative,
            "ns_exponent": a.ns_exponent,
            "sample": a.sample,
            "alpha": a.alpha,
            "min_alpha": a.min_alpha,
            "window": a.window,
            "threads": threads,
            "seed": a.seed,
            "sigmoid": a.sigmoid,
            "k": a.k,
            "space_kind": a.space_kind,
        }),
        ..Report::default()
    };
    let tmp = tempfile::tempdir()?;
    let store = open_store(&tmp.path().join("full"), a)?;
    let ingest_s = ingest(&store, &split.train)?;
    report.ingest_seconds = ingest_s;
    writeln!(
        out,
        "ingest: {} in {:.2} s",
        count(split.train.len() as u64, "event", "events"),
        ingest_s
    )?;
    let mut features = None;
    if a.space_kind == "youtube-dnn" {
        features = crate::eval::dnn::set_features(out, &store, a.users.as_deref())?;
    }
    let started = Instant::now();
    let bar = crate::commands::store::progress(1_000, "training");
    let progress = |_: &str, f: f64| bar.set_position((f * 1_000.0) as u64);
    let request = emberdb::TrainRequest::full()
        .space(emberdb::DEFAULT_SPACE)
        .progress(&progress);
    let full = crate::commands::store::one_report(store.train_with(&request)?)?;
    bar.finish_and_clear();
    let full_wall = started.elapsed().as_secs_f64();
    report.full_training = Some(print_round(out, "full training", &full, full_wall)?);
    if a.space_kind == "youtube-dnn" {
        report.dnn = Some(JsonDnn {
            users_with_features: features,
            training: crate::eval::dnn::train(out, &store)?,
        });
    }
    if a.train_only {
        return Ok(report);
    }
    let scores = rank(&store, &split, a)?;
    print_scores(out, a, &scores)?;
    report.ranked_users = scores[0].users;
    report.methods = Some(
        methods(a)
            .iter()
            .zip(&scores)
            .map(|(&(_, method), s)| JsonMethod {
                method,
                hr: s.hr(),
                ndcg: s.ndcg(),
            })
            .collect(),
    );
    if a.sweep_queries {
        let mut sweep = Vec::new();
        for n in [1, 2, 3, 5, 10, 20] {
            let mut b = a.clone();
            b.recent = Some(n);
            b.seeds = Some(n);
            let s = rank(&store, &split, &b)?;
            writeln!(
                out,
                "recent {n:>2}: user mean {:.4} / {:.4}, user max {:.4} / {:.4}, seeds {:.4} / {:.4}",
                s[1].hr(),
                s[1].ndcg(),
                s[2].hr(),
                s[2].ndcg(),
                s[3].hr(),
                s[3].ndcg()
            )?;
            sweep.push(JsonSweep {
                recent: n,
                user_mean: (&s[1]).into(),
                user_max: (&s[2]).into(),
                seeds: (&s[3]).into(),
            });
        }
        report.sweep = Some(sweep);
    }
    if a.incremental {
        report.incremental = Some(incremental(out, a, &split, tmp.path(), scores[1].hr(), full_wall)?);
    }
    Ok(report)
}

fn opts_threads(_: &TrainOptions) -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn incremental(
    out: &mut impl Write,
    a: &EvalArgs,
    split: &Split,
    dir: &Path,
    full_hr: f64,
    full_wall: f64,
) -> anyhow::Result<JsonIncremental> {
    let mut times: Vec<u64> = split.train.iter().map(|e| e.ts).collect();
    times.sort_unstable();
    let Some(&cut) = times.get(times.len() * 8 / 10) else {
        bail!("--incremental needs training events (every user has one rating)");
    };
    let (before, after): (Vec<Event>, Vec<Event>) = split.train.iter().partition(|e| e.ts < cut);
    writeln!(
        out,
        "\nincremental: {} before the 80th percentile of time ({cut}), {} after",
        count(before.len() as u64, "event", "events"),
        after.len()
    )?;
    let store = open_store(&dir.join("incremental"), a)?;
    ingest(&store, &before)?;
    let started = Instant::now();
    let first = store.train_full()?;
    let initial_round = print_round(
        out,
        "  initial full round (80%)",
        &first,
        started.elapsed().as_secs_f64(),
    )?;
    ingest(&store, &after)?;
    let started = Instant::now();
    let round = store.train()?;
    let wall = started.elapsed().as_secs_f64();
    let incremental_round = print_round(out, "  incremental round (20%)", &round, wall)?;
    let scores = rank(&store, split, a)?;
    writeln!(
        out,
        "  Query::user mean HR@{}: incremental {:.4} vs full retrain {:.4} (difference {:+.4}); time {:.2} s vs {:.2} s ({:.0}%)",
        a.k,
        scores[1].hr(),
        full_hr,
        scores[1].hr() - full_hr,
        wall,
        full_wall,
        100.0 * wall / full_wall
    )?;
    Ok(JsonIncremental {
        cut,
        events_before: before.len(),
        events_after: after.len(),
        initial_round,
        incremental_round,
        hr: scores[1].hr(),
        full_hr,
        seconds: wall,
        full_seconds: full_wall,
    })
}
