//! Bindings of the neighbour kernels (`oxlearn_core::neighbors`).
//!
//! The Python estimators validate everything with scikit-learn's utilities and pass
//! C-contiguous arrays of one float dtype (float32 or float64) per call; a different dtype
//! raises `TypeError`. Every kernel runs with the GIL released.

use ndarray::{Array2, ArrayView2, Ix1, Ix2};
use numpy::{IntoPyArray, PyArray1, PyArray2};
use oxlearn_core::neighbors::{self, Metric, vote};
use oxlearn_core::{Real, Threads, try_collect};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::arrays::{ReadOnly, matrix_if};
use crate::errors::to_pyerr;
use crate::watch::{run_detached, run_interruptible};

type DistInd<'py> = (Bound<'py, PyArray2<f64>>, Bound<'py, PyArray2<isize>>);

/// The indices as `isize` (numpy's intp). The standard library collects a mapped
/// `vec::IntoIter` into the same allocation when the element layouts match, so this does
/// not hold a second copy of the indices (peak memory).
fn to_isize(a: Array2<usize>) -> PyResult<Array2<isize>> {
    const WHAT: &str = "the neighbour indices";
    let dim = a.dim();
    let n = dim.0 * dim.1;
    if !a.is_standard_layout() {
        let flat = try_collect(n, a.iter().map(|&v| v as isize), WHAT).map_err(to_pyerr)?;
        return Array2::from_shape_vec(dim, flat)
            .map_err(|e| PyRuntimeError::new_err(format!("internal error in oxlearn: {e}")));
    }
    let (flat, offset) = a.into_raw_vec_and_offset();
    let start = offset.unwrap_or(0);
    let flat: Vec<isize> = if start == 0 && flat.len() == n {
        flat.into_iter().map(|v| v as isize).collect()
    } else {
        let part = flat.iter().skip(start).take(n).map(|&v| v as isize);
        try_collect(n, part, WHAT).map_err(to_pyerr)?
    };
    Array2::from_shape_vec(dim, flat)
        .map_err(|e| PyRuntimeError::new_err(format!("internal error in oxlearn: {e}")))
}

fn metric_from(name: &str, p: f64, w: Option<ReadOnly<'_, f64, Ix1>>) -> PyResult<Metric> {
    let w = w.map(|w| w.as_array().to_vec());
    Metric::from_name(name, p, w).map_err(crate::errors::to_pyerr)
}

fn dtype_error() -> PyErr {
    PyTypeError::new_err(
        "query and train must both be 2-D numpy arrays of float64, or both of float32",
    )
}

/// The `k` nearest training rows of each query, for each `k` of `ks`, from one search.
#[pyfunction]
#[pyo3(signature = (query, train, ks, metric, p, w, n_jobs))]
fn kneighbors<'py>(
    py: Python<'py>,
    query: &Bound<'py, PyAny>,
    train: &Bound<'py, PyAny>,
    ks: Vec<usize>,
    metric: &str,
    p: f64,
    w: Option<ReadOnly<'py, f64, Ix1>>,
    n_jobs: Option<i64>,
) -> PyResult<Vec<DistInd<'py>>> {
    let metric = metric_from(metric, p, w)?;
    let threads = Threads::from_n_jobs(n_jobs);
    let out = if let (Some(q), Some(t)) = (matrix_if::<f64>(query)?, matrix_if::<f64>(train)?) {
        search(py, q.as_array(), t.as_array(), &ks, &metric, threads)?
    } else if let (Some(q), Some(t)) = (matrix_if::<f32>(query)?, matrix_if::<f32>(train)?) {
        search(py, q.as_array(), t.as_array(), &ks, &metric, threads)?
    } else {
        return Err(dtype_error());
    };
    out.into_iter()
        .map(|(d, i)| Ok((d.into_pyarray(py), to_isize(i)?.into_pyarray(py))))
        .collect()
}

fn search<T: Real>(
    py: Python<'_>,
    q: ArrayView2<'_, T>,
    t: ArrayView2<'_, T>,
    ks: &[usize],
    metric: &Metric,
    threads: Threads,
) -> PyResult<Vec<(Array2<f64>, Array2<usize>)>> {
    run_interruptible(py, work(&q, &t), |cancel| {
        neighbors::kneighbors_multi_with(q, t, ks, metric, threads, cancel)
    })
}

/// A search's multiply-adds (one per query, training row and feature).
fn work<T>(q: &ArrayView2<'_, T>, t: &ArrayView2<'_, T>) -> usize {
    q.nrows()
        .saturating_mul(t.nrows())
        .saturating_mul(t.ncols().max(1))
}

type Csr<'py> = (
    Bound<'py, PyArray1<isize>>,
    Bound<'py, PyArray1<isize>>,
    Bound<'py, PyArray1<f64>>,
);

