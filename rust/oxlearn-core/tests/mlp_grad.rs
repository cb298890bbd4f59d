//! Finite-difference gradient checks and forward-pass checks against a naive network.

mod mlp_common;

use mlp_common::{forward_naive, max_rel_diff, pack, params, rng, uniform, uniform1};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use oxlearn_core::Threads;
use oxlearn_core::mlp::{
    Activation, Loss, NetSpec, OutActivation, forward_predict, loss_grad_packed,
};

const ACTIVATIONS: [Activation; 4] = [
    Activation::Identity,
    Activation::Logistic,
    Activation::Tanh,
    Activation::Relu,
];

/// Every (output activation, loss) pair scikit-learn uses, with a target generator.
const HEADS: [(OutActivation, Loss); 5] = [
    (OutActivation::Identity, Loss::SquaredError),
    (OutActivation::Logistic, Loss::BinaryLogLoss),
    (OutActivation::Logistic, Loss::LogLoss),
    (OutActivation::Softmax, Loss::LogLoss),
    (OutActivation::Exp, Loss::Poisson),
];

fn targets(head: (OutActivation, Loss), n: usize, k: usize, seed: u64) -> Array2<f64> {
    let mut r = rng(seed);
    match head.0 {
        OutActivation::Identity => uniform(&mut r, (n, k), -2.0, 2.0),
        OutActivation::Exp => uniform(&mut r, (n, k), 0.0, 3.0),
        OutActivation::Logistic => uniform(&mut r, (n, k), 0.0, 1.0).mapv(f64::round),
        OutActivation::Softmax => {
            let u = uniform(&mut r, (n, 1), 0.0, k as f64);
            Array2::from_shape_fn((n, k), |(i, j)| {
                if (u[[i, 0]] as usize).min(k - 1) == j {
                    1.0
                } else {
                    0.0
                }
            })
        }
    }
}

fn l2(coefs: &[Array2<f64>], alpha: f64, sw_sum: f64) -> f64 {
    0.5 * alpha
        * coefs
            .iter()
            .map(|c| c.iter().map(|v| v * v).sum::<f64>())
            .sum::<f64>()
        / sw_sum
}

fn unpack_owned(p: &[f64], units: &[usize]) -> (Vec<Array2<f64>>, Vec<Array1<f64>>) {
    let mut c = Vec::new();
    let mut b = Vec::new();
    let mut s = 0;
    for w in units.windows(2) {
        c.push(Array2::from_shape_vec((w[0], w[1]), p[s..s + w[0] * w[1]].to_vec()).unwrap());
        s += w[0] * w[1];
    }
    for &w in &units[1..] {
        b.push(Array1::from(p[s..s + w].to_vec()));
        s += w;
    }
    (c, b)
}

/// The quantity whose exact gradient scikit-learn's backprop returns: for squared error
/// that is the loss without the 1/n_outputs mean (scikit-learn's delta is `p - y` for
/// every output), otherwise the loss itself.
fn objective(
    p: &[f64],
    x: &Array2<f64>,
    y: &Array2<f64>,
    sw: Option<&Array1<f64>>,
    spec: &NetSpec,
    alpha: f64,
) -> f64 {
    let (loss, _) = loss_grad_packed(
        p,
        x.view(),
        y.view(),
        sw.map(|a| a.view()),
        spec,
        alpha,
        Threads::Single,
    )
    .unwrap();
    if spec.loss == Loss::SquaredError {
        let (c, _) = unpack_owned(p, &spec.units);
        let sw_sum = sw.map_or(x.nrows() as f64, |w| w.sum());
        let pen = l2(&c, alpha, sw_sum);
        (loss - pen) * y.ncols() as f64 + pen
    } else {
        loss
    }
}

fn check_fd(act: Activation, head: (OutActivation, Loss), weighted: bool, alpha: f64, k: usize) {
    let n = 13;
    let units = vec![4, 5, 3, k];
    let mut r = rng(7 + k as u64);
    let x = uniform(&mut r, (n, 4), -1.5, 1.5);
    let y = targets(head, n, k, 11);
    let sw = weighted.then(|| uniform1(&mut r, n, 0.2, 2.0));
    let (coefs, intercepts) = params(&mut r, &units);
    let p = pack(&coefs, &intercepts);
    let spec = NetSpec::new(units.clone(), act, head.0, head.1).unwrap();
    let (_, grad) = loss_grad_packed(
        &p,
        x.view(),
        y.view(),
        sw.as_ref().map(|a| a.view()),
        &spec,
        alpha,
        Threads::Single,
    )
    .unwrap();
    let h = 1e-6;
    let mut fd = vec![0.0; p.len()];
    for i in 0..p.len() {
        let mut pp = p.clone();
        pp[i] += h;
        let fp = objective(&pp, &x, &y, sw.as_ref(), &spec, alpha);
        pp[i] -= 2.0 * h;
        let fm = objective(&pp, &x, &y, sw.as_ref(), &spec, alpha);
        fd[i] = (fp - fm) / (2.0 * h);
    }
    let err = grad
        .iter()
        .zip(&fd)
        .map(|(g, f)| (g - f).abs() / (1e-4 + g.abs().max(f.abs())))
        .fold(0.0, f64::max);
    assert!(
        err < 1e-5,
        "{act:?} {head:?} weighted={weighted} alpha={alpha} k={k}: max rel err {err}\n{grad:?}\n{fd:?}"
    );
}

