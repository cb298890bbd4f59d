//! Bindings of the MLP kernels: `mlp_forward`, `mlp_loss_grad`, `mlp_fit_stochastic`.
//!
//! The contract is `python/oxlearn/_oxlearn.pyi` (MLP section). Every array of one call has
//! the training dtype (float32 or float64, dispatched once from `X`) and is C-contiguous;
//! anything else is a `TypeError`. Arrays are borrowed before the GIL is released.

use ndarray::{ArrayView1, ArrayView2};
use numpy::{Element, IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use oxlearn_core::mlp::{
    self, Activation, EpochControl, EpochEnd, Loss, NetSpec, Optimizer, OutActivation, Schedule,
    ScoreKind, TrainConfig, TrainData, TrainState, TrainSummary,
};
use oxlearn_core::{Real, Threads};
use pyo3::exceptions::{PyKeyboardInterrupt, PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::arrays::{
    Dtype, WritableParams, dtype_of, matrix_slice, read_matrices, read_matrix, read_vector,
    read_vectors, vector_slice,
};
use crate::errors::to_pyerr;
use crate::watch::{run_detached, run_watched};

fn threads_of(n_threads: i64) -> PyResult<Threads> {
    if n_threads < 1 {
        return Err(PyValueError::new_err(format!(
            "n_threads must be >= 1, got {n_threads}"
        )));
    }
    Ok(Threads::exactly(n_threads as usize))
}

/// The network scikit-learn's MLP describes with these names (its `activation`,
/// `out_activation_` and loss), checked by the core.
fn net_spec(
    layer_units: Vec<usize>,
    activation: &str,
    out_activation: &str,
    loss: &str,
) -> PyResult<NetSpec> {
    NetSpec::new(
        layer_units,
        Activation::parse(activation).map_err(to_pyerr)?,
        OutActivation::parse(out_activation).map_err(to_pyerr)?,
        Loss::parse(loss).map_err(to_pyerr)?,
    )
    .map_err(to_pyerr)
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
    let x = read_matrix::<T>(x, "X")?;
    let coefs = read_matrices::<T>(coefs, "coefs")?;
    let intercepts = read_vectors::<T>(intercepts, "intercepts")?;
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
    let packed = read_vector::<T>(packed, "packed")?;
    let x = read_matrix::<T>(x, "X")?;
    let y = read_matrix::<T>(y, "Y")?;
    let sw = sample_weight
        .map(|w| read_vector::<T>(w, "sample_weight"))
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
    let spec = net_spec(layer_units, activation, out_activation, loss)?;
    let threads = threads_of(n_threads)?;
    let sw = sample_weight.as_ref();
    match dtype_of(X, "X")? {
        Dtype::F64 => loss_grad_typed::<f64>(py, packed, X, Y, sw, &spec, alpha, threads),
        Dtype::F32 => loss_grad_typed::<f32>(py, packed, X, Y, sw, &spec, alpha, threads),
    }
}

/// The hyper-parameters of `mlp_fit_stochastic`: the network, the optimizer's settings
/// and the loop's rules, parsed and checked once when Python builds it (a bad name or
/// value raises there), frozen afterwards.
#[pyclass(frozen, module = "oxlearn._oxlearn", name = "StochasticConfig")]
pub struct StochasticConfig {
    train: TrainConfig,
    /// The optimizer with its initial learning rate and step count; a call takes the
    /// current ones from its [`TrainingState`].
    optimizer: Optimizer,
    threads: Threads,
}

#[pymethods]
impl StochasticConfig {
    #[new]
    #[pyo3(signature = (
        *, layer_units, activation, out_activation, loss, solver, alpha, batch_size,
        learning_rate, learning_rate_init, power_t, momentum, nesterovs_momentum, beta_1,
        beta_2, epsilon, max_iter, shuffle, seed, tol, n_iter_no_change, incremental,
        score_kind, n_threads, publish_weights
    ))]
    // The keyword-only fields of a config object, four of them flags.
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    fn new(
        layer_units: Vec<usize>,
        activation: &str,
        out_activation: &str,
        loss: &str,
        solver: &str,
        alpha: f64,
        batch_size: i64,
        learning_rate: &str,
        learning_rate_init: f64,
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
        score_kind: Option<&str>,
        n_threads: i64,
        publish_weights: bool,
    ) -> PyResult<Self> {
        let spec = net_spec(layer_units, activation, out_activation, loss)?;
        let schedule = Schedule::parse(learning_rate).map_err(to_pyerr)?;
        let optimizer = match solver {
            "sgd" => Optimizer::Sgd {
                lr_init: learning_rate_init,
                lr: learning_rate_init,
                schedule,
                momentum,
                nesterov: nesterovs_momentum,
                power_t,
            },
            "adam" => Optimizer::Adam {
                lr_init: learning_rate_init,
                lr: learning_rate_init,
                beta_1,
                beta_2,
                epsilon,
                t: 0,
            },
            _ => {
                return Err(PyValueError::new_err(format!(
                    "solver must be 'sgd' or 'adam' for mlp_fit_stochastic, got {solver:?}"
                )));
            }
        };
        let score_kind = score_kind
            .map(|k| ScoreKind::parse(k).map_err(to_pyerr))
            .transpose()?;
        Ok(Self {
            train: TrainConfig {
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
                publish_weights,
            },
            optimizer,
            threads: threads_of(n_threads)?,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "StochasticConfig(layer_units={:?}, max_iter={}, incremental={}, \
             publish_weights={})",
            self.train.spec.units,
            self.train.max_iter,
            self.train.incremental,
            self.train.publish_weights
        )
    }
}

