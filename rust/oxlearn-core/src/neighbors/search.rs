//! The searches' entry points and the choice among the fills: which computes the tiles for
//! a given metric, dtype and data, all of them giving scikit-learn's answers bit for bit.
//!
//! For a Euclidean search, in order: the exact small-integer kernel (`small_int`), then
//! float64 data of small integers in float32 (exact, see `precision`), then float32 data
//! that must be computed in float64 (screened, or upcast), then the screened float64 search
//! (`screen`), then the GEMM fill (`gemm`). Other metrics take the GEMM fill (cosine) or a
//! direct loop (`direct`).

use ndarray::{Array2, ArrayView2};

use super::Metric;
use super::direct::DirectFill;
use super::engine::{
    Fill, Plan, RadiusResult, RadiusSearch, Search, effective_threads, search_tiles, validate_ks,
};
use super::gemm::GemmFill;
use super::precision::{Precision, exact_in_f32_simd, needs_float64, upcast};
use super::screen::Screen;
use super::small_int::SmallIntFill;
use crate::error::{CoreError, Result};
use crate::exec::{Cancel, Threads, Wake};
use crate::platform::SimdLevel;
use crate::real::Real;

/// `impl Search for` each fill: the engine's tiles, filled by it ([`search_tiles`]). Not a
/// blanket impl over [`Fill`]: the screened search implements [`Search`] too, and the two
/// would overlap.
macro_rules! search_by_tiles {
    ($($fill:ty),*) => {$(
        impl<T: Real> Search<T> for $fill {
            fn search(
                &self,
                plan: &Plan<'_>,
                wake: Wake,
            ) -> Result<Vec<(Array2<f64>, Array2<usize>)>> {
                search_tiles(plan, wake, self)
            }
        }
    )*};
}

search_by_tiles!(GemmFill<'_, T>, DirectFill<'_, T>, SmallIntFill);

/// The `k` nearest training rows of every query row, for several `k` from one pass.
///
/// Returns, for each entry of `ks` (in the given order), the distances `(n_queries, k)` as
/// `f64` and the training indices `(n_queries, k)`, sorted by increasing distance. The
/// neighbours kept and their order, ties included, are those of scikit-learn's brute-force
/// `ArgKmin` run with one thread for that `k` alone, whatever `threads` is.
///
/// `query` is `(n_queries, n_features)`, or `(n_queries, n_train)` distances for
/// [`Metric::Precomputed`]. Errors on an empty training set, a feature-count mismatch,
/// `k == 0` or `k > n_train`.
#[allow(clippy::type_complexity)]
pub fn kneighbors_multi<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    ks: &[usize],
    metric: &Metric,
    threads: Threads,
) -> Result<Vec<(Array2<f64>, Array2<usize>)>> {
    kneighbors_multi_with(query, train, ks, metric, threads, Cancel::never())
}

/// [`kneighbors_multi`] that stops with [`CoreError::Interrupted`] soon after `cancel` is
/// set (it is polled once per tile of at most 256 x 256 distances).
#[allow(clippy::type_complexity)]
pub fn kneighbors_multi_with<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    ks: &[usize],
    metric: &Metric,
    threads: Threads,
    cancel: &Cancel,
) -> Result<Vec<(Array2<f64>, Array2<usize>)>> {
    search_multi(
        query,
        train,
        ks,
        metric,
        threads,
        Precision::of::<T>(),
        cancel,
    )
}

/// [`kneighbors_multi`] reporting distances in `precision`.
fn search_multi<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    ks: &[usize],
    metric: &Metric,
    threads: Threads,
    precision: Precision,
    cancel: &Cancel,
) -> Result<Vec<(Array2<f64>, Array2<usize>)>> {
    if train.nrows() == 0 {
        return Err(CoreError::EmptyInput("the training data".into()));
    }
    validate_ks(ks, train.nrows())?;
    // Row-major views (a copy only of an input that is not).
    let (query, train) = (query.as_standard_layout(), train.as_standard_layout());
    let (query, train) = (query.view(), train.view());
    let threads = effective_threads(threads, query.nrows(), train.nrows(), train.ncols());
    // Pool threads wake up while this thread converts the inputs and computes the norms.
    let wake = threads.wake();
    let (n_q, n_t) = (query.nrows(), train.nrows());
    if let Some(fill) = SmallIntFill::new(query, train, metric) {
        // Same distances, bit for bit, at a quarter of the float32 GEMM's cost (see
        // `small_int`).
        let plan = Plan::new(n_q, n_t, ks, metric, threads, precision).with_cancel(cancel);
        return Search::<T>::search(&fill, &plan, wake);
    }
    if let Some((q32, t32)) = exact_in_f32_simd(SimdLevel::detected(), query, train, metric) {
        // Same answers, bit for bit, at twice the GEMM speed (see `exact_in_f32`). The
        // call wakes the (already awake) pool threads again for its own serial part.
        drop(wake);
        return search_multi(
            q32.view(),
            t32.view(),
            ks,
            metric,
            threads,
            precision,
            cancel,
        );
    }
    if needs_float64(query, train, metric) {
        // float32 data whose float32 expansion would not be exact: scikit-learn computes
        // it in float64 on upcast values, and so does the screened search (its float32
        // GEMM only bounds the distances). Where the screening does not apply, float64
        // copies take the float64 search.
        if let Some(screen) = Screen::new(query, train, metric) {
            let plan = Plan::new(n_q, n_t, ks, metric, threads, precision).with_cancel(cancel);
            return screen.search(&plan, wake);
        }
        drop(wake);
        let (q64, t64) = (upcast(query)?, upcast(train)?);
        return search_multi(
            q64.view(),
            t64.view(),
            ks,
            metric,
            threads,
            precision,
            cancel,
        );
    }
    if let Some(screen) = Screen::new(query, train, metric) {
        // The same answers, ties included, with most of the GEMM in float32 (see `screen`).
        let plan = Plan::new(n_q, n_t, ks, metric, threads, precision).with_cancel(cancel);
        return screen.search(&plan, wake);
    }
    check_inputs(query, train, metric)?;
    let plan = Plan::new(n_q, n_t, ks, metric, threads, precision).with_cancel(cancel);
    if let Some(fill) = GemmFill::new(query, train, metric) {
        return fill.search(&plan, wake);
    }
    direct_fill(query, train, metric)?.search(&plan, wake)
}

