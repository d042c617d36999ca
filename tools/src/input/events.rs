//! Events from a CSV or TSV file, for `ember ingest` and `ember eval`:
//! `user_id,item_id,timestamp[,weight]` or MovieLens's
//! `user_id,item_id,rating,timestamp`, a first line of column names taken
//! as a header (by its names, never because a field fails to parse), bad
//! lines kept with their numbers.

use std::path::Path;

use anyhow::Context as _;
use emberdb::Event;

use crate::input::delimited::Delimited;
use crate::input::{parse_id, parse_weight, report_header, BadLines};

/// Which columns the data lines hold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layout {
    /// `user_id,item_id,timestamp[,weight]`, or MovieLens's columns when
    /// the header's third column is `rating` (`ember ingest`).
    Detect,
    /// MovieLens's `user_id,item_id,rating,timestamp` whatever the header
    /// says (`ember eval`); the rating is not read.
    MovieLens,
}

/// A column name in a header: a field that is an ASCII letter or `_`
/// followed by ASCII letters, digits, `_`, `-` or `.`; returned lowercased
/// without `_` and `-` (`userId`, `user_id` and `USER-ID` are all
/// `userid`). Never a number. (The `csv` reader has already taken off any
/// quotes.)
pub fn column_name(field: &str) -> Option<String> {
    let mut chars = field.chars();
    let first = chars.next()?;
    let identifier = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    identifier.then(|| {
        field
            .chars()
            .filter(|c| !matches!(c, '_' | '-'))
            .collect::<String>()
            .to_ascii_lowercase()
    })
}

/// The column names of an events file that mark its first line as a
/// header (compared as [`column_name`] gives them).
const EVENT_COLUMNS: &[&str] = &[
    "user",
    "userid",
    "item",
    "itemid",
    "movie",
    "movieid",
    "timestamp",
    "ts",
    "time",
    "rating",
    "weight",
];

/// Whether the first line of an events file is a header: every field must
/// be a column name ([`column_name`]: identifier-like, never a number), and
/// at least one must name a known column: user_id/user/userId,
/// item_id/item/itemId, movie_id/movieId, timestamp/ts/time, rating or
/// weight (case, `_` and `-` ignored). So `user_id,item_id,timestamp` and
/// `userId,movieId,rating,timestamp` are headers; `1,abc,3` and
/// `abc,def,ghi` are data lines (bad ones).
fn is_header(fields: &csv::StringRecord) -> bool {
    let names: Option<Vec<String>> = fields.iter().map(column_name).collect();
    names.is_some_and(|names| names.iter().any(|n| EVENT_COLUMNS.contains(&n.as_str())))
}

/// One data line's event.
fn parse(f: &csv::StringRecord, movielens: bool) -> Result<Event, String> {
    let int = |i: usize, what: &str| -> Result<u64, String> {
        parse_id(f.get(i).ok_or_else(|| format!("missing {what}"))?, what)
    };
    if f.len() < 3 || f.len() > 4 {
        return Err(format!("expected 3 or 4 fields, found {}", f.len()));
    }
    let (user, item) = (int(0, "user_id")?, int(1, "item_id")?);
    if movielens {
        // The rating is kept as the event's weight.
        let rating = parse_weight(f.get(2).ok_or("missing rating")?)?;
        return Ok(Event::new(user, item, int(3, "timestamp")?).with_weight(rating));
    }
    let event = Event::new(user, item, int(2, "timestamp")?);
    match f.get(3) {
        Some(w) => Ok(event.with_weight(parse_weight(w)?)),
        None => Ok(event),
    }
}

/// The event if the store takes it (`emberdb::check_event`: the one check
/// every reader applies), else why not.
pub fn checked(event: Event) -> Result<Event, String> {
    emberdb::check_event(&event).map(|()| event).map_err(|e| e.to_string())
}

/// The events of the file and its bad lines (number, reason). The first
/// line is skipped as a header only when [`is_header`] says so (then never
/// a line that parses as data), and stderr says so; otherwise it is data
/// like any other line.
pub fn read(path: &Path, layout: Layout) -> anyhow::Result<(Vec<Event>, BadLines)> {
    let mut file = Delimited::open(path)?;
    let (mut events, mut bad) = (Vec::new(), BadLines::default());
    let mut movielens = layout == Layout::MovieLens;
    let mut first = true;
    while let Some((n, fields)) = file.next_line().with_context(|| path.display().to_string())? {
        let fields = match fields {
            Ok(fields) => fields,
            Err(reason) => {
                bad.push((n, reason));
                first = false;
                continue;
            }
        };
        if std::mem::take(&mut first) && is_header(fields) {
            movielens |= fields.get(2).and_then(column_name).is_some_and(|f| f == "rating");
            report_header(path, n);
            continue;
        }
        match parse(fields, movielens).and_then(checked) {
            Ok(e) => events.push(e),
            Err(reason) => bad.push((n, reason)),
        }
    }
    Ok((events, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_ignore_case_underscores_and_dashes() {
        assert_eq!(column_name("USER-ID").as_deref(), Some("userid"));
        assert_eq!(column_name("movieId").as_deref(), Some("movieid"));
        assert_eq!(column_name("1abc"), None);
        assert_eq!(column_name(""), None);
    }

    #[test]
    fn movielens_columns_by_header_or_by_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "userId,movieId,rating,timestamp\n1,2,3.5,40\n").unwrap();
        let (events, bad) = read(&path, Layout::Detect).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(events, vec![Event::new(1, 2, 40).with_weight(3.5)]);
        std::fs::write(&path, "1,2,3.5,40\n").unwrap();
        let (events, _) = read(&path, Layout::MovieLens).unwrap();
        assert_eq!(events, vec![Event::new(1, 2, 40).with_weight(3.5)]);
        // Without the header, four fields are user, item, timestamp, weight.
        std::fs::write(&path, "1,2,3,0.5\n").unwrap();
        let (events, _) = read(&path, Layout::Detect).unwrap();
        assert_eq!(events, vec![Event::new(1, 2, 3).with_weight(0.5)]);
    }
}
