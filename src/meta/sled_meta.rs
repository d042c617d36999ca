//! The metadata store of a store directory: which sled database is live
//! (`meta/CURRENT` and its generations), and the boundary that keeps sled's
//! failures and panics from reaching the caller as anything but a typed
//! error. One database is an [`Engine`]; the records are kept as
//! `sled_records` says.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::engine::Engine;
use crate::error::{Error, Result};
use crate::fsutil;

const CURRENT_MAGIC: &[u8; 8] = b"EMBERMET";
const CURRENT_VERSION: u32 = 1;

/// The metadata store of a store directory: `meta/CURRENT` (a 64-byte
/// stamped header, [`crate::stamp`], whose bytes 16..24 hold the
/// generation) names the live sled database `meta/db-<generation:020>/`.
/// `rebuild` copies the live records into the next generation's database
/// and switches `CURRENT` to it: sled never gives back the space of
/// deleted keys, and a compaction that deleted most items wants it back.
pub(crate) struct SledMeta {
    pub(super) root: PathBuf,
    cache_bytes: u64,
    /// Set when sled panicked (on bytes it read from disk): see `read`.
    panicked: std::sync::atomic::AtomicBool,
    /// Set by the first failed write or flush: sled keeps failing after an
    /// I/O error (it records a global error) even once space returns, so
    /// the store stops writing until it is reopened.
    pub(super) failed: std::sync::atomic::AtomicBool,
    pub(super) engine: parking_lot::RwLock<(u64, Arc<Engine>)>,
    /// For a read-only open: the private copy of the live database that
    /// sled opened (sled has no read-only mode: it takes an exclusive lock
    /// and writes its files on open), removed on drop.
    pub(super) scratch: Option<PathBuf>,
}

impl Drop for SledMeta {
    fn drop(&mut self) {
        if let Some(scratch) = &self.scratch {
            if let Err(e) = std::fs::remove_dir_all(scratch) {
                log::warn!("could not remove the read-only copy {}: {e}", scratch.display());
            }
        }
    }
}

/// Copies the directory tree `src` to `dst` (which must not exist),
/// leaving out sled's unfinished snapshots.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir(dst).map_err(io(dst))?;
    for entry in std::fs::read_dir(src).map_err(io(src))? {
        let entry = entry.map_err(io(src))?;
        let to = dst.join(entry.file_name());
        if super::engine::is_unfinished_snapshot(&entry.file_name().to_string_lossy()) {
            continue;
        }
        if entry.file_type().map_err(io(&entry.path()))?.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), &to).map_err(io(&entry.path()))?;
        }
    }
    Ok(())
}

pub(super) fn db_dir(root: &Path, generation: u64) -> PathBuf {
    root.join(format!("db-{generation:020}"))
}

/// The generation `meta/CURRENT` (its bytes, read from `path`) names.
pub(crate) fn decode_current(bytes: &[u8], path: &Path) -> Result<u64> {
    Ok(crate::stamp::Header::check(bytes, CURRENT_MAGIC, CURRENT_VERSION, path, "metadata pointer")?.u64(16))
}

/// The bytes of a `meta/CURRENT` naming `generation`.
pub(crate) fn encode_current(generation: u64) -> [u8; crate::stamp::HEADER_LEN] {
    crate::stamp::HeaderWriter::new(CURRENT_MAGIC, CURRENT_VERSION)
        .u64(16, generation)
        .finish()
}

fn write_current(root: &Path, generation: u64) -> Result<()> {
    let header = encode_current(generation);
    let path = root.join("CURRENT");
    fsutil::write_atomically_with(&path, |out| std::io::Write::write_all(out, &header))?;
    fsutil::sync_dir(root)
}

/// Removes the databases that `CURRENT` (naming `live`) proves obsolete:
/// older generations (a finished rebuild switched `CURRENT` past them,
/// then was interrupted before removing them) and `live + 1` (a rebuild
/// interrupted before it switched `CURRENT`, which it does last). Any
/// other generation is not explained by the protocol and is left for a
/// person to look at (`verify` reports it).
fn remove_obsolete_generations(root: &Path, live: u64, generations: &[u64]) {
    for &generation in generations {
        if generation < live || generation == live + 1 {
            let dir = db_dir(root, generation);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                log::warn!("could not remove obsolete metadata {}: {e}", dir.display());
            }
        }
    }
}

/// A new, empty directory of our own under the system's temporary
/// directory (`TMPDIR`).
fn unique_scratch_dir() -> Result<PathBuf> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let base = std::env::temp_dir();
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("emberdb-read-only-{}-{n}-{nanos}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(Error::Io { path: dir, source }),
        }
    }
}

/// How the reason of a caught sled panic starts.
const SLED_PANIC: &str = "sled panicked reading it";

