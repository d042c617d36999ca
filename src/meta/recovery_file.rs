//! `RECOVERY`, at the store's root: a copy of the catalog records that the
//! store cannot rebuild from its other files, so that `Store::repair` can
//! make new metadata when sled's database is lost or damaged.
//!
//! It holds the configuration, the spaces, the manifest (each space's
//! segments, growing snapshot and trainer file; the checkpoint; the next
//! sequence number), the forwarding table (empty since format 5), the
//! deleted items and the dead rows of sealed segments, as of the last
//! checkpoint. Where each item lives is the segments' own business (their
//! id orders). Version 2 also names the run files (format 6) that hold the
//! user histories, user features and item attributes, and the sequence
//! number they hold behaviour through, so repair loses none of it: what is
//! not in a run is in the log after the checkpoint. A version-1 copy (a
//! format-5 store) names no runs; repair of such a store rebuilds behaviour
//! from the log after the checkpoint only, and reports the rest as lost.
//!
//! It is written (atomically: temporary file, fsync, rename, directory
//! fsync) after every checkpoint's metadata flush and before the files
//! that checkpoint made obsolete are removed, and at every open for
//! writing once the layout is saved. So it never names a file that is
//! gone: a crash between the flush and this write leaves the previous
//! copy, whose files are still there until the next open rewrites it.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..8 | magic | `EMBRECOV` |
//! | 8..12 | version u32 LE | 2 (1: no runs) |
//! | 12..20 | body_len u64 LE | bytes after the header |
//! | 20..24 | body_crc u32 LE | crc32 of the body |
//! | 24..60 | zero | |
//! | 60..64 | header_crc u32 LE | crc32 of bytes 0..60 |
//! | 64.. | body | a `codec` envelope of [`RecoveryRecord`] (version 1: of its shape without `runs`) |

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::records::{Forward, Manifest, RunManifest, StoredConfig, StoredSpace};
use super::MetaStore;
use crate::codec;
use crate::error::{IoContext, Result};
use crate::fsutil;
use crate::segment::Location;

const MAGIC: &[u8; 8] = b"EMBRECOV";
const VERSION: u32 = 2;
pub(crate) const FILE_NAME: &str = "RECOVERY";

/// What the file holds (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RecoveryRecord {
    pub config: StoredConfig,
    pub spaces: Vec<StoredSpace>,
    pub manifest: Manifest,
    /// Always empty since format 5 (see [`Forward`]).
    pub forwards: Vec<Forward>,
    pub blocked: Vec<u64>,
    pub dead: Vec<Location>,
    /// The run files, for a format-6 store.
    pub runs: Option<RunManifest>,
}

/// Version 1's record: the same without runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RecoveryRecordV1 {
    config: StoredConfig,
    spaces: Vec<StoredSpace>,
    manifest: Manifest,
    forwards: Vec<Forward>,
    blocked: Vec<u64>,
    dead: Vec<Location>,
}

pub(crate) fn path(store: &Path) -> PathBuf {
    store.join(FILE_NAME)
}

/// Copies the metadata's current catalog records into `store`'s
/// `RECOVERY` file. A store not created yet, or of format 1 before its
/// upgrade (whose manifest has another shape), writes nothing.
pub(crate) fn write_from(store: &Path, meta: &dyn MetaStore) -> Result<()> {
    let (Some(config), Some(spaces)) = (meta.load_config()?, meta.load_spaces()?) else {
        return Ok(());
    };
    let Some(manifest) = meta.load_manifest()? else {
        return Ok(());
    };
    let record = RecoveryRecord {
        config,
        spaces,
        manifest,
        forwards: Vec::new(),
        blocked: meta.load_blocked()?,
        dead: meta.dead_rows()?,
        runs: meta.load_runs()?,
    };
    let body = codec::encode(&record, "the recovery record")?;
    let header = crate::stamp::body_header(MAGIC, VERSION, &body);
    fsutil::write_atomically_with(&path(store), |out| {
        out.write_all(&header)?;
        out.write_all(&body)
    })
}

/// Reads and checks `store`'s `RECOVERY` file; None if there is none.
pub(crate) fn read(store: &Path) -> Result<Option<RecoveryRecord>> {
    let path = path(store);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(&path),
    };
    decode(&bytes, &path).map(Some)
}

/// Decodes a recovery file's bytes (`path` names it in errors).
pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<RecoveryRecord> {
    let (header, body) = crate::stamp::checked_body(bytes, MAGIC, VERSION, path, "recovery file")?;
    let what = format!("the recovery record in {}", path.display());
    if header.u32(8) == 1 {
        let v1: RecoveryRecordV1 = codec::decode(body, &what)?;
        return Ok(RecoveryRecord {
            config: v1.config,
            spaces: v1.spaces,
            manifest: v1.manifest,
            forwards: v1.forwards,
            blocked: v1.blocked,
            dead: v1.dead,
            runs: None,
        });
    }
    codec::decode(body, &what)
}
