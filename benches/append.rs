//! Ingestion: `append_events` in batches under `Buffered`, and single
//! `append_event` calls under `Sync` from 1, 4 and 16 threads (group commit).
//!
//! `cargo bench --bench append`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use emberdb::{Durability, Event, Options, Store};
use rand::{Rng, SeedableRng};

fn events(n: usize, seed: u64) -> Vec<Event> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| Event::new(rng.gen_range(0..100_000), rng.gen_range(0..50_000), i as u64))
        .collect()
}

fn append_batches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::new(64).durability(Durability::Buffered)).unwrap();
    let batch = events(10_000, 1);
    let mut group = c.benchmark_group("append_events");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("buffered_batch_10k", |b| {
        b.iter(|| store.append_events(&batch).unwrap())
    });
    group.finish();
}

/// Runs `per_thread` synced appends on each of `threads` threads; returns
/// the elapsed time.
fn sync_appends(store: &Arc<Store>, threads: usize, per_thread: u64) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    store.append_event(Event::new(t as u64, i, i)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed()
}

fn append_sync_threads(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), Options::new(64).durability(Durability::Sync)).unwrap());
    let mut group = c.benchmark_group("append_event_sync");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    let total: u64 = 1_600;
    group.throughput(Throughput::Elements(total));
    let mut rates = Vec::new();
    for threads in [1usize, 4, 16] {
        group.bench_function(format!("threads_{threads}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| sync_appends(&store, threads, total / threads as u64))
                    .sum()
            })
        });
        // The same measurement once more, side by side, for the ratio below.
        let fsyncs_before = store.stats().unwrap().wal_fsyncs;
        let elapsed = sync_appends(&store, threads, total / threads as u64);
        let fsyncs = store.stats().unwrap().wal_fsyncs - fsyncs_before;
        rates.push((
            threads,
            total as f64 / elapsed.as_secs_f64(),
            total as f64 / fsyncs as f64,
        ));
    }
    group.finish();
    let base = rates[0].1;
    for (threads, rate, per_fsync) in &rates {
        println!(
            "append_event Sync, {threads:>2} threads: {rate:>9.0} events/s ({:.1}x one thread), {per_fsync:.1} events per fsync",
            rate / base
        );
    }
}

criterion_group!(benches, append_batches, append_sync_threads);
criterion_main!(benches);
