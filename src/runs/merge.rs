//! Merges of adjacent runs of one kind into one run (issue 27 memo,
//! section 3): events keep each user's top L by (ts, seq), keyed runs keep
//! the newest entry per id.
//!
//! Both are k-way merges over the inputs' scans, in key order, streaming
//! into the writer: memory holds one user's (or id's) entries at a time.
//! The inputs must be given oldest first with adjacent `[from, to)` ranges
//! (the policy only picks adjacent runs), so a later input's entries are
//! newer, and within a user the inputs' slices concatenated in input order
//! are already in seq order.
//!
//! Why the top L of the union is the history: a history is the top L of a
//! user's events by (ts, seq), and an event outside the top L of some
//! subset is outside the top L of any superset, so a merge may drop it
//! without changing any later answer (and a merged run's history reads the
//! same as its inputs' did).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;
use std::sync::Arc;

use super::event_run::{write_event_run_from, EventEntry, EventRun, EventScan};
use super::keyed_run::{write_keyed_run_from, KeyedItem, KeyedRun, KeyedValue};
use super::{RunHeader, RunKind};
use crate::error::{Error, Result};

/// Keeps the newest `len` entries by (ts, seq) (the store's history rule: a
/// history is the top `len` of a user's events ordered by (ts, seq)),
/// returned in (ts, seq) order.
pub(crate) fn history_of(entries: &mut Vec<EventEntry>, len: usize) {
    entries.sort_unstable_by_key(|e| (e.ts, e.seq));
    let excess = entries.len().saturating_sub(len);
    entries.drain(..excess);
}

/// Keeps the top `len` by (ts, seq) of one user's `entries`, leaving them
/// in the order they had (seq order in a merge). O(n): a selection, not a
/// sort; (ts, seq) pairs are distinct because seqs are.
fn keep_top(entries: &mut Vec<EventEntry>, len: usize) {
    if entries.len() <= len {
        return;
    }
    if len == 0 {
        entries.clear();
        return;
    }
    let mut keys: Vec<(u64, u64)> = entries.iter().map(|e| (e.ts, e.seq)).collect();
    let cut = keys.len() - len;
    let (_, threshold, _) = keys.select_nth_unstable(cut);
    let threshold = *threshold;
    entries.retain(|e| (e.ts, e.seq) >= threshold);
}

/// The `[from, to)` the adjacent ranges `ranges` (oldest first) cover.
fn covered(what: &str, ranges: impl Iterator<Item = (u64, u64, u64)>) -> Result<(u64, u64)> {
    let mut span: Option<(u64, u64, u64)> = None;
    for (id, from, to) in ranges {
        span = match span {
            None => Some((id, from, to)),
            Some((last_id, start, end)) if end == from => Some((id.max(last_id), start, to)),
            Some((last_id, _, end)) => {
                return Err(Error::InvalidOptions(format!(
                    "{what} merge: run {id} starts at seq {from}, run {last_id} ends at {end}: not adjacent"
                )))
            }
        };
    }
    span.map(|(_, from, to)| (from, to))
        .ok_or_else(|| Error::InvalidOptions(format!("{what} merge of no runs")))
}

/// K-way merge of event runs (inputs given oldest first, their [from,to)
/// ranges adjacent), keeping each user's top `len` by (ts, seq), written as
/// one run whose entries are still sorted by (user, seq). The output's
/// from_seq is the first input's from, its to_seq the last input's to and
/// its history_len `len`; its id and bottom flag are `header`'s.
pub(crate) fn merge_event_runs(
    dir: &Path,
    inputs: &[Arc<EventRun>],
    header: RunHeader,
    len: usize,
) -> Result<Arc<EventRun>> {
    let (from_seq, to_seq) = covered(
        "event run",
        inputs.iter().map(|r| (r.id(), r.header().from_seq, r.header().to_seq)),
    )?;
    let header = RunHeader {
        from_seq,
        to_seq,
        history_len: u32::try_from(len).unwrap_or(u32::MAX),
        ..header
    };
    let merge = EventMerge::new(inputs, len)?;
    write_event_run_from(dir, header, merge)
}

