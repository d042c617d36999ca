//! Distance kernels, shared by the search (`query`) and the trainer
//! (`train`): a leaf module, so neither imports the other. Written as eight
//! independent accumulators over `chunks_exact(8)` so the compiler turns
//! them into SIMD (AVX2 + FMA with the crate's `target-cpu`), with no
//! `unsafe`.

use crate::metric::Metric;

#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] = x[i].mul_add(y[i], acc[i]);
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

#[inline]
pub(crate) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] = d.mul_add(d, acc[i]);
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        sum += (x - y) * (x - y);
    }
    sum
}

/// The score of `row` for `query` under `metric`: similarity for cosine and
/// inner product, squared distance for L2.
#[inline]
pub(crate) fn score(metric: Metric, query: &[f32], row: &[f32]) -> f32 {
    match metric {
        Metric::Cosine | Metric::InnerProduct => dot(query, row),
        Metric::L2 => l2_squared(query, row),
    }
}

/// A key that sorts nearer hits higher, whatever the metric.
#[inline]
pub(crate) fn nearness(metric: Metric, score: f32) -> f32 {
    match metric {
        Metric::Cosine | Metric::InnerProduct => score,
        Metric::L2 => -score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_naive_sums_for_all_tail_lengths() {
        for dim in [1usize, 7, 8, 9, 64, 67] {
            let a: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive_dot: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let naive_l2: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
            assert!((dot(&a, &b) as f64 - naive_dot).abs() < 1e-4, "dot dim {dim}");
            assert!((l2_squared(&a, &b) as f64 - naive_l2).abs() < 1e-4, "l2 dim {dim}");
        }
    }
}
