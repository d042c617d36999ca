//! What repair, verify and snapshot may touch: repair replaces only
//! metadata that is itself damaged or missing, checks every input before
//! it changes anything and says what it would do; verify checks the
//! RECOVERY copy and tells leftovers (notes) from damage (problems);
//! snapshots carry RECOVERY (so a restored copy can be repaired) and clean
//! the temporary directories of killed snapshots; read-only errors name
//! the store's own files.

mod common;

use std::path::{Path, PathBuf};

use common::{contents, planted_events, vector_for};
use emberdb::{Durability, Error, Metric, Options, Query, RepairOptions, SpaceSpec, Store, TrainOptions};

const DIM: usize = 8;

fn opts() -> Options {
    Options::new(DIM)
        .metric(Metric::L2)
        .durability(Durability::Sync)
        .segment_rows(40)
        .flat_below(0)
        .space(
            "trained",
            SpaceSpec::item2vec(DIM).train_options(TrainOptions::default().epochs(2).threads(1)),
        )
}

/// A store with sealed (indexed) segments, a trained space, histories,
/// features and attributes, closed.
fn build(path: &Path) {
    let store = Store::open(path, opts()).unwrap();
    for id in 0..130u64 {
        store.upsert(id, &vector_for(id, DIM)).unwrap();
    }
    store.delete(9).unwrap();
    store.append_events(&planted_events(20, 3, 10, 6, 1)).unwrap();
    store.set_user_features(1, &[("gender", "F")]).unwrap();
    store.set_attributes(3, &[("genre", "Drama")]).unwrap();
    store.train().unwrap();
    store.wait_for_indexes();
    store.flush().unwrap();
}

fn first_file(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    common::files_with_prefix(dir, prefix)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no {prefix}*{suffix} in {}", dir.display()))
}

fn db_dir(path: &Path) -> PathBuf {
    first_file(&path.join("meta"), "db-", "")
}

/// Every vector, user 1's history, item 3's attributes, a trained query.
type Answers = (Vec<Option<Vec<f32>>>, Vec<u64>, Vec<(String, String)>, Vec<u64>);

/// What a reopened store answers that must survive.
fn answers(path: &Path) -> Answers {
    let store = Store::open_read_only(path).unwrap();
    let vectors = (0..130).map(|id| store.get(id).unwrap()).collect();
    (
        vectors,
        store.history(1).unwrap(),
        store.attributes(3),
        store
            .knn(&Query::item(5).k(5).space("trained"))
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect(),
    )
}

/// Damage that is not the metadata's: repair refuses (NothingToRepair,
/// naming the problem verify found) and changes no byte.
#[test]
fn repair_leaves_healthy_metadata_alone_whatever_else_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    build(&path);
    let segments = path.join("segments");
    let index = first_file(&segments, "seg-", ".idx");
    let segment = first_file(&segments, "seg-", ".emb");
    type Damage<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let damage: Vec<Damage> = vec![
        (
            "a stray file in segments/",
            Box::new(|| std::fs::write(segments.join("notes.txt"), b"hello").unwrap()),
        ),
        (
            "a flipped byte in an index file",
            Box::new(|| common::flip_bit(&index, 200)),
        ),
        (
            "a damaged id order",
            Box::new(|| common::flip_bit(&segment, common::rows_end(&segment) + 8 * 3)),
        ),
        (
            "an extra meta/db-*",
            Box::new(|| std::fs::create_dir(path.join("meta").join("db-99")).unwrap()),
        ),
    ];
    for (what, make) in damage {
        let clean = contents(&path);
        make();
        let damaged = contents(&path);
        let err = Store::repair(&path).unwrap_err();
        assert!(matches!(err, Error::NothingToRepair { .. }), "{what}: {err}");
        let dry = Store::repair_with(&path, &RepairOptions::dry_run()).unwrap_err();
        assert!(matches!(dry, Error::NothingToRepair { .. }), "{what}: {dry}");
        assert!(contents(&path) == damaged, "{what}: repair changed the store");
        assert!(!path.join("meta.damaged-1").exists(), "{what}");
        // Put it back for the next case.
        let _ = std::fs::remove_file(segments.join("notes.txt"));
        let _ = std::fs::remove_dir(path.join("meta").join("db-99"));
        for (rel, bytes) in &clean {
            std::fs::write(path.join(rel), bytes).unwrap();
        }
        assert!(contents(&path) == clean);
    }
}

