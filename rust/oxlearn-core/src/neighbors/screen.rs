//! float64 Euclidean searches screened in float32: the float32 GEMM (twice the float64
//! GEMM's throughput) bounds every distance, and only the candidates that the float64
//! search's heaps could take are computed in float64.
//!
//! Why this exists (our edge: the GEMM is most of a float64 search, and scikit-learn's
//! answers, ties included, must not change): the float64 search feeds every candidate, in
//! increasing training index, to scikit-learn's heap, which takes a candidate only when its
//! distance is below the heap's root (the `k`-th smallest distance seen so far). Here each
//! distance `e` gets a float32 lower bound `lo <= e` (derived below). A candidate whose `lo`
//! is at or above the float64 heap's root (rounded up to float32) has `e` at or above it, so
//! the float64 heap would refuse it: it is skipped. The others (about
//! `k (1 + ln(n_train / k))` per query for data in general position) are
//! computed in float64 and fed to the float64 heaps in increasing index order: the heaps
//! see the candidates they would have taken, in the same order, and refuse the rest as
//! before, so they end in the same state, ties and all. The bounds only decide how much
//! work is skipped, never the answer.
//!
//! The float64 distance of a candidate is `||q||^2 - 2 q.t + ||t||^2` clipped at 0, as the
//! float64 search computes it, with the dot product summed in a fixed order (so the bits do
//! not depend on the tiling or the thread count).
//!
//! The bounds. With `a = (qn32 + c) + tn32` the float32 value of `||q - t||^2` (`c = -2
//! q32.t32` from the float32 GEMM, `qn32` and `tn32` the float32 squared norms of the
//! centred float32 rows, in any summation order) and `e` the float64 distance, the standard
//! error bounds of floating-point sums (`u = 2^-24`, `d` features, centred values at most
//! 2^50 in magnitude) give `|a - ||q - t||^2| <= (2 d + 9) u (qn32 + tn32)`: `u` per value
//! for the conversion, `d u` of the sum of absolute products for each dot product and norm
//! (that sum is at most `(qn + tn) / 2`), `u` of at most `2 (qn + tn)` for each of the two
//! additions; plus `d 2^-98` where float32 holds a value as a subnormal. The float64 side
//! gives `|e - ||q - t||^2| <= (2 d + 9) 2^-53 (||q||^2 + ||t||^2)`. The code takes
//! `c32 = (2 d + 64) u` (room for the rounding of the bounds themselves, computed in
//! float32), `c64 = (2 d + 16) 2^-53` at the largest training norm, and
//! `lo = ((qn32 (1 - c32) - s) + c) + tn32 (1 - c32)`, with `s` the query's float64 slack.
//! The tests check the answers against the full replay bit for bit on data built to be
//! hard for the bounds (ties, a large offset, outliers, tiny values).
//!
//! The float32 copies are made tile by tile, centred on the training mean (distances do not
//! change under a shift, and the bounds, which grow with the norms, get tighter), so the
//! search holds no float32 copy of either array.

// The loop bodies are `#[inline(always)]` so that they are compiled again inside each
// `#[target_feature]` copy below.
#![allow(clippy::inline_always)]

use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};

use super::Metric;
#[cfg(target_arch = "x86_64")]
use super::engine::admit_mask_avx;
use super::engine::{
    GEMM_TRAIN_ROWS, LANES, Plan, QUERY_TILE, Search, TRAIN_TILE, admit_mask_portable, finish_tile,
    over_tiles, push_all, sq_dist,
};
use super::heap::KHeap;
use super::norms::{sq_norms_f64_simd, sum8, sum8_f64};
use crate::error::{Result, try_filled};
use crate::exec::{Cancel, Threads, Wake};
use crate::linalg::gemm;
use crate::platform::{SimdLevel, multiversion};
use crate::real::Real;

/// Widest rows screened: the bounds' constants assume `d * 2^-24` is small.
const MAX_FEATURES: usize = 4096;

/// Narrowest rows screened: below this the GEMM is a small part of a search.
const MIN_FEATURES: usize = 16;

/// Float32 query values a screened query tile holds at most (256 KiB), unless the tile has
/// only [`GEMM_TRAIN_ROWS`] rows.
const SCREEN_ROWS_VALUES: usize = 1 << 16;

