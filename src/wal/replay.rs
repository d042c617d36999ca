//! Recovery: reading the log back from a checkpoint.
//!
//! A bad frame is a *torn tail* when it is in the last file and no valid
//! frame follows it: a crash cut the final write short, the call that made it
//! never returned, and the file is truncated there. A bad frame with a valid
//! frame after it, or in a file that is not the last (files are fsynced whole
//! before the log moves on), is corruption and is reported with file and
//! offset, never skipped.
//!
//! Which files must be there, and how long the closed ones are, is checked
//! against the list the metadata keeps ([`super::tracked`]) before any
//! record is read: a lost or shortened log file is corruption, not a tail.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use super::frame::{self, Parsed};
use super::record::{self, Record};
use super::tracked::{TrackedFile, TrackedFiles};
use super::{file, Position};
use crate::error::{Error, IoContext, Result};
use crate::faults::{self, Op};

/// Where the valid log ends after replay.
#[derive(Debug)]
pub(crate) struct ReplayEnd {
    /// The last log file and the offset where its valid content ends.
    pub end: Position,
    /// A torn tail that was cut off: file and the offset it was cut at.
    pub truncated: Option<(PathBuf, u64)>,
    /// Bytes of log replayed.
    pub replayed_bytes: u64,
    /// The log files from the checkpoint's onwards, as the writer goes on
    /// with them (the last one live): what the metadata records next.
    pub files: TrackedFiles,
    /// Files after the live one that a crashed rotation left with nothing
    /// in them, removed (or, read-only, left alone).
    pub removed: Vec<PathBuf>,
}

/// Whether recovery may change the log's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayMode {
    /// Cut a torn tail, remove obsolete files and restart a file whose
    /// creation crashed: the writer goes on from the end.
    Recover,
    /// Read only: stop where recovery would cut, change nothing.
    ReadOnly,
}

/// Replays every record from `from` onwards through `apply` (given the
/// position where the record starts), in log order.
/// Files wholly before `from` are obsolete and are removed.
///
/// `tracked` is the metadata's list of log files, `None` for a store
/// written before the list existed (its files are taken as found). The
/// caller has run [`precheck`] (open does, before it removes anything),
/// which refuses missing and shortened recorded files.
pub(crate) fn replay(
    dir: &Path,
    from: Position,
    tracked: Option<&TrackedFiles>,
    mode: ReplayMode,
    mut apply: impl FnMut(Position, Record) -> Result<()>,
) -> Result<ReplayEnd> {
    let mut files = file::list(dir)?;
    if mode == ReplayMode::Recover {
        for (_, path) in files.iter().filter(|(no, _)| *no < from.file_no) {
            // A checkpoint that crashed before removing these leaves them behind.
            std::fs::remove_file(path).at(path)?;
        }
    }
    files.retain(|(no, _)| *no >= from.file_no);
    let removed = match tracked {
        Some(tracked) => take_unrecorded(dir, from, tracked, &mut files, mode)?,
        None => Vec::new(),
    };

    let Some(&(first_no, _)) = files.first() else {
        if from.offset == file::HEADER_LEN as u64 {
            return Ok(ReplayEnd {
                end: from,
                truncated: None,
                replayed_bytes: 0,
                files: TrackedFiles {
                    files: vec![TrackedFile {
                        file_no: from.file_no,
                        closed_len: None,
                    }],
                },
                removed,
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
    let mut seen = TrackedFiles::default();
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
        seen.files.push(TrackedFile {
            file_no: *no,
            closed_len: (!is_last).then_some(bytes.len() as u64),
        });
        if is_last && bytes.len() <= file::HEADER_LEN && file::check_header(&bytes, *no, path).is_err() {
            // A crash while the file was being created: nothing was ever
            // written to it. Start it again.
            if mode == ReplayMode::Recover {
                drop(file::create(dir, *no)?);
            }
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
            if mode == ReplayMode::Recover {
                cut_at(path, offset as u64)?;
            }
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
                    if mode == ReplayMode::Recover {
                        cut_at(path, offset as u64)?;
                    }
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
        files: seen,
        removed,
    })
}

/// Whether the log can be replayed from `from` at all (the checkpoint's
/// file is there, and the recorded files are whole), checked before open
/// removes anything: a metadata that went back in time (sled recovering an
/// older state) names fewer segment files, and those must not be removed
/// as leftovers when the log that would rebuild them is gone too.
pub(crate) fn precheck(dir: &Path, from: Position, tracked: Option<&TrackedFiles>) -> Result<()> {
    if let Some(problem) = tracked.and_then(|t| t.problems(dir, from).into_iter().next()) {
        return Err(problem);
    }
    let checkpoint_file = file::path_of(dir, from.file_no);
    if from != Position::origin() && !checkpoint_file.exists() {
        return Err(Error::Corruption {
            file: checkpoint_file,
            offset: from.offset,
            reason: "the log file holding the checkpoint is missing".into(),
        });
    }
    Ok(())
}

/// Takes out of `files` (the files found, from the checkpoint's onwards;
/// removing them, unless read-only) those after the metadata's live file
/// that a rotation created and crashed before recording, and returns them;
/// such a file holding records is corruption (see the table in
/// [`super::tracked`]; [`precheck`] did the recorded files).
fn take_unrecorded(
    dir: &Path,
    from: Position,
    tracked: &TrackedFiles,
    files: &mut Vec<(u64, PathBuf)>,
    mode: ReplayMode,
) -> Result<Vec<PathBuf>> {
    let Some(live) = tracked.live() else {
        return Ok(Vec::new());
    };
    // A checkpoint is only ever taken in a recorded file; should the list
    // lag behind it anyway, the checkpoint's file is not a stray.
    let live = live.max(from.file_no);
    let mut removed = Vec::new();
    let mut kept = Vec::with_capacity(files.len());
    for (no, path) in files.drain(..) {
        if no <= live {
            kept.push((no, path));
            continue;
        }
        let len = std::fs::metadata(&path).at(&path)?.len();
        if len > file::HEADER_LEN as u64 {
            return Err(Error::Corruption {
                file: path,
                offset: file::HEADER_LEN as u64,
                reason: format!(
                    "the log file holds records, but the metadata never recorded it (the live file is {live})"
                ),
            });
        }
        if mode == ReplayMode::Recover {
            std::fs::remove_file(&path).at(&path)?;
        }
        removed.push(path);
    }
    if !removed.is_empty() && mode == ReplayMode::Recover {
        crate::fsutil::sync_dir(dir)?;
    }
    *files = kept;
    Ok(removed)
}

/// Sets the file's length durably (cuts a torn tail, or pads up to a
/// checkpoint).
fn cut_at(path: &Path, len: u64) -> Result<()> {
    let file = OpenOptions::new().write(true).open(path).at(path)?;
    faults::check(Op::Write, path)
        .and_then(|()| file.set_len(len))
        .at(path)?;
    faults::check(Op::Fsync, path).and_then(|()| file.sync_all()).at(path)
}
