//! The YouTube DNN as a trained space: it learns what the next item depends
//! on, uses the users' features (a user with no history but a feature gets
//! recall in the right cluster), is deterministic with one thread, serves a
//! user query as the exact top-K of the softmax (an inner product search of
//! `[u, 1]` over the stored `[v, b]`), keeps its model across reopening and
//! a kill -9 in the middle of a round, and switches generations under
//! concurrent queries.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use emberdb::{DnnOptions, Durability, Error, Event, Options, Query, SpaceSpec, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CLUSTERS: u64 = 8;
const PER_CLUSTER: u64 = 20;

fn cluster(item: u64) -> u64 {
    item / PER_CLUSTER
}

/// Small and fast: the planted data sets have 160 items.
fn dnn_options(watch_len: usize) -> DnnOptions {
    DnnOptions {
        hidden: vec![64],
        embed_dim: 16,
        feature_dim: 8,
        watch_len,
        positions_per_user: 50,
        negatives: 64,
        batch: 64,
        epochs: 15,
        learning_rate: 0.01,
        threads: 1,
        seed: 5,
        ..DnnOptions::default()
    }
}

fn store_with(dir: &std::path::Path, dnn: DnnOptions) -> Store {
    Store::open(
        dir,
        Options::new(4)
            .space("dnn", SpaceSpec::youtube_dnn(16).dnn_options(dnn))
            .durability(Durability::None),
    )
    .unwrap()
}

/// Users walk the clusters in order: the item after one of cluster `c` is
/// from cluster `c + 1` (mod 8), any item of it.
fn sequential_events(users: u64, len: u64, seed: u64) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut events = Vec::new();
    for user in 0..users {
        let start = rng.gen_range(0..CLUSTERS);
        for t in 0..len {
            let c = (start + t) % CLUSTERS;
            let item = c * PER_CLUSTER + rng.gen_range(0..PER_CLUSTER);
            events.push(Event::new(user, item, 1_000 + t));
        }
    }
    events
}

/// The planted order is learned: recall after an item of cluster `c` comes
/// from cluster `c + 1`. Chance is 1/8 = 0.125, and a model that ignores
/// order (item2vec, or a watch vector over the whole history) would split
/// between the clusters before and after; 0.6 is far above either.
#[test]
fn the_next_cluster_is_predicted_from_the_previous_item() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), dnn_options(1));
    store.append_events(&sequential_events(600, 12, 1)).unwrap();
    let report = store.train().unwrap();
    assert_eq!(report.items, (CLUSTERS * PER_CLUSTER) as usize);
    assert!(report.dnn.unwrap().loss.is_finite());
    let (mut right, mut total) = (0, 0);
    for user in 0..100u64 {
        let history = store.history(user).unwrap();
        let next = (cluster(*history.last().unwrap()) + 1) % CLUSTERS;
        let hits = store.knn(&Query::user(user).k(10).space("dnn")).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| !history.contains(&h.id)), "seen items are excluded");
        right += hits.iter().filter(|h| cluster(h.id) == next).count();
        total += hits.len();
    }
    let share = right as f64 / total as f64;
    assert!(share >= 0.6, "share of recall in the next cluster: {share}");
}

