//! One DNN round, independent of the store: from the users' events up to a
//! cut (and their features), the next state.
//!
//! A full round rebuilds the feature vocabulary and the tower, starts every
//! item over, and trains `epochs` passes over every user. An incremental
//! round warm-starts from the current state (weights and Adam's moments),
//! adds new items and new feature values (new rows; a feature key first
//! seen waits for the next full round, since it would widen the tower), and
//! trains `incremental_epochs` passes predicting the new events, plus
//! `replay_ratio` times as many other users drawn at random, predicting any
//! of theirs.

use std::collections::HashMap;

use super::examples::{user_data, TrainingData};
use super::options::DnnOptions;
use super::state::DnnState;
use super::train::{self, Control, DnnRunStats, Schedule};
use super::vocab::FeatureVocab;
use crate::train::rng::Rng;
use crate::train::round::{Histories, Stopped};

/// What a DNN round did (beside the generation, reported by the store's
/// `TrainReport`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DnnRound {
    pub full: bool,
    pub new_events: u64,
    pub new_items: usize,
    pub fresh_users: usize,
    pub replayed_users: usize,
    pub epochs: usize,
    pub run: DnnRunStats,
}

/// Trains the next state from `current`; None if nothing is new (and the
/// round is not full), Some(Err) if stopped.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    current: &DnnState,
    users: &Histories,
    features: &HashMap<u64, Vec<(String, String)>>,
    cut: u64,
    opts: &DnnOptions,
    full: bool,
    keep_going: &(dyn Fn() -> bool + Sync),
    progress: &(dyn Fn(f64) + Sync),
) -> Option<Result<(DnnState, DnnRound), Stopped>> {
    let watermark = current.watermark;
    let new_events: u64 = users
        .iter()
        .map(|u| u.events.iter().filter(|e| e.seq >= watermark).count() as u64)
        .sum();
    let full = full || current.generation == 0;
    if new_events == 0 && !full {
        return None;
    }
    let no_features: Vec<(String, String)> = Vec::new();
    let features_of = |user: u64| features.get(&user).unwrap_or(&no_features).as_slice();
    let seed = opts.seed ^ current.rounds.wrapping_mul(0x9E37_79B9);
    let mut next = current.clone();
    let known = next.len();
    if full {
        next.features = FeatureVocab::build(users.iter().map(|u| features_of(u.user)));
        next.build_tower(opts, seed);
    } else {
        let before = next.features.extend(users.iter().map(|u| features_of(u.user)));
        grow_feature_tables(&mut next, &before, seed);
    }
    next.counts.iter_mut().for_each(|c| *c = 0);
    let mut events: Vec<Vec<(u32, u64, u64)>> = Vec::with_capacity(users.len());
    for u in users {
        let seq: Vec<(u32, u64, u64)> = u
            .events
            .iter()
            .map(|e| (next.intern(e.item, seed), e.ts, e.seq))
            .collect();
        for &(i, ..) in &seq {
            next.counts[i as usize] += 1;
        }
        events.push(seq);
    }
    if full {
        next.reinitialise_items(seed);
    }
    let times = users.iter().flat_map(|u| u.events.iter().map(|e| e.ts));
    let (earliest, latest) = times.fold((u64::MAX, 0u64), |(lo, hi), t| (lo.min(t), hi.max(t)));
    next.latest_ts = latest;
    next.age_span = latest.saturating_sub(earliest).max(1) as f64;

    let mut data = TrainingData {
        users: Vec::with_capacity(users.len()),
        latest_ts: next.latest_ts,
        age_span: next.age_span,
    };
    let (mut fresh, mut replayed) = (0, 0);
    if full {
        for (u, e) in users.iter().zip(&events) {
            data.users.push(user_data(e, features_of(u.user), &next.features, 0));
        }
        fresh = users.len();
    } else {
        let mut old = Vec::new();
        for (u, e) in users.iter().zip(&events) {
            if e.iter().any(|&(_, _, seq)| seq >= watermark) {
                data.users
                    .push(user_data(e, features_of(u.user), &next.features, watermark));
                fresh += 1;
            } else {
                old.push((u.user, e));
            }
        }
        let want = ((fresh as f64 * opts.replay_ratio).ceil() as usize).min(old.len());
        let mut rng = Rng::new(opts.seed, 0x5245_504C ^ current.rounds);
        for i in 0..want {
            let j = i + rng.below((old.len() - i) as u32) as usize;
            old.swap(i, j);
            let (user, e) = old[i];
            data.users.push(user_data(e, features_of(user), &next.features, 0));
        }
        replayed = want;
    }
    let schedule = Schedule {
        epochs: if full { opts.epochs } else { opts.incremental_epochs },
        learning_rate: if full {
            opts.learning_rate
        } else {
            opts.incremental_learning_rate
        },
        seed,
    };
    let control = Control { keep_going, progress };
    let Some(run) = train::train(&mut next, &data, opts, &schedule, &control) else {
        return Some(Err(Stopped));
    };
    next.generation += 1;
    next.watermark = cut;
    next.rounds += 1;
    let round = DnnRound {
        full,
        new_events,
        new_items: next.len() - known,
        fresh_users: fresh,
        replayed_users: replayed,
        epochs: schedule.epochs,
        run,
    };
    Some(Ok((next, round)))
}

/// Rows for the feature values a round added (small random embeddings,
/// zero moments).
fn grow_feature_tables(state: &mut DnnState, before: &[usize], seed: u64) {
    let f = state.feature_dim;
    let scale = 0.5 / f as f32;
    for (k, key) in state.features.keys.iter().enumerate() {
        let (old, new) = (before[k], key.rows());
        if new <= old {
            continue;
        }
        let mut rng = Rng::new(seed, 0x4645_4154 ^ k as u64);
        state.params.features[k].extend((0..(new - old) * f).map(|_| (rng.next_f32() * 2.0 - 1.0) * scale));
        for moments in [&mut state.adam.m, &mut state.adam.v] {
            moments.features[k].extend(std::iter::repeat_n(0.0, (new - old) * f));
        }
    }
}
