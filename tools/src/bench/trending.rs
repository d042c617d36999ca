//! `ember bench-trending`: what the trending channel costs an event and a
//! `popular` query with many items in its window. Two stores are filled
//! side by side in this process with the same events, one with the channel
//! on and one with it off (`Options::trending(false)`); then each takes the
//! same stream of single `append_event` calls, timed one by one, the modes
//! alternating over rounds so that drift in the machine's speed falls on
//! both. Last, the store with the channel takes more events with a timed
//! `Query::popular` every tenth.

use crate::bench::measure::quantile_us;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use emberdb::{Durability, Event, Options, Query, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Args, Debug)]
pub struct TrendingBenchArgs {
    /// Where the two stores go (a temporary directory by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Distinct items in the window before timing starts.
    #[arg(long, default_value_t = 1_000_000)]
    items: u64,
    /// Users the events are spread over.
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// Timed events per mode and round.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Rounds (each times both modes).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// k of the timed popular queries.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Host-fed stores (`Options::new`): an event then costs only its log
    /// record, history and trending count, the least an append can cost.
    /// By default the stores are trained (`Options::trained`), as a store
    /// that serves `popular` to users is: an event also gives its item a
    /// provisional vector.
    #[arg(long)]
    host_fed: bool,
    /// The log's durability: none (no fsync, the default here, so that
    /// fsyncs do not hide what the channel costs), buffered or sync.
    #[arg(long, default_value = "none")]
    durability: String,
}

fn open(a: &TrendingBenchArgs, path: PathBuf, on: bool) -> anyhow::Result<Store> {
    let durability = match a.durability.as_str() {
        "none" => Durability::None,
        "buffered" => Durability::Buffered,
        "sync" => Durability::Sync,
        other => anyhow::bail!("--durability must be none, buffered or sync, not {other:?}"),
    };
    let opts = if a.host_fed {
        Options::new(8)
    } else {
        Options::trained(8)
    };
    Ok(Store::open(path, opts.durability(durability).trending(on))?)
}

pub fn run(a: TrendingBenchArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    // An hour ago, a millisecond an event: every event stays in the
    // default 7-day window.
    let start = now - 3_600_000;
    let stores = [
        (false, open(&a, dir.join("off"), false)?),
        (true, open(&a, dir.join("on"), true)?),
    ];
    writeln!(
        out,
        "{} stores, durability {}",
        if a.host_fed { "host-fed" } else { "trained" },
        a.durability
    )?;
    let started = Instant::now();
    for chunk in (0..a.items).collect::<Vec<_>>().chunks(10_000) {
        let events: Vec<Event> = chunk.iter().map(|&i| Event::new(i % a.users, i, start + i)).collect();
        for (_, store) in &stores {
            store.append_events(&events)?;
        }
    }
    let trending = stores[1].1.stats()?.trending_items;
    writeln!(
        out,
        "filled: {} items in the window ({trending} counted), {:.1} s for both stores",
        a.items,
        started.elapsed().as_secs_f64()
    )?;
    let mut clock = start + a.items;
    let mut append = [Vec::new(), Vec::new()];
    let mut round_ratios = Vec::new();
    for round in 0..a.rounds {
        let start_of_round = [append[0].len(), append[1].len()];
        // The same stream for both modes in a round, appends alone (a
        // query between them would leave the caches colder in one mode).
        let seed = 7 + round as u64;
        let order: Vec<usize> = if round % 2 == 0 { vec![0, 1] } else { vec![1, 0] };
        for m in order {
            let store = &stores[m].1;
            let mut rng = StdRng::seed_from_u64(seed);
            for ts in clock..clock + a.events as u64 {
                let e = Event::new(rng.gen_range(0..a.users), rng.gen_range(0..a.items), ts);
                let t = Instant::now();
                store.append_event(e)?;
                append[m].push(t.elapsed().as_secs_f64());
            }
        }
        let p99 = |m: usize| quantile_us(&mut append[m][start_of_round[m]..].to_vec(), 0.99);
        round_ratios.push(p99(1) / p99(0));
        clock += a.events as u64;
    }
    // Popular under a stream of events: one timed query every tenth event,
    // then one every thousandth (more queued for the query to count).
    let store = &stores[1].1;
    let mut popular = [Vec::new(), Vec::new()];
    let mut rng = StdRng::seed_from_u64(99);
    for (p, every) in [(0, 10), (1, 1_000)] {
        for (ts, n) in (clock..).zip(0..a.events) {
            store.append_event(Event::new(rng.gen_range(0..a.users), rng.gen_range(0..a.items), ts))?;
            if n % every == 0 {
                let t = Instant::now();
                let hits = store.knn(&Query::popular().k(a.k))?;
                popular[p].push(t.elapsed().as_secs_f64());
                anyhow::ensure!(hits.len() == a.k, "popular returned {} hits", hits.len());
            }
        }
        clock += a.events as u64;
    }
    let [mut off, mut on] = append;
    let (off_p50, off_p99) = (quantile_us(&mut off, 0.5), quantile_us(&mut off, 0.99));
    let (on_p50, on_p99) = (quantile_us(&mut on, 0.5), quantile_us(&mut on, 0.99));
    writeln!(
        out,
        "append_event, trending off: p50 {off_p50:.2} us, p99 {off_p99:.2} us ({} events)",
        off.len()
    )?;
    writeln!(
        out,
        "append_event, trending on:  p50 {on_p50:.2} us, p99 {on_p99:.2} us ({} events)",
        on.len()
    )?;
    let rounds: Vec<String> = round_ratios.iter().map(|r| format!("{r:.2}x")).collect();
    let median = quantile_us(&mut round_ratios, 0.5) / 1e6;
    writeln!(
        out,
        "p99 on / off: {:.2}x over all events; per round {} (median {median:.2}x)",
        on_p99 / off_p99,
        rounds.join(", ")
    )?;
    for (times, every) in popular.iter_mut().zip([10, 1_000]) {
        let (p50, p99) = (quantile_us(times, 0.5), quantile_us(times, 0.99));
        writeln!(
            out,
            "popular k={} every {every} events: p50 {p50:.2} us, p99 {p99:.2} us ({} queries, {trending} items in the window)",
            a.k,
            times.len()
        )?;
    }
    Ok(())
}
