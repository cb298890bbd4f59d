//! The metrics: scikit-learn's names for them and the conversions between a distance and
//! the reduced distance the heaps rank (`rdist`).
//!
//! A new metric goes here (its variant, its name in [`Metric::from_name`] and its
//! conversions), with its tile arithmetic in a fill (`direct.rs` for a direct loop) and,
//! when its float32 search has its own rules, in `precision.rs`.

use crate::error::{CoreError, Result};

/// A distance between rows, as scikit-learn's `effective_metric_` names it.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// `sqrt(sum (x - y)^2)`, computed from squared norms and a GEMM cross term.
    Euclidean,
    /// `sum (x - y)^2`, computed like [`Metric::Euclidean`] without the square root.
    SqEuclidean,
    /// `sqrt(sum (x - y)^2)` summed feature by feature: scikit-learn's `l2`, which its
    /// search computes with `EuclideanDistance` (a direct sum), not the GEMM expansion.
    L2,
    /// `sum |x - y|` (`manhattan`, `cityblock`, `l1`).
    Manhattan,
    /// `max |x - y|` (`chebyshev`, `infinity`).
    Chebyshev,
    /// `(sum w_j |x_j - y_j|^p)^(1/p)` with `p >= 1` finite (weights `w` optional).
    Minkowski {
        /// The power `p` (finite, at least 1).
        p: f64,
        /// Optional non-negative per-feature weights.
        w: Option<Vec<f64>>,
    },
    /// `1 - x.y / (||x|| ||y||)` clipped to `[0, 2]`; a zero row has similarity 0.
    Cosine,
    /// The query rows already hold the distances to every training row.
    Precomputed,
}

impl Metric {
    /// Parses scikit-learn's metric name (an `effective_metric_`), with `p` and `w` for
    /// `minkowski`.
    pub fn from_name(name: &str, p: f64, w: Option<Vec<f64>>) -> Result<Self> {
        Ok(match name {
            "euclidean" => Self::Euclidean,
            "l2" => Self::L2,
            "sqeuclidean" => Self::SqEuclidean,
            "manhattan" | "cityblock" | "l1" => Self::Manhattan,
            "chebyshev" | "infinity" => Self::Chebyshev,
            "cosine" => Self::Cosine,
            "precomputed" => Self::Precomputed,
            "minkowski" => {
                if p.is_nan() || p < 1.0 {
                    return Err(CoreError::invalid(
                        "p",
                        format!("Minkowski distances need p >= 1, got p={p}"),
                    ));
                }
                if let Some(w) = &w
                    && w.iter().any(|v| !v.is_finite() || *v < 0.0)
                {
                    return Err(CoreError::invalid(
                        "w",
                        "Minkowski weights must be finite and non-negative",
                    ));
                }
                if p.is_infinite() {
                    if w.is_some() {
                        return Err(CoreError::invalid(
                            "w",
                            "weighted Minkowski distance needs a finite p",
                        ));
                    }
                    Self::Chebyshev
                } else {
                    Self::Minkowski { p, w }
                }
            }
            other => {
                return Err(CoreError::invalid(
                    "metric",
                    format!(
                        "unsupported metric {other:?}; supported: 'minkowski', 'euclidean', \
                         'l2', 'sqeuclidean', 'manhattan', 'cityblock', 'l1', 'chebyshev', \
                         'infinity', 'cosine', 'precomputed'"
                    ),
                ));
            }
        })
    }

    /// Converts a reduced distance (the value ranked in the heap) to the distance reported.
    #[inline]
    pub fn rdist_to_dist(&self, r: f64) -> f64 {
        match self {
            Self::Euclidean | Self::L2 => r.max(0.0).sqrt(),
            Self::Minkowski { p, .. } => r.powf(1.0 / p),
            _ => r,
        }
    }

    /// Converts a radius to the reduced distance compared in the radius search.
    #[inline]
    pub fn dist_to_rdist(&self, d: f64) -> f64 {
        match self {
            Self::Euclidean | Self::L2 => d * d,
            Self::Minkowski { p, .. } => d.powf(*p),
            _ => d,
        }
    }
}
