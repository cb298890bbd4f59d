"""The ``oxlearn`` logger says, at INFO level, which path each fit and query took and why."""

import logging

import numpy as np
import pytest
import scipy.sparse as sp
from oxlearn.neighbors import (
    KNeighborsClassifier,
    KNeighborsRegressor,
    NearestNeighbors,
    knn_sweep_scores,
)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 20))
    return X, rng.integers(0, 3, size=60), rng.normal(size=(5, 20))


def messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "oxlearn"]


def test_accelerated_calls_are_logged(data, caplog):
    X, y, Xq = data
    caplog.set_level(logging.INFO, logger="oxlearn")
    clf = KNeighborsClassifier().fit(X, y)
    clf.predict(Xq)
    clf.predict_proba(Xq)
    clf.kneighbors(Xq)
    clf.score(Xq, y[:5])
    KNeighborsRegressor().fit(X, y).predict(Xq)
    nn = NearestNeighbors(radius=5.0).fit(X)
    nn.radius_neighbors(Xq)
    nn.kneighbors_graph(Xq)
    # (score logs its predict; the graphs log the search they run.)
    assert messages(caplog) == [
        "KNeighborsClassifier.fit: accelerated (Rust)",
        "KNeighborsClassifier.predict: accelerated (Rust)",
        "KNeighborsClassifier.predict_proba: accelerated (Rust)",
        "KNeighborsClassifier.kneighbors: accelerated (Rust)",
        "KNeighborsClassifier.predict: accelerated (Rust)",
        "KNeighborsRegressor.fit: accelerated (Rust)",
        "KNeighborsRegressor.predict: accelerated (Rust)",
        "NearestNeighbors.fit: accelerated (Rust)",
        "NearestNeighbors.radius_neighbors: accelerated (Rust)",
        "NearestNeighbors.kneighbors: accelerated (Rust)",
    ]


def test_fallbacks_say_why(data, caplog):
    X, y, Xq = data
    caplog.set_level(logging.INFO, logger="oxlearn")
    clf = KNeighborsClassifier(metric="braycurtis").fit(X, y)
    clf.predict(Xq)
    assert messages(caplog)[:2] == [
        "KNeighborsClassifier.fit: scikit-learn fallback (metric='braycurtis' is not accelerated)",
        "KNeighborsClassifier.predict: scikit-learn fallback "
        "(metric='braycurtis' is not accelerated)",
    ]
    caplog.clear()
    nn = NearestNeighbors().fit(X)
    nn.kneighbors(Xq.astype(np.float32))
    nn.kneighbors(sp.csr_array(Xq))
    NearestNeighbors().fit(X[:, :3])
    with pytest.warns(UserWarning, match="Mind that for 0 < p < 1"):
        NearestNeighbors(p=0.5).fit(X)
    NearestNeighbors().fit(X.astype(int))
    assert messages(caplog) == [
        "NearestNeighbors.fit: accelerated (Rust)",
        "NearestNeighbors.kneighbors: scikit-learn fallback "
        "(query of dtype float32 on fit data of dtype float64)",
        "NearestNeighbors.kneighbors: scikit-learn fallback (sparse query)",
        "NearestNeighbors.fit: scikit-learn fallback "
        "(algorithm='auto' picks a tree for 3 features)",
        "NearestNeighbors.fit: scikit-learn fallback (p=0.5 is not accelerated (only p >= 1))",
        "NearestNeighbors.fit: scikit-learn fallback (X of dtype int64 is not accelerated)",
    ]


def test_sweep_is_logged(data, caplog):
    X, y, Xq = data
    caplog.set_level(logging.INFO, logger="oxlearn")
    knn_sweep_scores(X, y, Xq, y[:5], [1, 3])
    assert messages(caplog)[-1] == "KNeighborsClassifier.knn_sweep_scores: accelerated (Rust)"


def test_silent_below_info(data, caplog):
    X, y, Xq = data
    caplog.set_level(logging.WARNING, logger="oxlearn")
    KNeighborsClassifier(metric="braycurtis").fit(X, y).predict(Xq)
    KNeighborsClassifier().fit(X, y).predict(Xq)
    assert messages(caplog) == []
