//! Entry points for fuzzing every decoder of bytes read from disk (not a
//! public API: hidden from the documentation, may change at any time).
//!
//! `tests/fuzz_decoders.rs` drives them with `proptest` for a bounded
//! number of cases in CI; `fuzz/` holds `cargo fuzz` targets over the same
//! functions for longer runs. Each decoder gets valid seed inputs
//! ([`seeds`]) to mutate, and [`fix_checksums`] restamps a mutated input's
//! checksums as its layout says, so that mutations also reach the parsing
//! behind the checksums instead of stopping at them.
//!
//! Faiss's own deserialiser is not fuzzed: an index file's body reaches
//! Faiss only after our crc32 of it matches, so only bytes we wrote do
//! ([`Decoder::IndexFile`] keeps the body checksum as mutated).

use std::path::Path;

use crate::codec;
use crate::index::file as index_file;
use crate::meta::records::{Forward, Manifest, StoredConfig, StoredSpace, UserHistory};
use crate::meta::sled_meta;
use crate::runs::event_run::{self, EventEntry, EventRun};
use crate::runs::keyed_run::{self, KeyedRun};
use crate::runs::{RunHeader, RunKind};
use crate::segment::sealed::{self, SealedSegment};
use crate::stamp::HEADER_LEN as STAMP_LEN;
use crate::train::dnn::state::DnnState;
use crate::train::state::TrainerState;
use crate::wal::tracked::{TrackedFile, TrackedFiles};
use crate::wal::{file as wal_file, frame, record};
use crate::{DnnOptions, Event};

/// The dimension of every seed that has one.
const DIM: usize = 4;
/// The segment id of the segment and index seeds.
const SEGMENT_ID: u64 = 7;
/// The run id of the run seeds.
const RUN_ID: u64 = 11;

/// A decoder of bytes read from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// A whole log file: its header, then frames, each holding a record.
    WalFile,
    /// One log record (a frame's payload).
    WalRecord,
    /// The envelope around every metadata value, decoded as each kind of
    /// record the metadata holds.
    Envelope,
    /// A sealed segment (or growing snapshot) file.
    Segment,
    /// An index file's wrapper (header, length, checksums).
    IndexFile,
    /// An item2vec trainer state file.
    TrainerState,
    /// A YouTube DNN trainer state file.
    DnnState,
    /// `meta/CURRENT`.
    Current,
    /// `RECOVERY`, the catalog copy `Store::repair` works from.
    Recovery,
    /// An event run (`runs/ev-*.run`).
    EventRun,
    /// A keyed run (`runs/ft-*.run`, `runs/at-*.run`).
    KeyedRun,
}

impl Decoder {
    pub const ALL: [Decoder; 11] = [
        Decoder::WalFile,
        Decoder::WalRecord,
        Decoder::Envelope,
        Decoder::Segment,
        Decoder::IndexFile,
        Decoder::TrainerState,
        Decoder::DnnState,
        Decoder::Current,
        Decoder::Recovery,
        Decoder::EventRun,
        Decoder::KeyedRun,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Decoder::WalFile => "wal-file",
            Decoder::WalRecord => "wal-record",
            Decoder::Envelope => "envelope",
            Decoder::Segment => "segment",
            Decoder::IndexFile => "index-file",
            Decoder::TrainerState => "trainer-state",
            Decoder::DnnState => "dnn-state",
            Decoder::Current => "current",
            Decoder::Recovery => "recovery",
            Decoder::EventRun => "event-run",
            Decoder::KeyedRun => "keyed-run",
        }
    }
}

fn record_payloads() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut p = Vec::new();
    record::encode_events(
        &mut p,
        10,
        &[
            Event::new(1, 2, 3),
            Event {
                weight: 0.5,
                ..Event::new(4, 5, 6)
            },
        ],
    );
    out.push(std::mem::take(&mut p));
    record::encode_upsert(&mut p, 12, 0, 99, &[0.5, -1.0, 2.0, 0.25]);
    out.push(std::mem::take(&mut p));
    record::encode_upsert(&mut p, 13, 3, 100, &[1.0; DIM]);
    out.push(std::mem::take(&mut p));
    record::encode_delete(&mut p, 14, 1, 99);
    out.push(std::mem::take(&mut p));
    record::encode_features(&mut p, 15, 7, &[("gender", "F"), ("age", "25")]);
    out.push(std::mem::take(&mut p));
    record::encode_block(&mut p, 16, 99, true);
    out.push(std::mem::take(&mut p));
    record::encode_block(&mut p, 17, 99, false);
    out.push(std::mem::take(&mut p));
    record::encode_attributes(&mut p, 18, 99, &[("genre", "Comedy"), ("year", "1995")]);
    out.push(p);
    out
}

