//! Walking every user's history, or every id's features or attributes,
//! by one merge over the runs and the recent part in key order: the runs
//! are read front to back (sequential reads of the mapped files), and
//! nothing but the current key's entries is held.

use std::sync::Arc;

use crate::error::Result;
use crate::runs::event_run::{EventEntry, EventRun};
use crate::runs::keyed_run::KeyedRun;
use crate::runs::merge::history_of;
use crate::store::behaviour::recent::{PairSet, Recent};

type Groups<'a> = Box<dyn Iterator<Item = Result<&'a [EventEntry]>> + 'a>;

/// Calls `f` with each user's history (its newest `len` events by (ts, seq),
/// oldest first), in user order: the runs' entries and `recent`'s.
pub(crate) fn histories(
    runs: &[Arc<EventRun>],
    recent: &Recent,
    len: usize,
    f: &mut dyn FnMut(u64, &[EventEntry]) -> Result<()>,
) -> Result<()> {
    let recent = recent.events.sorted();
    histories_between(runs, &recent, len, 0, None, f)
}

/// [`histories`] of the users in `[from, to)` (`to` `None`: to the last
/// user), with the recent part given as its entries sorted by (user, seq).
/// Each run is read from the block where `from` can begin, so parts of the
/// user space can be walked side by side.
pub(crate) fn histories_between(
    runs: &[Arc<EventRun>],
    recent: &[EventEntry],
    len: usize,
    from: u64,
    to: Option<u64>,
    f: &mut dyn FnMut(u64, &[EventEntry]) -> Result<()>,
) -> Result<()> {
    let recent = &recent[recent.partition_point(|e| e.user < from)..];
    let mut sources: Vec<Groups<'_>> = Vec::with_capacity(runs.len() + 1);
    for run in runs {
        sources.push(Box::new(run.entries_from(from)?));
    }
    sources.push(Box::new(recent.chunk_by(|a, b| a.user == b.user).map(Ok)));
    let mut heads = Vec::with_capacity(sources.len());
    for source in sources.iter_mut() {
        heads.push(next_group_from(source, from)?);
    }
    let mut buf: Vec<EventEntry> = Vec::new();
    while let Some(user) = heads.iter().flatten().map(|g| g[0].user).min() {
        if to.is_some_and(|to| user >= to) {
            break;
        }
        buf.clear();
        for (head, source) in heads.iter_mut().zip(sources.iter_mut()) {
            if let Some(group) = head.filter(|g| g[0].user == user) {
                buf.extend_from_slice(group);
                *head = next_group(source)?;
            }
        }
        history_of(&mut buf, len);
        f(user, &buf)?;
    }
    Ok(())
}

/// The first non-empty group of a source whose user is at least `from`.
fn next_group_from<'a>(source: &mut Groups<'a>, from: u64) -> Result<Option<&'a [EventEntry]>> {
    loop {
        match next_group(source)? {
            Some(group) if group[0].user < from => continue,
            found => return Ok(found),
        }
    }
}

/// The next non-empty group of a source.
fn next_group<'a>(source: &mut Groups<'a>) -> Result<Option<&'a [EventEntry]>> {
    for group in source.by_ref() {
        let group = group?;
        if !group.is_empty() {
            return Ok(Some(group));
        }
    }
    Ok(None)
}

type Values<'a> = Box<dyn Iterator<Item = Result<(u64, Option<PairSet>)>> + 'a>;

/// Calls `f` with every id's current pairs (the newest source that has the
/// id decides; removed ids are skipped), in id order. `runs` oldest first;
/// `recent` is the newest source.
pub(crate) fn keyed(
    runs: &[Arc<KeyedRun>],
    recent: &[(u64, crate::store::behaviour::recent::RecentValue)],
    f: &mut dyn FnMut(u64, PairSet) -> Result<()>,
) -> Result<()> {
    let mut sources: Vec<Values<'_>> = runs
        .iter()
        .map(|r| Box::new(r.iter().map(|kv| kv.map(|(id, v)| (id, v.value)))) as Values<'_>)
        .collect();
    sources.push(Box::new(
        recent
            .iter()
            .map(|(id, (_, v))| Ok((*id, v.as_ref().map(|set| set.as_ref().clone())))),
    ));
    let mut heads = Vec::with_capacity(sources.len());
    for source in sources.iter_mut() {
        heads.push(source.next().transpose()?);
    }
    while let Some(id) = heads.iter().flatten().map(|(id, _)| *id).min() {
        let mut newest = None;
        for (head, source) in heads.iter_mut().zip(sources.iter_mut()) {
            if head.as_ref().is_some_and(|(i, _)| *i == id) {
                // Sources go oldest to newest: a later one replaces.
                newest = head.take().map(|(_, v)| v);
                *head = source.next().transpose()?;
            }
        }
        if let Some(Some(set)) = newest {
            f(id, set)?;
        }
    }
    Ok(())
}
