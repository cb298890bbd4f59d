//! The float32 rules: the precision a search reports its distances in ([`Precision`], as
//! scikit-learn's 32-bit reductions round them), and in which dtype a Euclidean search may
//! compute them and still give scikit-learn's answers (float64 data of small integers is
//! exact in float32; float32 data is otherwise computed in float64, as scikit-learn upcasts
//! it).
//!
//! A new precision goes here: a [`Precision`] variant with its `dist` and `rdist_radius`
//! rules, and its `of` type.

use ndarray::{Array2, ArrayView2};

use super::Metric;
use crate::error::{CoreError, Result, try_collect};
use crate::platform::multiversion;
use crate::real::Real;

/// The precision of the distances a search returns: scikit-learn's 32-bit reductions turn
/// each reduced distance into a distance in float32 (`_rdist_to_dist` of its `...32`
/// metrics), so a float32 search rounds its distances to float32, whatever type the search
/// ran in (an exact float64 search may run in float32 or integers, see [`exact_in_f32`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precision {
    /// scikit-learn's 32-bit reductions (float32 data).
    F32,
    /// scikit-learn's 64-bit reductions (float64 data).
    F64,
}

impl Precision {
    /// The precision of a search of `T` data.
    pub(crate) fn of<T: Real>() -> Self {
        if std::mem::size_of::<T>() == std::mem::size_of::<f32>() {
            Self::F32
        } else {
            Self::F64
        }
    }

    /// The distance reported for the reduced distance `r` of `metric`.
    ///
    /// scikit-learn's 32-bit reductions pass the float64 reduced distance (clipped at 0)
    /// to their float32 metric's `_rdist_to_dist`, which takes and returns float32; with
    /// `sqeuclidean` they skip that step and report the float64 value itself.
    #[inline]
    pub(crate) fn dist<T: Real>(self, metric: &Metric, r: T) -> f64 {
        let r = r.to_f64_lossless();
        match (self, metric) {
            (Self::F64, _) => metric.rdist_to_dist(r),
            (Self::F32, Metric::SqEuclidean) => r,
            (Self::F32, _) => {
                let r32 = f64::from(r.max(0.0) as f32);
                f64::from(metric.rdist_to_dist(r32) as f32)
            }
        }
    }

    /// The reduced radius a radius search compares reduced distances with (`<=`).
    ///
    /// scikit-learn's 32-bit radius search converts the radius with its float32 metric's
    /// `_dist_to_rdist` (a float32 argument and result), except for `sqeuclidean`, whose
    /// radius is compared as given.
    #[inline]
    pub(crate) fn rdist_radius(self, metric: &Metric, radius: f64) -> f64 {
        match (self, metric) {
            (Self::F64, _) | (Self::F32, Metric::SqEuclidean) => metric.dist_to_rdist(radius),
            (Self::F32, _) => {
                let r32 = f64::from(radius as f32);
                f64::from(metric.dist_to_rdist(r32) as f32)
            }
        }
    }
}

/// Whether a Euclidean search of float32 `query` and `train` must compute its distances in
/// float64 to give scikit-learn's answers: always, except where the float32 expansion is
/// exact (small integers, see [`exact_in_f32`]), which then gives the same values.
pub(crate) fn needs_float64<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    metric: &Metric,
) -> bool {
    if std::mem::size_of::<T>() > std::mem::size_of::<f32>()
        || !matches!(metric, Metric::Euclidean | Metric::SqEuclidean)
    {
        return false;
    }
    let d = train.ncols().max(1) as f64;
    let limit = (f64::from(1u32 << 24) / (4.0 * d)).sqrt();
    let exact = |a: ArrayView2<'_, T>| {
        a.as_slice()
            .is_some_and(|v| v.chunks(256).all(|c| small_integers(c, limit)))
    };
    !(exact(train) && exact(query))
}

