//! The typed error every fallible kernel returns.
//!
//! Messages say what is wrong and what to fix; the binding crate maps each variant to the
//! exception type scikit-learn raises in the same situation (almost always `ValueError`).

use thiserror::Error;

/// An error from an oxlearn kernel.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// Two arrays that must agree in one dimension do not.
    #[error("{what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Which dimension of which arrays disagree.
        what: String,
        /// The size the kernel expected.
        expected: usize,
        /// The size it was given.
        got: usize,
    },
    /// An array that must hold at least one element is empty.
    #[error("{0} is empty: at least one sample is required")]
    EmptyInput(String),
    /// A parameter is out of its valid range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter's name, as the Python estimator calls it.
        name: String,
        /// What is wrong with the value and what is allowed.
        reason: String,
    },
    /// An array holds NaN or infinity where finite values are required, or a computation
    /// diverged (for example MLP weights after too large a learning rate).
    #[error("{0}")]
    NonFinite(String),
    /// The thread pool could not be created.
    #[error("could not start the thread pool: {0}")]
    ThreadPool(String),
    /// The caller asked the computation to stop (see [`crate::parallel::Cancel`]).
    #[error("interrupted")]
    Interrupted,
}

/// Shorthand for results of oxlearn kernels.
pub type Result<T> = std::result::Result<T, CoreError>;

impl CoreError {
    /// Builds an [`CoreError::InvalidParameter`].
    pub fn invalid(name: &str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    /// Builds a [`CoreError::ShapeMismatch`].
    pub fn shape(what: impl Into<String>, expected: usize, got: usize) -> Self {
        Self::ShapeMismatch {
            what: what.into(),
            expected,
            got,
        }
    }
}
