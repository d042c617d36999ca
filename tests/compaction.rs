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
    let dry = store.compact_with(&emberdb::CompactOptions::new().dry_run()).unwrap();
    assert_eq!(dry.segments_in, 10);
    assert_eq!(dry.rows_kept, 4_000);
    let report = store.compact().unwrap();
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
    let report = store.compact().unwrap();
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

/// Merging many small segments moved every row, and before the fix every
/// moved row's registry entry was rewritten; sled kept the old versions in
/// its log, and a store of 240 small segments came out of compaction larger
/// than it went in (83.3 MB -> 86.3 MB in the red-team run; 6.98 -> 7.51 MB
/// here). Segments then forwarded their rows (one record per old segment);
/// since format 5 a moved row costs the metadata nothing (the new segment's
/// id order places it), and compaction never grows a store except by the
/// index files it builds for merged segments that had none.
#[test]
fn merging_many_small_segments_never_grows_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small");
    let store = Store::open(&path, opts().segment_rows(16_000)).unwrap();
    let mut id = 0u64;
    for _ in 0..240 {
        for _ in 0..100 {
            store.upsert(id, &vector_for(id, DIM)).unwrap();
            id += 1;
        }
        store.seal().unwrap();
    }
    store.flush().unwrap();
    let before = store.stats().unwrap();
    assert_eq!(before.sealed_segments, 240);
    let report = store.compact().unwrap();
    assert_eq!(report.segments_in, 240);
    assert_eq!(report.rows_kept, 24_000);
    let after = store.stats().unwrap();
    println!(
        "compaction of 240 small segments: {} -> {} bytes; segments {} -> {}, metadata {} -> {}",
        report.bytes_before,
        report.bytes_after,
        before.segment_bytes,
        after.segment_bytes,
        before.meta_bytes,
        after.meta_bytes
    );
    assert!(
        std::fs::read_dir(path.join("segments")).unwrap().all(|e| e
            .unwrap()
            .path()
            .extension()
            .is_none_or(|e| e != "idx")),
        "a Flat store builds no index"
    );
    assert!(after.segment_bytes <= before.segment_bytes);
    assert!(
        report.bytes_after <= report.bytes_before,
        "compaction grew the store from {} to {} bytes (metadata {} -> {})",
        report.bytes_before,
        report.bytes_after,
        before.meta_bytes,
        after.meta_bytes
    );
    // Every item is still found, after a reopen too.
    drop(store);
    let store = Store::open(&path, opts().segment_rows(16_000)).unwrap();
    assert!(store.verify().unwrap().problems.is_empty());
    for probe in [0u64, 12_345, 23_999] {
        assert_eq!(store.get(probe).unwrap(), Some(normalized(&vector_for(probe, DIM))));
    }
}

/// Rows merged twice (once more with the segment they were merged into)
/// are found in their new segment's id order, and updates, deletes,
/// queries, reopening and a later rewrite all work on them. (Format 4
/// found them through a chain of forwards.)
#[test]
fn merged_rows_stay_reachable_through_merges_updates_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain");
    let opts = || opts().segment_rows(100_000);
    let store = Store::open(&path, opts()).unwrap();
    let mut model: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
    let put = |store: &Store, model: &mut BTreeMap<u64, Vec<f32>>, id: u64, seed: u64| {
        store.upsert(id, &vector_for(seed, DIM)).unwrap();
        model.insert(id, normalized(&vector_for(seed, DIM)));
    };
    for generation in 0..2u64 {
        for s in 0..20u64 {
            for r in 0..50u64 {
                let id = generation * 1_000 + s * 50 + r;
                put(&store, &mut model, id, id);
            }
            store.seal().unwrap();
        }
        // The first merge packs 20 segments into one; the second merges
        // that one (still small) and 20 new ones.
        let report = store.compact().unwrap();
        assert_eq!(report.segments_out, 1, "generation {generation}");
        assert_eq!(store.stats().unwrap().sealed_segments, 1);
    }
    let check = |store: &Store, model: &BTreeMap<u64, Vec<f32>>| {
        for (id, v) in model {
            assert_eq!(store.get(*id).unwrap().as_ref(), Some(v), "item {id}");
        }
        let hits = store.knn(&Query::item(1_234).k(5)).unwrap();
        assert_eq!(hits.len(), 5);
        assert!(
            store.verify().unwrap().problems.is_empty(),
            "{:?}",
            store.verify().unwrap().problems
        );
    };
    check(&store, &model);
    // Update and delete rows that were moved twice.
    for id in [3u64, 777, 1_003, 1_999] {
        put(&store, &mut model, id, id + 50_000);
    }
    for id in [10u64, 1_010] {
        assert!(store.delete(id).unwrap());
        model.remove(&id);
        assert_eq!(store.get(id).unwrap(), None);
    }
    check(&store, &model);
    drop(store);
    let store = Store::open(&path, opts()).unwrap();
    check(&store, &model);
    // A rewrite with dead rows moves the live ones again.
    store.seal().unwrap();
    store.compact().unwrap();
    check(&store, &model);
    drop(store);
    let store = Store::open(&path, opts()).unwrap();
    check(&store, &model);
    assert_eq!(store.ids().unwrap().len(), model.len());
}
