//! The flag that stops a long computation early (see [`super`] for who sets it).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{CoreError, Result};

/// A request to stop a long computation early (the user pressed Ctrl-C), shared by the
/// caller that watches for it and the kernels that poll it.
///
/// Kernels check it between units of work of at most a few milliseconds (a tile of
/// distances, say) and return [`CoreError::Interrupted`] once it is set; they never block
/// on it. The binding's signal watcher sets it from the thread that runs Python's signal
/// handlers (see [`super`]).
#[derive(Debug, Default)]
pub struct Cancel(AtomicBool);

impl Cancel {
    /// A token nobody cancels (for calls that cannot be interrupted).
    pub fn never() -> &'static Self {
        static NEVER: Cancel = Cancel(AtomicBool::new(false));
        &NEVER
    }

    /// Asks the computation to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(CoreError::Interrupted)` once a stop was asked for.
    #[inline]
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(CoreError::Interrupted)
        } else {
            Ok(())
        }
    }
}
