//! Explicit thread counts and the rayon pools behind them (see [`super`] for which work
//! runs here).
//!
//! Pools are built on first use for each thread count and kept: starting threads costs
//! tens of microseconds per thread, as much as a whole small search. A forked child never
//! uses a pool whose threads stayed in the parent: [`forget_pools_after_fork`] (which the
//! Python binding registers with `pthread_atfork`) bumps a generation counter, and a pool of
//! an older generation is leaked (its threads do not exist in the child) and rebuilt.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use rayon::ThreadPool;

use crate::error::{CoreError, Result};

/// Bumped in a forked child; pools built under another value are not used again.
static FORK_GENERATION: AtomicUsize = AtomicUsize::new(0);

/// Cached pools: `(generation, thread count, pool)`.
static POOLS: Mutex<Vec<(usize, usize, Arc<ThreadPool>)>> = Mutex::new(Vec::new());

/// The fork generation under which [`POOLS`] was last locked: a holder of an older
/// generation was a thread of the parent process.
static HOLDER_GENERATION: AtomicUsize = AtomicUsize::new(0);

/// Marks every cached pool stale. Async-signal-safe (one atomic add), so it may run in a
/// `pthread_atfork` child handler.
pub fn forget_pools_after_fork() {
    FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
}

fn build_pool(n: usize) -> Result<ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("oxlearn-{i}"))
        .build()
        .map_err(|e| CoreError::ThreadPool(e.to_string()))
}

/// The cached pool of `n` threads, built if needed.
fn pool(n: usize) -> Result<Arc<ThreadPool>> {
    let generation = FORK_GENERATION.load(Ordering::SeqCst);
    let mut pools = match POOLS.try_lock() {
        Ok(pools) => pools,
        // The list stays consistent whatever a panicking holder was doing.
        Err(TryLockError::Poisoned(e)) => e.into_inner(),
        // Held by a thread of this process (it locked under this generation): wait for it,
        // so that concurrent callers share one pool instead of each building their own.
        Err(TryLockError::WouldBlock) if HOLDER_GENERATION.load(Ordering::SeqCst) == generation => {
            POOLS.lock().unwrap_or_else(PoisonError::into_inner)
        }
        // Held when this process was forked, by a parent thread that does not exist here: it
        // is never released, so never block on it; without the cache a call builds its own.
        Err(TryLockError::WouldBlock) => return build_pool(n).map(Arc::new),
    };
    HOLDER_GENERATION.store(generation, Ordering::SeqCst);
    if pools.iter().any(|&(g, _, _)| g != generation) {
        // Stale pools' threads live in the parent only: leak them rather than join them.
        for (g, m, p) in std::mem::take(&mut *pools) {
            if g == generation {
                pools.push((g, m, p));
            } else {
                std::mem::forget(p);
            }
        }
    }
    if let Some((_, _, p)) = pools.iter().find(|&&(g, m, _)| g == generation && m == n) {
        return Ok(Arc::clone(p));
    }
    let p = Arc::new(build_pool(n)?);
    pools.push((generation, n, Arc::clone(&p)));
    Ok(p)
}

/// Bumped whenever new work is given to the pools: releases threads spinning in
/// [`Threads::linger`].
static WORK_EPOCH: AtomicUsize = AtomicUsize::new(0);

/// How long [`Threads::linger`] keeps pool threads spinning after a parallel section.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// The longest a thread woken by [`Threads::wake`] spins waiting for its guard to drop.
pub const WAKE_SPIN_LIMIT: std::time::Duration = std::time::Duration::from_millis(2);

/// Keeps the pool threads woken by [`Threads::wake`] spinning until dropped (also on an
/// early return or a panic, so they never wait out more than the spin limit).
#[derive(Debug)]
#[must_use = "the woken threads spin until this guard is dropped"]
pub struct Wake(Option<Arc<AtomicBool>>);

impl Drop for Wake {
    fn drop(&mut self) {
        if let Some(go) = &self.0 {
            go.store(true, Ordering::Release);
        }
    }
}

/// Spins until `done()` or until `limit` has passed, reading the clock every 64 checks.
fn spin_until(done: impl Fn() -> bool, limit: std::time::Duration) {
    let start = std::time::Instant::now();
    let mut checks = 0_u32;
    while !done() {
        checks = checks.wrapping_add(1);
        if checks.is_multiple_of(64) && start.elapsed() >= limit {
            return;
        }
        std::hint::spin_loop();
    }
}