/// Valid inputs of `decoder`, to mutate from. Files are made in `dir`.
pub fn seeds(decoder: Decoder, dir: &Path) -> Vec<Vec<u8>> {
    let file = |name: &str| dir.join(name);
    match decoder {
        Decoder::WalRecord => record_payloads(),
        Decoder::WalFile => {
            let mut bytes = wal_file::encode_header(0).to_vec();
            for payload in record_payloads() {
                frame::encode_into(&mut bytes, &payload);
            }
            vec![wal_file::encode_header(0).to_vec(), bytes]
        }
        Decoder::Envelope => {
            let tracked = TrackedFiles {
                files: vec![
                    TrackedFile {
                        file_no: 3,
                        closed_len: Some(4096),
                    },
                    TrackedFile {
                        file_no: 4,
                        closed_len: None,
                    },
                ],
            };
            let features = vec![("gender".to_string(), "M".to_string())];
            let forwards = vec![Forward {
                from: 1,
                to: 2,
                base: 3,
            }];
            [
                codec::encode(&Manifest::default(), "fuzz"),
                codec::encode(&tracked, "fuzz"),
                codec::encode(&features, "fuzz"),
                codec::encode(&forwards, "fuzz"),
                codec::encode(&UserHistory::default(), "fuzz"),
                codec::encode(&vec![3u64, 99], "fuzz"),
            ]
            .into_iter()
            .filter_map(|r| r.ok())
            .collect()
        }
        Decoder::Segment => {
            let path = file("seg");
            let ids = [1u64, 5, 9];
            let values: Vec<f32> = (0..ids.len() * DIM).map(|i| i as f32 * 0.5).collect();
            let _ = sealed::write(&path, SEGMENT_ID, DIM, &ids, &values);
            std::fs::read(&path).into_iter().collect()
        }
        Decoder::IndexFile => {
            let path = file("idx");
            let header = index_file::IndexHeader {
                kind: 1,
                segment_id: SEGMENT_ID,
                rows: 3,
                param_a: 16,
                param_b: 40,
                metric: 1,
            };
            let _ = index_file::write(&path, &header, b"opaque faiss bytes");
            std::fs::read(&path).into_iter().collect()
        }
        Decoder::TrainerState => {
            let path = file("trn");
            let mut state = TrainerState::empty(DIM);
            for item in [3, 1, 4] {
                state.intern(item, 11);
            }
            let _ = state.write(&path);
            std::fs::read(&path).into_iter().collect()
        }
        Decoder::DnnState => {
            let path = file("dnn");
            let opts = DnnOptions {
                hidden: vec![4],
                embed_dim: 3,
                feature_dim: 2,
                ..DnnOptions::default()
            };
            let mut state = DnnState::empty(DIM, &opts);
            for item in [3, 1] {
                state.intern(item, 5);
            }
            state.build_tower(&opts, 5);
            let _ = state.write(&path);
            std::fs::read(&path).into_iter().collect()
        }
        Decoder::Current => vec![
            sled_meta::encode_current(1).to_vec(),
            sled_meta::encode_current(u64::MAX).to_vec(),
        ],
        Decoder::Recovery => {
            // A real store's copy: two spaces, sealed segments, dead rows,
            // a deleted item.
            let store_dir = dir.join("recovery-seed");
            let made = (|| -> crate::Result<Vec<u8>> {
                let opts = crate::Options::new(DIM)
                    .segment_rows(8)
                    .durability(crate::Durability::None)
                    .space("other", crate::SpaceSpec::host(DIM));
                let store = crate::Store::open(&store_dir, opts)?;
                for id in 0..20u64 {
                    store.upsert(id, &[1.0, id as f32, 0.5, 0.25])?;
                }
                store.space("default")?.delete(3)?;
                store.delete(4)?;
                store.flush()?;
                drop(store);
                std::fs::read(crate::meta::recovery_file::path(&store_dir)).map_err(|source| crate::Error::Io {
                    path: store_dir.clone(),
                    source,
                })
            })();
            made.into_iter().collect()
        }
        Decoder::EventRun => {
            // Three users, one across the first block boundary, and an
            // empty run.
            let entries: Vec<EventEntry> = (0..300u64)
                .map(|i| EventEntry {
                    user: [2, 5, 9][(i / 120) as usize],
                    seq: 10 + i,
                    item: i % 17,
                    ts: 1_000 - i % 50,
                    weight: 0.5,
                    reserved: 0,
                })
                .collect();
            let mut out = Vec::new();
            for entries in [entries, Vec::new()] {
                let run_dir = dir.join(format!("event-run-seed-{}", out.len()));
                let header = run_header(entries.len() as u64 + 10);
                let written = std::fs::create_dir_all(&run_dir)
                    .map_err(|e| crate::Error::InvalidOptions(e.to_string()))
                    .and_then(|()| event_run::write_event_run(&run_dir, header, entries));
                out.extend(written.ok().and_then(|run| std::fs::read(run.path()).ok()));
            }
            out
        }
        Decoder::KeyedRun => {
            let entries = (0..200u64).map(|i| {
                let value = (i % 5 != 2).then(|| vec![("genre".to_string(), format!("g{}", i % 3)); (i % 3) as usize]);
                (i * 3, 10 + i, value)
            });
            let run_dir = dir.join("keyed-run-seed");
            let written = std::fs::create_dir_all(&run_dir)
                .map_err(|e| crate::Error::InvalidOptions(e.to_string()))
                .and_then(|()| keyed_run::write_keyed_run(&run_dir, RunKind::Features, run_header(210), entries));
            written
                .ok()
                .and_then(|run| std::fs::read(run.path()).ok())
                .into_iter()
                .collect()
        }
    }
}

