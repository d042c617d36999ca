//! The TEXMEX vector files (`.fvecs`, `.ivecs`) and the `.ids` file that
//! `ember` keeps beside an `.fvecs` (one id a line, FILE.fvecs.ids). Each
//! record is a little-endian i32 dimension followed by that many 4-byte
//! values (f32 or i32).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};

use crate::input::{shown, strip_bom};

/// The records of a TEXMEX file in order, each as its body bytes; the
/// first record that does not fit the file ends them with its reason
/// (only the last record of a cut-off file can be such).
struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<&'a [u8], String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let rest = &self.bytes[self.at..];
        // Whatever comes next, this one is the last record when it is bad.
        self.at = self.bytes.len();
        let Some((d, rest)) = rest.split_first_chunk::<4>() else {
            return Some(Err("truncated dimension".into()));
        };
        let d = i32::from_le_bytes(*d);
        let len = usize::try_from(d).unwrap_or(0);
        let Some(body) = rest.get(..4 * len).filter(|_| len > 0) else {
            return Some(Err(format!("dimension {d} does not fit the file")));
        };
        self.at = self.bytes.len() - rest.len() + body.len();
        Some(Ok(body))
    }
}

fn records(bytes: &[u8]) -> Records<'_> {
    Records { bytes, at: 0 }
}

fn words(body: &[u8]) -> impl Iterator<Item = [u8; 4]> + '_ {
    body.chunks_exact(4).map(|w| [w[0], w[1], w[2], w[3]])
}

fn read_bytes(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| path.display().to_string())
}

/// Every vector of an `.fvecs` file, each of its own dimension (ingest
/// checks them against the store), and the reason the last record is bad
/// when it is cut off.
pub fn read_rows(path: &Path) -> anyhow::Result<(Vec<Vec<f32>>, Option<String>)> {
    let bytes = read_bytes(path)?;
    let mut rows = Vec::new();
    for record in records(&bytes) {
        match record {
            Ok(body) => rows.push(words(body).map(f32::from_le_bytes).collect()),
            Err(reason) => return Ok((rows, Some(reason))),
        }
    }
    Ok((rows, None))
}

/// Every record of a benchmark file, all of one dimension: the dimension
/// and the values, flattened. Any bad record is an error.
fn read_uniform(path: &Path) -> anyhow::Result<(usize, Vec<[u8; 4]>)> {
    let bytes = read_bytes(path)?;
    let mut dim = None;
    let mut values = Vec::with_capacity(bytes.len() / 4);
    for (i, record) in records(&bytes).enumerate() {
        let body = record.map_err(|reason| anyhow!("{}: record {i}: {reason}", path.display()))?;
        let d = body.len() / 4;
        if *dim.get_or_insert(d) != d {
            bail!("{}: record {i} has another dimension", path.display());
        }
        values.extend(words(body));
    }
    let dim = dim.ok_or_else(|| anyhow!("{}: no records", path.display()))?;
    Ok((dim, values))
}

/// Vectors of a `.fvecs` file: the dimension and the rows, flattened.
pub fn read_fvecs(path: &Path) -> anyhow::Result<(usize, Vec<f32>)> {
    let (dim, words) = read_uniform(path)?;
    Ok((dim, words.into_iter().map(f32::from_le_bytes).collect()))
}

/// Rows of a `.ivecs` file.
pub fn read_ivecs(path: &Path) -> anyhow::Result<(usize, Vec<i32>)> {
    let (dim, words) = read_uniform(path)?;
    Ok((dim, words.into_iter().map(i32::from_le_bytes).collect()))
}

/// FILE.ids next to FILE (`x.fvecs` -> `x.fvecs.ids`), kept as an OS string
/// so a non-UTF-8 path is not mangled.
pub fn ids_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".ids");
    PathBuf::from(p)
}

/// The ids in FILE.ids, one per line; `None` only when there is no such
/// file (the ids are then the row numbers). A FILE.ids that exists but
/// cannot be read or is not UTF-8, or holds a line that is not an id, is an
/// error: never a silent fall back to row numbers.
pub fn read_ids(ids_path: &Path) -> anyhow::Result<Option<Vec<u64>>> {
    let text = match std::fs::read_to_string(ids_path) {
        Ok(text) => text,
        // A dangling symlink is NotFound too, but it is there: an error.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && ids_path.symlink_metadata().is_err() => {
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| ids_path.display().to_string()),
    };
    strip_bom(&text)
        .lines()
        .enumerate()
        .map(|(n, l)| {
            let l = l.trim();
            l.parse().map_err(|_| {
                anyhow!(
                    "{}: line {}: id {} is not a non-negative integer",
                    ids_path.display(),
                    n + 1,
                    shown(l)
                )
            })
        })
        .collect::<anyhow::Result<_>>()
        .map(Some)
}

/// Writes vectors to an `.fvecs` file and their ids to FILE.ids.
pub struct Writer {
    path: PathBuf,
    vectors: BufWriter<File>,
    ids_path: PathBuf,
    ids: BufWriter<File>,
    written: usize,
}

impl Writer {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let create = |p: &Path| {
            File::create(p)
                .map(BufWriter::new)
                .with_context(|| p.display().to_string())
        };
        let ids_path = ids_path(path);
        Ok(Self {
            vectors: create(path)?,
            ids: create(&ids_path)?,
            path: path.to_owned(),
            ids_path,
            written: 0,
        })
    }

    pub fn push(&mut self, id: u64, v: &[f32]) -> anyhow::Result<()> {
        let dim = i32::try_from(v.len()).context("a vector too long for .fvecs")?;
        let mut record = Vec::with_capacity(4 * (v.len() + 1));
        record.extend_from_slice(&dim.to_le_bytes());
        v.iter().for_each(|x| record.extend_from_slice(&x.to_le_bytes()));
        self.vectors
            .write_all(&record)
            .with_context(|| self.path.display().to_string())?;
        writeln!(self.ids, "{id}").with_context(|| self.ids_path.display().to_string())?;
        self.written += 1;
        Ok(())
    }

    /// Flushes both files; returns how many vectors were written.
    pub fn finish(mut self) -> anyhow::Result<usize> {
        self.vectors.flush().with_context(|| self.path.display().to_string())?;
        self.ids.flush().with_context(|| self.ids_path.display().to_string())?;
        Ok(self.written)
    }

    pub fn ids_path(&self) -> &Path {
        &self.ids_path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_vectors_read_back_and_a_cut_record_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.fvecs");
        let mut w = Writer::create(&path).unwrap();
        w.push(7, &[1.0, 2.0]).unwrap();
        w.push(9, &[3.0, 4.0]).unwrap();
        assert_eq!(w.finish().unwrap(), 2);
        assert_eq!(read_fvecs(&path).unwrap(), (2, vec![1.0, 2.0, 3.0, 4.0]));
        assert_eq!(read_ids(&ids_path(&path)).unwrap(), Some(vec![7, 9]));

        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 2);
        std::fs::write(&path, &bytes).unwrap();
        let (rows, bad) = read_rows(&path).unwrap();
        assert_eq!(rows, vec![vec![1.0, 2.0]]);
        assert_eq!(bad.as_deref(), Some("dimension 2 does not fit the file"));
        assert!(read_fvecs(&path).is_err());
        std::fs::write(&path, [1u8, 0]).unwrap();
        assert_eq!(read_rows(&path).unwrap().1.as_deref(), Some("truncated dimension"));
        assert_eq!(read_ids(&dir.path().join("none.ids")).unwrap(), None);
    }
}