/// Runs `f`, turning a panic inside sled into `Error::Corruption` naming
/// `file`: sled 0.34 panics on some corrupted pages (for example in its
/// deserializer) instead of returning an error, and a library must not
/// panic on bytes read from disk. sled's panic hook message still goes to
/// stderr; the store treats sled as failed from then on.
fn catch_sled_panic<T>(file: &Path, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    // AssertUnwindSafe: after a caught panic the caller never uses sled's
    // possibly inconsistent state again (it is marked failed and refused).
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(Error::Corruption {
            file: file.to_path_buf(),
            offset: 0,
            reason: format!("{SLED_PANIC} ({what}): {message}"),
        })
    })
}

/// The generations of the `db-*` directories under `root`, ascending. A
/// name that does not parse as `db-<number>` is not ours and is left alone.
pub(super) fn list_generations(root: &Path) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|source| Error::Io {
        path: root.to_path_buf(),
        source,
    })? {
        let entry = entry.map_err(|source| Error::Io {
            path: root.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(generation) = name.strip_prefix("db-").and_then(|g| g.parse::<u64>().ok()) {
            if entry.path().is_dir() {
                out.push(generation);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl SledMeta {
    /// Opens the metadata under `root` (`<store>/meta`). `store_has_data`
    /// says whether the store directory already holds log or segment files:
    /// metadata may only be created for a store that holds nothing yet.
    ///
    /// `CURRENT` is the commit point of creation and of every rebuild, so
    /// its absence is never taken as "new" when a database exists: a store
    /// whose `CURRENT` is missing next to `db-*` directories is corruption
    /// (nothing is deleted), with one exception proved harmless: a store
    /// that holds nothing but `db-1` is a creation interrupted before its
    /// `CURRENT` was written, and that database is adopted.
    pub fn open(root: &Path, store_has_data: bool, cache_bytes: u64) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|source| Error::Io {
            path: root.to_path_buf(),
            source,
        })?;
        let current = root.join("CURRENT");
        let generations = list_generations(root)?;
        let generation = match std::fs::read(&current) {
            Ok(bytes) => {
                let generation = decode_current(&bytes, &current)?;
                if !generations.contains(&generation) {
                    return Err(Error::Corruption {
                        file: db_dir(root, generation),
                        offset: 0,
                        reason: "the metadata database that meta/CURRENT names is missing".into(),
                    });
                }
                generation
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match (generations.as_slice(), store_has_data) {
                ([], false) | ([1], false) => 1,
                ([], true) => {
                    return Err(Error::Corruption {
                        file: root.to_path_buf(),
                        offset: 0,
                        reason:
                            "the metadata is missing, but the store holds log or segment files; nothing was changed"
                                .into(),
                    })
                }
                (found, _) => {
                    let names: Vec<String> = found.iter().map(|g| format!("db-{g:020}")).collect();
                    return Err(Error::Corruption {
                            file: current,
                            offset: 0,
                            reason: format!(
                                "missing, while meta/ holds {}; nothing was deleted; `Store::repair` (`ember repair`) makes new metadata from the store's recovery copy, or restore the store from a snapshot (`emberdb::restore`, `ember restore`)",
                                names.join(", ")
                            ),
                        });
                }
            },
            Err(source) => return Err(Error::Io { path: current, source }),
        };
        let dir = db_dir(root, generation);
        let engine = catch_sled_panic(&dir.join("db"), "opening it", || Engine::open(&dir, &dir, cache_bytes))?;
        if !current.exists() {
            write_current(root, generation)?;
        }
        remove_obsolete_generations(root, generation, &generations);
        Ok(SledMeta {
            root: root.to_path_buf(),
            cache_bytes,
            failed: std::sync::atomic::AtomicBool::new(false),
            panicked: std::sync::atomic::AtomicBool::new(false),
            engine: parking_lot::RwLock::new((generation, Arc::new(engine))),
            scratch: None,
        })
    }

    /// Opens the metadata under `root` without writing to it: the live
    /// database (the one `CURRENT` names) is copied to a private directory
    /// under the system's temporary directory and opened there; writes go
    /// to the copy and vanish with it. Errors still name the original
    /// files. The copy costs the metadata's size in time and temporary
    /// space.
    pub fn open_copy(root: &Path, cache_bytes: u64) -> Result<Self> {
        let current = root.join("CURRENT");
        let generation = match std::fs::read(&current) {
            Ok(bytes) => decode_current(&bytes, &current)?,
            Err(source) => return Err(Error::Io { path: current, source }),
        };
        let live = db_dir(root, generation);
        if !live.is_dir() {
            return Err(Error::Corruption {
                file: live,
                offset: 0,
                reason: "the metadata database that meta/CURRENT names is missing".into(),
            });
        }
        let scratch = unique_scratch_dir()?;
        let copy = scratch.join(format!("db-{generation:020}"));
        let opened = copy_tree(&live, &copy).and_then(|()| {
            catch_sled_panic(&live.join("db"), "opening it", || {
                Engine::open(&copy, &live, cache_bytes)
            })
        });
        let engine = match opened {
            Ok(engine) => engine,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&scratch);
                return Err(e);
            }
        };
        Ok(SledMeta {
            root: root.to_path_buf(),
            cache_bytes,
            failed: std::sync::atomic::AtomicBool::new(false),
            panicked: std::sync::atomic::AtomicBool::new(false),
            engine: parking_lot::RwLock::new((generation, Arc::new(engine))),
            scratch: Some(scratch),
        })
    }

    /// Whether this is a read-only open's private copy.
    pub(super) fn is_copy(&self) -> bool {
        self.scratch.is_some()
    }

    fn current(&self) -> Arc<Engine> {
        Arc::clone(&self.engine.read().1)
    }

    /// A read of the live database, with sled's panics caught (see
    /// [`catch_sled_panic`]).
    pub(super) fn read<T>(&self, what: &str, f: impl FnOnce(&Engine) -> Result<T>) -> Result<T> {
        self.refuse_if_panicked()?;
        let engine = self.current();
        self.guarded(what, || f(&engine))
    }

    /// A write of the live database: refused after an earlier failure,
    /// remembered when it fails, sled's panics caught.
    pub(super) fn write<T>(&self, what: &str, f: impl FnOnce(&Engine) -> Result<T>) -> Result<T> {
        self.refuse_if_failed()?;
        let engine = self.current();
        let result = self.guarded(what, || f(&engine));
        self.noted(result)
    }

    pub(super) fn guarded<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let file = db_dir(&self.root, self.engine.read().0).join("db");
        let result = catch_sled_panic(&file, what, f);
        if matches!(&result, Err(Error::Corruption { reason, .. }) if reason.starts_with(SLED_PANIC)) {
            self.panicked.store(true, std::sync::atomic::Ordering::SeqCst);
            self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        result
    }

    /// After sled panicked once its state is unknown: nothing more is read
    /// from it (a read could answer wrongly), until the store is reopened.
    fn refuse_if_panicked(&self) -> Result<()> {
        if self.panicked.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Corruption {
                file: db_dir(&self.root, self.engine.read().0).join("db"),
                offset: 0,
                reason: format!("{SLED_PANIC} earlier; reopen the store (after restoring a snapshot)"),
            });
        }
        Ok(())
    }

    /// Refuses a write after an earlier one failed: sled would fail it
    /// anyway (with its recorded error), and the answer the caller needs
    /// is that the store must be reopened.
    pub(super) fn refuse_if_failed(&self) -> Result<()> {
        if self.failed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Poisoned {
                path: fsutil::parent_of(&self.root).to_path_buf(),
            });
        }
        Ok(())
    }

    /// Passes a write's result on, remembering a failure.
    pub(super) fn noted<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        result
    }
}

