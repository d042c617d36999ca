//! `meta/CURRENT` names the live metadata database. Losing it, or the
//! database it names, must be reported as corruption and must never lead
//! open (or verify) to delete anything: before the fix, a missing CURRENT
//! made any open create an empty `db-1` and delete every other `db-*`
//! directory, the live one included.

mod common;

use std::path::{Path, PathBuf};

use common::vector_for;
use emberdb::{Durability, Error, IndexSpec, Options, Store};

const DIM: usize = 8;

fn opts() -> Options {
    Options::new(DIM)
        .durability(Durability::Buffered)
        .segment_rows(500)
        .index(IndexSpec::Flat)
}

fn db_dirs(store: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(store.join("meta"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("db-"))
        .collect();
    dirs.sort();
    dirs
}

fn segment_files(store: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(store.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// A store whose metadata has been rebuilt once (compaction after deleting
/// most items), so it lives in `db-...02`, with 200 live items.
fn store_in_second_generation(dir: &Path) -> PathBuf {
    let path = dir.join("store");
    let store = Store::open(&path, opts()).unwrap();
    for id in 0..2_000u64 {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
    }
    store.seal().unwrap();
    for id in (0..2_000u64).filter(|id| id % 10 != 0) {
        store.delete(id).unwrap();
    }
    store.flush().unwrap();
    store.compact().unwrap();
    drop(store);
    let dbs = db_dirs(&path);
    assert_eq!(dbs.len(), 1, "{dbs:?}");
    assert!(dbs[0].ends_with("db-00000000000000000002"), "{dbs:?}");
    path
}

fn assert_corruption(result: emberdb::Result<Store>, naming: &str) {
    match result {
        Err(Error::Corruption { file, reason, .. }) => {
            assert!(
                file.to_string_lossy().contains(naming),
                "names {} ({reason}), expected {naming}",
                file.display()
            );
        }
        Err(e) => panic!("expected corruption naming {naming}, got {e}"),
        Ok(_) => panic!("expected corruption naming {naming}, the store opened"),
    }
}

#[test]
fn a_missing_current_is_corruption_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_in_second_generation(dir.path());
    let before_dbs = db_dirs(&path);
    let before_segments = segment_files(&path);
    std::fs::remove_file(path.join("meta/CURRENT")).unwrap();

    // Both ways a tool or a host opens it: adopting the stored config, and
    // with explicit options.
    assert_corruption(Store::open(&path, Options::existing()), "CURRENT");
    assert_corruption(Store::open(&path, opts()), "CURRENT");
    assert_eq!(db_dirs(&path), before_dbs, "a metadata generation was deleted");
    assert_eq!(segment_files(&path), before_segments, "a segment file was deleted");
    let message = Store::open(&path, opts()).err().unwrap().to_string();
    assert!(message.contains("db-00000000000000000002"), "{message}");
    assert!(message.contains("nothing was deleted"), "{message}");
}

#[test]
fn a_missing_database_named_by_current_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_in_second_generation(dir.path());
    let before_segments = segment_files(&path);
    std::fs::remove_dir_all(&db_dirs(&path)[0]).unwrap();
    assert_corruption(Store::open(&path, opts()), "db-00000000000000000002");
    // Nothing was created in its place, and the segments are still there.
    assert!(db_dirs(&path).is_empty(), "{:?}", db_dirs(&path));
    assert_eq!(segment_files(&path), before_segments);
}

#[test]
fn a_store_whose_metadata_is_gone_is_not_taken_for_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_in_second_generation(dir.path());
    let before_segments = segment_files(&path);
    assert!(!before_segments.is_empty());
    std::fs::remove_dir_all(path.join("meta")).unwrap();
    // Creating fresh metadata here would have made every segment an
    // orphan, removed at open.
    assert_corruption(Store::open(&path, opts()), "meta");
    assert_eq!(segment_files(&path), before_segments);
    assert!(db_dirs(&path).is_empty());
}

#[test]
fn a_generation_current_does_not_explain_is_kept_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_in_second_generation(dir.path());
    // Generation 7 is neither older than the live one (2) nor the rebuild
    // in progress (3): nothing proves it garbage.
    let stray = path.join("meta/db-00000000000000000007");
    common::copy_dir(&db_dirs(&path)[0], &stray);
    // A rebuild interrupted before it switched CURRENT is garbage.
    let interrupted = path.join("meta/db-00000000000000000003");
    std::fs::create_dir(&interrupted).unwrap();
    let store = Store::open(&path, opts()).unwrap();
    assert!(stray.is_dir(), "an unexplained generation was deleted");
    assert!(!interrupted.exists(), "the interrupted rebuild was kept");
    assert_eq!(store.ids().unwrap().len(), 200);
    // Reported as a note: it loses nothing, and it is left for a person.
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        report.notes.iter().any(|p| p.contains("db-00000000000000000007")),
        "{:?}",
        report.notes
    );
}

#[test]
fn a_creation_interrupted_before_current_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    // As if the first open died after sled created db-1 but before it
    // wrote CURRENT: an empty database, empty log and segment directories.
    for sub in ["wal", "segments", "meta"] {
        std::fs::create_dir_all(path.join(sub)).unwrap();
    }
    drop(sled::open(path.join("meta/db-00000000000000000001")).unwrap());
    let store = Store::open(&path, opts()).unwrap();
    store.upsert(1, &vector_for(1, DIM)).unwrap();
    drop(store);
    assert!(path.join("meta/CURRENT").is_file());
    let store = Store::open(&path, opts()).unwrap();
    assert!(store.get(1).unwrap().is_some());
}
