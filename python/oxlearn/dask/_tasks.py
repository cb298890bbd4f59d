"""The tasks of the sharded searches (run on the workers) and their merges.

A training shard is a dict: ``X`` (its rows, validated as the single-process fit validates
them), ``y`` (its targets or None), ``n`` (its number of rows), ``classes`` (the labels of
each output, classifier only) and ``searcher`` (scikit-learn's estimator fitted on the
rows, when the single process searches with scikit-learn's tree or brute force, else None).

Three ways to search, by what the single-process estimator runs (`search_mode`):

* ``"rust"``: oxlearn's engine; each shard's heap candidates are replayed into
  scikit-learn's heap (`oxlearn.dask._exact`): identical results, ties included.
* ``"heap"``: scikit-learn's compiled brute force (``ArgKmin``) for a metric it computes pair
  by pair; the same candidates and replay, with scikit-learn searching the ranges.
* ``"sorted"``: scikit-learn's KD/ball trees, or its brute force over a distance matrix
  (``np.argpartition``, for cosine, hamming, callables...): each shard's top ``k`` from
  the same code, merged by (distance, global index). Which of several rows tied at the
  ``k``-th distance a tree or ``np.argpartition`` keeps, and their order, depend on the
  whole training set (the tree's layout, the selection algorithm's pivots), so here the
  neighbours are the ``k`` smallest by (distance, index) (see the README).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator
from sklearn.utils import check_array

from oxlearn import _oxlearn
from oxlearn.dask import _exact
from oxlearn.dask._cluster import worker_threads
from oxlearn.neighbors._base import _check_weights_not_all_zero, _get_weights, _to_object_array

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
_FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


# --- fitting --------------------------------------------------------------------------------


def _prepare_shard(
    X: Any,
    y: Any,
    template: BaseEstimator,
    requires_y: bool,
    searcher_params: dict[str, Any] | None,
) -> dict[str, Any]:
    """Validate a training partition as the single-process ``fit`` does; keep its rows."""
    X = np.asarray(X)
    if X.ndim == 2 and X.shape[0] == 0:
        return {"X": X, "y": None, "n": 0, "classes": None, "searcher": None}
    # (Validation only: a brute-force fit builds no tree.)
    local = template.__class__(**{**template.get_params(), "algorithm": "brute"})
    if requires_y:
        local.fit(X, y)
    else:
        local.fit(X)
    # The rows as the single-process fit stores them (C-ordered, in their own dtype).
    rows = check_array(X, order="C")
    classes = None
    targets = None
    if requires_y:
        targets = np.asarray(y)
        if hasattr(local, "classes_"):
            classes = [np.unique(col) for col in targets.reshape((targets.shape[0], -1)).T]
    searcher = None if searcher_params is None else _exact.sklearn_searcher(rows, searcher_params)
    return {"X": rows, "y": targets, "n": rows.shape[0], "classes": classes, "searcher": searcher}


def _shard_meta(shard: dict[str, Any]) -> tuple[int, Any, Any, Any]:
    y = shard["y"]
    return shard["n"], shard["X"].dtype, shard["classes"], None if y is None else y.dtype


# --- queries --------------------------------------------------------------------------------


def _pad(rows: npt.NDArray[Any], pad: tuple[int, int]) -> npt.NDArray[Any]:
    """``rows`` with ``pad = (lead, tail)`` zero rows around them (see ``query_padding``)."""
    lead, tail = pad
    if not lead and not tail:
        return rows
    out = np.zeros((lead + rows.shape[0] + tail, rows.shape[1]), dtype=rows.dtype)
    out[lead : lead + rows.shape[0]] = rows
    return out


def query_padding(start: int, stop: int, total: int) -> tuple[int, int]:
    """Zero rows to put before and after the queries ``start:stop`` of ``total``.

    The engine computes GEMM distances in calls of ``_exact.QUERY_GRID`` query rows on a grid fixed
    by the query index (the last bit of a GEMM depends on the shape of its call). Padded so,
    a block's rows sit in the calls they sit in when a single process searches all
    ``total`` queries, and get the same bits.
    """
    lead = start % _exact.QUERY_GRID
    tail = 0 if stop == total else (-stop) % _exact.QUERY_GRID
    return lead, tail


def _validate_query(
    block: Any, lo: int, hi: int, template: BaseEstimator, dtype: Any, pad: tuple[int, int]
) -> npt.NDArray[Any]:
    """Validate query rows with the single-process estimator's checks.

    ``dtype`` (the Rust engine's) or None (scikit-learn's code: the rows keep the dtype its
    validation gives them). ``pad``: zero rows before and after (see ``query_padding``).
    """
    from sklearn.utils.validation import validate_data

    rows = np.asarray(block)[lo:hi]
    rows = validate_data(template, rows, accept_sparse=False, reset=False, order="C")
    return _pad(rows if dtype is None else np.ascontiguousarray(rows, dtype=dtype), pad)


def _shard_query(shard: dict[str, Any], lo: int, hi: int, pad: tuple[int, int]) -> npt.NDArray[Any]:
    """Rows ``lo:hi`` of a training shard, as queries (``kneighbors(None)``)."""
    return _pad(np.ascontiguousarray(shard["X"][lo:hi]), pad)


def _shard_rows(shard: dict[str, Any], dtype: Any) -> npt.NDArray[Any]:
    return np.ascontiguousarray(shard["X"], dtype=dtype)


def _threads(n_jobs: int | None) -> int:
    return worker_threads() if n_jobs is None else n_jobs


def _first_search(
    query: npt.NDArray[Any], shard: dict[str, Any], k: int, spec: _exact.SearchSpec, n_jobs: Any
) -> tuple[FloatArray, IntArray]:
    """Phase 1: the shard's top ``SEARCH_WIDTH * k`` rows for a query block."""
    return _exact.shard_topk(query, _shard_rows(shard, query.dtype), k, spec, _threads(n_jobs))


