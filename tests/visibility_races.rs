//! Races a red-team pass found, run with real threads for a bounded time
//! (`EMBER_RACE_MS` per case, default 3,000), each asserting what a reader
//! must never see:
//!
//! - a deleter against a publisher: an item whose `delete` returned before
//!   a query began is never in its answer, while rounds of an item2vec and
//!   a YouTube DNN space publish new generations;
//! - an upserter against filtered readers: a filter matching at least `k`
//!   items returns `k` hits while those very items move between segments
//!   (growing to growing, sealed to growing, through seals);
//! - the same upserter against unfiltered readers and `get`: every item
//!   comes back, every time.
//!
//! A write moves an item in one step (`segment::visibility`), so none of
//! this depends on a reader's timing.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::vector_for;
use emberdb::{DnnOptions, Durability, Event, Filter, Metric, Options, Query, SpaceSpec, Store, TrainOptions};

const DIM: usize = 8;

fn race_time() -> Duration {
    Duration::from_millis(
        std::env::var("EMBER_RACE_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3_000),
    )
}

/// Events over `items` items from 60 users, user `u` touching items near
/// `u * 5`.
fn events(items: u64, round: u64) -> Vec<Event> {
    (0..60u64)
        .flat_map(|u| (0..6u64).map(move |j| Event::new(u, (u * 5 + j * 7 + round) % items, round * 1_000 + j)))
        .collect()
}

#[test]
fn a_deleted_item_is_never_served_while_rounds_publish() {
    const ITEMS: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let train = TrainOptions::default().epochs(1).incremental_epochs(1).threads(1);
    let dnn = DnnOptions {
        hidden: vec![16],
        epochs: 1,
        incremental_epochs: 1,
        threads: 1,
        ..DnnOptions::default()
    };
    let store = Store::open(
        dir.path(),
        Options::trained(DIM)
            .train_options(train)
            .durability(Durability::None)
            .space("dnn", SpaceSpec::youtube_dnn(DIM).dnn_options(dnn)),
    )
    .unwrap();
    store.append_events(&events(ITEMS, 0)).unwrap();
    store.train().unwrap();
    let store = Arc::new(store);
    let deleted: Arc<Vec<AtomicBool>> = Arc::new((0..ITEMS).map(|_| AtomicBool::new(false)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));

    let publisher = {
        let (store, stop, rounds) = (store.clone(), stop.clone(), rounds.clone());
        std::thread::spawn(move || {
            let mut round = 1;
            while !stop.load(Ordering::SeqCst) {
                store.append_events(&events(ITEMS, round)).unwrap();
                store.train().unwrap();
                rounds.fetch_add(1, Ordering::SeqCst);
                round += 1;
            }
        })
    };
    let deleter = {
        let (store, stop, deleted) = (store.clone(), stop.clone(), deleted.clone());
        std::thread::spawn(move || {
            let mut id = 0;
            while !stop.load(Ordering::SeqCst) && id < ITEMS {
                store.delete(id).unwrap();
                deleted[id as usize].store(true, Ordering::SeqCst);
                id += 3;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let deadline = Instant::now() + race_time();
    let mut queries = 0u64;
    let mut violations = Vec::new();
    while Instant::now() < deadline {
        for space in ["default", "dnn"] {
            // (The DNN space stores [v, b]: one component more.)
            let probe = vector_for(1, store.space(space).unwrap().stats().row_dim);
            // What was deleted before the query began.
            let before: Vec<bool> = deleted.iter().map(|d| d.load(Ordering::SeqCst)).collect();
            let hits = store
                .knn(&Query::vector(&probe).k(ITEMS as usize).space(space))
                .unwrap();
            queries += 1;
            for h in hits {
                if before[h.id as usize] {
                    violations.push((space, h.id));
                }
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    publisher.join().unwrap();
    deleter.join().unwrap();
    assert!(
        rounds.load(Ordering::SeqCst) >= 2,
        "the publisher must have published during the race"
    );
    assert!(
        violations.is_empty(),
        "{} of {queries} queries served items deleted before they began: {:?}",
        violations.len(),
        &violations[..violations.len().min(10)]
    );
}

#[test]
fn narrow_filters_and_lookups_never_come_back_short_while_their_items_move() {
    const ITEMS: u64 = 3_000;
    const RARE: u64 = 120;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        Options::new(DIM)
            .metric(Metric::L2)
            .durability(Durability::None)
            .segment_rows(500)
            .flat_below(200),
    )
    .unwrap();
    for id in 0..ITEMS {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
    }
    // Items 0, 25, 50, ...: 120 of 3,000 (4%: the exact plan over their
    // rows is taken below 2,048 matching rows).
    for id in (0..ITEMS).step_by((ITEMS / RARE) as usize) {
        store.set_attributes(id, &[("kind", "rare")]).unwrap();
    }
    store.wait_for_indexes();
    let store = Arc::new(store);
    let stop = Arc::new(AtomicBool::new(false));
    let upserter = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                // The rare items over and over (growing to growing, and
                // sealed to growing after each seal), and others besides
                // so that seals keep happening.
                let id = if n.is_multiple_of(2) {
                    (n / 2 * (ITEMS / RARE)) % ITEMS
                } else {
                    (n * 7) % ITEMS
                };
                store.upsert(id, &vector_for(id + n % 5, DIM)).unwrap();
                n += 1;
            }
            n
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + race_time();
                let mut short = Vec::new();
                let mut queries = 0;
                let rare = Filter::eq("kind", "rare");
                while Instant::now() < deadline {
                    let q = vector_for(queries * 13 + t, DIM);
                    for k in [RARE as usize, 50] {
                        let hits = store.knn(&Query::vector(&q).k(k).filter(rare.clone())).unwrap();
                        if hits.len() != k {
                            short.push(format!("filtered k={k}: {}", hits.len()));
                        }
                    }
                    let all = store.knn(&Query::vector(&q).k(ITEMS as usize)).unwrap();
                    if all.len() != ITEMS as usize {
                        short.push(format!("unfiltered k={ITEMS}: {}", all.len()));
                    }
                    let id = (queries * (ITEMS / RARE)) % ITEMS;
                    if store.get(id).unwrap().is_none() {
                        short.push(format!("get({id}) absent"));
                    }
                    queries += 1;
                }
                stop.store(true, Ordering::SeqCst);
                (queries, short)
            })
        })
        .collect();
    let mut problems = Vec::new();
    let mut queries = 0;
    for r in readers {
        let (q, p) = r.join().unwrap();
        queries += q;
        problems.extend(p);
    }
    let upserts = upserter.join().unwrap();
    assert!(upserts > 1_000, "the upserter must have raced: {upserts} upserts");
    assert!(
        problems.is_empty(),
        "{} short answers in {queries} rounds of queries ({upserts} upserts): {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
}

/// Trending counts are made by a thread of the store's, off the append
/// path; a reader counts what is still queued first. So a `popular` query
/// started after an append returned counts that event, and counts never go
/// backwards, while a writer appends as fast as it can.
#[test]
fn popular_counts_every_event_appended_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(
            dir.path(),
            Options::trained(DIM)
                .durability(Durability::None)
                .trending_window(1 << 50),
        )
        .unwrap(),
    );
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, acked, stop) = (Arc::clone(&store), Arc::clone(&acked), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Item 7 gets every event; others a few, to move the ranking.
                store.append_event(Event::new(n % 50, 7, 1_000 + n)).unwrap();
                store
                    .append_event(Event::new(n % 50, 100 + n % 3_000, 1_000 + n))
                    .unwrap();
                n += 1;
                acked.store(n, Ordering::Release);
            }
        })
    };
    let started = Instant::now();
    let (mut last, mut queries) = (0u64, 0u64);
    while started.elapsed() < race_time() {
        let before = acked.load(Ordering::Acquire);
        let hits = store.knn(&Query::popular().k(1)).unwrap();
        let count = hits.first().map_or(0, |h| h.score as u64);
        assert!(before == 0 || hits[0].id == 7, "{hits:?}");
        assert!(
            count >= before,
            "popular counted {count} of item 7's {before} acknowledged events"
        );
        assert!(count >= last, "item 7's count went back from {last} to {count}");
        last = count;
        queries += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(queries > 100 && last > 1_000, "{queries} queries, {last} events");
}
