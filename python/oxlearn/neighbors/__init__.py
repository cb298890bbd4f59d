"""Nearest-neighbour estimators whose search, top-k selection and vote run in Rust.

Drop-in replacements for :mod:`sklearn.neighbors`' brute-force k-nearest-neighbour
estimators, with scikit-learn's parameters, fitted attributes, errors and answers (ties
included), plus :func:`knn_sweep_scores` to score many k from a single search.
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
