"""k-nearest-neighbours classification with the search and the vote in Rust."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.exceptions import DataConversionWarning
from sklearn.neighbors import KNeighborsClassifier as SklearnKNeighborsClassifier
from sklearn.utils.multiclass import check_classification_targets

from oxlearn import _oxlearn
from oxlearn.neighbors._base import (
    _NOT_FITTED,
    WeightsShapeError,
    _AcceleratedNeighborsMixin,
    _check_weights_not_all_zero,
    _get_weights,
    log_path,
)


def _unique_inverse(labels: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[np.intp]]:
    """``np.unique(labels, return_inverse=True)`` for a 1-D array, the same arrays.

    Small non-negative integer labels (the usual class codes) are counted with
    ``np.bincount`` instead of sorted, which costs a fraction of a small fit.
    """
    if labels.dtype.kind == "i" or (labels.dtype.kind == "u" and labels.dtype.itemsize < 8):
        n = labels.shape[0]
        if n and labels.min() >= 0 and labels.max() < 4 * n + 1024:
            present = np.flatnonzero(np.bincount(labels))
            lookup = np.zeros(present[-1] + 1, dtype=np.intp)
            lookup[present] = np.arange(present.shape[0], dtype=np.intp)
            return present.astype(labels.dtype), lookup[labels]
    classes, inverse = np.unique(labels, return_inverse=True)
    return classes, inverse


class KNeighborsClassifier(_AcceleratedNeighborsMixin, SklearnKNeighborsClassifier):  # type: ignore[misc]
    """Classifier implementing the k-nearest neighbors vote, searched and voted in Rust.

    A subclass of :class:`sklearn.neighbors.KNeighborsClassifier` (same parameters,
    constraints, fitted attributes, errors and answers, ties included) whose fit, search
    and vote run in Rust for dense float32/float64 data, the metrics of
    ``oxlearn.neighbors._base.SUPPORTED_METRICS`` and ``p >= 1``. Anything else (other
    metrics, callables, ``p < 1``, sparse or integer data, a query of another dtype than the
    fit data, ...) runs scikit-learn's own code; the ``oxlearn`` logger says at INFO level
    which path each call took and why.

    ``n_jobs`` on the Rust path is the number of threads of the search: None uses every
    core (or ``OXLEARN_NUM_THREADS``, else ``OMP_NUM_THREADS``, when set), -1 every core.
    Results do not depend on it.

    See :class:`sklearn.neighbors.KNeighborsClassifier` for the parameters and attributes.

    Examples
    --------
    >>> X = [[0], [1], [2], [3]]
    >>> y = [0, 0, 1, 1]
    >>> from oxlearn.neighbors import KNeighborsClassifier
    >>> neigh = KNeighborsClassifier(n_neighbors=3)
    >>> neigh.fit(X, y)
    KNeighborsClassifier(n_neighbors=3)
    >>> print(neigh.predict([[1.1]]))
    [0]
    >>> print(neigh.predict_proba([[0.9]]))
    [[0.666... 0.333...]]
    """

    classes_: Any
    outputs_2d_: bool

    def _fit_targets(self, y: Any) -> None:
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
            if y.ndim != 1:
                warnings.warn(
                    (
                        "A column-vector y was passed when a "
                        "1d array was expected. Please change "
                        "the shape of y to (n_samples,), for "
                        "example using ravel()."
                    ),
                    DataConversionWarning,
                    stacklevel=4,
                )
            self.outputs_2d_ = False
            y = y.reshape((-1, 1))
        else:
            self.outputs_2d_ = True
        # Integer labels of one output are always valid targets ("binary" or "multiclass"):
        # only the warning of `check_classification_targets` can apply, checked below.
        int_labels = y.shape[1] == 1 and y.dtype.kind in "iu"
        if not int_labels:
            check_classification_targets(y)
        classes = []
        self._y = np.empty(y.shape, dtype=np.intp)
        for k in range(self._y.shape[1]):
            classes_k, self._y[:, k] = _unique_inverse(y[:, k])
            classes.append(classes_k)
        if int_labels:
            n_samples, n_classes = y.shape[0], classes[0].shape[0]
            if n_classes > 2 and n_samples > 20 and n_classes > round(0.5 * n_samples):
                warnings.warn(
                    "The number of unique classes is greater than 50% of the number "
                    "of samples. `y` could represent a regression problem, not a "
                    "classification problem.",
                    UserWarning,
                    stacklevel=4,
                )
        if not self.outputs_2d_:
            self.classes_ = classes[0]
            self._y = self._y.ravel()
        else:
            self.classes_ = classes

    def _encoded_targets(self) -> tuple[npt.NDArray[np.int64], list[Any]]:
        classes = self.classes_ if self.outputs_2d_ else [self.classes_]
        y2d = self._y if self._y.ndim == 2 else self._y.reshape((-1, 1))
        return np.ascontiguousarray(y2d, dtype=np.int64), classes

    def _neighbors_and_weights(
        self, method: str, X: Any
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64] | None] | None:
        """Return the neighbours and weights of a prediction on the Rust path, or None.

        None when the fit, the query or a callable ``weights`` (returning an array of
        another shape) needs scikit-learn's prediction instead; the decision is logged.
        """
        query, reason = self._query_path(X)
        if reason is None:
            n_neighbors = self.n_neighbors
            if self.weights is None or self.weights == "uniform":
                neigh_ind = self._kneighbors(query, n_neighbors, False)
                weights = None
            else:
                neigh_dist, neigh_ind = self._kneighbors(query, n_neighbors, True)
                try:
                    weights = _get_weights(neigh_dist, self.weights)
                except WeightsShapeError:
                    reason = "the weights callable returned an unexpected array"
                else:
                    if weights is not None:
                        _check_weights_not_all_zero(weights)
        if reason is not None:
            if reason is not _NOT_FITTED:
                log_path(self, method, reason)
            return None
        log_path(self, method, None)
        return neigh_ind, weights

    def predict(self, X: Any) -> Any:
        """Predict the class labels for the provided data.

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
            Class labels for each data sample.
        """
        found = self._neighbors_and_weights("predict", X)
        if found is None:
            return super().predict(X)
        neigh_ind, weights = found
        y2d, classes = self._encoded_targets()
        pred = _oxlearn.knn_classify(
            np.ascontiguousarray(neigh_ind, dtype=np.int64),
            y2d,
            [len(c) for c in classes],
            weights,
        )
        n_queries = neigh_ind.shape[0]
        y_pred = np.empty((n_queries, len(classes)), dtype=classes[0].dtype)
        for k, classes_k in enumerate(classes):
            y_pred[:, k] = classes_k.take(pred[:, k])
        if not self.outputs_2d_:
            y_pred = y_pred.ravel()
        return y_pred

    def predict_proba(self, X: Any) -> Any:
        """Return probability estimates for the test data X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features), \
                or (n_queries, n_indexed) if metric == 'precomputed', or None
            Test samples. If `None`, predictions for all indexed points are
            returned; in this case, points are not considered their own
            neighbors.

        Returns
        -------
        p : ndarray of shape (n_queries, n_classes), or a list of n_outputs \
                of such arrays if n_outputs > 1.
            The class probabilities of the input samples. Classes are ordered
            by lexicographic order.
        """
        found = self._neighbors_and_weights("predict_proba", X)
        if found is None:
            return super().predict_proba(X)
        neigh_ind, weights = found
        y2d, classes = self._encoded_targets()
        probabilities: list[npt.NDArray[np.float64]] = _oxlearn.knn_classify_proba(
            np.ascontiguousarray(neigh_ind, dtype=np.int64),
            y2d,
            [len(c) for c in classes],
            weights,
        )
        if not self.outputs_2d_:
            return probabilities[0]
        return probabilities
