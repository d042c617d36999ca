//! The Faiss layer's contract: index files persist across reopen without a
//! rebuild, a corrupted or truncated index file is rebuilt and queries stay
//! correct, tombstones are honoured (k live hits even with 90% of a segment
//! deleted), and queries run while segments are sealed and indexed.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{clustered_vectors, files_with_prefix, flip_bit};
use emberdb::{Durability, IndexSpec, Metric, Options, Query, Store};

const DIM: usize = 32;
const ROWS: usize = 12_000;

fn opts(spec: IndexSpec) -> Options {
    Options::new(DIM)
        .metric(Metric::L2)
        .durability(Durability::None)
        .segment_rows(ROWS)
        .flat_below(1_000)
        .index(spec)
}

/// A store with one indexed segment of ROWS rows; returns the data.
fn indexed_store(dir: &std::path::Path, spec: IndexSpec) -> Vec<Vec<f32>> {
    let data = clustered_vectors(ROWS, DIM, 9);
    let store = Store::open(dir, opts(spec)).unwrap();
    for (id, v) in data.iter().enumerate() {
        store.upsert(id as u64, v).unwrap();
    }
    store.seal().unwrap();
    store.wait_for_indexes();
    let stats = store.stats().unwrap();
    assert_eq!((stats.indexed_segments, stats.index_builds), (1, 1), "{stats:?}");
    data
}

fn top_ids(store: &Store, q: &[f32], exact: bool) -> Vec<u64> {
    let query = Query::vector(q).k(10);
    let query = if exact { query.exact() } else { query };
    store.knn(&query).unwrap().iter().map(|h| h.id).collect()
}

#[test]
fn index_files_survive_reopen_without_rebuild() {
    for spec in [IndexSpec::hnsw(), IndexSpec::ivf()] {
        let dir = tempfile::tempdir().unwrap();
        let data = indexed_store(dir.path(), spec);
        {
            let store = Store::open(dir.path(), opts(spec)).unwrap();
            store.wait_for_indexes();
            let stats = store.stats().unwrap();
            assert_eq!((stats.index_builds, stats.index_loads), (0, 1), "{spec:?}: {stats:?}");
            let mut agree = 0;
            for q in &data[..50] {
                let exact = top_ids(&store, q, true);
                agree += top_ids(&store, q, false).iter().filter(|id| exact.contains(id)).count();
            }
            assert!(agree >= 450, "{spec:?}: the loaded index answers badly ({agree}/500)");
        }
        // Other index settings: the file no longer fits and is rebuilt.
        let other = match spec {
            IndexSpec::Ivf { nprobe, .. } => IndexSpec::Ivf {
                nlist: Some(64),
                nprobe,
            },
            _ => IndexSpec::Hnsw {
                m: 16,
                ef_construction: 40,
                ef_search: 64,
            },
        };
        let store = Store::open(dir.path(), opts(other)).unwrap();
        store.wait_for_indexes();
        assert_eq!(
            store.stats().unwrap().index_builds,
            1,
            "{spec:?}: rebuilt for new settings"
        );
        drop(store);
        let store = Store::open(dir.path(), opts(other)).unwrap();
        store.wait_for_indexes();
        assert_eq!(store.stats().unwrap().index_loads, 1);
    }
}

#[test]
fn a_corrupted_or_truncated_index_file_is_rebuilt_and_queries_stay_correct() {
    let dir = tempfile::tempdir().unwrap();
    let data = indexed_store(dir.path(), IndexSpec::hnsw());
    let index_file = files_with_prefix(&dir.path().join("segments"), "seg-")
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .unwrap();
    let len = std::fs::metadata(&index_file).unwrap().len();
    type Damage<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let damage: [Damage; 3] = [
        ("flipped body bit", Box::new(|| flip_bit(&index_file, len / 2))),
        ("flipped header bit", Box::new(|| flip_bit(&index_file, 13))),
        (
            "truncated",
            Box::new(|| {
                let f = std::fs::OpenOptions::new().write(true).open(&index_file).unwrap();
                f.set_len(len / 3).unwrap();
            }),
        ),
    ];
    for (what, hurt) in damage.iter() {
        hurt();
        let store = Store::open(dir.path(), opts(IndexSpec::hnsw())).unwrap();
        // Until the rebuild is in, the segment is searched exactly.
        for q in &data[..5] {
            assert_eq!(top_ids(&store, q, false).len(), 10, "{what}");
        }
        store.wait_for_indexes();
        let stats = store.stats().unwrap();
        assert_eq!(
            (stats.index_builds, stats.index_loads, stats.indexed_segments),
            (1, 0, 1),
            "{what}: {stats:?}"
        );
        let mut agree = 0;
        for q in &data[..50] {
            let exact = top_ids(&store, q, true);
            agree += top_ids(&store, q, false).iter().filter(|id| exact.contains(id)).count();
        }
        assert!(agree >= 450, "{what}: recall {agree}/500 after the rebuild");
        assert_eq!(
            std::fs::metadata(&index_file).unwrap().len(),
            len,
            "{what}: rewritten whole"
        );
    }
}

