//! Error mapping and the one helper that runs core work with the GIL released.

use std::panic::{AssertUnwindSafe, catch_unwind};

use oxlearn_core::CoreError;
use pyo3::exceptions::{PyMemoryError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// Maps a core error to the exception scikit-learn raises in the same situation.
pub fn to_pyerr(err: CoreError) -> PyErr {
    match err {
        CoreError::ShapeMismatch { .. }
        | CoreError::EmptyInput(_)
        | CoreError::InvalidParameter { .. }
        | CoreError::NonFinite(_) => PyValueError::new_err(err.to_string()),
        CoreError::ThreadPool(_) => PyRuntimeError::new_err(err.to_string()),
        CoreError::OutOfMemory { .. } => PyMemoryError::new_err(err.to_string()),
    }
}

/// Runs `f` with the GIL released and maps its error.
///
/// A panic inside the core (a bug: the core never panics on validated input) becomes a
/// `RuntimeError` asking for a report, instead of a `PanicException` that `except Exception`
/// would not catch.
pub fn run_detached<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> Result<T, CoreError> + Send,
{
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
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
