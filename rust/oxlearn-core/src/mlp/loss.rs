//! scikit-learn's `LOSS_FUNCTIONS` (without the L2 term, which [`super::backward`] adds).
//!
//! Values are accumulated in `f64` whatever the training dtype (scikit-learn accumulates in
//! the training dtype with NumPy's pairwise sums; `f64` is at least as accurate). The
//! per-element terms are computed in the training dtype with scikit-learn's eps clipping.

// The loop bodies are `#[inline(always)]` so that they are compiled again inside each
// `#[target_feature]` copy made by `platform::multiversion!`.
#![allow(clippy::inline_always)]

use crate::error::{CoreError, Result};
use crate::platform::multiversion;
use crate::real::Real;

/// The loss minimised (`loss` attribute, after scikit-learn's logistic switch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// `0.5 * mean_outputs(average_samples((y - p)^2))`.
    SquaredError,
    /// Categorical cross-entropy; a single column is expanded to `[1 - p, p]`.
    LogLoss,
    /// Per-column binary cross-entropy, summed over columns (multi-label).
    BinaryLogLoss,
    /// Half Poisson deviance, summed over outputs.
    Poisson,
}

impl Loss {
    /// Parses scikit-learn's name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "squared_error" => Ok(Self::SquaredError),
            "log_loss" => Ok(Self::LogLoss),
            "binary_log_loss" => Ok(Self::BinaryLogLoss),
            "poisson" => Ok(Self::Poisson),
            _ => Err(CoreError::invalid(
                "loss",
                format!(
                    "expected one of 'squared_error', 'log_loss', 'binary_log_loss', \
                     'poisson', got {name:?}"
                ),
            )),
        }
    }

    /// The data term of the loss for predictions `p` and targets `y`, both row-major
    /// `(rows, width)`, optionally weighted per row.
    pub fn value<T: Real>(self, p: &[T], y: &[T], width: usize, sw: Option<&[T]>) -> f64 {
        if width == 0 || p.is_empty() {
            return 0.0;
        }
        let rows = p.len() / width;
        let denom = match sw {
            Some(w) => w[..rows].iter().map(|&v| v.to_f64_lossless()).sum::<f64>(),
            None => rows as f64,
        };
        self.finish(self.sum(p, y, width, sw), denom, width)
    }

    /// The (weighted) sum over rows of the per-row sums of the per-element terms: the part
    /// of [`Loss::value`] that adds up over row chunks.
    pub fn sum<T: Real>(self, p: &[T], y: &[T], width: usize, sw: Option<&[T]>) -> f64 {
        if width == 0 || p.is_empty() {
            return 0.0;
        }
        let rows = p.len() / width;
        let eps = T::epsilon();
        let one = T::one();
        let clip = |v: T| {
            // np.clip(v, eps, 1 - eps); NaN stays NaN.
            if v < eps {
                eps
            } else if v > one - eps {
                one - eps
            } else {
                v
            }
        };
        // Sum over outputs and weighted samples of the per-element term.
        let term = |pv: T, yv: T| -> f64 {
            match self {
                Self::SquaredError => {
                    let d = yv - pv;
                    (d * d).to_f64_lossless()
                }
                Self::LogLoss => {
                    let pc = clip(pv);
                    if width == 1 {
                        -(xlogy(yv, pc) + xlogy(one - yv, one - pc)).to_f64_lossless()
                    } else {
                        -xlogy(yv, pc).to_f64_lossless()
                    }
                }
                Self::BinaryLogLoss => {
                    let pc = clip(pv);
                    -(xlogy(yv, pc) + xlogy(one - yv, one - pc)).to_f64_lossless()
                }
                Self::Poisson => (xlogy(yv, yv / pv) - yv + pv).to_f64_lossless(),
            }
        };
        let mut total = 0.0_f64;
        if self == Self::LogLoss && width > 1 {
            // Categorical targets are mostly zeros, whose terms are -0.0 (xlogy(0, p) = 0)
            // unless p is NaN: skip them (adding -0.0 to a sum >= 0 changes no bit).
            for r in 0..rows {
                let prow = &p[r * width..(r + 1) * width];
                let yrow = &y[r * width..(r + 1) * width];
                let mut s = 0.0_f64;
                for (&pv, &yv) in prow.iter().zip(yrow) {
                    if yv != T::zero() || pv.is_nan() {
                        s += term(pv, yv);
                    }
                }
                match sw {
                    Some(w) => total += w[r].to_f64_lossless() * s,
                    None => total += s,
                }
            }
            return total;
        }
        for r in 0..rows {
            let prow = &p[r * width..(r + 1) * width];
            let yrow = &y[r * width..(r + 1) * width];
            let mut s = 0.0_f64;
            for (&pv, &yv) in prow.iter().zip(yrow) {
                s += term(pv, yv);
            }
            match sw {
                Some(w) => total += w[r].to_f64_lossless() * s,
                None => total += s,
            }
        }
        total
    }

    /// The loss from a [`Loss::sum`] total and the sum of the row weights (the row count
    /// without weights).
    pub fn finish(self, total: f64, denom: f64, width: usize) -> f64 {
        let avg = total / denom;
        match self {
            Self::SquaredError => 0.5 * avg / width as f64,
            _ => avg,
        }
    }
}