/// A damaged trainer file is found before anything moves: the repair
/// fails, `meta/` stays where it is, and no `meta.damaged-N` piles up over
/// reruns. A dry run of a repair that can run says what it would do and
/// changes nothing.
#[test]
fn repair_checks_every_input_first_and_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    build(&path);
    let before = answers(&path);
    std::fs::remove_dir_all(db_dir(&path)).unwrap();
    let trainer = first_file(&path.join("segments"), "trainer-", ".emb");
    let original = std::fs::read(&trainer).unwrap();
    let len = original.len() as u64;
    common::flip_bit(&trainer, len / 2);
    let damaged = contents(&path);
    for _ in 0..2 {
        let err = Store::repair(&path).unwrap_err();
        assert!(
            matches!(err, Error::Corruption { ref file, .. } if *file == trainer),
            "{err}"
        );
        assert!(contents(&path) == damaged, "a failed repair changed the store");
        assert!(!path.join("meta.damaged-1").exists());
    }
    std::fs::write(&trainer, &original).unwrap();
    let untouched = contents(&path);
    let plan = Store::repair_with(&path, &RepairOptions::dry_run()).unwrap();
    assert!(plan.dry_run && !plan.plan.is_empty(), "{plan:?}");
    assert!(plan.damage.contains("metadata"), "{}", plan.damage);
    assert!(contents(&path) == untouched, "a dry run changed the store");
    let done = Store::repair(&path).unwrap();
    assert!(!done.dry_run);
    assert_eq!(answers(&path).0, before.0, "a vector was lost");
    assert_eq!(answers(&path).3, before.3, "the trained space answers otherwise");
}

/// verify reads RECOVERY: a flipped byte or a cut is a problem, a missing
/// copy a note (the next writable open writes it).
#[test]
fn verify_checks_the_recovery_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    build(&path);
    let copy = path.join("RECOVERY");
    let saved = std::fs::read(&copy).unwrap();
    let verify = || {
        let store = Store::open_read_only(&path).unwrap();
        store.verify().unwrap()
    };
    let healthy = verify();
    assert!(healthy.problems.is_empty(), "{:?}", healthy.problems);
    for offset in [0, 9, saved.len() as u64 / 2, saved.len() as u64 - 1] {
        common::flip_bit(&copy, offset);
        let report = verify();
        assert!(
            report.problems.iter().any(|p| p.contains("RECOVERY")),
            "flip at {offset}: {:?}",
            report.problems
        );
        std::fs::write(&copy, &saved).unwrap();
    }
    std::fs::write(&copy, &saved[..saved.len() - 7]).unwrap();
    assert!(verify().problems.iter().any(|p| p.contains("RECOVERY")));
    std::fs::remove_file(&copy).unwrap();
    let report = verify();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("RECOVERY") && n.contains("missing")),
        "{:?}",
        report.notes
    );
    drop(Store::open(&path, Options::existing()).unwrap());
    assert!(copy.is_file(), "a writable open writes the copy again");
}

