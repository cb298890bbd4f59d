//! A team of threads that stays alive for one training loop.
//!
//! A mini-batch step is two short parallel sections (the chunks' forward and backward
//! passes, then the gradient sum and optimizer update), each ~100-200 µs of work per thread
//! for a digits-sized net. Rayon's fork-join puts idle threads to sleep on futexes between
//! sections, and waking them cost most of what a second thread saves. A [`Team`] keeps its
//! workers spinning on an atomic generation counter between sections instead (for a bounded
//! time, then yielding, then parking, so an idle or oversubscribed machine is not hurt).
//!
//! Only *who* runs a task changes: tasks are indexed, every index runs exactly once, and the
//! callers keep their fixed partitions and reduction orders, so the bits do not depend on the
//! thread count. With one thread no team is built: nothing spins and no thread starts.
//!
//! This is hand-written synchronisation because it is our edge here (see the module docs of
//! [`crate::mlp::partition`] for why the per-batch work is this small, and [`super`] for what
//! runs on a team and what on rayon). It has two `unsafe` blocks, each with its own SAFETY
//! comment, both about one pointer: [`Team::run`] erases the lifetime of the section's
//! closure to publish it, and a worker dereferences it; `run` outlives every use by waiting
//! for each worker that joined the section before it returns or unwinds. (`JobRef`'s
//! `unsafe impl Send` lets the pointer cross to the workers.)

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::Threads;

/// How long a waiting worker spins before it starts yielding.
const SPIN: Duration = Duration::from_micros(200);

/// How long a waiting worker yields (after spinning) before it parks.
const YIELD: Duration = Duration::from_millis(2);

/// `spin_loop` hints between two reads of the clock.
const SPINS_PER_CHECK: u32 = 64;

