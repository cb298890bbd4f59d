//! The stochastic training loop and the optimizers: hand-computed updates, determinism across
//! runs and thread counts, stopping rules, divergence and the epoch hook.

mod mlp_common;

use mlp_common::{params, rng, uniform};
use ndarray::Array2;
use oxlearn_core::mlp::optim::{AdamConsts, adam_step, sgd_step};
use oxlearn_core::mlp::{
    Activation, EpochControl, EpochEnd, Loss, NetSpec, Optimizer, OutActivation, Schedule,
    ScoreKind, StopReason, TrainConfig, TrainData, TrainState, TrainSummary, fit_stochastic,
};
use oxlearn_core::{CoreError, Threads};

#[test]
fn sgd_single_step_matches_hand_computation() {
    let mut p = [1.0_f64, -2.0];
    let g = [0.5, 0.25];
    let mut v = [0.1, -0.2];
    // momentum 0.9, lr 0.1, nesterov
    sgd_step(&mut p, &g, &mut v, 0.9, 0.1, true);
    let v0 = 0.9 * 0.1 - 0.1 * 0.5;
    let v1 = 0.9 * -0.2 - 0.1 * 0.25;
    assert_eq!(v, [v0, v1]);
    assert_eq!(
        p,
        [1.0 + (0.9 * v0 - 0.1 * 0.5), -2.0 + (0.9 * v1 - 0.1 * 0.25)]
    );
    let mut p = [1.0_f64];
    let mut v = [0.3];
    sgd_step(&mut p, &[2.0], &mut v, 0.5, 0.01, false);
    assert_eq!(v, [0.5 * 0.3 - 0.01 * 2.0]);
    assert_eq!(p, [1.0 + (0.5 * 0.3 - 0.01 * 2.0)]);
}

/// Adam's float32 constants for scikit-learn's defaults, with step `neg_lr`.
fn adam_consts_f32(neg_lr: f32) -> AdamConsts<f32> {
    AdamConsts {
        b1: 0.9_f32,
        omb1: (1.0 - 0.9_f64) as f32,
        b2: 0.999_f32,
        omb2: (1.0 - 0.999_f64) as f32,
        eps: 1e-8_f32,
        neg_lr,
    }
}

#[test]
fn adam_first_steps_match_hand_computation() {
    let mut opt = Optimizer::Adam {
        lr_init: 0.001,
        lr: 0.001,
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
        t: 0,
    };
    let mut p = [0.5_f64, -1.0];
    let mut m = [0.0; 2];
    let mut v = [0.0; 2];
    let g = [0.2, -0.4];
    opt.update(
        &mut [&mut p[..]],
        &[&g[..]],
        &mut [&mut m[..]],
        &mut [&mut v[..]],
    );
    // Step 1: lr_t = 0.001 * sqrt(1 - 0.999) / (1 - 0.9); m = 0.1 g; v = 0.001 g^2.
    let lr1 = 0.001 * (1.0_f64 - 0.999).sqrt() / (1.0 - 0.9);
    assert_eq!(opt.learning_rate(), lr1);
    for i in 0..2 {
        let mi = 0.9 * 0.0 + (1.0 - 0.9) * g[i];
        let vi = 0.999 * 0.0 + (1.0 - 0.999) * (g[i] * g[i]);
        assert_eq!(m[i], mi);
        assert_eq!(v[i], vi);
        let want = [0.5, -1.0][i] + (-lr1 * mi) / (vi.sqrt() + 1e-8);
        assert_eq!(p[i], want);
        // The first Adam step moves each weight by about lr_init in the gradient's opposite sign.
        assert!((p[i] - [0.5, -1.0][i] + 0.001 * g[i].signum()).abs() < 1e-6);
    }
    // float32 parameters: the update is formed in float32, the float64 step size rounded to
    // float32 first.
    let c = adam_consts_f32(-lr1 as f32);
    let mut p32 = [0.5_f32];
    let mut m32 = [0.0_f32];
    let mut v32 = [0.0_f32];
    adam_step(&mut p32, &[0.2_f32], &mut m32, &mut v32, &c);
    let mm = c.omb1 * 0.2_f32;
    let vv = c.omb2 * (0.2_f32 * 0.2_f32);
    let want = 0.5_f32 + (-lr1 as f32 * mm) / (vv.sqrt() + 1e-8_f32);
    assert_eq!(p32[0], want);
}

