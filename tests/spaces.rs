//! Named vector spaces over one event log: a store with three spaces (the
//! default item2vec space, a host-fed 32-d space, and a second item2vec
//! space with other options) answers each independently, keeps all of them
//! through snapshots, compaction, reopening and kill -9, verifies all of
//! them, refuses bad input naming the space, and logs each event once
//! whatever the number of spaces.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{planted_events, random_vectors, vector_for};
use emberdb::{
    Durability, Error, Event, IndexSpec, Metric, Options, Query, SpaceKind, SpaceSpec, Store, TrainOptions,
    DEFAULT_SPACE,
};

const CLUSTERS: u64 = 8;
const PER_CLUSTER: u64 = 25;
const ITEMS: u64 = CLUSTERS * PER_CLUSTER;
const TEXT_DIM: usize = 32;

fn three_spaces() -> Options {
    Options::trained(24)
        .train_options(TrainOptions::default().epochs(10).threads(1).seed(7))
        .space("text", SpaceSpec::host(TEXT_DIM).metric(Metric::InnerProduct))
        .space(
            "small",
            SpaceSpec::item2vec(8).train_options(TrainOptions::default().epochs(5).threads(1).seed(11)),
        )
        .segment_rows(64)
        .durability(Durability::None)
}

/// Share of the top-10 neighbours of every item, in `space`, that are in
/// the item's planted cluster.
fn purity(store: &Store, space: &str) -> f64 {
    let (mut same, mut total) = (0, 0);
    for item in 0..ITEMS {
        let hits = store.knn(&Query::item(item).k(10).space(space)).unwrap();
        same += hits.iter().filter(|h| h.id / PER_CLUSTER == item / PER_CLUSTER).count();
        total += hits.len();
    }
    same as f64 / total.max(1) as f64
}

/// The text vectors: random, so their neighbours have nothing to do with
/// the clusters.
fn text_vectors() -> Vec<Vec<f32>> {
    random_vectors(ITEMS as usize, TEXT_DIM, 99)
}

fn fill(store: &Store) {
    store
        .append_events(&planted_events(400, CLUSTERS, PER_CLUSTER, 12, 3))
        .unwrap();
    let text = store.space("text").unwrap();
    for (id, v) in text_vectors().iter().enumerate() {
        text.upsert(id as u64, v).unwrap();
    }
    store.train().unwrap();
}

/// Every space's answers, for comparing a store with its copies (items
/// that the compaction test keeps: not multiples of 3).
fn answers(store: &Store) -> Vec<(String, u64, Vec<u64>)> {
    let mut out = Vec::new();
    for space in [DEFAULT_SPACE, "text", "small"] {
        for item in (0..ITEMS).filter(|i| i % 3 != 0).step_by(7) {
            let hits = store
                .knn(&Query::item(item).k(5).space(space))
                .unwrap_or_else(|e| panic!("{space} item {item}: {e}"));
            out.push((space.to_string(), item, hits.iter().map(|h| h.id).collect()));
        }
    }
    out
}

