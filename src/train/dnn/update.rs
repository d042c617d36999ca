//! A step's update phase, as one thread does its share: the threads'
//! gradients added up in thread order and Adam applied, to the elements
//! this thread owns (blocks of rows of about 4 KiB, block `b` to thread
//! `b % threads`, of each embedding table, and range
//! `t` of each layer tensor; see `shared.rs`). Every element's arithmetic is
//! the same whichever thread does it, so the result does not depend on how
//! the elements are shared out, and one thread is the deterministic mode.

use super::adam::AdamStep;
use super::shared::{SharedModel, Tensor};
use super::step::{Part, RowGrads};
use crate::kernels::{dispatch, Isa, WithIsa};

/// Values of a table owned by one thread in a row: see `sparse_rows`.
pub(crate) const OWNED_BLOCK_VALUES: usize = 1024;

/// Picks a layer tensor's gradient out of a thread's part.
type GradOf<'a> = &'a dyn Fn(&Part) -> &[f32];

/// One step's constants for the update phase.
pub(crate) struct StepConstants {
    /// For the layers and the biases (no L2).
    pub dense: AdamStep,
    /// For the embedding rows (with the options' L2).
    pub sparse: AdamStep,
}

/// Thread `t` of `threads` applies its share of the step whose gradients
/// are `parts` (in thread order), on the detected instruction set.
///
/// # Safety
/// Only in the update phase of a run over `model`, by thread `t`, while the
/// other threads of the run apply the other shares (or wait).
pub(crate) unsafe fn update_share(
    model: &SharedModel<'_>,
    parts: &[&Part],
    t: usize,
    threads: usize,
    step: &StepConstants,
    scratch: &mut Vec<f32>,
) {
    struct Share<'a, 'm> {
        model: &'a SharedModel<'m>,
        parts: &'a [&'a Part],
        t: usize,
        threads: usize,
        step: &'a StepConstants,
        scratch: &'a mut Vec<f32>,
    }
    impl WithIsa for Share<'_, '_> {
        type Output = ();
        #[inline(always)]
        fn run<I: Isa>(self) {
            let Share {
                model,
                parts,
                t,
                threads,
                step,
                scratch,
            } = self;
            let Some(first) = parts.first() else {
                return;
            };
            for l in 0..first.layers.len() {
                let layer: [(Tensor, GradOf<'_>); 2] = [
                    (Tensor::LayerW(l), &|p| &p.layers[l].w),
                    (Tensor::LayerB(l), &|p| &p.layers[l].b),
                ];
                for (tensor, grad_of) in layer {
                    // SAFETY: `update_share`'s contract: this thread's
                    // range, in the update phase.
                    unsafe { dense_range(model, tensor, parts, grad_of, t, threads, &step.dense, scratch) };
                }
            }
            let grads = |pick: &dyn Fn(&Part) -> &RowGrads| parts.iter().map(|p| pick(p)).collect::<Vec<_>>();
            // SAFETY: (all four) `update_share`'s contract: this thread's
            // rows, in the update phase.
            unsafe {
                sparse_rows::<I>(
                    model,
                    Tensor::ItemIn,
                    &grads(&|p| &p.item_in),
                    t,
                    threads,
                    &step.sparse,
                    scratch,
                );
                for k in 0..first.features.len() {
                    let g = grads(&|p| &p.features[k]);
                    sparse_rows::<I>(model, Tensor::Feature(k), &g, t, threads, &step.sparse, scratch);
                }
                sparse_rows::<I>(
                    model,
                    Tensor::ItemOut,
                    &grads(&|p| &p.item_out),
                    t,
                    threads,
                    &step.sparse,
                    scratch,
                );
                sparse_rows::<I>(
                    model,
                    Tensor::ItemBias,
                    &grads(&|p| &p.item_bias),
                    t,
                    threads,
                    &step.dense,
                    scratch,
                );
            }
        }
    }
    dispatch(Share {
        model,
        parts,
        t,
        threads,
        step,
        scratch,
    })
}

/// Range `t` of `threads` of a layer tensor: the parts' gradients added in
/// order, then one Adam step.
///
/// # Safety
/// As [`update_share`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn dense_range(
    model: &SharedModel<'_>,
    tensor: Tensor,
    parts: &[&Part],
    grad_of: GradOf<'_>,
    t: usize,
    threads: usize,
    step: &AdamStep,
    g: &mut Vec<f32>,
) {
    let len = model.len(tensor);
    let per = len.div_ceil(threads.max(1));
    let range = (t * per).min(len)..((t + 1) * per).min(len);
    if range.is_empty() {
        return;
    }
    g.clear();
    g.resize(range.len(), 0.0);
    for part in parts {
        let Some(pg) = grad_of(part).get(range.clone()) else {
            continue;
        };
        g.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
    }
    // SAFETY: forwarded from the caller: range `t` is this thread's.
    if let Some(row) = unsafe { model.range(tensor, range) } {
        step.update(row.param, row.m, row.v, g);
    }
}

