//! Options changed for one training round only (`ember train --epochs 5`,
//! `TrainRequest::overrides`): applied to a copy of the space's stored
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
    /// Training threads for this round, at least 1 (both kinds).
    pub threads: Option<usize>,
    /// The seed of this round's random draws (both kinds): with one
    /// thread, the same seed trains the same vectors.
    pub seed: Option<u64>,
}

impl RoundOverrides {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == RoundOverrides::default()
    }

    pub(crate) fn item2vec(&self, stored: &TrainOptions) -> Result<TrainOptions> {
        let mut o = stored.clone();
        put(&mut o.epochs, self.epochs);
        put(&mut o.incremental_epochs, self.epochs);
        put(&mut o.alpha, self.learning_rate);
        put(&mut o.incremental_alpha, self.learning_rate);
        // The schedule decays to `min_alpha`; keep it below the start.
        o.min_alpha = self.learning_rate.map_or(o.min_alpha, |lr| o.min_alpha.min(lr));
        put(&mut o.negative, self.negatives);
        put(&mut o.window, self.window);
        put(&mut o.threads, self.threads);
        put(&mut o.seed, self.seed);
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
        put(&mut o.epochs, self.epochs);
        put(&mut o.incremental_epochs, self.epochs);
        put(&mut o.learning_rate, self.learning_rate);
        put(&mut o.incremental_learning_rate, self.learning_rate);
        put(&mut o.negatives, self.negatives);
        put(&mut o.threads, self.threads);
        put(&mut o.seed, self.seed);
        o.validate()?;
        Ok(o)
    }
}

/// Sets `slot` to the override, if there is one.
fn put<T: Copy>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
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
