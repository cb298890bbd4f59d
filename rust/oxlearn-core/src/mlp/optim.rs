//! scikit-learn's `SGDOptimizer` and `AdamOptimizer` (`_stochastic_optimizers.py`).
//!
//! Parameters, gradients and optimizer state are lists of flat slices in scikit-learn's
//! `_pack` order (every coef, then every intercept). Both optimizers run entirely in the
//! training dtype, Adam's bias-corrected learning rate (a float64 scalar) rounded to it once
//! per step. NumPy differs there for float32: its `-lr * m / (sqrt(v) + eps)` has a float64
//! scalar, so it forms the update in float64 and rounds it when adding it to the parameter.
//! We did the same until it measured as the largest cost after the products (two float64
//! divisions per sixteen float32 parameters on the divider, next to the square root); in
//! float32 it is one. The update differs from NumPy's by about an ulp of the update, far
//! below an ulp of the parameter it is added to.

// The loop bodies are `#[inline(always)]` so that they are compiled again inside each
// `#[target_feature]` copy made by `platform::multiversion!` (an ordinary call would run the
// portable build).
#![allow(clippy::inline_always)]

use std::sync::atomic::{AtomicU64, Ordering};

use super::elementwise::{grad_block_at, sum_squares, zero_below};
use crate::error::{CoreError, Result};
use crate::exec::Exec;
use crate::exec::Threads;
use crate::platform::{SimdLevel, multiversion};
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
type Task<'a, T> = (usize, usize, usize, &'a mut [T], &'a mut [T], &'a mut [T]);

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
        self.update_with_on(params, Grads::Blocks(grad), first, second, threads.into());
    }

    /// [`Optimizer::update_with`] on `exec` (the training loop's team), with the gradients
    /// from `grads`. Summed chunk gradients ([`Grads::Summed`]) are formed by Adam in its
    /// own pass where [`adam_fused`] can, and otherwise block by block as
    /// [`super::elementwise::grad_block_at`] forms them (the same bits either way); then it also
    /// returns the sum of squares of the updated coefficients (the first `decayed` arrays),
    /// the next batch's L2 penalty: each block's, while the block is in cache, added in
    /// block order (so the bits do not depend on the thread count).
    pub(crate) fn update_with_on<T: Real>(
        &mut self,
        params: &mut [&mut [T]],
        grads: Grads<'_, T>,
        first: &mut [&mut [T]],
        second: &mut [&mut [T]],
        exec: Exec<'_>,
    ) -> Option<f64> {
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
                tasks.push((tasks.len(), i, b * PAR_BLOCK, pb, fb, sb));
            }
        }
        debug_assert!(tasks.iter().all(|t| t.1 < n));
        let summed = match grads {
            Grads::Summed(sg) => Some(sg),
            Grads::Blocks(_) => None,
        };
        let step_block = |i: usize, off: usize, p: &mut [T], f: &mut [T], s: &mut [T]| {
            if let (Step::Adam(c), Some(sg)) = (&step, summed)
                && let Some(parts) = sg.parts.get(i)
                && (1..=2).contains(&parts.len())
            {
                let n = p.len();
                let first_part = &parts[0][off..off + n];
                let second_part = parts.get(1).map(|q| &q[off..off + n]);
                let alpha = (i < sg.decayed).then_some(sg.alpha);
                adam_fused_at(level, p, first_part, second_part, alpha, sg.scale, f, s, c);
                return;
            }
            // The gradient of SUB parameters at a time, in a buffer that stays in L1.
            let mut buf = [T::zero(); SUB];
            let mut o = 0;
            while o < p.len() {
                let n = SUB.min(p.len() - o);
                let g = &mut buf[..n];
                let (pb, fb) = (&mut p[o..o + n], &mut f[o..o + n]);
                match grads {
                    Grads::Blocks(grad) => grad(i, off + o, pb, g),
                    Grads::Summed(sg) => {
                        let w = (i < sg.decayed).then_some(&pb[..]);
                        grad_block_at(level, g, &sg.parts[i], off + o, w, sg.alpha, sg.scale);
                    }
                }
                match &step {
                    Step::Sgd { mu, lr, nesterov } => {
                        sgd_step_at(level, pb, g, fb, *mu, *lr, *nesterov);
                    }
                    Step::Adam(c) => adam_step_at(level, pb, g, fb, &mut s[o..o + n], c),
                }
                o += n;
            }
        };
        // Each coefficient block's sum of squares after its step (f64 bits, by task).
        let sums: Vec<AtomicU64> = match summed {
            Some(_) => (0..tasks.len()).map(|_| AtomicU64::new(0)).collect(),
            None => Vec::new(),
        };
        let run = |(task, i, off, p, f, s): Task<'_, T>| {
            step_block(i, off, p, f, s);
            if summed.is_some_and(|sg| i < sg.decayed) {
                sums[task].store(sum_squares(level, p).to_bits(), Ordering::Relaxed);
            }
        };
        // Below PAR_MIN parameters the update is a few microseconds: not worth a wake-up.
        let total: usize = tasks.iter().map(|t| t.3.len()).sum();
        if exec.parallel() && tasks.len() > 1 && total >= PAR_MIN {
            exec.for_each_owned(tasks, run);
        } else {
            tasks.into_iter().for_each(run);
        }
        summed.map(|_| {
            sums.iter()
                .map(|b| f64::from_bits(b.load(Ordering::Relaxed)))
                .sum()
        })
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

    /// Whether [`Self::trigger_stopping`] would stop now (without its side effect on the
    /// adaptive learning rate).
    pub fn stops_when_triggered(&self) -> bool {
        match self {
            Self::Sgd {
                lr,
                schedule: Schedule::Adaptive,
                ..
            } => *lr <= 1e-6,
            _ => true,
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

/// Where [`Optimizer::update_with_on`] takes the gradients from.
#[derive(Clone, Copy)]
pub(crate) enum Grads<'a, T> {
    /// `grad(i, offset, p, dst)` writes each block's gradient (see [`Optimizer::update_with`]).
    Blocks(&'a GradFn<'a, T>),
    /// Per-chunk parts, summed in the update's pass.
    Summed(&'a SummedGrads<'a, T>),
}

/// Per-chunk gradients waiting to be summed by the update (the training loop's deferred
/// evaluations): the gradient of parameter array `i` is `(parts[i][0] + parts[i][1] + ...)`,
/// then `(sum + alpha * p) * scale` for the first `decayed` arrays (the coefficients, whose
/// L2 term uses the values before the step) and `sum * scale` for the others, as
/// [`super::elementwise::grad_block_at`] forms it.
pub(crate) struct SummedGrads<'a, T> {
    /// The parts of each parameter array, in chunk order.
    pub parts: &'a [Vec<&'a [T]>],
    /// How many leading arrays take the L2 term.
    pub decayed: usize,
    /// The L2 factor.
    pub alpha: T,
    /// The reciprocal of the batch's weight sum.
    pub scale: T,
}

