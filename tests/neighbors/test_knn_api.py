"""Input types, fitted state and the scikit-learn tool chain (pickle, joblib, clone, ...)."""

import pickle

import joblib
import numpy as np
import oxlearn
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from oxlearn import _oxlearn
from oxlearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@pytest.fixture
def data(digits):
    X, y = digits
    return X[:400], y[:400], X[400:500]


def test_public_api():
    assert oxlearn.neighbors.__all__ == [
        "KNeighborsClassifier",
        "KNeighborsRegressor",
        "NearestNeighbors",
        "knn_sweep_scores",
    ]


@pytest.mark.parametrize("cls", [KNeighborsClassifier, KNeighborsRegressor])
def test_pickle_joblib_clone(cls, data, tmp_path):
    X, y, Xq = data
    est = cls(n_neighbors=3, weights="distance").fit(X, y)
    expected = est.predict(Xq)
    assert_array_equal(pickle.loads(pickle.dumps(est)).predict(Xq), expected)
    joblib.dump(est, tmp_path / "est.joblib")
    assert_array_equal(joblib.load(tmp_path / "est.joblib").predict(Xq), expected)
    c = clone(est)
    assert c.get_params() == est.get_params()
    assert not hasattr(c, "n_samples_fit_")


def test_pipeline_grid_search_cross_val(data):
    X, y, _ = data
    pipe = make_pipeline(StandardScaler(), KNeighborsClassifier())
    grid = GridSearchCV(
        pipe,
        {"kneighborsclassifier__n_neighbors": [1, 3, 5], "kneighborsclassifier__p": [1, 2]},
        cv=3,
    ).fit(X, y)
    assert grid.best_score_ > 0.85
    scores = cross_val_score(KNeighborsClassifier(n_neighbors=3), X, y, cv=4)
    assert scores.shape == (4,) and scores.min() > 0.85
    r2 = cross_val_score(KNeighborsRegressor(n_neighbors=3), X, y.astype(float), cv=3)
    assert r2.min() > 0.5


def test_pandas_input_and_feature_names(data):
    X, y, Xq = data
    cols = [f"px{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=cols)
    est = KNeighborsClassifier(n_neighbors=3).fit(df, pd.Series(y))
    assert_array_equal(est.feature_names_in_, cols)
    assert est.n_features_in_ == X.shape[1]
    assert_array_equal(
        est.predict(pd.DataFrame(Xq, columns=cols)),
        KNeighborsClassifier(n_neighbors=3).fit(X, y).predict(Xq),
    )
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        est.predict(Xq)


def test_lists_ints_and_dtypes():
    from sklearn.neighbors import NearestNeighbors as SkNN

    X = [[0, 0], [1, 1], [2, 2], [10, 10]]
    est = NearestNeighbors(n_neighbors=2).fit(X)
    # As scikit-learn: integer data is kept as it is (and searched by scikit-learn's code).
    assert est._fit_X.dtype == SkNN(n_neighbors=2).fit(X)._fit_X.dtype == np.int64
    d, i = est.kneighbors([[1, 1]])
    assert_array_equal(i, [[1, 0]])
    assert i.dtype == np.intp and d.dtype == np.float64
    est32 = NearestNeighbors(n_neighbors=2).fit(np.asarray(X, dtype=np.float32))
    assert est32._fit_X.dtype == np.float32
    # A float64 query against float32 training data (scikit-learn's pairwise distances).
    d32, i32 = est32.kneighbors(np.array([[1.0, 1.0]]))
    assert_array_equal(i32, [[1, 0]])
    assert d32.dtype == np.float64


def test_column_vector_y_warns_like_sklearn():
    from sklearn.exceptions import DataConversionWarning

    X = np.arange(10, dtype=float).reshape(5, 2)
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        KNeighborsClassifier(n_neighbors=1).fit(X, np.array([[0], [1], [0], [1], [0]]))


def test_float32_regression_targets_stay_float32():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10, dtype=np.float32)
    pred = KNeighborsRegressor(n_neighbors=3).fit(X, y).predict(X)
    assert pred.dtype == np.float32


