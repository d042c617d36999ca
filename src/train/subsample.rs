//! Subsampling of frequent items, with word2vec's formula: an occurrence of
//! an item with frequency `f = count / total` is kept with probability
//! `(sqrt(f / sample) + 1) * sample / f`, capped at 1. With `sample = 0`
//! every occurrence is kept.

/// Per item, the probability of keeping one occurrence, scaled to u32 so
/// the hot loop compares integers (u32::MAX = always).
pub(crate) fn keep_thresholds(counts: &[u64], sample: f64) -> Vec<u32> {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| (keep_probability(c, total, sample) * u32::MAX as f64) as u32)
        .collect()
}

/// word2vec's keep probability for an item seen `count` times out of `total`.
pub(crate) fn keep_probability(count: u64, total: u64, sample: f64) -> f64 {
    if sample <= 0.0 || count == 0 || total == 0 {
        return 1.0;
    }
    let threshold = sample * total as f64;
    let c = count as f64;
    (((c / threshold).sqrt() + 1.0) * threshold / c).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_matches_word2vec() {
        // f = 0.01, sample = 1e-3: (sqrt(10) + 1) / 10.
        let p = keep_probability(1_000, 100_000, 1e-3);
        assert!((p - (10f64.sqrt() + 1.0) / 10.0).abs() < 1e-12);
        // Rare items are always kept.
        assert_eq!(keep_probability(5, 100_000, 1e-3), 1.0);
        // Off.
        assert_eq!(keep_probability(50_000, 100_000, 0.0), 1.0);
        // Monotone: more frequent, less kept.
        let probs: Vec<f64> = [200, 500, 2_000, 20_000]
            .iter()
            .map(|&c| keep_probability(c, 100_000, 1e-3))
            .collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{probs:?}");
    }

    #[test]
    fn thresholds_scale_probabilities() {
        let t = keep_thresholds(&[1_000, 1, 98_999], 1e-3);
        assert_eq!(t[1], u32::MAX);
        let p0 = t[0] as f64 / u32::MAX as f64;
        assert!((p0 - keep_probability(1_000, 100_000, 1e-3)).abs() < 1e-6);
    }
}
