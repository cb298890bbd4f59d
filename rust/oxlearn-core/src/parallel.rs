//! Explicit thread counts.
//!
//! Every parallel kernel takes a [`Threads`] value instead of using rayon's global pool, so a
//! library user controls parallelism per call (scikit-learn's `n_jobs`) and a forked child
//! never inherits a pool whose threads do not exist: each call builds (or reuses) its own pool.

use crate::error::{CoreError, Result};

/// How many threads a kernel may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// Run on the calling thread only.
    Single,
    /// Run on a rayon pool of this many threads (at least 2).
    Pool(usize),
}

impl Threads {
    /// Maps scikit-learn's `n_jobs` to a thread count: `None` and `-1` mean all cores,
    /// `-2` all but one (joblib's convention), a positive number that many threads.
    pub fn from_n_jobs(n_jobs: Option<i64>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let n = match n_jobs {
            None => cores,
            Some(n) if n > 0 => n as usize,
            Some(n) => {
                // -1 -> all cores, -2 -> all but one, ...
                let back = n.unsigned_abs() as usize - 1;
                cores.saturating_sub(back).max(1)
            }
        };
        Self::exactly(n)
    }

    /// Exactly `n` threads (`n <= 1` means [`Threads::Single`]).
    pub fn exactly(n: usize) -> Self {
        if n <= 1 { Self::Single } else { Self::Pool(n) }
    }

    /// The number of threads this value allows.
    pub fn count(self) -> usize {
        match self {
            Self::Single => 1,
            Self::Pool(n) => n,
        }
    }

    /// The matching `gemm` parallelism for a GEMM call made *inside* [`Threads::install`].
    pub fn gemm(self) -> gemm::Parallelism {
        match self {
            Self::Single => gemm::Parallelism::None,
            Self::Pool(n) => gemm::Parallelism::Rayon(n),
        }
    }

    /// Runs `f` with a rayon pool of this many threads installed (so `par_iter` and GEMM calls
    /// inside it use exactly these threads), or directly on the calling thread for `Single`.
    pub fn install<R: Send>(self, f: impl FnOnce() -> R + Send) -> Result<R> {
        match self {
            Self::Single => Ok(f()),
            Self::Pool(n) => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("oxlearn-{i}"))
                    .build()
                    .map_err(|e| CoreError::ThreadPool(e.to_string()))?;
                Ok(pool.install(f))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Threads;

    #[test]
    fn n_jobs_mapping() {
        assert_eq!(Threads::from_n_jobs(Some(1)), Threads::Single);
        assert_eq!(Threads::from_n_jobs(Some(3)), Threads::Pool(3));
        assert!(Threads::from_n_jobs(None).count() >= 1);
        assert!(Threads::from_n_jobs(Some(-1)).count() >= 1);
        assert_eq!(Threads::from_n_jobs(Some(-1000)), Threads::Single);
    }

    #[test]
    fn install_runs_closure() {
        assert_eq!(Threads::Pool(2).install(rayon::current_num_threads), Ok(2));
        assert_eq!(Threads::Single.install(|| 7), Ok(7));
    }
}
