//! Bindings of the MLP kernels: `mlp_forward`, `mlp_loss_grad`, `mlp_fit_stochastic`.
//!
//! The contract is `python/oxlearn/_oxlearn.pyi` (MLP section). Every array of one call has
//! the training dtype (float32 or float64, dispatched once from `X`) and is C-contiguous;
//! anything else is a `TypeError`. Arrays are borrowed before the GIL is released.

use std::sync::mpsc;

use ndarray::{ArrayView1, ArrayView2};
use numpy::{
    Element, IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyReadwriteArray1, PyReadwriteArray2, PyUntypedArrayMethods,
};
use oxlearn_core::mlp::{
    self, Activation, EpochControl, Loss, NetSpec, Optimizer, OutActivation, Schedule, ScoreKind,
    TrainConfig, TrainData, TrainState, TrainSummary,
};
use oxlearn_core::{Real, Threads};
use pyo3::exceptions::{PyKeyboardInterrupt, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{run_detached, run_watched, to_pyerr};

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

/// The error for an array this call cannot borrow: one it also writes (the same array, or
/// memory shared with it, passed twice) or a read-only one it must write. rust-numpy's
/// `extract` would panic there (a `PanicException` that `except Exception` misses).
fn borrow_error(name: &str, e: &numpy::BorrowError) -> PyErr {
    PyValueError::new_err(format!(
        "{name} cannot be borrowed ({e}): pass arrays that share no memory with the arrays \
         this call writes, and writeable ones where it writes"
    ))
}

/// Borrows a 2-D array of the training dtype, C-contiguous.
fn ro2<'py, T: Real + Element>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<PyReadonlyArray2<'py, T>> {
    let arr = obj.cast::<PyArray2<T>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a 2-D {} numpy array (the training dtype)",
            type_name::<T>()
        ))
    })?;
    let arr = arr.try_readonly().map_err(|e| borrow_error(name, &e))?;
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
    let arr = obj.cast::<PyArray1<T>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a 1-D {} numpy array (the training dtype)",
            type_name::<T>()
        ))
    })?;
    let arr = arr.try_readonly().map_err(|e| borrow_error(name, &e))?;
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

/// Borrows a list of arrays of the training dtype for writing, C-contiguous, and returns
/// them with their flat slices.
fn rw_list<'py, T: Real + Element, A>(
    objs: &[Bound<'py, PyAny>],
    name: &str,
    extract: impl Fn(&Bound<'py, PyAny>) -> PyResult<A>,
) -> PyResult<Vec<A>> {
    objs.iter()
        .enumerate()
        .map(|(i, o)| {
            extract(o).map_err(|e| {
                PyTypeError::new_err(format!(
                    "{name}[{i}] must be a writeable C-contiguous {} array of the right \
                     dimension, not shared with another argument ({e})",
                    type_name::<T>()
                ))
            })
        })
        .collect()
}

fn rw2<'py, T: Real + Element>(o: &Bound<'py, PyAny>) -> PyResult<PyReadwriteArray2<'py, T>> {
    let a = o
        .cast::<PyArray2<T>>()?
        .try_readwrite()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    if a.is_c_contiguous() {
        Ok(a)
    } else {
        Err(PyTypeError::new_err("not C-contiguous"))
    }
}

fn rw1<'py, T: Real + Element>(o: &Bound<'py, PyAny>) -> PyResult<PyReadwriteArray1<'py, T>> {
    let a = o
        .cast::<PyArray1<T>>()?
        .try_readwrite()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    if a.is_c_contiguous() {
        Ok(a)
    } else {
        Err(PyTypeError::new_err("not C-contiguous"))
    }
}

/// Borrows `coefs` (2-D) and `intercepts` (1-D) style lists: the first `n2` arrays are 2-D,
/// the rest 1-D (scikit-learn's `_pack` order), and returns their flat slices.
struct RwParams<'py, T: Real + Element> {
    two: Vec<PyReadwriteArray2<'py, T>>,
    one: Vec<PyReadwriteArray1<'py, T>>,
}

