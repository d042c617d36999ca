//! `Store::compact`: space comes back after deletions, answers stay exact,
//! and queries and writes carry on while it runs.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{normalized, vector_for};
use emberdb::{Durability, IndexSpec, Options, Query, Store};

const DIM: usize = 32;

fn opts() -> Options {
    Options::new(DIM)
        .durability(Durability::Buffered)
        .segment_rows(4_000)
        .index(IndexSpec::Flat)
}

#[test]
fn deleting_ninety_percent_then_compacting_gives_back_the_space() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("big"), opts()).unwrap();
    let n = 40_000u64;
    for id in 0..n {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
    }
    store.seal().unwrap();
    for id in (0..n).filter(|id| id % 10 != 0) {
        assert!(store.delete(id).unwrap());
    }
    store.flush().unwrap();
    let dry = store.compact(true).unwrap();
    assert_eq!(dry.segments_in, 10);
    assert_eq!(dry.rows_kept, 4_000);
    let report = store.compact(false).unwrap();
    assert_eq!(report.segments_out, 1);
    assert!(report.bytes_after < report.bytes_before);
    store.flush().unwrap();

    let fresh = Store::open(dir.path().join("fresh"), opts()).unwrap();
    for id in (0..n).step_by(10) {
        fresh.upsert(id, &vector_for(id, DIM)).unwrap();
    }
    fresh.seal().unwrap();
    fresh.flush().unwrap();
    let (ours, theirs) = (store.stats().unwrap(), fresh.stats().unwrap());
    println!(
        "compacted: {} bytes ({} segment, {} wal, {} meta); fresh: {} ({} segment, {} wal, {} meta); before compaction {}",
        ours.disk_bytes, ours.segment_bytes, ours.wal_bytes, ours.meta_bytes,
        theirs.disk_bytes, theirs.segment_bytes, theirs.wal_bytes, theirs.meta_bytes, report.bytes_before
    );
    assert!(
        ours.disk_bytes as f64 <= theirs.disk_bytes as f64 * 1.2,
        "the compacted store takes {} bytes, a fresh one with the same items {}",
        ours.disk_bytes,
        theirs.disk_bytes
    );
    for id in [0u64, 10, 39_990, 5] {
        assert_eq!(store.get(id).unwrap(), fresh.get(id).unwrap(), "item {id}");
    }
    let q = Query::vector(&vector_for(123_456, DIM)).k(20);
    assert_eq!(store.knn(&q).unwrap(), fresh.knn(&q).unwrap());
    // And after reopening, with nothing left over.
    drop(store);
    let store = Store::open(dir.path().join("big"), opts()).unwrap();
    assert!(
        store.recovery().removed_garbage.is_empty(),
        "{:?}",
        store.recovery().removed_garbage
    );
    assert_eq!(store.knn(&q).unwrap(), fresh.knn(&q).unwrap());
    assert_eq!(store.stats().unwrap().live_rows, 4_000);
    assert_eq!(store.stats().unwrap().sealed_segments, 1);
}

#[test]
fn compaction_runs_under_concurrent_queries_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), opts()).unwrap());
    for id in 0..12_000u64 {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
    }
    store.seal().unwrap();
    for id in (0..12_000u64).filter(|id| id % 3 == 0) {
        store.delete(id).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let probe = 1 + 3 * (n % 3_000);
                let hits = store.knn(&Query::item(probe).k(10)).unwrap();
                assert_eq!(hits.len(), 10);
                // Ids deleted before the reader started never come back.
                assert!(hits.iter().all(|h| h.id >= 12_000 || h.id % 3 != 0), "{hits:?}");
                let v = store.get(probe).unwrap().unwrap();
                assert_eq!(v, normalized(&vector_for(probe, DIM)));
                n += 1;
            }
            n
        })
    };
    // The writer updates and deletes items while compaction copies them.
    let writer = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut expected = BTreeMap::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 3_000 {
                let id = 2 + 3 * i; // ids 2 mod 3: live, not probed by the reader
                if i.is_multiple_of(2) {
                    store.upsert(id, &vector_for(id + 1_000_000, DIM)).unwrap();
                    expected.insert(id, Some(normalized(&vector_for(id + 1_000_000, DIM))));
                } else {
                    assert!(store.delete(id).unwrap());
                    expected.insert(id, None);
                }
                i += 1;
            }
            expected
        })
    };
    let report = store.compact(false).unwrap();
    assert!(report.segments_in >= 2, "{report:?}");
    stop.store(true, Ordering::Relaxed);
    let queries = reader.join().unwrap();
    let expected = writer.join().unwrap();
    assert!(queries > 0);
    let check = |store: &Store| {
        for (id, want) in &expected {
            assert_eq!(&store.get(*id).unwrap(), want, "item {id}");
        }
        for id in (0..12_000u64).filter(|id| id % 3 == 0).take(200) {
            assert_eq!(store.get(id).unwrap(), None);
        }
        let q = Query::vector(&vector_for(7, DIM)).k(50);
        let hits = store.knn(&q).unwrap();
        assert!(hits.iter().all(|h| expected.get(&h.id).is_none_or(|w| w.is_some())));
    };
    check(&store);
    let store = Arc::into_inner(store).unwrap();
    drop(store);
    let store = Store::open(dir.path(), opts()).unwrap();
    check(&store);
    assert!(store.recovery().removed_garbage.is_empty());
}
