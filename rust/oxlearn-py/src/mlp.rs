//! Bindings of the MLP kernels: `mlp_forward`, `mlp_loss_grad`, `mlp_fit_stochastic`.
//!
//! The contract is `python/oxlearn/_oxlearn.pyi` (MLP section). Every array of one call has
//! the training dtype (float32 or float64, dispatched once from `X`) and is C-contiguous;
//! anything else is a `TypeError`. Arrays are borrowed before the GIL is released.

use ndarray::{ArrayView1, ArrayView2};
use numpy::{
    Element, IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use oxlearn_core::mlp::{self, Activation, Loss, NetSpec, OutActivation};
use oxlearn_core::{Real, Threads};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::errors::{run_detached, to_pyerr};

/// The training dtype of a call.
#[derive(Clone, Copy)]
enum Dtype {
    F32,
    F64,
}

fn dtype_of(x: &Bound<'_, PyAny>, name: &str) -> PyResult<Dtype> {
    if x.cast::<PyArray2<f64>>().is_ok() {
        Ok(Dtype::F64)
    } else if x.cast::<PyArray2<f32>>().is_ok() {
        Ok(Dtype::F32)
    } else {
        Err(PyTypeError::new_err(format!(
            "{name} must be a 2-D float32 or float64 numpy array"
        )))
    }
}

fn type_name<T: Real>() -> &'static str {
    if std::mem::size_of::<T>() == 4 {
        "float32"
    } else {
        "float64"
    }
}

/// Borrows a 2-D array of the training dtype, C-contiguous.
fn ro2<'py, T: Real + Element>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<PyReadonlyArray2<'py, T>> {
    let arr = obj.extract::<PyReadonlyArray2<'py, T>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a 2-D {} numpy array (the training dtype)",
            type_name::<T>()
        ))
    })?;
    if !arr.is_c_contiguous() {
        return Err(PyTypeError::new_err(format!("{name} must be C-contiguous")));
    }
    Ok(arr)
}

/// Borrows a 1-D array of the training dtype, C-contiguous.
fn ro1<'py, T: Real + Element>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    let arr = obj.extract::<PyReadonlyArray1<'py, T>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a 1-D {} numpy array (the training dtype)",
            type_name::<T>()
        ))
    })?;
    if !arr.is_c_contiguous() {
        return Err(PyTypeError::new_err(format!("{name} must be C-contiguous")));
    }
    Ok(arr)
}

fn ro2_list<'py, T: Real + Element>(
    objs: &[Bound<'py, PyAny>],
    name: &str,
) -> PyResult<Vec<PyReadonlyArray2<'py, T>>> {
    objs.iter()
        .enumerate()
        .map(|(i, o)| ro2::<T>(o, &format!("{name}[{i}]")))
        .collect()
}

fn ro1_list<'py, T: Real + Element>(
    objs: &[Bound<'py, PyAny>],
    name: &str,
) -> PyResult<Vec<PyReadonlyArray1<'py, T>>> {
    objs.iter()
        .enumerate()
        .map(|(i, o)| ro1::<T>(o, &format!("{name}[{i}]")))
        .collect()
}

fn threads_of(n_threads: i64) -> PyResult<Threads> {
    if n_threads < 1 {
        return Err(PyValueError::new_err(format!(
            "n_threads must be >= 1, got {n_threads}"
        )));
    }
    Ok(Threads::exactly(n_threads as usize))
}

fn forward_typed<'py, T: Real + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    coefs: &[Bound<'py, PyAny>],
    intercepts: &[Bound<'py, PyAny>],
    activation: Activation,
    out_activation: OutActivation,
    threads: Threads,
) -> PyResult<Bound<'py, PyAny>> {
    let x = ro2::<T>(x, "X")?;
    let coefs = ro2_list::<T>(coefs, "coefs")?;
    let intercepts = ro1_list::<T>(intercepts, "intercepts")?;
    let xv = x.as_array();
    let cv: Vec<ArrayView2<'_, T>> = coefs.iter().map(PyReadonlyArray2::as_array).collect();
    let iv: Vec<ArrayView1<'_, T>> = intercepts.iter().map(PyReadonlyArray1::as_array).collect();
    let out = run_detached(py, || {
        mlp::forward_predict(xv, &cv, &iv, activation, out_activation, threads)
    })?;
    Ok(out.into_pyarray(py).into_any())
}

