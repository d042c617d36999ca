//! The trending channel (`Query::popular`): how many events each item had
//! in the recent window, kept up to date as events arrive.
//!
//! The window (`Options::trending_window`, in the events' timestamp units)
//! is cut into [`BUCKETS`] buckets of equal width. Each event adds one to
//! its item in its bucket and in the running totals; when an event opens a
//! bucket past the newest, the buckets that fall out of the window are
//! subtracted from the totals and dropped. "Now" is the newest event's
//! time, not the wall clock, so replaying a log gives the same counts, and
//! an event older than the window counts for nothing. The window thus
//! slides by a bucket (a 24th of it) at a time.
//!
//! The counts are written to the metadata store (key `b"trending"`) at
//! each checkpoint, with the sequence number after the last event counted;
//! replay counts only the events from there, so no event is counted twice
//! whatever a crash cuts. A store without the record (format 3), whose
//! window changed, or last opened with the channel off
//! (`Options::trending(false)`, which leaves a record of window 0) counts
//! again from the users' histories at open.
//!
//! Counting is kept off the append path: `append_event` queues the event
//! (a push under a mutex), and a thread of the store's counts the queue
//! every 2 ms or every 512 events. An event's count is one
//! random access into the map of every item in the window, about a
//! microsecond at a million items, which would otherwise be most of an
//! append. Readers (`popular`, `stats`, a checkpoint) count what is still
//! queued before they read, so they see every event appended before them.
//!
//! The ranking served is the `counts::TOP` most counted items, kept as the counts
//! change: an event raises one count, so an item either moves inside the
//! kept ranking (O(log TOP)) or enters it past its worst entry; once per
//! bucket, when a bucket leaves the window and counts fall, the kept
//! ranking is chosen again from every item (one pass and a selection, not
//! a sort). `popular` reads it a bounded chunk at a time under the read
//! lock; a filter that names its items ranks those items' counts instead,
//! and a filter that refuses nearly the whole kept ranking sorts the rest
//! for that query.
//!
//! Events stamped more than `validate::MAX_FUTURE_MS` past this machine's
//! clock are refused at append (`validate::check_event`); those already in
//! an older store's log or record count for nothing, so one bad timestamp
//! cannot hold the window's "now" in the future.

mod counts;
pub(crate) mod file;

use std::cmp::Reverse;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::Result;
use crate::meta::records::TrendingRecord;
use crate::validate::latest_timestamp;

/// Buckets a window is cut into.
pub const BUCKETS: u64 = 24;
/// Ranking entries a reader copies out per look under the read lock.
const RANKING_CHUNK: usize = 256;
/// The window a record left by a store opened with the channel off says
/// (no real window is below [`BUCKETS`]); such a record's `applied_seq`
/// holds the store's window, so that reopening keeps it.
const OFF_WINDOW: u64 = 0;

/// Called with each stored history event: (sequence number, item, ts).
pub(crate) type EventVisitor<'a> = dyn FnMut(u64, u64, u64) + 'a;

use counts::{Counts, Ranked};

/// Events appended and not yet counted: (sequence number, item, ts).
struct Queue {
    events: Mutex<Vec<(u64, u64, u64)>>,
    wake: Condvar,
    /// Set when the store closes: the counting thread ends.
    closed: AtomicBool,
}

/// What the counting thread shares with the store: the counts (it holds
/// them weakly, so the store's close is never held up by it).
struct Core {
    counts: RwLock<Counts>,
    /// Changed since the last checkpoint.
    dirty: AtomicBool,
}

impl Core {
    /// Counts every queued event, in sequence order: the queue is taken
    /// under the counts' write lock, so two drains cannot apply their
    /// batches out of order.
    fn drain(&self, queue: &Queue) {
        let mut counts = self.counts.write();
        let batch = std::mem::take(&mut *queue.events.lock());
        if batch.is_empty() {
            return;
        }
        let latest = latest_timestamp();
        // An event before one already counted is skipped (replay).
        let mut applied = counts.applied_seq;
        let fresh = batch.into_iter().filter(|&(seq, _, _)| {
            let keep = seq >= applied;
            if keep {
                applied = seq.saturating_add(1);
            }
            keep
        });
        counts.add_many(fresh.map(|(_, item, ts)| (item, ts)), latest);
        counts.applied_seq = applied;
        self.dirty.store(true, Ordering::Release);
    }
}

