"""Shared machinery of the neighbour estimators: the Rust path and when it applies.

The estimators subclass scikit-learn's own classes. Each fit decides whether the Rust
search can give scikit-learn's answers (dense float32/float64 data, a metric of
`SUPPORTED_METRICS`, ``p >= 1``, and a brute-force search by scikit-learn's own
``_fit_method`` rule: for data where it picks a KDTree or BallTree, the tree's answers are
its); if it cannot, scikit-learn's own ``_fit`` runs and every later query goes to
scikit-learn's methods. After an accelerated fit, each query
decides again (a sparse, integer or other-dtype query goes to scikit-learn's code, which
then runs on the fitted state set here exactly as its own fit would have set it). Every
decision is reported at INFO level on the ``oxlearn`` logger.
"""

from __future__ import annotations

import logging
import numbers
import warnings
from collections.abc import Callable
from numbers import Real
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.neighbors import VALID_METRICS, BallTree, KDTree
from sklearn.utils import gen_batches
from sklearn.utils.validation import validate_data

from oxlearn import _oxlearn
from oxlearn._plain_inputs import plain_float_matrix as _plain_float_matrix
from oxlearn._plain_inputs import plain_int_labels
from oxlearn._sklearn_compat import NeighborsBase as SklearnNeighborsBase
from oxlearn._sklearn_compat import _check_precomputed, _get_threadlocal_config, get_chunk_n_rows
from oxlearn._threads import resolve_n_jobs

#: The logger that says, for each fit and query, which path ran (scikit-learn-intelex's
#: convention): INFO records "<Class>.<method>: accelerated (Rust)" or
#: "<Class>.<method>: scikit-learn fallback (<why>)".
logger = logging.getLogger("oxlearn")

#: Metrics the Rust search implements (scikit-learn's names, aliases included). Not cosine:
#: scikit-learn computes it with `normalize` and a BLAS product (treating norms below 10
#: machine epsilons as zero), whose rounding, unlike the Euclidean expansion's, the
#: documented near-tie rule does not cover, so scikit-learn's own code runs it.
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
        "precomputed",
    }
)

_FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))

# Parameter sets already validated, per estimator class (see `_validate_params`).
_VALID_PARAMS: dict[type, set[tuple[Any, ...]]] = {}
_VALID_PARAMS_MAX = 256
_CACHEABLE_TYPES = (int, float, str, bool, type(None), np.integer, np.floating)
# Each estimator class's parameter names (`_get_param_names` reads the signature).
_PARAM_NAMES: dict[type, list[str]] = {}
# Whether each estimator class requires y (its target tags), looked up once.
_REQUIRES_Y: dict[type, bool] = {}

# `_oxlearn_fit_reason` of an estimator not fitted (yet): queries go to scikit-learn's
# methods, which raise its NotFittedError.
_NOT_FITTED = "not fitted"


def log_path(estimator: Any, method: str, reason: str | None) -> None:
    """Report on the ``oxlearn`` logger which path ``estimator.method`` took.

    ``reason`` is None for the Rust path, else why scikit-learn's code runs instead.
    Costs one cached level test when INFO is disabled.
    """
    if logger.isEnabledFor(logging.INFO):
        name = type(estimator).__name__
        if reason is None:
            logger.info("%s.%s: accelerated (Rust)", name, method)
        else:
            logger.info("%s.%s: scikit-learn fallback (%s)", name, method, reason)


class WeightsShapeError(ValueError):
    """A callable ``weights`` returned an array not of the distances' shape.

    Raised internally so that the prediction falls back to scikit-learn's, which raises
    its own error (or not) for that array.
    """