impl<'py, T: Real + Element> RwParams<'py, T> {
    fn borrow(
        two: &[Bound<'py, PyAny>],
        one: &[Bound<'py, PyAny>],
        name2: &str,
        name1: &str,
    ) -> PyResult<Self> {
        Ok(Self {
            two: rw_list::<T, _>(two, name2, rw2::<T>)?,
            one: rw_list::<T, _>(one, name1, rw1::<T>)?,
        })
    }

    /// Mixed lists (`opt_first`/`opt_second`): 2-D arrays first, then 1-D, split by ndim.
    fn borrow_packed(objs: &[Bound<'py, PyAny>], name: &str) -> PyResult<Self> {
        let split = objs
            .iter()
            .position(|o| o.cast::<PyArray1<T>>().is_ok())
            .unwrap_or(objs.len());
        Ok(Self {
            two: rw_list::<T, _>(&objs[..split], name, rw2::<T>)?,
            one: rw_list::<T, _>(&objs[split..], name, rw1::<T>)?,
        })
    }

    fn slices(&mut self) -> PyResult<Vec<&mut [T]>> {
        let mut out = Vec::with_capacity(self.two.len() + self.one.len());
        for a in &mut self.two {
            out.push(
                a.as_slice_mut()
                    .map_err(|e| PyTypeError::new_err(e.to_string()))?,
            );
        }
        for a in &mut self.one {
            out.push(
                a.as_slice_mut()
                    .map_err(|e| PyTypeError::new_err(e.to_string()))?,
            );
        }
        Ok(out)
    }
}

fn slice_of<'a, T: Real + Element>(a: &'a PyReadonlyArray2<'_, T>) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|e| PyTypeError::new_err(e.to_string()))
}

fn slice_of1<'a, T: Real + Element>(a: &'a PyReadonlyArray1<'_, T>) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|e| PyTypeError::new_err(e.to_string()))
}

/// Everything of `mlp_fit_stochastic` that is not an array.
struct FitArgs {
    cfg: TrainConfig,
    state: TrainState,
    threads: Threads,
}

/// Runs the core loop on a helper thread while this (the calling, normally main) thread
/// re-takes the GIL to run pending signal handlers (only the main thread can). With a
/// Python callback it services every epoch-end hook (signals, then the callback, then go on
/// or stop); without one `errors::run_watched` polls the signals and the loop only reads a
/// cancel flag at each epoch end.
fn fit_typed<'py, T: Real + Element>(
    py: Python<'py>,
    arrays: &FitArrays<'_, 'py>,
    callback: Option<Py<PyAny>>,
    mut args: FitArgs,
) -> PyResult<Bound<'py, PyDict>> {
    let x = ro2::<T>(arrays.x, "X")?;
    let y = ro2::<T>(arrays.y, "Y")?;
    let sw = arrays
        .sample_weight
        .map(|w| ro1::<T>(w, "sample_weight"))
        .transpose()?;
    let x_val = arrays.x_val.map(|a| ro2::<T>(a, "X_val")).transpose()?;
    let y_val = arrays.y_val.map(|a| ro2::<T>(a, "Y_val")).transpose()?;
    let sw_val = arrays
        .sample_weight_val
        .map(|a| ro1::<T>(a, "sample_weight_val"))
        .transpose()?;
    let mut params = RwParams::<T>::borrow(arrays.coefs, arrays.intercepts, "coefs", "intercepts")?;
    let mut first = RwParams::<T>::borrow_packed(arrays.opt_first, "opt_first")?;
    let mut second = RwParams::<T>::borrow_packed(arrays.opt_second, "opt_second")?;
    let mut best = RwParams::<T>::borrow(
        arrays.best_coefs,
        arrays.best_intercepts,
        "best_coefs",
        "best_intercepts",
    )?;
    let val = match (&x_val, &y_val) {
        (Some(xv), Some(yv)) => Some((
            slice_of(xv)?,
            slice_of(yv)?,
            sw_val.as_ref().map(slice_of1).transpose()?,
        )),
        (None, None) => None,
        _ => {
            return Err(PyValueError::new_err(
                "X_val and Y_val must both be given (early stopping) or both be None",
            ));
        }
    };
    let data = TrainData {
        x: slice_of(&x)?,
        y: slice_of(&y)?,
        sw: sw.as_ref().map(slice_of1).transpose()?,
        val,
    };
    let mut p_sl = params.slices()?;
    let mut f_sl = first.slices()?;
    let mut s_sl = second.slices()?;
    let mut b_sl = best.slices()?;
    let mut callback_error: Option<PyErr> = None;
    let cfg = &args.cfg;
    let state = &mut args.state;
    let threads = args.threads;

    let summary: TrainSummary = if callback.is_none() {
        // No per-epoch callback: the loop never waits for this thread, which runs the
        // signal handlers meanwhile (`run_watched`); the epoch hook only reads the cancel
        // flag (a per-epoch hand-off cost two thread wake-ups per epoch, several percent of
        // a small network's fit). A Ctrl-C stops training after the epoch in which the flag
        // is seen, and the fit returns what it trained, as scikit-learn's does; another
        // exception from a signal handler is raised.
        let (outcome, raised) = run_watched(py, |cancel| {
            let mut hook = |_: usize, _: f64, _: Option<f64>| {
                if cancel.is_cancelled() {
                    EpochControl::Interrupt
                } else {
                    EpochControl::Continue
                }
            };
            mlp::fit_stochastic(
                data, &mut p_sl, &mut f_sl, &mut s_sl, &mut b_sl, cfg, state, threads, &mut hook,
            )
        });
        match raised {
            Some(e) if !e.is_instance_of::<PyKeyboardInterrupt>(py) => return Err(e),
            _ => outcome?,
        }
    } else {
        run_detached(py, || {
            let (ev_tx, ev_rx) = mpsc::channel::<(usize, f64, Option<f64>)>();
            let (ctl_tx, ctl_rx) = mpsc::channel::<EpochControl>();
            std::thread::scope(|s| {
                let worker = s.spawn(move || {
                    let mut hook = move |n_iter: usize, loss: f64, score: Option<f64>| {
                        if ev_tx.send((n_iter, loss, score)).is_err() {
                            return EpochControl::Interrupt;
                        }
                        ctl_rx.recv().unwrap_or(EpochControl::Interrupt)
                    };
                    mlp::fit_stochastic(
                        data, &mut p_sl, &mut f_sl, &mut s_sl, &mut b_sl, cfg, state, threads,
                        &mut hook,
                    )
                });
                // Ends when the worker drops its sender, i.e. when training is over.
                for (n_iter, loss, score) in ev_rx {
                    let ctl = Python::attach(|py| {
                        if let Err(e) = py.check_signals() {
                            if !e.is_instance_of::<PyKeyboardInterrupt>(py) {
                                callback_error = Some(e);
                            }
                            return EpochControl::Interrupt;
                        }
                        if let Some(cb) = &callback
                            && let Err(e) = cb.call1(py, (n_iter, loss, score))
                        {
                            // Ctrl-C inside the callback is an interrupt like any other.
                            if !e.is_instance_of::<PyKeyboardInterrupt>(py) {
                                callback_error = Some(e);
                            }
                            return EpochControl::Interrupt;
                        }
                        EpochControl::Continue
                    });
                    // The worker may already be gone only if it failed; its result says so.
                    let _ = ctl_tx.send(ctl);
                }
                match worker.join() {
                    Ok(result) => result,
                    Err(payload) => std::panic::resume_unwind(payload),
                }
            })
        })?
    };
    if let Some(e) = callback_error {
        return Err(e);
    }
    let st = &args.state;
    let d = PyDict::new(py);
    d.set_item("n_iter", summary.n_iter)?;
    d.set_item("loss_curve", summary.loss_curve)?;
    d.set_item("validation_scores", summary.validation_scores)?;
    d.set_item("best_loss", st.best_loss)?;
    d.set_item("best_validation_score", st.best_validation_score)?;
    d.set_item("no_improvement_count", st.no_improvement_count)?;
    d.set_item("t", st.t)?;
    let adam_t = match st.optimizer {
        Optimizer::Adam { t, .. } => t,
        Optimizer::Sgd { .. } => 0,
    };
    d.set_item("adam_t", adam_t)?;
    d.set_item("current_learning_rate", st.optimizer.learning_rate())?;
    d.set_item("stop_reason", summary.stop_reason.as_str())?;
    d.set_item("stop_message", summary.stop_message)?;
    Ok(d)
}