/// A square that would be subnormal is taken as zero (as flush-to-zero would round it):
/// in Adam's second moment, where the step stays that of the IEEE formula, and in the sum of
/// squares behind the L2 penalty.
#[test]
fn subnormal_squares_are_flushed_and_the_step_is_unchanged() {
    use oxlearn_core::mlp::elementwise::sum_squares;
    use oxlearn_core::platform::SimdLevel;
    let c = adam_consts_f32(-1e-3);
    // 0.001 * (1e-19)^2 = 1e-41 is subnormal in float32; 0.001 * (1e-16)^2 = 1e-35 is not.
    for (g, flushed) in [
        (1e-19_f32, true),
        (-3e-19, true),
        (1e-16, false),
        (0.25, false),
    ] {
        let (mut p, mut m, mut v) = ([0.5_f32], [0.0_f32], [0.0_f32]);
        adam_step(&mut p, &[g], &mut m, &mut v, &c);
        let ieee_v = c.omb2 * (g * g);
        assert_eq!(v[0], if flushed { 0.0 } else { ieee_v }, "g = {g}");
        assert_eq!(m[0], c.omb1 * g);
        let ieee_p = 0.5_f32 + (c.neg_lr * m[0]) / (ieee_v.sqrt() + c.eps);
        assert_eq!(
            p[0], ieee_p,
            "g = {g}: the step differs from the IEEE formula's"
        );
    }
    for level in SimdLevel::available() {
        // 1e-20^2 is subnormal in float32 and dropped; 1e-18^2 = 1e-36 is kept.
        let v32 = [3.0_f32, 1e-20, 4.0, -2e-20, 1e-18];
        let want = 9.0 + 16.0 + f64::from(1e-18_f32 * 1e-18_f32);
        assert_eq!(sum_squares(level, &v32), want);
        // In float64 the bound is about 1.5e-154.
        let v64 = [3.0_f64, 1e-160, 1e-150];
        assert_eq!(sum_squares(level, &v64), 9.0 + 1e-150 * 1e-150);
        // Alone, a flushed square leaves zero where IEEE arithmetic gives a subnormal.
        assert_eq!(sum_squares(level, &[1e-20_f32]), 0.0);
        assert_eq!(sum_squares(level, &[1e-160_f64]), 0.0);
        assert_eq!(sum_squares(level, &[1e-150_f64]), 1e-150 * 1e-150);
    }
}

#[test]
fn schedules_and_trigger_stopping() {
    let mut sgd = Optimizer::Sgd {
        lr_init: 0.1,
        lr: 0.1,
        schedule: Schedule::InvScaling,
        momentum: 0.9,
        nesterov: true,
        power_t: 0.5,
    };
    sgd.iteration_ends(99);
    assert_eq!(sgd.learning_rate(), 0.1 / 100f64.powf(0.5));
    assert_eq!(
        sgd.trigger_stopping("msg.").1,
        "msg. Stopping.",
        "non-adaptive SGD stops"
    );
    let mut ad = Optimizer::Sgd {
        lr_init: 1e-5,
        lr: 1e-5,
        schedule: Schedule::Adaptive,
        momentum: 0.9,
        nesterov: true,
        power_t: 0.5,
    };
    let (stop, text) = ad.trigger_stopping("m.");
    assert!(!stop);
    assert_eq!(ad.learning_rate(), 1e-5 / 5.0);
    assert_eq!(text, "m. Setting learning rate to 0.000002");
    let (stop, text) = ad.trigger_stopping("m.");
    assert!(!stop);
    assert!(ad.learning_rate() <= 1e-6);
    let (stop, text2) = ad.trigger_stopping("m.");
    assert!(stop, "{text}");
    assert_eq!(text2, "m. Learning rate too small. Stopping.");
}

struct Problem {
    x: Array2<f64>,
    y: Array2<f64>,
    coefs: Vec<Array2<f64>>,
    intercepts: Vec<ndarray::Array1<f64>>,
    units: Vec<usize>,
}

