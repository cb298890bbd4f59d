//! The GEMM fill: squared Euclidean distances as `||q||^2 - 2 q.t + ||t||^2` (the cross
//! term from the GEMM, the norms added by the engine's reduction, fused with its pass over
//! the tile), and cosine distances from the GEMM's dot products and the inverse row norms.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};

use super::Metric;
use super::engine::{Fill, GEMM_QUERY_ROWS, GEMM_TRAIN_ROWS, TileNorms};
use super::norms::{inv_norms, sq_norms_simd};
use crate::error::try_filled;
use crate::exec::Threads;
use crate::linalg::gemm;
use crate::platform::SimdLevel;
use crate::real::Real;

/// The rows of a Euclidean or cosine search, row-major, with their norms.
pub(crate) struct GemmFill<'a, T: Real> {
    query: ArrayView2<'a, T>,
    train: ArrayView2<'a, T>,
    /// Cosine distances; else squared Euclidean ones.
    cosine: bool,
    /// Squared norms (Euclidean) or inverse norms (cosine) of the query rows.
    qn: Vec<T>,
    /// Squared norms (Euclidean) or inverse norms (cosine) of the training rows.
    tn: Vec<T>,
}

impl<'a, T: Real> GemmFill<'a, T> {
    /// The fill of a `metric` search of `query` against `train` (both in standard layout,
    /// checked by the caller), or `None` for a metric the GEMM does not compute.
    pub(crate) fn new(
        query: ArrayView2<'a, T>,
        train: ArrayView2<'a, T>,
        metric: &Metric,
    ) -> Option<Self> {
        let (qn, tn) = match metric {
            Metric::Euclidean | Metric::SqEuclidean => (
                sq_norms_simd(SimdLevel::detected(), &query),
                sq_norms_simd(SimdLevel::detected(), &train),
            ),
            Metric::Cosine => (inv_norms(&query), inv_norms(&train)),
            _ => return None,
        };
        Some(Self {
            query,
            train,
            cosine: matches!(metric, Metric::Cosine),
            qn,
            tn,
        })
    }

    /// `buf = alpha * Q[qs..qe] @ T[ts..te].T` through the GEMM, in column blocks of
    /// [`GEMM_TRAIN_ROWS`] training rows.
    ///
    /// Why blocks: the GEMM crate allocates a packing buffer for the training rows on every
    /// call and frees it on return. On a thread's first search those aligned allocations
    /// fragmented its fresh malloc arena by about 16 times their size (a 256-row tile of
    /// 64 float64 features grew it by 2 MiB, most of a search's peak extra memory); blocks
    /// of 64 rows cut that by four, at the same packing work (each training row is still
    /// packed once per query tile) and a few more calls.
    ///
    /// And in row blocks of [`GEMM_QUERY_ROWS`] queries (the tile starts on a multiple of
    /// it, see [`Fill::query_grid`]), so each distance comes from a call of the same shape
    /// whatever the tile.
    fn cross(&self, qs: usize, qe: usize, ts: usize, te: usize, buf: &mut [T], alpha: T) {
        let Some(out) = buf.get_mut(..(qe - qs) * (te - ts)) else {
            return;
        };
        let Ok(mut c) = ArrayViewMut2::from_shape((qe - qs, te - ts), out) else {
            return;
        };
        for i0 in (0..qe - qs).step_by(GEMM_QUERY_ROWS) {
            let i1 = (i0 + GEMM_QUERY_ROWS).min(qe - qs);
            let q = self.query.slice(s![qs + i0..qs + i1, ..]);
            for j0 in (0..te - ts).step_by(GEMM_TRAIN_ROWS) {
                let j1 = (j0 + GEMM_TRAIN_ROWS).min(te - ts);
                let t = self.train.slice(s![ts + j0..ts + j1, ..]);
                block(alpha, q, t, c.slice_mut(s![i0..i1, j0..j1]));
            }
        }
    }
}

/// `c = alpha * q @ t.T` for one block of at most [`GEMM_TRAIN_ROWS`] training rows.
///
/// A block of fewer rows is computed as a full one (the rows zero-padded, the extra columns
/// dropped): the gemm crate takes another kernel for very narrow calls, whose last bit
/// differs, and a training set (or a cluster's shard, or a range of one) ends in such a
/// block where the whole set has a full one. Should the padded copies not be allocated, the
/// narrow call runs instead.
fn block<T: Real>(
    alpha: T,
    q: ArrayView2<'_, T>,
    t: ArrayView2<'_, T>,
    mut c: ArrayViewMut2<'_, T>,
) {
    let (rows, d) = t.dim();
    if rows < GEMM_TRAIN_ROWS {
        let what = "a GEMM block's padded copy";
        let padded = try_filled(GEMM_TRAIN_ROWS * d, T::zero(), what).and_then(|tp| {
            Ok((
                tp,
                try_filled(q.nrows() * GEMM_TRAIN_ROWS, T::zero(), what)?,
            ))
        });
        if let Ok((tp, cp)) = padded
            && let (Ok(mut tp), Ok(mut cp)) = (
                Array2::from_shape_vec((GEMM_TRAIN_ROWS, d), tp),
                Array2::from_shape_vec((q.nrows(), GEMM_TRAIN_ROWS), cp),
            )
        {
            tp.slice_mut(s![..rows, ..]).assign(&t);
            gemm(alpha, q, tp.t(), T::zero(), cp.view_mut(), Threads::Single);
            c.assign(&cp.slice(s![.., ..rows]));
            return;
        }
    }
    gemm(alpha, q, t.t(), T::zero(), c, Threads::Single);
}

impl<T: Real> Fill<T> for GemmFill<'_, T> {
    fn query_grid(&self) -> usize {
        GEMM_QUERY_ROWS
    }

    /// Euclidean tiles: the GEMM cross term, the norms added while reducing (one pass
    /// less). Cosine tiles: the distances themselves.
    fn fill_tile(
        &self,
        qs: usize,
        qe: usize,
        ts: usize,
        te: usize,
        buf: &mut [T],
    ) -> TileNorms<'_, T> {
        if !self.cosine {
            self.cross(qs, qe, ts, te, buf, T::from_f64_lossy(-2.0));
            return Some((&self.qn[qs..qe], &self.tn[ts..te]));
        }
        let tt = te - ts;
        let buf = &mut buf[..(qe - qs) * tt];
        self.cross(qs, qe, ts, te, buf, T::one());
        let tn = &self.tn[ts..te];
        let two = T::from_f64_lossy(2.0);
        for (i, out) in buf.chunks_exact_mut(tt).enumerate() {
            let qn = self.qn[qs + i];
            for (o, &t) in out.iter_mut().zip(tn) {
                // A zero inverse norm (a zero row, or one whose squared norm
                // overflows) makes scikit-learn's normalised row zero and the
                // distance exactly 1; here it would give `0 * inf = NaN` when the
                // dot product overflowed as well.
                let sim = (*o * qn) * t;
                let v = if sim.is_nan() {
                    T::one()
                } else {
                    T::one() - sim
                };
                *o = if v < T::zero() {
                    T::zero()
                } else if v > two {
                    two
                } else {
                    v
                };
            }
        }
        None
    }
}
