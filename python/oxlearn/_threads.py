"""Default thread counts for the Rust kernels."""

from __future__ import annotations

import os


def _positive_int(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 1 else None


def default_threads() -> int:
    """Threads for a kernel when the caller did not choose (``n_jobs=None``).

    ``OXLEARN_NUM_THREADS`` (an integer >= 1) when set; else ``OMP_NUM_THREADS`` when it
    holds a positive integer (its first entry for a nested list), the variable that
    scikit-learn's OpenMP loops obey and that joblib's process workers set to their share
    of the cores, so that ``cross_val_score(..., n_jobs=2)`` does not run two processes of
    all-core kernels on the same cores; else every CPU this process may run on.
    """
    env = os.environ.get("OXLEARN_NUM_THREADS", "").strip()
    if env:
        value = _positive_int(env)
        if value is None:
            raise ValueError(f"OXLEARN_NUM_THREADS must be an integer >= 1, got {env!r}.")
        return value
    omp = _positive_int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip())
    if omp is not None:
        return omp
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


def resolve_n_jobs(n_jobs: int | None) -> int:
    """scikit-learn's ``n_jobs`` as the thread count the kernels take.

    ``None`` gives :func:`default_threads`; other values pass through (``-1`` is every
    core, ``-2`` all but one, as joblib counts; the kernels map them).
    """
    return default_threads() if n_jobs is None else int(n_jobs)