/// [`adam_step`] on a gradient formed in the same pass, `g = ((a + b) + alpha * p) * scale`
/// (no `b`: `g = a ...`; no `alpha`: `g = (a + b) * scale`), element by element. The
/// operations and their order are those of [`super::elementwise::grad_block_at`] followed by
/// [`adam_step`]; fused, the update makes one pass over the parameters, the parts and the
/// moments instead of writing the gradient to a buffer and reading it back (the update of a
/// digits `(256,)` batch was about a sixth of the step).
#[inline(always)]
fn adam_fused_body<T: Real, const TWO: bool, const DECAY: bool>(
    p: &mut [T],
    a: &[T],
    b: &[T],
    alpha: T,
    scale: T,
    m: &mut [T],
    v: &mut [T],
    c: &AdamConsts<T>,
) {
    let n = p.len();
    let (a, m, v) = (&a[..n], &mut m[..n], &mut v[..n]);
    let b = &b[..if TWO { n } else { 0 }];
    // Below this magnitude a gradient's term `(1 - beta_2) g^2` of the second moment is
    // subnormal, and it is taken as zero (see [`zero_below`]). It is below the smallest
    // normal number, so dropping it changes `v` only where `v` is below about 2^24 times
    // that (2e-31 in float32), and there `sqrt(v)` is at most half an ulp of the default
    // `epsilon`, so `sqrt(v) + epsilon` is `epsilon` or within an ulp of it either way (the
    // digits benchmark nets, (256,) and (128, 128, 128) in both dtypes, kept every weight's
    // bits). In float64 the bound is about 1e-152.
    let g_sq_min = (T::min_positive_value() / c.omb2).sqrt();
    for i in 0..n {
        let mut g = a[i];
        if TWO {
            g += b[i];
        }
        let pv = p[i];
        g = if DECAY {
            (g + alpha * pv) * scale
        } else {
            g * scale
        };
        let nm = c.b1 * m[i] + c.omb1 * g;
        let gv = zero_below(g, g_sq_min);
        let nv = c.b2 * v[i] + c.omb2 * (gv * gv);
        m[i] = nm;
        v[i] = nv;
        p[i] = pv + (c.neg_lr * nm) / (nv.sqrt() + c.eps);
    }
}

