"""Bad input raises scikit-learn's exception type with a message that says what to fix."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_array_equal
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


def _sklearn_twin(cls):
    from sklearn import neighbors as skn

    return getattr(skn, cls.__name__)


def _raised(call):
    """The exception type and message ``call()`` raises (None if it returns)."""
    try:
        call()
    except Exception as exc:
        return type(exc), str(exc)
    return None


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_bad_metric_and_p(cls, Xy):
    # Metrics and p the Rust search does not implement are accepted as scikit-learn accepts
    # them (its code runs); this test asserted before that they raised.
    X, y = Xy
    sk = _sklearn_twin(cls)
    with pytest.raises(InvalidParameterError, match=r"'metric' parameter .* among"):
        fit(cls, X, y, metric="no-such-metric")
    for kw in [{"metric": "hamming"}, {"metric": lambda a, b: float(np.abs(a - b).sum())}]:
        ours, ref = fit(cls, X, y, **kw), fit(sk, X, y, **kw)
        assert_array_equal(ours.kneighbors(X)[1], ref.kneighbors(X)[1])
    with pytest.raises(InvalidParameterError, match=r"'p' parameter .* range \(0.0, inf\]"):
        fit(cls, X, y, p=0)
    with pytest.warns(UserWarning, match=r"Mind that for 0 < p < 1"):
        ours = fit(cls, X, y, p=0.5)
    assert ours._fit_method == "brute"
    # A wrong-length Minkowski `w` raises where scikit-learn raises: at query time.
    # (A tree built at fit checks it there.)
    for algorithm in ("brute", "auto"):
        bad_w = {"p": 3, "metric_params": {"w": [1.0, 2.0]}, "algorithm": algorithm}
        expected = _raised(lambda bad_w=bad_w: fit(sk, X, y, **bad_w).kneighbors(X))
        assert expected is not None
        assert _raised(lambda bad_w=bad_w: fit(cls, X, y, **bad_w).kneighbors(X)) == expected
    assert None is _raised(
        lambda: fit(cls, X, y, p=3, metric_params={"w": [1, 2]}, algorithm="brute")
    )
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
def test_sparse_input_as_scikit_learn(cls, Xy, fmt):
    # Sparse data is searched by scikit-learn's code (this test asserted before that it
    # raised a TypeError).
    X, y = Xy
    sk = _sklearn_twin(cls)
    Xs = sp.random(20, 3, density=0.5, format=fmt, random_state=0)
    ours, ref = fit(cls, Xs, y), fit(sk, Xs, y)
    assert ours._fit_method == ref._fit_method == "brute"
    assert_array_equal(ours.kneighbors(Xs)[1], ref.kneighbors(Xs)[1])
    for algorithm in ("auto", "brute"):
        ours, ref = fit(cls, X, y, algorithm=algorithm), fit(sk, X, y, algorithm=algorithm)
        expected = _raised(lambda ref=ref: ref.kneighbors(Xs))
        assert _raised(lambda ours=ours: ours.kneighbors(Xs)) == expected
        if expected is None:
            assert_array_equal(ours.kneighbors(Xs)[1], ref.kneighbors(Xs)[1])


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_object_and_string_X(cls, Xy):
    _, y = Xy
    sk = _sklearn_twin(cls)
    X_str = np.array([["a", "b", "c"]] * 20)
    X_num_str = np.array([["1", "2", "3"]] * 20)
    X_obj = np.array([[1, "x", 3.0]] * 20, dtype=object)
    for bad in (X_str, X_num_str, X_obj):
        expected = _raised(lambda bad=bad: fit(sk, bad, y))
        assert expected is not None and expected[0] is ValueError
        assert _raised(lambda bad=bad: fit(cls, bad, y)) == expected


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_n_jobs_zero_rejected_as_scikit_learn(cls, Xy):
    X, y = Xy
    expected = _raised(lambda: fit(_sklearn_twin(cls), X, y, n_jobs=0).kneighbors(X))
    assert _raised(lambda: fit(cls, X, y, n_jobs=0).kneighbors(X)) == expected


def test_continuous_targets_rejected_by_classifier(Xy):
    X, _ = Xy
    with pytest.raises(ValueError, match=r"Unknown label type: continuous"):
        KNeighborsClassifier().fit(X, np.linspace(0, 1, 20))


def test_callable_weights_all_zero(Xy):
    X, y = Xy
    est = KNeighborsClassifier(weights=lambda d: np.zeros_like(d)).fit(X, y)
    with pytest.raises(ValueError, match=r"All neighbors of some sample is getting zero weights"):
        est.predict(X)
    # A callable returning another shape gets scikit-learn's own error (or answer).
    for weights in (lambda d: d[:, :1], lambda d: d[:, :2], lambda d: d.ravel()):
        for cls in (KNeighborsClassifier, KNeighborsRegressor):
            ours = cls(weights=weights).fit(X, y)
            ref = _sklearn_twin(cls)(weights=weights).fit(X, y)
            expected = _raised(lambda ref=ref: ref.predict(X))
            assert _raised(lambda ours=ours: ours.predict(X)) == expected
            if expected is None:
                assert_array_equal(ours.predict(X), ref.predict(X))


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
    # A negative radius finds nothing, as in scikit-learn.
    ref = _sklearn_twin(NearestNeighbors)().fit(X)
    assert_array_equal(
        [len(i) for i in est.radius_neighbors(X, radius=-1.0, return_distance=False)],
        [len(i) for i in ref.radius_neighbors(X, radius=-1.0, return_distance=False)],
    )
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
        knn_sweep_scores(X, y, X, y, [1], metric="no-such-metric")
    # scikit-learn's metrics beyond the Rust ones: its estimator for each k.
    expected = [
        _sklearn_twin(KNeighborsClassifier)(n_neighbors=k, metric="braycurtis")
        .fit(X, y)
        .score(X, y)
        for k in (1, 3)
    ]
    assert_array_equal(knn_sweep_scores(X, y, X, y, [1, 3], metric="braycurtis"), expected)
