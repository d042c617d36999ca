//! Appending to the log, rotation, and group commit.
//!
//! Writers append under the store's write lock ([`WalWriter`] is owned by
//! it), then release that lock and wait for durability in [`SyncShared::sync_to`]
//! outside it. The first waiter fsyncs everything written so far; writers
//! that queued behind it find their bytes already covered and return without
//! an fsync of their own. That is the group commit: N concurrent writers
//! share far fewer than N fsyncs.
//!
//! A failed fsync (or write) poisons the log: the kernel may have dropped the
//! dirty pages, so nothing later can be promised durable. Every later write
//! fails with `Error::Poisoned` until the store is reopened, and recovery
//! reads back what actually reached the disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{file, Position};
use crate::error::{Error, IoContext, Result};
use crate::options::Durability;

/// Under `Durability::None`, bytes wait in memory until this many pile up.
const PENDING_LIMIT: usize = 1 << 20;

/// The state that waiters for durability share with the writer.
pub(crate) struct SyncShared {
    dir: PathBuf,
    /// The file being appended to, and how far bytes were handed to the OS.
    current: Mutex<(Arc<File>, Position)>,
    /// Everything before this position is on stable storage.
    synced: Mutex<Position>,
    poisoned: AtomicBool,
}

impl SyncShared {
    /// Returns once every byte before `target` is fsynced.
    pub fn sync_to(&self, target: Position) -> Result<()> {
        self.check_poison()?;
        let mut synced = self.synced.lock();
        if *synced >= target {
            return Ok(());
        }
        // Everything handed to the OS before this snapshot is covered by the
        // fsync below, including bytes of writers still queued on `synced`.
        let (file, written) = self.current.lock().clone();
        if let Err(source) = file.sync_data() {
            self.poisoned.store(true, Ordering::SeqCst);
            return Err(Error::Io {
                path: file::path_of(&self.dir, written.file_no),
                source,
            });
        }
        *synced = written.max(*synced);
        self.check_poison()
    }

    fn check_poison(&self) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    fn poison(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
    }
}

/// The appending end of the log.
pub(crate) struct WalWriter {
    dir: PathBuf,
    durability: Durability,
    file_limit: u64,
    file: Arc<File>,
    file_no: u64,
    /// Bytes of the current file handed to the OS.
    written: u64,
    /// Bytes not yet handed to the OS (`Durability::None` only).
    pending: Vec<u8>,
    shared: Arc<SyncShared>,
}

impl WalWriter {
    /// Continues log file `file_no`, whose valid content ends at `end`
    /// (recovery has already cut any torn tail). Creates the file if needed.
    pub fn open(
        dir: &Path,
        file_no: u64,
        end: u64,
        durability: Durability,
        file_limit: u64,
    ) -> Result<Self> {
        let path = file::path_of(dir, file_no);
        let file = if path.exists() {
            let f = OpenOptions::new().append(true).open(&path).at(&path)?;
            let len = f.metadata().at(&path)?.len();
            if len != end {
                return Err(Error::Corruption {
                    file: path,
                    offset: end,
                    reason: format!("log file is {len} bytes but its valid content ends at {end}"),
                });
            }
            f
        } else {
            file::create(dir, file_no)?
        };
        let end = end.max(file::HEADER_LEN as u64);
        let position = Position {
            file_no,
            offset: end,
        };
        let file = Arc::new(file);
        Ok(WalWriter {
            dir: dir.to_path_buf(),
            durability,
            file_limit,
            file: Arc::clone(&file),
            file_no,
            written: end,
            pending: Vec::new(),
            shared: Arc::new(SyncShared {
                dir: dir.to_path_buf(),
                current: Mutex::new((file, position)),
                synced: Mutex::new(position),
                poisoned: AtomicBool::new(false),
            }),
        })
    }

    /// What waiters for durability hold on to.
    pub fn shared(&self) -> Arc<SyncShared> {
        Arc::clone(&self.shared)
    }

    /// The position after the last appended byte.
    pub fn end(&self) -> Position {
        Position {
            file_no: self.file_no,
            offset: self.written + self.pending.len() as u64,
        }
    }

    /// Appends already framed bytes (one or more whole frames) and returns the
    /// positions where they start and end. Under `Sync` the caller then calls
    /// `sync_to(end)`.
    pub fn append(&mut self, frames: &[u8]) -> Result<(Position, Position)> {
        self.shared.check_poison()?;
        let end = self.end().offset;
        if end > file::HEADER_LEN as u64 && end + frames.len() as u64 > self.file_limit {
            self.rotate()?;
        }
        let start = self.end();
        match self.durability {
            Durability::None => {
                self.pending.extend_from_slice(frames);
                if self.pending.len() >= PENDING_LIMIT {
                    self.write_pending()?;
                }
            }
            Durability::Buffered | Durability::Sync => self.write_to_os(frames)?,
        }
        Ok((start, self.end()))
    }

    /// Hands buffered bytes to the OS (they then survive a process crash).
    pub fn write_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let result = self.write_to_os(&pending);
        self.pending = pending;
        self.pending.clear();
        result
    }

    fn write_to_os(&mut self, bytes: &[u8]) -> Result<()> {
        if let Err(source) = (&*self.file).write_all(bytes) {
            // A partial write leaves the file's tail unknown: poison.
            self.shared.poison();
            return Err(Error::Io {
                path: file::path_of(&self.dir, self.file_no),
                source,
            });
        }
        self.written += bytes.len() as u64;
        self.shared.current.lock().1 = Position {
            file_no: self.file_no,
            offset: self.written,
        };
        Ok(())
    }

    /// Makes the old file wholly durable, then moves on to a new one.
    fn rotate(&mut self) -> Result<()> {
        self.write_pending()?;
        let old_end = self.end();
        let old_path = file::path_of(&self.dir, self.file_no);
        if let Err(source) = self.file.sync_data() {
            self.shared.poison();
            return Err(Error::Io {
                path: old_path,
                source,
            });
        }
        let next_no = self.file_no + 1;
        self.file = Arc::new(file::create(&self.dir, next_no)?);
        self.file_no = next_no;
        self.written = file::HEADER_LEN as u64;
        let start = self.end();
        {
            let mut synced = self.shared.synced.lock();
            *synced = (*synced).max(old_end).max(start);
        }
        *self.shared.current.lock() = (Arc::clone(&self.file), start);
        Ok(())
    }

    /// Writes pending bytes and fsyncs: used by `flush` and at close.
    pub fn sync_all(&mut self) -> Result<()> {
        self.write_pending()?;
        self.shared.sync_to(self.end())
    }
}