multiversion! {
    /// The softmax output layer's log-loss sum ([`Loss::sum`] of [`Loss::LogLoss`] over rows
    /// `width > 1` wide) together with the output delta `(p - y) * sample_weight` and its
    /// column sums (`colsum`, overwritten), with the logarithms from [`ln_f64`] in one
    /// vectorised pass (`logs`: scratch space for the terms); compiled for `level`. The per-element terms
    /// and the summation orders are [`Loss::sum`]'s and the gradient path's.
    pub fn log_loss_and_delta<T: Real>(
        p: &[T],
        y: &[T],
        width: usize,
        sw: Option<&[T]>,
        delta: &mut [T],
        colsum: &mut [T],
        logs: &mut Vec<f64>,
    ) -> f64 => log_loss_and_delta_body
}

/// `np.clip(p, eps, 1 - eps)` (NaN stays NaN).
#[inline(always)]
fn clip_prob<T: Real>(pv: T) -> T {
    let eps = T::epsilon();
    let one = T::one();
    if pv < eps {
        eps
    } else if pv > one - eps {
        one - eps
    } else {
        pv
    }
}

/// The log-loss sum of [`log_loss_and_delta_body`] when every row has exactly one non-zero
/// target (one-hot labels, as a classifier's) and no output is NaN; `None` otherwise. The
/// other elements' terms are `-0.0`, which leave a sum's bits alone, so only each row's
/// target needs its logarithm: a tenth of them for ten classes (they were the largest cost
/// of a small net's log-loss). The targets are found branch-free (a test per element
/// mispredicts on each row's one target), and the terms and sums are the general path's.
#[inline(always)]
fn one_target_loss<T: Real>(
    p: &[T],
    y: &[T],
    width: usize,
    sw: Option<&[T]>,
    logs: &mut Vec<f64>,
) -> Option<f64> {
    let rows = p.len() / width;
    // logs[r]: the row's clipped target output; logs[rows + r]: its target.
    logs.clear();
    logs.resize(2 * rows, 0.0);
    let (sel_p, sel_y) = logs.split_at_mut(rows);
    let mut bad = false;
    for (((pr, yr), sp), sy) in p
        .chunks_exact(width)
        .zip(y.chunks_exact(width))
        .zip(sel_p.iter_mut())
        .zip(sel_y.iter_mut())
    {
        // The target's output and value picked by masking their bits (with one target the
        // OR of the masked bits is its value exactly): integer reductions, which vectorise,
        // where a select carried from element to element did not.
        let mut count = 0_u32;
        let (mut tp, mut ty) = (0_u64, 0_u64);
        let mut nan = false;
        for (&pv, &yv) in pr.iter().zip(yr) {
            let hit = yv != T::zero();
            let mask = 0_u64.wrapping_sub(u64::from(hit));
            count += u32::from(hit);
            tp |= pv.to_f64_lossless().to_bits() & mask;
            ty |= yv.to_f64_lossless().to_bits() & mask;
            nan |= pv.is_nan();
        }
        bad = bad || nan || count != 1;
        *sp = clip_prob(T::from_f64_lossy(f64::from_bits(tp))).to_f64_lossless();
        *sy = f64::from_bits(ty);
    }
    if bad {
        return None;
    }
    for (sp, &sy) in sel_p.iter_mut().zip(sel_y.iter()) {
        let ln = T::from_f64_lossy(ln_f64(*sp));
        *sp = -(T::from_f64_lossy(sy) * ln).to_f64_lossless();
    }
    let mut total = 0.0_f64;
    for (r, &t) in sel_p.iter().enumerate() {
        // The row's sum: zero plus its one term (the others add -0.0).
        let s = 0.0_f64 + t;
        match sw {
            Some(w) => total += w[r].to_f64_lossless() * s,
            None => total += s,
        }
    }
    Some(total)
}