/// Training rows within `radius` of each query, as CSR arrays (indptr, indices, distances).
#[pyfunction]
#[pyo3(signature = (query, train, radius, metric, p, w, sort_results, n_jobs))]
fn radius_neighbors<'py>(
    py: Python<'py>,
    query: &Bound<'py, PyAny>,
    train: &Bound<'py, PyAny>,
    radius: f64,
    metric: &str,
    p: f64,
    w: Option<ReadOnly<'py, f64, Ix1>>,
    sort_results: bool,
    n_jobs: Option<i64>,
) -> PyResult<Csr<'py>> {
    let metric = metric_from(metric, p, w)?;
    let threads = Threads::from_n_jobs(n_jobs);
    let res = if let (Some(q), Some(t)) = (matrix_if::<f64>(query)?, matrix_if::<f64>(train)?) {
        let (q, t) = (q.as_array(), t.as_array());
        run_interruptible(py, work(&q, &t), |cancel| {
            neighbors::radius_neighbors_with(q, t, radius, &metric, sort_results, threads, cancel)
        })?
    } else if let (Some(q), Some(t)) = (matrix_if::<f32>(query)?, matrix_if::<f32>(train)?) {
        let (q, t) = (q.as_array(), t.as_array());
        run_interruptible(py, work(&q, &t), |cancel| {
            neighbors::radius_neighbors_with(q, t, radius, &metric, sort_results, threads, cancel)
        })?
    } else {
        return Err(dtype_error());
    };
    let to_i = |v: Vec<usize>| v.into_iter().map(|x| x as isize).collect::<Vec<_>>();
    Ok((
        to_i(res.indptr).into_pyarray(py),
        to_i(res.indices).into_pyarray(py),
        res.distances.into_pyarray(py),
    ))
}

/// Predicted class indices `(n_queries, n_outputs)` from neighbour indices and encoded labels.
#[pyfunction]
#[pyo3(signature = (neigh_ind, y, n_classes, weights))]
fn knn_classify<'py>(
    py: Python<'py>,
    neigh_ind: ReadOnly<'py, i64, Ix2>,
    y: ReadOnly<'py, i64, Ix2>,
    n_classes: Vec<usize>,
    weights: Option<ReadOnly<'py, f64, Ix2>>,
) -> PyResult<Bound<'py, PyArray2<i64>>> {
    let (nb, yv) = (neigh_ind.as_array(), y.as_array());
    let w = weights.as_ref().map(|w| w.as_array());
    let out = run_detached(py, || vote::classify(nb, yv, &n_classes, w))?;
    Ok(out.into_pyarray(py))
}

/// Class probabilities, one `(n_queries, n_classes[o])` array per output.
#[pyfunction]
#[pyo3(signature = (neigh_ind, y, n_classes, weights))]
fn knn_classify_proba<'py>(
    py: Python<'py>,
    neigh_ind: ReadOnly<'py, i64, Ix2>,
    y: ReadOnly<'py, i64, Ix2>,
    n_classes: Vec<usize>,
    weights: Option<ReadOnly<'py, f64, Ix2>>,
) -> PyResult<Bound<'py, PyList>> {
    let (nb, yv) = (neigh_ind.as_array(), y.as_array());
    let w = weights.as_ref().map(|w| w.as_array());
    let out = run_detached(py, || vote::classify_proba(nb, yv, &n_classes, w))?;
    PyList::new(py, out.into_iter().map(|a| a.into_pyarray(py)))
}

/// The regressor's predictions `(n_queries, n_outputs)`, in `y`'s dtype (float32 or float64).
#[pyfunction]
#[pyo3(signature = (neigh_ind, y, weights))]
fn knn_regress<'py>(
    py: Python<'py>,
    neigh_ind: ReadOnly<'py, i64, Ix2>,
    y: &Bound<'py, PyAny>,
    weights: Option<ReadOnly<'py, f64, Ix2>>,
) -> PyResult<Bound<'py, PyAny>> {
    let nb = neigh_ind.as_array();
    let w = weights.as_ref().map(|w| w.as_array());
    if let Some(y) = matrix_if::<f64>(y)? {
        let yv = y.as_array();
        let out = run_detached(py, || vote::regress(nb, yv, w))?;
        Ok(out.into_pyarray(py).into_any())
    } else if let Some(y) = matrix_if::<f32>(y)? {
        let yv = y.as_array();
        let out = run_detached(py, || vote::regress(nb, yv, w))?;
        Ok(out.into_pyarray(py).into_any())
    } else {
        Err(PyTypeError::new_err(
            "y must be a 2-D numpy array of float64 or float32",
        ))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(kneighbors, m)?)?;
    m.add_function(wrap_pyfunction!(radius_neighbors, m)?)?;
    m.add_function(wrap_pyfunction!(knn_classify, m)?)?;
    m.add_function(wrap_pyfunction!(knn_classify_proba, m)?)?;
    m.add_function(wrap_pyfunction!(knn_regress, m)?)?;
    Ok(())
}
