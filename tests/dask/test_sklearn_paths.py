"""Where the single process runs scikit-learn's code, the cluster runs it on each shard.

Three cases, by what the single-process estimator runs (see `oxlearn.dask._tasks`):

* oxlearn's engine and scikit-learn's compiled brute force (``ArgKmin``, metrics computed
  pair by pair): identical results, ties included;
* scikit-learn's trees, and its brute force over a distance matrix (``np.argpartition``):
  the same distances, and the ``k`` smallest by (distance, index), which is the
  single-process answer but for which rows tied at the ``k``-th distance are kept and the
  order of equal distances;
* cosine (a BLAS product whose rounding depends on the shape of the call): distances equal
  to a few ulps, neighbours the same but for near ties.

The single-process references run scikit-learn with one OpenMP thread (as oxlearn's engine
reproduces it): with more, its compiled brute force orders ties by the thread count.
"""

import numpy as np
import oxlearn.neighbors as single
import pytest
from oxlearn.dask import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors
from threadpoolctl import threadpool_limits

da = pytest.importorskip("dask.array")

# Uneven training partitions: an empty one, one smaller than k, and large ones.
TRAIN_CHUNKS = (0, 3, 260, 0, 97, 240)
N_TRAIN = sum(TRAIN_CHUNKS)


def _manhattan(a, b):
    return float(np.abs(a - b).sum())


@pytest.fixture(scope="module")
def grid():
    rng = np.random.default_rng(11)
    X = rng.integers(0, 3, size=(N_TRAIN, 3)).astype(np.float64)
    Q = rng.integers(0, 3, size=(150, 3)).astype(np.float64)
    y = rng.integers(0, 3, size=N_TRAIN)
    return X, Q, y


def _dask(X):
    return da.from_array(X, chunks=(TRAIN_CHUNKS, X.shape[1]))


def _assert_rows_equal(got, ref):
    assert len(got) == len(ref)
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_array_equal(g, r)
        assert np.asarray(g).dtype == np.asarray(r).dtype


# --- identical results: scikit-learn's compiled brute force and oxlearn's engine ----------------

EXACT_PARAMS = [
    {"metric": "braycurtis", "algorithm": "brute"},
    {"metric": "canberra", "algorithm": "brute"},
    {"metric": "minkowski", "p": 0.5, "algorithm": "brute"},
    {"metric": "chebyshev", "algorithm": "brute"},  # oxlearn's engine
]


@pytest.mark.filterwarnings("ignore:Mind that for 0 < p < 1")
@pytest.mark.parametrize("params", EXACT_PARAMS, ids=lambda p: p["metric"] + str(p.get("p", "")))
@pytest.mark.parametrize("k", [1, 17])
def test_compiled_brute_force_is_identical_ties_included(client, grid, params, k):
    X, Q, _y = grid
    nn = NearestNeighbors(n_neighbors=k, block_size=64, **params).fit(_dask(X))
    dist, ind = nn.kneighbors(da.from_array(Q, chunks=70))
    self_dist, self_ind = nn.kneighbors()
    with threadpool_limits(1):
        ref = single.NearestNeighbors(n_neighbors=k, **params).fit(X)
        ref_dist, ref_ind = ref.kneighbors(Q)
        ref_self_dist, ref_self_ind = ref.kneighbors()
    np.testing.assert_array_equal(ind.compute(), ref_ind)
    np.testing.assert_array_equal(dist.compute(), ref_dist)
    np.testing.assert_array_equal(self_ind.compute(), ref_self_ind)
    np.testing.assert_array_equal(self_dist.compute(), ref_self_dist)


@pytest.mark.filterwarnings("ignore:Mind that for 0 < p < 1")
@pytest.mark.parametrize("params", EXACT_PARAMS, ids=lambda p: p["metric"] + str(p.get("p", "")))
def test_vote_on_compiled_brute_force_is_identical(client, grid, params):
    X, Q, y = grid
    clf = KNeighborsClassifier(n_neighbors=7, weights="distance", **params)
    clf.fit(_dask(X), da.from_array(y, chunks=(TRAIN_CHUNKS,)))
    with threadpool_limits(1):
        ref = single.KNeighborsClassifier(n_neighbors=7, weights="distance", **params).fit(X, y)
        ref_proba, ref_pred = ref.predict_proba(Q), ref.predict(Q)
        ref_self = ref.predict(None)
    np.testing.assert_array_equal(clf.predict_proba(Q).compute(), ref_proba)
    np.testing.assert_array_equal(clf.predict(Q).compute(), ref_pred)
    np.testing.assert_array_equal(clf.predict(None).compute(), ref_self)