/// Largest magnitude of a centred value: squares and sums of `MAX_FEATURES` of them stay
/// far below float32's overflow threshold (`2^128`).
const MAX_CENTRED: f64 = 1_125_899_906_842_624.0; // 2^50

/// The inputs of a screened search: the float64 rows, their float64 squared norms (those of
/// the float64 search), and the training mean the float32 tiles are centred on.
pub(crate) struct Screen<'a, T: Real> {
    /// The query and training rows, row-major, `d` values each.
    q: &'a [T],
    t: &'a [T],
    d: usize,
    /// Squared norms in float64 (of the float32 values, for float32 inputs, as
    /// scikit-learn's float32 search computes them).
    qn: Vec<f64>,
    tn: Vec<f64>,
    mean: Vec<f64>,
    /// The bounds' relative constant for the float32 norms (see the module docs).
    c32: f64,
    /// `c64 * max ||t||^2` plus room for subnormals: the training part of each query's slack.
    slack_t: f64,
    /// float32 data screened as it is, without centring (see [`Direct`]).
    direct: Option<Direct<'a>>,
    /// The bounds' relative constant for the float64 norms.
    c64: f64,
}

impl<T: Real> Search<T> for Screen<'_, T> {
    fn search(&self, plan: &Plan<'_>, wake: Wake) -> Result<Vec<(Array2<f64>, Array2<usize>)>> {
        self.run(plan, wake)
    }
}

impl<'a, T: Real> Screen<'a, T> {
    /// The screened form of a Euclidean search of `query` against `train` whose distances
    /// are computed in float64 (as scikit-learn computes them for float64 data, and for
    /// float32 data on upcast values), or `None` where it does not apply (another metric,
    /// more than [`MAX_FEATURES`] features, fewer than [`MIN_FEATURES`] for float64 data,
    /// or a centred value beyond 2^50 in magnitude or not finite). Depends on the data
    /// only, never on the threads.
    ///
    /// float32 data is screened at any width: the alternative, a float64 copy of both
    /// arrays and the float64 GEMM, costs memory and twice the GEMM time.
    pub(crate) fn new(
        query: ArrayView2<'a, T>,
        train: ArrayView2<'a, T>,
        metric: &Metric,
    ) -> Option<Self> {
        let d = train.ncols();
        let is_f32 = std::mem::size_of::<T>() <= std::mem::size_of::<f32>();
        let min_features = if is_f32 { 1 } else { MIN_FEATURES };
        if !matches!(metric, Metric::Euclidean | Metric::SqEuclidean)
            || query.ncols() != d
            || !(min_features..=MAX_FEATURES).contains(&d)
            || train.nrows() == 0
        {
            return None;
        }
        let (qs, ts) = (query.to_slice()?, train.to_slice()?);
        let mean = column_means(ts, d);
        let qn = sq_norms_f64_simd(SimdLevel::detected(), &query);
        let tn = sq_norms_f64_simd(SimdLevel::detected(), &train);
        let direct = direct_rows(qs, ts, &mean, &qn, &tn);
        if direct.is_none() && (!centred_in_range(qs, &mean) || !centred_in_range(ts, &mean)) {
            return None;
        }
        let df = d as f64;
        let c64 = (2.0 * df + 16.0) * f64::EPSILON / 2.0;
        let t_max = tn.iter().fold(0.0_f64, |m, &v| m.max(v));
        Some(Self {
            q: qs,
            t: ts,
            d,
            qn,
            tn,
            mean,
            c32: (2.0 * df + 64.0) * f64::from(f32::EPSILON) / 2.0,
            slack_t: c64 * t_max + df * 2f64.powi(-90),
            c64,
            direct,
        })
    }

    /// Training rows screened per step: with [`Direct`] data, a tile of the plain search's
    /// size (fewer passes over each query's heaps); centred data is converted block by
    /// block, one GEMM call's worth, so that the float32 copy stays small whatever the width.
    fn block(&self) -> usize {
        if self.direct.is_some() {
            TRAIN_TILE
        } else {
            GEMM_TRAIN_ROWS
        }
    }

