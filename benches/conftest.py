"""Shared benchmark settings.

Benchmarks compare oxlearn with scikit-learn in the same pytest-benchmark group, with the
thread count pinned for both (``OXLEARN_BENCH_THREADS``, default 2). Under
``--benchmark-disable`` (how the test command and CI run them: once, as smoke tests) the data
sets shrink so the run stays short; timings are only meaningful with benchmarks enabled::

    python -m pytest benches --benchmark-enable --benchmark-group-by=group \
        --benchmark-columns=median,iqr,rounds
"""

import os
from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits

THREADS = int(os.environ.get("OXLEARN_BENCH_THREADS", "2"))


@pytest.fixture(scope="session")
def threads() -> int:
    return THREADS


@pytest.fixture(scope="session")
def smoke(request: pytest.FixtureRequest) -> bool:
    """True when benchmarks are disabled: run each once on small data.

    pyproject's addopts always carry ``--benchmark-disable``, so an explicit
    ``--benchmark-enable`` on the command line must win.
    """
    config = request.config
    return bool(config.getoption("benchmark_disable")) and not bool(
        config.getoption("benchmark_enable")
    )


@pytest.fixture(autouse=True)
def _pin_native_threads() -> Iterator[None]:
    # scikit-learn's OpenMP (ArgKmin) and BLAS threads are pinned to the same count as ours.
    with threadpool_limits(limits=THREADS):
        yield
