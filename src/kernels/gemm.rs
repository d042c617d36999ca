//! Matrix products for the deep model (the tower's layers and the sampled
//! softmax): `C = beta * C + op(A) * op(B)` over row-major `f32` matrices,
//! where `op` is the matrix or its transpose.
//!
//! Two implementations, chosen by measurement (`ember bench-train
//! --space-kind youtube-dnn` runs both on the step's shapes, see
//! ARCHITECTURE.md, "The YouTube DNN"): the `matrixmultiply` crate (packed,
//! register-blocked micro-kernels with its own run-time dispatch), and the
//! rows-times-scalars loops below, written once over [`Isa`] and dispatched
//! like every other kernel. [`gemm`] is the one the model uses.

use super::isa::{dispatch, Isa, WithIsa};

/// A row-major matrix operand: `rows x cols` values, read as is or
/// transposed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operand<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub transposed: bool,
}

impl<'a> Operand<'a> {
    /// `data` as a `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Operand {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    /// The transpose (`cols x rows`), without moving anything.
    pub fn t(mut self) -> Self {
        self.transposed = !self.transposed;
        self
    }

    /// Rows and columns as the product sees them.
    fn shape(&self) -> (usize, usize) {
        if self.transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }
}

/// Which implementation runs a product. `Rows` and the measuring below
/// serve the benches (`bench_support`, feature `test-hooks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
pub enum GemmKernel {
    /// The `matrixmultiply` crate.
    Packed,
    /// Our loops over [`Isa`] (rows of `B` scaled into rows of `C`, or dot
    /// products for `A * B^T`).
    Rows,
}

#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
impl GemmKernel {
    /// How the benches' reports name the implementation:
    /// `matrixmultiply` or `rows (ours)`.
    pub fn name(self) -> &'static str {
        match self {
            GemmKernel::Packed => "matrixmultiply",
            GemmKernel::Rows => "rows (ours)",
        }
    }
}

/// The implementation the model uses (see the module docs).
pub(crate) const MODEL_GEMM: GemmKernel = GemmKernel::Packed;

/// `c = beta * c + a * b` with [`MODEL_GEMM`]. Panics if the shapes or the
/// slices disagree (a broken invariant of the caller's layer sizes).
pub(crate) fn gemm(a: Operand<'_>, b: Operand<'_>, beta: f32, c: &mut [f32]) {
    gemm_with(MODEL_GEMM, a, b, beta, c)
}

/// [`gemm`] with a chosen implementation.
pub fn gemm_with(kernel: GemmKernel, a: Operand<'_>, b: Operand<'_>, beta: f32, c: &mut [f32]) {
    let (m, k) = a.shape();
    let (k2, n) = b.shape();
    assert_eq!(k, k2, "inner dimensions of a product");
    assert!(a.data.len() >= a.rows * a.cols && b.data.len() >= b.rows * b.cols);
    assert!(c.len() >= m * n, "the product's output");
    if m == 0 || n == 0 {
        return;
    }
    match kernel {
        GemmKernel::Packed => packed(a, b, beta, &mut c[..m * n], m, k, n),
        GemmKernel::Rows => dispatch(RowsProduct {
            a,
            b,
            beta,
            c: &mut c[..m * n],
        }),
    }
}

fn packed(a: Operand<'_>, b: Operand<'_>, beta: f32, c: &mut [f32], m: usize, k: usize, n: usize) {
    // Row and column strides of the operand as the product reads it.
    let strides = |o: &Operand<'_>| {
        if o.transposed {
            (1isize, o.cols as isize)
        } else {
            (o.cols as isize, 1isize)
        }
    };
    let ((rsa, csa), (rsb, csb)) = (strides(&a), strides(&b));
    // SAFETY: the asserts in `gemm_with` hold: `a` holds `m x k` values at
    // these strides (it is `a.rows x a.cols` row-major, read as is or
    // transposed), `b` holds `k x n`, and `c` holds exactly `m x n`
    // row-major values, exclusively borrowed; matrixmultiply reads `a` and
    // `b` and writes `c` only within those bounds.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            rsa,
            csa,
            b.data.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

struct RowsProduct<'a> {
    a: Operand<'a>,
    b: Operand<'a>,
    beta: f32,
    c: &'a mut [f32],
}