    /// The search (see the module docs), reporting as `plan` says.
    fn run(&self, plan: &Plan<'_>, wake: Wake) -> Result<Vec<(Array2<f64>, Array2<usize>)>> {
        let d = self.d;
        let n_t = plan.n_t;
        let tt = self.block().min(n_t);
        // Each block of training rows is converted once per query tile: larger query tiles
        // (their GEMMs still run on blocks of `QUERY_TILE` rows, into one buffer) read the
        // float64 training rows fewer times, while the float32 query rows stay small (wide
        // rows get fewer of them: the conversion is then a smaller share of each GEMM).
        let max_rows = if self.direct.is_some() {
            // Nothing is converted: query tiles only bound the heaps' memory.
            4 * QUERY_TILE
        } else {
            (SCREEN_ROWS_VALUES / d).clamp(GEMM_TRAIN_ROWS, 4 * QUERY_TILE)
        };
        let copies = self.direct.is_none();
        over_tiles(
            plan,
            wake,
            max_rows,
            // Its float64 distances are exact sums, whatever the tile's shape.
            1,
            |rows| {
                let w = if copies { d } else { 0 };
                Work::new(rows, QUERY_TILE.min(rows), tt, w, &plan.sorted_ks)
            },
            |work: &mut Work, qs, qe, out_d, out_i| {
                tile(SimdLevel::detected(), self, work, qs, qe, plan.cancel);
                finish_tile(
                    plan,
                    &mut work.heaps[..qe - qs],
                    &mut work.fresh,
                    out_d,
                    out_i,
                );
            },
            drop,
        )
    }
}

/// The float64 search's squared distance (see [`sq_dist`]), the dot product summed in
/// float64 by [`sum8_f64`] (for float64 rows, the same sums as [`sum8`]).
#[inline(always)]
fn distance<T: Real>(q: &[T], t: &[T], qn: f64, tn: f64) -> f64 {
    sq_dist(qn, sum8_f64(q, t) * -2.0, tn)
}

/// The [`Direct`] form of float32 inputs whose plain norms are at most
/// [`DIRECT_NORM_RATIO`] times their centred norms on average, else `None` (and always
/// for float64 inputs). `tn` holds the training rows' float64 squared norms.
///
/// `qn` and `tn` hold the rows' float64 squared norms. Their float32 roundings serve as the
/// float32 norms of the bounds (the bounds hold for a float32 norm summed in any order, and
/// a correctly rounded one is closer still), and they give the range check too: a row
/// whose squared norm is at most `MAX_CENTRED^2` (NaN is not) has every value within
/// `MAX_CENTRED`, which is all the bounds need of uncentred values.
fn direct_rows<'a, T: Real>(
    q: &'a [T],
    t: &'a [T],
    mean: &[f64],
    qn: &[f64],
    tn: &[f64],
) -> Option<Direct<'a>> {
    let (q, t) = (T::as_f32_slice(q)?, T::as_f32_slice(t)?);
    let n = tn.len().max(1) as f64;
    let plain = tn.iter().sum::<f64>() / n;
    let mean_sq: f64 = mean.iter().map(|m| m * m).sum();
    let limit = MAX_CENTRED * MAX_CENTRED;
    let in_range = |norms: &[f64]| norms.iter().all(|&v| v <= limit);
    if plain > DIRECT_NORM_RATIO * (plain - mean_sq).max(0.0) || !in_range(qn) || !in_range(tn) {
        return None;
    }
    let to_f32 = |norms: &[f64]| norms.iter().map(|&v| v as f32).collect();
    Some(Direct {
        q,
        t,
        qn: to_f32(qn),
        tn: to_f32(tn),
    })
}

/// Column means of a row-major `(len / d) x d` matrix, in float64.
fn column_means<T: Real>(a: &[T], d: usize) -> Vec<f64> {
    let mut sum = vec![0.0_f64; d];
    for r in a.chunks_exact(d) {
        for (s, &v) in sum.iter_mut().zip(r) {
            *s += v.to_f64_lossless();
        }
    }
    let n = (a.len() / d).max(1) as f64;
    sum.into_iter().map(|s| s / n).collect()
}

/// Whether every value of `a` (row-major, `mean.len()` wide) minus its column's mean is
/// finite and at most [`MAX_CENTRED`] in magnitude.
fn centred_in_range<T: Real>(a: &[T], mean: &[f64]) -> bool {
    let mut ok = true;
    for r in a.chunks_exact(mean.len()) {
        for (&v, &m) in r.iter().zip(mean) {
            // NaN fails the comparison.
            ok &= (v.to_f64_lossless() - m).abs() <= MAX_CENTRED;
        }
    }
    ok
}

