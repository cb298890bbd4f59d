//! Loss and gradient (scikit-learn's `_backprop` and `_compute_loss_grad`) on preallocated
//! buffers.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2};

use super::forward::{bias_slice, layer_forward};
use super::{NetSpec, check_params};
use crate::error::{CoreError, Result};
use crate::linalg::gemm;
use crate::parallel::Threads;
use crate::real::Real;

/// Every buffer one loss-and-gradient evaluation needs, for batches of up to `cap` rows.
///
/// Allocated once per fit; batches use the leading rows.
#[derive(Debug, Clone)]
pub struct Workspace<T> {
    units: Vec<usize>,
    cap: usize,
    /// `acts[l]` holds layer `l + 1`'s activations, `(cap, units[l + 1])` row-major.
    acts: Vec<Vec<T>>,
    /// `deltas[l]`: gradient of the loss w.r.t. layer `l + 1`'s pre-activations.
    deltas: Vec<Vec<T>>,
    /// Gradient of each coefficient matrix (scikit-learn's `coef_grads`).
    pub coef_grads: Vec<Array2<T>>,
    /// Gradient of each intercept vector (scikit-learn's `intercept_grads`).
    pub intercept_grads: Vec<Array1<T>>,
}

impl<T: Real> Workspace<T> {
    /// Buffers for a network with layer widths `units` and batches of up to `cap` rows.
    pub fn new(units: &[usize], cap: usize) -> Self {
        let acts = units[1..]
            .iter()
            .map(|&w| vec![T::zero(); cap * w])
            .collect();
        let deltas = units[1..]
            .iter()
            .map(|&w| vec![T::zero(); cap * w])
            .collect();
        let coef_grads = units
            .windows(2)
            .map(|w| Array2::zeros((w[0], w[1])))
            .collect();
        let intercept_grads = units[1..].iter().map(|&w| Array1::zeros(w)).collect();
        Self {
            units: units.to_vec(),
            cap,
            acts,
            deltas,
            coef_grads,
            intercept_grads,
        }
    }

    /// The largest batch these buffers hold.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The output-layer activations of the last forward pass over `rows` rows.
    pub fn output(&self, rows: usize) -> &[T] {
        let l = self.units.len() - 1;
        &self.acts[l - 1][..rows * self.units[l]]
    }

    /// Forward pass over the rows of `x` into the activation buffers.
    pub fn forward(
        &mut self,
        x: ArrayView2<'_, T>,
        coefs: &[ArrayView2<'_, T>],
        intercepts: &[&[T]],
        spec: &NetSpec,
        threads: Threads,
    ) {
        let rows = x.nrows();
        let layers = coefs.len();
        for i in 0..layers {
            let (done, rest) = self.acts.split_at_mut(i);
            let input = if i == 0 {
                x.view()
            } else {
                ArrayView2::from_shape((rows, self.units[i]), &done[i - 1][..rows * self.units[i]])
                    .expect("activation buffer holds rows * width values")
            };
            layer_forward(
                input,
                coefs[i].view(),
                intercepts[i],
                &mut rest[0],
                i + 1 == layers,
                spec.activation,
                spec.out_activation,
                threads,
            );
        }
    }

    /// Loss (with the L2 term) and gradients for one batch: `x` `(rows, units[0])`, `y`
    /// row-major `(rows, n_outputs)`, `sw` per-row weights or `None`. The gradients land in
    /// [`Workspace::coef_grads`] and [`Workspace::intercept_grads`], already including the
    /// L2 term and the division by the weight sum, exactly as scikit-learn's `_backprop`.
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
        let rows = x.nrows();
        let layers = coefs.len();
        let last = layers - 1;
        let n_out = self.units[layers];
        self.forward(x, coefs, intercepts, spec, threads);

        let out = &self.acts[last][..rows * n_out];
        let mut loss = spec.loss.value(out, y, n_out, sw);
        let mut values = 0.0_f64;
        for c in coefs {
            values += c.iter().map(|&v| (v * v).to_f64_lossless()).sum::<f64>();
        }
        let sw_sum_f64 = match sw {
            Some(w) => w.iter().map(|&v| v.to_f64_lossless()).sum::<f64>(),
            None => rows as f64,
        };
        loss += (0.5 * alpha) * values / sw_sum_f64;
        let sw_sum = T::from_f64_lossy(sw_sum_f64);
        let alpha_t = T::from_f64_lossy(alpha);

        // delta[last] = (activations[-1] - y) * sample_weight, with its column sums.
        {
            let delta = &mut self.deltas[last][..rows * n_out];
            let colsum = self.intercept_grads[last]
                .as_slice_mut()
                .expect("owned gradient vector is contiguous");
            colsum.fill(T::zero());
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
        self.layer_grads(last, x, coefs, rows, sw_sum, alpha_t, threads);

        for i in (1..=last).rev() {
            let (lo, hi) = self.deltas.split_at_mut(i);
            let w_in = self.units[i];
            let w_out = self.units[i + 1];
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
                threads,
            );
            let colsum = self.intercept_grads[i - 1]
                .as_slice_mut()
                .expect("owned gradient vector is contiguous");
            spec.activation
                .backprop_rows(&self.acts[i - 1][..rows * w_in], d_prev, colsum);
            self.layer_grads(i - 1, x, coefs, rows, sw_sum, alpha_t, threads);
        }
        loss
    }

    /// `coef_grads[l] = (activations[l].T @ deltas[l] + alpha * coefs[l]) / sw_sum` and
    /// `intercept_grads[l] /= sw_sum` (the column sums are already there).
    fn layer_grads(
        &mut self,
        l: usize,
        x: ArrayView2<'_, T>,
        coefs: &[ArrayView2<'_, T>],
        rows: usize,
        sw_sum: T,
        alpha: T,
        threads: Threads,
    ) {
        let w_out = self.units[l + 1];
        let input = if l == 0 {
            x.view()
        } else {
            ArrayView2::from_shape(
                (rows, self.units[l]),
                &self.acts[l - 1][..rows * self.units[l]],
            )
            .expect("activation buffer holds rows * width values")
        };
        let delta = ArrayView2::from_shape((rows, w_out), &self.deltas[l][..rows * w_out])
            .expect("delta buffer holds rows * width values");
        let g = &mut self.coef_grads[l];
        gemm(T::one(), input.t(), delta, T::zero(), g.view_mut(), threads);
        let coef = &coefs[l];
        if let (Some(gs), Some(ws)) = (g.as_slice_mut(), coef.as_slice()) {
            for (gv, &wv) in gs.iter_mut().zip(ws) {
                *gv = (*gv + alpha * wv) / sw_sum;
            }
        } else {
            ndarray::Zip::from(g.view_mut())
                .and(coef)
                .for_each(|gv, &wv| *gv = (*gv + alpha * wv) / sw_sum);
        }
        for v in &mut self.intercept_grads[l] {
            *v /= sw_sum;
        }
    }
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
    let sw_c = sw.map(|w| w.to_vec());
    let bias: Vec<_> = intercepts.iter().map(bias_slice).collect();
    let bias_refs: Vec<&[T]> = bias.iter().map(AsRef::as_ref).collect();
    threads.install(|| {
        let mut ws = Workspace::new(units, x.nrows());
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
        let mut grad = Vec::with_capacity(packed.len());
        for g in &ws.coef_grads {
            grad.extend(g.iter().copied());
        }
        for g in &ws.intercept_grads {
            grad.extend(g.iter().copied());
        }
        (loss, grad)
    })
}
