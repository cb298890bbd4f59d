"""Parity with scikit-learn's brute-force neighbours (run with one thread), ties included."""

import copy
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from oxlearn import neighbors as oxn
from sklearn import neighbors as skn
from sklearn.datasets import load_digits
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

METRICS = [
    ("minkowski", 2, None),
    ("minkowski", 1, None),
    ("minkowski", 3, None),
    ("minkowski", np.inf, None),
    ("minkowski", 1.5, {"w": [0.5, 1.0, 2.0, 0.0, 1.5, 1.0]}),
    ("euclidean", 2, None),
    ("l2", 2, None),
    ("sqeuclidean", 2, None),
    ("manhattan", 2, None),
    ("cityblock", 2, None),
    ("l1", 2, None),
    ("chebyshev", 2, None),
    ("cosine", 2, None),
]
METRIC_IDS = [f"{m}-p{p}" + ("-w" if mp else "") for m, p, mp in METRICS]


def _user_weights(dist):
    return np.exp(-dist)


WEIGHTS = ["uniform", "distance", _user_weights]


def sk(cls, **kw):
    # scikit-learn's predict_proba writes "p" into metric_params in place: never share it.
    return getattr(skn, cls)(algorithm="brute", **copy.deepcopy(kw))


def ox(cls, **kw):
    # (With algorithm="auto" both would search low-dimensional data with scikit-learn's tree.)
    return getattr(oxn, cls)(algorithm="brute", **copy.deepcopy(kw))


def assert_votes_equal(actual, desired, exact):
    """Exact where distances are exact; else to 1e-12 (distance-weighted votes on random
    floats inherit the last-bit differences of the GEMM's summation order)."""
    if exact:
        assert_array_equal(actual, desired)
    else:
        assert_allclose(actual, desired, rtol=1e-12, atol=1e-14)


def layouts(X):
    """The same data as C-contiguous, Fortran-ordered and a non-contiguous view."""
    wide = np.repeat(X, 2, axis=1)
    return {"C": np.ascontiguousarray(X), "F": np.asfortranarray(X), "strided": wide[:, ::2]}


# float64 data of 16+ features that is not small integers: screened with float32 bounds
# first (`neighbors/screen.rs`), which must not change a neighbour or its order. (Duplicated
# float rows are left to the Rust tests of the screening: scikit-learn's BLAS can round two
# copies of a row differently, so whether they tie depends on its blocking.)
@pytest.mark.parametrize("kind", ["normal", "offset", "outliers"])
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
def test_kneighbors_float64_screened(kind, metric):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(600, 24))
    Xq = rng.normal(size=(150, 24))
    if kind == "offset":
        X, Xq = X + 1e4, Xq + 1e4
    elif kind == "outliers":
        X[::29] *= 1e5
    ks = [1, 5, 16]
    with threadpool_limits(1):
        refs = [
            sk("NearestNeighbors", n_neighbors=k, metric=metric).fit(X).kneighbors(Xq) for k in ks
        ]
    for n_jobs in (1, 2):
        est = ox("NearestNeighbors", metric=metric, n_jobs=n_jobs).fit(X)
        for k, (ref_d, ref_i) in zip(ks, refs, strict=True):
            d, i = est.kneighbors(Xq, n_neighbors=k)
            assert_array_equal(i, ref_i)
            # `||q||^2 - 2 q.t + ||t||^2` loses about eps * (||q||^2 + ||t||^2) / d^2, about
            # 1e-7 relative on the offset data, in both libraries.
            assert_allclose(d, ref_d, rtol=1e-12 if kind != "offset" else 1e-6)


@pytest.fixture(scope="module")
def random_data():
    rng = np.random.default_rng(42)
    X = rng.normal(size=(300, 6))
    Xq = rng.normal(size=(70, 6))
    y = rng.integers(0, 4, size=300)
    yr = rng.normal(size=(300, 2))
    return X, Xq, y, yr


