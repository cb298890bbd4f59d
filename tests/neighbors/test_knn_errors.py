"""Bad input raises scikit-learn's exception type with a message that says what to fix."""

import numpy as np
import pytest
import scipy.sparse as sp
from oxlearn.neighbors import (
    KNeighborsClassifier,
    KNeighborsRegressor,
    NearestNeighbors,
    knn_sweep_scores,
)
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

ESTIMATORS = [KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors]


@pytest.fixture
def Xy():
    rng = np.random.default_rng(0)
    return rng.normal(size=(20, 3)), rng.integers(0, 2, size=20)


def fit(cls, X, y, **kw):
    est = cls(**kw)
    return est.fit(X, y) if cls is not NearestNeighbors else est.fit(X)


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_X(cls, Xy, bad):
    X, y = Xy
    Xb = X.copy()
    Xb[3, 1] = bad
    with pytest.raises(ValueError, match=r"Input X contains (NaN|infinity)"):
        fit(cls, Xb, y)
    est = fit(cls, X, y)
    with pytest.raises(ValueError, match=r"Input X contains (NaN|infinity)"):
        est.kneighbors(Xb)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_empty_X(cls):
    with pytest.raises(ValueError, match=r"Found array with 0 sample"):
        fit(cls, np.empty((0, 3)), np.empty(0))
    with pytest.raises(ValueError, match=r"Found array with 0 feature"):
        fit(cls, np.empty((5, 0)), np.zeros(5))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_wrong_dimensions(cls, Xy):
    X, y = Xy
    with pytest.raises(ValueError, match=r"Expected 2D array, got 1D array"):
        fit(cls, X[:, 0], y)
    with pytest.raises(ValueError, match=r"Found array with dim 3"):
        fit(cls, X.reshape(20, 3, 1), y)
    est = fit(cls, X, y)
    with pytest.raises(ValueError, match=r"Expected 2D array, got 1D array"):
        est.kneighbors(X[0])


