//! PyO3 bindings: the compiled module `oxlearn._oxlearn`.
//!
//! Every function here takes C-contiguous float32/float64 arrays that the Python estimators
//! validated with scikit-learn's own utilities, borrows them as ndarray views, releases the GIL
//! with [`watch::run_detached`] around the core call, and maps `CoreError` to the exception
//! scikit-learn raises. No state lives on the Rust side.

use pyo3::prelude::*;
use pyo3::types::PyDict;

mod arrays;
mod errors;
mod mlp;
mod neighbors;
mod watch;

/// What this build of the compiled module is and what the CPU offers it.
#[pyfunction]
fn build_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", env!("CARGO_PKG_VERSION"))?;
    d.set_item("debug_assertions", cfg!(debug_assertions))?;
    d.set_item("target_arch", std::env::consts::ARCH)?;
    // The SIMD instruction sets detected at run time (the GEMM crate dispatches on the same).
    d.set_item("simd", oxlearn_core::platform::Cpu::get().feature_names())?;
    d.set_item(
        "available_parallelism",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    )?;
    Ok(d)
}

/// `pthread_atfork` child handler: the parent's pool threads do not exist in the child.
#[cfg(unix)]
extern "C" fn after_fork_in_child() {
    oxlearn_core::exec::forget_pools_after_fork();
}

/// Registers the fork handler once per process.
fn register_fork_handler() {
    #[cfg(unix)]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: the handler is a plain `extern "C"` function that only touches an atomic.
            unsafe {
                libc::pthread_atfork(None, None, Some(after_fork_in_child));
            }
        });
    }
}

#[pymodule(gil_used = false)]
fn _oxlearn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    register_fork_handler();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(build_info, m)?)?;
    neighbors::register(m)?;
    mlp::register(m)?;
    Ok(())
}