#[test]
fn deleted_and_updated_items_never_come_back_and_k_hits_survive_90_percent_deletes() {
    for spec in [IndexSpec::hnsw(), IndexSpec::ivf()] {
        let dir = tempfile::tempdir().unwrap();
        let data = indexed_store(dir.path(), spec);
        let store = Store::open(dir.path(), opts(spec)).unwrap();
        store.wait_for_indexes();
        // Delete 90% of the segment and move some survivors elsewhere.
        for id in 0..ROWS as u64 {
            if id % 10 != 0 {
                assert!(store.delete(id).unwrap());
            }
        }
        let far: Vec<f32> = vec![100.0; DIM];
        for id in (0..ROWS as u64).step_by(100) {
            store.upsert(id, &far).unwrap();
        }
        for (i, q) in data.iter().enumerate().step_by(97) {
            let hits = store.knn(&Query::vector(q).k(10)).unwrap();
            assert_eq!(hits.len(), 10, "{spec:?} query {i}");
            for h in &hits {
                assert_eq!(h.id % 10, 0, "{spec:?}: deleted item {} came back", h.id);
                if h.id % 100 == 0 {
                    let expected: f32 = q.iter().map(|x| (x - 100.0) * (x - 100.0)).sum();
                    assert!(
                        (h.score - expected).abs() < 1e-2 * expected,
                        "{spec:?}: stale vector of {}",
                        h.id
                    );
                }
            }
            assert_eq!(
                hits.iter().map(|h| h.id).collect::<Vec<_>>(),
                top_ids(&store, q, true),
                "{spec:?} query {i}"
            );
        }
        // A lighter delete rate still goes through the index, filtered.
        let dir = tempfile::tempdir().unwrap();
        indexed_store(dir.path(), spec);
        let store = Store::open(dir.path(), opts(spec)).unwrap();
        store.wait_for_indexes();
        for id in (0..ROWS as u64).step_by(3) {
            store.delete(id).unwrap();
        }
        for q in data.iter().step_by(211) {
            let hits = store.knn(&Query::vector(q).k(10)).unwrap();
            assert_eq!(hits.len(), 10);
            assert!(hits.iter().all(|h| h.id % 3 != 0), "{spec:?}: a deleted item came back");
        }
    }
}

#[test]
fn per_query_knobs_change_the_search() {
    let dir = tempfile::tempdir().unwrap();
    let data = indexed_store(dir.path(), IndexSpec::hnsw());
    let store = Store::open(dir.path(), opts(IndexSpec::hnsw())).unwrap();
    store.wait_for_indexes();
    let recall = |ef: usize| {
        let mut agree = 0;
        for q in data.iter().step_by(61) {
            let exact = top_ids(&store, q, true);
            let ann = store.knn(&Query::vector(q).k(10).ef_search(ef)).unwrap();
            agree += ann.iter().filter(|h| exact.contains(&h.id)).count();
        }
        agree
    };
    let (low, high) = (recall(10), recall(400));
    assert!(low < high, "ef_search 10 ({low}) should miss more than 400 ({high})");
    assert!(matches!(store.knn(&Query::vector(&data[0]).k(10).nprobe(1)), Ok(h) if h.len() == 10));
}

#[test]
fn queries_stay_consistent_while_segments_are_sealed_and_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let data = clustered_vectors(40_000, DIM, 11);
    let store = Arc::new(Store::open(dir.path(), opts(IndexSpec::hnsw()).segment_rows(4_000)).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (store, done, data) = (store.clone(), done.clone(), data.clone());
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !done.load(Ordering::SeqCst) || n < 20 {
                    let q = &data[(n * 7 + r) % data.len()];
                    // Rows are only added, so at least those live before
                    // the query are found.
                    let live_before = store.stats().unwrap().live_rows;
                    let hits = store.knn(&Query::vector(q).k(10)).unwrap();
                    assert!(hits.len() >= 10.min(live_before) && hits.len() <= 10);
                    let mut ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    assert_eq!(ids.len(), hits.len(), "duplicates");
                    for h in &hits {
                        let v = &data[h.id as usize];
                        let d: f32 = q.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum();
                        assert!((d - h.score).abs() < 1e-3, "wrong score for {}", h.id);
                    }
                    assert!(hits.windows(2).all(|w| w[0].score <= w[1].score));
                    n += 1;
                }
            })
        })
        .collect();
    for (id, v) in data.iter().enumerate() {
        store.upsert(id as u64, v).unwrap();
    }
    store.wait_for_indexes();
    done.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    let stats = store.stats().unwrap();
    assert!(stats.indexed_segments >= 9, "{stats:?}");
}
