"""Exact sharded k-nearest-neighbour search: per-shard candidates and their merge.

The single-process search (``oxlearn._oxlearn.kneighbors``) reproduces scikit-learn's
brute force: each query's candidates are pushed, in increasing training index, into a
fixed-size max-heap that rejects a value ``>=`` its root, and the heap is then sorted
with an unstable introsort. Which neighbours are kept is the ``k`` smallest by
(distance, index), but the order of *equal* distances in the output depends on the
heap's layout, hence on every push the heap accepted, not only on the ``k`` it kept.
Merging per-shard top-k lists by (distance, index) gives the right set but may order
ties differently. To give exactly the single-process answer, ties included, this
module replays the heap:

* **On each shard** (a contiguous range of training indices), `shard_candidates`
  finds every row a heap scanning *that shard alone* would accept. A row accepted by
  the scan of the whole training set is accepted by the scan of its shard alone (the
  whole scan's root is never larger than the shard scan's: it holds the ``k``
  smallest of a superset), so these lists, concatenated in shard order, contain every
  push the single-process heap accepts, in its order. It finds them with the Rust
  engine on a binary subdivision of the shard: for a range and a current root ``r``,
  the range's top-k list holds every row below ``r`` when its ``k``-th value is
  ``>= r``; otherwise the range is halved (the left half first, as it updates ``r``).
* **Two phases.** Only the first shard must be scanned from an empty heap. Each other
  shard first searches its top ``2k`` (`shard_topk`); from those, `prefix_tops` gives the
  root the whole scan reaches the shard with (the ``k``-th smallest value before it), and
  the shard's candidates are its rows below that root, usually all within its top ``2k``
  (`shard_candidates` with ``first`` and ``prefix_top``).
* **In the merge**, `replay` pushes the concatenated candidates into scikit-learn's
  heap (a NumPy port of ``heap_push``, vectorised over queries). A candidate the
  single-process heap rejected is rejected by the replayed heap too (the two are in the
  same state before it), so the final heap, and after `finish` (scikit-learn's
  ``ParallelOnX``/``ParallelOnY`` strategy, then its sort) the result, are identical.

The heap compares *reduced* distances. For the Euclidean metric the shards search with
``sqeuclidean`` (the engine's reduced distance for both, reported unrounded), and the
merge converts to distances exactly as the engine does; for the other metrics the
reduced distance is the distance. A weighted or ``p`` Minkowski metric is the
exception: its reduced distance is not reported, so two reduced distances that round to
the same distance are treated as a tie (see the README).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from oxlearn import _oxlearn

#: Each engine search of a shard asks for the top ``SEARCH_WIDTH * k`` rows of a range.
SEARCH_WIDTH = 2
#: The ranges a shard is examined in grow by this factor (each is this factor minus one
#: times as long as the rows before it, and so holds about that many times ``k`` rows
#: below the root, fewer than ``SEARCH_WIDTH * k``).
GROWTH = 2
#: scikit-learn's `pairwise_dist_chunk_size` default, which enters its strategy choice.
_SKLEARN_CHUNK = 256

#: Query rows per GEMM call of the engine, on a grid fixed by the query index
#: (``GEMM_QUERY_ROWS`` in ``rust/oxlearn-core/src/neighbors/engine/mod.rs``): the last bit
#: of a GEMM distance depends on the shape of its call.
QUERY_GRID = 64

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class SearchSpec:
    """How the shards search and how the merge turns reduced distances into distances.

    Attributes
    ----------
    metric : str
        The metric the engine searches with (``sqeuclidean`` for the Euclidean metric).
    p : float
        Minkowski power.
    w : ndarray or None
        Minkowski weights.
    euclidean : bool
        Whether the reported distances are the square roots of the searched values.
    float32 : bool
        Whether the search runs in float32 (query and training rows both float32).
    float32_out : bool
        Whether the distances are returned as float32 (cosine on float32 data).
    sklearn : dict or None
        When set, the shards search with scikit-learn's brute force instead (the
        parameters of a ``sklearn.neighbors.NearestNeighbors``), as the single-process
        estimator does for these parameters; its distances are the searched values.
    """

    metric: str
    p: float
    w: FloatArray | None
    euclidean: bool
    float32: bool
    float32_out: bool
    sklearn: dict[str, Any] | None = None


def make_spec(effective_metric: str, params: dict[str, Any], float32: bool) -> SearchSpec:
    """Build the `SearchSpec` of an estimator's effective metric and parameters."""
    p = float(params.get("p", 2.0))
    w = params.get("w")
    w_arr = None if w is None else np.ascontiguousarray(w, dtype=np.float64).ravel()
    euclidean = effective_metric in ("euclidean", "l2")
    return SearchSpec(
        metric="sqeuclidean" if euclidean else effective_metric,
        p=p,
        w=w_arr,
        euclidean=euclidean,
        float32=float32,
        float32_out=float32 and effective_metric == "cosine",
    )


