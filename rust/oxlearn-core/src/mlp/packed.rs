//! scikit-learn's packed parameter vector (every coef raveled in C order, then every
//! intercept) and the L-BFGS objective on it: [`loss_grad_packed`], the loss and packed
//! gradient of the whole batch on a whole-batch [`Workspace`].

use ndarray::{ArrayView1, ArrayView2};

use super::forward::bias_slice;
use super::workspace::Workspace;
use super::{NetSpec, check_params};
use crate::error::{CoreError, Result, try_collect, try_vec};
use crate::exec::Threads;
use crate::real::Real;

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
