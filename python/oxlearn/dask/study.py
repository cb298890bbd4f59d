"""``oxlearn study`` with every fit run as a Dask task.

Run ``oxlearn study --scheduler ADDRESS [options]`` (or ``python -m oxlearn.dask.study
--scheduler ADDRESS [options]``)
(``--scheduler local`` starts a ``LocalCluster`` of the machine's cores, one thread per
worker). Each fit of the study is submitted to the cluster through
:func:`dask_executor`, a ``concurrent.futures`` executor; results, and so accuracies,
are those of a local run (each fit is deterministic and runs alone in its task), and the
progress bar and log lines work as locally (they follow the futures as they complete).

``oxlearn study --scheduler ADDRESS`` is the same command; it passes a
:class:`DaskExecutor` to :func:`oxlearn.study.run_study_on` (``executor=``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from typing import Any

from oxlearn.dask._cluster import resolve_client, worker_threads


def _with_worker_threads(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` with native thread counts set to the worker's thread count.

    oxlearn's kernels read ``OXLEARN_NUM_THREADS`` when ``n_jobs`` is None, and
    threadpoolctl limits scikit-learn's OpenMP/BLAS pools, so a task does not start more
    threads than its worker has task slots.
    """
    from threadpoolctl import threadpool_limits

    n = worker_threads()
    old = os.environ.get("OXLEARN_NUM_THREADS")
    os.environ["OXLEARN_NUM_THREADS"] = str(n)
    try:
        with threadpool_limits(limits=n):
            return fn(*args, **kwargs)
    finally:
        if old is None:
            os.environ.pop("OXLEARN_NUM_THREADS", None)
        else:
            os.environ["OXLEARN_NUM_THREADS"] = old


def _run_pickled(payload: bytes) -> Any:
    """Unpickle ``(fn, args, kwargs)`` and run it with the worker's thread counts.

    The call travels pickled (protocol 4) rather than through Dask's serialisation, which
    may hand NumPy arrays back as views of its network frames, unaligned: the MLP kernels
    reject those. Unpickled arrays are fresh, aligned copies.
    """
    import pickle

    fn, args, kwargs = pickle.loads(payload)
    return _with_worker_threads(fn, *args, **kwargs)


class DaskExecutor(Executor):
    """A ``concurrent.futures`` executor running each call as a Dask task.

    Parameters
    ----------
    client : distributed.Client
        The client whose cluster runs the tasks.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._executor = client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` on a worker, with its thread counts set."""
        import cloudpickle

        payload = cloudpickle.dumps((fn, args, kwargs), protocol=4)
        future: Future[Any] = self._executor.submit(_run_pickled, payload)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop submitting; the client and its cluster stay up."""
        self._executor.shutdown(wait=wait)

    def total_threads(self) -> int:
        """Task threads of the whole cluster."""
        return int(sum(self._client.nthreads().values()))


def dask_executor(client: Any = None) -> DaskExecutor:
    """Return an executor running calls on the cluster of ``client`` (None: the current)."""
    return DaskExecutor(resolve_client(client))


@contextlib.contextmanager
def connect(address: str) -> Iterator[Any]:
    """Yield a client of the scheduler at ``address`` (``local``: a new LocalCluster)."""
    from distributed import Client, LocalCluster

    if address == "local":
        n = os.cpu_count() or 1
        with (
            LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    client = resolve_client(address)
    try:
        yield client
    finally:
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``oxlearn study`` with its fits on a Dask cluster.

    Parameters
    ----------
    argv : sequence of str or None, default=None
        ``--scheduler ADDRESS`` and ``oxlearn study``'s options (without ``study``).

    Returns
    -------
    int
        The study's exit status.
    """
    from oxlearn.study.cli import main as study_main

    parser = argparse.ArgumentParser(
        prog="python -m oxlearn.dask.study",
        description="oxlearn study with every fit run as a Dask task (the same as "
        "oxlearn study --scheduler ADDRESS)",
    )
    parser.add_argument(
        "--scheduler",
        required=True,
        help="Dask scheduler address (tcp://host:8786), or 'local' for a LocalCluster "
        "of this machine's cores",
    )
    args, rest = parser.parse_known_args(None if argv is None else list(argv))
    return study_main(["study", "--scheduler", args.scheduler, *rest])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
