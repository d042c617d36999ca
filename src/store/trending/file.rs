//! The trending counts' file, `runs/trending-<id:020>.cnt`: written at a
//! checkpoint when the counts changed, under an id from the list of runs,
//! which names it (`RunManifest::trending`) in the checkpoint's commit;
//! the file it replaces goes after the commit. sled held these counts
//! before (format 5), rewritten whole at every checkpoint, which made its
//! database grow by the record's size each time (2.1 GB after 100 M
//! events over a million items).
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..8 | magic | `EMBRTRND` |
//! | 8..12 | version u32 LE | 1 |
//! | 12..20 | body_len u64 LE | bytes after the header |
//! | 20..24 | body_crc u32 LE | crc32 of the body |
//! | 24..60 | zero | |
//! | 60..64 | header_crc u32 LE | crc32 of bytes 0..60 |
//! | 64.. | body | a `codec` envelope of `TrendingRecord` |

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::codec;
use crate::error::{IoContext, Result};
use crate::fsutil;
use crate::meta::records::TrendingRecord;

const MAGIC: &[u8; 8] = b"EMBRTRND";
const VERSION: u32 = 1;

pub(crate) fn file_name(id: u64) -> String {
    format!("trending-{id:020}.cnt")
}

/// The id in a trending file's name.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("trending-")?.strip_suffix(".cnt")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

pub(crate) fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(file_name(id))
}

/// Writes `record` as trending file `id` in `dir`, durably.
pub(crate) fn write(dir: &Path, id: u64, record: &TrendingRecord) -> Result<()> {
    std::fs::create_dir_all(dir).at(dir)?;
    let body = codec::encode(record, "the trending counts")?;
    let header = crate::stamp::body_header(MAGIC, VERSION, &body);
    fsutil::write_atomically_with(&path(dir, id), |out| {
        out.write_all(&header)?;
        out.write_all(&body)
    })
}

/// Reads and checks trending file `id` of `dir`.
pub(crate) fn read(dir: &Path, id: u64) -> Result<TrendingRecord> {
    let path = path(dir, id);
    let bytes = std::fs::read(&path).at(&path)?;
    let (_, body) = crate::stamp::checked_body(&bytes, MAGIC, VERSION, &path, "trending counts")?;
    codec::decode(body, &format!("the trending counts in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn round_trip_names_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let record = TrendingRecord {
            window: 100,
            applied_seq: 7,
            buckets: vec![(3, vec![(1, 2), (5, 9)])],
        };
        write(dir.path(), 4, &record).unwrap();
        assert_eq!(read(dir.path(), 4).unwrap(), record);
        assert_eq!(parse_name(&file_name(4)), Some(4));
        assert_eq!(parse_name("trending-4.cnt"), None);
        let p = path(dir.path(), 4);
        let mut bytes = std::fs::read(&p).unwrap();
        for at in [0, 13, 61, bytes.len() - 1] {
            bytes[at] ^= 1;
            std::fs::write(&p, &bytes).unwrap();
            assert!(
                matches!(
                    read(dir.path(), 4),
                    Err(Error::Corruption { .. } | Error::NewerFormat { .. })
                ),
                "{at}"
            );
            bytes[at] ^= 1;
        }
    }
}