def sklearn_spec(params: dict[str, Any]) -> SearchSpec:
    """Return a `SearchSpec` searching with scikit-learn's brute force (its ``params``)."""
    return SearchSpec(
        metric="",
        p=2.0,
        w=None,
        euclidean=False,
        float32=False,
        float32_out=False,
        sklearn=dict(params),
    )


def sklearn_searcher(rows: npt.NDArray[Any], params: dict[str, Any]) -> Any:
    """scikit-learn's ``NearestNeighbors`` with ``params``, fitted on ``rows``.

    Its fit warnings (``p < 1``) were raised once by the fit on the client.
    """
    from sklearn.neighbors import NearestNeighbors

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NearestNeighbors(**params).fit(rows)


def search_radius(radius: float, spec: SearchSpec) -> float:
    """Return the radius the engine compares searched values with, for ``spec.metric``.

    The Euclidean search runs on ``sqeuclidean`` values (to sort them as the engine sorts
    its reduced distances), so its radius is squared as the engine squares it: in float64,
    or, for float32 rows, from and to float32.
    """
    if not spec.euclidean:
        return radius
    if spec.float32:
        r32 = float(np.float32(radius))
        return float(np.float32(r32 * r32))
    return radius * radius


def to_distances(values: FloatArray, spec: SearchSpec) -> npt.NDArray[Any]:
    """Turn searched values into the distances the single-process search returns."""
    if spec.sklearn is not None:
        return values
    if spec.euclidean:
        clipped = np.maximum(values, 0.0)
        if spec.float32:
            # Rust: `f64::from((f64::from(r.max(0) as f32)).sqrt() as f32)`.
            return (
                np.sqrt(clipped.astype(np.float32).astype(np.float64))
                .astype(np.float32)
                .astype(np.float64)
            )
        return np.sqrt(clipped)
    if spec.float32_out:
        return values.astype(np.float32)
    return values


def _search(
    query: npt.NDArray[Any], rows: npt.NDArray[Any], k: int, spec: SearchSpec, n_jobs: int
) -> tuple[FloatArray, IntArray]:
    if spec.sklearn is not None:
        dist, ind = sklearn_searcher(rows, spec.sklearn).kneighbors(query, k)
        return np.asarray(dist, dtype=np.float64), np.asarray(ind, dtype=np.intp)
    result = _oxlearn.kneighbors(query, rows, [k], spec.metric, spec.p, spec.w, n_jobs)
    dist, ind = result[0]
    return dist, ind


@dataclass
class Candidates:
    """Per-query lists of (value, global training index), in increasing index.

    ``counts[q]`` entries of ``values``/``indices`` belong to query ``q``, queries in
    order. ``labels`` holds the training targets of the candidates, when asked for.
    """

    counts: IntArray
    values: FloatArray
    indices: IntArray
    labels: npt.NDArray[Any] | None = None


