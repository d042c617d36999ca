//! Stores written by an older build open unchanged, and answer as they did.
//!
//! `tests/fixtures/v1-host` and `v1-trained` were written by format 1 (the
//! commit that added them, with `examples/write_v1_fixtures.rs`), and
//! `answers.txt` holds what they answered then: stored vectors (bit for
//! bit), similar items and user recall (ids, and scores to 1e-5, since
//! the kernels' rounding may differ by CPU), and histories. Each test opens
//! a copy (opening upgrades a store in place). `v2-host` and `v2-trained`
//! (with `answers-v2.txt`) were written the same way by format 2, the last
//! build before the log-file list and the deleted items (format 3): the
//! same example at commit 146c4ea. Once opened by this build, a format-2
//! build refuses them (`NewerFormat`). `v3-host` and `v3-trained` (with
//! `answers-v3.txt`) come from format 3 (commit 309d59c), the last build
//! before item attributes and trending counts (format 4). `v5-host` and
//! `v5-trained` (with `answers-v5.txt`) come from format 5 (the same
//! example with the tag `v5`), the last format that keeps user histories,
//! features and item attributes in sled; they also hold features,
//! attributes and a store-wide delete, with their answers.

mod common;

use std::path::{Path, PathBuf};

use emberdb::{Options, Query, Store};

fn fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join(name);
    common::copy_dir(&src, &dst);
    (tmp, dst)
}

/// (id, score) pairs in a canonical order: equal scores (duplicate vectors
/// in the fixture) may come in either order.
fn canonical(mut hits: Vec<(u64, f32)>) -> Vec<(u64, f32)> {
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    hits
}

fn parse_hits(text: &str) -> Vec<(u64, f32)> {
    text.split_whitespace()
        .map(|pair| {
            let (id, score) = pair.split_once(':').unwrap();
            (id.parse().unwrap(), score.parse().unwrap())
        })
        .collect()
}

fn check_answers(store: &Store, name: &str) -> usize {
    check_answers_in(store, name, "answers.txt")
}

fn check_answers_in(store: &Store, name: &str, file: &str) -> usize {
    let answers =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(file)).unwrap();
    let mut checked = 0;
    for line in answers.lines().filter(|l| l.starts_with(&format!("{name} "))) {
        let mut parts = line.splitn(4, ' ');
        let (_, kind, id, rest) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap().parse::<u64>().unwrap(),
            parts.next().unwrap_or(""),
        );
        match kind {
            "get" => {
                let got = store.get(id).unwrap();
                let want = if rest == "none" { None } else { Some(rest.to_string()) };
                assert_eq!(got.map(|v| format!("{v:?}")), want, "{line}");
            }
            "history" => assert_eq!(format!("{:?}", store.history(id).unwrap()), rest, "{line}"),
            "features" => assert_eq!(format!("{:?}", store.user_features(id)), rest, "{line}"),
            "attributes" => assert_eq!(format!("{:?}", store.attributes(id)), rest, "{line}"),
            "deleted" => assert_eq!(store.is_deleted(id).to_string(), rest, "{line}"),
            "item" | "user" => {
                let query = if kind == "item" {
                    Query::item(id)
                } else {
                    Query::user(id)
                };
                let got = canonical(
                    store
                        .knn(&query.k(5))
                        .unwrap()
                        .iter()
                        .map(|h| (h.id, h.score))
                        .collect(),
                );
                let want = canonical(parse_hits(rest));
                assert_eq!(got.len(), want.len(), "{line}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.0, w.0, "{line}: got {got:?}");
                    assert!((g.1 - w.1).abs() < 1e-5, "{line}: got {got:?}");
                }
            }
            other => panic!("unknown answer kind {other}"),
        }
        checked += 1;
    }
    checked
}

#[test]
fn a_host_fed_store_of_format_1_opens_and_answers_as_before() {
    let (_tmp, path) = fixture("v1-host");
    let store = Store::open(&path, Options::existing()).unwrap();
    assert_eq!(check_answers(&store, "host"), 15);
    assert!(store.verify().unwrap().problems.is_empty());
    // It takes writes, and answers the same after a reopen.
    store.upsert(1_000, &[0.5; 8]).unwrap();
    drop(store);
    let store = Store::open(&path, Options::new(8)).unwrap();
    assert_eq!(check_answers(&store, "host"), 15);
    assert!(store.get(1_000).unwrap().is_some());
}

#[test]
fn a_trained_store_of_format_1_opens_and_answers_as_before() {
    let (_tmp, path) = fixture("v1-trained");
    let store = Store::open(&path, Options::existing()).unwrap();
    assert_eq!(check_answers(&store, "trained"), 14);
    assert!(store.verify().unwrap().problems.is_empty());
    assert_eq!(store.stats().unwrap().trainer.unwrap().generation, 1);
}

