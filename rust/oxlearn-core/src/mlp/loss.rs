//! scikit-learn's `LOSS_FUNCTIONS` (without the L2 term, which [`super::backprop`] adds).
//!
//! Values are accumulated in `f64` whatever the training dtype (scikit-learn accumulates in
//! the training dtype with NumPy's pairwise sums; `f64` is at least as accurate). The
//! per-element terms are computed in the training dtype with scikit-learn's eps clipping.

use crate::error::{CoreError, Result};
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

/// scipy's `xlogy`: `0` when `x == 0` (and `y` is not NaN), else `x * ln(y)`.
#[inline]
pub fn xlogy<T: Real>(x: T, y: T) -> T {
    if x == T::zero() && !y.is_nan() {
        T::zero()
    } else {
        x * y.ln()
    }
}