fn run_header(to_seq: u64) -> RunHeader {
    RunHeader {
        id: RUN_ID,
        from_seq: 10,
        to_seq,
        history_len: 0,
        bottom: false,
    }
}

/// Opens `bytes` as an event run (through a file in `dir`), reads every
/// user by scan and by lookup, and verifies it. `Ok` if all of it passed.
pub fn event_run(bytes: &[u8], dir: &Path) -> Result<(), String> {
    let text = |e: crate::Error| e.to_string();
    let path = dir.join(crate::runs::file_name(RunKind::Events, RUN_ID));
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    let run = EventRun::open(&path, RUN_ID).map_err(text)?;
    // Every user the scan hands out, then each again by lookup (touching
    // every entry handed out), errors included.
    let mut users = vec![0, 1, u64::MAX];
    for slice in run.entries() {
        match slice {
            Ok(slice) => users.extend(slice.first().map(|e| e.user)),
            Err(e) => drop(std::hint::black_box(e)),
        }
    }
    for user in users {
        if let Ok(slice) = run.user_slice(user) {
            std::hint::black_box(slice.iter().map(|e| e.item ^ e.ts).sum::<u64>());
        }
    }
    run.verify().map(drop).map_err(text)
}

/// Opens `bytes` as a keyed run of user features (through a file in
/// `dir`), reads every id by iteration and by lookup, and verifies it.
pub fn keyed_run(bytes: &[u8], dir: &Path) -> Result<(), String> {
    let text = |e: crate::Error| e.to_string();
    let path = dir.join(crate::runs::file_name(RunKind::Features, RUN_ID));
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    let run = KeyedRun::open(&path, RunKind::Features, RUN_ID).map_err(text)?;
    let mut ids = vec![0, 1, u64::MAX];
    for item in run.iter() {
        match item {
            Ok((id, value)) => {
                ids.push(id);
                std::hint::black_box(value);
            }
            Err(e) => {
                std::hint::black_box(e.to_string());
            }
        }
    }
    for id in ids {
        let _ = std::hint::black_box(run.get(id));
    }
    run.verify().map(drop).map_err(text)
}

