//! Attribute filters (`Query::filter`): exact answers equal a filtered
//! brute force at every selectivity, the default (indexed) mode keeps its
//! recall, `k` comes back whenever `k` items match, and attributes are
//! logged, persisted and snapshotted.

mod common;

use common::{clustered_vectors, planted_events};
use emberdb::{Durability, Error, Filter, IndexSpec, Metric, Options, Query, Store, TrainOptions};

const DIM: usize = 16;
// Large enough that a 10% filter (2,400 items) plans through the indexes.
const N: usize = 24_000;

/// Item `id` matches `share` ("50", "10", "1", "0.1" percent) when it is a
/// multiple of 2, 10, 100, 1000: independent of its vector.
fn shares(id: u64) -> Vec<(&'static str, String)> {
    let mut out = vec![("year", (1990 + id % 30).to_string())];
    for (name, every) in [("50", 2), ("10", 10), ("1", 100), ("0.1", 1000)] {
        if id.is_multiple_of(every) {
            out.push(("share", name.to_string()));
        }
    }
    out
}

fn store_with_attributes(dir: &std::path::Path, index: IndexSpec) -> (Store, Vec<Vec<f32>>) {
    let store = Store::open(
        dir,
        Options::new(DIM)
            .metric(Metric::Cosine)
            .index(index)
            .durability(Durability::None)
            .segment_rows(6_000)
            .flat_below(100),
    )
    .unwrap();
    let vectors = clustered_vectors(N, DIM, 11);
    for (id, v) in vectors.iter().enumerate() {
        store.upsert(id as u64, v).unwrap();
        let attrs = shares(id as u64);
        let pairs: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        store.set_attributes(id as u64, &pairs).unwrap();
    }
    store.wait_for_indexes();
    (store, vectors)
}

/// The `k` nearest ids to `q` among those `allow` lets through, by cosine.
fn brute_force(vectors: &[Vec<f32>], q: &[f32], k: usize, allow: &dyn Fn(u64) -> bool) -> Vec<u64> {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut scored: Vec<(f32, u64)> = vectors
        .iter()
        .enumerate()
        .filter(|(id, _)| allow(*id as u64))
        .map(|(id, v)| {
            let dot: f32 = v.iter().zip(q).map(|(a, b)| a * b).sum();
            (dot / (norm(v) * norm(q)), id as u64)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, id)| id).collect()
}

fn every(share: &str) -> u64 {
    match share {
        "50" => 2,
        "10" => 10,
        "1" => 100,
        _ => 1000,
    }
}

#[test]
fn exact_filtered_answers_equal_brute_force_and_default_mode_keeps_recall() {
    for index in [IndexSpec::hnsw(), IndexSpec::ivf()] {
        let dir = tempfile::tempdir().unwrap();
        let (store, vectors) = store_with_attributes(dir.path(), index);
        let queries = clustered_vectors(40, DIM, 99);
        let (mut found, mut wanted) = (0, 0);
        for q in &queries {
            let truth = brute_force(&vectors, q, 10, &|_| true);
            let hits = store.knn(&Query::vector(q).k(10)).unwrap();
            found += hits.iter().filter(|h| truth.contains(&h.id)).count();
            wanted += truth.len();
        }
        eprintln!("{index:?}: unfiltered recall {:.3}", found as f64 / wanted as f64);
        for share in ["50", "10", "1", "0.1"] {
            let m = every(share);
            let allow = |id: u64| id.is_multiple_of(m);
            let (mut found, mut wanted) = (0, 0);
            for q in &queries {
                let truth = brute_force(&vectors, q, 10, &allow);
                let filter = || Filter::eq("share", share);
                let exact: Vec<u64> = store
                    .knn(&Query::vector(q).k(10).exact().filter(filter()))
                    .unwrap()
                    .iter()
                    .map(|h| h.id)
                    .collect();
                assert_eq!(exact, truth, "{index:?}, share {share}%");
                let hits = store.knn(&Query::vector(q).k(10).filter(filter())).unwrap();
                // k whenever k match (24 items match at 0.1%).
                assert_eq!(hits.len(), truth.len(), "{index:?}, share {share}%");
                assert!(hits.iter().all(|h| allow(h.id)), "{index:?}, share {share}%");
                found += hits.iter().filter(|h| truth.contains(&h.id)).count();
                wanted += truth.len();
            }
            let recall = found as f64 / wanted as f64;
            assert!(recall >= 0.95, "{index:?}, share {share}%: recall {recall:.3}");
        }
    }
}

