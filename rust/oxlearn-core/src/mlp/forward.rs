//! The forward pass (scikit-learn's `_forward_pass` / `_forward_pass_fast`): of one row chunk
//! (through the `gemm` crate or the register tiles of [`super::tiled`]), of a batch on a
//! [`Workspace`] (the training loop's validation scores), and [`forward_predict`].

use std::borrow::Cow;

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use super::activation::hidden_bias_activate;
use super::buf::Buf;
use super::partition::{chunk_len, for_each_chunk, max_chunk_rows};
use super::tiled::{self, Epilogue, LeftOperand, Mat, RightOperand};
use super::workspace::{Chunk, Workspace};
use super::{Activation, NetSpec, OutActivation, check_params, units_of};
use crate::error::{CoreError, Result, checked_len, try_filled};
use crate::exec::{Exec, Threads};
use crate::linalg::gemm;
use crate::platform::SimdLevel;
use crate::real::Real;

/// What [`forward_predict`] allocates, for its out-of-memory errors.
const WHAT: &str = "the MLP's predictions and activations";

/// A contiguous copy-free slice of an intercept vector (copies only a strided view).
pub(crate) fn bias_slice<'a, T: Real>(b: &'a ArrayView1<'_, T>) -> Cow<'a, [T]> {
    match b.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(b.to_vec()),
    }
}

/// Products with fewer output columns than this (and more rows) go through a column-major
/// buffer.
const NARROW: usize = 16;

/// `out = a @ b` with `out` row-major `(a.nrows(), b.ncols())`; `reorient: false` keeps
/// the plain call (L-BFGS's full-batch products keep their original bits).
///
/// The `gemm` crate computes a row-major product as its transpose, which makes a narrow
/// output (the 10 classes of the last layer, and that layer's weight gradient) the
/// vector-lane dimension: 10 of 16 `f32` lanes, one register row per micro-kernel, three times
/// slower per flop than the rest of a training step. So a narrow product is written
/// column-major (its rows become the lanes) and transposed into `out`.
pub(crate) fn product_rows<T: Real>(
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    out: &mut [T],
    threads: Threads,
    reorient: bool,
) {
    let (m, n) = (a.nrows(), b.ncols());
    let out = &mut out[..m * n];
    if reorient && n < NARROW && m > n {
        let mut cm = vec![T::zero(); m * n];
        let view = ArrayViewMut2::from_shape((n, m), &mut cm[..])
            .expect("buffer holds rows * columns values")
            .reversed_axes();
        gemm(T::one(), a, b, T::zero(), view, threads);
        for (i, row) in out.chunks_exact_mut(n).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = cm[j * m + i];
            }
        }
    } else {
        let view =
            ArrayViewMut2::from_shape((m, n), out).expect("buffer holds rows * columns values");
        gemm(T::one(), a, b, T::zero(), view, threads);
    }
}

/// One layer: `out = f(input @ coef + bias)`; `out` is a row-major
/// `(rows, coef.ncols())` buffer (or longer: the leading rows are used).
pub(crate) fn layer_forward<T: Real>(
    input: ArrayView2<'_, T>,
    coef: ArrayView2<'_, T>,
    bias: &[T],
    out: &mut [T],
    last: bool,
    activation: Activation,
    out_act: OutActivation,
    level: SimdLevel,
    gemm_threads: Threads,
    reorient: bool,
) {
    let rows = input.nrows();
    let w = coef.ncols();
    let z = &mut out[..rows * w];
    product_rows(input, coef, z, gemm_threads, reorient);
    if last {
        out_act.bias_activate(z, bias);
    } else {
        hidden_bias_activate(level, activation, z, bias);
    }
}

/// The most values the tiled kernels' packed panels hold for the products of a chunk of
/// `len` rows of a network with widths `units`: at most `(n + W - 1) * kk` for a product
/// with `n` output columns and inner dimension `kk` (W <= 64 columns per tile), over the
/// forward and delta products of every layer and its weight gradient (kk = rows).
pub(crate) fn panel_room(units: &[usize], len: usize) -> usize {
    let mut room = 0_usize;
    for w in units.windows(2) {
        let (a, b) = (w[0], w[1]);
        for (n, kk) in [(b, a), (a, b), (b, len), (a, len)] {
            room = room.max(n.saturating_add(63).saturating_mul(kk));
        }
    }
    room
}