/// The merged entries of [`merge_event_runs`], one user at a time.
struct EventMerge<'a> {
    scans: Vec<EventScan<'a>>,
    heads: Vec<&'a [EventEntry]>,
    /// (user, input) of every input's current user: the smallest user
    /// first, and for one user the oldest input first.
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    len: usize,
    user: Vec<EventEntry>,
    at: usize,
    failed: bool,
}

impl<'a> EventMerge<'a> {
    fn new(inputs: &'a [Arc<EventRun>], len: usize) -> Result<Self> {
        let mut merge = EventMerge {
            scans: inputs.iter().map(|r| r.entries()).collect(),
            heads: vec![&[]; inputs.len()],
            heap: BinaryHeap::new(),
            len,
            user: Vec::new(),
            at: 0,
            failed: false,
        };
        for i in 0..inputs.len() {
            merge.advance(i)?;
        }
        Ok(merge)
    }

    /// Moves input `i` on to its next user.
    fn advance(&mut self, i: usize) -> Result<()> {
        if let Some(next) = self.scans[i].next() {
            let slice = next?;
            if let Some(first) = slice.first() {
                self.heads[i] = slice;
                self.heap.push(Reverse((first.user, i)));
            }
        }
        Ok(())
    }

    /// Gathers the next user's kept entries into `self.user`.
    fn next_user(&mut self) -> Result<bool> {
        let Some(&Reverse((user, _))) = self.heap.peek() else {
            return Ok(false);
        };
        self.user.clear();
        self.at = 0;
        while let Some(&Reverse((u, i))) = self.heap.peek() {
            if u != user {
                break;
            }
            self.heap.pop();
            self.user.extend_from_slice(self.heads[i]);
            self.advance(i)?;
        }
        keep_top(&mut self.user, self.len);
        Ok(true)
    }
}

impl Iterator for EventMerge<'_> {
    type Item = Result<EventEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.user.get(self.at) {
                self.at += 1;
                return Some(Ok(*e));
            }
            if self.failed {
                return None;
            }
            match self.next_user() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Newest-wins merge of keyed runs of `kind` (oldest first, adjacent
/// ranges): the newest input's entry decides each id, and deletion entries
/// are dropped when `header.bottom` (nothing older is left for them to
/// hide). The output's seq range is the inputs' span; its id and bottom
/// flag are `header`'s.
pub(crate) fn merge_keyed_runs(
    dir: &Path,
    kind: RunKind,
    inputs: &[Arc<KeyedRun>],
    header: RunHeader,
) -> Result<Arc<KeyedRun>> {
    if let Some(other) = inputs.iter().find(|r| r.kind() != kind) {
        return Err(Error::InvalidOptions(format!(
            "a {kind:?} merge was given run {} of kind {:?}",
            other.id(),
            other.kind()
        )));
    }
    let (from_seq, to_seq) = covered(
        "keyed run",
        inputs.iter().map(|r| (r.id(), r.header().from_seq, r.header().to_seq)),
    )?;
    let header = RunHeader {
        from_seq,
        to_seq,
        history_len: 0,
        ..header
    };
    let merge = KeyedMerge::new(inputs, header.bottom)?;
    write_keyed_run_from(dir, kind, header, merge)
}

type KeyedEntries<'a> = Box<dyn Iterator<Item = Result<(u64, KeyedValue)>> + 'a>;

/// The merged entries of [`merge_keyed_runs`], one id at a time.
struct KeyedMerge<'a> {
    iters: Vec<KeyedEntries<'a>>,
    heads: Vec<Option<KeyedValue>>,
    /// (id, newest input first) of every input's current entry.
    heap: BinaryHeap<Reverse<(u64, Reverse<usize>)>>,
    bottom: bool,
    failed: bool,
}

