//! `ember bench-train`: the trainer at scale on a synthetic stream (by
//! default 10,000,000 events over 100,000 items and 200,000 users): ingest
//! rate, training throughput, peak memory and publish time.
//!
//! Users each follow one of 1,000 hidden taste clusters; inside a cluster
//! items are drawn with Zipf-like popularity, and 10% of events are
//! off-taste noise, so frequencies are skewed as in real catalogues.

use std::io::Write;
use std::time::Instant;

use clap::Args;
use emberdb::{DnnOptions, Durability, Event, Options, SpaceSpec, Store, TrainOptions};
use rand::{Rng, SeedableRng};

use crate::input::count;

#[derive(Args, Debug)]
pub struct TrainBenchArgs {
    /// Where to create the store (a temporary directory by default).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    #[arg(long, default_value_t = 100_000)]
    items: u64,
    #[arg(long, default_value_t = 200_000)]
    users: u64,
    #[arg(long, default_value_t = 64)]
    dim: usize,
    /// Epochs of the full round (the store's default is 20; at this scale
    /// one epoch already measures the throughput).
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Context window (the store's default 0 is the whole history).
    #[arg(long, default_value_t = 0)]
    window: usize,
    #[arg(long)]
    threads: Option<usize>,
    /// `item2vec`, or `youtube-dnn`: a DNN space beside the item2vec one,
    /// trained and queried side by side.
    #[arg(long, default_value = "item2vec")]
    space_kind: String,
    /// Log bytes between checkpoints, MiB (the store's default is 256).
    /// Each checkpoint writes the events since the last one as a run.
    #[arg(long)]
    checkpoint_wal_mib: Option<u64>,
    /// Merger threads (`Options::merge_threads`; the store's default is 1).
    #[arg(long)]
    merge_threads: Option<usize>,
    /// Only reopen the store in `--dir` (made by an earlier run with the
    /// same `--users`) and time the open and history lookups, warm and
    /// cold: no ingest, no round.
    #[arg(long, requires = "dir")]
    reopen_only: bool,
}

/// The users a serving comparison queries: up to 1,000 of them.
fn a_users(a: &TrainBenchArgs) -> Vec<u64> {
    (0..a.users.min(1_000)).collect()
}

/// Calls `f` with the synthetic event stream in batches of `batch`,
/// generated as they are ingested: at 100 M events the whole stream would
/// be 2.4 GB of the process's peak.
fn synthetic_events(
    a: &TrainBenchArgs,
    batch: usize,
    mut f: impl FnMut(&[Event]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    const CLUSTERS: u64 = 1_000;
    let per_cluster = (a.items / CLUSTERS).max(1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut events = Vec::with_capacity(batch);
    for n in 0..a.events {
        let user = rng.gen_range(0..a.users);
        let item = if rng.gen_bool(0.1) {
            rng.gen_range(0..a.items)
        } else {
            let cluster = user.wrapping_mul(0x9E37_79B9_7F4A_7C15) % CLUSTERS;
            // Zipf-like rank inside the cluster: the square of a uniform.
            let u: f64 = rng.gen();
            let rank = ((u * u) * per_cluster as f64) as u64;
            (cluster * per_cluster + rank.min(per_cluster - 1)) % a.items
        };
        events.push(Event::new(user, item, n));
        if events.len() == batch {
            f(&events)?;
            events.clear();
        }
    }
    if !events.is_empty() {
        f(&events)?;
    }
    Ok(())
}

pub fn run(a: TrainBenchArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().join("store"));
    let mut train = TrainOptions::default().epochs(a.epochs).window(a.window);
    if let Some(t) = a.threads {
        train = train.threads(t);
    }
    let mut opts = Options::trained(a.dim).train_options(train);
    let dnn = match a.space_kind.as_str() {
        "item2vec" => false,
        "youtube-dnn" => {
            let d = DnnOptions::default();
            let dnn = DnnOptions {
                epochs: a.epochs,
                threads: a.threads.unwrap_or(d.threads),
                ..d
            };
            opts = opts.space(crate::eval::dnn::SPACE, SpaceSpec::youtube_dnn(a.dim).dnn_options(dnn));
            true
        }
        other => anyhow::bail!("--space-kind must be item2vec or youtube-dnn, not {other}"),
    };
    if let Some(mib) = a.checkpoint_wal_mib {
        opts = opts.checkpoint_wal_bytes(mib << 20);
    }
    if let Some(n) = a.merge_threads {
        opts = opts.merge_threads(n);
    }
    if a.reopen_only {
        // Once first, so that "warm" means the store's files are in the
        // page cache (an earlier run may have dropped it).
        drop(Store::open(&dir, Options::existing())?);
        return reopen_and_look_up(&dir, &a, out);
    }
    let store = Store::open(&dir, opts.durability(Durability::Buffered))?;
    writeln!(
        out,
        "{} over {} and {}, dim {}, {}, window {}",
        count(a.events, "event", "events"),
        count(a.items, "item", "items"),
        count(a.users, "user", "users"),
        a.dim,
        count(a.epochs as u64, "epoch", "epochs"),
        a.window
    )?;
    let sampler = crate::bench::proc_status::PeakSampler::start();
    let started = Instant::now();
    let mut ingested = 0u64;
    let mut reported = Instant::now();
    // The rate over each stretch of 10 M events (or a tenth of the stream).
    let stretch = (a.events / 10).clamp(1, 10_000_000);
    let mut stretch_started = Instant::now();
    let mut stretches: Vec<f64> = Vec::new();
    synthetic_events(&a, 10_000, |batch| {
        store.append_events(batch)?;
        ingested += batch.len() as u64;
        if ingested.is_multiple_of(stretch) {
            stretches.push(stretch as f64 / stretch_started.elapsed().as_secs_f64() / 1e6);
            stretch_started = Instant::now();
        }
        if reported.elapsed().as_secs() >= 30 {
            reported = Instant::now();
            eprintln!(
                "  ingested {ingested} events, {:.0} s, RSS {:.0} MiB",
                started.elapsed().as_secs_f64(),
                crate::bench::proc_status::status_mib("VmRSS:").unwrap_or(f64::NAN)
            );
        }
        Ok(())
    })?;
    let ingest = started.elapsed().as_secs_f64();
    writeln!(
        out,
        "ingest: {:.1} s, {:.2} M events/s (Buffered, batches of 10,000, generated as they go in), RSS then {:.0} MiB",
        ingest,
        a.events as f64 / ingest / 1e6,
        crate::bench::proc_status::status_mib("VmRSS:").unwrap_or(f64::NAN)
    )?;
    writeln!(
        out,
        "  per {} stretch, M events/s: {} (lowest {:.2})",
        count(stretch, "event", "events"),
        stretches
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(" "),
        stretches.iter().cloned().fold(f64::INFINITY, f64::min)
    )?;
    let runs = store.stats()?.runs;
    writeln!(
        out,
        "  runs after ingest: {} event runs; {} merges wrote {:.0} MiB, at most {} at once ({} merger threads)",
        runs.event_runs,
        runs.merges,
        runs.merged_bytes as f64 / (1u64 << 20) as f64,
        runs.most_merges_at_once,
        a.merge_threads.unwrap_or(emberdb::DEFAULT_MERGE_THREADS)
    )?;
    history_latency(&store, &a, "warm", out)?;
    // Rounds are timed alone: a background index build (Faiss on every
    // core) must not overlap them, or two training threads would be
    // measured against fewer free cores than one. The wait is printed.
    wait_for_indexes(&store, out)?;
    let started = Instant::now();
    let r = store.space(emberdb::DEFAULT_SPACE)?.train()?;
    let wall = started.elapsed().as_secs_f64();
    writeln!(
        out,
        "training round: {:.1} s wall = {:.1} s gathering histories + {:.1} s training + {:.1} s publishing",
        wall, r.gather_seconds, r.run.seconds, r.publish_seconds
    )?;
    writeln!(
        out,
        "  {}, {}, {}, {:.2} M pairs/s/thread on {}",
        count(r.items as u64, "item", "items"),
        count(r.fresh_histories as u64, "history", "histories"),
        count(r.run.pairs, "positive pair", "positive pairs"),
        r.pairs_per_second_per_thread() / 1e6,
        count(r.run.threads as u64, "thread", "threads")
    )?;
    if dnn {
        wait_for_indexes(&store, out)?;
        crate::bench::dnn::train_and_query(&store, &a_users(&a), out)?;
    }
    let stats = store.stats()?;
    let (peak_anon, peak_file) = sampler.finish();
    writeln!(
        out,
        "store: {} ({}), {:.0} MiB on disk ({:.0} MiB of event runs in {}, sled {:.1} MiB), peak memory {:.0} MiB \
         (VmHWM; sampled peaks: heap {:.0} MiB, mapped file pages {:.0} MiB)",
        count(stats.sealed_segments as u64, "sealed segment", "sealed segments"),
        stats.segment_kinds.join(", "),
        stats.disk_bytes as f64 / (1 << 20) as f64,
        stats.runs.event_run_bytes as f64 / (1 << 20) as f64,
        count(stats.runs.event_runs as u64, "run", "runs"),
        stats.meta_bytes as f64 / (1 << 20) as f64,
        crate::bench::proc_status::peak_rss_mib().unwrap_or(f64::NAN),
        peak_anon,
        peak_file
    )?;
    drop(store);
    reopen_and_look_up(&dir, &a, out)
}

/// Reopens the store at `dir`, warm then with the page cache dropped, and
/// times each open and the history lookups after it.
fn reopen_and_look_up(dir: &std::path::Path, a: &TrainBenchArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = Store::open(dir, Options::existing())?;
    writeln!(
        out,
        "reopen (warm, in this process): {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    )?;
    history_latency(&store, a, "after reopen, warm", out)?;
    drop(store);
    // Cold: the page cache dropped (needs root; said when it cannot be).
    let dropped = std::process::Command::new("sh")
        .args(["-c", "sync && echo 3 > /proc/sys/vm/drop_caches"])
        .status()
        .is_ok_and(|s| s.success());
    if dropped {
        let started = Instant::now();
        let store = Store::open(dir, Options::existing())?;
        writeln!(
            out,
            "reopen (page cache dropped): {:.0} ms",
            started.elapsed().as_secs_f64() * 1e3
        )?;
        history_latency(&store, a, "cold (page cache dropped)", out)?;
    } else {
        writeln!(
            out,
            "cold lookups not measured: could not drop the page cache (needs root)"
        )?;
    }
    Ok(())
}

/// `Store::history` of 10,000 random users (after the same lookups once,
/// unless `label` says cold): p50 and p99.
fn history_latency(store: &Store, a: &TrainBenchArgs, label: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let users: Vec<u64> = (0..10_000).map(|_| rng.gen_range(0..a.users)).collect();
    if !label.starts_with("cold") {
        for u in &users {
            store.history(*u)?;
        }
    }
    let mut took: Vec<f64> = Vec::with_capacity(users.len());
    let mut entries = 0usize;
    for u in &users {
        let started = Instant::now();
        entries += store.history(*u)?.len();
        took.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let mut at = |q: f64| crate::bench::measure::quantile(&mut took, q);
    writeln!(
        out,
        "history(user), {label}: p50 {:.1} us, p99 {:.1} us ({} lookups, {:.0} entries each, {} event runs)",
        at(0.5),
        at(0.99),
        took.len(),
        entries as f64 / took.len() as f64,
        store.stats()?.runs.event_runs
    )?;
    Ok(())
}

/// Waits for the indexer's queue and says how long that took.
fn wait_for_indexes(store: &Store, out: &mut impl Write) -> anyhow::Result<()> {
    let started = Instant::now();
    store.wait_for_indexes();
    writeln!(
        out,
        "indexes built in the background: waited {:.1} s",
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}
