//! Events from a JSON lines file (`.jsonl` / `.json`), one object a line,
//! read with `serde_json`: `{"user_id":1,"item_id":2,"timestamp":3}`,
//! optional `"weight"`, the field names of the CSV headers accepted too,
//! other fields ignored.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context as _;
use emberdb::Event;
use serde::Deserialize;
use serde_json::Value;

use crate::input::{parse_id, parse_weight, shown, BadLines, BOM};

/// The fields of an event. Each is kept as a JSON value and checked by
/// hand, so that a message names the field and echoes a bounded piece of
/// it (serde's own messages quote a bad string whole), and so that numbers
/// written as strings (`"user_id":"1"`) are taken as well.
#[derive(Deserialize)]
struct JsonEvent {
    #[serde(alias = "user", alias = "userId", alias = "userid")]
    user_id: Option<Value>,
    #[serde(
        alias = "item",
        alias = "itemId",
        alias = "itemid",
        alias = "movie",
        alias = "movie_id",
        alias = "movieId"
    )]
    item_id: Option<Value>,
    #[serde(alias = "ts", alias = "time")]
    timestamp: Option<Value>,
    weight: Option<Value>,
}

/// A non-negative integer field.
fn id(value: Option<Value>, name: &str) -> Result<u64, String> {
    let what = format!("\"{name}\"");
    match value {
        None | Some(Value::Null) => Err(format!("missing {what}")),
        Some(Value::String(s)) => parse_id(s.trim(), &what),
        Some(other) => match other.as_u64() {
            Some(id) => Ok(id),
            None => Err(format!(
                "{what} {} is not a non-negative integer",
                shown(&other.to_string())
            )),
        },
    }
}

/// Why a line is not JSON, with a bounded piece of the input where the
/// parser stopped. serde_json's message ends with its own position ("at
/// line 1 column 14"), which is cut: each line is parsed alone, so its
/// line is always 1 and the file's line number is reported instead.
fn syntax_error(line: &str, e: &serde_json::Error) -> String {
    let message = e.to_string();
    let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(m, _)| m);
    let at = e.column().saturating_sub(1);
    let near = line
        .get(at..)
        .map(|rest| rest.split(|c: char| matches!(c, ',' | ':' | '{' | '}' | '[' | ']') || c.is_whitespace()))
        .and_then(|mut pieces| pieces.next())
        .filter(|token| !token.is_empty());
    match near {
        Some(token) => format!("not JSON: {message} at column {} (at {})", e.column(), shown(token)),
        None => format!("not JSON: {message} at column {}", e.column()),
    }
}

/// One line's event.
fn parse(line: &str) -> Result<Event, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| syntax_error(line, &e))?;
    if !value.is_object() {
        return Err("not a JSON object".into());
    }
    // Only a field given twice (say "ts" and "timestamp") fails here.
    let fields = JsonEvent::deserialize(value).map_err(|e| e.to_string())?;
    let event = Event::new(
        id(fields.user_id, "user_id")?,
        id(fields.item_id, "item_id")?,
        id(fields.timestamp, "timestamp")?,
    );
    let weight = match fields.weight {
        None | Some(Value::Null) => return Ok(event),
        Some(Value::String(s)) => parse_weight(s.trim())?,
        Some(Value::Number(n)) => {
            let w = n.as_f64().unwrap_or(f64::NAN) as f32;
            if !w.is_finite() {
                return Err(format!("weight {} is not finite", shown(&n.to_string())));
            }
            w
        }
        Some(other) => return Err(format!("weight {} is not a number", shown(&other.to_string()))),
    };
    Ok(event.with_weight(weight))
}

/// The events of the file and its bad lines (number, reason); blank lines
/// are skipped, and a line that is not UTF-8 is a bad line.
pub fn read(path: &Path) -> anyhow::Result<(Vec<Event>, BadLines)> {
    let file = File::open(path).with_context(|| path.display().to_string())?;
    let mut file = BufReader::new(file);
    let (mut events, mut bad) = (Vec::new(), BadLines::default());
    let mut buf = Vec::new();
    for n in 1u64.. {
        buf.clear();
        if file
            .read_until(b'\n', &mut buf)
            .with_context(|| path.display().to_string())?
            == 0
        {
            break;
        }
        let bytes = if n == 1 {
            buf.strip_prefix(BOM).unwrap_or(&buf)
        } else {
            &buf
        };
        let Ok(line) = std::str::from_utf8(bytes) else {
            bad.push((n, "not valid UTF-8".into()));
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        match parse(line).and_then(crate::input::events::checked) {
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
    fn commas_in_strings_and_unknown_fields_are_fine() {
        let e = parse(r#"{"user":1,"item":2,"ts":3,"note":"a,b","tags":[1,{"x":"}"}]}"#).unwrap();
        assert_eq!(e, Event::new(1, 2, 3));
        let e = parse(r#"{"user_id":"4","item_id":5,"timestamp":6,"weight":2.5}"#).unwrap();
        assert_eq!(e, Event::new(4, 5, 6).with_weight(2.5));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert_eq!(parse(r#"{"user_id":1}"#).unwrap_err(), "missing \"item_id\"");
        assert_eq!(
            parse(r#"{"user_id":-1,"item_id":2,"ts":3}"#).unwrap_err(),
            "\"user_id\" \"-1\" is not a non-negative integer"
        );
        assert_eq!(
            parse(r#"{"user_id":1,"item_id":2,"ts":3,"weight":1e39}"#).unwrap_err(),
            "weight \"1e+39\" is not finite"
        );
        assert_eq!(parse("[1,2]").unwrap_err(), "not a JSON object");
        // Parsed, then refused by the check every reader shares.
        let negative = parse(r#"{"user_id":1,"item_id":2,"ts":3,"weight":-1}"#).unwrap();
        let err = crate::input::events::checked(negative).unwrap_err();
        assert!(err.contains("weight -1 is negative"), "{err}");
        let err = parse(r#"{"user_id":1,oops}"#).unwrap_err();
        assert_eq!(err, "not JSON: key must be a string at column 14 (at \"oops\")");
        let err = parse(r#"{"user_id":1,"ts":2,"timestamp":3,"item_id":4}"#).unwrap_err();
        assert!(err.contains("duplicate field"), "{err}");
    }
}
