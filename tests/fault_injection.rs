//! Injected I/O errors (SQLite's I/O error tests, RocksDB's fault-injection
//! env): a workload of upserts, deletes, event batches, flushes, seals, a
//! training round and a compaction runs once to count its file operations
//! (writes, fsyncs, renames, mmaps), then once per operation with that one
//! failing with EIO (and, every third point, ENOSPC). Each time:
//!
//! - the call that met the failure returns an error;
//! - nothing is acknowledged that is not there after a reopen: the writes
//!   the store accepts after the failure (if it does not poison) are
//!   checked with the rest;
//! - the store reopens with every acknowledged write, and `verify` is clean.
//!
//! One test in this binary: the injection counter is process-wide.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use emberdb::faults::{self, Plan};
use emberdb::{Durability, Event, IndexSpec, Metric, Options, SpaceSpec, Store, TrainOptions};

const DIM: usize = 8;

fn opts() -> Options {
    let train = TrainOptions::default()
        .epochs(1)
        .incremental_epochs(1)
        .threads(1)
        .seed(3);
    Options::new(DIM)
        .metric(Metric::L2)
        .durability(Durability::Sync)
        .segment_rows(40)
        .flat_below(16)
        .index(IndexSpec::hnsw())
        .wal_file_bytes(6 * 1024)
        // Background work would make the operation count depend on timing.
        .background_indexing(false)
        .background_merges(false)
        .space("i2v", SpaceSpec::item2vec(DIM).train_options(train))
}

fn value(id: u64, version: u64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIM).map(|j| (id * 3 + j as u64) as f32 * 0.25).collect();
    v[0] = (version * 1_000 + id) as f32;
    v
}

/// What the store acknowledged.
#[derive(Default, Clone)]
struct Acked {
    items: BTreeMap<u64, Option<Vec<f32>>>,
    histories: HashMap<u64, Vec<u64>>,
}

/// The write in flight when the failure hit: it may or may not be there.
#[derive(Clone)]
enum Pending {
    Upsert(u64, Vec<f32>),
    Delete(u64),
    Events(Vec<Event>),
    Other,
}

/// Runs the workload, stopping at the first error; returns the pending
/// write and the error's text if one failed.
fn workload(store: &Store, acked: &mut Acked) -> Option<(Pending, String)> {
    let mut version = 0;
    let mut ts = 0;
    for step in 0..120u64 {
        let (pending, outcome): (Pending, emberdb::Result<()>) = match step % 12 {
            0..=5 => {
                version += 1;
                let id = (step * 7) % 90;
                let v = value(id, version);
                (Pending::Upsert(id, v.clone()), store.upsert(id, &v))
            }
            6 => {
                let id = (step * 11) % 90;
                (Pending::Delete(id), store.delete(id).map(drop))
            }
            7 | 8 => {
                let batch: Vec<Event> = (0..6)
                    .map(|i| {
                        ts += 1;
                        Event::new((step + i) % 9, (step * 5 + i) % 60, ts)
                    })
                    .collect();
                (Pending::Events(batch.clone()), store.append_events(&batch))
            }
            9 => (Pending::Other, store.flush()),
            10 if step % 36 == 10 => (Pending::Other, store.space("i2v").and_then(|s| s.train()).map(drop)),
            10 => (Pending::Other, store.seal()),
            _ if step % 48 == 11 => (Pending::Other, store.compact().map(drop)),
            _ => (Pending::Other, Ok(())),
        };
        match outcome {
            Ok(()) => acknowledge(acked, &pending),
            Err(e) => return Some((pending, e.to_string())),
        }
    }
    None
}

fn acknowledge(acked: &mut Acked, op: &Pending) {
    match op {
        Pending::Upsert(id, v) => {
            acked.items.insert(*id, Some(v.clone()));
        }
        Pending::Delete(id) => {
            acked.items.insert(*id, None);
        }
        Pending::Events(batch) => {
            for e in batch {
                acked.histories.entry(e.user).or_default().push(e.item);
            }
        }
        Pending::Other => {}
    }
}

