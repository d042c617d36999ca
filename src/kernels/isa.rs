//! The kernels written once, in plain Rust, and compiled once per
//! instruction-set level.
//!
//! Each level is a zero-sized type implementing [`Isa`]. Code that wants the
//! fast path is written generically over `I: Isa` with `#[inline(always)]`
//! and run through [`dispatch`], which calls it from a function carrying
//! `#[target_feature(enable = ...)]` for the level detected at run time: the
//! generic body is inlined there and compiled (vectorised, fused
//! multiply-adds) for that level, whatever `target-cpu` the crate was built
//! with. This is what a host crate built with no flags gets.
//!
//! Measured against the old build with `-C target-cpu=x86-64-v3`
//! (ARCHITECTURE.md, "Kernels"): these eight-lane loops compiled inside the
//! AVX2/FMA entry point are as fast, so the arithmetic needs no intrinsic
//! and no `unsafe`. An AVX-512 level (the same loops at sixteen lanes) was
//! measured and dropped: the trainer ran at 3.3 M pairs/s/thread against
//! 8.7 (the compiler scalarised the sixteen-lane update loop), and the
//! exact scan, bound by memory, was no faster.

use super::dispatch::{simd_level, SimdLevel};

/// One instruction-set level's kernels.
pub(crate) trait Isa {
    /// Which level this is (a constant, so code may branch on it at
    /// compile time).
    const LEVEL: SimdLevel;
    /// `sum a[i] * b[i]`.
    fn dot(a: &[f32], b: &[f32]) -> f32;
    /// `sum (a[i] - b[i])^2`.
    fn l2_squared(a: &[f32], b: &[f32]) -> f32;
    /// `dx += g * y` and `dy += g * x`, one pass over both.
    fn axpy_pair(g: f32, x: &[f32], y: &[f32], dx: &mut [f32], dy: &mut [f32]);
    /// `y += g * x`.
    fn axpy(g: f32, x: &[f32], y: &mut [f32]);
}

/// Work that runs on whichever level the CPU has: implement `run` generically
/// and mark it `#[inline(always)]`, so that it is compiled into each level's
/// `#[target_feature]` entry point.
pub(crate) trait WithIsa {
    type Output;
    fn run<I: Isa>(self) -> Self::Output;
}

/// Runs `work` on the level detected for this process (`simd_level`).
#[inline]
pub(crate) fn dispatch<W: WithIsa>(work: W) -> W::Output {
    match simd_level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `simd_level` chooses Avx2Fma only after
        // `is_x86_feature_detected!` found avx2 and fma.
        SimdLevel::Avx2Fma => unsafe { run_avx2(work) },
        _ => work.run::<Portable>(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) fn run_avx2<W: WithIsa>(work: W) -> W::Output {
    work.run::<Avx2Fma>()
}

/// How a level multiplies and adds.
trait MulAdd {
    fn mul_add(a: f32, b: f32, acc: f32) -> f32;
}

/// One rounding: compiles to an FMA instruction inside a level that has one.
struct Fused;
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, acc: f32) -> f32 {
        a.mul_add(b, acc)
    }
}

/// Two roundings: without FMA hardware `f32::mul_add` would call libm's
/// software `fmaf`, ten times slower than a multiply and an add.
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
struct Split;
impl MulAdd for Split {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, acc: f32) -> f32 {
        a * b + acc
    }
}

/// aarch64's baseline has NEON and a fused multiply-add, so its portable
/// level fuses; elsewhere the portable level must not.
#[cfg(target_arch = "aarch64")]
type PortableMulAdd = Fused;
#[cfg(not(target_arch = "aarch64"))]
type PortableMulAdd = Split;

/// Any CPU.
pub(crate) struct Portable;
/// x86-64 with AVX2 and FMA.
pub(crate) struct Avx2Fma;

macro_rules! isa_impl {
    ($isa:ty, $level:expr, $mul_add:ty, $lanes:expr) => {
        impl Isa for $isa {
            const LEVEL: SimdLevel = $level;
            #[inline(always)]
            fn dot(a: &[f32], b: &[f32]) -> f32 {
                dot_lanes::<$mul_add, $lanes>(a, b)
            }
            #[inline(always)]
            fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
                l2_lanes::<$mul_add, $lanes>(a, b)
            }
            #[inline(always)]
            fn axpy_pair(g: f32, x: &[f32], y: &[f32], dx: &mut [f32], dy: &mut [f32]) {
                axpy_pair_lanes::<$mul_add, $lanes>(g, x, y, dx, dy)
            }
            #[inline(always)]
            fn axpy(g: f32, x: &[f32], y: &mut [f32]) {
                axpy_lanes::<$mul_add, $lanes>(g, x, y)
            }
        }
    };
}

isa_impl!(Portable, SimdLevel::Portable, PortableMulAdd, 8);
isa_impl!(Avx2Fma, SimdLevel::Avx2Fma, Fused, 8);

/// `N` independent accumulators: the compiler keeps them in one vector
/// register and the loop carries no dependency between lanes.
#[inline(always)]
fn dot_lanes<M: MulAdd, const N: usize>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; N];
    let (ca, cb) = (a.chunks_exact(N), b.chunks_exact(N));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..N {
            acc[i] = M::mul_add(x[i], y[i], acc[i]);
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        sum = M::mul_add(*x, *y, sum);
    }
    sum
}

#[inline(always)]
fn l2_lanes<M: MulAdd, const N: usize>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; N];
    let (ca, cb) = (a.chunks_exact(N), b.chunks_exact(N));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..N {
            let d = x[i] - y[i];
            acc[i] = M::mul_add(d, d, acc[i]);
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        sum = M::mul_add(d, d, sum);
    }
    sum
}

#[inline(always)]
fn axpy_pair_lanes<M: MulAdd, const N: usize>(g: f32, x: &[f32], y: &[f32], dx: &mut [f32], dy: &mut [f32]) {
    let n = x.len().min(y.len()).min(dx.len()).min(dy.len());
    let lanes = n / N * N;
    for (((dxn, dyn_), xn), yn) in dx[..lanes]
        .chunks_exact_mut(N)
        .zip(dy[..lanes].chunks_exact_mut(N))
        .zip(x[..lanes].chunks_exact(N))
        .zip(y[..lanes].chunks_exact(N))
    {
        for l in 0..N {
            dxn[l] = M::mul_add(g, yn[l], dxn[l]);
            dyn_[l] = M::mul_add(g, xn[l], dyn_[l]);
        }
    }
    for i in lanes..n {
        dx[i] = M::mul_add(g, y[i], dx[i]);
        dy[i] = M::mul_add(g, x[i], dy[i]);
    }
}

#[inline(always)]
fn axpy_lanes<M: MulAdd, const N: usize>(g: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let lanes = n / N * N;
    for (yn, xn) in y[..lanes].chunks_exact_mut(N).zip(x[..lanes].chunks_exact(N)) {
        for l in 0..N {
            yn[l] = M::mul_add(g, xn[l], yn[l]);
        }
    }
    for i in lanes..n {
        y[i] = M::mul_add(g, x[i], y[i]);
    }
}
