//! Appending to the log, rotation, and group commit.
//!
//! Writers append under the store's write lock ([`WalWriter`] is owned by
//! it), then release that lock and wait for durability in [`SyncShared::sync_to`]
//! outside it. The first waiter becomes the leader and fsyncs everything
//! written so far; writers that arrive meanwhile park, and find their bytes
//! covered when the leader unparks them. That is the group commit: N
//! concurrent writers share far fewer than N fsyncs.
//!
//! A failed fsync (or write) poisons the log: the kernel may have dropped the
//! dirty pages, so nothing later can be promised durable. Every later write
//! fails with `Error::Poisoned` until the store is reopened, and recovery
//! reads back what actually reached the disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::tracked::{LogCatalog, TrackedFile, TrackedFiles};
use super::{file, Position};
use crate::durability::Durability;
use crate::error::{Error, IoContext, Result};
use crate::faults::{self, Op};

/// Under `Durability::None`, bytes wait in memory until this many pile up.
const PENDING_LIMIT: usize = 1 << 20;

/// The durable point of the log and whether an fsync is under way.
struct SyncState {
    /// Everything before this position is on stable storage.
    synced: Position,
    /// A leader is fsyncing; others wait for it instead of queueing fsyncs.
    leader_active: bool,
    /// Followers parked until the leader's fsync ends. The leader unparks
    /// them all at once (a condition variable would wake them one by one,
    /// each after the previous one released the lock).
    parked: Vec<std::thread::Thread>,
}

/// The state that waiters for durability share with the writer.
pub(crate) struct SyncShared {
    dir: PathBuf,
    /// The file being appended to, and how far bytes were handed to the OS.
    current: Mutex<(Arc<File>, Position)>,
    state: Mutex<SyncState>,
    poisoned: AtomicBool,
    fsyncs: AtomicU64,
    /// Writers between the start of a write call and their `sync_to`.
    in_flight: AtomicUsize,
    /// Writers inside `sync_to`.
    waiting: AtomicUsize,
    /// How many writers the last fsync covered.
    last_group: AtomicUsize,
}

/// Marks a writer as on its way to `sync_to` until dropped.
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The longest a leader waits for writers already on their way.
const GATHER_LIMIT: std::time::Duration = std::time::Duration::from_micros(200);
/// When the last fsync covered several writers (they are writing
/// concurrently), the leader also gives the ones it just released this long
/// to come back with their next write: PostgreSQL's `commit_delay` with
/// `commit_siblings`. A lone writer never waits.
const COMMIT_DELAY: std::time::Duration = std::time::Duration::from_micros(15);

impl SyncShared {
    /// Returns once every byte before `target` is fsynced.
    ///
    /// One waiter at a time becomes the leader and fsyncs everything handed
    /// to the OS so far; the others sleep until it is done and return at
    /// once if its fsync covered them, or elect the next leader if not.
    pub fn sync_to(&self, target: Position) -> Result<()> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let outcome = self.wait_for_sync(target);
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        outcome
    }

    fn wait_for_sync(&self, target: Position) -> Result<()> {
        let mut state = self.state.lock();
        loop {
            self.check_poison()?;
            if state.synced >= target {
                return Ok(());
            }
            if state.leader_active {
                state.parked.push(std::thread::current());
                drop(state);
                // A wake-up may be spurious or meant for an earlier wait:
                // the loop re-checks under the lock either way.
                std::thread::park();
                state = self.state.lock();
                continue;
            }
            state.leader_active = true;
            drop(state);
            // Let writers that are already appending get their bytes in, so
            // that this one fsync covers them too (a commit delay that only
            // applies when there is someone to wait for).
            let gather_start = std::time::Instant::now();
            let siblings = self.last_group.load(Ordering::Acquire) > 1;
            loop {
                let waited = gather_start.elapsed();
                let someone_writing = self.in_flight.load(Ordering::Acquire) > 0;
                if waited >= GATHER_LIMIT || !(someone_writing || (siblings && waited < COMMIT_DELAY)) {
                    break;
                }
                std::thread::yield_now();
            }
            // Everything handed to the OS before this snapshot is covered by
            // the fsync below, including the bytes of waiting followers.
            let group = self.waiting.load(Ordering::Acquire);
            let (file, written) = self.current.lock().clone();
            let outcome =
                faults::check(Op::Fsync, &file::path_of(&self.dir, written.file_no)).and_then(|()| file.sync_data());
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.last_group.store(group, Ordering::Release);
            state = self.state.lock();
            state.leader_active = false;
            if outcome.is_ok() {
                state.synced = state.synced.max(written);
            } else {
                self.poison();
            }
            let parked = std::mem::take(&mut state.parked);
            drop(state);
            for follower in parked {
                follower.unpark();
            }
            if let Err(source) = outcome {
                return Err(Error::Io {
                    path: file::path_of(&self.dir, written.file_no),
                    source,
                });
            }
            state = self.state.lock();
        }
    }

    /// Call at the start of a write that will wait in `sync_to`; drop the
    /// guard once the write's bytes are handed to the OS.
    pub fn begin_write(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(&self.in_flight)
    }

    /// fsyncs of the log since the store was opened.
    pub fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    fn check_poison(&self) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned { path: self.dir.clone() });
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
    /// The log files the metadata records, kept up to date at rotation.
    tracked: TrackedFiles,
    catalog: Arc<dyn LogCatalog>,
    /// Set (to the store's path) for a store opened read-only: every call
    /// that would write refuses with `Error::ReadOnly`.
    read_only: Option<PathBuf>,
}

