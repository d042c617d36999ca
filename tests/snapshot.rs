//! `Store::snapshot` and `restore`: a point-in-time copy taken while
//! writers keep writing, and a restored store that answers exactly as the
//! original did at the snapshot point.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::{planted_events, vector_for};
use emberdb::{Durability, Error, Event, Options, Query, Store, TrainOptions};

#[test]
fn snapshot_while_writing_holds_exactly_a_prefix_of_the_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(
            dir.path().join("live"),
            Options::new(8)
                .durability(Durability::Buffered)
                .segment_rows(500)
                .history_len(1 << 20),
        )
        .unwrap(),
    );
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, acked, stop) = (Arc::clone(&store), Arc::clone(&acked), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut id = 0u64;
            while !stop.load(Ordering::Relaxed) {
                store.upsert(id, &vector_for(id, 8)).unwrap();
                store.append_event(Event::new(1, id, id)).unwrap();
                id += 1;
                acked.store(id, Ordering::Release);
            }
        })
    };
    while acked.load(Ordering::Acquire) < 1_500 {
        std::thread::yield_now();
    }
    let before = acked.load(Ordering::Acquire);
    let info = store.snapshot(dir.path().join("snap")).unwrap();
    let after = acked.load(Ordering::Acquire);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(info.linked > 0, "sealed segments are hard-linked: {info:?}");

    let snap = Store::open(dir.path().join("snap"), Options::existing().history_len(1 << 20)).unwrap();
    let mut m = 0;
    while snap.get(m).unwrap().is_some() {
        assert_eq!(snap.get(m).unwrap().unwrap(), common::normalized(&vector_for(m, 8)));
        m += 1;
    }
    assert!(
        m >= before,
        "every write acknowledged before the snapshot is in it ({m} < {before})"
    );
    assert!(m <= after + 1, "writes after the snapshot are not ({m} > {after} + 1)");
    for later in m..m + 50 {
        assert_eq!(
            snap.get(later).unwrap(),
            None,
            "a gap: item {later} after a missing one"
        );
    }
    let history = snap.history(1).unwrap();
    assert!(
        history.len() as u64 >= m.saturating_sub(1) && history.len() as u64 <= m,
        "{} events of user 1 beside {m} items",
        history.len()
    );
    // The live store went on and holds everything.
    assert!(store.get(after.saturating_sub(1)).unwrap().is_some());
}

#[test]
fn restored_trained_store_answers_exactly_like_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::trained(16)
        .train_options(TrainOptions::default().epochs(5).threads(1))
        .durability(Durability::Buffered);
    let store = Store::open(dir.path().join("live"), opts).unwrap();
    store.append_events(&planted_events(300, 6, 20, 10, 9)).unwrap();
    store.train().unwrap();
    // Events after the round, with a provisional item, are in the snapshot too.
    store.append_events(&[Event::new(3, 5_000, 99_999)]).unwrap();
    let queries = [
        Query::item(7).k(10),
        Query::item(5_000).k(10),
        Query::user(3).k(10),
        Query::seeds(4).k(10),
    ];
    let answers: Vec<_> = queries.iter().map(|q| store.knn(q).unwrap()).collect();
    let info = store.snapshot(dir.path().join("snap")).unwrap();
    assert!(matches!(store.snapshot(dir.path().join("snap")), Err(Error::Io { .. })));
    // The original moves on; the snapshot does not.
    store.append_events(&planted_events(300, 6, 20, 10, 10)).unwrap();
    store.train().unwrap();

    let restored = emberdb::restore(dir.path().join("snap"), dir.path().join("restored")).unwrap();
    assert_eq!(restored.next_seq, info.next_seq);
    let again = Store::open(dir.path().join("restored"), Options::existing()).unwrap();
    again.wait_for_indexes();
    for (q, a) in queries.iter().zip(&answers) {
        assert_eq!(&again.knn(q).unwrap(), a, "{q:?}");
    }
    let t = again.stats().unwrap().trainer.unwrap();
    assert_eq!(t.generation, 1);
}
