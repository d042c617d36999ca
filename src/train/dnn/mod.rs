//! The YouTube DNN (Covington, Adams and Sargin, RecSys 2016) as a trained
//! space: recommendation as extreme multiclass classification, predicting a
//! user's next item from the mean embedding of their recent items (the
//! watch vector), their categorical features and the example's age, through
//! fully connected ReLU layers whose last output is the user vector `u`;
//! the softmax over all items has the item vectors `v_j` and biases `b_j`,
//! trained with sampled softmax and the log-Q correction. Serving is a
//! maximum inner product search of `[u, 1]` over the stored `[v_j, b_j]`.
//!
//! One concept per file: [`options`], [`vocab`] (feature values to rows),
//! [`tower`] (the layers, forward and backward), [`softmax`] (the sampled
//! loss), [`examples`] (what is predicted from what), [`step`] (one slice
//! of a batch), [`adam`] (the Adam step), [`shared`] (the model as a
//! run's threads share it, phase by phase), [`update`] (one thread's share
//! of a step's update: the layers and the touched embedding rows),
//! [`train`] (epochs, threads), [`state`] (everything
//! trained, persisted), [`round`] (full and incremental), [`serve`] (the
//! user vector at query time).

pub(crate) mod adam;
pub(crate) mod examples;
pub(crate) mod huge_pages;
pub(crate) mod options;
pub(crate) mod round;
pub(crate) mod serve;
pub(crate) mod shared;
pub(crate) mod softmax;
pub(crate) mod state;
pub(crate) mod step;
pub(crate) mod tower;
pub(crate) mod train;
pub(crate) mod update;
pub(crate) mod vocab;

pub use options::DnnOptions;
pub use train::DnnRunStats;
