//! Opening a store that holds 1,000,000 x 64 vectors with an empty log tail:
//! the segments are memory-mapped, not read.
//!
//! `cargo bench --bench open`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use emberdb::{Durability, Metric, Options, Store};
use rand::{Rng, SeedableRng};

const ROWS: u64 = 1_000_000;
const DIM: usize = 64;

fn opts() -> Options {
    Options::new(DIM)
        .metric(Metric::InnerProduct)
        .durability(Durability::Buffered)
}

fn open_million(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), opts()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut v = vec![0f32; DIM];
        for id in 0..ROWS {
            v.iter_mut().for_each(|x| *x = rng.gen_range(-1.0..1.0));
            store.upsert(id, &v).unwrap();
        }
        store.seal().unwrap();
        // Let the background HNSW builds finish so they do not load the
        // machine while opens are timed. (Opening never waits for index
        // files: they are loaded in the background.)
        store.wait_for_indexes();
        let stats = store.stats().unwrap();
        assert_eq!(stats.live_rows, ROWS as usize);
        println!(
            "store: {} sealed segments, {} bytes on disk",
            stats.sealed_segments, stats.disk_bytes
        );
    }
    let mut group = c.benchmark_group("open");
    group.sample_size(20).measurement_time(Duration::from_secs(20));
    group.bench_function("1m_x_64_empty_wal", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let store = Store::open(dir.path(), opts()).unwrap();
                total += start.elapsed();
                assert_eq!(store.recovery().replayed_bytes, 0);
                drop(store);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, open_million);
criterion_main!(benches);
