//! Recovery: reading the log back from a checkpoint.
//!
//! A bad frame is a *torn tail* when it is in the last file and no valid
//! frame follows it: a crash cut the final write short, the call that made it
//! never returned, and the file is truncated there. A bad frame with a valid
//! frame after it, or in a file that is not the last (files are fsynced whole
//! before the log moves on), is corruption and is reported with file and
//! offset, never skipped.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use super::frame::{self, Parsed};
use super::record::{self, Record};
use super::{file, Position};
use crate::error::{Error, IoContext, Result};

/// Where the valid log ends after replay.
#[derive(Debug)]
pub(crate) struct ReplayEnd {
    /// The last log file and the offset where its valid content ends.
    pub end: Position,
    /// A torn tail that was cut off: file and the offset it was cut at.
    pub truncated: Option<(PathBuf, u64)>,
    /// Bytes of log replayed.
    pub replayed_bytes: u64,
}

/// Replays every record from `from` onwards through `apply` (given the
/// position where the record starts), in log order.
/// Files wholly before `from` are obsolete and are removed.
pub(crate) fn replay(
    dir: &Path,
    from: Position,
    mut apply: impl FnMut(Position, Record) -> Result<()>,
) -> Result<ReplayEnd> {
    let mut files = file::list(dir)?;
    for (_, path) in files.iter().filter(|(no, _)| *no < from.file_no) {
        // A checkpoint that crashed before removing these leaves them behind.
        std::fs::remove_file(path).at(path)?;
    }
    files.retain(|(no, _)| *no >= from.file_no);

    let Some(&(first_no, _)) = files.first() else {
        if from.offset == file::HEADER_LEN as u64 {
            return Ok(ReplayEnd {
                end: from,
                truncated: None,
                replayed_bytes: 0,
            });
        }
        return Err(Error::Corruption {
            file: file::path_of(dir, from.file_no),
            offset: from.offset,
            reason: "the log file holding the checkpoint is missing".into(),
        });
    };
    if first_no != from.file_no {
        return Err(Error::Corruption {
            file: file::path_of(dir, from.file_no),
            offset: from.offset,
            reason: "the log file holding the checkpoint is missing".into(),
        });
    }

    let last_index = files.len() - 1;
    let mut end = from;
    let mut truncated = None;
    let mut replayed_bytes = 0;
    for (i, (no, path)) in files.iter().enumerate() {
        let expected_no = from.file_no + i as u64;
        if *no != expected_no {
            return Err(Error::Corruption {
                file: file::path_of(dir, expected_no),
                offset: 0,
                reason: "a log file in the middle of the log is missing".into(),
            });
        }
        let is_last = i == last_index;
        let bytes = std::fs::read(path).at(path)?;
        if is_last && bytes.len() <= file::HEADER_LEN && file::check_header(&bytes, *no, path).is_err() {
            // A crash while the file was being created: nothing was ever
            // written to it. Start it again.
            drop(file::create(dir, *no)?);
            end = Position {
                file_no: *no,
                offset: file::HEADER_LEN as u64,
            };
            break;
        }
        file::check_header(&bytes, *no, path)?;
        let mut offset = if *no == from.file_no {
            from.offset as usize
        } else {
            file::HEADER_LEN
        };
        if offset > bytes.len() {
            if !is_last {
                // The log moves on only after fsyncing a file whole.
                return Err(Error::Corruption {
                    file: path.clone(),
                    offset: offset as u64,
                    reason: format!("checkpoint lies beyond the end of the file ({} bytes)", bytes.len()),
                });
            }
            // The checkpoint was made durable before the log bytes it
            // follows (a power loss took the unsynced tail). Everything
            // before it is in durable state and nothing after it was
            // acknowledged, so the log goes on from the checkpoint: pad
            // the file to it (the padding is never read).
            cut_at(path, offset as u64)?;
            truncated = Some((path.clone(), bytes.len() as u64));
            end = Position {
                file_no: *no,
                offset: offset as u64,
            };
            break;
        }
        let start = offset;
        loop {
            match frame::parse_at(&bytes, offset) {
                Parsed::Frame { payload, next } => {
                    let record = record::decode(payload).map_err(|why| match why {
                        record::Undecodable::Newer(found) => Error::NewerFormat {
                            path: path.clone(),
                            found: found.into(),
                            supported: record::RECORD_VERSION.into(),
                        },
                        record::Undecodable::Malformed(reason) => Error::Corruption {
                            file: path.clone(),
                            offset: offset as u64,
                            reason,
                        },
                    })?;
                    apply(
                        Position {
                            file_no: *no,
                            offset: offset as u64,
                        },
                        record,
                    )?;
                    offset = next;
                }
                Parsed::End => break,
                Parsed::Bad { reason } => {
                    if !is_last || frame::next_valid_after(&bytes, offset).is_some() {
                        return Err(Error::Corruption {
                            file: path.clone(),
                            offset: offset as u64,
                            reason: reason.to_string(),
                        });
                    }
                    cut_at(path, offset as u64)?;
                    truncated = Some((path.clone(), offset as u64));
                    break;
                }
            }
        }
        replayed_bytes += (offset - start) as u64;
        end = Position {
            file_no: *no,
            offset: offset as u64,
        };
    }
    Ok(ReplayEnd {
        end,
        truncated,
        replayed_bytes,
    })
}

/// Sets the file's length durably (cuts a torn tail, or pads up to a
/// checkpoint).
fn cut_at(path: &Path, len: u64) -> Result<()> {
    let file = OpenOptions::new().write(true).open(path).at(path)?;
    file.set_len(len).at(path)?;
    file.sync_all().at(path)
}
