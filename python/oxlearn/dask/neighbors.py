"""Exact k-nearest-neighbour estimators whose training rows stay on a Dask cluster.

`NearestNeighbors`, `KNeighborsClassifier` and `KNeighborsRegressor` take the
parameters of their `oxlearn.neighbors` counterparts, plus ``client`` (a
``distributed.Client``, a scheduler address, or None for the current client) and
``block_size`` (query rows per task).

* ``fit`` keeps each training partition on the worker that computed it (validated by
  the single-process estimator, so bad input raises the same errors); rows are never
  gathered to the client.
* Each search runs, per query block and training partition, the code the single-process
  estimator runs on these parameters (oxlearn's engine, or scikit-learn's brute force or
  tree: `oxlearn.dask._tasks`), and a merge task joins the partitions' results. With
  oxlearn's engine or scikit-learn's compiled brute force (metrics computed pair by pair) the
  partitions return every row a scikit-learn heap could accept (`oxlearn.dask._exact`) and
  the merge replays them into that heap: the neighbours, their distances and their order,
  ties included, are those of `oxlearn.neighbors` on the concatenated rows (scikit-learn run
  with one OpenMP thread). With scikit-learn's trees or its search over a distance matrix
  (hamming, callables...), the distances are the single-process ones and the neighbours the
  k smallest by (distance, training index), which differ from the single process's only
  among rows tied at the k-th distance; cosine distances (scikit-learn's matrix product,
  whose rounding depends on its shape) can differ by a few ulps. The engine's own matrix
  products get the single-process shapes: each query block is padded to the engine's 64-row
  query grid (``_tasks.query_padding``). The README ("On a cluster") states the rules.
  The vote runs after the merge with the single-process kernels. ``kneighbors(None)`` and
  ``radius_neighbors(None)`` search the training rows on the workers that hold them.
* Results are Dask arrays with the query partitioning. A task holds at most
  ``block_size`` query rows (partitions larger than that are split, and the results
  joined back), so its memory is bounded by ``block_size`` and the size of one training
  partition, whatever the number of queries.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.neighbors import VALID_METRICS
from sklearn.utils.validation import check_is_fitted

from oxlearn import neighbors as _local
from oxlearn._sklearn_compat import argkmin_usable
from oxlearn.dask import _exact, _tasks
from oxlearn.dask._cluster import resolve_client

#: Default number of query rows per task.
DEFAULT_BLOCK_SIZE = 4096
_FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


# --- inputs ----------------------------------------------------------------------------------


def _as_dask_array(X: Any, block_size: int, name: str = "X") -> Any:
    """Return a Dask array from a Dask array or DataFrame/Series, or array-like data."""
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(X, (dd.DataFrame, dd.Series)):
        if isinstance(X, dd.Series) and not isinstance(X.dtype, np.dtype):
            # Extension dtypes (strings, nullable integers): NumPy objects, as pandas'
            # `to_numpy()` gives them to scikit-learn.
            X = X.astype(object)
        X = X.to_dask_array(lengths=True)
    elif not isinstance(X, da.Array):
        X = np.asarray(X)
        if X.ndim == 0:
            raise ValueError(
                f"Expected 2D array, got scalar array instead:\narray={X!r}.\n"
                "Reshape your data either using array.reshape(-1, 1) if your data has a "
                "single feature or array.reshape(1, -1) if it contains a single sample."
            )
        X = da.from_array(X, chunks=(block_size, *X.shape[1:]))
    if any(np.isnan(c) for c in X.chunks[0]):
        X = X.compute_chunk_sizes()
    return X


class _DaskNeighborsBase(BaseEstimator):
    """Fitting and the sharded search shared by the three estimators."""

    _local_class: ClassVar[Any]
    _requires_y: ClassVar[bool] = False

    n_neighbors: int
    client: Any
    block_size: int
    n_jobs: int | None
    metric: str

    # Fitted state.
    _shards: list[tuple[Any, int, int]]
    _client: Any
    _template: Any
    _fit_dtype: np.dtype[Any]
    _fit_method: str
    _rust_fit: bool
    _y_shape: tuple[int, ...]
    n_samples_fit_: int
    n_features_in_: int
    effective_metric_: str
    effective_metric_params_: dict[str, Any]

    def _local_params(self) -> dict[str, Any]:
        names = self._local_class._get_param_names()
        return {name: getattr(self, name) for name in names}

    def _searcher_params(self) -> dict[str, Any]:
        """Parameters of the scikit-learn estimator each shard searches with."""
        return {
            "algorithm": self._fit_method,
            "leaf_size": self._local_params().get("leaf_size", 30),
            "metric": self.metric,
            "p": self._local_params().get("p", 2),
            "metric_params": self._local_params().get("metric_params"),
            "n_jobs": self.n_jobs,
        }

    # --- fitting -----------------------------------------------------------------------------

    def _fit(self, X: Any, y: Any = None) -> Any:
        import dask

        if self.metric == "precomputed":
            raise ValueError(
                "metric='precomputed' is not supported on a cluster: pass the training rows."
            )
        if not isinstance(self.block_size, numbers.Integral) or self.block_size < 1:
            raise ValueError(f"block_size must be an integer >= 1, got {self.block_size!r}.")
        client = resolve_client(self.client)
        template = self._local_class(**self._local_params())
        X = _as_dask_array(X, self.block_size)
        if X.ndim != 2:
            # The single-process estimator raises scikit-learn's error for this shape.
            template.fit(np.zeros((0,) * X.ndim) if X.ndim != 1 else np.zeros(0), y)
        X = X.rechunk({1: -1})
        outputs_2d = False
        if self._requires_y:
            if y is None:
                template.fit(np.zeros((1, X.shape[1])), None)  # scikit-learn's message
            y = _as_dask_array(y, self.block_size, "y")
            if y.shape[0] != X.shape[0]:
                raise ValueError(
                    "Found input variables with inconsistent numbers of samples: "
                    f"[{X.shape[0]}, {y.shape[0]}]"
                )
            y = y.rechunk((X.chunks[0], *((-1,) * (y.ndim - 1))))
            outputs_2d = y.ndim == 2 and y.shape[1] != 1
        # Parameters: the single-process estimator on one row raises the same errors and
        # gives the effective metric.
        head = X[:1].compute()
        if head.shape[0] == 0:
            template.fit(head, np.zeros(0) if self._requires_y else None)
        if self._requires_y:
            head_y = np.asarray(y[:1].compute())
            template.fit(head, head_y if outputs_2d else head_y.ravel())
        else:
            template.fit(head)
        n_samples, n_features = int(X.shape[0]), int(X.shape[1])
        # Which code the single process runs on all the rows: its fit method (scikit-learn's
        # rule, on the whole training set), and whether that is oxlearn's engine.
        self._fit_method = _single_process_fit_method(template, n_samples, n_features)
        self._rust_fit = (
            template.__dict__.get("_oxlearn_fit_reason") is None and self._fit_method == "brute"
        )
        searcher_params = None if self._rust_fit else self._searcher_params()
        x_parts = X.to_delayed().ravel().tolist()
        y_parts = y.to_delayed().ravel().tolist() if self._requires_y else [None] * len(x_parts)
        prepare = dask.delayed(_tasks._prepare_shard, pure=False)
        shards = client.compute(
            [
                prepare(xp, yp, template, self._requires_y, searcher_params)
                for xp, yp in zip(x_parts, y_parts, strict=True)
            ]
        )
        meta = client.gather(client.map(_tasks._shard_meta, shards, pure=False))
        offsets = np.concatenate(([0], np.cumsum([m[0] for m in meta])[:-1]))
        self._shards = [
            (fut, int(off), int(m[0]))
            for fut, off, m in zip(shards, offsets, meta, strict=True)
            if m[0] > 0
        ]
        self._client = client
        self._template = template
        self._fit_dtype = np.dtype(template._fit_X.dtype)
        self.n_samples_fit_ = n_samples
        self.n_features_in_ = n_features
        self.effective_metric_ = template.effective_metric_
        self.effective_metric_params_ = template.effective_metric_params_
        if self._requires_y:
            self._y_shape = tuple(int(n) for n in y.shape)
            self._fit_targets([m[2] for m in meta if m[0] > 0], meta, outputs_2d)
        return self

    def _fit_targets(self, classes: list[Any], meta: list[Any], outputs_2d: bool) -> None:
        """Remember what the vote needs (the classifier's classes)."""

    # --- searching ---------------------------------------------------------------------------

    def _check_k(self, n_neighbors: Any) -> int:
        if n_neighbors is None:
            n_neighbors = self.n_neighbors
        elif n_neighbors <= 0:
            raise ValueError(f"Expected n_neighbors > 0. Got {int(n_neighbors)}")
        elif not isinstance(n_neighbors, numbers.Integral):
            raise TypeError(
                f"n_neighbors does not take {type(n_neighbors)} value, enter integer value"
            )
        return int(n_neighbors)

    def _search_mode(self, query_dtype: np.dtype[Any]) -> str:
        """Return what the single process runs for queries of this dtype (see `_tasks`)."""
        same_float = query_dtype == self._fit_dtype and query_dtype in _FLOAT_DTYPES
        if self._rust_fit and same_float:
            return "rust"
        if self._fit_method == "brute" and same_float and argkmin_usable(self.effective_metric_):
            return "heap"
        return "sorted"

    def _queries(
        self, X: Any, mode: str
    ) -> tuple[list[tuple[Any, int | None, int, tuple[int, int]]], Any, Any]:
        """Return the query blocks, their chunks and their dtype.

        Each block is ``(delayed rows, self offset or None, n_rows, padding)``. ``X`` None:
        the training rows, block by block on the workers that hold them. For the Rust
        engine, each block's rows come with the padding that puts them where a single
        process searching all the queries has them (``_tasks.query_padding``).
        """
        import dask

        check_is_fitted(self, "n_samples_fit_")
        if not hasattr(self, "_shards"):
            raise ValueError(
                "This estimator was unpickled: its training rows stayed on the cluster it "
                "was fitted on. Fit it again."
            )
        blocks: list[tuple[Any, int | None, int, tuple[int, int]]] = []
        if X is None:
            take = dask.delayed(_tasks._shard_query, pure=True)
            rust = self._search_mode(self._fit_dtype) == "rust"
            total = self.n_samples_fit_
            for fut, off, n in self._shards:
                for lo in range(0, n, self.block_size):
                    hi = min(n, lo + self.block_size)
                    pad = _tasks.query_padding(off + lo, off + hi, total) if rust else (0, 0)
                    blocks.append((take(fut, lo, hi, pad), off + lo, hi - lo, pad))
            chunks = tuple(n for _, _, n in self._shards)
            return blocks, chunks, self._fit_dtype
        X = _as_dask_array(X, self.block_size)
        if X.ndim == 2 and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {self._local_class.__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )
        if X.ndim != 2:
            self._template.kneighbors(np.zeros(0) if X.ndim == 1 else np.zeros((0,) * X.ndim))
        X = X.rechunk({1: -1})
        # The dtype the single-process validation gives the rows.
        qdtype = np.dtype(np.float64) if X.dtype == object else np.dtype(X.dtype)
        validate = dask.delayed(_tasks._validate_query, pure=True)
        cast = qdtype if self._search_mode(qdtype) == "rust" else None
        total = int(X.shape[0])
        start = 0
        for block, n_rows in zip(X.to_delayed().ravel(), X.chunks[0], strict=True):
            for lo in range(0, max(n_rows, 1), self.block_size):
                hi = min(n_rows, lo + self.block_size)
                pad = (0, 0)
                if cast is not None and hi > lo:
                    pad = _tasks.query_padding(start + lo, start + hi, total)
                rows = validate(block, lo, hi, self._template, cast, pad)
                blocks.append((rows, None, hi - lo, pad))
            start += n_rows
        return blocks, X.chunks[0], qdtype

    def _run(self, X: Any, n_neighbors: int, mode: str, extra: dict[str, Any]) -> Any:
        """Build the search graph; return Dask arrays with the query partitioning."""
        import dask
        import dask.array as da

        blocks, chunks, qdtype = self._queries(X, mode)
        search_mode = self._search_mode(qdtype)
        n_train = self.n_samples_fit_
        k = n_neighbors
        if X is None:
            # One extra neighbour: the row itself, dropped after the merge.
            k += 1
            if k > n_train:
                raise ValueError(
                    "Expected n_neighbors < n_samples_fit, but "
                    f"n_neighbors = {n_neighbors}, n_samples_fit = {n_train}, "
                    f"n_samples = {n_train}"
                )
        n_queries = int(sum(chunks))
        if k > n_train:
            raise ValueError(
                "Expected n_neighbors <= n_samples_fit, but "
                f"n_neighbors = {k}, n_samples_fit = {n_train}, "
                f"n_samples = {n_queries}"
            )
        float32 = qdtype == np.float32 and self._fit_dtype == np.float32
        spec: _exact.SearchSpec | None = None
        if search_mode == "rust":
            spec = _exact.make_spec(self.effective_metric_, self.effective_metric_params_, float32)
        elif search_mode == "heap":
            spec = _exact.sklearn_spec({**self._searcher_params(), "algorithm": "brute"})
        params = self._searcher_params()
        first_search = dask.delayed(_tasks._first_search, pure=True)
        prefix = dask.delayed(_tasks._prefix_tops, pure=True, nout=len(self._shards))
        search = dask.delayed(_tasks._search_shard, pure=True)
        sorted_search = dask.delayed(_tasks._sorted_shard, pure=True)
        candidates_top = dask.delayed(_tasks._candidates_top, pure=True)
        n_out = 2 if mode == "kneighbors" else extra.get("n_out", 1)
        merge = dask.delayed(_tasks._merge_block, pure=True, nout=n_out if n_out > 1 else None)
        with_targets = mode != "kneighbors"
        k_out = k - 1 if X is None else k
        task_extra = {
            key: extra[key] for key in ("weights", "classes", "outputs_2d") if key in extra
        }
        outs: list[Any] = []
        for q, self_offset, n_b, pad in blocks:
            n_pad = pad[0] + n_b + pad[1]
            if spec is None:
                parts = [
                    sorted_search(q, fut, off, k, params, with_targets)
                    for fut, off, _ in self._shards
                ]
            else:
                # The first shard is scanned from an empty heap (its candidates give its
                # top k); each other shard searches its top 2k (phase 1), which gives the
                # root a heap scanning the whole training set reaches it with, then its
                # candidates below that root (phase 2, mostly no further search).
                (fut0, off0, _), *rest = self._shards
                part0 = search(q, fut0, off0, k, spec, self.n_jobs, with_targets, None, None)
                firsts = [candidates_top(part0, k)] + [
                    first_search(q, fut, k, spec, self.n_jobs) for fut, _, _ in rest
                ]
                prefixes = list(prefix(firsts, n_pad, k))
                parts = [part0] + [
                    search(q, fut, off, k, spec, self.n_jobs, with_targets, first, pre)
                    for (fut, off, _), first, pre in zip(
                        rest, firsts[1:], prefixes[1:], strict=True
                    )
                ]
            out = merge(parts, n_b, k, n_queries, n_train, spec, mode, task_extra, self_offset, pad)
            if mode == "kneighbors":
                d, i = out
                d_dtype = _distance_dtype(search_mode, spec, qdtype, self._fit_dtype)
                outs.append(
                    (
                        da.from_delayed(d, shape=(n_b, k_out), dtype=d_dtype),
                        da.from_delayed(i, shape=(n_b, k_out), dtype=np.intp),
                    )
                )
            else:
                pieces = out if n_out > 1 else [out]
                outs.append(
                    tuple(
                        da.from_delayed(
                            p, shape=extra["out_shape"](n_b, j), dtype=extra["out_dtype"]
                        )
                        for j, p in enumerate(pieces)
                    )
                )
        arrays = []
        for j in range(len(outs[0])):
            arr = da.concatenate([o[j] for o in outs], axis=0)
            if arr.chunks[0] != tuple(chunks):
                arr = arr.rechunk({0: tuple(chunks)})
            arrays.append(arr)
        return arrays

    def kneighbors(
        self, X: Any = None, n_neighbors: int | None = None, return_distance: bool = True
    ) -> Any:
        """Find the k nearest training rows of each query row, on the cluster.

        Parameters
        ----------
        X : dask array of shape (n_queries, n_features), default=None
            The query rows (NumPy arrays are accepted too). None: the training rows, each
            not its own neighbour (searched on the workers that hold them); the results
            then have the partitioning of the non-empty training partitions.
        n_neighbors : int, default=None
            Number of neighbours (the constructor's ``n_neighbors`` when None).
        return_distance : bool, default=True
            Whether to return the distances.

        Returns
        -------
        neigh_dist : dask array of shape (n_queries, n_neighbors)
            Distances, only present if ``return_distance=True``.
        neigh_ind : dask array of shape (n_queries, n_neighbors)
            Global indices of the neighbours in the training rows.
        """
        check_is_fitted(self, "n_samples_fit_")
        k = self._check_k(n_neighbors)
        dist, ind = self._run(X, k, "kneighbors", {})
        return (dist, ind) if return_distance else ind

    def kneighbors_graph(
        self, X: Any = None, n_neighbors: int | None = None, mode: str = "connectivity"
    ) -> Any:
        """Compute the k-neighbours graph of the query rows, as the single-process estimator's.

        Computed on the cluster; the graph (not the training rows) comes back as a SciPy
        CSR matrix of shape (n_queries, n_samples_fit).

        Parameters
        ----------
        X : dask array of shape (n_queries, n_features), default=None
            Query rows; None: the training rows, each not its own neighbour.
        n_neighbors : int, default=None
            Number of neighbours (the constructor's when None).
        mode : {'connectivity', 'distance'}, default='connectivity'
            Ones, or the distances, as the matrix's values.

        Returns
        -------
        A : scipy.sparse.csr_matrix of shape (n_queries, n_samples_fit)
        """
        import dask
        import scipy.sparse as sp

        check_is_fitted(self, "n_samples_fit_")
        k = self._check_k(n_neighbors)
        if mode == "connectivity":
            ind = self.kneighbors(X, k, return_distance=False).compute()
            data = np.ones(ind.size)
        elif mode == "distance":
            dist, ind = dask.compute(*self.kneighbors(X, k, return_distance=True))
            data = np.ravel(dist)
        else:
            raise ValueError(
                'Unsupported mode, must be one of "connectivity", '
                f'or "distance" but got "{mode}" instead'
            )
        n_queries = ind.shape[0]
        indptr = np.arange(0, n_queries * k + 1, k)
        return sp.csr_matrix((data, ind.ravel(), indptr), shape=(n_queries, self.n_samples_fit_))

    def __getstate__(self) -> dict[str, Any]:
        # Futures and clients do not travel: a pickled estimator is unfitted.
        state = dict(self.__dict__)
        for name in ("_shards", "_client"):
            state.pop(name, None)
        if "client" in state and not isinstance(state["client"], (str, type(None))):
            state["client"] = None
        return state


def _distance_dtype(
    search_mode: str, spec: _exact.SearchSpec | None, qdtype: Any, fit_dtype: Any
) -> Any:
    """Return the dtype of the single-process distances.

    (scikit-learn's search over a distance matrix keeps float32 for float32 rows.)
    """
    if search_mode == "rust":
        assert spec is not None
        return np.float32 if spec.float32_out else np.float64
    if search_mode == "heap":
        return np.float64
    return np.result_type(qdtype, fit_dtype, np.float32)


def _single_process_fit_method(template: Any, n_samples: int, n_features: int) -> str:
    """scikit-learn's ``_fit_method`` for the whole training set (its ``_fit`` rule).

    ``template`` is the single-process estimator fitted on one row (its effective metric).
    """
    algorithm: str = template.algorithm
    if algorithm != "auto":
        return algorithm
    n_neighbors = getattr(template, "n_neighbors", None)
    if n_features > 15 or (n_neighbors is not None and n_neighbors >= n_samples // 2):
        return "brute"
    metric, params = template.effective_metric_, template.effective_metric_params_
    if metric == "minkowski" and params["p"] < 1:
        return "brute"
    if metric == "minkowski" and params.get("w") is not None:
        return "ball_tree"
    if metric in VALID_METRICS["kd_tree"]:
        return "kd_tree"
    if callable(metric) or metric in VALID_METRICS["ball_tree"]:
        return "ball_tree"
    return "brute"


class NearestNeighbors(_DaskNeighborsBase):
    """Unsupervised exact nearest-neighbour search over training rows kept on a cluster.

    The distributed counterpart of :class:`oxlearn.neighbors.NearestNeighbors`: the
    same parameters and results (neighbours, distances and the order of ties wherever the
    single process runs oxlearn's engine or scikit-learn's compiled brute force; for its
    trees and other searches see the module docstring), with the training rows left in
    their partitions on the Dask workers.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours to use by default for :meth:`kneighbors` queries.
    radius : float, default=1.0
        Default radius of :meth:`radius_neighbors`.
    algorithm, leaf_size, metric, p, metric_params :
        As :class:`oxlearn.neighbors.NearestNeighbors` (``metric='precomputed'`` is not
        supported). The algorithm the single process picks on the whole training set
        (``'auto'``: scikit-learn's rule) is the one each partition is searched with.
    n_jobs : int, default=None
        Native threads per task; None uses the worker's thread count.
    client : distributed.Client, str or None, default=None
        The Dask client, or a scheduler address; None uses the current client.
    block_size : int, default=4096
        Maximum number of query rows per task.

    Attributes
    ----------
    n_samples_fit_ : int
        Number of training rows.
    n_features_in_ : int
        Number of features.
    effective_metric_, effective_metric_params_ :
        As the single-process estimator.
    """

    _local_class = _local.NearestNeighbors

    def __init__(
        self,
        *,
        n_neighbors: int = 5,
        radius: float = 1.0,
        algorithm: str = "auto",
        leaf_size: int = 30,
        metric: str = "minkowski",
        p: float = 2,
        metric_params: dict[str, Any] | None = None,
        n_jobs: int | None = None,
        client: Any = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.radius = radius
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.metric = metric
        self.p = p
        self.metric_params = metric_params
        self.n_jobs = n_jobs
        self.client = client
        self.block_size = block_size

    def fit(self, X: Any, y: Any = None) -> NearestNeighbors:
        """Validate the training rows and keep them on the workers.

        Parameters
        ----------
        X : dask array or dask DataFrame of shape (n_samples, n_features)
            Training rows (NumPy arrays are accepted and sent to the workers).
        y : ignored

        Returns
        -------
        self : NearestNeighbors
        """
        return self._fit(X)

    def radius_neighbors(
        self,
        X: Any = None,
        radius: float | None = None,
        return_distance: bool = True,
        sort_results: bool = False,
    ) -> Any:
        """Find the training rows within ``radius`` of each query row, on the cluster.

        Each shard lists its rows within the radius (with the single process's code); the
        merge joins them in training index order, the single process's order (and sorts
        them as it does when ``sort_results``).

        Parameters
        ----------
        X : dask array of shape (n_queries, n_features), default=None
            Query rows; None: the training rows, each not its own neighbour.
        radius : float, default=None
            Limiting distance (the constructor's ``radius`` when None); inclusive.
        return_distance : bool, default=True
            Whether to return the distances.
        sort_results : bool, default=False
            Whether to sort each query's neighbours by increasing distance.

        Returns
        -------
        neigh_dist : dask array of shape (n_queries,) of arrays
            Distances, only present if ``return_distance=True``.
        neigh_ind : dask array of shape (n_queries,) of arrays
            Global indices of the rows within the radius.
        """
        import dask
        import dask.array as da

        check_is_fitted(self, "n_samples_fit_")
        if sort_results and not return_distance:
            raise ValueError("return_distance must be True if sort_results is True.")
        if radius is None:
            radius = self.radius
        if (
            isinstance(radius, bool)
            or not isinstance(radius, numbers.Real)
            or not float(radius) >= 0
        ):
            # The single-process estimator raises its error for this radius (if any).
            self._template.radius_neighbors(self._template._fit_X, radius)
        blocks, chunks, qdtype = self._queries(X, "radius")
        search_mode = self._search_mode(qdtype)
        spec = None
        if search_mode == "rust":
            float32 = qdtype == np.float32 and self._fit_dtype == np.float32
            spec = _exact.make_spec(self.effective_metric_, self.effective_metric_params_, float32)
        sort = None
        if sort_results:
            # scikit-learn's compiled search and oxlearn's sort with scikit-learn's
            # introsort; its search over a distance matrix with a stable sort.
            sort = "introsort" if search_mode != "sorted" else "stable"
        params = self._searcher_params()
        search = dask.delayed(_tasks._radius_shard, pure=True)
        merge = dask.delayed(_tasks._merge_radius, pure=True, nout=2)
        outs = []
        for q, self_offset, n_b, pad in blocks:
            parts = [
                search(q, fut, off, float(radius), spec, params, self.n_jobs)
                for fut, off, _ in self._shards
            ]
            d, i = merge(parts, n_b, spec, sort, self_offset, pad)
            outs.append(
                (
                    da.from_delayed(d, shape=(n_b,), dtype=object),
                    da.from_delayed(i, shape=(n_b,), dtype=object),
                )
            )
        arrays = []
        for j in range(2):
            arr = da.concatenate([o[j] for o in outs], axis=0)
            if arr.chunks[0] != tuple(chunks):
                arr = arr.rechunk({0: tuple(chunks)})
            arrays.append(arr)
        return (arrays[0], arrays[1]) if return_distance else arrays[1]

    def radius_neighbors_graph(
        self,
        X: Any = None,
        radius: float | None = None,
        mode: str = "connectivity",
        sort_results: bool = False,
    ) -> Any:
        """Compute the graph of the rows within ``radius``, as the single-process estimator's.

        Computed on the cluster; the graph comes back as a SciPy CSR matrix of shape
        (n_queries, n_samples_fit).

        Parameters
        ----------
        X : dask array of shape (n_queries, n_features), default=None
            Query rows; None: the training rows, each not its own neighbour.
        radius : float, default=None
            Limiting distance (the constructor's when None).
        mode : {'connectivity', 'distance'}, default='connectivity'
            Ones, or the distances, as the matrix's values.
        sort_results : bool, default=False
            Whether each row's entries are sorted by distance (``mode='distance'``).

        Returns
        -------
        A : scipy.sparse.csr_matrix of shape (n_queries, n_samples_fit)
        """
        import dask
        import scipy.sparse as sp

        check_is_fitted(self, "n_samples_fit_")
        if mode == "connectivity":
            ind = self.radius_neighbors(X, radius, return_distance=False).compute()
            data = None
        elif mode == "distance":
            dist, ind = dask.compute(
                *self.radius_neighbors(X, radius, return_distance=True, sort_results=sort_results)
            )
            data = np.concatenate(list(dist)) if len(dist) else np.empty(0)
        else:
            raise ValueError(
                'Unsupported mode, must be one of "connectivity", '
                f'or "distance" but got "{mode}" instead'
            )
        counts = np.array([len(a) for a in ind])
        flat = np.concatenate(list(ind)) if len(ind) else np.empty(0, dtype=np.intp)
        if data is None:
            data = np.ones(len(flat))
        indptr = np.concatenate((np.zeros(1, dtype=int), np.cumsum(counts)))
        return sp.csr_matrix((data, flat, indptr), shape=(len(ind), self.n_samples_fit_))


class _DaskKNeighborsVote(_DaskNeighborsBase):
    weights: Any
    _requires_y = True


class KNeighborsClassifier(ClassifierMixin, _DaskKNeighborsVote):
    """k-nearest-neighbours vote over training rows kept on a Dask cluster.

    The distributed counterpart of :class:`oxlearn.neighbors.KNeighborsClassifier`
    (see the module docstring for how exactly its neighbours are the single-process ones);
    the vote is the single-process vote, single- or multi-output.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours.
    weights : {'uniform', 'distance'}, callable or None, default='uniform'
        Weight function of the vote.
    algorithm, leaf_size, p, metric, metric_params :
        As :class:`oxlearn.neighbors.KNeighborsClassifier`.
    n_jobs : int, default=None
        Native threads per task; None uses the worker's thread count.
    client : distributed.Client, str or None, default=None
        The Dask client, or a scheduler address; None uses the current client.
    block_size : int, default=4096
        Maximum number of query rows per task.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_samples_fit_, n_features_in_, effective_metric_, effective_metric_params_ :
        As the single-process estimator.
    """

    _local_class = _local.KNeighborsClassifier

    def __init__(
        self,
        n_neighbors: int = 5,
        *,
        weights: Any = "uniform",
        algorithm: str = "auto",
        leaf_size: int = 30,
        p: float = 2,
        metric: str = "minkowski",
        metric_params: dict[str, Any] | None = None,
        n_jobs: int | None = None,
        client: Any = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.p = p
        self.metric = metric
        self.metric_params = metric_params
        self.n_jobs = n_jobs
        self.client = client
        self.block_size = block_size

    def fit(self, X: Any, y: Any) -> KNeighborsClassifier:
        """Validate the training rows and labels and keep them on the workers.

        Parameters
        ----------
        X : dask array or dask DataFrame of shape (n_samples, n_features)
            Training rows.
        y : dask array or Series of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : KNeighborsClassifier
        """
        return self._fit(X, y)

    def _fit_targets(self, classes: list[Any], meta: list[Any], outputs_2d: bool) -> None:
        per_output = [np.unique(np.concatenate(c)) for c in zip(*classes, strict=True)]
        self.outputs_2d_ = outputs_2d
        self.classes_ = per_output if outputs_2d else per_output[0]

    def _vote_extra(self) -> dict[str, Any]:
        return {"weights": self.weights, "classes": self.classes_, "outputs_2d": self.outputs_2d_}

    def predict(self, X: Any) -> Any:
        """Predict the class of each query row (a Dask array).

        Parameters
        ----------
        X : dask array of shape (n_queries, n_features), or None
            Query rows; None: the training rows, each not its own neighbour.

        Returns
        -------
        y : dask array of shape (n_queries,) or (n_queries, n_outputs)
            Class labels.
        """
        check_is_fitted(self, "classes_")
        all_classes = self.classes_ if self.outputs_2d_ else [self.classes_]
        n_outputs = len(all_classes)
        outputs_2d = self.outputs_2d_
        extra = {
            **self._vote_extra(),
            "out_shape": lambda n, j: (n, n_outputs) if outputs_2d else (n,),
            "out_dtype": np.asarray(all_classes[0]).dtype,
        }
        return self._run(X, self._check_k(None), "predict_classes", extra)[0]

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities of each query row (a Dask array).

        Parameters
        ----------
        X : dask array of shape (n_queries, n_features), or None
            Query rows; None: the training rows, each not its own neighbour.

        Returns
        -------
        p : dask array of shape (n_queries, n_classes), or a list of n_outputs of them
            Probabilities, classes in the order of ``classes_``.
        """
        check_is_fitted(self, "classes_")
        all_classes = self.classes_ if self.outputs_2d_ else [self.classes_]
        sizes = [len(c) for c in all_classes]
        extra = {
            **self._vote_extra(),
            "n_out": len(sizes),
            "out_shape": lambda n, j: (n, sizes[j]),
            "out_dtype": np.float64,
        }
        proba = self._run(X, self._check_k(None), "predict_proba", extra)
        return proba if self.outputs_2d_ else proba[0]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of ``predict(X)`` against ``y`` (computed on the cluster).

        Parameters
        ----------
        X : dask array of shape (n_queries, n_features)
            Query rows.
        y : array-like or dask array of shape (n_queries,)
            True labels.
        sample_weight : array-like of shape (n_queries,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Mean accuracy.
        """
        import dask

        pred, y_true = dask.compute(self.predict(X), y)
        return float(accuracy_score(y_true, pred, sample_weight=sample_weight))


class KNeighborsRegressor(RegressorMixin, _DaskKNeighborsVote):
    """k-nearest-neighbours regression over training rows kept on a Dask cluster.

    The distributed counterpart of :class:`oxlearn.neighbors.KNeighborsRegressor`
    (see the module docstring for how exactly its neighbours are the single-process ones);
    the average is the single-process average, single- or multi-output.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours.
    weights : {'uniform', 'distance'}, callable or None, default='uniform'
        Weight function of the average.
    algorithm, leaf_size, p, metric, metric_params :
        As :class:`oxlearn.neighbors.KNeighborsRegressor`.
    n_jobs : int, default=None
        Native threads per task; None uses the worker's thread count.
    client : distributed.Client, str or None, default=None
        The Dask client, or a scheduler address; None uses the current client.
    block_size : int, default=4096
        Maximum number of query rows per task.

    Attributes
    ----------
    n_samples_fit_, n_features_in_, effective_metric_, effective_metric_params_ :
        As the single-process estimator.
    """

    _local_class = _local.KNeighborsRegressor

    def __init__(
        self,
        n_neighbors: int = 5,
        *,
        weights: Any = "uniform",
        algorithm: str = "auto",
        leaf_size: int = 30,
        p: float = 2,
        metric: str = "minkowski",
        metric_params: dict[str, Any] | None = None,
        n_jobs: int | None = None,
        client: Any = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.p = p
        self.metric = metric
        self.metric_params = metric_params
        self.n_jobs = n_jobs
        self.client = client
        self.block_size = block_size

    def fit(self, X: Any, y: Any) -> KNeighborsRegressor:
        """Validate the training rows and targets and keep them on the workers.

        Parameters
        ----------
        X : dask array or dask DataFrame of shape (n_samples, n_features)
            Training rows.
        y : dask array or Series of shape (n_samples,)
            Targets.

        Returns
        -------
        self : KNeighborsRegressor
        """
        return self._fit(X, y)

    def _fit_targets(self, classes: list[Any], meta: list[Any], outputs_2d: bool) -> None:
        dtypes = [m[3] for m in meta if m[0] > 0]
        self._y_dtype = np.result_type(*dtypes)

    def predict(self, X: Any) -> Any:
        """Predict the target of each query row (a Dask array).

        Parameters
        ----------
        X : dask array of shape (n_queries, n_features), or None
            Query rows; None: the training rows, each not its own neighbour.

        Returns
        -------
        y : dask array of shape (n_queries,) or (n_queries, n_outputs)
            Predicted targets.
        """
        check_is_fitted(self, "n_samples_fit_")
        uniform_f32 = self.weights in (None, "uniform") and self._y_dtype == np.float32
        target_shape = self._y_shape[1:]
        extra = {
            "weights": self.weights,
            "out_shape": lambda n, j: (n, *target_shape),
            "out_dtype": np.float32 if uniform_f32 else np.float64,
        }
        return self._run(X, self._check_k(None), "predict_values", extra)[0]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Coefficient of determination of ``predict(X)`` against ``y``.

        Parameters
        ----------
        X : dask array of shape (n_queries, n_features)
            Query rows.
        y : array-like or dask array of shape (n_queries,)
            True targets.
        sample_weight : array-like of shape (n_queries,), default=None
            Sample weights.

        Returns
        -------
        score : float
            R^2 of the prediction.
        """
        import dask

        pred, y_true = dask.compute(self.predict(X), y)
        return float(r2_score(y_true, pred, sample_weight=sample_weight))


__all__ = ["KNeighborsClassifier", "KNeighborsRegressor", "NearestNeighbors"]