/// The array arguments of `mlp_fit_stochastic`, before dtype dispatch.
struct FitArrays<'a, 'py> {
    x: &'a Bound<'py, PyAny>,
    y: &'a Bound<'py, PyAny>,
    sample_weight: Option<&'a Bound<'py, PyAny>>,
    coefs: &'a [Bound<'py, PyAny>],
    intercepts: &'a [Bound<'py, PyAny>],
    opt_first: &'a [Bound<'py, PyAny>],
    opt_second: &'a [Bound<'py, PyAny>],
    best_coefs: &'a [Bound<'py, PyAny>],
    best_intercepts: &'a [Bound<'py, PyAny>],
    x_val: Option<&'a Bound<'py, PyAny>>,
    y_val: Option<&'a Bound<'py, PyAny>>,
    sample_weight_val: Option<&'a Bound<'py, PyAny>>,
}

fn non_negative(name: &str, v: i64) -> PyResult<usize> {
    usize::try_from(v).map_err(|_| PyValueError::new_err(format!("{name} must be >= 0, got {v}")))
}

/// scikit-learn's _fit_stochastic loop, whole, with the GIL released.
#[pyfunction]
#[pyo3(signature = (
    X, Y, sample_weight, coefs, intercepts, opt_first, opt_second, best_coefs,
    best_intercepts, X_val, Y_val, sample_weight_val, callback, *, activation, out_activation,
    loss, solver, alpha, batch_size, learning_rate, learning_rate_init, current_learning_rate,
    power_t, momentum, nesterovs_momentum, beta_1, beta_2, epsilon, max_iter, shuffle, seed,
    tol, n_iter_no_change, incremental, t, adam_t, best_loss, best_validation_score,
    no_improvement_count, score_kind, n_threads
))]
#[allow(non_snake_case)] // the contract names the arrays `X`, `Y`, as scikit-learn does
fn mlp_fit_stochastic<'py>(
    py: Python<'py>,
    X: &Bound<'py, PyAny>,
    Y: &Bound<'py, PyAny>,
    sample_weight: Option<Bound<'py, PyAny>>,
    coefs: Vec<Bound<'py, PyAny>>,
    intercepts: Vec<Bound<'py, PyAny>>,
    opt_first: Vec<Bound<'py, PyAny>>,
    opt_second: Vec<Bound<'py, PyAny>>,
    best_coefs: Vec<Bound<'py, PyAny>>,
    best_intercepts: Vec<Bound<'py, PyAny>>,
    X_val: Option<Bound<'py, PyAny>>,
    Y_val: Option<Bound<'py, PyAny>>,
    sample_weight_val: Option<Bound<'py, PyAny>>,
    callback: Option<Py<PyAny>>,
    activation: &str,
    out_activation: &str,
    loss: &str,
    solver: &str,
    alpha: f64,
    batch_size: i64,
    learning_rate: &str,
    learning_rate_init: f64,
    current_learning_rate: f64,
    power_t: f64,
    momentum: f64,
    nesterovs_momentum: bool,
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
    max_iter: i64,
    shuffle: bool,
    seed: u64,
    tol: f64,
    n_iter_no_change: i64,
    incremental: bool,
    t: u64,
    adam_t: u64,
    best_loss: f64,
    best_validation_score: f64,
    no_improvement_count: i64,
    score_kind: &str,
    n_threads: i64,
) -> PyResult<Bound<'py, PyDict>> {
    let mut units = Vec::with_capacity(coefs.len() + 1);
    for (i, c) in coefs.iter().enumerate() {
        let shape = c
            .cast::<numpy::PyUntypedArray>()
            .map_err(|_| PyTypeError::new_err(format!("coefs[{i}] must be a numpy array")))?
            .shape()
            .to_vec();
        if shape.len() != 2 {
            return Err(PyTypeError::new_err(format!("coefs[{i}] must be 2-D")));
        }
        if i == 0 {
            units.push(shape[0]);
        }
        units.push(shape[1]);
    }
    let spec = NetSpec::new(
        units,
        Activation::parse(activation).map_err(to_pyerr)?,
        OutActivation::parse(out_activation).map_err(to_pyerr)?,
        Loss::parse(loss).map_err(to_pyerr)?,
    )
    .map_err(to_pyerr)?;
    let schedule = Schedule::parse(learning_rate).map_err(to_pyerr)?;
    let optimizer = match solver {
        "sgd" => Optimizer::Sgd {
            lr_init: learning_rate_init,
            lr: current_learning_rate,
            schedule,
            momentum,
            nesterov: nesterovs_momentum,
            power_t,
        },
        "adam" => Optimizer::Adam {
            lr_init: learning_rate_init,
            lr: current_learning_rate,
            beta_1,
            beta_2,
            epsilon,
            t: adam_t,
        },
        _ => {
            return Err(PyValueError::new_err(format!(
                "solver must be 'sgd' or 'adam' for mlp_fit_stochastic, got {solver:?}"
            )));
        }
    };
    let early = X_val.is_some();
    let score_kind = if early {
        Some(ScoreKind::parse(score_kind).map_err(to_pyerr)?)
    } else {
        None
    };
    let args = FitArgs {
        cfg: TrainConfig {
            spec,
            alpha,
            batch_size: non_negative("batch_size", batch_size)?,
            max_iter: non_negative("max_iter", max_iter)?,
            shuffle,
            seed,
            tol,
            n_iter_no_change: non_negative("n_iter_no_change", n_iter_no_change)?,
            incremental,
            score_kind,
        },
        state: TrainState {
            optimizer,
            t,
            best_loss,
            best_validation_score,
            no_improvement_count: non_negative("no_improvement_count", no_improvement_count)?,
        },
        threads: threads_of(n_threads)?,
    };
    let arrays = FitArrays {
        x: X,
        y: Y,
        sample_weight: sample_weight.as_ref(),
        coefs: &coefs,
        intercepts: &intercepts,
        opt_first: &opt_first,
        opt_second: &opt_second,
        best_coefs: &best_coefs,
        best_intercepts: &best_intercepts,
        x_val: X_val.as_ref(),
        y_val: Y_val.as_ref(),
        sample_weight_val: sample_weight_val.as_ref(),
    };
    match dtype_of(X, "X")? {
        Dtype::F64 => fit_typed::<f64>(py, &arrays, callback, args),
        Dtype::F32 => fit_typed::<f32>(py, &arrays, callback, args),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mlp_forward, m)?)?;
    m.add_function(wrap_pyfunction!(mlp_loss_grad, m)?)?;
    m.add_function(wrap_pyfunction!(mlp_fit_stochastic, m)?)?;
    Ok(())
}
