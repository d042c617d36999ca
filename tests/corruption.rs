//! Torn tails are cut; corruption anywhere else is reported with the file
//! and offset, before the bytes are trusted, never skipped or panicked on.

mod common;

use common::{copy_dir, files_with_prefix, flip_bit, rows_end, vector_for};
use emberdb::{Durability, Error, Event, Metric, Options, Query, Store};

const DIM: usize = 16;

fn opts() -> Options {
    Options::new(DIM)
        .metric(Metric::L2)
        .durability(Durability::Buffered)
        .segment_rows(1000)
}

/// A closed store whose log holds 20 upserts and 20 event records after the
/// checkpoint; returns the log file, and where its last record starts.
fn store_with_log_tail(dir: &std::path::Path) -> (std::path::PathBuf, u64) {
    let store = Store::open(dir, opts()).unwrap();
    for id in 0..20u64 {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
        store.append_event(Event::new(1, id, id)).unwrap();
    }
    let wal = files_with_prefix(&dir.join("wal"), "wal-").pop().unwrap();
    let before_last = std::fs::metadata(&wal).unwrap().len();
    store.upsert(20, &vector_for(20, DIM)).unwrap();
    store.close_without_checkpoint();
    (wal, before_last)
}

#[test]
fn truncating_the_last_record_at_every_byte_loses_only_that_record() {
    let base = tempfile::tempdir().unwrap();
    let (wal, last_start) = store_with_log_tail(base.path());
    let full_len = std::fs::metadata(&wal).unwrap().len();
    assert!(full_len - last_start > 64, "the last record is a whole upsert");
    let relative = wal.strip_prefix(base.path()).unwrap().to_path_buf();
    for cut in last_start..full_len {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(base.path(), copy.path());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(copy.path().join(&relative))
            .unwrap();
        file.set_len(cut).unwrap();
        drop(file);
        let store = Store::open(copy.path(), opts()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let torn = store.recovery().truncated_tail.clone();
        assert_eq!(
            torn.map(|(_, at)| at),
            (cut > last_start).then_some(last_start),
            "cut at {cut}"
        );
        assert_eq!(store.get(20).unwrap(), None, "cut at {cut}: the torn record is gone");
        for id in 0..20u64 {
            assert_eq!(
                store.get(id).unwrap(),
                Some(vector_for(id, DIM)),
                "cut at {cut}: item {id}"
            );
        }
        assert_eq!(store.history(1).unwrap().len(), 20);
        // The store goes on: new writes land after the cut and survive.
        store.upsert(21, &vector_for(21, DIM)).unwrap();
        store.close_without_checkpoint();
        let store = Store::open(copy.path(), opts()).unwrap();
        assert_eq!(store.get(21).unwrap(), Some(vector_for(21, DIM)), "cut at {cut}");
    }
}

#[test]
fn a_checkpoint_past_a_log_tail_lost_to_power_failure_still_opens() {
    // A checkpoint is made durable with sled's flush; the log bytes before
    // it may still be only in the page cache. Power loss can then leave the
    // log file shorter than the checkpoint position.
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), opts()).unwrap();
        for id in 0..30u64 {
            store.upsert(id, &vector_for(id, DIM)).unwrap();
        }
        store.flush().unwrap();
        store.close_without_checkpoint();
    }
    let wal = files_with_prefix(&dir.path().join("wal"), "wal-").pop().unwrap();
    let len = std::fs::metadata(&wal).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let store = Store::open(dir.path(), opts()).unwrap();
    for id in 0..30u64 {
        assert_eq!(store.get(id).unwrap(), Some(vector_for(id, DIM)), "item {id}");
    }
    // Writes go on after the checkpoint and survive the next crash.
    store.upsert(99, &vector_for(99, DIM)).unwrap();
    store.close_without_checkpoint();
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(store.get(99).unwrap(), Some(vector_for(99, DIM)));
    assert_eq!(store.stats().unwrap().live_rows, 31);
}

#[test]
fn a_flipped_bit_in_a_middle_record_is_reported_with_file_and_offset() {
    let base = tempfile::tempdir().unwrap();
    let (wal, _) = store_with_log_tail(base.path());
    // Frame header at 32 (after the file header): 12 bytes, then the payload.
    for (what, offset) in [("payload", 32 + 12 + 20), ("length", 32 + 1), ("header crc", 32 + 9)] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(base.path(), copy.path());
        let wal_copy = copy.path().join(wal.strip_prefix(base.path()).unwrap());
        flip_bit(&wal_copy, offset);
        match Store::open(copy.path(), opts()) {
            Err(Error::Corruption { file, offset, .. }) => {
                assert_eq!(file, wal_copy, "{what}");
                assert_eq!(offset, 32, "{what}: the bad frame starts at 32");
            }
            Err(other) => panic!("{what}: expected corruption, got {other}"),
            Ok(_) => panic!("{what}: a corrupt log was accepted"),
        }
    }
}

