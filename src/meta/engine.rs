//! One sled database (`meta/db-<generation>/`): its trees, its keys, and
//! reading a record. `SledMeta` implements `MetaStore` over it.
//!
//! Two trees. `catalog` holds the records that must change together, so that
//! one sled batch (atomic) can change them: key `b"config"`, key
//! `b"spaces"` (format 2), key `b"manifest"`, key `b"wal_files"` (the
//! log files, see [`crate::wal::tracked`]), key `b"blocked"` (the items
//! `Store::delete` took out of every space, a `Vec<u64>`), key `b"trending"`
//! (the recent-popularity counts, see `store/trending.rs`), key `b"live_runs"`
//! (format 6: the run files holding behaviour, a [`super::records::RunManifest`]), and keys
//! `b"d" + segment (u64 BE) + row (u32 BE)` for dead rows (empty value;
//! segment ids are unique across spaces). Stores before format 5 also kept
//! an item registry here, under keys `b"r" + id (u64 BE)` (space 0) and
//! `b"R" + space (u32 BE) + id (u64 BE)`, and compaction's forwards under
//! `b"forwards"` (see [`super::records::Forward`]); opening such a store
//! removes them (`MetaStore::drop_legacy_locations`). `features`
//! maps a user id (u64 BE) to its feature pairs, `attributes` an item id
//! (u64 BE) to its attribute pairs (`Store::set_attributes`). `histories` maps a user id (u64 BE) to its
//! [`UserHistory`]. Those three trees hold data only in stores before
//! format 6, which keeps behaviour in run files; an upgrade empties them. Every value that carries data is a [`crate::codec`]
//! envelope.

use std::path::{Path, PathBuf};

use crate::codec;
use crate::error::{Error, Result};
use crate::segment::Location;

pub(super) const CONFIG_KEY: &[u8] = b"config";
pub(super) const SPACES_KEY: &[u8] = b"spaces";
pub(super) const MANIFEST_KEY: &[u8] = b"manifest";
pub(super) const FORWARDS_KEY: &[u8] = b"forwards";
pub(super) const WAL_FILES_KEY: &[u8] = b"wal_files";
pub(super) const BLOCKED_KEY: &[u8] = b"blocked";
pub(super) const TRENDING_KEY: &[u8] = b"trending";
// Not starting with a prefix byte of the keyed records (`r`, `R`, `d`):
// their prefix scans must never meet it.
pub(super) const RUNS_KEY: &[u8] = b"live_runs";
pub(super) const REGISTRY_PREFIX: u8 = b'r';
pub(super) const SPACE_REGISTRY_PREFIX: u8 = b'R';
pub(super) const DEAD_PREFIX: u8 = b'd';

/// One sled database: `meta/db-<generation>/`.
pub(super) struct Engine {
    pub(super) path: PathBuf,
    db: sled::Db,
    pub(super) catalog: sled::Tree,
    pub(super) histories: sled::Tree,
    pub(super) features: sled::Tree,
    pub(super) attributes: sled::Tree,
}

/// The key the registry of a store before format 5 gave `id` in `space` (tests make
/// such records to check their removal).
#[cfg(test)]
pub(super) fn registry_key(space: u32, id: u64) -> Vec<u8> {
    let mut k = if space == 0 {
        vec![REGISTRY_PREFIX]
    } else {
        let mut k = vec![SPACE_REGISTRY_PREFIX];
        k.extend_from_slice(&space.to_be_bytes());
        k
    };
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub(super) fn dead_key(at: Location) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = DEAD_PREFIX;
    k[1..9].copy_from_slice(&at.segment.to_be_bytes());
    k[9..].copy_from_slice(&at.row.to_be_bytes());
    k
}

/// How long a lock held by the sled instance of a store that was just
/// dropped is waited for: sled releases its file lock from a background
/// thread, a moment after the last handle goes.
const RELEASE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn open_db(path: &Path, cache_bytes: u64) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + RELEASE_GRACE;
    loop {
        // No periodic background flush: the store flushes at checkpoints,
        // and everything after the last one is recovered from the WAL.
        match sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .open()
        {
            Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::Other && lock_busy(&e) => {
                if std::time::Instant::now() >= deadline {
                    return Err(sled::Error::Io(e));
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// sled reports a held lock as an `Other` error whose text says so.
fn lock_busy(e: &std::io::Error) -> bool {
    e.to_string().contains("could not acquire lock")
}

/// Removes the snapshot files sled did not finish, in the database
/// directory `dir` (which sled opens next). sled writes a snapshot of its
/// page table to `snap.<lsn>.generating`, fsyncs it, renames it to
/// `snap.<lsn>` and only then removes older snapshots; but its reader
/// takes the greatest `snap.*` name, the unfinished one included, and a
/// kill during its writes leaves a partial file on which every later open
/// fails ("Read corrupted data"). Until the rename, the older snapshot
/// and sled's log hold everything, so the unfinished file is never needed.
fn remove_unfinished_snapshots(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            log::info!(
                "removed {}: a metadata snapshot that sled did not finish",
                path.display()
            );
        }
    }
    Ok(())
}

/// Whether `name` is a file of sled's that a copy of its database leaves
/// out: an unfinished snapshot (see [`remove_unfinished_snapshots`]).
pub(super) fn is_unfinished_snapshot(name: &str) -> bool {
    name.starts_with("snap.") && name.ends_with(".generating")
}

impl Engine {
    /// Opens the database in `path`; errors name `shown` (the store's own
    /// directory, where a read-only open works on a private copy).
    pub(super) fn open(path: &Path, shown: &Path, cache_bytes: u64) -> Result<Self> {
        let wrap = |source: sled::Error| Error::Meta {
            path: shown.to_path_buf(),
            source: Box::new(source),
        };
        remove_unfinished_snapshots(path)?;
        let db = open_db(path, cache_bytes).map_err(wrap)?;
        let catalog = db.open_tree("catalog").map_err(wrap)?;
        let histories = db.open_tree("histories").map_err(wrap)?;
        let features = db.open_tree("features").map_err(wrap)?;
        let attributes = db.open_tree("attributes").map_err(wrap)?;
        Ok(Engine {
            path: shown.to_path_buf(),
            db,
            catalog,
            histories,
            features,
            attributes,
        })
    }

    /// Makes every earlier write durable.
    pub(super) fn flush(&self) -> Result<()> {
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    pub(super) fn err(&self, source: sled::Error) -> Error {
        Error::Meta {
            path: self.path.clone(),
            source: Box::new(source),
        }
    }

    pub(super) fn get_record<T: serde::de::DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        key: &[u8],
        what: &str,
    ) -> Result<Option<T>> {
        match tree.get(key).map_err(|e| self.err(e))? {
            Some(bytes) => Ok(Some(codec::decode(&bytes, &format!("{} {what}", self.path.display()))?)),
            None => Ok(None),
        }
    }
}
