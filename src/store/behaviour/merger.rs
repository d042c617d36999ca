//! Merging runs: a background thread of the store's merges the newest
//! group of same-sized runs of a kind into one whenever a checkpoint adds
//! a run (`crate::runs::policy`, size-tiered), and `Store::compact` merges
//! each kind into one run.
//!
//! A merge reads its inputs and writes its output without the write lock
//! (inputs are immutable and only merges remove runs, one at a time under
//! `Behaviour::merging`). Then, under the write lock: the manifest's list
//! of runs has the inputs replaced by the output, is committed and flushed,
//! the new version is swapped in, `RECOVERY` is rewritten, and only then
//! are the inputs removed. Readers holding the old version keep reading the
//! inputs (their maps stay valid after the unlink). A crash before the
//! commit leaves an output no manifest names (removed at open); after it,
//! inputs no manifest names (removed at open, unless the `RECOVERY` copy
//! still names them).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::{record_of_events, record_of_keyed, BehaviourVersion};
use crate::error::{IoContext, Result};
use crate::runs::{self, merge, policy, RunHeader, RunKind};
use crate::store::state::{Shared, WriteState};

/// Counts for `Stats`.
#[derive(Default)]
pub(crate) struct MergeStats {
    merges: AtomicU64,
    bytes: AtomicU64,
}

impl MergeStats {
    pub fn merges(&self) -> u64 {
        self.merges.load(Ordering::Relaxed)
    }

