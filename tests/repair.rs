//! `Store::repair`: a store whose metadata database is deleted or damaged
//! gets new metadata from its `RECOVERY` copy, its segments and its log.
//! Every acknowledged vector comes back, deletions stay deleted, the log
//! after the checkpoint replays, histories, features and attributes come
//! back from the runs and the log, and nothing is reported lost; a
//! healthy store, or one without a copy, is refused with nothing changed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{planted_events, vector_for};
use emberdb::{DnnOptions, Durability, Error, Event, Metric, Options, Query, SpaceSpec, Store, TrainOptions};

const DIM: usize = 8;

fn opts() -> Options {
    Options::new(DIM)
        .metric(Metric::L2)
        .durability(Durability::Sync)
        .segment_rows(40)
        .space(
            "trained",
            SpaceSpec::item2vec(DIM).train_options(TrainOptions::default().epochs(3).threads(1)),
        )
        // Its rows are [v, b], one wider than its dimension.
        .space(
            "dnn",
            SpaceSpec::youtube_dnn(DIM).dnn_options(DnnOptions {
                epochs: 1,
                threads: 1,
                ..DnnOptions::default()
            }),
        )
}

/// Every vector of the default space, and exact neighbours of a few vectors.
type Answers = (BTreeMap<u64, Option<Vec<f32>>>, Vec<Vec<u64>>);

/// Everything a store answers that repair must keep.
fn answers(store: &Store, ids: u64) -> Answers {
    let vectors = (0..ids).map(|id| (id, store.get(id).unwrap())).collect();
    let knn = (0..5)
        .map(|q| {
            store
                .knn(&Query::vector(&vector_for(q * 13, DIM)).k(10).exact())
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect()
        })
        .collect();
    (vectors, knn)
}

fn build(path: &Path) -> Store {
    let store = Store::open(path, opts()).unwrap();
    for id in 0..150u64 {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
    }
    store.upsert(7, &vector_for(1_007, DIM)).unwrap();
    store.delete(9).unwrap();
    store.space("default").unwrap().delete(11).unwrap();
    store.append_events(&planted_events(30, 3, 10, 6, 1)).unwrap();
    store.set_user_features(1, &[("gender", "F")]).unwrap();
    store.set_attributes(3, &[("genre", "Drama")]).unwrap();
    store.train().unwrap();
    store.flush().unwrap();
    // After the checkpoint: only in the log.
    for id in 150..170u64 {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
    }
    store.upsert(20, &vector_for(1_020, DIM)).unwrap();
    store.delete(30).unwrap();
    store.append_event(Event::new(500, 1, 99_999)).unwrap();
    store.set_attributes(4, &[("genre", "Comedy")]).unwrap();
    store
}

