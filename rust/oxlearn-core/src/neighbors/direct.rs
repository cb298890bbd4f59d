//! The direct metrics: distances summed feature by feature as scikit-learn's
//! `DistanceMetric` classes sum them (manhattan, `l2`, minkowski, weighted or not), the
//! chebyshev maximum, and precomputed distances copied as they are.
//!
//! A new metric computed by a direct loop goes here: a [`Kind`] (or a [`DirectSum`] term)
//! and its arm in [`DirectFill::new`] (its name and distance conversions go in
//! `metric.rs`).

use ndarray::ArrayView2;

use super::Metric;
use super::engine::{Fill, TileNorms};
use super::norms::row;
use crate::platform::{SimdLevel, multiversion};
use crate::real::Real;

/// How a [`DirectFill`] computes its tiles.
#[derive(Debug, Clone, Copy)]
enum Kind<'w> {
    /// The query rows hold the distances already.
    Precomputed,
    /// `max |x - y|`.
    Chebyshev,
    /// A sum over the features.
    Sum(DirectSum<'w>),
}

/// The rows of a search by a direct metric, row-major.
pub(crate) struct DirectFill<'a, T: Real> {
    query: ArrayView2<'a, T>,
    train: ArrayView2<'a, T>,
    kind: Kind<'a>,
}

impl<'a, T: Real> DirectFill<'a, T> {
    /// The fill of a `metric` search of `query` against `train` (both in standard layout,
    /// checked by the caller, Minkowski weights included), or `None` for a metric the GEMM
    /// computes.
    pub(crate) fn new(
        query: ArrayView2<'a, T>,
        train: ArrayView2<'a, T>,
        metric: &'a Metric,
    ) -> Option<Self> {
        let kind = match metric {
            Metric::Precomputed => Kind::Precomputed,
            Metric::Chebyshev => Kind::Chebyshev,
            Metric::Manhattan => Kind::Sum(DirectSum::Manhattan),
            Metric::L2 => Kind::Sum(DirectSum::Squares),
            // scikit-learn's metrics hold `p` and the weights in float64.
            Metric::Minkowski { p, w } => Kind::Sum(DirectSum::Minkowski {
                p: *p,
                w: w.as_deref(),
            }),
            Metric::Euclidean | Metric::SqEuclidean | Metric::Cosine => return None,
        };
        Some(Self { query, train, kind })
    }

    /// [`direct_sum_tile`] on queries `qs..qe` and training rows `ts..te`.
    fn direct_sum(
        &self,
        qs: usize,
        qe: usize,
        ts: usize,
        te: usize,
        buf: &mut [T],
        kind: DirectSum<'_>,
    ) {
        let d = self.train.ncols();
        let (Some(q), Some(t)) = (self.query.as_slice(), self.train.as_slice()) else {
            return;
        };
        let mut tr = vec![T::zero(); d * (te - ts)];
        let mut acc = vec![0.0_f64; te - ts];
        direct_sum_tile_simd(
            SimdLevel::detected(),
            &q[qs * d..qe * d],
            &t[ts * d..te * d],
            d,
            kind,
            &mut tr,
            &mut acc,
            &mut buf[..(qe - qs) * (te - ts)],
        );
    }

    fn direct(&self, qs: usize, ts: usize, tt: usize, buf: &mut [T], f: impl Fn(&[T], &[T]) -> T) {
        for (i, out) in buf.chunks_exact_mut(tt).enumerate() {
            let q = row(&self.query, qs + i);
            for (j, o) in out.iter_mut().enumerate() {
                *o = f(q, row(&self.train, ts + j));
            }
        }
    }
}

impl<T: Real> Fill<T> for DirectFill<'_, T> {
    fn fill_tile(
        &self,
        qs: usize,
        qe: usize,
        ts: usize,
        te: usize,
        buf: &mut [T],
    ) -> TileNorms<'_, T> {
        let tt = te - ts;
        let buf = &mut buf[..(qe - qs) * tt];
        match self.kind {
            Kind::Precomputed => {
                for (i, out) in buf.chunks_exact_mut(tt).enumerate() {
                    out.copy_from_slice(&row(&self.query, qs + i)[ts..te]);
                }
            }
            Kind::Chebyshev => self.direct(qs, ts, tt, buf, chebyshev),
            Kind::Sum(kind) => self.direct_sum(qs, qe, ts, te, buf, kind),
        }
        None
    }
}

