//! Sampled softmax with the log-Q correction (Jean et al. 2015; Bengio and
//! Senecal 2008), the loss the YouTube DNN trains with.
//!
//! For user vector `u` and its positive item `p`, and negatives `S` drawn
//! (shared by the batch) from a proposal `Q`, the logits are
//! `o_j = u . v_j + b_j - ln(|S| Q(j))` for `j` in `{p} + S`, a negative
//! equal to `p` (an accidental hit) is masked out, and the loss is the
//! cross entropy `-o_p + ln sum_j exp(o_j)`. Subtracting `ln(|S| Q(j))`
//! (the log of `j`'s expected count among the draws) makes the sampled
//! softmax's gradient an estimate of the full softmax's (tested below
//! against the full softmax on a small catalogue). With `P` the softmax of
//! the logits: `dL/do_p = P_p - 1`, `dL/do_j = P_j`, then
//! `dL/du = sum_j dL/do_j v_j`, `dL/dv_j = dL/do_j u`, `dL/db_j = dL/do_j`.

use crate::kernels::exp_in_place;
use crate::kernels::gemm::{gemm, Operand};

/// The negatives of one batch, gathered.
pub(crate) struct Negatives<'a> {
    /// Vocabulary indices of the draws (repeats allowed).
    pub items: &'a [u32],
    /// Their output vectors, `items.len() x dim`, and biases.
    pub vectors: &'a [f32],
    pub bias: &'a [f32],
    /// `ln(|S| Q(j))` of each draw.
    pub log_q: &'a [f32],
    /// (item, draw index) of every draw, sorted: where an item was drawn,
    /// to mask accidental hits ([`drawn_at`]).
    pub by_item: &'a [(u32, u32)],
}

/// `by_item` of [`Negatives`] for `items`.
pub(crate) fn drawn_at(items: &[u32], out: &mut Vec<(u32, u32)>) {
    out.clear();
    out.extend(items.iter().enumerate().map(|(j, &i)| (i, j as u32)));
    out.sort_unstable();
}

/// The positives of a batch (one per example), gathered.
pub(crate) struct Positives<'a> {
    pub items: &'a [u32],
    pub vectors: &'a [f32],
    pub bias: &'a [f32],
    pub log_q: &'a [f32],
}

/// Gradients of the summed loss over a batch.
#[derive(Debug, Default)]
pub(crate) struct SoftmaxGrads {
    /// `rows x dim`: with respect to each user vector.
    pub du: Vec<f32>,
    /// `rows x dim` and `rows`: each positive's vector and bias.
    pub d_pos: Vec<f32>,
    pub d_pos_bias: Vec<f32>,
    /// `negatives x dim` and `negatives`: each draw's vector and bias.
    pub d_neg: Vec<f32>,
    pub d_neg_bias: Vec<f32>,
    /// Scratch: the logits, then their gradients; each draw's offset.
    logits: Vec<f32>,
    offsets: Vec<f32>,
}

