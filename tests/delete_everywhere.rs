//! `Store::delete` in every kind of space: a deleted item leaves every
//! space's results at once (trained and host-fed), later rounds do not
//! bring it back, events naming it are still logged and still serve as
//! context, and it returns only by `Store::undelete` (or an explicit upsert
//! into a host-fed space). Deletions survive a crash, a reopen, compaction
//! and snapshots, and `verify` checks them. "Every query kind" includes the
//! trending channel, blends and `Query::recommend`.

mod common;

use common::{planted_events, vector_for};
use emberdb::{Durability, Event, Metric, Options, Query, SpaceSpec, Store, TrainOptions};

const CLUSTERS: u64 = 6;
const PER_CLUSTER: u64 = 20;
const ITEMS: u64 = CLUSTERS * PER_CLUSTER;
const DIM: usize = 16;

fn opts() -> Options {
    Options::trained(DIM)
        .train_options(TrainOptions::default().epochs(5).threads(1).seed(3))
        .durability(Durability::Buffered)
        .segment_rows(50)
        .space("text", SpaceSpec::host(DIM).metric(Metric::L2))
}

/// Every answer of every query kind in every space.
fn every_hit(store: &Store) -> Vec<u64> {
    let mut out = Vec::new();
    for space in ["default", "text"] {
        for item in [0u64, 5, 21, 40, 77] {
            if let Ok(hits) = store.knn(&Query::item(item).k(ITEMS as usize).space(space)) {
                out.extend(hits.iter().map(|h| h.id));
            }
        }
        out.extend(
            store
                .knn(&Query::vector(&vector_for(3, DIM)).k(ITEMS as usize).space(space))
                .unwrap()
                .iter()
                .map(|h| h.id),
        );
    }
    for user in [0u64, 1, 2, 3] {
        let blend = Query::blend()
            .add(Query::user(user), 1.0)
            .add(Query::seeds(user).space("text"), 1.0)
            .add(Query::popular(), 1.0);
        for q in [
            Query::user(user),
            Query::seeds(user),
            Query::popular().for_user(user),
            Query::recommend(user),
            blend,
        ] {
            out.extend(store.knn(&q.k(ITEMS as usize)).unwrap().iter().map(|h| h.id));
        }
    }
    out.extend(
        store
            .knn(&Query::popular().k(ITEMS as usize))
            .unwrap()
            .iter()
            .map(|h| h.id),
    );
    out
}

fn trained_store(dir: &std::path::Path) -> Store {
    let store = Store::open(dir, opts()).unwrap();
    store
        .append_events(&planted_events(120, CLUSTERS, PER_CLUSTER, 12, 5))
        .unwrap();
    for id in 0..ITEMS {
        store.space("text").unwrap().upsert(id, &vector_for(id, DIM)).unwrap();
    }
    store.train().unwrap();
    store
}

fn assert_gone(store: &Store, id: u64, when: &str) {
    assert!(!every_hit(store).contains(&id), "{when}: item {id} is still served");
    assert_eq!(store.get(id).unwrap(), None, "{when}: default space");
    assert_eq!(
        store.space("text").unwrap().get(id).unwrap(),
        None,
        "{when}: host space"
    );
    assert!(store.is_deleted(id), "{when}");
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{when}: {:?}", report.problems);
}

#[test]
fn a_deleted_item_leaves_every_space_and_rounds_do_not_bring_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = trained_store(dir.path());
    let victim = 21;
    assert!(every_hit(&store).contains(&victim));
    assert!(store.delete(victim).unwrap(), "it was live");
    assert_gone(&store, victim, "at once");
    assert!(!store.delete(victim).unwrap(), "deleting twice logs nothing new");

    // Still context: events naming it are logged and kept in histories.
    store
        .append_events(&[Event::new(0, victim, 99_999), Event::new(0, 22, 100_000)])
        .unwrap();
    assert!(store.history(0).unwrap().contains(&victim));
    assert_gone(&store, victim, "after an event naming it");
    store.train().unwrap();
    assert_gone(&store, victim, "after an incremental round");
    store.train_full().unwrap();
    assert_gone(&store, victim, "after a full round");
    store.compact().unwrap();
    assert_gone(&store, victim, "after compaction");
    drop(store);
    let store = Store::open(dir.path(), Options::existing()).unwrap();
    assert_gone(&store, victim, "after a reopen");
    assert_eq!(store.stats().unwrap().deleted_items, 1);

    // Undelete: trained spaces serve it from their next round that
    // publishes (this one has no new events: a full one); the host space
    // needs it upserted again.
    assert!(store.undelete(victim).unwrap());
    assert!(!store.is_deleted(victim));
    store.train_full().unwrap();
    assert!(store.get(victim).unwrap().is_some(), "trained again");
    assert_eq!(store.space("text").unwrap().get(victim).unwrap(), None);
    store
        .space("text")
        .unwrap()
        .upsert(victim, &vector_for(victim, DIM))
        .unwrap();
    assert!(every_hit(&store).contains(&victim));
}

#[test]
fn a_deletion_survives_a_crash_and_reaches_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let store = trained_store(dir.path());
    store.flush().unwrap();
    store.delete(40).unwrap();
    // A crash right after: only the log holds the deletion.
    store.close_without_checkpoint();
    let store = Store::open(dir.path(), Options::existing()).unwrap();
    assert_gone(&store, 40, "after a crash");
    // A round published, then a crash before any checkpoint of it.
    store.delete(41).unwrap();
    store.train_full().unwrap();
    store.close_without_checkpoint();
    let store = Store::open(dir.path(), Options::existing()).unwrap();
    assert_gone(&store, 41, "after a round and a crash");
    let snap = dir.path().with_extension("snap");
    store.snapshot(&snap).unwrap();
    let copy = Store::open_read_only(&snap).unwrap();
    assert_gone(&copy, 40, "in a snapshot");
    assert_gone(&copy, 41, "in a snapshot");
}

#[test]
fn an_item_deleted_before_it_appears_is_kept_out_by_training() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let banned = 7;
    assert!(!store.delete(banned).unwrap(), "not live anywhere yet");
    assert!(store.is_deleted(banned));
    store
        .append_events(&planted_events(120, CLUSTERS, PER_CLUSTER, 12, 5))
        .unwrap();
    store.train().unwrap();
    assert!(!every_hit(&store).contains(&banned));
    assert_eq!(store.get(banned).unwrap(), None);
    // An explicit upsert into a host-fed space says it exists again.
    store
        .space("text")
        .unwrap()
        .upsert(banned, &vector_for(banned, DIM))
        .unwrap();
    assert!(!store.is_deleted(banned));
    store.train_full().unwrap();
    assert!(store.get(banned).unwrap().is_some());
}

#[test]
fn host_fed_stores_keep_deleting_and_replacing_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::new(DIM).metric(Metric::L2)).unwrap();
    store.upsert(1, &vector_for(1, DIM)).unwrap();
    assert!(store.delete(1).unwrap());
    assert!(!store.delete(2).unwrap(), "never there");
    assert_eq!(store.get(1).unwrap(), None);
    store.upsert(1, &vector_for(5, DIM)).unwrap();
    assert_eq!(store.get(1).unwrap(), Some(vector_for(5, DIM)));
    assert!(!store.is_deleted(1));
}
