//! File-system steps that the durability promises rest on: a new file is
//! written under a temporary name, fsynced, renamed, and then the directory
//! that names it is fsynced, so after a crash either the old or the new file
//! exists, never a half-written one under the final name.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::faults::{self, Op};

/// Suffix of files being written; anything with it is garbage after a crash.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// fsyncs a directory so that creations, renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    faults::check(Op::Fsync, dir)
        .and_then(|()| File::open(dir))
        .and_then(|d| d.sync_all())
        .at(dir)
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
        faults::check(Op::Write, &tmp).at(&tmp)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, &file);
        fill(&mut out).at(&tmp)?;
        out.flush().at(&tmp)?;
    }
    faults::check(Op::Fsync, &tmp).and_then(|()| file.sync_all()).at(&tmp)?;
    drop(file);
    faults::check(Op::Rename, path)
        .and_then(|()| std::fs::rename(&tmp, path))
        .at(path)?;
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

/// Renames `from` to `to`, failing with `AlreadyExists` instead of replacing
/// whatever is at `to` (on Linux, `rename(2)` would silently replace an
/// empty directory or a file). Uses `renameat2(RENAME_NOREPLACE)`; where
/// the file system does not support it, falls back to a check and a plain
/// rename, which is race-free only against other emberdb calls made under
/// one of our exclusive temporary names.
pub(crate) fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    faults::check(Op::Rename, to)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL byte"))
        };
        let (old, new) = (c(from)?, c(to)?);
        // SAFETY: both pointers come from live, NUL-terminated CStrings that
        // outlive the call; renameat2 only reads them.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                old.as_ptr(),
                libc::AT_FDCWD,
                new.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOSYS) => {}
            _ => return Err(err),
        }
    }
    if to.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "the destination already exists",
        ));
    }
    std::fs::rename(from, to)
}

/// Creates a new, empty directory beside `dest` named
/// `<dest>.<purpose>-<pid>-<n>`, exclusively (`mkdir` fails if the name is
/// taken, and another name is tried), so that it is ours alone: two
/// processes writing the same destination never share, or delete, each
/// other's temporary directory, and nothing that existed before is touched.
pub(crate) fn create_unique_dir_beside(dest: &Path, purpose: &str) -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = dest.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut last = None;
    for _ in 0..64 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp = name.clone();
        tmp.push(format!(".{purpose}-{}-{nanos:09}-{n}", std::process::id()));
        let path = dest.with_file_name(tmp);
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some((path, e)),
            Err(e) => return Err(e).at(&path),
        }
    }
    let (path, e) = last.unwrap_or_else(|| (dest.to_path_buf(), std::io::Error::other("no name left")));
    Err(e).at(&path)
}

/// Removes the directories that [`create_unique_dir_beside`] made beside
/// `dest` for `purpose` in processes that no longer run: a copy that was
/// killed before it was moved into place. A directory of a process that
/// still runs (this one included: another thread may be copying) is left
/// alone, and so is one whose name does not parse. Returns what was
/// removed.
pub(crate) fn remove_dead_dirs_beside(dest: &Path, purpose: &str) -> Result<Vec<PathBuf>> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!("{name}.{purpose}-");
    let parent = parent_of(dest);
    let entries = match std::fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).at(parent),
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = entry_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if pid <= 0 || pid as u32 == std::process::id() || process_runs(pid) {
            continue;
        }
        let path = entry.path();
        std::fs::remove_dir_all(&path).at(&path)?;
        removed.push(path);
    }
    if !removed.is_empty() {
        sync_dir(parent)?;
    }
    Ok(removed)
}

/// Whether a process `pid` runs (or may: one we may not signal runs).
fn process_runs(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only checks that the
    // process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Whether `path` (which may not exist yet) lies inside `dir` (or is it),
/// both resolved as [`resolve`] does.
pub(crate) fn is_inside(path: &Path, dir: &Path) -> Result<bool> {
    Ok(resolve(path)?.starts_with(resolve(dir)?))
}

/// `path` made absolute with its symbolic links resolved, for a path that
/// may not exist yet: its nearest existing ancestor is resolved and the
/// rest appended (`..` in the rest is applied lexically).
pub(crate) fn resolve(path: &Path) -> Result<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().at(path)?.join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(base) = std::fs::canonicalize(existing) {
            let mut out = base;
            for part in rest.iter().rev() {
                match part {
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    std::path::Component::CurDir => {}
                    other => out.push(other),
                }
            }
            return Ok(out);
        }
        let mut components = existing.components();
        match components.next_back() {
            Some(last) => {
                rest.push(last);
                existing = components.as_path();
            }
            None => return Ok(absolute),
        }
    }
}
