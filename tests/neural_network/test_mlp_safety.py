"""Inputs that used to panic in the binding (a PanicException that ``except Exception``
misses): aliased or read-only weight arrays, and concurrent fits of one estimator."""

from __future__ import annotations

import copy
import pickle
import threading
import warnings

import numpy as np
import pytest
from oxlearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor as SkMLPRegressor


def _data(n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 1))
    return X, X[:, 0] * 0.5 + rng.normal(scale=0.1, size=n)


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore", ConvergenceWarning)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_partial_fit_with_aliased_coefs(solver: str) -> None:
    X, y = _data()
    for cls in (SkMLPRegressor, MLPRegressor):
        m = cls(hidden_layer_sizes=(1,), solver=solver, max_iter=5, random_state=0).fit(X, y)
        m.coefs_[1] = m.coefs_[0]  # both (1, 1): scikit-learn accepts this
        m.intercepts_[1] = m.intercepts_[0]
        m.partial_fit(X, y)
        assert all(np.isfinite(c).all() for c in m.coefs_)
    m = MLPRegressor(hidden_layer_sizes=(1,), solver=solver, max_iter=5, random_state=0).fit(X, y)
    m.coefs_[1] = m.coefs_[0]
    m.fit(X, y)  # a fresh fit reinitialises, but must not trip on the aliasing either
    m.coefs_[1] = m.coefs_[0]
    m.set_params(warm_start=True).fit(X, y)
    assert m.predict(X).shape == (50,)


def test_partial_fit_with_coefs_sharing_memory_with_x_and_each_other() -> None:
    X, y = _data()
    m = MLPRegressor(hidden_layer_sizes=(1,), max_iter=5, random_state=0).fit(X, y)
    buf = np.zeros(4)
    m.coefs_ = [buf[:1].reshape(1, 1), buf[:1].reshape(1, 1)]
    m.intercepts_ = [buf[1:2], buf[1:2]]
    m.partial_fit(X, y)
    Xc = np.ascontiguousarray(m.coefs_[0].repeat(3, axis=0))
    m.coefs_[0] = Xc[:1]  # the weights are a view of X
    m.partial_fit(Xc, np.ones(3))
    # Optimiser state shared with the weights.
    m._optimizer.first[0] = m.coefs_[0]
    m.partial_fit(X, y)
    assert all(np.isfinite(c).all() for c in m.coefs_)


def test_partial_fit_with_read_only_coefs() -> None:
    X, y = _data()
    m = MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0).fit(X, y)
    for c in m.coefs_:
        c.flags.writeable = False
    m.partial_fit(X, y)
    m.coefs_[0] = np.broadcast_to(m.coefs_[0][:1], m.coefs_[0].shape)
    m.coefs_[0] = np.ascontiguousarray(m.coefs_[0])
    m.coefs_[0].flags.writeable = False
    m.partial_fit(X, y)
    assert all(np.isfinite(c).all() for c in m.coefs_)


def test_aliasing_does_not_change_results_without_aliasing() -> None:
    """The de-aliasing copies only arrays that need it: plain fits keep their bits."""
    X, y = _data(200)
    a = MLPRegressor(hidden_layer_sizes=(7,), max_iter=3, random_state=1).fit(X, y)
    b = MLPRegressor(hidden_layer_sizes=(7,), max_iter=3, random_state=1).fit(X, y)
    for ca, cb in zip(a.coefs_, b.coefs_, strict=True):
        np.testing.assert_array_equal(ca, cb)
    coefs = list(a.coefs_)
    a.partial_fit(X, y)
    assert all(c is d for c, d in zip(coefs, a.coefs_, strict=True)), "trained in place"


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_concurrent_fits_of_one_estimator(method: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] > 0).astype(int)
    m = MLPClassifier(hidden_layer_sizes=(16,), max_iter=20, random_state=0)
    m.fit(X, y)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work() -> None:
        try:
            start.wait()
            for _ in range(3):
                if method == "fit":
                    m.fit(X, y)
                else:
                    m.partial_fit(X, y)
        except BaseException as e:  # a PanicException is a BaseException
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Serialised: the result is that of some sequence of whole calls.
    assert all(np.isfinite(c).all() for c in m.coefs_)
    if method == "fit":
        ref = MLPClassifier(hidden_layer_sizes=(16,), max_iter=20, random_state=0).fit(X, y)
        for c, r in zip(m.coefs_, ref.coefs_, strict=True):
            np.testing.assert_array_equal(c, r)


def test_the_fit_lock_survives_pickle_clone_and_copy() -> None:
    X, y = _data()
    m = MLPRegressor(hidden_layer_sizes=(2,), max_iter=3, random_state=0).fit(X, y)
    assert "lock" not in " ".join(vars(m))
    for other in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m), clone(m)):
        other.fit(X, y)
        other.partial_fit(X, y)


def test_reading_the_weights_while_a_fit_trains_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-epoch callback runs while the kernel holds the weights for writing: a
    predict (or a neighbour search on the weights) then raises ValueError, not a panic."""
    from oxlearn import _oxlearn
    from oxlearn.neural_network import _multilayer_perceptron as mod

    X, y = _data()
    m = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0, verbose=True)
    seen: list[BaseException] = []

    def callback(n_iter: int, loss: float, score: float | None) -> None:
        for call in (
            lambda: m.predict(X),
            lambda: _oxlearn.kneighbors(m.coefs_[0], m.coefs_[0], [1], "euclidean", 2.0, None, 1),
        ):
            try:
                call()
            except BaseException as e:  # a PanicException is a BaseException
                seen.append(e)

    monkeypatch.setattr(mod, "_print_progress", callback)
    m.fit(X, y)
    assert len(seen) == 4
    assert all(type(e) is ValueError for e in seen), seen


def test_unhashable_subclasses_still_fit() -> None:
    class Eq(MLPRegressor):
        def __eq__(self, other: object) -> bool:
            return self is other

    X, y = _data()
    m = Eq(hidden_layer_sizes=(2,), max_iter=3, random_state=0)
    m.fit(X, y)
    m.partial_fit(X, y)
