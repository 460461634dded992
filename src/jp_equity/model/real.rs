//! The numeric type the model is written over: `f32` for training and inference, `f64`
//! for gradient checks. One trait, so every block is one generic function.

use num_traits::{Float, FromPrimitive};
use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A floating-point element type of the model's tensors.
pub trait Real:
    Float
    + FromPrimitive
    + Default
    + Debug
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Send
    + Sync
    + 'static
{
    /// A constant of this type.
    fn c(x: f64) -> Self;
    fn to_f64c(self) -> f64;
    /// `C = alpha·op(A)·op(B) + beta·C`, row-major strides given explicitly. `A` is
    /// `m×k` as seen through `(rsa, csa)`, `B` is `k×n` through `(rsb, csb)`, `C` is `m×n`
    /// with row stride `rsc` (column stride 1).
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: &[Self],
        rsa: usize,
        csa: usize,
        b: &[Self],
        rsb: usize,
        csb: usize,
        beta: Self,
        c: &mut [Self],
        rsc: usize,
    );
}

fn check_bounds(len: usize, rows: usize, cols: usize, rs: usize, cs: usize, what: &str) {
    if rows == 0 || cols == 0 {
        return;
    }
    let last = (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        last < len,
        "gemm: {what} needs index {last} but holds {len} elements"
    );
}

macro_rules! impl_real {
    ($t:ty, $gemm:path) => {
        impl Real for $t {
            #[inline(always)]
            fn c(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64c(self) -> f64 {
                self as f64
            }
            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: &[Self],
                rsa: usize,
                csa: usize,
                b: &[Self],
                rsb: usize,
                csb: usize,
                beta: Self,
                c: &mut [Self],
                rsc: usize,
            ) {
                if m == 0 || n == 0 {
                    return;
                }
                check_bounds(a.len(), m, k, rsa, csa, "A");
                check_bounds(b.len(), k, n, rsb, csb, "B");
                check_bounds(c.len(), m, n, rsc, 1, "C");
                // SAFETY: every index the kernel touches was bounds-checked above, and
                // `c` is a unique borrow that does not alias `a` or `b`.
                unsafe {
                    $gemm(
                        m,
                        k,
                        n,
                        alpha,
                        a.as_ptr(),
                        rsa as isize,
                        csa as isize,
                        b.as_ptr(),
                        rsb as isize,
                        csb as isize,
                        beta,
                        c.as_mut_ptr(),
                        rsc as isize,
                        1,
                    )
                }
            }
        }
    };
}

impl_real!(f32, matrixmultiply::sgemm);
impl_real!(f64, matrixmultiply::dgemm);