fn problem(n: usize, units: &[usize], seed: u64) -> Problem {
    let mut r = rng(seed);
    let x = uniform(&mut r, (n, units[0]), -1.0, 1.0);
    let k = units[units.len() - 1];
    let labels = uniform(&mut r, (n, 1), 0.0, k as f64);
    let y = Array2::from_shape_fn((n, k), |(i, j)| {
        if (labels[[i, 0]] as usize).min(k - 1) == j {
            1.0
        } else {
            0.0
        }
    });
    let (coefs, intercepts) = params(&mut r, units);
    Problem {
        x,
        y,
        coefs,
        intercepts,
        units: units.to_vec(),
    }
}

fn config(units: &[usize], max_iter: usize, shuffle: bool) -> TrainConfig {
    TrainConfig {
        spec: NetSpec::new(
            units.to_vec(),
            Activation::Relu,
            OutActivation::Softmax,
            Loss::LogLoss,
        )
        .unwrap(),
        alpha: 1e-4,
        batch_size: 32,
        max_iter,
        shuffle,
        seed: 42,
        tol: 0.0,
        n_iter_no_change: 1_000_000,
        incremental: false,
        score_kind: None,
        publish_weights: false,
    }
}

fn adam_state(lr: f64) -> TrainState {
    TrainState {
        optimizer: Optimizer::Adam {
            lr_init: lr,
            lr,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            t: 0,
        },
        t: 0,
        best_loss: f64::INFINITY,
        best_validation_score: f64::NEG_INFINITY,
        no_improvement_count: 0,
    }
}

/// Runs one fit from the problem's initial parameters; returns the packed parameters.
/// The flat arrays one `fit_stochastic` call trains: weights, moments, best weights.
struct Arrays {
    flat: Vec<Vec<f64>>,
    first: Vec<Vec<f64>>,
    second: Vec<Vec<f64>>,
    best: Vec<Vec<f64>>,
}

impl Arrays {
    fn new(p: &Problem, state: &TrainState) -> Self {
        let flat: Vec<Vec<f64>> = p
            .coefs
            .iter()
            .map(|c| c.iter().copied().collect())
            .chain(p.intercepts.iter().map(|b| b.to_vec()))
            .collect();
        let first: Vec<Vec<f64>> = flat.iter().map(|v| vec![0.0; v.len()]).collect();
        let second = if state.optimizer.uses_second_moment() {
            first.clone()
        } else {
            Vec::new()
        };
        let best = flat.clone();
        Self {
            flat,
            first,
            second,
            best,
        }
    }

    /// One call on these arrays (they carry over to the next call).
    fn fit(
        &mut self,
        p: &Problem,
        cfg: &TrainConfig,
        state: &mut TrainState,
        threads: Threads,
        hook: &mut (dyn FnMut(&EpochEnd) -> EpochControl + Send),
    ) -> Result<TrainSummary, CoreError> {
        let mut ps: Vec<&mut [f64]> = self.flat.iter_mut().map(Vec::as_mut_slice).collect();
        let mut fs: Vec<&mut [f64]> = self.first.iter_mut().map(Vec::as_mut_slice).collect();
        let mut ss: Vec<&mut [f64]> = self.second.iter_mut().map(Vec::as_mut_slice).collect();
        let mut bs: Vec<&mut [f64]> = self.best.iter_mut().map(Vec::as_mut_slice).collect();
        let data = TrainData {
            x: p.x.as_slice().unwrap(),
            y: p.y.as_slice().unwrap(),
            sw: None,
            val: None,
        };
        fit_stochastic(
            data, &mut ps, &mut fs, &mut ss, &mut bs, cfg, state, threads, hook,
        )
    }
}

fn run(
    p: &Problem,
    cfg: &TrainConfig,
    state: &mut TrainState,
    threads: Threads,
    hook: &mut (dyn FnMut(&EpochEnd) -> EpochControl + Send),
) -> Result<(Vec<f64>, TrainSummary), CoreError> {
    let mut arrays = Arrays::new(p, state);
    let summary = arrays.fit(p, cfg, state, threads, hook)?;
    Ok((arrays.flat.concat(), summary))
}

fn go(_: &EpochEnd) -> EpochControl {
    EpochControl::Continue
}

