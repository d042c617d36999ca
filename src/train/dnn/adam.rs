//! Adam (Kingma and Ba, 2015) for the DNN: every tensor of the tower at
//! each step, and, lazily, only the rows of the embedding tables a batch
//! touched (the cost of a step does not grow with the catalogue). The
//! touched rows are split between the threads by row ranges, so each
//! updates its own part of a table.

use super::step::RowGrads;
use crate::kernels::{dispatch, Isa, WithIsa};

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

/// Below this many touched rows a table is updated on one thread.
const PARALLEL_ROWS: usize = 256;

/// One step's constants.
pub(crate) struct AdamStep {
    lr: f32,
    /// The gradients are sums over the batch: this makes them means.
    scale: f32,
    correction1: f32,
    correction2: f32,
    l2: f32,
}

impl AdamStep {
    /// Step `t` (from 1) of size `lr` on gradients summed over `batch`
    /// examples, with an L2 penalty `l2` on the parameters.
    pub fn new(t: u64, lr: f32, batch: usize, l2: f32) -> Self {
        let t = t.min(i32::MAX as u64) as i32;
        AdamStep {
            lr,
            scale: 1.0 / batch.max(1) as f32,
            correction1: 1.0 - BETA1.powi(t),
            correction2: 1.0 - BETA2.powi(t),
            l2,
        }
    }

    pub fn with_l2(&self, l2: f32) -> Self {
        AdamStep { l2, ..*self }
    }

    /// `param -= lr * m_hat / (sqrt(v_hat) + eps)` after folding `grad` in,
    /// on the detected instruction set.
    pub fn apply(&self, param: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32]) {
        struct Update<'a> {
            step: &'a AdamStep,
            param: &'a mut [f32],
            m: &'a mut [f32],
            v: &'a mut [f32],
            grad: &'a [f32],
        }
        impl WithIsa for Update<'_> {
            type Output = ();
            #[inline(always)]
            fn run<I: Isa>(self) {
                self.step.update(self.param, self.m, self.v, self.grad)
            }
        }
        dispatch(Update {
            step: self,
            param,
            m,
            v,
            grad,
        })
    }

    /// The update itself, inlined into a dispatched caller (the compiler
    /// vectorises it for that caller's instruction set).
    #[inline(always)]
    fn update(&self, param: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32]) {
        for (((p, m), v), g) in param.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(grad) {
            let g = g * self.scale + self.l2 * *p;
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *p -= self.lr * (*m / self.correction1) / ((*v / self.correction2).sqrt() + EPS);
        }
    }

    /// Applies the sum of `parts`' gradients (the threads' gradients of one
    /// table, added in order) to the rows they touched, on up to `threads`
    /// threads.
    pub fn apply_rows(
        &self,
        table: &mut [f32],
        m: &mut [f32],
        v: &mut [f32],
        parts: &[&RowGrads],
        threads: usize,
        scratch: &mut RowScratch,
    ) {
        let Some(cols) = parts.first().map(|p| p.cols) else {
            return;
        };
        let rows = scratch.touched(parts, table.len() / cols.max(1));
        let threads = if rows.len() < PARALLEL_ROWS { 1 } else { threads.max(1) };
        let per = rows.len().div_ceil(threads).max(1);
        let chunks: Vec<&[u32]> = rows.chunks(per).collect();
        // Each chunk's rows lie in its own range of the table, in order.
        let mut pieces = Vec::with_capacity(chunks.len());
        let (mut table, mut m, mut v) = (table, m, v);
        let mut offset = 0;
        for chunk in &chunks {
            let (lo, hi) = (chunk[0] as usize, chunk[chunk.len() - 1] as usize + 1);
            let skip = (lo - offset) * cols;
            let take = (hi - lo) * cols;
            let (_, t) = std::mem::take(&mut table).split_at_mut(skip);
            let (tp, t) = t.split_at_mut(take);
            let (_, mm) = std::mem::take(&mut m).split_at_mut(skip);
            let (mp, mm) = mm.split_at_mut(take);
            let (_, vv) = std::mem::take(&mut v).split_at_mut(skip);
            let (vp, vv) = vv.split_at_mut(take);
            (table, m, v) = (t, mm, vv);
            offset = hi;
            pieces.push((*chunk, lo, tp, mp, vp));
        }
        let run = |(rows, lo, t, m, v): Piece<'_>| {
            dispatch(RowUpdate {
                step: self,
                parts,
                rows,
                lo,
                cols,
                table: t,
                m,
                v,
            })
        };
        if pieces.len() == 1 {
            pieces.into_iter().for_each(run);
            return;
        }
        std::thread::scope(|s| {
            let mut pieces = pieces.into_iter();
            let first = pieces.next();
            for piece in pieces {
                s.spawn(|| run(piece));
            }
            if let Some(piece) = first {
                run(piece);
            }
        });
    }
}