/// The summed loss of the batch `u` (`rows x dim`) and its gradients.
pub(crate) fn sampled_softmax(
    u: &[f32],
    rows: usize,
    dim: usize,
    pos: &Positives<'_>,
    neg: &Negatives<'_>,
    g: &mut SoftmaxGrads,
) -> f64 {
    let s = neg.items.len();
    g.logits.clear();
    g.logits.resize(rows * s, 0.0);
    if s > 0 {
        gemm(
            Operand::new(&u[..rows * dim], rows, dim),
            Operand::new(neg.vectors, s, dim).t(),
            0.0,
            &mut g.logits,
        );
    }
    g.du.clear();
    g.du.resize(rows * dim, 0.0);
    g.d_pos.clear();
    g.d_pos.resize(rows * dim, 0.0);
    g.d_pos_bias.clear();
    g.d_pos_bias.resize(rows, 0.0);
    // Each draw's logit offset; accidental hits are found in `by_item`
    // rather than tested for at every logit.
    g.offsets.clear();
    g.offsets.extend(neg.bias.iter().zip(neg.log_q).map(|(b, q)| b - q));
    let mut loss = 0.0f64;
    for r in 0..rows {
        let ur = &u[r * dim..][..dim];
        let p = pos.items[r];
        let o_pos = dot(ur, &pos.vectors[r * dim..][..dim]) + pos.bias[r] - pos.log_q[r];
        let logits = &mut g.logits[r * s..][..s];
        for (o, off) in logits.iter_mut().zip(&g.offsets) {
            *o += off;
        }
        let first = neg.by_item.partition_point(|&(item, _)| item < p);
        for &(_, j) in neg.by_item[first..].iter().take_while(|&&(item, _)| item == p) {
            logits[j as usize] = f32::NEG_INFINITY;
        }
        let max = logits.iter().fold(o_pos, |m, &o| m.max(o));
        // Softmax over {p} + S, stable; the logits become dL/do.
        for o in logits.iter_mut() {
            *o -= max;
        }
        exp_in_place(logits);
        let e_pos = ((o_pos - max) as f64).exp();
        let total = e_pos + logits.iter().map(|&e| e as f64).sum::<f64>();
        loss += -(o_pos - max) as f64 + total.ln();
        let d_pos = (e_pos / total) as f32 - 1.0;
        let inv = (1.0 / total) as f32;
        for o in logits.iter_mut() {
            *o *= inv;
        }
        // The positive's part of du, dv_p and db_p.
        let du = &mut g.du[r * dim..][..dim];
        for (d, v) in du.iter_mut().zip(&pos.vectors[r * dim..][..dim]) {
            *d += d_pos * v;
        }
        for (dv, x) in g.d_pos[r * dim..][..dim].iter_mut().zip(ur) {
            *dv = d_pos * x;
        }
        g.d_pos_bias[r] = d_pos;
    }
    g.d_neg.clear();
    g.d_neg.resize(s * dim, 0.0);
    g.d_neg_bias.clear();
    g.d_neg_bias.resize(s, 0.0);
    if s > 0 {
        // du += dO V_S; dV_S = dO^T U; db_S = column sums of dO.
        gemm(
            Operand::new(&g.logits, rows, s),
            Operand::new(neg.vectors, s, dim),
            1.0,
            &mut g.du,
        );
        gemm(
            Operand::new(&g.logits, rows, s).t(),
            Operand::new(&u[..rows * dim], rows, dim),
            0.0,
            &mut g.d_neg,
        );
        for row in g.logits.chunks_exact(s) {
            for (db, d) in g.d_neg_bias.iter_mut().zip(row) {
                *db += d;
            }
        }
    }
    loss
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::rng::Rng;

    fn random(n: usize, rng: &mut Rng, scale: f32) -> Vec<f32> {
        (0..n).map(|_| (rng.next_f32() * 2.0 - 1.0) * scale).collect()
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (rows, dim, s) = (3, 4, 5);
        let mut rng = Rng::new(4, 0);
        let u = random(rows * dim, &mut rng, 1.0);
        let pos_v = random(rows * dim, &mut rng, 1.0);
        let pos_b = random(rows, &mut rng, 0.5);
        let neg_v = random(s * dim, &mut rng, 1.0);
        let neg_b = random(s, &mut rng, 0.5);
        let log_q = random(s, &mut rng, 0.5);
        let pos_q = random(rows, &mut rng, 0.5);
        // Negative 2 is an accidental hit of row 1's positive.
        let pos_items = [10, 12, 14];
        let neg_items = [1, 2, 12, 3, 4];
        let run = |u: &[f32], pv: &[f32], pb: &[f32], nv: &[f32], nb: &[f32], g: &mut SoftmaxGrads| {
            let pos = Positives {
                items: &pos_items,
                vectors: pv,
                bias: pb,
                log_q: &pos_q,
            };
            let mut by_item = Vec::new();
            drawn_at(&neg_items, &mut by_item);
            let neg = Negatives {
                items: &neg_items,
                vectors: nv,
                bias: nb,
                log_q: &log_q,
                by_item: &by_item,
            };
            sampled_softmax(u, rows, dim, &pos, &neg, g)
        };
        let mut g = SoftmaxGrads::default();
        run(&u, &pos_v, &pos_b, &neg_v, &neg_b, &mut g);
        let (du, dpv, dpb, dnv, dnb) = (
            g.du.clone(),
            g.d_pos.clone(),
            g.d_pos_bias.clone(),
            g.d_neg.clone(),
            g.d_neg_bias.clone(),
        );
        // Alone, row 1 (whose positive is negative 2) gives that draw nothing.
        let pos1 = Positives {
            items: &pos_items[1..2],
            vectors: &pos_v[dim..2 * dim],
            bias: &pos_b[1..2],
            log_q: &pos_q[1..2],
        };
        let mut by_item = Vec::new();
        drawn_at(&neg_items, &mut by_item);
        let neg_all = Negatives {
            items: &neg_items,
            vectors: &neg_v,
            bias: &neg_b,
            log_q: &log_q,
            by_item: &by_item,
        };
        let mut alone = SoftmaxGrads::default();
        sampled_softmax(&u[dim..2 * dim], 1, dim, &pos1, &neg_all, &mut alone);
        assert!(
            alone.d_neg[2 * dim..3 * dim].iter().all(|&x| x == 0.0),
            "an accidental hit gets no gradient"
        );
        assert_eq!(alone.d_neg_bias[2], 0.0);
        assert!(alone.d_neg[..dim].iter().any(|&x| x != 0.0));
        let h = 1e-3f32;
        let mut scratch = SoftmaxGrads::default();
        let mut numeric = |which: usize, i: usize| {
            let mut args = [u.clone(), pos_v.clone(), pos_b.clone(), neg_v.clone(), neg_b.clone()];
            args[which][i] += h;
            let plus = run(&args[0], &args[1], &args[2], &args[3], &args[4], &mut scratch);
            args[which][i] -= 2.0 * h;
            let minus = run(&args[0], &args[1], &args[2], &args[3], &args[4], &mut scratch);
            (plus - minus) / (2.0 * h as f64)
        };
        for (which, analytic) in [(0, &du), (1, &dpv), (2, &dpb), (3, &dnv), (4, &dnb)] {
            for (i, a) in analytic.iter().enumerate() {
                let n = numeric(which, i);
                assert!((n - *a as f64).abs() < 2e-3, "arg {which} [{i}]: {n} vs {a}");
            }
        }
    }

    /// The full softmax's gradient with respect to `u` over a small
    /// catalogue, against the mean of many sampled-softmax gradients: with
    /// the log-Q correction they agree; without it the estimate is biased
    /// toward the items the proposal favours.
    #[test]
    fn the_log_q_correction_makes_the_sampled_gradient_track_the_full_one() {
        let (n, dim, s) = (50usize, 8usize, 10usize);
        let mut rng = Rng::new(21, 0);
        let v = random(n * dim, &mut rng, 1.0);
        let b = random(n, &mut rng, 0.3);
        let u = random(dim, &mut rng, 1.0);
        let p = 7u32;
        // A skewed proposal: Q(j) proportional to (j + 1)^-1.
        let weights: Vec<f64> = (0..n).map(|j| 1.0 / (j as f64 + 1.0)).collect();
        let total: f64 = weights.iter().sum();
        let q: Vec<f64> = weights.iter().map(|w| w / total).collect();
        // The full softmax's gradient: sum_j (P_j - [j = p]) v_j.
        let logits: Vec<f64> = (0..n)
            .map(|j| (0..dim).map(|i| u[i] as f64 * v[j * dim + i] as f64).sum::<f64>() + b[j] as f64)
            .collect();
        let max = logits.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = logits.iter().map(|o| (o - max).exp()).sum();
        let mut full = vec![0f64; dim];
        for j in 0..n {
            let pj = (logits[j] - max).exp() / z - if j as u32 == p { 1.0 } else { 0.0 };
            for i in 0..dim {
                full[i] += pj * v[j * dim + i] as f64;
            }
        }
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for x in &q {
            acc += x;
            cdf.push(acc);
        }
        let draw = |rng: &mut Rng| {
            let x = rng.next_f32() as f64;
            cdf.iter().position(|&c| c > x).unwrap_or(n - 1) as u32
        };
        let trials = 20_000;
        let estimate = |corrected: bool, rng: &mut Rng| {
            let mut mean = vec![0f64; dim];
            let mut g = SoftmaxGrads::default();
            for _ in 0..trials {
                let items: Vec<u32> = (0..s).map(|_| draw(rng)).collect();
                let vectors: Vec<f32> = items
                    .iter()
                    .flat_map(|&j| v[j as usize * dim..][..dim].to_vec())
                    .collect();
                let bias: Vec<f32> = items.iter().map(|&j| b[j as usize]).collect();
                let lq = |j: u32| {
                    if corrected {
                        (s as f64 * q[j as usize]).ln() as f32
                    } else {
                        0.0
                    }
                };
                let log_q: Vec<f32> = items.iter().map(|&j| lq(j)).collect();
                let pos = Positives {
                    items: &[p],
                    vectors: &v[p as usize * dim..][..dim],
                    bias: &b[p as usize..][..1],
                    log_q: &[lq(p)],
                };
                let mut by_item = Vec::new();
                drawn_at(&items, &mut by_item);
                let neg = Negatives {
                    items: &items,
                    vectors: &vectors,
                    bias: &bias,
                    log_q: &log_q,
                    by_item: &by_item,
                };
                sampled_softmax(&u, 1, dim, &pos, &neg, &mut g);
                for (m, d) in mean.iter_mut().zip(&g.du) {
                    *m += *d as f64 / trials as f64;
                }
            }
            mean
        };
        let cosine = |a: &[f64], b: &[f64]| {
            let d: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            d / (a.iter().map(|x| x * x).sum::<f64>().sqrt() * b.iter().map(|x| x * x).sum::<f64>().sqrt())
        };
        let error = |a: &[f64]| {
            a.iter().zip(&full).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt()
                / full.iter().map(|y| y * y).sum::<f64>().sqrt()
        };
        let corrected = estimate(true, &mut rng);
        let uncorrected = estimate(false, &mut rng);
        assert!(
            cosine(&corrected, &full) > 0.98,
            "corrected cosine {}",
            cosine(&corrected, &full)
        );
        assert!(
            error(&corrected) < error(&uncorrected) / 2.0,
            "relative error corrected {} uncorrected {}",
            error(&corrected),
            error(&uncorrected)
        );
    }
}
