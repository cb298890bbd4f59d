//! The reduction: a tile of reduced distances into each query's heaps (scikit-learn's
//! `heap_push`, fed in increasing training index), compiled for each SIMD level.

use crate::neighbors::heap::KHeap;
use crate::platform::multiversion;
use crate::real::Real;

use super::LANES;

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
pub(crate) fn epilogue<T: Real>(vals: &mut [T], norms: Option<(T, &[T])>) {
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
pub(crate) fn sq_dist<T: Real>(qn: T, cross: T, tn: T) -> T {
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
pub(crate) fn push_all<T: Real>(big: &mut KHeap<T>, small: &mut [KHeap<T>], v: T, idx: usize) {
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
pub(crate) fn admits<T: Real>(v: T, root: T) -> bool {
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(v >= root)` is true for NaN, on purpose
    let taken = !(v >= root);
    taken
}

/// Bit `l` set when the heap takes `v[l]` ([`admits`]): the portable version.
#[inline(always)] // compiled into each `target_feature` wrapper below
#[allow(clippy::inline_always)]
pub(crate) fn admit_mask_portable<T: Real>(v: &[T; LANES], root: T) -> u64 {
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
pub(crate) fn admit_mask_avx<T: Real>(v: &[T; LANES], root: T) -> u64 {
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

// Why compile the reduction more than once: the wheel targets baseline x86-64 (SSE2), where
// the per-chunk compare-to-mask needs a dozen shuffles; with AVX-512 it is one `vcmpps` into
// a mask register (with AVX2 one `vmovmskps` per 8 lanes). The source is the same generic
// Rust as the fallback (no intrinsics but the compare), so the answers cannot differ; the
// test `dispatched_reduction_equals_portable` checks that they do not.
multiversion! {
    /// [`reduce_tile_body`] compiled for `level` (`SimdLevel::Portable` forces the baseline).
    pub(crate) fn reduce_tile<T: Real>(
        heaps: &mut [Vec<KHeap<T>>],
        buf: &mut [T],
        tt: usize,
        ts: usize,
        norms: Option<(&[T], &[T])>,
    ) => full: reduce_tile_body,
        simd_arg: |v, r| admit_mask_avx(v, r),
        portable_arg: admit_mask_portable
}

#[cfg(test)]
mod tests {
    use super::{KHeap, LANES, reduce_tile};
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
}
