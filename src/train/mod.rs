//! item2vec inside the store: skip-gram with negative sampling over each
//! user's items, trained in rounds on the events the store ingests.
//!
//! One concept per file: [`rng`] (seeded SplitMix64), [`sampler`] (negative
//! draws, alias method), [`subsample`] (word2vec's keep probability),
//! [`sigmoid`], [`kernel`] (the SGNS step and its loss), [`hogwild`] (the
//! lock-free shared matrices), [`corpus`], [`sgns`] (epochs and threads),
//! [`state`] (vocabulary and matrices, persisted), [`round`] (full and
//! incremental rounds), and [`dnn`], the YouTube DNN, which shares the
//! sampler, the RNG, the kernels and the round's shape. Publishing a
//! round's vectors is the store's job (`store::publish`). (DESIGN.md calls
//! this layer `model`.)

pub(crate) mod corpus;
pub(crate) mod dnn;
pub(crate) mod hogwild;
pub(crate) mod kernel;
pub(crate) mod options;
mod overrides;
pub(crate) mod rng;
pub(crate) mod round;
pub(crate) mod sampler;
pub(crate) mod sgns;
pub(crate) mod sigmoid;
pub(crate) mod state;
pub(crate) mod subsample;

pub use dnn::{DnnOptions, DnnRunStats};
pub use options::{TrainOptions, TrainPolicy};
pub use overrides::RoundOverrides;
pub use round::TrainReport;
pub use sgns::RunStats;
pub use sigmoid::Sigmoid;
