//! The records kept in the metadata store, each serialised inside the
//! versioned, checksummed envelope of [`crate::codec`].

use serde::{Deserialize, Serialize};

use crate::metric::Metric;
use crate::wal::Position;

/// The version of the store's layout as a whole. A store written by a newer
/// version is refused with `Error::NewerFormat`.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// What a store was created with; checked on every open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredConfig {
    pub format_version: u32,
    pub dim: u32,
    pub metric: Metric,
    /// The store trains its own item vectors (else the host upserts them).
    pub trained: bool,
}

/// A sealed segment that is part of the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SegmentEntry {
    pub id: u64,
    pub rows: u64,
}

/// The durable root of the store: which segment files are live and where
/// WAL replay starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub segments: Vec<SegmentEntry>,
    /// The growing segment's rows as of the checkpoint, if it had any.
    pub growing: Option<SegmentEntry>,
    pub next_segment_id: u64,
    /// Every log record before this position is reflected in the segments
    /// and the metadata; replay starts here.
    pub checkpoint: Position,
    /// The sequence number of the first operation at or after `checkpoint`
    /// (used when the log after it is empty).
    pub next_seq: u64,
    /// The trainer state of the current generation (trained stores).
    pub trainer: Option<TrainerEntry>,
}

/// The trainer state file of a generation: `trainer-<file_id>.emb`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct TrainerEntry {
    pub file_id: u64,
    pub generation: u64,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            segments: Vec::new(),
            growing: None,
            next_segment_id: 1,
            checkpoint: Position::origin(),
            next_seq: 1,
            trainer: None,
        }
    }
}

/// A segment that a compaction merged whole (no dead rows) into another:
/// its row `r` is row `base + r` of segment `to`. Registry entries naming
/// `from` are resolved through it instead of being rewritten one per row,
/// which sled would keep beside the old ones (see ARCHITECTURE.md,
/// Compaction). Stored as one list under the catalog key `b"forwards"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Forward {
    pub from: u64,
    pub to: u64,
    pub base: u32,
}

/// One entry of a user's history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct HistoryEntry {
    /// The event's sequence number: a training round takes the events
    /// before its cut, and knows which of them it has not trained yet.
    pub seq: u64,
    pub item: u64,
    pub ts: u64,
    pub weight: f32,
}

/// A user's most recent items, oldest first (by time, then by arrival).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct UserHistory {
    /// Events with a smaller sequence number are already applied: replay
    /// skips them, which makes applying an event idempotent.
    pub next_seq: u64,
    pub items: std::collections::VecDeque<HistoryEntry>,
}
