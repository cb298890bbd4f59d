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
    /// The caller asked the computation to stop (see [`crate::exec::Cancel`]).
    #[error("interrupted")]
    Interrupted,
    /// An allocation whose size follows from the input failed (or its size overflows).
    /// The binding maps it to `MemoryError`, as scikit-learn (NumPy) raises; Rust's own
    /// allocation failure would abort the whole interpreter instead.
    #[error("{}", oom_message(what, *bytes))]
    OutOfMemory {
        /// What was being allocated (for example "MLP hidden activations").
        what: String,
        /// Its size in bytes (`usize::MAX` when the size itself overflows).
        bytes: usize,
    },
}

fn oom_message(what: &str, bytes: usize) -> String {
    if bytes == usize::MAX {
        format!("could not allocate {what}: its size in bytes overflows")
    } else {
        format!(
            "could not allocate {bytes} bytes ({:.2} GiB) for {what}: out of memory",
            bytes as f64 / (1u64 << 30) as f64
        )
    }
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

    /// Builds a [`CoreError::OutOfMemory`] for `n` values of `T`.
    pub fn oom<T>(what: &str, n: usize) -> Self {
        Self::OutOfMemory {
            what: what.to_owned(),
            bytes: n.saturating_mul(size_of::<T>()),
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

/// The byte size of `n` values of `T`, or [`CoreError::OutOfMemory`] when it overflows
/// `isize::MAX` (the most a `Vec` may hold).
fn checked_bytes<T>(n: usize, what: &str) -> Result<usize> {
    n.checked_mul(size_of::<T>())
        .filter(|&b| isize::try_from(b).is_ok())
        .ok_or_else(|| CoreError::OutOfMemory {
            what: what.to_owned(),
            bytes: usize::MAX,
        })
}

/// Reserves room for exactly `additional` more values in `v`, or returns
/// [`CoreError::OutOfMemory`] naming `what` (instead of aborting the process as `Vec`'s
/// growth does on allocation failure). Every allocation whose size follows from the input
/// goes through this (or [`try_vec`]/[`try_filled`]), before the loops that fill it.
pub fn try_reserve<T>(v: &mut Vec<T>, additional: usize, what: &str) -> Result<()> {
    let total = v.len().saturating_add(additional);
    let bytes = checked_bytes::<T>(total, what)?;
    v.try_reserve_exact(additional)
        .map_err(|_| CoreError::OutOfMemory {
            what: what.to_owned(),
            bytes,
        })
}

/// `a * b` (a buffer's number of values), or [`CoreError::OutOfMemory`] naming `what`
/// when the product overflows.
pub fn checked_len(a: usize, b: usize, what: &str) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| CoreError::OutOfMemory {
        what: what.to_owned(),
        bytes: usize::MAX,
    })
}

/// An empty `Vec` with room for `n` values (see [`try_reserve`]).
pub fn try_vec<T>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    try_reserve(&mut v, n, what)?;
    Ok(v)
}

/// `n` copies of `value` (`vec![value; n]`, see [`try_reserve`]).
pub fn try_filled<T: Clone>(n: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = try_vec(n, what)?;
    v.resize(n, value);
    Ok(v)
}

/// Collects `iter`, whose length is exactly `n`, into a `Vec` allocated up front (see
/// [`try_reserve`]).
pub fn try_collect<T>(n: usize, iter: impl IntoIterator<Item = T>, what: &str) -> Result<Vec<T>> {
    let mut v = try_vec(n, what)?;
    v.extend(iter);
    Ok(v)
}

/// A `(rows, cols)` array of `value` (`Array2::from_elem`, see [`try_reserve`]).
pub fn try_array2<T: Clone>(
    rows: usize,
    cols: usize,
    value: T,
    what: &str,
) -> Result<ndarray::Array2<T>> {
    let v = try_filled(checked_len(rows, cols, what)?, value, what)?;
    ndarray::Array2::from_shape_vec((rows, cols), v).map_err(|_| CoreError::OutOfMemory {
        what: what.to_owned(),
        bytes: usize::MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::{CoreError, try_array2, try_collect, try_filled, try_reserve, try_vec};

    #[test]
    fn small_allocations_succeed() {
        let v = try_filled(5, 1.5_f64, "test").unwrap();
        assert_eq!(v, vec![1.5; 5]);
        let w: Vec<u8> = try_vec(7, "test").unwrap();
        assert!(w.is_empty() && w.capacity() >= 7);
        assert_eq!(try_collect(3, 0..3_usize, "test").unwrap(), vec![0, 1, 2]);
        let mut x = vec![1_u32];
        try_reserve(&mut x, 10, "test").unwrap();
        assert!(x.capacity() >= 11);
        assert!(try_filled::<f64>(0, 0.0, "test").unwrap().is_empty());
        let a = try_array2(2, 3, 7_i64, "test").unwrap();
        assert_eq!(a, ndarray::Array2::from_elem((2, 3), 7));
        assert!(try_array2(usize::MAX, 2, 0_u8, "test").is_err());
    }

    #[test]
    fn overflowing_sizes_are_errors_not_aborts() {
        let err = try_filled(usize::MAX / 4, 0.0_f64, "huge buffer").unwrap_err();
        assert_eq!(
            err,
            CoreError::OutOfMemory {
                what: "huge buffer".into(),
                bytes: usize::MAX
            }
        );
        assert!(err.to_string().contains("huge buffer"));
        let err = try_vec::<u64>(isize::MAX as usize / 8 + 1, "x").unwrap_err();
        assert!(matches!(
            err,
            CoreError::OutOfMemory {
                bytes: usize::MAX,
                ..
            }
        ));
    }

    #[test]
    fn failed_allocations_are_errors_not_aborts() {
        // 2^62 bytes fits isize but no allocator can provide it.
        let n = 1_usize << 59;
        let err = try_filled(n, 0.0_f64, "MLP activations").unwrap_err();
        assert_eq!(
            err,
            CoreError::OutOfMemory {
                what: "MLP activations".into(),
                bytes: n * 8
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("MLP activations") && msg.contains(&(n * 8).to_string()),
            "{msg}"
        );
        assert!(matches!(
            CoreError::oom::<f32>("y", 3),
            CoreError::OutOfMemory { bytes: 12, .. }
        ));
    }
}
