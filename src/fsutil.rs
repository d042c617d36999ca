//! File-system steps that the durability promises rest on: a new file is
//! written under a temporary name, fsynced, renamed, and then the directory
//! that names it is fsynced, so after a crash either the old or the new file
//! exists, never a half-written one under the final name.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// Suffix of files being written; anything with it is garbage after a crash.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// fsyncs a directory so that creations, renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Like [`write_atomically`], with the content produced by `fill`.
pub(crate) fn write_atomically_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = tmp_path(path);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .at(&tmp)?;
    {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, &file);
        fill(&mut out).at(&tmp)?;
        out.flush().at(&tmp)?;
    }
    file.sync_all().at(&tmp)?;
    drop(file);
    std::fs::rename(&tmp, path).at(path)?;
    sync_dir(parent_of(path))
}

/// The temporary name under which `path` is written.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Total size of the regular files below `dir`, recursively. Files that
/// vanish while it runs (a temporary file renamed, an old one removed) are
/// skipped: the store keeps working while stats are taken.
pub(crate) fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).at(&entry.path()),
        };
        if meta.is_dir() {
            total += dir_size(&entry.path())?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}
