//! Loss and gradient (scikit-learn's `_backprop` and `_compute_loss_grad`) on preallocated
//! buffers.

use std::borrow::Cow;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2};

use super::activation::backprop_rows_at;
use super::buf::Buf;
use super::elementwise::{reduce, sum_squares};
use super::forward::{bias_slice, forward_chunk, forward_tiled, panel_room, product_rows};
use super::loss::log_loss_and_delta;
use super::optim::{Grads, Optimizer, SummedGrads};
use super::partition::{MAX_LIVE_CHUNKS, chunk_len, for_each_chunk, max_chunk_rows};
use super::simd::SimdLevel;
use super::team::Exec;
use super::tiled::{self, Epilogue, LeftOperand, Mat, NC, RightOperand};
use super::{Loss, NetSpec, OutActivation, check_params};
use crate::error::{CoreError, Result, checked_len as mul, try_collect, try_filled, try_vec};
use crate::linalg::gemm;
use crate::parallel::Threads;
use crate::real::Real;

/// The buffers of one row chunk (see [`super::partition`]).
#[derive(Debug, Clone)]
struct Chunk<T> {
    /// `acts[l]` holds layer `l + 1`'s activations, `(len, units[l + 1])` row-major.
    acts: Vec<Buf<T>>,
    /// `deltas[l]`: gradient of the loss w.r.t. layer `l + 1`'s pre-activations.
    deltas: Vec<Buf<T>>,
    /// This chunk's `activations[l].T @ deltas[l]`.
    coef_grads: Vec<Buf<T>>,
    /// This chunk's column sums of `deltas[l]`.
    int_grads: Vec<Buf<T>>,
    /// This chunk's [`super::Loss::sum`].
    loss: f64,
    /// This chunk's share of the coefficients' sum of squares (see [`penalty_share`]).
    sumsq: f64,
    /// The chunk's gathered input rows, targets and weights (shuffled training batches).
    xb: Buf<T>,
    yb: Buf<T>,
    swb: Vec<T>,
    /// Scratch space of the tiled kernels: packed column tiles, a transposed gradient.
    panel: Buf<T>,
    tr: Buf<T>,
    /// The log-loss's logarithms (see [`log_loss_and_delta`]).
    logs: Vec<f64>,
    /// Part of a whole-batch workspace: GEMMs keep their plain orientation.
    whole: bool,
}

impl<T: Real> Chunk<T> {
    /// The loss of the output layer (`acts[last]`, `rows` rows) and its delta with column
    /// sums. With `fused` (the tiled path), a softmax log-loss takes the fused,
    /// vectorised pass of `log_loss_and_delta` compiled for that level.
    fn output_loss_delta(
        &mut self,
        spec: &NetSpec,
        y: &[T],
        sw: Option<&[T]>,
        rows: usize,
        fused: Option<SimdLevel>,
    ) {
        let last = spec.units.len() - 2;
        let n_out = spec.units[last + 1];
        let out = &self.acts[last][..rows * n_out];
        let delta = &mut self.deltas[last][..rows * n_out];
        let softmax_log_loss = spec.loss == Loss::LogLoss
            && spec.out_activation == OutActivation::Softmax
            && n_out > 1;
        match fused {
            Some(level) if softmax_log_loss => {
                self.loss = log_loss_and_delta(
                    level,
                    out,
                    y,
                    n_out,
                    sw,
                    delta,
                    &mut self.int_grads[last],
                    &mut self.logs,
                );
            }
            _ => {
                self.loss = spec.loss.sum(out, y, n_out, sw);
                output_delta(out, y, sw, n_out, delta, &mut self.int_grads[last]);
            }
        }
    }

