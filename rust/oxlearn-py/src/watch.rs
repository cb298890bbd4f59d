//! Running core work from Python: every call with the GIL released ([`run_detached`]), and
//! long ones on a helper thread while the calling thread watches for Ctrl-C
//! ([`run_interruptible`], [`run_watched`]).
//!
//! This is the binding's signal watcher: [`run_watched`] polls Python's signal handlers and
//! sets the core's [`Cancel`] flag. The core's `exec` module (`oxlearn_core::exec`) states
//! the threading policy this is part of: the core runs its own work on rayon pools or a
//! spinning team, never looks at signals, and leaves this watcher's helper thread to the
//! binding because only the binding can reach Python.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;

use oxlearn_core::{Cancel, CoreError};
use pyo3::prelude::*;

use crate::errors::finish;

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
    finish(py.detach(|| catch_unwind(AssertUnwindSafe(f))))
}

/// How often [`run_interruptible`] runs Python's signal handlers while the work runs.
pub const SIGNAL_POLL: Duration = Duration::from_millis(20);

/// Work estimated below this many multiply-adds runs through [`run_detached`]: it ends
/// sooner than a Ctrl-C could be noticed, and a helper thread would cost a visible share
/// of it (a digits-sized search takes about half a millisecond).
pub const INTERRUPTIBLE_WORK: usize = 50_000_000;

/// Runs `f` with the GIL released and stops it on Ctrl-C.
///
/// Work estimated below [`INTERRUPTIBLE_WORK`] (`work`, in multiply-adds) runs through
/// [`run_detached`], without polling; longer work through [`run_watched`], and when a
/// signal handler raised (Ctrl-C: `KeyboardInterrupt`), its exception is raised and
/// whatever `f` computed is dropped.
pub fn run_interruptible<T, F>(py: Python<'_>, work: usize, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&Cancel) -> Result<T, CoreError> + Send,
{
    if work < INTERRUPTIBLE_WORK {
        return run_detached(py, || f(Cancel::never()));
    }
    match run_watched(py, f) {
        (_, Some(raised)) => Err(raised),
        (outcome, None) => outcome,
    }
}

/// Runs `f` with the GIL released while this thread runs Python's signal handlers: the one
/// place that watches for Ctrl-C during Rust work.
///
/// Signal handlers run only on the main thread, and only with the GIL: so `f` runs on a
/// helper thread while this thread re-takes the GIL every [`SIGNAL_POLL`] to run them.
/// When a handler raises, `f`'s [`Cancel`] token is set (`f` polls it between units of
/// work and returns early) and the handler's exception is returned beside `f`'s outcome,
/// for the caller to decide: a search drops its result, an MLP fit keeps the epochs it
/// trained (scikit-learn's behaviour on Ctrl-C).
pub fn run_watched<T, F>(py: Python<'_>, f: F) -> (PyResult<T>, Option<PyErr>)
where
    T: Send,
    F: FnOnce(&Cancel) -> Result<T, CoreError> + Send,
{
    let cancel = Cancel::default();
    let mut raised: Option<PyErr> = None;
    let outcome = py.detach(|| {
        std::thread::scope(|s| {
            let (done_tx, done_rx) = mpsc::channel::<()>();
            let cancel = &cancel;
            let worker = s.spawn(move || {
                let result = catch_unwind(AssertUnwindSafe(|| f(cancel)));
                drop(done_tx);
                result
            });
            while let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(SIGNAL_POLL) {
                if raised.is_some() {
                    continue;
                }
                Python::attach(|py| {
                    if let Err(e) = py.check_signals() {
                        raised = Some(e);
                        cancel.cancel();
                    }
                });
            }
            worker.join().unwrap_or_else(Err)
        })
    });
    (finish(outcome), raised)
}
