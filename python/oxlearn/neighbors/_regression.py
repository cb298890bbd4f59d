"""k-nearest-neighbours regression with the search and the average in Rust."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted

from oxlearn import _oxlearn
from oxlearn._sklearn_compat import StrOptions, _fit_context
from oxlearn.neighbors._base import (
    WeightsType,
    _get_weights,
    _KNeighborsMixin,
    _NeighborsBase,
)


class KNeighborsRegressor(_KNeighborsMixin, RegressorMixin, _NeighborsBase):
    """Regression based on k-nearest neighbors.

    A drop-in replacement for :class:`sklearn.neighbors.KNeighborsRegressor`: the target
    is predicted by local interpolation of the targets of the nearest neighbors in the
    training set, with the search and the averaging compiled to Rust.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbors to use by default for :meth:`kneighbors` queries.

    weights : {'uniform', 'distance'}, callable or None, default='uniform'
        Weight function used in prediction: 'uniform', 'distance' (inverse distance,
        exact matches dominate) or a callable mapping distances to weights.

    algorithm : {'auto', 'ball_tree', 'kd_tree', 'brute'}, default='auto'
        Accepted for compatibility; the exact brute-force search is always used.

    leaf_size : int, default=30
        Accepted for compatibility.

    p : float, default=2
        Power parameter for the Minkowski metric (``p >= 1``).

    metric : str, default='minkowski'
        One of 'minkowski', 'euclidean', 'l2', 'sqeuclidean', 'manhattan', 'cityblock',
        'l1', 'chebyshev', 'cosine', 'precomputed'.

    metric_params : dict, default=None
        Additional keyword arguments for the metric (``p`` and ``w`` for 'minkowski').

    n_jobs : int, default=None
        Number of threads of the search: None uses every core (or
        ``OXLEARN_NUM_THREADS``, else ``OMP_NUM_THREADS``, when set, as joblib's process
        workers set it), -1 every core, 1 a single thread. Results do not depend on it.

    Attributes
    ----------
    effective_metric_ : str
        The distance metric used.

    effective_metric_params_ : dict
        Additional keyword arguments for the metric function.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when X has string column names.

    n_samples_fit_ : int
        Number of samples in the fitted data.

    See Also
    --------
    KNeighborsClassifier : Classifier implementing the k-nearest neighbors vote.
    NearestNeighbors : Unsupervised learner for implementing neighbor searches.
    sklearn.neighbors.KNeighborsRegressor : The scikit-learn estimator reproduced here.

    Examples
    --------
    >>> X = [[0], [1], [2], [3]]
    >>> y = [0, 0, 1, 1]
    >>> from oxlearn.neighbors import KNeighborsRegressor
    >>> neigh = KNeighborsRegressor(n_neighbors=2)
    >>> neigh.fit(X, y)
    KNeighborsRegressor(...)
    >>> print(neigh.predict([[1.5]]))
    [0.5]
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_NeighborsBase._parameter_constraints,
        "weights": [StrOptions({"uniform", "distance"}), callable, None],
    }
    _parameter_constraints.pop("radius")

    def __init__(
        self,
        n_neighbors: int = 5,
        *,
        weights: WeightsType = "uniform",
        algorithm: str = "auto",
        leaf_size: int = 30,
        p: float = 2,
        metric: str = "minkowski",
        metric_params: dict[str, Any] | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.p = p
        self.metric = metric
        self.metric_params = metric_params
        self.n_jobs = n_jobs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self.metric == "precomputed"
        return tags

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: Any, y: Any) -> KNeighborsRegressor:
        """Fit the k-nearest neighbors regressor from the training dataset.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, n_samples) if metric='precomputed'
            Training data.

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values.

        Returns
        -------
        self : KNeighborsRegressor
            The fitted k-nearest neighbors regressor.
        """
        self._fit(X, y)
        return self

    def predict(self, X: Any) -> npt.NDArray[Any]:
        """Predict the target for the provided data.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), \
                or (n_queries, n_indexed) if metric == 'precomputed', or None
            Test samples. If `None`, predictions for all indexed points are
            returned; in this case, points are not considered their own
            neighbors.

        Returns
        -------
        y : ndarray of shape (n_queries,) or (n_queries, n_outputs)
            Target values.
        """
        check_is_fitted(self, "_fit_method")
        if self.weights in (None, "uniform"):
            neigh_ind = self.kneighbors(X, return_distance=False)
            weights = None
        else:
            neigh_dist, neigh_ind = self.kneighbors(X)
            weights = _get_weights(neigh_dist, self.weights)
        _y = self._y if self._y.ndim == 2 else self._y.reshape((-1, 1))
        # np.mean keeps float32 targets in float32; everything else averages in float64.
        dtype = np.float32 if (weights is None and _y.dtype == np.float32) else np.float64
        y_pred: npt.NDArray[Any] = _oxlearn.knn_regress(
            np.ascontiguousarray(neigh_ind, dtype=np.int64),
            np.ascontiguousarray(_y, dtype=dtype),
            weights,
        )
        if self._y.ndim == 1:
            y_pred = y_pred.ravel()
        return y_pred
