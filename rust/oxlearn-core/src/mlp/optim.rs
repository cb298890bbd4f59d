//! scikit-learn's `SGDOptimizer` and `AdamOptimizer` (`_stochastic_optimizers.py`).
//!
//! Parameters, gradients and optimizer state are lists of flat slices in scikit-learn's
//! `_pack` order (every coef, then every intercept). Both optimizers run entirely in the
//! training dtype, Adam's bias-corrected learning rate (a float64 scalar) rounded to it once
//! per step. NumPy differs there for float32: its `-lr * m / (sqrt(v) + eps)` has a float64
//! scalar, so it forms the update in float64 and rounds it when adding it to the parameter.
//! We did the same until it measured as the largest cost after the products (two float64
//! divisions per sixteen float32 parameters on the divider, next to the square root); in
//! float32 it is one, and a float32 fit of a digits `(256,)` net took 11% less time on one
//! thread. The update differs from NumPy's by about an ulp of the update, far below an ulp of
//! the parameter it is added to.

// The loop bodies are `#[inline(always)]` so that they are compiled again inside each
// `#[target_feature]` copy made by `simd::multiversion!` (an ordinary call would run the
// portable build).
#![allow(clippy::inline_always)]

use super::simd::{SimdLevel, multiversion};
use super::team::Exec;
use crate::error::{CoreError, Result};
use crate::parallel::Threads;
use crate::real::Real;

/// Parameters per task of an update (element-wise, so the split changes nothing).
const PAR_BLOCK: usize = 4096;

/// Parameters whose gradient one update step holds at a time.
const SUB: usize = 512;

/// Parameters below which an update runs on the calling thread.
pub(crate) const PAR_MIN: usize = 16_384;

/// Writes the gradient of one block of a parameter: `(array, offset, current values, out)`.
pub type GradFn<'a, T> = dyn Fn(usize, usize, &[T], &mut [T]) + Sync + 'a;

/// One block of an update: (array index, offset, parameter, first state, second state).
type Task<'a, T> = (usize, usize, &'a mut [T], &'a mut [T], &'a mut [T]);

/// The per-step constants of either optimizer.
enum Step<T> {
    Sgd { mu: T, lr: T, nesterov: bool },
    Adam(AdamConsts<T>),
}

/// SGD learning-rate schedule (`learning_rate` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// `learning_rate_init` throughout.
    Constant,
    /// `learning_rate_init / (t + 1) ** power_t` after each epoch (`t` = samples seen).
    InvScaling,
    /// Divide by 5 when the stopping rule fires, stop once it is `<= 1e-6`.
    Adaptive,
}

impl Schedule {
    /// Parses scikit-learn's name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "constant" => Ok(Self::Constant),
            "invscaling" => Ok(Self::InvScaling),
            "adaptive" => Ok(Self::Adaptive),
            _ => Err(CoreError::invalid(
                "learning_rate",
                format!("expected one of 'constant', 'invscaling', 'adaptive', got {name:?}"),
            )),
        }
    }
}

/// A stochastic optimizer with its scalar state (the per-parameter state lives in caller
/// slices).
#[derive(Debug, Clone, PartialEq)]
pub enum Optimizer {
    /// Stochastic gradient descent with momentum.
    Sgd {
        /// `learning_rate_init`.
        lr_init: f64,
        /// The current learning rate (`_optimizer.learning_rate`).
        lr: f64,
        /// The schedule.
        schedule: Schedule,
        /// `momentum`.
        momentum: f64,
        /// `nesterovs_momentum`.
        nesterov: bool,
        /// `power_t`.
        power_t: f64,
    },
    /// Adam.
    Adam {
        /// `learning_rate_init`.
        lr_init: f64,
        /// The last bias-corrected learning rate.
        lr: f64,
        /// `beta_1`.
        beta_1: f64,
        /// `beta_2`.
        beta_2: f64,
        /// `epsilon`.
        epsilon: f64,
        /// Number of updates so far (`_optimizer.t`).
        t: u64,
    },
}

