//! The trainer of a trained store: its options, the state of the published
//! generation, and the counters the background policy and `Stats` read.
//! Held by `state::Shared`; rounds are run by `training`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::train::dnn::state::DnnState;
use crate::train::round::TrainReport;
use crate::train::state::{StateSummary, TrainerState};
use crate::train::{DnnOptions, TrainOptions, TrainPolicy};

/// A trained space's model: its published state.
#[derive(Clone)]
pub(crate) enum Model {
    Item2vec(Arc<TrainerState>),
    /// An item2vec state on disk, not read yet: only a round needs its
    /// matrices (serving reads the segments), so an open reads its header
    /// and the first round reads the rest (see `training::load_model`).
    Item2vecStored {
        path: PathBuf,
        dim: usize,
        summary: StateSummary,
    },
    Dnn(Arc<DnnState>),
}

impl Model {
    fn summary(&self) -> StateSummary {
        match self {
            Model::Item2vec(s) => s.summary(),
            Model::Item2vecStored { summary, .. } => *summary,
            Model::Dnn(s) => StateSummary {
                items: s.len(),
                generation: s.generation,
                watermark: s.watermark,
                rounds: s.rounds,
            },
        }
    }

    pub fn generation(&self) -> u64 {
        self.summary().generation
    }

    pub fn items(&self) -> usize {
        self.summary().items
    }

    pub fn rounds(&self) -> u64 {
        self.summary().rounds
    }

    pub fn watermark(&self) -> u64 {
        self.summary().watermark
    }
}

/// A trained space's options.
#[derive(Debug, Clone)]
pub(crate) enum ModelOptions {
    Item2vec(TrainOptions),
    Dnn(DnnOptions),
}

impl ModelOptions {
    pub fn policy(&self) -> TrainPolicy {
        match self {
            ModelOptions::Item2vec(o) => o.policy,
            ModelOptions::Dnn(o) => o.policy,
        }
    }

    pub fn full_retrain(&self) -> bool {
        match self {
            ModelOptions::Item2vec(o) => o.full_retrain,
            ModelOptions::Dnn(o) => o.full_retrain,
        }
    }
}

pub(crate) struct Trainer {
    pub opts: ModelOptions,
    /// The state of the published generation.
    pub(in crate::store) current: Mutex<Model>,
    /// One round at a time.
    pub(in crate::store) round: Mutex<()>,
    /// Set when the store closes: a round in progress gives up.
    pub stop: AtomicBool,
    /// Events appended since the last round began (for the policy).
    pub events_since_round: AtomicU64,
    pub(in crate::store) last_round: Mutex<Instant>,
    pub(in crate::store) last_report: Mutex<Option<TrainReport>>,
}

/// What `Stats` reports of the trainer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TrainerStats {
    /// The published generation (0: never trained).
    pub generation: u64,
    /// Items with a trained vector.
    pub items: usize,
    /// Training rounds published in the space's lifetime, full and
    /// incremental (persisted with the trainer state).
    pub rounds: u64,
    /// Events appended since the last round began (after a restart, an
    /// upper bound: every operation logged since the last round's cut).
    pub untrained_events: u64,
    /// The last round's report, if one ran since the store was opened.
    pub last_round: Option<TrainReport>,
}

impl Trainer {
    pub fn new(opts: ModelOptions, model: Model) -> Self {
        Trainer {
            opts,
            current: Mutex::new(model),
            round: Mutex::new(()),
            stop: AtomicBool::new(false),
            events_since_round: AtomicU64::new(0),
            last_round: Mutex::new(Instant::now()),
            last_report: Mutex::new(None),
        }
    }

    /// After recovery: operations logged since the last round's cut count
    /// as untrained events (an upper bound: provisional upserts count too),
    /// so the policy sees events that arrived before a restart.
    pub fn count_untrained_after_open(&self, next_seq: u64) {
        let watermark = self.current.lock().watermark();
        self.events_since_round
            .store(next_seq.saturating_sub(watermark.max(1)), Ordering::Relaxed);
    }

    pub fn stats(&self) -> TrainerStats {
        let current = self.current.lock().clone();
        TrainerStats {
            generation: current.generation(),
            items: current.items(),
            rounds: current.rounds(),
            untrained_events: self.events_since_round.load(Ordering::Relaxed),
            last_round: self.last_report.lock().clone(),
        }
    }
}
