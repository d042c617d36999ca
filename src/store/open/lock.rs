//! The directory lock: one open `Store` per directory, across processes.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// How long a held lock is retried before the store is reported locked.
const FORK_GRACE: Duration = Duration::from_millis(250);

/// Holds an exclusive (or, read-only, a shared) `flock` on `<store>/LOCK`
/// until dropped. The lock is
/// per open file description, so a second open in the same process is
/// refused too; the kernel drops it when the process dies, even by `kill -9`.
pub(crate) struct DirLock {
    _file: Option<File>,
}

impl DirLock {
    pub fn acquire(store_dir: &Path) -> Result<Self> {
        let path = store_dir.join("LOCK");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at(&path)?;
        Self::hold(file, store_dir, &path, LockKind::Exclusive)
    }

    /// A shared lock for a read-only open: read-only opens coexist, a
    /// writer (in this or another process) excludes them and they exclude
    /// it. Writes nothing: a store without a `LOCK` file (never opened for
    /// writing since it was made, like a snapshot) is read unlocked.
    pub fn acquire_shared(store_dir: &Path) -> Result<Self> {
        let path = store_dir.join("LOCK");
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DirLock { _file: None }),
            Err(source) => return Err(Error::Io { path, source }),
        };
        Self::hold(file, store_dir, &path, LockKind::Shared)
    }

    fn hold(file: File, store_dir: &Path, path: &Path, kind: LockKind) -> Result<Self> {
        // A process that forks (to spawn a command) shares our open file
        // descriptions, and so the lock, until its child calls exec: a
        // momentary hold. Retry briefly before calling the store locked.
        let deadline = Instant::now() + FORK_GRACE;
        loop {
            let attempt = match kind {
                LockKind::Exclusive => file.try_lock(),
                LockKind::Shared => file.try_lock_shared(),
            };
            match attempt {
                Ok(()) => return Ok(DirLock { _file: Some(file) }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Locked {
                        path: PathBuf::from(store_dir),
                    })
                }
                Err(TryLockError::Error(source)) => {
                    return Err(Error::Io {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum LockKind {
    Exclusive,
    Shared,
}