def _to_object_array(sequence: list[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """Pack 1-D arrays of varying lengths into a 1-D object array, as scikit-learn does."""
    out = np.empty(len(sequence), dtype=object)
    out[:] = sequence
    return out


def _get_weights(dist: npt.NDArray[Any], weights: Any) -> npt.NDArray[np.float64] | None:
    """Neighbour weights from distances (scikit-learn's ``_get_weights``), as float64.

    Raises `WeightsShapeError` when a callable returns an array of another shape.
    """
    if weights is None or weights == "uniform":
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
    if w.shape != dist.shape or w.dtype.kind not in "biuf":
        raise WeightsShapeError(f"weights returned {w.shape} {w.dtype}")
    return np.ascontiguousarray(w, dtype=np.float64)


def _check_weights_not_all_zero(weights: npt.NDArray[np.float64]) -> None:
    if np.any(np.all(weights == 0, axis=1)):
        raise ValueError(
            "All neighbors of some sample is getting zero weights. "
            "Please modify 'weights' to avoid this case if you are "
            "using a user-defined function."
        )


def _query_float_dtype(X: npt.NDArray[Any], fit_X: npt.NDArray[Any]) -> np.dtype[Any]:
    """Return the dtype ``check_pairwise_arrays`` gives a pair (float32 if both are)."""
    if X.dtype == np.float32 and fit_X.dtype == np.float32:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


class _RecordedWarnings(warnings.catch_warnings):
    """Hold the warnings of a validation until it is known which path runs.

    A query that falls back is validated again by scikit-learn, which warns again; the
    first validation's warnings are then dropped. On the Rust path (or if the validation
    raises) they are re-emitted as they were.
    """

    def __init__(self) -> None:
        super().__init__(record=True)
        self.caught: list[warnings.WarningMessage] = []

    def __enter__(self) -> Any:
        caught = super().__enter__()
        warnings.simplefilter("always")
        self.caught = caught if caught is not None else []
        return self

    def replay(self) -> None:
        for w in self.caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


class _AcceleratedNeighborsMixin:
    """The Rust path of a scikit-learn neighbour estimator, in front of its own methods.

    Placed before the scikit-learn class among the bases. Overrides ``_fit`` (which
    scikit-learn's ``fit`` calls), ``kneighbors`` and, in the subclasses, the predictions;
    each either runs the Rust search or calls the scikit-learn method it overrides.
    """

    # Parameters (set by scikit-learn's __init__).
    n_neighbors: int
    algorithm: str
    leaf_size: int
    metric: Any
    p: Any
    metric_params: dict[str, Any] | None
    n_jobs: int | None

    # Fitted state (scikit-learn's attributes, plus why the fit fell back, None if not).
    _fit_X: Any
    _fit_method: str
    _y: npt.NDArray[Any]
    n_samples_fit_: int
    n_features_in_: int
    effective_metric_: Any
    effective_metric_params_: dict[str, Any]
    _oxlearn_fit_reason: str | None

    # --- fitting --------------------------------------------------------------------------

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
            names = _PARAM_NAMES[cls] = cls._get_param_names()  # type: ignore[attr-defined]
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
        super()._validate_params()  # type: ignore[misc]
        if key is not None and len(seen) < _VALID_PARAMS_MAX:
            seen.add(key)

    def _params_fallback_reason(self) -> str | None:
        """Why these parameters need scikit-learn's code, or None if the Rust path applies."""
        if self.n_jobs == 0:
            # scikit-learn's queries raise joblib's error for it (or not, by path).
            return "n_jobs=0"
        metric = self.metric
        if not isinstance(metric, str) or metric not in SUPPORTED_METRICS:
            return f"metric={metric!r} is not accelerated"
        params = self.metric_params
        if metric == "minkowski":
            p = self.p
            if params:
                extra = [key for key in params if key not in ("p", "w")]
                if extra:
                    return f"metric_params keys {extra!r} are not accelerated"
                p = params.get("p", p)
            if isinstance(p, bool) or not isinstance(p, Real) or not float(p) >= 1:
                return f"p={p!r} is not accelerated (only p >= 1)"
        elif params:
            return f"metric_params with metric={metric!r} are not accelerated"
        return None

    def _weights_fallback_reason(self, n_features: int) -> str | None:
        """Why the Minkowski weights ``w`` need scikit-learn's code (it checks them late)."""
        params = self.metric_params
        w = params.get("w") if params else None
        if w is None or self.metric != "minkowski":
            return None
        try:
            w_arr = np.asarray(w, dtype=np.float64)
        except (TypeError, ValueError):
            return "metric_params['w'] is not a vector of numbers"
        if (
            w_arr.ndim != 1
            or w_arr.shape[0] != n_features
            or not np.isfinite(w_arr).all()
            or (w_arr < 0).any()
        ):
            return f"metric_params['w'] is not {n_features} non-negative weights"
        return None

    def _requires_y(self) -> bool:
        cls = type(self)
        cached = _REQUIRES_Y.get(cls)
        if cached is None:
            cached = bool(self.__sklearn_tags__().target_tags.required)  # type: ignore[attr-defined]
            _REQUIRES_Y[cls] = cached
        return cached

    def _fit(self, X: Any, y: Any = None) -> Any:
        """Fit on the Rust path when it applies, else with scikit-learn's ``_fit``."""
        reason = self._params_fallback_reason()
        if reason is None:
            if self._fit_fast(X, y):
                log_path(self, "fit", None)
                return self
            if isinstance(X, (KDTree, BallTree, SklearnNeighborsBase)):
                reason = "fitted from a tree or a fitted estimator"
        if reason is not None:
            return self._sklearn_fit(X, y, reason)
        requires_y = self._requires_y()
        if requires_y:
            X, y = validate_data(self, X, y, accept_sparse="csr", multi_output=True, order="C")
        else:
            X = validate_data(self, X, accept_sparse="csr", order="C")
        if sp.issparse(X):
            reason = "sparse X"
        elif X.dtype not in _FLOAT_DTYPES:
            reason = f"X of dtype {X.dtype} is not accelerated"
        else:
            reason = self._weights_fallback_reason(X.shape[1]) or self._tree_fallback_reason(X)
        if reason is not None:
            # scikit-learn validates the (already valid) data again: keep its feature names.
            names = self.__dict__.get("feature_names_in_")
            self._sklearn_fit(X, y, reason)
            if names is not None:
                self.feature_names_in_ = names
            return self
        if requires_y:
            self._fit_targets(y)
        self._finish_fit(X)
        log_path(self, "fit", None)
        return self

    def _sklearn_fit(self, X: Any, y: Any, reason: str) -> Any:
        """scikit-learn's ``_fit``; every later query then runs scikit-learn's code."""
        log_path(self, "fit", reason)
        self._oxlearn_fit_reason = reason
        return super()._fit(X, y)  # type: ignore[misc]

    def _fit_fast(self, X: Any, y: Any) -> bool:
        """Fit without the general validation when its outcome is known in advance.

        Applies to a plain float matrix (see `oxlearn._plain_inputs.plain_float_matrix`) with
        a non-empty 1-D integer ``y`` of the same length (or no ``y`` when none is needed), and
        no precomputed distances: scikit-learn's ``validate_data`` would return both
        unchanged (integer labels are always valid classification targets). Sets exactly
        the attributes ``validate_data`` sets. Returns False, having changed nothing, when
        the general path must run.
        """
        if self.metric == "precomputed":
            return False
        X = _plain_float_matrix(X)
        if X is None:
            return False
        requires_y = self._requires_y()
        if requires_y and not plain_int_labels(y, X.shape[0]):
            return False
        if self.metric_params and self._weights_fallback_reason(X.shape[1]) is not None:
            return False
        if self.algorithm != "brute" and self._tree_fallback_reason(X) is not None:
            return False
        # `_check_feature_names(reset=True)` on an array without column names.
        if "feature_names_in_" in self.__dict__:
            del self.feature_names_in_
        if requires_y:
            self._fit_targets(y)
        self.n_features_in_ = X.shape[1]
        self._finish_fit(X)
        return True

    def _finish_fit(self, X: npt.NDArray[Any]) -> None:
        """Everything scikit-learn's ``_fit`` does after validating the data, but the tree."""
        self._check_algorithm_metric()  # type: ignore[attr-defined]
        self._set_effective_metric()
        if self.metric == "precomputed":
            X = _check_precomputed(X)
            if X.shape[0] != X.shape[1]:
                raise ValueError(
                    "Precomputed matrix must be square."
                    f" Input is a {X.shape[0]}x{X.shape[1]} matrix."
                )
            self.n_features_in_ = X.shape[1]
        if X.shape[0] == 0:
            raise ValueError("n_samples must be greater than 0")
        self._fit_X = X
        self.n_samples_fit_ = X.shape[0]
        # (`_tree_fallback_reason` has sent every fit scikit-learn searches with a tree to
        # its own code.)
        self._fit_method = "brute"
        self._tree = None
        self._oxlearn_fit_reason = None

    def _oxlearn_adopt_fitted_state(self) -> None:
        """Work out which path a fit made by scikit-learn's code takes (`oxlearn.from_sklearn`).

        The fitted attributes are scikit-learn's already; this records, as `_fit` would
        have, whether queries can take the Rust path: a brute-force fit of dense float data
        with accelerated parameters can, anything else keeps running scikit-learn's code.
        """
        X = self._fit_X
        reason = self._params_fallback_reason()
        if reason is None and self._fit_method != "brute":
            reason = f"fitted with scikit-learn's {self._fit_method}"
        elif reason is None and sp.issparse(X):
            reason = "sparse X"
        elif reason is None and X.dtype not in _FLOAT_DTYPES:
            reason = f"X of dtype {X.dtype} is not accelerated"
        elif reason is None and self.metric != "precomputed":
            reason = self._weights_fallback_reason(X.shape[1])
        if reason is None:
            self._fit_X = np.ascontiguousarray(X)
        self._oxlearn_fit_reason = reason

    def _set_effective_metric(self) -> None:
        """Set ``effective_metric_`` and ``effective_metric_params_`` as scikit-learn does."""
        self.effective_metric_, self.effective_metric_params_ = self._effective_metric()

    def _effective_metric(self) -> tuple[Any, dict[str, Any]]:
        """Return scikit-learn's ``effective_metric_`` and ``effective_metric_params_``."""
        params = {} if self.metric_params is None else self.metric_params.copy()
        metric = self.metric
        if metric == "minkowski":
            p = params.pop("p", self.p)
            w = params.pop("w", None)
            if p == 1 and w is None:
                metric = "manhattan"
            elif p == 2 and w is None:
                metric = "euclidean"
            elif p == np.inf and w is None:
                metric = "chebyshev"
            else:
                params["p"] = p
                params["w"] = w
        return metric, params

    def _tree_fallback_reason(self, X: npt.NDArray[Any]) -> str | None:
        """Why scikit-learn would search ``X`` with a tree (its ``_fit_method`` rule), or None.

        A tree's answers are not always the brute force's: it computes each distance
        directly (a sample's distance to itself is 0, where the brute force's Euclidean
        expansion may leave 1e-8, which changes distance-weighted votes), and orders tied
        neighbours its own way. So those fits run scikit-learn's code.
        """
        algorithm = self.algorithm
        if algorithm in ("kd_tree", "ball_tree"):
            return f"algorithm={algorithm!r}"
        if algorithm == "brute" or self.metric == "precomputed":
            return None
        n_samples, n_features = X.shape
        if n_features > 15 or (self.n_neighbors is not None and self.n_neighbors >= n_samples // 2):
            return None
        metric, params = self._effective_metric()
        if (
            params.get("w") is not None
            or metric in VALID_METRICS["kd_tree"]
            or metric in VALID_METRICS["ball_tree"]
        ):
            return f"algorithm='auto' picks a tree for {n_features} features"
        return None

    def _fit_targets(self, y: Any) -> None:
        """Store the targets (overridden by the classifier to encode labels)."""
        self._y = y

    # --- queries --------------------------------------------------------------------------

    def _query_path(self, X: Any) -> tuple[Any, str | None]:
        """Decide which path a query takes: ``(validated X, None)`` or ``(None, why not)``.

        ``X=None`` (the training rows) stays None. A query can take the Rust path only
        after an accelerated fit, as dense data of the fit data's float dtype (what
        scikit-learn's compiled reductions take); anything else runs scikit-learn's code,
        which validates the query again (this first validation's warnings are then
        dropped, so each is raised once).
        """
        reason = self.__dict__.get("_oxlearn_fit_reason", _NOT_FITTED)
        if reason is not None:
            return None, reason
        if X is None:
            return None, None
        fit_X = self._fit_X
        if self.metric == "precomputed":
            return self._precomputed_query(X)
        if "feature_names_in_" not in self.__dict__:
            plain = _plain_float_matrix(X)
            if (
                plain is not None
                and plain.shape[1] == self.n_features_in_
                and plain.dtype == fit_X.dtype
            ):
                if not _get_threadlocal_config().get("enable_cython_pairwise_dist", True):
                    return None, "enable_cython_pairwise_dist=False"
                return plain, None
        if sp.issparse(X):
            return None, "sparse query"
        recorder = _RecordedWarnings()
        try:
            with recorder:
                X = validate_data(self, X, accept_sparse="csr", reset=False, order="C")
        except Exception:
            recorder.replay()
            raise
        if sp.issparse(X):
            return None, "sparse query"
        if X.dtype != fit_X.dtype:
            return None, f"query of dtype {X.dtype} on fit data of dtype {fit_X.dtype}"
        if not _get_threadlocal_config().get("enable_cython_pairwise_dist", True):
            # (scikit-learn's brute force then selects with np.argpartition.)
            return None, "enable_cython_pairwise_dist=False"
        recorder.replay()
        return X, None

    def _precomputed_query(self, X: Any) -> tuple[Any, str | None]:
        """`_query_path` for precomputed distances (dense ones are selected here)."""
        if sp.issparse(X):
            return None, "sparse precomputed distances"
        recorder = _RecordedWarnings()
        try:
            with recorder:
                X = _check_precomputed(X)
        except Exception:
            recorder.replay()
            raise
        if X.shape[1] != self.n_samples_fit_:
            return None, "precomputed distances of the wrong shape"
        recorder.replay()
        # `pairwise_distances`' `check_pairwise_arrays` converts them so.
        return np.asarray(X, dtype=_query_float_dtype(X, self._fit_X)), None

    def _metric_args(self) -> tuple[str, float, npt.NDArray[np.float64] | None]:
        params = self.effective_metric_params_
        p = params.get("p", 2.0)
        w = params.get("w")
        w_arr = None if w is None else np.ascontiguousarray(w, dtype=np.float64).ravel()
        return self.effective_metric_, float(p), w_arr

    def _search(
        self, X: npt.NDArray[Any], ks: list[int]
    ) -> list[tuple[npt.NDArray[Any], npt.NDArray[np.intp]]]:
        """Find the ``ks`` nearest training rows of each row of ``X`` (validated), in Rust."""
        if self.metric == "precomputed":
            return [_precomputed_kneighbors(X, k) for k in ks]
        metric, p, w = self._metric_args()
        result: list[tuple[npt.NDArray[Any], npt.NDArray[np.intp]]] = _oxlearn.kneighbors(
            X, self._fit_X, ks, metric, p, w, resolve_n_jobs(self.n_jobs)
        )
        if self._float32_distances(X):
            result = [(d.astype(np.float32), i) for d, i in result]
        return result

    def _float32_distances(self, X: npt.NDArray[Any]) -> bool:
        """Whether scikit-learn returns float32 distances for this search.

        Its brute force returns float64 distances for the metrics of its compiled
        reductions, whatever the input dtype, but precomputed distances come back in their
        own dtype (the cast of the float32 values is exact).
        """
        return self.effective_metric_ == "precomputed" and X.dtype == np.float32

    def kneighbors(
        self,
        X: Any = None,
        n_neighbors: int | None = None,
        return_distance: bool = True,
    ) -> Any:
        """Find the K-neighbors of a point (see scikit-learn's ``kneighbors``).

        Runs the Rust search when the fit and the query allow it (see `_query_path`),
        else scikit-learn's ``kneighbors``.

        Parameters
        ----------
        X : {array-like, sparse matrix}, shape (n_queries, n_features), \
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
        if self.__dict__.get("_oxlearn_fit_reason", _NOT_FITTED) is None:
            n_neighbors = self._check_n_neighbors(n_neighbors)
        query, reason = self._query_path(X)
        if reason is not None:
            if reason is not _NOT_FITTED:
                log_path(self, "kneighbors", reason)
            return super().kneighbors(X, n_neighbors, return_distance)  # type: ignore[misc]
        log_path(self, "kneighbors", None)
        return self._kneighbors(query, int(n_neighbors), return_distance)  # type: ignore[arg-type]

    def _check_n_neighbors(self, n_neighbors: Any) -> Any:
        """scikit-learn's checks of ``kneighbors``' ``n_neighbors`` (same errors)."""
        if n_neighbors is None:
            return self.n_neighbors
        if n_neighbors <= 0:
            raise ValueError(f"Expected n_neighbors > 0. Got {int(n_neighbors)}")
        if not isinstance(n_neighbors, numbers.Integral):
            raise TypeError(
                f"n_neighbors does not take {type(n_neighbors)} value, enter integer value"
            )
        return n_neighbors

    def _kneighbors(self, X: Any, n_neighbors: int, return_distance: bool) -> Any:
        """``kneighbors`` on the Rust path, for a query `_query_path` let through."""
        query_is_train = X is None
        if query_is_train:
            X = self._fit_X
            # One extra neighbour: the sample itself, removed below.
            n_neighbors += 1
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
        neigh_dist, neigh_ind = self._search(X, [n_neighbors])[0]
        if not query_is_train:
            return (neigh_dist, neigh_ind) if return_distance else neigh_ind
        return _drop_self(neigh_dist, neigh_ind, n_neighbors, return_distance)


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


class _AcceleratedRadiusMixin:
    """``radius_neighbors`` on the Rust path, in front of scikit-learn's.

    scikit-learn's ``radius_neighbors_graph`` (inherited) calls it.
    """

    def radius_neighbors(
        self: Any,
        X: Any = None,
        radius: float | None = None,
        return_distance: bool = True,
        sort_results: bool = False,
    ) -> Any:
        """Find the neighbors within a given radius of a point or points.

        Runs the Rust search when the fit and the query allow it (see `_query_path`),
        else scikit-learn's ``radius_neighbors``. Points lying on the boundary are
        included in the results. Unless ``sort_results=True``, each point's neighbours
        come in training index order.

        Parameters
        ----------
        X : {array-like, sparse matrix} of (n_samples, n_features), default=None
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
        accelerated_fit = self.__dict__.get("_oxlearn_fit_reason", _NOT_FITTED) is None
        if accelerated_fit and sort_results and not return_distance:
            raise ValueError("return_distance must be True if sort_results is True.")
        query, reason = self._query_path(X)
        if radius is None:
            radius = self.radius
        if reason is None and (not isinstance(radius, Real) or radius != radius or radius < 0):
            reason = f"radius={radius!r} is not a non-negative number"
        if reason is not None:
            if reason is not _NOT_FITTED:
                log_path(self, "radius_neighbors", reason)
            return super().radius_neighbors(X, radius, return_distance, sort_results)  # type: ignore[misc]
        log_path(self, "radius_neighbors", None)
        indptr, indices, dist = self._radius_csr(query, float(radius), sort_results)
        neigh_ind = _to_object_array(np.split(indices, indptr[1:-1]))
        if return_distance:
            neigh_dist = _to_object_array(np.split(dist, indptr[1:-1]))
            return neigh_dist, neigh_ind
        return neigh_ind

    def _radius_csr(
        self: Any, X: Any, radius: float, sort_results: bool
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[Any]]:
        """Radius search in compressed-row form (indptr, indices, distances)."""
        query_is_train = X is None
        if query_is_train:
            X = self._fit_X
        n = X.shape[0]
        # (With precomputed distances the training rows are not read, but must have their
        # dtype.)
        train = self._fit_X
        if train.dtype != X.dtype:
            train = np.ascontiguousarray(train, dtype=X.dtype)
        metric, p, w = self._metric_args()
        indptr, indices, dist = _oxlearn.radius_neighbors(
            X, train, radius, metric, p, w, bool(sort_results), resolve_n_jobs(self.n_jobs)
        )
        if self._float32_distances(X):
            dist = dist.astype(np.float32)
        if not query_is_train:
            return indptr, indices, dist
        # Each training sample is not its own neighbour: drop it.
        rows = np.repeat(np.arange(n), np.diff(indptr))
        keep = indices != rows
        counts = np.bincount(rows[keep], minlength=n)
        indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.intp)
        return indptr, indices[keep], dist[keep]


WeightsType = str | Callable[[npt.NDArray[np.float64]], npt.NDArray[Any]] | None
