"""Work per query of the sharded exact search vs number of shards W, in one process, one thread.

Run: ``python benches/dask_shard_scaling.py`` (issue 27, section 3; see benches/README.md)."""

import itertools
import time

import numpy as np
from oxlearn import _oxlearn
from oxlearn.dask import _exact as E

rng = np.random.default_rng(0)
n, nq, d, k = 200_000, 2048, 64, 10
X = rng.normal(size=(n, d)).astype(np.float32)
Q = rng.normal(size=(nq, d)).astype(np.float32)
spec = E.make_spec("euclidean", {}, True)
t0 = time.perf_counter()
_oxlearn.kneighbors(Q, X, [k], "sqeuclidean", 2.0, None, 1)
plain = time.perf_counter() - t0
print(f"one process, one thread, all {n} rows: {plain / nq * 1e6:.0f} us/query")
for W in (2, 4, 8, 16, 32):
    bounds = np.linspace(0, n, W + 1).astype(int)
    (a0, r0), *rest = [(a, X[a:b]) for a, b in itertools.pairwise(bounds)]
    t0 = time.perf_counter()
    part0 = E.shard_candidates(Q, r0, a0, k, spec, 1)
    ts0 = time.perf_counter() - t0
    t0 = time.perf_counter()
    firsts = [E.candidates_top(part0, k)] + [E.shard_topk(Q, r, k, spec, 1) for _, r in rest]
    t1 = time.perf_counter() - t0
    pre = E.prefix_tops(firsts, nq, k)
    t0 = time.perf_counter()
    parts = [part0] + [
        E.shard_candidates(Q, r, a, k, spec, 1, first=f, prefix_top=p)
        for (a, r), f, p in zip(rest, firsts[1:], pre[1:], strict=False)
    ]
    t2 = time.perf_counter() - t0
    cands = sum(p.counts.sum() for p in parts) / nq
    nbytes = sum(p.values.nbytes + p.indices.nbytes + p.counts.nbytes for p in parts) / nq
    fbytes = sum(f[0].nbytes + f[1].nbytes for f in firsts[1:]) / nq
    t0 = time.perf_counter()
    E.merge(parts, nq, k, nq, n)
    tm = time.perf_counter() - t0
    print(
        f"W={W}: first-shard scan {ts0 / nq * 1e6:.0f} us/q, other shards phase 1 "
        f"{t1 / nq * 1e6:.0f} + phase 2 {t2 / nq * 1e6:.0f} us/q, candidates/q {cands:.0f}, "
        f"bytes/q to merge {nbytes:.0f} (+{fbytes:.0f} phase 1), merge {tm / nq * 1e6:.0f} us/q",
        flush=True,
    )