    pub fn bytes_written(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Which runs to merge: a range of one kind's list.
#[derive(Debug, Clone)]
struct Plan {
    kind: RunKind,
    range: std::ops::Range<usize>,
    ids: Vec<u64>,
}

/// How a merge's output takes its inputs' place in the next version.
type Replace = Box<dyn FnOnce(&mut BehaviourVersion)>;

/// Bytes of a flush the policy counts tiers from.
const FLUSH_BYTES: u64 = 4 << 20;

fn sizes(v: &BehaviourVersion, kind: RunKind) -> (Vec<u64>, Vec<u64>) {
    match kind {
        RunKind::Events => (
            v.events.iter().map(|r| r.bytes()).collect(),
            v.events.iter().map(|r| r.id()).collect(),
        ),
        RunKind::Features | RunKind::Attributes => {
            let runs = v.keyed(kind);
            (
                runs.iter().map(|r| r.bytes()).collect(),
                runs.iter().map(|r| r.id()).collect(),
            )
        }
    }
}

fn plan(v: &BehaviourVersion, kind: RunKind, all: bool) -> Option<Plan> {
    let (sizes, ids) = sizes(v, kind);
    let range = if all {
        (sizes.len() > 1).then_some(0..sizes.len())?
    } else {
        policy::pick(&sizes, FLUSH_BYTES)?
    };
    Some(Plan {
        kind,
        ids: ids[range.clone()].to_vec(),
        range,
    })
}

/// Merges what the policy picks (or, with `all`, each kind into one run)
/// until nothing is left to merge; returns the merges made.
pub(crate) fn merge_due(shared: &Shared, write: &Mutex<WriteState>, all: bool) -> Result<u64> {
    let behaviour = &shared.behaviour;
    let _one = behaviour.merging.lock();
    let mut merged = 0;
    for kind in [RunKind::Events, RunKind::Features, RunKind::Attributes] {
        while let Some(plan) = plan(&behaviour.load(), kind, all) {
            merge_one(shared, write, plan)?;
            merged += 1;
        }
    }
    Ok(merged)
}

fn merge_one(shared: &Shared, write: &Mutex<WriteState>, plan: Plan) -> Result<()> {
    let behaviour = &shared.behaviour;
    let id = {
        let mut w = write.lock();
        let id = w.core.runs.next_id;
        w.core.runs.next_id += 1;
        id
    };
    let v = behaviour.load_full();
    let bottom = plan.range.start == 0;
    let dir = behaviour.dir();
    // Written without the lock; `record` is what the manifest will list.
    let (record, bytes, replace): (_, u64, Replace) = match plan.kind {
        RunKind::Events => {
            let inputs = &v.events[plan.range.clone()];
            let header = RunHeader {
                id,
                from_seq: inputs[0].header().from_seq,
                to_seq: inputs[inputs.len() - 1].header().to_seq,
                history_len: behaviour.history_len() as u32,
                bottom,
            };
            let out = merge::merge_event_runs(dir, inputs, header, behaviour.history_len())?;
            log::debug!(
                "merged event runs {:?} into run {id}: {} entries of {} users",
                plan.ids,
                out.count(),
                out.users()
            );
            let range = plan.range.clone();
            (
                record_of_events(&out),
                out.bytes(),
                Box::new(move |next: &mut BehaviourVersion| {
                    next.events.splice(range, [out]);
                }),
            )
        }
        kind => {
            let inputs = &v.keyed(kind)[plan.range.clone()];
            let header = RunHeader {
                id,
                from_seq: inputs[0].header().from_seq,
                to_seq: inputs[inputs.len() - 1].header().to_seq,
                history_len: 0,
                bottom,
            };
            let out = merge::merge_keyed_runs(dir, kind, inputs, header)?;
            let range = plan.range.clone();
            (
                record_of_keyed(&out),
                out.bytes(),
                Box::new(move |next: &mut BehaviourVersion| {
                    let list = match kind {
                        RunKind::Features => &mut next.features,
                        _ => &mut next.attributes,
                    };
                    list.splice(range, [out]);
                }),
            )
        }
    };
    drop(v);

    let w = write.lock();
    let mut runs = w.core.runs.clone();
    let list = runs.of_mut(plan.kind);
    let listed: Vec<u64> = list
        .get(plan.range.clone())
        .map(|l| l.iter().map(|r| r.id).collect())
        .unwrap_or_default();
    if listed != plan.ids {
        // Cannot happen (only merges remove runs, one at a time): leave the
        // output for the next open to remove rather than install a wrong set.
        return Err(crate::error::Error::Corruption {
            file: dir.to_path_buf(),
            offset: 0,
            reason: format!("runs {:?} changed during their merge (now {listed:?})", plan.ids),
        });
    }
    list.splice(plan.range.clone(), [record]);
    shared.meta.save_runs(&runs)?;
    shared.meta.flush()?;
    let mut w = w;
    w.core.runs = runs;
    let current = behaviour.load_full();
    let mut next = BehaviourVersion {
        events: current.events.clone(),
        features: current.features.clone(),
        attributes: current.attributes.clone(),
        recent: Arc::clone(&current.recent),
    };
    replace(&mut next);
    behaviour.store(next);
    crate::meta::recovery_file::write_from(&shared.path, shared.meta.as_ref())?;
    drop(w);
    for input in &plan.ids {
        let path = dir.join(runs::file_name(plan.kind, *input));
        if path.exists() {
            std::fs::remove_file(&path).at(&path)?;
        }
    }
    crate::fsutil::sync_dir(dir)?;
    behaviour.merge_stats.merges.fetch_add(1, Ordering::Relaxed);
    behaviour.merge_stats.bytes.fetch_add(bytes, Ordering::Relaxed);
    Ok(())
}

/// The background merger: woken by each checkpoint ([`Merger::wake`]).
pub(crate) struct Merger {
    signal: Arc<(Mutex<bool>, Condvar)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Merger {
    pub fn start(shared: Arc<Shared>, write: Arc<Mutex<WriteState>>) -> Result<Merger> {
        let signal = Arc::clone(&shared.merge_signal);
        let stop = Arc::new(AtomicBool::new(false));
        let path = shared.path.clone();
        let thread = {
            let (signal, stop) = (Arc::clone(&signal), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("emberdb-merger".into())
                .spawn(move || loop {
                    {
                        let (woken, cv) = &*signal;
                        let mut woken = woken.lock();
                        if !*woken && !stop.load(Ordering::Acquire) {
                            cv.wait_for(&mut woken, Duration::from_secs(1));
                        }
                        *woken = false;
                    }
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    if shared.meta.failed() {
                        continue;
                    }
                    if let Err(e) = merge_due(&shared, &write, false) {
                        log::error!("merging runs in {} failed: {e}", shared.path.display());
                    }
                })
                .at(&path)?
        };
        Ok(Merger {
            signal,
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        wake(&self.signal);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Merger {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Tells the merger that runs were added.
pub(crate) fn wake(signal: &(Mutex<bool>, Condvar)) {
    *signal.0.lock() = true;
    signal.1.notify_one();
}
