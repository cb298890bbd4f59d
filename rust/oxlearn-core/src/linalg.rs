//! The one place that calls the GEMM crate.
//!
//! [`gemm()`] multiplies strided ndarray views (any layout, transposes are just `.t()` views)
//! with the `gemm` crate, which picks an AVX-512 / AVX2+FMA / SSE / NEON micro-kernel at run time,
//! so the shipped wheel is built for a portable baseline and still runs at the machine's speed.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::exec::Threads;
use crate::real::Real;

/// `c = beta * c + alpha * a @ b` (BLAS convention); when `beta == 0` the old contents of `c`
/// are not read (so `c` may hold garbage, even NaN).
///
/// `threads` parallelises the product over blocks of `c`; the summation order over the inner
/// dimension does not depend on it, so results are bit-identical for any thread count. Call it
/// inside [`Threads::install`] when `threads` is a pool.
///
/// # Panics
/// If the shapes do not agree (a programming error: callers validate shapes first).
pub fn gemm<T: Real>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    mut c: ArrayViewMut2<'_, T>,
    threads: Threads,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "gemm: inner dimensions differ");
    assert_eq!(c.dim(), (m, n), "gemm: output shape differs");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if beta == T::zero() {
            c.fill(T::zero());
        } else {
            c.mapv_inplace(|v| v * beta);
        }
        return;
    }
    let [a_rs, a_cs] = [a.strides()[0], a.strides()[1]];
    let [b_rs, b_cs] = [b.strides()[0], b.strides()[1]];
    let [c_rs, c_cs] = [c.strides()[0], c.strides()[1]];
    let read_dst = beta != T::zero();
    // SAFETY: the pointers and strides come from live ndarray views whose shapes were checked
    // above; `c` is a unique mutable view, so it aliases neither `a` nor `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            read_dst,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            beta,
            alpha,
            false,
            false,
            false,
            threads.gemm(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::gemm;
    use crate::exec::Threads;
    use ndarray::{Array2, array};

    #[test]
    fn matches_naive_product_with_transposes() {
        let a = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let b = array![[1.0, 0.5], [2.0, -1.0], [0.0, 3.0]];
        let mut c = Array2::<f64>::from_elem((2, 2), f64::NAN);
        gemm(1.0, a.view(), b.view(), 0.0, c.view_mut(), Threads::Single);
        assert_eq!(c, a.dot(&b));
        // c = 2 c + a @ b, with b given transposed.
        let bt = b.t().to_owned();
        let mut c2 = c.clone();
        gemm(1.0, a.view(), bt.t(), 2.0, c2.view_mut(), Threads::Single);
        assert_eq!(c2, &c * 3.0);
    }

    #[test]
    fn same_bits_for_any_thread_count() {
        let a = Array2::from_shape_fn((97, 61), |(i, j)| ((i * 31 + j * 7) % 13) as f32 * 0.37);
        let b = Array2::from_shape_fn((61, 83), |(i, j)| ((i * 5 + j * 11) % 17) as f32 * -0.21);
        let mut c1 = Array2::<f32>::zeros((97, 83));
        let mut c2 = Array2::<f32>::zeros((97, 83));
        gemm(1.0, a.view(), b.view(), 0.0, c1.view_mut(), Threads::Single);
        let t = Threads::Pool(2);
        t.install(|| gemm(1.0, a.view(), b.view(), 0.0, c2.view_mut(), t))
            .unwrap();
        assert_eq!(c1, c2);
    }
}
