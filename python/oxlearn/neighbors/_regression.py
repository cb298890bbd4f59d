"""k-nearest-neighbours regression with the search and the average in Rust."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.neighbors import KNeighborsRegressor as SklearnKNeighborsRegressor

from oxlearn import _oxlearn
from oxlearn.neighbors._base import (
    _NOT_FITTED,
    WeightsShapeError,
    _AcceleratedNeighborsMixin,
    _get_weights,
    log_path,
)


class KNeighborsRegressor(_AcceleratedNeighborsMixin, SklearnKNeighborsRegressor):  # type: ignore[misc]
    """Regression based on k-nearest neighbors, searched and averaged in Rust.

    A subclass of :class:`sklearn.neighbors.KNeighborsRegressor` (same parameters,
    constraints, fitted attributes, errors and answers) whose fit, search and average run
    in Rust for dense float32/float64 data, the metrics of
    ``oxlearn.neighbors._base.SUPPORTED_METRICS`` and ``p >= 1``; anything else runs
    scikit-learn's own code, and the ``oxlearn`` logger says at INFO level which path each
    call took and why.

    See :class:`sklearn.neighbors.KNeighborsRegressor` for the parameters and attributes.

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

    def predict(self, X: Any) -> Any:
        """Predict the target for the provided data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features), \
                or (n_queries, n_indexed) if metric == 'precomputed', or None
            Test samples. If `None`, predictions for all indexed points are
            returned; in this case, points are not considered their own
            neighbors.

        Returns
        -------
        y : ndarray of shape (n_queries,) or (n_queries, n_outputs)
            Target values.
        """
        query, reason = self._query_path(X)
        weights = None
        if reason is None:
            if self.weights is None or self.weights == "uniform":
                neigh_ind = self._kneighbors(query, self.n_neighbors, False)
            else:
                neigh_dist, neigh_ind = self._kneighbors(query, self.n_neighbors, True)
                try:
                    weights = _get_weights(neigh_dist, self.weights)
                except WeightsShapeError:
                    reason = "the weights callable returned an unexpected array"
                if neigh_dist.dtype == np.float32:
                    # (Precomputed float32 distances.) scikit-learn then sums the weights
                    # in float32, with NumPy's pairwise summation.
                    reason = "float32 distance weights"
        if reason is not None:
            if reason is not _NOT_FITTED:
                log_path(self, "predict", reason)
            return super().predict(X)
        log_path(self, "predict", None)
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