    /// A chunk of `len` rows. Every buffer whose size follows from the shapes is allocated
    /// here, up front, so that an allocation failure is an error of the constructor (and
    /// never an abort inside the training loop): the activations (and with `grads` the
    /// deltas and gradients) written in full, and the room of the buffers the passes grow
    /// on demand, reserved but not written: the tiled kernels' packed panels (unless
    /// `whole`), and for a training chunk (`grads` and not `whole`) the gathered rows, the
    /// transposed gradients and the log-loss's logarithms.
    fn new(units: &[usize], len: usize, grads: bool, whole: bool) -> Result<Self> {
        const WHAT: &str = "the MLP's per-chunk activations and gradients";
        let zero = T::zero();
        let per_layer = |on: bool| -> Result<Vec<Buf<T>>> {
            units[1..]
                .iter()
                .map(|&w| {
                    let n = if on { mul(len, w, WHAT)? } else { 0 };
                    Buf::try_filled(n, zero, WHAT)
                })
                .collect()
        };
        let train = grads && !whole;
        let (d, n_out) = (units[0], units[units.len() - 1]);
        let tr_room = units
            .windows(2)
            .map(|w| w[0].saturating_mul(w[1]))
            .max()
            .unwrap_or(0);
        let room = |n: usize| if train { n } else { 0 };
        // Forward-only chunks (validation scores) run the tiled kernels too.
        let panel_room = if whole { 0 } else { panel_room(units, len) };
        Ok(Self {
            acts: per_layer(true)?,
            deltas: per_layer(grads)?,
            coef_grads: units
                .windows(2)
                .map(|w| {
                    let n = if grads { mul(w[0], w[1], WHAT)? } else { 0 };
                    Buf::try_filled(n, zero, WHAT)
                })
                .collect::<Result<_>>()?,
            int_grads: units[1..]
                .iter()
                .map(|&w| Buf::try_filled(if grads { w } else { 0 }, zero, WHAT))
                .collect::<Result<_>>()?,
            loss: 0.0,
            sumsq: 0.0,
            xb: Buf::try_with_room(room(len.saturating_mul(d)), zero, WHAT)?,
            yb: Buf::try_with_room(room(len.saturating_mul(n_out)), zero, WHAT)?,
            swb: try_vec(room(len), WHAT)?,
            panel: Buf::try_with_room(panel_room, zero, WHAT)?,
            tr: Buf::try_with_room(room(tr_room), zero, WHAT)?,
            logs: try_vec(room(len.saturating_mul(2)), WHAT)?,
            whole,
        })
    }

