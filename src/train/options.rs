//! `TrainOptions`: how a trained store learns its item vectors.

use std::time::Duration;

use super::sigmoid::Sigmoid;
use crate::error::{Error, Result};

/// When rounds run without the host calling `Store::train`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TrainPolicy {
    /// Run a round once this many events arrived since the last one.
    pub after_events: Option<u64>,
    /// Run a round this long after the last one, if any event arrived.
    pub every: Option<Duration>,
}

/// Hyperparameters of item2vec (skip-gram with negative sampling over each
/// user's items) and of the incremental rounds. The defaults are the ones
/// `ember eval` measures on MovieLens 100k (see ARCHITECTURE.md).
///
/// Persisted with each trained space (`meta::records::StoredTrain::V1`):
/// adding or changing a field means a new `StoredTrain` variant, with this
/// shape kept for the stores that hold it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainOptions {
    pub(crate) epochs: usize,
    pub(crate) negative: usize,
    pub(crate) ns_exponent: f64,
    pub(crate) sample: f64,
    pub(crate) alpha: f32,
    pub(crate) min_alpha: f32,
    pub(crate) window: usize,
    pub(crate) threads: usize,
    pub(crate) seed: u64,
    pub(crate) sigmoid: Sigmoid,
    pub(crate) full_retrain: bool,
    pub(crate) incremental_epochs: usize,
    pub(crate) incremental_alpha: f32,
    pub(crate) replay_ratio: f64,
    pub(crate) policy: TrainPolicy,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 20,
            negative: 5,
            // HR@10 of `Query::user` on MovieLens 100k, mean of seeds 1-3:
            // -0.5 0.136, word2vec's 0.75 0.131 (ARCHITECTURE.md, Training).
            ns_exponent: -0.5,
            sample: 1e-3,
            alpha: 0.025,
            min_alpha: 0.0001,
            window: 0,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            seed: 1,
            sigmoid: Sigmoid::Table,
            full_retrain: false,
            incremental_epochs: 4,
            incremental_alpha: 0.01,
            replay_ratio: 1.0,
            policy: TrainPolicy::default(),
        }
    }
}