/// Output-layer activations, shape (n, n_outputs), in X's dtype (_forward_pass_fast).
#[pyfunction]
#[pyo3(signature = (X, coefs, intercepts, activation, out_activation, n_threads))]
#[allow(non_snake_case)] // the contract names the design matrix `X`, as scikit-learn does
fn mlp_forward<'py>(
    py: Python<'py>,
    X: &Bound<'py, PyAny>,
    coefs: Vec<Bound<'py, PyAny>>,
    intercepts: Vec<Bound<'py, PyAny>>,
    activation: &str,
    out_activation: &str,
    n_threads: i64,
) -> PyResult<Bound<'py, PyAny>> {
    let activation = Activation::parse(activation).map_err(to_pyerr)?;
    let out_activation = OutActivation::parse(out_activation).map_err(to_pyerr)?;
    let threads = threads_of(n_threads)?;
    match dtype_of(X, "X")? {
        Dtype::F64 => forward_typed::<f64>(
            py,
            X,
            &coefs,
            &intercepts,
            activation,
            out_activation,
            threads,
        ),
        Dtype::F32 => forward_typed::<f32>(
            py,
            X,
            &coefs,
            &intercepts,
            activation,
            out_activation,
            threads,
        ),
    }
}

fn loss_grad_typed<'py, T: Real + Element>(
    py: Python<'py>,
    packed: &Bound<'py, PyAny>,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    sample_weight: Option<&Bound<'py, PyAny>>,
    spec: &NetSpec,
    alpha: f64,
    threads: Threads,
) -> PyResult<(f64, Bound<'py, PyAny>)> {
    let packed = ro1::<T>(packed, "packed")?;
    let x = ro2::<T>(x, "X")?;
    let y = ro2::<T>(y, "Y")?;
    let sw = sample_weight
        .map(|w| ro1::<T>(w, "sample_weight"))
        .transpose()?;
    let pv = packed
        .as_slice()
        .map_err(|e| PyTypeError::new_err(e.to_string()))?;
    let (xv, yv) = (x.as_array(), y.as_array());
    let swv = sw.as_ref().map(PyReadonlyArray1::as_array);
    let (loss, grad) = run_detached(py, || {
        mlp::loss_grad_packed(pv, xv, yv, swv, spec, alpha, threads)
    })?;
    Ok((loss, PyArray1::from_vec(py, grad).into_any()))
}

/// Loss and packed gradient for L-BFGS (scikit-learn's _loss_grad_lbfgs).
#[pyfunction]
#[pyo3(signature = (
    packed, X, Y, sample_weight, layer_units, activation, out_activation, loss, alpha, n_threads
))]
#[allow(non_snake_case)] // the contract names the arrays `X` and `Y`, as scikit-learn does
fn mlp_loss_grad<'py>(
    py: Python<'py>,
    packed: &Bound<'py, PyAny>,
    X: &Bound<'py, PyAny>,
    Y: &Bound<'py, PyAny>,
    sample_weight: Option<Bound<'py, PyAny>>,
    layer_units: Vec<usize>,
    activation: &str,
    out_activation: &str,
    loss: &str,
    alpha: f64,
    n_threads: i64,
) -> PyResult<(f64, Bound<'py, PyAny>)> {
    let spec = NetSpec::new(
        layer_units,
        Activation::parse(activation).map_err(to_pyerr)?,
        OutActivation::parse(out_activation).map_err(to_pyerr)?,
        Loss::parse(loss).map_err(to_pyerr)?,
    )
    .map_err(to_pyerr)?;
    let threads = threads_of(n_threads)?;
    let sw = sample_weight.as_ref();
    match dtype_of(X, "X")? {
        Dtype::F64 => loss_grad_typed::<f64>(py, packed, X, Y, sw, &spec, alpha, threads),
        Dtype::F32 => loss_grad_typed::<f32>(py, packed, X, Y, sw, &spec, alpha, threads),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mlp_forward, m)?)?;
    m.add_function(wrap_pyfunction!(mlp_loss_grad, m)?)?;
    Ok(())
}
