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

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

use super::seal;
use super::version::Version;
use super::{Shared, WriteState};
use crate::error::{IoContext, Result};
use crate::index::{file as index_file, IndexSpec, SegmentIndex};
use crate::meta::records::{SegmentEntry, TrainerEntry};
use crate::segment::growing::GrowingSegment;
use crate::segment::sealed::{self, SealedSegment};
use crate::segment::Location;
use crate::train::state::{self, TrainerState};

pub(crate) fn publish(shared: &Shared, write: &Mutex<WriteState>, next: &TrainerState) -> Result<()> {
    let dim = shared.opts.dim;
    let per_segment = shared.opts.segment_rows;
    let pieces = next.len().div_ceil(per_segment);
    let first_id = {
        let mut w = write.lock();
        let id = w.core.manifest.next_segment_id;
        w.core.manifest.next_segment_id += pieces as u64 + 1;
        id
    };
    let trainer_file = first_id + pieces as u64;

    // (1) Everything of the new generation, written aside.
    let mut segments = Vec::with_capacity(pieces);
    let mut entries = Vec::with_capacity(pieces);
    let mut directory = HashMap::with_capacity(next.len());
    for (p, ids) in next.ids.chunks(per_segment.max(1)).enumerate() {
        let id = first_id + p as u64;
        let start = p * per_segment;
        let mut values = Vec::with_capacity(ids.len() * dim);
        for (r, item) in ids.iter().enumerate() {
            let row = next.row((start + r) as u32);
            let v = super::validate::prepare_vector(shared.opts.metric, dim, row, || format!("trained item {item}"))?;
            values.extend_from_slice(&v);
            directory.insert(
                *item,
                Location {
                    segment: id,
                    row: r as u32,
                },
            );
        }
        let path = shared.segments_dir.join(sealed::file_name(id));
        sealed::write(&path, id, dim, ids, &values)?;
        let segment = SealedSegment::open(&path, id, dim)?;
        segment.trust_fresh();
        if shared.opts.index != IndexSpec::Flat && ids.len() >= shared.opts.flat_below {
            let never = || false;
            let built = SegmentIndex::build(shared.opts.index, shared.opts.metric, dim, id, &values, &never)?;
            if let Some(index) = built {
                index.save(&shared.segments_dir.join(index_file::file_name(id)))?;
                segment.set_index(index);
                shared.indexer.counters.builds.fetch_add(1, Ordering::Relaxed);
            }
        }
        segments.push(Arc::new(segment));
        entries.push(SegmentEntry {
            id,
            rows: ids.len() as u64,
        });
    }
    next.write(&shared.segments_dir.join(state::file_name(trainer_file)))?;

    // (2) + (3) Under the write lock: carry over, commit, swap.
    let (old, old_snapshot, old_trainer, checkpoint) = {
        let mut w = write.lock();
        w.wal.write_pending()?;
        let end = w.wal.end();
        let current = shared.version.load_full();
        let (carry_ids, carry_values) = carry_over(&current, &directory, dim)?;
        let growing = GrowingSegment::new(dim, per_segment.max(carry_ids.len()));
        for (id, row) in carry_ids.iter().zip(carry_values.chunks_exact(dim)) {
            growing.push(*id, row);
        }
        let mut manifest = w.core.manifest.clone();
        let old = std::mem::replace(&mut manifest.segments, entries);
        let old_snapshot = manifest.growing.take();
        let old_trainer = manifest.trainer.replace(TrainerEntry {
            file_id: trainer_file,
            generation: next.generation,
        });
        if !carry_ids.is_empty() {
            manifest.growing = Some(seal::write_rows(
                shared,
                &mut manifest,
                sealed::snapshot_file_name,
                &carry_ids,
                &carry_values,
            )?);
        }
        let w = &mut *w;
        seal::commit_manifest(shared, &mut w.core, manifest, end, &[])?;
        shared.version.store(Arc::new(Version {
            sealed: segments,
            growing: Arc::new(growing),
            directory: Some(Arc::new(directory)),
            forwards: Arc::clone(&current.forwards),
        }));
        w.checkpointed_at = end;
        (old, old_snapshot, old_trainer, end)
    };

    // (4) The old generation's files.
    for entry in old {
        seal::remove_segment_files(shared, entry.id)?;
    }
    if let Some(t) = old_trainer {
        let path = shared.segments_dir.join(state::file_name(t.file_id));
        std::fs::remove_file(&path).at(&path)?;
    }
    seal::remove_snapshot(shared, old_snapshot)?;
    crate::fsutil::sync_dir(&shared.segments_dir)?;
    seal::remove_wal_before(shared, checkpoint.file_no)
}

/// The live rows of `version` whose items the new generation does not hold:
/// provisional vectors of items first seen after the round's cut.
fn carry_over(version: &Version, directory: &HashMap<u64, Location>, dim: usize) -> Result<(Vec<u64>, Vec<f32>)> {
    let (mut ids, mut values) = (Vec::new(), Vec::new());
    let mut taken = std::collections::HashSet::new();
    let (g_ids, g_values) = seal::live_growing_rows(&version.growing, dim);
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
