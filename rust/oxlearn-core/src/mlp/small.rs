//! Hand-written matrix products for narrow networks, fused with their element-wise passes.
//!
//! Why this exists (our edge: fused kernels): in a network whose hidden and output layers are
//! all narrow (digits with `(16,)`: products of `200 x 64 x 16`, `200 x 16 x 10`, ...), a
//! training step is a handful of products of 30 to 200 thousand multiply-adds, each wrapped
//! in passes of its own on the `gemm` path: a gathered copy of the shuffled batch's input
//! rows, the bias + activation pass, the derivative pass, the column-major detour and
//! transpose of the 10-wide products, and the per-call dispatch and packing. These kernels
//! keep a `MR x NC` tile of the result in registers over the whole inner dimension, apply
//! the element-wise pass to the tile before storing it, and read the mini-batch's input
//! rows in place through the shuffled index.
//!
//! Arithmetic: every output element is `sum_k a(i, k) * b(k, j)`, accumulated with a fused
//! multiply-add in ascending `k` from zero, then the epilogue (bias add, activation, ...) in
//! scikit-learn's order. The tiling (which rows and columns share registers) changes no
//! operation, so the bits do not depend on the instruction set (every build uses the same
//! fused multiply-adds: hardware FMA under AVX2/AVX-512, the correctly rounded libm `fma` on
//! the portable build), the thread count or the batch's position in memory. The tests in
//! `tests/mlp_simd.rs` check the levels against each other and against a plain loop.

// The loop bodies are `#[inline(always)]` so that they are compiled again inside each
// `#[target_feature]` copy made by `simd::multiversion!` (an ordinary call would run the
// portable build).
#![allow(clippy::inline_always)]

use super::Activation;
use super::simd::{SimdLevel, multiversion};
use crate::real::Real;

/// Columns of one register tile (two AVX-512 vectors of `f64`, one of `f32`).
pub const NC: usize = 16;

/// Hidden and output layers at most this wide use these kernels (see
/// [`applies`]); wider layers keep the `gemm` crate, which is faster there.
pub const SMALL_MAX: usize = 32;

/// Whether a network of layer widths `units` trains and predicts with these kernels: every
/// layer after the input at most [`SMALL_MAX`] wide (the input may be any width), on a CPU
/// with fused multiply-add instructions (an x86-64 CPU without them would compute each one
/// in libm's software `fma`, far slower than the `gemm` crate's plain products).
pub fn applies(units: &[usize]) -> bool {
    let hardware_fma = cfg!(any(target_feature = "fma", not(target_arch = "x86_64")))
        || SimdLevel::detected() != SimdLevel::Portable;
    hardware_fma && units.len() >= 2 && units[1..].iter().all(|&w| w <= SMALL_MAX)
}

/// A row-major matrix whose row `r` starts at `data[row(r) * ld]`, with `row(r) = idx[r]`
/// when rows are picked through an index (a shuffled mini-batch) and `r` otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a, T> {
    /// The values.
    pub data: &'a [T],
    /// Distance between two rows.
    pub ld: usize,
    /// The rows to use, in order, or `None` for rows `0, 1, ...`.
    pub idx: Option<&'a [usize]>,
}

impl<'a, T> Mat<'a, T> {
    /// Rows `0, 1, ...` of a row-major buffer `ld` values wide.
    pub fn rows(data: &'a [T], ld: usize) -> Self {
        Self {
            data,
            ld,
            idx: None,
        }
    }

    /// Rows `idx[0], idx[1], ...` of a row-major buffer `ld` values wide.
    pub fn picked(data: &'a [T], ld: usize, idx: &'a [usize]) -> Self {
        Self {
            data,
            ld,
            idx: Some(idx),
        }
    }

    /// Where row `r` starts.
    #[inline(always)]
    fn start(&self, r: usize) -> usize {
        match self.idx {
            Some(ix) => ix[r] * self.ld,
            None => r * self.ld,
        }
    }

    /// `len` values of row `r` from column `c`.
    #[inline(always)]
    fn seg(&self, r: usize, c: usize, len: usize) -> &'a [T] {
        let s = self.start(r) + c;
        &self.data[s..s + len]
    }
}

