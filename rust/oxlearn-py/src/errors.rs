//! Error mapping: a core error, or a panic caught at the boundary, as the exception
//! scikit-learn raises in the same situation.

use oxlearn_core::CoreError;
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// Maps a core error to the exception scikit-learn raises in the same situation.
pub fn to_pyerr(err: CoreError) -> PyErr {
    match err {
        CoreError::ShapeMismatch { .. }
        | CoreError::EmptyInput(_)
        | CoreError::InvalidParameter { .. }
        | CoreError::NonFinite(_) => PyValueError::new_err(err.to_string()),
        CoreError::ThreadPool(_) => PyRuntimeError::new_err(err.to_string()),
        // Only reached when the work stopped without a signal handler raising (the
        // handler's own exception is raised instead, see `crate::watch::run_interruptible`).
        CoreError::Interrupted => PyKeyboardInterrupt::new_err("interrupted"),
        CoreError::OutOfMemory { .. } => PyMemoryError::new_err(err.to_string()),
    }
}

/// The outcome of work run under `catch_unwind`, as a Python result.
pub fn finish<T>(outcome: std::thread::Result<Result<T, CoreError>>) -> PyResult<T> {
    match outcome {
        Ok(result) => result.map_err(to_pyerr),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(PyRuntimeError::new_err(format!(
                "internal error in oxlearn (please report it): {msg}"
            )))
        }
    }
}
