"""Sharded exact k-NN on a two-worker LocalCluster against one process (issue 27, section 3).

Run: ``python benches/bench_dask.py [--quick]``. Prints queries/s of one process
(`oxlearn.neighbors`, 2 threads) and of `oxlearn.dask.neighbors` on a LocalCluster of two
worker processes with one thread each; the split of the cluster's task time into search
(per-shard candidate tasks), merge (heap replay and vote) and transfer (bytes moved between
workers, from Dask's task stream); and the cost when the training rows double and when the
queries double. Checks that the results are identical.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Any

import numpy as np


def _single(X: np.ndarray, Q: np.ndarray, k: int) -> tuple[float, Any]:
    from oxlearn.neighbors import NearestNeighbors

    t0 = time.perf_counter()
    result = NearestNeighbors(n_neighbors=k, n_jobs=2).fit(X).kneighbors(Q)
    return time.perf_counter() - t0, result


def _split(stream: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds of task time per kind (summed over workers)."""
    out: dict[str, float] = defaultdict(float)
    for rec in stream:
        key = str(rec["key"])
        for ss in rec["startstops"]:
            dt = ss["stop"] - ss["start"]
            if ss["action"] == "transfer":
                out["transfer"] += dt
            elif ss["action"] == "compute":
                if "_first_search" in key:
                    out["search phase 1"] += dt
                elif "_search_shard" in key:
                    out["search phase 2"] += dt
                elif "_prefix_tops" in key or "_candidates_top" in key:
                    out["merge"] += dt
                elif "_merge_block" in key:
                    out["merge"] += dt
                elif "_validate_query" in key:
                    out["validate"] += dt
                else:
                    out["other"] += dt
    return dict(out)


def _cluster_run(client: Any, X: np.ndarray, Q: np.ndarray, k: int) -> dict[str, Any]:
    import dask.array as da
    from distributed import get_task_stream
    from oxlearn.dask import NearestNeighbors

    # Two training partitions (one per worker), four query partitions.
    Xd = client.persist(da.from_array(X, chunks=(-(-X.shape[0] // 2), X.shape[1])))
    Qd = client.persist(da.from_array(Q, chunks=(-(-Q.shape[0] // 4), Q.shape[1])))
    Xd, Qd = Xd.persist(), Qd.persist()
    t0 = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=k, client=client).fit(Xd)
    fit_s = time.perf_counter() - t0
    with get_task_stream(client) as ts:
        t0 = time.perf_counter()
        dist, ind = client.compute(nn.kneighbors(Qd), sync=True)
        search_s = time.perf_counter() - t0
    # For comparison: the same tasks searching only each shard's top k (what a merge by
    # (distance, index) would need; it gives the right neighbours but not the order of
    # ties), i.e. the cost of the search without the exact replay.
    blocks = Qd.to_delayed().ravel().tolist()
    t0 = time.perf_counter()
    plain = [
        client.submit(_plain_topk, block, fut, k, pure=False)
        for block in client.compute(blocks)
        for fut, _, _ in nn._shards
    ]
    client.gather(plain)
    plain_s = time.perf_counter() - t0
    return {
        "fit": fit_s,
        "total": search_s,
        "plain": plain_s,
        "split": _split(ts.data),
        "result": (dist, ind),
    }


def _plain_topk(query: np.ndarray, shard: dict[str, Any], k: int) -> Any:
    from oxlearn import _oxlearn

    return _oxlearn.kneighbors(query, shard["X"], [k], "sqeuclidean", 2.0, None, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a tenth of the data")
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    n_train, n_q, d, k = 200_000, 20_000, 64, 10
    if args.quick:
        n_train, n_q = n_train // 10, n_q // 10
    rng = np.random.default_rng(0)
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = Client(cluster)
    try:
        rows = []
        for label, nt, nq in [
            ("base", n_train, n_q),
            ("2x train", 2 * n_train, n_q),
            ("2x queries", n_train, 2 * n_q),
        ]:
            X = rng.normal(size=(nt, d)).astype(np.float32)
            Q = rng.normal(size=(nq, d)).astype(np.float32)
            single_s, (ref_d, ref_i) = _single(X, Q, k)
            run = _cluster_run(client, X, Q, k)
            dist, ind = run["result"]
            same = bool(np.array_equal(ind, ref_i) and np.array_equal(dist, ref_d))
            split = {key: round(v, 2) for key, v in sorted(run["split"].items())}
            rows.append(
                f"{label}: {nt} x {d} train, {nq} queries, k={k}: single {single_s:.2f} s "
                f"({nq / single_s:.0f} q/s); cluster fit {run['fit']:.2f} s, search "
                f"{run['total']:.2f} s ({nq / run['total']:.0f} q/s); task seconds {split}; "
                f"per-shard top-k only {run['plain']:.2f} s ({nq / run['plain']:.0f} q/s); "
                f"identical={same}"
            )
            print(rows[-1], flush=True)
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
