//! The payloads of WAL frames. The layout is written by hand (little endian,
//! fixed width) rather than by a general codec: this is the hot path of
//! ingestion, and a fixed table is easy to check and to keep stable.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0 | version u8 | 1; 2 for kinds 7 and 8, 3 for kind 9 (kinds older readers do not know): an older build then says "newer format" instead of "corrupt" |
//! | 1 | kind u8 | 1 events, 2 upsert, 3 delete (default space); 4 upsert, 5 delete (another space) |
//! | 2..10 | seq u64 | sequence number of the (first) operation |
//! | events | count u32, then count x (user u64, item u64, ts u64, weight f32) | 28 bytes an event; event `i` has sequence number `seq + i` |
//! | upsert (2) | id u64, dim u32, dim x f32 | the vector as stored (normalised under cosine) |
//! | delete (3) | id u64 | |
//! | upsert (4) | space u32, then as kind 2 | `space` is the space's number |
//! | delete (5) | space u32, id u64 | |
//! | features (6) | user u64, count u16, then count x (key_len u16, key, value_len u16, value) | UTF-8; the user's whole feature set, replacing the last |
//! | delete everywhere (7) | id u64 | `Store::delete`: the item leaves every space and is blocked from coming back by training |
//! | undelete (8) | id u64 | `Store::undelete`: the block is lifted |
//! | attributes (9) | item u64, then as features | the item's whole attribute set (`Store::set_attributes`), replacing the last; written as version 3 |
//!
//! Events belong to no space: every space reads the same histories, so an
//! event is logged once whatever the number of spaces. Operations on the
//! default space (number 0) keep format 1's kinds 2 and 3, byte for byte.

use crate::event::{Event, MAX_FEATURES, MAX_FEATURE_BYTES};

/// The newest record version this build reads and writes (2: kinds 7 and
/// 8; 3: kind 9; every other kind is still written as version 1, byte for
/// byte).
pub(crate) const RECORD_VERSION: u8 = 3;
const FIRST_VERSION: u8 = 1;
const KIND_EVENTS: u8 = 1;
const KIND_UPSERT: u8 = 2;
const KIND_DELETE: u8 = 3;
const KIND_SPACE_UPSERT: u8 = 4;
const KIND_SPACE_DELETE: u8 = 5;
const KIND_FEATURES: u8 = 6;
const KIND_BLOCK: u8 = 7;
const KIND_UNBLOCK: u8 = 8;
const KIND_ATTRIBUTES: u8 = 9;
const PREFIX: usize = 10;
pub(crate) const EVENT_BYTES: usize = 28;

/// One logged operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    Events {
        first_seq: u64,
        events: Vec<Event>,
    },
    Upsert {
        seq: u64,
        space: u32,
        id: u64,
        vector: Vec<f32>,
    },
    Delete {
        seq: u64,
        space: u32,
        id: u64,
    },
    Features {
        seq: u64,
        user: u64,
        features: Vec<(String, String)>,
    },
    /// `Store::delete`: out of every space, kept out by training.
    Block {
        seq: u64,
        id: u64,
    },
    /// `Store::undelete`.
    Unblock {
        seq: u64,
        id: u64,
    },
    /// `Store::set_attributes`: the item's whole attribute set.
    Attributes {
        seq: u64,
        item: u64,
        attributes: Vec<(String, String)>,
    },
}

impl Record {
    /// The sequence number after the last operation in this record.
    pub fn end_seq(&self) -> u64 {
        match self {
            Record::Events { first_seq, events } => first_seq + events.len() as u64,
            Record::Upsert { seq, .. }
            | Record::Delete { seq, .. }
            | Record::Features { seq, .. }
            | Record::Block { seq, .. }
            | Record::Unblock { seq, .. }
            | Record::Attributes { seq, .. } => seq + 1,
        }
    }
}

/// The oldest record version that may carry `kind`.
fn first_version_of(kind: u8) -> u8 {
    match kind {
        KIND_BLOCK | KIND_UNBLOCK => 2,
        KIND_ATTRIBUTES => 3,
        _ => FIRST_VERSION,
    }
}

fn prefix(out: &mut Vec<u8>, kind: u8, seq: u64) {
    let version = first_version_of(kind);
    out.push(version);
    out.push(kind);
    out.extend_from_slice(&seq.to_le_bytes());
}

