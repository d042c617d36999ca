//! Distance kernels, shared by the search (`query`) and the trainer
//! (`train`): a leaf module, so neither imports the other.
//!
//! The arithmetic is written once (`isa.rs`) and compiled for each
//! instruction-set level; `dispatch.rs` picks the level from the CPU at run
//! time, so the speed does not depend on the `target-cpu` the crate was
//! built with. Hot loops (a scan over a segment's rows, a training step) are
//! dispatched once per call on many rows, not once per dot product.

mod dispatch;
pub(crate) mod gemm;
mod isa;

pub use dispatch::{simd_level, SimdLevel};
pub(crate) use isa::{dispatch, Isa, Portable, WithIsa};

use crate::metric::Metric;

/// Adds `weight * row / |row|` to `acc`: one term of the pooled mean of
/// unit vectors that a user query (`Query::user`) and a new item's
/// provisional vector both build from recent items. Returns false, adding
/// nothing, for a row of zero norm.
pub(crate) fn add_unit(acc: &mut [f32], row: &[f32], weight: f32) -> bool {
    let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return false;
    }
    let scale = weight / norm;
    acc.iter_mut().zip(row).for_each(|(a, x)| *a += x * scale);
    true
}

/// Scores of consecutive `query.len()`-wide rows of `rows` into `out` (one
/// per row; `out` is as long as the rows it scores).
#[inline]
pub(crate) fn score_rows(metric: Metric, query: &[f32], rows: &[f32], out: &mut [f32]) {
    struct ScoreRows<'a> {
        metric: Metric,
        query: &'a [f32],
        rows: &'a [f32],
        out: &'a mut [f32],
    }
    impl WithIsa for ScoreRows<'_> {
        type Output = ();
        #[inline(always)]
        fn run<I: Isa>(self) {
            let dim = self.query.len().max(1);
            let rows = self.rows.chunks_exact(dim);
            match self.metric {
                Metric::Cosine | Metric::InnerProduct => {
                    for (row, s) in rows.zip(self.out.iter_mut()) {
                        *s = I::dot(self.query, row);
                    }
                }
                Metric::L2 => {
                    for (row, s) in rows.zip(self.out.iter_mut()) {
                        *s = I::l2_squared(self.query, row);
                    }
                }
            }
        }
    }
    dispatch(ScoreRows {
        metric,
        query,
        rows,
        out,
    })
}

/// The cosine between `query` (a unit vector) and the first
/// `query.len()` components of each `stride`-wide row of `rows`, into `out`
/// (0 for a row whose prefix is all zeros).
#[inline]
pub(crate) fn cosine_prefix_rows(query: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    struct CosinePrefix<'a> {
        query: &'a [f32],
        rows: &'a [f32],
        stride: usize,
        out: &'a mut [f32],
    }
    impl WithIsa for CosinePrefix<'_> {
        type Output = ();
        #[inline(always)]
        fn run<I: Isa>(self) {
            let d = self.query.len();
            for (row, s) in self.rows.chunks_exact(self.stride.max(1)).zip(self.out.iter_mut()) {
                let prefix = &row[..d.min(row.len())];
                let norm = I::dot(prefix, prefix).sqrt();
                *s = if norm > 0.0 {
                    I::dot(self.query, prefix) / norm
                } else {
                    0.0
                };
            }
        }
    }
    dispatch(CosinePrefix {
        query,
        rows,
        stride,
        out,
    })
}

/// `exp` of every value in place (relative error under 2e-7 for arguments
/// in [-87, 88]; below, 0; above, the largest finite power): a polynomial
/// after range reduction, which the compiler vectorises, unlike libm's
/// `expf`. The sampled softmax's exponentials.
#[inline]
pub(crate) fn exp_in_place(xs: &mut [f32]) {
    struct Exp<'a>(&'a mut [f32]);
    impl WithIsa for Exp<'_> {
        type Output = ();
        #[inline(always)]
        fn run<I: Isa>(self) {
            for x in self.0.iter_mut() {
                *x = exp_approx(*x);
            }
        }
    }
    dispatch(Exp(xs))
}

