//! The sled engine behind [`MetaStore`].
//!
//! Two trees. `catalog` holds the records that must change together, so that
//! one sled batch (atomic) can change them: key `b"config"`, key
//! `b"manifest"`, keys `b"r" + id (u64 BE)` for the registry (value: a
//! [`Location`]), keys `b"d" + segment (u64 BE) + row (u32 BE)` for dead rows
//! (empty value). `histories` maps a user id (u64 BE) to its
//! [`UserHistory`]. Every value that carries data is a [`crate::codec`]
//! envelope.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::records::{Forward, Manifest, StoredConfig, UserHistory};
use super::{Commit, MetaStore};
use crate::codec;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::segment::Location;

const CONFIG_KEY: &[u8] = b"config";
const MANIFEST_KEY: &[u8] = b"manifest";
const FORWARDS_KEY: &[u8] = b"forwards";
const REGISTRY_PREFIX: u8 = b'r';
const DEAD_PREFIX: u8 = b'd';

/// One sled database: `meta/db-<generation>/`.
struct Engine {
    path: PathBuf,
    db: sled::Db,
    catalog: sled::Tree,
    histories: sled::Tree,
}

fn registry_key(id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = REGISTRY_PREFIX;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn dead_key(at: Location) -> [u8; 13] {
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

impl Engine {
    fn open(path: &Path, cache_bytes: u64) -> Result<Self> {
        let wrap = |source| Error::Meta {
            path: path.to_path_buf(),
            source,
        };
        let db = open_db(path, cache_bytes).map_err(wrap)?;
        let catalog = db.open_tree("catalog").map_err(wrap)?;
        let histories = db.open_tree("histories").map_err(wrap)?;
        Ok(Engine {
            path: path.to_path_buf(),
            db,
            catalog,
            histories,
        })
    }

    fn err(&self, source: sled::Error) -> Error {
        Error::Meta {
            path: self.path.clone(),
            source,
        }
    }

    fn get_record<T: serde::de::DeserializeOwned>(
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

impl MetaStore for Engine {
    fn load_config(&self) -> Result<Option<StoredConfig>> {
        self.get_record(&self.catalog, CONFIG_KEY, "config")
    }

    fn save_config(&self, config: &StoredConfig) -> Result<()> {
        let bytes = codec::encode(config, "config")?;
        self.catalog.insert(CONFIG_KEY, bytes).map_err(|e| self.err(e))?;
        Ok(())
    }

    fn load_manifest(&self) -> Result<Option<Manifest>> {
        self.get_record(&self.catalog, MANIFEST_KEY, "manifest")
    }

    fn save_manifest(&self, manifest: &Manifest) -> Result<()> {
        let bytes = codec::encode(manifest, "manifest")?;
        self.catalog.insert(MANIFEST_KEY, bytes).map_err(|e| self.err(e))?;
        Ok(())
    }

    fn commit(&self, c: &Commit) -> Result<()> {
        let Commit {
            manifest,
            retired,
            rows,
            dropped_segments,
            dead,
            forwards,
        } = *c;
        // A batch holds one operation per key, the last given: an id retired
        // from an old segment and registered in the new one ends registered.
        let mut batch = sled::Batch::default();
        if let Some(forwards) = forwards {
            batch.insert(FORWARDS_KEY, codec::encode(&forwards.to_vec(), "forwards")?);
        }
        for (id, at) in retired {
            batch.remove(&registry_key(*id)[..]);
            batch.insert(&dead_key(*at)[..], &[][..]);
        }
        for (id, at) in rows {
            batch.insert(&registry_key(*id)[..], codec::encode(at, "registry")?);
        }
        for segment in dropped_segments {
            let mut prefix = [0u8; 9];
            prefix[0] = DEAD_PREFIX;
            prefix[1..].copy_from_slice(&segment.to_be_bytes());
            for entry in self.catalog.scan_prefix(prefix) {
                let (key, _) = entry.map_err(|e| self.err(e))?;
                batch.remove(key);
            }
            // Retirements of rows in a dropped segment record nothing.
            for (_, at) in retired.iter().filter(|(_, at)| at.segment == *segment) {
                batch.remove(&dead_key(*at)[..]);
            }
        }
        for at in dead {
            batch.insert(&dead_key(*at)[..], &[][..]);
        }
        batch.insert(MANIFEST_KEY, codec::encode(manifest, "manifest")?);
        self.catalog.apply_batch(batch).map_err(|e| self.err(e))
    }

    fn load_forwards(&self) -> Result<Vec<Forward>> {
        Ok(self
            .get_record(&self.catalog, FORWARDS_KEY, "forwards")?
            .unwrap_or_default())
    }

    fn location(&self, id: u64) -> Result<Option<Location>> {
        self.get_record(
            &self.catalog,
            &registry_key(id),
            &format!("registry entry of item {id}"),
        )
    }

    fn registry(&self) -> Result<Vec<(u64, Location)>> {
        let mut out = Vec::new();
        for entry in self.catalog.scan_prefix([REGISTRY_PREFIX]) {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            let id = <[u8; 8]>::try_from(&key[1..])
                .map(u64::from_be_bytes)
                .map_err(|_| Error::Corruption {
                    file: self.path.clone(),
                    offset: 0,
                    reason: format!("registry key of {} bytes", key.len()),
                })?;
            out.push((id, codec::decode(&value, &format!("registry entry of item {id}"))?));
        }
        Ok(out)
    }

    fn dead_rows(&self) -> Result<Vec<Location>> {
        let mut out = Vec::new();
        for entry in self.catalog.scan_prefix([DEAD_PREFIX]) {
            let (key, _) = entry.map_err(|e| self.err(e))?;
            if key.len() != 13 {
                return Err(Error::Codec {
                    context: format!("{} dead-row key", self.path.display()),
                    reason: format!("key of {} bytes, expected 13", key.len()),
                });
            }
            let mut seg = [0u8; 8];
            seg.copy_from_slice(&key[1..9]);
            let mut row = [0u8; 4];
            row.copy_from_slice(&key[9..13]);
            out.push(Location {
                segment: u64::from_be_bytes(seg),
                row: u32::from_be_bytes(row),
            });
        }
        Ok(out)
    }

    fn load_history(&self, user: u64) -> Result<Option<UserHistory>> {
        self.get_record(&self.histories, &user.to_be_bytes(), &format!("history of user {user}"))
    }

    fn for_each_history(&self, f: &mut dyn FnMut(u64, UserHistory) -> Result<()>) -> Result<()> {
        for kv in self.histories.iter() {
            let (key, value) = kv.map_err(|e| self.err(e))?;
            let user = <[u8; 8]>::try_from(&key[..])
                .map(u64::from_be_bytes)
                .map_err(|_| Error::Corruption {
                    file: self.path.clone(),
                    offset: 0,
                    reason: format!("history key of {} bytes", key.len()),
                })?;
            f(user, codec::decode(&value, &format!("history of user {user}"))?)?;
        }
        Ok(())
    }

    fn save_histories(&self, histories: &[(u64, UserHistory)]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (user, history) in histories {
            batch.insert(&user.to_be_bytes()[..], codec::encode(history, "history")?);
        }
        self.histories.apply_batch(batch).map_err(|e| self.err(e))
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    fn disk_bytes(&self) -> Result<u64> {
        fsutil::dir_size(&self.path)
    }

    fn strays(&self) -> Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }

    fn failed(&self) -> bool {
        false
    }

    fn rebuild(&self) -> Result<()> {
        Ok(())
    }
}

const CURRENT_MAGIC: &[u8; 8] = b"EMBERMET";
const CURRENT_VERSION: u32 = 1;

/// The metadata store of a store directory: `meta/CURRENT` (a 64-byte
/// stamped header, [`crate::stamp`], whose bytes 16..24 hold the
/// generation) names the live sled database `meta/db-<generation:020>/`.
/// `rebuild` copies the live records into the next generation's database
/// and switches `CURRENT` to it: sled never gives back the space of
/// deleted keys, and a compaction that deleted most items wants it back.
pub(crate) struct SledMeta {
    root: PathBuf,
    cache_bytes: u64,
    /// Set by the first failed write or flush: sled keeps failing after an
    /// I/O error (it records a global error) even once space returns, so
    /// the store stops writing until it is reopened.
    failed: std::sync::atomic::AtomicBool,
    engine: parking_lot::RwLock<(u64, Arc<Engine>)>,
}

fn db_dir(root: &Path, generation: u64) -> PathBuf {
    root.join(format!("db-{generation:020}"))
}

fn write_current(root: &Path, generation: u64) -> Result<()> {
    let header = crate::stamp::HeaderWriter::new(CURRENT_MAGIC, CURRENT_VERSION)
        .u64(16, generation)
        .finish();
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

/// The generations of the `db-*` directories under `root`, ascending. A
/// name that does not parse as `db-<number>` is not ours and is left alone.
fn list_generations(root: &Path) -> Result<Vec<u64>> {
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
                let generation =
                    crate::stamp::Header::check(&bytes, CURRENT_MAGIC, CURRENT_VERSION, &current, "metadata pointer")?
                        .u64(16);
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
                                "missing, while meta/ holds {}; nothing was deleted (restore from a snapshot, or run `ember repair` to adopt the newest generation that opens whole)",
                                names.join(", ")
                            ),
                        });
                }
            },
            Err(source) => return Err(Error::Io { path: current, source }),
        };
        let engine = Engine::open(&db_dir(root, generation), cache_bytes)?;
        if !current.exists() {
            write_current(root, generation)?;
        }
        remove_obsolete_generations(root, generation, &generations);
        Ok(SledMeta {
            root: root.to_path_buf(),
            cache_bytes,
            failed: std::sync::atomic::AtomicBool::new(false),
            engine: parking_lot::RwLock::new((generation, Arc::new(engine))),
        })
    }

    fn current(&self) -> Arc<Engine> {
        Arc::clone(&self.engine.read().1)
    }

    /// Refuses a write after an earlier one failed: sled would fail it
    /// anyway (with its recorded error), and the answer the caller needs
    /// is that the store must be reopened.
    fn refuse_if_failed(&self) -> Result<()> {
        if self.failed() {
            return Err(Error::Poisoned {
                path: fsutil::parent_of(&self.root).to_path_buf(),
            });
        }
        Ok(())
    }

    /// Passes a write's result on, remembering a failure.
    fn noted<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        result
    }
}

