//! Lock-free shared matrices for Hogwild! training: every thread reads and
//! writes any row without locks.
//!
//! Every element is an `AtomicU32` holding an `f32`'s bits, and every
//! access to a shared row is an atomic one, so the sharing is race-free
//! under Rust's memory model (concurrent atomic accesses are not a data
//! race). What Hogwild! gives up is not soundness but update atomicity: a
//! read-modify-write of an element is a load then a store, so two threads
//! updating one element at once may lose one update (Recht et al., 2011:
//! SGD tolerates it). One thread is exact and deterministic.
//!
//! The arithmetic never touches the shared matrices: rows are checked out
//! into thread-local buffers ([`load_row`]), computed on there, and written
//! back as deltas ([`add_to_row`]). On the portable level those are
//! `Relaxed` loads and stores of each element. Relaxed atomics are never
//! vectorised by the compiler, which cost a third of the trainer's
//! throughput (measured: 4.3 against 6.5 M pairs/s/thread), so on the x86
//! levels a row moves eight elements at a time through one `vmovups` in
//! `asm!`: see `x86` below for why that is the same relaxed atomic access.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::kernels::{dispatch, Isa, SimdLevel, WithIsa};

/// A `rows x dim` f32 matrix that several training threads update at once.
/// It borrows the matrix mutably for its lifetime, so nothing outside the
/// training threads can observe it while they run.
pub(crate) struct HogwildMatrix<'a> {
    cells: &'a [AtomicU32],
    dim: usize,
}

// The cast in `new` relies on these.
const _: () = assert!(
    std::mem::size_of::<f32>() == std::mem::size_of::<AtomicU32>()
        && std::mem::align_of::<f32>() == std::mem::align_of::<AtomicU32>()
);

impl<'a> HogwildMatrix<'a> {
    pub fn new(data: &'a mut [f32], dim: usize) -> Self {
        let len = data.len();
        // SAFETY: `AtomicU32` has the same in-memory representation as
        // `u32` (its documentation), and `f32` the same size and alignment
        // as `u32` (asserted above), so `len` f32s are `len` valid
        // `AtomicU32`s (every bit pattern is a valid u32). The slice is
        // borrowed exclusively for `'a`, so for `'a` it is reached only
        // through these atomics: no non-atomic access can race with them.
        // This is `AtomicU32::from_ptr` applied to a whole slice.
        let cells = unsafe { std::slice::from_raw_parts(data.as_mut_ptr().cast::<AtomicU32>(), len) };
        HogwildMatrix { cells, dim }
    }

    /// Row `r`. Rows come from the vocabulary, so `r < rows` is an invariant
    /// of the trainer; slicing still checks it (a broken invariant panics
    /// the training thread, which the trainer treats as a stop).
    #[inline]
    pub fn row(&self, r: u32) -> &'a [AtomicU32] {
        let start = r as usize * self.dim;
        &self.cells[start..start + self.dim]
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    #[cfg(test)]
    pub fn rows(&self) -> usize {
        self.cells.len() / self.dim.max(1)
    }
}

/// Copies a shared row into `buf` (the shorter of the two), on level `I`.
#[inline(always)]
pub(crate) fn load_row<I: Isa>(row: &[AtomicU32], buf: &mut [f32]) {
    let n = row.len().min(buf.len());
    let (row, buf) = (&row[..n], &mut buf[..n]);
    let done = match I::LEVEL {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: code generic over `I` runs with `I::LEVEL` = Avx2Fma only
        // inside `kernels::dispatch`'s entry point for that level, which it
        // enters after detecting AVX2 (and so AVX).
        SimdLevel::Avx2Fma => unsafe { x86::load_row(row, buf) },
        _ => 0,
    };
    for (b, cell) in buf[done..].iter_mut().zip(&row[done..]) {
        *b = f32::from_bits(cell.load(Ordering::Relaxed));
    }
}

/// Adds `delta` to a shared row (the shorter of the two), on level `I`.
/// Not an atomic read-modify-write: a concurrent update of the same element
/// may be lost, which is Hogwild!'s trade-off (see the module comment).
#[inline(always)]
pub(crate) fn add_to_row<I: Isa>(row: &[AtomicU32], delta: &[f32]) {
    let n = row.len().min(delta.len());
    let (row, delta) = (&row[..n], &delta[..n]);
    let done = match I::LEVEL {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `load_row`.
        SimdLevel::Avx2Fma => unsafe { x86::add_to_row(row, delta) },
        _ => 0,
    };
    for (cell, d) in row[done..].iter().zip(&delta[done..]) {
        let v = f32::from_bits(cell.load(Ordering::Relaxed)) + d;
        cell.store(v.to_bits(), Ordering::Relaxed);
    }
}

/// [`load_row`] on the detected level, for callers outside a dispatched body.
#[inline]
pub(crate) fn load_row_dispatched(row: &[AtomicU32], buf: &mut [f32]) {
    struct Load<'a>(&'a [AtomicU32], &'a mut [f32]);
    impl WithIsa for Load<'_> {
        type Output = ();
        #[inline(always)]
        fn run<I: Isa>(self) {
            load_row::<I>(self.0, self.1)
        }
    }
    dispatch(Load(row, buf))
}

/// [`add_to_row`] on the detected level, for callers outside a dispatched
/// body.
#[inline]
pub(crate) fn add_to_row_dispatched(row: &[AtomicU32], delta: &[f32]) {
    struct Add<'a>(&'a [AtomicU32], &'a [f32]);
    impl WithIsa for Add<'_> {
        type Output = ();
        #[inline(always)]
        fn run<I: Isa>(self) {
            add_to_row::<I>(self.0, self.1)
        }
    }
    dispatch(Add(row, delta))
}