def _candidates_top(cands: _exact.Candidates, k: int) -> tuple[FloatArray, IntArray]:
    return _exact.candidates_top(cands, k)


def _prefix_tops(firsts: list[tuple[FloatArray, IntArray]], n_q: int, k: int) -> list[FloatArray]:
    return _exact.prefix_tops(firsts, n_q, k)


def _search_shard(
    query: npt.NDArray[Any],
    shard: dict[str, Any],
    offset: int,
    k: int,
    spec: _exact.SearchSpec,
    n_jobs: int | None,
    with_targets: bool,
    first: tuple[FloatArray, IntArray] | None,
    prefix_top: FloatArray | None,
) -> _exact.Candidates:
    """Phase 2: the shard's candidates, given its phase 1 and the earlier shards' top k."""
    return _exact.shard_candidates(
        query,
        _shard_rows(shard, query.dtype),
        offset,
        k,
        spec,
        _threads(n_jobs),
        targets=shard["y"] if with_targets else None,
        first=first,
        prefix_top=prefix_top,
    )


def _searcher(shard: dict[str, Any], params: dict[str, Any]) -> Any:
    """scikit-learn's estimator of the shard (built at fit, or now for a brute force)."""
    searcher = shard["searcher"]
    if searcher is None:
        searcher = _exact.sklearn_searcher(shard["X"], params)
    return searcher


def _sorted_shard(
    query: npt.NDArray[Any],
    shard: dict[str, Any],
    offset: int,
    k: int,
    params: dict[str, Any],
    with_targets: bool,
) -> tuple[npt.NDArray[Any], IntArray, npt.NDArray[Any] | None]:
    """Return the shard's top ``min(k, n)`` rows by scikit-learn's search ("sorted" mode)."""
    searcher, n = _searcher(shard, params), shard["n"]
    k = min(k, n)
    # Which rows tied at the k-th distance the search keeps depends on the whole set it
    # searches: widen it until every row at that distance is in (its last distance is
    # larger), then keep the k smallest by (distance, index).
    kk = k
    while True:
        dist, ind = searcher.kneighbors(query, kk)
        if kk == n or not np.any(dist[:, kk - 1] == dist[:, k - 1]):
            break
        kk = min(n, 2 * kk)
    order = np.lexsort((ind, dist), axis=1)[:, :k]
    dist = np.take_along_axis(dist, order, axis=1)
    ind = np.take_along_axis(ind, order, axis=1)
    labels = shard["y"][ind] if with_targets else None
    return dist, (ind + offset).astype(np.intp), labels


def _merge_sorted(
    parts: list[tuple[npt.NDArray[Any], IntArray, npt.NDArray[Any] | None]], k: int
) -> tuple[npt.NDArray[Any], IntArray, npt.NDArray[Any] | None]:
    """Return the ``k`` smallest of the shards' lists per query, by (distance, global index)."""
    dist = np.concatenate([p[0] for p in parts], axis=1)
    ind = np.concatenate([p[1] for p in parts], axis=1)
    order = np.lexsort((ind, dist), axis=1)[:, :k]
    labels = None
    if parts[0][2] is not None:
        all_labels = np.concatenate([p[2] for p in parts if p[2] is not None], axis=1)
        labels = np.take_along_axis(
            all_labels, order.reshape(order.shape + (1,) * (all_labels.ndim - 2)), axis=1
        )
    return (
        np.take_along_axis(dist, order, axis=1),
        np.take_along_axis(ind, order, axis=1),
        labels,
    )