/// The forward pass of one row chunk into `acts` (`acts[l]` receives layer `l + 1`), with
/// GEMMs on `gemm_threads` (`Threads::Single` inside a parallel chunk loop). With
/// `skip_zeros` (the caller checked that the first layer's weights are finite) and a chunk
/// at least a quarter zero, the first layer's product skips the zeros (see
/// [`tiled::skips_zeros`]; the same bits). `panel` is the tiled kernels' scratch (see
/// [`panel_room`]).
pub(crate) fn forward_chunk<T: Real>(
    x: ArrayView2<'_, T>,
    coefs: &[ArrayView2<'_, T>],
    intercepts: &[&[T]],
    units: &[usize],
    activation: Activation,
    out_activation: OutActivation,
    acts: &mut [Buf<T>],
    panel: &mut Buf<T>,
    level: SimdLevel,
    gemm_threads: Threads,
    reorient: bool,
    skip_zeros: bool,
) {
    let rows = x.nrows();
    let layers = coefs.len();
    if reorient && tiled::applies(units) {
        let coef_slices: Option<Vec<&[T]>> = coefs.iter().map(ArrayView2::to_slice).collect();
        if let (Some(xs), Some(cs)) = (x.to_slice(), coef_slices) {
            let masks = (skip_zeros && tiled::skips_zeros::<T>(units[1]))
                .then(|| tiled::nonzero_masks(xs, units[0]))
                .filter(|m| {
                    let nonzero: usize = m.iter().map(|w| w.count_ones() as usize).sum();
                    tiled::mostly_zero(xs.len() - nonzero, xs.len())
                });
            let xm = Mat::rows(xs, units[0]);
            forward_tiled(
                match &masks {
                    Some(m) => xm.with_nonzero(m),
                    None => xm,
                },
                rows,
                &cs,
                intercepts,
                units,
                activation,
                out_activation,
                acts,
                level,
                panel,
            );
            return;
        }
    }
    for i in 0..layers {
        let (done, rest) = acts.split_at_mut(i);
        let input = if i == 0 {
            x.view()
        } else {
            ArrayView2::from_shape((rows, units[i]), &done[i - 1][..rows * units[i]])
                .expect("activation buffer holds rows * width values")
        };
        layer_forward(
            input,
            coefs[i].view(),
            intercepts[i],
            &mut rest[0],
            i + 1 == layers,
            activation,
            out_activation,
            level,
            gemm_threads,
            reorient,
        );
    }
}

/// [`forward_chunk`] of a narrow network (see [`tiled::applies`]) through the fused tiled
/// kernels: `x` is the chunk's `rows` input rows (possibly picked through an index), `coefs`
/// the row-major weight matrices, `panel` scratch space.
pub(crate) fn forward_tiled<T: Real>(
    x: Mat<'_, T>,
    rows: usize,
    coefs: &[&[T]],
    intercepts: &[&[T]],
    units: &[usize],
    activation: Activation,
    out_activation: OutActivation,
    acts: &mut [Buf<T>],
    level: SimdLevel,
    panel: &mut Buf<T>,
) {
    let layers = coefs.len();
    for i in 0..layers {
        let (done, rest) = acts.split_at_mut(i);
        let input = if i == 0 {
            x
        } else {
            Mat::rows(&done[i - 1][..rows * units[i]], units[i])
        };
        let w = units[i + 1];
        let z = &mut rest[0][..rows * w];
        let last = i + 1 == layers;
        let epi = if last {
            Epilogue::Bias(intercepts[i])
        } else {
            Epilogue::BiasAct(intercepts[i], activation)
        };
        tiled::product(
            level,
            rows,
            w,
            units[i],
            LeftOperand::Rows(input),
            RightOperand::Rows(Mat::rows(coefs[i], w)),
            z,
            w,
            epi,
            panel,
        );
        if last {
            out_activation.activate(level, z, w);
        }
    }
}

/// Output-layer activations for `x` (scikit-learn's `_forward_pass_fast`): shape
/// `(n, n_outputs)`, in `T`.
///
/// Runs inside its own [`Threads::install`].
pub fn forward_predict<T: Real>(
    x: ArrayView2<'_, T>,
    coefs: &[ArrayView2<'_, T>],
    intercepts: &[ArrayView1<'_, T>],
    activation: Activation,
    out_activation: OutActivation,
    threads: Threads,
) -> Result<Array2<T>> {
    let units = units_of(coefs)?;
    check_params(&units, coefs, intercepts)?;
    if x.ncols() != units[0] {
        return Err(CoreError::shape(
            "X columns (n_features)",
            units[0],
            x.ncols(),
        ));
    }
    let n = x.nrows();
    let layers = coefs.len();
    let n_out = units[layers];
    let out_len = checked_len(n, n_out, WHAT)?;
    let mut out = Array2::from_shape_vec((n, n_out), try_filled(out_len, T::zero(), WHAT)?)
        .map_err(|e| CoreError::invalid("X", e.to_string()))?;
    if n == 0 {
        return Ok(out);
    }
    let bias: Vec<_> = intercepts.iter().map(bias_slice).collect();
    let bias_refs: Vec<&[T]> = bias.iter().map(AsRef::as_ref).collect();
    let len = chunk_len(n, max_chunk_rows(&units));
    let level = SimdLevel::detected();
    // Skipping the zeros of `x` leaves every bit alone while the weights they multiply are
    // finite (a skipped `0 * inf` would have been NaN).
    let skip_zeros = tiled::skips_zeros::<T>(units[1]) && coefs[0].iter().all(|w| w.is_finite());
    let out_s = out
        .as_slice_mut()
        .expect("a freshly allocated array is contiguous");
    // Rows are independent, so the chunking changes no bit of the result.
    let run = |(scratch, panel): &mut (Vec<Buf<T>>, Buf<T>), (c, dst): (usize, &mut [T])| {
        let start = c * len;
        let rows = dst.len() / n_out;
        let xc = x.slice(ndarray::s![start..start + rows, ..]);
        forward_chunk(
            xc,
            coefs,
            &bias_refs,
            &units,
            activation,
            out_activation,
            scratch,
            panel,
            level,
            Threads::Single,
            true,
            skip_zeros,
        );
        dst.copy_from_slice(&scratch[layers - 1][..rows * n_out]);
    };
    // Each thread's activations, allocated before its first chunk; a failed allocation is
    // an error of the call (on any thread), not an abort.
    let room = if tiled::applies(&units) {
        panel_room(&units, len)
    } else {
        0
    };
    let new_scratch = || -> Result<(Vec<Buf<T>>, Buf<T>)> {
        let acts = units[1..]
            .iter()
            .map(|&w| Buf::try_filled(checked_len(len, w, WHAT)?, T::zero(), WHAT))
            .collect::<Result<_>>()?;
        Ok((acts, Buf::try_with_room(room, T::zero(), WHAT)?))
    };
    threads.install(|| -> Result<()> {
        if threads.count() > 1 && n > len {
            out_s
                .par_chunks_mut(len * n_out)
                .enumerate()
                .try_for_each_init(new_scratch, |scratch, item| {
                    let scratch = scratch.as_mut().map_err(|e| e.clone())?;
                    run(scratch, item);
                    Ok(())
                })
        } else {
            let mut scratch = new_scratch()?;
            for item in out_s.chunks_mut(len * n_out).enumerate() {
                run(&mut scratch, item);
            }
            Ok(())
        }
    })??;
    Ok(out)
}

impl<T: Real> Workspace<T> {
    /// Forward pass over the rows of `x`; read the result with [`Workspace::output`].
    pub fn forward(
        &mut self,
        x: ArrayView2<'_, T>,
        coefs: &[ArrayView2<'_, T>],
        intercepts: &[&[T]],
        spec: &NetSpec,
        threads: Threads,
    ) {
        self.forward_on(x, coefs, intercepts, spec, threads.into());
    }

    /// [`Workspace::forward`] on `exec` (the training loop's team).
    pub(crate) fn forward_on(
        &mut self,
        x: ArrayView2<'_, T>,
        coefs: &[ArrayView2<'_, T>],
        intercepts: &[&[T]],
        spec: &NetSpec,
        exec: Exec<'_>,
    ) {
        let rows = x.nrows();
        let n_out = self.units[self.units.len() - 1];
        if self.out.len() < rows * n_out {
            self.out.resize(rows * n_out, T::zero());
        }
        let len = chunk_len(rows, max_chunk_rows(&self.units));
        let n_chunks = rows.div_ceil(len);
        let level = self.level;
        let units = &self.units;
        let layers = coefs.len();
        let mut wave_start = 0;
        while wave_start < n_chunks {
            let wave = (n_chunks - wave_start).min(self.chunks.len());
            let base = wave_start * len;
            let out_rows = ((wave_start + wave) * len).min(rows) - base;
            let mut items: Vec<(&mut Chunk<T>, &mut [T])> = self.chunks[..wave]
                .iter_mut()
                .zip(self.out[base * n_out..(base + out_rows) * n_out].chunks_mut(len * n_out))
                .collect();
            for_each_chunk(exec, &mut items, |i, (chunk, dst)| {
                let start = base + i * len;
                let r = dst.len() / n_out;
                let xc = x.slice(ndarray::s![start..start + r, ..]);
                forward_chunk(
                    xc,
                    coefs,
                    intercepts,
                    units,
                    spec.activation,
                    spec.out_activation,
                    &mut chunk.acts,
                    &mut chunk.panel,
                    level,
                    Threads::Single,
                    true,
                    false,
                );
                dst.copy_from_slice(&chunk.acts[layers - 1][..r * n_out]);
            });
            wave_start += wave;
        }
    }
}
