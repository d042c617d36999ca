//! `Event`: one user behaviour (a view, click, purchase...) on one item.

use serde::{Deserialize, Serialize};

/// The most key-value pairs a user's features (or an item's attributes) may
/// have. This and [`MAX_FEATURE_BYTES`] live here, below the log and the
/// run files that decode feature sets, so those decoders can bound what
/// they read; `store::features` re-exports them under the same names.
pub const MAX_FEATURES: usize = 256;
/// The longest key, and the longest value, of a user's features (or an
/// item's attributes), in bytes of UTF-8.
pub const MAX_FEATURE_BYTES: usize = 256;

/// A user interacted with an item at a time, with a weight (1.0 by default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The host's id of the user who acted.
    pub user: u64,
    /// The host's id of the item acted on.
    pub item: u64,
    /// Milliseconds since the Unix epoch (any monotone clock works).
    pub ts: u64,
    /// How much the event counts: finite and at least 0 (1.0 from
    /// [`Event::new`]). A user's pooled vector under `Pooling::Weighted`
    /// weighs each item by its latest event's weight.
    pub weight: f32,
}

impl Event {
    /// An event of weight 1.0.
    pub fn new(user: u64, item: u64, ts: u64) -> Self {
        Event {
            user,
            item,
            ts,
            weight: 1.0,
        }
    }

    /// The same event with another weight.
    pub fn with_weight(mut self, weight: f32) -> Self {
        self.weight = weight;
        self
    }
}
