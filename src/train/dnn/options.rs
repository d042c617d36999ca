//! [`DnnOptions`]: the hyperparameters of the YouTube DNN candidate
//! generator (Covington, Adams and Sargin, RecSys 2016) and of its rounds.
//! The defaults are the ones `ember eval --space-kind youtube-dnn` chose on
//! MovieLens 100k (ARCHITECTURE.md, "The YouTube DNN").

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::train::TrainPolicy;

/// Hyperparameters of a `youtube_dnn` space, given as a struct literal:
/// `DnnOptions { epochs: 20, ..DnnOptions::default() }`.
///
/// Persisted with the space (`StoredTrain::DnnV1`): adding a field means a
/// new variant there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnnOptions {
    /// Widths of the hidden ReLU layers before the last one (whose width
    /// is the space's `dim`: the user vector). Default `[256, 128]`.
    pub hidden: Vec<usize>,
    /// Components of an item's input embedding (the watch vector's).
    pub embed_dim: usize,
    /// Components of each user feature's embedding.
    pub feature_dim: usize,
    /// The watch vector averages the embeddings of the user's last
    /// `watch_len` items before the predicted one.
    pub watch_len: usize,
    /// A second input averaging only the last `recent_len` of those items
    /// (0: none): the short-term interest beside the long one.
    pub recent_len: usize,
    /// Training examples (predicted positions) drawn per user per epoch, at
    /// most: heavy users do not dominate.
    pub positions_per_user: usize,
    /// Negatives drawn per batch (shared by its examples) from the proposal
    /// `count^sampler_exponent`, log-Q corrected; 1 to 1,048,576 (1024 by
    /// default).
    pub negatives: usize,
    /// The exponent on an item's event count in the negatives' proposal
    /// distribution (0.75 by default; 0 draws uniformly, 1 by popularity).
    pub sampler_exponent: f64,
    /// Examples per gradient step.
    pub batch: usize,
    /// Passes over the examples in a full round, at least 1 (10 by
    /// default).
    pub epochs: usize,
    /// Passes over the examples in an incremental round, at least 1 (2 by
    /// default).
    pub incremental_epochs: usize,
    /// Adam's step size in full rounds, finite and positive (0.002 by
    /// default).
    pub learning_rate: f32,
    /// Adam's step size in incremental rounds, finite and positive
    /// (0.0005 by default): smaller, so a round refines the model rather
    /// than forgets it.
    pub incremental_learning_rate: f32,
    /// L2 penalty on the item and feature embeddings' touched rows.
    pub l2: f32,
    /// Use the users' categorical features (`Store::set_user_features`).
    pub use_features: bool,
    /// Feed the example age (how old the predicted event is; 0 at serving).
    pub example_age: bool,
    /// Incremental rounds train the users with new events plus this many
    /// times as many others, drawn at random.
    pub replay_ratio: f64,
    /// Every round retrains from scratch.
    pub full_retrain: bool,
    /// Threads (the batch is split between them). A seed and a thread
    /// count give the same bits every time; another count sums the
    /// gradients in another order, so its last bits may differ.
    pub threads: usize,
    /// Seeds every random draw: initial weights, example shuffles,
    /// negatives and the replayed users (1 by default); each round mixes
    /// in its round number.
    pub seed: u64,
    /// When rounds run in the background.
    pub policy: TrainPolicy,
}

impl Default for DnnOptions {
    fn default() -> Self {
        DnnOptions {
            hidden: vec![256, 128],
            embed_dim: 64,
            feature_dim: 16,
            watch_len: 50,
            recent_len: 1,
            positions_per_user: 100,
            negatives: 1024,
            sampler_exponent: 0.75,
            batch: 256,
            epochs: 10,
            incremental_epochs: 2,
            learning_rate: 0.002,
            incremental_learning_rate: 0.0005,
            l2: 0.0,
            use_features: true,
            example_age: true,
            replay_ratio: 1.0,
            full_retrain: false,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            seed: 1,
            policy: TrainPolicy::default(),
        }
    }
}

