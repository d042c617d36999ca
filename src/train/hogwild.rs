//! Lock-free shared matrices for Hogwild! training: every thread reads and
//! writes any row without locks. This is the one place where the trainer
//! gives up Rust's aliasing guarantees, deliberately and only here.

use std::marker::PhantomData;

/// A `rows x dim` f32 matrix that several training threads update at once.
/// It borrows the matrix mutably for its lifetime, so nothing outside the
/// training threads can observe it while they run.
pub(crate) struct HogwildMatrix<'a> {
    ptr: *mut f32,
    rows: usize,
    dim: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: the pointer comes from a `&'a mut [f32]` held for `'a`, so no other
// code can read or write the matrix while training threads share it, and the
// scoped threads that share it end before `'a` does. What the threads do to
// each other is the Hogwild! trade-off: two threads may update the same
// element at the same time, and one update can overwrite the other. Every
// access goes through raw pointers within bounds (checked in `row`), never
// through a `&`/`&mut` reference that could be held across threads; each
// element is an aligned 4-byte `f32` (a single load or store instruction on
// the targets we build for, so a value is never torn) and every bit pattern
// is a valid `f32`. The worst outcome of a race is a lost or stale gradient
// step, which SGD tolerates (Recht et al., 2011) and which the
// single-thread mode avoids entirely.
unsafe impl Send for HogwildMatrix<'_> {}
unsafe impl Sync for HogwildMatrix<'_> {}

impl<'a> HogwildMatrix<'a> {
    pub fn new(data: &'a mut [f32], dim: usize) -> Self {
        HogwildMatrix {
            rows: data.len() / dim.max(1),
            ptr: data.as_mut_ptr(),
            dim,
            _borrow: PhantomData,
        }
    }

    /// The start of row `r`. Rows come from the vocabulary, so `r < rows` is
    /// an invariant of the trainer; it is still checked, because a broken
    /// invariant here would write out of bounds.
    #[inline]
    pub fn row(&self, r: u32) -> *mut f32 {
        let r = r as usize;
        assert!(r < self.rows, "row {r} outside a matrix of {} rows", self.rows);
        // SAFETY: `r < rows`, so the offset stays inside the borrowed slice.
        unsafe { self.ptr.add(r * self.dim) }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }
}
