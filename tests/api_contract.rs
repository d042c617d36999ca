//! Bad input is refused with a typed error and changes nothing; the
//! directory lock holds within and across processes; the persisted
//! configuration is enforced.

mod common;

use std::process::Command;

use common::vector_for;
use emberdb::{Durability, Error, Event, Metric, Options, Query, Store, MAX_K};

const DIM: usize = 8;

fn opts(metric: Metric) -> Options {
    Options::new(DIM).metric(metric).durability(Durability::Buffered)
}

#[test]
fn bad_vectors_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts(Metric::Cosine)).unwrap();
    store.upsert(1, &vector_for(1, DIM)).unwrap();
    let wal_before = store.stats().unwrap().wal_bytes;

    let short = vec![1.0; DIM - 1];
    let mut nan = vector_for(2, DIM);
    nan[3] = f32::NAN;
    let mut inf = vector_for(2, DIM);
    inf[0] = f32::NEG_INFINITY;
    let zero = vec![0.0; DIM];
    assert!(matches!(
        store.upsert(2, &short),
        Err(Error::DimensionMismatch {
            expected: 8,
            got: 7,
            ..
        })
    ));
    assert!(matches!(
        store.upsert(2, &nan),
        Err(Error::NonFiniteVector { index: 3, .. })
    ));
    assert!(matches!(
        store.upsert(2, &inf),
        Err(Error::NonFiniteVector { index: 0, .. })
    ));
    assert!(matches!(store.upsert(2, &zero), Err(Error::ZeroVector { .. })));
    // An update with a bad vector leaves the old one in place.
    assert!(matches!(store.upsert(1, &nan), Err(Error::NonFiniteVector { .. })));
    assert!(store.get(1).unwrap().is_some());
    assert_eq!(store.get(2).unwrap(), None);

    assert!(matches!(
        store.knn(&Query::vector(&short)),
        Err(Error::DimensionMismatch { .. })
    ));
    assert!(matches!(
        store.knn(&Query::vector(&nan)),
        Err(Error::NonFiniteVector { .. })
    ));
    assert!(matches!(
        store.knn(&Query::vector(&zero)),
        Err(Error::ZeroVector { .. })
    ));
    assert!(matches!(
        store.knn(&Query::item(1).k(0)),
        Err(Error::InvalidK { k: 0, .. })
    ));
    assert!(matches!(
        store.knn(&Query::item(1).k(MAX_K + 1)),
        Err(Error::InvalidK { .. })
    ));
    assert!(matches!(
        store.knn(&Query::item(404)),
        Err(Error::UnknownItem { id: 404 })
    ));
    assert!(matches!(
        store.append_event(Event::new(1, 2, 3).with_weight(f32::NAN)),
        Err(Error::InvalidEvent { user: 1, item: 2, .. })
    ));
    // A batch with one bad event is refused whole.
    let batch = [Event::new(5, 1, 1), Event::new(5, 2, 2).with_weight(f32::INFINITY)];
    assert!(store.append_events(&batch).is_err());
    assert!(store.history(5).unwrap().is_empty());
    assert_eq!(store.stats().unwrap().wal_bytes, wal_before, "nothing was logged");
    assert!(!store.delete(404).unwrap(), "deleting an unknown id reports false");
    // It is on the blocklist now (events could bring it in): once is enough.
    assert!(store.is_deleted(404));
    let wal_blocked = store.stats().unwrap().wal_bytes;
    assert!(!store.delete(404).unwrap());
    assert_eq!(store.stats().unwrap().wal_bytes, wal_blocked, "nothing more was logged");
    assert_eq!(store.stats().unwrap().live_rows, 1);
}

#[test]
fn zero_vectors_are_fine_without_cosine() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts(Metric::L2)).unwrap();
    store.upsert(1, &[0.0; DIM]).unwrap();
    assert_eq!(store.knn(&Query::vector(&[0.0; DIM]).k(1)).unwrap()[0].id, 1);
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        Options::new(0),
        Options::new(8).segment_rows(0),
        Options::new(8).history_len(0),
    ] {
        assert!(matches!(
            Store::open(dir.path().join("x"), bad),
            Err(Error::InvalidOptions(_))
        ));
    }
}

#[test]
fn reopening_with_another_dim_or_metric_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), opts(Metric::Cosine)).unwrap());
    match Store::open(dir.path(), Options::new(DIM + 1)) {
        Err(Error::ConfigMismatch { field: "dim", .. }) => {}
        other => panic!("expected a dim mismatch, got {:?}", other.map(|_| ())),
    }
    match Store::open(dir.path(), opts(Metric::L2)) {
        Err(Error::ConfigMismatch { field: "metric", .. }) => {}
        other => panic!("expected a metric mismatch, got {:?}", other.map(|_| ())),
    }
    // `Options::existing()` takes the store's settings, but a metric it
    // names must be the store's: refused, not ignored.
    match Store::open(dir.path(), Options::existing().metric(Metric::InnerProduct)) {
        Err(Error::ConfigMismatch { field: "metric", .. }) => {}
        other => panic!("expected a metric mismatch, got {:?}", other.map(|_| ())),
    }
    drop(Store::open(dir.path(), Options::existing().metric(Metric::Cosine)).unwrap());
    // Durability is not part of the persisted configuration.
    drop(Store::open(dir.path(), opts(Metric::Cosine).durability(Durability::Sync)).unwrap());
}

#[test]
fn a_second_open_in_this_process_is_locked_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts(Metric::Cosine)).unwrap();
    assert!(matches!(
        Store::open(dir.path(), opts(Metric::Cosine)),
        Err(Error::Locked { .. })
    ));
    drop(store);
    Store::open(dir.path(), opts(Metric::Cosine)).unwrap();
}

const LOCK_CHILD: &str = "EMBER_LOCK_CHILD_DIR";

/// Child mode: try to open the store and report how it went.
#[test]
fn lock_child() {
    let Ok(dir) = std::env::var(LOCK_CHILD) else {
        return;
    };
    match Store::open(&dir, opts(Metric::Cosine)) {
        Ok(_) => println!("RESULT OPENED"),
        Err(Error::Locked { .. }) => println!("RESULT LOCKED"),
        Err(e) => println!("RESULT ERROR {e}"),
    }
}

fn open_in_child(dir: &std::path::Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_child", "--nocapture", "--test-threads=1"])
        .env(LOCK_CHILD, dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let at = stdout.find("RESULT ").unwrap_or_else(|| panic!("child said: {stdout}"));
    stdout[at + 7..].lines().next().unwrap().to_string()
}

#[test]
fn another_process_cannot_open_a_held_store() {
    if std::env::var(LOCK_CHILD).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts(Metric::Cosine)).unwrap();
    assert_eq!(open_in_child(dir.path()), "LOCKED");
    drop(store);
    assert_eq!(open_in_child(dir.path()), "OPENED");
}