#[test]
fn a_host_fed_store_of_format_2_opens_and_answers_as_before() {
    let (_tmp, path) = fixture("v2-host");
    let store = Store::open(&path, Options::existing()).unwrap();
    assert_eq!(check_answers_in(&store, "host", "answers-v2.txt"), 15);
    assert!(store.verify().unwrap().problems.is_empty());
    store.upsert(1_000, &[0.5; 8]).unwrap();
    drop(store);
    // Its log files are now recorded: deleting the live one is caught.
    let wal: Vec<PathBuf> = std::fs::read_dir(path.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let store = Store::open(&path, Options::existing()).unwrap();
    assert_eq!(check_answers_in(&store, "host", "answers-v2.txt"), 15);
    assert!(store.get(1_000).unwrap().is_some());
    drop(store);
    std::fs::remove_file(wal.iter().max().unwrap()).unwrap();
    assert!(matches!(
        Store::open(&path, Options::existing()),
        Err(emberdb::Error::Corruption { .. })
    ));
}

#[test]
fn a_trained_store_of_format_2_opens_and_answers_as_before() {
    let (_tmp, path) = fixture("v2-trained");
    let store = Store::open_read_only(&path).unwrap();
    assert_eq!(check_answers_in(&store, "trained", "answers-v2.txt"), 14);
    drop(store);
    let store = Store::open(&path, Options::existing()).unwrap();
    assert_eq!(check_answers_in(&store, "trained", "answers-v2.txt"), 14);
    assert!(store.verify().unwrap().problems.is_empty());
    assert_eq!(store.stats().unwrap().trainer.unwrap().generation, 1);
}

/// Counts of each item over the histories of `users`.
fn history_counts(store: &Store, users: std::ops::Range<u64>) -> std::collections::BTreeMap<u64, u32> {
    let mut counts = std::collections::BTreeMap::new();
    for user in users {
        for item in store.history(user).unwrap() {
            *counts.entry(item).or_insert(0) += 1;
        }
    }
    counts
}

/// `v3-host` and `v3-trained` (with `answers-v3.txt`) were written by
/// format 3, the last build before item attributes and the trending counts
/// (format 4), with the same example at commit 309d59c. They answer as
/// before, and their trending counts are made from their histories at open,
/// each event once, also after a reopen.
#[test]
fn stores_of_format_3_open_answer_as_before_and_count_their_trending_items() {
    for (name, fixture_name, users, answers) in [("host", "v3-host", 0..6, 15), ("trained", "v3-trained", 0..40, 14)] {
        let (_tmp, path) = fixture(fixture_name);
        for reopened in [false, true] {
            let store = Store::open(&path, Options::existing()).unwrap();
            assert_eq!(check_answers_in(&store, name, "answers-v3.txt"), answers);
            assert!(store.verify().unwrap().problems.is_empty());
            let mut counts = history_counts(&store, users.clone());
            // Deleted items never trend.
            counts.retain(|id, _| !store.is_deleted(*id));
            let popular = store.knn(&Query::popular().k(1_000)).unwrap();
            assert_eq!(popular.len(), counts.len(), "{name}");
            for hit in &popular {
                assert_eq!(
                    Some(&(hit.score as u32)),
                    counts.get(&hit.id),
                    "{name}: item {}",
                    hit.id
                );
            }
            // Attributes, new in format 4, are kept from the first open on.
            assert_eq!(store.attributes(1).is_empty(), !reopened);
            store.set_attributes(1, &[("genre", "x")]).unwrap();
            store.flush().unwrap();
        }
    }
}

/// The format versions of a store's sealed segment files.
fn segment_versions(store: &Path) -> Vec<u32> {
    std::fs::read_dir(store.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("seg-") && name.ends_with(".emb")
        })
        .map(|p| u32::from_le_bytes(std::fs::read(p).unwrap()[8..12].try_into().unwrap()))
        .collect()
}

/// Segments written before format 5 carry no id order: their items are
/// found through an order built in memory, and a compaction rewrites them
/// with one, answering the same before and after.
#[test]
fn a_compaction_gives_an_older_stores_segments_their_id_order() {
    let (_tmp, path) = fixture("v3-host");
    let before = segment_versions(&path);
    assert!(!before.is_empty() && before.iter().all(|v| *v == 1), "{before:?}");
    let store = Store::open(&path, Options::existing()).unwrap();
    assert_eq!(check_answers_in(&store, "host", "answers-v3.txt"), 15);
    let report = store.compact().unwrap();
    assert_eq!(report.segments_in, before.len());
    assert_eq!(check_answers_in(&store, "host", "answers-v3.txt"), 15);
    assert!(store.verify().unwrap().problems.is_empty());
    drop(store);
    let after = segment_versions(&path);
    assert!(!after.is_empty() && after.iter().all(|v| *v == 2), "{after:?}");
    let store = Store::open(&path, Options::existing()).unwrap();
    assert_eq!(check_answers_in(&store, "host", "answers-v3.txt"), 15);
    // A second compaction finds nothing to do.
    assert_eq!(store.compact().unwrap().segments_in, 0);
}

#[test]
fn stores_of_format_5_open_and_answer_as_before_with_features_and_attributes() {
    for (name, fixture_name, users, answers) in [("host", "v5-host", 0..6, 22), ("trained", "v5-trained", 0..40, 21)] {
        let (_tmp, path) = fixture(fixture_name);
        // Read-only first (it changes nothing), then writable twice.
        let read = Store::open_read_only(&path).unwrap();
        assert_eq!(check_answers_in(&read, name, "answers-v5.txt"), answers);
        drop(read);
        for _ in 0..2 {
            let store = Store::open(&path, Options::existing()).unwrap();
            assert_eq!(check_answers_in(&store, name, "answers-v5.txt"), answers);
            let report = store.verify().unwrap();
            assert!(report.problems.is_empty(), "{:?}", report.problems);
            let mut counts = history_counts(&store, users.clone());
            counts.retain(|id, _| !store.is_deleted(*id));
            let popular = store.knn(&Query::popular().k(1_000)).unwrap();
            assert_eq!(popular.len(), counts.len(), "{name}");
            store.flush().unwrap();
        }
    }
}