/// The direct-sum metrics, computed as scikit-learn's `DistanceMetric` classes compute
/// them (`sklearn/metrics/_dist_metrics.pyx.tp`): each feature's difference in the input
/// dtype, its term in float64, summed in feature order in float64, and the sum rounded to
/// the input dtype. Summing in any other order (or in float32) changes the last bits, and
/// with them which of two tied neighbours is kept.
#[derive(Debug, Clone, Copy)]
enum DirectSum<'w> {
    /// `sum |x - y|`.
    Manhattan,
    /// `sum (x - y)^2` (`l2`'s reduced distance).
    Squares,
    /// `sum w_j |x_j - y_j|^p` (the reduced distance), `w` optional.
    Minkowski { p: f64, w: Option<&'w [f64]> },
}

/// Fills `out` (`rows x tt`) with the [`DirectSum`] distances between the query rows `q`
/// (`rows x d`) and the training rows `t` (`tt x d`).
///
/// Our own kernel, because the order of the sums is fixed by scikit-learn's loop (one
/// feature after another) and vectorising across features would change it: here the
/// training tile is transposed into `tr` (`d x tt`), so each query accumulates all `tt`
/// sums at once, feature by feature, and the loop over training rows vectorises.
#[inline(always)] // inlined into `multiversion!` builds, so compiled for the CPU
#[allow(clippy::inline_always)]
fn direct_sum_tile<T: Real>(
    q: &[T],
    t: &[T],
    d: usize,
    kind: DirectSum<'_>,
    tr: &mut [T],
    acc: &mut [f64],
    out: &mut [T],
) {
    let tt = acc.len();
    if d == 0 || tt == 0 {
        out.fill(T::zero());
        return;
    }
    for (l, r) in t.chunks_exact(d).take(tt).enumerate() {
        for (j, &v) in r.iter().enumerate() {
            tr[j * tt + l] = v;
        }
    }
    for (qr, o) in q.chunks_exact(d).zip(out.chunks_exact_mut(tt)) {
        acc.fill(0.0);
        for (j, (&qj, col)) in qr.iter().zip(tr.chunks_exact(tt)).enumerate() {
            match kind {
                DirectSum::Manhattan => {
                    for (a, &v) in acc.iter_mut().zip(col) {
                        *a += (qj - v).to_f64_lossless().abs();
                    }
                }
                DirectSum::Squares => {
                    for (a, &v) in acc.iter_mut().zip(col) {
                        let diff = (qj - v).to_f64_lossless();
                        *a += diff * diff;
                    }
                }
                DirectSum::Minkowski { p, w: None } => {
                    for (a, &v) in acc.iter_mut().zip(col) {
                        *a += (qj - v).to_f64_lossless().abs().powf(p);
                    }
                }
                DirectSum::Minkowski { p, w: Some(w) } => {
                    let wj = w[j];
                    for (a, &v) in acc.iter_mut().zip(col) {
                        *a += wj * (qj - v).to_f64_lossless().abs().powf(p);
                    }
                }
            }
        }
        for (o, &a) in o.iter_mut().zip(acc.iter()) {
            *o = T::from_f64_lossy(a);
        }
    }
}

#[inline]
fn chebyshev<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            let d = (x[l] - y[l]).abs();
            acc[l] = if d > acc[l] { d } else { acc[l] };
        }
    }
    let mut m = T::zero();
    for v in acc {
        m = if v > m { v } else { m };
    }
    for (&x, &y) in ra.iter().zip(rb) {
        let d = (x - y).abs();
        m = if d > m { d } else { m };
    }
    m
}

multiversion! {
    /// [`direct_sum_tile`] compiled for `level`.
    fn direct_sum_tile_simd<T: Real>(
        q: &[T],
        t: &[T],
        d: usize,
        kind: DirectSum<'_>,
        tr: &mut [T],
        acc: &mut [f64],
        out: &mut [T],
    ) => full: direct_sum_tile
}