impl Optimizer {
    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        match self {
            Self::Sgd { lr, .. } | Self::Adam { lr, .. } => *lr,
        }
    }

    /// Whether `opt_second` must hold state (Adam) or be empty (SGD).
    pub fn uses_second_moment(&self) -> bool {
        matches!(self, Self::Adam { .. })
    }

    /// One update of every parameter (`update_params`). `first`/`second` are the SGD
    /// velocities (and nothing) or Adam's first and second moments.
    pub fn update<T: Real>(
        &mut self,
        params: &mut [&mut [T]],
        grads: &[&[T]],
        first: &mut [&mut [T]],
        second: &mut [&mut [T]],
    ) {
        self.update_par(params, grads, first, second, Threads::Single);
    }

    /// [`Optimizer::update`] split over `threads` (call it inside [`Threads::install`]);
    /// the update is element-wise, so the bits do not depend on the thread count.
    pub fn update_par<T: Real>(
        &mut self,
        params: &mut [&mut [T]],
        grads: &[&[T]],
        first: &mut [&mut [T]],
        second: &mut [&mut [T]],
        threads: Threads,
    ) {
        let grads_of = |i: usize, off: usize, _p: &[T], dst: &mut [T]| {
            dst.copy_from_slice(&grads[i][off..off + dst.len()]);
        };
        self.update_with(params, &grads_of, first, second, threads);
    }

    /// The update with gradients produced block by block: `grad(i, offset, p, dst)` writes
    /// the gradient of `params[i][offset..offset + dst.len()]` (whose current values are `p`)
    /// into `dst`. The training loop uses it to sum the per-chunk gradients in the same pass
    /// as the update. Blocks are fixed and element-wise, so the bits do not depend on the
    /// thread count.
    pub fn update_with<T: Real>(
        &mut self,
        params: &mut [&mut [T]],
        grad: &GradFn<'_, T>,
        first: &mut [&mut [T]],
        second: &mut [&mut [T]],
        threads: Threads,
    ) {
        self.update_with_on(params, grad, first, second, threads.into());
    }

    /// [`Optimizer::update_with`] on `exec` (the training loop's team).
    pub(crate) fn update_with_on<T: Real>(
        &mut self,
        params: &mut [&mut [T]],
        grad: &GradFn<'_, T>,
        first: &mut [&mut [T]],
        second: &mut [&mut [T]],
        exec: Exec<'_>,
    ) {
        let level = SimdLevel::detected();
        let step: Step<T> = match self {
            Self::Sgd {
                lr,
                momentum,
                nesterov,
                ..
            } => Step::Sgd {
                mu: T::from_f64_lossy(*momentum),
                lr: T::from_f64_lossy(*lr),
                nesterov: *nesterov,
            },
            Self::Adam {
                lr_init,
                lr,
                beta_1,
                beta_2,
                epsilon,
                t,
            } => {
                *t += 1;
                let tf = *t as f64;
                *lr = *lr_init * (1.0 - beta_2.powf(tf)).sqrt() / (1.0 - beta_1.powf(tf));
                Step::Adam(AdamConsts {
                    b1: T::from_f64_lossy(*beta_1),
                    omb1: T::from_f64_lossy(1.0 - *beta_1),
                    b2: T::from_f64_lossy(*beta_2),
                    omb2: T::from_f64_lossy(1.0 - *beta_2),
                    eps: T::from_f64_lossy(*epsilon),
                    neg_lr: T::from_f64_lossy(-*lr),
                })
            }
        };
        // Fixed blocks of every parameter array: (array, offset, param, first, second).
        let mut tasks: Vec<Task<'_, T>> = Vec::new();
        let n = params.len();
        // Plain SGD has no second list: its blocks get empty slices.
        let mut second_iter = second.iter_mut();
        for (i, (p, f)) in params.iter_mut().zip(first.iter_mut()).enumerate() {
            let s: &mut [T] = second_iter.next().map_or(&mut [], |s| &mut s[..]);
            let mut s_blocks = s.chunks_mut(PAR_BLOCK);
            for (b, (pb, fb)) in p
                .chunks_mut(PAR_BLOCK)
                .zip(f.chunks_mut(PAR_BLOCK))
                .enumerate()
            {
                let sb = s_blocks.next().unwrap_or(&mut []);
                tasks.push((i, b * PAR_BLOCK, pb, fb, sb));
            }
        }
        debug_assert!(tasks.iter().all(|t| t.0 < n));
        let run = |(i, off, p, f, s): Task<'_, T>| {
            // The gradient of SUB parameters at a time, in a buffer that stays in L1.
            let mut buf = [T::zero(); SUB];
            let mut o = 0;
            while o < p.len() {
                let n = SUB.min(p.len() - o);
                let g = &mut buf[..n];
                let (pb, fb) = (&mut p[o..o + n], &mut f[o..o + n]);
                grad(i, off + o, pb, g);
                match &step {
                    Step::Sgd { mu, lr, nesterov } => {
                        sgd_step_at(level, pb, g, fb, *mu, *lr, *nesterov);
                    }
                    Step::Adam(c) => adam_step_at(level, pb, g, fb, &mut s[o..o + n], c),
                }
                o += n;
            }
        };
        // Below PAR_MIN parameters the update is a few microseconds: not worth a wake-up.
        let total: usize = tasks.iter().map(|t| t.2.len()).sum();
        if exec.parallel() && tasks.len() > 1 && total >= PAR_MIN {
            exec.for_each_owned(tasks, run);
        } else {
            tasks.into_iter().for_each(run);
        }
    }

    /// `iteration_ends(time_step)`: the invscaling schedule.
    pub fn iteration_ends(&mut self, time_step: u64) {
        if let Self::Sgd {
            lr_init,
            lr,
            schedule: Schedule::InvScaling,
            power_t,
            ..
        } = self
        {
            *lr = *lr_init / ((time_step + 1) as f64).powf(*power_t);
        }
    }

    /// `trigger_stopping(msg)`: returns whether to stop and the message scikit-learn prints
    /// in verbose mode.
    pub fn trigger_stopping(&mut self, msg: &str) -> (bool, String) {
        match self {
            Self::Sgd {
                lr,
                schedule: Schedule::Adaptive,
                ..
            } => {
                if *lr <= 1e-6 {
                    (true, format!("{msg} Learning rate too small. Stopping."))
                } else {
                    *lr /= 5.0;
                    (false, format!("{msg} Setting learning rate to {lr:.6}"))
                }
            }
            _ => (true, format!("{msg} Stopping.")),
        }
    }
}