@pytest.mark.filterwarnings("ignore:Mind that for 0 < p < 1")
@pytest.mark.parametrize(
    "params",
    [*EXACT_PARAMS, {"metric": "minkowski", "algorithm": "brute"}],
    ids=lambda p: p["metric"] + str(p.get("p", "")),
)
@pytest.mark.parametrize("sort_results", [False, True])
def test_radius_neighbors_is_identical(client, grid, params, sort_results):
    X, Q, _ = grid
    radius = 1.5 if params.get("p") != 0.5 else 6.0
    nn = NearestNeighbors(radius=radius, block_size=64, **params).fit(_dask(X))
    dist, ind = nn.radius_neighbors(da.from_array(Q, chunks=70), sort_results=sort_results)
    self_dist, self_ind = nn.radius_neighbors(sort_results=sort_results)
    with threadpool_limits(1):
        ref = single.NearestNeighbors(radius=radius, **params).fit(X)
        ref_dist, ref_ind = ref.radius_neighbors(Q, sort_results=sort_results)
        ref_self_dist, ref_self_ind = ref.radius_neighbors(sort_results=sort_results)
        ref_graph = ref.radius_neighbors_graph(None, mode="distance", sort_results=sort_results)
    assert max(len(r) for r in ref_ind) > 20  # many ties to order
    _assert_rows_equal(ind.compute(), ref_ind)
    _assert_rows_equal(dist.compute(), ref_dist)
    _assert_rows_equal(self_ind.compute(), ref_self_ind)
    _assert_rows_equal(self_dist.compute(), ref_self_dist)
    graph = nn.radius_neighbors_graph(None, mode="distance", sort_results=sort_results)
    np.testing.assert_array_equal(graph.indptr, ref_graph.indptr)
    np.testing.assert_array_equal(graph.indices, ref_graph.indices)
    np.testing.assert_array_equal(graph.data, ref_graph.data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_euclidean_radius_on_continuous_rows(client, dtype):
    """The engine's reduced radius and distances on rows where they round: float64
    Euclidean distances come from a GEMM, whose calls have the same shape on a shard as in
    the single process (64-row query groups, full 64-row training blocks), so they are
    exact, as float32 ones are."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(N_TRAIN, 20)).astype(dtype)
    Q = rng.normal(size=(90, 20)).astype(dtype)
    radius = float(np.quantile(np.linalg.norm(Q[:, None] - X[None, :50], axis=2), 0.2))
    nn = NearestNeighbors(radius=radius).fit(_dask(X))
    ref = single.NearestNeighbors(radius=radius).fit(X)
    for sort_results in (False, True):
        dist, ind = nn.radius_neighbors(Q, sort_results=sort_results)
        ref_dist, ref_ind = ref.radius_neighbors(Q, sort_results=sort_results)
        _assert_rows_equal(ind.compute(), ref_ind)
        _assert_rows_equal(dist.compute(), ref_dist)


def test_kneighbors_of_the_training_rows_on_the_engine(client, grid):
    X, _, _y = grid
    nn = NearestNeighbors(n_neighbors=9, algorithm="brute", block_size=50).fit(_dask(X))
    ref = single.NearestNeighbors(n_neighbors=9, algorithm="brute").fit(X)
    dist, ind = nn.kneighbors()
    ref_dist, ref_ind = ref.kneighbors()
    np.testing.assert_array_equal(ind.compute(), ref_ind)
    np.testing.assert_array_equal(dist.compute(), ref_dist)
    assert ind.chunks[0] == tuple(c for c in TRAIN_CHUNKS if c)
    graph = nn.kneighbors_graph(mode="distance")
    ref_graph = ref.kneighbors_graph(mode="distance")
    assert (graph != ref_graph).nnz == 0
    with pytest.raises(ValueError, match="n_neighbors < n_samples_fit"):
        nn.kneighbors(None, N_TRAIN)


# --- trees and the search over a distance matrix: the (distance, index) rule ---------------


def _by_distance_then_index(ref_all_dist, ref_all_ind, k):
    """The k smallest of every training row by (distance, index), from a full search."""
    order = np.lexsort((ref_all_ind, ref_all_dist), axis=1)[:, :k]
    return (
        np.take_along_axis(ref_all_dist, order, axis=1),
        np.take_along_axis(ref_all_ind, order, axis=1),
    )


SORTED_PARAMS = [
    ({}, "kd_tree"),  # algorithm='auto' on 3 features
    ({"algorithm": "ball_tree", "metric": "chebyshev"}, "ball_tree"),
    ({"algorithm": "kd_tree", "p": 1}, "kd_tree"),
    ({"metric": "hamming"}, "brute"),
    ({"metric": _manhattan}, "ball_tree"),  # a callable, auto: scikit-learn's ball tree
    ({"metric": _manhattan, "algorithm": "brute"}, "brute"),
]


@pytest.mark.parametrize(("params", "method"), SORTED_PARAMS)
@pytest.mark.parametrize("k", [1, 8])
def test_trees_and_distance_matrix_same_distances_ties_by_index(client, grid, params, method, k):
    X, Q, _y = grid
    nn = NearestNeighbors(n_neighbors=k, block_size=64, **params).fit(_dask(X))
    dist, ind = (a.compute() for a in nn.kneighbors(da.from_array(Q, chunks=70)))
    ref_dist, ref_ind = single.NearestNeighbors(n_neighbors=k, **params).fit(X).kneighbors(Q)
    # Distances: bit for bit the single process's (computed pair by pair).
    np.testing.assert_array_equal(dist, ref_dist)
    # Neighbours: the same but for rows tied at the k-th distance, which the cluster
    # picks, and orders, by index.
    strictly_closer = ref_dist < ref_dist[:, -1:]
    for r in range(Q.shape[0]):
        assert set(ind[r][strictly_closer[r]]) == set(ref_ind[r][strictly_closer[r]])
    full = single.NearestNeighbors(n_neighbors=N_TRAIN, **{**params, "algorithm": method})
    expected_dist, expected_ind = _by_distance_then_index(*full.fit(X).kneighbors(Q), k)
    np.testing.assert_array_equal(ind, expected_ind)
    np.testing.assert_array_equal(dist, expected_dist)


def test_tree_radius_same_rows_in_index_order(client, grid):
    X, Q, _ = grid
    nn = NearestNeighbors(radius=1.2).fit(_dask(X))  # auto: a KD tree
    ref = single.NearestNeighbors(radius=1.2).fit(X)
    assert ref._fit_method == "kd_tree"
    ind = nn.radius_neighbors(Q, return_distance=False).compute()
    ref_dist, ref_ind = ref.radius_neighbors(Q)
    dist, ind_sorted = (a.compute() for a in nn.radius_neighbors(Q, sort_results=True))
    for r in range(Q.shape[0]):
        np.testing.assert_array_equal(ind[r], np.sort(ref_ind[r]))
        np.testing.assert_array_equal(dist[r], np.sort(ref_dist[r]))
        order = np.lexsort((ref_ind[r], ref_dist[r]))
        np.testing.assert_array_equal(ind_sorted[r], ref_ind[r][order])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cosine_same_to_rounding(client, dtype):
    """Cosine is a BLAS product: a shard's distances may differ from the single process's
    by a few ulps (the product's rounding depends on its shape), and rows that close to
    the k-th distance may be swapped."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(N_TRAIN, 12)).astype(dtype)
    Q = rng.normal(size=(120, 12)).astype(dtype)
    k = 7
    nn = NearestNeighbors(n_neighbors=k, metric="cosine").fit(_dask(X))
    dist, ind = (a.compute() for a in nn.kneighbors(Q))
    ref_dist, ref_ind = single.NearestNeighbors(n_neighbors=k, metric="cosine").fit(X).kneighbors(Q)
    assert dist.dtype == ref_dist.dtype
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dist, ref_dist, rtol=rtol, atol=rtol)
    near_kth = np.abs(ref_dist - ref_dist[:, -1:]) <= rtol * 4
    for r in range(Q.shape[0]):
        sure = ~near_kth[r]
        assert set(ind[r][sure]) == set(ref_ind[r][sure])


# --- multi-output targets ------------------------------------------------------------------


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_multi_output_vote_and_average(client, grid, weights):
    X, Q, y = grid
    Y = np.column_stack([y, (y + X[:, 0].astype(int)) % 4])
    targets = np.column_stack([y * 0.5, X[:, 1] - y])
    Yd = da.from_array(Y, chunks=(TRAIN_CHUNKS, 2))
    clf = KNeighborsClassifier(n_neighbors=5, weights=weights, algorithm="brute")
    clf.fit(_dask(X), Yd)
    ref = single.KNeighborsClassifier(n_neighbors=5, weights=weights, algorithm="brute")
    ref.fit(X, Y)
    np.testing.assert_array_equal(clf.predict(Q).compute(), ref.predict(Q))
    proba = clf.predict_proba(Q)
    assert len(proba) == 2
    for p, r in zip(proba, ref.predict_proba(Q), strict=True):
        np.testing.assert_array_equal(p.compute(), r)
    reg = KNeighborsRegressor(n_neighbors=5, weights=weights, algorithm="brute")
    reg.fit(_dask(X), da.from_array(targets, chunks=(TRAIN_CHUNKS, 2)))
    ref_reg = single.KNeighborsRegressor(n_neighbors=5, weights=weights, algorithm="brute")
    np.testing.assert_array_equal(reg.predict(Q).compute(), ref_reg.fit(X, targets).predict(Q))