/// `e^x = 2^n e^r` with `n = round(x / ln 2)` and `|r| <= ln 2 / 2`, `e^r`
/// by its Taylor polynomial to degree 7 (error below 2e-8 on that range).
#[inline(always)]
fn exp_approx(x: f32) -> f32 {
    if x < -87.0 {
        return 0.0;
    }
    let x = x.min(88.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    // ln 2 in two parts, so that `n * ln 2` loses nothing.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
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
    use super::isa::Portable;
    use super::*;

    fn naive(a: &[f32], b: &[f32]) -> (f64, f64) {
        let dot = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let l2 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
        (dot, l2)
    }

    fn check<I: Isa>(name: &str) {
        for dim in [1usize, 7, 8, 9, 15, 16, 17, 64, 67, 128] {
            let a: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.11).cos()).collect();
            let (want_dot, want_l2) = naive(&a, &b);
            assert!((I::dot(&a, &b) as f64 - want_dot).abs() < 1e-4, "{name} dot dim {dim}");
            assert!(
                (I::l2_squared(&a, &b) as f64 - want_l2).abs() < 1e-4,
                "{name} l2 dim {dim}"
            );
            let mut y = vec![3.0f32; dim];
            I::axpy(-2.0, &a, &mut y);
            for i in 0..dim {
                assert!((y[i] - (3.0 - 2.0 * a[i])).abs() < 1e-6, "{name} axpy dim {dim}");
            }
            let (mut dx, mut dy) = (vec![1.0f32; dim], vec![2.0f32; dim]);
            I::axpy_pair(0.5, &a, &b, &mut dx, &mut dy);
            for i in 0..dim {
                assert!(
                    (dx[i] - (1.0 + 0.5 * b[i])).abs() < 1e-6,
                    "{name} axpy_pair dx dim {dim}"
                );
                assert!(
                    (dy[i] - (2.0 + 0.5 * a[i])).abs() < 1e-6,
                    "{name} axpy_pair dy dim {dim}"
                );
            }
        }
    }

    #[test]
    fn every_level_the_cpu_runs_matches_naive_sums_for_all_tail_lengths() {
        check::<Portable>("portable");
        #[cfg(target_arch = "x86_64")]
        {
            // Called inside each level's target_feature entry point, as the
            // store calls them, and only where the CPU has the level.
            struct Check;
            impl WithIsa for Check {
                type Output = ();
                #[inline(always)]
                fn run<I: Isa>(self) {
                    check::<I>("dispatched");
                }
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has the features (checked just above).
                unsafe { isa::run_avx2(Check) };
            }
        }
    }

    #[test]
    fn exp_is_close_to_libm_over_the_range_that_matters() {
        let mut xs: Vec<f32> = (0..20_000).map(|i| -87.0 + i as f32 * (175.0 / 20_000.0)).collect();
        let want: Vec<f32> = xs.iter().map(|x| x.exp()).collect();
        exp_in_place(&mut xs);
        for (got, w) in xs.iter().zip(&want) {
            assert!(((got - w) / w).abs() < 2e-6, "{got} vs {w}");
        }
        let mut edges = [-1000.0f32, -88.0, 0.0, 1000.0];
        exp_in_place(&mut edges);
        assert_eq!(edges[0], 0.0);
        assert!(edges[1] < 1e-37);
        assert_eq!(edges[2], 1.0);
        assert!(edges[3].is_finite() && edges[3] > 1e38);
    }

    #[test]
    fn score_rows_scores_every_row_under_each_metric() {
        let dim = 19;
        let query: Vec<f32> = (0..dim).map(|i| i as f32 * 0.1).collect();
        let rows: Vec<f32> = (0..dim * 37).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        for metric in [Metric::InnerProduct, Metric::L2] {
            let mut out = vec![0f32; 37];
            score_rows(metric, &query, &rows, &mut out);
            for (r, s) in out.iter().enumerate() {
                let (d, l2) = naive(&query, &rows[r * dim..][..dim]);
                let want = if metric == Metric::L2 { l2 } else { d };
                assert!((*s as f64 - want).abs() < 1e-3, "{metric:?} row {r}: {s} vs {want}");
            }
        }
    }
}
