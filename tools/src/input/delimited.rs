//! Reading CSV and TSV files through the `csv` crate (quoting, streaming):
//! the delimiter sniffed from the first line, a leading BOM dropped, blank
//! lines skipped, every record with the line it starts on, and a line that
//! is not UTF-8 a bad line rather than the end of the file.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;

use anyhow::Context as _;

use crate::input::BOM;

/// The first line that is not blank decides: tab-separated when it holds a
/// tab and no comma, comma-separated otherwise. A TSV read as CSV would be
/// one field per line (every line bad), so the choice must not be left to
/// the file's name.
fn sniff(line: &[u8]) -> u8 {
    if line.contains(&b'\t') && !line.contains(&b',') {
        b'\t'
    } else {
        b','
    }
}

/// Puts a space into every empty line. The csv reader skips an empty line
/// without counting it in the line number it gives the next record; a line
/// holding a space is a record (of one empty field, which
/// [`Delimited::next_line`] skips), so every record keeps its true line.
/// (Records end at `\n` alone, so a `\r` before it is a character the
/// fields' trimming removes, and a `\r\n` line is not empty.)
struct FillBlankLines<R> {
    inner: R,
    line_start: bool,
    /// A byte that did not fit the caller's buffer (only a 1-byte one).
    pending: Option<u8>,
    scratch: Vec<u8>,
}

impl<R: Read> Read for FillBlankLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(b) = self.pending.take() {
            buf[0] = b;
            return Ok(1);
        }
        // Each byte read becomes at most two.
        self.scratch.resize((buf.len() / 2).max(1), 0);
        let got = self.inner.read(&mut self.scratch)?;
        let mut n = 0;
        for &b in &self.scratch[..got] {
            if self.line_start && b == b'\n' {
                buf[n] = b' ';
                n += 1;
            }
            match buf.get_mut(n) {
                Some(slot) => {
                    *slot = b;
                    n += 1;
                }
                None => self.pending = Some(b),
            }
            self.line_start = b == b'\n';
        }
        Ok(n)
    }
}

type Input = FillBlankLines<std::io::Chain<Cursor<Vec<u8>>, BufReader<File>>>;

/// An open CSV or TSV file.
pub struct Delimited {
    reader: csv::Reader<Input>,
    record: csv::StringRecord,
    /// Blank lines dropped at the start, added to the reader's numbers.
    skipped: u64,
}

/// One record: the line it starts on and its fields (trimmed), or why the
/// line is bad.
pub type Line<'a> = (u64, Result<&'a csv::StringRecord, String>);

impl Delimited {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| path.display().to_string())?;
        let mut file = BufReader::new(file);
        // Blank lines before the first line that counts are dropped (the
        // csv reader would number the lines after them from 1), and that
        // line is read to sniff the delimiter and put back in front.
        let mut head = Vec::new();
        let mut skipped = 0;
        loop {
            head.clear();
            let read = file
                .read_until(b'\n', &mut head)
                .with_context(|| path.display().to_string())?;
            if skipped == 0 && head.starts_with(BOM) {
                head.drain(..BOM.len());
            }
            if read == 0 || !head.trim_ascii().is_empty() {
                break;
            }
            skipped += 1;
        }
        let delimiter = sniff(&head);
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .delimiter(delimiter)
            // `\r\n` would end a record at the `\r`, and the `\n` would be
            // counted in the next record's line only after its number was
            // taken.
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(FillBlankLines {
                inner: Cursor::new(head).chain(file),
                line_start: false,
                pending: None,
                scratch: Vec::new(),
            });
        Ok(Self {
            reader,
            record: csv::StringRecord::new(),
            skipped,
        })
    }

    /// The next record that is not blank, `None` at the end of the file;
    /// an I/O error ends the reading.
    pub fn next_line(&mut self) -> csv::Result<Option<Line<'_>>> {
        loop {
            match self.reader.read_record(&mut self.record) {
                Ok(false) => return Ok(None),
                Ok(true) if self.record.len() == 1 && self.record[0].is_empty() => continue,
                Ok(true) => {
                    let line = self.record.position().map_or(0, csv::Position::line) + self.skipped;
                    return Ok(Some((line, Ok(&self.record))));
                }
                Err(e) => match e.kind() {
                    csv::ErrorKind::Utf8 { pos, .. } => {
                        let line = pos.as_ref().map_or(0, csv::Position::line) + self.skipped;
                        return Ok(Some((line, Err("not valid UTF-8".into()))));
                    }
                    _ => return Err(e),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8]) -> Vec<(u64, Result<Vec<String>, String>)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, text).unwrap();
        let mut d = Delimited::open(&path).unwrap();
        let mut out = Vec::new();
        while let Some((n, r)) = d.next_line().unwrap() {
            out.push((n, r.map(|r| r.iter().map(String::from).collect())));
        }
        out
    }

    fn fields(v: &[&str]) -> Result<Vec<String>, String> {
        Ok(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn tabs_without_commas_make_a_tsv() {
        assert_eq!(sniff(b"1\t2\t3"), b'\t');
        assert_eq!(sniff(b"1,2\t3"), b',');
        assert_eq!(sniff(b"1,2,3"), b',');
        assert_eq!(
            lines(b"\xEF\xBB\xBF\nuser\titem\n 1 \t2\n\n   \n3\t\"a\tb\"\n"),
            vec![
                (2, fields(&["user", "item"])),
                (3, fields(&["1", "2"])),
                (6, fields(&["3", "a\tb"])),
            ]
        );
    }

    #[test]
    fn empty_lines_count_in_the_line_numbers() {
        assert_eq!(
            lines(b"1,2\n\n\r\n3,4\r\n\n\n5\n"),
            vec![(1, fields(&["1", "2"])), (4, fields(&["3", "4"])), (7, fields(&["5"]))]
        );
    }

    #[test]
    fn quoted_commas_and_bad_utf8_lines() {
        assert_eq!(
            lines(b"\xEF\xBB\xBF1,\"a,b\"\n2,\xff\n3,4"),
            vec![
                (1, fields(&["1", "a,b"])),
                (2, Err("not valid UTF-8".into())),
                (3, fields(&["3", "4"])),
            ]
        );
    }
}