/// Encodes a batch of events whose first has sequence number `first_seq`.
pub(crate) fn encode_events(out: &mut Vec<u8>, first_seq: u64, events: &[Event]) {
    out.reserve(PREFIX + 4 + events.len() * EVENT_BYTES);
    prefix(out, KIND_EVENTS, first_seq);
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for e in events {
        out.extend_from_slice(&e.user.to_le_bytes());
        out.extend_from_slice(&e.item.to_le_bytes());
        out.extend_from_slice(&e.ts.to_le_bytes());
        out.extend_from_slice(&e.weight.to_le_bytes());
    }
}

/// Encodes an upsert of `id` in space `space`.
pub(crate) fn encode_upsert(out: &mut Vec<u8>, seq: u64, space: u32, id: u64, vector: &[f32]) {
    out.reserve(PREFIX + 16 + vector.len() * 4);
    if space == 0 {
        prefix(out, KIND_UPSERT, seq);
    } else {
        prefix(out, KIND_SPACE_UPSERT, seq);
        out.extend_from_slice(&space.to_le_bytes());
    }
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(vector.len() as u32).to_le_bytes());
    for x in vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

/// Encodes a delete of `id` in space `space`.
pub(crate) fn encode_delete(out: &mut Vec<u8>, seq: u64, space: u32, id: u64) {
    if space == 0 {
        prefix(out, KIND_DELETE, seq);
    } else {
        prefix(out, KIND_SPACE_DELETE, seq);
        out.extend_from_slice(&space.to_le_bytes());
    }
    out.extend_from_slice(&id.to_le_bytes());
}

/// Encodes a delete of `id` from every space (`blocked`) or its undelete.
pub(crate) fn encode_block(out: &mut Vec<u8>, seq: u64, id: u64, blocked: bool) {
    prefix(out, if blocked { KIND_BLOCK } else { KIND_UNBLOCK }, seq);
    out.extend_from_slice(&id.to_le_bytes());
}

/// Encodes user `user`'s whole feature set (keys and values already
/// checked: at most `u16::MAX` pairs, each string at most `u16::MAX` bytes).
pub(crate) fn encode_features(out: &mut Vec<u8>, seq: u64, user: u64, features: &[(&str, &str)]) {
    encode_pairs(out, KIND_FEATURES, seq, user, features);
}

/// Encodes item `item`'s whole attribute set (checked as features are).
pub(crate) fn encode_attributes(out: &mut Vec<u8>, seq: u64, item: u64, attributes: &[(&str, &str)]) {
    encode_pairs(out, KIND_ATTRIBUTES, seq, item, attributes);
}

fn encode_pairs(out: &mut Vec<u8>, kind: u8, seq: u64, owner: u64, pairs: &[(&str, &str)]) {
    prefix(out, kind, seq);
    out.extend_from_slice(&owner.to_le_bytes());
    put_pairs(out, pairs.len(), pairs.iter().map(|(k, v)| (*k, *v)));
}

