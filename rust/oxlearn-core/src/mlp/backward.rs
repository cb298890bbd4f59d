//! The backward pass: the loss and its gradients for a batch (scikit-learn's `_backprop` and
//! `_compute_loss_grad`) on a [`Workspace`]'s buffers.
//!
//! A batch is cut into the fixed row chunks of [`super::partition`]. Each chunk runs the
//! forward and backward passes of its rows on its own buffers, through the `gemm` crate or the
//! register tiles of [`super::tiled`], the chunks in parallel; the per-chunk gradients are
//! then summed in chunk order ([`super::elementwise::reduce`]), or left for the optimizer
//! step to sum in its own pass ([`super::update`]), so the results never depend on the
//! thread count.

use std::borrow::Cow;

use ndarray::{ArrayView2, ArrayViewMut2};

use super::activation::backprop_rows_at;
use super::elementwise::{reduce, sum_squares};
use super::forward::{forward_chunk, forward_tiled, product_rows};
use super::loss::log_loss_and_delta;
use super::partition::{chunk_len, for_each_chunk, max_chunk_rows};
use super::tiled::{self, Epilogue, LeftOperand, Mat, NC, RightOperand};
use super::workspace::{Chunk, Workspace};
use super::{Loss, NetSpec, OutActivation};
use crate::exec::Exec;
use crate::exec::Threads;
use crate::linalg::gemm;
use crate::platform::SimdLevel;
use crate::real::Real;

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

    /// Rows `start..end` of the batch `src` on this chunk, on the calling thread: gathered
    /// first for a shuffled batch (but for the input rows, which the tiled kernels read in
    /// place), then the forward and backward passes ([`Chunk::backprop`] or
    /// [`Chunk::backprop_tiled`]).
    fn backprop_part(
        &mut self,
        src: BatchRows<'_, T>,
        start: usize,
        end: usize,
        ctx: &EvalContext<'_, T>,
    ) {
        let EvalContext {
            coefs,
            coef_rows: cs,
            intercepts,
            spec,
            level,
            gemm_threads,
            use_tiles,
            d,
            n_out,
        } = *ctx;
        let r = end - start;
        match src {
            BatchRows::Rows { x, y, sw } if use_tiles && x.is_standard_layout() => {
                let xs = x.slice(ndarray::s![start..end, ..]);
                self.backprop_tiled(
                    Mat::rows(xs.to_slice().expect("standard layout rows"), d),
                    r,
                    &y[start * n_out..end * n_out],
                    sw.map(|w| &w[start..end]),
                    cs,
                    intercepts,
                    spec,
                    level,
                );
            }
            BatchRows::Rows { x, y, sw } => self.backprop(
                x.slice(ndarray::s![start..end, ..]),
                &y[start * n_out..end * n_out],
                sw.map(|w| &w[start..end]),
                coefs,
                intercepts,
                spec,
                level,
                gemm_threads,
            ),
            BatchRows::Gather {
                x,
                y,
                sw,
                idx,
                nonzero,
            } => {
                let mut xb = std::mem::take(&mut self.xb);
                let mut yb = std::mem::take(&mut self.yb);
                let mut swb = std::mem::take(&mut self.swb);
                // The tiled kernels read the input rows in place.
                xb.resize(if use_tiles { 0 } else { r * d }, T::zero());
                yb.resize(r * n_out, T::zero());
                for (j, &row) in idx[start..end].iter().enumerate() {
                    if !use_tiles {
                        xb[j * d..(j + 1) * d].copy_from_slice(&x[row * d..(row + 1) * d]);
                    }
                    yb[j * n_out..(j + 1) * n_out]
                        .copy_from_slice(&y[row * n_out..(row + 1) * n_out]);
                }
                if let Some(w) = sw {
                    swb.clear();
                    swb.extend(idx[start..end].iter().map(|&row| w[row]));
                }
                if use_tiles {
                    let xm = Mat::picked(x, d, &idx[start..end]);
                    self.backprop_tiled(
                        match nonzero {
                            Some(masks) => xm.with_nonzero(masks),
                            None => xm,
                        },
                        r,
                        &yb[..r * n_out],
                        sw.map(|_| &swb[..r]),
                        cs,
                        intercepts,
                        spec,
                        level,
                    );
                } else {
                    let xv = ArrayView2::from_shape((r, d), &xb[..r * d])
                        .expect("gathered rows hold rows * n_features values");
                    self.backprop(
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
                self.xb = xb;
                self.yb = yb;
                self.swb = swb;
            }
        }
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

/// Where the rows of a batch come from.
#[derive(Clone, Copy)]
enum BatchRows<'a, T> {
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

impl<T: Real> BatchRows<'_, T> {
    /// The batch's row count and the sum of its sample weights in `f64` (the row count
    /// without weights): scikit-learn's divisor of the loss and the gradients.
    fn rows_and_weight_sum(self) -> (usize, f64) {
        let (rows, sw_sum_f64) = match self {
            Self::Rows { x, sw, .. } => (
                x.nrows(),
                sw.map(|w| w.iter().map(|&v| v.to_f64_lossless()).sum::<f64>()),
            ),
            Self::Gather { sw, idx, .. } => (
                idx.len(),
                sw.map(|w| idx.iter().map(|&i| w[i].to_f64_lossless()).sum::<f64>()),
            ),
        };
        (rows, sw_sum_f64.unwrap_or(rows as f64))
    }
}

/// What every chunk of one evaluation shares.
struct EvalContext<'a, T> {
    /// The weight matrices.
    coefs: &'a [ArrayView2<'a, T>],
    /// The same, as row-major slices (the tiled kernels' operands).
    coef_rows: &'a [&'a [T]],
    /// The intercept vectors.
    intercepts: &'a [&'a [T]],
    spec: &'a NetSpec,
    level: SimdLevel,
    /// Threads of the `gemm` crate's products (one, but in a whole-batch workspace).
    gemm_threads: Threads,
    /// Whether the chunks run the tiled kernels (see [`tiled::applies`]).
    use_tiles: bool,
    /// The input and output widths.
    d: usize,
    n_out: usize,
}

