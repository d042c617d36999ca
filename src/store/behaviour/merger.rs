//! Merging runs: the store's merger threads (`Options::merge_threads`,
//! one by default) merge the newest group of same-sized runs of a kind
//! into one whenever a checkpoint adds a run (`crate::runs::policy`,
//! size-tiered); `Store::merge_runs` does the same in the caller's thread,
//! and `Store::compact` merges each kind into one run.
//!
//! A merge reads its inputs and writes its output without the write lock
//! (inputs are immutable and only merges remove runs). Merges in flight at
//! once have disjoint inputs: each reserves its inputs in
//! `Behaviour::merging_runs` when it plans and the policy picks among the
//! unreserved ones; they hold `Behaviour::merging` shared, and a merge of
//! everything (compaction) or `verify` holds it alone. Then, under the
//! write lock: the manifest's list of runs has the inputs (found by id:
//! an earlier merge may have moved them) replaced by the output, is
//! committed and flushed, the new version is swapped in, `RECOVERY` is
//! rewritten, and only then are the inputs removed. Readers holding the
//! old version keep reading the inputs (their maps stay valid after the
//! unlink). A crash before the commit leaves an output no manifest names
//! (removed at open); after it, inputs no manifest names (removed at open,
//! unless the `RECOVERY` copy still names them).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::{IoContext, Result};
use crate::runs::{self, merge, policy, RunHeader, RunKind};
use crate::store::behaviour::{record_of_events, record_of_keyed, BehaviourVersion};
use crate::store::state::{Shared, WriteState};

/// Counts for `Stats`.
#[derive(Default)]
pub(crate) struct MergeStats {
    merges: AtomicU64,
    bytes: AtomicU64,
    in_flight: AtomicUsize,
    most_at_once: AtomicUsize,
}

impl MergeStats {
    pub fn merges(&self) -> u64 {
        self.merges.load(Ordering::Relaxed)
    }

    pub fn bytes_written(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn most_at_once(&self) -> usize {
        self.most_at_once.load(Ordering::Relaxed)
    }
}

/// Counts a merge in flight while it lives.
struct InFlight<'a>(&'a MergeStats);

impl<'a> InFlight<'a> {
    fn start(stats: &'a MergeStats) -> Self {
        let now = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        stats.most_at_once.fetch_max(now, Ordering::Relaxed);
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Which runs to merge: a range of one kind's list.
#[derive(Debug, Clone)]
struct Plan {
    kind: RunKind,
    range: std::ops::Range<usize>,
    ids: Vec<u64>,
}

/// How a merge's output takes the place of its inputs (at the range given)
/// in the next version.
type Replace = Box<dyn FnOnce(&mut BehaviourVersion, std::ops::Range<usize>)>;

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

fn plan(v: &BehaviourVersion, kind: RunKind, all: bool, busy: &HashSet<(RunKind, u64)>) -> Option<Plan> {
    let (sizes, ids) = sizes(v, kind);
    let range = if all {
        (sizes.len() > 1).then_some(0..sizes.len())?
    } else {
        let free: Vec<bool> = ids.iter().map(|&id| !busy.contains(&(kind, id))).collect();
        policy::pick_free(&sizes, &free, FLUSH_BYTES)?
    };
    Some(Plan {
        kind,
        ids: ids[range.clone()].to_vec(),
        range,
    })
}

/// A plan's inputs, reserved until it is dropped.
struct Reserved<'a> {
    busy: &'a Mutex<HashSet<(RunKind, u64)>>,
    plan: Plan,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let mut busy = self.busy.lock();
        for id in &self.plan.ids {
            busy.remove(&(self.plan.kind, *id));
        }
    }
}

/// Plans the next merge the policy picks among runs no merge in flight
/// reads, and reserves its inputs.
fn reserve_next(shared: &Shared) -> Option<Reserved<'_>> {
    let behaviour = &shared.behaviour;
    let mut busy = behaviour.merging_runs.lock();
    let v = behaviour.load();
    let plan = [RunKind::Events, RunKind::Features, RunKind::Attributes]
        .into_iter()
        .find_map(|kind| plan(&v, kind, false, &busy))?;
    busy.extend(plan.ids.iter().map(|&id| (plan.kind, id)));
    drop(busy);
    Some(Reserved {
        busy: &behaviour.merging_runs,
        plan,
    })
}

/// Merges what the policy picks until nothing is left to merge, beside any
/// other merges in flight (each has its own inputs); `wake_others` is
/// signalled after each plan so that an idle merger thread looks for a
/// disjoint one. Returns the merges made.
pub(crate) fn merge_due(
    shared: &Shared,
    write: &Mutex<WriteState>,
    wake_others: Option<&(Mutex<bool>, Condvar)>,
) -> Result<u64> {
    let _shared = shared.behaviour.merging.read();
    let mut merged = 0;
    while let Some(reserved) = reserve_next(shared) {
        if let Some(signal) = wake_others {
            wake(signal);
        }
        merge_one(shared, write, reserved.plan.clone())?;
        merged += 1;
    }
    Ok(merged)
}

/// Merges each kind's runs into one, alone (merges in flight finish
/// first); returns the merges made.
pub(crate) fn merge_all(shared: &Shared, write: &Mutex<WriteState>) -> Result<u64> {
    let behaviour = &shared.behaviour;
    let _alone = behaviour.merging.write();
    let mut merged = 0;
    for kind in [RunKind::Events, RunKind::Features, RunKind::Attributes] {
        while let Some(plan) = plan(&behaviour.load(), kind, true, &HashSet::new()) {
            merge_one(shared, write, plan)?;
            merged += 1;
        }
    }
    Ok(merged)
}