/// Writes `row - mean` in float32 to `out` and returns its float32 squared norm.
#[inline(always)]
fn centre_row<T: Real>(row: &[T], mean: &[f64], out: &mut [f32]) -> f32 {
    for ((o, &v), &m) in out.iter_mut().zip(row).zip(mean) {
        *o = (v.to_f64_lossless() - m) as f32;
    }
    sum8(out, out, |x, y| x * y)
}

/// `buf = -2 Q T^T` for the float32 rows `q` (`rows x d`) and `t` (`tt x d`), in GEMM
/// calls of [`GEMM_TRAIN_ROWS`] training rows (see `GemmFill::cross` for why that size).
fn cross32(q: &[f32], t: &[f32], rows: usize, tt: usize, d: usize, buf: &mut [f32]) {
    let (Ok(qv), Ok(tv)) = (
        ArrayView2::from_shape((rows, d), q),
        ArrayView2::from_shape((tt, d), t),
    ) else {
        return;
    };
    let Ok(mut c) = ArrayViewMut2::from_shape((rows, tt), &mut buf[..rows * tt]) else {
        return;
    };
    for j0 in (0..tt).step_by(GEMM_TRAIN_ROWS) {
        let j1 = (j0 + GEMM_TRAIN_ROWS).min(tt);
        let c_block = c.slice_mut(s![.., j0..j1]);
        gemm(
            -2.0_f32,
            qv,
            tv.slice(s![j0..j1, ..]).t(),
            0.0,
            c_block,
            Threads::Single,
        );
    }
}

/// The smallest float32 at or above `r` (so a lower bound at or above it is at or above `r`;
/// NaN stays NaN, which admits every candidate).
#[inline(always)]
fn f32_at_or_above(r: f64) -> f32 {
    let f = r as f32;
    if f64::from(f) < r { f.next_up() } else { f }
}

/// float32 inputs used by the float32 GEMM as they are, with their float32 squared norms.
///
/// Centring float32 data would copy every training block once per query tile (for 784
/// features, as many conversions as a fifth of the GEMM's multiply-adds) only to tighten
/// the bounds; uncentred bounds are looser by the ratio of the plain to the centred norms,
/// which lets a few more candidates through to the float64 check. So data whose mean is
/// small next to its spread is screened as it is, and offset data (where the loose bounds
/// would admit nearly everything) is centred.
struct Direct<'a> {
    q: &'a [f32],
    t: &'a [f32],
    qn: Vec<f32>,
    tn: Vec<f32>,
}

/// Uncentred squared norms at most this many times the centred ones (on average) leave the
/// float32 data uncentred (see [`Direct`]).
const DIRECT_NORM_RATIO: f64 = 16.0;

/// A thread's working memory for screened query tiles.
struct Work {
    /// Centred float32 query rows of the tile, and training rows of the training block.
    q32: Vec<f32>,
    t32: Vec<f32>,
    /// The query and training terms of the lower bounds (see the module docs).
    qlo: Vec<f32>,
    tlo: Vec<f32>,
    /// One block (at most [`QUERY_TILE`] query rows) of `-2 q32.t32`.
    buf: Vec<f32>,
    /// Per query, the float64 heaps (one per `k`, increasing), and one spare per `k`.
    heaps: Vec<Vec<KHeap<f64>>>,
    fresh: Vec<KHeap<f64>>,
}

impl Work {
    fn new(rows: usize, block: usize, tt: usize, d: usize, sorted_ks: &[usize]) -> Result<Self> {
        const WHAT: &str = "the neighbour search's working memory";
        let zeros = |n: Option<usize>| try_filled(n.unwrap_or(usize::MAX), 0.0, WHAT);
        Ok(Self {
            q32: zeros(rows.checked_mul(d))?,
            t32: zeros(tt.checked_mul(d))?,
            qlo: zeros(Some(rows))?,
            tlo: zeros(Some(tt))?,
            buf: zeros(block.checked_mul(tt))?,
            heaps: KHeap::try_sets(rows, sorted_ks)?,
            fresh: KHeap::try_row(sorted_ks)?,
        })
    }
}