/// Eight elements per instruction.
///
/// Why a `vmovups` in `asm!` is a relaxed atomic access of each element: an
/// `asm!` block is, to Rust's memory model, like a call to foreign code, and
/// foreign code may access memory atomically (C11 atomics interoperate with
/// Rust's). A 32-byte `vmovups` of 4-byte-aligned `f32`s accesses each
/// element single-copy atomically: x86 makes every aligned access of up to
/// 8 bytes atomic (Intel SDM vol. 3, 9.1.1; AMD APM vol. 2, 7.3.2), and a
/// wider vector access is carried out as such accesses (the SDM allows it
/// to be split into several, never to tear an aligned element). So each
/// block does what a sequence of `Relaxed` loads (or stores) of the
/// row's `AtomicU32`s would do, in some order, and other threads only ever
/// reach those cells atomically too. Nothing here orders anything: the
/// trainer needs no ordering, only the absence of data races.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::asm;
    use std::arch::x86_64::{__m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_storeu_ps};
    use std::sync::atomic::AtomicU32;

    /// One relaxed atomic load of each of the 8 cells (see the module
    /// comment).
    #[target_feature(enable = "avx")]
    #[inline]
    fn load8(cells: &[AtomicU32]) -> __m256 {
        assert_eq!(cells.len(), 8);
        let v: __m256;
        // SAFETY: `cells` is 8 live `AtomicU32`s (32 readable bytes, checked
        // above); AVX is enabled.
        unsafe {
            asm!(
                "vmovups {v}, ymmword ptr [{p}]",
                p = in(reg) cells.as_ptr(),
                v = out(ymm_reg) v,
                options(readonly, nostack, preserves_flags),
            );
        }
        v
    }

    /// One relaxed atomic store of each of the 8 cells (see the module
    /// comment).
    #[target_feature(enable = "avx")]
    #[inline]
    fn store8(cells: &[AtomicU32], v: __m256) {
        assert_eq!(cells.len(), 8);
        // SAFETY: `cells` is 8 live `AtomicU32`s (32 bytes, checked above;
        // atomics are written through shared references); AVX is enabled.
        unsafe {
            asm!(
                "vmovups ymmword ptr [{p}], {v}",
                p = in(reg) cells.as_ptr(),
                v = in(ymm_reg) v,
                options(nostack, preserves_flags),
            );
        }
    }

    /// Loads `row[..8k]` into `buf` (same length as `row`); returns `8k`.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[target_feature(enable = "avx")]
    #[inline]
    pub(super) unsafe fn load_row(row: &[AtomicU32], buf: &mut [f32]) -> usize {
        let lanes = row.len().min(buf.len()) / 8 * 8;
        for (cells, out) in row[..lanes].chunks_exact(8).zip(buf[..lanes].chunks_exact_mut(8)) {
            // SAFETY: `out` is 8 writable f32s; AVX is enabled.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), load8(cells)) };
        }
        lanes
    }

    /// Adds `delta[..8k]` to `row[..8k]`; returns `8k`.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[target_feature(enable = "avx")]
    #[inline]
    pub(super) unsafe fn add_to_row(row: &[AtomicU32], delta: &[f32]) -> usize {
        let lanes = row.len().min(delta.len()) / 8 * 8;
        for (cells, d) in row[..lanes].chunks_exact(8).zip(delta[..lanes].chunks_exact(8)) {
            // SAFETY: `d` is 8 readable f32s; AVX is enabled.
            let sum = _mm256_add_ps(load8(cells), unsafe { _mm256_loadu_ps(d.as_ptr()) });
            store8(cells, sum);
        }
        lanes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads and adds on the level `dispatch` picks (the asm path on an
    /// AVX2 machine) for every tail length, checked against plain math.
    #[test]
    fn rows_read_and_add_back_through_the_atomics_for_every_length() {
        struct Check;
        impl WithIsa for Check {
            type Output = ();
            #[inline(always)]
            fn run<I: Isa>(self) {
                for dim in [1usize, 7, 8, 9, 16, 17, 64, 70] {
                    let mut data: Vec<f32> = (0..3 * dim).map(|i| i as f32).collect();
                    {
                        let m = HogwildMatrix::new(&mut data, dim);
                        assert_eq!(m.rows(), 3);
                        let mut buf = vec![0f32; dim];
                        load_row::<I>(m.row(1), &mut buf);
                        assert_eq!(buf, (dim..2 * dim).map(|i| i as f32).collect::<Vec<_>>());
                        let delta: Vec<f32> = (0..dim).map(|i| i as f32 * 0.5 - 1.0).collect();
                        add_to_row::<I>(m.row(2), &delta);
                    }
                    for i in 0..dim {
                        assert_eq!(
                            data[2 * dim + i],
                            (2 * dim + i) as f32 + i as f32 * 0.5 - 1.0,
                            "dim {dim}"
                        );
                    }
                    assert_eq!(
                        &data[..2 * dim],
                        &(0..2 * dim).map(|i| i as f32).collect::<Vec<_>>()[..]
                    );
                }
            }
        }
        dispatch(Check);
        Check.run::<crate::kernels::Portable>();
    }

    #[test]
    #[should_panic]
    fn a_row_outside_the_matrix_panics_instead_of_reading_out_of_bounds() {
        let mut data = vec![0f32; 8];
        let m = HogwildMatrix::new(&mut data, 4);
        let _ = m.row(2);
    }
}
