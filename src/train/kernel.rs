//! The skip-gram negative-sampling step: a batch of context items (their
//! input rows) predicts one target item against negatives shared by the
//! batch, the "HogBatch" form of Ji et al. (2016).
//!
//! For one context row `x` and the target rows `y_t` (the positive first,
//! labels `l_t` = 1 then 0), with `s` the sigmoid, the loss is
//! `L(x) = -log s(x.y_0) - sum_{t>0} log s(-x.y_t)`, with gradients
//! `dL/dx = -sum_t (l_t - s(x.y_t)) y_t` and `dL/dy_t = -(l_t - s(x.y_t)) x`.
//! [`sgns_batch`] takes one gradient step of size `alpha` on the sum of the
//! batch's losses, all parameters at once (from the values before the
//! step). With a batch of one it is exactly word2vec's per-pair update.
//! Batching is what makes the trainer fast and lets threads scale: each
//! target and negative row is read and written once per batch instead of
//! once per pair, and the popular rows, which every thread touches, are the
//! targets and negatives.

use super::hogwild::{add_to_row, load_row, HogwildMatrix};
use super::sigmoid::{SigmoidFn, MAX_EXP};
use crate::kernels::{dispatch, Isa, WithIsa};

/// Context rows per batch: bounds how many pair gradients are summed into
/// one step of a target row (large sums from whole-history contexts would
/// overshoot) and keeps the buffers in L1.
pub(crate) const MAX_BATCH: usize = 16;

/// Per-thread buffers, so a step allocates nothing.
pub(crate) struct Scratch {
    y: Vec<f32>,
    dx: Vec<f32>,
    dy: Vec<f32>,
    /// Scores, then gradient coefficients, of the batch (contexts x targets).
    g: Vec<f32>,
}

impl Scratch {
    pub fn new(dim: usize, max_targets: usize) -> Self {
        Scratch {
            y: vec![0.0; dim * max_targets],
            dx: vec![0.0; dim * MAX_BATCH],
            dy: vec![0.0; dim * max_targets],
            g: vec![0.0; MAX_BATCH * max_targets],
        }
    }
}

/// One SGNS step: the context rows `x` (at most [`MAX_BATCH`] rows of
/// `dim`, the caller's copies of input rows, updated in place) against
/// `targets` of `output` (the positive target first, then the negatives).
/// Row `skip` of `x`, if any, sits out (it is the target's own position).
/// Runs on the instruction-set level detected at run time.
#[inline]
pub(crate) fn sgns_batch(
    x: &mut [f32],
    skip: Option<usize>,
    output: &HogwildMatrix<'_>,
    targets: &[u32],
    alpha: f32,
    sigmoid: &SigmoidFn,
    scratch: &mut Scratch,
) {
    dispatch(Step {
        x,
        skip,
        output,
        targets,
        alpha,
        sigmoid,
        scratch,
    })
}

/// The arguments of one [`sgns_batch`], run on a level.
struct Step<'s, 'm> {
    x: &'s mut [f32],
    skip: Option<usize>,
    output: &'s HogwildMatrix<'m>,
    targets: &'s [u32],
    alpha: f32,
    sigmoid: &'s SigmoidFn,
    scratch: &'s mut Scratch,
}

impl WithIsa for Step<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<I: Isa>(self) {
        step::<I>(self)
    }
}