/// Dispatches [`adam_fused_body`] on whether `b` and `alpha` are given.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn adam_fused<T: Real>(
    p: &mut [T],
    a: &[T],
    b: Option<&[T]>,
    alpha: Option<T>,
    scale: T,
    m: &mut [T],
    v: &mut [T],
    c: &AdamConsts<T>,
) {
    match (b, alpha) {
        (Some(b), Some(al)) => adam_fused_body::<T, true, true>(p, a, b, al, scale, m, v, c),
        (Some(b), None) => adam_fused_body::<T, true, false>(p, a, b, T::zero(), scale, m, v, c),
        (None, Some(al)) => adam_fused_body::<T, false, true>(p, a, &[], al, scale, m, v, c),
        (None, None) => adam_fused_body::<T, false, false>(p, a, &[], T::zero(), scale, m, v, c),
    }
}

multiversion! {
    /// [`adam_fused`] compiled for `level`.
    pub(crate) fn adam_fused_at<T: Real>(
        p: &mut [T],
        a: &[T],
        b: Option<&[T]>,
        alpha: Option<T>,
        scale: T,
        m: &mut [T],
        v: &mut [T],
        c: &AdamConsts<T>,
    ) => adam_fused
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
    // The fused step with no second part, no L2 term and a scale of one (`g * 1` is `g`),
    // over the common length (as a zip of the four would go).
    let n = p.len().min(g.len()).min(m.len()).min(v.len());
    adam_fused_body::<T, false, false>(
        &mut p[..n],
        &g[..n],
        &[],
        T::zero(),
        T::one(),
        &mut m[..n],
        &mut v[..n],
        c,
    );
}

multiversion! {
    /// [`adam_step`] compiled for `level` (see [`crate::platform`]).
    pub fn adam_step_at<T: Real>(
        p: &mut [T],
        g: &[T],
        m: &mut [T],
        v: &mut [T],
        c: &AdamConsts<T>,
    ) => adam_step
}

multiversion! {
    /// [`sgd_step`] compiled for `level` (see [`crate::platform`]).
    pub fn sgd_step_at<T: Real>(
        p: &mut [T],
        g: &[T],
        v: &mut [T],
        mu: T,
        lr: T,
        nesterov: bool,
    ) => sgd_step
}

#[cfg(test)]
mod tests {
    use super::{AdamConsts, Grads, Optimizer, SummedGrads, adam_fused_at, adam_step_at};
    use crate::exec::Exec;
    use crate::exec::Threads;
    use crate::mlp::elementwise::grad_block_at;
    use crate::platform::SimdLevel;
    use crate::real::Real;