/// The closure of one parallel section, its lifetime erased (see [`Team::run`]).
#[derive(Clone, Copy)]
struct JobRef(*const (dyn Fn(usize) + Sync + 'static));

// SAFETY: the pointee is `Sync`, so calling it from several threads is allowed; the pointer
// is only dereferenced while `Team::run` keeps the closure alive.
unsafe impl Send for JobRef {}

/// State shared by the caller and the workers.
struct Shared {
    /// Bumped to publish a section (or the stop).
    generation: AtomicUsize,
    /// Set once, when the team shuts down.
    stop: AtomicBool,
    /// The current section.
    job: Mutex<Option<JobRef>>,
    /// Tasks of the current section.
    n_tasks: AtomicUsize,
    /// The next unclaimed task.
    next: AtomicUsize,
    /// Workers that joined the current section (counted under the `job` lock, while the
    /// section is open).
    entered: AtomicUsize,
    /// Workers that joined the current section and left it.
    done: AtomicUsize,
    /// Workers parked (or about to park) waiting for a section.
    parked: AtomicUsize,
    /// The first panic of a worker in the current section.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Shared {
    fn new() -> Self {
        Self {
            generation: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            job: Mutex::new(None),
            n_tasks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            entered: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            panic: Mutex::new(None),
        }
    }

    /// Claims and runs tasks of `job` until none is left.
    fn claim_all(&self, job: &(dyn Fn(usize) + Sync)) {
        let n = self.n_tasks.load(Ordering::Relaxed);
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            job(i);
        }
    }

    /// Waits (spin, then yield, then park) until the generation differs from `seen`.
    fn wait_for_change(&self, seen: usize) -> usize {
        let start = Instant::now();
        let mut spins = 0_u32;
        loop {
            let g = self.generation.load(Ordering::Acquire);
            if g != seen {
                return g;
            }
            spins += 1;
            if spins < SPINS_PER_CHECK {
                std::hint::spin_loop();
                continue;
            }
            spins = 0;
            let waited = start.elapsed();
            if waited < SPIN {
                std::hint::spin_loop();
            } else if waited < SPIN + YIELD {
                std::thread::yield_now();
            } else {
                // Announce the park before re-checking: the caller bumps the generation and
                // then reads `parked` (both SeqCst), so either we see the new generation here
                // or it sees us and unparks us (an unpark before `park` is not lost).
                self.parked.fetch_add(1, Ordering::SeqCst);
                if self.generation.load(Ordering::SeqCst) == seen {
                    std::thread::park();
                }
                self.parked.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    fn worker(&self) {
        let mut seen = 0;
        loop {
            seen = self.wait_for_change(seen);
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            // Join the section if it is still open (a worker the system ran late may find it
            // closed: the caller did its tasks and does not wait for it).
            let job = {
                let slot = self.job.lock().unwrap_or_else(PoisonError::into_inner);
                if slot.is_some() {
                    self.entered.fetch_add(1, Ordering::Relaxed);
                }
                *slot
            };
            if let Some(JobRef(ptr)) = job {
                // SAFETY: `Team::run` published `ptr` from a live `&dyn Fn` and, since this
                // worker joined while the section was open, does not return (or unwind)
                // before it has bumped `done` below.
                let f = unsafe { &*ptr };
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| self.claim_all(f))) {
                    let mut slot = self.panic.lock().unwrap_or_else(PoisonError::into_inner);
                    slot.get_or_insert(p);
                }
                self.done.fetch_add(1, Ordering::Release);
            }
        }
    }
}

/// Closes the section (no worker joins it any more) and waits for the workers that joined
/// it to leave, also while unwinding, so that no worker still holds the closure when `run`
/// leaves. A worker the system has not run yet is not waited for: the caller has claimed
/// its tasks (on a busy machine, waiting for it cost a wake-up's delay per section).
struct WaitAll<'a>(&'a Shared);
impl Drop for WaitAll<'_> {
    fn drop(&mut self) {
        let entered = {
            let mut slot = self.0.job.lock().unwrap_or_else(PoisonError::into_inner);
            *slot = None;
            // Workers count themselves under this lock, so every one that joined is seen.
            self.0.entered.load(Ordering::Relaxed)
        };
        let start = Instant::now();
        while self.0.done.load(Ordering::Acquire) < entered {
            if start.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Worker threads spinning between the parallel sections of one training loop; build one
/// with [`with_team`].
pub struct Team<'s> {
    shared: &'s Shared,
    workers: Vec<Thread>,
    /// The pool threads for code that still runs on rayon inside the loop.
    threads: Threads,
}

impl Team<'_> {
    /// Threads taking part in a section: the workers and the caller.
    pub fn size(&self) -> usize {
        self.workers.len() + 1
    }

    fn wake_parked(&self) {
        if self.shared.parked.load(Ordering::SeqCst) > 0 {
            for t in &self.workers {
                t.unpark();
            }
        }
    }

    /// Runs `f(i)` for every `i` in `0..n_tasks`, each exactly once, on the workers and the
    /// calling thread; returns when all are done. A panic of a task is resumed here, after
    /// every worker has left the section.
    pub fn run(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if n_tasks <= 1 || self.workers.is_empty() {
            (0..n_tasks).for_each(f);
            return;
        }
        let sh = self.shared;
        // An `as` cast may not extend a trait object's lifetime, hence the transmute.
        #[allow(clippy::transmute_ptr_to_ptr)]
        // SAFETY: only the lifetime is erased (same fat-pointer layout). A worker dereferences
        // the pointer only between joining the section (taking the job under its lock, and
        // counting itself in `entered` there) and its `done` increment; `WaitAll` (dropped on
        // return and on unwind) closes the section under that lock and waits for as many
        // increments as workers joined, before `f` can go away.
        let ptr: *const (dyn Fn(usize) + Sync + 'static) = unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), _>(std::ptr::from_ref(f))
        };
        // No worker is in a section (the previous one closed and waited for those that
        // joined it), but one the system ran late may join this one as soon as the job is
        // published, even before the generation moves: so the counters are set first, and
        // the lock that publishes the job orders them before its read of them.
        sh.n_tasks.store(n_tasks, Ordering::Relaxed);
        sh.next.store(0, Ordering::Relaxed);
        sh.entered.store(0, Ordering::Relaxed);
        sh.done.store(0, Ordering::Relaxed);
        *sh.job.lock().unwrap_or_else(PoisonError::into_inner) = Some(JobRef(ptr));
        sh.generation.fetch_add(1, Ordering::SeqCst);
        self.wake_parked();
        let wait = WaitAll(sh);
        sh.claim_all(f);
        drop(wait);
        let panic = sh
            .panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(p) = panic {
            resume_unwind(p);
        }
    }
}

/// Runs `f` with a team of `threads.count() - 1` workers (plus the caller), or with `None`
/// for one thread (then no thread starts). The workers exit when `f` returns or unwinds.
/// If the system refuses to start a thread, the team is smaller (possibly empty).
pub fn with_team<R>(threads: Threads, f: impl FnOnce(Option<&Team<'_>>) -> R) -> R {
    let n = threads.count();
    if n <= 1 {
        return f(None);
    }
    let shared = Shared::new();
    std::thread::scope(|s| {
        /// Tells the workers to exit, also while unwinding (the scope then joins them).
        struct StopOnDrop<'a>(&'a Shared, &'a [Thread]);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.stop.store(true, Ordering::SeqCst);
                self.0.generation.fetch_add(1, Ordering::SeqCst);
                for t in self.1 {
                    t.unpark();
                }
            }
        }
        let sh = &shared;
        let mut workers = Vec::with_capacity(n - 1);
        for i in 1..n {
            let spawned = std::thread::Builder::new()
                .name(format!("oxlearn-team-{i}"))
                .spawn_scoped(s, move || sh.worker());
            match spawned {
                Ok(h) => workers.push(h.thread().clone()),
                Err(_) => break,
            }
        }
        let _stop = StopOnDrop(sh, &workers);
        let team = Team {
            shared: sh,
            workers: workers.clone(),
            threads,
        };
        f(Some(&team))
    })
}

