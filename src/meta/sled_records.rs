//! How each metadata record is kept in sled: the [`MetaStore`] interface
//! over [`SledMeta`]. Every call runs inside `SledMeta::read` or `write`,
//! which refuse after a failure and turn sled's panics into `Corruption`
//! naming the file; the string each passes names what was read, for that
//! error. Key layout: see `engine`.

use std::path::PathBuf;

use super::engine::Engine;
use super::engine::{
    dead_key, registry_key, registry_prefix, BLOCKED_KEY, CONFIG_KEY, DEAD_PREFIX, FORWARDS_KEY, MANIFEST_KEY,
    SPACES_KEY, SPACE_REGISTRY_PREFIX, TRENDING_KEY, WAL_FILES_KEY,
};
use super::records::{Forward, Manifest, ManifestV1, StoredConfig, StoredSpace, TrendingRecord, UserHistory};
use super::sled_meta::{db_dir, list_generations, SledMeta};
use super::{Commit, MetaStore, UserFeaturePairs};
use crate::codec;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::segment::Location;
use crate::wal::tracked::TrackedFiles;

impl MetaStore for SledMeta {
    fn save_histories(&self, histories: &[(u64, UserHistory)]) -> Result<()> {
        self.write("user histories", |db| {
            let mut batch = sled::Batch::default();
            for (user, history) in histories {
                batch.insert(&user.to_be_bytes()[..], codec::encode(history, "history")?);
            }
            db.histories.apply_batch(batch).map_err(|e| db.err(e))
        })
    }

    fn load_features(&self) -> Result<Vec<UserFeaturePairs>> {
        self.read("the user features", |db| {
            load_pairs(db, &db.features, "features of user")
        })
    }

    fn save_features(&self, features: &[UserFeaturePairs]) -> Result<()> {
        self.write("user features", |db| save_pairs(db, &db.features, features, "features"))
    }

    fn load_attributes(&self) -> Result<Vec<UserFeaturePairs>> {
        self.read("the item attributes", |db| {
            load_pairs(db, &db.attributes, "attributes of item")
        })
    }

    fn save_attributes(&self, attributes: &[UserFeaturePairs]) -> Result<()> {
        self.write("item attributes", |db| {
            save_pairs(db, &db.attributes, attributes, "attributes")
        })
    }

    fn load_trending(&self) -> Result<Option<TrendingRecord>> {
        self.read("the recent-popularity counts", |db| {
            db.get_record(&db.catalog, TRENDING_KEY, "trending")
        })
    }

    fn save_trending(&self, record: &TrendingRecord) -> Result<()> {
        self.write("recent-popularity counts", |db| {
            db.catalog
                .insert(TRENDING_KEY, codec::encode(record, "trending")?)
                .map(|_| ())
                .map_err(|e| db.err(e))
        })
    }

    fn load_config(&self) -> Result<Option<StoredConfig>> {
        self.read("the configuration", |db| {
            db.get_record(&db.catalog, CONFIG_KEY, "config")
        })
    }

    fn load_spaces(&self) -> Result<Option<Vec<StoredSpace>>> {
        self.read("the spaces", |db| db.get_record(&db.catalog, SPACES_KEY, "spaces"))
    }

    fn load_manifest(&self) -> Result<Option<Manifest>> {
        self.read("the manifest", |db| {
            db.get_record(&db.catalog, MANIFEST_KEY, "manifest")
        })
    }

    fn load_manifest_v1(&self) -> Result<Option<ManifestV1>> {
        self.read("the manifest", |db| {
            db.get_record(&db.catalog, MANIFEST_KEY, "manifest")
        })
    }

    fn save_layout(&self, config: &StoredConfig, spaces: &[StoredSpace], manifest: &Manifest) -> Result<()> {
        self.write("the configuration", |db| {
            let mut batch = sled::Batch::default();
            batch.insert(CONFIG_KEY, codec::encode(config, "config")?);
            batch.insert(SPACES_KEY, codec::encode(&spaces.to_vec(), "spaces")?);
            batch.insert(MANIFEST_KEY, codec::encode(manifest, "manifest")?);
            db.catalog.apply_batch(batch).map_err(|e| db.err(e))
        })
    }

