//! The trainer through the public API: determinism, quality on planted
//! clusters, incremental rounds and provisional vectors, restart, the
//! trained/host-fed rule, personalised queries, the background policy, and
//! generation switches under concurrent queries.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::planted_events;
use emberdb::{Durability, Error, Event, Options, Pooling, Query, Store, TrainOptions, TrainPolicy};

const CLUSTERS: u64 = 8;
const PER_CLUSTER: u64 = 25;
const ITEMS: u64 = CLUSTERS * PER_CLUSTER;

fn train_opts() -> TrainOptions {
    TrainOptions::default().epochs(10).threads(1).seed(7)
}

fn opts() -> Options {
    Options::trained(32)
        .train_options(train_opts())
        .durability(Durability::None)
}

fn cluster(item: u64) -> u64 {
    item / PER_CLUSTER
}

fn all_vectors(store: &Store) -> Vec<Option<Vec<f32>>> {
    (0..ITEMS).map(|i| store.get(i).unwrap()).collect()
}

/// Share of the top-10 neighbours of every item that are in its cluster.
fn neighbour_purity(store: &Store) -> f64 {
    let mut same = 0;
    let mut total = 0;
    for item in 0..ITEMS {
        let hits = store.knn(&Query::item(item).k(10)).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| h.id != item));
        same += hits.iter().filter(|h| cluster(h.id) == cluster(item)).count();
        total += hits.len();
    }
    same as f64 / total as f64
}

#[test]
fn single_thread_training_is_bit_identical_for_a_seed() {
    let events = planted_events(240, CLUSTERS, PER_CLUSTER, 12, 1);
    let run = |seed: u64| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), opts().train_options(train_opts().seed(seed))).unwrap();
        store.append_events(&events).unwrap();
        let report = store.train().unwrap();
        assert!(report.full, "a first round is a full one");
        assert_eq!(report.items, ITEMS as usize);
        all_vectors(&store)
    };
    let (a, b, c) = (run(7), run(7), run(8));
    assert!(a.iter().all(Option::is_some));
    assert_eq!(a, b, "same seed, one thread: identical bits");
    assert_ne!(a, c, "another seed gives other vectors");
}

/// Users draw only from their own cluster, so an item's neighbours should
/// be its cluster mates: chance is 24 of 199 others (12%); we require 80%,
/// far above chance yet below the ~100% a working trainer reaches here, so
/// neither noise nor Hogwild! races can fail it.
#[test]
fn planted_clusters_are_recovered_and_user_queries_find_the_users_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts().train_options(train_opts().threads(2))).unwrap();
    store
        .append_events(&planted_events(400, CLUSTERS, PER_CLUSTER, 12, 2))
        .unwrap();
    store.train().unwrap();
    let purity = neighbour_purity(&store);
    assert!(purity >= 0.8, "neighbour purity {purity}");

    let mut in_cluster = 0;
    let mut total = 0;
    for user in 0..40u64 {
        let seen: HashSet<u64> = store.history(user).unwrap().into_iter().collect();
        for pooling in [Pooling::Mean, Pooling::Max] {
            let hits = store.knn(&Query::user(user).pooling(pooling).k(10)).unwrap();
            assert_eq!(hits.len(), 10);
            assert!(hits.iter().all(|h| !seen.contains(&h.id)), "seen items are excluded");
            in_cluster += hits.iter().filter(|h| cluster(h.id) == user % CLUSTERS).count();
            total += hits.len();
        }
        let seeds = store.knn(&Query::seeds(user).k(10)).unwrap();
        assert_eq!(seeds.len(), 10);
        assert!(seeds.iter().all(|h| !seen.contains(&h.id)));
        assert!(seeds.windows(2).all(|w| w[0].score >= w[1].score));
    }
    // 13 unseen items of the user's cluster remain, 10 asked: they fit.
    let share = in_cluster as f64 / total as f64;
    assert!(share >= 0.8, "user recall in the user's cluster: {share}");
}

