//! Merging the channels of a blended query (`Query::blend`).
//!
//! Each channel is asked for [`DEPTH`] times the blend's `k` candidates.
//! Its scores, turned into nearness (higher is nearer, whatever the
//! metric), are normalised to 0..1 over those candidates: the channel's
//! best is 1, its worst candidate 0 (all 1 when they tie). So a channel's
//! weight means the same whatever its scale (cosines near 0.9, counts in
//! the thousands). An item's blended score is the sum over the channels
//! that found it of weight times normalised score; ties go to the smaller
//! id. Min-max over a deeper list than `k` keeps the `k`-th candidate of a
//! channel above an item the channel did not find at all.

use std::collections::HashMap;

use super::Hit;
use crate::error::{Error, Result};

/// Candidates asked of each channel, as a multiple of the blend's `k`.
pub const DEPTH: usize = 2;

/// Refuses a blend that cannot run: no channels, or a weight that is
/// negative or not finite.
pub(crate) fn check(weights: &[f32]) -> Result<()> {
    if weights.is_empty() {
        return Err(Error::InvalidQuery(
            "a blend needs at least one channel (Query::add)".into(),
        ));
    }
    if let Some(w) = weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
        return Err(Error::InvalidQuery(format!(
            "a blend channel's weight must be finite and at least 0, not {w}"
        )));
    }
    Ok(())
}

/// The blend of `channels` (each: its candidates as (id, nearness), and
/// its weight), best first, at most `k`.
pub(crate) fn merge(channels: &[(Vec<(u64, f32)>, f32)], k: usize) -> Vec<Hit> {
    let mut scores: HashMap<u64, f32> = HashMap::new();
    for (candidates, weight) in channels {
        let (lo, hi) = candidates
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), (_, s)| {
                (lo.min(*s), hi.max(*s))
            });
        let span = hi - lo;
        for (id, s) in candidates {
            let normalised = if span > 0.0 && span.is_finite() {
                (s - lo) / span
            } else {
                1.0
            };
            *scores.entry(*id).or_insert(0.0) += weight * normalised;
        }
    }
    let mut hits: Vec<Hit> = scores.into_iter().map(|(id, score)| Hit { id, score }).collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    hits.truncate(k);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_normalised_per_channel_and_summed() {
        let cosine = vec![(1, 0.9), (2, 0.8), (3, 0.7)];
        let counts = vec![(3, 1000.0), (4, 500.0), (5, 0.0)];
        let hits = merge(&[(cosine, 1.0), (counts, 0.5)], 10);
        let got: Vec<(u64, f32)> = hits.iter().map(|h| (h.id, h.score)).collect();
        // 1: 1.0; 2: 0.5; 3: 0 + 0.5 * 1 = 0.5; 4: 0.5 * 0.5; 5: 0.
        let want = [(1, 1.0), (2, 0.5), (3, 0.5), (4, 0.25), (5, 0.0)];
        assert_eq!(got.len(), want.len());
        for ((id, s), (wid, ws)) in got.iter().zip(want) {
            assert_eq!(*id, wid);
            assert!((s - ws).abs() < 1e-6, "{id}: {s} vs {ws}");
        }
        // No duplicates, k respected.
        assert_eq!(
            merge(&[(vec![(1, 1.0), (2, 0.5)], 1.0), (vec![(1, 3.0)], 1.0)], 1).len(),
            1
        );
    }

    #[test]
    fn ties_and_single_candidates_weigh_fully() {
        let hits = merge(&[(vec![(7, 0.3)], 2.0), (vec![(8, 5.0), (9, 5.0)], 1.0)], 10);
        assert_eq!(hits[0], Hit { id: 7, score: 2.0 });
        assert_eq!((hits[1].id, hits[1].score), (8, 1.0));
        assert_eq!((hits[2].id, hits[2].score), (9, 1.0));
    }

    #[test]
    fn bad_blends_are_refused() {
        assert!(check(&[]).is_err());
        assert!(check(&[1.0, -0.1]).is_err());
        assert!(check(&[f32::NAN]).is_err());
        assert!(check(&[0.0, 1.0]).is_ok());
    }
}