impl<'a> KeyedMerge<'a> {
    fn new(inputs: &'a [Arc<KeyedRun>], bottom: bool) -> Result<Self> {
        let mut merge = KeyedMerge {
            iters: inputs.iter().map(|r| Box::new(r.iter()) as KeyedEntries<'a>).collect(),
            heads: vec![None; inputs.len()],
            heap: BinaryHeap::new(),
            bottom,
            failed: false,
        };
        for i in 0..inputs.len() {
            merge.advance(i)?;
        }
        Ok(merge)
    }

    fn advance(&mut self, i: usize) -> Result<()> {
        if let Some(next) = self.iters[i].next() {
            let (id, value) = next?;
            self.heads[i] = Some(value);
            self.heap.push(Reverse((id, Reverse(i))));
        }
        Ok(())
    }

    /// The next id's winning entry (`None` in the outer option: done).
    fn step(&mut self) -> Result<Option<(u64, Option<KeyedValue>)>> {
        let Some(Reverse((id, Reverse(newest)))) = self.heap.pop() else {
            return Ok(None);
        };
        let winner = self.heads[newest].take();
        self.advance(newest)?;
        // Older inputs' entries for the same id lose.
        while let Some(&Reverse((other, Reverse(i)))) = self.heap.peek() {
            if other != id {
                break;
            }
            self.heap.pop();
            self.heads[i] = None;
            self.advance(i)?;
        }
        Ok(Some((id, winner)))
    }
}

impl Iterator for KeyedMerge<'_> {
    type Item = Result<KeyedItem>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            match self.step() {
                Ok(None) => return None,
                Ok(Some((_, None))) => {} // every heap entry has its head
                Ok(Some((_, Some(KeyedValue { value: None, .. })))) if self.bottom => {}
                Ok(Some((id, Some(KeyedValue { seq, value })))) => return Some(Ok((id, seq, value))),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, VecDeque};

    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::runs::event_run::write_event_run;
    use crate::runs::keyed_run::write_keyed_run;

    /// The store's rule before runs (`store/history.rs`, `record`), as the
    /// reference: insert after the last entry with ts <= the event's, then
    /// drop from the front while over capacity.
    fn reference_record(history: &mut VecDeque<EventEntry>, e: EventEntry, capacity: usize) {
        let at = history.iter().rposition(|h| h.ts <= e.ts).map_or(0, |i| i + 1);
        history.insert(at, e);
        while history.len() > capacity {
            history.pop_front();
        }
    }

    fn event(rng: &mut impl Rng, user: u64, seq: u64, base_ts: u64) -> EventEntry {
        // Mostly in time order; one in five late (a small ts), some ties.
        let ts = if rng.gen_bool(0.2) {
            rng.gen_range(0..base_ts.max(1))
        } else {
            base_ts + rng.gen_range(0..3)
        };
        EventEntry {
            user,
            seq,
            item: rng.gen_range(0..1_000),
            ts,
            weight: rng.gen_range(0.0..2.0),
            reserved: 0,
        }
    }

    fn header(id: u64, from: u64, to: u64, bottom: bool) -> RunHeader {
        RunHeader {
            id,
            from_seq: from,
            to_seq: to,
            history_len: 0,
            bottom,
        }
    }