/// `v = momentum * v - lr * g; p += (momentum * v - lr * g if nesterov else v)`.
#[inline(always)]
pub fn sgd_step<T: Real>(p: &mut [T], g: &[T], v: &mut [T], mu: T, lr: T, nesterov: bool) {
    for ((pv, &gv), vv) in p.iter_mut().zip(g).zip(v.iter_mut()) {
        let nv = mu * *vv - lr * gv;
        *vv = nv;
        *pv += if nesterov { mu * nv - lr * gv } else { nv };
    }
}

/// Adam's constants for one step, in the training dtype.
#[derive(Debug, Clone, Copy)]
pub struct AdamConsts<T> {
    /// `beta_1`.
    pub b1: T,
    /// `1 - beta_1` (computed in float64, then rounded).
    pub omb1: T,
    /// `beta_2`.
    pub b2: T,
    /// `1 - beta_2`.
    pub omb2: T,
    /// `epsilon`.
    pub eps: T,
    /// Minus the bias-corrected learning rate (a float64 scalar, rounded once per step).
    pub neg_lr: T,
}

/// `m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p += -lr * m / (sqrt(v) + eps)`.
#[inline(always)]
pub fn adam_step<T: Real>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], c: &AdamConsts<T>) {
    for (((pv, &gv), mv), vv) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let nm = c.b1 * *mv + c.omb1 * gv;
        let nv = c.b2 * *vv + c.omb2 * (gv * gv);
        *mv = nm;
        *vv = nv;
        *pv += (c.neg_lr * nm) / (nv.sqrt() + c.eps);
    }
}

multiversion! {
    /// [`adam_step`] compiled for `level` (see [`super::simd`]).
    pub fn adam_step_at<T: Real>(
        p: &mut [T],
        g: &[T],
        m: &mut [T],
        v: &mut [T],
        c: &AdamConsts<T>,
    ) => adam_step
}

multiversion! {
    /// [`sgd_step`] compiled for `level` (see [`super::simd`]).
    pub fn sgd_step_at<T: Real>(
        p: &mut [T],
        g: &[T],
        v: &mut [T],
        mu: T,
        lr: T,
        nesterov: bool,
    ) => sgd_step
}
