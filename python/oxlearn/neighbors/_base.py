"""Shared machinery of the neighbour estimators: parameters, fitting, searches."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn import get_config
from sklearn.base import BaseEstimator, MultiOutputMixin
from sklearn.neighbors import VALID_METRICS, BallTree, KDTree
from sklearn.utils import check_array, gen_batches
from sklearn.utils.validation import check_is_fitted, validate_data

from oxlearn import _oxlearn
from oxlearn._sklearn_compat import Interval, StrOptions, get_chunk_n_rows
from oxlearn._sklearn_compat import KNeighborsMixin as SklearnKNeighborsMixin
from oxlearn._sklearn_compat import NeighborsBase as SklearnNeighborsBase
from oxlearn._sklearn_compat import RadiusNeighborsMixin as SklearnRadiusNeighborsMixin
from oxlearn._threads import resolve_n_jobs
from oxlearn._validation import plain_float_matrix as _plain_float_matrix
from oxlearn._validation import plain_int_labels

#: Metrics the Rust search implements (scikit-learn's names, aliases included).
SUPPORTED_METRICS = frozenset(
    {
        "minkowski",
        "euclidean",
        "l2",
        "sqeuclidean",
        "manhattan",
        "cityblock",
        "l1",
        "chebyshev",
        "cosine",
        "precomputed",
    }
)

_FLOAT_DTYPES = [np.float64, np.float32]


# Parameter sets already validated, per estimator class (see `_validate_params`).
_VALID_PARAMS: dict[type, set[tuple[Any, ...]]] = {}
_VALID_PARAMS_MAX = 256
_CACHEABLE_TYPES = (int, float, str, bool, type(None), np.integer, np.floating)
# Each estimator class's parameter names (`_get_param_names` reads the signature).
_PARAM_NAMES: dict[type, list[str]] = {}
# Whether each estimator class requires y (its target tags), looked up once.
_REQUIRES_Y: dict[type, bool] = {}


def _training_rows_of(X: Any) -> Any:
    """Return the training rows behind a fitted neighbours estimator or tree, else ``X``.

    scikit-learn's neighbour estimators can be fitted from another fitted one (or from a
    ``KDTree``/``BallTree``), reusing its data; here the brute-force search only needs
    the rows.
    """
    if isinstance(X, (_NeighborsBase, SklearnNeighborsBase)):
        check_is_fitted(X, "_fit_X")
        return X._fit_X
    if isinstance(X, (BallTree, KDTree)):
        return np.asarray(X.data)
    return X


def _align_sparse_api(graph: Any) -> Any:
    """Return ``graph`` in the sparse interface scikit-learn's config asks for."""
    if get_config().get("sparse_interface", "sparray") == "spmatrix":
        return sp.csr_matrix(graph)
    return graph


