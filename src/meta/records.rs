//! The records kept in the metadata store, each serialised inside the
//! versioned, checksummed envelope of [`crate::codec`].

use serde::{Deserialize, Serialize};

use crate::index::IndexSpec;
use crate::metric::Metric;
use crate::options::SpaceKind;
use crate::train::{DnnOptions, TrainOptions};
use crate::wal::Position;

/// The version of the store's layout as a whole. A store written by a newer
/// version is refused with `Error::NewerFormat`. Version 1 had one space;
/// version 2 has named spaces (`b"spaces"`) and a manifest per space;
/// version 3 adds the list of log files (`b"wal_files"`) and the deleted
/// items (`b"blocked"`), which a version-2 build would neither keep up to
/// date nor honour; version 4 adds item attributes (tree `attributes`, log
/// record kind 9) and the recent-popularity counts (`b"trending"`);
/// version 5 finds sealed items through the segments' id orders (segment
/// files of version 2) and keeps no item registry, where a version-4 build
/// would find no sealed item. Older stores are upgraded in place at open,
/// in one metadata batch (2, 3 or 4 to 5 changes only the number; the
/// registry is removed after it); version 6 keeps user histories, user
/// features and item attributes in run files (`runs/`, named by
/// [`RunManifest`] under `b"live_runs"`) instead of sled's trees `histories`,
/// `features` and `attributes`, which a version-5 build would read as
/// empty. A version-5 store's trees are moved into runs at open, the
/// number changing in the same batch that names the runs.
pub(crate) const FORMAT_VERSION: u32 = 6;

/// The first format whose behaviour lives in runs.
pub(crate) const RUNS_FORMAT: u32 = 6;

/// What a store was created with; checked on every open. Its shape is
/// version 1's, so that a build reading version 1 can read the version
/// number of any later store and refuse it: `dim`, `metric` and `trained`
/// describe the default space (`spaces` holds every space from version 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredConfig {
    pub format_version: u32,
    pub dim: u32,
    pub metric: Metric,
    /// The default space trains its own item vectors (else the host
    /// upserts them).
    pub trained: bool,
}

/// One space of the store (catalog key `b"spaces"`, the list by number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredSpace {
    /// Its number in log records and the manifest; the default space is 0.
    pub number: u32,
    pub name: String,
    pub dim: u32,
    pub metric: Metric,
    pub kind: SpaceKind,
    /// The index spec last opened with (may change between opens).
    pub index: IndexSpec,
    /// Trained spaces: the training options last opened with.
    pub train: Option<StoredTrain>,
}

/// A trained space's options. A variant per kind and shape, so that a
/// later build that changes `TrainOptions` or `DnnOptions` adds a variant
/// and still reads these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum StoredTrain {
    V1(TrainOptions),
    DnnV1(DnnOptions),
}

impl StoredTrain {
    /// The item2vec options, if these are.
    pub fn item2vec(&self) -> Option<TrainOptions> {
        match self {
            StoredTrain::V1(train) => Some(train.clone()),
            StoredTrain::DnnV1(_) => None,
        }
    }

    /// The DNN options, if these are.
    pub fn dnn(&self) -> Option<DnnOptions> {
        match self {
            StoredTrain::DnnV1(dnn) => Some(dnn.clone()),
            StoredTrain::V1(_) => None,
        }
    }
}

/// A sealed segment that is part of the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SegmentEntry {
    pub id: u64,
    pub rows: u64,
}

/// The durable root of the store: which segment files are live, space by
/// space, and where WAL replay starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// By space number.
    pub spaces: Vec<SpaceManifest>,
    /// Segment, snapshot and trainer file ids are unique across spaces.
    pub next_segment_id: u64,
    /// Every log record before this position is reflected in the segments
    /// and the metadata; replay starts here.
    pub checkpoint: Position,
    /// The sequence number of the first operation at or after `checkpoint`
    /// (used when the log after it is empty).
    pub next_seq: u64,
}

/// The files of one space.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SpaceManifest {
    pub segments: Vec<SegmentEntry>,
    /// The growing segment's rows as of the checkpoint, if it had any.
    pub growing: Option<SegmentEntry>,
    /// The trainer state of the current generation (trained spaces).
    pub trainer: Option<TrainerEntry>,
}

impl Manifest {
    /// Every file id the manifest names (segments, snapshots, trainer
    /// files), of every space.
    pub fn file_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.spaces.iter().flat_map(|s| {
            s.segments
                .iter()
                .chain(&s.growing)
                .map(|e| e.id)
                .chain(s.trainer.map(|t| t.file_id))
        })
    }
}

