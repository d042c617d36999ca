//! Users' categorical features (`Store::set_user_features`): the YouTube
//! DNN's demographic and context inputs. Each user's whole set is logged
//! as one record (replacing the last), held in memory, and written to the
//! metadata store (tree `features`) at each checkpoint; replaying the log
//! from the checkpoint sets them again in order, so the last one written
//! wins either way.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::meta::MetaStore;

/// The most pairs a user may have, and the longest key or value in bytes
/// (defined in `event`, so that the log and run decoders below `store` can
/// bound what they read).
pub use crate::event::{MAX_FEATURES, MAX_FEATURE_BYTES};

/// A user's features: (key, value) pairs; a key may repeat (several values).
pub(crate) type FeatureSet = Vec<(String, String)>;

pub(crate) struct UserFeatures {
    meta: Arc<dyn MetaStore>,
    users: RwLock<HashMap<u64, Arc<FeatureSet>>>,
    /// Set since the last checkpoint.
    dirty: Mutex<HashSet<u64>>,
}

impl UserFeatures {
    /// Every user's features, from the metadata store.
    pub fn load(meta: Arc<dyn MetaStore>) -> Result<Self> {
        let users = meta
            .load_features()?
            .into_iter()
            .map(|(user, set)| (user, Arc::new(set)))
            .collect();
        Ok(UserFeatures {
            meta,
            users: RwLock::new(users),
            dirty: Mutex::new(HashSet::new()),
        })
    }

    /// Replaces `user`'s features (an empty set removes them).
    pub fn set(&self, user: u64, features: FeatureSet) {
        let mut users = self.users.write();
        if features.is_empty() {
            users.remove(&user);
        } else {
            users.insert(user, Arc::new(features));
        }
        self.dirty.lock().insert(user);
    }

    pub fn get(&self, user: u64) -> Arc<FeatureSet> {
        self.users.read().get(&user).cloned().unwrap_or_default()
    }

    /// Every user's features, for a training round.
    pub fn snapshot(&self) -> HashMap<u64, FeatureSet> {
        self.users
            .read()
            .iter()
            .map(|(u, f)| (*u, f.as_ref().clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.users.read().len()
    }

    /// Writes the changed users' features to the metadata store (not yet
    /// flushed): the checkpoint's part.
    pub fn persist_dirty(&self) -> Result<()> {
        let dirty: Vec<u64> = self.dirty.lock().drain().collect();
        if dirty.is_empty() {
            return Ok(());
        }
        let changed: Vec<(u64, FeatureSet)> = {
            let users = self.users.read();
            dirty
                .iter()
                .map(|u| (*u, users.get(u).map(|f| f.as_ref().clone()).unwrap_or_default()))
                .collect()
        };
        let outcome = self.meta.save_features(&changed);
        if outcome.is_err() {
            // Still to write: the next checkpoint tries again.
            self.dirty.lock().extend(dirty);
        }
        outcome
    }
}

/// Refuses features a store would not keep: an empty key, a key or value
/// longer than [`MAX_FEATURE_BYTES`], or more than [`MAX_FEATURES`] pairs.
pub fn check(user: u64, features: &[(&str, &str)]) -> Result<()> {
    let bad = |reason: String| Err(Error::InvalidFeatures { user, reason });
    if features.len() > MAX_FEATURES {
        return bad(format!("{} pairs, at most {MAX_FEATURES}", features.len()));
    }
    for (k, v) in features {
        if k.is_empty() {
            return bad("an empty key".into());
        }
        if k.len() > MAX_FEATURE_BYTES || v.len() > MAX_FEATURE_BYTES {
            return bad(format!("key or value of more than {MAX_FEATURE_BYTES} bytes"));
        }
    }
    Ok(())
}