/// What one `mlp_fit_stochastic` call carries over to the next (scikit-learn keeps it on
/// the estimator and its optimizer): given to a call, and returned updated in its result.
#[pyclass(frozen, get_all, module = "oxlearn._oxlearn", name = "TrainingState")]
pub struct TrainingState {
    /// `t_`: samples seen.
    t: u64,
    /// Adam's step count (0 for SGD).
    adam_t: u64,
    /// The current learning rate (after schedule changes).
    learning_rate: f64,
    /// `best_loss_` (`inf` at the start).
    best_loss: f64,
    /// `best_validation_score_` (`-inf` at the start).
    best_validation_score: f64,
    /// `_no_improvement_count`.
    no_improvement_count: usize,
}

#[pymethods]
impl TrainingState {
    #[new]
    #[pyo3(signature = (
        *, t, adam_t, learning_rate, best_loss, best_validation_score, no_improvement_count
    ))]
    fn new(
        t: u64,
        adam_t: u64,
        learning_rate: f64,
        best_loss: f64,
        best_validation_score: f64,
        no_improvement_count: i64,
    ) -> PyResult<Self> {
        Ok(Self {
            t,
            adam_t,
            learning_rate,
            best_loss,
            best_validation_score,
            no_improvement_count: non_negative("no_improvement_count", no_improvement_count)?,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "TrainingState(t={}, adam_t={}, learning_rate={}, best_loss={}, \
             best_validation_score={}, no_improvement_count={})",
            self.t,
            self.adam_t,
            self.learning_rate,
            self.best_loss,
            self.best_validation_score,
            self.no_improvement_count
        )
    }
}

impl TrainingState {
    /// The core's state: the configured optimizer at this state's rate and step.
    fn to_core(&self, optimizer: &Optimizer) -> TrainState {
        let mut optimizer = optimizer.clone();
        match &mut optimizer {
            Optimizer::Sgd { lr, .. } => *lr = self.learning_rate,
            Optimizer::Adam { lr, t, .. } => {
                *lr = self.learning_rate;
                *t = self.adam_t;
            }
        }
        TrainState {
            optimizer,
            t: self.t,
            best_loss: self.best_loss,
            best_validation_score: self.best_validation_score,
            no_improvement_count: self.no_improvement_count,
        }
    }

    fn from_core(state: &TrainState) -> Self {
        Self {
            t: state.t,
            adam_t: match state.optimizer {
                Optimizer::Adam { t, .. } => t,
                Optimizer::Sgd { .. } => 0,
            },
            learning_rate: state.optimizer.learning_rate(),
            best_loss: state.best_loss,
            best_validation_score: state.best_validation_score,
            no_improvement_count: state.no_improvement_count,
        }
    }
}