#[test]
fn exclusion_still_returns_k_when_the_user_has_seen_most_items() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let mut events = planted_events(200, CLUSTERS, PER_CLUSTER, 10, 3);
    // User 1000 has seen 150 of the 200 items.
    events.extend((0..150).map(|i| Event::new(1000, i * 4 % ITEMS + (i * 4 / ITEMS), 5_000 + i)));
    store.append_events(&events).unwrap();
    store.train().unwrap();
    let seen: HashSet<u64> = store.history(1000).unwrap().into_iter().collect();
    assert!(seen.len() >= 140);
    for q in [Query::user(1000).k(40), Query::seeds(1000).k(40)] {
        let hits = store.knn(&q).unwrap();
        assert_eq!(hits.len(), 40, "{q:?}");
        assert!(hits.iter().all(|h| !seen.contains(&h.id)));
    }
    let with_seen = store.knn(&Query::user(1000).k(40).include_seen()).unwrap();
    assert!(with_seen.iter().any(|h| seen.contains(&h.id)));
    assert!(matches!(
        store.knn(&Query::user(424242)),
        Err(Error::UnknownUser { id: 424242 })
    ));
}

#[test]
fn new_items_get_provisional_vectors_then_incremental_rounds_train_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    // Clusters 0..7 known; then item 10_000 arrives, used by cluster-3 users.
    store
        .append_events(&planted_events(320, CLUSTERS, PER_CLUSTER, 12, 4))
        .unwrap();
    let first = store.train().unwrap();
    let before = all_vectors(&store);
    let new_item = 10_000;
    let cluster3_users: Vec<u64> = (0..320).filter(|u| u % CLUSTERS == 3).collect();
    let events: Vec<Event> = cluster3_users.iter().map(|&u| Event::new(u, new_item, 9_000)).collect();
    store.append_events(&events).unwrap();

    // Queryable at once, near cluster 3.
    let provisional = store.get(new_item).unwrap().expect("a provisional vector");
    assert!((provisional.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
    let hits = store.knn(&Query::item(new_item).k(10)).unwrap();
    let near = hits.iter().filter(|h| cluster(h.id) == 3).count();
    assert!(near >= 8, "provisional neighbours {hits:?}");

    let round = store.train().unwrap();
    assert!(!round.full);
    assert_eq!(round.generation, first.generation + 1);
    assert_eq!(round.new_items, 1);
    assert_eq!(round.new_events, events.len() as u64);
    assert_eq!(round.fresh_histories, cluster3_users.len());
    assert!(round.replayed_histories > 0);
    let trained = store.get(new_item).unwrap().unwrap();
    assert_ne!(trained, provisional, "the round replaced the provisional vector");
    let hits = store.knn(&Query::item(new_item).k(10)).unwrap();
    let near = hits.iter().filter(|h| cluster(h.id) == 3).count();
    assert!(near >= 8, "trained neighbours {hits:?}");
    // Old items moved (warm start, not frozen) but kept their structure.
    assert_ne!(all_vectors(&store), before);
    assert!(neighbour_purity(&store) >= 0.8);

    // Nothing new: no new generation.
    let idle = store.train().unwrap();
    assert_eq!(idle.generation, round.generation);
    assert_eq!(idle.new_events, 0);
}

#[test]
fn trainer_state_survives_restart_and_training_continues() {
    let dir = tempfile::tempdir().unwrap();
    let events = planted_events(240, CLUSTERS, PER_CLUSTER, 12, 5);
    let (generation, vectors) = {
        let store = Store::open(dir.path(), opts()).unwrap();
        store.append_events(&events[..events.len() / 2]).unwrap();
        let r = store.train().unwrap();
        store.append_events(&events[events.len() / 2..]).unwrap();
        (r.generation, all_vectors(&store))
    };
    let store = Store::open(dir.path(), Options::existing().durability(Durability::None)).unwrap();
    let stats = store.stats().unwrap().trainer.expect("a trained store");
    assert_eq!(stats.generation, generation);
    assert_eq!(stats.items, ITEMS as usize);
    assert!(stats.untrained_events >= (events.len() - events.len() / 2) as u64);
    assert_eq!(all_vectors(&store), vectors, "the same vectors after reopening");
    // The events after the round (recovered from the log) are trained next.
    let r = store.train().unwrap();
    assert!(!r.full);
    assert_eq!(r.generation, generation + 1);
    assert_eq!(r.new_events, (events.len() - events.len() / 2) as u64);
    let files: Vec<String> = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files.iter().filter(|f| f.starts_with("trainer-")).count(),
        1,
        "old trainer states are removed: {files:?}"
    );
}

