//! Element-wise passes over parameter-sized arrays: the sum of the per-chunk gradients, the
//! final gradient blocks the optimizer forms, and the coefficients' sum of squares (the L2
//! penalty), each compiled for the CPU's instruction set (see [`crate::platform`]).
//!
//! Each pass works element by element in a fixed order, so the blocks it is split into over
//! threads change no bit of the result.

// The loop bodies are `#[inline(always)]` so that they are compiled again inside each
// `#[target_feature]` copy made by `platform::multiversion!` (an ordinary call would run the
// portable build).
#![allow(clippy::inline_always)]

use rayon::prelude::*;

use crate::exec::Threads;
use crate::platform::{SimdLevel, multiversion};
use crate::real::Real;

/// Elements per parallel task of an element-wise pass over parameters.
const PAR_BLOCK: usize = 8192;

/// Runs `f(offset, block)` over fixed blocks of `data` (element-wise passes only, so the split
/// never changes a result), in parallel when `threads` allows and `data` is large.
pub(crate) fn for_blocks<T: Send>(
    threads: Threads,
    data: &mut [T],
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if threads.count() > 1 && data.len() > PAR_BLOCK {
        data.par_chunks_mut(PAR_BLOCK)
            .enumerate()
            .for_each(|(i, blk)| f(i * PAR_BLOCK, blk));
    } else {
        f(0, data);
    }
}

/// `dst = (dst if keep else 0) + parts[0] + parts[1] + ...` element by element, left to right
/// (when `keep` is false, `dst = parts[0] + parts[1] + ...`). Then, with `finish =
/// Some((w, alpha, scale))`, `dst = (dst + alpha * w) * scale`. Every slice has `dst.len()`
/// values.
#[inline(always)]
fn reduce_block<T: Real>(dst: &mut [T], parts: &[&[T]], keep: bool, finish: Option<(&[T], T, T)>) {
    let mut rest = parts;
    if !keep {
        match parts.split_first() {
            Some((first, tail)) => {
                dst.copy_from_slice(first);
                rest = tail;
            }
            None => dst.fill(T::zero()),
        }
    }
    for p in rest {
        for (d, &v) in dst.iter_mut().zip(p.iter()) {
            *d += v;
        }
    }
    if let Some((w, alpha, scale)) = finish {
        for (d, &wv) in dst.iter_mut().zip(w) {
            *d = (*d + alpha * wv) * scale;
        }
    }
}

/// `reduce_block` over a whole parameter array, vectorised for `level` and split over
/// `threads`.
pub fn reduce<T: Real>(
    level: SimdLevel,
    threads: Threads,
    dst: &mut [T],
    parts: &[&[T]],
    keep: bool,
    finish: Option<(&[T], T, T)>,
) {
    for_blocks(threads, dst, |off, blk| {
        let n = blk.len();
        let sub: Vec<&[T]> = parts.iter().map(|p| &p[off..off + n]).collect();
        let fin = finish.map(|(w, a, d)| (&w[off..off + n], a, d));
        reduce_block_at(level, blk, &sub, keep, fin);
    });
}

/// `sum(v * v)` in `f64` over `values` with eight interleaved accumulators (element `i` goes
/// to accumulator `i % 8`, the eight are added in order at the end): a fixed order, so the
/// result does not depend on the instruction set or the thread count, and it vectorises.
///
/// `v`, or zero where `|v| < bound`: the training step's squares of tiny values (Adam's
/// `(1 - beta_2) g^2`, the L2 sum of squares) are taken from it with `bound` where the square
/// would turn subnormal, so that it comes out zero, as flush-to-zero would round it, without
/// touching the thread's floating-point mode (which other code on the same threads relies
/// on). On x86 every vector that makes a subnormal takes a microcode assist (of the order
/// of a hundred cycles), and tiny values are common in float32 training: one digits
/// `(256,)` fit made about 210,000 subnormal `g^2` terms and 120,000 subnormal squares of
/// weights in its 27 million element updates.
#[inline(always)]
pub(crate) fn zero_below<T: Real>(v: T, bound: T) -> T {
    if v.abs() < bound { T::zero() } else { v }
}

/// A square that would be subnormal in `T` (`|v|` below the square root of the smallest
/// normal number, about 1e-19 in float32) is added as zero (see [`zero_below`]). Added to
/// an `f64` sum, such a term is lost anyway unless the whole sum is below about 1e-22.
#[inline(always)]
pub(crate) fn sum_squares_block<T: Real>(values: &[T]) -> f64 {
    let min = T::min_positive_value().sqrt();
    let sq = |v: T| {
        let v = zero_below(v, min);
        (v * v).to_f64_lossless()
    };
    let mut acc = [0.0_f64; 8];
    let mut it = values.chunks_exact(8);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += sq(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(it.remainder()) {
        *a += sq(v);
    }
    acc.iter().sum()
}

multiversion! {
    /// `sum(v * v)` over `values` in `f64` (eight interleaved accumulators, added in order at
    /// the end), compiled for `level`.
    pub fn sum_squares<T: Real>(values: &[T]) -> f64 => sum_squares_block
}

/// One block of a final gradient: `dst = ((parts[0] + parts[1] + ...) + alpha * w) * scale`
/// over `parts[..][off..off + dst.len()]`, or `dst = (parts[0] + ...) * scale` without `w`:
/// the same operations, in the same order, as [`reduce`] followed by its finish (or by the
/// scaling of the intercept gradients).
#[inline(always)]
fn grad_block<T: Real>(
    dst: &mut [T],
    parts: &[&[T]],
    off: usize,
    w: Option<&[T]>,
    alpha: T,
    scale: T,
) {
    let n = dst.len();
    match parts.split_first() {
        Some((first, rest)) => {
            dst.copy_from_slice(&first[off..off + n]);
            for p in rest {
                for (d, &v) in dst.iter_mut().zip(&p[off..off + n]) {
                    *d += v;
                }
            }
        }
        None => dst.fill(T::zero()),
    }
    match w {
        Some(w) => {
            for (d, &wv) in dst.iter_mut().zip(w) {
                *d = (*d + alpha * wv) * scale;
            }
        }
        None => {
            for d in dst.iter_mut() {
                *d *= scale;
            }
        }
    }
}

multiversion! {
    /// `grad_block` compiled for `level`.
    pub fn grad_block_at<T: Real>(
        dst: &mut [T],
        parts: &[&[T]],
        off: usize,
        w: Option<&[T]>,
        alpha: T,
        scale: T,
    ) => grad_block
}

multiversion! {
    /// [`reduce_block`] compiled for `level`.
    fn reduce_block_at<T: Real>(
        dst: &mut [T],
        parts: &[&[T]],
        keep: bool,
        finish: Option<(&[T], T, T)>,
    ) => reduce_block
}
