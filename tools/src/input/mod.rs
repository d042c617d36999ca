//! What the input readers share: how a bad line is kept and reported, and
//! how a piece of the input is echoed in a message.

pub mod delimited;
pub mod events;
pub mod fvecs;
pub mod items;
pub mod jsonl;
pub mod keyed;
pub mod users;
pub mod vectors;

use std::path::Path;

/// A bad line or vector: its number (from 1) and the reason.
pub type Bad = (u64, String);

/// Bad entries reported by their reasons: at most this many reasons are
/// kept (and shown), the rest only counted, so that an input of nothing
/// but bad lines costs no memory per line.
pub const SHOWN_BAD: usize = 20;

/// An input's bad entries: the first [`SHOWN_BAD`] with their reasons, and
/// how many there were in all.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BadLines {
    first: Vec<Bad>,
    total: u64,
}

impl BadLines {
    pub fn push(&mut self, bad: Bad) {
        self.total += 1;
        if self.first.len() < SHOWN_BAD {
            self.first.push(bad);
        }
    }

    /// How many entries were bad.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The first bad entries, with their reasons.
    pub fn first(&self) -> &[Bad] {
        &self.first
    }
}

impl BadLines {
    /// The first of `bad` (reasons kept elsewhere, as the library's import
    /// report keeps its first 1,000), out of `total` bad entries.
    pub fn counted(bad: Vec<Bad>, total: u64) -> Self {
        let mut out = BadLines::from(bad);
        out.total = out.total.max(total);
        out
    }
}

impl From<Vec<Bad>> for BadLines {
    fn from(all: Vec<Bad>) -> Self {
        let mut out = BadLines::default();
        for b in all {
            out.push(b);
        }
        out
    }
}

/// The UTF-8 byte order mark some editors put at the start of a text file.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How an error message shows a piece of the input (a field, a line, a
/// pair): quoted, and when longer than 80 characters cut to its first 80
/// (on a char boundary) with an ellipsis and the original length in bytes,
/// `"aaaa…" (10485760 bytes)`, so that one huge field cannot flood stderr.
pub fn shown(input: &str) -> String {
    const MAX_CHARS: usize = 80;
    match input.char_indices().nth(MAX_CHARS) {
        None => format!("{input:?}"),
        Some((cut, _)) => format!("{:?} ({} bytes)", format!("{}…", &input[..cut]), input.len()),
    }
}

/// The text without a leading UTF-8 byte order mark.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// "1 line", "2 lines": a count with its noun, singular for one.
pub fn count(n: u64, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// Lists the first [`SHOWN_BAD`] bad entries on stderr, then how many more
/// there are; `what` names an entry ("line", "vector").
pub fn report_bad(path: &Path, bad: &BadLines, what: &str) {
    for (n, reason) in bad.first() {
        eprintln!("{}: {what} {n}: {reason}", path.display());
    }
    let shown = bad.first().len() as u64;
    if bad.len() > shown {
        eprintln!(
            "{}: {}",
            path.display(),
            count(
                bad.len() - shown,
                &format!("more bad {what}"),
                &format!("more bad {what}s")
            )
        );
    }
}

/// Says on stderr that line `n` was taken as a header (column names), not
/// data.
pub fn report_header(path: &Path, n: u64) {
    eprintln!("{}: line {n}: skipped as a header (column names)", path.display());
}

/// A non-negative integer field; `what` names it in the error.
pub fn parse_id(field: &str, what: &str) -> Result<u64, String> {
    field
        .parse::<u64>()
        .map_err(|_| format!("{what} {} is not a non-negative integer", shown(field)))
}

/// An event's weight: a finite number.
pub fn parse_weight(w: &str) -> Result<f32, String> {
    let weight: f32 = w.parse().map_err(|_| format!("weight {} is not a number", shown(w)))?;
    if !weight.is_finite() {
        return Err(format!("weight {} is not finite", shown(w)));
    }
    if weight < 0.0 {
        return Err(format!("weight {} is negative", shown(w)));
    }
    Ok(weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_only_for_one() {
        assert_eq!(count(0, "line", "lines"), "0 lines");
        assert_eq!(count(1, "line", "lines"), "1 line");
        assert_eq!(count(2, "entry", "entries"), "2 entries");
    }

    #[test]
    fn only_the_shown_reasons_are_kept() {
        let mut bad = BadLines::default();
        for n in 0..100_000 {
            bad.push((n, format!("reason {n}")));
        }
        assert_eq!(bad.len(), 100_000);
        assert_eq!(bad.first().len(), SHOWN_BAD);
        assert_eq!(bad.first()[0], (0, "reason 0".to_string()));
    }

    #[test]
    fn long_input_is_cut_with_its_length() {
        assert_eq!(shown("ab"), "\"ab\"");
        let long = "x".repeat(81);
        assert_eq!(shown(&long), format!("\"{}…\" (81 bytes)", "x".repeat(80)));
    }
}