fn db_dir(path: &Path) -> std::path::PathBuf {
    std::fs::read_dir(path.join("meta"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("db-"))
        .unwrap()
}

#[test]
fn a_lost_metadata_database_is_rebuilt_without_losing_a_vector() {
    for damage in ["delete the database", "truncate its files"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = build(&path);
        let before = answers(&store, 170);
        let trained_before = store.knn(&Query::item(3).k(5).space("trained")).unwrap();
        let dnn_before = store.knn(&Query::item(3).k(5).space("dnn")).unwrap();
        assert_eq!(dnn_before.len(), 5);
        let histories_before: Vec<Vec<u64>> = (0..40).map(|u| store.history(u).unwrap()).collect();
        assert!(!histories_before[0].is_empty());
        // Durability::Sync: every write above is in the log; no checkpoint
        // at close, so the log after the copy's checkpoint has work to do.
        store.close_without_checkpoint();

        // A healthy store is not repaired.
        assert!(matches!(Store::repair(&path), Err(Error::NothingToRepair { .. })));
        let db = db_dir(&path);
        if damage == "delete the database" {
            std::fs::remove_dir_all(&db).unwrap();
        } else {
            for f in std::fs::read_dir(&db).unwrap() {
                let f = f.unwrap().path();
                if f.is_file() {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&f)
                        .unwrap()
                        .set_len(0)
                        .unwrap();
                }
            }
        }
        assert!(
            Store::open(&path, opts()).is_err(),
            "{damage}: the damage went unnoticed"
        );

        let report = Store::repair(&path).unwrap();
        assert_eq!(report.spaces, 3, "{damage}");
        assert!(report.files_checked >= 4, "{damage}: {report:?}");
        assert!(report.rows_registered > 100, "{damage}: {report:?}");
        assert!(report.replayed_bytes > 0, "{damage}");
        assert!(
            report.lost.is_empty(),
            "{damage}: nothing acknowledged is lost: {:?}",
            report.lost
        );
        assert!(report.runs_checked >= 3, "{damage}: {report:?}");
        let aside = report.moved_aside.clone().unwrap();
        assert!(aside.exists(), "{damage}: the damaged metadata must be kept");

        let store = Store::open(&path, opts()).unwrap();
        assert_eq!(
            answers(&store, 170),
            before,
            "{damage}: answers differ after the repair"
        );
        assert!(store.is_deleted(9), "{damage}: 9");
        assert!(store.is_deleted(30), "{damage}: 30");
        assert_eq!(store.get(11).unwrap(), None, "{damage}");
        assert_eq!(store.get(20).unwrap(), Some(vector_for(1_020, DIM)), "{damage}");
        // The trained space serves its published generation.
        assert_eq!(
            store.knn(&Query::item(3).k(5).space("trained")).unwrap(),
            trained_before
        );
        assert_eq!(store.knn(&Query::item(3).k(5).space("dnn")).unwrap(), dnn_before);
        // Behaviour from the runs (before the checkpoint) and the log
        // (after it): all of it.
        assert_eq!(store.history(500).unwrap(), vec![1], "{damage}");
        assert_eq!(store.history(0).unwrap(), histories_before[0], "{damage}");
        for (user, history) in histories_before.iter().enumerate() {
            assert_eq!(&store.history(user as u64).unwrap(), history, "{damage}: user {user}");
        }
        assert_eq!(store.user_features(1), vec![("gender".to_string(), "F".to_string())]);
        assert_eq!(store.attributes(3), vec![("genre".to_string(), "Drama".to_string())]);
        assert_eq!(store.attributes(4), vec![("genre".to_string(), "Comedy".to_string())]);
        let report = store.verify().unwrap();
        assert!(report.problems.is_empty(), "{damage}: {:?}", report.problems);
        // It keeps working, and a second repair has nothing to do.
        store.upsert(1_000, &vector_for(1_000, DIM)).unwrap();
        drop(store);
        assert!(matches!(Store::repair(&path), Err(Error::NothingToRepair { .. })));
        let store = Store::open(&path, opts()).unwrap();
        assert_eq!(store.get(1_000).unwrap(), Some(vector_for(1_000, DIM)));
    }
}

#[test]
fn repair_refuses_what_it_cannot_rebuild_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    build(&path).close_without_checkpoint();
    std::fs::remove_dir_all(db_dir(&path)).unwrap();
    // A sealed segment fails its checksum: its rows cannot come back.
    let segment = std::fs::read_dir(path.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("seg-"))
        .unwrap();
    let original = std::fs::read(&segment).unwrap();
    // In its rows (its id order is derived data, rebuilt from the ids).
    common::flip_bit(&segment, common::rows_end(&segment) - 3);
    assert!(matches!(Store::repair(&path), Err(Error::Corruption { .. })));
    assert!(path.join("meta").exists() && !path.join("meta.damaged-1").exists());
    std::fs::write(&segment, &original).unwrap();
    // Without the recovery copy there is nothing to rebuild from.
    let copy = path.join("RECOVERY");
    let saved = std::fs::read(&copy).unwrap();
    std::fs::remove_file(&copy).unwrap();
    assert!(matches!(Store::repair(&path), Err(Error::Corruption { file, .. }) if file == copy));
    // A damaged copy is refused too.
    let mut bad = saved.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&copy, &bad).unwrap();
    assert!(matches!(Store::repair(&path), Err(Error::Corruption { .. })));
    std::fs::write(&copy, &saved).unwrap();
    assert!(Store::repair(&path).is_ok());
}
