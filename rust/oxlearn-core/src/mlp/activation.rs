//! Activations (scikit-learn's `ACTIVATIONS`) and hidden derivatives (`DERIVATIVES`).
//!
//! Each function works on a row-major block (`rows * width` values) and fuses what scikit-learn
//! does in separate NumPy passes: the bias add with the activation, and the derivative with
//! the intercept-gradient column sums. The per-element arithmetic is scikit-learn's (same
//! operations in the same order), so results track it to the last bits where NumPy's own
//! functions (`exp`, `tanh`) agree with Rust's.

// The loop bodies are `#[inline(always)]` so that they are compiled again inside each
// `#[target_feature]` copy made by `simd::multiversion!` (an ordinary call would run the
// portable build).
#![allow(clippy::inline_always)]

use super::simd::multiversion;
use crate::error::{CoreError, Result};
use crate::real::Real;

multiversion! {
    /// [`Activation::bias_activate`] compiled for `level` (see [`super::simd`]).
    pub fn hidden_bias_activate<T: Real>(act: Activation, z: &mut [T], bias: &[T])
        => hidden_bias_activate_body
}

#[inline(always)]
fn hidden_bias_activate_body<T: Real>(act: Activation, z: &mut [T], bias: &[T]) {
    act.bias_activate(z, bias);
}

multiversion! {
    /// [`Activation::backprop_rows`] compiled for `level` (see [`super::simd`]).
    pub fn backprop_rows_at<T: Real>(act: Activation, a: &[T], delta: &mut [T], colsum: &mut [T])
        => backprop_rows_body
}

#[inline(always)]
fn backprop_rows_body<T: Real>(act: Activation, a: &[T], delta: &mut [T], colsum: &mut [T]) {
    act.backprop_rows(a, delta, colsum);
}

/// Hidden-layer activation (`activation` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `f(x) = x`.
    Identity,
    /// `f(x) = 1 / (1 + exp(-x))` (scipy's `expit`).
    Logistic,
    /// `f(x) = tanh(x)`.
    Tanh,
    /// `f(x) = max(x, 0)`.
    Relu,
}

/// Output-layer activation (`out_activation_`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutActivation {
    /// Regression with squared error.
    Identity,
    /// Binary and multi-label classification.
    Logistic,
    /// Multi-class classification (row-wise, max-subtracted).
    Softmax,
    /// Poisson regression.
    Exp,
}

impl Activation {
    /// Parses scikit-learn's name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "identity" => Ok(Self::Identity),
            "logistic" => Ok(Self::Logistic),
            "tanh" => Ok(Self::Tanh),
            "relu" => Ok(Self::Relu),
            _ => Err(CoreError::invalid(
                "activation",
                format!("expected one of 'identity', 'logistic', 'tanh', 'relu', got {name:?}"),
            )),
        }
    }

    /// The activation of one pre-activation value.
    #[inline]
    pub fn apply<T: Real>(self, x: T) -> T {
        match self {
            Self::Identity => x,
            Self::Logistic => expit(x),
            Self::Tanh => x.tanh(),
            // np.maximum(x, 0): NaN propagates.
            Self::Relu => {
                if x < T::zero() {
                    T::zero()
                } else {
                    x
                }
            }
        }
    }

    /// `delta * f'(z)` written, as scikit-learn does, in terms of the activation `a = f(z)`.
    #[inline(always)]
    pub fn derivative_times<T: Real>(self, a: T, delta: T) -> T {
        match self {
            Self::Identity => delta,
            // delta *= Z; delta *= 1 - Z
            Self::Logistic => delta * a * (T::one() - a),
            // delta *= 1 - Z**2
            Self::Tanh => delta * (T::one() - a * a),
            // delta[Z == 0] = 0
            Self::Relu => {
                if a == T::zero() {
                    T::zero()
                } else {
                    delta
                }
            }
        }
    }

    /// `z[r, c] = f(z[r, c] + bias[c])` over a row-major block of width `bias.len()`.
    #[inline(always)]
    pub fn bias_activate<T: Real>(self, z: &mut [T], bias: &[T]) {
        let w = bias.len();
        if w == 0 {
            return;
        }
        match self {
            Self::Identity => add_bias(z, bias),
            Self::Logistic => map_rows(z, bias, expit),
            Self::Tanh => map_rows(z, bias, T::tanh),
            Self::Relu => map_rows(z, bias, |x| if x < T::zero() { T::zero() } else { x }),
        }
    }

    /// `delta[r, c] = delta[r, c] * f'(a[r, c])` and `colsum[c] = sum_r delta[r, c]`, summed
    /// row after row as NumPy's `sum(axis=0)` does on a C-contiguous array.
    #[inline(always)]
    pub fn backprop_rows<T: Real>(self, a: &[T], delta: &mut [T], colsum: &mut [T]) {
        colsum.fill(T::zero());
        let w = colsum.len();
        if w == 0 {
            return;
        }
        for (arow, drow) in a.chunks_exact(w).zip(delta.chunks_exact_mut(w)) {
            for ((d, &av), s) in drow.iter_mut().zip(arow).zip(colsum.iter_mut()) {
                *d = self.derivative_times(av, *d);
                *s += *d;
            }
        }
    }
}

impl OutActivation {
    /// Parses scikit-learn's name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "identity" => Ok(Self::Identity),
            "logistic" => Ok(Self::Logistic),
            "softmax" => Ok(Self::Softmax),
            "exp" => Ok(Self::Exp),
            _ => Err(CoreError::invalid(
                "out_activation",
                format!("expected one of 'identity', 'logistic', 'softmax', 'exp', got {name:?}"),
            )),
        }
    }

    /// `z[r, :] = f(z[r, :] + bias)` over a row-major block of width `bias.len()`.
    pub fn bias_activate<T: Real>(self, z: &mut [T], bias: &[T]) {
        let w = bias.len();
        if w == 0 {
            return;
        }
        match self {
            Self::Identity => add_bias(z, bias),
            Self::Logistic => map_rows(z, bias, expit),
            Self::Exp => map_rows(z, bias, T::exp),
            Self::Softmax => {
                add_bias(z, bias);
                for row in z.chunks_exact_mut(w) {
                    softmax_row(row);
                }
            }
        }
    }
}

/// scipy's `expit`: `1 / (1 + exp(-x))`.
#[inline]
pub fn expit<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

/// `tmp = x - max(x); x = exp(tmp); x /= sum(x)`, as scikit-learn's `inplace_softmax`.
#[inline]
pub fn softmax_row<T: Real>(row: &mut [T]) {
    let mut max = T::neg_infinity();
    for &v in row.iter() {
        // np.max propagates NaN.
        if v > max || v.is_nan() {
            max = v;
        }
    }
    let mut sum = T::zero();
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

#[inline(always)]
fn add_bias<T: Real>(z: &mut [T], bias: &[T]) {
    for row in z.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

#[inline(always)]
fn map_rows<T: Real>(z: &mut [T], bias: &[T], f: impl Fn(T) -> T) {
    for row in z.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = f(*v + b);
        }
    }
}
