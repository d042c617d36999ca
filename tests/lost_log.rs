//! A log file that is deleted or shortened after the store acknowledged the
//! writes in it is corruption, reported at open and by `verify`, never taken
//! for a log that was never longer or for a torn tail (a red-team pass lost
//! up to 100 acknowledged upserts and 50 user histories this way while
//! `verify` said "healthy"). Only the live file's tail may be cut as torn.

mod common;

use std::path::{Path, PathBuf};

use common::{copy_dir, files_with_prefix, vector_for};
use emberdb::{Durability, Error, Event, Metric, Options, Store};

const DIM: usize = 16;
const ITEMS: u64 = 400;

fn opts() -> Options {
    Options::new(DIM)
        .metric(Metric::L2)
        .durability(Durability::Buffered)
        .segment_rows(100_000)
        .wal_file_bytes(8 * 1024)
}

/// A closed store whose acknowledged writes (400 upserts, 400 events of 50
/// users) all live in its log, spread over several files.
fn store_with_log(dir: &Path) -> Vec<PathBuf> {
    let store = Store::open(dir, opts()).unwrap();
    for id in 0..ITEMS {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
        store.append_event(Event::new(id % 50, id, id)).unwrap();
    }
    store.close_without_checkpoint();
    let files = files_with_prefix(&dir.join("wal"), "wal-");
    assert!(files.len() >= 5, "the log spans {} files", files.len());
    files
}

fn damaged_copy(base: &Path, damage: impl FnOnce(&Path)) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(base, copy.path());
    damage(copy.path());
    copy
}

fn wal_file(store: &Path, index_from_end: usize) -> PathBuf {
    let files = files_with_prefix(&store.join("wal"), "wal-");
    files[files.len() - 1 - index_from_end].clone()
}

