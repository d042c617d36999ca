//! Run and trending files in `<store>/runs/` that no list of runs names:
//! what a crash between a file's rename and the commit that lists it
//! leaves, removed at open (listed only, in a read-only open).

use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::fsutil::{self, TMP_SUFFIX};
use crate::meta::records::RunManifest;
use crate::runs;

/// Removes the files of `dir` (the runs) that `live` does not name and
/// `keep` does not either (the `RECOVERY` copy's), and temporary files;
/// with no `live` list (an older store before its upgrade) every run file
/// is a leftover of an earlier attempt. With `list_only` (a read-only
/// open of the store's own runs) they are listed in `leftovers`, not
/// removed.
pub(crate) fn remove_orphan_runs(
    dir: &Path,
    live: Option<&RunManifest>,
    keep: &[String],
    list_only: bool,
    removed_files: &mut Vec<PathBuf>,
    leftovers: &mut Vec<PathBuf>,
) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).at(dir),
    };
    let named: std::collections::HashSet<String> = live
        .into_iter()
        .flat_map(|r| r.file_names())
        .chain(keep.iter().cloned())
        .collect();
    let mut removed = false;
    for entry in entries {
        let entry = entry.at(dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = runs::parse_name(&name).is_some() || crate::store::trending::file::parse_name(&name).is_some();
        let orphan = if ours {
            !named.contains(&name)
        } else {
            name.ends_with(TMP_SUFFIX)
        };
        if orphan && list_only {
            leftovers.push(entry.path());
        } else if orphan {
            std::fs::remove_file(entry.path()).at(&entry.path())?;
            removed_files.push(entry.path());
            removed = true;
        }
    }
    if removed {
        fsutil::sync_dir(dir)?;
    }
    Ok(())
}
