//! The model as the threads of one DNN run share it. A step has three
//! phases, separated by the run's barrier:
//!
//! 1. **exclusive**: the coordinator alone (the others wait at the
//!    barrier) draws the batch's negatives and counts the step;
//! 2. **read**: every thread reads the parameters and computes the
//!    gradients of its slice of the batch;
//! 3. **update**: every thread applies Adam to its own share of the
//!    elements (thread `t` of `T` owns every `T`-th block of about 4 KiB
//!    of rows of each embedding table, and range `t` of each layer tensor),
//!    so no element is written by two threads and none is read meanwhile.
//!
//! Updating in parallel matters once the catalogue is large: the touched
//! rows of the embedding tables are random accesses into tables larger than
//! the caches, and on one coordinator they took a fifth of a step at 100,000
//! items (measured: 13.3 s of 36.7 s of a two-thread run, which then
//! reached only 1.3x one thread).

use std::marker::PhantomData;

use super::state::{DnnState, Params};

/// A tensor's values and its Adam moments, as raw parts, for the update
/// phase: `len` values in rows of `cols`.
#[derive(Clone, Copy)]
struct Triple {
    param: *mut f32,
    m: *mut f32,
    v: *mut f32,
    len: usize,
    cols: usize,
}

/// Which tensor: see [`SharedModel::row`] and [`SharedModel::range`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tensor {
    ItemIn,
    Feature(usize),
    ItemOut,
    ItemBias,
    LayerW(usize),
    LayerB(usize),
}

/// A row (or a range) of a tensor with its two moments, borrowed for one
/// update phase.
pub(crate) struct RowMut<'r> {
    pub param: &'r mut [f32],
    pub m: &'r mut [f32],
    pub v: &'r mut [f32],
}

/// The state of one run, shared by its threads in phases (module docs).
pub(crate) struct SharedModel<'s> {
    state: *mut DnnState,
    item_in: Triple,
    features: Vec<Triple>,
    item_out: Triple,
    item_bias: Triple,
    layer_w: Vec<Triple>,
    layer_b: Vec<Triple>,
    _borrow: PhantomData<&'s mut DnnState>,
}

// SAFETY: the pointers are into a `DnnState` borrowed mutably for `'s`, so
// nothing outside the run reaches it. Inside the run, access follows the
// phases of the module docs, each entered and left through the run's
// barrier (an acquire/release pair), so every write of a phase happens
// before every access of the next: shared reads only in the read phase,
// disjoint writes only in the update phase (see `row` and `range`), and
// the exclusive phase on one thread while the others wait.
unsafe impl Sync for SharedModel<'_> {}
// SAFETY: as for `Sync`; the pointers carry no thread affinity.
unsafe impl Send for SharedModel<'_> {}

fn triple(param: &mut [f32], m: &mut [f32], v: &mut [f32], cols: usize) -> Triple {
    debug_assert!(param.len() == m.len() && param.len() == v.len());
    Triple {
        len: param.len().min(m.len()).min(v.len()),
        param: param.as_mut_ptr(),
        m: m.as_mut_ptr(),
        v: v.as_mut_ptr(),
        cols: cols.max(1),
    }
}

impl<'s> SharedModel<'s> {
    /// Shares `state` for one run. Its tensors must not be resized while it
    /// is shared (the run only changes values; tables grow between runs).
    pub fn new(state: &'s mut DnnState) -> Self {
        let (e, f, d) = (state.embed_dim, state.feature_dim, state.dim);
        let Params {
            item_in,
            features,
            layers,
            item_out,
            item_bias,
        } = &mut state.params;
        let (m, v) = (&mut state.adam.m, &mut state.adam.v);
        let features = features
            .iter_mut()
            .zip(m.features.iter_mut().zip(v.features.iter_mut()))
            .map(|(p, (m, v))| triple(p, m, v, f))
            .collect();
        let mut layer_w = Vec::new();
        let mut layer_b = Vec::new();
        for ((l, ml), vl) in layers.iter_mut().zip(m.layers.iter_mut()).zip(v.layers.iter_mut()) {
            let (w_len, b_len) = (l.w.len(), l.b.len());
            layer_w.push(triple(&mut l.w, &mut ml.w, &mut vl.w, w_len));
            layer_b.push(triple(&mut l.b, &mut ml.b, &mut vl.b, b_len));
        }
        SharedModel {
            item_in: triple(item_in, &mut m.item_in, &mut v.item_in, e),
            features,
            item_out: triple(item_out, &mut m.item_out, &mut v.item_out, d),
            item_bias: triple(item_bias, &mut m.item_bias, &mut v.item_bias, 1),
            layer_w,
            layer_b,
            state,
            _borrow: PhantomData,
        }
    }

