//! User histories, user features and item attributes in run files: they
//! answer as an in-memory model says across checkpoints, merges and
//! reopens; a repair after losing sled's database brings every one back;
//! a damaged run is `Corruption` naming it, never a wrong history; readers
//! never see a history go backwards while runs are flushed and merged;
//! merges in flight at once take disjoint runs and lose nothing; a
//! format-5 store's behaviour moves into runs and answers as before.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use emberdb::{Durability, Error, Event, Options, Query, Store};
use rand::{Rng, SeedableRng};

const DIM: usize = 4;

/// What the store must answer: every event of each user (ts, seq, item),
/// features and attributes as last set.
#[derive(Default)]
struct Model {
    events: HashMap<u64, Vec<(u64, u64, u64)>>,
    seq: u64,
    features: HashMap<u64, Vec<(String, String)>>,
    attributes: HashMap<u64, Vec<(String, String)>>,
}

impl Model {
    /// The store's rule: a history is the user's newest `len` events by
    /// (timestamp, arrival), oldest first.
    fn history(&self, user: u64, len: usize) -> Vec<u64> {
        let mut events = self.events.get(&user).cloned().unwrap_or_default();
        events.sort_unstable();
        let skip = events.len().saturating_sub(len);
        events[skip..].iter().map(|e| e.2).collect()
    }
}