/// This thread's rows of an embedding table that any part touched: each
/// row's gradients added in part order, then one Adam step. A row is taken
/// up at the first part that touched it (an earlier part having it means it
/// was done there), so no sort or mark is needed.
///
/// # Safety
/// As [`update_share`].
#[inline(always)]
unsafe fn sparse_rows<I: Isa>(
    model: &SharedModel<'_>,
    tensor: Tensor,
    grads: &[&RowGrads],
    t: usize,
    threads: usize,
    step: &AdamStep,
    g: &mut Vec<f32>,
) {
    let threads = threads.max(1);
    let cols = model.cols(tensor);
    // Rows are owned in blocks of about 4 KiB: a table's buffer is not
    // aligned to cache lines, so with single rows the line where one row
    // ends and the next begins was written by both threads (measured: the
    // update phase on two threads took longer than on one).
    let block = (OWNED_BLOCK_VALUES / cols.max(1)).max(1);
    let mine = |r: u32| (r as usize / block) % threads == t;
    for (first, part) in grads.iter().enumerate() {
        for &r in &part.rows {
            if !mine(r) || grads[..first].iter().any(|q| q.row(r).is_some()) {
                continue;
            }
            g.clear();
            g.resize(cols, 0.0);
            for q in &grads[first..] {
                if let Some(pg) = q.row(r) {
                    I::axpy(1.0, pg, g);
                }
            }
            // SAFETY: forwarded from the caller: row `r` is this thread's
            // (`mine`). Rows come from the vocabulary, so `r` is
            // inside the table (an invariant of the trainer; `row` checks).
            if let Some(row) = unsafe { model.row(tensor, r as usize) } {
                step.update(row.param, row.m, row.v, g);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::dnn::options::DnnOptions;
    use crate::train::dnn::state::DnnState;

    /// The summed gradients of several parts reach exactly the rows they
    /// touched, and the result is the same bits whichever number of threads
    /// shares the update out (run here one share after another).
    #[test]
    fn shares_of_any_thread_count_give_the_same_update() {
        let opts = DnnOptions::default();
        let make = || {
            let mut state = DnnState::empty(16, &opts);
            for item in 0..2_000 {
                state.intern(item, 7);
            }
            state.build_tower(&opts, 7);
            state
        };
        let base = make();
        let mut a = Part::new(&base);
        let mut b = Part::new(&base);
        for r in (0..2_000u32).step_by(3) {
            a.item_in.add(r, 1.0, &vec![1.0; base.embed_dim]);
        }
        for r in (0..2_000u32).step_by(2) {
            b.item_in.add(r, 0.5, &vec![2.0; base.embed_dim]);
            b.item_out.add(r, 1.0, &vec![-1.0; base.dim]);
        }
        for (ga, gb) in a.layers.iter_mut().zip(b.layers.iter_mut()) {
            ga.w.iter_mut().enumerate().for_each(|(i, x)| *x = (i % 7) as f32 - 3.0);
            gb.b.iter_mut().enumerate().for_each(|(i, x)| *x = (i % 5) as f32);
        }
        let step = StepConstants {
            dense: AdamStep::new(1, 0.1, 4, 0.0),
            sparse: AdamStep::new(1, 0.1, 4, 0.0),
        };
        let mut results = Vec::new();
        for threads in [1, 2, 3] {
            let mut state = make();
            {
                let model = SharedModel::new(&mut state);
                let mut scratch = Vec::new();
                for t in 0..threads {
                    // SAFETY: one share at a time, nothing else reads.
                    unsafe { update_share(&model, &[&a, &b], t, threads, &step, &mut scratch) };
                }
            }
            let e = state.embed_dim;
            // Row 1 (neither a multiple of 2 nor of 3) is untouched.
            assert_eq!(state.params.item_in[e..2 * e], base.params.item_in[e..2 * e]);
            assert_eq!(state.adam.m.item_in[e..2 * e], vec![0.0; e][..]);
            // Row 6 got the summed gradient (1 + 0.5 * 2 = 2 per value).
            let mut want = base.params.item_in[6 * e..7 * e].to_vec();
            let (mut m, mut v) = (vec![0.0; e], vec![0.0; e]);
            step.sparse.apply(&mut want, &mut m, &mut v, &vec![2.0; e]);
            assert_eq!(state.params.item_in[6 * e..7 * e], want[..]);
            assert_ne!(state.params.layers, base.params.layers);
            results.push(state);
        }
        assert!(results
            .windows(2)
            .all(|w| w[0].params == w[1].params && w[0].adam == w[1].adam));
    }
}