/// Queued events that wake the counting thread before its next tick.
const WAKE_AT: usize = 512;
/// Queued events past which the writer counts them itself.
const MAX_QUEUED: usize = 65_536;
/// How long the counting thread sleeps when nothing wakes it.
const TICK: Duration = Duration::from_millis(2);

pub(crate) struct Trending {
    /// `Options::trending(false)`: nothing counted, nothing served.
    enabled: bool,
    core: Arc<Core>,
    queue: Arc<Queue>,
}

impl Drop for Trending {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::Release);
        self.queue.wake.notify_all();
    }
}

/// The counting thread: an event's count is a random access into a map of
/// every item in the window (about a microsecond at a million items), so
/// it is made here rather than in `append_event`; readers catch up on
/// what is still queued before they read, so a query sees every event
/// appended before it.
fn count_in_background(core: Weak<Core>, queue: Arc<Queue>) {
    loop {
        let idle = {
            let mut events = queue.events.lock();
            if events.len() < WAKE_AT && !queue.closed.load(Ordering::Acquire) {
                queue.wake.wait_for(&mut events, TICK);
            }
            events.is_empty()
        };
        if queue.closed.load(Ordering::Acquire) {
            return;
        }
        // Nothing queued: no write lock (a later push is the next drain's).
        if idle {
            continue;
        }
        let Some(core) = core.upgrade() else {
            return;
        };
        core.drain(&queue);
    }
}