#[test]
fn three_spaces_answer_independently() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), three_spaces()).unwrap();
    fill(&store);

    // Both trained spaces learned the clusters, each at its own dimension.
    assert!(purity(&store, DEFAULT_SPACE) >= 0.8);
    assert!(purity(&store, "small") >= 0.6);
    assert_eq!(store.get(3).unwrap().unwrap().len(), 24);
    assert_eq!(store.space("small").unwrap().get(3).unwrap().unwrap().len(), 8);

    // The host space answers by its own vectors, exactly.
    let text = text_vectors();
    assert_eq!(store.space("text").unwrap().get(5).unwrap().unwrap(), text[5]);
    let q = &text[17];
    let mut want: Vec<(u64, f64)> = text
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum()))
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    let hits = store.knn(&Query::vector(q).k(10).space("text").exact()).unwrap();
    assert_eq!(
        hits.iter().map(|h| h.id).collect::<Vec<_>>(),
        want.iter().take(10).map(|w| w.0).collect::<Vec<_>>()
    );
    // Random text vectors ignore the clusters.
    assert!(purity(&store, "text") < 0.3);

    // A user query in each space excludes the user's items and pools that
    // space's vectors.
    let seen: HashSet<u64> = store.history(2).unwrap().into_iter().collect();
    for space in [DEFAULT_SPACE, "text", "small"] {
        let hits = store.knn(&Query::user(2).k(10).space(space)).unwrap();
        assert_eq!(hits.len(), 10, "{space}");
        assert!(hits.iter().all(|h| !seen.contains(&h.id)), "{space}");
    }

    // Writes to one space leave the others alone.
    store.space("text").unwrap().delete(5).unwrap();
    assert!(store.space("text").unwrap().get(5).unwrap().is_none());
    assert!(store.get(5).unwrap().is_some());
    assert!(store.space("small").unwrap().get(5).unwrap().is_some());

    let stats = store.stats().unwrap();
    let names: Vec<&str> = stats.spaces.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [DEFAULT_SPACE, "text", "small"]);
    assert_eq!(stats.spaces[1].kind, SpaceKind::Host);
    assert_eq!(stats.spaces[1].live_rows, ITEMS as usize - 1);
    assert_eq!(stats.spaces[2].trainer.as_ref().unwrap().generation, 1);
    assert_eq!(stats.live_rows, stats.spaces.iter().map(|s| s.live_rows).sum::<usize>());
}

#[test]
fn snapshots_compaction_and_reopening_keep_every_space_and_verify_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path, three_spaces()).unwrap();
    fill(&store);
    let before = answers(&store);

    let snap = dir.path().join("snap");
    store.snapshot(&snap).unwrap();
    {
        let copy = Store::open(&snap, Options::existing()).unwrap();
        assert_eq!(answers(&copy), before);
        assert!(copy.verify().unwrap().problems.is_empty());
    }

    // Dead rows in the text space, then a compaction of every space.
    store.seal().unwrap();
    let text = store.space("text").unwrap();
    for id in (0..ITEMS).filter(|i| i % 3 == 0) {
        text.delete(id).unwrap();
    }
    let before_compaction = answers(&store);
    let report = store.compact().unwrap();
    assert!(report.segments_in > 0, "{report:?}");
    let after_delete = answers(&store);
    assert_eq!(after_delete, before_compaction);
    assert!(after_delete
        .iter()
        .filter(|(s, ..)| s == "text")
        .all(|(_, _, hits)| hits.iter().all(|id| id % 3 != 0)));
    assert!(store.verify().unwrap().problems.is_empty());
    // A space handle keeps its store open: both go before the reopen.
    drop(text);
    drop(store);

    // Reopened with only the default space named: the others open too.
    let store = Store::open(
        &path,
        Options::trained(24).train_options(TrainOptions::default().epochs(10).threads(1).seed(7)),
    )
    .unwrap();
    assert_eq!(answers(&store), after_delete);
    assert_eq!(store.spaces().len(), 3);
    assert_eq!(store.options().spaces().len(), 2);
    drop(store);

    // verify reads every space's files: damage one of the text space's.
    let seg = {
        let store = Store::open(&path, Options::existing()).unwrap();
        let first = store.stats().unwrap().spaces[1].sealed_segments;
        assert!(first > 0);
        store.flush().unwrap();
        drop(store);
        let mut text_segments = Vec::new();
        for f in common::files_with_prefix(&path.join("segments"), "seg-") {
            let bytes = std::fs::read(&f).unwrap();
            // The segment header's dim (bytes 12..16) says whose it is.
            if u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize == TEXT_DIM {
                text_segments.push(f);
            }
        }
        text_segments.pop().unwrap()
    };
    let len = std::fs::metadata(&seg).unwrap().len();
    common::flip_bit(&seg, len - 5);
    let store = Store::open(&path, Options::existing()).unwrap();
    let problems = store.verify().unwrap().problems;
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&seg.file_name().unwrap().to_string_lossy().to_string())),
        "{problems:?}"
    );
}

