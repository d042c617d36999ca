//! Publishing a training round: the new generation of item vectors becomes
//! the store's, all at once.
//!
//! Order: (1) segment files of the new vectors, their Faiss indexes and the
//! trainer state file are written aside, under file ids reserved from the
//! manifest, while readers and writers carry on; (2) under the write lock,
//! provisional rows of items the round did not know are carried over into a
//! fresh growing segment (and its snapshot), and one metadata commit installs
//! the manifest naming the new segments, the new trainer file and a
//! checkpoint at the log's end; (3) the version (segments, growing segment
//! and directory together) is swapped in; (4) the files of the old
//! generation are removed.
//! A crash before (2) leaves files that no manifest names: the next open
//! removes them. A crash after it leaves the old generation's files, which
//! the next open removes likewise. Readers hold whichever version they
//! loaded, so a query sees one generation from start to end.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::Result;
use crate::meta::records::TrainerEntry;
use crate::segment::growing::GrowingSegment;
use crate::segment::Location;
use crate::store::segments::install::{self, Growing, Installation, Placement};
use crate::store::space::SpaceState;
use crate::store::state::{Shared, WriteState};
use crate::train::dnn::state::DnnState;
use crate::train::state::{self, TrainerState};
use crate::version::Version;

/// A round's new generation, of either model.
pub(crate) enum Generation<'a> {
    Item2vec(&'a TrainerState),
    Dnn(&'a Arc<DnnState>),
}

impl Generation<'_> {
    fn ids(&self) -> &[u64] {
        match self {
            Generation::Item2vec(s) => &s.ids,
            Generation::Dnn(s) => &s.ids,
        }
    }

    fn number(&self) -> u64 {
        match self {
            Generation::Item2vec(s) => s.generation,
            Generation::Dnn(s) => s.generation,
        }
    }

    /// Item `i`'s stored row: item2vec's input vector; the DNN's `[v, b]`.
    fn row(&self, i: usize, out: &mut Vec<f32>) {
        match self {
            Generation::Item2vec(s) => {
                out.clear();
                out.extend_from_slice(s.row(i as u32));
            }
            Generation::Dnn(s) => s.stored_row(i as u32, out),
        }
    }

    fn write(&self, path: &std::path::Path) -> Result<()> {
        match self {
            Generation::Item2vec(s) => s.write(path),
            Generation::Dnn(s) => s.write(path),
        }
    }

    /// What the version serves user queries with (the DNN's tower).
    fn model(&self) -> Option<Arc<DnnState>> {
        match self {
            Generation::Item2vec(_) => None,
            Generation::Dnn(s) => Some(Arc::clone(s)),
        }
    }
}

/// Publishes `next` as `space`'s new generation.
pub(crate) fn publish(
    shared: &Shared,
    write: &Mutex<WriteState>,
    space: &SpaceState,
    next: &Generation<'_>,
) -> Result<()> {
    let dim = space.dim;
    let per_segment = shared.opts.segment_rows;
    // Deleted items were trained (their events are context) but are not
    // written: the new generation does not hold them at all.
    let all_ids = next.ids();
    let kept: Vec<usize> = (0..all_ids.len())
        .filter(|&i| !shared.blocked.contains(all_ids[i]))
        .collect();
    let kept_ids: Vec<u64> = kept.iter().map(|&i| all_ids[i]).collect();
    let pieces = kept_ids.len().div_ceil(per_segment);
    let first_id = write.lock().core.reserve_segment_ids(pieces as u64 + 1);
    let trainer_file = first_id + pieces as u64;

    // (1) Everything of the new generation, written aside.
    let mut segments = Vec::with_capacity(pieces);
    let mut directory = crate::idmap::with_capacity(kept_ids.len());
    let mut row = Vec::with_capacity(dim);
    for (p, ids) in kept_ids.chunks(per_segment.max(1)).enumerate() {
        let id = first_id + p as u64;
        let start = p * per_segment;
        let mut values = Vec::with_capacity(ids.len() * dim);
        for (r, item) in ids.iter().enumerate() {
            next.row(kept[start + r], &mut row);
            let v = crate::validate::prepare_vector(space.metric, dim, &row, || {
                format!("trained item {item} of {}", space.describe())
            })?;
            values.extend_from_slice(&v);
            directory.insert(
                *item,
                Location {
                    segment: id,
                    row: r as u32,
                },
            );
        }
        segments.push(install::write_indexed_segment(shared, space, id, ids, &values)?);
    }
    next.write(&shared.segments_dir.join(state::file_name(trainer_file)))?;

    // (2) + (3) Under the write lock: carry over, commit, swap.
    let obsolete = write.lock().checkpoint_at_end(|core, end| {
        let current = space.catalog.version.load_full();
        let (carry_ids, carry_values) = carry_over(&current, &directory, dim)?;
        let growing = GrowingSegment::new(dim, per_segment.max(carry_ids.len()));
        for (id, row) in carry_ids.iter().zip(carry_values.chunks_exact(dim)) {
            growing.push(*id, row);
        }
        let mut change = Installation::of(space, Growing::Replaced(growing));
        change.removed = core.manifest.spaces[space.slot()]
            .segments
            .iter()
            .map(|s| s.id)
            .collect();
        change.added = segments;
        change.placement = Placement::Directory(directory);
        change.trainer = Some(TrainerEntry {
            file_id: trainer_file,
            generation: next.number(),
        });
        change.model = next.model();
        // The round trained deleted items too (their events are context),
        // and items deleted since (1) are in its segments: the new
        // generation never serves them, from its first reader on.
        change.kill_deleted = true;
        install::install(shared, core, end, change)
    })?;

    // (4) The old generation's files.
    obsolete.remove(shared)
}

/// The live rows of `version` whose items the new generation does not hold:
/// provisional vectors of items first seen after the round's cut.
fn carry_over(
    version: &Version,
    directory: &crate::idmap::IdMap<u64, Location>,
    dim: usize,
) -> Result<(Vec<u64>, Vec<f32>)> {
    let (mut ids, mut values) = (Vec::new(), Vec::new());
    let mut taken = HashSet::new();
    let (g_ids, g_values) = version.growing.live_copy();
    for (id, row) in g_ids.iter().zip(g_values.chunks_exact(dim)) {
        if !directory.contains_key(id) && taken.insert(*id) {
            ids.push(*id);
            values.extend_from_slice(row);
        }
    }
    for segment in &version.sealed {
        let (s_ids, s_values) = segment.data()?;
        for (r, (id, row)) in s_ids.iter().zip(s_values.chunks_exact(dim)).enumerate() {
            if !segment.dead().is_dead(r) && !directory.contains_key(id) && taken.insert(*id) {
                ids.push(*id);
                values.extend_from_slice(row);
            }
        }
    }
    Ok((ids, values))
}