/// The `k` nearest training rows of every query row: [`kneighbors_multi`] with one `k`.
pub fn kneighbors<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    k: usize,
    metric: &Metric,
    threads: Threads,
) -> Result<(Array2<f64>, Array2<usize>)> {
    let mut all = kneighbors_multi(query, train, &[k], metric, threads)?;
    all.pop()
        .ok_or_else(|| CoreError::invalid("n_neighbors", "no value of k was given"))
}

/// Every training row within `radius` (inclusive) of each query row.
///
/// Unsorted results are in increasing training index order; with `sort_results` they are
/// sorted by distance as scikit-learn sorts them (its introsort for the metrics of its
/// compiled reductions, a stable sort for cosine and precomputed distances).
pub fn radius_neighbors<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    radius: f64,
    metric: &Metric,
    sort_results: bool,
    threads: Threads,
) -> Result<RadiusResult> {
    radius_neighbors_with(
        query,
        train,
        radius,
        metric,
        sort_results,
        threads,
        Cancel::never(),
    )
}

/// [`radius_neighbors`] that stops with [`CoreError::Interrupted`] soon after `cancel` is
/// set (it is polled once per tile of distances).
pub fn radius_neighbors_with<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    radius: f64,
    metric: &Metric,
    sort_results: bool,
    threads: Threads,
    cancel: &Cancel,
) -> Result<RadiusResult> {
    let search = RadiusSearch {
        radius,
        metric,
        sort_results,
        threads,
        precision: Precision::of::<T>(),
        cancel,
    };
    radius_search(&search, query, train)
}

/// Every training row within the radius of each query row (see [`radius_neighbors`]): the
/// choice of a fill, as in `search_multi`.
fn radius_search<T: Real>(
    search: &RadiusSearch<'_>,
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
) -> Result<RadiusResult> {
    let radius = search.radius;
    let metric = search.metric;
    if radius.is_nan() || radius < 0.0 {
        return Err(CoreError::invalid(
            "radius",
            format!("the radius must be a non-negative number, got {radius}"),
        ));
    }
    // Row-major views (a copy only of an input that is not).
    let (query, train) = (query.as_standard_layout(), train.as_standard_layout());
    let (query, train) = (query.view(), train.view());
    if let Some((q32, t32)) = exact_in_f32_simd(SimdLevel::detected(), query, train, metric) {
        return radius_search(search, q32.view(), t32.view());
    }
    if needs_float64(query, train, metric) {
        // As in `search_multi`: scikit-learn's float32 Euclidean distances are float64
        // sums.
        return radius_search(search, upcast(query)?.view(), upcast(train)?.view());
    }
    check_inputs(query, train, metric)?;
    let (n_q, n_t, d) = (query.nrows(), train.nrows(), train.ncols());
    if let Some(fill) = GemmFill::new(query, train, metric) {
        return search.tiles(&fill, n_q, n_t, d);
    }
    search.tiles(&direct_fill(query, train, metric)?, n_q, n_t, d)
}

/// The [`DirectFill`] of a metric that no other fill computes.
fn direct_fill<'a, T: Real>(
    query: ArrayView2<'a, T>,
    train: ArrayView2<'a, T>,
    metric: &'a Metric,
) -> Result<impl Fill<T> + Search<T> + 'a> {
    DirectFill::new(query, train, metric)
        .ok_or_else(|| CoreError::invalid("metric", format!("no fill computes {metric:?}")))
}

/// The checks every search makes of its inputs before it fills a tile: a non-empty
/// training set, queries of as many features as the training rows (or, precomputed, one
/// distance per training row), and one Minkowski weight per feature.
fn check_inputs<T: Real>(
    query: ArrayView2<'_, T>,
    train: ArrayView2<'_, T>,
    metric: &Metric,
) -> Result<()> {
    if train.nrows() == 0 {
        return Err(CoreError::EmptyInput("the training data".into()));
    }
    let expected_cols = if matches!(metric, Metric::Precomputed) {
        train.nrows()
    } else {
        train.ncols()
    };
    if query.ncols() != expected_cols {
        let what = if matches!(metric, Metric::Precomputed) {
            "precomputed distances: columns of the query matrix vs training samples"
        } else {
            "number of features of the queries vs the training data"
        };
        return Err(CoreError::shape(what, expected_cols, query.ncols()));
    }
    if let Metric::Minkowski { w: Some(w), .. } = metric
        && w.len() != train.ncols()
    {
        return Err(CoreError::shape(
            "Minkowski weights w vs number of features",
            train.ncols(),
            w.len(),
        ));
    }
    Ok(())
}