    /// Forward and backward passes of the chunk's rows on the calling thread: the data
    /// term of the loss (a [`super::Loss::sum`]) and the unscaled gradients.
    fn backprop(
        &mut self,
        x: ArrayView2<'_, T>,
        y: &[T],
        sw: Option<&[T]>,
        coefs: &[ArrayView2<'_, T>],
        intercepts: &[&[T]],
        spec: &NetSpec,
        level: SimdLevel,
        gemm_threads: Threads,
    ) {
        let units = &spec.units;
        let rows = x.nrows();
        let layers = coefs.len();
        let last = layers - 1;
        forward_chunk(
            x,
            coefs,
            intercepts,
            units,
            spec.activation,
            spec.out_activation,
            &mut self.acts,
            &mut self.panel,
            level,
            gemm_threads,
            !self.whole,
            false,
        );
        self.output_loss_delta(spec, y, sw, rows, None);
        self.coef_grad(last, x, units, rows, gemm_threads);

        for i in (1..=last).rev() {
            let (lo, hi) = self.deltas.split_at_mut(i);
            let w_in = units[i];
            let w_out = units[i + 1];
            let d_next = ArrayView2::from_shape((rows, w_out), &hi[0][..rows * w_out])
                .expect("delta buffer holds rows * width values");
            let d_prev = &mut lo[i - 1][..rows * w_in];
            gemm(
                T::one(),
                d_next,
                coefs[i].t(),
                T::zero(),
                ArrayViewMut2::from_shape((rows, w_in), &mut *d_prev)
                    .expect("delta buffer holds rows * width values"),
                gemm_threads,
            );
            let colsum = &mut self.int_grads[i - 1];
            let a = &self.acts[i - 1][..rows * w_in];
            let act = spec.activation;
            backprop_rows_at(level, act, a, d_prev, colsum);
            self.coef_grad(i - 1, x, units, rows, gemm_threads);
        }
    }

    /// [`Chunk::backprop`] of a narrow network (see [`tiled::applies`]) through the fused
    /// tiled kernels: `x` is the chunk's `rows` input rows, read in place (through the
    /// shuffled index for a training batch), `coefs` the row-major weight matrices.
    fn backprop_tiled(
        &mut self,
        x: Mat<'_, T>,
        rows: usize,
        y: &[T],
        sw: Option<&[T]>,
        coefs: &[&[T]],
        intercepts: &[&[T]],
        spec: &NetSpec,
        level: SimdLevel,
    ) {
        let units = &spec.units;
        let layers = coefs.len();
        let last = layers - 1;
        forward_tiled(
            x,
            rows,
            coefs,
            intercepts,
            units,
            spec.activation,
            spec.out_activation,
            &mut self.acts,
            level,
            &mut self.panel,
        );
        self.output_loss_delta(spec, y, sw, rows, Some(level));
        self.coef_grad_tiled(last, x, rows, units, level);
        for i in (1..=last).rev() {
            let (lo, hi) = self.deltas.split_at_mut(i);
            let w_in = units[i];
            let w_out = units[i + 1];
            // delta[i - 1] = (delta[i] @ coefs[i].T) * f'(activations[i]), with its sums.
            tiled::product(
                level,
                rows,
                w_in,
                w_out,
                LeftOperand::Rows(Mat::rows(&hi[0][..rows * w_out], w_out)),
                RightOperand::Cols(Mat::rows(coefs[i], w_out)),
                &mut lo[i - 1][..rows * w_in],
                w_in,
                Epilogue::Deriv {
                    f: spec.activation,
                    act: &self.acts[i - 1][..rows * w_in],
                    colsum: &mut self.int_grads[i - 1],
                },
                &mut self.panel,
            );
            self.coef_grad_tiled(i - 1, x, rows, units, level);
        }
    }

    /// `coef_grads[l] = activations[l].T @ deltas[l]` for this chunk through the tiled
    /// kernels, computed as its transpose `deltas[l].T @ activations[l]` when that pads
    /// fewer columns to the register tile (the sums, hence the bits, are the same).
    fn coef_grad_tiled(
        &mut self,
        l: usize,
        x: Mat<'_, T>,
        rows: usize,
        units: &[usize],
        level: SimdLevel,
    ) {
        let (m, n) = (units[l], units[l + 1]);
        let input = if l == 0 {
            // Skipping the zeros of `x` adds nothing only where the deltas are finite (the
            // terms skipped are `0 * delta`); any non-finite delta makes its column's sum
            // non-finite, and then the product takes every term (`0 * inf` is NaN).
            if x.nonzero.is_some() && !self.int_grads[0][..n].iter().all(|v| v.is_finite()) {
                Mat { nonzero: None, ..x }
            } else {
                x
            }
        } else {
            Mat::rows(&self.acts[l - 1][..rows * m], m)
        };
        let delta = Mat::rows(&self.deltas[l][..rows * n], n);
        let dst = &mut self.coef_grads[l][..m * n];
        if m * n.div_ceil(NC) * NC <= n * m.div_ceil(NC) * NC {
            tiled::product(
                level,
                m,
                n,
                rows,
                LeftOperand::Cols(input),
                RightOperand::Rows(delta),
                dst,
                n,
                Epilogue::Store,
                &mut self.panel,
            );
        } else {
            let mut tr = std::mem::take(&mut self.tr);
            tr.resize(m * n, T::zero());
            tiled::product(
                level,
                n,
                m,
                rows,
                LeftOperand::Cols(delta),
                RightOperand::Rows(input),
                &mut tr,
                m,
                Epilogue::Store,
                &mut self.panel,
            );
            for (i, row) in dst.chunks_exact_mut(n).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = tr[j * m + i];
                }
            }
            self.tr = tr;
        }
    }

    /// `coef_grads[l] = activations[l].T @ deltas[l]` for this chunk.
    fn coef_grad(
        &mut self,
        l: usize,
        x: ArrayView2<'_, T>,
        units: &[usize],
        rows: usize,
        gemm_threads: Threads,
    ) {
        let w_in = units[l];
        let w_out = units[l + 1];
        let input = if l == 0 {
            x.view()
        } else {
            ArrayView2::from_shape((rows, w_in), &self.acts[l - 1][..rows * w_in])
                .expect("activation buffer holds rows * width values")
        };
        let delta = ArrayView2::from_shape((rows, w_out), &self.deltas[l][..rows * w_out])
            .expect("delta buffer holds rows * width values");
        product_rows(
            input.t(),
            delta,
            &mut self.coef_grads[l][..],
            gemm_threads,
            !self.whole,
        );
    }
}

/// `delta = (out - y) * sample_weight` (the output layer's delta), with its column sums in
/// `colsum`.
fn output_delta<T: Real>(
    out: &[T],
    y: &[T],
    sw: Option<&[T]>,
    n_out: usize,
    delta: &mut [T],
    colsum: &mut [T],
) {
    colsum.fill(T::zero());
    let rows = delta.len() / n_out.max(1);
    for r in 0..rows {
        let o = r * n_out;
        for c in 0..n_out {
            let mut d = out[o + c] - y[o + c];
            if let Some(w) = sw {
                d *= w[r];
            }
            delta[o + c] = d;
            colsum[c] += d;
        }
    }
}