fn put_crc(bytes: &mut [u8], at: usize, of: std::ops::Range<usize>) {
    if bytes.len() >= at + 4 && of.end <= bytes.len() && of.start <= of.end {
        let crc = crc32fast::hash(&bytes[of]);
        bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Restamps the checksums of `bytes` as `decoder`'s layout says, where the
/// input is long enough to hold them.
pub fn fix_checksums(decoder: Decoder, bytes: &mut [u8]) {
    let len = bytes.len();
    match decoder {
        Decoder::WalRecord => {}
        Decoder::WalFile => {
            put_crc(bytes, 28, 0..28);
            let mut at = wal_file::HEADER_LEN;
            while at + frame::HEADER_LEN <= len {
                let payload = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
                let end = at + frame::HEADER_LEN + payload;
                if end > len {
                    break;
                }
                put_crc(bytes, at + 4, at + frame::HEADER_LEN..end);
                put_crc(bytes, at + 8, at..at + 8);
                at = end;
            }
        }
        Decoder::Envelope => put_crc(bytes, 2, 6..len),
        Decoder::Segment | Decoder::TrainerState | Decoder::DnnState => {
            if len >= STAMP_LEN {
                put_crc(bytes, 48, STAMP_LEN..len);
            }
            put_crc(bytes, 60, 0..60);
        }
        Decoder::IndexFile => put_crc(bytes, 60, 0..60),
        Decoder::Current => put_crc(bytes, 60, 0..60),
        Decoder::EventRun => event_run::restamp(bytes),
        Decoder::KeyedRun => keyed_run::restamp(bytes),
        Decoder::Recovery => {
            // The envelope inside the body, the body, then the header.
            if len >= STAMP_LEN + 6 {
                put_crc(bytes, STAMP_LEN + 2, STAMP_LEN + 6..len);
            }
            if len >= STAMP_LEN {
                put_crc(bytes, 20, STAMP_LEN..len);
            }
            put_crc(bytes, 60, 0..60);
        }
    }
}

/// Decodes `bytes` with `decoder` (through a file in `dir` where the
/// decoder reads a file). `Ok` if accepted, the error's text if refused;
/// the contract under test is that it returns at all.
pub fn decode(decoder: Decoder, bytes: &[u8], dir: &Path) -> Result<(), String> {
    let text = |e: crate::Error| e.to_string();
    let file = |name: &str| -> Result<std::path::PathBuf, String> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        Ok(path)
    };
    match decoder {
        Decoder::WalRecord => record::decode(bytes).map(drop).map_err(|e| format!("{e:?}")),
        Decoder::WalFile => {
            let path = dir.join("wal-00000000000000000000.log");
            wal_file::check_header(bytes, 0, &path).map_err(text)?;
            let mut offset = wal_file::HEADER_LEN;
            loop {
                match frame::parse_at(bytes, offset) {
                    frame::Parsed::Frame { payload, next } => {
                        record::decode(payload).map_err(|e| format!("{e:?}"))?;
                        offset = next;
                    }
                    frame::Parsed::End => return Ok(()),
                    frame::Parsed::Bad { reason } => {
                        // Recovery's question: is anything valid after it?
                        let _ = frame::next_valid_after(bytes, offset);
                        return Err(reason.to_string());
                    }
                }
            }
        }
        Decoder::Envelope => {
            // Every kind of record: a flipped kind must be refused, too.
            let outcomes = [
                codec::decode::<Manifest>(bytes, "fuzz").map(drop),
                codec::decode::<StoredConfig>(bytes, "fuzz").map(drop),
                codec::decode::<Vec<StoredSpace>>(bytes, "fuzz").map(drop),
                codec::decode::<UserHistory>(bytes, "fuzz").map(drop),
                codec::decode::<Vec<(String, String)>>(bytes, "fuzz").map(drop),
                codec::decode::<TrackedFiles>(bytes, "fuzz").map(drop),
                codec::decode::<Vec<Forward>>(bytes, "fuzz").map(drop),
                codec::decode::<Vec<u64>>(bytes, "fuzz").map(drop),
            ];
            match outcomes.into_iter().find(|o| o.is_ok()) {
                Some(_) => Ok(()),
                None => Err("no record kind accepts it".into()),
            }
        }
        Decoder::Segment => {
            let path = file(&sealed::file_name(SEGMENT_ID))?;
            let segment = SealedSegment::open(&path, SEGMENT_ID, DIM).map_err(text)?;
            // The id order first: a lookup reads it before the rows.
            for probe in [0, 1, u64::MAX] {
                std::hint::black_box(
                    segment
                        .live_row_of(probe, crate::segment::visibility::Seen::NOW)
                        .map_err(text)?,
                );
            }
            let (ids, values) = segment.data().map_err(text)?;
            // Touch every byte the reader hands out.
            let sum: f32 = values.iter().sum();
            std::hint::black_box((ids.iter().sum::<u64>(), sum));
            segment.check_order().map_err(text)
        }
        Decoder::IndexFile => index_file::map(&file("idx")?).map(drop).map_err(text),
        Decoder::TrainerState => TrainerState::read(&file("trn")?, DIM).map(drop).map_err(text),
        Decoder::DnnState => DnnState::read(&file("dnn")?, DIM).map(drop).map_err(text),
        Decoder::Current => sled_meta::decode_current(bytes, &dir.join("CURRENT"))
            .map(drop)
            .map_err(text),
        Decoder::Recovery => crate::meta::recovery_file::decode(bytes, &dir.join("RECOVERY"))
            .map(drop)
            .map_err(text),
        Decoder::EventRun => event_run(bytes, dir),
        Decoder::KeyedRun => keyed_run(bytes, dir),
    }
}
