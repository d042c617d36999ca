//! The sled engine behind [`MetaStore`].
//!
//! Two trees. `catalog` holds the records that must change together, so that
//! one sled batch (atomic) can change them: key `b"config"`, key
//! `b"manifest"`, key `b"forwards"` (segments merged whole, see
//! [`super::records::Forward`]), keys `b"r" + id (u64 BE)` for the registry (value: a
//! [`Location`]), keys `b"d" + segment (u64 BE) + row (u32 BE)` for dead rows
//! (empty value). `histories` maps a user id (u64 BE) to its
//! [`UserHistory`]. Every value that carries data is a [`crate::codec`]
//! envelope.

use std::path::{Path, PathBuf};

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
pub(super) struct Engine {
    pub(super) path: PathBuf,
    db: sled::Db,
    pub(super) catalog: sled::Tree,
    pub(super) histories: sled::Tree,
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
    pub(super) fn open(path: &Path, cache_bytes: u64) -> Result<Self> {
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

    pub(super) fn err(&self, source: sled::Error) -> Error {
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