@pytest.mark.parametrize("cls", [KNeighborsClassifier, KNeighborsRegressor])
def test_inconsistent_lengths(cls, Xy):
    X, y = Xy
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples"):
        cls().fit(X, y[:-1])


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_bad_n_neighbors(cls, Xy):
    X, y = Xy
    with pytest.raises(InvalidParameterError, match=r"'n_neighbors' parameter .* must be"):
        fit(cls, X, y, n_neighbors=0)
    with pytest.raises(InvalidParameterError, match=r"'n_neighbors' parameter"):
        fit(cls, X, y, n_neighbors=-3)
    with pytest.raises(InvalidParameterError, match=r"'n_neighbors' parameter"):
        fit(cls, X, y, n_neighbors=2.5)
    est = fit(cls, X, y, n_neighbors=25)
    with pytest.raises(
        ValueError, match=r"Expected n_neighbors <= n_samples_fit, but n_neighbors = 25"
    ):
        est.kneighbors(X)
    with pytest.raises(ValueError, match=r"Expected n_neighbors < n_samples_fit"):
        est.kneighbors(None, n_neighbors=20)
    with pytest.raises(ValueError, match=r"Expected n_neighbors > 0. Got 0"):
        est.kneighbors(X, n_neighbors=0)
    with pytest.raises(TypeError, match=r"n_neighbors does not take .*float.* value"):
        est.kneighbors(X, n_neighbors=2.5)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_bad_metric_and_p(cls, Xy):
    X, y = Xy
    with pytest.raises(InvalidParameterError, match=r"'metric' parameter .* among .*manhattan"):
        fit(cls, X, y, metric="hamming")
    with pytest.raises(InvalidParameterError, match=r"'metric' parameter"):
        fit(cls, X, y, metric=lambda a, b: 0.0)
    with pytest.raises(InvalidParameterError, match=r"'p' parameter .* range \[1.0, inf\]"):
        fit(cls, X, y, p=0.5)
    with pytest.raises(ValueError, match=r"p must be a number >= 1"):
        fit(cls, X, y, p=None, metric_params={"p": 0.5})
    with pytest.raises(ValueError, match=r"the size of w must match"):
        fit(cls, X, y, p=3, metric_params={"w": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"Metric 'cosine' not valid"):
        fit(cls, X, y, metric="cosine", algorithm="kd_tree")


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_not_fitted(cls, Xy):
    X, _ = Xy
    with pytest.raises(NotFittedError, match=r"is not fitted yet"):
        cls().kneighbors(X)
    if cls is not NearestNeighbors:
        with pytest.raises(NotFittedError, match=r"is not fitted yet"):
            cls().predict(X)
    else:
        with pytest.raises(NotFittedError, match=r"is not fitted yet"):
            cls().radius_neighbors(X)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_wrong_number_of_features(cls, Xy):
    X, y = Xy
    est = fit(cls, X, y)
    with pytest.raises(ValueError, match=r"X has 2 features, but .* is expecting 3 features"):
        est.kneighbors(X[:, :2])
    if cls is not NearestNeighbors:
        with pytest.raises(ValueError, match=r"is expecting 3 features"):
            est.predict(X[:, :2])


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_input_is_a_clear_type_error(cls, Xy, fmt):
    X, y = Xy
    Xs = sp.random(20, 3, density=0.5, format=fmt, random_state=0)
    with pytest.raises(TypeError, match=r"Sparse data was passed .* Use '\.toarray\(\)'"):
        fit(cls, Xs, y)
    est = fit(cls, X, y)
    with pytest.raises(TypeError, match=r"dense data is required"):
        est.kneighbors(Xs)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_object_and_string_X(cls, Xy):
    _, y = Xy
    X_str = np.array([["a", "b", "c"]] * 20)
    with pytest.raises(ValueError, match=r"could not convert string to float"):
        fit(cls, X_str, y)
    X_obj = np.array([[1, "x", 3.0]] * 20, dtype=object)
    with pytest.raises(ValueError, match=r"could not convert"):
        fit(cls, X_obj, y)


def test_continuous_targets_rejected_by_classifier(Xy):
    X, _ = Xy
    with pytest.raises(ValueError, match=r"Unknown label type: continuous"):
        KNeighborsClassifier().fit(X, np.linspace(0, 1, 20))


def test_callable_weights_all_zero(Xy):
    X, y = Xy
    est = KNeighborsClassifier(weights=lambda d: np.zeros_like(d)).fit(X, y)
    with pytest.raises(ValueError, match=r"All neighbors of some sample is getting zero weights"):
        est.predict(X)
    bad_shape = KNeighborsClassifier(weights=lambda d: d[:, :1]).fit(X, y)
    with pytest.raises(ValueError, match=r"must return an array of shape"):
        bad_shape.predict(X)


def test_precomputed_must_be_square_and_non_negative(Xy):
    X, y = Xy
    with pytest.raises(ValueError, match=r"Precomputed matrix must be square"):
        KNeighborsClassifier(metric="precomputed").fit(np.abs(X), y)
    with pytest.raises(ValueError, match=r"Negative values in data"):
        KNeighborsClassifier(metric="precomputed").fit(-np.ones((20, 20)), y)


def test_radius_errors(Xy):
    X, _ = Xy
    est = NearestNeighbors().fit(X)
    with pytest.raises(ValueError, match=r"return_distance must be True if sort_results"):
        est.radius_neighbors(X, return_distance=False, sort_results=True)
    with pytest.raises(ValueError, match=r"radius must be a non-negative number"):
        est.radius_neighbors(X, radius=-1.0)
    with pytest.raises(ValueError, match=r"Unsupported mode"):
        est.radius_neighbors_graph(X, mode="bogus")
    with pytest.raises(ValueError, match=r"Unsupported mode"):
        est.kneighbors_graph(X, mode="bogus")
    with pytest.raises(InvalidParameterError, match=r"'radius' parameter"):
        NearestNeighbors(radius=-1.0).fit(X)


def test_sweep_validation(Xy):
    X, y = Xy
    with pytest.raises(ValueError, match=r"at least one value of k"):
        knn_sweep_scores(X, y, X, y, [])
    with pytest.raises(ValueError, match=r"Expected n_neighbors > 0"):
        knn_sweep_scores(X, y, X, y, [1, 0])
    with pytest.raises(TypeError, match=r"must be an integer"):
        knn_sweep_scores(X, y, X, y, [1, 2.5])
    with pytest.raises(ValueError, match=r"Expected n_neighbors <= n_samples_fit"):
        knn_sweep_scores(X, y, X, y, [1, 21])
    with pytest.raises(ValueError, match=r"is expecting 3 features"):
        knn_sweep_scores(X, y, X[:, :2], y, [1])
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples"):
        knn_sweep_scores(X, y, X, y[:5], [1])
    with pytest.raises(InvalidParameterError, match=r"'metric' parameter"):
        knn_sweep_scores(X, y, X, y, [1], metric="hamming")