/// Every acknowledged write is in `store`; the pending one may be.
fn check(store: &Store, acked: &Acked, pending: Option<&Pending>, point: &str) {
    let mut with_pending = acked.clone();
    if let Some(p) = pending {
        acknowledge(&mut with_pending, p);
    }
    for (id, want) in &acked.items {
        let found = store.get(*id).unwrap();
        let alt = with_pending.items.get(id).cloned().flatten();
        assert!(
            found == *want || found == alt,
            "{point}: item {id}: acknowledged {want:?}, found {found:?}"
        );
    }
    if let Some(Pending::Upsert(id, _)) = pending {
        if !acked.items.contains_key(id) {
            let found = store.get(*id).unwrap();
            assert!(found.is_none() || found == with_pending.items[id], "{point}: item {id}");
        }
    }
    let users: std::collections::BTreeSet<u64> = acked
        .histories
        .keys()
        .chain(with_pending.histories.keys())
        .copied()
        .collect();
    for user in users {
        let found = store.history(user).unwrap();
        let want = acked.histories.get(&user).cloned().unwrap_or_default();
        let alt = with_pending.histories.get(&user).cloned().unwrap_or_default();
        assert!(
            found == want || found == alt,
            "{point}: user {user}: {found:?} vs {want:?}"
        );
    }
}

/// What one injection point did.
struct Outcome {
    /// Operations the workload made (until it stopped).
    counted: u64,
    /// The error the call that met the failure returned.
    error: Option<String>,
    /// Whether the store refused writes afterwards (`Error::Poisoned`).
    poisoned: bool,
}

fn run_point(dir: &Path, plan: Option<Plan>) -> Outcome {
    let store = Store::open(dir, opts()).unwrap();
    let mut acked = Acked::default();
    faults::arm(plan.unwrap_or(Plan {
        fail_at: u64::MAX,
        errno: faults::EIO,
    }));
    let failed = workload(&store, &mut acked);
    let counted = faults::disarm();
    let point = format!("{plan:?} ({:?})", faults::fired());
    let mut pending = None;
    let mut error = None;
    let mut poisoned = false;
    if let Some((p, e)) = failed {
        assert!(plan.is_some(), "the workload failed without an injected error: {e}");
        pending = Some(p);
        error = Some(e);
        // After the failure: what the store still accepts must be there
        // after a reopen, like everything acknowledged before.
        for id in 1_000..1_003u64 {
            let v = value(id, 0);
            match store.upsert(id, &v) {
                Ok(()) => {
                    acked.items.insert(id, Some(v));
                }
                Err(emberdb::Error::Poisoned { .. }) => poisoned = true,
                Err(_) => {}
            }
        }
        // fsyncgate: after a failed write or fsync of the log, the kernel
        // may have dropped the dirty pages, so nothing later may be
        // acknowledged as durable until a reopen.
        if let Some((op, path)) = faults::fired() {
            // (A log file; the fsync of the log directory after removing
            // obsolete files loses nothing if it fails: they are removed
            // again at the next open.)
            let log = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("wal-"));
            if log && matches!(op, faults::Op::Write | faults::Op::Fsync) {
                assert!(poisoned, "{point}: a failed log {op:?} did not poison the store");
            }
        }
    } else if let Some(plan) = plan {
        assert!(
            plan.fail_at > counted,
            "{point}: operation {} of {counted} failed silently",
            plan.fail_at
        );
    }
    drop(store);
    let store = Store::open(dir, opts()).unwrap_or_else(|e| panic!("{point}: reopen failed: {e}"));
    check(&store, &acked, pending.as_ref(), &point);
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{point}: verify: {:?}", report.problems);
    Outcome {
        counted,
        error,
        poisoned,
    }
}

#[test]
fn every_injected_io_error_is_reported_and_loses_nothing_acknowledged() {
    let base = tempfile::tempdir().unwrap();
    let total = run_point(&base.path().join("count"), None).counted;
    assert!(total > 50, "the workload makes only {total} file operations");
    let mut errors_seen = 0;
    let mut poisoned = 0;
    for n in 1..=total {
        let errno = if n % 3 == 0 { faults::ENOSPC } else { faults::EIO };
        let dir = base.path().join(format!("point{n}"));
        let outcome = run_point(&dir, Some(Plan { fail_at: n, errno }));
        errors_seen += usize::from(outcome.error.is_some());
        poisoned += usize::from(outcome.poisoned);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    println!(
        "{total} injection points (writes, fsyncs, renames, mmaps): {errors_seen} surfaced as errors of the call that met them; after {poisoned} the store refused writes until reopened (every failed log write or fsync), after the others it went on; every acknowledged write survived each reopen, verify clean"
    );
    assert_eq!(errors_seen as u64, total, "every injected failure reaches a caller");
}
