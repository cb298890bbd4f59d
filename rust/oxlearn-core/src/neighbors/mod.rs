//! Brute-force nearest-neighbour search with scikit-learn's answers, ties included.
//!
//! * [`kneighbors`] / [`kneighbors_multi`]: the `k` nearest training rows of each query row.
//!   Squared Euclidean distances come from the GEMM (`||q||^2 - 2 q.t + ||t||^2`, clipped at 0)
//!   on tiles of queries x training rows; other metrics from direct loops on the same tiles.
//!   Data of small integers (the digits images, counts, binary features) takes an exact
//!   integer kernel instead of the GEMM (`small_int`), with bit-identical distances.
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
//! # Modules
//!
//! An engine, the fills that compute its tiles of distances, and the search that chooses
//! among them. Each line: the module, what it owns, what it imports from here.
//!
//! ```text
//! search     entry points; which `Search` runs for a metric/dtype/  -> engine, fills, precision
//!            data (each fill and the screened search implement it)
//! engine/    plan, query tiles, reduction into the heaps, scratch,  -> heap, metric, precision
//!            radius tiles; the `Search` and `Fill` traits              (no fill, no search)
//! gemm       fill: Euclidean cross term and cosine from the GEMM    -> engine, norms, metric
//! direct     fill: manhattan, l2, minkowski, chebyshev, precomputed -> engine, norms, metric
//! small_int  fill: exact squared distances of small integers (SIMD) -> engine, metric
//! screen     float64 Euclidean screened by float32 bounds; reduces  -> engine, norms, heap,
//!            as it computes, so it drives the engine's query tiles     metric
//! norms      row sums in a fixed order, squared/inverse row norms   -> (none)
//! precision  `Precision` and the float32 rules (exact in f32, upcast) -> metric
//! metric     `Metric`: names, distance <-> reduced distance         -> (none)
//! heap       scikit-learn's heap and sorts                          -> (none)
//! vote       the classifier's and regressor's votes                 -> (none)
//! ```
//!
//! Where to add things:
//! * a metric: its variant, name and distance conversions in `metric.rs`, and its arithmetic
//!   in `direct.rs` (a `Kind` or `DirectSum` arm, which `search.rs` then takes by itself);
//!   a metric with its own kind of tile (a product, say) is a new fill instead;
//! * a precision (the dtype distances are reported in): a `Precision` variant with its
//!   rules in `precision.rs` (the engine reports only through `Precision::dist` and
//!   `Precision::rdist_radius`);
//! * a way of computing tiles: a type implementing `engine::Fill` (one method,
//!   `fill_tile`), and its place in `search.rs`'s order.
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

mod direct;
mod engine;
mod gemm;
pub mod heap;
mod metric;
mod norms;
mod precision;
mod screen;
mod search;
mod small_int;
pub mod vote;

pub use engine::{RadiusResult, Strategy, sklearn_strategy};
pub use metric::Metric;
pub use search::{
    kneighbors, kneighbors_multi, kneighbors_multi_with, radius_neighbors, radius_neighbors_with,
};