#[test]
fn finite_difference_gradients_every_activation_and_head() {
    for act in ACTIVATIONS {
        for head in HEADS {
            let ks: &[usize] = match head.0 {
                OutActivation::Softmax => &[3],
                OutActivation::Logistic if head.1 == Loss::LogLoss => &[1],
                _ => &[1, 3],
            };
            for &k in ks {
                for weighted in [false, true] {
                    for alpha in [0.0, 0.3] {
                        check_fd(act, head, weighted, alpha, k);
                    }
                }
            }
        }
    }
}

#[test]
fn forward_matches_naive_f64_and_f32() {
    for act in ACTIVATIONS {
        for (out, k) in [
            (OutActivation::Identity, 2),
            (OutActivation::Logistic, 1),
            (OutActivation::Softmax, 5),
            (OutActivation::Exp, 2),
        ] {
            let units = [7, 33, 17, k];
            let mut r = rng(3);
            let x = uniform(&mut r, (301, 7), -2.0, 2.0);
            let (coefs, intercepts) = params(&mut r, &units);
            let want = forward_naive(&x, &coefs, &intercepts, act, out);
            let cv: Vec<ArrayView2<'_, f64>> = coefs.iter().map(|a| a.view()).collect();
            let iv: Vec<ArrayView1<'_, f64>> = intercepts.iter().map(|a| a.view()).collect();
            for threads in [Threads::Single, Threads::Pool(2)] {
                let got = forward_predict(x.view(), &cv, &iv, act, out, threads).unwrap();
                let d = max_rel_diff(got.as_slice().unwrap(), want.as_slice().unwrap());
                assert!(d < 1e-12, "{act:?} {out:?} {threads:?}: {d}");
            }
            // float32 end to end, within float32 precision of the f64 reference.
            let x32 = x.mapv(|v| v as f32);
            let c32: Vec<Array2<f32>> = coefs.iter().map(|c| c.mapv(|v| v as f32)).collect();
            let i32_: Vec<Array1<f32>> = intercepts.iter().map(|b| b.mapv(|v| v as f32)).collect();
            let cv: Vec<ArrayView2<'_, f32>> = c32.iter().map(|a| a.view()).collect();
            let iv: Vec<ArrayView1<'_, f32>> = i32_.iter().map(|a| a.view()).collect();
            let got = forward_predict(x32.view(), &cv, &iv, act, out, Threads::Single).unwrap();
            let got64: Vec<f64> = got.iter().map(|&v| f64::from(v)).collect();
            let d = max_rel_diff(&got64, want.as_slice().unwrap());
            assert!(d < 1e-4, "f32 {act:?} {out:?}: {d}");
        }
    }
}

/// Naive loss for one head, as scikit-learn's formulas read.
fn naive_loss(p: &Array2<f64>, y: &Array2<f64>, head: (OutActivation, Loss)) -> f64 {
    let (n, k) = p.dim();
    let eps = f64::EPSILON;
    let clip = |v: f64| v.clamp(eps, 1.0 - eps);
    let xlogy = |a: f64, b: f64| if a == 0.0 { 0.0 } else { a * b.ln() };
    let mut s = 0.0;
    for i in 0..n {
        for j in 0..k {
            let (pv, yv) = (p[[i, j]], y[[i, j]]);
            s += match head.1 {
                Loss::SquaredError => 0.5 * (yv - pv).powi(2) / k as f64,
                Loss::Poisson => xlogy(yv, yv / pv) - yv + pv,
                Loss::LogLoss if k > 1 => -xlogy(yv, clip(pv)),
                _ => -(xlogy(yv, clip(pv)) + xlogy(1.0 - yv, 1.0 - clip(pv))),
            };
        }
    }
    s / n as f64
}

