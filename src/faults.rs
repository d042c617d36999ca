//! Injected I/O failures, for tests (not a public API: hidden from the
//! documentation).
//!
//! Every file operation of the storage layer that a durability promise rests
//! on (a write, an fsync of a file or directory, a rename, an mmap) calls
//! [`check`] first, naming the kind of operation and the path. Disarmed (the
//! normal state), that is one relaxed atomic load. Armed with a [`Plan`], the
//! operations are counted from the arming and the `fail_at`-th fails with
//! the plan's errno (EIO or ENOSPC), as if the kernel had said so; the
//! operation is not performed. `tests/fault_injection.rs` runs a workload
//! once to count its operations, then once per operation with that one
//! failing (SQLite's I/O error tests, RocksDB's fault-injection env).
//!
//! The counter is process-wide: a test that arms it must be the only one
//! doing store I/O in its process (one `#[test]` in its own binary), with
//! background work (indexing, training policies) off. sled's own I/O does
//! not come through here; `tests/disk_full.rs` fills a real tmpfs under it.

// Without the `test-hooks` feature only `check` is reachable: it stays
// one relaxed load of a flag nothing can set.
#![cfg_attr(not(feature = "test-hooks"), allow(dead_code))]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use parking_lot::Mutex;

/// The kind of an operation that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Write,
    Fsync,
    Rename,
    Mmap,
}

/// Which operation fails, and how.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The 1-based number of the operation (counted from `arm`) that
    /// fails; `u64::MAX` only counts.
    pub fail_at: u64,
    /// The errno it fails with (`libc`'s `EIO` 5, `ENOSPC` 28).
    pub errno: i32,
}

pub const EIO: i32 = 5;
pub const ENOSPC: i32 = 28;

static ARMED: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU64 = AtomicU64::new(0);
static FAIL_AT: AtomicU64 = AtomicU64::new(u64::MAX);
static ERRNO: AtomicI32 = AtomicI32::new(EIO);
static FIRED: Mutex<Option<(Op, PathBuf)>> = Mutex::new(None);

/// Starts counting operations from zero, failing as `plan` says.
pub fn arm(plan: Plan) {
    COUNT.store(0, Ordering::SeqCst);
    FAIL_AT.store(plan.fail_at, Ordering::SeqCst);
    ERRNO.store(plan.errno, Ordering::SeqCst);
    *FIRED.lock() = None;
    ARMED.store(true, Ordering::SeqCst);
}

/// Stops failing and counting; returns the operations counted.
pub fn disarm() -> u64 {
    ARMED.store(false, Ordering::SeqCst);
    COUNT.load(Ordering::SeqCst)
}

/// The operation that was made to fail since `arm`, if one was.
pub fn fired() -> Option<(Op, PathBuf)> {
    FIRED.lock().clone()
}

/// Called before each operation: `Err` if this is the one to fail.
pub(crate) fn check(op: Op, path: &Path) -> std::io::Result<()> {
    if !ARMED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if n == FAIL_AT.load(Ordering::SeqCst) {
        *FIRED.lock() = Some((op, path.to_path_buf()));
        return Err(std::io::Error::from_raw_os_error(ERRNO.load(Ordering::SeqCst)));
    }
    Ok(())
}
