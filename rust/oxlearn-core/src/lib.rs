//! Pure-Rust kernels behind oxlearn.
//!
//! This crate has no Python in it: every function takes ndarray views or slices, returns owned
//! arrays or a [`CoreError`], and never panics on user input. The PyO3 binding crate
//! (`oxlearn-py`) only converts arrays, releases the GIL and maps errors.
//!
//! * [`neighbors`]: brute-force nearest-neighbour search (GEMM-based squared Euclidean and direct
//!   loops for the other metrics), top-k selection with scikit-learn's tie order, voting.
//! * [`mlp`]: multi-layer perceptron forward/backward passes, losses, optimisers and the whole
//!   stochastic training loop.
//! * [`linalg`]: the one place that calls the GEMM crate.
//! * [`exec`]: where work runs (the explicit thread count every parallel kernel takes, the
//!   rayon pools, the MLP's spinning team, the cancellation flag) and why.
//! * [`platform`]: the CPU's vector instruction levels, detected once, and the one macro
//!   that compiles each kernel for them.
//!
//! ```
//! use oxlearn_core::exec::Threads;
//! let threads = Threads::from_n_jobs(Some(1));
//! assert_eq!(threads.count(), 1);
//! ```
#![warn(missing_docs)]

pub mod error;
pub mod exec;
pub mod linalg;
pub mod mlp;
pub mod neighbors;
pub mod platform;
pub mod real;

pub use error::{
    CoreError, Result, checked_len, try_array2, try_collect, try_filled, try_reserve, try_vec,
};
pub use exec::{Cancel, Threads};
pub use real::Real;