#[inline(always)]
fn log_loss_and_delta_body<T: Real>(
    p: &[T],
    y: &[T],
    width: usize,
    sw: Option<&[T]>,
    delta: &mut [T],
    colsum: &mut [T],
    logs: &mut Vec<f64>,
) -> f64 {
    colsum.fill(T::zero());
    if width == 0 || p.is_empty() {
        return 0.0;
    }
    let rows = p.len() / width;
    let n = rows * width;
    let (p, y, delta) = (&p[..n], &y[..n], &mut delta[..n]);
    // delta = (p - y) * sample_weight, then the column sums row after row.
    for ((d, &pv), &yv) in delta.iter_mut().zip(p).zip(y) {
        *d = pv - yv;
    }
    if let Some(w) = sw {
        for (drow, &wr) in delta.chunks_exact_mut(width).zip(w) {
            for d in drow {
                *d *= wr;
            }
        }
    }
    for drow in delta.chunks_exact(width) {
        for (c, &d) in colsum.iter_mut().zip(drow) {
            *c += d;
        }
    }
    one_target_loss(p, y, width, sw, logs).unwrap_or_else(|| all_terms_loss(p, y, width, sw, logs))
}

/// The log-loss sum of [`log_loss_and_delta_body`] over every element.
#[inline(always)]
fn all_terms_loss<T: Real>(
    p: &[T],
    y: &[T],
    width: usize,
    sw: Option<&[T]>,
    logs: &mut Vec<f64>,
) -> f64 {
    let n = p.len();
    // Every term, branch-free (a test per element mispredicts on each row's one target):
    // -xlogy(y, clip(p)), and -0.0 where Loss::sum skips the element (y == 0 and p not
    // NaN), which leaves any sum's bits alone.
    logs.clear();
    logs.resize(n, 0.0);
    for ((t, &pv), &yv) in logs.iter_mut().zip(p).zip(y) {
        let pc = clip_prob(pv);
        let ln = T::from_f64_lossy(ln_f64(pc.to_f64_lossless()));
        *t = if yv != T::zero() || pv.is_nan() {
            -(yv * ln).to_f64_lossless()
        } else {
            -0.0
        };
    }
    let mut total = 0.0_f64;
    for (r, terms) in logs.chunks_exact(width).enumerate() {
        let mut s = 0.0_f64;
        for &t in terms {
            s += t;
        }
        match sw {
            Some(w) => total += w[r].to_f64_lossless() * s,
            None => total += s,
        }
    }
    total
}

multiversion! {
    /// `v = ln(v)` over `values` with [`ln_f64`] (in `f64`), compiled for `level`.
    pub fn ln_slice<T: Real>(values: &mut [T]) => ln_slice_body
}

#[inline(always)]
fn ln_slice_body<T: Real>(values: &mut [T]) {
    for v in values.iter_mut() {
        *v = T::from_f64_lossy(ln_f64(v.to_f64_lossless()));
    }
}