fn pairs(p: &[(String, String)]) -> Vec<(&str, &str)> {
    p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn opts(len: usize) -> Options {
    Options::new(DIM)
        .durability(Durability::Buffered)
        .history_len(len)
        .recent_bytes(1 << 20)
        .merge_threads(2)
}

fn check(store: &Store, model: &Model, len: usize, users: u64, items: u64, when: &str) {
    for user in 0..users {
        assert_eq!(
            store.history(user).unwrap(),
            model.history(user, len),
            "{when}: user {user}"
        );
        assert_eq!(
            store.try_user_features(user).unwrap(),
            model.features.get(&user).cloned().unwrap_or_default(),
            "{when}: features of {user}"
        );
    }
    for item in 0..items {
        assert_eq!(
            store.attributes(item),
            model.attributes.get(&item).cloned().unwrap_or_default(),
            "{when}: attributes of {item}"
        );
    }
    let stats = store.stats().unwrap();
    let with_features = model.features.values().filter(|f| !f.is_empty()).count();
    assert_eq!(stats.users_with_features, with_features, "{when}");
}

#[test]
fn behaviour_answers_as_a_model_across_checkpoints_merges_crashes_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let (len, users, items) = (12usize, 60u64, 40u64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(27);
    let mut model = Model::default();
    let mut store = Store::open(&path, opts(len)).unwrap();
    let mut most_runs = 0;
    for step in 0..400 {
        match rng.gen_range(0..100) {
            0..=59 => {
                let batch: Vec<Event> = (0..rng.gen_range(1..60))
                    .map(|_| {
                        // Mostly in time order, some late (an older ts).
                        let ts = 10_000 + step as u64 * 10 - rng.gen_range(0..40u64);
                        Event::new(rng.gen_range(0..users), rng.gen_range(0..items), ts)
                    })
                    .collect();
                store.append_events(&batch).unwrap();
                for e in &batch {
                    model.seq += 1;
                    model.events.entry(e.user).or_default().push((e.ts, model.seq, e.item));
                }
            }
            60..=69 => {
                let user = rng.gen_range(0..users);
                let set: Vec<(String, String)> = (0..rng.gen_range(0..3))
                    .map(|i| (format!("k{i}"), format!("v{}", rng.gen_range(0..5))))
                    .collect();
                store.set_user_features(user, &pairs(&set)).unwrap();
                model.features.insert(user, set);
            }
            70..=79 => {
                let item = rng.gen_range(0..items);
                let set: Vec<(String, String)> = (0..rng.gen_range(0..3))
                    .map(|i| (format!("a{i}"), format!("{}", rng.gen_range(0..5))))
                    .collect();
                store.set_attributes(item, &pairs(&set)).unwrap();
                model.attributes.insert(item, set);
            }
            80..=86 => store.flush().unwrap(),
            87..=89 => {
                store.flush().unwrap();
                store.merge_runs().unwrap();
            }
            90..=92 => {
                store.compact().unwrap();
                let runs = store.stats().unwrap().runs;
                assert!(runs.event_runs <= 1, "compaction leaves one event run: {runs:?}");
            }
            93..=96 => {
                drop(store);
                store = Store::open(&path, opts(len)).unwrap();
            }
            _ => {
                // A crash: no checkpoint, the log replays over the runs.
                store.flush().unwrap();
                store.close_without_checkpoint();
                store = Store::open(&path, opts(len)).unwrap();
            }
        }
        most_runs = most_runs.max(store.stats().unwrap().runs.event_runs);
        if step % 25 == 0 {
            check(&store, &model, len, users, items, &format!("step {step}"));
        }
    }
    check(&store, &model, len, users, items, "the end");
    assert!(most_runs >= 2, "the workload never held two event runs");
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    drop(store);
    let read_only = Store::open_read_only(&path).unwrap();
    check(&read_only, &model, len, users, items, "read-only");
}

/// Removes sled's database (every generation directory under `meta/`).
fn lose_metadata(path: &Path) {
    for entry in std::fs::read_dir(path.join("meta")).unwrap() {
        let entry = entry.unwrap().path();
        if entry.is_dir() {
            std::fs::remove_dir_all(entry).unwrap();
        }
    }
}

#[test]
fn repair_after_losing_sled_brings_back_every_history_feature_and_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let (users, items, events) = (50_000u64, 20_000u64, 1_000_000u64);
    let store = Store::open(
        &path,
        Options::new(DIM).durability(Durability::Buffered).history_len(30),
    )
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut sent = 0u64;
    while sent < events {
        let batch: Vec<Event> = (0..10_000)
            .map(|i| Event::new(rng.gen_range(0..users), rng.gen_range(0..items), 1_000 + sent + i))
            .collect();
        store.append_events(&batch).unwrap();
        sent += batch.len() as u64;
        if sent.is_multiple_of(300_000) {
            store.flush().unwrap();
        }
    }
    for user in (0..users).step_by(5) {
        store
            .set_user_features(user, &[("age", &format!("{}", user % 70))])
            .unwrap();
    }
    for item in (0..items).step_by(4) {
        store
            .set_attributes(item, &[("genre", &format!("g{}", item % 9))])
            .unwrap();
    }
    store.flush().unwrap();
    // After the last checkpoint: only in the log.
    store
        .append_events(&[Event::new(3, 4, 5_000_000), Event::new(49_999, 1, 5_000_001)])
        .unwrap();
    store.set_user_features(2, &[("age", "99")]).unwrap();
    store.set_attributes(1, &[("genre", "late")]).unwrap();
    let histories: Vec<Vec<u64>> = (0..users).map(|u| store.history(u).unwrap()).collect();
    let features: Vec<_> = (0..users).map(|u| store.try_user_features(u).unwrap()).collect();
    let attributes: Vec<_> = (0..items).map(|i| store.attributes(i)).collect();
    assert!(store.stats().unwrap().runs.event_runs >= 1);
    store.close_without_checkpoint();

    lose_metadata(&path);
    let report = Store::repair(&path).unwrap();
    assert!(report.lost.is_empty(), "{:?}", report.lost);
    assert!(report.runs_checked >= 3, "{report:?}");
    assert_eq!(
        report.users_with_history,
        histories.iter().filter(|h| !h.is_empty()).count()
    );
    assert_eq!(
        report.history_entries,
        histories.iter().map(|h| h.len() as u64).sum::<u64>()
    );
    let store = Store::open(&path, Options::existing()).unwrap();
    for user in 0..users {
        assert_eq!(
            store.history(user).unwrap(),
            histories[user as usize],
            "history of {user}"
        );
        assert_eq!(
            store.try_user_features(user).unwrap(),
            features[user as usize],
            "features of {user}"
        );
    }
    for item in 0..items {
        assert_eq!(
            store.attributes(item),
            attributes[item as usize],
            "attributes of {item}"
        );
    }
    assert!(store.verify().unwrap().problems.is_empty());
}