def _to_object_array(sequence: list[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """Pack 1-D arrays of varying lengths into a 1-D object array, as scikit-learn does."""
    out = np.empty(len(sequence), dtype=object)
    out[:] = sequence
    return out


def _get_weights(dist: npt.NDArray[Any], weights: Any) -> npt.NDArray[np.float64] | None:
    """Neighbour weights from distances (scikit-learn's ``_get_weights``), as float64."""
    if weights in (None, "uniform"):
        return None
    if weights == "distance":
        # A query at zero distance from training points gets weight 1 on those, 0 elsewhere.
        with np.errstate(divide="ignore"):
            w = 1.0 / dist
        inf_mask = np.isinf(w)
        inf_row = np.any(inf_mask, axis=1)
        w[inf_row] = inf_mask[inf_row]
        return np.ascontiguousarray(w, dtype=np.float64)
    w = np.asarray(weights(dist))
    if w.shape != dist.shape:
        raise ValueError(
            f"The weights function must return an array of shape {dist.shape} (the shape of "
            f"the distances it is given), got {w.shape}."
        )
    return np.ascontiguousarray(w, dtype=np.float64)


def _check_weights_not_all_zero(weights: npt.NDArray[np.float64]) -> None:
    if np.any(np.all(weights == 0, axis=1)):
        raise ValueError(
            "All neighbors of some sample is getting zero weights. "
            "Please modify 'weights' to avoid this case if you are "
            "using a user-defined function."
        )


class _NeighborsBase(MultiOutputMixin, BaseEstimator):
    """Parameters, validation and the Rust searches shared by every neighbour estimator."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left"), None],
        "radius": [Interval(Real, 0, None, closed="both"), None],
        "algorithm": [StrOptions({"auto", "ball_tree", "kd_tree", "brute"})],
        "leaf_size": [Interval(Integral, 1, None, closed="left")],
        # scikit-learn also accepts 0 < p < 1 (a semi-metric); here p >= 1 is required.
        "p": [Interval(Real, 1, None, closed="both"), None],
        "metric": [StrOptions(set(SUPPORTED_METRICS))],
        "metric_params": [dict, None],
        "n_jobs": [Integral, None],
    }

    # Set by the subclasses' __init__ (scikit-learn's convention: stored unchanged).
    n_neighbors: int | None
    radius: float | None
    algorithm: str
    leaf_size: int
    metric: str
    p: float | None
    metric_params: dict[str, Any] | None
    n_jobs: int | None

    # Fitted state.
    _fit_X: npt.NDArray[Any]
    _fit_method: str
    _y: npt.NDArray[Any]
    n_samples_fit_: int
    effective_metric_: str
    effective_metric_params_: dict[str, Any]

    # --- fitting ---------------------------------------------------------------------------

    def _validate_params(self) -> None:
        """scikit-learn's parameter validation, remembered for sets of plain values.

        Validating the constraints goes through ``get_params`` and ``inspect.signature``
        and costs more than fitting a small data set. Its outcome depends only on the
        values, so a set of plain (immutable, hashable) values that passed once passes
        again; anything else (dicts, callables, NaN) is validated every time.
        """
        cls = type(self)
        names = _PARAM_NAMES.get(cls)
        if names is None:
            names = _PARAM_NAMES[cls] = cls._get_param_names()
        values = tuple(getattr(self, name) for name in names)
        key: tuple[Any, ...] | None = tuple(
            (type(v), v) for v in values if isinstance(v, _CACHEABLE_TYPES)
        )
        if key is not None and len(key) != len(values):
            key = None
        if key is not None and any(isinstance(v, float) and v != v for _, v in key):
            key = None
        seen = _VALID_PARAMS.setdefault(cls, set())
        if key is not None and key in seen:
            return
        super()._validate_params()
        if key is not None and len(seen) < _VALID_PARAMS_MAX:
            seen.add(key)

    def _check_algorithm_metric(self) -> None:
        """Reject metric/algorithm pairs scikit-learn rejects (same messages)."""
        if self.algorithm in ("kd_tree", "ball_tree") and self.metric != "precomputed":
            if self.metric not in VALID_METRICS[self.algorithm]:
                raise ValueError(
                    f"Metric '{self.metric}' not valid. Use "
                    f"sorted(sklearn.neighbors.VALID_METRICS['{self.algorithm}']) "
                    "to get valid options. "
                    "Metric can also be a callable function."
                )
        if self.metric_params is not None and "p" in self.metric_params:
            if self.p is not None:
                warnings.warn(
                    (
                        "Parameter p is found in metric_params. "
                        "The corresponding parameter from __init__ "
                        "is ignored."
                    ),
                    SyntaxWarning,
                    stacklevel=3,
                )

    def _set_effective_metric(self) -> None:
        """``effective_metric_`` and ``effective_metric_params_`` exactly as scikit-learn."""
        params = {} if self.metric_params is None else dict(self.metric_params)
        effective_p = params.get("p", self.p)
        if self.metric == "minkowski":
            params["p"] = effective_p
        metric = self.metric
        if self.metric == "minkowski":
            p = params.pop("p", 2)
            w = params.pop("w", None)
            if p is None:
                p = 2
            if not isinstance(p, numbers.Real) or np.isnan(float(p)) or p < 1:
                raise ValueError(
                    f"The Minkowski power p must be a number >= 1, got p={p!r} "
                    "(from metric_params)."
                )
            if p == 1 and w is None:
                metric = "manhattan"
            elif p == 2 and w is None:
                metric = "euclidean"
            elif p == np.inf and w is None:
                metric = "chebyshev"
            else:
                params["p"] = p
                params["w"] = w
        self.effective_metric_ = metric
        self.effective_metric_params_ = params
        if self.algorithm == "kd_tree" and params.get("w") is not None:
            raise ValueError(
                "algorithm='kd_tree' is not valid for "
                "metric='minkowski' with a weight parameter 'w': "
                "try algorithm='ball_tree' "
                "or algorithm='brute' instead."
            )

    def _fit_fast(self, X: Any, y: Any) -> bool:
        """Fit without the general validation when its outcome is known in advance.

        Applies to a plain float matrix (see `oxlearn._validation.plain_float_matrix`) with
        a non-empty 1-D integer ``y`` of the same length (or no ``y`` when none is needed), the
        default metric handling and no precomputed distances: scikit-learn's
        ``validate_data`` would return both unchanged (integer labels are always valid
        classification targets). Sets exactly the attributes ``validate_data`` sets.
        Returns False, having changed nothing, when the general path must run.
        """
        if self.metric == "precomputed":
            return False
        X = _plain_float_matrix(X)
        if X is None:
            return False
        requires_y = self._requires_y()
        if requires_y and not plain_int_labels(y, X.shape[0]):
            return False
        # `_check_feature_names(reset=True)` on an array without column names.
        if hasattr(self, "feature_names_in_"):
            delattr(self, "feature_names_in_")
        if requires_y:
            self._fit_targets(y)
        self.n_features_in_ = X.shape[1]
        self._finish_fit(X)
        return True

    def _requires_y(self) -> bool:
        cls = type(self)
        cached = _REQUIRES_Y.get(cls)
        if cached is None:
            cached = bool(self.__sklearn_tags__().target_tags.required)
            _REQUIRES_Y[cls] = cached
        return cached

    def _fit(self, X: Any, y: Any = None) -> Any:
        X = _training_rows_of(X)
        if self._fit_fast(X, y):
            return self
        requires_y = self._requires_y()
        if requires_y:
            X, y = validate_data(
                self,
                X,
                y,
                accept_sparse=False,
                multi_output=True,
                order="C",
                dtype=_FLOAT_DTYPES,
            )
            self._fit_targets(y)
        else:
            X = validate_data(self, X, accept_sparse=False, order="C", dtype=_FLOAT_DTYPES)
        return self._finish_fit(X)

    def _finish_fit(self, X: Any) -> Any:
        """Everything `_fit` does after validating the data."""
        self._check_algorithm_metric()
        self._set_effective_metric()

        if self.metric == "precomputed":
            X = check_array(X, ensure_non_negative=True, input_name="X", dtype=_FLOAT_DTYPES)
            if X.shape[0] != X.shape[1]:
                raise ValueError(
                    "Precomputed matrix must be square."
                    f" Input is a {X.shape[0]}x{X.shape[1]} matrix."
                )
        w = self.effective_metric_params_.get("w")
        if w is not None:
            w = np.asarray(w, dtype=np.float64).ravel()
            if w.shape[0] != X.shape[1]:
                raise ValueError(
                    "MinkowskiDistance: the size of w must match "
                    f"the number of features ({X.shape[1]}). "
                    f"Currently len(w)={w.shape[0]}."
                )
        if X.shape[0] == 0:
            raise ValueError("n_samples must be greater than 0")
        # Brute force gives the answers of every algorithm; `algorithm` is accepted for
        # compatibility.
        self._fit_method = "brute"
        self._fit_X = X
        self.n_samples_fit_ = X.shape[0]
        return self

    def _fit_targets(self, y: Any) -> None:
        """Store the targets (overridden by the classifier to encode labels)."""
        self._y = y

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # Sparse input raises a TypeError that says to densify it.
        tags.input_tags.sparse = False
        tags.input_tags.pairwise = self.metric == "precomputed"
        tags.input_tags.positive_only = tags.input_tags.pairwise
        tags.input_tags.allow_nan = False
        return tags

    # --- searching -------------------------------------------------------------------------

    def _validate_query(self, X: Any) -> npt.NDArray[Any]:
        """Validate query rows like scikit-learn, in the training data's float dtype."""
        if self.metric != "precomputed" and not hasattr(self, "feature_names_in_"):
            plain = _plain_float_matrix(X)
            if plain is not None and plain.shape[1] == self.n_features_in_:
                # What `validate_data(reset=False)` returns for it, without a warning.
                return np.ascontiguousarray(plain, dtype=self._query_dtype(plain))
        X = validate_data(self, X, accept_sparse=False, reset=False, order="C", dtype=_FLOAT_DTYPES)
        if self.metric == "precomputed":
            X = check_array(X, ensure_non_negative=True, input_name="X", dtype=_FLOAT_DTYPES)
        return np.ascontiguousarray(X, dtype=self._query_dtype(X))

    def _query_dtype(self, X: npt.NDArray[Any]) -> type[np.floating[Any]]:
        """Return the dtype a search of ``X`` runs in: float32 if ``X`` and the fit data are.

        scikit-learn's compiled reductions need both in one dtype; otherwise it computes the
        distances with `pairwise_distances`, whose `check_pairwise_arrays` takes both to
        float64. Casting a float64 query down to a float32 fit would round it instead.
        """
        both_float32 = X.dtype == np.float32 and self._fit_X.dtype == np.float32
        return np.float32 if both_float32 else np.float64

    def _fit_X_as(self, X: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Return the training rows in the query's dtype (see `_query_dtype`)."""
        return np.ascontiguousarray(self._fit_X, dtype=X.dtype)

    def _metric_args(self) -> tuple[str, float, npt.NDArray[np.float64] | None]:
        params = self.effective_metric_params_
        p = params.get("p", 2.0)
        w = params.get("w")
        w_arr = None if w is None else np.ascontiguousarray(w, dtype=np.float64).ravel()
        return self.effective_metric_, float(p), w_arr

    def _search(
        self, X: npt.NDArray[Any], ks: list[int]
    ) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]]:
        if self.metric == "precomputed":
            return [_precomputed_kneighbors(X, k) for k in ks]
        metric, p, w = self._metric_args()
        result: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]] = _oxlearn.kneighbors(
            X, self._fit_X_as(X), ks, metric, p, w, resolve_n_jobs(self.n_jobs)
        )
        if self._float32_distances(X):
            result = [(d.astype(np.float32), i) for d, i in result]
        return result

    def _float32_distances(self, X: npt.NDArray[Any]) -> bool:
        """Whether scikit-learn returns float32 distances for this search.

        Its brute force returns float64 distances for the metrics of its compiled
        reductions, whatever the input dtype, but for cosine it computes the pairwise
        distances in the input's dtype. The kernels compute cosine in that dtype too, so
        the cast is exact.
        """
        return self.effective_metric_ == "cosine" and X.dtype == np.float32