/// Version 1's manifest (one space), read when a version-1 store is
/// upgraded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ManifestV1 {
    pub segments: Vec<SegmentEntry>,
    pub growing: Option<SegmentEntry>,
    pub next_segment_id: u64,
    pub checkpoint: Position,
    pub next_seq: u64,
    pub trainer: Option<TrainerEntry>,
}

impl ManifestV1 {
    /// The same files as the default space of a version-2 manifest.
    pub fn upgrade(self) -> Manifest {
        Manifest {
            spaces: vec![SpaceManifest {
                segments: self.segments,
                growing: self.growing,
                trainer: self.trainer,
            }],
            next_segment_id: self.next_segment_id,
            checkpoint: self.checkpoint,
            next_seq: self.next_seq,
        }
    }
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
            spaces: Vec::new(),
            next_segment_id: 1,
            checkpoint: Position::origin(),
            next_seq: 1,
        }
    }
}

/// A segment that a compaction of a format-4 store merged whole into
/// another: its row `r` became row `base + r` of segment `to`, so that
/// registry entries naming `from` needed no rewrite. Format 5 has no
/// registry, so none are made; the type stays because the `RECOVERY`
/// record's layout holds a list of them (always empty now).
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

/// The counts as stored (key `b"trending"`, a codec envelope).
/// See `store/trending.rs` for how the counts are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct TrendingRecord {
    /// The window, in timestamp units.
    pub window: u64,
    /// Events with a smaller sequence number are counted.
    pub applied_seq: u64,
    /// Bucket number (timestamp / width) and its (item, count) pairs,
    /// oldest first.
    pub buckets: Vec<(u64, Vec<(u64, u32)>)>,
}

/// One run file of the store (`runs/<kind>-<id>.run`, see `crate::runs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    pub id: u64,
    /// Entries it holds, and its length in bytes (for the merge policy and
    /// `Stats`).
    pub entries: u64,
    pub bytes: u64,
    /// The sequence numbers it stands for, `[from_seq, to_seq)`: a kind's
    /// runs are adjacent, oldest first.
    pub from_seq: u64,
    pub to_seq: u64,
}

/// The run files that hold the store's behaviour (catalog key `b"live_runs"`,
/// a codec envelope), each kind's oldest first: where runs of one kind
/// disagree the newer one wins, and a merge replaces adjacent runs by one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunManifest {
    /// The id the next run file gets (runs have their own ids).
    pub next_id: u64,
    /// Every event, features record and attributes record with a smaller
    /// sequence number is in a run: replay skips them.
    pub through_seq: u64,
    pub events: Vec<RunRecord>,
    pub features: Vec<RunRecord>,
    pub attributes: Vec<RunRecord>,
    /// The trending counts' file (`runs/trending-<id>.cnt`), written at
    /// the checkpoints where they changed; None: counted again from the
    /// histories at open.
    pub trending: Option<u64>,
}

impl RunManifest {
    /// An empty set of runs: nothing before `through_seq` to keep.
    pub fn empty(through_seq: u64) -> Self {
        RunManifest {
            next_id: 1,
            through_seq,
            ..RunManifest::default()
        }
    }

    /// Every run's (kind, id).
    pub fn files(&self) -> impl Iterator<Item = (crate::runs::RunKind, u64)> + '_ {
        use crate::runs::RunKind;
        let of = |kind, list: &'_ Vec<RunRecord>| list.iter().map(move |r| (kind, r.id)).collect::<Vec<_>>();
        of(RunKind::Events, &self.events)
            .into_iter()
            .chain(of(RunKind::Features, &self.features))
            .chain(of(RunKind::Attributes, &self.attributes))
    }

    /// The names of every file in `runs/` it names: the runs and the
    /// trending counts' file.
    pub fn file_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .files()
            .map(|(kind, id)| crate::runs::file_name(kind, id))
            .collect();
        names.extend(self.trending.map(|id| format!("trending-{id:020}.cnt")));
        names
    }

    /// The runs of `kind`, oldest first.
    pub fn of(&self, kind: crate::runs::RunKind) -> &Vec<RunRecord> {
        use crate::runs::RunKind;
        match kind {
            RunKind::Events => &self.events,
            RunKind::Features => &self.features,
            RunKind::Attributes => &self.attributes,
        }
    }

    pub fn of_mut(&mut self, kind: crate::runs::RunKind) -> &mut Vec<RunRecord> {
        use crate::runs::RunKind;
        match kind {
            RunKind::Events => &mut self.events,
            RunKind::Features => &mut self.features,
            RunKind::Attributes => &mut self.attributes,
        }
    }
}
