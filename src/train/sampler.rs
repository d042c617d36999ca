//! Negative sampling: items drawn with probability proportional to
//! `count ^ ns_exponent` (default -0.5, which favours rare items and measured
//! better on MovieLens than word2vec's 0.75; 0 is uniform; see
//! `TrainOptions::ns_exponent`). Walker's alias method: one table lookup and
//! one comparison per draw, exact for any exponent, where word2vec's 1e8
//! slot table only approximates the distribution.

use super::rng::Rng;

pub(crate) struct NegativeSampler {
    /// Probability of keeping slot `i` (scaled to u32) rather than its alias.
    keep: Vec<u32>,
    alias: Vec<u32>,
}

/// The sampling weights `count ^ exponent`, normalised to sum to one.
/// Items with count 0 never get drawn.
pub(crate) fn probabilities(counts: &[u64], exponent: f64) -> Vec<f64> {
    let weights: Vec<f64> = counts
        .iter()
        .map(|&c| if c == 0 { 0.0 } else { (c as f64).powf(exponent) })
        .collect();
    let total: f64 = weights.iter().sum();
    if total <= 0.0 || !total.is_finite() {
        return vec![0.0; counts.len()];
    }
    weights.into_iter().map(|w| w / total).collect()
}

impl NegativeSampler {
    /// A sampler over `counts`; None when no item has a count.
    pub fn new(counts: &[u64], exponent: f64) -> Option<Self> {
        let p = probabilities(counts, exponent);
        let n = p.len();
        if n == 0 || p.iter().all(|&x| x == 0.0) || n > u32::MAX as usize {
            return None;
        }
        // Vose's construction: split slots into under- and over-full.
        let mut scaled: Vec<f64> = p.iter().map(|x| x * n as f64).collect();
        let mut keep = vec![u32::MAX; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            keep[s] = (scaled[s] * u32::MAX as f64) as u32;
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Whatever is left is full up to rounding error.
        Some(NegativeSampler { keep, alias })
    }

    #[inline]
    pub fn draw(&self, rng: &mut Rng) -> u32 {
        let r = rng.next_u64();
        let slot = (((r >> 32) * self.keep.len() as u64) >> 32) as usize;
        if (r as u32) < self.keep[slot] {
            slot as u32
        } else {
            self.alias[slot]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empirical(sampler: &NegativeSampler, n: usize, draws: usize) -> Vec<f64> {
        let mut rng = Rng::new(3, 0);
        let mut hist = vec![0u64; n];
        for _ in 0..draws {
            hist[sampler.draw(&mut rng) as usize] += 1;
        }
        hist.into_iter().map(|h| h as f64 / draws as f64).collect()
    }

    /// The drawn frequencies match `count^e / sum(count^e)` for positive,
    /// zero and negative exponents, to within 5 standard errors.
    #[test]
    fn draws_follow_count_to_the_exponent() {
        let counts: Vec<u64> = vec![1000, 300, 100, 30, 10, 3, 1, 0, 50];
        for exponent in [0.75, 1.0, 0.0, -0.5] {
            let sampler = NegativeSampler::new(&counts, exponent).unwrap();
            let draws = 2_000_000;
            let got = empirical(&sampler, counts.len(), draws);
            for (i, &c) in counts.iter().enumerate() {
                let want = if c == 0 {
                    0.0
                } else {
                    (c as f64).powf(exponent)
                        / counts
                            .iter()
                            .filter(|&&c| c > 0)
                            .map(|&c| (c as f64).powf(exponent))
                            .sum::<f64>()
                };
                let se = (want * (1.0 - want) / draws as f64).sqrt().max(1e-6);
                assert!(
                    (got[i] - want).abs() < 5.0 * se,
                    "exponent {exponent}, item {i}: drew {:.5}, formula {want:.5}",
                    got[i]
                );
            }
        }
    }

    #[test]
    fn negative_exponent_prefers_rare_items() {
        let p = probabilities(&[100, 1], -0.5);
        assert!(p[1] > p[0]);
        assert!((p[0] - 0.1 / 1.1).abs() < 1e-12);
    }

    #[test]
    fn no_counts_no_sampler() {
        assert!(NegativeSampler::new(&[], 0.75).is_none());
        assert!(NegativeSampler::new(&[0, 0], 0.75).is_none());
    }
}