/// What one `mlp_fit_stochastic` call did.
#[pyclass(
    frozen,
    get_all,
    module = "oxlearn._oxlearn",
    name = "StochasticResult"
)]
pub struct StochasticResult {
    /// Epochs run by this call.
    n_iter: usize,
    /// This call's epoch losses.
    loss_curve: Vec<f64>,
    /// This call's validation scores (early stopping).
    validation_scores: Vec<f64>,
    /// "converged", "max_iter", "incremental", "requested" or "interrupted".
    stop_reason: &'static str,
    /// scikit-learn's stopping text with the optimizer's suffix, or "".
    stop_message: String,
    /// The state to carry over to the next call.
    state: Py<TrainingState>,
}

#[pymethods]
impl StochasticResult {
    fn __repr__(&self) -> String {
        format!(
            "StochasticResult(n_iter={}, stop_reason={:?})",
            self.n_iter, self.stop_reason
        )
    }
}

/// `(X_val, Y_val, sample_weight_val)`, borrowed.
type ValArrays<'py, T> = (
    PyReadonlyArray2<'py, T>,
    PyReadonlyArray2<'py, T>,
    Option<PyReadonlyArray1<'py, T>>,
);

/// The arrays of one call, in the training dtype `T`, borrowed before the GIL is released.
struct Borrowed<'py, T: Real + Element> {
    x: PyReadonlyArray2<'py, T>,
    y: PyReadonlyArray2<'py, T>,
    sw: Option<PyReadonlyArray1<'py, T>>,
    val: Option<ValArrays<'py, T>>,
    params: WritableParams<'py, T>,
    first: WritableParams<'py, T>,
    second: WritableParams<'py, T>,
    best: WritableParams<'py, T>,
}

impl<'py, T: Real + Element> Borrowed<'py, T> {
    fn borrow(a: &FitArrays<'_, 'py>) -> PyResult<Self> {
        let val = match a.validation {
            Some((xv, yv, swv)) => Some((
                read_matrix::<T>(xv, "X_val")?,
                read_matrix::<T>(yv, "Y_val")?,
                swv.map(|w| read_vector::<T>(w, "sample_weight_val"))
                    .transpose()?,
            )),
            None => None,
        };
        Ok(Self {
            x: read_matrix::<T>(a.x, "X")?,
            y: read_matrix::<T>(a.y, "Y")?,
            sw: a
                .sample_weight
                .map(|w| read_vector::<T>(w, "sample_weight"))
                .transpose()?,
            val,
            params: WritableParams::borrow(a.params.0, a.params.1, "coefs", "intercepts")?,
            first: WritableParams::borrow_packed(a.moments.0, "opt_first")?,
            second: WritableParams::borrow_packed(a.moments.1, "opt_second")?,
            best: WritableParams::borrow(a.best.0, a.best.1, "best_coefs", "best_intercepts")?,
        })
    }
}