/// The catalog of a read-only writer, which never records anything.
struct NoCatalog;

impl LogCatalog for NoCatalog {
    fn record(&self, _: &TrackedFiles) -> Result<()> {
        Ok(())
    }
}

impl WalWriter {
    /// Continues log file `file_no`, whose valid content ends at `end`
    /// (recovery has already cut any torn tail). Creates the file if needed,
    /// then records `tracked` (the files recovery found, `file_no` last and
    /// live) in `catalog` before anything is appended.
    pub fn open(
        dir: &Path,
        (file_no, end): (u64, u64),
        durability: Durability,
        file_limit: u64,
        catalog: Arc<dyn LogCatalog>,
        mut tracked: TrackedFiles,
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
        let position = Position { file_no, offset: end };
        tracked.files.retain(|f| f.file_no < file_no);
        tracked.files.push(TrackedFile {
            file_no,
            closed_len: None,
        });
        catalog.record(&tracked)?;
        Ok(Self::assemble(
            dir,
            Arc::new(file),
            position,
            durability,
            file_limit,
            catalog,
            tracked,
        ))
    }

    /// A writer for a store opened read-only, positioned at `end`, that
    /// refuses every write: it opens nothing for writing and records
    /// nothing (the log directory itself stands in for the file).
    pub fn read_only(store: &Path, dir: &Path, end: Position) -> Result<Self> {
        let file = Arc::new(File::open(dir).at(dir)?);
        let mut writer = Self::assemble(
            dir,
            file,
            end,
            Durability::None,
            u64::MAX,
            Arc::new(NoCatalog),
            TrackedFiles::default(),
        );
        writer.read_only = Some(store.to_path_buf());
        Ok(writer)
    }

    fn assemble(
        dir: &Path,
        file: Arc<File>,
        position: Position,
        durability: Durability,
        file_limit: u64,
        catalog: Arc<dyn LogCatalog>,
        tracked: TrackedFiles,
    ) -> Self {
        let (file_no, end) = (position.file_no, position.offset);
        WalWriter {
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
                state: Mutex::new(SyncState {
                    synced: position,
                    leader_active: false,
                    parked: Vec::new(),
                }),
                poisoned: AtomicBool::new(false),
                fsyncs: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                last_group: AtomicUsize::new(0),
            }),
            tracked,
            catalog,
            read_only: None,
        }
    }

    /// `Error::ReadOnly` if the store was opened read-only.
    pub fn refuse_if_read_only(&self) -> Result<()> {
        match &self.read_only {
            Some(path) => Err(Error::ReadOnly { path: path.clone() }),
            None => Ok(()),
        }
    }

    /// Forgets the files before a checkpoint at `checkpoint` (they are
    /// removed next); the metadata learns at the next rotation.
    pub fn forget_before(&mut self, checkpoint: Position) {
        self.tracked.forget_before(checkpoint);
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
        self.refuse_if_read_only()?;
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
        // (A read-only writer never has pending bytes.)
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
        let path = file::path_of(&self.dir, self.file_no);
        if let Err(source) = faults::check(Op::Write, &path).and_then(|()| (&*self.file).write_all(bytes)) {
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

    /// Moves on to a new file if the current one holds more than `bytes`, so
    /// that a checkpoint at the new file's start lets the old one be removed.
    pub fn rotate_if_above(&mut self, bytes: u64) -> Result<()> {
        self.refuse_if_read_only()?;
        if self.end().offset > bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Makes the old file wholly durable, then moves on to a new one.
    fn rotate(&mut self) -> Result<()> {
        self.write_pending()?;
        let old_end = self.end();
        let old_path = file::path_of(&self.dir, self.file_no);
        if let Err(source) = faults::check(Op::Fsync, &old_path).and_then(|()| self.file.sync_data()) {
            self.shared.poison();
            return Err(Error::Io { path: old_path, source });
        }
        let next_no = self.file_no + 1;
        // A log that cannot move on cannot take writes: poison, as RocksDB
        // stops writes when it cannot create a log file (the reopen that
        // clears it removes the half-made file, which holds no record).
        let next = match file::create(&self.dir, next_no) {
            Ok(next) => next,
            Err(e) => {
                self.shared.poison();
                return Err(e);
            }
        };
        // Recorded before anything is written to it: a recorded file that
        // goes missing, or a closed one that shrinks, is then corruption.
        let mut tracked = self.tracked.clone();
        tracked.rotate(self.file_no, old_end.offset, next_no);
        if let Err(e) = self.catalog.record(&tracked) {
            self.shared.poison();
            return Err(e);
        }
        self.tracked = tracked;
        self.file = Arc::new(next);
        self.file_no = next_no;
        self.written = file::HEADER_LEN as u64;
        let start = self.end();
        let parked = {
            let mut state = self.shared.state.lock();
            state.synced = state.synced.max(old_end).max(start);
            std::mem::take(&mut state.parked)
        };
        for follower in parked {
            follower.unpark();
        }
        *self.shared.current.lock() = (Arc::clone(&self.file), start);
        Ok(())
    }

    /// Refuses every later write (`Error::Poisoned`) until reopen: for a
    /// failure elsewhere (the metadata store) that leaves durable state
    /// unknown.
    pub fn poison(&self) {
        self.shared.poison();
    }

    /// Writes pending bytes and fsyncs: used by `flush` and at close.
    pub fn sync_all(&mut self) -> Result<()> {
        self.refuse_if_read_only()?;
        self.write_pending()?;
        self.shared.sync_to(self.end())
    }
}
