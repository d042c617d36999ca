//! Users' categorical features (`Store::set_user_features`): the YouTube
//! DNN's demographic and context inputs. Each user's whole set is logged
//! as one record (replacing the last) and kept with the rest of the
//! behaviour (`crate::store::behaviour`): in memory until the next checkpoint,
//! then in a keyed run, the newest run holding a user deciding.

use crate::error::{Error, Result};

/// The most pairs a user may have, and the longest key or value in bytes
/// (defined in `event`, so that the log and run decoders below `store` can
/// bound what they read).
pub use crate::event::{MAX_FEATURES, MAX_FEATURE_BYTES};

/// A user's features: (key, value) pairs; a key may repeat (several values).
pub(crate) type FeatureSet = Vec<(String, String)>;

/// Refuses features a store would not keep: an empty key, a key or value
/// longer than [`MAX_FEATURE_BYTES`], or more than [`MAX_FEATURES`] pairs.
pub fn check(user: u64, features: &[(&str, &str)]) -> Result<()> {
    check_pairs(features).map_err(|reason| Error::InvalidFeatures { user, reason })
}

/// What features and attributes share: why `pairs` cannot be kept, if
/// they cannot (an empty key, a key or value longer than
/// [`MAX_FEATURE_BYTES`], more than [`MAX_FEATURES`] pairs).
pub(crate) fn check_pairs(pairs: &[(&str, &str)]) -> std::result::Result<(), String> {
    if pairs.len() > MAX_FEATURES {
        return Err(format!("{} pairs, at most {MAX_FEATURES}", pairs.len()));
    }
    for (k, v) in pairs {
        if k.is_empty() {
            return Err("an empty key".into());
        }
        if k.len() > MAX_FEATURE_BYTES || v.len() > MAX_FEATURE_BYTES {
            return Err(format!("key or value of more than {MAX_FEATURE_BYTES} bytes"));
        }
    }
    Ok(())
}