/// Leftovers of interrupted work are notes, not problems.
#[test]
fn leftovers_the_next_open_cleans_are_notes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    build(&path);
    std::fs::write(path.join("segments").join("seg-00000000000000000099.emb.tmp"), b"half").unwrap();
    let log = first_file(&path.join("wal"), "", "");
    let name = log.file_name().unwrap().to_string_lossy().into_owned();
    // An empty log file of an interrupted rotation, numbered after the last.
    let digits: String = name.chars().filter(|c| c.is_ascii_digit()).collect();
    let next = format!(
        "{:0width$}",
        digits.parse::<u64>().unwrap() + 1000,
        width = digits.len()
    );
    std::fs::write(log.with_file_name(name.replace(&digits, &next)), b"").unwrap();
    let store = Store::open_read_only(&path).unwrap();
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.notes.len() >= 2, "{:?}", report.notes);
    assert!(report.notes.iter().any(|n| n.contains(".tmp")), "{:?}", report.notes);
}

/// A snapshot carries RECOVERY, so a restored copy whose metadata is lost
/// can be repaired; a snapshot to a destination removes the temporary
/// directories of killed snapshots to it, and says so.
#[test]
fn snapshots_carry_recovery_and_clean_killed_copies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    build(&path);
    let before = answers(&path);
    let dest = dir.path().join("snap");
    // A killed snapshot's directory: its process is gone.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let leftover = dir.path().join(format!("snap.snapshot-tmp-{dead}-000000001-0"));
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("half"), vec![0u8; 4096]).unwrap();
    let store = Store::open(&path, Options::existing()).unwrap();
    let info = store.snapshot(&dest).unwrap();
    drop(store);
    assert_eq!(info.removed_leftovers, vec![leftover.clone()]);
    assert!(!leftover.exists());
    assert!(dest.join("RECOVERY").is_file(), "the snapshot lacks RECOVERY");

    let restored = dir.path().join("restored");
    emberdb::restore(&dest, &restored).unwrap();
    std::fs::remove_dir_all(db_dir(&restored)).unwrap();
    let report = Store::repair(&restored).unwrap();
    let after = answers(&restored);
    assert_eq!(after.0, before.0, "a vector was lost");
    assert_eq!(after.3, before.3, "the trained space answers otherwise");
    // Behaviour is in the snapshot's runs: nothing is lost.
    assert!(report.lost.is_empty(), "{report:?}");
    assert_eq!(after.1, before.1, "a history was lost");
    assert_eq!(after.2, before.2, "attributes were lost");
}

/// A read-only open of a store whose metadata is damaged names the
/// store's own directory, not the temporary copy it reads from.
#[test]
fn read_only_errors_name_the_stores_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    build(&path);
    let db = db_dir(&path);
    for entry in std::fs::read_dir(&db).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let len = std::fs::metadata(&p).unwrap().len();
            std::fs::write(&p, vec![0xa5; len as usize]).unwrap();
        }
    }
    let Err(err) = Store::open_read_only(&path) else {
        panic!("a garbled metadata database opened");
    };
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(!text.contains("emberdb-read-only"), "{text}");
}

/// An open reads only a trainer state's header (the matrices are for
/// rounds): a damaged body does not stop the store from opening and
/// serving, the next round fails with `Corruption` naming the file, and
/// `verify` reports it.
#[test]
fn a_damaged_trainer_body_fails_the_round_not_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    build(&path);
    let before = answers(&path);
    let trainer = first_file(&path.join("segments"), "trainer-", ".emb");
    let len = std::fs::metadata(&trainer).unwrap().len();
    common::flip_bit(&trainer, len - 3);
    let store = Store::open(&path, Options::existing()).unwrap();
    let trainer_stats = store.stats().unwrap().trainer.unwrap();
    assert!(
        trainer_stats.generation >= 1 && trainer_stats.items > 0,
        "{trainer_stats:?}"
    );
    assert_eq!(store.history(1).unwrap(), before.1);
    let report = store.verify().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&*trainer.file_name().unwrap().to_string_lossy())),
        "{:?}",
        report.problems
    );
    store.append_events(&planted_events(20, 3, 10, 6, 2)).unwrap();
    for _ in 0..2 {
        let err = store.space("trained").and_then(|s| s.train()).unwrap_err();
        assert!(
            matches!(err, Error::Corruption { ref file, .. } if *file == trainer),
            "{err}"
        );
    }
}