fn run_files(path: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(path.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    out.sort();
    out
}

/// A store with one run of each kind; returns each user's history.
fn store_with_runs(path: &Path) -> Vec<Vec<u64>> {
    let store = Store::open(path, Options::new(DIM)).unwrap();
    let events: Vec<Event> = (0..30_000u64)
        .map(|i| Event::new(i % 3_000, i % 77, 1_000 + i))
        .collect();
    store.append_events(&events).unwrap();
    store.set_user_features(5, &[("age", "30")]).unwrap();
    store.set_attributes(6, &[("genre", "x")]).unwrap();
    store.flush().unwrap();
    (0..3_000).map(|u| store.history(u).unwrap()).collect()
}

fn names(e: &Error, file: &Path) -> bool {
    matches!(e, Error::Corruption { file: f, .. } if f == file)
}

#[test]
fn a_damaged_run_is_corruption_naming_it_never_a_wrong_history() {
    for prefix in ["ev-", "ft-", "at-"] {
        for damage in ["flip", "truncate", "delete"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("store");
            let histories = store_with_runs(&path);
            let files = run_files(&path, prefix);
            assert_eq!(files.len(), 1, "{prefix}: {files:?}");
            let file = &files[0];
            let len = std::fs::metadata(file).unwrap().len();
            match damage {
                "flip" => common::flip_bit(file, len / 2),
                "truncate" => std::fs::OpenOptions::new()
                    .write(true)
                    .open(file)
                    .unwrap()
                    .set_len(len - 100)
                    .unwrap(),
                _ => std::fs::remove_file(file).unwrap(),
            }
            let what = format!("{damage} of {}", file.display());
            match Store::open(&path, Options::existing()) {
                Err(e) => {
                    // Opened files are named; a missing one is named too.
                    let said = e.to_string();
                    assert!(
                        names(&e, file) || said.contains(&file.display().to_string()),
                        "{what}: {said}"
                    );
                }
                Ok(store) => {
                    // Only a flip inside an event block opens (blocks are
                    // checked at first read): no wrong history, and
                    // verify names the file.
                    assert_eq!((prefix, damage), ("ev-", "flip"), "{what} opened");
                    for (user, expected) in histories.iter().enumerate() {
                        match store.history(user as u64) {
                            Ok(h) => assert_eq!(&h, expected, "{what}: user {user}"),
                            Err(e) => assert!(names(&e, file), "{what}: {e}"),
                        }
                    }
                    let problems = store.verify().unwrap().problems;
                    assert!(
                        problems.iter().any(|p| p.contains(&file.display().to_string())),
                        "{what}: {problems:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn readers_never_see_a_history_go_backwards_while_runs_are_flushed_and_merged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let users = 40u64;
    let store = Arc::new(
        Store::open(
            &path,
            Options::new(DIM)
                .durability(Durability::None)
                .history_len(1_000_000)
                .recent_bytes(1 << 20)
                .merge_threads(2),
        )
        .unwrap(),
    );
    for item in 0..50u64 {
        store.upsert(item, &common::vector_for(item, DIM)).unwrap();
    }
    let ms: u64 = std::env::var("EMBER_RACE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut ts = 1_000u64;
            let mut batches = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<Event> = (0..500)
                    .map(|i| {
                        ts += 1;
                        Event::new(i % users, ts % 50, ts)
                    })
                    .collect();
                store.append_events(&batch).unwrap();
                batches += 1;
                if batches.is_multiple_of(20) {
                    store.flush().unwrap();
                }
            }
            batches
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut seen: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for user in (r..users).step_by(2) {
                        let now = store.history(user).unwrap();
                        let before = seen.entry(user).or_default();
                        // Events arrive in time order and nothing is cut:
                        // what was seen stays, in place.
                        assert!(
                            now.len() >= before.len() && now[..before.len()] == before[..],
                            "user {user} went from {} to {} entries",
                            before.len(),
                            now.len()
                        );
                        if !now.is_empty() {
                            store.knn(&Query::user(user).k(5)).unwrap();
                        }
                        *before = now;
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(ms) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let batches = writer.join().unwrap();
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(batches > 20 && reads > 0, "{batches} batches, {reads} reads");
    let stats = store.stats().unwrap();
    assert!(stats.runs.merges > 0 || ms < 1_000, "no merge ran: {:?}", stats.runs);
}

#[test]
fn merges_at_once_take_disjoint_runs_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let users = 30u64;
    let opts = || {
        Options::new(DIM)
            .durability(Durability::Sync)
            .history_len(1_000_000)
            .merge_threads(0)
    };
    let store = Arc::new(Store::open(&path, opts()).unwrap());
    let mut expected: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut ts = 1_000u64;
    let next_batch = |store: &Store, expected: &mut BTreeMap<u64, Vec<u64>>, ts: &mut u64| {
        let batch: Vec<Event> = (0..300)
            .map(|i| {
                *ts += 1;
                Event::new(i % users, *ts % 97, *ts)
            })
            .collect();
        store.append_events(&batch).unwrap();
        for e in &batch {
            expected.entry(e.user).or_default().push(e.item);
        }
        store.flush().unwrap();
    };
    let ms: u64 = std::env::var("EMBER_RACE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let started = Instant::now();
    let mut rounds = 0;
    // Rounds of 16 flushed runs and four threads merging them at once,
    // until two merges were seen in flight together (or time is up).
    while rounds == 0
        || (store.stats().unwrap().runs.most_merges_at_once < 2 && started.elapsed() < Duration::from_millis(ms))
    {
        rounds += 1;
        for _ in 0..16 {
            next_batch(&store, &mut expected, &mut ts);
        }
        let before = store.stats().unwrap().runs.event_runs;
        assert!(before >= 16, "{before} runs");
        let go = Arc::new(std::sync::Barrier::new(5));
        let mergers: Vec<_> = (0..4)
            .map(|_| {
                let (store, go) = (Arc::clone(&store), Arc::clone(&go));
                std::thread::spawn(move || {
                    go.wait();
                    store.merge_runs().unwrap()
                })
            })
            .collect();
        go.wait();
        // Readers during the merges: every history whole, every time.
        for _ in 0..3 {
            for (user, items) in &expected {
                assert_eq!(&store.history(*user).unwrap(), items, "user {user} during merges");
            }
        }
        let merged: u64 = mergers.into_iter().map(|m| m.join().unwrap()).sum();
        assert!(merged >= 4, "round {rounds}: {merged} merges of {before} runs");
        let runs = store.stats().unwrap().runs;
        assert_eq!(runs.merges_in_flight, 0);
        assert!(runs.event_runs < before, "{runs:?}");
    }
    let runs = store.stats().unwrap().runs;
    assert!(
        runs.most_merges_at_once >= 2,
        "four threads merging 16 runs never had two merges in flight ({rounds} rounds): {runs:?}"
    );
    for (user, items) in &expected {
        assert_eq!(&store.history(*user).unwrap(), items, "user {user}");
    }
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    drop(store);
    let store = Store::open(&path, opts()).unwrap();
    for (user, items) in &expected {
        assert_eq!(&store.history(*user).unwrap(), items, "user {user} after reopen");
    }
    assert!(store.verify().unwrap().problems.is_empty());
}

#[test]
fn a_format_5_store_moves_its_behaviour_into_runs_and_answers_as_before() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v5-host");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("store");
    common::copy_dir(&fixture, &copy);
    // A read-only open converts into its private directory: nothing in the
    // store changes.
    let before = common::contents(&copy);
    let (histories, features, attributes): (Vec<_>, Vec<_>, Vec<_>) = {
        let store = Store::open_read_only(&copy).unwrap();
        (
            (0..200).map(|u| store.history(u).unwrap()).collect(),
            (0..200).map(|u| store.try_user_features(u).unwrap()).collect(),
            (0..200).map(|i| store.attributes(i)).collect(),
        )
    };
    assert_eq!(common::contents(&copy), before, "a read-only open changed the store");
    assert!(histories.iter().any(|h| !h.is_empty()) && features.iter().any(|f| !f.is_empty()));
    for reopen in 0..2 {
        let store = Store::open(&copy, Options::existing()).unwrap();
        let runs = store.stats().unwrap().runs;
        assert!(runs.event_runs >= 1 && runs.feature_runs == 1, "{runs:?}");
        for u in 0..200u64 {
            assert_eq!(
                store.history(u).unwrap(),
                histories[u as usize],
                "open {reopen}: user {u}"
            );
            assert_eq!(store.try_user_features(u).unwrap(), features[u as usize]);
        }
        for i in 0..200u64 {
            assert_eq!(store.attributes(i), attributes[i as usize]);
        }
        let report = store.verify().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
