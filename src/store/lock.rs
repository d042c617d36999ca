//! The directory lock: one open `Store` per directory, across processes.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Holds an exclusive `flock` on `<store>/LOCK` until dropped. The lock is
/// per open file description, so a second open in the same process is
/// refused too; the kernel drops it when the process dies, even by `kill -9`.
pub(crate) struct DirLock {
    _file: File,
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
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
                path: PathBuf::from(store_dir),
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(Error::Io { path, source }),
        }
    }
}