def shard_candidates(
    query: npt.NDArray[Any],
    shard: npt.NDArray[Any],
    offset: int,
    k: int,
    spec: SearchSpec,
    n_jobs: int = 1,
    targets: npt.NDArray[Any] | None = None,
    width: int = SEARCH_WIDTH,
    growth: int = GROWTH,
    first: tuple[FloatArray, IntArray] | None = None,
    prefix_top: FloatArray | None = None,
) -> Candidates:
    """Every row of ``shard`` a scikit-learn heap of size ``k`` scanning it alone accepts.

    A superset, in fact: every row below the heap's root when the scan reaches the range
    of rows it is examined in. The shard is examined in growing ranges (``width * k``
    rows, then ranges ``growth - 1`` times as long as the rows before them), so that each
    holds about ``(growth - 1) * k`` rows below the root; one search of the top
    ``width * k`` of a range finds them all when its last value is not below the root,
    else the range is halved for the queries concerned.

    Parameters
    ----------
    query : ndarray of shape (n_queries, n_features)
        Query rows, C-contiguous, in the search dtype.
    shard : ndarray of shape (n_rows, n_features)
        Training rows of the shard, C-contiguous, in the search dtype.
    offset : int
        Global training index of the shard's first row.
    k : int
        Heap size (number of neighbours).
    spec : SearchSpec
        The search.
    n_jobs : int
        Threads of the engine.
    targets : ndarray of shape (n_rows,) or (n_rows, n_outputs), optional
        The shard's training targets, returned for the candidates.
    width : int
        Each engine search asks for the top ``width * k`` rows of its range.
    growth : int
        Growth factor of the ranges (at least 2).
    first : (ndarray, ndarray), optional
        `shard_topk` of this shard (same ``width``), when already searched.
    prefix_top : ndarray of shape (n_queries, k), optional
        The ``k`` smallest values of the shards before this one (see `prefix_tops`): the
        heap scanning the whole training set reaches this shard with that root, so only
        rows below it are candidates, and a shard whose top ``width * k`` ends at or above
        it needs no further search.

    Returns
    -------
    Candidates
        For each query, in increasing index, the candidate rows and their searched values.
    """
    n_q = query.shape[0]
    n = shard.shape[0]
    wide = max(int(width), 1) * k
    # The engine's GEMM distances (float64 Euclidean) depend on the shape of its calls: a
    # search of some of the queries keeps their 64-row groups (see `QUERY_GRID`).
    gemm_shaped = spec.sklearn is None and spec.metric == "sqeuclidean" and not spec.float32
    growth = max(int(growth), 2)
    top = np.full((n_q, k), np.inf) if prefix_top is None else np.array(prefix_top, dtype=float)
    root = top.max(axis=1)
    out_q: list[IntArray] = []
    out_v: list[FloatArray] = []
    out_i: list[IntArray] = []

    def take(active: IntArray, vals: FloatArray, inds: IntArray) -> None:
        """Record the rows below each active query's root and update its top-k."""
        if active.size == 0:
            return
        below = vals < root[active, None]
        rows, cols = np.nonzero(below)
        out_q.append(active[rows])
        out_v.append(vals[rows, cols])
        out_i.append(inds[rows, cols])
        merged = np.concatenate([top[active], np.where(below, vals, np.inf)], axis=1)
        merged = np.partition(merged, k - 1, axis=1)[:, :k]
        top[active] = merged
        root[active] = merged.max(axis=1)

    def scan(a: int, b: int, active: IntArray) -> None:
        if active.size == 0 or a >= b:
            return
        size = b - a
        kk = min(size, wide)
        if active.size == n_q:
            vals, inds = _search(query, shard[a:b], kk, spec, n_jobs)
        elif gemm_shaped:
            # Whole 64-row groups of the query grid around the active queries: each meets
            # the GEMM in the call it meets it in when all queries are searched.
            groups = np.unique(active // QUERY_GRID)
            rows = (groups[:, None] * QUERY_GRID + np.arange(QUERY_GRID)).ravel()
            rows = rows[rows < n_q]
            vals, inds = _search(np.ascontiguousarray(query[rows]), shard[a:b], kk, spec, n_jobs)
            at = np.searchsorted(rows, active)
            vals, inds = vals[at], inds[at]
        else:
            q = np.ascontiguousarray(query[active])
            vals, inds = _search(q, shard[a:b], kk, spec, n_jobs)
        inds = inds + a
        if kk == size:
            take(active, vals, inds)
            return
        # The top `kk` of the range holds every row below the root when its last value
        # is not below the root.
        done = vals[:, kk - 1] >= root[active]
        take(active[done], vals[done], inds[done])
        rest = active[~done]
        mid = a + size // 2
        scan(a, mid, rest)
        scan(mid, b, rest)

    everyone = np.arange(n_q)
    if first is not None and n > 0:
        vals, inds = first
        kk = vals.shape[1]
        if kk >= n:
            take(everyone, vals, inds)
            everyone = everyone[:0]
        else:
            done = vals[:, kk - 1] >= root
            take(everyone[done], vals[done], inds[done])
            rest = everyone[~done]
            bounded = rest[np.isfinite(root[rest])]
            everyone = rest[~np.isfinite(root[rest])]
            mid = n // 2
            scan(0, mid, bounded)
            scan(mid, n, bounded)
    start = 0
    while start < n and everyone.size:
        end = min(n, max(growth * start, wide))
        scan(start, end, everyone)
        start = end
    if out_q:
        qs = np.concatenate(out_q)
        vs = np.concatenate(out_v)
        ix = np.concatenate(out_i)
    else:
        qs = np.empty(0, dtype=np.intp)
        vs = np.empty(0, dtype=np.float64)
        ix = np.empty(0, dtype=np.intp)
    order = np.lexsort((ix, qs))
    ix = ix[order]
    labels = None if targets is None else np.asarray(targets)[ix]
    return Candidates(
        counts=np.bincount(qs, minlength=n_q).astype(np.intp),
        values=vs[order].astype(np.float64, copy=False),
        indices=(ix + offset).astype(np.intp),
        labels=labels,
    )


def shard_topk(
    query: npt.NDArray[Any],
    shard: npt.NDArray[Any],
    k: int,
    spec: SearchSpec,
    n_jobs: int = 1,
    width: int = SEARCH_WIDTH,
) -> tuple[FloatArray, IntArray]:
    """Search the top ``width * k`` rows of a shard (all when fewer): sorted, local indices."""
    kk = min(shard.shape[0], max(int(width), 1) * k)
    return _search(query, shard, kk, spec, n_jobs)


def prefix_tops(firsts: list[tuple[FloatArray, IntArray]], n_q: int, k: int) -> list[FloatArray]:
    """For each shard, the ``k`` smallest values of the shards before it (`shard_topk`s)."""
    current = np.full((n_q, k), np.inf)
    out = []
    for vals, _ in firsts:
        out.append(current)
        both = np.concatenate([current, vals[:, :k]], axis=1)
        current = np.partition(both, k - 1, axis=1)[:, :k]
    return out


def candidates_top(cands: Candidates, k: int) -> tuple[FloatArray, IntArray]:
    """Return the ``k`` smallest candidate values per query (inf-padded), for `prefix_tops`.

    A shard's candidates include every row its heap kept, so their ``k`` smallest values
    are the shard's ``k`` smallest: the first shard needs no `shard_topk`.
    """
    n_q = cands.counts.shape[0]
    width = max(k, int(cands.counts.max()) if n_q else 0)
    pad = np.full((n_q, width), np.inf)
    q_of = np.repeat(np.arange(n_q), cands.counts)
    starts = np.concatenate(([0], np.cumsum(cands.counts)[:-1])).astype(np.intp)
    within = np.arange(cands.values.size) - starts[q_of]
    pad[q_of, within] = cands.values
    vals = np.sort(np.partition(pad, k - 1, axis=1)[:, :k], axis=1)
    return vals, np.zeros(vals.shape, dtype=np.intp)


def prune(parts: list[Candidates], n_q: int, k: int) -> list[Candidates]:
    """Drop the candidates a heap that has scanned the earlier shards rejects.

    After the shards before it, the heap's root is the ``k``-th smallest value of their
    rows, which their candidates include (each shard's candidates hold its ``k``
    smallest); a row of a later shard is accepted only below it.
    """
    top = np.full((n_q, k), np.inf)
    out = []
    for part in parts:
        q_of = np.repeat(np.arange(n_q), part.counts)
        keep = part.values < top.max(axis=1)[q_of]
        if not keep.all():
            part = Candidates(
                counts=np.bincount(q_of[keep], minlength=n_q).astype(np.intp),
                values=part.values[keep],
                indices=part.indices[keep],
                labels=None if part.labels is None else part.labels[keep],
            )
            q_of = q_of[keep]
        out.append(part)
        if part.values.size:
            # The k smallest of the prefix, per query: pad each query's values to a row.
            longest = int(part.counts.max())
            starts = np.concatenate(([0], np.cumsum(part.counts)[:-1]))
            within = np.arange(part.values.size) - starts[q_of]
            pad = np.full((n_q, longest), np.inf)
            pad[q_of, within] = part.values
            both = np.concatenate([top, pad], axis=1)
            top = np.partition(both, k - 1, axis=1)[:, :k]
    return out


def concatenate(parts: list[Candidates], n_q: int) -> Candidates:
    """Concatenate the candidates of shards (in shard order) per query."""
    if not parts:
        return Candidates(
            np.zeros(n_q, dtype=np.intp), np.empty(0), np.empty(0, dtype=np.intp), None
        )
    counts = np.sum([p.counts for p in parts], axis=0).astype(np.intp)
    # Position of each candidate in the output: its query's start, then shard order.
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    total = int(counts.sum())
    values = np.empty(total)
    indices = np.empty(total, dtype=np.intp)
    with_labels = parts[0].labels is not None
    labels: npt.NDArray[Any] | None = None
    if with_labels:
        first = parts[0].labels
        assert first is not None
        labels = np.empty((total, *first.shape[1:]), dtype=first.dtype)
    filled = np.zeros(n_q, dtype=np.intp)
    for part in parts:
        q_of = np.repeat(np.arange(n_q), part.counts)
        within = np.arange(part.counts.sum()) - np.repeat(
            np.cumsum(part.counts) - part.counts, part.counts
        )
        pos = starts[q_of] + filled[q_of] + within
        values[pos] = part.values
        indices[pos] = part.indices
        if labels is not None and part.labels is not None:
            labels[pos] = part.labels
        filled += part.counts
    return Candidates(counts, values, indices, labels)


def _push(
    heap_v: FloatArray,
    heap_i: IntArray,
    rows: IntArray,
    val: FloatArray,
    idx: IntArray,
) -> None:
    """scikit-learn's ``heap_push`` of ``(val[j], idx[j])`` onto heap ``rows[j]``."""
    size = heap_v.shape[1]
    accept = val < heap_v[rows, 0]
    rows, val, idx = rows[accept], val[accept], idx[accept]
    if rows.size == 0:
        return
    depth = int(np.floor(np.log2(size))) if size > 1 else 0
    cur = np.zeros(rows.size, dtype=np.intp)
    going = np.ones(rows.size, dtype=bool)
    last = size - 1
    for _ in range(depth):
        left = 2 * cur + 1
        right = left + 1
        vl = heap_v[rows, np.minimum(left, last)]
        vr = heap_v[rows, np.minimum(right, last)]
        take_right = (right < size) & ~(vl >= vr)
        child = np.where(take_right, right, left)
        vc = np.where(take_right, vr, vl)
        going &= (left < size) & (val < vc)
        if not going.any():
            break
        g_rows, g_cur, g_child = rows[going], cur[going], child[going]
        heap_v[g_rows, g_cur] = vc[going]
        heap_i[g_rows, g_cur] = heap_i[g_rows, g_child]
        cur = np.where(going, child, cur)
    heap_v[rows, cur] = val
    heap_i[rows, cur] = idx


def replay(cands: Candidates, k: int) -> tuple[FloatArray, IntArray]:
    """Push each query's candidates, in order, into a fresh heap of size ``k``."""
    n_q = cands.counts.shape[0]
    heap_v = np.full((n_q, k), np.inf)
    heap_i = np.zeros((n_q, k), dtype=np.intp)
    if cands.values.size == 0:
        return heap_v, heap_i
    starts = np.concatenate(([0], np.cumsum(cands.counts)[:-1]))
    longest = int(cands.counts.max())
    for t in range(longest):
        rows = np.flatnonzero(cands.counts > t)
        pos = starts[rows] + t
        _push(heap_v, heap_i, rows, cands.values[pos], cands.indices[pos])
    return heap_v, heap_i


def parallel_on_y(n_queries: int, n_train: int) -> bool:
    """Whether scikit-learn's ``ArgKmin`` (one thread) uses its ``ParallelOnY`` strategy."""
    return not (n_train < n_queries or 4 * _SKLEARN_CHUNK < n_queries)


def finish(heap_v: FloatArray, heap_i: IntArray, on_y: bool) -> tuple[FloatArray, IntArray]:
    """Sort filled heaps as the engine does (``finish_heap``): re-push, then sort."""
    n_q, k = heap_v.shape
    if on_y:
        fresh_v = np.full((n_q, k), np.inf)
        fresh_i = np.zeros((n_q, k), dtype=np.intp)
        rows = np.arange(n_q)
        for j in range(k):
            _push(fresh_v, fresh_i, rows, heap_v[:, j].copy(), heap_i[:, j].copy())
        heap_v, heap_i = fresh_v, fresh_i
    # simultaneous_sort: for at most 15 values an insertion sort, i.e. a stable sort.
    order = np.argsort(heap_v, axis=1, kind="stable")
    out_v = np.take_along_axis(heap_v, order, axis=1)
    out_i = np.take_along_axis(heap_i, order, axis=1)
    if k > 15:
        # The introsort orders equal values its own way: rerun it on rows with ties.
        tied = np.flatnonzero(np.any(out_v[:, 1:] == out_v[:, :-1], axis=1))
        for r in tied:
            vals = heap_v[r].tolist()
            inds = heap_i[r].tolist()
            simultaneous_sort(vals, inds)
            out_v[r] = vals
            out_i[r] = inds
    return out_v, out_i


# --- scikit-learn's simultaneous_sort (sklearn/utils/_sorting.pyx), for k > 15 -----------


def simultaneous_sort(values: list[float], indices: list[int]) -> None:
    """Sort ``values`` in place with scikit-learn's introsort, permuting ``indices``."""
    n = len(values)
    if n == 0:
        return
    maxd = 2 * int(np.log2(n))
    _introsort(values, indices, 0, n, maxd)


def _swap(v: list[float], ix: list[int], i: int, j: int) -> None:
    v[i], v[j] = v[j], v[i]
    ix[i], ix[j] = ix[j], ix[i]


def _introsort(v: list[float], ix: list[int], lo: int, hi: int, maxd: int) -> None:
    while hi - lo > 15:
        n = hi - lo
        if maxd <= 0:
            _heapsort(v, ix, lo, hi)
            return
        maxd -= 1
        # median of three
        mid = lo + n // 2
        last = hi - 1
        if v[lo] > v[last]:
            _swap(v, ix, lo, last)
        if v[last] > v[mid]:
            _swap(v, ix, last, mid)
            if v[lo] > v[last]:
                _swap(v, ix, lo, last)
        pivot = v[last]
        i = lo + 1
        j = hi - 2
        while True:
            while i <= j and v[i] < pivot:
                i += 1
            while i <= j and v[j] > pivot:
                j -= 1
            if i >= j:
                break
            _swap(v, ix, i, j)
            i += 1
            j -= 1
        _swap(v, ix, i, last)
        _introsort(v, ix, lo, i, maxd)
        lo = i + 1
    # insertion sort
    for a in range(lo + 1, hi):
        tv, ti = v[a], ix[a]
        b = a
        while b > lo and v[b - 1] > tv:
            v[b] = v[b - 1]
            ix[b] = ix[b - 1]
            b -= 1
        v[b] = tv
        ix[b] = ti


def _heapsort(v: list[float], ix: list[int], lo: int, hi: int) -> None:
    n = hi - lo
    if n < 2:
        return

    def sift_down(start: int, end: int) -> None:
        root = start
        while True:
            child = root * 2 + 1
            maxind = root
            if child < end and v[lo + maxind] < v[lo + child]:
                maxind = child
            if child + 1 < end and v[lo + maxind] < v[lo + child + 1]:
                maxind = child + 1
            if maxind == root:
                break
            _swap(v, ix, lo + root, lo + maxind)
            root = maxind

    start = (n - 2) // 2
    while True:
        sift_down(start, n)
        if start == 0:
            break
        start -= 1
    end = n - 1
    while end > 0:
        _swap(v, ix, lo, lo + end)
        sift_down(0, end)
        end -= 1


def merge(
    parts: list[Candidates], n_q: int, k: int, n_queries_total: int, n_train: int
) -> tuple[FloatArray, IntArray, Candidates]:
    """Merge the shards' candidates of a query block into the single-process result.

    Returns the searched values (sorted), the global indices, and the concatenated
    candidates (for their labels).
    """
    cands = concatenate(prune(parts, n_q, k), n_q)
    heap_v, heap_i = replay(cands, k)
    vals, inds = finish(heap_v, heap_i, parallel_on_y(n_queries_total, n_train))
    return vals, inds, cands