    fn triple(&self, tensor: Tensor) -> Option<&Triple> {
        match tensor {
            Tensor::ItemIn => Some(&self.item_in),
            Tensor::Feature(k) => self.features.get(k),
            Tensor::ItemOut => Some(&self.item_out),
            Tensor::ItemBias => Some(&self.item_bias),
            Tensor::LayerW(l) => self.layer_w.get(l),
            Tensor::LayerB(l) => self.layer_b.get(l),
        }
    }

    /// Values per row of `tensor` (a layer tensor is one row).
    pub fn cols(&self, tensor: Tensor) -> usize {
        self.triple(tensor).map_or(1, |t| t.cols)
    }

    /// Values of `tensor`.
    pub fn len(&self, tensor: Tensor) -> usize {
        self.triple(tensor).map_or(0, |t| t.len)
    }

    /// The state, to read.
    ///
    /// # Safety
    /// Only in the read or the exclusive phase, and the reference must be
    /// dropped before the phase ends.
    pub unsafe fn read(&self) -> &DnnState {
        // SAFETY: the caller is in a phase where nothing writes the state
        // (the exclusive phase writes only through `count_step`, on the
        // thread that reads).
        unsafe { &*self.state }
    }

    /// Counts one Adam step and returns its number.
    ///
    /// # Safety
    /// Only in the exclusive phase, with no reference from `read` alive.
    pub unsafe fn count_step(&self) -> u64 {
        // SAFETY: the exclusive phase has one thread; the place is reached
        // through the raw pointer, without a reference to the tensors (whose
        // raw parts this struct holds).
        unsafe {
            (*self.state).adam.step += 1;
            (*self.state).adam.step
        }
    }

    /// Values `range` of `tensor` (elements, not rows) and its moments, to
    /// update; None if the range is outside it.
    ///
    /// # Safety
    /// Only in the update phase, and no other thread may hold a range or a
    /// row overlapping it during that phase (the phase's ownership rule).
    pub unsafe fn range(&self, tensor: Tensor, range: std::ops::Range<usize>) -> Option<RowMut<'_>> {
        let t = self.triple(tensor)?;
        if range.start > range.end || range.end > t.len {
            return None;
        }
        let n = range.end - range.start;
        // SAFETY: `range` lies inside the tensor's `len` values (checked);
        // the three buffers hold `len` values each and stay allocated and
        // unresized for `'s`; the caller owns the range exclusively for the
        // update phase, and nothing reads the tensors in that phase.
        unsafe {
            Some(RowMut {
                param: std::slice::from_raw_parts_mut(t.param.add(range.start), n),
                m: std::slice::from_raw_parts_mut(t.m.add(range.start), n),
                v: std::slice::from_raw_parts_mut(t.v.add(range.start), n),
            })
        }
    }

    /// Row `row` of an embedding table and its moments, to update.
    ///
    /// # Safety
    /// As [`SharedModel::range`], for the row's values.
    pub unsafe fn row(&self, tensor: Tensor, row: usize) -> Option<RowMut<'_>> {
        let cols = self.cols(tensor);
        // SAFETY: forwarded to the caller.
        unsafe { self.range(tensor, row * cols..(row + 1) * cols) }
    }
}
