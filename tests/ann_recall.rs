//! Faiss indexes with default parameters reach recall@10 >= 0.95 against
//! exact search on a clustered data set of 50,000 x 64, for every metric.

mod common;

use std::time::Instant;

use common::clustered_vectors;
use emberdb::{Durability, IndexSpec, Metric, Options, Query, Store};

const N: usize = 50_000;
const DIM: usize = 64;
const QUERIES: usize = 200;

fn recall_at_10(store: &Store, queries: &[Vec<f32>]) -> f64 {
    let mut hits = 0;
    for q in queries {
        let exact: Vec<u64> = store
            .knn(&Query::vector(q).k(10).exact())
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        let ann = store.knn(&Query::vector(q).k(10)).unwrap();
        assert_eq!(ann.len(), 10);
        hits += ann.iter().filter(|h| exact.contains(&h.id)).count();
    }
    hits as f64 / (10 * queries.len()) as f64
}

fn check(spec: IndexSpec) {
    let data = clustered_vectors(N + QUERIES, DIM, 5);
    let (base, queries) = data.split_at(N);
    for metric in [Metric::InnerProduct, Metric::L2, Metric::Cosine] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            Options::new(DIM)
                .metric(metric)
                .durability(Durability::None)
                .segment_rows(N)
                .index(spec),
        )
        .unwrap();
        for (id, v) in base.iter().enumerate() {
            store.upsert(id as u64, v).unwrap();
        }
        store.seal().unwrap();
        let start = Instant::now();
        store.wait_for_indexes();
        let built = start.elapsed();
        let stats = store.stats().unwrap();
        assert_eq!((stats.indexed_segments, stats.index_builds), (1, 1), "{stats:?}");
        let recall = recall_at_10(&store, queries);
        eprintln!("{spec:?} {metric:?}: recall@10 {recall:.3}, index built in {built:.1?}");
        assert!(recall >= 0.95, "{spec:?} {metric:?}: recall@10 {recall:.3} < 0.95");
    }
}

#[test]
fn hnsw_default_recall() {
    check(IndexSpec::hnsw());
}

#[test]
fn ivf_default_recall() {
    check(IndexSpec::ivf());
}