/// Where the parallel sections of a training step run: rayon's installed pool, or a team.
#[derive(Clone, Copy)]
pub enum Exec<'t> {
    /// Rayon (inside [`Threads::install`]) or the calling thread.
    Rayon(Threads),
    /// A spinning team.
    Team(&'t Team<'t>),
}

impl From<Threads> for Exec<'_> {
    fn from(t: Threads) -> Self {
        Self::Rayon(t)
    }
}

impl Exec<'_> {
    /// The thread count behind this value.
    pub fn threads(self) -> Threads {
        match self {
            Self::Rayon(t) => t,
            Self::Team(team) => team.threads,
        }
    }

    /// Whether sections may run on more than one thread.
    pub fn parallel(self) -> bool {
        match self {
            Self::Rayon(t) => t.count() > 1,
            Self::Team(team) => team.size() > 1,
        }
    }

    /// Runs `f(i, item)` over `items`, each once, in parallel when allowed.
    pub fn for_each_mut<C: Send>(self, items: &mut [C], f: impl Fn(usize, &mut C) + Sync + Send) {
        if !self.parallel() || items.len() <= 1 {
            for (i, c) in items.iter_mut().enumerate() {
                f(i, c);
            }
            return;
        }
        match self {
            Self::Rayon(_) => items
                .par_iter_mut()
                .with_max_len(1)
                .enumerate()
                .for_each(|(i, c)| f(i, c)),
            Self::Team(team) => {
                // Each index is claimed once, so every lock is uncontended: it only proves
                // to the compiler that the `&mut` items are handed out one at a time.
                let cells: Vec<Mutex<&mut C>> = items.iter_mut().map(Mutex::new).collect();
                team.run(cells.len(), &|i| {
                    let mut c = cells[i].lock().unwrap_or_else(PoisonError::into_inner);
                    f(i, &mut c);
                });
            }
        }
    }

    /// Runs `f(item)` over owned `items`, each once, in parallel when allowed.
    pub fn for_each_owned<C: Send>(self, items: Vec<C>, f: impl Fn(C) + Sync + Send) {
        let mut slots: Vec<Option<C>> = items.into_iter().map(Some).collect();
        self.for_each_mut(&mut slots, |_, c| {
            if let Some(c) = c.take() {
                f(c);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Threads;
    use super::{Exec, with_team};

    #[test]
    fn every_task_runs_once() {
        for n in [1, 2, 3, 5] {
            with_team(Threads::exactly(n), |team| {
                assert_eq!(team.is_some(), n > 1);
                let exec = team.map_or(Exec::Rayon(Threads::Single), Exec::Team);
                for round in 0..200 {
                    let mut items = vec![0_usize; round % 9];
                    exec.for_each_mut(&mut items, |i, v| *v += i + 1);
                    assert!(items.iter().enumerate().all(|(i, &v)| v == i + 1));
                }
            });
        }
    }

    /// Many short sections in a row on more threads than cores: workers often wake late,
    /// join a later section or none, and the caller does their tasks; every task of every
    /// section still runs exactly once, within its section.
    #[test]
    fn short_sections_with_late_workers_run_every_task_once() {
        with_team(Threads::exactly(4), |team| {
            let exec = Exec::Team(team.expect("4 threads build a team"));
            let runs = AtomicUsize::new(0);
            for round in 0..20_000_usize {
                let mut items = vec![usize::MAX; 2 + round % 3];
                exec.for_each_mut(&mut items, |i, v| {
                    *v = round * 8 + i;
                    runs.fetch_add(1, Ordering::Relaxed);
                });
                assert!(items.iter().enumerate().all(|(i, &v)| v == round * 8 + i));
            }
            let want: usize = (0..20_000_usize).map(|r| 2 + r % 3).sum();
            assert_eq!(runs.load(Ordering::Relaxed), want);
        });
    }

    #[test]
    fn workers_park_and_wake() {
        with_team(Threads::exactly(3), |team| {
            let team = team.expect("3 threads build a team");
            let hits = AtomicUsize::new(0);
            for _ in 0..3 {
                // Longer than the spin and yield budget: the workers park in between.
                std::thread::sleep(std::time::Duration::from_millis(5));
                team.run(64, &|_| {
                    hits.fetch_add(1, Ordering::Relaxed);
                });
            }
            assert_eq!(hits.load(Ordering::Relaxed), 3 * 64);
        });
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_and_the_team_exits() {
        let r = std::panic::catch_unwind(|| {
            with_team(Threads::exactly(2), |team| {
                let team = team.expect("2 threads build a team");
                team.run(8, &|i| assert!(i != 5, "task 5"));
            });
        });
        assert!(r.is_err());
    }
}