@pytest.mark.parametrize(("metric", "p", "metric_params"), METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_kneighbors_float64_exact(random_data, metric, p, metric_params, layout):
    X, Xq, _, _ = random_data
    kw = dict(n_neighbors=7, metric=metric, p=p, metric_params=metric_params)
    with threadpool_limits(1):
        ref_d, ref_i = sk("NearestNeighbors", **kw).fit(X).kneighbors(Xq)
    est = ox("NearestNeighbors", **kw).fit(layouts(X)[layout])
    d, i = est.kneighbors(layouts(Xq)[layout])
    assert_array_equal(i, ref_i)
    assert d.dtype == np.float64
    assert_allclose(d, ref_d, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(("metric", "p", "metric_params"), METRICS, ids=METRIC_IDS)
def test_kneighbors_float32_close(random_data, metric, p, metric_params):
    # float32 is searched in float32 while scikit-learn accumulates in float64: distances
    # agree to float32 precision, and indices agree wherever the distances are not near-tied.
    X, Xq, _, _ = random_data
    X32, Xq32 = X.astype(np.float32), Xq.astype(np.float32)
    kw = dict(n_neighbors=7, metric=metric, p=p, metric_params=metric_params)
    with threadpool_limits(1):
        ref_d, ref_i = sk("NearestNeighbors", **kw).fit(X32).kneighbors(Xq32)
    est = ox("NearestNeighbors", **kw).fit(X32)
    assert est._fit_X.dtype == np.float32
    d, i = est.kneighbors(Xq32)
    # scikit-learn returns float64 distances, except for cosine (computed in float32).
    assert d.dtype == ref_d.dtype
    assert_allclose(d, ref_d, rtol=2e-5, atol=2e-5)
    mismatch = i != ref_i
    if mismatch.any():
        # Only allowed where the reference's distances at those ranks are near-tied.
        gaps = np.abs(ref_d[mismatch] - d[mismatch])
        assert np.all(gaps <= 1e-4 * np.maximum(1.0, ref_d[mismatch]))


@pytest.mark.parametrize(("metric", "p", "metric_params"), METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize(
    ("fit_dtype", "query_dtype"), [(np.float32, np.float64), (np.float64, np.float32)]
)
def test_mixed_dtypes_search_in_float64(
    random_data, metric, p, metric_params, fit_dtype, query_dtype
):
    # Data and queries of different dtypes: scikit-learn computes in float64 (its
    # check_pairwise_arrays), and so do we, rather than rounding a query to a float32 fit.
    X, Xq, _, _ = random_data
    X, Xq = X.astype(fit_dtype), Xq.astype(query_dtype)
    kw = dict(n_neighbors=7, radius=1.5, metric=metric, p=p, metric_params=metric_params)
    with threadpool_limits(1):
        ref = sk("NearestNeighbors", **kw).fit(X)
        ref_d, ref_i = ref.kneighbors(Xq)
        ref_rd, ref_ri = ref.radius_neighbors(Xq, sort_results=True)
    est = ox("NearestNeighbors", **kw).fit(X)
    d, i = est.kneighbors(Xq)
    assert_array_equal(i, ref_i)
    assert d.dtype == ref_d.dtype == np.float64
    assert_allclose(d, ref_d, rtol=1e-12, atol=1e-13)
    rd, ri = est.radius_neighbors(Xq, sort_results=True)
    for q in range(len(Xq)):
        assert_array_equal(ri[q], ref_ri[q])
        assert rd[q].dtype == ref_rd[q].dtype
        assert_allclose(rd[q], ref_rd[q], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(("metric", "p", "metric_params"), METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("weights", WEIGHTS, ids=["uniform", "distance", "callable"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_classifier_and_regressor(random_data, metric, p, metric_params, weights, dtype):
    X, Xq, y, yr = random_data
    X, Xq = X.astype(dtype), Xq.astype(dtype)
    kw = dict(n_neighbors=9, metric=metric, p=p, metric_params=metric_params, weights=weights)
    with threadpool_limits(1):
        skc = sk("KNeighborsClassifier", **kw).fit(X, y)
        ref_pred, ref_proba = skc.predict(Xq), skc.predict_proba(Xq)
        skr = sk("KNeighborsRegressor", **kw).fit(X, yr)
        ref_reg = skr.predict(Xq)
        ref_reg1 = sk("KNeighborsRegressor", **kw).fit(X, yr[:, 0]).predict(Xq)
    oxc = ox("KNeighborsClassifier", **kw).fit(X, y)
    oxr = ox("KNeighborsRegressor", **kw).fit(X, yr)
    if dtype == np.float64:
        exact = weights == "uniform"
        assert_array_equal(oxc.predict(Xq), ref_pred)
        assert_votes_equal(oxc.predict_proba(Xq), ref_proba, exact)
        assert_votes_equal(oxr.predict(Xq), ref_reg, exact)
        reg1 = ox("KNeighborsRegressor", **kw).fit(X, yr[:, 0]).predict(Xq)
        assert_votes_equal(reg1, ref_reg1, exact)
    else:
        assert np.mean(oxc.predict(Xq) == ref_pred) >= 0.97
        assert_allclose(oxc.predict_proba(Xq), ref_proba, atol=0.25)
        assert_allclose(oxr.predict(Xq), ref_reg, rtol=1e-3, atol=0.2)


def test_precomputed_matches(random_data):
    X, Xq, y, _ = random_data
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    Dq = np.sqrt(((Xq[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    with threadpool_limits(1):
        ref = sk("KNeighborsClassifier", n_neighbors=5, metric="precomputed").fit(D, y)
        ref_d, ref_i = ref.kneighbors(Dq)
        ref_p = ref.predict_proba(Dq)
    est = ox("KNeighborsClassifier", n_neighbors=5, metric="precomputed").fit(D, y)
    d, i = est.kneighbors(Dq)
    assert_array_equal(i, ref_i)
    assert_allclose(d, ref_d, rtol=1e-12)
    assert_array_equal(est.predict_proba(Dq), ref_p)
    _d0, i0 = est.kneighbors()
    _r0, ri0 = ref.kneighbors()
    assert_array_equal(i0, ri0)


@pytest.mark.parametrize(
    ("fit_dtype", "query_dtype"),
    [(np.float64, np.float64), (np.float32, np.float32), (np.float32, np.float64), (int, int)],
)
def test_precomputed_ties_match(fit_dtype, query_dtype):
    """Small-integer distance matrices tie everywhere: scikit-learn's argpartition decides."""
    rng = np.random.default_rng(3)
    D = rng.integers(0, 4, size=(57, 57))
    D = D + D.T
    np.fill_diagonal(D, 0)
    Dq = rng.integers(0, 5, size=(23, 57))
    y = rng.integers(0, 3, size=57)
    D, Dq = D.astype(fit_dtype), Dq.astype(query_dtype)
    for k in (1, 5, 30, 56):
        for weights in ("uniform", "distance"):
            kw = {"n_neighbors": k, "metric": "precomputed", "weights": weights}
            ref = sk("KNeighborsClassifier", **kw).fit(D, y)
            est = ox("KNeighborsClassifier", **kw).fit(D, y)
            ref_d, ref_i = ref.kneighbors(Dq)
            d, i = est.kneighbors(Dq)
            assert_array_equal(i, ref_i)
            assert_array_equal(d, ref_d)
            assert d.dtype == ref_d.dtype
            assert_array_equal(est.kneighbors(), ref.kneighbors())
            assert_array_equal(est.predict(Dq), ref.predict(Dq))
            assert_array_equal(est.predict_proba(Dq), ref.predict_proba(Dq))
        reg = ox("KNeighborsRegressor", n_neighbors=k, metric="precomputed").fit(D, y * 1.5)
        ref_reg = sk("KNeighborsRegressor", n_neighbors=k, metric="precomputed").fit(D, y * 1.5)
        assert_array_equal(reg.predict(Dq), ref_reg.predict(Dq))


def tie_data(n_train, n_query, n_features=4, levels=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, levels, size=(n_train, n_features)).astype(np.float64)
    Xq = rng.integers(0, levels, size=(n_query, n_features)).astype(np.float64)
    y = rng.integers(0, 3, size=n_train)
    return X, Xq, y


# (n_train, n_query): scikit-learn's 1-thread strategy is parallel_on_Y for the first two
# (few queries, at least as many training rows), parallel_on_X for the others.
@pytest.mark.parametrize(("n_train", "n_query"), [(200, 50), (600, 600), (50, 200), (300, 1100)])
@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "chebyshev", "sqeuclidean"])
@pytest.mark.parametrize("k", [1, 4, 7, 20])
def test_ties_order_exact(n_train, n_query, metric, k):
    X, Xq, y = tie_data(n_train, n_query)
    with threadpool_limits(1):
        ref = sk("KNeighborsClassifier", n_neighbors=k, metric=metric).fit(X, y)
        ref_d, ref_i = ref.kneighbors(Xq)
        ref_pred = ref.predict(Xq)
        ref_ind0 = ref.kneighbors(return_distance=False)
    for n_jobs in (1, 2):
        est = ox("KNeighborsClassifier", n_neighbors=k, metric=metric, n_jobs=n_jobs).fit(X, y)
        d, i = est.kneighbors(Xq)
        assert_array_equal(i, ref_i)
        assert_array_equal(d, ref_d)
        assert_array_equal(est.predict(Xq), ref_pred)
        assert_array_equal(est.kneighbors(return_distance=False), ref_ind0)


# Euclidean searches whose queries mix tied and tie-free nearest neighbours: the tie-free
# ones take the top-list reduction, the others scikit-learn's heaps. Integer data (scale 1)
# runs through the integer distance kernel, multiples of 0.5 through the float GEMM; both
# are exact, so the ties are real. k = 7 and 15 fill the 8 and 16 slots, k = 16 and
# k = n_train take the heaps alone.
@pytest.mark.parametrize(("levels", "n_features"), [(12, 8), (40, 4), (3, 16)])
@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize(("n_train", "n_query"), [(200, 50), (500, 700), (30, 20)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ties_order_exact_mixed(levels, n_features, scale, n_train, n_query, dtype):
    X, Xq, y = tie_data(n_train, n_query, n_features=n_features, levels=levels, seed=levels)
    X, Xq = (X * scale).astype(dtype), (Xq * scale).astype(dtype)
    Xq[: n_query // 4] = X[: n_query // 4]  # exact matches: distance 0, ties among duplicates
    ks = [1, 5, 7, 9, 15, 16, n_train]
    with threadpool_limits(1):
        refs = [sk("NearestNeighbors", n_neighbors=k).fit(X).kneighbors(Xq) for k in ks]
    est = ox("NearestNeighbors", n_jobs=2).fit(X)
    for k, (ref_d, ref_i) in zip(ks, refs, strict=True):
        d, i = est.kneighbors(Xq, n_neighbors=k)
        assert_array_equal(i, ref_i)
        assert_array_equal(d, ref_d)
    # Several k from one search (the widest decides the slots: 16 here).
    yq = np.random.default_rng(levels).integers(0, 3, size=n_query)
    sweep = [1, 5, 15, 7]
    got = oxn.knn_sweep_scores(X, y, Xq, yq, sweep, n_jobs=2, algorithm="brute")
    with threadpool_limits(1):
        expected = [
            sk("KNeighborsClassifier", n_neighbors=k).fit(X, y).score(Xq, yq) for k in sweep
        ]
    assert_array_equal(got, expected)


@pytest.mark.parametrize("weights", WEIGHTS, ids=["uniform", "distance", "callable"])
def test_ties_votes_exact(weights):
    X, Xq, y = tie_data(400, 300, levels=4, seed=3)
    Xq[:40] = X[:40]  # exact matches: zero distances
    for k in (2, 6, 9, 12):
        with threadpool_limits(1):
            ref = sk("KNeighborsClassifier", n_neighbors=k, weights=weights).fit(X, y)
            refr = sk("KNeighborsRegressor", n_neighbors=k, weights=weights).fit(X, y * 1.5)
            expected = ref.predict(Xq), ref.predict_proba(Xq), refr.predict(Xq)
        est = ox("KNeighborsClassifier", n_neighbors=k, weights=weights).fit(X, y)
        estr = ox("KNeighborsRegressor", n_neighbors=k, weights=weights).fit(X, y * 1.5)
        assert_array_equal(est.predict(Xq), expected[0])
        assert_array_equal(est.predict_proba(Xq), expected[1])
        assert_array_equal(estr.predict(Xq), expected[2])


def test_distance_weights_zero_distance_dominates():
    X = np.array([[0.0], [0.0], [1.0], [2.0]])
    y = np.array([0, 0, 1, 1])
    est = ox("KNeighborsClassifier", n_neighbors=4, weights="distance").fit(X, y)
    assert_array_equal(est.predict_proba([[0.0]]), [[1.0, 0.0]])
    reg = ox("KNeighborsRegressor", n_neighbors=3, weights="distance").fit(X, [5.0, 7.0, 1.0, 1.0])
    assert_array_equal(reg.predict([[0.0]]), [6.0])


def test_digits_study_exact():
    X, y = load_digits(return_X_y=True)
    folds = list(KFold(n_splits=4).split(X))
    ours = np.mean(
        [oxn.knn_sweep_scores(X[tr], y[tr], X[te], y[te], range(1, 10)) for tr, te in folds],
        axis=0,
    )
    for k in range(1, 10):
        est_scores = [
            ox("KNeighborsClassifier", n_neighbors=k, n_jobs=2)
            .fit(X[tr], y[tr])
            .score(X[te], y[te])
            for tr, te in folds
        ]
        with threadpool_limits(1):
            ref = np.mean(
                [
                    skn.KNeighborsClassifier(n_neighbors=k).fit(X[tr], y[tr]).score(X[te], y[te])
                    for tr, te in folds
                ]
            )
        assert np.mean(est_scores) == ref
        assert ours[k - 1] == ref
    assert ours[0] == 0.9677233358079684


@pytest.mark.parametrize("weights", WEIGHTS, ids=["uniform", "distance", "callable"])
@pytest.mark.parametrize("metric", ["minkowski", "manhattan", "chebyshev"])
def test_sweep_equals_per_k_scores_on_ties(weights, metric):
    X, Xq, y = tie_data(500, 260, levels=3, seed=7)
    yq = np.random.default_rng(1).integers(0, 3, size=len(Xq))
    sw = np.random.default_rng(2).random(len(Xq))
    ks = [9, 1, 3, 2, 5, 4, 8, 7, 6, 3]
    got = oxn.knn_sweep_scores(X, y, Xq, yq, ks, weights=weights, metric=metric, algorithm="brute")
    got_w = oxn.knn_sweep_scores(
        X,
        y,
        Xq,
        yq,
        ks,
        weights=weights,
        metric=metric,
        sample_weight=sw,
        n_jobs=2,
        algorithm="brute",
    )
    for pos, k in enumerate(ks):
        with threadpool_limits(1):
            ref = sk("KNeighborsClassifier", n_neighbors=k, weights=weights, metric=metric)
            ref.fit(X, y)
            assert got[pos] == ref.score(Xq, yq)
            assert got_w[pos] == ref.score(Xq, yq, sample_weight=sw)


def test_n_jobs_does_not_change_results(random_data):
    X, Xq, y, _ = random_data
    outs = []
    for n_jobs in (1, 2, 3, -1, None):
        est = ox("KNeighborsClassifier", n_neighbors=6, weights="distance", n_jobs=n_jobs)
        est.fit(X, y)
        outs.append((*est.kneighbors(Xq), est.predict_proba(Xq)))
    for other in outs[1:]:
        for a, b in zip(outs[0], other, strict=True):
            assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("metric", "p"),
    [
        ("minkowski", 2),
        ("manhattan", 2),
        ("minkowski", 3),
        ("sqeuclidean", 2),
        ("cosine", 2),
        ("chebyshev", 2),
    ],
)
@pytest.mark.parametrize("sort_results", [False, True])
def test_radius_neighbors(random_data, metric, p, sort_results):
    X, Xq, _, _ = random_data
    radius = 2.5 if metric != "cosine" else 0.5
    if metric == "sqeuclidean":
        radius = 6.0
    kw = dict(radius=radius, metric=metric, p=p)
    with threadpool_limits(1):
        ref = sk("NearestNeighbors", **kw).fit(X)
        rd, ri = ref.radius_neighbors(Xq, sort_results=sort_results)
        rd0, ri0 = ref.radius_neighbors(sort_results=sort_results)
        rg = ref.radius_neighbors_graph(Xq, mode="distance", sort_results=sort_results)
    est = ox("NearestNeighbors", **kw).fit(X)
    d, i = est.radius_neighbors(Xq, sort_results=sort_results)
    d0, i0 = est.radius_neighbors(sort_results=sort_results)
    assert d.dtype == object and i.dtype == object and len(i) == len(Xq)
    for a, b, c, e in zip(d, i, rd, ri, strict=True):
        assert_array_equal(b, e)
        assert_allclose(a, c, rtol=1e-12, atol=1e-13)
    for a, b, c, e in zip(d0, i0, rd0, ri0, strict=True):
        assert_array_equal(b, e)
        assert_allclose(a, c, rtol=1e-12, atol=1e-13)
    g = est.radius_neighbors_graph(Xq, mode="distance", sort_results=sort_results)
    assert type(g) is type(rg)
    assert_array_equal(g.indptr, rg.indptr)
    assert_array_equal(g.indices, rg.indices)
    assert_allclose(g.data, rg.data, rtol=1e-12, atol=1e-13)
    gc = est.radius_neighbors_graph(Xq)
    assert_array_equal(gc.toarray(), ref.radius_neighbors_graph(Xq).toarray())
    assert_array_equal(
        est.radius_neighbors(Xq, radius=0.0, return_distance=False)[0],
        ref.radius_neighbors(Xq, radius=0.0, return_distance=False)[0],
    )


def test_radius_ties_sorted_exact():
    X, Xq, _ = tie_data(300, 40, levels=3, seed=5)
    with threadpool_limits(1):
        rd, ri = sk("NearestNeighbors", radius=1.5).fit(X).radius_neighbors(Xq, sort_results=True)
    d, i = ox("NearestNeighbors", radius=1.5).fit(X).radius_neighbors(Xq, sort_results=True)
    for a, b, c, e in zip(d, i, rd, ri, strict=True):
        assert_array_equal(b, e)
        assert_array_equal(a, c)


@pytest.mark.parametrize("mode", ["connectivity", "distance"])
def test_kneighbors_graph(random_data, mode):
    X, Xq, _, _ = random_data
    with threadpool_limits(1):
        ref = sk("NearestNeighbors", n_neighbors=4).fit(X)
        expected = ref.kneighbors_graph(Xq, mode=mode), ref.kneighbors_graph(mode=mode)
    est = ox("NearestNeighbors", n_neighbors=4).fit(X)
    for got, exp in zip(
        (est.kneighbors_graph(Xq, mode=mode), est.kneighbors_graph(mode=mode)),
        expected,
        strict=True,
    ):
        assert type(got) is type(exp)
        assert_array_equal(got.indices, exp.indices)
        assert_array_equal(got.indptr, exp.indptr)
        assert_allclose(got.data, exp.data, rtol=1e-12)


def test_kneighbors_query_is_train_with_duplicates():
    X = np.array([[0.0], [0.0], [0.0], [1.0], [2.0]])
    with threadpool_limits(1):
        ref_d, ref_i = sk("NearestNeighbors", n_neighbors=2).fit(X).kneighbors()
    d, i = ox("NearestNeighbors", n_neighbors=2).fit(X).kneighbors()
    assert_array_equal(i, ref_i)
    assert_array_equal(d, ref_d)
    assert_array_equal(
        ox("KNeighborsClassifier", n_neighbors=2).fit(X, [0, 0, 1, 1, 1]).predict(None),
        sk("KNeighborsClassifier", n_neighbors=2).fit(X, [0, 0, 1, 1, 1]).predict(None),
    )


def test_multioutput_and_string_labels(random_data):
    X, Xq, y, _yr = random_data
    labels = np.array(["cat", "dog", "emu", "yak"])[y]
    Y2 = np.column_stack([labels, y % 2])
    for weights in ("uniform", "distance"):
        with threadpool_limits(1):
            ref = sk("KNeighborsClassifier", n_neighbors=5, weights=weights).fit(X, Y2)
            rp, rpp = ref.predict(Xq), ref.predict_proba(Xq)
        est = ox("KNeighborsClassifier", n_neighbors=5, weights=weights).fit(X, Y2)
        assert est.outputs_2d_
        assert_array_equal(est.predict(Xq), rp)
        for a, b in zip(est.predict_proba(Xq), rpp, strict=True):
            assert_votes_equal(a, b, exact=weights == "uniform")
        for a, b in zip(est.classes_, ref.classes_, strict=True):
            assert_array_equal(a, b)
    est = ox("KNeighborsClassifier", n_neighbors=3).fit(X, labels)
    assert est.predict(Xq).dtype == labels.dtype
    assert_array_equal(est.classes_, ["cat", "dog", "emu", "yak"])


def test_fitted_attributes_match(random_data):
    X, _, y, _ = random_data
    for kw in (
        {},
        {"p": 1},
        {"p": np.inf},
        {"p": 3},
        {"metric": "cosine"},
        {"metric_params": {"p": 1}, "p": None},
    ):
        ref = skn.KNeighborsClassifier(**kw).fit(X, y)
        est = oxn.KNeighborsClassifier(**kw).fit(X, y)
        assert est.effective_metric_ == ref.effective_metric_
        assert est.effective_metric_params_ == ref.effective_metric_params_
        assert est.n_samples_fit_ == ref.n_samples_fit_ == len(X)
        assert est.n_features_in_ == ref.n_features_in_
        assert est.outputs_2d_ is ref.outputs_2d_ is False
        assert_array_equal(est.classes_, ref.classes_)


@pytest.mark.parametrize("kind", ["strings", "series", "column", "multioutput"])
def test_sweep_equals_per_k_scores_for_every_target_form(kind):
    import pandas as pd

    X, Xq, y = tie_data(300, 120, levels=3, seed=3)
    yq = np.random.default_rng(4).integers(0, 3, size=len(Xq))
    sw = np.random.default_rng(5).random(len(Xq))
    if kind == "strings":
        names = np.array(["cat", "dog", "emu"])
        y, yq = names[y], names[yq]
    elif kind == "series":
        yq = pd.Series(yq)
    elif kind == "column":
        yq = yq.reshape(-1, 1)
    else:
        y = np.column_stack([y, (y + 1) % 3])
        yq = np.column_stack([yq, yq % 2])
    ks = [5, 1, 3, 2]
    if kind == "multioutput":
        # scikit-learn's accuracy_score does not take multiclass-multioutput targets
        with pytest.raises(ValueError, match="multiclass-multioutput"):
            skn.KNeighborsClassifier(n_neighbors=1).fit(X, y).score(Xq, yq)
        with pytest.raises(ValueError, match="multiclass-multioutput"):
            oxn.knn_sweep_scores(X, y, Xq, yq, ks)
        return
    for weights in (None, sw):
        got = oxn.knn_sweep_scores(X, y, Xq, yq, ks, sample_weight=weights, algorithm="brute")
        for pos, k in enumerate(ks):
            with threadpool_limits(1), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the column-vector y warning, both sides
                ref = skn.KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(X, y)
                assert got[pos] == ref.score(Xq, yq, sample_weight=weights)


@pytest.mark.parametrize(("metric", "p", "metric_params"), METRICS, ids=METRIC_IDS)
def test_float32_distance_dtypes_match_sklearn(random_data, metric, p, metric_params):
    X, Xq, _, _ = random_data
    X32, Xq32 = X.astype(np.float32), Xq.astype(np.float32)
    kw = dict(n_neighbors=3, radius=1.0, metric=metric, p=p, metric_params=metric_params)
    ref = sk("NearestNeighbors", **kw).fit(X32)
    est = ox("NearestNeighbors", **kw).fit(X32)
    for query in (Xq32, None):
        for method in ("kneighbors", "radius_neighbors"):
            got = getattr(est, method)(query)[0]
            want = getattr(ref, method)(query)[0]
            if method == "radius_neighbors":
                got, want = got[0], want[0]
            assert got.dtype == want.dtype, (method, query is None)
        for method in ("kneighbors_graph", "radius_neighbors_graph"):
            got = getattr(est, method)(query, mode="distance")
            assert got.dtype == getattr(ref, method)(query, mode="distance").dtype, method


@pytest.mark.parametrize("d", [3, 8, 15, 20, 64])
def test_gemm_distances_do_not_depend_on_the_thread_count(d):
    """float64 Euclidean distances that come from the GEMM (k-nearest below 16 features,
    radius searches at any width): the query tiles follow the thread count, but each GEMM
    call covers the same 64 query rows whatever it is, so the last bits do not move."""
    rng = np.random.default_rng(7)
    for n_queries in (5, 37, 90, 300):
        X = rng.normal(size=(3000, d))
        Q = rng.normal(size=(n_queries, d))
        results = []
        for n_jobs in (1, 2, 3, 4):
            nn = oxn.NearestNeighbors(n_neighbors=7, algorithm="brute", n_jobs=n_jobs).fit(X)
            dist, ind = nn.kneighbors(Q)
            radius = float(np.median(dist[:, -1]))
            r_dist, r_ind = nn.radius_neighbors(Q, radius=radius, sort_results=True)
            results.append((dist, ind, np.concatenate(r_dist), np.concatenate(r_ind)))
        for other in results[1:]:
            for a, b in zip(results[0], other, strict=True):
                np.testing.assert_array_equal(a, b)
