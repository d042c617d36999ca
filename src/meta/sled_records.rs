//! How each metadata record is kept in sled: the [`MetaStore`] interface
//! over [`SledMeta`]. Every call runs inside `SledMeta::read` or `write`,
//! which refuse after a failure and turn sled's panics into `Corruption`
//! naming the file; the string each passes names what was read, for that
//! error. Key layout: see `engine`.

use std::path::PathBuf;

use super::engine::Engine;
use super::engine::{
    dead_key, BLOCKED_KEY, CONFIG_KEY, DEAD_PREFIX, FORWARDS_KEY, MANIFEST_KEY, REGISTRY_PREFIX, RUNS_KEY, SPACES_KEY,
    SPACE_REGISTRY_PREFIX, TRENDING_KEY, WAL_FILES_KEY,
};
use super::records::{Manifest, ManifestV1, RunManifest, StoredConfig, StoredSpace, TrendingRecord, UserHistory};
use super::sled_meta::{db_dir, list_generations, SledMeta};
use super::{Commit, MetaStore, UserFeaturePairs};
use crate::codec;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::segment::Location;
use crate::wal::tracked::TrackedFiles;

impl MetaStore for SledMeta {
    fn load_legacy_features(&self) -> Result<Vec<UserFeaturePairs>> {
        self.read("the user features", |db| {
            load_pairs(db, &db.features, "features of user")
        })
    }

    fn load_legacy_attributes(&self) -> Result<Vec<UserFeaturePairs>> {
        self.read("the item attributes", |db| {
            load_pairs(db, &db.attributes, "attributes of item")
        })
    }

    fn load_runs(&self) -> Result<Option<RunManifest>> {
        self.read("the list of run files", |db| {
            db.get_record(&db.catalog, RUNS_KEY, "runs")
        })
    }

    fn save_runs(&self, runs: &RunManifest) -> Result<()> {
        self.write("the list of run files", |db| {
            db.catalog
                .insert(RUNS_KEY, codec::encode(runs, "runs")?)
                .map(|_| ())
                .map_err(|e| db.err(e))
        })
    }

    fn scratch_dir(&self) -> Option<PathBuf> {
        self.scratch.clone()
    }

    fn drop_legacy_behaviour(&self) -> Result<u64> {
        self.write("the histories, features and attributes of an older store", |db| {
            let mut dropped = 0;
            if db.catalog.remove(TRENDING_KEY).map_err(|e| db.err(e))?.is_some() {
                dropped += 1;
            }
            for tree in [&db.histories, &db.features, &db.attributes] {
                loop {
                    // Batches of bounded size: a tree can hold millions.
                    let mut batch = sled::Batch::default();
                    let mut n = 0u64;
                    for entry in tree.iter().take(100_000) {
                        let (key, _) = entry.map_err(|e| db.err(e))?;
                        batch.remove(key);
                        n += 1;
                    }
                    if n == 0 {
                        break;
                    }
                    tree.apply_batch(batch).map_err(|e| db.err(e))?;
                    dropped += n;
                }
            }
            Ok(dropped)
        })
    }

    fn load_trending(&self) -> Result<Option<TrendingRecord>> {
        self.read("the recent-popularity counts", |db| {
            db.get_record(&db.catalog, TRENDING_KEY, "trending")
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

    fn save_layout(
        &self,
        config: &StoredConfig,
        spaces: &[StoredSpace],
        manifest: &Manifest,
        runs: Option<&RunManifest>,
    ) -> Result<()> {
        self.write("the configuration", |db| {
            let mut batch = sled::Batch::default();
            if let Some(runs) = runs {
                batch.insert(RUNS_KEY, codec::encode(runs, "runs")?);
            }
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
                dropped_segments,
                dead,
                runs,
            } = *c;
            let mut batch = sled::Batch::default();
            for (_, _, at) in retired {
                batch.insert(&dead_key(*at)[..], &[][..]);
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
            batch.insert(RUNS_KEY, codec::encode(runs, "runs")?);
            batch.insert(RUNS_KEY, codec::encode(runs, "runs")?);
            db.catalog.apply_batch(batch).map_err(|e| db.err(e))
        })
    }

    fn drop_legacy_locations(&self) -> Result<u64> {
        self.write("the registry of an older store", |db| {
            let mut dropped = 0;
            if db.catalog.remove(FORWARDS_KEY).map_err(|e| db.err(e))?.is_some() {
                dropped += 1;
            }
            for prefix in [REGISTRY_PREFIX, SPACE_REGISTRY_PREFIX] {
                loop {
                    // Batches of bounded size: a registry can hold millions.
                    let mut batch = sled::Batch::default();
                    let mut n = 0u64;
                    for entry in db.catalog.scan_prefix([prefix]).take(100_000) {
                        let (key, _) = entry.map_err(|e| db.err(e))?;
                        batch.remove(key);
                        n += 1;
                    }
                    if n == 0 {
                        break;
                    }
                    db.catalog.apply_batch(batch).map_err(|e| db.err(e))?;
                    dropped += n;
                }
            }
            Ok(dropped)
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

    fn for_each_legacy_history(&self, f: &mut dyn FnMut(u64, UserHistory) -> Result<()>) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::records::Manifest;
    use crate::meta::Commit;

    #[test]
    fn an_older_stores_registry_is_dropped_and_retirements_record_dead_rows() {
        let dir = tempfile::tempdir().unwrap();
        let meta = SledMeta::open(&dir.path().join("meta"), false, 1 << 20).unwrap();
        let at = |segment, row| Location { segment, row };
        // Registry entries and forwards as format-4 stores wrote them,
        // among other catalog records that must stay.
        meta.write("test", |db| {
            db.catalog.insert(FORWARDS_KEY, &b"x"[..]).unwrap();
            for (space, id) in [(0u32, 5u64), (3, 5), (3, 6), (u32::MAX, 1)] {
                db.catalog
                    .insert(super::super::engine::registry_key(space, id), &b"x"[..])
                    .unwrap();
            }
            Ok(())
        })
        .unwrap();
        meta.commit(&Commit {
            manifest: &Manifest::default(),
            retired: &[(3, 5, at(2, 0))],
            dropped_segments: &[],
            dead: &[at(4, 1)],
            runs: &RunManifest::empty(1),
        })
        .unwrap();
        meta.save_runs(&RunManifest::empty(1)).unwrap();
        assert_eq!(meta.drop_legacy_locations().unwrap(), 5);
        assert!(
            meta.load_runs().unwrap().is_some(),
            "the list of runs is not a registry entry"
        );
        assert_eq!(meta.drop_legacy_locations().unwrap(), 0);
        assert_eq!(meta.dead_rows().unwrap(), [at(2, 0), at(4, 1)]);
        assert!(meta.load_manifest().unwrap().is_some());
    }
}
