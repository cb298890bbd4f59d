//! Register-tiled matrix products for every layer of a training step and a prediction,
//! fused with their element-wise passes.
//!
//! Why this exists: in a network whose layers are narrow (digits with `(16,)`: products of
//! `200 x 64 x 16`, `200 x 16 x 10`, ...), a training step is a handful of small products,
//! each wrapped in passes of its own on the `gemm` path: a gathered copy of the shuffled
//! batch's input rows, the bias + activation pass, the derivative pass, the column-major
//! detour and transpose of the 10-wide products, and the per-call dispatch and packing.
//! These kernels keep an `MR x NC` tile of the result in registers over the whole inner
//! dimension, apply the element-wise pass to the tile before storing it, and read the
//! mini-batch's input rows in place through the shuffled index.
//!
//! On AVX-512 CPUs every network trains this way: the register tiles are written with
//! intrinsics (the `wide` module: up to 24 vector accumulators, bias and ReLU applied in
//! registers), which beat the `gemm` path on a training step's shapes, while the products
//! that are large in every dimension (a `(128, 128, 128)` net's hidden layers) go to the
//! `gemm` crate, whose packed kernels are faster there (see [`product`]). Without AVX-512,
//! only narrow networks use the portable tiles (see [`applies`]).
//!
//! Arithmetic: every output element is `sum_k a(i, k) * b(k, j)`, accumulated with a fused
//! multiply-add in ascending `k` from zero, then the epilogue (bias add, activation, ...) in
//! scikit-learn's order. The tiling (which rows and columns share registers) changes no
//! operation, so the bits do not depend on the instruction set (every build uses the same
//! fused multiply-adds: hardware FMA under AVX2/AVX-512, the correctly rounded libm `fma` on
//! the portable build), the thread count or the batch's position in memory. Products sent
//! to the `gemm` crate are chosen by shape alone and sent there at every level, so they too
//! give the same bits at every level. The tests in `tests/mlp_simd.rs` check the levels
//! against each other and against a plain loop.
//!
//! Zeros of the input (a digit's blank border, a bag of words): the training loop hands the
//! first layer's products per-row masks of the input's nonzero values ([`Mat::nonzero`]),
//! and the AVX-512 tiles leave out the `k` at which every row of a tile is zero. A term
//! `0 * w` with a finite `w` adds a zero, which leaves a sum that started from `+0` alone
//! (short of a partial sum that underflowed to `-0`), so the bits are those of the full
//! product; the caller keeps the masks away from products with a non-finite operand (see
//! `Workspace::backprop_deferred_on`). It pays where the first layer is a large part of the
//! work and its tiles span several column tiles (see [`skips_zeros`]).

// The loop bodies are `#[inline(always)]` so that they are compiled again inside each
// `#[target_feature]` copy made by `platform::multiversion!` (an ordinary call would run the
// portable build).
#![allow(clippy::inline_always)]

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

use super::Activation;
use super::activation::{backprop_rows_at, hidden_bias_activate};
use super::buf::Buf;
use crate::exec::Threads;
use crate::linalg::gemm;
use crate::platform::{SimdLevel, multiversion};
use crate::real::Real;

/// Columns of one register tile (two AVX-512 vectors of `f64`, one of `f32`).
pub const NC: usize = 16;

/// Without AVX-512, hidden and output layers at most this wide use these kernels (see
/// [`applies`]); wider layers keep the `gemm` crate, which is faster there than the
/// portable tiles.
pub const NARROW_MAX: usize = 32;

/// Whether a network of layer widths `units` trains and predicts with these kernels: on an
/// AVX-512 CPU always, otherwise when every layer after the input is at most [`NARROW_MAX`]
/// wide (the input may be any width) on a CPU with fused multiply-add instructions (an
/// x86-64 CPU without them would compute each one in libm's software `fma`, far slower than
/// the `gemm` crate's plain products).
pub fn applies(units: &[usize]) -> bool {
    let hardware_fma = cfg!(any(target_feature = "fma", not(target_arch = "x86_64")))
        || SimdLevel::detected() != SimdLevel::Portable;
    let narrow = units.len() >= 2 && units[1..].iter().all(|&w| w <= NARROW_MAX);
    hardware_fma && units.len() >= 2 && (narrow || SimdLevel::detected() == SimdLevel::Avx512)
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
    /// Which values are not zero: `ld.div_ceil(64)` words per stored row (indexed like
    /// `data`, not through `idx`), bit `k % 64` of word `k / 64` set when element `k` is not
    /// zero (see [`nonzero_masks`]). As a left operand with these masks, the AVX-512 tiles
    /// skip the terms `k` at which every `a(i, k)` of the tile is zero (see
    /// [`skips_zeros`]); a right operand's masks are not used.
    pub nonzero: Option<&'a [u64]>,
}

impl<'a, T> Mat<'a, T> {
    /// Rows `0, 1, ...` of a row-major buffer `ld` values wide.
    pub fn rows(data: &'a [T], ld: usize) -> Self {
        Self {
            data,
            ld,
            idx: None,
            nonzero: None,
        }
    }

    /// Rows `idx[0], idx[1], ...` of a row-major buffer `ld` values wide.
    pub fn picked(data: &'a [T], ld: usize, idx: &'a [usize]) -> Self {
        Self {
            data,
            ld,
            idx: Some(idx),
            nonzero: None,
        }
    }

    /// The same matrix with its [`nonzero_masks`] (`ld.div_ceil(64)` words per stored row).
    #[must_use]
    pub fn with_nonzero(self, masks: &'a [u64]) -> Self {
        Self {
            nonzero: Some(masks),
            ..self
        }
    }

