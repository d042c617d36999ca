//! Where a snapshot or a restore may write: never over another copy being
//! made to the same destination, never over or into something that was
//! there before, never inside the store it copies (or around it).

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};

use common::vector_for;
use emberdb::{Durability, Error, IndexSpec, Options, Store};

fn store_of_dim(path: &Path, dim: usize) -> Store {
    let store = Store::open(
        path,
        Options::new(dim)
            .durability(Durability::Buffered)
            .segment_rows(300)
            .index(IndexSpec::Flat),
    )
    .unwrap();
    for id in 0..1_000u64 {
        store.upsert(id, &vector_for(id, dim)).unwrap();
    }
    store
}

/// Names in `dir` other than the ones given.
fn leftovers(dir: &Path, expected: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !expected.contains(&n.as_str()))
        .collect()
}

#[test]
fn two_snapshots_racing_for_one_destination_leave_one_whole_copy() {
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(store_of_dim(&dir.path().join("a"), 8));
    let b = Arc::new(store_of_dim(&dir.path().join("b"), 32));
    for round in 0..20 {
        let dest = dir.path().join(format!("dest-{round}"));
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = [Arc::clone(&a), Arc::clone(&b)]
            .into_iter()
            .map(|store| {
                let (dest, barrier) = (dest.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    store.snapshot(&dest).map(|_| store.options().dim())
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<usize> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
        assert!(!winners.is_empty(), "round {round}: both failed: {results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
                    "round {round}: the loser fails with AlreadyExists, got {e}"
                );
            }
        }
        // Whoever reported success, its copy is what is there, whole.
        assert_eq!(winners.len(), 1, "round {round}: both reported success: {results:?}");
        let copy = Store::open(&dest, Options::existing()).unwrap();
        assert_eq!(copy.options().dim(), winners[0], "round {round}");
        let report = copy.verify().unwrap();
        assert!(report.problems.is_empty(), "round {round}: {:?}", report.problems);
        assert_eq!(copy.ids().unwrap().len(), 1_000);
    }
    let expected: Vec<String> = (0..20).map(|r| format!("dest-{r}")).collect();
    let mut expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    expected.extend(["a", "b"]);
    assert!(
        leftovers(dir.path(), &expected).is_empty(),
        "temporary directories left behind"
    );
}

#[test]
fn an_unrelated_directory_beside_the_destination_is_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_of_dim(&dir.path().join("s"), 8);
    // What the old fixed temporary name was: someone's own directory.
    let theirs = dir.path().join("mydata.snapshot-tmp");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("precious"), b"keep me").unwrap();
    let restore_theirs = dir.path().join("restored.snapshot-tmp");
    std::fs::create_dir(&restore_theirs).unwrap();
    std::fs::write(restore_theirs.join("precious"), b"keep me too").unwrap();

    store.snapshot(dir.path().join("mydata")).unwrap();
    emberdb::restore(dir.path().join("mydata"), dir.path().join("restored")).unwrap();
    assert_eq!(std::fs::read(theirs.join("precious")).unwrap(), b"keep me");
    assert_eq!(std::fs::read(restore_theirs.join("precious")).unwrap(), b"keep me too");
}

#[test]
fn a_destination_under_directories_that_do_not_exist_yet_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_of_dim(&dir.path().join("s"), 8);
    let dest = dir.path().join("backups/2026/12/snap");
    store.snapshot(&dest).unwrap();
    let restored = dir.path().join("elsewhere/restored");
    emberdb::restore(&dest, &restored).unwrap();
    assert_eq!(
        Store::open(&restored, Options::existing())
            .unwrap()
            .ids()
            .unwrap()
            .len(),
        1_000
    );
}

#[test]
fn an_existing_destination_is_refused_even_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_of_dim(&dir.path().join("s"), 8);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(store.snapshot(&empty).is_err());
    assert!(emberdb::restore(dir.path().join("s"), &empty).is_err());
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn a_destination_inside_the_store_or_around_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = store_of_dim(&path, 8);
    store.flush().unwrap();
    for inside in ["segments/snap", "meta/snap", "wal/snap", "snap", "meta/new/dirs/snap"] {
        let dest = path.join(inside);
        let err = store.snapshot(&dest).unwrap_err();
        assert!(err.to_string().contains("contain one another"), "{inside}: {err}");
        // Short, not a path that recursed until it was too long.
        assert!(err.to_string().len() < 400, "{inside}: {err}");
        assert!(!dest.exists(), "{inside}");
    }
    assert!(
        !path.join("meta/new").exists(),
        "a refused destination created directories in the store"
    );
    // Through a path that is spelled differently but lands inside.
    let dotted = dir.path().join("s/../s/segments/snap2");
    assert!(store.snapshot(&dotted).is_err());
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    drop(store);

    // restore: into the snapshot itself, and a snapshot inside the destination.
    let snap = dir.path().join("snap");
    Store::open(&path, Options::existing())
        .unwrap()
        .snapshot(&snap)
        .unwrap();
    let err = emberdb::restore(&snap, snap.join("segments/restored")).unwrap_err();
    assert!(err.to_string().contains("contain one another"), "{err}");
    let reopened = Store::open(&snap, Options::existing()).unwrap();
    assert!(reopened.verify().unwrap().problems.is_empty());
}
