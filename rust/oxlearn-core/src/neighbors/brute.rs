//! Tiled brute-force search: one tile of queries x one tile of training rows at a time.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};
use std::any::Any;
use std::sync::Mutex;

use super::Metric;
use super::heap::{KHeap, simultaneous_sort, stable_sort};
use super::int8::Int8Tiles;
use super::screen::Screen;
use crate::error::{CoreError, Result, checked_len, try_collect, try_filled, try_reserve, try_vec};
use crate::exec::{Cancel, Threads, Wake};
use crate::linalg::gemm;
use crate::platform::{SimdLevel, multiversion};
use crate::real::Real;

/// The working sets (a `Vec<Scratch<T>>`) of the last small search (see
/// [`Scratch::keep_spare`]).
static SPARE_SCRATCH: Mutex<Option<Box<dyn Any + Send>>> = Mutex::new(None);
/// The most memory [`SPARE_SCRATCH`] keeps between searches: a digits-sized search's sets
/// (about 250 KiB on two threads, 350 KiB for a k = 1..9 sweep), not those of larger
/// searches, for which making them is a negligible part of the time (memory would be held
/// for nothing).
const SPARE_SCRATCH_BYTES: usize = 512 << 10;

/// Training rows per tile: a tile of distances holds at most `QUERY_TILE x TRAIN_TILE` values.
pub(super) const TRAIN_TILE: usize = 256;
/// Training rows per GEMM call within a tile (see [`Prepared::cross`]).
pub(super) const GEMM_TRAIN_ROWS: usize = 64;
/// Largest number of query rows per tile (256 x 256: scikit-learn's chunk shape; larger tiles
/// cut the GEMM's repacking but raise the peak memory, smaller ones the reverse).
pub(super) const QUERY_TILE: usize = 256;
/// scikit-learn's `pairwise_dist_chunk_size` default, which enters its strategy choice.
const SKLEARN_CHUNK: usize = 256;
/// Candidates compared against the heap root at once (the bits of one `u64` mask).
pub(super) const LANES: usize = 64;
/// Below this many multiply-adds a search runs on the calling thread: starting a pool would
/// cost more than it saves (results are the same either way).
const MIN_PARALLEL_WORK: usize = 1 << 20;

/// How scikit-learn's `ArgKmin` (run with one thread) arranges its heaps before sorting them.
///
/// With `ParallelOnX` the per-query heap is sorted as filled. With `ParallelOnY` the heap
/// filled by the (single) worker is pushed, slot by slot, into a fresh heap, which is then
/// sorted; the kept neighbours are the same, the order of equal distances may differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Heaps are sorted directly.
    ParallelOnX,
    /// Heaps are re-pushed into fresh heaps, then sorted.
    ParallelOnY,
}

/// The strategy scikit-learn's `ArgKmin` picks with one thread and its default chunk size
/// (`BaseDistancesReduction.__init__`, `strategy="auto"`).
pub fn sklearn_strategy(n_queries: usize, n_train: usize) -> Strategy {
    if n_train < n_queries || 4 * SKLEARN_CHUNK < n_queries {
        Strategy::ParallelOnX
    } else {
        Strategy::ParallelOnY
    }
}

/// Inputs checked and laid out for the tile kernels (both arrays in standard layout).
struct Prepared<'a, T: Real> {
    query: ArrayView2<'a, T>,
    train: ArrayView2<'a, T>,
    metric: &'a Metric,
    /// Squared norms (Euclidean) or inverse norms (cosine) of the query rows.
    qn: Vec<T>,
    /// Squared norms (Euclidean) or inverse norms (cosine) of the training rows.
    tn: Vec<T>,
    /// Minkowski `p` and weights, in float64 as scikit-learn's metrics hold them.
    p: f64,
    w: Option<&'a [f64]>,
}

