"""Unsupervised nearest-neighbour searches (k nearest and within a radius) in Rust."""

from __future__ import annotations

from typing import Any

from oxlearn._sklearn_compat import _fit_context
from oxlearn.neighbors._base import _KNeighborsMixin, _NeighborsBase, _RadiusNeighborsMixin


class NearestNeighbors(_KNeighborsMixin, _RadiusNeighborsMixin, _NeighborsBase):
    """Unsupervised learner for implementing neighbor searches.

    A drop-in replacement for :class:`sklearn.neighbors.NearestNeighbors` whose searches
    (k nearest, within a radius, and their sparse graphs) run in Rust.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbors to use by default for :meth:`kneighbors` queries.

    radius : float, default=1.0
        Range of parameter space to use by default for :meth:`radius_neighbors`
        queries.

    algorithm : {'auto', 'ball_tree', 'kd_tree', 'brute'}, default='auto'
        Accepted for compatibility; the exact brute-force search is always used.

    leaf_size : int, default=30
        Accepted for compatibility.

    metric : str, default='minkowski'
        One of 'minkowski', 'euclidean', 'l2', 'sqeuclidean', 'manhattan', 'cityblock',
        'l1', 'chebyshev', 'cosine', 'precomputed'.

    p : float, default=2
        Power parameter for the Minkowski metric (``p >= 1``).

    metric_params : dict, default=None
        Additional keyword arguments for the metric (``p`` and ``w`` for 'minkowski').

    n_jobs : int, default=None
        Number of threads of the search: None uses every core (or
        ``OXLEARN_NUM_THREADS``, else ``OMP_NUM_THREADS``, when set, as joblib's process
        workers set it), -1 every core, 1 a single thread. Results do not depend on it.

    Attributes
    ----------
    effective_metric_ : str
        Metric used to compute distances to neighbors.

    effective_metric_params_ : dict
        Parameters for the metric used to compute distances to neighbors.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when X has string column names.

    n_samples_fit_ : int
        Number of samples in the fitted data.

    See Also
    --------
    KNeighborsClassifier : Classifier implementing the k-nearest neighbors vote.
    KNeighborsRegressor : Regression based on k-nearest neighbors.
    sklearn.neighbors.NearestNeighbors : The scikit-learn estimator reproduced here.

    Examples
    --------
    >>> import numpy as np
    >>> from oxlearn.neighbors import NearestNeighbors
    >>> samples = [[0, 0, 2], [1, 0, 0], [0, 0, 1]]
    >>> neigh = NearestNeighbors(n_neighbors=2, radius=0.4)
    >>> neigh.fit(samples)
    NearestNeighbors(...)
    >>> neigh.kneighbors([[0, 0, 1.3]], 2, return_distance=False)
    array([[2, 0]]...)
    >>> nbrs = neigh.radius_neighbors(
    ...    [[0, 0, 1.3]], 0.4, return_distance=False
    ... )
    >>> np.asarray(nbrs[0][0])
    array(2)
    """

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
    ) -> None:
        self.n_neighbors = n_neighbors
        self.radius = radius
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.metric = metric
        self.p = p
        self.metric_params = metric_params
        self.n_jobs = n_jobs

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: Any, y: Any = None) -> NearestNeighbors:
        """Fit the nearest neighbors estimator from the training dataset.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, n_samples) if metric='precomputed'
            Training data.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : NearestNeighbors
            The fitted nearest neighbors estimator.
        """
        self._fit(X)
        return self