impl TrainOptions {
    /// Passes over the corpus in a full round (default 20).
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }
    /// Negative samples per positive pair (default 5; the same name as
    /// `DnnOptions::negatives` and `RoundOverrides::negatives`).
    pub fn negatives(mut self, negatives: usize) -> Self {
        self.negative = negatives;
        self
    }
    /// Negative samples per positive pair (word2vec's name).
    #[deprecated(note = "use TrainOptions::negatives")]
    pub fn negative(self, negative: usize) -> Self {
        self.negatives(negative)
    }
    /// Exponent of the item counts for drawing negatives (default -0.5,
    /// which favours rare items and measured best on recommendation data;
    /// word2vec's 0.75 favours frequent ones; 0 is uniform).
    pub fn ns_exponent(mut self, exponent: f64) -> Self {
        self.ns_exponent = exponent;
        self
    }
    /// Subsampling threshold of frequent items (default 1e-3; 0 = off).
    pub fn sample(mut self, sample: f64) -> Self {
        self.sample = sample;
        self
    }
    /// Learning rate at the start of a round (default 0.025; word2vec's
    /// `alpha`, `DnnOptions::learning_rate`).
    pub fn learning_rate(mut self, rate: f32) -> Self {
        self.alpha = rate;
        self
    }
    /// Learning rate at the end of a round (default 0.0001; word2vec's
    /// `min_alpha`): the rate decays linearly to it.
    pub fn min_learning_rate(mut self, rate: f32) -> Self {
        self.min_alpha = rate;
        self
    }
    /// Learning rate at the start of a round (word2vec's name).
    #[deprecated(note = "use TrainOptions::learning_rate")]
    pub fn alpha(self, alpha: f32) -> Self {
        self.learning_rate(alpha)
    }
    /// Learning rate at the end of a round (word2vec's name).
    #[deprecated(note = "use TrainOptions::min_learning_rate")]
    pub fn min_alpha(self, min_alpha: f32) -> Self {
        self.min_learning_rate(min_alpha)
    }
    /// Items nearest in time on each side that form an item's context
    /// (default 0: the user's whole history).
    pub fn window(mut self, window: usize) -> Self {
        self.window = window;
        self
    }
    /// Training threads (default: the machine's cores). One thread with a
    /// fixed seed is deterministic.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
    /// Seed of initialisation, subsampling and negative draws (default 1).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Exact sigmoid or word2vec's table (default: table).
    pub fn sigmoid(mut self, sigmoid: Sigmoid) -> Self {
        self.sigmoid = sigmoid;
        self
    }
    /// Every round retrains from scratch on all histories instead of
    /// training incrementally on what is new (default false).
    pub fn full_retrain(mut self, full: bool) -> Self {
        self.full_retrain = full;
        self
    }
    /// Epochs of an incremental round (default 4).
    pub fn incremental_epochs(mut self, epochs: usize) -> Self {
        self.incremental_epochs = epochs;
        self
    }
    /// Learning rate at the start of an incremental round (default 0.01;
    /// `DnnOptions::incremental_learning_rate`): lower than a full round's,
    /// so that fine-tuning on what is new does not shake the rest out of
    /// place.
    pub fn incremental_learning_rate(mut self, rate: f32) -> Self {
        self.incremental_alpha = rate;
        self
    }
    /// Learning rate at the start of an incremental round (word2vec's name).
    #[deprecated(note = "use TrainOptions::incremental_learning_rate")]
    pub fn incremental_alpha(self, alpha: f32) -> Self {
        self.incremental_learning_rate(alpha)
    }
    /// Histories without new events mixed into an incremental round, per
    /// history with new events (default 1), so that items nobody touched
    /// lately keep their place relative to the rest.
    pub fn replay_ratio(mut self, ratio: f64) -> Self {
        self.replay_ratio = ratio;
        self
    }
    /// When rounds run in the background (default: never; the host calls
    /// `Store::train`).
    pub fn policy(mut self, policy: TrainPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidOptions(what));
        if self.epochs == 0 || self.incremental_epochs == 0 {
            return bad("epochs and incremental_epochs must be at least 1".into());
        }
        if self.negative == 0 || self.negative > 100 {
            return bad(format!("negative must be between 1 and 100, got {}", self.negative));
        }
        if !self.ns_exponent.is_finite() || !(-10.0..=10.0).contains(&self.ns_exponent) {
            return bad(format!("ns_exponent must be in [-10, 10], got {}", self.ns_exponent));
        }
        if !self.sample.is_finite() || self.sample < 0.0 {
            return bad(format!("sample must be >= 0, got {}", self.sample));
        }
        if !(self.alpha.is_finite() && self.min_alpha.is_finite() && self.alpha > 0.0 && self.min_alpha >= 0.0)
            || self.min_alpha > self.alpha
            || !(self.incremental_alpha.is_finite() && self.incremental_alpha >= self.min_alpha)
        {
            return bad(format!(
                "need 0 <= min_alpha <= alpha, incremental_alpha and alpha > 0, got alpha {} incremental_alpha {} min_alpha {}",
                self.alpha, self.incremental_alpha, self.min_alpha
            ));
        }
        if self.threads == 0 || self.threads > 1024 {
            return bad(format!("threads must be between 1 and 1024, got {}", self.threads));
        }
        if !self.replay_ratio.is_finite() || self.replay_ratio < 0.0 {
            return bad(format!("replay_ratio must be >= 0, got {}", self.replay_ratio));
        }
        if self.policy.after_events == Some(0) || self.policy.every == Some(Duration::ZERO) {
            return bad("a training policy needs a non-zero event count or period".into());
        }
        Ok(())
    }
}
