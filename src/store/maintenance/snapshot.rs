//! Point-in-time copies of a store.
//!
//! `snapshot` takes the write lock, checkpoints (the growing segment goes to
//! a snapshot file, the metadata is flushed, the log before the end is no
//! longer needed), and while still holding the lock copies the store:
//! immutable files the manifest names (segments, their indexes, the growing
//! snapshot, the trainer state) are hard-linked when the file system allows
//! and copied otherwise; the log and the metadata directory are copied. With
//! the write lock held nothing writes to the store (sled has no background
//! flusher here), so the copy is the store exactly as of that point of the
//! log: writes acknowledged before it are in, later ones are not. Readers
//! keep going. The copy is built in a directory beside `dest` that this
//! call created exclusively (`<dest>.snapshot-tmp-<pid>-<nanos>-<n>`), and
//! renamed into place with `RENAME_NOREPLACE`, so `dest` either holds a
//! whole snapshot or nothing, two snapshots racing for one destination
//! never touch each other's copy (the loser fails), and nothing that was
//! there before is ever removed. A destination inside the store (or a store
//! inside the destination) is refused.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::index::file as index_file;
use crate::segment::sealed;
use crate::store::{write::seal, Store};
use crate::train::state;

/// What a snapshot captured.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotInfo {
    /// The directory the copy was made at: the snapshot (`Store::snapshot`)
    /// or the restored store (`restore`).
    pub path: PathBuf,
    /// Operations (events, upserts, deletes) with a smaller sequence number
    /// are in the snapshot; none with this one or later.
    pub next_seq: u64,
    /// Immutable files (segments, indexes, runs, trainer state) hard-linked
    /// from the source rather than copied.
    pub linked: usize,
    /// Files copied byte for byte: the log, the metadata, and any file the
    /// file system would not hard-link.
    pub copied: usize,
    /// Bytes of the copied files, summed (hard links copy none).
    pub copied_bytes: u64,
    /// Temporary directories of earlier copies to the same destination
    /// whose process died before finishing (a kill), removed first.
    pub removed_leftovers: Vec<PathBuf>,
}

