"""Finding the Dask client and the thread count of the worker a task runs on."""

from __future__ import annotations

import os
from typing import Any

#: Seconds to wait for a scheduler given by its address.
CONNECT_TIMEOUT = 10


def resolve_client(client: Any) -> Any:
    """Return a running ``distributed.Client`` for ``client``.

    ``None`` means the current client (``distributed.default_client()``); a string is
    a scheduler address to connect to. A scheduler that cannot be reached raises a
    ``ConnectionError`` naming its address.
    """
    from distributed import Client, default_client

    if client is None:
        try:
            client = default_client()
        except ValueError as exc:
            raise ValueError(
                "No Dask client found: start one (distributed.Client(...)) or pass "
                "client= (a Client or a scheduler address)."
            ) from exc
    elif isinstance(client, str):
        address = client
        try:
            return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"Cannot reach the Dask scheduler at {address!r}: {exc}") from exc
    if getattr(client, "status", "running") not in ("running", "connecting"):
        where = getattr(client.scheduler, "address", None) if client.scheduler else None
        raise ConnectionError(
            f"The Dask client is {client.status}: cannot reach the scheduler at {where!r}."
        )
    return client


def worker_threads() -> int:
    """Native threads for the task running now: the worker's task threads it may use.

    A worker with ``nthreads`` task slots running ``m`` tasks at once gives each
    ``nthreads // m`` native threads (at least one), so tasks running side by side do not
    oversubscribe its cores; a worker with one slot runs single-threaded kernels. Outside
    a worker: 1.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return 1
    state = getattr(worker, "state", None)
    n = int(getattr(state, "nthreads", None) or getattr(worker, "nthreads", None) or 1)
    running = int(getattr(state, "executing_count", 1) or 1)
    return max(1, n // max(1, running))


def set_native_threads(n: int) -> None:
    """Make the oxlearn engines of this process use ``n`` threads by default."""
    os.environ["OXLEARN_NUM_THREADS"] = str(int(n))