/// Where a batch's rows come from.
#[derive(Clone, Copy)]
enum Src<'a, T> {
    /// Contiguous rows.
    Rows {
        x: ArrayView2<'a, T>,
        y: &'a [T],
        sw: Option<&'a [T]>,
    },
    /// Rows `idx` of row-major `x` (`units[0]` wide) and `y`, gathered by each chunk.
    Gather {
        x: &'a [T],
        y: &'a [T],
        sw: Option<&'a [T]>,
        idx: &'a [usize],
        /// [`tiled::nonzero_masks`] of `x`, when the tiled kernels may skip its zeros.
        nonzero: Option<&'a [u64]>,
    },
}

/// Every buffer one loss-and-gradient evaluation needs, for batches of up to `cap` rows.
///
/// Allocated once per fit; batches use the leading rows. A batch is cut into the fixed row
/// chunks of [`super::partition`], which run in parallel with their own buffers; the gradients
/// are then summed chunk after chunk, so results never depend on the thread count.
#[derive(Debug, Clone)]
pub struct Workspace<T> {
    units: Vec<usize>,
    cap: usize,
    chunks: Vec<Chunk<T>>,
    /// The output-layer activations of the last [`Workspace::forward`], row-major.
    out: Vec<T>,
    level: SimdLevel,
    /// One chunk for the whole batch, GEMMs parallel inside (see [`Workspace::whole_batch`]).
    whole: bool,
    /// Set by the deferred evaluations: the per-chunk gradients of this many chunks wait
    /// for [`Workspace::update_params`], with the L2 factor and the gradient scale (the
    /// reciprocal of the weight sum).
    pending: Option<(usize, T, T)>,
    /// Gradient of each coefficient matrix (scikit-learn's `coef_grads`).
    pub coef_grads: Vec<Array2<T>>,
    /// Gradient of each intercept vector (scikit-learn's `intercept_grads`).
    pub intercept_grads: Vec<Array1<T>>,
}

impl<T: Real> Workspace<T> {
    /// Buffers for a network with layer widths `units` and batches of up to `cap` rows.
    pub fn new(units: &[usize], cap: usize) -> Result<Self> {
        Self::build(units, cap, true, false)
    }

    /// Buffers for full-batch evaluations (L-BFGS) that keep the original summation order:
    /// one chunk (the GEMMs, parallel inside, sum over all rows) and a sequential L2 sum.
    /// L-BFGS amplifies last-bit differences of the loss and gradient over hundreds of
    /// iterations, and this order is the one whose results track scikit-learn's.
    pub fn whole_batch(units: &[usize], cap: usize) -> Result<Self> {
        Self::build(units, cap, true, true)
    }

    /// Buffers for [`Workspace::forward`] only (no gradient buffers).
    pub fn forward_only(units: &[usize], cap: usize) -> Result<Self> {
        Self::build(units, cap, false, false)
    }

    fn build(units: &[usize], cap: usize, grads: bool, whole: bool) -> Result<Self> {
        const WHAT: &str = "the MLP's gradients and outputs";
        let cap = cap.max(1);
        let max_rows = max_chunk_rows(units);
        let (live, len) = if whole {
            (1, cap)
        } else {
            (
                cap.div_ceil(max_rows).min(MAX_LIVE_CHUNKS),
                cap.min(max_rows),
            )
        };
        let chunks = (0..live)
            .map(|_| Chunk::new(units, len, grads, whole))
            .collect::<Result<_>>()?;
        let n_out = units[units.len() - 1];
        let zeros2 = |w: &[usize]| -> Result<Array2<T>> {
            let (r, c) = if grads { (w[0], w[1]) } else { (0, 0) };
            let v = try_filled(mul(r, c, WHAT)?, T::zero(), WHAT)?;
            Array2::from_shape_vec((r, c), v)
                .map_err(|e| CoreError::invalid("units", e.to_string()))
        };
        let coef_grads = units.windows(2).map(zeros2).collect::<Result<_>>()?;
        let intercept_grads = units[1..]
            .iter()
            .map(|&w| {
                Ok(Array1::from_vec(try_filled(
                    if grads { w } else { 0 },
                    T::zero(),
                    WHAT,
                )?))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            units: units.to_vec(),
            cap,
            chunks,
            out: if grads {
                Vec::new()
            } else {
                try_filled(mul(cap, n_out, WHAT)?, T::zero(), WHAT)?
            },
            level: SimdLevel::detected(),
            whole,
            pending: None,
            coef_grads,
            intercept_grads,
        })
    }

