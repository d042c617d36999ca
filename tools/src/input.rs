//! What the input readers share: how a bad line is kept and reported, and
//! how a piece of the input is echoed in a message.

use std::path::Path;

/// A bad line or vector: its number (from 1) and the reason.
pub type Bad = (u64, String);

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

/// Lists the first 20 bad entries on stderr, then how many more there are;
/// `what` names an entry ("line", "vector").
pub fn report_bad(path: &Path, bad: &[Bad], what: &str) {
    for (n, reason) in bad.iter().take(20) {
        eprintln!("{}: {what} {n}: {reason}", path.display());
    }
    if bad.len() > 20 {
        eprintln!(
            "{}: {}",
            path.display(),
            count(
                bad.len() as u64 - 20,
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
    fn long_input_is_cut_with_its_length() {
        assert_eq!(shown("ab"), "\"ab\"");
        let long = "x".repeat(81);
        assert_eq!(shown(&long), format!("\"{}…\" (81 bytes)", "x".repeat(80)));
    }
}
