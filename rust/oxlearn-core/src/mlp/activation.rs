//! Activations (scikit-learn's `ACTIVATIONS`) and hidden derivatives (`DERIVATIVES`).
//!
//! Each function works on a row-major block (`rows * width` values) and fuses what scikit-learn
//! does in separate NumPy passes: the bias add with the activation, and the derivative with
//! the intercept-gradient column sums. The per-element arithmetic is scikit-learn's (same
//! operations in the same order), so results track it to the last bits where NumPy's own
//! functions (`exp`, `tanh`) agree with Rust's.

// The loop bodies are `#[inline(always)]` so that they are compiled again inside each
// `#[target_feature]` copy made by `platform::multiversion!` (an ordinary call would run the
// portable build).
#![allow(clippy::inline_always)]

use crate::error::{CoreError, Result};
use crate::platform::{SimdLevel, multiversion};
use crate::real::Real;

multiversion! {
    /// [`Activation::bias_activate`] compiled for `level` (see [`crate::platform`]).
    pub fn hidden_bias_activate<T: Real>(act: Activation, z: &mut [T], bias: &[T])
        => hidden_bias_activate_body
}

#[inline(always)]
fn hidden_bias_activate_body<T: Real>(act: Activation, z: &mut [T], bias: &[T]) {
    act.bias_activate(z, bias);
}

multiversion! {
    /// [`Activation::backprop_rows`] compiled for `level` (see [`crate::platform`]).
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
            Self::Softmax => softmax_block(SimdLevel::detected(), z, bias),
        }
    }
}

impl OutActivation {
    /// `z[r, :] = f(z[r, :])` over a row-major block `width` wide: [`Self::bias_activate`]
    /// for pre-activations that already include the bias.
    pub fn activate<T: Real>(self, level: SimdLevel, z: &mut [T], width: usize) {
        if width == 0 {
            return;
        }
        match self {
            Self::Identity => {}
            Self::Logistic => z.iter_mut().for_each(|v| *v = expit(*v)),
            Self::Exp => z.iter_mut().for_each(|v| *v = v.exp()),
            Self::Softmax => softmax_rows(level, z, width),
        }
    }
}

multiversion! {
    /// `z = softmax(z)` row by row over a row-major block `width` wide ([`softmax_block`]
    /// without the bias), compiled for `level`.
    pub fn softmax_rows<T: Real>(z: &mut [T], width: usize) => softmax_rows_body
}

multiversion! {
    /// `z = softmax(z + bias)` row by row over a row-major block of width `bias.len()`
    /// (scikit-learn's `inplace_softmax`: max-subtracted, then normalised), with the
    /// exponentials from [`exp_f64`] in one vectorised pass; compiled for `level`.
    pub fn softmax_block<T: Real>(z: &mut [T], bias: &[T]) => softmax_block_body
}

/// Values per group of rows whose softmax normalisation runs as one flat pass.
const SOFTMAX_GROUP: usize = 256;

#[inline(always)]
fn softmax_block_body<T: Real>(z: &mut [T], bias: &[T]) {
    let w = bias.len();
    if w == 0 {
        return;
    }
    add_bias(z, bias);
    softmax_rows_body(z, w);
}

#[inline(always)]
fn softmax_rows_body<T: Real>(z: &mut [T], w: usize) {
    if w == 0 {
        return;
    }
    for row in z.chunks_exact_mut(w) {
        let mut max = T::neg_infinity();
        for &v in row.iter() {
            // np.max propagates NaN.
            if v > max || v.is_nan() {
                max = v;
            }
        }
        for v in row.iter_mut() {
            *v -= max;
        }
    }
    for v in z.iter_mut() {
        *v = T::from_f64_lossy(exp_f64(v.to_f64_lossless()));
    }
    // Row sums (left to right), then one flat pass over groups of rows multiplying by a
    // buffer of repeated reciprocals (a 10-wide row alone does not vectorise). scikit-learn
    // divides by the sum; one division per row and a product per value is within an ulp or
    // so of that and kept the divider from being a third of the softmax.
    if w > SOFTMAX_GROUP {
        for row in z.chunks_exact_mut(w) {
            let mut sum = T::zero();
            for &v in row.iter() {
                sum += v;
            }
            let inv = T::one() / sum;
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
        return;
    }
    let mut inv = [T::zero(); SOFTMAX_GROUP];
    for group in z.chunks_mut(SOFTMAX_GROUP / w * w) {
        for (row, d) in group.chunks_exact(w).zip(inv.chunks_exact_mut(w)) {
            let mut sum = T::zero();
            for &v in row {
                sum += v;
            }
            d.fill(T::one() / sum);
        }
        for (v, &d) in group.iter_mut().zip(&inv) {
            *v *= d;
        }
    }
}

/// `e^x` in branch-free arithmetic the compiler vectorises (libm's `exp` is one call per
/// value, and the softmax's exponentials were a fifth of a small network's training step).
///
/// Cody-Waite reduction `x = n ln2 + r`, `|r| <= ln2 / 2`, with fdlibm's split of `ln2`, a
/// degree-13 Taylor polynomial for `e^r` (truncation error below 1e-17, evaluated by Estrin's
/// scheme) and `2^n` applied as
/// two exact power-of-two factors so that subnormal results and overflow come out right.
/// Within 2 ulp of the correctly rounded value; `exp(NaN)` is NaN, `exp(-inf)` is 0 and
/// `exp(inf)` is inf.
#[inline(always)]
pub fn exp_f64(x: f64) -> f64 {
    // fdlibm's ln2_hi (low 32 bits zero, so n * LN2_HI is exact) and ln2_lo.
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // 1.5 * 2^52: adding and subtracting it rounds to the nearest integer.
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    // Clamped so that n stays within [-1077, 1025] (NaN passes through the comparisons).
    let x = x.clamp(-746.0, 710.0);
    let t = x * LOG2E + SHIFT;
    let nf = t - SHIFT;
    let n = (t.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64);
    let r = (x - nf * LN2_HI) - nf * LN2_LO;
    // Estrin's scheme: pairs of terms, then powers r^2, r^4, r^8. Horner's fourteen
    // dependent steps made the exponential latency-bound (2.3 us against 1.3 us for a
    // 100 x 10 softmax block).
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let q0 = r + 1.0;
    let q1 = r * (1.0 / 6.0) + 0.5;
    let q2 = r * (1.0 / 120.0) + 1.0 / 24.0;
    let q3 = r * (1.0 / 5_040.0) + 1.0 / 720.0;
    let q4 = r * (1.0 / 362_880.0) + 1.0 / 40_320.0;
    let q5 = r * (1.0 / 39_916_800.0) + 1.0 / 3_628_800.0;
    let q6 = r * (1.0 / 6_227_020_800.0) + 1.0 / 479_001_600.0;
    let s0 = q1 * r2 + q0;
    let s1 = q3 * r2 + q2;
    let s2 = q5 * r2 + q4;
    let u0 = s1 * r4 + s0;
    let u1 = q6 * r4 + s2;
    let p = u1 * r8 + u0;
    // 2^n as 2^n1 * 2^n2 with both exponents normal.
    let n1 = n >> 1;
    let n2 = n - n1;
    let s1 = f64::from_bits(((n1 + 1023) as u64) << 52);
    let s2 = f64::from_bits(((n2 + 1023) as u64) << 52);
    p * s1 * s2
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
