"""Exact k-nearest-neighbour estimators whose training rows stay on a Dask cluster.

`NearestNeighbors`, `KNeighborsClassifier` and `KNeighborsRegressor` take the
parameters of their `oxlearn.neighbors` counterparts, plus ``client`` (a
``distributed.Client``, a scheduler address, or None for the current client) and
``block_size`` (query rows per task).

* ``fit`` keeps each training partition on the worker that computed it (validated by
  the single-process estimator, so bad input raises the same errors); rows are never
  gathered to the client.
* A search runs, per query block: a scan of the first training partition (the Rust engine
  finds every row a scikit-learn heap could accept, `oxlearn.dask._exact`); for each other
  partition, a search of its top ``2k`` rows (phase 1), which gives the root the
  single-process scan reaches it with, then its rows below that root (phase 2, mostly no
  further search); and a merge task that replays all of them into scikit-learn's heap. The
  neighbours, their distances and their order, ties included, are those of
  `oxlearn.neighbors` on the concatenated training rows; the vote runs after the merge with
  the single-process kernels.
* Results are Dask arrays with the query partitioning. A task holds at most
  ``block_size`` query rows (partitions larger than that are split, and the results
  joined back), so its memory is bounded by ``block_size`` and the size of one training
  partition, whatever the number of queries.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

from oxlearn import _oxlearn
from oxlearn import neighbors as _local
from oxlearn.dask import _exact
from oxlearn.dask._cluster import resolve_client, worker_threads
from oxlearn.neighbors._base import _get_weights

#: Default number of query rows per task.
DEFAULT_BLOCK_SIZE = 4096
_FLOAT_DTYPES = [np.float64, np.float32]


# --- tasks (run on the workers) ------------------------------------------------------------


def _prepare_shard(X: Any, y: Any, template: BaseEstimator, requires_y: bool) -> dict[str, Any]:
    """Validate a training partition as the single-process ``fit`` does; keep its rows."""
    X = np.asarray(X)
    if X.ndim == 2 and X.shape[0] == 0:
        return {"X": X.astype(np.float64), "y": None, "n": 0, "classes": None}
    local = template.__class__(**template.get_params())
    if requires_y:
        local.fit(X, y)
    else:
        local.fit(X)
    # The rows as the single-process fit stores them: C-ordered float32 or float64.
    rows = check_array(X, dtype=_FLOAT_DTYPES, order="C")
    classes = None
    targets = None
    if requires_y:
        targets = np.asarray(y)
        if isinstance(local, ClassifierMixin):
            classes = np.unique(targets)
    return {"X": rows, "y": targets, "n": rows.shape[0], "classes": classes}


def _shard_meta(shard: dict[str, Any]) -> tuple[int, Any, Any, Any]:
    y = shard["y"]
    return shard["n"], shard["X"].dtype, shard["classes"], None if y is None else y.dtype


def _validate_query(
    block: Any, lo: int, hi: int, template: BaseEstimator, dtype: Any
) -> npt.NDArray[Any]:
    """Validate query rows with the single-process estimator's checks."""
    from sklearn.utils.validation import validate_data

    rows = np.asarray(block)[lo:hi]
    rows = validate_data(
        template, rows, accept_sparse=False, reset=False, order="C", dtype=_FLOAT_DTYPES
    )
    return np.ascontiguousarray(rows, dtype=dtype)


def _shard_rows(shard: dict[str, Any], dtype: Any) -> npt.NDArray[Any]:
    return np.ascontiguousarray(shard["X"], dtype=dtype)


def _first_search(
    query: npt.NDArray[Any], shard: dict[str, Any], k: int, spec: _exact.SearchSpec, n_jobs: Any
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """Phase 1: the shard's top ``SEARCH_WIDTH * k`` rows for a query block."""
    threads = worker_threads() if n_jobs is None else n_jobs
    return _exact.shard_topk(query, _shard_rows(shard, query.dtype), k, spec, threads)


def _candidates_top(
    cands: _exact.Candidates, k: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    return _exact.candidates_top(cands, k)


def _prefix_tops(
    firsts: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]], n_q: int, k: int
) -> list[npt.NDArray[np.float64]]:
    return _exact.prefix_tops(firsts, n_q, k)


def _search_shard(
    query: npt.NDArray[Any],
    shard: dict[str, Any],
    offset: int,
    k: int,
    spec: _exact.SearchSpec,
    n_jobs: int | None,
    with_targets: bool,
    first: tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]] | None,
    prefix_top: npt.NDArray[np.float64] | None,
) -> _exact.Candidates:
    """Phase 2: the shard's candidates, given its phase 1 and the earlier shards' top k."""
    threads = worker_threads() if n_jobs is None else n_jobs
    return _exact.shard_candidates(
        query,
        _shard_rows(shard, query.dtype),
        offset,
        k,
        spec,
        threads,
        targets=shard["y"] if with_targets else None,
        first=first,
        prefix_top=prefix_top,
    )