#[test]
fn combined_filters_and_every_query_kind() {
    let dir = tempfile::tempdir().unwrap();
    let (store, vectors) = store_with_attributes(dir.path(), IndexSpec::hnsw());
    // 10% share, not in 1990..=1999: by year % 30 >= 10.
    let filter = || Filter::eq("share", "10").and(Filter::not(Filter::range("year", 1990, 1999)));
    let allow = |id: u64| id.is_multiple_of(10) && id % 30 >= 10;
    for exact in [true, false] {
        let q = Query::vector(&vectors[7]).k(25).filter(filter());
        let hits = store.knn(&if exact { q.exact() } else { q }).unwrap();
        assert_eq!(hits.len(), 25);
        assert!(hits.iter().all(|h| allow(h.id)));
    }
    let truth = brute_force(&vectors, &vectors[7], 25, &allow);
    let exact: Vec<u64> = store
        .knn(&Query::vector(&vectors[7]).k(25).exact().filter(filter()))
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(exact, truth);
    // Item queries: the item itself stays out, the filter holds.
    let hits = store
        .knn(
            &Query::item(20)
                .k(10)
                .filter(Filter::eq("share", "1").or(Filter::eq("share", "0.1"))),
        )
        .unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h.id % 100 == 0 && h.id != 20));
    // Two filter calls combine with `and`.
    let hits = store
        .knn(
            &Query::vector(&vectors[1])
                .k(5)
                .filter(Filter::eq("share", "50"))
                .filter(Filter::eq("share", "1")),
        )
        .unwrap();
    assert!(hits.iter().all(|h| h.id % 100 == 0));
    // Exclusions and filters together.
    let banned: Vec<u64> = hits.iter().map(|h| h.id).collect();
    let again = store
        .knn(
            &Query::vector(&vectors[1])
                .k(5)
                .filter(Filter::eq("share", "1"))
                .exclude(&banned),
        )
        .unwrap();
    assert_eq!(again.len(), 5);
    assert!(again.iter().all(|h| h.id % 100 == 0 && !banned.contains(&h.id)));
}

#[test]
fn unknown_keys_match_nothing_and_bad_filters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, vectors) = store_with_attributes(dir.path(), IndexSpec::Flat);
    let q = || Query::vector(&vectors[0]).k(10);
    assert!(store.knn(&q().filter(Filter::eq("colour", "red"))).unwrap().is_empty());
    assert!(store.knn(&q().filter(Filter::eq("share", "7"))).unwrap().is_empty());
    // Everything but nothing: a `not` of an unknown key lets all through.
    assert_eq!(
        store
            .knn(&q().filter(Filter::not(Filter::eq("colour", "red"))))
            .unwrap()
            .len(),
        10
    );
    assert!(matches!(
        store.knn(&q().filter(Filter::eq("", "x"))),
        Err(Error::InvalidQuery(_))
    ));
    assert!(matches!(
        store.knn(&q().filter(Filter::range("year", 2000, 1990))),
        Err(Error::InvalidQuery(_))
    ));
    // Bad attributes change nothing.
    let before = store.attributes(3);
    assert!(matches!(
        store.set_attributes(3, &[("", "x")]),
        Err(Error::InvalidAttributes { item: 3, .. })
    ));
    let long = "v".repeat(300);
    assert!(store.set_attributes(3, &[("k", long.as_str())]).is_err());
    assert_eq!(store.attributes(3), before);
}

#[test]
fn attributes_are_replaced_persisted_and_snapshotted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let opts = || Options::new(4).durability(Durability::Sync);
    {
        let store = Store::open(&path, opts()).unwrap();
        for id in 0..50u64 {
            store.upsert(id, &[1.0, id as f32, 0.5, 0.0]).unwrap();
        }
        store
            .set_attributes(1, &[("genre", "Comedy"), ("genre", "Drama"), ("title", "Toy Story")])
            .unwrap();
        store.set_attributes(2, &[("genre", "Comedy")]).unwrap();
        store.set_attributes(2, &[("genre", "Horror")]).unwrap();
        store.set_attributes(3, &[("genre", "Comedy")]).unwrap();
        store.set_attributes(3, &[]).unwrap();
        store.flush().unwrap();
        // After the checkpoint: only in the log.
        store.set_attributes(4, &[("genre", "Comedy")]).unwrap();
        store.snapshot(dir.path().join("snap")).unwrap();
    }
    for p in [path.clone(), dir.path().join("snap")] {
        let store = Store::open(&p, opts()).unwrap();
        assert_eq!(store.title(1).as_deref(), Some("Toy Story"));
        assert_eq!(store.attributes(2), vec![("genre".to_string(), "Horror".to_string())]);
        assert!(store.attributes(3).is_empty());
        let comedies: Vec<u64> = store
            .knn(
                &Query::vector(&[1.0, 0.0, 0.0, 0.0])
                    .k(10)
                    .filter(Filter::eq("genre", "Comedy")),
            )
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        let mut sorted = comedies.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![1, 4], "{p:?}");
        assert_eq!(store.stats().unwrap().items_with_attributes, 3);
    }
}

#[test]
fn filters_apply_to_trained_spaces_and_deleted_items_stay_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        Options::trained(16)
            .train_options(TrainOptions::default().epochs(5).threads(1))
            .durability(Durability::None),
    )
    .unwrap();
    store.append_events(&planted_events(100, 5, 20, 10, 2)).unwrap();
    for item in 0..100u64 {
        let parity = if item % 2 == 0 { "even" } else { "odd" };
        store.set_attributes(item, &[("parity", parity)]).unwrap();
    }
    store.train().unwrap();
    store.delete(4).unwrap();
    for q in [Query::user(0), Query::seeds(0), Query::item(2), Query::popular()] {
        let hits = store.knn(&q.clone().k(8).filter(Filter::eq("parity", "even"))).unwrap();
        assert_eq!(hits.len(), 8, "{q:?}");
        assert!(hits.iter().all(|h| h.id % 2 == 0 && h.id != 4), "{q:?}: {hits:?}");
    }
}
