//! Everything written is read back bit-identical after a clean close and
//! after a simulated crash, across sealed and growing segments.

mod common;

use common::{random_vectors, vector_for};
use emberdb::{Durability, Event, Metric, Options, Query, Store};

const DIM: usize = 16;

fn opts(durability: Durability) -> Options {
    Options::new(DIM)
        .metric(Metric::InnerProduct)
        .durability(durability)
        .segment_rows(50)
        .history_len(10)
}

/// Writes 175 items (three sealed segments and a growing one), updates and
/// deletes some, and appends events; returns the expected live vectors.
fn populate(store: &Store) -> Vec<(u64, Option<Vec<f32>>)> {
    let mut expected: Vec<(u64, Option<Vec<f32>>)> = Vec::new();
    for id in 0..175u64 {
        let v = vector_for(id, DIM);
        store.upsert(id, &v).unwrap();
        expected.push((id, Some(v)));
    }
    // A checkpoint here snapshots the 25 growing rows; the updates and
    // deletes below then hit sealed rows, snapshot rows and logged rows.
    store.flush().unwrap();
    for id in (0..175u64).step_by(10) {
        let v = vector_for(id + 10_000, DIM);
        store.upsert(id, &v).unwrap();
        expected[id as usize].1 = Some(v);
    }
    for id in (5..175u64).step_by(20) {
        assert!(store.delete(id).unwrap());
        expected[id as usize].1 = None;
    }
    let events: Vec<Event> = (0..30u64).map(|i| Event::new(i % 3, 1000 + i, i * 10)).collect();
    store.append_events(&events).unwrap();
    store.append_event(Event::new(9, 77, 5).with_weight(2.5)).unwrap();
    expected
}

fn assert_contents(store: &Store, expected: &[(u64, Option<Vec<f32>>)]) {
    for (id, v) in expected {
        let got = store.get(*id).unwrap();
        match (v, got) {
            (Some(v), Some(got)) => {
                let (a, b): (Vec<u32>, Vec<u32>) = (
                    v.iter().map(|x| x.to_bits()).collect(),
                    got.iter().map(|x| x.to_bits()).collect(),
                );
                assert_eq!(a, b, "item {id} not bit-identical");
            }
            (None, None) => {}
            (v, got) => panic!("item {id}: expected {:?}, got {:?}", v.is_some(), got.is_some()),
        }
    }
    // user 0 got items 1000, 1003, ..., 1027 (10 events); history_len is 10.
    assert_eq!(
        store.history(0).unwrap(),
        (0..10).map(|i| 1000 + 3 * i).collect::<Vec<u64>>()
    );
    assert_eq!(store.history(9).unwrap(), vec![77]);
    assert!(store.history(12345).unwrap().is_empty());
    let live = expected.iter().filter(|(_, v)| v.is_some()).count();
    let stats = store.stats().unwrap();
    assert_eq!(stats.live_rows, live);
    assert!(stats.sealed_segments >= 3, "{stats:?}");
    // A deleted item never comes back from a query.
    let hits = store.knn(&Query::vector(&vector_for(5, DIM)).k(200)).unwrap();
    assert_eq!(hits.len(), live);
    assert!(hits.iter().all(|h| expected[h.id as usize].1.is_some()));
}

#[test]
fn clean_close_and_reopen_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let store = Store::open(dir.path(), opts(Durability::Sync)).unwrap();
        let expected = populate(&store);
        assert_contents(&store, &expected);
        expected
    };
    let store = Store::open(dir.path(), opts(Durability::Sync)).unwrap();
    // A clean close checkpoints (the growing segment goes to a snapshot
    // file), so nothing is replayed and the log is trimmed.
    assert_eq!(store.recovery().replayed_bytes, 0);
    assert_contents(&store, &expected);
    store.seal().unwrap();
    drop(store);
    let store = Store::open(dir.path(), opts(Durability::Sync)).unwrap();
    assert_eq!(store.stats().unwrap().growing_rows, 0);
    assert_contents(&store, &expected);
}

#[test]
fn simulated_crash_recovers_from_the_log() {
    for durability in [Durability::Sync, Durability::Buffered] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), opts(durability)).unwrap();
        let expected = populate(&store);
        store.close_without_checkpoint();
        let store = Store::open(dir.path(), opts(durability)).unwrap();
        assert!(
            store.recovery().replayed_bytes > 0,
            "{durability:?}: the tail was replayed"
        );
        assert_contents(&store, &expected);
        // Replaying again (a second crash) changes nothing: replay is idempotent.
        store.close_without_checkpoint();
        let store = Store::open(dir.path(), opts(durability)).unwrap();
        assert_contents(&store, &expected);
    }
}

#[test]
fn durability_none_keeps_what_was_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts(Durability::None)).unwrap();
    let expected = populate(&store);
    store.flush().unwrap();
    store.close_without_checkpoint();
    let store = Store::open(dir.path(), opts(Durability::None)).unwrap();
    assert_contents(&store, &expected);
}

#[test]
fn log_rotation_and_checkpoints_keep_everything() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new(8)
        .metric(Metric::L2)
        .durability(Durability::Buffered)
        .wal_file_bytes(4096)
        .checkpoint_wal_bytes(16 * 1024)
        .segment_rows(1_000_000)
        .history_len(200);
    let vectors = random_vectors(2_000, 8, 3);
    {
        let store = Store::open(dir.path(), opts.clone()).unwrap();
        for (i, v) in vectors.iter().enumerate() {
            store.upsert(i as u64, v).unwrap();
            store
                .append_event(Event::new(i as u64 % 7, i as u64, i as u64))
                .unwrap();
        }
        let stats = store.stats().unwrap();
        assert_eq!(stats.sealed_segments, 0);
        store.close_without_checkpoint();
    }
    let store = Store::open(dir.path(), opts).unwrap();
    for (i, v) in vectors.iter().enumerate() {
        assert_eq!(store.get(i as u64).unwrap().as_deref(), Some(&v[..]), "item {i}");
    }
    // User 3 had 286 events; the history keeps the last 200.
    assert_eq!(store.history(3).unwrap().len(), 200);
}

#[test]
fn a_lost_update_leaves_the_old_vector_not_nothing() {
    // Under `Durability::None` a crash may lose the last writes. An update
    // of a sealed item that is lost must leave the item as it was: the
    // retirement of its old row may not outlive the lost log record.
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new(DIM).metric(Metric::L2).durability(Durability::None);
    {
        let store = Store::open(dir.path(), opts.clone()).unwrap();
        for id in 0..10u64 {
            store.upsert(id, &vector_for(id, DIM)).unwrap();
        }
        store.seal().unwrap();
        store.upsert(3, &vector_for(1003, DIM)).unwrap();
        assert!(store.delete(4).unwrap());
        assert_eq!(store.get(3).unwrap(), Some(vector_for(1003, DIM)));
        store.close_without_checkpoint(); // the buffered log records are lost
    }
    let store = Store::open(dir.path(), opts).unwrap();
    assert_eq!(
        store.get(3).unwrap(),
        Some(vector_for(3, DIM)),
        "the lost update took the item with it"
    );
    assert_eq!(
        store.get(4).unwrap(),
        Some(vector_for(4, DIM)),
        "the lost delete happened anyway"
    );
    assert_eq!(store.stats().unwrap().live_rows, 10);
}