def test_rust_kernels_reject_bad_calls():
    X = np.zeros((4, 2))
    with pytest.raises(TypeError, match="float64, or both of float32"):
        _oxlearn.kneighbors(X, X.astype(np.float32), [1], "euclidean", 2.0, None, 1)
    with pytest.raises(ValueError, match="unsupported metric"):
        _oxlearn.kneighbors(X, X, [1], "hamming", 2.0, None, 1)
    with pytest.raises(ValueError, match="n_neighbors"):
        _oxlearn.kneighbors(X, X, [5], "euclidean", 2.0, None, 1)
    with pytest.raises(ValueError, match="number of features"):
        _oxlearn.kneighbors(np.zeros((3, 3)), X, [1], "euclidean", 2.0, None, 1)
    with pytest.raises(ValueError, match="empty"):
        _oxlearn.kneighbors(X, np.zeros((0, 2)), [1], "euclidean", 2.0, None, 1)
    with pytest.raises(ValueError, match="neighbour indices"):
        _oxlearn.knn_classify(np.array([[7]]), np.zeros((4, 1), dtype=np.int64), [1], None)


@pytest.mark.parametrize("cls", [KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors])
def test_fit_from_a_fitted_index(cls, data):
    # scikit-learn's estimators can be fitted from another fitted neighbours estimator or
    # a KDTree/BallTree (sklearn/neighbors/tests/test_neighbors.py::test_unsupervised_inputs).
    from sklearn import neighbors as skn

    # As scikit-learn, the fitted index is reused (a tree: its tree search and ties).
    X, y, Xq = data
    sk = getattr(skn, cls.__name__)
    sources = [
        NearestNeighbors(n_neighbors=1).fit(X),
        skn.NearestNeighbors(n_neighbors=1).fit(X),
        skn.KDTree(X),
        skn.BallTree(X),
    ]
    for source in sources:
        est = cls(n_neighbors=3).fit(source, y)
        dist, ind = est.kneighbors(Xq)
        expected = sk(n_neighbors=3).fit(source, y).kneighbors(Xq)
        assert_array_equal(ind, expected[1])
        np.testing.assert_allclose(dist, expected[0], rtol=1e-12)
    # An unfitted source: scikit-learn's AttributeError (this test expected NotFittedError).
    with pytest.raises(AttributeError, match="_fit_X"):
        sk().fit(skn.NearestNeighbors(), y)
    with pytest.raises(AttributeError, match="_fit_X"):
        cls().fit(NearestNeighbors(), y)


def test_radius_per_query_matches_scikit_learn(data):
    from sklearn import neighbors as skn

    X, _, Xq = data
    rng = np.random.RandomState(0)
    radii = rng.uniform(15, 30, size=len(Xq))
    # One radius per query is scikit-learn's tree search (its brute force rejects it).
    ours = NearestNeighbors(algorithm="ball_tree").fit(X)
    ref = skn.NearestNeighbors(algorithm="ball_tree").fit(X)
    dist, ind = ours.radius_neighbors(Xq, radius=radii)
    ref_dist, ref_ind = ref.radius_neighbors(Xq, radius=radii)
    assert sum(len(i) for i in ind) > len(Xq)  # the balls are not trivial
    for i in range(len(Xq)):
        assert_array_equal(ind[i], ref_ind[i])
        assert_array_equal(dist[i], ref_dist[i])
    with pytest.raises(TypeError) as ours_error:
        NearestNeighbors().fit(X).radius_neighbors(Xq, radius=radii)
    with pytest.raises(TypeError) as ref_error:
        skn.NearestNeighbors().fit(X).radius_neighbors(Xq, radius=radii)
    assert str(ours_error.value) == str(ref_error.value)
    # without X: each training sample's own ball, itself excluded
    own = ours.radius_neighbors(radius=np.full(len(X), 20.0), return_distance=False)
    ref_own = ref.radius_neighbors(radius=np.full(len(X), 20.0), return_distance=False)
    for a, b in zip(own, ref_own, strict=True):
        assert_array_equal(a, b)


def test_scikit_learn_mixins_recognise_our_estimators():
    from sklearn.neighbors._base import KNeighborsMixin, RadiusNeighborsMixin

    for cls in (KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors):
        assert issubclass(cls, KNeighborsMixin)
    assert issubclass(NearestNeighbors, RadiusNeighborsMixin)
    # our methods, not scikit-learn's, answer
    assert KNeighborsClassifier.kneighbors is not KNeighborsMixin.kneighbors
    assert NearestNeighbors.radius_neighbors is not RadiusNeighborsMixin.radius_neighbors