#[test]
fn a_store_is_either_trained_or_host_fed() {
    let trained_dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(trained_dir.path(), opts()).unwrap();
        assert!(matches!(store.upsert(1, &[0.5; 32]), Err(Error::TrainedStore { .. })));
        // Deleting works in every kind of space (tests/delete_everywhere.rs);
        // a trained space's own handle still refuses a per-space delete.
        assert!(matches!(
            store.space("default").unwrap().delete(1),
            Err(Error::TrainedStore { .. })
        ));
        // Training with no events publishes an empty generation.
        let r = store.train().unwrap();
        assert_eq!(r.items, 0);
    }
    assert!(matches!(
        Store::open(trained_dir.path(), Options::new(32).durability(Durability::None)),
        Err(Error::ConfigMismatch { field: "vectors", .. })
    ));
    let existing = Store::open(trained_dir.path(), Options::existing()).unwrap();
    assert!(existing.options().get_train_options().is_some());
    drop(existing);

    let host_dir = tempfile::tempdir().unwrap();
    let store = Store::open(host_dir.path(), Options::new(4).durability(Durability::None)).unwrap();
    assert!(matches!(store.train(), Err(Error::NotTrained { .. })));
    store.upsert(1, &[1.0, 0.0, 0.0, 0.0]).unwrap();
    store.upsert(2, &[0.9, 0.1, 0.0, 0.0]).unwrap();
    store.upsert(3, &[0.0, 0.0, 1.0, 0.0]).unwrap();
    store.append_event(Event::new(9, 1, 1)).unwrap();
    // User queries work on host vectors too, and events do not invent vectors.
    let hits = store.knn(&Query::user(9).k(1)).unwrap();
    assert_eq!(hits[0].id, 2);
    store.append_event(Event::new(9, 77, 2)).unwrap();
    assert_eq!(store.get(77).unwrap(), None);
    drop(store);
    assert!(matches!(
        Store::open(host_dir.path(), Options::trained(4)),
        Err(Error::ConfigMismatch { field: "vectors", .. })
    ));
}

#[test]
fn background_policy_runs_rounds_without_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let policy = TrainPolicy {
        after_events: Some(1_000),
        every: None,
    };
    let store = Store::open(dir.path(), opts().train_options(train_opts().policy(policy))).unwrap();
    store
        .append_events(&planted_events(240, CLUSTERS, PER_CLUSTER, 12, 6))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let t = store.stats().unwrap().trainer.unwrap();
        if t.generation >= 1 {
            assert!(t.untrained_events < 1_000);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no background round in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(store.get(0).unwrap().is_some());
}

/// Readers query while rounds publish new generations. Every answer must
/// come whole from one generation: its ids and scores are exactly the top
/// 10 of some generation's vectors (generations differ by far more than
/// the tolerance), and no query fails.
#[test]
fn generation_switch_under_concurrent_queries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), opts()).unwrap());
    let events = planted_events(240, CLUSTERS, PER_CLUSTER, 12, 7);
    store.append_events(&events).unwrap();
    store.train().unwrap();
    let mut generations = vec![all_vectors(&store)];
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let item = (n * 7 + r) % ITEMS;
                    let hits = store.knn(&Query::item(item).k(10)).unwrap();
                    assert_eq!(hits.len(), 10);
                    answers.push((item, hits));
                    n += 1;
                }
                answers
            })
        })
        .collect();
    for round in 0..4u64 {
        // More events on known items only: no provisional rows.
        let more: Vec<Event> = events
            .iter()
            .map(|e| Event::new(e.user, e.item, e.ts + 10_000 * (round + 1)))
            .collect();
        store.append_events(&more[..600]).unwrap();
        store.train().unwrap();
        generations.push(all_vectors(&store));
    }
    stop.store(true, Ordering::Relaxed);
    let answers: Vec<_> = readers.into_iter().flat_map(|r| r.join().unwrap()).collect();
    assert!(answers.len() > 10);
    let cos = |g: &Vec<Option<Vec<f32>>>, a: u64, b: u64| -> f32 {
        let (x, y) = (g[a as usize].as_ref().unwrap(), g[b as usize].as_ref().unwrap());
        x.iter().zip(y).map(|(p, q)| p * q).sum()
    };
    for (item, hits) in &answers {
        let fits = generations.iter().any(|g| {
            let mut all: Vec<(f32, u64)> = (0..ITEMS)
                .filter(|&o| o != *item)
                .map(|o| (cos(g, *item, o), o))
                .collect();
            all.sort_by(|a, b| b.0.total_cmp(&a.0));
            hits.iter().all(|h| (h.score - cos(g, *item, h.id)).abs() < 1e-4)
                && hits.last().is_some_and(|last| last.score >= all[9].0 - 1e-4)
        });
        assert!(fits, "answer for item {item} matches no single generation: {hits:?}");
    }
}

