"""`oxlearn.dask.neighbors` on a two-worker LocalCluster against `oxlearn.neighbors`."""

import os
import signal
import time

import numpy as np
import oxlearn.neighbors as single
import pytest
from oxlearn.dask import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")


class BRUTE:
    """The single-process estimators searching by brute force (with ``algorithm='auto'``
    they run scikit-learn's trees on data of few features; see test_sklearn_paths.py)."""

    @staticmethod
    def NearestNeighbors(**kw):
        return single.NearestNeighbors(algorithm="brute", **kw)

    @staticmethod
    def KNeighborsClassifier(**kw):
        return single.KNeighborsClassifier(algorithm="brute", **kw)

    @staticmethod
    def KNeighborsRegressor(**kw):
        return single.KNeighborsRegressor(algorithm="brute", **kw)


# Uneven training partitions: an empty one, one smaller than k, and large ones.
TRAIN_CHUNKS = (0, 3, 260, 0, 97, 240)
N_TRAIN = sum(TRAIN_CHUNKS)


def _grid(rng, n, d=3, levels=3, dtype=np.float64):
    """Integer grid points: many duplicated rows and tied distances."""
    return rng.integers(0, levels, size=(n, d)).astype(dtype)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = _grid(rng, N_TRAIN)
    Q = _grid(rng, 333)
    y = rng.integers(0, 3, size=N_TRAIN)
    return X, Q, y


@pytest.mark.parametrize("k", [1, 7, 20])
@pytest.mark.parametrize("metric", ["minkowski", "manhattan", "chebyshev", "l2"])
def test_kneighbors_equals_single_process(client, data, k, metric):
    X, Q, _ = data
    Xd = da.from_array(X, chunks=(TRAIN_CHUNKS, 3))
    Qd = da.from_array(Q, chunks=((100, 0, 200, 33), 3))
    nn = NearestNeighbors(n_neighbors=k, metric=metric, block_size=64, algorithm="brute").fit(Xd)
    dist, ind = nn.kneighbors(Qd)
    assert isinstance(ind, da.Array)
    assert ind.chunks[0] == Qd.chunks[0]
    dist, ind = dist.compute(), ind.compute()
    ref_dist, ref_ind = BRUTE.NearestNeighbors(n_neighbors=k, metric=metric).fit(X).kneighbors(Q)
    np.testing.assert_array_equal(ind, ref_ind)
    np.testing.assert_array_equal(dist, ref_dist)
    assert dist.dtype == ref_dist.dtype