/// How the left operand `a` (`m x kk` in the product) is read.
#[derive(Debug, Clone, Copy)]
pub enum Left<'a, T> {
    /// `a(i, k)` is element `k` of row `i` of the matrix.
    Rows(Mat<'a, T>),
    /// `a(i, k)` is element `i` of row `k` (the product of a transpose, as in the weight
    /// gradients `activations.T @ deltas`).
    Cols(Mat<'a, T>),
}

/// How the right operand `b` (`kk x n`) is read.
#[derive(Debug, Clone, Copy)]
pub enum Right<'a, T> {
    /// `b(k, j)` is element `j` of row `k`.
    Rows(Mat<'a, T>),
    /// `b(k, j)` is element `k` of row `j` (a transposed weight matrix).
    Cols(Mat<'a, T>),
}

/// What happens to each finished element `s = sum_k a(i, k) b(k, j)` before it is stored in
/// row `i`, column `j` of the output.
#[derive(Debug)]
pub enum Epilogue<'a, T> {
    /// `c = s`.
    Store,
    /// `c = s + bias[j]` (an output layer, whose activation runs row by row afterwards).
    Bias(&'a [T]),
    /// `c = f(s + bias[j])` (a hidden layer).
    BiasAct(&'a [T], Activation),
    /// `c = s * f'(z)` written in terms of the activations `act` (row-major, `n` wide),
    /// and `colsum[j] = sum_i c(i, j)`, summed row after row (the hidden deltas and their
    /// intercept gradients).
    Deriv {
        /// The hidden activation.
        f: Activation,
        /// The layer's activations, row-major, `n` wide.
        act: &'a [T],
        /// Receives the column sums (`n` values, overwritten).
        colsum: &'a mut [T],
    },
}

/// One register tile: `acc[r][j] = sum_k a(i0 + r, k) b(k, j)` for `R` rows, `NC`
/// columns and `k < kk`, with row `k` of the right operand at `b[k * ldb..k * ldb + NC]`.
/// `cols_rows`: the rows a [`Left::Cols`] operand was checked for (see [`product_body`]).
#[inline(always)]
fn tile<T: Real, const R: usize>(
    a: &Left<'_, T>,
    i0: usize,
    kk: usize,
    b: &[T],
    ldb: usize,
    cols_rows: usize,
    acc: &mut [[T; NC]; R],
) {
    if kk == 0 {
        *acc = [[T::zero(); NC]; R];
        return;
    }
    assert!(b.len() >= (kk - 1) * ldb + NC, "right operand too short");
    // A local tile (in registers), copied out once.
    let mut sums = [[T::zero(); NC]; R];
    match a {
        Left::Rows(m) => {
            let rows: [&[T]; R] = std::array::from_fn(|r| m.seg(i0 + r, 0, kk));
            for k in 0..kk {
                let s = k * ldb;
                let brow: &[T; NC] = b[s..s + NC].try_into().expect("NC values");
                for (acc_r, row) in sums.iter_mut().zip(&rows) {
                    let av = row[k];
                    for (c, &bj) in acc_r.iter_mut().zip(brow) {
                        *c = av.mul_add(bj, *c);
                    }
                }
            }
        }
        Left::Cols(m) => {
            assert!(i0 + R <= cols_rows, "tile beyond the checked rows");
            for k in 0..kk {
                let s = k * ldb;
                let brow: &[T; NC] = b[s..s + NC].try_into().expect("NC values");
                let at = m.start(k) + i0;
                // SAFETY: `product_body` checked `start(k) + cols_rows <= data.len()` for every
                // `k < kk`, and `i0 + R <= cols_rows`.
                let avs: &[T; R] = unsafe { &*m.data.as_ptr().add(at).cast::<[T; R]>() };
                for (acc_r, &av) in sums.iter_mut().zip(avs) {
                    for (c, &bj) in acc_r.iter_mut().zip(brow) {
                        *c = av.mul_add(bj, *c);
                    }
                }
            }
        }
    }
    *acc = sums;
}

/// Copies columns `j0 .. j0 + nt` of `b` (`kk` rows) into `panel`, a zeroed `kk x NC`
/// row-major block (zero beyond `nt`).
#[inline(always)]
fn pack<T: Real>(b: &Right<'_, T>, kk: usize, j0: usize, nt: usize, panel: &mut [T]) {
    match b {
        Right::Rows(m) => {
            for (k, dst) in panel.chunks_exact_mut(NC).enumerate().take(kk) {
                dst[..nt].copy_from_slice(m.seg(k, j0, nt));
            }
        }
        Right::Cols(m) => {
            for j in 0..nt {
                let col = m.seg(j0 + j, 0, kk);
                for (dst, &v) in panel.chunks_exact_mut(NC).zip(col) {
                    dst[j] = v;
                }
            }
        }
    }
}

/// Rows `i0 .. i0 + R` of the product, every column tile, through the epilogue; `acc` is
/// the tile's scratch space.
#[inline(always)]
fn row_block<T: Real, const R: usize>(
    i0: usize,
    n: usize,
    kk: usize,
    a: &Left<'_, T>,
    b: &Right<'_, T>,
    panels: &[T],
    packed_from: usize,
    c: &mut [T],
    ldc: usize,
    epi: &mut Epilogue<'_, T>,
    acc: &mut [[T; NC]; R],
) {
    let cols_rows = if matches!(a, Left::Cols(_)) {
        i0 + R
    } else {
        0
    };
    let mut j0 = 0;
    let mut tile_no = 0;
    while j0 < n {
        let nt = NC.min(n - j0);
        match b {
            Right::Rows(m) if tile_no < packed_from => {
                tile::<T, R>(a, i0, kk, &m.data[j0..], m.ld, cols_rows, acc);
            }
            _ => {
                let p = (tile_no - packed_from) * kk * NC;
                tile::<T, R>(a, i0, kk, &panels[p..p + kk * NC], NC, cols_rows, acc);
            }
        }
        epilogue::<T, R>(epi, acc, c, ldc, i0, j0, nt);
        j0 += nt;
        tile_no += 1;
    }
}

/// The epilogue of the tile at rows `i0..i0 + R`, columns `j0..j0 + nt`, one loop per case
/// so that each vectorises.
#[inline(always)]
fn epilogue<T: Real, const R: usize>(
    epi: &mut Epilogue<'_, T>,
    acc: &[[T; NC]; R],
    c: &mut [T],
    ldc: usize,
    i0: usize,
    j0: usize,
    nt: usize,
) {
    match epi {
        Epilogue::Store => rows_map(acc, c, ldc, i0, j0, nt, |v, _| v, &[]),
        Epilogue::Bias(bias) => rows_map(acc, c, ldc, i0, j0, nt, |v, b| v + b, &bias[j0..j0 + nt]),
        Epilogue::BiasAct(bias, f) => {
            let bias = &bias[j0..j0 + nt];
            match f {
                Activation::Identity => rows_map(acc, c, ldc, i0, j0, nt, |v, b| v + b, bias),
                Activation::Logistic => rows_map(
                    acc,
                    c,
                    ldc,
                    i0,
                    j0,
                    nt,
                    |v, b| Activation::Logistic.apply(v + b),
                    bias,
                ),
                Activation::Tanh => {
                    rows_map(acc, c, ldc, i0, j0, nt, |v, b| (v + b).tanh(), bias);
                }
                Activation::Relu => rows_map(
                    acc,
                    c,
                    ldc,
                    i0,
                    j0,
                    nt,
                    |v, b| Activation::Relu.apply(v + b),
                    bias,
                ),
            }
        }
        // Applied to the whole product at the end (see `product_body`): the derivative's
        // select does not vectorise inside the unrolled tile loops.
        Epilogue::Deriv { .. } => rows_map(acc, c, ldc, i0, j0, nt, |v, _| v, &[]),
    }
}

/// `c[i0 + r][j0 + j] = f(acc[r][j], bias[j])` (`bias` empty: `f(acc, 0)`), over fixed
/// `NC`-wide loops when the tile is full.
#[inline(always)]
fn rows_map<T: Real, const R: usize>(
    acc: &[[T; NC]; R],
    c: &mut [T],
    ldc: usize,
    i0: usize,
    j0: usize,
    nt: usize,
    f: impl Fn(T, T) -> T,
    bias: &[T],
) {
    let mut b = [T::zero(); NC];
    b[..bias.len()].copy_from_slice(bias);
    for (r, s) in acc.iter().enumerate() {
        let at = (i0 + r) * ldc + j0;
        if nt == NC {
            let out: &mut [T; NC] = (&mut c[at..at + NC]).try_into().expect("NC values");
            for j in 0..NC {
                out[j] = f(s[j], b[j]);
            }
        } else {
            for ((o, &v), &bj) in c[at..at + nt].iter_mut().zip(s).zip(&b) {
                *o = f(v, bj);
            }
        }
    }
}

/// The whole product with `MR`-row register tiles (the tile height changes which sums share
/// registers, never an operation).
#[inline(always)]
fn product_body<T: Real, const MR: usize>(
    m: usize,
    n: usize,
    kk: usize,
    a: Left<'_, T>,
    b: Right<'_, T>,
    c: &mut [T],
    ldc: usize,
    mut epi: Epilogue<'_, T>,
    panel: &mut Vec<T>,
) {
    if let Epilogue::Deriv { colsum, .. } = &mut epi {
        colsum[..n].fill(T::zero());
    }
    if m == 0 || n == 0 {
        return;
    }
    if let Left::Cols(am) = &a {
        // Once per product: every left row segment the tiles read is in bounds.
        let ok = (0..kk).all(|k| am.start(k) + m <= am.data.len());
        assert!(ok, "left operand too short");
    }
    // Full column tiles of a plain row-major `b` are read in place; the others are packed
    // once for every row block.
    let tiles = n.div_ceil(NC);
    let packed_from = match b {
        Right::Rows(mb) if mb.idx.is_none() => n / NC,
        _ => 0,
    };
    let mut panels = std::mem::take(panel);
    panels.clear();
    panels.resize((tiles - packed_from) * kk * NC, T::zero());
    // (With `kk == 0` there is nothing to pack: every sum is empty.)
    for (p, dst) in panels.chunks_exact_mut((kk * NC).max(1)).enumerate() {
        let j0 = (packed_from + p) * NC;
        pack(&b, kk, j0, NC.min(n - j0), dst);
    }
    // Row blocks of `MR`, then of 2, then single rows, each with its own accumulator tile.
    let mut i0 = 0;
    macro_rules! row_blocks {
        ($rows:expr) => {
            let mut acc = [[T::zero(); NC]; $rows];
            while m - i0 >= $rows {
                row_block::<T, { $rows }>(
                    i0,
                    n,
                    kk,
                    &a,
                    &b,
                    &panels,
                    packed_from,
                    c,
                    ldc,
                    &mut epi,
                    &mut acc,
                );
                i0 += $rows;
            }
        };
    }
    row_blocks!(MR);
    row_blocks!(2);
    row_blocks!(1);
    *panel = panels;
    if let Epilogue::Deriv { f, act, colsum } = epi {
        // The activation's derivative and the column sums, row after row: the vectorised
        // pass of the gemm path (`Activation::backprop_rows`), while the product is in L1.
        assert_eq!(ldc, n, "a derivative epilogue writes a contiguous block");
        f.backprop_rows(&act[..m * n], &mut c[..m * n], &mut colsum[..n]);
    }
}

/// [`product_body`] with 4-row tiles: 8 AVX-512 registers of `f64` sums (the portable loops
/// keep no more in registers).
#[inline(always)]
fn product_mr4<T: Real>(
    m: usize,
    n: usize,
    kk: usize,
    a: Left<'_, T>,
    b: Right<'_, T>,
    c: &mut [T],
    ldc: usize,
    epi: Epilogue<'_, T>,
    panel: &mut Vec<T>,
) {
    product_body::<T, 4>(m, n, kk, a, b, c, ldc, epi, panel);
}

multiversion! {
    /// `c(i, j) = epilogue(sum_k a(i, k) b(k, j))` for `i < m`, `j < n`, `k < kk`, with `c`
    /// row-major (`ldc` apart) and `panel` scratch space for packed column tiles; compiled
    /// for `level` (see the module docs for the arithmetic).
    pub fn product<T: Real>(
        m: usize,
        n: usize,
        kk: usize,
        a: Left<'_, T>,
        b: Right<'_, T>,
        c: &mut [T],
        ldc: usize,
        epi: Epilogue<'_, T>,
        panel: &mut Vec<T>,
    ) => product_mr4
}