def _neighbour_labels(
    cands: _exact.Candidates, inds: npt.NDArray[np.intp], n_train: int
) -> npt.NDArray[Any]:
    """Return the targets of the merged neighbours, found among each query's candidates."""
    n_q, k = inds.shape
    q_of = np.repeat(np.arange(n_q), cands.counts)
    keys = q_of.astype(np.int64) * n_train + cands.indices
    wanted = np.arange(n_q, dtype=np.int64)[:, None] * n_train + inds
    pos = np.searchsorted(keys, wanted.ravel())
    assert cands.labels is not None
    return cands.labels[pos].reshape((n_q, k, *cands.labels.shape[1:]))


def _check_weights_not_all_zero(weights: npt.NDArray[np.float64]) -> None:
    if np.any(np.all(weights == 0, axis=1)):
        raise ValueError(
            "All neighbors of some sample is getting zero weights. "
            "Please modify 'weights' to avoid this case if you are "
            "using a user-defined function."
        )


def _merge_block(
    parts: list[_exact.Candidates],
    n_q: int,
    k: int,
    n_queries: int,
    n_train: int,
    spec: _exact.SearchSpec,
    mode: str,
    extra: dict[str, Any],
) -> Any:
    """Merge one query block's candidates; return neighbours, or the vote (``mode``)."""
    vals, inds, cands = _exact.merge(parts, n_q, k, n_queries, n_train)
    dist = _exact.to_distances(vals, spec)
    if mode == "kneighbors":
        return dist, inds
    labels = _neighbour_labels(cands, inds, n_train)
    weights_param = extra["weights"]
    weights = _get_weights(dist, weights_param)
    flat_ind = np.arange(n_q * k, dtype=np.int64).reshape((n_q, k))
    if mode in ("predict_classes", "predict_proba"):
        if weights is not None:
            _check_weights_not_all_zero(weights)
        classes = extra["classes"]
        codes = np.searchsorted(classes, labels.ravel()).astype(np.int64).reshape((-1, 1))
        if mode == "predict_proba":
            proba: list[npt.NDArray[np.float64]] = _oxlearn.knn_classify_proba(
                flat_ind, codes, [len(classes)], weights
            )
            return proba[0]
        pred = _oxlearn.knn_classify(flat_ind, codes, [len(classes)], weights)
        return classes.take(pred[:, 0])
    # Regression: as `oxlearn.neighbors.KNeighborsRegressor.predict`.
    y = labels.reshape((n_q * k, -1))
    dtype = np.float32 if (weights is None and y.dtype == np.float32) else np.float64
    y_pred: npt.NDArray[Any] = _oxlearn.knn_regress(
        flat_ind, np.ascontiguousarray(y, dtype=dtype), weights
    )
    if labels.ndim == 2:
        y_pred = y_pred.ravel()
    return y_pred


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
    n_samples_fit_: int
    n_features_in_: int
    effective_metric_: str
    effective_metric_params_: dict[str, Any]

    def _local_params(self) -> dict[str, Any]:
        names = self._local_class._get_param_names()
        return {name: getattr(self, name) for name in names}

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
            if y.ndim == 2 and y.shape[1] != 1:
                raise NotImplementedError(
                    "Multi-output targets are not supported on a cluster yet."
                )
        # Parameters: the single-process estimator on one row raises the same errors and
        # gives the effective metric.
        head = X[:1].compute()
        if head.shape[0] == 0:
            template.fit(head, np.zeros(0) if self._requires_y else None)
        head_y = None
        if self._requires_y:
            head_y = np.asarray(y[:1].compute()).ravel()
            template.fit(head, head_y)
        else:
            template.fit(head)
        reason = template._params_fallback_reason()
        if reason is not None:
            # The single-process estimator runs scikit-learn's code for these parameters;
            # the shards are searched with the Rust engine only.
            raise ValueError(
                f"{reason} on a cluster: oxlearn.dask searches with oxlearn's Rust engine, "
                "which runs the metrics listed in oxlearn.neighbors.SUPPORTED_METRICS "
                "(without cosine and precomputed) with p >= 1."
            )
        x_parts = X.to_delayed().ravel().tolist()
        y_parts = y.to_delayed().ravel().tolist() if self._requires_y else [None] * len(x_parts)
        prepare = dask.delayed(_prepare_shard, pure=False)
        shards = client.compute(
            [
                prepare(xp, yp, template, self._requires_y)
                for xp, yp in zip(x_parts, y_parts, strict=True)
            ]
        )
        meta = client.gather(client.map(_shard_meta, shards, pure=False))
        offsets = np.concatenate(([0], np.cumsum([m[0] for m in meta])[:-1]))
        self._shards = [
            (fut, int(off), int(m[0]))
            for fut, off, m in zip(shards, offsets, meta, strict=True)
            if m[0] > 0
        ]
        self._client = client
        self._template = template
        self._fit_dtype = np.dtype(
            np.float32 if all(m[1] == np.float32 for m in meta if m[0] > 0) else np.float64
        )
        self.n_samples_fit_ = int(sum(m[0] for m in meta))
        self.n_features_in_ = int(X.shape[1])
        self.effective_metric_ = template.effective_metric_
        self.effective_metric_params_ = template.effective_metric_params_
        if self._requires_y:
            self._fit_targets([m[2] for m in meta if m[0] > 0], meta)
        return self

    def _fit_targets(self, classes: list[Any], meta: list[Any]) -> None:
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

    def _run(self, X: Any, n_neighbors: int, mode: str, extra: dict[str, Any]) -> Any:
        """Build the search graph; return Dask arrays with the query partitioning."""
        import dask
        import dask.array as da

        check_is_fitted(self, "n_samples_fit_")
        if not hasattr(self, "_shards"):
            raise ValueError(
                "This estimator was unpickled: its training rows stayed on the cluster it "
                "was fitted on. Fit it again."
            )
        if X is None:
            raise NotImplementedError(
                "kneighbors(None) (the training rows as queries) is not supported on a "
                "cluster: pass the query rows."
            )
        X = _as_dask_array(X, self.block_size)
        if X.ndim == 2 and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {self._local_class.__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )
        if X.ndim != 2:
            self._template.kneighbors(np.zeros(0) if X.ndim == 1 else np.zeros((0,) * X.ndim))
        X = X.rechunk({1: -1})
        n_queries = int(X.shape[0])
        k = n_neighbors
        if k > self.n_samples_fit_:
            raise ValueError(
                "Expected n_neighbors <= n_samples_fit, but "
                f"n_neighbors = {k}, n_samples_fit = {self.n_samples_fit_}, "
                f"n_samples = {n_queries}"
            )
        float32 = X.dtype == np.float32 and self._fit_dtype == np.float32
        qdtype = np.float32 if float32 else np.float64
        spec = _exact.make_spec(self.effective_metric_, self.effective_metric_params_, float32)
        validate = dask.delayed(_validate_query, pure=True)
        first_search = dask.delayed(_first_search, pure=True)
        prefix = dask.delayed(_prefix_tops, pure=True, nout=len(self._shards))
        search = dask.delayed(_search_shard, pure=True)
        candidates_top = dask.delayed(_candidates_top, pure=True)
        merge_kn = dask.delayed(_merge_block, pure=True, nout=2)
        merge_one = dask.delayed(_merge_block, pure=True)
        with_targets = mode != "kneighbors"
        outs: list[Any] = []
        for block, n_rows in zip(X.to_delayed().ravel(), X.chunks[0], strict=True):
            for lo in range(0, max(n_rows, 1), self.block_size):
                hi = min(n_rows, lo + self.block_size)
                n_b = hi - lo
                q = validate(block, lo, hi, self._template, qdtype)
                # The first shard is scanned from an empty heap (its candidates give its
                # top k); each other shard searches its top 2k (phase 1), which gives the
                # root a heap scanning the whole training set reaches it with, then its
                # candidates below that root (phase 2, mostly no further search).
                (fut0, off0, _), *rest = self._shards
                part0 = search(q, fut0, off0, k, spec, self.n_jobs, with_targets, None, None)
                firsts = [candidates_top(part0, k)] + [
                    first_search(q, fut, k, spec, self.n_jobs) for fut, _, _ in rest
                ]
                prefixes = list(prefix(firsts, n_b, k))
                parts = [part0] + [
                    search(q, fut, off, k, spec, self.n_jobs, with_targets, first, pre)
                    for (fut, off, _), first, pre in zip(
                        rest, firsts[1:], prefixes[1:], strict=True
                    )
                ]
                if mode == "kneighbors":
                    d, i = merge_kn(parts, n_b, k, n_queries, self.n_samples_fit_, spec, mode, {})
                    d_dtype = np.float32 if spec.float32_out else np.float64
                    outs.append(
                        (
                            da.from_delayed(d, shape=(n_b, k), dtype=d_dtype),
                            da.from_delayed(i, shape=(n_b, k), dtype=np.intp),
                        )
                    )
                else:
                    shape, dtype = extra["out_shape"](n_b), extra["out_dtype"]
                    task_extra = {"weights": extra["weights"], "classes": extra.get("classes")}
                    out = merge_one(
                        parts, n_b, k, n_queries, self.n_samples_fit_, spec, mode, task_extra
                    )
                    outs.append((da.from_delayed(out, shape=shape, dtype=dtype),))
        arrays = []
        for j in range(len(outs[0])):
            arr = da.concatenate([o[j] for o in outs], axis=0)
            if arr.chunks[0] != X.chunks[0]:
                arr = arr.rechunk({0: X.chunks[0]})
            arrays.append(arr)
        return arrays

    def kneighbors(
        self, X: Any = None, n_neighbors: int | None = None, return_distance: bool = True
    ) -> Any:
        """Find the k nearest training rows of each query row, on the cluster.

        Parameters
        ----------
        X : dask array of shape (n_queries, n_features)
            The query rows (NumPy arrays are accepted too).
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

    def __getstate__(self) -> dict[str, Any]:
        # Futures and clients do not travel: a pickled estimator is unfitted.
        state = dict(self.__dict__)
        for name in ("_shards", "_client"):
            state.pop(name, None)
        if "client" in state and not isinstance(state["client"], (str, type(None))):
            state["client"] = None
        return state


class NearestNeighbors(_DaskNeighborsBase):
    """Unsupervised exact nearest-neighbour search over training rows kept on a cluster.

    The distributed counterpart of :class:`oxlearn.neighbors.NearestNeighbors`: the
    same parameters and results (neighbours, distances and the order of ties), with the
    training rows left in their partitions on the Dask workers.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbours to use by default for :meth:`kneighbors` queries.
    radius : float, default=1.0
        Accepted for compatibility (radius searches are not distributed).
    algorithm, leaf_size, metric, p, metric_params :
        As :class:`oxlearn.neighbors.NearestNeighbors` (``metric='precomputed'`` is not
        supported).
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