class _KNeighborsMixin(SklearnKNeighborsMixin):
    """``kneighbors`` and ``kneighbors_graph``, searched in Rust.

    Subclasses scikit-learn's mixin (overriding both methods) so that code testing
    ``isinstance(est, KNeighborsMixin)`` treats our estimators as scikit-learn's.
    """

    def kneighbors(
        self: Any,
        X: Any = None,
        n_neighbors: int | None = None,
        return_distance: bool = True,
    ) -> Any:
        """Find the K-neighbors of a point.

        Returns indices of and distances to the neighbors of each point.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), \
            or (n_queries, n_indexed) if metric == 'precomputed', default=None
            The query point or points.
            If not provided, neighbors of each indexed point are returned.
            In this case, the query point is not considered its own neighbor.

        n_neighbors : int, default=None
            Number of neighbors required for each sample. The default is the
            value passed to the constructor.

        return_distance : bool, default=True
            Whether or not to return the distances.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors)
            Array representing the lengths to points, only present if
            return_distance=True.

        neigh_ind : ndarray of shape (n_queries, n_neighbors)
            Indices of the nearest points in the population matrix.
        """
        if not hasattr(self, "_fit_method"):
            # (A fit sets `_fit_method` and attributes ending in "_": then this passes.)
            check_is_fitted(self)
        if n_neighbors is None:
            n_neighbors = self.n_neighbors
        elif n_neighbors <= 0:
            raise ValueError(f"Expected n_neighbors > 0. Got {int(n_neighbors)}")
        elif not isinstance(n_neighbors, numbers.Integral):
            raise TypeError(
                f"n_neighbors does not take {type(n_neighbors)} value, enter integer value"
            )
        query_is_train = X is None
        if query_is_train:
            X = self._fit_X
            # One extra neighbour: the sample itself, removed below.
            n_neighbors += 1
        else:
            X = self._validate_query(X)

        n_samples_fit = self.n_samples_fit_
        if n_neighbors > n_samples_fit:
            if query_is_train:
                n_neighbors -= 1
                inequality_str = "n_neighbors < n_samples_fit"
            else:
                inequality_str = "n_neighbors <= n_samples_fit"
            raise ValueError(
                f"Expected {inequality_str}, but "
                f"n_neighbors = {n_neighbors}, n_samples_fit = {n_samples_fit}, "
                f"n_samples = {X.shape[0]}"
            )
        neigh_dist, neigh_ind = self._search(X, [int(n_neighbors)])[0]
        if not query_is_train:
            return (neigh_dist, neigh_ind) if return_distance else neigh_ind
        return _drop_self(neigh_dist, neigh_ind, n_neighbors, return_distance)

    def kneighbors_graph(
        self: Any,
        X: Any = None,
        n_neighbors: int | None = None,
        mode: str = "connectivity",
    ) -> Any:
        """Compute the (weighted) graph of k-Neighbors for points in X.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), \
            or (n_queries, n_indexed) if metric == 'precomputed', default=None
            The query point or points.
            If not provided, neighbors of each indexed point are returned.
            In this case, the query point is not considered its own neighbor.

        n_neighbors : int, default=None
            Number of neighbors for each sample. The default is the value
            passed to the constructor.

        mode : {'connectivity', 'distance'}, default='connectivity'
            Type of returned matrix: 'connectivity' will return the
            connectivity matrix with ones and zeros, in 'distance' the
            edges are distances between points.

        Returns
        -------
        A : sparse matrix of shape (n_queries, n_samples_fit)
            `A[i, j]` gives the weight of the edge connecting `i` to `j`, in CSR format.
        """
        check_is_fitted(self)
        if n_neighbors is None:
            n_neighbors = self.n_neighbors
        if mode == "connectivity":
            A_ind = self.kneighbors(X, n_neighbors, return_distance=False)
            n_queries = A_ind.shape[0]
            A_data = np.ones(n_queries * n_neighbors)
        elif mode == "distance":
            A_data, A_ind = self.kneighbors(X, n_neighbors, return_distance=True)
            A_data = np.ravel(A_data)
        else:
            raise ValueError(
                'Unsupported mode, must be one of "connectivity", '
                f'or "distance" but got "{mode}" instead'
            )
        n_queries = A_ind.shape[0]
        n_nonzero = n_queries * n_neighbors
        A_indptr = np.arange(0, n_nonzero + 1, n_neighbors)
        graph = sp.csr_array(
            (A_data, A_ind.ravel(), A_indptr), shape=(n_queries, self.n_samples_fit_)
        )
        return _align_sparse_api(graph)


