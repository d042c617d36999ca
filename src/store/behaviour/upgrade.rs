//! Moving a format-5 store's behaviour out of sled into runs (the upgrade
//! to format 6), at open.
//!
//! 1. Run files no manifest names are removed first (`open`'s orphan
//!    sweep: an earlier attempt killed half-way).
//! 2. [`legacy_to_runs`] streams the `histories` tree (user order) into
//!    one event run, and the
//!    `features` and `attributes` trees into one keyed run each. History
//!    entries at or past the checkpoint's sequence number are left out:
//!    eviction wrote them ahead of the checkpoint, and replay brings them
//!    back (`through_seq` is the checkpoint's).
//! 3. The layout is saved with format 6 and the list of runs in one sled
//!    batch, then flushed: the commit point (`Layout::save`).
//! 4. The legacy trees are emptied (`MetaStore::drop_legacy_behaviour`);
//!    a crash before that leaves keys that a format-6 open ignores and
//!    removes again.
//!
//! A kill before (3) leaves a format-5 store (and orphan runs, removed by
//! the next open, which upgrades again); after it, a format-6 store.

use std::path::Path;

use crate::error::Result;
use crate::meta::records::RunManifest;
use crate::meta::MetaStore;
use crate::runs::event_run::{self, EventEntry};
use crate::runs::keyed_run;
use crate::runs::{RunHeader, RunKind};
use crate::store::behaviour::{record_of_events, record_of_keyed};

/// Entries handed from the reading thread to the writer at a time.
const CHUNK: usize = 1 << 16;

/// Writes the legacy trees' behaviour as runs in `dir`; returns the list
/// that names them, holding behaviour through `through_seq`.
pub(crate) fn legacy_to_runs(meta: &dyn MetaStore, dir: &Path, through_seq: u64) -> Result<RunManifest> {
    std::fs::create_dir_all(dir).map_err(|source| crate::error::Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut runs = RunManifest::empty(through_seq);
    let header = |runs: &mut RunManifest| {
        let id = runs.next_id;
        runs.next_id += 1;
        RunHeader {
            id,
            from_seq: 0,
            to_seq: through_seq,
            history_len: 0,
            bottom: false,
        }
    };
    // The trees are read by a callback, the run is written from an
    // iterator: a scoped thread reads users in order and hands over
    // bounded chunks, so one run holds every history without the whole
    // tree in memory.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<EventEntry>>>(4);
    let h = header(&mut runs);
    let written = std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut chunk: Vec<EventEntry> = Vec::with_capacity(CHUNK);
            let read = meta.for_each_legacy_history(&mut |user, history| {
                let start = chunk.len();
                chunk.extend(
                    history
                        .items
                        .iter()
                        .filter(|e| e.seq < through_seq)
                        .map(|e| EventEntry {
                            user,
                            seq: e.seq,
                            item: e.item,
                            ts: e.ts,
                            weight: e.weight,
                            reserved: 0,
                        }),
                );
                chunk[start..].sort_unstable_by_key(|e| e.seq);
                if chunk.len() >= CHUNK && tx.send(Ok(std::mem::take(&mut chunk))).is_err() {
                    // The writer stopped (its error is the one returned).
                    return Err(crate::error::Error::InvalidOptions(
                        "the upgrade's run writer stopped".into(),
                    ));
                }
                Ok(())
            });
            let _ = match read {
                Ok(()) => tx.send(Ok(chunk)),
                Err(e) => tx.send(Err(e)),
            };
        });
        let entries = rx.into_iter().flat_map(|chunk: Result<Vec<EventEntry>>| match chunk {
            Ok(chunk) => chunk.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        });
        event_run::write_event_run_from(dir, h, entries)
    })?;
    if written.count() > 0 {
        runs.events.push(record_of_events(&written));
    } else {
        // Nothing to keep: no run (its file goes).
        let path = written.path().to_path_buf();
        drop(written);
        std::fs::remove_file(&path).map_err(|source| crate::error::Error::Io { path, source })?;
    }
    for (kind, records) in [
        (RunKind::Features, meta.load_legacy_features()?),
        (RunKind::Attributes, meta.load_legacy_attributes()?),
    ] {
        if records.is_empty() {
            continue;
        }
        let h = header(&mut runs);
        // Seq 0: older than every logged record that replay applies.
        let run = keyed_run::write_keyed_run(
            dir,
            kind,
            h,
            records
                .into_iter()
                .map(|(id, set)| (id, 0, (!set.is_empty()).then_some(set))),
        )?;
        runs.of_mut(kind).push(record_of_keyed(&run));
    }
    Ok(runs)
}