#[test]
fn bad_input_names_the_space() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), three_spaces()).unwrap();
    match store.space("nope") {
        Err(Error::UnknownSpace { name, known, .. }) => {
            assert_eq!(name, "nope");
            assert_eq!(known, [DEFAULT_SPACE, "text", "small"]);
        }
        other => panic!("expected UnknownSpace, got {:?}", other.map(|s| s.name().to_string())),
    }
    assert!(matches!(
        store.knn(&Query::vector(&[1.0; 8]).space("nope")),
        Err(Error::UnknownSpace { .. })
    ));
    match store.space("text").unwrap().upsert(1, &[1.0; 24]) {
        Err(Error::DimensionMismatch {
            context, expected, got, ..
        }) => {
            assert!(context.contains("\"text\""), "{context}");
            assert_eq!((expected, got), (TEXT_DIM, 24));
        }
        other => panic!("expected DimensionMismatch, got {other:?}"),
    }
    assert!(matches!(
        store.knn(&Query::vector(&[1.0; 24]).space("text")),
        Err(Error::DimensionMismatch { .. })
    ));
    // A trained space refuses host writes, naming itself.
    match store.space("small").unwrap().upsert(1, &[1.0; 8]) {
        Err(Error::TrainedStore { space, .. }) => assert_eq!(space, "small"),
        other => panic!("expected TrainedStore, got {other:?}"),
    }
    // Nothing was written by any of it.
    assert_eq!(store.stats().unwrap().rows, 0);
    drop(store);

    for (spec, field) in [
        (SpaceSpec::host(16).metric(Metric::InnerProduct), "dim"),
        (SpaceSpec::host(TEXT_DIM), "metric"),
        (SpaceSpec::item2vec(TEXT_DIM).metric(Metric::InnerProduct), "vectors"),
    ] {
        match Store::open(dir.path(), Options::existing().space("text", spec)) {
            Err(Error::ConfigMismatch { space, field: f, .. }) => {
                assert_eq!(space, "text");
                assert_eq!(f, field);
            }
            Err(e) => panic!("expected ConfigMismatch on {field}, got {e}"),
            Ok(_) => panic!("expected ConfigMismatch on {field}, got a store"),
        }
    }
    // Bad names and duplicates are refused before anything is opened.
    for opts in [
        Options::new(4).space("", SpaceSpec::host(4)),
        Options::new(4).space("a/b", SpaceSpec::host(4)),
        Options::new(4).space(DEFAULT_SPACE, SpaceSpec::host(4)),
        Options::new(4)
            .space("x", SpaceSpec::host(4))
            .space("x", SpaceSpec::host(8)),
    ] {
        let other = tempfile::tempdir().unwrap();
        assert!(matches!(Store::open(other.path(), opts), Err(Error::InvalidOptions(_))));
    }
}

#[test]
fn index_specs_and_training_options_are_remembered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), three_spaces()).unwrap();
        assert_eq!(store.stats().unwrap().spaces[1].index, IndexSpec::hnsw());
    }
    // `existing()` adopts every space with the spec and options it had.
    let store = Store::open(dir.path(), Options::existing()).unwrap();
    let opts = store.options();
    assert_eq!(
        opts.get_train_options().unwrap(),
        &TrainOptions::default().epochs(10).threads(1).seed(7)
    );
    let small = &opts.spaces()[1].1;
    assert_eq!(small.dim(), 8);
    assert_eq!(
        small.get_train_options().unwrap(),
        &TrainOptions::default().epochs(5).threads(1).seed(11)
    );
    drop(store);
    // An index given with `existing()` is the default space's, and stays.
    drop(Store::open(dir.path(), Options::existing().index(IndexSpec::ivf())).unwrap());
    let store = Store::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(store.stats().unwrap().spaces[0].index, IndexSpec::ivf());
    assert_eq!(store.stats().unwrap().spaces[1].index, IndexSpec::hnsw());
}