    /// The largest batch these buffers hold.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The output-layer activations of the last [`Workspace::forward`] over `rows` rows.
    pub fn output(&self, rows: usize) -> &[T] {
        let n_out = self.units[self.units.len() - 1];
        &self.out[..rows * n_out]
    }

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

    /// Loss (with the L2 term) and gradients for one batch: `x` `(rows, units[0])`, `y`
    /// row-major `(rows, n_outputs)`, `sw` per-row weights or `None`. The gradients land in
    /// [`Workspace::coef_grads`] and [`Workspace::intercept_grads`], already including the
    /// L2 term and the scaling by the reciprocal of the weight sum, as scikit-learn's
    /// `_backprop` (which divides by it).
    pub fn backprop(
        &mut self,
        x: ArrayView2<'_, T>,
        y: &[T],
        sw: Option<&[T]>,
        coefs: &[ArrayView2<'_, T>],
        intercepts: &[&[T]],
        spec: &NetSpec,
        alpha: f64,
        threads: Threads,
    ) -> f64 {
        self.run(
            Src::Rows { x, y, sw },
            coefs,
            intercepts,
            spec,
            alpha,
            threads.into(),
            false,
            None,
        )
    }

    /// [`Workspace::backprop`] for a training step: the batch is rows `idx` of row-major `x`
    /// and `y` (and `sw`), which each chunk gathers itself, and the gradients are left for
    /// [`Workspace::update_params`] to sum inside the optimizer's pass (unless the batch
    /// needs more chunks than stay alive at once, when they are summed here).
    pub fn backprop_deferred(
        &mut self,
        x: &[T],
        y: &[T],
        sw: Option<&[T]>,
        idx: &[usize],
        coefs: &[ArrayView2<'_, T>],
        intercepts: &[&[T]],
        spec: &NetSpec,
        alpha: f64,
        threads: Threads,
    ) -> f64 {
        self.backprop_deferred_on(
            x,
            y,
            sw,
            idx,
            coefs,
            intercepts,
            spec,
            alpha,
            threads.into(),
            None,
            None,
        )
    }

    /// [`Workspace::backprop_deferred`] on `exec` (the training loop's team), with
    /// `penalty` the coefficients' sum of squares when the last update computed it (see
    /// [`Workspace::update_params_on`]) and `nonzero` the [`tiled::nonzero_masks`] of `x`,
    /// whose zeros the first layer's products skip when `penalty` is finite. (A product
    /// `0 * w` adds zero to a sum, which leaves its bits alone when `w` is finite; a finite
    /// sum of squares means every coefficient is finite. A non-finite weight takes the full
    /// products, whose `0 * inf` is NaN as in scikit-learn's.)
    pub(crate) fn backprop_deferred_on(
        &mut self,
        x: &[T],
        y: &[T],
        sw: Option<&[T]>,
        idx: &[usize],
        coefs: &[ArrayView2<'_, T>],
        intercepts: &[&[T]],
        spec: &NetSpec,
        alpha: f64,
        exec: Exec<'_>,
        penalty: Option<f64>,
        nonzero: Option<&[u64]>,
    ) -> f64 {
        let nonzero = nonzero.filter(|_| penalty.is_some_and(f64::is_finite));
        self.run(
            Src::Gather {
                x,
                y,
                sw,
                idx,
                nonzero,
            },
            coefs,
            intercepts,
            spec,
            alpha,
            exec,
            true,
            penalty,
        )
    }

    /// One optimizer step with the gradients of the last evaluation: summed block by block
    /// in the update's own pass after [`Workspace::backprop_deferred`], or read from
    /// [`Workspace::coef_grads`]/[`Workspace::intercept_grads`] otherwise.
    pub fn update_params(
        &mut self,
        optimizer: &mut Optimizer,
        params: &mut [&mut [T]],
        first: &mut [&mut [T]],
        second: &mut [&mut [T]],
        threads: Threads,
    ) {
        self.update_params_on(optimizer, params, first, second, threads.into());
    }

    /// [`Workspace::update_params`] on `exec` (the training loop's team). After a deferred
    /// evaluation it returns the updated coefficients' sum of squares, which the next
    /// batch's loss needs (computed in the update's pass while each block is in cache,
    /// instead of by the chunks over every coefficient again).
    pub(crate) fn update_params_on(
        &mut self,
        optimizer: &mut Optimizer,
        params: &mut [&mut [T]],
        first: &mut [&mut [T]],
        second: &mut [&mut [T]],
        exec: Exec<'_>,
    ) -> Option<f64> {
        let layers = self.units.len() - 1;
        if let Some((n, alpha, scale)) = self.pending.take() {
            let chunks = &self.chunks[..n];
            let parts: Vec<Vec<&[T]>> = (0..layers)
                .map(|l| chunks.iter().map(|c| &c.coef_grads[l][..]).collect())
                .chain((0..layers).map(|l| chunks.iter().map(|c| &c.int_grads[l][..]).collect()))
                .collect();
            let summed = SummedGrads {
                parts: &parts,
                decayed: layers,
                alpha,
                scale,
            };
            optimizer.update_with_on(params, Grads::Summed(&summed), first, second, exec)
        } else {
            let grads: Vec<&[T]> = self
                .coef_grads
                .iter()
                .map(|g| g.as_slice().expect("owned gradient is contiguous"))
                .chain(
                    self.intercept_grads
                        .iter()
                        .map(|g| g.as_slice().expect("owned gradient is contiguous")),
                )
                .collect();
            optimizer.update_par(params, &grads, first, second, exec.threads());
            None
        }
    }

    fn run(
        &mut self,
        src: Src<'_, T>,
        coefs: &[ArrayView2<'_, T>],
        intercepts: &[&[T]],
        spec: &NetSpec,
        alpha: f64,
        exec: Exec<'_>,
        defer: bool,
        penalty: Option<f64>,
    ) -> f64 {
        let threads = exec.threads();
        let layers = coefs.len();
        let d = self.units[0];
        let n_out = self.units[layers];
        let level = self.level;
        let (rows, sw_sum_f64) = match src {
            Src::Rows { x, sw, .. } => (
                x.nrows(),
                sw.map(|w| w.iter().map(|&v| v.to_f64_lossless()).sum::<f64>()),
            ),
            Src::Gather { sw, idx, .. } => (
                idx.len(),
                sw.map(|w| idx.iter().map(|&i| w[i].to_f64_lossless()).sum::<f64>()),
            ),
        };
        let sw_sum_f64 = sw_sum_f64.unwrap_or(rows as f64);
        // The gradients are scaled by the reciprocal of the weight sum where scikit-learn
        // divides by it: a division per parameter kept the divider busy, beside Adam's square
        // root and division, for about a third of each update (the two agree to an ulp or so).
        let scale = T::from_f64_lossy(1.0 / sw_sum_f64);
        let alpha_t = T::from_f64_lossy(alpha);
        let coef_slices: Vec<Cow<'_, [T]>> = coefs
            .iter()
            .map(|c| match c.as_slice() {
                Some(s) => Cow::Borrowed(s),
                None => Cow::Owned(c.iter().copied().collect()),
            })
            .collect();

        let (len, gemm_threads) = if self.whole {
            (rows.max(1), threads)
        } else {
            (
                chunk_len(rows, max_chunk_rows(&self.units)),
                Threads::Single,
            )
        };
        let n_chunks = rows.div_ceil(len);
        let defer = defer && n_chunks <= self.chunks.len();
        let small = !self.whole && tiled::applies(&self.units);
        let cs: Vec<&[T]> = coef_slices.iter().map(|c| &c[..]).collect();
        self.pending = None;
        let mut total = 0.0_f64;
        let mut sumsq = 0.0_f64;
        let mut wave_start = 0;
        while wave_start < n_chunks {
            let wave = (n_chunks - wave_start).min(self.chunks.len());
            let chunks = &mut self.chunks[..wave];
            for_each_chunk(exec, chunks, |i, chunk| {
                let start = (wave_start + i) * len;
                let end = (start + len).min(rows);
                let r = end - start;
                chunk.sumsq = if self.whole || penalty.is_some() {
                    0.0
                } else {
                    penalty_share(level, &cs, wave_start + i, n_chunks)
                };
                match src {
                    Src::Rows { x, y, sw } if small && x.is_standard_layout() => {
                        let xs = x.slice(ndarray::s![start..end, ..]);
                        chunk.backprop_tiled(
                            Mat::rows(xs.to_slice().expect("standard layout rows"), d),
                            r,
                            &y[start * n_out..end * n_out],
                            sw.map(|w| &w[start..end]),
                            &cs,
                            intercepts,
                            spec,
                            level,
                        );
                    }
                    Src::Rows { x, y, sw } => chunk.backprop(
                        x.slice(ndarray::s![start..end, ..]),
                        &y[start * n_out..end * n_out],
                        sw.map(|w| &w[start..end]),
                        coefs,
                        intercepts,
                        spec,
                        level,
                        gemm_threads,
                    ),
                    Src::Gather {
                        x,
                        y,
                        sw,
                        idx,
                        nonzero,
                    } => {
                        let mut xb = std::mem::take(&mut chunk.xb);
                        let mut yb = std::mem::take(&mut chunk.yb);
                        let mut swb = std::mem::take(&mut chunk.swb);
                        // The tiled kernels read the input rows in place.
                        xb.resize(if small { 0 } else { r * d }, T::zero());
                        yb.resize(r * n_out, T::zero());
                        for (j, &row) in idx[start..end].iter().enumerate() {
                            if !small {
                                xb[j * d..(j + 1) * d].copy_from_slice(&x[row * d..(row + 1) * d]);
                            }
                            yb[j * n_out..(j + 1) * n_out]
                                .copy_from_slice(&y[row * n_out..(row + 1) * n_out]);
                        }
                        if let Some(w) = sw {
                            swb.clear();
                            swb.extend(idx[start..end].iter().map(|&row| w[row]));
                        }
                        if small {
                            let xm = Mat::picked(x, d, &idx[start..end]);
                            chunk.backprop_tiled(
                                match nonzero {
                                    Some(masks) => xm.with_nonzero(masks),
                                    None => xm,
                                },
                                r,
                                &yb[..r * n_out],
                                sw.map(|_| &swb[..r]),
                                &cs,
                                intercepts,
                                spec,
                                level,
                            );
                        } else {
                            let xv = ArrayView2::from_shape((r, d), &xb[..r * d])
                                .expect("gathered rows hold rows * n_features values");
                            chunk.backprop(
                                xv,
                                &yb[..r * n_out],
                                sw.map(|_| &swb[..r]),
                                coefs,
                                intercepts,
                                spec,
                                level,
                                gemm_threads,
                            );
                        }
                        chunk.xb = xb;
                        chunk.yb = yb;
                        chunk.swb = swb;
                    }
                }
            });
            for c in chunks.iter() {
                total += c.loss;
                sumsq += c.sumsq;
            }
            if defer {
                self.pending = Some((wave, alpha_t, scale));
            } else {
                let keep = wave_start > 0;
                let done = wave_start + wave == n_chunks;
                #[allow(clippy::needless_range_loop)] // l indexes four parallel lists
                for l in 0..layers {
                    let parts: Vec<&[T]> = chunks.iter().map(|c| &c.coef_grads[l][..]).collect();
                    let dst = self.coef_grads[l]
                        .as_slice_mut()
                        .expect("owned gradient is contiguous");
                    let finish = done.then(|| (&coef_slices[l][..], alpha_t, scale));
                    reduce(level, threads, dst, &parts, keep, finish);
                    let parts: Vec<&[T]> = chunks.iter().map(|c| &c.int_grads[l][..]).collect();
                    let dst = self.intercept_grads[l]
                        .as_slice_mut()
                        .expect("owned gradient is contiguous");
                    reduce(level, Threads::Single, dst, &parts, keep, None);
                    if done {
                        for v in dst.iter_mut() {
                            *v *= scale;
                        }
                    }
                }
            }
            wave_start += wave;
        }

        let mut loss = spec.loss.finish(total, sw_sum_f64, n_out);
        let values: f64 = if self.whole {
            coef_slices
                .iter()
                .map(|c| c.iter().map(|&v| (v * v).to_f64_lossless()).sum::<f64>())
                .sum()
        } else {
            penalty.unwrap_or(sumsq)
        };
        loss += (0.5 * alpha) * values / sw_sum_f64;
        loss
    }
}

/// Part `part` of `parts` of the coefficients' sum of squares (the L2 penalty): the
/// coefficients, taken as one sequence layer after layer, are cut into `parts` nearly equal
/// ranges, and this sums range `part` piece by piece ([`sum_squares`] on each layer's
/// piece, the pieces added in order). Each chunk computes its own share inside the parallel
/// section, instead of the caller going over every coefficient between sections while the
/// other threads wait; the partition depends on the chunk count only, so the bits do not
/// depend on the thread count.
fn penalty_share<T: Real>(level: SimdLevel, coefs: &[&[T]], part: usize, parts: usize) -> f64 {
    let total: usize = coefs.iter().map(|c| c.len()).sum();
    let (lo, hi) = (total * part / parts, total * (part + 1) / parts);
    let mut sum = 0.0;
    let mut base = 0;
    for c in coefs {
        let (a, b) = (lo.max(base), hi.min(base + c.len()));
        if a < b {
            sum += sum_squares(level, &c[a - base..b - base]);
        }
        base += c.len();
    }
    sum
}

/// Coefficient and intercept views of one network's parameters.
pub type ParamViews<'a, T> = (Vec<ArrayView2<'a, T>>, Vec<ArrayView1<'a, T>>);

/// Splits scikit-learn's packed parameter vector into coef and intercept views.
pub fn unpack<'a, T>(packed: &'a [T], units: &[usize]) -> Result<ParamViews<'a, T>> {
    let need: usize = units.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
    if packed.len() != need {
        return Err(CoreError::shape(
            "packed parameter length",
            need,
            packed.len(),
        ));
    }
    let mut coefs = Vec::with_capacity(units.len() - 1);
    let mut intercepts = Vec::with_capacity(units.len() - 1);
    let mut start = 0;
    for w in units.windows(2) {
        let end = start + w[0] * w[1];
        coefs.push(
            ArrayView2::from_shape((w[0], w[1]), &packed[start..end])
                .map_err(|e| CoreError::invalid("packed", e.to_string()))?,
        );
        start = end;
    }
    for &w in &units[1..] {
        intercepts.push(ArrayView1::from(&packed[start..start + w]));
        start += w;
    }
    Ok((coefs, intercepts))
}

/// Checks the shapes shared by every loss/gradient evaluation.
pub fn check_data<T>(
    units: &[usize],
    x: ArrayView2<'_, T>,
    y: ArrayView2<'_, T>,
    sw: Option<ArrayView1<'_, T>>,
) -> Result<()> {
    let n = x.nrows();
    if n == 0 {
        return Err(CoreError::EmptyInput("X".to_owned()));
    }
    if x.ncols() != units[0] {
        return Err(CoreError::shape(
            "X columns (layer_units[0])",
            units[0],
            x.ncols(),
        ));
    }
    let n_out = units[units.len() - 1];
    if y.nrows() != n {
        return Err(CoreError::shape("Y rows (X rows)", n, y.nrows()));
    }
    if y.ncols() != n_out {
        return Err(CoreError::shape(
            "Y columns (layer_units[-1])",
            n_out,
            y.ncols(),
        ));
    }
    if let Some(w) = sw
        && w.len() != n
    {
        return Err(CoreError::shape(
            "sample_weight length (X rows)",
            n,
            w.len(),
        ));
    }
    Ok(())
}

/// Loss and packed gradient at the packed parameters (scikit-learn's `_loss_grad_lbfgs`).
///
/// Runs inside its own [`Threads::install`].
pub fn loss_grad_packed<T: Real>(
    packed: &[T],
    x: ArrayView2<'_, T>,
    y: ArrayView2<'_, T>,
    sw: Option<ArrayView1<'_, T>>,
    spec: &NetSpec,
    alpha: f64,
    threads: Threads,
) -> Result<(f64, Vec<T>)> {
    let units = &spec.units;
    check_data(units, x, y, sw)?;
    let (coefs, intercepts) = unpack(packed, units)?;
    check_params(units, &coefs, &intercepts)?;
    let y_c = y.as_standard_layout();
    let y_s = y_c.as_slice().expect("standard layout is contiguous");
    let sw_c = sw
        .map(|w| try_collect(w.len(), w.iter().copied(), "the sample weights"))
        .transpose()?;
    let bias: Vec<_> = intercepts.iter().map(bias_slice).collect();
    let bias_refs: Vec<&[T]> = bias.iter().map(AsRef::as_ref).collect();
    threads.install(|| -> Result<(f64, Vec<T>)> {
        let mut ws = Workspace::whole_batch(units, x.nrows())?;
        let mut grad = try_vec(packed.len(), "the MLP's packed gradient")?;
        let loss = ws.backprop(
            x,
            y_s,
            sw_c.as_deref(),
            &coefs,
            &bias_refs,
            spec,
            alpha,
            threads,
        );
        for g in &ws.coef_grads {
            grad.extend(g.iter().copied());
        }
        for g in &ws.intercept_grads {
            grad.extend(g.iter().copied());
        }
        Ok((loss, grad))
    })?
}