class _DaskKNeighborsVote(_DaskNeighborsBase):
    weights: Any
    _requires_y = True


class KNeighborsClassifier(ClassifierMixin, _DaskKNeighborsVote):
    """k-nearest-neighbours vote over training rows kept on a Dask cluster.

    The distributed counterpart of :class:`oxlearn.neighbors.KNeighborsClassifier`
    (single-output targets): the neighbours are those of the single-process search, ties
    included, and the vote is the single-process vote.

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

    def _fit_targets(self, classes: list[Any], meta: list[Any]) -> None:
        self.classes_ = np.unique(np.concatenate(classes))
        self.outputs_2d_ = False

    def predict(self, X: Any) -> Any:
        """Predict the class of each query row (a Dask array).

        Parameters
        ----------
        X : dask array of shape (n_queries, n_features)
            Query rows.

        Returns
        -------
        y : dask array of shape (n_queries,)
            Class labels.
        """
        check_is_fitted(self, "classes_")
        extra = {
            "weights": self.weights,
            "classes": self.classes_,
            "out_shape": lambda n: (n,),
            "out_dtype": self.classes_.dtype,
        }
        return self._run(X, self._check_k(None), "predict_classes", extra)[0]

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities of each query row (a Dask array).

        Parameters
        ----------
        X : dask array of shape (n_queries, n_features)
            Query rows.

        Returns
        -------
        p : dask array of shape (n_queries, n_classes)
            Probabilities, classes in the order of ``classes_``.
        """
        check_is_fitted(self, "classes_")
        n_classes = len(self.classes_)
        extra = {
            "weights": self.weights,
            "classes": self.classes_,
            "out_shape": lambda n: (n, n_classes),
            "out_dtype": np.float64,
        }
        return self._run(X, self._check_k(None), "predict_proba", extra)[0]

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
    (1-D targets): the neighbours are those of the single-process search, ties included,
    and the average is the single-process average.

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

    def _fit_targets(self, classes: list[Any], meta: list[Any]) -> None:
        dtypes = [m[3] for m in meta if m[0] > 0]
        self._y_dtype = np.result_type(*dtypes)

    def predict(self, X: Any) -> Any:
        """Predict the target of each query row (a Dask array).

        Parameters
        ----------
        X : dask array of shape (n_queries, n_features)
            Query rows.

        Returns
        -------
        y : dask array of shape (n_queries,)
            Predicted targets.
        """
        check_is_fitted(self, "n_samples_fit_")
        uniform_f32 = self.weights in (None, "uniform") and self._y_dtype == np.float32
        extra = {
            "weights": self.weights,
            "out_shape": lambda n: (n,),
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
