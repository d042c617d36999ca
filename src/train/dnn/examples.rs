//! Training examples: for a user and a position `t` of their history, the
//! item at `t` is predicted from the items before it only (the paper's
//! "predicting the next watch", not a held-out item in the middle), with
//! the user's features and the example's age. Position 0 (no items before)
//! is an example too: it teaches the features alone, which is what a user
//! with no history gets at serving. Each epoch draws at most
//! `positions_per_user` positions per user, so heavy users do not
//! dominate.

use super::vocab::FeatureVocab;
use crate::train::rng::Rng;

/// One user's training data.
#[derive(Debug, Clone)]
pub(crate) struct UserData {
    /// Vocabulary indices, oldest first, and each event's time.
    pub items: Vec<u32>,
    pub times: Vec<u64>,
    /// Positions that may be predicted (an incremental round: the new
    /// events only), ascending.
    pub positions: Vec<u32>,
    /// Feature rows, key by key (`FeatureVocab::encode`).
    pub features: Vec<Vec<u32>>,
}

/// The users of a round and how their examples are drawn.
pub(crate) struct TrainingData {
    pub users: Vec<UserData>,
    pub latest_ts: u64,
    pub age_span: f64,
}

/// One example: a user (index into `TrainingData::users`) and a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Example {
    pub user: u32,
    pub position: u32,
}

impl TrainingData {
    /// The ages of events at `times` relative to the latest one, in
    /// `[0, 1]` over the span the round saw.
    pub fn age(&self, ts: u64) -> f32 {
        (self.latest_ts.saturating_sub(ts) as f64 / self.age_span.max(1.0)).min(1.0) as f32
    }

    /// The examples of epoch `epoch`, shuffled: up to `per_user` positions
    /// of each user, drawn without replacement.
    pub fn epoch(&self, per_user: usize, seed: u64, epoch: u64) -> Vec<Example> {
        let mut rng = Rng::new(seed, 0x4550_4F43_0000_0000 | epoch);
        let mut out = Vec::new();
        let mut chosen: Vec<u32> = Vec::new();
        for (u, user) in self.users.iter().enumerate() {
            chosen.clear();
            chosen.extend_from_slice(&user.positions);
            let take = per_user.min(chosen.len());
            for i in 0..take {
                let j = i + rng.below((chosen.len() - i) as u32) as usize;
                chosen.swap(i, j);
            }
            out.extend(chosen[..take].iter().map(|&position| Example {
                user: u as u32,
                position,
            }));
        }
        for i in (1..out.len()).rev() {
            let j = rng.below(i as u32 + 1) as usize;
            out.swap(i, j);
        }
        out
    }

    /// The number of examples an epoch has.
    pub fn examples_per_epoch(&self, per_user: usize) -> usize {
        self.users.iter().map(|u| u.positions.len().min(per_user)).sum()
    }
}

/// Builds a user's data from their events (vocabulary index, time,
/// sequence number), predicting positions whose sequence number is at
/// least `from_seq`.
pub(crate) fn user_data(
    events: &[(u32, u64, u64)],
    features: &[(String, String)],
    vocab: &FeatureVocab,
    from_seq: u64,
) -> UserData {
    UserData {
        items: events.iter().map(|e| e.0).collect(),
        times: events.iter().map(|e| e.1).collect(),
        positions: events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.2 >= from_seq)
            .map(|(i, _)| i as u32)
            .collect(),
        features: vocab.encode(features),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_caps_positions_per_user_and_covers_every_user() {
        let vocab = FeatureVocab::default();
        let long: Vec<(u32, u64, u64)> = (0..50).map(|i| (i, 100 + i as u64, i as u64)).collect();
        let short = [(3u32, 7u64, 60u64), (4, 8, 61)];
        let data = TrainingData {
            users: vec![user_data(&long, &[], &vocab, 0), user_data(&short, &[], &vocab, 0)],
            latest_ts: 149,
            age_span: 149.0 - 7.0,
        };
        let epoch = data.epoch(10, 7, 0);
        assert_eq!(epoch.len(), 12);
        assert_eq!(data.examples_per_epoch(10), 12);
        assert_eq!(epoch.iter().filter(|e| e.user == 0).count(), 10);
        let mut positions: Vec<u32> = epoch.iter().filter(|e| e.user == 0).map(|e| e.position).collect();
        positions.sort_unstable();
        positions.dedup();
        assert_eq!(positions.len(), 10, "without replacement");
        assert_ne!(data.epoch(10, 7, 1), epoch, "another epoch, another draw");
        assert_eq!(data.epoch(10, 7, 0), epoch, "seeded");
        assert_eq!(data.age(149), 0.0);
        assert!((data.age(7) - 1.0).abs() < 1e-6);
        // An incremental round predicts only the new events.
        let fresh = user_data(&long, &[], &vocab, 45);
        assert_eq!(fresh.positions, [45, 46, 47, 48, 49]);
    }
}
