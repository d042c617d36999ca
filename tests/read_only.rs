//! `Store::open_read_only`: answers like a writable open, refuses every
//! write with `Error::ReadOnly`, and leaves every byte of the store's
//! directory as it found it (no `LOCK` created, no torn tail cut, no
//! leftover removed, sled's files untouched). Read-only opens share the
//! store; a writer excludes them and they exclude it.

mod common;

use std::path::Path;

use common::{contents, copy_dir, files_with_prefix, vector_for};
use emberdb::{Durability, Error, Event, IndexSpec, Metric, Options, Query, Store};

const DIM: usize = 8;

fn opts() -> Options {
    Options::new(DIM)
        .metric(Metric::L2)
        .durability(Durability::Buffered)
        .segment_rows(300)
        .flat_below(100)
        .index(IndexSpec::hnsw())
}

/// A closed store with indexed sealed segments, a growing segment, user
/// histories and a log tail after its checkpoint (closed like a crash).
fn make_store(dir: &Path) {
    let store = Store::open(dir, opts()).unwrap();
    for id in 0..1_000u64 {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
        store.append_event(Event::new(id % 20, id, id)).unwrap();
    }
    store.wait_for_indexes();
    store.flush().unwrap();
    for id in 1_000..1_050u64 {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
    }
    store.delete(7).unwrap();
    store.close_without_checkpoint();
    // The `LOCK` a writer leaves stays; a snapshot has none (tested below).
}

fn answers(store: &Store) -> Vec<Vec<(u64, u32)>> {
    [0u64, 9, 500, 1_020]
        .iter()
        .map(|&id| {
            let q = Query::vector(&vector_for(id, DIM)).k(10);
            store
                .knn(&q)
                .unwrap()
                .into_iter()
                .map(|h| (h.id, h.score.to_bits()))
                .collect()
        })
        .collect()
}

#[test]
fn a_read_only_open_answers_as_a_writable_one_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("s");
    make_store(&store_dir);
    let reference_dir = dir.path().join("reference");
    copy_dir(&store_dir, &reference_dir);
    let before = contents(&store_dir);

    let ro = Store::open_read_only(&store_dir).unwrap();
    assert!(ro.is_read_only());
    let writable = Store::open(&reference_dir, Options::existing()).unwrap();
    writable.wait_for_indexes();
    assert_eq!(answers(&ro), answers(&writable));
    assert_eq!(ro.get(1_049).unwrap(), Some(vector_for(1_049, DIM)));
    assert_eq!(ro.get(7).unwrap(), None);
    assert_eq!(ro.history(3).unwrap(), writable.history(3).unwrap());
    assert_eq!(ro.ids().unwrap(), writable.ids().unwrap());
    let report = ro.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let stats = ro.stats().unwrap();
    assert_eq!(stats.rows, writable.stats().unwrap().rows);

    let refused = |what: &str, outcome: Result<(), Error>| match outcome {
        Err(Error::ReadOnly { path }) => assert_eq!(path, store_dir, "{what}"),
        other => panic!("{what}: expected ReadOnly, got {other:?}"),
    };
    refused("upsert", ro.upsert(5_000, &vector_for(1, DIM)));
    refused("delete", ro.delete(3).map(drop));
    refused("append_event", ro.append_event(Event::new(1, 2, 3)));
    refused("append_events", ro.append_events(&[Event::new(1, 2, 3)]));
    refused("set_user_features", ro.set_user_features(1, &[("a", "b")]));
    refused("flush", ro.flush());
    refused("seal", ro.seal());
    refused("compact", ro.compact().map(drop));
    refused("merge_runs", ro.merge_runs().map(drop));
    refused("snapshot", ro.snapshot(dir.path().join("snap")).map(drop));
    refused(
        "space upsert",
        ro.space("default").unwrap().upsert(5_001, &vector_for(1, DIM)),
    );
    assert!(!dir.path().join("snap").exists());
    // Refused writes changed nothing in memory either.
    assert_eq!(ro.get(5_000).unwrap(), None);
    assert!(ro.get(3).unwrap().is_some());
    drop(ro);
    drop(writable);
    assert_eq!(
        contents(&store_dir),
        before,
        "a read-only open changed the store's files"
    );
}

#[test]
fn a_torn_tail_and_leftover_files_are_reported_and_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path());
    let wal = files_with_prefix(&dir.path().join("wal"), "wal-").pop().unwrap();
    let len = std::fs::metadata(&wal).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let leftover = dir.path().join("segments").join("seg-00000000000000009999.emb");
    std::fs::write(&leftover, b"left by a crashed seal").unwrap();
    let before = contents(dir.path());

    let ro = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(
        ro.recovery().truncated_tail.as_ref().map(|(p, _)| p.clone()),
        Some(wal.clone())
    );
    assert!(
        ro.recovery().leftover_files.iter().any(|p| p == &leftover),
        "{:?}",
        ro.recovery().leftover_files
    );
    assert!(ro.recovery().removed_garbage.is_empty());
    // Everything before the torn record is there.
    assert_eq!(ro.get(1_048).unwrap(), Some(vector_for(1_048, DIM)));
    drop(ro);
    assert_eq!(contents(dir.path()), before);

    // A writable open then does what the read-only one left.
    let store = Store::open(dir.path(), Options::existing()).unwrap();
    assert!(store.recovery().removed_garbage.contains(&leftover));
    assert!(std::fs::metadata(&wal).unwrap().len() < len - 5);
}

#[test]
fn read_only_opens_share_the_store_and_exclude_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path());
    let a = Store::open_read_only(dir.path()).unwrap();
    let b = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(answers(&a), answers(&b));
    assert!(matches!(
        Store::open(dir.path(), Options::existing()),
        Err(Error::Locked { .. })
    ));
    drop(a);
    drop(b);
    let writer = Store::open(dir.path(), Options::existing()).unwrap();
    assert!(matches!(Store::open_read_only(dir.path()), Err(Error::Locked { .. })));
    drop(writer);
    Store::open_read_only(dir.path()).unwrap();
}

#[test]
fn a_snapshot_is_opened_read_only_without_a_lock_file_and_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s"), opts()).unwrap();
    for id in 0..500u64 {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
    }
    let snap = dir.path().join("snap");
    store.snapshot(&snap).unwrap();
    let _ = std::fs::remove_file(snap.join("LOCK"));
    let before = contents(&snap);
    // The writer still holds its own store: the snapshot is independent.
    let ro = Store::open_read_only(&snap).unwrap();
    assert_eq!(ro.get(499).unwrap(), Some(vector_for(499, DIM)));
    assert!(ro.verify().unwrap().problems.is_empty());
    drop(ro);
    assert!(!snap.join("LOCK").exists());
    assert_eq!(contents(&snap), before);
}

#[test]
fn a_directory_that_is_not_a_store_is_refused_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    assert!(matches!(Store::open_read_only(&missing), Err(Error::NotAStore { .. })));
    assert!(!missing.exists());
}

#[test]
fn a_trained_store_refuses_a_round_when_read_only() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Options::trained(8).durability(Durability::Buffered)).unwrap();
        for user in 0..30u64 {
            for item in 0..10u64 {
                store.append_event(Event::new(user, (user + item) % 40, item)).unwrap();
            }
        }
        store.train().unwrap();
    }
    let before = contents(dir.path());
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert!(!ro.knn(&Query::item(3).k(5)).unwrap().is_empty());
    assert!(matches!(ro.train(), Err(Error::ReadOnly { .. })));
    assert!(matches!(ro.train_full(), Err(Error::ReadOnly { .. })));
    drop(ro);
    assert_eq!(contents(dir.path()), before);
}