impl Store {
    /// A consistent copy of the store at `dest` (which must not exist),
    /// taken while other threads keep reading; writers wait for the copy.
    /// Open it with `Store::open(dest, Options::existing())`, or make a
    /// new store from it with [`restore`].
    ///
    /// ```
    /// use emberdb::{Durability, Options, Store};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("store");
    /// let store = Store::open(&path, Options::new(2).durability(Durability::None))?;
    /// store.upsert(1, &[1.0, 0.0])?;
    /// let snap = dir.path().join("snap");
    /// let info = store.snapshot(&snap)?;
    /// store.upsert(2, &[0.0, 1.0])?; // after the snapshot: not in it
    ///
    /// let restored = dir.path().join("restored");
    /// let restored_info = emberdb::restore(&snap, &restored)?;
    /// assert_eq!(restored_info.next_seq, info.next_seq); // the same point of the log
    /// let copy = Store::open(&restored, Options::existing())?;
    /// assert!(copy.get(1)?.is_some());
    /// assert!(copy.get(2)?.is_none());
    /// assert!(store.get(2)?.is_some()); // the original carries on
    /// # Ok(()) }
    /// ```
    pub fn snapshot(&self, dest: impl AsRef<Path>) -> Result<SnapshotInfo> {
        let dest = dest.as_ref();
        self.shared.refuse_if_read_only()?;
        refuse_existing(dest)?;
        refuse_nested(&self.shared.path, dest)?;
        let removed_leftovers = fsutil::remove_dead_dirs_beside(dest, "snapshot-tmp")?;
        let tmp = fsutil::create_unique_dir_beside(dest, "snapshot-tmp")?;
        let outcome = self.snapshot_into(&tmp, dest).map(|info| SnapshotInfo {
            removed_leftovers,
            ..info
        });
        if outcome.is_err() {
            // Ours alone (made exclusively above): safe to remove.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        outcome
    }

    fn snapshot_into(&self, tmp: &Path, dest: &Path) -> Result<SnapshotInfo> {
        let mut w = self.write.lock();
        w.wal.sync_all()?;
        w.checkpoint_at_end(|core, end| seal::checkpoint(&self.shared, core, end))?;
        let mut live = live_segment_files(&w.core.manifest);
        live.extend(w.core.runs.file_names());
        let mut info = SnapshotInfo {
            path: dest.to_path_buf(),
            next_seq: w.core.next_seq,
            linked: 0,
            copied: 0,
            copied_bytes: 0,
            removed_leftovers: Vec::new(),
        };
        copy_store(&self.shared.path, tmp, &|name| live.contains(name), &mut info)?;
        publish(tmp, dest)?;
        Ok(info)
    }
}

/// Makes a store at `dest` from the snapshot at `snapshot` (hard links where
/// possible), then opens it once to check it. `dest` must not exist; the
/// snapshot is left as it was, to restore again. See [`Store::snapshot`]
/// for an example.
pub fn restore(snapshot: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<SnapshotInfo> {
    let (snapshot, dest) = (snapshot.as_ref(), dest.as_ref());
    if !snapshot.join("meta").is_dir() {
        return Err(Error::NotAStore {
            path: snapshot.to_path_buf(),
        });
    }
    refuse_existing(dest)?;
    refuse_nested(snapshot, dest)?;
    let removed_leftovers = fsutil::remove_dead_dirs_beside(dest, "restore-tmp")?;
    let tmp = fsutil::create_unique_dir_beside(dest, "restore-tmp")?;
    let mut info = SnapshotInfo {
        path: dest.to_path_buf(),
        next_seq: 0,
        linked: 0,
        copied: 0,
        copied_bytes: 0,
        removed_leftovers,
    };
    // Every segment-directory file of a snapshot is live: it was made so.
    let copied = copy_store(snapshot, &tmp, &|_| true, &mut info).and_then(|()| publish(&tmp, dest));
    if let Err(e) = copied {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let store = Store::open(dest, crate::Options::existing().durability(crate::Durability::Buffered))?;
    info.next_seq = store.write.lock().core.next_seq;
    Ok(info)
}

/// Moves the finished copy `tmp` to `dest`, never replacing anything that
/// appeared at `dest` meanwhile (another snapshot racing for the same name
/// loses with `AlreadyExists`), and makes the new name durable.
fn publish(tmp: &Path, dest: &Path) -> Result<()> {
    fsutil::rename_no_replace(tmp, dest).at(dest)?;
    fsutil::sync_dir(fsutil::parent_of(dest))
}

/// Refuses a destination inside the source (the copy would copy itself, or
/// land among the store's own files) and a source inside the destination.
/// Then creates the destination's parent directories (a copy to a new path
/// always has), once it is known to be outside the store.
fn refuse_nested(source: &Path, dest: &Path) -> Result<()> {
    if fsutil::is_inside(dest, source)? || fsutil::is_inside(source, dest)? {
        return Err(Error::Io {
            path: dest.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "the destination and the store {} would contain one another; choose a path outside it",
                    source.display()
                ),
            ),
        });
    }
    let parent = fsutil::parent_of(dest);
    std::fs::create_dir_all(parent).at(parent)
}

fn refuse_existing(dest: &Path) -> Result<()> {
    if dest.exists() {
        return Err(Error::Io {
            path: dest.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the destination already exists"),
        });
    }
    Ok(())
}

/// The segment-directory files the manifest names.
fn live_segment_files(manifest: &crate::meta::records::Manifest) -> HashSet<String> {
    let mut live = HashSet::new();
    for space in &manifest.spaces {
        for s in &space.segments {
            live.insert(sealed::file_name(s.id));
            live.insert(index_file::file_name(s.id));
        }
        if let Some(g) = &space.growing {
            live.insert(sealed::snapshot_file_name(g.id));
        }
        if let Some(t) = &space.trainer {
            live.insert(state::file_name(t.file_id));
        }
    }
    live
}

fn copy_store(src: &Path, dst: &Path, live: &dyn Fn(&str) -> bool, info: &mut SnapshotInfo) -> Result<()> {
    for dir in ["segments", "wal", "meta"] {
        std::fs::create_dir_all(dst.join(dir)).at(&dst.join(dir))?;
    }
    // Segments and runs are immutable: linked where the file system can.
    for dir in ["segments", crate::runs::RUNS_DIR] {
        let (src_dir, dst_dir) = (src.join(dir), dst.join(dir));
        if !src_dir.is_dir() {
            continue; // a store written before runs
        }
        std::fs::create_dir_all(&dst_dir).at(&dst_dir)?;
        for entry in std::fs::read_dir(&src_dir).at(&src_dir)? {
            let entry = entry.at(&src_dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !live(&name) {
                continue;
            }
            let (from, to) = (entry.path(), dst_dir.join(&name));
            if std::fs::hard_link(&from, &to).is_ok() {
                info.linked += 1;
            } else {
                copy_file(&from, &to, info)?;
            }
        }
        fsutil::sync_dir(&dst_dir)?;
    }
    copy_tree(&src.join("wal"), &dst.join("wal"), info)?;
    copy_tree(&src.join("meta"), &dst.join("meta"), info)?;
    // The catalog copy `repair` works from, current after the checkpoint.
    let recovery = crate::meta::recovery_file::path(src);
    if recovery.exists() {
        copy_file(&recovery, &crate::meta::recovery_file::path(dst), info)?;
    }
    for dir in ["segments", "wal", "meta", ""] {
        fsutil::sync_dir(&dst.join(dir))?;
    }
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path, info: &mut SnapshotInfo) -> Result<()> {
    std::fs::create_dir_all(dst).at(dst)?;
    for entry in std::fs::read_dir(src).at(src)? {
        let entry = entry.at(src)?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        if entry.file_type().at(&from)?.is_dir() {
            copy_tree(&from, &to, info)?;
            fsutil::sync_dir(&to)?;
        } else if !skipped_in_copies(&entry.file_name().to_string_lossy()) {
            copy_file(&from, &to, info)?;
        }
    }
    Ok(())
}

/// Files a copy leaves out: our temporary files, and sled's unfinished
/// snapshots (`snap.*.generating`, never needed: see `meta/engine.rs`).
fn skipped_in_copies(name: &str) -> bool {
    name.ends_with(fsutil::TMP_SUFFIX) || (name.starts_with("snap.") && name.ends_with(".generating"))
}

fn copy_file(from: &Path, to: &Path, info: &mut SnapshotInfo) -> Result<()> {
    let bytes = std::fs::copy(from, to).at(from)?;
    crate::faults::check(crate::faults::Op::Fsync, to)
        .and_then(|()| std::fs::File::open(to))
        .and_then(|f| f.sync_all())
        .at(to)?;
    info.copied += 1;
    info.copied_bytes += bytes;
    Ok(())
}