    #[test]
    fn history_of_is_the_insert_and_pop_front_rule() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(27);
        for case in 0..300 {
            let capacity = rng.gen_range(0..12);
            let n = rng.gen_range(0..60);
            let mut reference = VecDeque::new();
            let mut all = Vec::new();
            for seq in 0..n {
                let e = event(&mut rng, 1, seq, seq * 2);
                reference_record(&mut reference, e, capacity);
                all.push(e);
            }
            history_of(&mut all, capacity);
            assert_eq!(all, Vec::from(reference), "case {case}");
        }
    }

    #[test]
    fn event_merges_keep_each_users_top_len_across_levels() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for case in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let len = rng.gen_range(1..10);
            let runs_n = rng.gen_range(1..7);
            let mut seq = 0u64;
            let mut model: BTreeMap<u64, VecDeque<EventEntry>> = BTreeMap::new();
            let mut runs = Vec::new();
            for r in 0..runs_n {
                let from = seq;
                let mut entries = Vec::new();
                for _ in 0..rng.gen_range(0..200) {
                    let user = rng.gen_range(0..25u64) * 1_000_003;
                    let e = event(&mut rng, user, seq, seq * 10);
                    reference_record(model.entry(user).or_default(), e, len);
                    entries.push(e);
                    seq += 1;
                }
                entries.sort_by_key(|e| (e.user, e.seq));
                runs.push(write_event_run(dir.path(), header(r, from, seq, false), entries).unwrap());
            }
            // Two levels: the older half, then that with the rest.
            let half = runs_n.div_ceil(2) as usize;
            let first = merge_event_runs(dir.path(), &runs[..half], header(100, 0, 0, true), len).unwrap();
            let mut level = vec![first];
            level.extend_from_slice(&runs[half..]);
            let merged = merge_event_runs(dir.path(), &level, header(101, 0, 0, true), len).unwrap();
            assert_eq!(merged.verify().unwrap(), merged.count());
            let h = merged.header();
            assert_eq!(
                (h.from_seq, h.to_seq, h.history_len, h.bottom),
                (0, seq, len as u32, true)
            );
            let mut users = 0;
            for (user, expected) in &model {
                let mut got = merged.user_slice(*user).unwrap().to_vec();
                assert!(got.windows(2).all(|w| w[0].seq < w[1].seq), "case {case}: seq order");
                history_of(&mut got, len);
                assert_eq!(got, Vec::from(expected.clone()), "case {case} user {user}");
                users += 1;
            }
            assert_eq!(merged.users(), users);
        }
    }

    #[test]
    fn keyed_merges_are_newest_wins_and_bottom_drops_deletions() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for case in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let runs_n = rng.gen_range(1..6);
            let mut seq = 0u64;
            let mut model: BTreeMap<u64, KeyedValue> = BTreeMap::new();
            let mut runs = Vec::new();
            for r in 0..runs_n {
                let from = seq;
                let mut latest: BTreeMap<u64, KeyedValue> = BTreeMap::new();
                for _ in 0..rng.gen_range(0..150) {
                    let id = rng.gen_range(0..60u64);
                    let value = rng
                        .gen_bool(0.7)
                        .then(|| vec![("k".to_string(), format!("{case}-{seq}")); rng.gen_range(0..3)]);
                    let v = KeyedValue { seq, value };
                    latest.insert(id, v.clone());
                    model.insert(id, v);
                    seq += 1;
                }
                let entries = latest.into_iter().map(|(id, v)| (id, v.seq, v.value));
                runs.push(
                    write_keyed_run(dir.path(), RunKind::Features, header(r, from, seq, false), entries).unwrap(),
                );
            }
            for bottom in [false, true] {
                let merged = merge_keyed_runs(
                    dir.path(),
                    RunKind::Features,
                    &runs,
                    header(50 + bottom as u64, 0, 0, bottom),
                )
                .unwrap();
                merged.verify().unwrap();
                let got: Vec<(u64, KeyedValue)> = merged.iter().map(|r| r.unwrap()).collect();
                let expected: Vec<(u64, KeyedValue)> = model
                    .iter()
                    .filter(|(_, v)| !bottom || v.value.is_some())
                    .map(|(id, v)| (*id, v.clone()))
                    .collect();
                assert_eq!(got, expected, "case {case} bottom {bottom}");
                assert_eq!((merged.header().from_seq, merged.header().to_seq), (0, seq));
            }
        }
    }

    #[test]
    fn merges_refuse_gaps_kinds_and_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_event_run(dir.path(), header(1, 0, 10, false), []).unwrap();
        let b = write_event_run(dir.path(), header(2, 11, 20, false), []).unwrap();
        assert!(matches!(
            merge_event_runs(dir.path(), &[a.clone(), b], header(3, 0, 0, false), 5),
            Err(Error::InvalidOptions(_))
        ));
        assert!(merge_event_runs(dir.path(), &[], header(3, 0, 0, false), 5).is_err());
        let f = write_keyed_run(dir.path(), RunKind::Features, header(4, 0, 10, false), []).unwrap();
        assert!(merge_keyed_runs(dir.path(), RunKind::Attributes, &[f], header(5, 0, 0, false)).is_err());
        // A merge of one run with len 0 keeps nothing and still covers its range.
        let one = merge_event_runs(dir.path(), &[a], header(6, 0, 0, false), 0).unwrap();
        assert_eq!((one.count(), one.header().to_seq), (0, 10));
    }
}