def _neighbour_labels(cands: _exact.Candidates, inds: IntArray, n_train: int) -> npt.NDArray[Any]:
    """Return the targets of the merged neighbours, found among each query's candidates."""
    n_q, k = inds.shape
    q_of = np.repeat(np.arange(n_q), cands.counts)
    keys = q_of.astype(np.int64) * n_train + cands.indices
    wanted = np.arange(n_q, dtype=np.int64)[:, None] * n_train + inds
    pos = np.searchsorted(keys, wanted.ravel())
    assert cands.labels is not None
    return cands.labels[pos].reshape((n_q, k, *cands.labels.shape[1:]))


def drop_self(
    dist: npt.NDArray[Any], ind: IntArray, labels: npt.NDArray[Any] | None, offset: int
) -> tuple[npt.NDArray[Any], IntArray, npt.NDArray[Any] | None]:
    """Remove each training row from its own neighbours (scikit-learn's rule).

    The queries are training rows ``offset, offset + 1, ...``. With more duplicates than
    neighbours the row itself may be missing: the first neighbour is dropped.
    """
    n, k = ind.shape
    mask = ind != (offset + np.arange(n))[:, None]
    mask[np.all(mask, axis=1), 0] = False
    out_labels = None
    if labels is not None:
        out_labels = labels[mask].reshape((n, k - 1, *labels.shape[2:]))
    return dist[mask].reshape((n, k - 1)), ind[mask].reshape((n, k - 1)), out_labels


def _vote(
    dist: npt.NDArray[Any], labels: npt.NDArray[Any], mode: str, extra: dict[str, Any]
) -> Any:
    """Run the single-process vote (classifier) or average (regressor) over merged neighbours."""
    n_q, k = dist.shape
    weights = _get_weights(dist, extra["weights"])
    flat_ind = np.arange(n_q * k, dtype=np.int64).reshape((n_q, k))
    if mode in ("predict_classes", "predict_proba"):
        if weights is not None:
            _check_weights_not_all_zero(weights)
        classes = extra["classes"]
        outputs_2d = extra["outputs_2d"]
        all_classes = classes if outputs_2d else [classes]
        flat = labels.reshape((n_q * k, -1))
        codes = np.empty(flat.shape, dtype=np.int64)
        for j, classes_j in enumerate(all_classes):
            codes[:, j] = np.searchsorted(classes_j, flat[:, j])
        sizes = [len(c) for c in all_classes]
        if mode == "predict_proba":
            proba: list[FloatArray] = _oxlearn.knn_classify_proba(flat_ind, codes, sizes, weights)
            return tuple(proba) if len(proba) > 1 else proba[0]
        pred = _oxlearn.knn_classify(flat_ind, codes, sizes, weights)
        y_pred = np.empty((n_q, len(all_classes)), dtype=all_classes[0].dtype)
        for j, classes_j in enumerate(all_classes):
            y_pred[:, j] = classes_j.take(pred[:, j])
        return y_pred if outputs_2d else y_pred.ravel()
    # Regression: as `oxlearn.neighbors.KNeighborsRegressor.predict`.
    y = labels.reshape((n_q * k, -1))
    dtype = np.float32 if (weights is None and y.dtype == np.float32) else np.float64
    y_pred_r: npt.NDArray[Any] = _oxlearn.knn_regress(
        flat_ind, np.ascontiguousarray(y, dtype=dtype), weights
    )
    if labels.ndim == 2:
        y_pred_r = y_pred_r.ravel()
    return y_pred_r


def _merge_block(
    parts: list[Any],
    n_q: int,
    k: int,
    n_queries: int,
    n_train: int,
    spec: _exact.SearchSpec | None,
    mode: str,
    extra: dict[str, Any],
    self_offset: int | None = None,
    pad: tuple[int, int] = (0, 0),
) -> Any:
    """Merge one query block's shard results; return neighbours, or the vote (``mode``).

    ``spec`` None: the shards' top-k lists of the ``"sorted"`` mode, else their heap
    candidates. ``self_offset``: the queries are the training rows from that index, each
    dropped from its own neighbours. ``pad``: the padding rows around the block's ``n_q``
    queries in the parts (see ``query_padding``), dropped here.
    """
    labels: npt.NDArray[Any] | None
    lead, tail = pad
    if spec is None:
        dist, inds, labels = _merge_sorted(parts, k)
    else:
        vals, inds, cands = _exact.merge(parts, lead + n_q + tail, k, n_queries, n_train)
        dist = _exact.to_distances(vals, spec)
        labels = None if mode == "kneighbors" else _neighbour_labels(cands, inds, n_train)
    if lead or tail:
        rows = slice(lead, lead + n_q)
        dist, inds = dist[rows], inds[rows]
        labels = None if labels is None else labels[rows]
    if self_offset is not None:
        dist, inds, labels = drop_self(dist, inds, labels, self_offset)
    if mode == "kneighbors":
        return dist, inds
    assert labels is not None
    return _vote(dist, labels, mode, extra)