/// Runs the core loop on a helper thread (`run_watched`) while this thread runs Python's
/// signal handlers. The epoch-end hook reads the cancel flag (Ctrl-C stops training after
/// that epoch, and the fit returns what it trained, as scikit-learn's does) and, when
/// `on_epoch` is given, calls it from the training thread with the GIL taken for that call
/// only: one hand-back per epoch, and none at all without a callback.
fn fit_typed<T: Real + Element>(
    py: Python<'_>,
    arrays: &FitArrays<'_, '_>,
    config: &StochasticConfig,
    state: &TrainingState,
    on_epoch: Option<&Bound<'_, PyAny>>,
) -> PyResult<StochasticResult> {
    let mut b = Borrowed::<T>::borrow(arrays)?;
    let val = match &b.val {
        Some((xv, yv, swv)) => Some((
            matrix_slice(xv)?,
            matrix_slice(yv)?,
            swv.as_ref().map(vector_slice).transpose()?,
        )),
        None => None,
    };
    let data = TrainData {
        x: matrix_slice(&b.x)?,
        y: matrix_slice(&b.y)?,
        sw: b.sw.as_ref().map(vector_slice).transpose()?,
        val,
    };
    let mut p_sl = b.params.slices()?;
    let mut f_sl = b.first.slices()?;
    let mut s_sl = b.second.slices()?;
    let mut b_sl = b.best.slices()?;
    let cfg = &config.train;
    let threads = config.threads;
    let mut core_state = state.to_core(&config.optimizer);
    let on_epoch: Option<Py<PyAny>> = on_epoch.map(|f| f.clone().unbind());
    let mut callback_error: Option<PyErr> = None;

    let (outcome, raised) = run_watched(py, |cancel| {
        let mut kept = KeptThreadState(None);
        let mut hook = |end: &EpochEnd| {
            if cancel.is_cancelled() {
                kept.release();
                return EpochControl::Interrupt;
            }
            let Some(f) = &on_epoch else {
                return EpochControl::Continue;
            };
            kept.keep();
            let control = Python::attach(|py| {
                match f
                    .call1(py, (end.n_iter, end.loss, end.validation_score, end.last))
                    .and_then(|stop| stop.is_truthy(py))
                {
                    Ok(true) => EpochControl::Stop,
                    Ok(false) => EpochControl::Continue,
                    Err(e) => {
                        // Ctrl-C inside the callback is an interrupt like any other.
                        if !e.is_instance_of::<PyKeyboardInterrupt>(py) {
                            callback_error = Some(e);
                        }
                        EpochControl::Interrupt
                    }
                }
            });
            if end.last || control != EpochControl::Continue {
                kept.release();
            }
            control
        };
        mlp::fit_stochastic(
            data,
            &mut p_sl,
            &mut f_sl,
            &mut s_sl,
            &mut b_sl,
            cfg,
            &mut core_state,
            threads,
            &mut hook,
        )
    });
    if let Some(e) = callback_error {
        return Err(e);
    }
    let summary: TrainSummary = match raised {
        Some(e) if !e.is_instance_of::<PyKeyboardInterrupt>(py) => return Err(e),
        _ => outcome?,
    };
    Ok(StochasticResult {
        n_iter: summary.n_iter,
        loss_curve: summary.loss_curve,
        validation_scores: summary.validation_scores,
        stop_reason: summary.stop_reason.as_str(),
        stop_message: summary.stop_message,
        state: Py::new(py, TrainingState::from_core(&core_state))?,
    })
}

/// One Python thread state kept on the training thread from its first epoch-end call into
/// Python to its last, so that each call in between only takes the GIL.
///
/// The loop runs on a thread Python did not create (a pool thread, or `run_watched`'s
/// helper), where `Python::attach` makes a thread state and deletes it again on every call:
/// that cost more than the rest of an epoch's hand-back. Not released on `Drop`: a thread
/// state must be released on the thread that made it, and the hook is dropped on another; the
/// hook releases it on its last call (the loop's last epoch, a stop or an interrupt). Should
/// the loop fail after a call, the state stays with that thread (one per thread, freed when
/// Python exits).
struct KeptThreadState(Option<pyo3::ffi::PyGILState_STATE>);

impl KeptThreadState {
    /// Gives this thread a Python thread state that outlives the next `Python::attach`.
    fn keep(&mut self) {
        if self.0.is_none() {
            // SAFETY: Python is initialised (this runs inside a call from Python), and
            // `PyGILState_Ensure` may be called from any thread then: it makes this thread's
            // state and takes the GIL; `PyEval_SaveThread` gives the GIL back while the state
            // stays, counted once by the GILState API until `release` drops it.
            unsafe {
                let state = pyo3::ffi::PyGILState_Ensure();
                pyo3::ffi::PyEval_SaveThread();
                self.0 = Some(state);
            }
        }
    }

    /// Deletes the state `keep` made; a no-op when there is none.
    fn release(&mut self) {
        if let Some(state) = self.0.take() {
            // SAFETY: `keep` ran on this thread (the loop calls its hook from one thread) and
            // left this thread's state without the GIL, so `PyEval_RestoreThread` takes the GIL
            // back for it, and `PyGILState_Release` with `keep`'s state deletes the state and
            // releases the GIL, as a matching `PyGILState_Ensure`/`Release` pair does.
            unsafe {
                pyo3::ffi::PyEval_RestoreThread(pyo3::ffi::PyGILState_GetThisThreadState());
                pyo3::ffi::PyGILState_Release(state);
            }
        }
    }
}