#[test]
fn a_space_added_later_trains_from_the_events_already_logged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Options::new(4).durability(Durability::None)).unwrap();
        store
            .append_events(&planted_events(400, CLUSTERS, PER_CLUSTER, 12, 5))
            .unwrap();
    }
    let store = Store::open(
        dir.path(),
        Options::existing().space(
            "late",
            SpaceSpec::item2vec(16)
                .train_options(TrainOptions::default().epochs(10).threads(1).seed(1))
                .index(IndexSpec::Flat),
        ),
    )
    .unwrap();
    let report = store.train().unwrap();
    assert_eq!(report.items, ITEMS as usize);
    assert!(purity(&store, "late") >= 0.8);
    assert_eq!(store.space("late").unwrap().train().unwrap().new_events, 0);
    assert!(matches!(
        store.space(DEFAULT_SPACE).unwrap().train(),
        Err(Error::NotTrained { .. })
    ));
}

#[test]
fn events_are_logged_once_whatever_the_number_of_spaces() {
    let wal_bytes = |opts: Options| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), opts.durability(Durability::Buffered)).unwrap();
        let before = store.stats().unwrap().wal_bytes;
        let events: Vec<Event> = (0..10_000u64).map(|n| Event::new(n % 97, n % 1_000, n)).collect();
        for chunk in events.chunks(100) {
            store.append_events(chunk).unwrap();
        }
        store.stats().unwrap().wal_bytes - before
    };
    let one = wal_bytes(Options::trained(16));
    let three = wal_bytes(
        Options::trained(16)
            .space("text", SpaceSpec::host(384))
            .space("other", SpaceSpec::item2vec(32)),
    );
    println!(
        "log bytes per event: {:.2} with one space, {:.2} with three",
        one as f64 / 1e4,
        three as f64 / 1e4
    );
    assert_eq!(one, three);
    assert!(one / 10_000 <= 30, "{one}");
}

const CHILD_DIR: &str = "EMBER_SPACES_CHILD_DIR";

fn crash_opts() -> Options {
    Options::new(8)
        .metric(Metric::L2)
        .space("text", SpaceSpec::host(4).metric(Metric::L2))
        .durability(Durability::Sync)
        .segment_rows(30)
        .wal_file_bytes(8 * 1024)
        .checkpoint_wal_bytes(16 * 1024)
        .history_len(100_000)
}

/// Child mode: writes to both spaces forever, acknowledging each write.
#[test]
fn spaces_crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let round: u64 = std::env::var("EMBER_SPACES_ROUND").unwrap().parse().unwrap();
    let store = Store::open(&dir, crash_opts()).unwrap();
    let text = store.space("text").unwrap();
    println!("READY");
    for i in 0.. {
        let id = round * 1_000_000 + i;
        store.upsert(id, &vector_for(id, 8)).unwrap();
        println!("ACK D {id}");
        text.upsert(id, &vector_for(id + 7, 4)).unwrap();
        println!("ACK T {id}");
        store.append_event(Event::new(round, id, i)).unwrap();
        println!("ACK E {id}");
    }
}

#[test]
fn every_space_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<char, Vec<u64>> = BTreeMap::new();
    for round in 1..=5u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["spaces_crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env("EMBER_SPACES_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                lines.push(line.unwrap());
            }
            lines
        });
        std::thread::sleep(Duration::from_millis(150 + 60 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        for line in reader.join().unwrap() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.len() == 3 && parts[0] == "ACK" {
                let kind = parts[1].chars().next().unwrap();
                acked.entry(kind).or_default().push(parts[2].parse().unwrap());
            }
        }
        let store = Store::open(dir.path(), crash_opts()).unwrap();
        let text = store.space("text").unwrap();
        for id in &acked[&'D'] {
            assert_eq!(store.get(*id).unwrap(), Some(vector_for(*id, 8)), "default item {id}");
        }
        for id in &acked[&'T'] {
            assert_eq!(text.get(*id).unwrap(), Some(vector_for(*id + 7, 4)), "text item {id}");
        }
        for id in acked.get(&'E').into_iter().flatten() {
            let user = id / 1_000_000;
            assert!(store.history(user).unwrap().contains(id), "event of item {id}");
        }
        let problems = store.verify().unwrap().problems;
        assert!(problems.is_empty(), "{problems:?}");
    }
    assert!(
        acked[&'T'].len() > 20,
        "the child wrote too little: {}",
        acked[&'T'].len()
    );
}