    /// The stored row that row `r` reads.
    #[inline(always)]
    fn row(&self, r: usize) -> usize {
        match self.idx {
            Some(ix) => ix[r],
            None => r,
        }
    }

    /// Where row `r` starts.
    #[inline(always)]
    fn start(&self, r: usize) -> usize {
        self.row(r) * self.ld
    }

    /// `len` values of row `r` from column `c`.
    #[inline(always)]
    fn seg(&self, r: usize, c: usize, len: usize) -> &'a [T] {
        let s = self.start(r) + c;
        &self.data[s..s + len]
    }
}

/// Whether inputs with `zeros` zero values among `len` are worth their
/// [`nonzero_masks`]: at least a quarter zero (the training loop's rule for reordering the
/// features, and the prediction's for masking a chunk).
pub fn mostly_zero(zeros: usize, len: usize) -> bool {
    zeros * 4 >= len
}

/// [`Mat::nonzero`] masks of the rows of row-major `x` (`d` values wide): `d.div_ceil(64)`
/// words per row, bit `k % 64` of word `k / 64` set when `x[row][k] != 0` (`-0.0` counts as
/// zero).
pub fn nonzero_masks<T: Real>(x: &[T], d: usize) -> Vec<u64> {
    let words = d.div_ceil(64);
    fill_masks(
        x,
        d,
        vec![0_u64; x.len().checked_div(d).unwrap_or(0) * words],
    )
}

/// [`nonzero_masks`], or [`crate::CoreError::OutOfMemory`] when the masks cannot be
/// allocated (they are as many as the rows of a whole training set).
pub fn try_nonzero_masks<T: Real>(x: &[T], d: usize) -> crate::Result<Vec<u64>> {
    const WHAT: &str = "the MLP's input zero masks";
    let n = crate::checked_len(x.len().checked_div(d).unwrap_or(0), d.div_ceil(64), WHAT)?;
    Ok(fill_masks(x, d, crate::try_filled(n, 0, WHAT)?))
}

fn fill_masks<T: Real>(x: &[T], d: usize, mut masks: Vec<u64>) -> Vec<u64> {
    let words = d.div_ceil(64);
    if d == 0 {
        return masks;
    }
    for (row, m) in x.chunks_exact(d).zip(masks.chunks_exact_mut(words)) {
        for (k, &v) in row.iter().enumerate() {
            m[k / 64] |= u64::from(v != T::zero()) << (k % 64);
        }
    }
    masks
}

/// The `len` (at most 64) bits of `masks` from bit `from`, as the low bits of a word.
#[inline(always)]
fn mask_bits(masks: &[u64], from: usize, len: usize) -> u64 {
    let (w, b) = (from / 64, from % 64);
    let mut bits = masks[w] >> b;
    if b + len > 64 {
        bits |= masks[w + 1] << (64 - b);
    }
    if len < 64 {
        bits & ((1_u64 << len) - 1)
    } else {
        bits
    }
}

/// The runs of set bits of `bits` (bit `k % 64` of word `k / 64`, none at `k >= kk`) as
/// `[start, end)` pairs in ascending order, found from the words' edges (where a bit differs
/// from the one below it) rather than bit by bit.
fn push_runs(bits: &[u64], kk: usize, runs: &mut Vec<[u32; 2]>) {
    let mut below = 0_u64; // the bit below the word's first: the last bit of the word before
    let mut open = None;
    for (w, &x) in bits.iter().enumerate().take(kk.div_ceil(64)) {
        let mut edges = x ^ ((x << 1) | below);
        below = x >> 63;
        while edges != 0 {
            let k = (w * 64 + edges.trailing_zeros() as usize) as u32;
            edges &= edges - 1;
            match open.take() {
                None => open = Some(k),
                Some(start) => runs.push([start, k]),
            }
        }
    }
    if let Some(start) = open {
        runs.push([start, kk as u32]);
    }
}

/// For a left operand with [`Mat::nonzero`] masks: the runs of `k` at which some `a(i, k)`
/// of each row block of [`product_body`] (`MR` rows, then 4, 2 and 1, as it cuts them) is
/// not zero, the blocks' runs one after the other, with the offsets of each block's
/// (`offsets[b]..offsets[b + 1]`). `None` without masks, or when they cannot serve.
fn block_runs<T, const MR: usize>(
    a: &LeftOperand<'_, T>,
    m: usize,
    kk: usize,
) -> Option<(Vec<[u32; 2]>, Vec<usize>)> {
    let (mat, by_rows) = match a {
        LeftOperand::Rows(x) => (x, true),
        LeftOperand::Cols(x) => (x, false),
    };
    let masks = mat.nonzero?;
    let words = mat.ld.div_ceil(64);
    if u32::try_from(kk).is_err() || (by_rows && kk > mat.ld) {
        return None;
    }
    let mut runs = Vec::new();
    let mut offsets = vec![0];
    // Bit k: whether the block has a nonzero term at k.
    let mut live = vec![0_u64; kk.div_ceil(64)];
    let mut i0 = 0;
    for rows in [MR, 4, 2, 1] {
        while m - i0 >= rows {
            live.fill(0);
            if by_rows {
                // a(i, k) is element k of row i: the union of the block's rows' masks.
                for r in 0..rows {
                    let at = mat.row(i0 + r) * words;
                    for (u, &w) in live.iter_mut().zip(&masks[at..at + words]) {
                        *u |= w;
                    }
                }
                if !kk.is_multiple_of(64) {
                    live[kk / 64] &= (1_u64 << (kk % 64)) - 1;
                }
            } else {
                // a(i, k) is element i of row k: elements i0..i0 + rows of row k.
                for k in 0..kk {
                    let at = mat.row(k) * words;
                    let any = mask_bits(&masks[at..at + words], i0, rows) != 0;
                    live[k / 64] |= u64::from(any) << (k % 64);
                }
            }
            push_runs(&live, kk, &mut runs);
            offsets.push(runs.len());
            i0 += rows;
        }
    }
    Some((runs, offsets))
}