impl<T: Real> Workspace<T> {
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
            BatchRows::Rows { x, y, sw },
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
            BatchRows::Gather {
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

    /// One evaluation ([`Workspace::backprop`], [`Workspace::backprop_deferred_on`]): the
    /// batch's chunks in waves of at most the live chunks, each chunk's rows through
    /// `Chunk::backprop_part` in parallel; each wave's loss terms added in chunk order and
    /// its gradients summed (`Workspace::sum_wave`), or left for the update when `defer`;
    /// then the loss with its L2 term (`Workspace::penalized_loss`).
    fn run(
        &mut self,
        src: BatchRows<'_, T>,
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
        let level = self.level;
        let (rows, sw_sum_f64) = src.rows_and_weight_sum();
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
        let cs: Vec<&[T]> = coef_slices.iter().map(|c| &c[..]).collect();
        let ctx = EvalContext {
            coefs,
            coef_rows: &cs,
            intercepts,
            spec,
            level,
            gemm_threads,
            use_tiles: !self.whole && tiled::applies(&self.units),
            d: self.units[0],
            n_out: self.units[layers],
        };
        let whole = self.whole;
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
                chunk.sumsq = if whole || penalty.is_some() {
                    0.0
                } else {
                    penalty_share(level, &cs, wave_start + i, n_chunks)
                };
                chunk.backprop_part(src, start, end, &ctx);
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
                self.sum_wave(wave, keep, done, &coef_slices, alpha_t, scale, threads);
            }
            wave_start += wave;
        }
        self.penalized_loss(
            spec,
            total,
            ctx.n_out,
            sw_sum_f64,
            alpha,
            &coef_slices,
            penalty,
            sumsq,
        )
    }

    /// Sums the per-chunk gradients of a wave of `wave` chunks, in chunk order, into
    /// [`Workspace::coef_grads`] and [`Workspace::intercept_grads`] (onto the earlier waves'
    /// sums when `keep`); on the last wave (`done`) the coefficients' gradients take the L2
    /// term `alpha * w` and every gradient the `scale`.
    fn sum_wave(
        &mut self,
        wave: usize,
        keep: bool,
        done: bool,
        coef_slices: &[Cow<'_, [T]>],
        alpha_t: T,
        scale: T,
        threads: Threads,
    ) {
        let level = self.level;
        let chunks = &self.chunks[..wave];
        #[allow(clippy::needless_range_loop)] // l indexes four parallel lists
        for l in 0..coef_slices.len() {
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

    /// The batch's loss from the chunks' data terms `total` (scikit-learn's mean over the
    /// weight sum), plus the L2 term `0.5 * alpha * sum(w^2) / weight_sum`: `sum(w^2)` summed
    /// in order here for a whole-batch workspace, otherwise `penalty` (the last update's) or
    /// the chunks' shares `sumsq`.
    fn penalized_loss(
        &self,
        spec: &NetSpec,
        total: f64,
        n_out: usize,
        sw_sum_f64: f64,
        alpha: f64,
        coef_slices: &[Cow<'_, [T]>],
        penalty: Option<f64>,
        sumsq: f64,
    ) -> f64 {
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