impl SledMeta {
    pub(super) fn rebuild_into_next(&self) -> Result<()> {
        let (generation, old) = {
            let e = self.engine.read();
            (e.0, Arc::clone(&e.1))
        };
        old.flush()?;
        let next = generation + 1;
        let dir = db_dir(&self.root, next);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let fresh = Engine::open(&dir, &dir, self.cache_bytes)?;
        for (from, to) in [
            (&old.catalog, &fresh.catalog),
            (&old.histories, &fresh.histories),
            (&old.features, &fresh.features),
            (&old.attributes, &fresh.attributes),
        ] {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for kv in from.iter() {
                let (k, v) = kv.map_err(|e| old.err(e))?;
                batch.insert(k, v);
                n += 1;
                if n % 10_000 == 0 {
                    to.apply_batch(std::mem::take(&mut batch)).map_err(|e| fresh.err(e))?;
                }
            }
            to.apply_batch(batch).map_err(|e| fresh.err(e))?;
        }
        fresh.flush()?;
        write_current(&self.root, next)?;
        *self.engine.write() = (next, Arc::new(fresh));
        let old_path = old.path.clone();
        drop(old);
        // Readers may still hold the old engine for a moment; its files go
        // with the directory either way (and the next open removes it).
        let _ = std::fs::remove_dir_all(&old_path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::MetaStore;

    #[test]
    fn a_panic_inside_sled_becomes_corruption_naming_the_file() {
        let file = Path::new("/store/meta/db-00000000000000000001/db");
        let caught: Result<()> = catch_sled_panic(file, "a test read", || panic!("index out of bounds"));
        match caught {
            Err(Error::Corruption { file: f, reason, .. }) => {
                assert_eq!(f, file);
                assert!(reason.starts_with(SLED_PANIC), "{reason}");
                assert!(reason.contains("index out of bounds"), "{reason}");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        assert_eq!(catch_sled_panic(file, "a read", || Ok(7)).unwrap(), 7);
    }

    #[test]
    fn after_a_caught_panic_the_metadata_refuses_reads_and_writes() {
        let dir = tempfile::tempdir().unwrap();
        let meta = SledMeta::open(dir.path(), false, 1 << 20).unwrap();
        assert!(meta.load_manifest().unwrap().is_none());
        let caught: Result<()> = meta.guarded("a test read", || panic!("bad page"));
        assert!(caught.is_err());
        assert!(matches!(meta.load_manifest(), Err(Error::Corruption { .. })));
        assert!(matches!(meta.flush(), Err(Error::Poisoned { .. })));
        assert!(meta.failed());
    }
}
