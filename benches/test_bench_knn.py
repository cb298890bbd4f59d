"""Nearest-neighbour benchmarks: oxlearn and scikit-learn (brute force) in the same groups.

Groups: ``knn-digits-fold-fit-predict`` (one fit+predict on a digits fold),
``knn-digits-k1-9-sweep-4fold`` (the k = 1..9 four-fold sweep on digits),
``knn-random-20000x64-10000q`` (20,000 x 64 training rows and 10,000 queries, float32 and
float64) and ``knn-random-60000x784-float32-10000q``. Threads are pinned for
both libraries (conftest: threadpoolctl for scikit-learn's OpenMP/BLAS, ``n_jobs`` for ours).
Under ``--benchmark-disable`` (the test command) the data shrink and each runs once.

Peak memory is not visible to tracemalloc (the Rust heap), so ``python
benches/test_bench_knn.py --memory`` runs each random-data search in a fresh subprocess and
reports the peak resident set size (VmHWM, reset just before the search) minus the resident
size just before it: the extra memory the fit+kneighbors call needed.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from oxlearn import neighbors as oxn
from sklearn import neighbors as skn
from sklearn.datasets import load_digits
from sklearn.model_selection import KFold

LIBS = ["oxlearn", "sklearn"]


def make(lib, cls, threads, **kw):
    if lib == "oxlearn":
        return getattr(oxn, cls)(n_jobs=threads, **kw)
    return getattr(skn, cls)(algorithm="brute", n_jobs=threads, **kw)


def random_data(n_train, n_query, n_features, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n_train, n_features), dtype=np.float32).astype(dtype)
    Q = rng.random((n_query, n_features), dtype=np.float32).astype(dtype)
    return X, Q


def run(benchmark, smoke, fn, rounds):
    if smoke:
        return benchmark(fn)
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="knn-digits-fold-fit-predict")
@pytest.mark.parametrize("lib", LIBS)
def test_knn_digits_fold(benchmark, lib, threads, smoke):
    X, y = load_digits(return_X_y=True)
    train, test = next(iter(KFold(n_splits=4).split(X)))
    assert (len(train), len(test)) == (1347, 450)

    def fit_predict():
        return make(lib, "KNeighborsClassifier", threads).fit(X[train], y[train]).predict(X[test])

    pred = run(benchmark, smoke, fit_predict, rounds=50)
    assert np.mean(pred == y[test]) > 0.9


@pytest.mark.benchmark(group="knn-digits-k1-9-sweep-4fold")
@pytest.mark.parametrize("lib", LIBS)
def test_knn_digits_k_sweep(benchmark, lib, threads, smoke):
    X, y = load_digits(return_X_y=True)
    folds = list(KFold(n_splits=4).split(X))
    ks = range(1, 10)

    def sweep():
        if lib == "oxlearn":
            per_fold = [
                oxn.knn_sweep_scores(X[tr], y[tr], X[te], y[te], ks, n_jobs=threads)
                for tr, te in folds
            ]
        else:
            per_fold = [
                [
                    make(lib, "KNeighborsClassifier", threads, n_neighbors=k)
                    .fit(X[tr], y[tr])
                    .score(X[te], y[te])
                    for k in ks
                ]
                for tr, te in folds
            ]
        return np.mean(per_fold, axis=0)

    scores = run(benchmark, smoke, sweep, rounds=10)
    assert scores[0] == pytest.approx(0.9677, abs=0.005)


def _search(lib, threads, X, Q):
    est = make(lib, "NearestNeighbors", threads, n_neighbors=5).fit(X)
    return est.kneighbors(Q)


@pytest.mark.benchmark(group="knn-random-20000x64-10000q")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("lib", LIBS)
def test_knn_random_20000x64(benchmark, lib, dtype, threads, smoke):
    shape = (2000, 500) if smoke else (20000, 10000)
    X, Q = random_data(*shape, 64, dtype)
    _dist, ind = run(benchmark, smoke, lambda: _search(lib, threads, X, Q), rounds=5)
    assert ind.shape == (shape[1], 5)


@pytest.mark.benchmark(group="knn-random-60000x784-float32-10000q")
@pytest.mark.parametrize("lib", LIBS)
def test_knn_random_60000x784_float32(benchmark, lib, threads, smoke):
    shape = (3000, 200) if smoke else (60000, 10000)
    X, Q = random_data(*shape, 784, np.float32)
    _dist, ind = run(benchmark, smoke, lambda: _search(lib, threads, X, Q), rounds=3)
    assert ind.shape == (shape[1], 5)


# --- peak memory (subprocesses) ---------------------------------------------------------

_CHILD = r"""
import json, sys
import numpy as np
from threadpoolctl import threadpool_limits
sys.path.insert(0, {bench_dir!r})
import test_bench_knn as b

def status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError("no " + key)

lib, n_train, n_query, d, dtype, threads, warm = {args!r}
X, Q = b.random_data(n_train, n_query, d, np.dtype(dtype).type)
with threadpool_limits(threads):
    b._search(lib, 1, X[:50], Q[:5])  # import-time and first-call allocations
    if warm:
        # A search of the same shape on a subset, at the same thread count: every worker
        # thread exists and has made its one-time allocations (thread arenas, scikit-learn's
        # OpenMP and BLAS buffers, the gemm crate's per-thread packing slab).
        b._search(lib, threads, X[:2000], Q[:2000])
    # Reset the peak to the current resident size (Linux: "5" > clear_refs), so the peak
    # measured below is that of the search alone, not of building the data.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status_kib("VmRSS")
    b._search(lib, threads, X, Q)
print(json.dumps({{"lib": lib, "peak_extra_mib": (status_kib("VmHWM") - base) / 1024}}))
"""


def peak_memory(lib, n_train, n_query, d, dtype, threads, warm=False):
    """Growth of the peak RSS (MiB) during fit+kneighbors, measured in a fresh process.

    ``warm=False``: the first search at ``threads`` in the process (it includes one-time
    per-thread allocations); ``warm=True``: after a smaller search of the same shape at the
    same thread count (the memory a search needs once the threads exist).
    """
    from pathlib import Path

    code = _CHILD.format(
        bench_dir=str(Path(__file__).resolve().parent),
        args=(lib, n_train, n_query, d, dtype, threads, warm),
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_extra_mib"]


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_peak_memory_probe_runs(lib, threads, warm):
    # A smoke test of the probe itself; the figures in benches/README.md come from
    # `python benches/test_bench_knn.py --memory`.
    assert peak_memory(lib, 500, 100, 16, "float32", threads, warm) >= 0.0


if __name__ == "__main__" and "--memory" in sys.argv:
    import os

    t = int(os.environ.get("OXLEARN_BENCH_THREADS", "2"))
    cases = [
        ("c", 20000, 10000, 64, "float32"),
        ("c", 20000, 10000, 64, "float64"),
        ("d", 60000, 10000, 784, "float32"),
    ]
    # Each figure: the median of three fresh processes (allocator effects vary a little).
    print("peak extra RSS, MiB (median of 3): cold = first search, warm = after a warm-up")
    for name, n, q, d, dt in cases:
        for lib in LIBS:
            cold, warm = (
                float(np.median([peak_memory(lib, n, q, d, dt, t, w) for _ in range(3)]))
                for w in (False, True)
            )
            print(f"({name}) {n}x{d} {dt}, {q} queries, {lib}: cold +{cold:.1f}, warm +{warm:.1f}")