#[test]
fn same_seed_same_bits_at_any_thread_count() {
    for units in [vec![16, 256, 10], vec![16, 40, 30, 5]] {
        let p = problem(300, &units, 1);
        let cfg = config(&units, 5, true);
        let (a, sa) = run(&p, &cfg, &mut adam_state(1e-3), Threads::Single, &mut go).unwrap();
        let (b, sb) = run(&p, &cfg, &mut adam_state(1e-3), Threads::Single, &mut go).unwrap();
        let (c, sc) = run(&p, &cfg, &mut adam_state(1e-3), Threads::Pool(2), &mut go).unwrap();
        let (d, _) = run(&p, &cfg, &mut adam_state(1e-3), Threads::Pool(3), &mut go).unwrap();
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert!(a.iter().zip(&c).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert!(a.iter().zip(&d).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert_eq!(sa, sb);
        assert_eq!(sa, sc);
        // A different seed gives a different order, hence different weights.
        let mut cfg2 = cfg.clone();
        cfg2.seed = 43;
        let (e, _) = run(&p, &cfg2, &mut adam_state(1e-3), Threads::Single, &mut go).unwrap();
        assert!(a != e);
        // Training lowers the loss.
        assert!(sa.loss_curve[4] < sa.loss_curve[0], "{:?}", sa.loss_curve);
    }
}

#[test]
fn huge_learning_rate_runs_to_max_iter_with_non_finite_weights() {
    let units = vec![8, 16, 3];
    let mut p = problem(100, &units, 2);
    p.x.mapv_inplace(|v| v * 1e6);
    let cfg = config(&units, 50, false);
    let mut state = TrainState {
        optimizer: Optimizer::Sgd {
            lr_init: 1e10,
            lr: 1e10,
            schedule: Schedule::Constant,
            momentum: 0.9,
            nesterov: true,
            power_t: 0.5,
        },
        ..adam_state(1e10)
    };
    let mut epochs = 0;
    let mut count = |_: &EpochEnd| {
        epochs += 1;
        EpochControl::Continue
    };
    let (w, s) = run(&p, &cfg, &mut state, Threads::Single, &mut count).unwrap();
    // As in scikit-learn: NaN losses never count as "no improvement", so the loop runs every
    // epoch and ends on max_iter (the caller then warns and raises on the weights).
    assert_eq!(s.stop_reason, StopReason::MaxIter);
    assert_eq!(s.n_iter, 50);
    assert_eq!(epochs, 50);
    assert!(s.loss_curve[49].is_nan(), "{:?}", &s.loss_curve[40..]);
    assert!(w.iter().any(|v| !v.is_finite()));
}

#[test]
fn hook_sees_every_epoch_and_can_interrupt() {
    let units = vec![8, 16, 3];
    let p = problem(100, &units, 3);
    let cfg = config(&units, 20, true);
    let mut seen = Vec::new();
    let mut hook = |e: &EpochEnd| {
        seen.push((e.n_iter, e.loss, e.validation_score));
        if e.n_iter == 4 {
            EpochControl::Interrupt
        } else {
            EpochControl::Continue
        }
    };
    let mut state = adam_state(1e-3);
    let (_, s) = run(&p, &cfg, &mut state, Threads::Single, &mut hook).unwrap();
    assert_eq!(s.stop_reason, StopReason::Interrupted);
    assert_eq!(s.n_iter, 4);
    assert_eq!(seen.len(), 4);
    assert_eq!(seen.iter().map(|e| e.1).collect::<Vec<_>>(), s.loss_curve);
    assert_eq!(state.t, 400);
    assert!(matches!(state.optimizer, Optimizer::Adam { t: 16, .. }));
}

#[test]
fn stopping_rule_and_incremental() {
    let units = vec![8, 16, 3];
    let p = problem(100, &units, 4);
    // tol huge: after the first epoch (which beats best_loss = inf) the loss never improves
    // "by tol", so the count passes n_iter_no_change = 3 at epoch 1 + 4.
    let mut cfg = config(&units, 100, false);
    cfg.tol = 1e9;
    cfg.n_iter_no_change = 3;
    let (_, s) = run(&p, &cfg, &mut adam_state(1e-3), Threads::Single, &mut go).unwrap();
    assert_eq!(s.stop_reason, StopReason::Converged);
    assert_eq!(s.n_iter, 5);
    assert_eq!(
        s.stop_message,
        "Training loss did not improve more than tol=1000000000.000000 for 3 consecutive \
         epochs. Stopping."
    );
    cfg.incremental = true;
    let (_, s) = run(&p, &cfg, &mut adam_state(1e-3), Threads::Single, &mut go).unwrap();
    assert_eq!(s.stop_reason, StopReason::Incremental);
    assert_eq!(s.n_iter, 1);
    let cfg = config(&units, 3, false);
    let (_, s) = run(&p, &cfg, &mut adam_state(1e-3), Threads::Single, &mut go).unwrap();
    assert_eq!(s.stop_reason, StopReason::MaxIter);
    assert_eq!(s.loss_curve.len(), 3);
}

/// A hook that answers `Stop` ends the call after that epoch as a normal stop
/// (`Requested`), and `last` tells the hook, before the stopping rule runs, which epoch the
/// call ends on anyway.
#[test]
fn hook_can_stop_and_knows_the_last_epoch() {
    let units = vec![8, 16, 3];
    let p = problem(100, &units, 4);
    let cfg = config(&units, 20, true);
    let mut seen = Vec::new();
    let mut stop_at_3 = |e: &EpochEnd| {
        seen.push(e.last);
        if e.n_iter == 3 {
            EpochControl::Stop
        } else {
            EpochControl::Continue
        }
    };
    let mut state = adam_state(1e-3);
    let (_, s) = run(&p, &cfg, &mut state, Threads::Single, &mut stop_at_3).unwrap();
    assert_eq!(s.stop_reason, StopReason::Requested);
    assert_eq!(s.n_iter, 3);
    assert_eq!(seen, [false, false, false]);

    // max_iter: the last epoch is flagged.
    let (lasts, s) = lasts_of(&p, &config(&units, 4, true), &mut adam_state(1e-3));
    assert_eq!(s.stop_reason, StopReason::MaxIter);
    assert_eq!(lasts, [false, false, false, true]);

    // The stopping rule (see `stopping_rule_and_incremental`): it fires at epoch 5.
    let mut cfg = config(&units, 100, false);
    cfg.tol = 1e9;
    cfg.n_iter_no_change = 3;
    let (lasts, s) = lasts_of(&p, &cfg, &mut adam_state(1e-3));
    assert_eq!(s.stop_reason, StopReason::Converged);
    assert_eq!(lasts, [false, false, false, false, true]);

    // SGD with the adaptive schedule does not stop on the rule while its rate can shrink.
    let mut state = TrainState {
        optimizer: Optimizer::Sgd {
            lr_init: 1e-3,
            lr: 1e-3,
            schedule: Schedule::Adaptive,
            momentum: 0.9,
            nesterov: true,
            power_t: 0.5,
        },
        ..adam_state(1e-3)
    };
    cfg.max_iter = 12;
    let (lasts, s) = lasts_of(&p, &cfg, &mut state);
    assert_eq!(s.stop_reason, StopReason::MaxIter);
    assert_eq!(lasts.iter().filter(|&&l| l).count(), 1);
    assert_eq!(lasts.last(), Some(&true));
}

/// The `last` flag the hook saw at each epoch of one call, and the call's summary.
fn lasts_of(p: &Problem, cfg: &TrainConfig, state: &mut TrainState) -> (Vec<bool>, TrainSummary) {
    let mut lasts = Vec::new();
    let mut record = |e: &EpochEnd| {
        lasts.push(e.last);
        EpochControl::Continue
    };
    let (_, s) = run(p, cfg, state, Threads::Single, &mut record).unwrap();
    (lasts, s)
}

#[test]
fn early_stopping_scores_and_keeps_best() {
    let units = vec![8, 16, 3];
    let p = problem(120, &units, 5);
    let v = problem(30, &units, 6);
    let mut cfg = config(&units, 30, true);
    cfg.score_kind = Some(ScoreKind::Accuracy);
    let mut flat: Vec<Vec<f64>> = p
        .coefs
        .iter()
        .map(|c| c.iter().copied().collect())
        .chain(p.intercepts.iter().map(|b| b.to_vec()))
        .collect();
    let mut first: Vec<Vec<f64>> = flat.iter().map(|v| vec![0.0; v.len()]).collect();
    let mut second = first.clone();
    let mut best: Vec<Vec<f64>> = first.clone();
    let mut ps: Vec<&mut [f64]> = flat.iter_mut().map(Vec::as_mut_slice).collect();
    let mut fs: Vec<&mut [f64]> = first.iter_mut().map(Vec::as_mut_slice).collect();
    let mut ss: Vec<&mut [f64]> = second.iter_mut().map(Vec::as_mut_slice).collect();
    let mut bs: Vec<&mut [f64]> = best.iter_mut().map(Vec::as_mut_slice).collect();
    let data = TrainData {
        x: p.x.as_slice().unwrap(),
        y: p.y.as_slice().unwrap(),
        sw: None,
        val: Some((v.x.as_slice().unwrap(), v.y.as_slice().unwrap(), None)),
    };
    let mut state = adam_state(1e-2);
    let mut scores = Vec::new();
    let mut hook = |e: &EpochEnd| {
        scores.push(e.validation_score.unwrap());
        EpochControl::Continue
    };
    let s = fit_stochastic(
        data,
        &mut ps,
        &mut fs,
        &mut ss,
        &mut bs,
        &cfg,
        &mut state,
        Threads::Single,
        &mut hook,
    )
    .unwrap();
    assert_eq!(s.validation_scores, scores);
    let best_score = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(state.best_validation_score, best_score);
    assert!(scores.iter().all(|&a| (0.0..=1.0).contains(&a)));
    // `best` holds a copy of the parameters from some epoch: never all zeros.
    assert!(best.iter().flatten().any(|&b| b != 0.0));
    // The best weights score best_score on the validation set.
    let coefs: Vec<Array2<f64>> = p
        .units
        .windows(2)
        .enumerate()
        .map(|(i, w)| Array2::from_shape_vec((w[0], w[1]), best[i].clone()).unwrap())
        .collect();
    let ints: Vec<ndarray::Array1<f64>> = best[2..]
        .iter()
        .map(|b| ndarray::Array1::from(b.clone()))
        .collect();
    let out = mlp_common::forward_naive(
        &v.x,
        &coefs,
        &ints,
        Activation::Relu,
        OutActivation::Softmax,
    );
    let acc = ScoreKind::Accuracy.score(
        out.as_slice().unwrap(),
        v.y.as_slice().unwrap(),
        3,
        None,
        true,
    );
    assert!((acc - best_score).abs() < 1e-12);
}

#[test]
fn bad_shapes_are_errors() {
    let units = vec![8, 16, 3];
    let p = problem(50, &units, 7);
    let cfg = config(&units, 2, true);
    let mut flat: Vec<Vec<f64>> = p
        .coefs
        .iter()
        .map(|c| c.iter().copied().collect())
        .chain(p.intercepts.iter().map(|b| b.to_vec()))
        .collect();
    flat[1].pop();
    let mut first: Vec<Vec<f64>> = flat.iter().map(|v| vec![0.0; v.len()]).collect();
    let mut second = first.clone();
    let mut ps: Vec<&mut [f64]> = flat.iter_mut().map(Vec::as_mut_slice).collect();
    let mut fs: Vec<&mut [f64]> = first.iter_mut().map(Vec::as_mut_slice).collect();
    let mut ss: Vec<&mut [f64]> = second.iter_mut().map(Vec::as_mut_slice).collect();
    let data = TrainData {
        x: p.x.as_slice().unwrap(),
        y: p.y.as_slice().unwrap(),
        sw: None,
        val: None,
    };
    let r = fit_stochastic(
        data,
        &mut ps,
        &mut fs,
        &mut ss,
        &mut [],
        &cfg,
        &mut adam_state(1e-3),
        Threads::Single,
        &mut go,
    );
    assert!(matches!(r, Err(CoreError::ShapeMismatch { .. })), "{r:?}");
    let x_short = &p.x.as_slice().unwrap()[..8 * 49];
    let data = TrainData { x: x_short, ..data };
    let p2 = problem(50, &units, 7);
    let mut flat2: Vec<Vec<f64>> = p2
        .coefs
        .iter()
        .map(|c| c.iter().copied().collect())
        .chain(p2.intercepts.iter().map(|b| b.to_vec()))
        .collect();
    let mut first2: Vec<Vec<f64>> = flat2.iter().map(|v| vec![0.0; v.len()]).collect();
    let mut second2 = first2.clone();
    let mut ps: Vec<&mut [f64]> = flat2.iter_mut().map(Vec::as_mut_slice).collect();
    let mut fs: Vec<&mut [f64]> = first2.iter_mut().map(Vec::as_mut_slice).collect();
    let mut ss: Vec<&mut [f64]> = second2.iter_mut().map(Vec::as_mut_slice).collect();
    let r = fit_stochastic(
        data,
        &mut ps,
        &mut fs,
        &mut ss,
        &mut [],
        &cfg,
        &mut adam_state(1e-3),
        Threads::Single,
        &mut go,
    );
    assert!(matches!(r, Err(CoreError::ShapeMismatch { .. })), "{r:?}");
}

/// Nets and batches big enough for the training loop's spinning team (several chunks per
/// batch, an update split in blocks): same bits at 1, 2 and 3 threads, and an interrupt
/// mid-fit returns (the team's workers exit) with the weights the single-thread run has.
#[test]
fn team_sections_keep_bits_and_stop_on_interrupt() {
    for units in [vec![64, 256, 10], vec![64, 128, 128, 128, 10]] {
        let p = problem(450, &units, 8);
        let mut cfg = config(&units, 4, true);
        cfg.batch_size = 200;
        let (a, sa) = run(&p, &cfg, &mut adam_state(1e-3), Threads::Single, &mut go).unwrap();
        for threads in [Threads::Pool(2), Threads::Pool(3)] {
            let (b, sb) = run(&p, &cfg, &mut adam_state(1e-3), threads, &mut go).unwrap();
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
            assert_eq!(sa, sb);
        }
        let mut stop_at_2 = |e: &EpochEnd| {
            if e.n_iter == 2 {
                EpochControl::Interrupt
            } else {
                EpochControl::Continue
            }
        };
        let (i1, s1) = run(
            &p,
            &cfg,
            &mut adam_state(1e-3),
            Threads::Single,
            &mut stop_at_2,
        )
        .unwrap();
        let (i2, s2) = run(
            &p,
            &cfg,
            &mut adam_state(1e-3),
            Threads::Pool(2),
            &mut stop_at_2,
        )
        .unwrap();
        assert_eq!(s2.stop_reason, StopReason::Interrupted);
        assert_eq!(s1, s2);
        assert!(i1.iter().zip(&i2).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert!(a != i1);
    }
}

/// The loop trains aligned copies of the caller's arrays: the weights and Adam's moments
/// come back after every call, so two 3-epoch calls (the state carried over, as warm starts
/// and `partial_fit` do) equal one 6-epoch call, and an interrupted fit hands back the
/// weights of the epochs it ran.
#[test]
fn weights_and_moments_come_back_to_the_caller() {
    for (units, threads) in [
        (vec![8, 16, 3], Threads::Single),
        (vec![64, 128, 128, 10], Threads::Pool(2)),
    ] {
        let p = problem(450, &units, 5);
        let mut cfg = config(&units, 6, false);
        cfg.batch_size = 200;
        let mut state = adam_state(1e-3);
        let mut arrays = Arrays::new(&p, &state);
        cfg.max_iter = 3;
        for _ in 0..2 {
            arrays.fit(&p, &cfg, &mut state, threads, &mut go).unwrap();
        }
        cfg.max_iter = 6;
        let (whole, _) = run(&p, &cfg, &mut adam_state(1e-3), threads, &mut go).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&arrays.flat.concat()), bits(&whole), "{units:?}");
        assert!(arrays.first.concat().iter().any(|&v| v != 0.0));
        assert!(arrays.second.concat().iter().any(|&v| v != 0.0));

        cfg.max_iter = 20;
        let mut stop_at_6 = |e: &EpochEnd| {
            if e.n_iter == 6 {
                EpochControl::Interrupt
            } else {
                EpochControl::Continue
            }
        };
        let (cut, s) = run(&p, &cfg, &mut adam_state(1e-3), threads, &mut stop_at_6).unwrap();
        assert_eq!(s.stop_reason, StopReason::Interrupted);
        assert_eq!(bits(&cut), bits(&whole), "{units:?}");
    }
}

/// Inputs whose features are zero more or less often: the loop reorders them (most often
/// zero first) and skips zeros on AVX-512 CPUs. Training on the reordered copy, with the
/// first layer's weight rows reordered alike, gives the same bits once those rows (of the
/// weights, moments and best weights) are put back: the reordering is the only change, and
/// the caller gets everything in its own feature order. Without AVX-512 nothing is
/// reordered, and the two fits differ only in the order of the first layer's sums.
#[test]
fn sparse_inputs_train_as_their_reordered_copy() {
    use oxlearn_core::mlp::tiled::{applies, skips_zeros};
    let units = vec![20, 64, 5];
    let (n, d, width) = (240, units[0], units[1]);
    let mut p = problem(n, &units, 11);
    let mut v = problem(60, &units, 12);
    let mut r = rng(13);
    // Feature f is zero with a probability that rises and falls with f, so that the order
    // by zero count is far from the identity.
    let zero_p = |f: usize| (((f * 7) % d) as f64 / d as f64).min(0.95);
    for x in [&mut p.x, &mut v.x] {
        for ((_, f), val) in x.indexed_iter_mut() {
            if rand::Rng::random_bool(&mut r, zero_p(f)) {
                *val = 0.0;
            }
        }
    }
    let zeros: Vec<usize> = (0..d)
        .map(|f| p.x.column(f).iter().filter(|&&a| a == 0.0).count())
        .collect();
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by_key(|&f| std::cmp::Reverse(zeros[f]));
    assert!(order.iter().enumerate().any(|(q, &f)| q != f));
    let reorder_x = |x: &Array2<f64>| Array2::from_shape_fn(x.dim(), |(i, q)| x[[i, order[q]]]);
    let reorder_rows = |w: &[f64]| -> Vec<f64> {
        order
            .iter()
            .flat_map(|&f| w[f * width..(f + 1) * width].to_vec())
            .collect()
    };
    let restore_rows = |w: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; w.len()];
        for (q, &f) in order.iter().enumerate() {
            out[f * width..(f + 1) * width].copy_from_slice(&w[q * width..(q + 1) * width]);
        }
        out
    };
    let mut cfg = config(&units, 6, true);
    cfg.score_kind = Some(ScoreKind::Accuracy);
    let fit = |x: &Array2<f64>, xv: &Array2<f64>, w0: Vec<f64>, threads: Threads| {
        let mut arrays = Arrays::new(&p, &adam_state(1e-2));
        arrays.flat[0] = w0;
        let mut ps: Vec<&mut [f64]> = arrays.flat.iter_mut().map(Vec::as_mut_slice).collect();
        let mut fs: Vec<&mut [f64]> = arrays.first.iter_mut().map(Vec::as_mut_slice).collect();
        let mut ss: Vec<&mut [f64]> = arrays.second.iter_mut().map(Vec::as_mut_slice).collect();
        let mut bs: Vec<&mut [f64]> = arrays.best.iter_mut().map(Vec::as_mut_slice).collect();
        let data = TrainData {
            x: x.as_slice().unwrap(),
            y: p.y.as_slice().unwrap(),
            sw: None,
            val: Some((xv.as_slice().unwrap(), v.y.as_slice().unwrap(), None)),
        };
        let mut state = adam_state(1e-2);
        let s = fit_stochastic(
            data, &mut ps, &mut fs, &mut ss, &mut bs, &cfg, &mut state, threads, &mut go,
        )
        .unwrap();
        (arrays, s)
    };
    let w0: Vec<f64> = p.coefs[0].iter().copied().collect();
    let (own, s_own) = fit(&p.x, &v.x, w0.clone(), Threads::Single);
    let (mut re, s_re) = fit(
        &reorder_x(&p.x),
        &reorder_x(&v.x),
        reorder_rows(&w0),
        Threads::Pool(2),
    );
    for list in [&mut re.flat, &mut re.first, &mut re.second, &mut re.best] {
        list[0] = restore_rows(&list[0]);
    }
    let skipping = applies(&units) && skips_zeros::<f64>(width);
    for (a, b) in [
        (&own.flat, &re.flat),
        (&own.first, &re.first),
        (&own.second, &re.second),
        (&own.best, &re.best),
    ] {
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            if skipping {
                assert_eq!(x.to_bits(), y.to_bits());
            } else {
                assert!((x - y).abs() <= 1e-9 * (1.0 + x.abs()), "{x} {y}");
            }
        }
    }
    if skipping {
        assert_eq!(s_own, s_re);
    }
    assert!(s_own.loss_curve[5] < s_own.loss_curve[0]);
}