    fn commit(&self, c: &Commit) -> Result<()> {
        self.write("a catalog batch", |db| {
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
            for (space, id, at) in retired {
                batch.remove(registry_key(*space, *id));
                batch.insert(&dead_key(*at)[..], &[][..]);
            }
            for (space, id, at) in rows {
                batch.insert(registry_key(*space, *id), codec::encode(at, "registry")?);
            }
            for segment in dropped_segments {
                let mut prefix = [0u8; 9];
                prefix[0] = DEAD_PREFIX;
                prefix[1..].copy_from_slice(&segment.to_be_bytes());
                for entry in db.catalog.scan_prefix(prefix) {
                    let (key, _) = entry.map_err(|e| db.err(e))?;
                    batch.remove(key);
                }
                // Retirements of rows in a dropped segment record nothing.
                for (_, _, at) in retired.iter().filter(|(_, _, at)| at.segment == *segment) {
                    batch.remove(&dead_key(*at)[..]);
                }
            }
            for at in dead {
                batch.insert(&dead_key(*at)[..], &[][..]);
            }
            batch.insert(MANIFEST_KEY, codec::encode(manifest, "manifest")?);
            db.catalog.apply_batch(batch).map_err(|e| db.err(e))
        })
    }

    fn load_forwards(&self) -> Result<Vec<Forward>> {
        self.read("the forwards", |db| {
            Ok(db
                .get_record(&db.catalog, FORWARDS_KEY, "forwards")?
                .unwrap_or_default())
        })
    }

    fn location(&self, space: u32, id: u64) -> Result<Option<Location>> {
        self.read("a registry entry", |db| {
            db.get_record(
                &db.catalog,
                &registry_key(space, id),
                &format!("registry entry of item {id} in space {space}"),
            )
        })
    }

    fn registry(&self, space: u32) -> Result<Vec<(u64, Location)>> {
        self.read("the registry", |db| {
            let mut out = Vec::new();
            let prefix = registry_prefix(space);
            for entry in db.catalog.scan_prefix(&prefix) {
                let (key, value) = entry.map_err(|e| db.err(e))?;
                let id = <[u8; 8]>::try_from(&key[prefix.len()..])
                    .map(u64::from_be_bytes)
                    .map_err(|_| Error::Corruption {
                        file: db.path.clone(),
                        offset: 0,
                        reason: format!("registry key of {} bytes", key.len()),
                    })?;
                out.push((id, codec::decode(&value, &format!("registry entry of item {id}"))?));
            }
            Ok(out)
        })
    }

    fn registry_spaces(&self) -> Result<Vec<u32>> {
        self.read("the registry", |db| {
            let mut out = Vec::new();
            if let Some(entry) = db.catalog.scan_prefix(registry_prefix(0)).next() {
                entry.map_err(|e| db.err(e))?;
                out.push(0);
            }
            // One seek per space: the first key at or after `R` + n.
            let mut next = 1u32;
            loop {
                let Some(entry) = db.catalog.range(registry_prefix(next)..).next() else {
                    break;
                };
                let (key, _) = entry.map_err(|e| db.err(e))?;
                let Some(number) = key
                    .strip_prefix(&[SPACE_REGISTRY_PREFIX])
                    .and_then(|rest| <[u8; 4]>::try_from(rest.get(..4)?).ok())
                    .map(u32::from_be_bytes)
                else {
                    break;
                };
                out.push(number);
                match number.checked_add(1) {
                    Some(n) => next = n,
                    None => break,
                }
            }
            Ok(out)
        })
    }