impl MetaStore for SledMeta {
    fn load_config(&self) -> Result<Option<StoredConfig>> {
        self.current().load_config()
    }
    fn save_config(&self, config: &StoredConfig) -> Result<()> {
        self.refuse_if_failed()?;
        self.noted(self.current().save_config(config))
    }
    fn load_manifest(&self) -> Result<Option<Manifest>> {
        self.current().load_manifest()
    }
    fn save_manifest(&self, manifest: &Manifest) -> Result<()> {
        self.refuse_if_failed()?;
        self.noted(self.current().save_manifest(manifest))
    }
    fn commit(&self, commit: &Commit) -> Result<()> {
        self.refuse_if_failed()?;
        self.noted(self.current().commit(commit))
    }
    fn load_forwards(&self) -> Result<Vec<Forward>> {
        self.current().load_forwards()
    }
    fn location(&self, id: u64) -> Result<Option<Location>> {
        self.current().location(id)
    }
    fn registry(&self) -> Result<Vec<(u64, Location)>> {
        self.current().registry()
    }
    fn dead_rows(&self) -> Result<Vec<Location>> {
        self.current().dead_rows()
    }
    fn load_history(&self, user: u64) -> Result<Option<UserHistory>> {
        self.current().load_history(user)
    }
    fn for_each_history(&self, f: &mut dyn FnMut(u64, UserHistory) -> Result<()>) -> Result<()> {
        self.current().for_each_history(f)
    }
    fn save_histories(&self, histories: &[(u64, UserHistory)]) -> Result<()> {
        self.refuse_if_failed()?;
        self.noted(self.current().save_histories(histories))
    }
    fn flush(&self) -> Result<()> {
        self.refuse_if_failed()?;
        self.noted(self.current().flush())
    }
    fn failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn disk_bytes(&self) -> Result<u64> {
        fsutil::dir_size(&self.root)
    }
    fn strays(&self) -> Result<Vec<PathBuf>> {
        let live = self.engine.read().0;
        Ok(list_generations(&self.root)?
            .into_iter()
            .filter(|g| *g != live)
            .map(|g| db_dir(&self.root, g))
            .collect())
    }

    /// The caller holds the store's write lock: nothing writes meanwhile.
    fn rebuild(&self) -> Result<()> {
        self.refuse_if_failed()?;
        let result = self.rebuild_into_next();
        self.noted(result)
    }
}

impl SledMeta {
    fn rebuild_into_next(&self) -> Result<()> {
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
        let fresh = Engine::open(&dir, self.cache_bytes)?;
        for (from, to) in [(&old.catalog, &fresh.catalog), (&old.histories, &fresh.histories)] {
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
