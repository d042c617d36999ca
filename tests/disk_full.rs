//! A full disk under the metadata store (sled). sled records an I/O error
//! and fails every later write, even once space is free, so the store
//! cannot checkpoint until it is reopened: it must say so (every later
//! write is `Error::Poisoned`, whose message says to reopen), lose nothing
//! acknowledged, and work again after a reopen.
//!
//! The disk is a real, small tmpfs mounted for the test, which needs root
//! (CI runs as root); elsewhere the test says why it did not run.

use std::path::{Path, PathBuf};
use std::process::Command;

use emberdb::{Durability, Error, Event, IndexSpec, Options, Store};

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Writes a file until the disk is full; returns it.
fn fill(disk: &Path) -> PathBuf {
    use std::io::Write;
    let path = disk.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0xA5u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

#[test]
fn a_full_disk_under_the_metadata_poisons_the_store_until_reopen() {
    let disk = match SmallDisk::mount("8m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("disk_full: not run: {why}");
            return;
        }
    };
    let path = disk.path().join("store");
    let opts = || Options::new(8).durability(Durability::Sync).index(IndexSpec::Flat);
    let store = Store::open(&path, opts()).unwrap();
    let acknowledged: Vec<Event> = (0..2_000u64).map(|i| Event::new(i % 300, i, i)).collect();
    store.append_events(&acknowledged).unwrap();
    // The events' run is written; then a deletion (logged, fsynced) waits
    // in memory for a checkpoint, which has to write it to sled, and only
    // to sled (the recent behaviour is empty: no run to write first).
    store.flush().unwrap();
    store.delete(5).unwrap();
    let filler = fill(disk.path());
    let err = store.flush().expect_err("a checkpoint on a full disk");
    eprintln!("the checkpoint failed with: {err}");

    // Space comes back. If sled failed, it still fails, and the store says
    // what to do; if one of our files failed (sled's few small records
    // since format 6 may fit its preallocated space, leaving `RECOVERY`
    // to meet the full disk), the next checkpoint succeeds.
    std::fs::remove_file(&filler).unwrap();
    let sled_failed = err.to_string().contains("/meta/");
    if sled_failed {
        match store.append_event(Event::new(1, 1, 1)) {
            Err(e @ Error::Poisoned { .. }) => assert!(e.to_string().contains("reopen"), "{e}"),
            other => panic!("expected Poisoned after a failed metadata write, got {other:?}"),
        }
        match store.flush() {
            Err(e) => assert!(e.to_string().contains("reopen"), "{e}"),
            Ok(()) => panic!("a checkpoint after sled failed must not claim success"),
        }
    } else {
        store.append_event(Event::new(1, 1, 1)).unwrap();
        store.flush().unwrap();
    }
    // Reads carry on.
    assert_eq!(
        store.history(7).unwrap().len(),
        acknowledged.iter().filter(|e| e.user == 7).count()
    );
    drop(store);

    // Reopened, it recovers every acknowledged event from the log and
    // writes again.
    let store = Store::open(&path, opts()).unwrap();
    for user in [0u64, 7, 299] {
        let expected: Vec<u64> = acknowledged.iter().filter(|e| e.user == user).map(|e| e.item).collect();
        assert_eq!(store.history(user).unwrap(), expected, "user {user}");
    }
    store.append_event(Event::new(5, 9_999, 10_000)).unwrap();
    store.flush().unwrap();
    assert!(store.verify().unwrap().problems.is_empty());
}

/// A checkpoint whose run file cannot be written (the disk is full) fails,
/// writes nothing sled would name, and keeps the behaviour in memory: once
/// space is back the next checkpoint writes the run, and nothing
/// acknowledged is lost (our own files fail cleanly; only sled poisons).
#[test]
fn a_full_disk_under_a_run_fails_the_checkpoint_and_the_next_one_writes_it() {
    let disk = match SmallDisk::mount("8m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("disk_full: not run: {why}");
            return;
        }
    };
    let path = disk.path().join("store");
    let opts = || Options::new(8).durability(Durability::Sync).index(IndexSpec::Flat);
    let store = Store::open(&path, opts()).unwrap();
    let acknowledged: Vec<Event> = (0..20_000u64).map(|i| Event::new(i % 300, i, i)).collect();
    store.append_events(&acknowledged).unwrap();
    let filler = fill(disk.path());
    let err = store.flush().expect_err("a checkpoint on a full disk");
    eprintln!("the checkpoint failed with: {err}");
    assert_eq!(store.stats().unwrap().runs.event_runs, 0, "a run was installed: {err}");
    let expected = |user: u64| -> Vec<u64> { acknowledged.iter().filter(|e| e.user == user).map(|e| e.item).collect() };
    assert_eq!(store.history(7).unwrap(), expected(7));
    std::fs::remove_file(&filler).unwrap();
    store.append_event(Event::new(7, 77_777, 30_000)).unwrap();
    store.flush().unwrap();
    assert_eq!(store.stats().unwrap().runs.event_runs, 1);
    drop(store);
    let store = Store::open(&path, opts()).unwrap();
    let mut with_late = expected(7);
    with_late.push(77_777);
    assert_eq!(store.history(7).unwrap(), with_late);
    assert_eq!(store.history(299).unwrap(), expected(299));
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty() && report.notes.is_empty(), "{report:?}");
}