/// Screens one block (queries `rows` of the tile starting at query `qs`, whose
/// `-2 q32.t32` is in `work.buf`, x `tt` training rows from `ts`): a candidate whose lower
/// bound is below its query's float64 heap root has its float64 distance fed to the
/// query's heaps, while its training row is in cache.
#[inline(always)]
fn screen_body<T: Real>(
    this: &Screen<'_, T>,
    work: &mut Work,
    qs: usize,
    rows: std::ops::Range<usize>,
    tt: usize,
    ts: usize,
    admit_mask: &impl Fn(&[f32; LANES], f32) -> u64,
) {
    let (d, q, t) = (this.d, this.q, this.t);
    let Work {
        qlo,
        tlo,
        buf,
        heaps,
        ..
    } = work;
    let r0 = rows.start;
    let tlo = &tlo[..tt];
    for i in rows {
        let row = &mut buf[(i - r0) * tt..(i - r0 + 1) * tt];
        // The lower bounds in place of the products (as the plain search adds its norms),
        // one pass that vectorises, then the chunks' masks read them back.
        let ql = qlo[i];
        for (v, &tl) in row.iter_mut().zip(tlo) {
            *v = (ql + *v) + tl;
        }
        let Some((big, small)) = heaps[i].split_last_mut() else {
            continue;
        };
        let qrow = &q[(qs + i) * d..(qs + i + 1) * d];
        let qn = this.qn[qs + i];
        // The root in float32, rounded up; it only changes when a candidate is taken.
        let mut root = f32_at_or_above(big.root());
        for (c, chunk) in row.chunks(LANES).enumerate() {
            let mut mask = if let Ok(full) = <&[f32; LANES]>::try_from(chunk) {
                admit_mask(full, root)
            } else {
                let mut tail = [f32::INFINITY; LANES];
                tail[..chunk.len()].copy_from_slice(chunk);
                admit_mask(&tail, root)
            };
            while mask != 0 {
                let l = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                // The root only shrinks: test again against today's.
                if chunk[l] < root {
                    let j = ts + c * LANES + l;
                    let e = distance(qrow, &t[j * d..(j + 1) * d], qn, this.tn[j]);
                    push_all(big, small, e, j);
                    root = f32_at_or_above(big.root());
                }
            }
        }
    }
}

/// Screens queries `qs..qe` against every training row, then feeds the candidates'
/// float64 distances to `work.heaps`.
#[inline(always)]
fn tile_body<T: Real>(
    this: &Screen<'_, T>,
    work: &mut Work,
    qs: usize,
    qe: usize,
    cancel: &Cancel,
    admit_mask: impl Fn(&[f32; LANES], f32) -> u64,
) {
    let (d, q, t, rows) = (this.d, this.q, this.t, qe - qs);
    let n_t = t.len() / d;
    let c32 = this.c32 as f32;
    for i in 0..rows {
        let qn32 = match &this.direct {
            Some(direct) => direct.qn[qs + i],
            None => centre_row(
                &q[(qs + i) * d..(qs + i + 1) * d],
                &this.mean,
                &mut work.q32[i * d..(i + 1) * d],
            ),
        };
        let slack = (this.c64 * this.qn[qs + i].to_f64_lossless() + this.slack_t) as f32;
        work.qlo[i] = qn32 * (1.0 - c32) - slack;
        for h in &mut work.heaps[i] {
            h.reset();
        }
    }
    let block = this.block();
    for ts in (0..n_t).step_by(block) {
        if cancel.is_cancelled() {
            return;
        }
        let te = (ts + block).min(n_t);
        let tt = te - ts;
        for j in 0..tt {
            let tn32 = match &this.direct {
                Some(direct) => direct.tn[ts + j],
                None => centre_row(
                    &t[(ts + j) * d..(ts + j + 1) * d],
                    &this.mean,
                    &mut work.t32[j * d..(j + 1) * d],
                ),
            };
            work.tlo[j] = tn32 * (1.0 - c32);
        }
        for r0 in (0..rows).step_by(QUERY_TILE) {
            let r1 = (r0 + QUERY_TILE).min(rows);
            if let Some(direct) = &this.direct {
                let q32 = &direct.q[(qs + r0) * d..(qs + r1) * d];
                let t32 = &direct.t[ts * d..te * d];
                cross32(q32, t32, r1 - r0, tt, d, &mut work.buf);
            } else {
                let q32 = &work.q32[r0 * d..r1 * d];
                cross32(q32, &work.t32[..tt * d], r1 - r0, tt, d, &mut work.buf);
            }
            screen_body(this, work, qs, r0..r1, tt, ts, &admit_mask);
        }
    }
}