/// The natural logarithm in branch-free arithmetic the compiler vectorises (libm's `log` is
/// one call per value, and the log-loss's logarithms were about 4% of a small network's
/// training step): fdlibm's `__ieee754_log` (subnormals scaled by `2^54`, reduction to
/// `[sqrt(2)/2, sqrt(2))`, its `Lg1..Lg7` polynomial, both of its final formulas and its
/// `|f| < 2^-20` shortcut), every case computed and the result selected per value instead of
/// branched. Within 1 ulp of the correctly rounded value; `ln(0) = -inf`, `ln(inf) = inf`,
/// and NaN for NaN and negative inputs.
#[inline(always)]
pub fn ln_f64(x: f64) -> f64 {
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
    const LG1: f64 = f64::from_bits(0x3FE5_5555_5555_5593);
    const LG2: f64 = f64::from_bits(0x3FD9_9999_9997_FA04);
    const LG3: f64 = f64::from_bits(0x3FD2_4924_9422_9359);
    const LG4: f64 = f64::from_bits(0x3FCC_71C5_1D8E_78AF);
    const LG5: f64 = f64::from_bits(0x3FC7_4664_96CB_03DE);
    const LG6: f64 = f64::from_bits(0x3FC3_9A09_D078_C69F);
    const LG7: f64 = f64::from_bits(0x3FC2_F112_DF3E_5244);
    const TWO54: f64 = 18_014_398_509_481_984.0;
    let subnormal = x > 0.0 && x < f64::MIN_POSITIVE;
    let xs = if subnormal { x * TWO54 } else { x };
    let bits = xs.to_bits();
    let hx = (bits >> 32) as i64;
    let hm = hx & 0x000f_ffff;
    let i = (hm + 0x95f64) & 0x10_0000;
    // xs (or xs / 2) with its exponent reset: within [sqrt(2)/2, sqrt(2)).
    let high = (hm | (i ^ 0x3ff0_0000)) as u64;
    let xn = f64::from_bits((high << 32) | (bits & 0xffff_ffff));
    let k = ((hx >> 20) & 0x7ff) - 1023 + (i >> 20) - if subnormal { 54 } else { 0 };
    let f = xn - 1.0;
    let dk = k as f64;
    // |f| < 2^-20 (f == 0 included).
    let r_small = f * f * (0.5 - 0.333_333_333_333_333_3 * f);
    let small = dk * LN2_HI - ((r_small - dk * LN2_LO) - f);
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * (LG4 + w * LG6));
    let t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let far = dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f);
    let near = dk * LN2_HI - ((s * (f - r) - dk * LN2_LO) - f);
    let core = if (0x000f_ffff & (2 + hm)) < 3 {
        small
    } else if ((hm - 0x6147a) | (0x6b851 - hm)) > 0 {
        far
    } else {
        near
    };
    if x > 0.0 && x < f64::INFINITY {
        core
    } else if x == 0.0 {
        f64::NEG_INFINITY
    } else if x == f64::INFINITY {
        f64::INFINITY
    } else {
        f64::NAN
    }
}

/// scipy's `xlogy`: `0` when `x == 0` (and `y` is not NaN), else `x * ln(y)`.
#[inline]
pub fn xlogy<T: Real>(x: T, y: T) -> T {
    if x == T::zero() && !y.is_nan() {
        T::zero()
    } else {
        x * y.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::{all_terms_loss, one_target_loss};
    use crate::real::Real;

    const WIDTH: usize = 10;

    /// `n` rows of probabilities with one-hot targets at column `(7 r) % WIDTH`; row 0's
    /// target probability is below eps and row 1's is 1 (both clipped); row weights.
    fn rows<T: Real>(n: usize) -> (Vec<T>, Vec<T>, Vec<T>) {
        let mut p = Vec::with_capacity(n * WIDTH);
        let mut y = vec![T::zero(); n * WIDTH];
        for r in 0..n {
            let raw: Vec<f64> = (0..WIDTH)
                .map(|j| 1.0 + ((r * 31 + j * 17) % 97) as f64)
                .collect();
            let sum: f64 = raw.iter().sum();
            p.extend(raw.iter().map(|v| T::from_f64_lossy(v / sum)));
            y[r * WIDTH + (r * 7) % WIDTH] = T::one();
        }
        p[0] = T::from_f64_lossy(1e-30);
        p[WIDTH + 7] = T::one();
        let w = (0..n)
            .map(|r| T::from_f64_lossy(0.25 + (r % 5) as f64))
            .collect();
        (p, y, w)
    }

    fn same_as_all_terms<T: Real>() {
        let (p, y, w) = rows::<T>(37);
        let mut logs = Vec::new();
        for sw in [None, Some(&w[..])] {
            let fast = one_target_loss(&p, &y, WIDTH, sw, &mut logs).expect("one-hot rows");
            let all = all_terms_loss(&p, &y, WIDTH, sw, &mut logs);
            assert_eq!(fast.to_bits(), all.to_bits());
            assert!(fast.is_finite() && fast > 0.0);
        }
        // Two targets in a row, none, or a NaN output: left to the general path.
        for case in 0..3 {
            let (mut p2, mut y2) = (p.clone(), y.clone());
            match case {
                0 => y2[5 * WIDTH + 1] = T::one(),
                1 => y2[5 * WIDTH..6 * WIDTH].fill(T::zero()),
                _ => p2[8 * WIDTH + 2] = T::nan(),
            }
            assert!(one_target_loss(&p2, &y2, WIDTH, None, &mut logs).is_none());
        }
    }

    #[test]
    fn one_target_rows_give_the_all_terms_bits_f64() {
        same_as_all_terms::<f64>();
    }

    #[test]
    fn one_target_rows_give_the_all_terms_bits_f32() {
        same_as_all_terms::<f32>();
    }
}
