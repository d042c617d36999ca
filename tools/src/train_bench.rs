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
}

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The users a serving comparison queries: up to 1,000 of them.
fn a_users(a: &TrainBenchArgs) -> Vec<u64> {
    (0..a.users.min(1_000)).collect()
}

fn synthetic_events(a: &TrainBenchArgs) -> Vec<Event> {
    const CLUSTERS: u64 = 1_000;
    let per_cluster = (a.items / CLUSTERS).max(1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut events = Vec::with_capacity(a.events as usize);
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
    }
    events
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
            opts = opts.space(crate::eval_dnn::SPACE, SpaceSpec::youtube_dnn(a.dim).dnn_options(dnn));
            true
        }
        other => anyhow::bail!("--space-kind must be item2vec or youtube-dnn, not {other}"),
    };
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
    let events = synthetic_events(&a);
    let started = Instant::now();
    for chunk in events.chunks(10_000) {
        store.append_events(chunk)?;
    }
    let ingest = started.elapsed().as_secs_f64();
    drop(events);
    writeln!(
        out,
        "ingest: {:.1} s, {:.2} M events/s (Buffered, batches of 10,000)",
        ingest,
        a.events as f64 / ingest / 1e6
    )?;
    // Rounds are timed alone: a background index build (Faiss on every
    // core) must not overlap them, or two training threads would be
    // measured against fewer free cores than one. The wait is printed.
    wait_for_indexes(&store, out)?;
    let started = Instant::now();
    let r = store.train_space(emberdb::DEFAULT_SPACE)?;
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
        crate::dnn_bench::train_and_query(&store, &a_users(&a), out)?;
    }
    let stats = store.stats()?;
    writeln!(
        out,
        "store: {} ({}), {:.0} MiB on disk, peak memory {:.0} MiB",
        count(stats.sealed_segments as u64, "sealed segment", "sealed segments"),
        stats.segment_kinds.join(", "),
        stats.disk_bytes as f64 / (1 << 20) as f64,
        peak_rss_mib().unwrap_or(f64::NAN)
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
