"""The heap replay of `oxlearn.dask._exact` against the single-process engine (no cluster)."""

import itertools

import numpy as np
import pytest
from oxlearn import _oxlearn
from oxlearn.dask import _exact


def _sharded(Q, X, k, metric, bounds, width, params=None, two_phase=True):
    float32 = X.dtype == np.float32 and Q.dtype == np.float32
    spec = _exact.make_spec(metric, params or {}, float32)
    shards = [(a, X[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
    if two_phase:
        # As the estimators do: the first shard scanned alone, the others in two phases.
        (a0, rows0), *rest = shards
        part0 = _exact.shard_candidates(Q, rows0, a0, k, spec, 1, width=width)
        firsts = [_exact.candidates_top(part0, k)] + [
            _exact.shard_topk(Q, rows, k, spec, 1, width=width) for _, rows in rest
        ]
        prefixes = _exact.prefix_tops(firsts, Q.shape[0], k)
        parts = [part0] + [
            _exact.shard_candidates(
                Q, rows, a, k, spec, 1, width=width, first=first, prefix_top=prefix
            )
            for (a, rows), first, prefix in zip(rest, firsts[1:], prefixes[1:], strict=True)
        ]
    else:
        parts = [_exact.shard_candidates(Q, rows, a, k, spec, 1, width=width) for a, rows in shards]
    vals, inds, _ = _exact.merge(parts, Q.shape[0], k, Q.shape[0], X.shape[0])
    return _exact.to_distances(vals, spec), inds


def _single(Q, X, k, metric, p=2.0, w=None):
    ((dist, ind),) = _oxlearn.kneighbors(Q, X, [k], metric, p, w, 1)
    if metric == "cosine" and Q.dtype == np.float32 and X.dtype == np.float32:
        dist = dist.astype(np.float32)
    return dist, ind


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "manhattan", "chebyshev", "cosine"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_replay_equals_single_process_on_tie_heavy_data(seed, metric, dtype):
    """Integer grids with many duplicates; uneven, empty and tiny shards; both strategies."""
    rng = np.random.default_rng(seed)
    for _ in range(6):
        n_train = int(rng.integers(1, 500))
        n_q = int(rng.integers(1, 1300))  # above 1024 queries scikit-learn's strategy flips
        d = int(rng.integers(1, 4))
        k = int(rng.integers(1, min(n_train, 24) + 1))  # k > 15: the introsort path
        levels = int(rng.integers(2, 4))
        X = rng.integers(0, levels, size=(n_train, d)).astype(dtype)
        Q = rng.integers(0, levels, size=(n_q, d)).astype(dtype)
        if metric == "cosine":
            X[X.sum(axis=1) == 0] = 1
            Q[Q.sum(axis=1) == 0] = 1
        cuts = np.sort(rng.integers(0, n_train + 1, size=int(rng.integers(0, 6))))
        bounds = [0, *cuts.tolist(), n_train]
        width = int(rng.integers(1, 6))
        dist, ind = _sharded(Q, X, k, metric, bounds, width, two_phase=bool(rng.integers(2)))
        ref_dist, ref_ind = _single(Q, X, k, metric)
        np.testing.assert_array_equal(ind, ref_ind)
        np.testing.assert_array_equal(dist, ref_dist)
        assert dist.dtype == ref_dist.dtype


@pytest.mark.parametrize(
    ("dtype", "d", "metric"),
    [
        (np.float32, 8, "euclidean"),
        (np.float64, 20, "euclidean"),
        (np.float64, 8, "manhattan"),
    ],
)
def test_replay_on_continuous_data_and_large_shards(dtype, d, metric):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(5000, d)).astype(dtype)
    Q = rng.normal(size=(300, d)).astype(dtype)
    dist, ind = _sharded(Q, X, 10, metric, [0, 1700, 1700, 5000], width=4)
    ref_dist, ref_ind = _single(Q, X, 10, metric)
    np.testing.assert_array_equal(ind, ref_ind)
    np.testing.assert_array_equal(dist, ref_dist)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("d", [3, 8, 15])
def test_gemm_distances_are_exact_on_continuous_rows(seed, d):
    """float64 Euclidean rows below 16 features are computed by the GEMM, whose last bit
    depends on the shape of its call: the engine calls it on 64 query rows of a grid fixed
    by the query index and on full 64-row training blocks, and a search of some queries
    keeps their 64-row groups, so every shard gets the single-process bits."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(5000, d))
    Q = rng.normal(size=(int(rng.integers(5, 700)), d))
    cuts = sorted(rng.integers(0, 5000, size=3).tolist())
    dist, ind = _sharded(Q, X, 10, "euclidean", [0, *cuts, 5000], width=4)
    ref_dist, ref_ind = _single(Q, X, 10, "euclidean")
    np.testing.assert_array_equal(ind, ref_ind)
    np.testing.assert_array_equal(dist, ref_dist)


def test_cosine_is_exact_to_rounding():
    """Cosine (scikit-learn's code in the estimators) is compared to a few ulps."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(5000, 20)).astype(np.float32)
    Q = rng.normal(size=(300, 20)).astype(np.float32)
    dist, ind = _sharded(Q, X, 10, "cosine", [0, 1700, 5000], width=4)
    ref_dist, ref_ind = _single(Q, X, 10, "cosine")
    np.testing.assert_array_equal(ind, ref_ind)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-6, atol=0)


def test_naive_merge_would_order_ties_differently():
    """Why the replay exists: sorting by (distance, index) is not the engine's tie order."""
    rng = np.random.default_rng(3)
    X = rng.integers(0, 3, size=(400, 2)).astype(float)
    Q = rng.integers(0, 3, size=(50, 2)).astype(float)
    _, ref_ind = _single(Q, X, 8, "euclidean")
    all_dist, all_ind = _single(Q, X, 400, "euclidean")
    naive = np.array([all_ind[r][np.lexsort((all_ind[r], all_dist[r]))][:8] for r in range(50)])
    assert not np.array_equal(naive, ref_ind)
    assert np.array_equal(np.sort(naive, axis=1), np.sort(ref_ind, axis=1))


def test_simultaneous_sort_port_matches_sorted_values():
    rng = np.random.default_rng(0)
    for n in (0, 1, 5, 16, 40, 300):
        vals = rng.integers(0, 4, size=n).astype(float).tolist()
        inds = list(range(n))
        before = list(zip(vals, inds, strict=True))
        _exact.simultaneous_sort(vals, inds)
        assert vals == sorted(vals)
        assert sorted(zip(vals, inds, strict=True)) == sorted(before)
