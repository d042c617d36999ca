//! The trainer of a trained store: its options, the state of the published
//! generation, and the counters the background policy and `Stats` read.
//! Held by `state::Shared`; rounds are run by `training`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::train::round::TrainReport;
use crate::train::state::TrainerState;
use crate::train::TrainOptions;

pub(crate) struct Trainer {
    pub opts: TrainOptions,
    /// The state of the published generation.
    pub(super) current: Mutex<Arc<TrainerState>>,
    /// One round at a time.
    pub(super) round: Mutex<()>,
    /// Set when the store closes: a round in progress gives up.
    pub stop: AtomicBool,
    /// Events appended since the last round began (for the policy).
    pub events_since_round: AtomicU64,
    pub(super) last_round: Mutex<Instant>,
    pub(super) last_report: Mutex<Option<TrainReport>>,
}

/// What `Stats` reports of the trainer.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerStats {
    /// The published generation (0: never trained).
    pub generation: u64,
    /// Items with a trained vector.
    pub items: usize,
    pub rounds: u64,
    /// Events appended since the last round began (after a restart, an
    /// upper bound: every operation logged since the last round's cut).
    pub untrained_events: u64,
    /// The last round's report, if one ran since the store was opened.
    pub last_round: Option<TrainReport>,
}

impl Trainer {
    pub fn new(opts: TrainOptions, state: TrainerState) -> Self {
        Trainer {
            opts,
            current: Mutex::new(Arc::new(state)),
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
        let watermark = self.current.lock().watermark;
        self.events_since_round
            .store(next_seq.saturating_sub(watermark.max(1)), Ordering::Relaxed);
    }

    /// Holds off rounds (and their publishing) while the guard lives.
    pub fn hold_rounds(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.round.lock()
    }

    pub fn stats(&self) -> TrainerStats {
        let current = self.current.lock().clone();
        TrainerStats {
            generation: current.generation,
            items: current.len(),
            rounds: current.rounds,
            untrained_events: self.events_since_round.load(Ordering::Relaxed),
            last_round: self.last_report.lock().clone(),
        }
    }
}
