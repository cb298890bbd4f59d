//! Shared helpers for the MLP integration tests: random data and a naive reference network.
#![allow(dead_code)]

use ndarray::{Array1, Array2};
use oxlearn_core::mlp::{Activation, OutActivation};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

pub fn rng(seed: u64) -> Pcg64 {
    Pcg64::seed_from_u64(seed)
}

pub fn uniform(rng: &mut Pcg64, shape: (usize, usize), lo: f64, hi: f64) -> Array2<f64> {
    Array2::from_shape_fn(shape, |_| rng.random_range(lo..hi))
}

pub fn uniform1(rng: &mut Pcg64, n: usize, lo: f64, hi: f64) -> Array1<f64> {
    Array1::from_shape_fn(n, |_| rng.random_range(lo..hi))
}

/// Glorot-like random parameters for `units`.
pub fn params(rng: &mut Pcg64, units: &[usize]) -> (Vec<Array2<f64>>, Vec<Array1<f64>>) {
    let mut coefs = Vec::new();
    let mut intercepts = Vec::new();
    for w in units.windows(2) {
        let b = (6.0 / (w[0] + w[1]) as f64).sqrt();
        coefs.push(uniform(rng, (w[0], w[1]), -b, b));
        intercepts.push(uniform1(rng, w[1], -b, b));
    }
    (coefs, intercepts)
}

pub fn act_naive(a: Activation, x: f64) -> f64 {
    match a {
        Activation::Identity => x,
        Activation::Logistic => 1.0 / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
        Activation::Relu => x.max(0.0),
    }
}

/// Straightforward triple-loop forward pass, in f64.
pub fn forward_naive(
    x: &Array2<f64>,
    coefs: &[Array2<f64>],
    intercepts: &[Array1<f64>],
    act: Activation,
    out: OutActivation,
) -> Array2<f64> {
    let mut a = x.clone();
    for (l, (c, b)) in coefs.iter().zip(intercepts).enumerate() {
        let (n, k) = (a.nrows(), c.ncols());
        let mut z = Array2::<f64>::zeros((n, k));
        for i in 0..n {
            for j in 0..k {
                let mut s = 0.0;
                for p in 0..c.nrows() {
                    s += a[[i, p]] * c[[p, j]];
                }
                z[[i, j]] = s + b[j];
            }
        }
        if l + 1 < coefs.len() {
            z.mapv_inplace(|v| act_naive(act, v));
        } else {
            match out {
                OutActivation::Identity => {}
                OutActivation::Logistic => z.mapv_inplace(|v| 1.0 / (1.0 + (-v).exp())),
                OutActivation::Exp => z.mapv_inplace(f64::exp),
                OutActivation::Softmax => {
                    for mut row in z.rows_mut() {
                        let m = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                        row.mapv_inplace(|v| (v - m).exp());
                        let s = row.sum();
                        row.mapv_inplace(|v| v / s);
                    }
                }
            }
        }
        a = z;
    }
    a
}

/// Packs coefs then intercepts, as scikit-learn's `_pack`.
pub fn pack(coefs: &[Array2<f64>], intercepts: &[Array1<f64>]) -> Vec<f64> {
    let mut v = Vec::new();
    for c in coefs {
        v.extend(c.iter().copied());
    }
    for b in intercepts {
        v.extend(b.iter().copied());
    }
    v
}

pub fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1e-8 + x.abs().max(y.abs())))
        .fold(0.0, f64::max)
}