#[inline(always)]
#[allow(clippy::inline_always)]
fn row<'b, T: Real>(a: &'b ArrayView2<'_, T>, i: usize) -> &'b [T] {
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
fn inv_norms<T: Real>(a: &ArrayView2<'_, T>) -> Vec<T> {
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

impl<'a, T: Real> Prepared<'a, T> {
    fn new(query: ArrayView2<'a, T>, train: ArrayView2<'a, T>, metric: &'a Metric) -> Result<Self> {
        if train.nrows() == 0 {
            return Err(CoreError::EmptyInput("the training data".into()));
        }
        let expected_cols = if matches!(metric, Metric::Precomputed) {
            train.nrows()
        } else {
            train.ncols()
        };
        if query.ncols() != expected_cols {
            let what = if matches!(metric, Metric::Precomputed) {
                "precomputed distances: columns of the query matrix vs training samples"
            } else {
                "number of features of the queries vs the training data"
            };
            return Err(CoreError::shape(what, expected_cols, query.ncols()));
        }
        let (qn, tn) = match metric {
            Metric::Euclidean | Metric::SqEuclidean => (
                sq_norms_simd(SimdLevel::detected(), &query),
                sq_norms_simd(SimdLevel::detected(), &train),
            ),
            Metric::Cosine => (inv_norms(&query), inv_norms(&train)),
            _ => (Vec::new(), Vec::new()),
        };
        let (p, w) = match metric {
            Metric::Minkowski { p, w } => {
                if let Some(w) = w
                    && w.len() != train.ncols()
                {
                    return Err(CoreError::shape(
                        "Minkowski weights w vs number of features",
                        train.ncols(),
                        w.len(),
                    ));
                }
                (*p, w.as_deref())
            }
            _ => (1.0, None),
        };
        Ok(Self {
            query,
            train,
            metric,
            qn,
            tn,
            p,
            w,
        })
    }

    /// Fills `buf` (row-major, `(qe - qs) x (te - ts)`) with the reduced distances between
    /// queries `qs..qe` and training rows `ts..te`.
    fn tile(&self, qs: usize, qe: usize, ts: usize, te: usize, buf: &mut [T]) {
        let tt = te - ts;
        let buf = &mut buf[..(qe - qs) * tt];
        match self.metric {
            Metric::Euclidean | Metric::SqEuclidean => {
                self.cross(qs, qe, ts, te, buf, T::from_f64_lossy(-2.0));
                let tn = &self.tn[ts..te];
                for (i, out) in buf.chunks_exact_mut(tt).enumerate() {
                    epilogue(out, Some((self.qn[qs + i], tn)));
                }
            }
            Metric::Cosine => {
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
            }
            Metric::Precomputed => {
                for (i, out) in buf.chunks_exact_mut(tt).enumerate() {
                    out.copy_from_slice(&row(&self.query, qs + i)[ts..te]);
                }
            }
            Metric::Manhattan => self.direct_sum(qs, qe, ts, te, buf, DirectSum::Manhattan),
            Metric::L2 => self.direct_sum(qs, qe, ts, te, buf, DirectSum::Squares),
            Metric::Chebyshev => self.direct(qs, ts, tt, buf, chebyshev),
            Metric::Minkowski { .. } => {
                let kind = DirectSum::Minkowski {
                    p: self.p,
                    w: self.w,
                };
                self.direct_sum(qs, qe, ts, te, buf, kind);
            }
        }
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

    /// `buf = alpha * Q[qs..qe] @ T[ts..te].T` through the GEMM, in column blocks of
    /// [`GEMM_TRAIN_ROWS`] training rows.
    ///
    /// Why blocks: the GEMM crate allocates a packing buffer for the training rows on every
    /// call and frees it on return. On a thread's first search those aligned allocations
    /// fragmented its fresh malloc arena by about 16 times their size (a 256-row tile of
    /// 64 float64 features grew it by 2 MiB, most of a search's peak extra memory); blocks
    /// of 64 rows cut that by four, at the same packing work (each training row is still
    /// packed once per query tile) and a few more calls.
    fn cross(&self, qs: usize, qe: usize, ts: usize, te: usize, buf: &mut [T], alpha: T) {
        let q = self.query.slice(s![qs..qe, ..]);
        let Some(out) = buf.get_mut(..(qe - qs) * (te - ts)) else {
            return;
        };
        let Ok(mut c) = ArrayViewMut2::from_shape((qe - qs, te - ts), out) else {
            return;
        };
        for j0 in (0..te - ts).step_by(GEMM_TRAIN_ROWS) {
            let j1 = (j0 + GEMM_TRAIN_ROWS).min(te - ts);
            let t = self.train.slice(s![ts + j0..ts + j1, ..]);
            let c_block = c.slice_mut(s![.., j0..j1]);
            gemm(alpha, q, t.t(), T::zero(), c_block, Threads::Single);
        }
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

/// Sums `f(a_j, b_j)` with 8 independent accumulators (so the loop vectorises).
#[inline(always)] // also inlined into `multiversion!` builds (see `sq_norms`)
#[allow(clippy::inline_always)]
pub(super) fn sum8<T: Real>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> T {
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
pub(super) fn sum8_f64<T: Real>(a: &[T], b: &[T]) -> f64 {
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

/// `threads`, or one thread when the search is too small to gain from a pool.
fn effective_threads(threads: Threads, n_q: usize, n_t: usize, d: usize) -> Threads {
    if n_q.saturating_mul(n_t).saturating_mul(d.max(1)) < MIN_PARALLEL_WORK {
        Threads::Single
    } else {
        threads
    }
}

/// Whether a Euclidean search of float32 `query` and `train` must compute its distances in
/// float64 to give scikit-learn's answers: always, except where the float32 expansion is
/// exact (small integers, see [`exact_in_f32`]), which then gives the same values.
fn needs_float64<T: Real>(
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
fn upcast<T: Real>(a: ArrayView2<'_, T>) -> Result<Array2<f64>> {
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

/// Query rows per tile for `n_queries` queries on `threads` threads: enough tiles for every
/// thread, at most [`QUERY_TILE`] rows each.
fn query_tile(n_queries: usize, threads: Threads, max_rows: usize) -> usize {
    let per_thread = n_queries.div_ceil(2 * threads.count()).max(1);
    per_thread.clamp(1, max_rows.max(1))
}

/// Runs `f` on every query tile (`start..end`), in parallel when `threads` is a pool, and
/// returns the per-tile outputs in tile order.
fn over_query_tiles<R: Send>(
    n_queries: usize,
    threads: Threads,
    f: impl Fn(usize, usize) -> R + Sync + Send,
) -> Result<Vec<R>> {
    let tq = query_tile(n_queries, threads, QUERY_TILE);
    let starts: Vec<usize> = (0..n_queries).step_by(tq).collect();
    let slots: Vec<Mutex<Option<R>>> = starts.iter().map(|_| Mutex::new(None)).collect();
    threads.for_each_index(starts.len(), |t| {
        let qs = starts[t];
        let r = f(qs, (qs + tq).min(n_queries));
        if let Ok(mut slot) = slots[t].lock() {
            *slot = Some(r);
        }
    })?;
    threads.linger();
    slots
        .into_iter()
        .map(|m| m.into_inner().ok().flatten())
        .collect::<Option<Vec<R>>>()
        .ok_or_else(|| CoreError::ThreadPool("a query tile produced no result".into()))
}

/// One query's neighbours for each requested `k`.
type TileHeaps<T> = Vec<Vec<KHeap<T>>>;

/// Pushes one row of reduced distances (training indices `ts..`) into a query's heaps;
/// `heaps` is ordered by increasing size, so a candidate the largest heap rejects is rejected
/// by all of them (its root is the largest).
///
/// With `norms = Some((qn, tn))` the row holds the GEMM term `-2 q.t` and the squared norms
/// are added (and the sum clipped at 0) here, fused with the reduction to save a pass over
/// the tile; with `None` it holds reduced distances already.
///
/// Each chunk of [`LANES`] candidates is compared with the root once, branch-free, into a
/// bit mask; only the candidates below that root (which can only shrink) are then offered
/// to the heaps, in increasing index order, so the heaps see exactly what feeding every
/// candidate one by one would have given them.
#[inline(always)] // compiled into each `target_feature` wrapper below
#[allow(clippy::inline_always)]
fn reduce_row<T: Real>(
    heaps: &mut [KHeap<T>],
    vals: &mut [T],
    ts: usize,
    norms: Option<(T, &[T])>,
    admit_mask: impl Fn(&[T; LANES], T) -> u64,
) {
    let Some((big, small)) = heaps.split_last_mut() else {
        return;
    };
    epilogue(vals, norms);
    let mut j0 = 0usize;
    let mut chunks = vals.chunks_exact(LANES);
    for chunk in &mut chunks {
        if let Ok(v) = <&[T; LANES]>::try_from(chunk) {
            push_masked(big, small, v, admit_mask(v, big.root()), ts + j0);
        }
        j0 += LANES;
    }
    push_rest(big, small, chunks.remainder(), ts + j0);
}

/// A query row's squared norm and the training tile's, for a GEMM row (see [`epilogue`]).
type RowNorms<'a, T> = Option<(T, &'a [T])>;

/// [`reduce_row`] on two rows at once, chunk by chunk: the two heaps are independent, so
/// the out-of-order core overlaps one row's pushes (chains of dependent loads and
/// compares) with the other's; each heap still sees its own candidates in index order.
#[inline(always)] // compiled into each `target_feature` wrapper below
#[allow(clippy::inline_always)]
fn reduce_row_pair<T: Real>(
    heaps: (&mut [KHeap<T>], &mut [KHeap<T>]),
    vals: (&mut [T], &mut [T]),
    ts: usize,
    norms: (RowNorms<'_, T>, RowNorms<'_, T>),
    admit_mask: impl Fn(&[T; LANES], T) -> u64,
) {
    let (Some((big_a, small_a)), Some((big_b, small_b))) =
        (heaps.0.split_last_mut(), heaps.1.split_last_mut())
    else {
        return;
    };
    epilogue(vals.0, norms.0);
    epilogue(vals.1, norms.1);
    let mut j0 = 0usize;
    let mut chunks_a = vals.0.chunks_exact(LANES);
    let mut chunks_b = vals.1.chunks_exact(LANES);
    for (ca, cb) in (&mut chunks_a).zip(&mut chunks_b) {
        if let (Ok(va), Ok(vb)) = (<&[T; LANES]>::try_from(ca), <&[T; LANES]>::try_from(cb)) {
            let (ma, mb) = (admit_mask(va, big_a.root()), admit_mask(vb, big_b.root()));
            push_masked(big_a, small_a, va, ma, ts + j0);
            push_masked(big_b, small_b, vb, mb, ts + j0);
        }
        j0 += LANES;
    }
    push_rest(big_a, small_a, chunks_a.remainder(), ts + j0);
    push_rest(big_b, small_b, chunks_b.remainder(), ts + j0);
}

/// Adds the squared norms to a GEMM row (`-2 q.t`) and clips at 0; nothing for `None`.
#[inline(always)] // compiled into each `target_feature` wrapper below
#[allow(clippy::inline_always)]
fn epilogue<T: Real>(vals: &mut [T], norms: Option<(T, &[T])>) {
    if let Some((qn, tn)) = norms {
        for (o, &t) in vals.iter_mut().zip(tn) {
            *o = sq_dist(qn, *o, t);
        }
    }
}

/// The squared Euclidean distance from a query's squared norm `qn`, the GEMM term
/// `cross = -2 q.t` and the training row's squared norm `tn`: `(qn + cross) + tn`, clipped
/// at 0 (catastrophic cancellation can give tiny negatives).
#[inline(always)] // compiled into each `target_feature` wrapper
#[allow(clippy::inline_always)]
pub(super) fn sq_dist<T: Real>(qn: T, cross: T, tn: T) -> T {
    let v = (qn + cross) + tn;
    if v > T::zero() { v } else { T::zero() }
}

/// Offers the candidates of `chunk` whose bit is set in `mask` (training index `base + l`
/// for bit `l`), in increasing index order.
#[inline(always)] // compiled into each `target_feature` wrapper below
#[allow(clippy::inline_always)]
fn push_masked<T: Real>(
    big: &mut KHeap<T>,
    small: &mut [KHeap<T>],
    chunk: &[T; LANES],
    mut mask: u64,
    base: usize,
) {
    while mask != 0 {
        let l = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        push_all(big, small, chunk[l], base + l);
    }
}

/// Offers the last (fewer than [`LANES`]) candidates of a row.
#[inline(always)] // compiled into each `target_feature` wrapper below
#[allow(clippy::inline_always)]
fn push_rest<T: Real>(big: &mut KHeap<T>, small: &mut [KHeap<T>], rest: &[T], base: usize) {
    let root = big.root();
    let mut mask = 0u64;
    for (l, &v) in rest.iter().enumerate() {
        mask |= u64::from(admits(v, root)) << l;
    }
    while mask != 0 {
        let l = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        push_all(big, small, rest[l], base + l);
    }
}

#[inline(always)] // compiled into each `target_feature` wrapper below
#[allow(clippy::inline_always)]
pub(super) fn push_all<T: Real>(big: &mut KHeap<T>, small: &mut [KHeap<T>], v: T, idx: usize) {
    if admits(v, big.root()) {
        big.push(v, idx);
        for h in small.iter_mut() {
            h.push(v, idx);
        }
    }
}

/// Reduces a whole tile (`heaps.len()` rows of `tt` values, training rows `ts..ts + tt`).
/// `norms`: the query tile's and the training tile's squared norms, for a GEMM tile.
#[inline(always)] // compiled into each `target_feature` wrapper below
#[allow(clippy::inline_always)]
fn reduce_tile_body<T: Real>(
    heaps: &mut [Vec<KHeap<T>>],
    buf: &mut [T],
    tt: usize,
    ts: usize,
    norms: Option<(&[T], &[T])>,
    admit_mask: impl Fn(&[T; LANES], T) -> u64 + Copy,
) {
    let rows = heaps.len().min(buf.len() / tt.max(1));
    let (heaps, buf) = (&mut heaps[..rows], &mut buf[..rows * tt]);
    let norm = |i: usize| norms.map(|(qn, tn)| (qn[i], tn));
    let mut pairs = heaps.chunks_exact_mut(2).zip(buf.chunks_exact_mut(2 * tt));
    let mut i = 0usize;
    for (h, b) in &mut pairs {
        let (ha, hb) = h.split_at_mut(1);
        let (ra, rb) = b.split_at_mut(tt);
        reduce_row_pair(
            (&mut ha[0], &mut hb[0]),
            (ra, rb),
            ts,
            (norm(i), norm(i + 1)),
            admit_mask,
        );
        i += 2;
    }
    if i < rows {
        reduce_row(
            &mut heaps[i],
            &mut buf[i * tt..(i + 1) * tt],
            ts,
            norm(i),
            admit_mask,
        );
    }
}

/// Whether a heap whose root is `root` takes `v`: scikit-learn's `heap_push` refuses a value
/// `>= root`, so it takes a NaN (which fails every comparison) as well as any smaller value.
/// A NaN distance comes from finite data only through overflow (a weighted Minkowski sum
/// with a zero weight and an infinite difference, say); testing `v < root` instead dropped
/// such candidates and left the heap's placeholder index 0 in the results, once per
/// missing neighbour.
#[inline(always)] // compiled into each `target_feature` wrapper below
#[allow(clippy::inline_always)]
pub(super) fn admits<T: Real>(v: T, root: T) -> bool {
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(v >= root)` is true for NaN, on purpose
    let taken = !(v >= root);
    taken
}

/// Bit `l` set when the heap takes `v[l]` ([`admits`]): the portable version.
#[inline(always)] // compiled into each `target_feature` wrapper below
#[allow(clippy::inline_always)]
pub(super) fn admit_mask_portable<T: Real>(v: &[T; LANES], root: T) -> u64 {
    let mut mask = 0u64;
    for (l, &x) in v.iter().enumerate() {
        mask |= u64::from(admits(x, root)) << l;
    }
    mask
}

/// [`admit_mask_portable`] with AVX compares and `movemask` (8 `f32` or 4 `f64` lanes per
/// compare; with AVX-512 enabled the compiler turns them into mask-register compares).
///
/// AVX2 intrinsics only (the MSRV, 1.89, is the first Rust with stable AVX-512 target
/// features, which the callers' `target_feature` attributes need). Most of these intrinsics
/// are safe inside a `target_feature` function since Rust 1.87; the `unsafe` blocks are
/// kept for the loads, hence the `allow`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
#[allow(unused_unsafe)]
pub(super) fn admit_mask_avx<T: Real>(v: &[T; LANES], root: T) -> u64 {
    use std::arch::x86_64::{
        __m256, __m256d, _CMP_NGE_UQ, _mm256_cmp_pd, _mm256_cmp_ps, _mm256_loadu_pd,
        _mm256_loadu_ps, _mm256_movemask_pd, _mm256_movemask_ps, _mm256_or_pd, _mm256_or_ps,
        _mm256_set1_pd, _mm256_set1_ps,
    };
    let any: &dyn std::any::Any = v;
    let root_any: &dyn std::any::Any = &root;
    // The same steps for both float types: compare each 256-bit vector of the chunk with the
    // root, test the whole chunk at once (most chunks hold no candidate), then gather the
    // per-vector bit masks.
    macro_rules! lanes_admitted {
        ($t:ty, $vec:ty, $per:expr, $set1:ident, $load:ident, $cmp:ident, $or:ident, $movemask:ident) => {
            if let (Some(v), Some(&r)) = (
                any.downcast_ref::<[$t; LANES]>(),
                root_any.downcast_ref::<$t>(),
            ) {
                // SAFETY: the CPU has AVX2 (this function's caller checked it) and `v` holds
                // LANES values: unaligned 256-bit loads, one per vector of `$per` lanes.
                let lt: [$vec; LANES / $per] = unsafe {
                    let rr = $set1(r);
                    std::array::from_fn(|h| {
                        $cmp::<_CMP_NGE_UQ>($load(v.as_ptr().add($per * h)), rr)
                    })
                };
                // SAFETY: AVX2, as above.
                let none = unsafe { $movemask(lt.iter().fold(lt[0], |a, &b| $or(a, b))) };
                if none == 0 {
                    return 0;
                }
                let mut mask = 0u64;
                for (h, &c) in lt.iter().enumerate() {
                    // SAFETY: AVX2, as above.
                    let m = unsafe { $movemask(c) };
                    mask |= u64::from(m as u32) << ($per * h);
                }
                return mask;
            }
        };
    }
    lanes_admitted!(
        f32,
        __m256,
        8,
        _mm256_set1_ps,
        _mm256_loadu_ps,
        _mm256_cmp_ps,
        _mm256_or_ps,
        _mm256_movemask_ps
    );
    lanes_admitted!(
        f64,
        __m256d,
        4,
        _mm256_set1_pd,
        _mm256_loadu_pd,
        _mm256_cmp_pd,
        _mm256_or_pd,
        _mm256_movemask_pd
    );
    admit_mask_portable(v, root)
}

multiversion! {
    /// [`exact_in_f32`] compiled for `level`.
    fn exact_in_f32_simd<T: Real>(
        query: ArrayView2<'_, T>,
        train: ArrayView2<'_, T>,
        metric: &Metric,
    ) -> Option<(Array2<f32>, Array2<f32>)> => full: exact_in_f32
}

multiversion! {
    /// [`sq_norms`] compiled for `level`.
    pub(super) fn sq_norms_simd<T: Real>(a: &ArrayView2<'_, T>) -> Vec<T> => full: sq_norms
}

multiversion! {
    /// [`sq_norms_f64`] compiled for `level`.
    pub(super) fn sq_norms_f64_simd<T: Real>(a: &ArrayView2<'_, T>) -> Vec<f64> => full: sq_norms_f64
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

// Why compile the reduction more than once: the wheel targets baseline x86-64 (SSE2), where
// the per-chunk compare-to-mask needs a dozen shuffles; with AVX-512 it is one `vcmpps` into
// a mask register (with AVX2 one `vmovmskps` per 8 lanes). The source is the same generic
// Rust as the fallback (no intrinsics but the compare), so the answers cannot differ; the
// test `dispatched_reduction_equals_portable` checks that they do not.
multiversion! {
    /// [`reduce_tile_body`] compiled for `level` (`SimdLevel::Portable` forces the baseline).
    fn reduce_tile<T: Real>(
        heaps: &mut [Vec<KHeap<T>>],
        buf: &mut [T],
        tt: usize,
        ts: usize,
        norms: Option<(&[T], &[T])>,
    ) => full: reduce_tile_body,
        simd_arg: |v, r| admit_mask_avx(v, r),
        portable_arg: admit_mask_portable
}

fn validate_ks(ks: &[usize], n_train: usize) -> Result<()> {
    if ks.is_empty() {
        return Err(CoreError::invalid("n_neighbors", "no value of k was given"));
    }
    for &k in ks {
        if k == 0 {
            return Err(CoreError::invalid(
                "n_neighbors",
                "Expected n_neighbors > 0. Got 0",
            ));
        }
        if k > n_train {
            return Err(CoreError::invalid(
                "n_neighbors",
                format!(
                    "Expected n_neighbors <= n_samples_fit, but n_neighbors = {k}, \
                     n_samples_fit = {n_train}"
                ),
            ));
        }
    }
    Ok(())
}

/// The `k` nearest training rows of every query row, for several `k` from one pass.
///
/// Returns, for each entry of `ks` (in the given order), the distances `(n_queries, k)` as
/// `f64` and the training indices `(n_queries, k)`, sorted by increasing distance. The
/// neighbours kept and their order, ties included, are those of scikit-learn's brute-force
/// `ArgKmin` run with one thread for that `k` alone, whatever `threads` is.
///
/// `query` is `(n_queries, n_features)`, or `(n_queries, n_train)` distances for
/// [`Metric::Precomputed`]. Errors on an empty training set, a feature-count mismatch,
/// `k == 0` or `k > n_train`.
#[allow(clippy::type_complexity)]
pub fn kneighbors_multi<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    ks: &[usize],
    metric: &Metric,
    threads: Threads,
) -> Result<Vec<(Array2<f64>, Array2<usize>)>> {
    kneighbors_multi_with(query, train, ks, metric, threads, Cancel::never())
}

/// [`kneighbors_multi`] that stops with [`CoreError::Interrupted`] soon after `cancel` is
/// set (it is polled once per tile of at most 256 x 256 distances).
#[allow(clippy::type_complexity)]
pub fn kneighbors_multi_with<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    ks: &[usize],
    metric: &Metric,
    threads: Threads,
    cancel: &Cancel,
) -> Result<Vec<(Array2<f64>, Array2<usize>)>> {
    search_multi(
        query,
        train,
        ks,
        metric,
        threads,
        Precision::of::<T>(),
        cancel,
    )
}

/// The precision of the distances a search returns: scikit-learn's 32-bit reductions turn
/// each reduced distance into a distance in float32 (`_rdist_to_dist` of its `...32`
/// metrics), so a float32 search rounds its distances to float32, whatever type the search
/// ran in (an exact float64 search may run in float32 or integers, see `exact_in_f32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Precision {
    F32,
    F64,
}

impl Precision {
    fn of<T: Real>() -> Self {
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
    fn dist<T: Real>(self, metric: &Metric, r: T) -> f64 {
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
    fn rdist_radius(self, metric: &Metric, radius: f64) -> f64 {
        match (self, metric) {
            (Self::F64, _) | (Self::F32, Metric::SqEuclidean) => metric.dist_to_rdist(radius),
            (Self::F32, _) => {
                let r32 = f64::from(radius as f32);
                f64::from(metric.dist_to_rdist(r32) as f32)
            }
        }
    }
}

/// [`kneighbors_multi`] reporting distances in `precision`.
fn search_multi<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    ks: &[usize],
    metric: &Metric,
    threads: Threads,
    precision: Precision,
    cancel: &Cancel,
) -> Result<Vec<(Array2<f64>, Array2<usize>)>> {
    if train.nrows() == 0 {
        return Err(CoreError::EmptyInput("the training data".into()));
    }
    validate_ks(ks, train.nrows())?;
    // Row-major views (a copy only of an input that is not).
    let (query, train) = (query.as_standard_layout(), train.as_standard_layout());
    let (query, train) = (query.view(), train.view());
    let threads = effective_threads(threads, query.nrows(), train.nrows(), train.ncols());
    // Pool threads wake up while this thread converts the inputs and computes the norms.
    let wake = threads.wake();
    let (n_q, n_t) = (query.nrows(), train.nrows());
    if let Some(int8) = Int8Tiles::new(query, train, metric) {
        // Same distances, bit for bit, at a quarter of the float32 GEMM's cost (see `int8`).
        let fill = |qs, qe, ts, te, buf: &mut [f32]| {
            int8.tile(qs, qe, ts, te, buf);
            None
        };
        let plan = Plan::new(n_q, n_t, ks, metric, threads, precision).with_cancel(cancel);
        return search_tiles(&plan, wake, fill);
    }
    if let Some((q32, t32)) = exact_in_f32_simd(SimdLevel::detected(), query, train, metric) {
        // Same answers, bit for bit, at twice the GEMM speed (see `exact_in_f32`). The
        // call wakes the (already awake) pool threads again for its own serial part.
        drop(wake);
        return search_multi(
            q32.view(),
            t32.view(),
            ks,
            metric,
            threads,
            precision,
            cancel,
        );
    }
    if needs_float64(query, train, metric) {
        // float32 data whose float32 expansion would not be exact: scikit-learn computes
        // it in float64 on upcast values, and so does the screened search (its float32
        // GEMM only bounds the distances). Where the screening does not apply, float64
        // copies take the float64 search.
        if let Some(screen) = Screen::new(query, train, metric) {
            let plan = Plan::new(n_q, n_t, ks, metric, threads, precision).with_cancel(cancel);
            return screen.search(&plan, wake);
        }
        drop(wake);
        let (q64, t64) = (upcast(query)?, upcast(train)?);
        return search_multi(
            q64.view(),
            t64.view(),
            ks,
            metric,
            threads,
            precision,
            cancel,
        );
    }
    if let Some(screen) = Screen::new(query, train, metric) {
        // The same answers, ties included, with most of the GEMM in float32 (see `screen`).
        let plan = Plan::new(n_q, n_t, ks, metric, threads, precision).with_cancel(cancel);
        return screen.search(&plan, wake);
    }
    let prep = Prepared::new(query, train, metric)?;
    // Euclidean tiles: the GEMM cross term, then norms added while reducing (one pass less).
    let fused = matches!(metric, Metric::Euclidean | Metric::SqEuclidean);
    let minus_two = T::from_f64_lossy(-2.0);
    let plan = Plan::new(n_q, n_t, ks, metric, threads, precision).with_cancel(cancel);
    search_tiles(&plan, wake, |qs, qe, ts, te, buf| {
        if fused {
            prep.cross(qs, qe, ts, te, buf, minus_two);
            Some((&prep.qn[qs..qe], &prep.tn[ts..te]))
        } else {
            prep.tile(qs, qe, ts, te, buf);
            None
        }
    })
}

/// What a search computes and how it reports it (see [`search_tiles`]).
pub(super) struct Plan<'a> {
    n_q: usize,
    pub(super) n_t: usize,
    ks: &'a [usize],
    metric: &'a Metric,
    threads: Threads,
    precision: Precision,
    strategy: Strategy,
    /// Positions in `ks` in increasing `k` order, and those `k`.
    order: Vec<usize>,
    pub(super) sorted_ks: Vec<usize>,
    /// Where each `k`'s values start in a query's row of results, and the row length.
    offsets: Vec<usize>,
    kk: usize,
    /// Polled between tiles (see [`kneighbors_multi_with`]).
    pub(super) cancel: &'a Cancel,
}

impl<'a> Plan<'a> {
    /// This plan, stopping soon after `cancel` is set.
    pub(super) fn with_cancel(self, cancel: &'a Cancel) -> Self {
        Self { cancel, ..self }
    }

    pub(super) fn new(
        n_q: usize,
        n_t: usize,
        ks: &'a [usize],
        metric: &'a Metric,
        threads: Threads,
        precision: Precision,
    ) -> Self {
        // Heaps in increasing size; `order[i]` is the position in `ks` of the i-th smallest.
        let mut order: Vec<usize> = (0..ks.len()).collect();
        order.sort_by_key(|&i| ks[i]);
        let sorted_ks = order.iter().map(|&i| ks[i]).collect();
        let offsets = ks
            .iter()
            .scan(0usize, |acc, &k| {
                let o = *acc;
                *acc += k;
                Some(o)
            })
            .collect();
        Self {
            n_q,
            n_t,
            ks,
            metric,
            threads,
            precision,
            strategy: sklearn_strategy(n_q, n_t),
            order,
            sorted_ks,
            offsets,
            kk: ks.iter().sum(),
            cancel: Cancel::never(),
        }
    }

    /// Writes one query's results (`row_*`: its `kk` slots) from sorted candidates: the
    /// first `k` for each `k` (a heap's sorted values for its own `k` alone).
    fn write(
        &self,
        slot: usize,
        vals: &[impl Real],
        idx: &[usize],
        row_d: &mut [f64],
        row_i: &mut [usize],
    ) {
        let o = self.offsets[slot];
        let k = self.ks[slot];
        for (j, (&v, &ix)) in vals.iter().zip(idx).take(k).enumerate() {
            row_d[o + j] = self.precision.dist(self.metric, v);
            row_i[o + j] = ix;
        }
    }
}

/// The search proper: every query tile against every training tile, each tile of
/// distances filled by `fill` and reduced into the query's heaps, the heaps sorted into the
/// results. `fill(qs, qe, ts, te, buf)` writes the `(qe - qs) x (te - ts)` tile and returns
/// the squared norms to add to it when it holds a GEMM term (see [`reduce_row`]).
fn search_tiles<'p, T: Real>(
    plan: &Plan<'_>,
    wake: Wake,
    fill: impl Fn(usize, usize, usize, usize, &mut [T]) -> Option<(&'p [T], &'p [T])> + Sync,
) -> Result<Vec<(Array2<f64>, Array2<usize>)>> {
    let n_t = plan.n_t;
    let cols = TRAIN_TILE.min(n_t);
    let ks = &plan.sorted_ks;
    // The last search's sets that fit, taken at the first request (before any set is made:
    // the others are freed first).
    let spare: Mutex<Option<Vec<Scratch<T>>>> = Mutex::new(None);
    over_tiles(
        plan,
        wake,
        QUERY_TILE,
        |rows| {
            let reused = spare.lock().ok().and_then(|mut taken| {
                let sets = taken.get_or_insert_with(|| Scratch::take_spare(rows, cols, ks));
                let at = sets.iter().position(|s| s.fits(rows, cols, ks))?;
                Some(sets.swap_remove(at))
            });
            reused.map_or_else(|| Scratch::new(rows, cols, ks), Ok)
        },
        |scratch: &mut Scratch<T>, qs, qe, out_d, out_i| {
            let Scratch {
                buf, heaps, fresh, ..
            } = scratch;
            let heaps = &mut heaps[..qe - qs];
            for h in heaps.iter_mut().flatten() {
                h.reset();
            }
            for ts in (0..n_t).step_by(TRAIN_TILE) {
                if plan.cancel.is_cancelled() {
                    return;
                }
                let te = (ts + TRAIN_TILE).min(n_t);
                let norms = fill(qs, qe, ts, te, buf);
                reduce_tile(SimdLevel::detected(), heaps, buf, te - ts, ts, norms);
            }
            finish_tile(plan, heaps, fresh, out_d, out_i);
        },
        Scratch::keep_spare,
    )
}

/// Sorts each query's filled heaps (see [`finish_heap`]) into its rows of the results;
/// `fresh` holds one spare heap per `k`.
pub(super) fn finish_tile<T: Real>(
    plan: &Plan<'_>,
    heaps: &mut [Vec<KHeap<T>>],
    fresh: &mut [KHeap<T>],
    out_d: &mut [f64],
    out_i: &mut [usize],
) {
    let kk = plan.kk;
    let rows = out_d.chunks_exact_mut(kk).zip(out_i.chunks_exact_mut(kk));
    for (per_query, (row_d, row_i)) in heaps.iter_mut().zip(rows) {
        for ((&slot, h), spare) in plan
            .order
            .iter()
            .zip(per_query.iter_mut())
            .zip(fresh.iter_mut())
        {
            finish_heap(h, plan.strategy, spare);
            plan.write(slot, &h.values, &h.indices, row_d, row_i);
        }
    }
}

/// What the searches' result buffers are, for their out-of-memory errors.
const RESULTS: &str = "the neighbour results";

/// Runs `run(scratch, qs, qe, out_d, out_i)` on every query tile `qs..qe` of at most
/// `max_rows` rows (in parallel on `plan.threads`), where `out_*` are the tile's rows of the
/// results (`plan.kk` values per query) and `scratch` a thread's working memory, made by
/// `new_scratch(rows)` and handed to `recycle` at the end; returns the results, one pair of
/// arrays per `k` of `plan.ks`.
pub(super) fn over_tiles<S: Send>(
    plan: &Plan<'_>,
    wake: Wake,
    max_rows: usize,
    new_scratch: impl Fn(usize) -> Result<S> + Sync,
    run: impl Fn(&mut S, usize, usize, &mut [f64], &mut [usize]) + Sync,
    recycle: impl FnOnce(Vec<S>),
) -> Result<Vec<(Array2<f64>, Array2<usize>)>> {
    let Plan {
        n_q,
        ks,
        threads,
        kk,
        ..
    } = *plan;
    // Results go straight into one flat buffer per output type: row q holds, for each k of
    // `ks` in order, its k distances (indices). Each query tile writes its own rows, so
    // heaps live only while their tile is searched (memory: tiles in flight, not n_queries).
    let mut flat_d = try_filled(checked_len(n_q, kk, RESULTS)?, 0.0f64, RESULTS)?;
    let mut flat_i = try_filled(flat_d.len(), 0usize, RESULTS)?;
    let tq = query_tile(n_q, threads, max_rows);
    let n_tiles = n_q.div_ceil(tq);
    // One working set per thread, allocated here, by the calling thread, and reused by every
    // tile: pool threads then allocate (almost) nothing, so a search does not grow each
    // thread's malloc arena by a tile buffer per tile it took (that churn, fragmented by the
    // GEMM's packing buffers, was most of a first search's extra memory).
    let slots: Vec<Mutex<S>> = (0..threads.count().min(n_tiles))
        .map(|_| new_scratch(tq.min(n_q)).map(Mutex::new))
        .collect::<Result<_>>()?;
    // A working set the fallback below could not allocate (reported after the search).
    let failed: Mutex<Option<CoreError>> = Mutex::new(None);
    let search_tile = |t: usize, out_d: &mut [f64], out_i: &mut [usize]| {
        let qs = t * tq;
        let qe = (qs + tq).min(n_q);
        // Each thread holds at most one slot at a time and there is one per thread, so a
        // free one exists; the fallback only guards against a poisoned lock.
        let mut own = None;
        let mut guard = slots.iter().find_map(|s| s.try_lock().ok());
        let scratch = match guard.as_deref_mut() {
            Some(s) => s,
            None => match new_scratch(qe - qs) {
                Ok(s) => own.insert(s),
                Err(e) => {
                    if let Ok(mut f) = failed.lock() {
                        f.get_or_insert(e);
                    }
                    return;
                }
            },
        };
        run(scratch, qs, qe, out_d, out_i);
    };
    let chunk = (tq * kk).max(1);
    // Each tile's output rows, taken by exactly one thread (the locks are never contended).
    let outputs: Vec<Mutex<(&mut [f64], &mut [usize])>> = flat_d
        .chunks_mut(chunk)
        .zip(flat_i.chunks_mut(chunk))
        .map(Mutex::new)
        .collect();
    drop(wake);
    threads.for_each_index(outputs.len(), |t| {
        if plan.cancel.is_cancelled() {
            return;
        }
        if let Ok(mut out) = outputs[t].lock() {
            let (out_d, out_i) = &mut *out;
            search_tile(t, out_d, out_i);
        }
    })?;
    threads.linger();
    drop(outputs);
    plan.cancel.check()?;
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    recycle(
        slots
            .into_iter()
            .filter_map(|m| m.into_inner().ok())
            .collect(),
    );

    if let [k] = ks {
        // One k: the flat buffers are the results (no copy).
        let dist = Array2::from_shape_vec((n_q, *k), flat_d);
        let idx = Array2::from_shape_vec((n_q, *k), flat_i);
        return match (dist, idx) {
            (Ok(d), Ok(i)) => Ok(vec![(d, i)]),
            _ => Err(CoreError::shape("neighbour results", n_q * k, n_q * kk)),
        };
    }
    let out = ks
        .iter()
        .zip(&plan.offsets)
        .map(|(&k, &o)| {
            let n = n_q * k;
            let cells = move |i: usize| (i / k) * kk + o + i % k;
            let dist = try_collect(n, (0..n).map(|i| flat_d[cells(i)]), RESULTS)?;
            let idx = try_collect(n, (0..n).map(|i| flat_i[cells(i)]), RESULTS)?;
            match (
                Array2::from_shape_vec((n_q, k), dist),
                Array2::from_shape_vec((n_q, k), idx),
            ) {
                (Ok(d), Ok(i)) => Ok((d, i)),
                _ => Err(CoreError::shape("neighbour results", n, n)),
            }
        })
        .collect::<Result<_>>()?;
    Ok(out)
}

/// Puts a filled heap in scikit-learn's final order (see [`Strategy`]); `spare` is a heap
/// of the same size to re-push into (its contents are overwritten).
pub(super) fn finish_heap<T: Real>(h: &mut KHeap<T>, strategy: Strategy, spare: &mut KHeap<T>) {
    if strategy == Strategy::ParallelOnY {
        spare.reset();
        for (&v, &i) in h.values.iter().zip(&h.indices) {
            spare.push(v, i);
        }
        std::mem::swap(h, spare);
    }
    simultaneous_sort(&mut h.values, &mut h.indices);
}

/// A thread's working memory for the query tiles it searches (see `search_tiles`).
struct Scratch<T> {
    /// One tile of distances.
    buf: Vec<T>,
    /// Per query row of a tile, one heap per `k` (in increasing `k`).
    heaps: TileHeaps<T>,
    /// One spare heap per `k`, for [`finish_heap`].
    fresh: Vec<KHeap<T>>,
}

impl<T: Real> Scratch<T> {
    fn new(rows: usize, cols: usize, sorted_ks: &[usize]) -> Result<Self> {
        const WHAT: &str = "the neighbour search's working memory";
        Ok(Self {
            buf: try_filled(checked_len(rows, cols, WHAT)?, T::zero(), WHAT)?,
            heaps: KHeap::try_sets(rows, sorted_ks)?,
            fresh: KHeap::try_row(sorted_ks)?,
        })
    }

    /// Whether this set is the one [`Scratch::new`] makes for these arguments.
    fn fits(&self, rows: usize, cols: usize, sorted_ks: &[usize]) -> bool {
        self.heaps.len() == rows
            && self.buf.len() == rows * cols
            && self
                .fresh
                .iter()
                .map(|h| h.values.len())
                .eq(sorted_ks.iter().copied())
    }

    /// The working sets the last search left (see [`Scratch::keep_spare`]) that fit a
    /// search of `rows`-row query tiles; the others are freed.
    fn take_spare(rows: usize, cols: usize, sorted_ks: &[usize]) -> Vec<Self> {
        // `try_lock`: never wait (nor deadlock in a child forked while another thread held
        // the lock); without the lock a search just allocates its own.
        let Ok(mut slot) = SPARE_SCRATCH.try_lock() else {
            return Vec::new();
        };
        match slot
            .take()
            .map(<Box<dyn Any + Send>>::downcast::<Vec<Self>>)
        {
            Some(Ok(mut sets)) => {
                sets.retain(|s| s.fits(rows, cols, sorted_ks));
                *sets
            }
            _ => Vec::new(),
        }
    }

    /// Keeps a search's working sets for the next search, if they are small (at most
    /// [`SPARE_SCRATCH_BYTES`] in all).
    ///
    /// Why: a digits-sized search (450 queries, 1,347 training rows) spent about 30 of its
    /// ~550 µs making them, nearly all in the three small allocations of each query's
    /// heaps; a search alternating with a little Python work (fit then predict, a k sweep,
    /// cross-validation) now makes them once. Their contents need no clearing: every tile
    /// resets its heaps, and every distance is written before it is read.
    fn keep_spare(slots: Vec<Self>) {
        let per_query: usize = slots.first().map_or(0, |s| {
            let k_sum: usize = s.fresh.iter().map(|h| h.values.len()).sum();
            k_sum * (size_of::<T>() + size_of::<usize>())
        });
        let bytes: usize = slots
            .iter()
            .map(|s| s.buf.len() * size_of::<T>() + (s.heaps.len() + 1) * per_query)
            .sum();
        if slots.is_empty() || bytes > SPARE_SCRATCH_BYTES {
            return;
        }
        if let Ok(mut slot) = SPARE_SCRATCH.try_lock() {
            *slot = Some(Box::new(slots));
        }
    }
}

/// The `k` nearest training rows of every query row: [`kneighbors_multi`] with one `k`.
pub fn kneighbors<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    k: usize,
    metric: &Metric,
    threads: Threads,
) -> Result<(Array2<f64>, Array2<usize>)> {
    let mut all = kneighbors_multi(query, train, &[k], metric, threads)?;
    all.pop()
        .ok_or_else(|| CoreError::invalid("n_neighbors", "no value of k was given"))
}

/// Neighbours within a radius, in compressed-row form: query `i`'s neighbours are
/// `indices[indptr[i]..indptr[i + 1]]` at `distances[...]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RadiusResult {
    /// Row pointers, `n_queries + 1` of them.
    pub indptr: Vec<usize>,
    /// Training indices.
    pub indices: Vec<usize>,
    /// Distances (as the metric defines them, not reduced).
    pub distances: Vec<f64>,
}

/// Every training row within `radius` (inclusive) of each query row.
///
/// Unsorted results are in increasing training index order; with `sort_results` they are
/// sorted by distance as scikit-learn sorts them (its introsort for the metrics of its
/// compiled reductions, a stable sort for cosine and precomputed distances).
pub fn radius_neighbors<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    radius: f64,
    metric: &Metric,
    sort_results: bool,
    threads: Threads,
) -> Result<RadiusResult> {
    radius_neighbors_with(
        query,
        train,
        radius,
        metric,
        sort_results,
        threads,
        Cancel::never(),
    )
}

/// [`radius_neighbors`] that stops with [`CoreError::Interrupted`] soon after `cancel` is
/// set (it is polled once per tile of distances).
pub fn radius_neighbors_with<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    radius: f64,
    metric: &Metric,
    sort_results: bool,
    threads: Threads,
    cancel: &Cancel,
) -> Result<RadiusResult> {
    let search = RadiusSearch {
        radius,
        metric,
        sort_results,
        threads,
        precision: Precision::of::<T>(),
        cancel,
    };
    search.run(query, train)
}

/// A radius search's parameters (see [`radius_neighbors_with`]).
struct RadiusSearch<'a> {
    radius: f64,
    metric: &'a Metric,
    sort_results: bool,
    threads: Threads,
    precision: Precision,
    cancel: &'a Cancel,
}

impl RadiusSearch<'_> {
    /// Every training row within the radius of each query row (see [`radius_neighbors`]).
    fn run<T: Real>(
        &self,
        query: ArrayView2<'_, T>,
        train: ArrayView2<'_, T>,
    ) -> Result<RadiusResult> {
        let Self {
            radius,
            metric,
            sort_results,
            threads,
            precision,
            cancel,
        } = *self;
        if radius.is_nan() || radius < 0.0 {
            return Err(CoreError::invalid(
                "radius",
                format!("the radius must be a non-negative number, got {radius}"),
            ));
        }
        // Row-major views (a copy only of an input that is not).
        let (query, train) = (query.as_standard_layout(), train.as_standard_layout());
        let (query, train) = (query.view(), train.view());
        if let Some((q32, t32)) = exact_in_f32_simd(SimdLevel::detected(), query, train, metric) {
            return self.run(q32.view(), t32.view());
        }
        if needs_float64(query, train, metric) {
            // As in `search_multi`: scikit-learn's float32 Euclidean distances are float64
            // sums.
            return self.run(upcast(query)?.view(), upcast(train)?.view());
        }
        let prep = Prepared::new(query, train, metric)?;
        let n_q = query.nrows();
        let n_t = train.nrows();
        let threads = effective_threads(threads, n_q, n_t, train.ncols());
        let stable = matches!(metric, Metric::Cosine | Metric::Precomputed);
        // Cosine and precomputed distances are compared in the input dtype, as NumPy
        // compares scikit-learn's distance matrix with the radius; the other metrics'
        // reduced distances in float64, as its compiled radius search does (an exact
        // float32 tile included).
        let r_t = T::from_f64_lossy(metric.dist_to_rdist(radius));
        let r64 = precision.rdist_radius(metric, radius);
        let within = |v: T| {
            if stable {
                v <= r_t
            } else {
                v.to_f64_lossless() <= r64
            }
        };
        let tiles = over_query_tiles(n_q, threads, |qs, qe| -> Result<_> {
            let mut buf = try_filled((qe - qs) * TRAIN_TILE.min(n_t), T::zero(), RESULTS)?;
            let mut found: Vec<(Vec<T>, Vec<usize>)> =
                try_filled(qe - qs, (Vec::new(), Vec::new()), RESULTS)?;
            for ts in (0..n_t).step_by(TRAIN_TILE) {
                if cancel.is_cancelled() {
                    break;
                }
                let te = (ts + TRAIN_TILE).min(n_t);
                let tt = te - ts;
                prep.tile(qs, qe, ts, te, &mut buf);
                for (i, (vals, idx)) in found.iter_mut().enumerate() {
                    let row = &buf[i * tt..(i + 1) * tt];
                    // Room for this row's neighbours first (growing as `push` would), so
                    // running out of memory is an error, not an abort.
                    let hits = row.iter().filter(|&&v| within(v)).count();
                    if vals.capacity() - vals.len() < hits || idx.capacity() - idx.len() < hits {
                        let more = hits.max(vals.len());
                        try_reserve(vals, more, RESULTS)?;
                        try_reserve(idx, more, RESULTS)?;
                    }
                    for (j, &v) in row.iter().enumerate() {
                        if within(v) {
                            vals.push(v);
                            idx.push(ts + j);
                        }
                    }
                }
            }
            if sort_results {
                for (vals, idx) in &mut found {
                    if stable {
                        stable_sort(vals, idx);
                    } else {
                        simultaneous_sort(vals, idx);
                    }
                }
            }
            Ok(found)
        })?
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
        cancel.check()?;
        let total: usize = tiles.iter().flatten().map(|(_, idx)| idx.len()).sum();
        let mut res = RadiusResult {
            indptr: try_vec(n_q + 1, RESULTS)?,
            indices: try_vec(total, RESULTS)?,
            distances: try_vec(total, RESULTS)?,
        };
        res.indptr.push(0);
        for tile in tiles {
            for (vals, idx) in tile {
                res.distances
                    .extend(vals.iter().map(|&v| precision.dist(metric, v)));
                res.indices.extend_from_slice(&idx);
                res.indptr.push(res.indices.len());
            }
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::{KHeap, LANES, reduce_tile, small_integers};
    use crate::platform::SimdLevel;
    use crate::real::Real;

    /// Distances with many exact ties (few distinct values), some NaN-free tiny negatives
    /// and a tail shorter than one chunk.
    fn tile<T: Real>(rows: usize, cols: usize) -> Vec<T> {
        (0..rows * cols)
            .map(|i| T::from_f64_lossy((((i * 7919) % 23) as f64 - 1.0) * 0.5))
            .collect()
    }

    fn run<T: Real>(portable: bool, norms: bool) -> Vec<Vec<KHeap<T>>> {
        let (rows, cols) = (7, 3 * LANES + 13);
        let mut buf = tile::<T>(rows, cols);
        let qn: Vec<T> = (0..rows).map(|i| T::from_f64_lossy(i as f64)).collect();
        let tn: Vec<T> = (0..cols)
            .map(|j| T::from_f64_lossy((j % 5) as f64))
            .collect();
        let mut heaps: Vec<Vec<KHeap<T>>> = (0..rows)
            .map(|_| [1, 4, 9].iter().map(|&k| KHeap::new(k)).collect())
            .collect();
        let n = norms.then_some((&qn[..], &tn[..]));
        let level = if portable {
            SimdLevel::Portable
        } else {
            SimdLevel::detected()
        };
        // Two tiles, as a search feeds them: training rows 0.. and then 100..
        reduce_tile(level, &mut heaps, &mut buf, cols, 0, n);
        let mut buf2 = tile::<T>(rows, cols);
        buf2.reverse();
        reduce_tile(level, &mut heaps, &mut buf2, cols, 100, n);
        heaps
    }

    #[test]
    fn dispatched_reduction_equals_portable() {
        for norms in [false, true] {
            assert_eq!(run::<f32>(false, norms), run::<f32>(true, norms));
            assert_eq!(run::<f64>(false, norms), run::<f64>(true, norms));
        }
    }

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