/// The array arguments of `mlp_fit_stochastic`, before dtype dispatch.
struct FitArrays<'a, 'py> {
    x: &'a Bound<'py, PyAny>,
    y: &'a Bound<'py, PyAny>,
    sample_weight: Option<&'a Bound<'py, PyAny>>,
    /// `(coefs, intercepts)`.
    params: (&'a [Bound<'py, PyAny>], &'a [Bound<'py, PyAny>]),
    /// The optimizer's state lists `(first, second)`.
    moments: (&'a [Bound<'py, PyAny>], &'a [Bound<'py, PyAny>]),
    /// `(best_coefs, best_intercepts)`.
    best: (&'a [Bound<'py, PyAny>], &'a [Bound<'py, PyAny>]),
    /// `(X_val, Y_val, sample_weight_val)` (early stopping).
    validation: Option<ValObjects<'a, 'py>>,
}

/// `(X_val, Y_val, sample_weight_val)`, before dtype dispatch.
type ValObjects<'a, 'py> = (
    &'a Bound<'py, PyAny>,
    &'a Bound<'py, PyAny>,
    Option<&'a Bound<'py, PyAny>>,
);

fn non_negative(name: &str, v: i64) -> PyResult<usize> {
    usize::try_from(v).map_err(|_| PyValueError::new_err(format!("{name} must be >= 0, got {v}")))
}

type ArrayList<'py> = Vec<Bound<'py, PyAny>>;

/// scikit-learn's _fit_stochastic loop, whole, with the GIL released.
#[pyfunction]
#[pyo3(signature = (
    X, Y, sample_weight, params, moments, best, validation, config, state, on_epoch=None
))]
#[allow(non_snake_case)] // the contract names the arrays `X`, `Y`, as scikit-learn does
#[allow(clippy::too_many_arguments)] // ten typed groups: data, weights, state, config, hook
#[allow(clippy::type_complexity)]
fn mlp_fit_stochastic<'py>(
    py: Python<'py>,
    X: &Bound<'py, PyAny>,
    Y: &Bound<'py, PyAny>,
    sample_weight: Option<Bound<'py, PyAny>>,
    params: (ArrayList<'py>, ArrayList<'py>),
    moments: (ArrayList<'py>, ArrayList<'py>),
    best: (ArrayList<'py>, ArrayList<'py>),
    validation: Option<(
        Bound<'py, PyAny>,
        Bound<'py, PyAny>,
        Option<Bound<'py, PyAny>>,
    )>,
    config: PyRef<'py, StochasticConfig>,
    state: PyRef<'py, TrainingState>,
    on_epoch: Option<Bound<'py, PyAny>>,
) -> PyResult<StochasticResult> {
    if validation.is_some() != config.train.score_kind.is_some() {
        return Err(PyValueError::new_err(
            "the validation set and config.score_kind go together (early stopping)",
        ));
    }
    let arrays = FitArrays {
        x: X,
        y: Y,
        sample_weight: sample_weight.as_ref(),
        params: (&params.0, &params.1),
        moments: (&moments.0, &moments.1),
        best: (&best.0, &best.1),
        validation: validation.as_ref().map(|(x, y, w)| (x, y, w.as_ref())),
    };
    let on_epoch = on_epoch.as_ref().filter(|f| !f.is_none());
    match dtype_of(X, "X")? {
        Dtype::F64 => fit_typed::<f64>(py, &arrays, &config, &state, on_epoch),
        Dtype::F32 => fit_typed::<f32>(py, &arrays, &config, &state, on_epoch),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mlp_forward, m)?)?;
    m.add_function(wrap_pyfunction!(mlp_loss_grad, m)?)?;
    m.add_function(wrap_pyfunction!(mlp_fit_stochastic, m)?)?;
    m.add_class::<StochasticConfig>()?;
    m.add_class::<TrainingState>()?;
    m.add_class::<StochasticResult>()?;
    Ok(())
}