/// Users of group `g` only touch cluster `g`; a new user with the feature
/// `group = g` and no event gets recall in cluster `g`. Chance is 1/8.
#[test]
fn a_user_with_only_a_feature_gets_recall_in_its_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), dnn_options(10));
    let mut rng = StdRng::seed_from_u64(2);
    let mut events = Vec::new();
    for user in 0..400u64 {
        let g = user % CLUSTERS;
        store
            .set_user_features(user, &[("group", &g.to_string()), ("other", "x")])
            .unwrap();
        for t in 0..8 {
            events.push(Event::new(user, g * PER_CLUSTER + rng.gen_range(0..PER_CLUSTER), t));
        }
    }
    store.append_events(&events).unwrap();
    store.train().unwrap();
    let (mut right, mut total) = (0, 0);
    for g in 0..CLUSTERS {
        let newcomer = 10_000 + g;
        assert!(matches!(
            store.knn(&Query::user(newcomer).space("dnn")),
            Err(Error::UnknownUser { .. })
        ));
        store.set_user_features(newcomer, &[("group", &g.to_string())]).unwrap();
        assert!(store.history(newcomer).unwrap().is_empty());
        let hits = store.knn(&Query::user(newcomer).k(10).space("dnn")).unwrap();
        assert_eq!(hits.len(), 10);
        right += hits.iter().filter(|h| cluster(h.id) == g).count();
        total += hits.len();
    }
    let share = right as f64 / total as f64;
    assert!(
        share >= 0.8,
        "share of a newcomer's recall in its group's cluster: {share}"
    );
    // A value no round has seen maps to "other": still an answer.
    store.set_user_features(20_000, &[("group", "never seen")]).unwrap();
    assert_eq!(store.knn(&Query::user(20_000).k(5).space("dnn")).unwrap().len(), 5);
    // Features survive a reopen.
    drop(store);
    let store = store_with(dir.path(), dnn_options(10));
    assert_eq!(
        store.user_features(3),
        [("group".to_string(), "3".to_string()), ("other".into(), "x".into())]
    );
}

#[test]
fn one_thread_is_deterministic_and_the_model_survives_a_reopen() {
    let events = sequential_events(200, 10, 3);
    let vectors = |dir: &std::path::Path| {
        let store = store_with(dir, dnn_options(5));
        store.append_events(&events).unwrap();
        store.train().unwrap();
        let space = store.space("dnn").unwrap();
        (0..CLUSTERS * PER_CLUSTER)
            .map(|i| space.get(i).unwrap())
            .collect::<Vec<_>>()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = vectors(a.path());
    assert!(first.iter().all(Option::is_some));
    assert_eq!(first, vectors(b.path()), "one thread and a seed give the same bits");

    let store = store_with(a.path(), dnn_options(5));
    let before: Vec<_> = (0..20u64)
        .map(|u| store.knn(&Query::user(u).k(5).space("dnn")).unwrap())
        .collect();
    drop(store);
    let store = store_with(a.path(), dnn_options(5));
    let after: Vec<_> = (0..20u64)
        .map(|u| store.knn(&Query::user(u).k(5).space("dnn")).unwrap())
        .collect();
    assert_eq!(before, after, "the tower and the item vectors are persisted");
    assert!(store.verify().unwrap().problems.is_empty());
}

/// The served top-K is the softmax's: `[u, 1] . [v_j, b_j]` over every
/// item, brute force, seen items left out.
#[test]
fn the_inner_product_search_is_the_softmax_top_k() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), dnn_options(5));
    store.append_events(&sequential_events(300, 10, 4)).unwrap();
    store.train().unwrap();
    let space = store.space("dnn").unwrap();
    assert_eq!(space.dim(), 16, "the dimension asked for");
    assert_eq!(space.row_dim(), 17, "item vectors are stored as [v, b]");
    for user in 0..30u64 {
        let u = space.user_vector(user).unwrap().unwrap();
        assert_eq!(u.len(), 17);
        assert_eq!(u[16], 1.0);
        let seen: HashSet<u64> = store.history(user).unwrap().into_iter().collect();
        let mut logits: Vec<(u64, f64)> = (0..CLUSTERS * PER_CLUSTER)
            .filter(|i| !seen.contains(i))
            .map(|i| {
                let v = space.get(i).unwrap().unwrap();
                (i, v.iter().zip(&u).map(|(a, b)| *a as f64 * *b as f64).sum())
            })
            .collect();
        logits.sort_by(|a, b| b.1.total_cmp(&a.1));
        let hits = store.knn(&Query::user(user).k(10).space("dnn").exact()).unwrap();
        let got: Vec<u64> = hits.iter().map(|h| h.id).collect();
        let want: Vec<u64> = logits.iter().take(10).map(|l| l.0).collect();
        assert_eq!(got, want, "user {user}");
        for (h, l) in hits.iter().zip(&logits) {
            assert!((h.score as f64 - l.1).abs() < 1e-4);
        }
    }
    // Similar items are by cosine over v (the bias left out).
    let v0 = space.get(0).unwrap().unwrap();
    let hits = store.knn(&Query::item(0).k(5).space("dnn")).unwrap();
    let cos = |a: &[f32], b: &[f32]| {
        let d: f32 = a[..16].iter().zip(&b[..16]).map(|(x, y)| x * y).sum();
        d / (a[..16].iter().map(|x| x * x).sum::<f32>().sqrt() * b[..16].iter().map(|x| x * x).sum::<f32>().sqrt())
    };
    for h in &hits {
        let v = space.get(h.id).unwrap().unwrap();
        assert!((h.score - cos(&v0, &v)).abs() < 1e-4);
    }
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn incremental_rounds_take_new_items_and_switch_generations_under_queries() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), dnn_options(5));
    store.append_events(&sequential_events(300, 10, 6)).unwrap();
    assert_eq!(store.train().unwrap().generation, 1);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let querier = s.spawn(|| {
            let mut answered = 0;
            while !stop.load(Ordering::Relaxed) {
                for user in 0..10u64 {
                    let hits = store.knn(&Query::user(user).k(10).space("dnn")).unwrap();
                    assert_eq!(hits.len(), 10);
                    answered += 1;
                }
            }
            answered
        });
        for round in 0..3u64 {
            // New users, and a new item for each.
            let events: Vec<Event> = (0..40u64)
                .map(|u| Event::new(1_000 + round * 100 + u, 500 + round, 5_000 + u))
                .collect();
            store.append_events(&events).unwrap();
            let r = store.train().unwrap();
            assert!(!r.full);
            assert_eq!(r.generation, round + 2);
            assert_eq!(r.new_items, 1);
        }
        stop.store(true, Ordering::Relaxed);
        assert!(querier.join().unwrap() > 0);
    });
    assert!(store.space("dnn").unwrap().get(502).unwrap().is_some());
}

