//! `Query::exclude(&ids)`: a per-query exclusion list, honoured by every
//! query kind, with `k` still returned whenever `k` other items qualify,
//! and through the indexes as through exact scans.

mod common;

use common::{clustered_vectors, planted_events};
use emberdb::{Durability, IndexSpec, Metric, Options, Query, SpaceSpec, Store, TrainOptions};

#[test]
fn excluded_ids_never_come_back_and_k_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        Options::trained(16)
            .train_options(TrainOptions::default().epochs(5).threads(1))
            .durability(Durability::None)
            .segment_rows(500)
            .flat_below(100)
            .space("text", SpaceSpec::host(16).metric(Metric::L2).index(IndexSpec::hnsw())),
    )
    .unwrap();
    let vectors = clustered_vectors(2_000, 16, 4);
    for (id, v) in vectors.iter().enumerate() {
        store.space("text").unwrap().upsert(id as u64, v).unwrap();
    }
    store.wait_for_indexes();
    store.append_events(&planted_events(100, 5, 20, 10, 2)).unwrap();
    store.train().unwrap();

    // The nearest 30 of item 0 in the host space, then the same query
    // with the first 20 of them excluded.
    for exact in [false, true] {
        let base = |q: Query| if exact { q.exact() } else { q };
        let plain = store.knn(&base(Query::item(0).k(30).space("text"))).unwrap();
        let banned: Vec<u64> = plain.iter().take(20).map(|h| h.id).collect();
        let hits = store
            .knn(&base(Query::item(0).k(30).space("text").exclude(&banned)))
            .unwrap();
        assert_eq!(hits.len(), 30, "exact {exact}");
        assert!(hits.iter().all(|h| !banned.contains(&h.id)), "exact {exact}");
        // The first ten not excluded were in the plain answer too.
        assert_eq!(
            &plain[20..30].iter().map(|h| h.id).collect::<Vec<_>>(),
            &hits[..10].iter().map(|h| h.id).collect::<Vec<_>>()
        );
        let by_vector = store
            .knn(&base(Query::vector(&vectors[0]).k(30).space("text").exclude(&banned)))
            .unwrap();
        assert_eq!(by_vector.len(), 30);
        assert!(by_vector.iter().all(|h| !banned.contains(&h.id)));
    }
    // Trained space: user, seeds and item queries.
    let ids: Vec<u64> = store.knn(&Query::user(0).k(10)).unwrap().iter().map(|h| h.id).collect();
    assert_eq!(ids.len(), 10);
    for q in [Query::user(0), Query::seeds(0), Query::item(3)] {
        let hits = store.knn(&q.clone().k(10).exclude(&ids).exclude(&[3])).unwrap();
        assert_eq!(hits.len(), 10, "{q:?}");
        assert!(hits.iter().all(|h| !ids.contains(&h.id) && h.id != 3), "{q:?}");
    }
}