fn sealed_store(dir: &std::path::Path) -> std::path::PathBuf {
    let store = Store::open(dir, opts()).unwrap();
    for id in 0..100u64 {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
    }
    store.seal().unwrap();
    drop(store);
    files_with_prefix(&dir.join("segments"), "seg-").pop().unwrap()
}

#[test]
fn a_truncated_segment_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let segment = sealed_store(dir.path());
    let len = std::fs::metadata(&segment).unwrap().len();
    for cut in [len - 1, len - 4 * DIM as u64, 100, 10] {
        let file = std::fs::OpenOptions::new().write(true).open(&segment).unwrap();
        file.set_len(cut).unwrap();
        match Store::open(dir.path(), opts()) {
            Err(Error::Corruption { file, .. }) => assert_eq!(file, segment, "cut {cut}"),
            Err(other) => panic!("cut {cut}: expected corruption, got {other}"),
            Ok(_) => panic!("cut {cut}: a truncated segment was accepted"),
        }
    }
}

#[test]
fn a_flipped_bit_in_a_segment_is_caught_before_its_rows_are_used() {
    // In the header: refused at open.
    let dir = tempfile::tempdir().unwrap();
    let segment = sealed_store(dir.path());
    flip_bit(&segment, 20);
    assert!(matches!(Store::open(dir.path(), opts()), Err(Error::Corruption { file, .. }) if file == segment));

    // In the rows: open maps without reading, the first query that would
    // read the rows reports it, and keeps reporting it.
    let dir = tempfile::tempdir().unwrap();
    let segment = sealed_store(dir.path());
    flip_bit(&segment, rows_end(&segment) - 7);
    let store = Store::open(dir.path(), opts()).unwrap();
    for _ in 0..2 {
        match store.knn(&Query::vector(&vector_for(3, DIM)).k(5)) {
            Err(Error::Corruption { file, .. }) => assert_eq!(file, segment),
            other => panic!("expected corruption, got {other:?}"),
        }
    }
    assert!(matches!(store.get(3), Err(Error::Corruption { .. })));
}

#[test]
fn a_flipped_bit_in_a_segments_id_order_is_reported_and_the_order_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let segment = sealed_store(dir.path());
    let len = std::fs::metadata(&segment).unwrap().len();
    assert!(len > rows_end(&segment), "the segment carries an id order");
    // In the ids of the order (its last 4 bytes a row are the row numbers).
    flip_bit(&segment, rows_end(&segment) + 8 * 37);
    let store = Store::open(dir.path(), opts()).unwrap();
    // The order is derived from the segment's (intact) ids: a lookup
    // rebuilds it instead of refusing every write of a new item.
    for id in [0u64, 37, 99] {
        assert_eq!(store.get(id).unwrap(), Some(vector_for(id, DIM)), "item {id}");
    }
    assert_eq!(store.get(100).unwrap(), None);
    store.upsert(100, &vector_for(100, DIM)).unwrap();
    assert!(store.delete(37).unwrap());
    assert_eq!(store.get(37).unwrap(), None);
    // verify names the damage.
    let report = store.verify().unwrap();
    assert!(
        report.problems.iter().any(|p| p.contains("id order checksum mismatch")),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_flipped_bit_in_the_growing_snapshot_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), opts()).unwrap();
        for id in 0..10u64 {
            store.upsert(id, &vector_for(id, DIM)).unwrap();
        }
    } // A clean close snapshots the growing segment.
    let snapshot = files_with_prefix(&dir.path().join("segments"), "grow-").pop().unwrap();
    let len = std::fs::metadata(&snapshot).unwrap().len();
    let original = std::fs::read(&snapshot).unwrap();
    // In its rows: refused.
    flip_bit(&snapshot, rows_end(&snapshot) - 3);
    match Store::open(dir.path(), opts()) {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, snapshot),
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
    // In its id order (which a growing segment does not use): it opens
    // with every row, and verify names the damage.
    std::fs::write(&snapshot, &original).unwrap();
    flip_bit(&snapshot, len - 3);
    let store = Store::open(dir.path(), opts()).unwrap();
    for id in 0..10u64 {
        assert_eq!(store.get(id).unwrap(), Some(vector_for(id, DIM)));
    }
    let problems = store.verify().unwrap().problems;
    assert!(
        problems.iter().any(|p| p.contains("id order checksum mismatch")),
        "{problems:?}"
    );
}

#[test]
fn a_store_from_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let segment = sealed_store(dir.path());
    // Bump the segment's format version and re-stamp its header checksum.
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[0..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&segment, bytes).unwrap();
    match Store::open(dir.path(), opts()) {
        Err(Error::NewerFormat { found: 99, path, .. }) => assert_eq!(path, segment),
        other => panic!("expected NewerFormat, got {:?}", other.map(|_| ())),
    }

    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = store_with_log_tail(dir.path());
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[0..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&wal, bytes).unwrap();
    assert!(matches!(
        Store::open(dir.path(), opts()),
        Err(Error::NewerFormat { found: 7, .. })
    ));
}