#[inline(always)]
fn step<I: Isa>(
    Step {
        x,
        skip,
        output,
        targets,
        alpha,
        sigmoid,
        scratch,
    }: Step<'_, '_>,
) {
    let dim = output.dim();
    let (c, t) = ((x.len() / dim).min(MAX_BATCH), targets.len());
    let x = &mut x[..c * dim];
    let Scratch { y, dx, dy, g } = scratch;
    for buf in [&mut *y, &mut *dy] {
        if buf.len() < t * dim {
            buf.resize(t * dim, 0.0);
        }
    }
    if g.len() < c * t {
        g.resize(c * t, 0.0);
    }
    let (dx, g) = (&mut dx[..c * dim], &mut g[..c * t]);
    let (y, dy) = (&mut y[..t * dim], &mut dy[..t * dim]);
    for (&r, buf) in targets.iter().zip(y.chunks_exact_mut(dim)) {
        load_row::<I>(output.row(r), buf);
    }
    // Scores first, gradients next, then the updates: the dot products are
    // independent of each other, so the core overlaps them instead of
    // waiting on each one's reduction and sigmoid in turn.
    for (xr, gs) in x.chunks_exact(dim).zip(g.chunks_exact_mut(t)) {
        for (yr, gk) in y.chunks_exact(dim).zip(gs.iter_mut()) {
            *gk = I::dot(xr, yr);
        }
    }
    for (row, gs) in g.chunks_exact_mut(t).enumerate() {
        if skip == Some(row) {
            gs.fill(0.0);
            continue;
        }
        for (k, gk) in gs.iter_mut().enumerate() {
            let label = if k == 0 { 1.0 } else { 0.0 };
            let f = *gk;
            *gk = if f > MAX_EXP {
                label - 1.0
            } else if f < -MAX_EXP {
                label
            } else {
                label - sigmoid.eval(f)
            } * alpha;
        }
    }
    dx.fill(0.0);
    dy.fill(0.0);
    for ((xr, dxr), gs) in x.chunks_exact(dim).zip(dx.chunks_exact_mut(dim)).zip(g.chunks_exact(t)) {
        for ((yr, dyr), &gk) in y.chunks_exact(dim).zip(dy.chunks_exact_mut(dim)).zip(gs) {
            I::axpy_pair(gk, xr, yr, dxr, dyr);
        }
    }
    for (xi, di) in x.iter_mut().zip(dx.iter()) {
        *xi += di;
    }
    for (&r, d) in targets.iter().zip(dy.chunks_exact(dim)) {
        add_to_row::<I>(output.row(r), d);
    }
}

