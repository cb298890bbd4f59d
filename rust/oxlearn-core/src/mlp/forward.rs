//! The forward pass (scikit-learn's `_forward_pass` / `_forward_pass_fast`).

use std::borrow::Cow;

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use super::{Activation, OutActivation, check_params, units_of};
use crate::error::{CoreError, Result};
use crate::linalg::gemm;
use crate::parallel::Threads;
use crate::real::Real;

/// Below this many elements an element-wise pass runs on the calling thread: splitting it
/// costs more than it saves.
const PAR_MIN_ELEMS: usize = 1 << 15;
/// Rows per parallel task of an element-wise pass (fixed, so the split does not depend on the
/// thread count; element-wise passes give the same bits however they are split anyway).
const PAR_CHUNK_ROWS: usize = 64;

/// Runs `f` over each block of whole rows of `data` (row-major, `width` columns), in
/// parallel on the installed pool when `threads` allows and the block is large.
pub(crate) fn for_row_blocks<T: Real>(
    threads: Threads,
    data: &mut [T],
    width: usize,
    f: impl Fn(&mut [T]) + Sync + Send,
) {
    if width == 0 || data.is_empty() {
        return;
    }
    if threads.count() > 1 && data.len() >= PAR_MIN_ELEMS {
        data.par_chunks_mut(PAR_CHUNK_ROWS * width).for_each(f);
    } else {
        f(data);
    }
}

/// A contiguous copy-free slice of an intercept vector (copies only a strided view).
pub(crate) fn bias_slice<'a, T: Real>(b: &'a ArrayView1<'_, T>) -> Cow<'a, [T]> {
    match b.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(b.to_vec()),
    }
}

/// Applies `activation` (hidden layer) or `out` (last layer) plus the bias to a row-major
/// block of pre-activations.
pub(crate) fn bias_activate_layer<T: Real>(
    z: &mut [T],
    bias: &[T],
    last: bool,
    activation: Activation,
    out: OutActivation,
    threads: Threads,
) {
    let w = bias.len();
    if last {
        for_row_blocks(threads, z, w, |blk| out.bias_activate(blk, bias));
    } else {
        for_row_blocks(threads, z, w, |blk| activation.bias_activate(blk, bias));
    }
}

/// One layer: `out = f(input @ coef + bias)`; `out` is a row-major `(rows, coef.ncols())`
/// buffer.
pub(crate) fn layer_forward<T: Real>(
    input: ArrayView2<'_, T>,
    coef: ArrayView2<'_, T>,
    bias: &[T],
    out: &mut [T],
    last: bool,
    activation: Activation,
    out_act: OutActivation,
    threads: Threads,
) {
    let rows = input.nrows();
    let w = coef.ncols();
    let out_view = ArrayViewMut2::from_shape((rows, w), &mut out[..rows * w])
        .expect("layer buffer holds rows * width values");
    gemm(T::one(), input, coef, T::zero(), out_view, threads);
    bias_activate_layer(
        &mut out[..rows * w],
        bias,
        last,
        activation,
        out_act,
        threads,
    );
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
    threads.install(|| {
        let mut prev: Option<Vec<T>> = None;
        for i in 0..layers {
            let w = units[i + 1];
            let mut out = vec![T::zero(); n * w];
            let bias = bias_slice(&intercepts[i]);
            let input = match &prev {
                None => x.view(),
                Some(p) => ArrayView2::from_shape((n, units[i]), p.as_slice())
                    .expect("previous layer buffer holds n * width values"),
            };
            layer_forward(
                input,
                coefs[i].view(),
                &bias,
                &mut out,
                i + 1 == layers,
                activation,
                out_activation,
                threads,
            );
            prev = Some(out);
        }
        let last = prev.unwrap_or_default();
        Array2::from_shape_vec((n, units[layers]), last)
            .map_err(|e| CoreError::invalid("forward", e.to_string()))
    })?
}