impl DnnOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::InvalidOptions(format!("DnnOptions: {what}")));
        if self.hidden.iter().any(|&w| w == 0 || w > 8192) {
            return bad("hidden widths must be between 1 and 8192");
        }
        if self.embed_dim == 0 || self.embed_dim > 4096 || self.feature_dim == 0 || self.feature_dim > 1024 {
            return bad("embed_dim must be 1..=4096 and feature_dim 1..=1024");
        }
        if self.watch_len == 0 || self.positions_per_user == 0 {
            return bad("watch_len and positions_per_user must be at least 1");
        }
        if self.negatives == 0 || self.negatives > 1 << 20 || self.batch == 0 || self.batch > 1 << 16 {
            return bad("negatives must be 1..=1048576 and batch 1..=65536");
        }
        if self.epochs == 0 || self.incremental_epochs == 0 {
            return bad("epochs and incremental_epochs must be at least 1");
        }
        let finite_positive = |x: f32| x.is_finite() && x > 0.0;
        if !finite_positive(self.learning_rate) || !finite_positive(self.incremental_learning_rate) {
            return bad("learning rates must be finite and positive");
        }
        if !self.l2.is_finite() || self.l2 < 0.0 {
            return bad("l2 must be finite and not negative");
        }
        if !self.sampler_exponent.is_finite() || !self.replay_ratio.is_finite() || self.replay_ratio < 0.0 {
            return bad("sampler_exponent and replay_ratio must be finite (replay_ratio not negative)");
        }
        if self.threads == 0 {
            return bad("threads must be at least 1");
        }
        if self.policy.after_events == Some(0) || self.policy.every == Some(std::time::Duration::ZERO) {
            return bad("a training policy needs a non-zero event count or period");
        }
        Ok(())
    }
}

/// Builder methods, one per field, so that `DnnOptions` is set the way
/// `TrainOptions` and `Options` are (`DnnOptions::default().epochs(5)`);
/// the fields stay public for struct-literal construction.
impl DnnOptions {
    /// Sets `hidden`: the tower's hidden layer widths.
    pub fn hidden(mut self, hidden: Vec<usize>) -> Self {
        self.hidden = hidden;
        self
    }

    /// Sets `embed_dim`: the width of the feature embeddings.
    pub fn embed_dim(mut self, embed_dim: usize) -> Self {
        self.embed_dim = embed_dim;
        self
    }

    /// Sets `watch_len`: the recent items the watch vector averages.
    pub fn watch_len(mut self, watch_len: usize) -> Self {
        self.watch_len = watch_len;
        self
    }

    /// Sets `negatives`: negatives shared by a batch.
    pub fn negatives(mut self, negatives: usize) -> Self {
        self.negatives = negatives;
        self
    }

    /// Sets `batch`: examples per step.
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }

    /// Sets `epochs`: passes over the examples in a full round.
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Sets `incremental_epochs`: passes in an incremental round.
    pub fn incremental_epochs(mut self, incremental_epochs: usize) -> Self {
        self.incremental_epochs = incremental_epochs;
        self
    }

    /// Sets `learning_rate`: Adam's step in a full round.
    pub fn learning_rate(mut self, learning_rate: f32) -> Self {
        self.learning_rate = learning_rate;
        self
    }

    /// Sets `incremental_learning_rate`: Adam's step in an incremental round.
    pub fn incremental_learning_rate(mut self, incremental_learning_rate: f32) -> Self {
        self.incremental_learning_rate = incremental_learning_rate;
        self
    }

    /// Sets `use_features`: whether the tower takes the users' features.
    pub fn use_features(mut self, use_features: bool) -> Self {
        self.use_features = use_features;
        self
    }

    /// Sets `example_age`: whether the tower takes the example age.
    pub fn example_age(mut self, example_age: bool) -> Self {
        self.example_age = example_age;
        self
    }

    /// Sets `replay_ratio`: older histories replayed per new one in an incremental round.
    pub fn replay_ratio(mut self, replay_ratio: f64) -> Self {
        self.replay_ratio = replay_ratio;
        self
    }

    /// Sets `full_retrain`: whether every round retrains from scratch.
    pub fn full_retrain(mut self, full_retrain: bool) -> Self {
        self.full_retrain = full_retrain;
        self
    }

    /// Sets `threads`: training threads.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Sets `seed`: the seed of initialisation and sampling.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets `policy`: when rounds run in the background.
    pub fn policy(mut self, policy: TrainPolicy) -> Self {
        self.policy = policy;
        self
    }
}