const CHILD_DIR: &str = "EMBER_DNN_CHILD_DIR";

/// Child mode: trains rounds forever, printing each published generation.
#[test]
fn dnn_round_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let store = Store::open(
        &dir,
        Options::new(4)
            .space("dnn", SpaceSpec::youtube_dnn(16).dnn_options(dnn_options(5)))
            .durability(Durability::Sync),
    )
    .unwrap();
    println!("READY");
    for round in 0u64.. {
        let events = sequential_events(100, 10, round);
        let events: Vec<Event> = events
            .into_iter()
            .map(|e| Event::new(e.user + round * 1_000, e.item, e.ts))
            .collect();
        store.append_events(&events).unwrap();
        let r = store.train_full().unwrap();
        println!("GEN {}", r.generation);
    }
}

#[test]
fn a_kill_in_the_middle_of_a_round_loses_no_generation() {
    let dir = tempfile::tempdir().unwrap();
    let mut published = 0u64;
    for kill in 0..3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["dnn_round_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("GEN ").and_then(|g| g.parse::<u64>().ok()))
                .max()
        });
        std::thread::sleep(Duration::from_millis(600 + 400 * kill));
        child.kill().unwrap();
        child.wait().unwrap();
        if let Some(g) = reader.join().unwrap() {
            published = published.max(g);
        }
        let store = Store::open(dir.path(), Options::existing()).unwrap();
        let generation = store.space("dnn").unwrap().stats().trainer.unwrap().generation;
        assert!(
            generation >= published,
            "generation {generation} < published {published}"
        );
        let problems = store.verify().unwrap().problems;
        assert!(problems.is_empty(), "{problems:?}");
        if generation > 0 {
            assert_eq!(store.knn(&Query::user(1).k(5).space("dnn")).unwrap().len(), 5);
        }
    }
    assert!(published >= 1, "the child published no generation");
}

