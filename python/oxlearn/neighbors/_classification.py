"""k-nearest-neighbours classification with the search and the vote in Rust."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from sklearn.base import ClassifierMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from oxlearn import _oxlearn
from oxlearn._sklearn_compat import StrOptions, _fit_context
from oxlearn.neighbors._base import (
    WeightsType,
    _check_weights_not_all_zero,
    _get_weights,
    _KNeighborsMixin,
    _NeighborsBase,
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


class KNeighborsClassifier(_KNeighborsMixin, ClassifierMixin, _NeighborsBase):
    """Classifier implementing the k-nearest neighbors vote.

    A drop-in replacement for :class:`sklearn.neighbors.KNeighborsClassifier`: same
    parameters, fitted attributes, predictions and probabilities (ties included), with the
    brute-force search, the top-k selection and the vote compiled to Rust.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of neighbors to use by default for :meth:`kneighbors` queries.

    weights : {'uniform', 'distance'}, callable or None, default='uniform'
        Weight function used in prediction. 'uniform': all points in each neighborhood
        are weighted equally. 'distance': weight points by the inverse of their distance
        (a query at zero distance from training points is decided by those points
        alone). A callable takes the array of distances and returns weights of the same
        shape.

    algorithm : {'auto', 'ball_tree', 'kd_tree', 'brute'}, default='auto'
        Accepted for compatibility; the search is always an exact brute-force search,
        which gives the same neighbours.

    leaf_size : int, default=30
        Accepted for compatibility (trees are not built).

    p : float, default=2
        Power parameter for the Minkowski metric (``p >= 1``; ``np.inf`` gives the
        Chebyshev distance).

    metric : str, default='minkowski'
        One of 'minkowski', 'euclidean', 'l2', 'sqeuclidean', 'manhattan', 'cityblock',
        'l1', 'chebyshev', 'cosine', 'precomputed'. Any other value raises an
        ``InvalidParameterError`` naming these.

    metric_params : dict, default=None
        Additional keyword arguments for the metric (``p`` and ``w`` for 'minkowski').

    n_jobs : int, default=None
        Number of threads of the search: None uses every core (or
        ``OXLEARN_NUM_THREADS``, else ``OMP_NUM_THREADS``, when set, as joblib's process
        workers set it), -1 every core, 1 a single thread. Results do not depend on it.

    Attributes
    ----------
    classes_ : array of shape (n_classes,) or list of such arrays
        Class labels known to the classifier (one array per output when y is 2-D).

    effective_metric_ : str
        The distance metric used (``'minkowski'`` with p=2 becomes ``'euclidean'``, etc.).

    effective_metric_params_ : dict
        Additional keyword arguments for the metric function.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when X has string column names.

    n_samples_fit_ : int
        Number of samples in the fitted data.

    outputs_2d_ : bool
        False when y's shape is (n_samples, ) or (n_samples, 1) during fit, True otherwise.

    See Also
    --------
    KNeighborsRegressor : Regression based on k-nearest neighbors.
    NearestNeighbors : Unsupervised learner for implementing neighbor searches.
    sklearn.neighbors.KNeighborsClassifier : The scikit-learn estimator reproduced here.

    Notes
    -----
    Neighbours at equal distance are kept and ordered exactly as scikit-learn's
    brute-force search does with one thread, and a tied vote goes to the smallest class,
    whatever ``n_jobs`` is. float32 data is searched in float32 (scikit-learn accumulates
    in float64), so near-ties in float32 data may resolve differently.

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

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_NeighborsBase._parameter_constraints
    }
    _parameter_constraints.pop("radius")
    _parameter_constraints.update(
        {"weights": [StrOptions({"uniform", "distance"}), callable, None]}
    )

    classes_: Any
    outputs_2d_: bool

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

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: Any, y: Any) -> KNeighborsClassifier:
        """Fit the k-nearest neighbors classifier from the training dataset.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, n_samples) if metric='precomputed'
            Training data.

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values.

        Returns
        -------
        self : KNeighborsClassifier
            The fitted k-nearest neighbors classifier.
        """
        self._fit(X, y)
        return self

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

    def _neighbors_and_weights(
        self, X: Any
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64] | None]:
        if self.weights in (None, "uniform"):
            return self.kneighbors(X, return_distance=False), None
        neigh_dist, neigh_ind = self.kneighbors(X)
        weights = _get_weights(neigh_dist, self.weights)
        if weights is not None:
            _check_weights_not_all_zero(weights)
        return neigh_ind, weights

    def _encoded_targets(self) -> tuple[npt.NDArray[np.int64], list[Any]]:
        classes = self.classes_ if self.outputs_2d_ else [self.classes_]
        y2d = self._y if self._y.ndim == 2 else self._y.reshape((-1, 1))
        return np.ascontiguousarray(y2d, dtype=np.int64), classes

    def predict(self, X: Any) -> npt.NDArray[Any]:
        """Predict the class labels for the provided data.

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
            Class labels for each data sample.
        """
        if not hasattr(self, "_fit_method"):
            check_is_fitted(self, "_fit_method")
        neigh_ind, weights = self._neighbors_and_weights(X)
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
        X : array-like of shape (n_queries, n_features), \
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
        if not hasattr(self, "_fit_method"):
            check_is_fitted(self, "_fit_method")
        neigh_ind, weights = self._neighbors_and_weights(X)
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

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Return the mean accuracy on the given test data and labels.

        In multi-label classification, this is the subset accuracy.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or None
            Test samples. If `None`, predictions for all indexed points are
            used; in this case, points are not considered their own
            neighbors (a leave-one-out estimate).

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            True labels for `X`.

        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Mean accuracy of ``self.predict(X)`` w.r.t. `y`.
        """
        return float(super().score(X, y, sample_weight))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.input_tags.pairwise = self.metric == "precomputed"
        return tags
