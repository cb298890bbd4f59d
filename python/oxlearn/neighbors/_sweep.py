"""Accuracy of a k-nearest-neighbours classifier for many k from a single search."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import clone
from sklearn.metrics import accuracy_score

from oxlearn import _oxlearn
from oxlearn.neighbors._base import (
    WeightsShapeError,
    WeightsType,
    _check_weights_not_all_zero,
    _get_weights,
    log_path,
)
from oxlearn.neighbors._classification import KNeighborsClassifier


def knn_sweep_scores(
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    n_neighbors: Iterable[int],
    *,
    weights: WeightsType = "uniform",
    algorithm: str = "auto",
    metric: str = "minkowski",
    p: float = 2,
    metric_params: dict[str, Any] | None = None,
    n_jobs: int | None = None,
    sample_weight: Any = None,
) -> npt.NDArray[np.float64]:
    """Test accuracy of k-nearest-neighbour classifiers for several k from one search.

    For each ``k`` of ``n_neighbors`` the result equals, exactly,
    ``KNeighborsClassifier(n_neighbors=k, weights=weights, algorithm=algorithm,
    metric=metric, p=p, metric_params=metric_params, n_jobs=n_jobs).fit(X_train,
    y_train).score(X_test, y_test, sample_weight=sample_weight)`` (and so scikit-learn's
    answer, ties included), but the distances are computed once: a single pass over the
    training data keeps, for every query, one heap per ``k`` fed in training order, which
    reproduces each ``k``'s own selection of tied neighbours.

    Parameters
    ----------
    X_train : array-like of shape (n_samples, n_features)
        Training data (or a square distance matrix when ``metric='precomputed'``).

    y_train : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Training labels.

    X_test : array-like of shape (n_queries, n_features)
        Test data (or distances to the training samples when ``metric='precomputed'``).

    y_test : array-like of shape (n_queries,) or (n_queries, n_outputs)
        True labels of ``X_test``.

    n_neighbors : iterable of int
        The values of k to score, each at least 1 and at most ``n_samples``.

    weights : {'uniform', 'distance'}, callable or None, default='uniform'
        Weight function used in prediction, as in :class:`KNeighborsClassifier`.

    algorithm : {'auto', 'ball_tree', 'kd_tree', 'brute'}, default='auto'
        As in :class:`KNeighborsClassifier`. Where scikit-learn's rule searches with a
        tree (low-dimensional data, or a tree asked for), or anything else needs
        scikit-learn's code, each ``k`` is scored by its own estimator instead.

    metric : str, default='minkowski'
        Distance metric, as in :class:`KNeighborsClassifier`.

    p : float, default=2
        Power parameter for the Minkowski metric.

    metric_params : dict, default=None
        Additional keyword arguments for the metric.

    n_jobs : int, default=None
        Number of threads of the search: None uses every core (or
        ``OXLEARN_NUM_THREADS``, else ``OMP_NUM_THREADS``, when set, as joblib's process
        workers set it), -1 every core, 1 a single thread. Results do not depend on it.

    sample_weight : array-like of shape (n_queries,), default=None
        Weights of the test samples in the accuracy (as in ``score``).

    Returns
    -------
    scores : ndarray of shape (len(n_neighbors),), dtype float64
        The accuracy for each k, in the order given.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from oxlearn.neighbors import knn_sweep_scores
    >>> X, y = load_digits(return_X_y=True)
    >>> scores = knn_sweep_scores(X[:1347], y[:1347], X[1347:], y[1347:], range(1, 4))
    >>> scores.shape
    (3,)
    >>> bool(scores[0] > 0.9)
    True
    """
    ks = [int(k) if isinstance(k, Integral) else k for k in n_neighbors]
    if not ks:
        raise ValueError("n_neighbors must hold at least one value of k, got none.")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, Integral):
            raise TypeError(
                f"Every value of n_neighbors must be an integer, got {k!r} of type "
                f"{type(k).__name__}."
            )
        if k < 1:
            raise ValueError(f"Expected n_neighbors > 0. Got {k}")
    estimator = KNeighborsClassifier(
        n_neighbors=max(ks),
        weights=weights,
        algorithm=algorithm,
        metric=metric,
        p=p,
        metric_params=metric_params,
        n_jobs=n_jobs,
    ).fit(X_train, y_train)
    n_samples_fit = estimator.n_samples_fit_
    if max(ks) > n_samples_fit:
        raise ValueError(
            "Expected n_neighbors <= n_samples_fit, but "
            f"n_neighbors = {max(ks)}, n_samples_fit = {n_samples_fit}, "
            f"n_samples = {n_samples_fit}"
        )
    X_query, reason = estimator._query_path(X_test)
    results: dict[int, tuple[npt.NDArray[Any], npt.NDArray[np.intp]]] = {}
    unique_ks = sorted(set(ks))
    if reason is None:
        results = dict(zip(unique_ks, estimator._search(X_query, unique_ks), strict=True))
        weights_by_k = {}
        for k in unique_ks:
            try:
                weights_by_k[k] = _get_weights(results[k][0], weights)
            except WeightsShapeError:
                reason = "the weights callable returned an unexpected array"
                break
    if reason is not None:
        # scikit-learn's estimator for each k (its `_fit_method` depends on k).
        log_path(estimator, "knn_sweep_scores", reason)
        return np.array(
            [
                clone(estimator)
                .set_params(n_neighbors=k)
                .fit(X_train, y_train)
                .score(X_test, y_test, sample_weight=sample_weight)
                for k in ks
            ],
            dtype=np.float64,
        )
    log_path(estimator, "knn_sweep_scores", None)
    y2d, classes = estimator._encoded_targets()
    n_classes = [len(c) for c in classes]
    score_by_k: dict[int, float] = {}
    # scikit-learn's `accuracy_score` validates the targets on every call, which costs more
    # than the search itself; y_test is the same for every k and the predictions differ
    # only in their values, so the first k is scored by it (with every check and error it
    # has) and, for one output, the others by its own formula for that case:
    # np.average(y_true == y_pred, weights=sample_weight).
    y_true_1d = np.asarray(y_test) if not estimator.outputs_2d_ else None
    if y_true_1d is not None and y_true_1d.ndim != 1:
        y_true_1d = None
    for k in unique_ks:
        ind = results[k][1]
        w = weights_by_k[k]
        if w is not None:
            _check_weights_not_all_zero(w)
        pred = _oxlearn.knn_classify(np.ascontiguousarray(ind, dtype=np.int64), y2d, n_classes, w)
        y_pred = np.empty(pred.shape, dtype=classes[0].dtype)
        for o, classes_o in enumerate(classes):
            y_pred[:, o] = classes_o.take(pred[:, o])
        if not estimator.outputs_2d_:
            y_pred = y_pred.ravel()
        if score_by_k and y_true_1d is not None:
            score_by_k[k] = float(np.average(y_true_1d == y_pred, weights=sample_weight))
        else:
            score_by_k[k] = float(accuracy_score(y_test, y_pred, sample_weight=sample_weight))
    return np.array([score_by_k[k] for k in ks], dtype=np.float64)