/// count u16, then count x (key_len u16, key, value_len u16, value).
fn put_pairs<'a>(out: &mut Vec<u8>, count: usize, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    out.extend_from_slice(&(count as u16).to_le_bytes());
    for (k, v) in pairs {
        for s in [k, v] {
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// Encodes a whole feature or attribute set as kinds 6 and 9 do after their
/// owner id (the value encoding of keyed run files). The caller has
/// checked the set against `MAX_FEATURES` and `MAX_FEATURE_BYTES` (so every
/// length fits its u16).
pub(crate) fn encode_pair_set(out: &mut Vec<u8>, pairs: &[(String, String)]) {
    put_pairs(out, pairs.len(), pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

/// Decodes exactly one set written by [`encode_pair_set`]: at most
/// `MAX_FEATURES` pairs, each string at most `MAX_FEATURE_BYTES` bytes of
/// UTF-8, no bytes left over. The bounds are checked before anything is
/// allocated, so damaged bytes cannot ask for more than one set's worth.
pub(crate) fn decode_pair_set(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut r = Reader { bytes, at: 0 };
    let count = r.u16()? as usize;
    if count > MAX_FEATURES {
        return Err(format!("{count} pairs, at most {MAX_FEATURES}"));
    }
    let mut pairs = Vec::with_capacity(count);
    for _ in 0..count {
        let key = r.bounded_string(MAX_FEATURE_BYTES)?;
        let value = r.bounded_string(MAX_FEATURE_BYTES)?;
        pairs.push((key, value));
    }
    if r.at != bytes.len() {
        return Err(format!("{} trailing bytes after the set", bytes.len() - r.at));
    }
    Ok(pairs)
}

/// Reads little-endian fields off a byte slice, failing on a short read.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let out = self
            .bytes
            .get(self.at..self.at + n)
            .ok_or_else(|| format!("record cut short at byte {}", self.at))?;
        self.at += n;
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn f32(&mut self) -> Result<f32, String> {
        Ok(f32::from_bits(self.u32()?))
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn string(&mut self) -> Result<String, String> {
        let len = self.u16()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("a string at byte {} is not UTF-8", self.at - len))
    }
    fn bounded_string(&mut self, max: usize) -> Result<String, String> {
        let len = self.u16()? as usize;
        if len > max {
            return Err(format!(
                "a string of {len} bytes at byte {}, at most {max}",
                self.at - 2
            ));
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("a string at byte {} is not UTF-8", self.at - len))
    }
    fn pairs(&mut self) -> Result<Vec<(String, String)>, String> {
        let count = self.u16()? as usize;
        let mut pairs = Vec::with_capacity(count.min(self.bytes.len() / 4));
        for _ in 0..count {
            pairs.push((self.string()?, self.string()?));
        }
        Ok(pairs)
    }
}

/// Why a payload (whose frame checksum held) does not decode.
#[derive(Debug, PartialEq)]
pub(crate) enum Undecodable {
    /// Written by a newer emberdb: this record version.
    Newer(u8),
    /// Malformed: what is wrong (the caller adds the file and offset).
    Malformed(String),
}

impl From<String> for Undecodable {
    fn from(reason: String) -> Self {
        Undecodable::Malformed(reason)
    }
}

/// Decodes a payload. A payload whose version is newer than ours is
/// reported as such, so that the store says "newer format", not "corrupt".
pub(crate) fn decode(payload: &[u8]) -> Result<Record, Undecodable> {
    let mut r = Reader { bytes: payload, at: 0 };
    let head = r.take(2)?;
    if head[0] > RECORD_VERSION {
        return Err(Undecodable::Newer(head[0]));
    }
    if head[0] < FIRST_VERSION {
        return Err(Undecodable::Malformed(format!(
            "record version {} is not one this build reads ({FIRST_VERSION}..={RECORD_VERSION})",
            head[0]
        )));
    }
    let kind = head[1];
    if head[0] < first_version_of(kind) {
        return Err(Undecodable::Malformed(format!(
            "record kind {kind} in a version {} record",
            head[0]
        )));
    }
    let seq = r.u64()?;
    let record = match kind {
        KIND_EVENTS => {
            let count = r.u32()? as usize;
            if payload.len() != PREFIX + 4 + count * EVENT_BYTES {
                return Err(Undecodable::Malformed(format!(
                    "events record of {} bytes cannot hold {count} events",
                    payload.len()
                )));
            }
            let mut events = Vec::with_capacity(count);
            for _ in 0..count {
                events.push(Event {
                    user: r.u64()?,
                    item: r.u64()?,
                    ts: r.u64()?,
                    weight: r.f32()?,
                });
            }
            Record::Events { first_seq: seq, events }
        }
        KIND_UPSERT | KIND_SPACE_UPSERT => {
            let space = if kind == KIND_SPACE_UPSERT { r.u32()? } else { 0 };
            let id = r.u64()?;
            let dim = r.u32()? as usize;
            if payload.len() != r.at + dim * 4 {
                return Err(Undecodable::Malformed(format!(
                    "upsert record of {} bytes cannot hold {dim} floats",
                    payload.len()
                )));
            }
            let vector = (0..dim).map(|_| r.f32()).collect::<Result<_, _>>()?;
            Record::Upsert { seq, space, id, vector }
        }
        KIND_DELETE => Record::Delete {
            seq,
            space: 0,
            id: r.u64()?,
        },
        KIND_SPACE_DELETE => Record::Delete {
            seq,
            space: r.u32()?,
            id: r.u64()?,
        },
        KIND_FEATURES => {
            let user = r.u64()?;
            let features = r.pairs()?;
            Record::Features { seq, user, features }
        }
        KIND_ATTRIBUTES => {
            let item = r.u64()?;
            let attributes = r.pairs()?;
            Record::Attributes { seq, item, attributes }
        }
        KIND_BLOCK => Record::Block { seq, id: r.u64()? },
        KIND_UNBLOCK => Record::Unblock { seq, id: r.u64()? },
        other => return Err(Undecodable::Malformed(format!("unknown record kind {other}"))),
    };
    if r.at != payload.len() {
        return Err(Undecodable::Malformed(format!(
            "{} trailing bytes after the record",
            payload.len() - r.at
        )));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_round_trips() {
        let events = vec![Event::new(1, 2, 3), Event::new(u64::MAX, 0, 9).with_weight(-0.5)];
        let mut buf = Vec::new();
        encode_events(&mut buf, 40, &events);
        assert_eq!(decode(&buf).unwrap(), Record::Events { first_seq: 40, events });
        buf.clear();
        for space in [0u32, 3] {
            buf.clear();
            encode_upsert(&mut buf, 7, space, 99, &[1.0, f32::MIN_POSITIVE, -3.5]);
            assert_eq!(
                decode(&buf).unwrap(),
                Record::Upsert {
                    seq: 7,
                    space,
                    id: 99,
                    vector: vec![1.0, f32::MIN_POSITIVE, -3.5]
                }
            );
            buf.clear();
            encode_delete(&mut buf, 8, space, 5);
            assert_eq!(decode(&buf).unwrap(), Record::Delete { seq: 8, space, id: 5 });
            assert_eq!(decode(&buf).unwrap().end_seq(), 9);
        }
        buf.clear();
        encode_features(&mut buf, 9, 77, &[("gender", "F"), ("genre", "Comédie")]);
        assert_eq!(
            decode(&buf).unwrap(),
            Record::Features {
                seq: 9,
                user: 77,
                features: vec![("gender".into(), "F".into()), ("genre".into(), "Comédie".into())]
            }
        );
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err(), "features cut at {cut}");
        }
        buf.clear();
        encode_attributes(
            &mut buf,
            10,
            5,
            &[("genre", "Comedy"), ("genre", "Drama"), ("year", "1995")],
        );
        assert_eq!(buf[0], 3);
        assert_eq!(
            decode(&buf).unwrap(),
            Record::Attributes {
                seq: 10,
                item: 5,
                attributes: vec![
                    ("genre".into(), "Comedy".into()),
                    ("genre".into(), "Drama".into()),
                    ("year".into(), "1995".into())
                ]
            }
        );
        // Kind 9 in a record older than version 3 is malformed.
        buf[0] = 2;
        assert!(matches!(decode(&buf), Err(Undecodable::Malformed(_))));
        // The default space keeps format 1's bytes.
        buf.clear();
        encode_delete(&mut buf, 8, 0, 5);
        assert_eq!(buf[1], KIND_DELETE);
        assert_eq!(buf.len(), PREFIX + 8);
    }

    #[test]
    fn pair_sets_round_trip_within_their_bounds() {
        let set = vec![
            ("genre".to_string(), "Comédie".to_string()),
            ("k".to_string(), String::new()),
        ];
        let mut buf = Vec::new();
        encode_pair_set(&mut buf, &set);
        assert_eq!(decode_pair_set(&buf).unwrap(), set);
        for cut in 0..buf.len() {
            assert!(decode_pair_set(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = buf.clone();
        long.push(0);
        assert!(decode_pair_set(&long).is_err());
        let too_many = vec![(String::from("a"), String::from("b")); MAX_FEATURES + 1];
        buf.clear();
        encode_pair_set(&mut buf, &too_many);
        assert!(decode_pair_set(&buf).unwrap_err().contains("pairs"));
        let too_long = vec![("a".repeat(MAX_FEATURE_BYTES + 1), String::new())];
        buf.clear();
        encode_pair_set(&mut buf, &too_long);
        assert!(decode_pair_set(&buf).unwrap_err().contains("at most"));
        buf.clear();
        encode_pair_set(&mut buf, &[]);
        assert_eq!(decode_pair_set(&buf).unwrap(), Vec::<(String, String)>::new());
    }

    #[test]
    fn truncated_or_unknown_payloads_are_errors() {
        let mut buf = Vec::new();
        encode_upsert(&mut buf, 1, 4, 2, &[1.0, 2.0]);
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err(), "cut at {cut}");
        }
        buf.clear();
        encode_upsert(&mut buf, 1, 0, 2, &[1.0, 2.0]);
        buf[1] = 77;
        assert!(matches!(decode(&buf), Err(Undecodable::Malformed(r)) if r.contains("unknown record kind")));
        buf[1] = 2;
        buf[0] = RECORD_VERSION + 1;
        assert_eq!(decode(&buf), Err(Undecodable::Newer(RECORD_VERSION + 1)));
    }
}
