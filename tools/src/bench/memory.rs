//! `ember bench-memory`: resident memory and ingest time over a long
//! stream of events and updates (by default 20,000,000 events from 200,000
//! users over 50,000 items, with an upsert of one of the 50,000 items after
//! every 100 events), sampled every tenth of the stream, with the history
//! cache and sled's cache as given. It shows where the memory goes (the
//! cached histories, the rest of the process: mostly sled) and what a
//! history cache smaller than the active histories costs in ingest rate.

use std::io::Write;
use std::time::Instant;

use clap::Args;
use emberdb::{Durability, Event, IndexSpec, Options, Store};
use rand::{Rng, SeedableRng};

use crate::bench::proc_status::status_mib;
use crate::input::count;

#[derive(Args, Debug)]
pub struct MemoryBenchArgs {
    /// Where to create the store (a temporary directory by default).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 20_000_000)]
    events: u64,
    #[arg(long, default_value_t = 200_000)]
    users: u64,
    #[arg(long, default_value_t = 50_000)]
    items: u64,
    #[arg(long, default_value_t = 32)]
    dim: usize,
    /// Options::history_cache_bytes, in MiB.
    #[arg(long, default_value_t = 1024)]
    history_cache_mib: usize,
    /// Options::meta_cache_bytes, in MiB.
    #[arg(long, default_value_t = 64)]
    meta_cache_mib: u64,
}

/// This process's resident memory now (VmRSS) and at its peak (VmHWM), MiB.
fn rss_mib() -> (f64, f64) {
    let field = |name: &str| status_mib(name).unwrap_or(f64::NAN);
    (field("VmRSS:"), field("VmHWM:"))
}

pub fn run(a: MemoryBenchArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().join("store"));
    let segment_rows = 131_072;
    let opts = Options::new(a.dim)
        .durability(Durability::Buffered)
        .index(IndexSpec::Flat)
        .segment_rows(segment_rows)
        .history_cache_bytes(a.history_cache_mib << 20)
        .meta_cache_bytes(a.meta_cache_mib << 20);
    let store = Store::open(&dir, opts)?;
    let sampler = crate::bench::proc_status::PeakSampler::start();
    writeln!(
        out,
        "{} from {} over {} (dim {}), an upsert every 100 events; history cache {} MiB, sled cache {} MiB",
        count(a.events, "event", "events"),
        count(a.users, "user", "users"),
        count(a.items, "item", "items"),
        a.dim,
        a.history_cache_mib,
        a.meta_cache_mib
    )?;
    let growing_mib = (segment_rows * a.dim * 4) as f64 / (1 << 20) as f64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let started = Instant::now();
    let step = (a.events / 10).max(1);
    let mut batch = Vec::with_capacity(10_000);
    let mut samples = Vec::new();
    let mut vector = vec![0f32; a.dim];
    for n in 0..a.events {
        batch.push(Event::new(rng.gen_range(0..a.users), rng.gen_range(0..a.items), n));
        if batch.len() == batch.capacity() || n + 1 == a.events {
            store.append_events(&batch)?;
            for _ in 0..batch.len() / 100 {
                vector.iter_mut().for_each(|x| *x = rng.gen_range(-1.0..1.0));
                store.upsert(rng.gen_range(0..a.items), &vector)?;
            }
            batch.clear();
        }
        if n + 1 == a.events.min(4_000_000) {
            writeln!(
                out,
                "first {}: {:.2} M events/s",
                count(n + 1, "event", "events"),
                (n + 1) as f64 / started.elapsed().as_secs_f64() / 1e6
            )?;
        }
        if (n + 1) % step == 0 {
            let (now, peak) = rss_mib();
            let stats = store.stats()?;
            writeln!(
                out,
                "{:>18}  {:>6.1} s  RSS {:>6.0} MiB (peak {:>6.0}; now {:.0} heap + {:.0} mapped)  recent {:>7} users \
                 ({:.0} MiB)  {} event runs ({:.0} MiB, {} merges)  sled {:>5.0} MiB on disk",
                count(n + 1, "event", "events"),
                started.elapsed().as_secs_f64(),
                now,
                peak,
                status_mib("RssAnon:").unwrap_or(f64::NAN),
                status_mib("RssFile:").unwrap_or(f64::NAN),
                stats.cached_histories,
                stats.cached_history_bytes as f64 / (1 << 20) as f64,
                stats.runs.event_runs,
                stats.runs.event_run_bytes as f64 / (1 << 20) as f64,
                stats.runs.merges,
                stats.meta_bytes as f64 / (1 << 20) as f64
            )?;

            samples.push(now);
        }
    }
    let (_, peak) = rss_mib();
    let (peak_anon, peak_file) = sampler.finish();
    writeln!(
        out,
        "ingest {:.2} M events/s overall; peak heap (RssAnon) {:.0} MiB, peak mapped file pages (RssFile) {:.0} MiB",
        a.events as f64 / started.elapsed().as_secs_f64() / 1e6,
        peak_anon,
        peak_file
    )?;
    let half = samples.len() / 2;
    let first_half = samples[..half].iter().cloned().fold(0.0, f64::max);
    let second_half = samples[half..].iter().cloned().fold(0.0, f64::max);
    writeln!(
        out,
        "peak RSS {:.0} MiB; highest sample in the first half {:.0} MiB, in the second half {:.0} MiB (ratio {:.2})",
        peak,
        first_half,
        second_half,
        second_half / first_half
    )?;
    writeln!(
        out,
        "budget: history cache {} MiB + sled cache {} MiB + growing segment {:.0} MiB",
        a.history_cache_mib, a.meta_cache_mib, growing_mib
    )?;
    Ok(())
}
