//! Where work runs: the crate's threading policy, in one place.
//!
//! Every parallel kernel takes a [`Threads`] value (scikit-learn's `n_jobs`, mapped by
//! [`Threads::from_n_jobs`]) instead of using rayon's global pool, so a library user
//! controls parallelism per call, and the core never decides a thread count itself. The
//! work runs on one of two kinds of threads, chosen by the shape of its parallel sections:
//!
//! * [`pool`]: rayon pools cached per thread count (and rebuilt in a forked child, see
//!   [`forget_pools_after_fork`]). For sections that are few and long enough to amortise a
//!   wake-up: the neighbour search's tiles ([`Threads::for_each_index`], with
//!   [`Threads::wake`] and [`Threads::linger`] hiding the sleeping threads' wake-up around a
//!   millisecond-long search), the large GEMMs (`gemm`'s own rayon parallelism inside
//!   [`Threads::install`]), and the MLP's prediction and full-batch (L-BFGS) gradient.
//! * [`team`]: a [`Team`] of threads that lives for one MLP training loop and spins between
//!   its per-mini-batch sections (~100-200 µs of work each, two per step), where waking
//!   rayon's sleeping threads cost most of what they save. [`Exec`] lets the same step code
//!   run on the team or on the installed pool.
//!
//! Neither changes the bits: work is cut into fixed partitions reduced in a fixed order,
//! and only which thread runs a piece depends on the thread count.
//!
//! Stopping early is cooperative: long kernels poll a [`Cancel`] flag between units of work
//! of a few milliseconds and return [`crate::CoreError::Interrupted`]. One watcher sets it:
//! the Python binding's `watch` module (`rust/oxlearn-py/src/watch.rs`), which runs the
//! work on a helper thread while the calling thread runs Python's signal handlers, since
//! those need the GIL and the main thread. The core itself never looks at signals.

pub mod cancel;
pub mod pool;
pub mod team;

pub use cancel::Cancel;
pub use pool::{LINGER, Threads, WAKE_SPIN_LIMIT, Wake, forget_pools_after_fork};
pub use team::{Exec, Team, with_team};
