//! Which log files exist, as the metadata remembers them (RocksDB's
//! `track_and_verify_wals_in_manifest`).
//!
//! Without this list, a deleted log file, or one truncated to 0 bytes or to
//! half, looks exactly like a log that was never longer or a torn tail, and
//! acknowledged writes vanish silently. So every log file is recorded in the
//! metadata (durably, before anything is written to it), and its final
//! length is recorded when the log moves on to the next file. At open and in
//! `verify`:
//!
//! | found on disk | meaning |
//! |---|---|
//! | a recorded file at or after the checkpoint is missing | `Corruption` |
//! | a closed file shorter or longer than its recorded length | `Corruption` |
//! | the live file (the highest recorded) shorter than its header | `Corruption` (the header was fsynced before it was recorded) |
//! | the live file's tail does not parse | a torn tail: cut, as before |
//! | a file after the live one holding only its header (or less) | a rotation that crashed before recording it: removed |
//! | a file after the live one holding records | `Corruption` (nothing is written to a file before it is recorded) |
//!
//! Only the live file's tail may be cut as torn. A store written before this
//! list existed has none: its files are adopted as found, once, at open.

use serde::{Deserialize, Serialize};

use std::path::Path;

use super::{file, Position};
use crate::error::{Error, Result};

/// One log file the store created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TrackedFile {
    pub file_no: u64,
    /// The file's length when the log moved on from it; `None` for the
    /// live file, the only one that is still appended to.
    pub closed_len: Option<u64>,
}

/// The log files from the last checkpoint's file onwards, ascending; the
/// last one is live. Stored under the metadata key `b"wal_files"` as a
/// [`crate::codec`] envelope (magic, version, crc32).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TrackedFiles {
    pub files: Vec<TrackedFile>,
}

impl TrackedFiles {
    /// The live file's number, if any file is recorded.
    pub fn live(&self) -> Option<u64> {
        self.files.last().map(|f| f.file_no)
    }

    /// Records that the live file ended at `len` bytes and `next` is live.
    pub fn rotate(&mut self, closed: u64, len: u64, next: u64) {
        match self.files.iter_mut().find(|f| f.file_no == closed) {
            Some(f) => f.closed_len = Some(len),
            None => self.files.push(TrackedFile {
                file_no: closed,
                closed_len: Some(len),
            }),
        }
        self.files.push(TrackedFile {
            file_no: next,
            closed_len: None,
        });
        self.files.sort_by_key(|f| f.file_no);
    }

    /// What is wrong with the recorded files from the checkpoint at `from`
    /// onwards, as found in `dir`: missing files, closed files whose length
    /// changed, a live file shorter than its header. Empty when healthy.
    pub fn problems(&self, dir: &Path, from: Position) -> Vec<Error> {
        let mut out = Vec::new();
        for entry in self.files.iter().filter(|f| f.file_no >= from.file_no) {
            let path = file::path_of(dir, entry.file_no);
            let corrupt = |offset: u64, reason: String| Error::Corruption {
                file: path.clone(),
                offset,
                reason,
            };
            let Ok(len) = std::fs::metadata(&path).map(|m| m.len()) else {
                out.push(corrupt(
                    0,
                    "the log file is missing, but the metadata recorded it: acknowledged writes in it are lost".into(),
                ));
                continue;
            };
            match entry.closed_len {
                Some(closed) if closed != len => out.push(corrupt(
                    len.min(closed),
                    format!(
                        "the log file is {len} bytes, but it was {closed} bytes when the log moved on from it \
                         (only the live file may end in a torn write)"
                    ),
                )),
                None if len < file::HEADER_LEN as u64 => out.push(corrupt(
                    len,
                    format!(
                        "the live log file is {len} bytes, shorter than its header, which was durable before \
                         the file was recorded"
                    ),
                )),
                _ => {}
            }
        }
        out
    }

    /// Drops the files wholly before a checkpoint at `checkpoint`: they are
    /// (or are about to be) removed, and nothing reads them again.
    pub fn forget_before(&mut self, checkpoint: Position) {
        self.files.retain(|f| f.file_no >= checkpoint.file_no);
    }
}

/// Where the writer records the list: the metadata, durably (written and
/// flushed) before the call returns.
pub(crate) trait LogCatalog: Send + Sync {
    fn record(&self, files: &TrackedFiles) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_closes_the_live_file_and_adds_the_next() {
        let mut t = TrackedFiles {
            files: vec![TrackedFile {
                file_no: 3,
                closed_len: None,
            }],
        };
        t.rotate(3, 4096, 4);
        assert_eq!(t.live(), Some(4));
        assert_eq!(
            t.files,
            vec![
                TrackedFile {
                    file_no: 3,
                    closed_len: Some(4096)
                },
                TrackedFile {
                    file_no: 4,
                    closed_len: None
                }
            ]
        );
        t.forget_before(Position { file_no: 4, offset: 32 });
        assert_eq!(t.files.len(), 1);
        assert_eq!(t.live(), Some(4));
    }

    #[test]
    fn a_rotation_from_an_unrecorded_file_records_both() {
        let mut t = TrackedFiles::default();
        t.rotate(0, 100, 1);
        assert_eq!(
            t.files,
            vec![
                TrackedFile {
                    file_no: 0,
                    closed_len: Some(100)
                },
                TrackedFile {
                    file_no: 1,
                    closed_len: None
                }
            ]
        );
    }
}