impl WithIsa for RowsProduct<'_> {
    type Output = ();
    #[inline(always)]
    fn run<I: Isa>(self) {
        let RowsProduct { a, b, beta, c } = self;
        let (m, k) = a.shape();
        let n = b.shape().1;
        if beta == 0.0 {
            c.fill(0.0);
        } else if beta != 1.0 {
            c.iter_mut().for_each(|x| *x *= beta);
        }
        match (a.transposed, b.transposed) {
            // c_i = sum_k a_ik * b_k: rows of b scaled into row i of c.
            (false, false) => {
                for (i, ci) in c.chunks_exact_mut(n).enumerate() {
                    let ai = &a.data[i * k..][..k];
                    for (kk, &aik) in ai.iter().enumerate() {
                        if aik != 0.0 {
                            I::axpy(aik, &b.data[kk * n..][..n], ci);
                        }
                    }
                }
            }
            // c_ij = a_i . b_j, both rows contiguous.
            (false, true) => {
                for (i, ci) in c.chunks_exact_mut(n).enumerate() {
                    let ai = &a.data[i * k..][..k];
                    for (j, cij) in ci.iter_mut().enumerate() {
                        *cij += I::dot(ai, &b.data[j * k..][..k]);
                    }
                }
            }
            // a is stored k x m: c_i = sum_k a[k][i] * b_k.
            (true, false) => {
                for kk in 0..k {
                    let ak = &a.data[kk * m..][..m];
                    let bk = &b.data[kk * n..][..n];
                    for (i, &aki) in ak.iter().enumerate() {
                        if aki != 0.0 {
                            I::axpy(aki, bk, &mut c[i * n..][..n]);
                        }
                    }
                }
            }
            // Both transposed: c_ij = sum_k a[k][i] * b[j][k].
            (true, true) => {
                for (i, ci) in c.chunks_exact_mut(n).enumerate() {
                    for (j, cij) in ci.iter_mut().enumerate() {
                        let mut s = 0.0;
                        for kk in 0..k {
                            s += a.data[kk * m + i] * b.data[j * k + kk];
                        }
                        *cij += s;
                    }
                }
            }
        }
    }
}

/// Floating-point operations of one `m x k` by `k x n` product.
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
pub fn gemm_flops(m: usize, k: usize, n: usize) -> f64 {
    2.0 * m as f64 * k as f64 * n as f64
}

/// GFLOP/s of `kernel` on `m x k` by `k x n` products (row-major, no
/// transpose), measured for at least `seconds`: the reference the deep
/// model's achieved rate is compared with (`ember bench-train
/// --space-kind youtube-dnn`).
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
pub fn measure_gemm(kernel: GemmKernel, m: usize, k: usize, n: usize, seconds: f64) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0f32; m * n];
    let started = std::time::Instant::now();
    let mut runs = 0u64;
    while runs == 0 || started.elapsed().as_secs_f64() < seconds {
        gemm_with(kernel, Operand::new(&a, m, k), Operand::new(&b, k, n), 0.0, &mut c);
        runs += 1;
    }
    gemm_flops(m, k, n) * runs as f64 / started.elapsed().as_secs_f64() / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &Operand<'_>, b: &Operand<'_>) -> Vec<f64> {
        let at = |o: &Operand<'_>, i: usize, j: usize| {
            if o.transposed {
                o.data[j * o.cols + i]
            } else {
                o.data[i * o.cols + j]
            }
        };
        let (m, k) = a.shape();
        let n = b.shape().1;
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|kk| at(a, i, kk) as f64 * at(b, kk, j) as f64).sum();
            }
        }
        c
    }

    #[test]
    fn every_kernel_and_transpose_matches_a_naive_product() {
        let (m, k, n) = (7, 13, 9);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 13) as f32 * 0.25 - 1.0).collect();
        for kernel in [GemmKernel::Packed, GemmKernel::Rows] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let oa = if ta {
                    Operand::new(&a, k, m).t()
                } else {
                    Operand::new(&a, m, k)
                };
                let ob = if tb {
                    Operand::new(&b, n, k).t()
                } else {
                    Operand::new(&b, k, n)
                };
                let want = naive(&oa, &ob);
                let mut c = vec![1.0f32; m * n];
                gemm_with(kernel, oa, ob, 0.5, &mut c);
                for (got, w) in c.iter().zip(&want) {
                    assert!(
                        (*got as f64 - (w + 0.5)).abs() < 1e-3,
                        "{kernel:?} ta {ta} tb {tb}: {got} vs {}",
                        w + 0.5
                    );
                }
            }
        }
    }
}