fn merge_one(shared: &Shared, write: &Mutex<WriteState>, plan: Plan) -> Result<()> {
    let behaviour = &shared.behaviour;
    let _counted = InFlight::start(&behaviour.merge_stats);
    let id = {
        let mut w = write.lock();
        let id = w.core.runs.next_id;
        w.core.runs.next_id += 1;
        id
    };
    let v = behaviour.load_full();
    // The oldest run stays first while reserved: only merges remove runs
    // and new runs go last.
    let bottom = plan.range.start == 0;
    let dir = behaviour.dir();
    // The inputs are found by id in the version loaded now, not at the
    // plan's range: a merge of older runs installed since the plan was
    // made shifts them down the list (a merge that read the plan's range
    // here merged other runs than it had reserved, and installed them in
    // the reserved runs' place).
    let moved = |listed: Vec<u64>| crate::error::Error::Corruption {
        file: dir.to_path_buf(),
        offset: 0,
        reason: format!("runs {:?} changed before their merge (now {listed:?})", plan.ids),
    };
    // Written without the lock; `record` is what the manifest will list.
    let (record, bytes, replace): (_, u64, Replace) = match plan.kind {
        RunKind::Events => {
            let inputs = reserved_inputs(&v.events, &plan.ids, |r| r.id())
                .ok_or_else(|| moved(v.events.iter().map(|r| r.id()).collect()))?;
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
            (
                record_of_events(&out),
                out.bytes(),
                Box::new(move |next: &mut BehaviourVersion, range| {
                    next.events.splice(range, [out]);
                }),
            )
        }
        kind => {
            let runs = v.keyed(kind);
            let inputs = reserved_inputs(runs, &plan.ids, |r| r.id())
                .ok_or_else(|| moved(runs.iter().map(|r| r.id()).collect()))?;
            let header = RunHeader {
                id,
                from_seq: inputs[0].header().from_seq,
                to_seq: inputs[inputs.len() - 1].header().to_seq,
                history_len: 0,
                bottom,
            };
            let out = merge::merge_keyed_runs(dir, kind, inputs, header)?;
            (
                record_of_keyed(&out),
                out.bytes(),
                Box::new(move |next: &mut BehaviourVersion, range| {
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
    // A merge of older runs that finished meanwhile shifts these inputs
    // down the list; nothing else touches them (they are reserved).
    let start = list.iter().position(|r| r.id == plan.ids[0]);
    let range = start.map(|s| s..s + plan.ids.len());
    let listed: Vec<u64> = range
        .clone()
        .and_then(|r| list.get(r))
        .map(|l| l.iter().map(|r| r.id).collect())
        .unwrap_or_default();
    let Some(range) = range.filter(|_| listed == plan.ids) else {
        // Cannot happen (reserved inputs are removed by their merge only):
        // leave the output for the next open to remove rather than install
        // a wrong set.
        return Err(crate::error::Error::Corruption {
            file: dir.to_path_buf(),
            offset: 0,
            reason: format!("runs {:?} changed during their merge (now {listed:?})", plan.ids),
        });
    };
    list.splice(range.clone(), [record]);
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
    // The version's lists follow the manifest's, changed under this lock.
    replace(&mut next, range);
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

/// The runs of `list` with the ids `ids`, if they are adjacent there in
/// that order.
fn reserved_inputs<'a, R>(list: &'a [R], ids: &[u64], id_of: impl Fn(&R) -> u64) -> Option<&'a [R]> {
    let first = *ids.first()?;
    let start = list.iter().position(|r| id_of(r) == first)?;
    let inputs = list.get(start..start.checked_add(ids.len())?)?;
    inputs.iter().map(id_of).eq(ids.iter().copied()).then_some(inputs)
}

/// The background merger threads: woken by each checkpoint ([`wake`]).
pub(crate) struct Merger {
    signal: Arc<(Mutex<bool>, Condvar)>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Merger {
    /// Starts `threads` merger threads (at least one).
    pub fn start(shared: Arc<Shared>, write: Arc<Mutex<WriteState>>, threads: usize) -> Result<Merger> {
        let signal = Arc::clone(&shared.merge_signal);
        let stop = Arc::new(AtomicBool::new(false));
        let mut merger = Merger {
            signal: Arc::clone(&signal),
            stop: Arc::clone(&stop),
            threads: Vec::new(),
        };
        for n in 0..threads.max(1) {
            let (signal, stop) = (Arc::clone(&signal), Arc::clone(&stop));
            let (shared, write) = (Arc::clone(&shared), Arc::clone(&write));
            let path = shared.path.clone();
            let thread = std::thread::Builder::new()
                .name(format!("emberdb-merger-{n}"))
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
                    if let Err(e) = merge_due(&shared, &write, Some(&signal)) {
                        log::error!("merging runs in {} failed: {e}", shared.path.display());
                    }
                })
                .at(&path)?;
            // Pushed one by one: a failed spawn drops `merger`, which stops
            // the threads already started.
            merger.threads.push(thread);
        }
        Ok(merger)
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.signal.1.notify_all();
        for thread in self.threads.drain(..) {
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

#[cfg(test)]
mod tests;