fn set_len(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Opening must fail with `Corruption` naming `file`, and change nothing.
fn assert_refused_naming(store: &Path, file: &Path, what: &str) {
    let before = files_with_prefix(&store.join("wal"), "wal-");
    match Store::open(store, opts()) {
        Err(Error::Corruption {
            file: named, reason, ..
        }) => {
            assert_eq!(named.file_name(), file.file_name(), "{what}: {reason}");
        }
        Err(other) => panic!("{what}: expected Corruption, got {other}"),
        Ok(_) => panic!("{what}: the store opened"),
    }
    assert_eq!(
        files_with_prefix(&store.join("wal"), "wal-"),
        before,
        "{what}: refused open changed the log"
    );
}

#[test]
fn a_deleted_live_log_file_is_corruption() {
    let base = tempfile::tempdir().unwrap();
    store_with_log(base.path());
    let live = wal_file(base.path(), 0);
    let copy = damaged_copy(base.path(), |d| std::fs::remove_file(wal_file(d, 0)).unwrap());
    assert_refused_naming(copy.path(), &live, "live file deleted");
}

#[test]
fn a_deleted_log_is_corruption_not_an_empty_store() {
    let base = tempfile::tempdir().unwrap();
    let files = store_with_log(base.path());
    let copy = damaged_copy(base.path(), |d| {
        for f in files_with_prefix(&d.join("wal"), "wal-") {
            std::fs::remove_file(f).unwrap();
        }
    });
    assert_refused_naming(copy.path(), &files[0], "every log file deleted");
}

#[test]
fn a_closed_log_file_cut_at_a_record_boundary_or_to_zero_is_corruption() {
    let base = tempfile::tempdir().unwrap();
    store_with_log(base.path());
    let closed = wal_file(base.path(), 2);
    let len = std::fs::metadata(&closed).unwrap().len();
    // 32 is the header's end: a cut there leaves a valid, empty file, which
    // is exactly what looked healthy before the files were recorded.
    for cut in [0, 32, len / 2, len - 1] {
        let copy = damaged_copy(base.path(), |d| set_len(&wal_file(d, 2), cut));
        assert_refused_naming(copy.path(), &closed, &format!("closed file cut to {cut}"));
    }
}

#[test]
fn a_live_log_file_cut_below_its_header_is_corruption() {
    let base = tempfile::tempdir().unwrap();
    store_with_log(base.path());
    let live = wal_file(base.path(), 0);
    for cut in [0, 10] {
        let copy = damaged_copy(base.path(), |d| set_len(&wal_file(d, 0), cut));
        assert_refused_naming(copy.path(), &live, &format!("live file cut to {cut}"));
    }
}

#[test]
fn the_live_files_tail_is_still_cut_as_torn_and_the_closed_files_are_whole() {
    let base = tempfile::tempdir().unwrap();
    store_with_log(base.path());
    let copy = damaged_copy(base.path(), |d| {
        let live = wal_file(d, 0);
        let len = std::fs::metadata(&live).unwrap().len();
        set_len(&live, len - 3);
    });
    let store = Store::open(copy.path(), opts()).unwrap();
    assert!(store.recovery().truncated_tail.is_some());
    // Only the last record was torn: everything before it is there.
    let present = (0..ITEMS).filter(|id| store.get(*id).unwrap().is_some()).count() as u64;
    assert!(present >= ITEMS - 1, "{present} of {ITEMS} items survived a 3-byte cut");
    assert!(store.verify().unwrap().problems.is_empty());
}

#[test]
fn a_header_only_file_left_by_a_crashed_rotation_is_removed() {
    let base = tempfile::tempdir().unwrap();
    store_with_log(base.path());
    let copy = damaged_copy(base.path(), |d| {
        // A rotation that created the next file (its header fsynced) and
        // crashed before the metadata recorded it.
        let live = wal_file(d, 0);
        let name = live.file_name().unwrap().to_string_lossy().into_owned();
        let no: u64 = name["wal-".len()..name.len() - ".log".len()].parse().unwrap();
        let mut header = [0u8; 32];
        header[0..8].copy_from_slice(b"EMBERWAL");
        header[8..12].copy_from_slice(&1u32.to_le_bytes());
        header[12..20].copy_from_slice(&(no + 1).to_le_bytes());
        let crc = crc32fast::hash(&header[0..28]);
        header[28..32].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(d.join("wal").join(format!("wal-{:020}.log", no + 1)), header).unwrap();
    });
    let store = Store::open(copy.path(), opts()).unwrap();
    assert_eq!(store.recovery().removed_garbage.len(), 1);
    for id in 0..ITEMS {
        assert_eq!(store.get(id).unwrap(), Some(vector_for(id, DIM)), "item {id}");
    }
    // The log goes on and rotates past the removed number.
    for id in ITEMS..ITEMS + 200 {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
    }
    store.close_without_checkpoint();
    let store = Store::open(copy.path(), opts()).unwrap();
    assert_eq!(store.get(ITEMS + 199).unwrap(), Some(vector_for(ITEMS + 199, DIM)));
}

#[test]
fn verify_reports_a_closed_log_file_shortened_under_an_open_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    for id in 0..ITEMS {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
    }
    assert!(store.verify().unwrap().problems.is_empty());
    let closed = wal_file(dir.path(), 1);
    set_len(&closed, 32);
    let report = store.verify().unwrap();
    assert!(!report.problems.is_empty());
    let name = closed.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&name) && p.contains("when the log moved on")),
        "{:?}",
        report.problems
    );
}

#[test]
fn reopening_and_checkpointing_keep_the_record_true() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..4u64 {
        let store = Store::open(dir.path(), opts()).unwrap();
        for id in round * 100..round * 100 + 100 {
            store.upsert(id, &vector_for(id, DIM)).unwrap();
        }
        if round % 2 == 0 {
            store.flush().unwrap();
        }
        assert!(store.verify().unwrap().problems.is_empty(), "round {round}");
        store.close_without_checkpoint();
    }
    // After all that, deleting the live file is still caught.
    let live = wal_file(dir.path(), 0);
    std::fs::remove_file(&live).unwrap();
    assert_refused_naming(dir.path(), &live, "live file deleted after reopens");
}
