//! Row sums in a fixed order, shared by the fills: rows of a standard-layout view, dot
//! products with eight accumulators ([`sum8`], and [`sum8_f64`] in float64), and the
//! squared and inverse row norms built on them. The order of every sum is part of the
//! answer (the last bits of a distance decide ties), so it is written once, here.

use ndarray::ArrayView2;

use crate::platform::multiversion;
use crate::real::Real;

#[inline(always)]
#[allow(clippy::inline_always)]
pub(crate) fn row<'b, T: Real>(a: &'b ArrayView2<'_, T>, i: usize) -> &'b [T] {
    let d = a.ncols();
    // Standard layout is guaranteed by `prepare`'s callers, so rows are contiguous.
    a.as_slice().map_or(&[], |all| &all[i * d..(i + 1) * d])
}

#[inline(always)] // inlined into `multiversion!` builds, so compiled for the CPU
#[allow(clippy::inline_always)]
fn sq_norms<T: Real>(a: &ArrayView2<'_, T>) -> Vec<T> {
    // A plain loop: `map(..).collect()` goes through `Iterator::fold`, which the compiler
    // keeps out of line, compiled for the baseline target instead of this wrapper's.
    let mut out = Vec::with_capacity(a.nrows());
    for i in 0..a.nrows() {
        let r = row(a, i);
        out.push(sum8(r, r, |x, y| x * y));
    }
    out
}

#[inline(always)] // inlined into `multiversion!` builds, so compiled for the CPU
#[allow(clippy::inline_always)]
pub(crate) fn inv_norms<T: Real>(a: &ArrayView2<'_, T>) -> Vec<T> {
    sq_norms(a)
        .into_iter()
        .map(|s| {
            if s > T::zero() {
                T::one() / s.sqrt()
            } else {
                T::zero()
            }
        })
        .collect()
}

/// Sums `f(a_j, b_j)` with 8 independent accumulators (so the loop vectorises).
#[inline(always)] // also inlined into `multiversion!` builds (see `sq_norms`)
#[allow(clippy::inline_always)]
pub(crate) fn sum8<T: Real>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> T {
    let mut acc = [T::zero(); 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += f(x[l], y[l]);
        }
    }
    let mut tail = T::zero();
    for (&x, &y) in ra.iter().zip(rb) {
        tail += f(x, y);
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
}

/// The dot product of `a` and `b` in float64, summed in [`sum8`]'s order (for float64 rows
/// the same bits as `sum8(a, b, |x, y| x * y)`): float32 rows are upcast first, as
/// scikit-learn's float32 Euclidean search upcasts them.
#[inline(always)] // also inlined into `multiversion!` builds (see `sq_norms`)
#[allow(clippy::inline_always)]
pub(crate) fn sum8_f64<T: Real>(a: &[T], b: &[T]) -> f64 {
    let mut acc = [0.0_f64; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l].to_f64_lossless() * y[l].to_f64_lossless();
        }
    }
    let mut tail = 0.0_f64;
    for (&x, &y) in ra.iter().zip(rb) {
        tail += x.to_f64_lossless() * y.to_f64_lossless();
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
}

/// Squared row norms in float64 (see [`sum8_f64`]; for float64 rows, [`sq_norms`]' bits).
#[inline(always)] // inlined into `multiversion!` builds, so compiled for the CPU
#[allow(clippy::inline_always)]
fn sq_norms_f64<T: Real>(a: &ArrayView2<'_, T>) -> Vec<f64> {
    let mut out = Vec::with_capacity(a.nrows());
    for i in 0..a.nrows() {
        let r = row(a, i);
        out.push(sum8_f64(r, r));
    }
    out
}

multiversion! {
    /// [`sq_norms`] compiled for `level`.
    pub(crate) fn sq_norms_simd<T: Real>(a: &ArrayView2<'_, T>) -> Vec<T> => full: sq_norms
}

multiversion! {
    /// [`sq_norms_f64`] compiled for `level`.
    pub(crate) fn sq_norms_f64_simd<T: Real>(a: &ArrayView2<'_, T>) -> Vec<f64> => full: sq_norms_f64
}