/// A float64 copy of `a` (exact), in standard layout.
pub(crate) fn upcast<T: Real>(a: ArrayView2<'_, T>) -> Result<Array2<f64>> {
    let what = "a float64 copy of the float32 data";
    let flat = try_collect(a.len(), a.iter().map(|&v| v.to_f64_lossless()), what)?;
    Array2::from_shape_vec(a.dim(), flat).map_err(|_| CoreError::shape(what, a.len(), a.len()))
}

/// float32 copies of float64 inputs whose Euclidean arithmetic is exact in float32.
///
/// When every value is an integer of magnitude `M` with `4 d M^2 < 2^24` (images, counts,
/// the digits data), every norm, dot product and `||q||^2 - 2 q.t + ||t||^2`, in any
/// summation order, is an integer below `2^24`, so float32 computes exactly the float64
/// results (which are exact too) at twice the GEMM throughput. Returns `None` otherwise
/// (and always for float32 inputs or other metrics).
#[inline(always)] // inlined into `multiversion!` builds, so compiled for the CPU
#[allow(clippy::inline_always)]
fn exact_in_f32<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    metric: &Metric,
) -> Option<(Array2<f32>, Array2<f32>)> {
    if std::mem::size_of::<T>() <= std::mem::size_of::<f32>()
        || !matches!(metric, Metric::Euclidean | Metric::SqEuclidean)
        || query.ncols() != train.ncols()
    {
        return None;
    }
    let d = train.ncols().max(1) as f64;
    let limit = (f64::from(1u32 << 24) / (4.0 * d)).sqrt();
    // Training data first: in a fitted model's searches it is the larger, and a float
    // dataset fails on its first chunk.
    let t32 = to_f32_exact(train, limit)?;
    let q32 = to_f32_exact(query, limit)?;
    Some((q32, t32))
}

/// `a` in float32 when every value is an integer of magnitude below `limit`, else None.
#[inline(always)] // inlined into `multiversion!` builds, so compiled for the CPU
#[allow(clippy::inline_always)]
fn to_f32_exact<T: Real>(a: ArrayView2<'_, T>, limit: f64) -> Option<Array2<f32>> {
    let dim = a.dim();
    let a = a.as_slice()?;
    // Without room for the copy, the search runs on `a` itself (the same answers).
    let mut out: Vec<f32> = Vec::new();
    out.try_reserve_exact(a.len()).ok()?;
    for c in a.chunks(256) {
        if !small_integers(c, limit) {
            return None;
        }
        out.extend(c.iter().map(|v| v.to_f64_lossless() as f32));
    }
    Array2::from_shape_vec(dim, out).ok()
}

/// True when every value of `c` is an integer of magnitude below `limit` (`limit <= 2^12`).
///
/// `(x + 1.5 * 2^52) - 1.5 * 2^52` rounds `|x| < 2^51` to an integer, so it equals `x` exactly
/// when `x` is one; NaN fails both comparisons. Written without early exits or integer
/// casts so that it vectorises at the baseline target.
#[inline(always)] // part of `to_f32_exact`
#[allow(clippy::inline_always)]
fn small_integers<T: Real>(c: &[T], limit: f64) -> bool {
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let mut ok = true;
    for &v in c {
        let x = v.to_f64_lossless();
        ok &= x.abs() < limit;
        ok &= (x + MAGIC) - MAGIC == x;
    }
    ok
}

multiversion! {
    /// [`exact_in_f32`] compiled for `level`.
    pub(crate) fn exact_in_f32_simd<T: Real>(
        query: ArrayView2<'_, T>,
        train: ArrayView2<'_, T>,
        metric: &Metric,
    ) -> Option<(Array2<f32>, Array2<f32>)> => full: exact_in_f32
}

#[cfg(test)]
mod tests {
    use super::small_integers;

    #[test]
    fn small_integer_test() {
        assert!(small_integers(&[0.0, -0.0, 3.0, -16.0, 4095.0], 4096.0));
        assert!(!small_integers(&[0.5], 4096.0));
        assert!(!small_integers(&[4096.0], 4096.0));
        assert!(!small_integers(&[f64::NAN], 4096.0));
        assert!(!small_integers(&[f64::INFINITY], 4096.0));
        assert!(!small_integers(&[1e-300], 4096.0));
    }
}
