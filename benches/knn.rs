//! Exact knn over 100,000 x 64 vectors, k = 10, from 1 and 2 threads.
//!
//! `cargo bench --bench knn`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use emberdb::{Durability, IndexSpec, Metric, Options, Query, Store};
use rand::{Rng, SeedableRng};

const ROWS: u64 = 100_000;
const DIM: usize = 64;

fn queries_on_threads(store: &Arc<Store>, queries: &Arc<Vec<Vec<f32>>>, threads: usize, per_thread: usize) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, queries) = (store.clone(), queries.clone());
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let q = &queries[(t * per_thread + i) % queries.len()];
                    std::hint::black_box(store.knn(&Query::vector(q).k(10)).unwrap());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed()
}

fn exact_knn(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(
            dir.path(),
            // Exact search: no index (`ember bench` measures the indexes).
            Options::new(DIM)
                .metric(Metric::InnerProduct)
                .durability(Durability::None)
                .index(IndexSpec::Flat),
        )
        .unwrap(),
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut random = |n: usize| -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
            .collect()
    };
    for (id, v) in random(ROWS as usize).iter().enumerate() {
        store.upsert(id as u64, v).unwrap();
    }
    store.seal().unwrap();
    let queries = Arc::new(random(256));

    let mut group = c.benchmark_group("knn_exact_100k_x_64");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    let per_run = 64;
    group.throughput(Throughput::Elements(per_run as u64));
    let mut rates = Vec::new();
    for threads in [1usize, 2] {
        group.bench_function(format!("threads_{threads}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| queries_on_threads(&store, &queries, threads, per_run / threads))
                    .sum()
            })
        });
        let elapsed = queries_on_threads(&store, &queries, threads, 1024 / threads);
        rates.push((threads, 1024.0 / elapsed.as_secs_f64()));
    }
    group.finish();
    for (threads, qps) in &rates {
        println!(
            "exact knn 100k x 64, {threads} thread(s): {qps:.0} queries/s ({:.2}x one thread)",
            qps / rates[0].1
        );
    }
}

criterion_group!(benches, exact_knn);
criterion_main!(benches);