/// The SGNS loss of one pair (see the module comment), in f64.
#[cfg(test)]
pub(crate) fn pair_loss(x: &[f32], ys: &[&[f32]]) -> f64 {
    ys.iter()
        .enumerate()
        .map(|(t, y)| {
            let f: f64 = x.iter().zip(y.iter()).map(|(a, b)| *a as f64 * *b as f64).sum();
            let s = 1.0 / (1.0 + (-f).exp());
            if t == 0 {
                -s.ln()
            } else {
                -(1.0 - s).ln()
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::super::rng::Rng;
    use super::super::sigmoid::Sigmoid;
    use super::*;

    fn random(n: usize, rng: &mut Rng) -> Vec<f32> {
        (0..n).map(|_| rng.next_f32() - 0.5).collect()
    }

    /// The analytic gradient of the module comment against central finite
    /// differences of `pair_loss`, for the input row and every output row.
    fn analytic_gradient(x: &[f32], ys: &[&[f32]]) -> (Vec<f64>, Vec<Vec<f64>>) {
        let mut gx = vec![0.0; x.len()];
        let mut gys = Vec::new();
        for (t, y) in ys.iter().enumerate() {
            let label = if t == 0 { 1.0 } else { 0.0 };
            let f: f64 = x.iter().zip(y.iter()).map(|(a, b)| *a as f64 * *b as f64).sum();
            let coef = -(label - 1.0 / (1.0 + (-f).exp()));
            for i in 0..x.len() {
                gx[i] += coef * y[i] as f64;
            }
            gys.push(x.iter().map(|&xi| coef * xi as f64).collect());
        }
        (gx, gys)
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let mut rng = Rng::new(11, 0);
        let dim = 13;
        let x = random(dim, &mut rng);
        let rows: Vec<Vec<f32>> = (0..4)
            .map(|_| random(dim, &mut rng).iter().map(|v| v * 4.0).collect())
            .collect();
        let ys: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let (gx, gys) = analytic_gradient(&x, &ys);
        let h = 1e-3f32;
        for i in 0..dim {
            let (mut plus, mut minus) = (x.clone(), x.clone());
            plus[i] += h;
            minus[i] -= h;
            let numeric = (pair_loss(&plus, &ys) - pair_loss(&minus, &ys)) / (2.0 * h as f64);
            assert!((numeric - gx[i]).abs() < 1e-3, "dL/dx[{i}]: {numeric} vs {}", gx[i]);
        }
        for t in 0..rows.len() {
            for i in 0..dim {
                let (mut plus, mut minus) = (rows.clone(), rows.clone());
                plus[t][i] += h;
                minus[t][i] -= h;
                let lp = pair_loss(&x, &plus.iter().map(Vec::as_slice).collect::<Vec<_>>());
                let lm = pair_loss(&x, &minus.iter().map(Vec::as_slice).collect::<Vec<_>>());
                let numeric = (lp - lm) / (2.0 * h as f64);
                assert!(
                    (numeric - gys[t][i]).abs() < 1e-3,
                    "dL/dy{t}[{i}]: {numeric} vs {}",
                    gys[t][i]
                );
            }
        }
    }

    /// `sgns_batch` with the exact sigmoid moves every context row by
    /// `-alpha` times its own gradient, and every target row by `-alpha`
    /// times the sum of its gradients over the batch; the summed loss falls.
    /// With one context this is word2vec's per-pair step.
    #[test]
    fn batch_step_is_a_gradient_step_that_lowers_the_loss() {
        for contexts in [&[1u32][..], &[0, 2, 1]] {
            let mut rng = Rng::new(5, contexts.len() as u64);
            let dim = 20;
            let mut input = random(3 * dim, &mut rng);
            let mut output = random(5 * dim, &mut rng);
            let targets = [2u32, 0, 4, 1];
            let alpha = 0.05f32;
            let (in_before, out_before) = (input.clone(), output.clone());
            let ys_before: Vec<&[f32]> = targets
                .iter()
                .map(|&t| &out_before[t as usize * dim..][..dim])
                .collect();
            let row = |m: &[f32], r: u32| m[r as usize * dim..][..dim].to_vec();
            let loss_before: f64 = contexts
                .iter()
                .map(|&c| pair_loss(&row(&in_before, c), &ys_before))
                .sum();
            let mut want_out: Vec<f64> = out_before.iter().map(|&v| v as f64).collect();
            for &c in contexts {
                let (gx, gys) = analytic_gradient(&row(&in_before, c), &ys_before);
                let got = row(
                    &input_after(&in_before, &out_before, contexts, &targets, alpha, dim).0,
                    c,
                );
                for i in 0..dim {
                    let want = in_before[c as usize * dim + i] as f64 - alpha as f64 * gx[i];
                    assert!((got[i] as f64 - want).abs() < 1e-5, "context {c} [{i}]");
                }
                for (t, &target) in targets.iter().enumerate() {
                    for i in 0..dim {
                        want_out[target as usize * dim + i] -= alpha as f64 * gys[t][i];
                    }
                }
            }
            (input, output) = input_after(&in_before, &out_before, contexts, &targets, alpha, dim);
            for (i, (&got, want)) in output.iter().zip(&want_out).enumerate() {
                assert!((got as f64 - want).abs() < 1e-5, "output [{i}]");
            }
            // Output row 3 is no target: untouched.
            assert_eq!(&output[3 * dim..4 * dim], &out_before[3 * dim..4 * dim]);
            let ys_after: Vec<&[f32]> = targets.iter().map(|&t| &output[t as usize * dim..][..dim]).collect();
            let loss_after: f64 = contexts.iter().map(|&c| pair_loss(&row(&input, c), &ys_after)).sum();
            assert!(loss_after < loss_before, "{loss_after} >= {loss_before}");
        }
    }

    fn input_after(
        input: &[f32],
        output: &[f32],
        contexts: &[u32],
        targets: &[u32],
        alpha: f32,
        dim: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        // The caller's copies of the context rows, plus one that sits out.
        let mut x: Vec<f32> = contexts
            .iter()
            .flat_map(|&c| input[c as usize * dim..][..dim].to_vec())
            .collect();
        x.extend(std::iter::repeat_n(9.0, dim));
        let skip = contexts.len();
        let mut output = output.to_vec();
        {
            let outm = HogwildMatrix::new(&mut output, dim);
            let sigmoid = SigmoidFn::new(Sigmoid::Exact);
            sgns_batch(
                &mut x,
                Some(skip),
                &outm,
                targets,
                alpha,
                &sigmoid,
                &mut Scratch::new(dim, targets.len()),
            );
        }
        assert!(
            x[skip * dim..].iter().all(|&v| v == 9.0),
            "the skipped row is untouched"
        );
        let mut input = input.to_vec();
        for (k, &c) in contexts.iter().enumerate() {
            input[c as usize * dim..][..dim].copy_from_slice(&x[k * dim..][..dim]);
        }
        (input, output)
    }
}
