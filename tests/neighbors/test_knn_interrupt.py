"""Ctrl-C during a long neighbour search: KeyboardInterrupt within half a second."""

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from oxlearn.neighbors import KNeighborsClassifier, NearestNeighbors

# Searches that take several seconds on two cores (the GEMM of 20,000 x 40,000 x 256
# multiply-adds, float32 screened and float64), far longer than the wait before the signal.
N_TRAIN, N_QUERY, N_FEATURES = 40_000, 20_000, 256


def _data(dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.random((N_TRAIN, N_FEATURES)).astype(dtype)
    Q = rng.random((N_QUERY, N_FEATURES)).astype(dtype)
    y = rng.integers(0, 3, N_TRAIN)
    return X, Q, y


CALLS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], Any]] = {
    "kneighbors": lambda X, Q, y: NearestNeighbors(n_neighbors=5).fit(X).kneighbors(Q),
    "radius_neighbors": lambda X, Q, y: NearestNeighbors(radius=1.0).fit(X).radius_neighbors(Q),
    "predict": lambda X, Q, y: KNeighborsClassifier().fit(X, y).predict(Q),
    "manhattan": lambda X, Q, y: NearestNeighbors(metric="manhattan").fit(X).kneighbors(Q[:2000]),
}


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("call", list(CALLS))
def test_sigint_stops_a_search_promptly(
    dtype: Any, call: str, interrupt_after: Callable[[float], threading.Thread]
) -> None:
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    X, Q, y = _data(dtype)
    wait = 0.5
    thread = interrupt_after(wait)
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        CALLS[call](X, Q, y)
    elapsed = time.perf_counter() - start
    thread.join()
    # The signal came `wait` seconds in; the search must stop within about half a second of
    # it (the whole search takes several seconds).
    assert elapsed < wait + 0.5, f"{call} took {elapsed:.2f} s to stop"

    # Nothing is left behind: the next search runs and gives the full answer.
    nn = NearestNeighbors(n_neighbors=2).fit(X[:100])
    dist, ind = nn.kneighbors(X[:3])
    assert ind[:, 0].tolist() == [0, 1, 2]
    assert np.all(dist[:, 0] == 0)