#[test]
fn loss_and_gradient_match_naive_values() {
    for head in HEADS {
        let k = if head.0 == OutActivation::Softmax {
            4
        } else {
            2
        };
        let k = if head.1 == Loss::LogLoss && head.0 == OutActivation::Logistic {
            1
        } else {
            k
        };
        let units = vec![3, 6, k];
        let mut r = rng(5);
        let x = uniform(&mut r, (20, 3), -1.0, 1.0);
        let y = targets(head, 20, k, 2);
        let (coefs, intercepts) = params(&mut r, &units);
        let p = pack(&coefs, &intercepts);
        let spec = NetSpec::new(units, Activation::Tanh, head.0, head.1).unwrap();
        let (loss, _) =
            loss_grad_packed(&p, x.view(), y.view(), None, &spec, 0.5, Threads::Single).unwrap();
        let pred = forward_naive(&x, &coefs, &intercepts, Activation::Tanh, head.0);
        let want = naive_loss(&pred, &y, head) + l2(&coefs, 0.5, 20.0);
        assert!(
            (loss - want).abs() < 1e-12 * want.abs().max(1.0),
            "{head:?}: {loss} vs {want}"
        );
    }
}

#[test]
fn loss_grad_is_thread_count_independent() {
    let units = vec![64, 256, 10];
    let mut r = rng(9);
    let x = uniform(&mut r, (200, 64), 0.0, 16.0);
    let y = targets((OutActivation::Softmax, Loss::LogLoss), 200, 10, 4);
    let (coefs, intercepts) = params(&mut r, &units);
    let p = pack(&coefs, &intercepts);
    let spec = NetSpec::new(
        units,
        Activation::Relu,
        OutActivation::Softmax,
        Loss::LogLoss,
    )
    .unwrap();
    let one = loss_grad_packed(&p, x.view(), y.view(), None, &spec, 1e-4, Threads::Single).unwrap();
    let two =
        loss_grad_packed(&p, x.view(), y.view(), None, &spec, 1e-4, Threads::Pool(2)).unwrap();
    assert_eq!(one.0.to_bits(), two.0.to_bits());
    assert!(
        one.1
            .iter()
            .zip(&two.1)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
}

#[test]
fn shape_errors_are_errors_not_panics() {
    let units = vec![3, 4, 2];
    let spec = NetSpec::new(
        units,
        Activation::Relu,
        OutActivation::Identity,
        Loss::SquaredError,
    )
    .unwrap();
    let x = Array2::<f64>::zeros((5, 3));
    let y = Array2::<f64>::zeros((5, 2));
    let p = vec![0.0; spec.n_params()];
    assert!(
        loss_grad_packed(
            &p[1..],
            x.view(),
            y.view(),
            None,
            &spec,
            0.0,
            Threads::Single
        )
        .is_err()
    );
    let bad_x = Array2::<f64>::zeros((5, 4));
    assert!(
        loss_grad_packed(
            &p,
            bad_x.view(),
            y.view(),
            None,
            &spec,
            0.0,
            Threads::Single
        )
        .is_err()
    );
    let bad_y = Array2::<f64>::zeros((4, 2));
    assert!(
        loss_grad_packed(
            &p,
            x.view(),
            bad_y.view(),
            None,
            &spec,
            0.0,
            Threads::Single
        )
        .is_err()
    );
    let sw = Array1::<f64>::ones(4);
    assert!(
        loss_grad_packed(
            &p,
            x.view(),
            y.view(),
            Some(sw.view()),
            &spec,
            0.0,
            Threads::Single
        )
        .is_err()
    );
    let empty = Array2::<f64>::zeros((0, 3));
    let empty_y = Array2::<f64>::zeros((0, 2));
    assert!(
        loss_grad_packed(
            &p,
            empty.view(),
            empty_y.view(),
            None,
            &spec,
            0.0,
            Threads::Single
        )
        .is_err()
    );
    assert!(
        NetSpec::new(
            vec![3],
            Activation::Relu,
            OutActivation::Identity,
            Loss::Poisson
        )
        .is_err()
    );
    assert!(
        NetSpec::new(
            vec![3, 0, 1],
            Activation::Relu,
            OutActivation::Identity,
            Loss::Poisson
        )
        .is_err()
    );
    assert!(Activation::parse("sigmoid").is_err());
    let c = [Array2::<f64>::zeros((3, 4))];
    let b = [Array1::<f64>::zeros(5)];
    let cv: Vec<_> = c.iter().map(|a| a.view()).collect();
    let bv: Vec<_> = b.iter().map(|a| a.view()).collect();
    assert!(
        forward_predict(
            x.view(),
            &cv,
            &bv,
            Activation::Relu,
            OutActivation::Identity,
            Threads::Single
        )
        .is_err()
    );
}