/// One thread's rows and its range of a table: (rows, first row of the
/// range, the table's, `m`'s and `v`'s values over the range).
type Piece<'a> = (&'a [u32], usize, &'a mut [f32], &'a mut [f32], &'a mut [f32]);

/// The update of some rows of a table, on the detected instruction set.
struct RowUpdate<'a> {
    step: &'a AdamStep,
    parts: &'a [&'a RowGrads],
    rows: &'a [u32],
    lo: usize,
    cols: usize,
    table: &'a mut [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
}

impl WithIsa for RowUpdate<'_> {
    type Output = ();
    #[inline(always)]
    fn run<I: Isa>(self) {
        let cols = self.cols;
        let mut g = vec![0f32; cols];
        for &r in self.rows {
            g.fill(0.0);
            for part in self.parts {
                if let Some(pg) = part.row(r) {
                    g.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
                }
            }
            let at = (r as usize - self.lo) * cols..(r as usize - self.lo + 1) * cols;
            self.step.update(
                &mut self.table[at.clone()],
                &mut self.m[at.clone()],
                &mut self.v[at],
                &g,
            );
        }
    }
}

/// Reused between steps: which rows of a table the parts touched.
#[derive(Default)]
pub(crate) struct RowScratch {
    marked: Vec<bool>,
    rows: Vec<u32>,
}

impl RowScratch {
    /// The rows any of `parts` touched, ascending.
    fn touched(&mut self, parts: &[&RowGrads], table_rows: usize) -> &[u32] {
        if self.marked.len() < table_rows {
            self.marked.resize(table_rows, false);
        }
        self.rows.clear();
        for part in parts {
            for &r in &part.rows {
                if !self.marked[r as usize] {
                    self.marked[r as usize] = true;
                    self.rows.push(r);
                }
            }
        }
        for &r in &self.rows {
            self.marked[r as usize] = false;
        }
        self.rows.sort_unstable();
        &self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows touched by several parts get the sum of their gradients,
    /// whatever the number of threads, and untouched rows stay as they are.
    #[test]
    fn sparse_rows_get_the_summed_gradient_on_any_thread_count() {
        let cols = 3;
        let table_rows = 2_000;
        let mut a = RowGrads::new(cols, table_rows);
        let mut b = RowGrads::new(cols, table_rows);
        for r in (0..table_rows as u32).step_by(3) {
            a.add(r, 1.0, &[1.0, 2.0, 3.0]);
        }
        for r in (0..table_rows as u32).step_by(2) {
            b.add(r, 0.5, &[2.0, 2.0, 2.0]);
        }
        let step = AdamStep::new(1, 0.1, 1, 0.0);
        let mut results = Vec::new();
        for threads in [1, 2, 3] {
            let mut table = vec![1.0f32; table_rows * cols];
            let (mut m, mut v) = (vec![0.0; table.len()], vec![0.0; table.len()]);
            step.apply_rows(
                &mut table,
                &mut m,
                &mut v,
                &[&a, &b],
                threads,
                &mut RowScratch::default(),
            );
            // Untouched rows (not a multiple of 2 or 3) are unchanged.
            assert_eq!(&table[cols..2 * cols], &[1.0; 3]);
            // A dense step on one row with the summed gradient agrees.
            let mut want = vec![1.0f32; cols];
            let (mut wm, mut wv) = (vec![0.0; cols], vec![0.0; cols]);
            step.apply(&mut want, &mut wm, &mut wv, &[2.0, 3.0, 4.0]);
            assert_eq!(&table[6 * cols..7 * cols], &want[..]);
            results.push(table);
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]));
    }
}