def _precomputed_kneighbors(
    D: npt.NDArray[Any], k: int
) -> tuple[npt.NDArray[Any], npt.NDArray[np.intp]]:
    """Find the ``k`` nearest in each row of a precomputed distance matrix as scikit-learn does.

    scikit-learn does not send precomputed distances to its compiled reductions (as it does the
    metrics the Rust search implements): it selects them with ``np.argpartition`` and orders
    the selection with ``np.argsort`` (its ``_kneighbors_reduce_func``). Which of several tied
    neighbours these keep depends on NumPy's selection algorithm (on x86-64 with AVX-512,
    x86-simd-sort's), not on the training index, and no fixed rule reproduces it on every
    machine; with no distances to compute, the selection is all the work, so running the
    same NumPy calls, in row chunks of scikit-learn's working memory, gives its answers,
    ties included, at its speed.
    """
    n_queries, n_fit = D.shape
    chunk = get_chunk_n_rows(row_bytes=8 * n_fit, max_n_rows=n_queries)
    dist = np.empty((n_queries, k), dtype=D.dtype)
    ind = np.empty((n_queries, k), dtype=np.intp)
    for rows in gen_batches(n_queries, max(chunk, 1)):
        block = D[rows]
        sample_range = np.arange(block.shape[0])[:, None]
        part = np.argpartition(block, k - 1, axis=1)[:, :k]
        part = part[sample_range, np.argsort(block[sample_range, part])]
        ind[rows] = part
        dist[rows] = block[sample_range, part]
    return dist, ind


