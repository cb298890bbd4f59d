"""Unsupervised nearest-neighbour searches (k nearest and within a radius) in Rust."""

from __future__ import annotations

from sklearn.neighbors import NearestNeighbors as SklearnNearestNeighbors

from oxlearn.neighbors._base import _AcceleratedNeighborsMixin, _AcceleratedRadiusMixin


class NearestNeighbors(
    _AcceleratedRadiusMixin,
    _AcceleratedNeighborsMixin,
    SklearnNearestNeighbors,  # type: ignore[misc]
):
    """Unsupervised learner for implementing neighbor searches, searched in Rust.

    A subclass of :class:`sklearn.neighbors.NearestNeighbors` (same parameters,
    constraints, fitted attributes, errors and answers) whose searches (k nearest, within
    a radius, and scikit-learn's sparse graphs built on them) run in Rust for dense
    float32/float64 data, the metrics of ``oxlearn.neighbors._base.SUPPORTED_METRICS`` and
    ``p >= 1``; anything else runs scikit-learn's own code, and the ``oxlearn`` logger says
    at INFO level which path each call took and why.

    See :class:`sklearn.neighbors.NearestNeighbors` for the parameters and attributes.

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