/// How the left operand `a` (`m x kk` in the product) is read.
#[derive(Debug, Clone, Copy)]
pub enum LeftOperand<'a, T> {
    /// `a(i, k)` is element `k` of row `i` of the matrix.
    Rows(Mat<'a, T>),
    /// `a(i, k)` is element `i` of row `k` (the product of a transpose, as in the weight
    /// gradients `activations.T @ deltas`).
    Cols(Mat<'a, T>),
}

/// How the right operand `b` (`kk x n`) is read.
#[derive(Debug, Clone, Copy)]
pub enum RightOperand<'a, T> {
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

/// One register tile: `acc[r][j] = sum_k a(i0 + r, k) b(k, j)` for `R` rows, `W`
/// columns and `k < kk`, with row `k` of the right operand at `b[k * ldb..k * ldb + W]`.
/// `cols_rows`: the rows a [`LeftOperand::Cols`] operand was checked for (see [`product_body`]).
#[inline(always)]
fn tile<T: Real, const R: usize, const W: usize>(
    a: &LeftOperand<'_, T>,
    i0: usize,
    kk: usize,
    b: &[T],
    ldb: usize,
    cols_rows: usize,
    acc: &mut [[T; W]; R],
) {
    if kk == 0 {
        *acc = [[T::zero(); W]; R];
        return;
    }
    assert!(b.len() >= (kk - 1) * ldb + W, "right operand too short");
    // A local tile (in registers), copied out once.
    let mut sums = [[T::zero(); W]; R];
    match a {
        LeftOperand::Rows(m) => {
            let rows: [&[T]; R] = std::array::from_fn(|r| m.seg(i0 + r, 0, kk));
            for k in 0..kk {
                let s = k * ldb;
                let brow: &[T; W] = b[s..s + W].try_into().expect("W values");
                for (acc_r, row) in sums.iter_mut().zip(&rows) {
                    let av = row[k];
                    for (c, &bj) in acc_r.iter_mut().zip(brow) {
                        *c = av.mul_add(bj, *c);
                    }
                }
            }
        }
        LeftOperand::Cols(m) => {
            assert!(i0 + R <= cols_rows, "tile beyond the checked rows");
            for k in 0..kk {
                let s = k * ldb;
                let brow: &[T; W] = b[s..s + W].try_into().expect("W values");
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

/// One row block of a product through the AVX-512 kernels of [`wide`] (only the AVX-512
/// build, [`product_avx512`], calls it): the tile of rows `i0..i0 + R`, columns `j0..j0 + nt`,
/// through the epilogue. A store, a bias and a bias + ReLU are applied in registers and
/// stored straight into `c`; the other epilogues go through `acc` and [`epilogue`]. Types
/// and widths the kernels lack take the portable [`tile`].
#[inline(always)]
fn block_wide<T: Real, const R: usize, const W: usize>(
    a: &LeftOperand<'_, T>,
    i0: usize,
    kk: usize,
    b: &[T],
    ldb: usize,
    cols_rows: usize,
    epi: &mut Epilogue<'_, T>,
    acc: &mut [[T; W]; R],
    c: &mut [T],
    ldc: usize,
    j0: usize,
    nt: usize,
    runs: Option<&[[u32; 2]]>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::any::TypeId;
        let is_f64 = TypeId::of::<T>() == TypeId::of::<f64>();
        let vectors = W / if is_f64 { 8 } else { 16 };
        if kk > 0 && has_wide_kernel::<T, W>() {
            assert!(b.len() >= (kk - 1) * ldb + W, "right operand too short");
            let addrs = match a {
                // `seg` checks that each row holds `kk` values.
                LeftOperand::Rows(m) => {
                    wide::LeftAddrs::Rows(std::array::from_fn(|r| m.seg(i0 + r, 0, kk).as_ptr()))
                }
                LeftOperand::Cols(m) => {
                    assert!(i0 + R <= cols_rows, "tile beyond the checked rows");
                    wide::LeftAddrs::Cols {
                        data: m.data.as_ptr(),
                        ld: m.ld,
                        idx: m.idx.map(<[usize]>::as_ptr),
                        i0,
                    }
                }
            };
            // Every `k`, or the tile's runs of `k` (see [`Mat::nonzero`]).
            let all = [[0, kk as u32]];
            let runs = runs.unwrap_or(&all);
            assert!(
                runs.iter().all(|&[k0, k1]| k0 <= k1 && k1 as usize <= kk),
                "runs beyond the inner dimension"
            );
            let fin = match epi {
                Epilogue::Deriv {
                    f: Activation::Relu,
                    act,
                    colsum,
                } => {
                    assert!(
                        act.len() >= (i0 + R - 1) * ldc + j0 + nt && colsum.len() >= j0 + nt,
                        "activations or column sums too short"
                    );
                    Some(wide::RegisterEpilogue::ReluDeriv(
                        act[(i0 * ldc + j0)..].as_ptr(),
                        ldc,
                        colsum[j0..].as_mut_ptr(),
                    ))
                }
                Epilogue::Store | Epilogue::Deriv { .. } => Some(wide::RegisterEpilogue::Store),
                Epilogue::Bias(bias) | Epilogue::BiasAct(bias, Activation::Identity) => {
                    Some(wide::RegisterEpilogue::Bias(bias[j0..j0 + nt].as_ptr()))
                }
                Epilogue::BiasAct(bias, Activation::Relu) => {
                    Some(wide::RegisterEpilogue::BiasRelu(bias[j0..j0 + nt].as_ptr()))
                }
                Epilogue::BiasAct(..) => None,
            };
            let fused = fin.is_some();
            let (out, ldo, cols, fin) = match fin {
                Some(fin) => {
                    assert!(
                        nt <= W && c.len() >= (i0 + R - 1) * ldc + j0 + nt,
                        "output too short"
                    );
                    (c[(i0 * ldc + j0)..].as_mut_ptr(), ldc, nt, fin)
                }
                None => (
                    acc.as_mut_ptr().cast::<T>(),
                    W,
                    W,
                    wide::RegisterEpilogue::Store,
                ),
            };
            debug_assert_eq!(SimdLevel::detected(), SimdLevel::Avx512);
            // SAFETY: only the AVX-512 build calls this function (`product_avx512`, run by
            // `product` on a CPU where the features were detected), and `T` is the kernel's
            // type. Every row `k < kk` of `b` holds `W` values from `k * ldb` (asserted
            // above); a `Rows` row holds `kk` values (`seg`); `product_body` checked
            // `start(k) + cols_rows <= data.len()` for a `Cols` operand, and
            // `i0 + R <= cols_rows`; `out` holds `cols` values at each of `R` rows `ldo`
            // apart (asserted above, or `acc`), and a bias `cols` values; for ReLU's
            // derivative the activations are laid out as `out` and the column sums hold
            // `cols` values (asserted above).
            unsafe {
                macro_rules! run {
                    ($kernel:ident, $t:ty, $v:literal) => {
                        wide::$kernel::<R, $v>(
                            addrs.cast::<$t>(),
                            runs,
                            b.as_ptr().cast::<$t>(),
                            ldb,
                            out.cast::<$t>(),
                            ldo,
                            cols,
                            fin.cast::<$t>(),
                        )
                    };
                }
                match (is_f64, vectors) {
                    (true, 1) => run!(tile_f64, f64, 1),
                    (true, 2) => run!(tile_f64, f64, 2),
                    (true, _) => run!(tile_f64, f64, 4),
                    (false, 1) => run!(tile_f32, f32, 1),
                    (false, 2) => run!(tile_f32, f32, 2),
                    (false, _) => run!(tile_f32, f32, 4),
                }
            }
            if !fused {
                epilogue::<T, R, W>(epi, acc, c, ldc, i0, j0, nt);
            }
            return;
        }
    }
    tile::<T, R, W>(a, i0, kk, b, ldb, cols_rows, acc);
    epilogue::<T, R, W>(epi, acc, c, ldc, i0, j0, nt);
}

/// Whether [`block_wide`] runs `T` tiles `W` wide through the [`wide`] kernels (for a
/// non-empty inner dimension): `f32` or `f64`, one, two or four vectors.
#[inline(always)]
fn has_wide_kernel<T: 'static, const W: usize>() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::any::TypeId;
        let is_f64 = TypeId::of::<T>() == TypeId::of::<f64>();
        let known = TypeId::of::<T>() == TypeId::of::<f32>() || is_f64;
        let lanes = if is_f64 { 8 } else { 16 };
        known && W.is_multiple_of(lanes) && matches!(W / lanes, 1 | 2 | 4)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX-512 register tiles: `R` rows by `V` vectors (8 `f64` or 16 `f32` columns each), up
/// to 24 accumulators in registers, with the store, bias or bias + ReLU applied before the
/// (masked) store.
///
/// Why hand-written: written as portable loops, a tile this size is spilled to the stack by
/// the compiler, and the 4 x 16 tile it keeps in registers runs at half the FMA throughput
/// for `f32` (one accumulator per row). The arithmetic is [`tile`]'s and [`epilogue`]'s:
/// one fused multiply-add per `k`, ascending from zero, then `s + bias` and ReLU's
/// `if x < 0 { 0 } else { x }`, so the bits are those of every other level.
#[cfg(target_arch = "x86_64")]
mod wide {
    use std::arch::x86_64::{
        __m512, __m512d, _CMP_EQ_OQ, _CMP_LT_OQ, _mm512_add_pd, _mm512_add_ps, _mm512_cmp_pd_mask,
        _mm512_cmp_ps_mask, _mm512_fmadd_pd, _mm512_fmadd_ps, _mm512_loadu_pd, _mm512_loadu_ps,
        _mm512_mask_mov_pd, _mm512_mask_mov_ps, _mm512_mask_storeu_pd, _mm512_mask_storeu_ps,
        _mm512_maskz_loadu_pd, _mm512_maskz_loadu_ps, _mm512_set1_pd, _mm512_set1_ps,
        _mm512_setzero_pd, _mm512_setzero_ps,
    };

    /// Where `a(i0 + r, k)` lives.
    #[derive(Clone, Copy)]
    pub enum LeftAddrs<T, const R: usize> {
        /// At `rows[r] + k`.
        Rows([*const T; R]),
        /// At `data + row(k) * ld + i0 + r`, with `row(k) = idx[k]` or `k`.
        Cols {
            data: *const T,
            ld: usize,
            idx: Option<*const usize>,
            i0: usize,
        },
    }

    impl<T, const R: usize> LeftAddrs<T, R> {
        /// The same addresses, as `U` (the caller checked that `T` is `U`).
        pub fn cast<U>(self) -> LeftAddrs<U, R> {
            match self {
                Self::Rows(rows) => LeftAddrs::Rows(rows.map(<*const T>::cast)),
                Self::Cols { data, ld, idx, i0 } => LeftAddrs::Cols {
                    data: data.cast(),
                    ld,
                    idx,
                    i0,
                },
            }
        }
    }

    /// What the kernel does to the sums before storing them.
    #[derive(Clone, Copy)]
    pub enum RegisterEpilogue<T> {
        /// Stores them.
        Store,
        /// Adds `bias[j]` (the pointer is at the tile's first column).
        Bias(*const T),
        /// Adds `bias[j]`, then ReLU.
        BiasRelu(*const T),
        /// ReLU's derivative: zero where the activation `act[r * lda + j]` is zero (the
        /// pointer is at the tile's first row and column); then adds each stored row, in
        /// row order, to the column sums `colsum[j]`.
        ReluDeriv(*const T, usize, *mut T),
    }

    impl<T> RegisterEpilogue<T> {
        /// The same, as `U` (the caller checked that `T` is `U`).
        pub fn cast<U>(self) -> RegisterEpilogue<U> {
            match self {
                Self::Store => RegisterEpilogue::Store,
                Self::Bias(p) => RegisterEpilogue::Bias(p.cast()),
                Self::BiasRelu(p) => RegisterEpilogue::BiasRelu(p.cast()),
                Self::ReluDeriv(a, lda, cs) => {
                    RegisterEpilogue::ReluDeriv(a.cast(), lda, cs.cast())
                }
            }
        }
    }

    /// `body` for every `k` of the `runs` (`[k0, k1)` pairs), in order: each run a plain
    /// counted loop. (A single loop over a `k` read from a list or found in a bit mask kept
    /// all of a tile's broadcasts live at once, and spilled accumulators to the stack.)
    macro_rules! each_k {
        ($runs:expr, |$k:ident| $body:block) => {
            for &[k0, k1] in $runs {
                for $k in k0 as usize..k1 as usize $body
            }
        };
    }

    macro_rules! wide_tile {
        ($name:ident, $t:ty, $v:ty, $lanes:expr, $mask:ty, $zero:ident, $load:ident,
         $maskz_load:ident, $set1:ident, $fma:ident, $add:ident, $cmp:ident, $mask_mov:ident,
         $mask_store:ident) => {
            /// `out[r * ldo + j] = fin(sum_k a(r, k) b[k * ldb + j])` for `r < R`,
            /// `j < cols` (at most `V * L` for `L` lanes), and `k` in the `runs`
            /// (`k0 <= k < k1` for each `[k0, k1]`, in their order: ascending, and the
            /// sum's other terms are zero), all below the inner dimension `kk`.
            ///
            /// # Safety
            /// The CPU has AVX-512F; `b + k * ldb` holds `V * L` values for every `k < kk`;
            /// `a`'s addresses hold `a(r, k)` for every `r < R`, `k < kk` (and `idx` `kk`
            /// values); `out + r * ldo` holds `cols` values for every `r < R`, and a bias
            /// `cols` values; for [`RegisterEpilogue::ReluDeriv`]`(act, lda, colsum)`,
            /// `act + r * lda` holds `cols` values for every `r < R` and `colsum` holds
            /// `cols` values. (The masked loads and stores touch no value past `cols`; their
            /// addresses are formed with `wrapping_add`, as a vector wholly past `cols` may
            /// point past the allocation.)
            #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
            pub unsafe fn $name<const R: usize, const V: usize>(
                a: LeftAddrs<$t, R>,
                runs: &[[u32; 2]],
                b: *const $t,
                ldb: usize,
                out: *mut $t,
                ldo: usize,
                cols: usize,
                fin: RegisterEpilogue<$t>,
            ) {
                let mut s: [[$v; V]; R] = [[$zero(); V]; R];
                let mut bv: [$v; V] = [$zero(); V];
                match a {
                    LeftAddrs::Rows(rows) => each_k!(runs, |k| {
                        // SAFETY: `k` is below `kk` (every run ends at or below it), and the
                        // caller vouches that `b + k * ldb` holds `V * L` values.
                        let bp = unsafe { b.add(k * ldb) };
                        for (v, x) in bv.iter_mut().enumerate() {
                            // SAFETY: `v < V`: the `L` values from `bp + v * L` are among the
                            // `V * L` of row `k` (an unaligned load; AVX-512F is enabled here).
                            *x = unsafe { $load(bp.add(v * $lanes)) };
                        }
                        for (sr, row) in s.iter_mut().zip(&rows) {
                            // SAFETY: `row` is row `r`'s address, which the caller vouches
                            // holds `a(r, k)` for every `k < kk`, and `k < kk`.
                            let av = $set1(unsafe { *row.add(k) });
                            for (acc, &bj) in sr.iter_mut().zip(&bv) {
                                *acc = $fma(av, bj, *acc);
                            }
                        }
                    }),
                    LeftAddrs::Cols { data, ld, idx, i0 } => each_k!(runs, |k| {
                        // SAFETY: `k` is below `kk` (every run ends at or below it), and the
                        // caller vouches that `b + k * ldb` holds `V * L` values.
                        let bp = unsafe { b.add(k * ldb) };
                        for (v, x) in bv.iter_mut().enumerate() {
                            // SAFETY: `v < V`: the `L` values from `bp + v * L` are among the
                            // `V * L` of row `k` (an unaligned load; AVX-512F is enabled here).
                            *x = unsafe { $load(bp.add(v * $lanes)) };
                        }
                        let row = match idx {
                            // SAFETY: the caller vouches that `idx` holds `kk` values, and
                            // `k < kk`.
                            Some(ix) => unsafe { *ix.add(k) },
                            None => k,
                        };
                        // SAFETY: `a(0, k)` lives at `data + row(k) * ld + i0`, inside the
                        // operand the caller vouches for (`k < kk`).
                        let ap = unsafe { data.add(row * ld + i0) };
                        for (r, sr) in s.iter_mut().enumerate() {
                            // SAFETY: `a(r, k)` lives at `ap + r`, and the caller vouches for it
                            // for every `r < R`.
                            let av = $set1(unsafe { *ap.add(r) });
                            for (acc, &bj) in sr.iter_mut().zip(&bv) {
                                *acc = $fma(av, bj, *acc);
                            }
                        }
                    }),
                }
                let masks: [$mask; V] = std::array::from_fn(|v| {
                    let valid = cols.saturating_sub(v * $lanes).min($lanes);
                    ((1_u32 << valid) - 1) as $mask
                });
                let (bias, relu) = match fin {
                    RegisterEpilogue::Store | RegisterEpilogue::ReluDeriv(..) => (None, false),
                    RegisterEpilogue::Bias(p) => (Some(p), false),
                    RegisterEpilogue::BiasRelu(p) => (Some(p), true),
                };
                if let RegisterEpilogue::ReluDeriv(act, lda, colsum) = fin {
                    // delta[Z == 0] = 0, then the column sums row after row (rows of
                    // earlier tiles were added before): the separate pass's operations.
                    for v in 0..V {
                        // A vector wholly past `cols` has an empty mask and an address that
                        // may lie past the column sums: `wrapping_add`, since `add` must stay
                        // inside the allocation even when nothing is read.
                        let at = colsum.wrapping_add(v * $lanes);
                        // SAFETY: the masked load reads only the lanes of `masks[v]`,
                        // columns `v * L + lane < cols` of the column sums, which the caller
                        // vouches hold `cols` values.
                        let mut cs = unsafe { $maskz_load(masks[v], at) };
                        for (r, sr) in s.iter_mut().enumerate() {
                            // SAFETY: reads only the lanes of `masks[v]`, columns below `cols`
                            // of activation row `r < R`, which the caller vouches for.
                            let z = unsafe {
                                $maskz_load(masks[v], act.add(r * lda).wrapping_add(v * $lanes))
                            };
                            let dead = $cmp::<_CMP_EQ_OQ>(z, $zero());
                            sr[v] = $mask_mov(sr[v], dead, $zero());
                            cs = $add(cs, sr[v]);
                        }
                        // SAFETY: writes only the lanes of `masks[v]`, the column sums
                        // below `cols` that the load above read.
                        unsafe { $mask_store(at, masks[v], cs) };
                    }
                }
                if let Some(p) = bias {
                    // SAFETY: reads only the lanes of `masks[v]`, bias values below `cols`,
                    // which the caller vouches for.
                    let bias: [$v; V] = std::array::from_fn(|v| unsafe {
                        $maskz_load(masks[v], p.wrapping_add(v * $lanes))
                    });
                    for sr in &mut s {
                        for (x, &bj) in sr.iter_mut().zip(&bias) {
                            *x = $add(*x, bj);
                            if relu {
                                let neg = $cmp::<_CMP_LT_OQ>(*x, $zero());
                                *x = $mask_mov(*x, neg, $zero());
                            }
                        }
                    }
                }
                for (r, sr) in s.iter().enumerate() {
                    for (v, &x) in sr.iter().enumerate() {
                        // SAFETY: writes only the lanes of `masks[v]`, columns below `cols` of
                        // output row `r < R`, which the caller vouches holds `cols` values.
                        unsafe {
                            $mask_store(out.add(r * ldo).wrapping_add(v * $lanes), masks[v], x);
                        };
                    }
                }
            }
        };
    }

    wide_tile!(
        tile_f64,
        f64,
        __m512d,
        8,
        u8,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_maskz_loadu_pd,
        _mm512_set1_pd,
        _mm512_fmadd_pd,
        _mm512_add_pd,
        _mm512_cmp_pd_mask,
        _mm512_mask_mov_pd,
        _mm512_mask_storeu_pd
    );
    wide_tile!(
        tile_f32,
        f32,
        __m512,
        16,
        u16,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_maskz_loadu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_add_ps,
        _mm512_cmp_ps_mask,
        _mm512_mask_mov_ps,
        _mm512_mask_storeu_ps
    );
}

/// Copies columns `j0 .. j0 + nt` of `b` (`kk` rows) into `panel`, a `kk x W` row-major
/// block, and zeros the block's columns beyond `nt`.
#[inline(always)]
fn pack<T: Real, const W: usize>(
    b: &RightOperand<'_, T>,
    kk: usize,
    j0: usize,
    nt: usize,
    panel: &mut [T],
) {
    match b {
        RightOperand::Rows(m) => {
            for (k, dst) in panel.chunks_exact_mut(W).enumerate().take(kk) {
                dst[..nt].copy_from_slice(m.seg(k, j0, nt));
            }
        }
        RightOperand::Cols(m) => {
            for j in 0..nt {
                let col = m.seg(j0 + j, 0, kk);
                for (dst, &v) in panel.chunks_exact_mut(W).zip(col) {
                    dst[j] = v;
                }
            }
        }
    }
    // The columns past the matrix's last are zero (the panel buffer is reused unzeroed).
    if nt < W {
        for dst in panel.chunks_exact_mut(W).take(kk) {
            dst[nt..].fill(T::zero());
        }
    }
}

/// The epilogue of the tile at rows `i0..i0 + R`, columns `j0..j0 + nt`, one loop per case
/// so that each vectorises.
#[inline(always)]
fn epilogue<T: Real, const R: usize, const W: usize>(
    epi: &mut Epilogue<'_, T>,
    acc: &[[T; W]; R],
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
/// `W`-wide loops when the tile is full.
#[inline(always)]
fn rows_map<T: Real, const R: usize, const W: usize>(
    acc: &[[T; W]; R],
    c: &mut [T],
    ldc: usize,
    i0: usize,
    j0: usize,
    nt: usize,
    f: impl Fn(T, T) -> T,
    bias: &[T],
) {
    let mut b = [T::zero(); W];
    b[..bias.len()].copy_from_slice(bias);
    for (r, s) in acc.iter().enumerate() {
        let at = (i0 + r) * ldc + j0;
        if nt == W {
            let out: &mut [T; W] = (&mut c[at..at + W]).try_into().expect("W values");
            for j in 0..W {
                out[j] = f(s[j], b[j]);
            }
        } else {
            for ((o, &v), &bj) in c[at..at + nt].iter_mut().zip(s).zip(&b) {
                *o = f(v, bj);
            }
        }
    }
}

/// The whole product with `MR`-row, `W`-column register tiles (the tile shape changes which
/// sums share registers, never an operation), through [`block_wide`] when `WIDE`. Column
/// tiles are the outer loop, so one tile's `kk x W` block of `b` stays in L1 while every
/// row block reads it.
#[inline(always)]
fn product_body<T: Real, const MR: usize, const W: usize, const WIDE: bool>(
    m: usize,
    n: usize,
    kk: usize,
    a: LeftOperand<'_, T>,
    b: RightOperand<'_, T>,
    c: &mut [T],
    ldc: usize,
    mut epi: Epilogue<'_, T>,
    panel: &mut Buf<T>,
) {
    if let Epilogue::Deriv { colsum, .. } = &mut epi {
        assert_eq!(ldc, n, "a derivative epilogue writes a contiguous block");
        colsum[..n].fill(T::zero());
    }
    if m == 0 || n == 0 {
        return;
    }
    if let LeftOperand::Cols(am) = &a {
        // Once per product: every left row segment the tiles read is in bounds.
        let ok = (0..kk).all(|k| am.start(k) + m <= am.data.len());
        assert!(ok, "left operand too short");
    }
    // Full column tiles of a plain row-major `b` are read in place; the others are packed
    // once for every row block.
    let tiles = n.div_ceil(W);
    let packed_from = match b {
        RightOperand::Rows(mb) if mb.idx.is_none() => n / W,
        _ => 0,
    };
    // Every value of the panels is written by `pack` (no zero-fill pass first).
    let mut panels = std::mem::take(panel);
    panels.resize((tiles - packed_from) * kk * W, T::zero());
    // (With `kk == 0` there is nothing to pack: every sum is empty.)
    for (p, dst) in panels.chunks_exact_mut((kk * W).max(1)).enumerate() {
        let j0 = (packed_from + p) * W;
        pack::<T, W>(&b, kk, j0, W.min(n - j0), dst);
    }
    // The `k` each row block skips, found once for every column tile (see `skips_zeros`).
    let skips = if WIDE && tiles >= 2 {
        block_runs::<T, MR>(&a, m, kk)
    } else {
        None
    };
    for t in 0..tiles {
        let j0 = t * W;
        let nt = W.min(n - j0);
        let (bt, ldb): (&[T], usize) = match b {
            RightOperand::Rows(mb) if t < packed_from => (&mb.data[j0..], mb.ld),
            _ => {
                let p = (t - packed_from) * kk * W;
                (&panels[p..p + kk * W], W)
            }
        };
        // Row blocks of `MR`, then of 4, 2 and 1, each with its own accumulator tile.
        let mut i0 = 0;
        let mut block = 0;
        macro_rules! row_blocks {
            ($rows:expr) => {
                let mut acc = [[T::zero(); W]; $rows];
                while m - i0 >= $rows {
                    if WIDE {
                        let runs = skips.as_ref().map(|(r, o)| &r[o[block]..o[block + 1]]);
                        block_wide::<T, { $rows }, W>(
                            &a, i0, kk, bt, ldb, m, &mut epi, &mut acc, c, ldc, j0, nt, runs,
                        );
                    } else {
                        tile::<T, { $rows }, W>(&a, i0, kk, bt, ldb, m, &mut acc);
                        epilogue::<T, { $rows }, W>(&mut epi, &acc, c, ldc, i0, j0, nt);
                    }
                    i0 += $rows;
                    block += 1;
                }
            };
        }
        row_blocks!(MR);
        row_blocks!(4);
        row_blocks!(2);
        row_blocks!(1);
    }
    *panel = panels;
    if let Epilogue::Deriv { f, act, colsum } = epi {
        // The wide kernels apply ReLU's derivative and add the column sums in the tile, as
        // each row block is stored (a separate pass over a 100 x 256 block took longer than
        // its product); otherwise the activation's derivative and the column sums, row after
        // row: the vectorised pass of the gemm path (`Activation::backprop_rows`).
        let fused = WIDE && kk > 0 && f == Activation::Relu && has_wide_kernel::<T, W>();
        if !fused {
            f.backprop_rows(&act[..m * n], &mut c[..m * n], &mut colsum[..n]);
        }
    }
}

/// [`product_body`] with 4-row, [`NC`]-column tiles: 8 AVX-512 registers of `f64` sums (the
/// portable loops keep no more in registers).
#[inline(always)]
fn product_mr4<T: Real>(
    m: usize,
    n: usize,
    kk: usize,
    a: LeftOperand<'_, T>,
    b: RightOperand<'_, T>,
    c: &mut [T],
    ldc: usize,
    epi: Epilogue<'_, T>,
    panel: &mut Buf<T>,
) {
    product_body::<T, 4, NC, false>(m, n, kk, a, b, c, ldc, epi, panel);
}

/// The AVX-512 build: register tiles of up to 24 vectors through [`block_wide`], four
/// vectors wide (32 `f64` or 64 `f32` columns) by 6 rows when the product is that wide,
/// narrower and taller otherwise (12 rows of 16 columns for the 10 classes of an output
/// layer). (Only the x86-64 AVX-512 copy of [`product_tiles`] runs it.)
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn product_avx512<T: Real>(
    m: usize,
    n: usize,
    kk: usize,
    a: LeftOperand<'_, T>,
    b: RightOperand<'_, T>,
    c: &mut [T],
    ldc: usize,
    epi: Epilogue<'_, T>,
    panel: &mut Buf<T>,
) {
    if size_of::<T>() == 8 {
        if n >= 32 {
            product_body::<T, 6, 32, true>(m, n, kk, a, b, c, ldc, epi, panel);
        } else {
            product_body::<T, 12, 16, true>(m, n, kk, a, b, c, ldc, epi, panel);
        }
    } else if n >= 64 {
        product_body::<T, 6, 64, true>(m, n, kk, a, b, c, ldc, epi, panel);
    } else if n > 16 {
        product_body::<T, 12, 32, true>(m, n, kk, a, b, c, ldc, epi, panel);
    } else {
        product_body::<T, 12, 16, true>(m, n, kk, a, b, c, ldc, epi, panel);
    }
}

/// Whether [`product`] skips the zeros of a left operand with [`Mat::nonzero`] masks in a
/// product `n` columns wide on this CPU: with the AVX-512 tiles, when the product has at
/// least two column tiles (see `product_avx512`), over which the skipped runs, found once,
/// are used again. (With a single column tile, finding them cost about what skipping them
/// saved in a `(16,)` digits fit.)
pub fn skips_zeros<T: Real>(n: usize) -> bool {
    let w = if size_of::<T>() == 8 {
        if n >= 32 { 32 } else { 16 }
    } else if n >= 64 {
        64
    } else if n > 16 {
        32
    } else {
        16
    };
    SimdLevel::detected() == SimdLevel::Avx512 && n.div_ceil(w) >= 2
}

/// Products at least this large in every dimension go to the `gemm` crate (see
/// [`product`]).
pub const GEMM_MIN: usize = 96;

/// `c(i, j) = epilogue(sum_k a(i, k) b(k, j))` for `i < m`, `j < n`, `k < kk`, with `c`
/// row-major (`ldc` apart) and `panel` scratch space for packed column tiles.
///
/// Products of at least [`GEMM_MIN`] in every dimension, on operands read in place (no
/// row index), go to the `gemm` crate with the epilogue as a pass of its own: its packed
/// micro-kernels ran the `100 x 128 x 128` products of a `(128, 128, 128)` net 10-20% faster
/// than these tiles, and a whole one-thread fit 3-8% faster (measured with the tiles for
/// every product against this split). The others run this module's register
/// tiles compiled for `level` (see the module docs for their arithmetic). The choice depends
/// on the shapes only, so every level gives the same bits.
pub fn product<T: Real>(
    level: SimdLevel,
    m: usize,
    n: usize,
    kk: usize,
    a: LeftOperand<'_, T>,
    b: RightOperand<'_, T>,
    c: &mut [T],
    ldc: usize,
    epi: Epilogue<'_, T>,
    panel: &mut Buf<T>,
) {
    let (am, bm) = match (&a, &b) {
        (
            LeftOperand::Rows(x) | LeftOperand::Cols(x),
            RightOperand::Rows(y) | RightOperand::Cols(y),
        ) => (x, y),
    };
    let large = m >= GEMM_MIN && n >= GEMM_MIN && kk >= GEMM_MIN;
    if !(large && ldc == n && am.idx.is_none() && bm.idx.is_none()) {
        product_tiles(level, m, n, kk, a, b, c, ldc, epi, panel);
        return;
    }
    let av = in_place(am.data, am.ld, m, kk, matches!(a, LeftOperand::Rows(_)));
    let bv = in_place(bm.data, bm.ld, kk, n, matches!(b, RightOperand::Rows(_)));
    let out = &mut c[..m * n];
    let cv = ArrayViewMut2::from_shape((m, n), &mut *out).expect("output holds m * n values");
    gemm(T::one(), av, bv, T::zero(), cv, Threads::Single);
    match epi {
        Epilogue::Store => {}
        Epilogue::Bias(bias) => hidden_bias_activate(level, Activation::Identity, out, &bias[..n]),
        Epilogue::BiasAct(bias, f) => hidden_bias_activate(level, f, out, &bias[..n]),
        Epilogue::Deriv { f, act, colsum } => {
            backprop_rows_at(level, f, &act[..m * n], out, &mut colsum[..n]);
        }
    }
}

/// `data` as a `rows x cols` matrix: row-major `ld` apart, or its transpose.
fn in_place<T>(
    data: &[T],
    ld: usize,
    rows: usize,
    cols: usize,
    by_rows: bool,
) -> ArrayView2<'_, T> {
    let strides = if by_rows { (ld, 1) } else { (1, ld) };
    ArrayView2::from_shape((rows, cols).strides(strides), data).expect("operand holds its rows")
}

multiversion! {
    /// [`product`]'s register tiles, compiled for `level`.
    fn product_tiles<T: Real>(
        m: usize,
        n: usize,
        kk: usize,
        a: LeftOperand<'_, T>,
        b: RightOperand<'_, T>,
        c: &mut [T],
        ldc: usize,
        epi: Epilogue<'_, T>,
        panel: &mut Buf<T>,
    ) => v4: product_avx512, v3: product_mr4, portable: product_mr4
}