    /// Deterministic values of mixed sign and magnitude.
    fn values<T: Real>(seed: u64, n: usize) -> Vec<T> {
        let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|i| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (x >> 11) as f64 / (1_u64 << 53) as f64 - 0.5;
                T::from_f64_lossy(u * 10f64.powi((i % 7) as i32 - 4))
            })
            .collect()
    }

    fn bits<T: Real>(v: &[T]) -> Vec<u64> {
        v.iter().map(|x| x.to_f64_lossless().to_bits()).collect()
    }

    fn fused_matches_two_passes<T: Real>() {
        let c = AdamConsts {
            b1: T::from_f64_lossy(0.9),
            omb1: T::from_f64_lossy(0.1),
            b2: T::from_f64_lossy(0.999),
            omb2: T::from_f64_lossy(1.0 - 0.999),
            eps: T::from_f64_lossy(1e-8),
            neg_lr: T::from_f64_lossy(-1e-3),
        };
        let (alpha, scale) = (T::from_f64_lossy(1e-4), T::from_f64_lossy(1.0 / 200.0));
        for level in SimdLevel::available() {
            for n in [1, 7, 16, 513, 1030] {
                let (p0, a, b) = (values::<T>(1, n), values::<T>(2, n), values::<T>(3, n));
                let (m0, v0) = (values::<T>(4, n), values::<T>(5, n));
                let v0: Vec<T> = v0.iter().map(|x| *x * *x).collect();
                for two in [false, true] {
                    for decay in [false, true] {
                        let parts: Vec<&[T]> = if two { vec![&a, &b] } else { vec![&a] };
                        let (mut p, mut m, mut v) = (p0.clone(), m0.clone(), v0.clone());
                        let mut g = vec![T::zero(); n];
                        let w = decay.then_some(&p0[..]);
                        grad_block_at(level, &mut g, &parts, 0, w, alpha, scale);
                        adam_step_at(level, &mut p, &g, &mut m, &mut v, &c);
                        let (mut pf, mut mf, mut vf) = (p0.clone(), m0.clone(), v0.clone());
                        let second = two.then_some(&b[..]);
                        let al = decay.then_some(alpha);
                        adam_fused_at(level, &mut pf, &a, second, al, scale, &mut mf, &mut vf, &c);
                        let what = format!("{level:?} n={n} two={two} decay={decay}");
                        assert_eq!(bits(&p), bits(&pf), "params, {what}");
                        assert_eq!(bits(&m), bits(&mf), "first moments, {what}");
                        assert_eq!(bits(&v), bits(&vf), "second moments, {what}");
                    }
                }
            }
        }
    }

    #[test]
    fn fused_adam_gives_the_bits_of_the_two_passes_f64() {
        fused_matches_two_passes::<f64>();
    }

    #[test]
    fn fused_adam_gives_the_bits_of_the_two_passes_f32() {
        fused_matches_two_passes::<f32>();
    }

    /// A whole update through [`SummedGrads`] equals the one through the gradient callback,
    /// for one, two and three chunks (three take the callback) and 1 or 2 threads, and
    /// returns the coefficients' sum of squares, the same bits on 1 and 2 threads.
    #[test]
    fn summed_update_equals_the_callback_update() {
        // Two coefficient arrays (the first larger than a parallel block), two intercepts.
        let sizes = [9000_usize, 1290, 129, 10];
        let level = SimdLevel::detected();
        let (alpha, scale) = (1e-4_f64, 1.0 / 147.0);
        for chunks in 1..=3 {
            let grads: Vec<Vec<Vec<f64>>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &s)| {
                    (0..chunks)
                        .map(|c| values(10 * i as u64 + c as u64, s))
                        .collect()
                })
                .collect();
            let parts: Vec<Vec<&[f64]>> = grads
                .iter()
                .map(|g| g.iter().map(Vec::as_slice).collect())
                .collect();
            let mut results = Vec::new();
            let mut penalties = Vec::new();
            for (fused, threads) in [(false, 1), (true, 1), (true, 2)] {
                let mut params: Vec<Vec<f64>> = sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &s)| values(100 + i as u64, s))
                    .collect();
                let mut first: Vec<Vec<f64>> = sizes.iter().map(|&s| vec![0.0; s]).collect();
                let mut second = first.clone();
                let mut opt = Optimizer::Adam {
                    lr_init: 1e-3,
                    lr: 1e-3,
                    beta_1: 0.9,
                    beta_2: 0.999,
                    epsilon: 1e-8,
                    t: 0,
                };
                let grad = |i: usize, off: usize, p: &[f64], dst: &mut [f64]| {
                    let w = (i < 2).then_some(p);
                    grad_block_at(level, dst, &parts[i], off, w, alpha, scale);
                };
                let summed = SummedGrads {
                    parts: &parts,
                    decayed: 2,
                    alpha,
                    scale,
                };
                let th = Threads::exactly(threads);
                let mut penalty = None;
                for _ in 0..3 {
                    let mut p: Vec<&mut [f64]> = params.iter_mut().map(|v| &mut v[..]).collect();
                    let mut f: Vec<&mut [f64]> = first.iter_mut().map(|v| &mut v[..]).collect();
                    let mut s: Vec<&mut [f64]> = second.iter_mut().map(|v| &mut v[..]).collect();
                    penalty = th
                        .install(|| {
                            opt.update_with_on(
                                &mut p,
                                if fused {
                                    Grads::Summed(&summed)
                                } else {
                                    Grads::Blocks(&grad)
                                },
                                &mut f,
                                &mut s,
                                Exec::Rayon(th),
                            )
                        })
                        .unwrap();
                }
                // With the summed gradients the update returns the new coefficients' sum of
                // squares (the next L2 penalty); without them, nothing.
                let naive: f64 = params[..2].iter().flatten().map(|v| v * v).sum();
                match penalty {
                    Some(v) => assert!(fused && (v - naive).abs() <= 1e-12 * naive, "{v} {naive}"),
                    None => assert!(!fused),
                }
                penalties.push(penalty.map(f64::to_bits));
                let all: Vec<u64> = params
                    .iter()
                    .chain(&first)
                    .chain(&second)
                    .flat_map(|v| bits(v))
                    .collect();
                results.push(all);
            }
            assert_eq!(results[0], results[1], "{chunks} chunks, fused");
            assert_eq!(
                results[0], results[2],
                "{chunks} chunks, fused on 2 threads"
            );
            assert_eq!(
                penalties[1], penalties[2],
                "{chunks} chunks, penalty on 2 threads"
            );
        }
    }
}