# --- radius searches ------------------------------------------------------------------------


def _radius_shard(
    query: npt.NDArray[Any],
    shard: dict[str, Any],
    offset: int,
    radius: float,
    spec: _exact.SearchSpec | None,
    params: dict[str, Any],
    n_jobs: int | None,
) -> tuple[IntArray, IntArray, npt.NDArray[Any]]:
    """Rows of the shard within ``radius`` of each query, in index order (CSR form).

    With the Rust engine (``spec``) the values are the searched (reduced) ones, else
    scikit-learn's distances.
    """
    if spec is not None:
        rows = _shard_rows(shard, query.dtype)
        indptr, indices, vals = _oxlearn.radius_neighbors(
            query,
            rows,
            _exact.search_radius(radius, spec),
            spec.metric,
            spec.p,
            spec.w,
            False,
            _threads(n_jobs),
        )
        return np.asarray(indptr, dtype=np.intp), indices + offset, vals
    dist, ind = _searcher(shard, params).radius_neighbors(
        query, radius, return_distance=True, sort_results=False
    )
    counts = np.array([len(i) for i in ind], dtype=np.intp)
    indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.intp)
    flat_ind = np.concatenate([np.asarray(i, dtype=np.intp) for i in ind] or [np.empty(0, np.intp)])
    flat_dist = np.concatenate([np.asarray(d) for d in dist] or [np.empty(0)])
    # A tree lists them in its traversal order: index order, as the brute force lists them.
    order = np.lexsort((flat_ind, np.repeat(np.arange(len(ind)), counts)))
    return indptr, flat_ind[order] + offset, flat_dist[order]


def _merge_radius(
    parts: list[tuple[IntArray, IntArray, npt.NDArray[Any]]],
    n_q: int,
    spec: _exact.SearchSpec | None,
    sort: str | None,
    self_offset: int | None,
    pad: tuple[int, int] = (0, 0),
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Join one query block's shard results: each query's rows in index order, or sorted.

    ``sort``: None, ``"introsort"`` (scikit-learn's compiled searches and oxlearn's) or
    ``"stable"`` (its search over a distance matrix). ``pad``: the padding rows around the
    block's ``n_q`` queries in the parts (see ``query_padding``), dropped here. Returns
    object arrays of arrays.
    """
    lead, tail = pad
    rows = np.concatenate([np.repeat(np.arange(lead + n_q + tail), np.diff(p[0])) for p in parts])
    inds = np.concatenate([p[1] for p in parts]).astype(np.intp)
    vals = np.concatenate([p[2] for p in parts])
    if lead or tail:
        keep = (rows >= lead) & (rows < lead + n_q)
        rows, inds, vals = rows[keep] - lead, inds[keep], vals[keep]
    # The shards come in index order: a stable sort by query keeps it within each query.
    order = np.argsort(rows, kind="stable")
    rows, inds, vals = rows[order], inds[order], vals[order]
    counts = np.bincount(rows, minlength=n_q)
    starts = np.concatenate(([0], np.cumsum(counts)))
    if sort is not None and vals.size:
        order = np.lexsort((vals, rows))  # stable: index order among equal values
        sorted_vals = vals[order]
        tied = (sorted_vals[1:] == sorted_vals[:-1]) & (rows[order][1:] == rows[order][:-1])
        if sort == "introsort" and tied.any():
            # The introsort orders equal values its own way: rerun it on queries with ties.
            pos = np.arange(vals.size)
            for r in np.unique(rows[order][1:][tied]):
                a, b = starts[r], starts[r + 1]
                v, ix = vals[a:b].tolist(), pos[a:b].tolist()
                _exact.simultaneous_sort(v, ix)
                order[a:b] = ix
        inds, vals = inds[order], vals[order]
    if self_offset is not None:
        # (After the sort, as the single process drops it.)
        keep = inds != rows + self_offset
        rows, inds, vals = rows[keep], inds[keep], vals[keep]
        counts = np.bincount(rows, minlength=n_q)
        starts = np.concatenate(([0], np.cumsum(counts)))
    dist = vals if spec is None else _exact.to_distances(vals.astype(np.float64), spec)
    return (
        _to_object_array(np.split(dist, starts[1:-1])),
        _to_object_array(np.split(inds, starts[1:-1])),
    )