def test_float32_continuous_and_many_queries(client):
    """float32 rows (screened, exact) and more than 1024 queries (the other heap strategy)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 16)).astype(np.float32)
    Q = rng.normal(size=(1500, 16)).astype(np.float32)
    Xd = da.from_array(X, chunks=((1000, 5, 1995), 16))
    dist, ind = NearestNeighbors(n_neighbors=10, block_size=512).fit(Xd).kneighbors(Q)
    ref_dist, ref_ind = BRUTE.NearestNeighbors(n_neighbors=10).fit(X).kneighbors(Q)
    np.testing.assert_array_equal(ind.compute(), ref_ind)
    np.testing.assert_array_equal(dist.compute(), ref_dist)


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_classifier_equals_single_process(client, data, weights):
    X, Q, y = data
    Xd = da.from_array(X, chunks=(TRAIN_CHUNKS, 3))
    yd = da.from_array(y, chunks=(TRAIN_CHUNKS,))
    clf = KNeighborsClassifier(
        n_neighbors=6, weights=weights, block_size=100, algorithm="brute"
    ).fit(Xd, yd)
    ref = BRUTE.KNeighborsClassifier(n_neighbors=6, weights=weights).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, ref.classes_)
    Qd = da.from_array(Q, chunks=(150, 3))
    np.testing.assert_array_equal(clf.predict(Qd).compute(), ref.predict(Q))
    np.testing.assert_array_equal(clf.predict_proba(Qd).compute(), ref.predict_proba(Q))
    y_q = np.random.default_rng(5).integers(0, 3, size=Q.shape[0])
    assert clf.score(Qd, y_q) == ref.score(Q, y_q)


def test_classifier_from_dataframe_with_string_labels(client, data):
    pd = pytest.importorskip("pandas")
    X, Q, y = data
    labels = np.array(["cat", "dog", "eel"])[y]
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    Xdf = dd.from_pandas(frame, npartitions=3)
    ydf = dd.from_pandas(pd.Series(labels), npartitions=3)
    clf = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(Xdf, ydf)
    ref = BRUTE.KNeighborsClassifier(n_neighbors=5).fit(X, labels)
    np.testing.assert_array_equal(clf.predict(da.from_array(Q)).compute(), ref.predict(Q))


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_regressor_equals_single_process(client, data, weights):
    X, Q, y = data
    target = y * 1.5 + X[:, 0]
    Xd = da.from_array(X, chunks=(TRAIN_CHUNKS, 3))
    yd = da.from_array(target, chunks=(TRAIN_CHUNKS,))
    reg = KNeighborsRegressor(n_neighbors=4, weights=weights, algorithm="brute").fit(Xd, yd)
    ref = BRUTE.KNeighborsRegressor(n_neighbors=4, weights=weights).fit(X, target)
    np.testing.assert_array_equal(
        reg.predict(da.from_array(Q, chunks=80)).compute(), ref.predict(Q)
    )
    assert reg.score(da.from_array(Q), target[: Q.shape[0]]) == ref.score(Q, target[: Q.shape[0]])


def test_numpy_inputs(client, data):
    X, Q, _ = data
    nn = NearestNeighbors(n_neighbors=3, block_size=128, algorithm="brute").fit(X)
    ind = nn.kneighbors(Q, return_distance=False)
    ref = BRUTE.NearestNeighbors(n_neighbors=3).fit(X).kneighbors(Q, return_distance=False)
    np.testing.assert_array_equal(ind.compute(), ref)


def _message(exc_info):
    return type(exc_info.value), str(exc_info.value)


@pytest.mark.parametrize(
    ("params", "fit_X", "query"),
    [
        ({"n_neighbors": 0}, None, None),
        ({"metric": "nonsense"}, None, None),
        ({"p": 0.5}, None, None),
        ({}, "nan", None),
        ({}, None, "nan"),
        ({}, None, "features"),
        ({"n_neighbors": 1000}, None, None),
    ],
)
def test_bad_input_gets_the_single_process_errors(client, data, params, fit_X, query):
    X, Q, _ = data
    X, Q = X.copy(), Q.copy()
    if fit_X == "nan":
        X[200, 1] = np.nan
    if query == "nan":
        Q[5, 0] = np.nan
    if query == "features":
        Q = Q[:, :2]
    with pytest.raises(Exception) as expected:
        single.NearestNeighbors(**params).fit(X).kneighbors(Q)
    with pytest.raises(Exception) as got:
        nn = NearestNeighbors(**params).fit(da.from_array(X, chunks=(TRAIN_CHUNKS, 3)))
        dask_result = nn.kneighbors(da.from_array(Q, chunks=100))
        dask_result[1].compute()
    assert _message(got) == _message(expected)


def test_unreachable_scheduler_names_the_address(monkeypatch):
    from oxlearn.dask import _cluster

    monkeypatch.setattr(_cluster, "CONNECT_TIMEOUT", 1)
    address = "tcp://127.0.0.1:9"
    with pytest.raises(ConnectionError, match=r"127\.0\.0\.1:9"):
        NearestNeighbors(client=address).fit(np.zeros((4, 2)))


def test_closed_client_is_a_clear_error():
    import distributed

    closed = distributed.Client(
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ),
        set_as_default=False,
    )
    cluster = closed.cluster
    closed.close()
    cluster.close()
    with pytest.raises(ConnectionError, match="closed"):
        NearestNeighbors(client=closed).fit(np.zeros((4, 2)))


def test_worker_killed_mid_search_gives_the_same_result(client):
    """Dask's retry recomputes the lost shard and tasks; the results are unchanged."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20000, 16)).astype(np.float32)
    Q = rng.normal(size=(6000, 16)).astype(np.float32)
    nn = NearestNeighbors(n_neighbors=5, block_size=100, n_jobs=1)
    nn.fit(da.from_array(X, chunks=5000))
    dist, ind = nn.kneighbors(da.from_array(Q, chunks=1000))
    futures = client.compute([dist, ind])
    time.sleep(0.5)
    assert not all(f.done() for f in futures), "the search finished before the kill"
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    dist, ind = client.gather(futures)
    ref_dist, ref_ind = BRUTE.NearestNeighbors(n_neighbors=5).fit(X).kneighbors(Q)
    np.testing.assert_array_equal(ind, ref_ind)
    np.testing.assert_array_equal(dist, ref_dist)
    client.wait_for_workers(2, timeout=60)
