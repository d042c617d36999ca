//! WAL file naming and the per-file header.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..8 | magic | `b"EMBERWAL"` |
//! | 8..12 | version u32 LE | [`WAL_VERSION`] |
//! | 12..20 | file_no u64 LE | must match the file name |
//! | 20..28 | reserved | zero |
//! | 28..32 | crc u32 LE | crc32 of bytes 0..28 |

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::faults::{self, Op};
use crate::fsutil;

pub(crate) const MAGIC: &[u8; 8] = b"EMBERWAL";
pub(crate) const WAL_VERSION: u32 = 1;
pub(crate) const HEADER_LEN: usize = 32;

/// The path of log file `file_no` in `dir`.
pub(crate) fn path_of(dir: &Path, file_no: u64) -> PathBuf {
    dir.join(format!("wal-{file_no:020}.log"))
}

/// The file number encoded in a log file name, if it is one.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?.strip_suffix(".log")?.parse().ok()
}

/// The log files in `dir`, ordered by number.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if let Some(no) = entry.file_name().to_str().and_then(parse_name) {
            files.push((no, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

pub(crate) fn encode_header(file_no: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&WAL_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&file_no.to_le_bytes());
    let crc = crc32fast::hash(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks the header of `bytes`, the content of log file `file_no` at `path`.
pub(crate) fn check_header(bytes: &[u8], file_no: u64, path: &Path) -> Result<()> {
    let corrupt = |reason: &str| Error::Corruption {
        file: path.to_path_buf(),
        offset: 0,
        reason: reason.to_string(),
    };
    if bytes.len() < HEADER_LEN {
        return Err(corrupt("file is shorter than the WAL header"));
    }
    if &bytes[0..8] != MAGIC {
        return Err(corrupt("bad magic: not an emberdb WAL file"));
    }
    let crc = u32::from_le_bytes([bytes[28], bytes[29], bytes[30], bytes[31]]);
    if crc32fast::hash(&bytes[0..28]) != crc {
        return Err(corrupt("WAL header checksum mismatch"));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version > WAL_VERSION {
        return Err(Error::NewerFormat {
            path: path.to_path_buf(),
            found: version,
            supported: WAL_VERSION,
        });
    }
    let stored_no = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or([0xff; 8]));
    if stored_no != file_no {
        return Err(corrupt("WAL header names another file number"));
    }
    Ok(())
}

/// Creates log file `file_no` with its header, durable (file and directory
/// fsynced) before it is returned, opened for appending.
pub(crate) fn create(dir: &Path, file_no: u64) -> Result<File> {
    let path = path_of(dir, file_no);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .at(&path)?;
    faults::check(Op::Write, &path)
        .and_then(|()| file.write_all(&encode_header(file_no)))
        .at(&path)?;
    faults::check(Op::Fsync, &path)
        .and_then(|()| file.sync_all())
        .at(&path)?;
    fsutil::sync_dir(dir)?;
    Ok(file)
}
