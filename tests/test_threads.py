"""Default thread counts: OXLEARN_NUM_THREADS, then OMP_NUM_THREADS, then every CPU."""

import os

import pytest
from joblib import Parallel, delayed
from oxlearn._threads import default_threads, resolve_n_jobs


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def test_every_cpu_by_default(monkeypatch):
    monkeypatch.delenv("OXLEARN_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert default_threads() == _cpus()
    assert resolve_n_jobs(None) == _cpus()
    assert resolve_n_jobs(3) == 3
    assert resolve_n_jobs(-1) == -1


@pytest.mark.parametrize(("omp", "expected"), [("3", 3), ("2,1", 2), (" 5 ", 5)])
def test_omp_num_threads_is_obeyed(monkeypatch, omp, expected):
    monkeypatch.delenv("OXLEARN_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert default_threads() == expected
    assert resolve_n_jobs(None) == expected


@pytest.mark.parametrize("omp", ["", "0", "-2", "many"])
def test_unusable_omp_num_threads_is_ignored(monkeypatch, omp):
    # Not our variable: a value OpenMP would reject is not an error here.
    monkeypatch.delenv("OXLEARN_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert default_threads() == _cpus()


def test_oxlearn_num_threads_comes_first(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("OXLEARN_NUM_THREADS", "2")
    assert default_threads() == 2
    monkeypatch.setenv("OXLEARN_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match="OXLEARN_NUM_THREADS must be an integer >= 1"):
        default_threads()


def _in_worker():
    return default_threads(), os.environ.get("OMP_NUM_THREADS")


def test_joblib_process_workers_get_their_share(monkeypatch):
    # joblib's loky workers set OMP_NUM_THREADS to their share of the cores; our kernels
    # follow it there, so n_jobs=2 cross-validation does not run 2 x all-core kernels.
    monkeypatch.delenv("OXLEARN_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    results = Parallel(n_jobs=2, backend="loky")(delayed(_in_worker)() for _ in range(2))
    for threads, omp in results:
        assert omp is not None
        assert threads == int(omp)