def _drop_self(
    neigh_dist: npt.NDArray[np.float64],
    neigh_ind: npt.NDArray[np.intp],
    n_neighbors: int,
    return_distance: bool,
) -> Any:
    """Remove each training sample from its own neighbours (scikit-learn's rule)."""
    n_queries = neigh_ind.shape[0]
    sample_range = np.arange(n_queries)[:, None]
    sample_mask = neigh_ind != sample_range
    # With more duplicates than neighbours the sample itself may be missing: drop the first.
    dup_gr_nbrs = np.all(sample_mask, axis=1)
    sample_mask[:, 0][dup_gr_nbrs] = False
    neigh_ind = np.reshape(neigh_ind[sample_mask], (n_queries, n_neighbors - 1))
    if return_distance:
        neigh_dist = np.reshape(neigh_dist[sample_mask], (n_queries, n_neighbors - 1))
        return neigh_dist, neigh_ind
    return neigh_ind


class _RadiusNeighborsMixin(SklearnRadiusNeighborsMixin):
    """``radius_neighbors`` and ``radius_neighbors_graph``, searched in Rust.

    Subclasses scikit-learn's mixin (overriding both methods), as `_KNeighborsMixin`.
    """

    def radius_neighbors(
        self: Any,
        X: Any = None,
        radius: float | None = None,
        return_distance: bool = True,
        sort_results: bool = False,
    ) -> Any:
        """Find the neighbors within a given radius of a point or points.

        Points lying on the boundary are included in the results. Unless
        ``sort_results=True``, each point's neighbours come in training index order.

        Parameters
        ----------
        X : array-like of (n_samples, n_features), default=None
            The query point or points.
            If not provided, neighbors of each indexed point are returned.
            In this case, the query point is not considered its own neighbor.

        radius : float, default=None
            Limiting distance of neighbors to return. The default is the value
            passed to the constructor.

        return_distance : bool, default=True
            Whether or not to return the distances.

        sort_results : bool, default=False
            If True, the distances and indices will be sorted by increasing
            distances before being returned. If `return_distance=False`, setting
            `sort_results=True` will result in an error.

        Returns
        -------
        neigh_dist : ndarray of shape (n_samples,) of arrays
            Distances to each point, only present if `return_distance=True`.

        neigh_ind : ndarray of shape (n_samples,) of arrays
            Indices of the points that lie within ``radius`` of each query.
        """
        check_is_fitted(self)
        if sort_results and not return_distance:
            raise ValueError("return_distance must be True if sort_results is True.")
        indptr, indices, dist = self._radius_csr(X, radius, sort_results)
        neigh_ind = _to_object_array(np.split(indices, indptr[1:-1]))
        if return_distance:
            neigh_dist = _to_object_array(np.split(dist, indptr[1:-1]))
            return neigh_dist, neigh_ind
        return neigh_ind

    def _radius_csr(
        self: Any, X: Any, radius: float | None, sort_results: bool
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        """Radius search in compressed-row form (indptr, indices, distances)."""
        query_is_train = X is None
        X = self._fit_X if query_is_train else self._validate_query(X)
        if radius is None:
            radius = self.radius
        n = X.shape[0]
        per_query = None
        if isinstance(radius, numbers.Real):
            if np.isnan(float(radius)) or radius < 0:
                raise ValueError(f"radius must be a non-negative number, got {radius!r}")
        else:
            # One radius per query, as scikit-learn's tree searches accept: search with the
            # largest, then keep each query's own ball.
            per_query = np.asarray(radius, dtype=np.float64)
            if per_query.shape != (n,):
                raise ValueError(
                    "radius must be a non-negative number or an array of shape "
                    f"(n_queries,) = ({n},), got {radius!r}"
                )
            if np.isnan(per_query).any() or (per_query < 0).any():
                raise ValueError("every radius must be a non-negative number")
            radius = float(per_query.max()) if n else 0.0
        metric, p, w = self._metric_args()
        indptr, indices, dist = _oxlearn.radius_neighbors(
            X,
            self._fit_X_as(X),
            float(radius),
            metric,
            p,
            w,
            bool(sort_results),
            resolve_n_jobs(self.n_jobs),
        )
        if self._float32_distances(X):
            dist = dist.astype(np.float32)
        if per_query is None and not query_is_train:
            return indptr, indices, dist
        rows = np.repeat(np.arange(n), np.diff(indptr))
        keep = np.ones(len(indices), dtype=bool) if per_query is None else dist <= per_query[rows]
        if query_is_train:
            # Each training sample is not its own neighbour: drop it.
            keep &= indices != rows
        counts = np.bincount(rows[keep], minlength=n)
        indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.intp)
        return indptr, indices[keep], dist[keep]

    def radius_neighbors_graph(
        self: Any,
        X: Any = None,
        radius: float | None = None,
        mode: str = "connectivity",
        sort_results: bool = False,
    ) -> Any:
        """Compute the (weighted) graph of Neighbors for points in X.

        Neighborhoods are restricted the points at a distance lower than radius.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), default=None
            The query point or points.
            If not provided, neighbors of each indexed point are returned.
            In this case, the query point is not considered its own neighbor.

        radius : float, default=None
            Radius of neighborhoods. The default is the value passed to the
            constructor.

        mode : {'connectivity', 'distance'}, default='connectivity'
            Type of returned matrix: 'connectivity' will return the
            connectivity matrix with ones and zeros, in 'distance' the
            edges are distances between points.

        sort_results : bool, default=False
            If True, in each row of the result, the non-zero entries will be
            sorted by increasing distances. Only used with mode='distance'.

        Returns
        -------
        A : sparse matrix of shape (n_queries, n_samples_fit)
            `A[i, j]` gives the weight of the edge connecting `i` to `j`, in CSR format.
        """
        check_is_fitted(self)
        if mode not in ("connectivity", "distance"):
            raise ValueError(
                'Unsupported mode, must be one of "connectivity", '
                f'or "distance" but got "{mode}" instead'
            )
        sort = sort_results and mode == "distance"
        indptr, indices, dist = self._radius_csr(X, radius, sort)
        data = dist if mode == "distance" else np.ones(len(indices))
        n_queries = len(indptr) - 1
        graph = sp.csr_array((data, indices, indptr), shape=(n_queries, self.n_samples_fit_))
        return _align_sparse_api(graph)


WeightsType = str | Callable[[npt.NDArray[np.float64]], npt.NDArray[Any]] | None
