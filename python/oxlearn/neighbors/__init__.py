"""Nearest-neighbour estimators whose search, top-k selection and vote run in Rust.

Subclasses of :mod:`sklearn.neighbors`' k-nearest-neighbour estimators, with scikit-learn's
parameters, fitted attributes, errors and answers (ties included): the Rust search runs
where it gives those answers (dense float data, scikit-learn's brute force, the metrics of
``SUPPORTED_METRICS``), scikit-learn's own code everywhere else, and the ``oxlearn`` logger
says at INFO level which one ran. Plus :func:`knn_sweep_scores` to score many k from a
single search.
"""

from oxlearn.neighbors._classification import KNeighborsClassifier
from oxlearn.neighbors._regression import KNeighborsRegressor
from oxlearn.neighbors._sweep import knn_sweep_scores
from oxlearn.neighbors._unsupervised import NearestNeighbors

__all__ = [
    "KNeighborsClassifier",
    "KNeighborsRegressor",
    "NearestNeighbors",
    "knn_sweep_scores",
]