multiversion! {
    /// [`tile_body`] compiled for `level`: the conversions, the screening and the float64
    /// distances all vectorise several times wider than at the baseline target (the same
    /// source, so the same results).
    fn tile<T: Real>(
        this: &Screen<'_, T>,
        work: &mut Work,
        qs: usize,
        qe: usize,
        cancel: &Cancel,
    ) => full: tile_body,
        simd_arg: |v, r| admit_mask_avx(v, r),
        portable_arg: admit_mask_portable
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    use super::super::engine::{Plan, finish_heap};
    use super::super::precision::Precision;
    use super::super::{Metric, sklearn_strategy};
    use super::{KHeap, Screen, SimdLevel, distance, sq_norms_f64_simd};
    use crate::exec::Threads;

    /// Every training row's float64 distance fed to scikit-learn's heaps in index order
    /// (what the screening must reproduce), one result per `k` of `ks`.
    fn full_replay(
        q: &Array2<f64>,
        t: &Array2<f64>,
        ks: &[usize],
        metric: &Metric,
    ) -> Vec<(Array2<f64>, Array2<usize>)> {
        let (qn, tn) = (
            sq_norms_f64_simd(SimdLevel::detected(), &q.view()),
            sq_norms_f64_simd(SimdLevel::detected(), &t.view()),
        );
        let strategy = sklearn_strategy(q.nrows(), t.nrows());
        ks.iter()
            .map(|&k| {
                let mut dist = Array2::zeros((q.nrows(), k));
                let mut idx = Array2::zeros((q.nrows(), k));
                for i in 0..q.nrows() {
                    let (mut h, mut spare) = (KHeap::new(k), KHeap::new(k));
                    let qr = q.row(i).to_vec();
                    for (j, (tr, &tnj)) in t.rows().into_iter().zip(&tn).enumerate() {
                        h.push(distance(&qr, &tr.to_vec(), qn[i], tnj), j);
                    }
                    finish_heap(&mut h, strategy, &mut spare);
                    for c in 0..k {
                        dist[[i, c]] = metric.rdist_to_dist(h.values[c]);
                        idx[[i, c]] = h.indices[c];
                    }
                }
                (dist, idx)
            })
            .collect()
    }

    fn screened<T: crate::real::Real>(
        q: &Array2<T>,
        t: &Array2<T>,
        ks: &[usize],
        metric: &Metric,
        threads: Threads,
    ) -> Vec<(Array2<f64>, Array2<usize>)> {
        let screen = Screen::new(q.view(), t.view(), metric).expect("the data is screened");
        let plan = Plan::new(q.nrows(), t.nrows(), ks, metric, threads, Precision::F64);
        screen.run(&plan, threads.wake()).expect("the search runs")
    }

    fn uniform(n: usize, d: usize, rng: &mut Pcg64) -> Array2<f64> {
        Array2::from_shape_fn((n, d), |_| rng.random::<f64>())
    }

    /// Data sets the screening must not change: general position, exact ties (duplicated
    /// rows, queries equal to training rows, a coarse lattice), a large offset
    /// (cancellation in the norms), outlying rows (loose bounds), tiny values.
    fn cases() -> Vec<(&'static str, Array2<f64>, Array2<f64>)> {
        let mut rng = Pcg64::seed_from_u64(17);
        let t = uniform(700, 24, &mut rng);
        let q = uniform(90, 24, &mut rng);
        let mut dup = ndarray::concatenate![ndarray::Axis(0), t, t.slice(ndarray::s![..200, ..])];
        dup.row_mut(650).assign(&t.row(3));
        let dup_q = ndarray::concatenate![ndarray::Axis(0), q, t.slice(ndarray::s![..40, ..])];
        let lattice =
            Array2::from_shape_fn((600, 20), |_| f64::from(rng.random_range(0..3_u8)) * 0.1);
        let lattice_q =
            Array2::from_shape_fn((80, 20), |_| f64::from(rng.random_range(0..3_u8)) * 0.1);
        let mut outliers = t.clone();
        for i in (0..700).step_by(37) {
            outliers.row_mut(i).mapv_inplace(|v| v * 1e5);
        }
        vec![
            ("uniform", t.clone(), q.clone()),
            // Query tiles of more than one GEMM block (600 queries: 300 rows per tile).
            ("many queries", t.clone(), uniform(600, 24, &mut rng)),
            ("duplicates", dup, dup_q),
            ("lattice", lattice, lattice_q),
            ("offset", t.mapv(|v| v + 1e6), q.mapv(|v| v + 1e6)),
            ("outliers", outliers, q.clone()),
            ("tiny", t.mapv(|v| v * 1e-200), q.mapv(|v| v * 1e-200)),
        ]
    }

    #[test]
    fn screening_gives_the_full_replays_answers_bit_for_bit() {
        for (name, t, q) in cases() {
            for metric in [Metric::Euclidean, Metric::SqEuclidean] {
                let ks = [5, 1, 17];
                let want = full_replay(&q, &t, &ks, &metric);
                for threads in [Threads::Single, Threads::exactly(3)] {
                    let got = screened(&q, &t, &ks, &metric, threads);
                    for ((gd, gi), (wd, wi)) in got.iter().zip(&want) {
                        assert_eq!(gi, wi, "{name} {metric:?}: indices");
                        let same = gd.iter().zip(wd).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{name} {metric:?}: distances");
                    }
                }
            }
        }
    }

    /// float32 data: the answers of scikit-learn's float32 search, whose distances are the
    /// float64 sums of the upcast values (the full replay on the upcast data).
    #[test]
    fn float32_screening_gives_the_float64_replays_answers() {
        for (name, t, q) in cases() {
            if name == "tiny" {
                // 1e-200 is zero in float32: nothing left to screen.
                continue;
            }
            let (t32, q32) = (t.mapv(|v| v as f32), q.mapv(|v| v as f32));
            let (t64, q64) = (t32.mapv(f64::from), q32.mapv(f64::from));
            for metric in [Metric::Euclidean, Metric::SqEuclidean] {
                let ks = [5, 1, 17];
                let want = full_replay(&q64, &t64, &ks, &metric);
                for threads in [Threads::Single, Threads::exactly(3)] {
                    let got = screened(&q32, &t32, &ks, &metric, threads);
                    for ((gd, gi), (wd, wi)) in got.iter().zip(&want) {
                        assert_eq!(gi, wi, "{name} {metric:?}: indices");
                        let same = gd.iter().zip(wd).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{name} {metric:?}: distances");
                    }
                }
            }
        }
    }

    #[test]
    fn every_training_row_when_k_is_n_train() {
        let mut rng = Pcg64::seed_from_u64(3);
        let t = uniform(40, 16, &mut rng);
        let q = uniform(9, 16, &mut rng);
        let m = Metric::SqEuclidean;
        assert_eq!(
            screened(&q, &t, &[40], &m, Threads::Single),
            full_replay(&q, &t, &[40], &m)
        );
    }

    #[test]
    fn screening_applies_only_where_its_bounds_hold() {
        let mut rng = Pcg64::seed_from_u64(5);
        let t = uniform(50, 16, &mut rng);
        let e = Metric::Euclidean;
        assert!(Screen::new(t.view(), t.view(), &e).is_some());
        assert!(Screen::new(t.view(), t.view(), &Metric::Manhattan).is_none());
        let narrow = uniform(50, 15, &mut rng);
        assert!(Screen::new(narrow.view(), narrow.view(), &e).is_none());
        // float32 data is screened at any width (its distances are float64 sums).
        let t32 = t.mapv(|v| v as f32);
        assert!(Screen::new(t32.view(), t32.view(), &e).is_some());
        let narrow32 = narrow.mapv(|v| v as f32);
        assert!(Screen::new(narrow32.view(), narrow32.view(), &e).is_some());
        let mut huge = t.clone();
        huge[[7, 3]] = 1e17;
        assert!(Screen::new(t.view(), huge.view(), &e).is_none());
        assert!(Screen::new(huge.view(), t.view(), &e).is_none());
        let mut nan = t.clone();
        nan[[0, 0]] = f64::NAN;
        assert!(Screen::new(nan.view(), t.view(), &e).is_none());
    }
}