const CHILD_DIR: &str = "EMBER_TRAIN_CHILD_DIR";

/// Child mode of the next test: train a first generation, log more events,
/// then start a long full round and wait to be killed.
#[test]
fn train_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return; // Run as a normal test: nothing to do.
    };
    let events = planted_events(240, CLUSTERS, PER_CLUSTER, 12, 8);
    let sync = || {
        Options::trained(32)
            .train_options(train_opts())
            .durability(Durability::Sync)
    };
    let store = Store::open(&dir, sync()).unwrap();
    store.append_events(&events).unwrap();
    store.train().unwrap();
    let more: Vec<Event> = events
        .iter()
        .take(500)
        .map(|e| Event::new(e.user, e.item, e.ts + 50_000))
        .collect();
    store.append_events(&more).unwrap();
    drop(store);
    let store = Store::open(&dir, sync().train_options(train_opts().epochs(100_000))).unwrap();
    println!("TRAINING");
    let _ = store.train_full();
    println!("FINISHED");
}

/// A real `kill -9` in the middle of a training round: reopening gives the
/// last published generation, removes what the round left behind, and the
/// next round trains the events the killed one did not publish.
#[test]
fn killed_during_training_reopens_at_the_last_generation() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "train_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("child ended before training").unwrap();
        assert!(!line.ends_with("FINISHED"), "the round finished before the kill");
        if line.ends_with("TRAINING") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let store = Store::open(dir.path(), Options::existing().durability(Durability::None)).unwrap();
    let trainer = store.stats().unwrap().trainer.unwrap();
    assert_eq!(trainer.generation, 1, "the killed round published nothing");
    assert!(all_vectors(&store).iter().all(Option::is_some));
    assert!(neighbour_purity(&store) >= 0.8);
    let r = store.train().unwrap();
    assert_eq!(r.generation, 2);
    assert_eq!(r.new_events, 500);
}

/// Options overridden for one round act on that round only: the round runs
/// with them (same bits as a store created with them), the next round
/// with the stored options again, and bad overrides change nothing.
#[test]
fn round_overrides_apply_to_one_round_and_are_not_saved() {
    use emberdb::{RoundOverrides, TrainRequest};
    let events = planted_events(120, CLUSTERS, PER_CLUSTER, 10, 3);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    store.append_events(&events).unwrap();
    let overrides = RoundOverrides {
        epochs: Some(2),
        seed: Some(99),
        ..RoundOverrides::default()
    };
    let reports = store
        .train_with(&TrainRequest::full().space("default").overrides(overrides))
        .unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.space, "default");
    assert_eq!(r.epochs, 2);
    let overridden = all_vectors(&store);
    // The same round from a store created with those options.
    let other = tempfile::tempdir().unwrap();
    let same = Store::open(other.path(), opts().train_options(train_opts().epochs(2).seed(99))).unwrap();
    same.append_events(&events).unwrap();
    same.train_full().unwrap();
    assert_eq!(
        all_vectors(&same),
        overridden,
        "the overrides are what the round ran with"
    );
    // Refused overrides run nothing.
    let bad = RoundOverrides {
        negatives: Some(0),
        ..RoundOverrides::default()
    };
    assert!(matches!(
        store.train_with(&TrainRequest::full().space("default").overrides(bad)),
        Err(Error::InvalidOptions(_))
    ));
    assert_eq!(all_vectors(&store), overridden);
    // The next round, and the next open, use the stored options.
    assert_eq!(store.train_full().unwrap().epochs, 10);
    drop(store);
    let store = Store::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(store.train_full().unwrap().epochs, 10);
}