impl Trending {
    /// The stored counts, if they were kept for this window (None: the
    /// stored window, else [`crate::options::DEFAULT_TRENDING_WINDOW`]);
    /// else counts made again from the stored histories' events before
    /// `next_seq` (the checkpoint's: replay counts the rest). With
    /// `enabled` false, nothing is read or counted. Without `background`
    /// (a read-only open, which starts no thread), queued events are
    /// counted only by the readers that catch up.
    pub fn load(
        record: Option<TrendingRecord>,
        enabled: bool,
        background: bool,
        window: Option<u64>,
        next_seq: u64,
        histories: &mut dyn FnMut(&mut EventVisitor<'_>) -> Result<()>,
    ) -> Result<Self> {
        let latest = latest_timestamp();
        let kept_window = record
            .as_ref()
            .map(|r| {
                if r.window == OFF_WINDOW {
                    r.applied_seq
                } else {
                    r.window
                }
            })
            .filter(|w| *w != OFF_WINDOW);
        let stored = record.filter(|r| r.window != OFF_WINDOW);
        let window = window
            .or(kept_window)
            .unwrap_or(crate::options::DEFAULT_TRENDING_WINDOW);
        let queue = Arc::new(Queue {
            events: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        if !enabled {
            return Ok(Trending {
                enabled,
                core: Arc::new(Core {
                    counts: RwLock::new(Counts::new(window)),
                    // The record of the counts goes: they will not be kept
                    // up to date.
                    dirty: AtomicBool::new(true),
                }),
                queue,
            });
        }
        let stored = stored.filter(|r| r.window == window.max(BUCKETS));
        let from_file = stored.is_some();
        log::debug!(
            "trending counts: {}",
            match &stored {
                Some(r) => format!("from their file ({} buckets)", r.buckets.len()),
                None => format!("counted from the histories (no file of window {})", window.max(BUCKETS)),
            }
        );
        let counts = match stored {
            Some(record) => Counts::from_record(record, latest),
            None => {
                let mut events: Vec<(u64, u64)> = Vec::new();
                histories(&mut |seq, item, ts| {
                    if seq < next_seq {
                        events.push((ts, item));
                    }
                })?;
                // Oldest first, so the window ends at the newest event.
                events.sort_unstable();
                let mut counts = Counts::new(window);
                for (ts, item) in events {
                    counts.add(item, ts, latest);
                }
                counts.applied_seq = next_seq;
                counts
            }
        };
        let core = Arc::new(Core {
            counts: RwLock::new(counts),
            dirty: AtomicBool::new(!from_file),
        });
        if background {
            let (weak, thread_queue) = (Arc::downgrade(&core), Arc::clone(&queue));
            std::thread::Builder::new()
                .name("emberdb-trending".into())
                .spawn(move || count_in_background(weak, thread_queue))
                .map_err(|e| crate::error::Error::Io {
                    path: std::path::PathBuf::from("<trending counter thread>"),
                    source: e,
                })?;
        }
        Ok(Trending { enabled, core, queue })
    }

    /// Whether the channel is on (`Options::trending`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Queues the event of sequence number `seq` for counting (once:
    /// replay skips the events counted before the checkpoint).
    pub fn apply(&self, seq: u64, item: u64, ts: u64) {
        if !self.enabled {
            return;
        }
        let mut events = self.queue.events.lock();
        events.push((seq, item, ts));
        let queued = events.len();
        drop(events);
        if queued == WAKE_AT {
            self.queue.wake.notify_one();
        } else if queued >= MAX_QUEUED {
            // The thread is not keeping up (or there is none): the writer
            // counts, so the queue stays bounded.
            self.core.drain(&self.queue);
        }
    }

    /// The counts with every queued event counted.
    fn current(&self) -> parking_lot::RwLockReadGuard<'_, Counts> {
        if !self.queue.events.lock().is_empty() {
            self.core.drain(&self.queue);
        }
        self.core.counts.read()
    }

    /// Visits the items by their count in the window, most first (ties by
    /// id), until `visit` returns false. The kept ranking is read a chunk
    /// at a time, so events arriving meanwhile may move an item past the
    /// chunk boundary: an item is visited at most once, with its count as
    /// read. Past the kept ranking (a visitor that refused nearly all of
    /// it), the rest is sorted for this call.
    pub fn visit_ranking(&self, mut visit: impl FnMut(u64, u32) -> bool) {
        let mut after: Option<Ranked> = None;
        let mut visited = std::collections::HashSet::new();
        loop {
            let (chunk, rest) = {
                let counts = self.current();
                let from = after.map_or(Bound::Unbounded, Bound::Excluded);
                let chunk: Vec<Ranked> = counts
                    .top
                    .range((from, Bound::Unbounded))
                    .take(RANKING_CHUNK)
                    .copied()
                    .collect();
                let rest = (chunk.is_empty() && counts.items.len() > counts.top.len()).then(|| counts.beyond_top());
                (chunk, rest)
            };
            if let Some(mut rest) = rest {
                // Sorted outside the lock: writers' counting never waits
                // for it.
                rest.sort_unstable();
                for (Reverse(count), item) in rest {
                    if visited.insert(item) && !visit(item, count) {
                        return;
                    }
                }
                return;
            }
            let Some(last) = chunk.last().copied() else {
                return;
            };
            for (Reverse(count), item) in chunk {
                if visited.insert(item) && !visit(item, count) {
                    return;
                }
            }
            after = Some(last);
        }
    }

    /// The counts of `ids` in the window, most first (ties by id), those
    /// with none left out: for a filter that names its few items.
    pub fn ranking_of(&self, ids: &[u64]) -> Vec<(u64, u32)> {
        let mut out: Vec<(u64, u32)> = {
            let counts = self.current();
            ids.iter()
                .filter_map(|id| counts.items.get(id).map(|e| (*id, e.total)))
                .collect()
        };
        out.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// Items with at least one event in the window.
    pub fn len(&self) -> usize {
        self.current().items.len()
    }

    /// The record to write at a checkpoint, if the counts changed since
    /// the last one taken (`mark_dirty` if it could not be written). With
    /// the channel off, a record of window 0 replaces them once, so that
    /// the next open with it on counts again.
    pub fn take_dirty_record(&self) -> Option<TrendingRecord> {
        let counts = self.current();
        if !self.core.dirty.swap(false, Ordering::AcqRel) {
            return None;
        }
        Some(if self.enabled {
            counts.record()
        } else {
            TrendingRecord {
                window: OFF_WINDOW,
                applied_seq: counts.window,
                buckets: Vec::new(),
            }
        })
    }

    /// The counts are to be written at the next checkpoint.
    pub fn mark_dirty(&self) {
        self.core.dirty.store(true, Ordering::Release);
    }
}
