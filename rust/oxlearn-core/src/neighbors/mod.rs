//! Brute-force nearest-neighbour search with scikit-learn's answers, ties included.
//!
//! * [`kneighbors`] / [`kneighbors_multi`]: the `k` nearest training rows of each query row.
//!   Squared Euclidean distances come from the GEMM (`||q||^2 - 2 q.t + ||t||^2`, clipped at 0)
//!   on tiles of queries x training rows; other metrics from direct loops on the same tiles.
//!   Data of small integers (the digits images, counts, binary features) takes an exact
//!   integer kernel instead of the GEMM (`int8`), with bit-identical distances.
//!   Other float64 data of 16 features or more is screened with float32 bounds first
//!   (`screen`): only the candidates the heaps could take are computed in float64, which
//!   changes no answer.
//!   Each tile is reduced at once into one fixed-size heap per query, fed in increasing
//!   training index order, so the result is scikit-learn's (1 thread) whatever the thread
//!   count: only tiles of *queries* run in parallel.
//! * [`radius_neighbors`]: every training row within a radius, in index order or sorted.
//! * [`vote`]: the classifier's and regressor's aggregation of the neighbours' targets.
//! * [`heap`]: the exact port of scikit-learn's heap and sort that fixes the tie order.
//!
//! ```
//! use ndarray::array;
//! use oxlearn_core::neighbors::{kneighbors, Metric};
//! use oxlearn_core::Threads;
//!
//! let train = array![[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]];
//! let query = array![[0.9, 0.0]];
//! let (dist, idx) = kneighbors(query.view(), train.view(), 2, &Metric::Euclidean, Threads::Single)?;
//! assert_eq!(idx.row(0).to_vec(), vec![1, 0]);
//! assert!((dist[[0, 0]] - 0.1).abs() < 1e-12);
//! # Ok::<(), oxlearn_core::CoreError>(())
//! ```

mod brute;
pub mod heap;
mod int8;
mod screen;
pub mod vote;

pub use brute::{
    RadiusResult, Strategy, kneighbors, kneighbors_multi, kneighbors_multi_with, radius_neighbors,
    radius_neighbors_with, sklearn_strategy,
};

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
