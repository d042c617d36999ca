//! The write-ahead log: the log of record. Every event, upsert and delete is
//! framed, appended and (under `Durability::Sync`) fsynced before it is
//! applied anywhere else; recovery replays it from the last checkpoint.
//!
//! The log is a sequence of files `wal-<file_no>.log` in `wal/`, each a
//! [`file`] header followed by [`frame`]s whose payloads are [`record`]s.

pub(crate) mod file;
pub(crate) mod frame;
pub(crate) mod record;
pub(crate) mod replay;
pub(crate) mod tracked;
pub(crate) mod writer;

use serde::{Deserialize, Serialize};

/// A place in the log: a file and a byte offset in it. Ordered by file, then
/// offset, which is the order records were written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct Position {
    pub file_no: u64,
    pub offset: u64,
}

impl Position {
    /// The start of the log: the first frame of file 0.
    pub fn origin() -> Self {
        Position {
            file_no: 0,
            offset: file::HEADER_LEN as u64,
        }
    }
}