    fn dead_rows(&self) -> Result<Vec<Location>> {
        self.read("the dead rows", |db| {
            let mut out = Vec::new();
            for entry in db.catalog.scan_prefix([DEAD_PREFIX]) {
                let (key, _) = entry.map_err(|e| db.err(e))?;
                if key.len() != 13 {
                    return Err(Error::Codec {
                        context: format!("{} dead-row key", db.path.display()),
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
        })
    }

    fn load_history(&self, user: u64) -> Result<Option<UserHistory>> {
        self.read("a user history", |db| {
            db.get_record(&db.histories, &user.to_be_bytes(), &format!("history of user {user}"))
        })
    }

    fn for_each_history(&self, f: &mut dyn FnMut(u64, UserHistory) -> Result<()>) -> Result<()> {
        self.read("the user histories", |db| {
            for kv in db.histories.iter() {
                let (key, value) = kv.map_err(|e| db.err(e))?;
                let user = <[u8; 8]>::try_from(&key[..])
                    .map(u64::from_be_bytes)
                    .map_err(|_| Error::Corruption {
                        file: db.path.clone(),
                        offset: 0,
                        reason: format!("history key of {} bytes", key.len()),
                    })?;
                f(user, codec::decode(&value, &format!("history of user {user}"))?)?;
            }
            Ok(())
        })
    }

    fn load_blocked(&self) -> Result<Vec<u64>> {
        self.read("the deleted items", |db| {
            Ok(db
                .get_record(&db.catalog, BLOCKED_KEY, "deleted items")?
                .unwrap_or_default())
        })
    }

    fn save_blocked(&self, ids: &[u64]) -> Result<()> {
        self.write("the deleted items", |db| {
            db.catalog
                .insert(BLOCKED_KEY, codec::encode(&ids, "deleted items")?)
                .map_err(|e| db.err(e))?;
            Ok(())
        })
    }

    fn load_wal_files(&self) -> Result<Option<TrackedFiles>> {
        self.read("the log file list", |db| {
            db.get_record(&db.catalog, WAL_FILES_KEY, "log file list")
        })
    }

    fn save_wal_files(&self, files: &TrackedFiles) -> Result<()> {
        self.write("the log file list", |db| {
            db.catalog
                .insert(WAL_FILES_KEY, codec::encode(files, "log file list")?)
                .map_err(|e| db.err(e))?;
            db.flush()
        })
    }

    fn flush(&self) -> Result<()> {
        self.write("a flush", |db| db.flush())
    }

    fn failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn disk_bytes(&self) -> Result<u64> {
        fsutil::dir_size(&self.root)
    }

    fn strays(&self) -> Result<Vec<PathBuf>> {
        // (A read-only open's root is still the store's own `meta/`.)
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
        if self.is_copy() {
            // A rebuild switches `CURRENT` in the store's own directory.
            return Err(Error::ReadOnly {
                path: self.root.parent().unwrap_or(&self.root).to_path_buf(),
            });
        }
        let result = self.guarded("a rebuild", || self.rebuild_into_next());
        self.noted(result)
    }
}

/// Every (id, pairs) record of `tree` (features or attributes: key the id
/// as u64 BE); `what` names a record in errors ("features of user").
fn load_pairs(db: &Engine, tree: &sled::Tree, what: &str) -> Result<Vec<UserFeaturePairs>> {
    let mut out = Vec::new();
    for kv in tree.iter() {
        let (key, value) = kv.map_err(|e| db.err(e))?;
        let id = <[u8; 8]>::try_from(&key[..])
            .map(u64::from_be_bytes)
            .map_err(|_| Error::Corruption {
                file: db.path.clone(),
                offset: 0,
                reason: format!("{what}: a key of {} bytes", key.len()),
            })?;
        out.push((id, codec::decode(&value, &format!("{what} {id}"))?));
    }
    Ok(out)
}

/// Writes (id, pairs) records in one batch; an empty set removes the id.
fn save_pairs(db: &Engine, tree: &sled::Tree, records: &[UserFeaturePairs], what: &str) -> Result<()> {
    let mut batch = sled::Batch::default();
    for (id, set) in records {
        if set.is_empty() {
            batch.remove(&id.to_be_bytes()[..]);
        } else {
            batch.insert(&id.to_be_bytes()[..], codec::encode(set, what)?);
        }
    }
    tree.apply_batch(batch).map_err(|e| db.err(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::records::Manifest;
    use crate::meta::Commit;

    #[test]
    fn registries_of_spaces_are_kept_apart_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let meta = SledMeta::open(&dir.path().join("meta"), false, 1 << 20).unwrap();
        let at = |segment, row| Location { segment, row };
        let rows = [
            (0, 5, at(1, 0)),
            (3, 5, at(2, 0)),
            (3, 6, at(2, 1)),
            (7, 5, at(4, 9)),
            (u32::MAX, 1, at(9, 0)),
        ];
        meta.commit(&Commit {
            manifest: &Manifest::default(),
            retired: &[],
            rows: &rows,
            dropped_segments: &[],
            dead: &[],
            forwards: None,
        })
        .unwrap();
        assert_eq!(meta.registry_spaces().unwrap(), [0, 3, 7, u32::MAX]);
        assert_eq!(meta.registry(3).unwrap(), [(5, at(2, 0)), (6, at(2, 1))]);
        assert_eq!(meta.registry(0).unwrap(), [(5, at(1, 0))]);
        assert_eq!(meta.location(7, 5).unwrap(), Some(at(4, 9)));
        assert_eq!(meta.location(7, 6).unwrap(), None);
        // Retiring an item in one space leaves the others' entry alone.
        meta.commit(&Commit {
            manifest: &Manifest::default(),
            retired: &[(3, 5, at(2, 0))],
            rows: &[],
            dropped_segments: &[],
            dead: &[],
            forwards: None,
        })
        .unwrap();
        assert_eq!(meta.location(3, 5).unwrap(), None);
        assert_eq!(meta.location(0, 5).unwrap(), Some(at(1, 0)));
        assert_eq!(meta.dead_rows().unwrap(), [at(2, 0)]);
    }
}