#[test]
fn bad_features_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), dnn_options(5));
    assert!(matches!(
        store.set_user_features(1, &[("", "x")]),
        Err(Error::InvalidFeatures { .. })
    ));
    let long = "x".repeat(300);
    assert!(matches!(
        store.set_user_features(1, &[("k", &long)]),
        Err(Error::InvalidFeatures { .. })
    ));
    assert!(store.user_features(1).is_empty());
    // A DNN space is searched by inner product, and its options are its own.
    let other = tempfile::tempdir().unwrap();
    let cosine = Options::new(4).space("dnn", SpaceSpec::youtube_dnn(8).metric(emberdb::Metric::Cosine));
    assert!(matches!(
        Store::open(other.path(), cosine),
        Err(Error::InvalidOptions(_))
    ));
    let zero_batch = DnnOptions {
        batch: 0,
        ..DnnOptions::default()
    };
    let bad = Options::new(4).space("dnn", SpaceSpec::youtube_dnn(8).dnn_options(zero_batch));
    assert!(matches!(Store::open(other.path(), bad), Err(Error::InvalidOptions(_))));
}

/// The background policy runs DNN rounds without the host.
#[test]
fn the_background_policy_trains_the_dnn_space() {
    let dir = tempfile::tempdir().unwrap();
    let dnn = DnnOptions {
        policy: emberdb::TrainPolicy {
            after_events: Some(1_000),
            every: None,
        },
        ..dnn_options(5)
    };
    let store = store_with(dir.path(), dnn);
    store.append_events(&sequential_events(200, 10, 9)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let space = store.space("dnn").unwrap();
    while space.stats().trainer.unwrap().generation == 0 {
        assert!(std::time::Instant::now() < deadline, "no background round within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(store.knn(&Query::user(3).k(5).space("dnn")).unwrap().len(), 5);
}

/// `Store::delete` reaches the DNN space too: the item leaves user and
/// item recall at once, and neither an incremental nor a full round nor a
/// reopen brings it back (its events still train the model as context).
#[test]
fn a_deleted_item_leaves_the_dnn_space_and_rounds_do_not_bring_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DnnOptions {
        epochs: 3,
        ..dnn_options(5)
    };
    let store = store_with(dir.path(), opts.clone());
    store.append_events(&sequential_events(100, 10, 6)).unwrap();
    store.train().unwrap();
    let victim = 3;
    let served = |store: &Store| -> Vec<u64> {
        let mut out = Vec::new();
        for user in 0..20u64 {
            let q = Query::user(user).k(60).space("dnn").include_seen();
            out.extend(store.knn(&q).unwrap().iter().map(|h| h.id));
        }
        for item in [0u64, 1, 2, 4, 20] {
            out.extend(
                store
                    .knn(&Query::item(item).k(60).space("dnn"))
                    .unwrap()
                    .iter()
                    .map(|h| h.id),
            );
        }
        out
    };
    assert!(served(&store).contains(&victim));
    assert!(store.delete(victim).unwrap());
    let gone = |store: &Store, when: &str| {
        assert!(!served(store).contains(&victim), "{when}");
        assert_eq!(store.space("dnn").unwrap().get(victim).unwrap(), None, "{when}");
        assert!(store.verify().unwrap().problems.is_empty(), "{when}");
    };
    gone(&store, "at once");
    store
        .append_events(&[Event::new(0, victim, 50_000), Event::new(0, 9, 50_001)])
        .unwrap();
    store.train().unwrap();
    gone(&store, "after an incremental round");
    store.train_full().unwrap();
    gone(&store, "after a full round");
    drop(store);
    let store = store_with(dir.path(), opts);
    gone(&store, "after a reopen");
}
