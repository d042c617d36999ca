//! Options changed for one training round only (`ember train --epochs 5`,
//! `Store::train_space_with`): applied to a copy of the space's stored
//! options, checked like them, and never saved.

use super::{DnnOptions, TrainOptions};
use crate::error::{Error, Result};

/// What one round changes of the space's stored options. `None` keeps the
/// stored value. Each applies to whichever kind of round runs (a full
/// round's `epochs` and learning rate, or an incremental one's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundOverrides {
    /// Passes over the data (item2vec `epochs` / `incremental_epochs`, DNN
    /// the same).
    pub epochs: Option<usize>,
    /// The starting learning rate (item2vec `alpha` / `incremental_alpha`,
    /// DNN `learning_rate` / `incremental_learning_rate`).
    pub learning_rate: Option<f32>,
    /// Negative samples (item2vec per positive pair, DNN per batch).
    pub negatives: Option<usize>,
    /// item2vec's context window (0: the whole history); refused for a
    /// DNN space, which has none.
    pub window: Option<usize>,
    pub threads: Option<usize>,
    pub seed: Option<u64>,
}

impl RoundOverrides {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == RoundOverrides::default()
    }

    pub(crate) fn item2vec(&self, stored: &TrainOptions) -> Result<TrainOptions> {
        let mut o = stored.clone();
        if let Some(epochs) = self.epochs {
            o.epochs = epochs;
            o.incremental_epochs = epochs;
        }
        if let Some(lr) = self.learning_rate {
            o.alpha = lr;
            o.incremental_alpha = lr;
            // The schedule decays to `min_alpha`; keep it below the start.
            o.min_alpha = o.min_alpha.min(lr);
        }
        if let Some(n) = self.negatives {
            o.negative = n;
        }
        if let Some(w) = self.window {
            o.window = w;
        }
        if let Some(t) = self.threads {
            o.threads = t;
        }
        if let Some(s) = self.seed {
            o.seed = s;
        }
        o.validate()?;
        Ok(o)
    }

    pub(crate) fn dnn(&self, stored: &DnnOptions) -> Result<DnnOptions> {
        if self.window.is_some() {
            return Err(Error::InvalidOptions(
                "window is an item2vec option; a YouTube DNN space has none (its watch vector is `watch_len` items)"
                    .into(),
            ));
        }
        let mut o = stored.clone();
        if let Some(epochs) = self.epochs {
            o.epochs = epochs;
            o.incremental_epochs = epochs;
        }
        if let Some(lr) = self.learning_rate {
            o.learning_rate = lr;
            o.incremental_learning_rate = lr;
        }
        if let Some(n) = self.negatives {
            o.negatives = n;
        }
        if let Some(t) = self.threads {
            o.threads = t;
        }
        if let Some(s) = self.seed {
            o.seed = s;
        }
        o.validate()?;
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_change_a_copy_and_are_checked() {
        let stored = TrainOptions::default();
        let o = RoundOverrides {
            epochs: Some(3),
            learning_rate: Some(0.05),
            seed: Some(9),
            ..RoundOverrides::default()
        };
        let changed = o.item2vec(&stored).unwrap();
        assert_eq!((changed.epochs, changed.incremental_epochs, changed.seed), (3, 3, 9));
        assert_eq!((changed.alpha, changed.incremental_alpha), (0.05, 0.05));
        assert_eq!(stored, TrainOptions::default(), "the stored options are untouched");
        let zero = RoundOverrides {
            epochs: Some(0),
            ..RoundOverrides::default()
        };
        assert!(matches!(zero.item2vec(&stored), Err(Error::InvalidOptions(_))));
        assert!(matches!(
            zero.dnn(&DnnOptions::default()),
            Err(Error::InvalidOptions(_))
        ));
        let window = RoundOverrides {
            window: Some(3),
            ..RoundOverrides::default()
        };
        assert!(window.dnn(&DnnOptions::default()).is_err());
        assert!(RoundOverrides::default().is_empty());
    }
}
