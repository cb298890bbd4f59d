//! Early-stopping validation scores (scikit-learn's `_score`: `accuracy_score` of the
//! label-binarizer's decision for classifiers, `r2_score` for regressors).

use crate::error::{CoreError, Result};
use crate::real::Real;

/// Which score early stopping maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreKind {
    /// Exact match of the binarized decision: row argmax for a softmax output (first
    /// maximum, NaN counts as maximum as in `np.argmax`), `p > 0.5` per column otherwise.
    Accuracy,
    /// `r2_score(..., multioutput="uniform_average")` with `force_finite=True`; NaN when
    /// any prediction is not finite (as `_score_with_function`).
    R2,
}

impl ScoreKind {
    /// Parses the contract's name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "accuracy" => Ok(Self::Accuracy),
            "r2" => Ok(Self::R2),
            _ => Err(CoreError::invalid(
                "score_kind",
                format!("expected 'accuracy' or 'r2', got {name:?}"),
            )),
        }
    }

    /// The score of predictions `p` against targets `y` (row-major, `width` columns).
    /// `softmax` selects argmax decisions for accuracy.
    pub fn score<T: Real>(
        self,
        p: &[T],
        y: &[T],
        width: usize,
        sw: Option<&[T]>,
        softmax: bool,
    ) -> f64 {
        if width == 0 || p.is_empty() {
            return f64::NAN;
        }
        let rows = p.len() / width;
        let weight = |r: usize| sw.map_or(1.0, |w| w[r].to_f64_lossless());
        match self {
            Self::Accuracy => {
                let (mut hit, mut tot) = (0.0_f64, 0.0_f64);
                for r in 0..rows {
                    let pr = &p[r * width..(r + 1) * width];
                    let yr = &y[r * width..(r + 1) * width];
                    let ok = if softmax && width > 1 {
                        argmax(pr) == argmax(yr)
                    } else {
                        let half = T::from_f64_lossy(0.5);
                        pr.iter().zip(yr).all(|(&a, &b)| (a > half) == (b > half))
                    };
                    let w = weight(r);
                    tot += w;
                    if ok {
                        hit += w;
                    }
                }
                hit / tot
            }
            Self::R2 => {
                if p.iter().any(|v| !v.is_finite()) {
                    return f64::NAN;
                }
                if rows < 2 {
                    return f64::NAN;
                }
                let mut total = 0.0;
                for c in 0..width {
                    let (mut sy, mut sw_) = (0.0_f64, 0.0_f64);
                    for r in 0..rows {
                        let w = weight(r);
                        sy += w * y[r * width + c].to_f64_lossless();
                        sw_ += w;
                    }
                    let mean = sy / sw_;
                    let (mut num, mut den) = (0.0_f64, 0.0_f64);
                    for r in 0..rows {
                        let w = weight(r);
                        let yv = y[r * width + c].to_f64_lossless();
                        let d = yv - p[r * width + c].to_f64_lossless();
                        num += w * d * d;
                        den += w * (yv - mean) * (yv - mean);
                    }
                    total += if num == 0.0 {
                        1.0
                    } else if den == 0.0 {
                        0.0
                    } else {
                        1.0 - num / den
                    };
                }
                total / width as f64
            }
        }
    }
}

/// `np.argmax`: the first maximum, or the first NaN.
fn argmax<T: Real>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v.is_nan() {
            return i;
        }
        if v > row[best] {
            best = i;
        }
    }
    best
}