/// The pool of `n - 1` threads that work beside the calling thread in
/// [`Threads::for_each_index`] (and that [`Threads::wake`] and [`Threads::linger`] keep
/// awake): with the caller, exactly `n` threads run, never `n + 1` on `n` cores.
fn helper_pool(n: usize) -> Result<Arc<ThreadPool>> {
    pool(n.saturating_sub(1).max(1))
}

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
                let pool = pool(n)?;
                // Already inside this pool (a nested call): run here rather than queue.
                if pool.current_thread_index().is_some() {
                    return Ok(f());
                }
                WORK_EPOCH.fetch_add(1, Ordering::Release);
                Ok(pool.install(f))
            }
        }
    }

    /// Starts waking `count() - 1` pool threads now, for a [`Threads::for_each_index`] that
    /// follows some serial work: each runs a job that spins until the returned [`Wake`] is
    /// dropped (or [`WAKE_SPIN_LIMIT`] has passed), then goes back to the pool, where the
    /// parallel section's jobs are waiting. Drop the guard just before that section.
    ///
    /// A sleeping pool thread takes tens of microseconds to wake (much more in a virtual
    /// machine, where the idle core must be woken too); started here, that latency overlaps
    /// with the serial work (converting inputs, norms) instead of delaying the first tile.
    /// Does nothing for [`Threads::Single`], or when called from inside the pool.
    pub fn wake(self) -> Wake {
        let Self::Pool(n) = self else {
            return Wake(None);
        };
        let Ok(pool) = helper_pool(n) else {
            return Wake(None);
        };
        if pool.current_thread_index().is_some() {
            return Wake(None);
        }
        WORK_EPOCH.fetch_add(1, Ordering::Release);
        let go = Arc::new(AtomicBool::new(false));
        for _ in 1..n {
            let go = Arc::clone(&go);
            pool.spawn(move || spin_until(|| go.load(Ordering::Acquire), WAKE_SPIN_LIMIT));
        }
        Wake(Some(go))
    }

    /// Keeps `count() - 1` pool threads spinning for up to [`LINGER`] after a parallel
    /// section, or until new work reaches the pools, before they go back to sleep.
    ///
    /// OpenMP runtimes do the same after each parallel region (libgomp's spin count): a
    /// program that alternates short searches with a little Python work (fit, then
    /// predict; a k sweep) finds the threads awake instead of paying their wake-up, which
    /// in a virtual machine was longer than a whole digits-sized search. The cost is at most
    /// [`LINGER`] of one core's time per call. Does nothing for [`Threads::Single`].
    pub fn linger(self) {
        let Self::Pool(n) = self else {
            return;
        };
        let Ok(pool) = helper_pool(n) else {
            return;
        };
        if pool.current_thread_index().is_some() {
            return;
        }
        let epoch = WORK_EPOCH.load(Ordering::Acquire);
        for _ in 1..n {
            pool.spawn(move || {
                spin_until(|| WORK_EPOCH.load(Ordering::Acquire) != epoch, LINGER);
            });
        }
    }

    /// Calls `f(i)` for every `i` in `0..n`, on this many threads, the calling thread being
    /// one of them; items are handed out in increasing order through a shared counter, so
    /// uneven items balance out.
    ///
    /// For short parallel sections (a millisecond-long search): [`Threads::install`] puts the
    /// caller to sleep and wakes every pool thread, two wake-ups on the critical path for a
    /// caller that does no work; here only `count() - 1` pool threads are woken and the caller
    /// starts on the first item at once.
    pub fn for_each_index(self, n: usize, f: impl Fn(usize) + Sync) -> Result<()> {
        let next = AtomicUsize::new(0);
        let work = || {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                f(i);
            }
        };
        let helpers = self.count().min(n).saturating_sub(1);
        if helpers == 0 {
            work();
            return Ok(());
        }
        let pool = helper_pool(self.count())?;
        if pool.current_thread_index().is_some() {
            // Nested in this pool: its threads are busy with the outer call.
            work();
            return Ok(());
        }
        WORK_EPOCH.fetch_add(1, Ordering::Release);
        pool.in_place_scope(|s| {
            for _ in 0..helpers {
                s.spawn(|_| work());
            }
            work();
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
    fn pools_are_reused_and_rebuilt_after_fork() {
        // One test, because forgetting the pools (the fork) would race with the reuse checks.
        let a = super::pool(3).unwrap();
        // Callers racing for the cache, while others hold it to build pools of other sizes,
        // wait for each other rather than build a pool each.
        let all_shared = std::thread::scope(|s| {
            let racers: Vec<_> = (0..4)
                .map(|r| {
                    let a = &a;
                    s.spawn(move || {
                        (0..12).all(|i| {
                            let other = super::pool(4 + 4 * i + r).unwrap();
                            Arc::ptr_eq(a, &super::pool(3).unwrap())
                                && Arc::ptr_eq(&other, &super::pool(4 + 4 * i + r).unwrap())
                        })
                    })
                })
                .collect();
            racers.into_iter().all(|r| r.join().unwrap())
        });
        assert!(all_shared);
        super::forget_pools_after_fork();
        let c = super::pool(3).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(Threads::Pool(3).install(rayon::current_num_threads), Ok(3));
    }

    #[test]
    fn for_each_index_visits_every_item_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        for threads in [Threads::Single, Threads::Pool(2), Threads::Pool(3)] {
            for n in [0, 1, 2, 7, 100] {
                let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                threads
                    .for_each_index(n, |i| {
                        hits[i].fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
        // Nested inside the same pool: runs inline instead of waiting on busy threads.
        let nested = Threads::Pool(2).install(|| {
            let count = AtomicUsize::new(0);
            Threads::Pool(2)
                .for_each_index(5, |_| {
                    count.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
            count.load(Ordering::Relaxed)
        });
        assert_eq!(nested, Ok(5));
    }

    #[test]
    fn spin_until_stops_when_done() {
        // With an hour's limit this returns only because the condition is seen.
        let flag = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| flag.store(true, std::sync::atomic::Ordering::Release));
            super::spin_until(
                || flag.load(std::sync::atomic::Ordering::Acquire),
                std::time::Duration::from_secs(3600),
            );
        });
        super::spin_until(|| false, std::time::Duration::ZERO);
    }

    #[test]
    fn woken_and_lingering_threads_take_new_work() {
        // Both tasks wait for each other, so both threads must run one.
        for _ in 0..20 {
            let w = Threads::Pool(2).wake();
            drop(w);
            let barrier = std::sync::Barrier::new(2);
            Threads::Pool(2)
                .for_each_index(2, |_| {
                    barrier.wait();
                })
                .unwrap();
            Threads::Pool(2).linger();
        }
        drop(Threads::Single.wake());
        Threads::Single.linger();
    }

    #[test]
    fn install_runs_closure() {
        assert_eq!(Threads::Pool(2).install(rayon::current_num_threads), Ok(2));
        assert_eq!(Threads::Single.install(|| 7), Ok(7));
    }
}
