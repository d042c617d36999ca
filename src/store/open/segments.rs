//! A space's segment files at open: the sealed segments the manifest
//! names (row counts checked against it) and the growing segment's
//! snapshot loaded back into memory.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::meta::records::SpaceManifest;
use crate::segment::growing::GrowingSegment;
use crate::segment::sealed::{self, SealedSegment};

/// Opens a space's sealed segments.
pub(super) fn open_segments(dir: &Path, files: &SpaceManifest, dim: usize) -> Result<Vec<Arc<SealedSegment>>> {
    let mut segments = Vec::with_capacity(files.segments.len());
    for entry in &files.segments {
        let path = dir.join(sealed::file_name(entry.id));
        let segment = SealedSegment::open(&path, entry.id, dim)?;
        if segment.count() as u64 != entry.rows {
            return Err(Error::Corruption {
                file: path,
                offset: 16,
                reason: format!(
                    "segment holds {} rows, the manifest says {}",
                    segment.count(),
                    entry.rows
                ),
            });
        }
        segments.push(Arc::new(segment));
    }
    segments.sort_by_key(|s| s.id());
    Ok(segments)
}

/// The growing segment as of the checkpoint: the manifest's snapshot loaded
/// back into memory (checksum verified first), or an empty segment.
pub(super) fn load_growing_snapshot(
    dir: &Path,
    files: &SpaceManifest,
    dim: usize,
    segment_rows: usize,
) -> Result<GrowingSegment> {
    let Some(entry) = &files.growing else {
        return Ok(GrowingSegment::new(dim, segment_rows));
    };
    let path = dir.join(sealed::snapshot_file_name(entry.id));
    let snapshot = SealedSegment::open(&path, entry.id, dim)?;
    let (ids, values) = snapshot.data()?;
    // Room for every snapshot row even if `segment_rows` shrank since.
    let growing = GrowingSegment::new(dim, segment_rows.max(ids.len()));
    for (id, row) in ids.iter().zip(values.chunks_exact(dim)) {
        growing.push(*id, row);
    }
    Ok(growing)
}
