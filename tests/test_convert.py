"""Conversion both ways: oxlearn <-> scikit-learn, fitted, without refitting."""

import pickle

import numpy as np
import oxlearn
import pytest
import sklearn.neighbors as skn
import sklearn.neural_network as sknn
from oxlearn import neighbors as oxn
from oxlearn import neural_network as oxnn
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError

X_ALL, Y_ALL = load_digits(return_X_y=True)
X_TRAIN, Y_TRAIN, X_TEST = X_ALL[:600] / 16, Y_ALL[:600], X_ALL[1400:1500] / 16

# (name, parameters, targets, the outputs compared)
CASES = [
    ("KNeighborsClassifier", {"n_neighbors": 4, "algorithm": "brute"}, "labels", "classifier"),
    (
        "KNeighborsClassifier",
        {"weights": "distance", "metric": "manhattan"},
        "labels",
        "classifier",
    ),
    ("KNeighborsRegressor", {"n_neighbors": 3, "weights": "distance"}, "values", "regressor"),
    ("NearestNeighbors", {"n_neighbors": 5, "radius": 0.8}, None, "search"),
    ("NearestNeighbors", {"n_neighbors": 3, "algorithm": "kd_tree"}, None, "search"),
    (
        "MLPClassifier",
        {"hidden_layer_sizes": (16,), "max_iter": 40, "random_state": 0},
        "labels",
        "classifier",
    ),
    (
        "MLPRegressor",
        {"hidden_layer_sizes": (8,), "max_iter": 40, "random_state": 0},
        "values",
        "regressor",
    ),
]


def _estimator(module, name, params):
    return getattr(module, name)(**params)


def _fit(est, targets, dtype):
    X = X_TRAIN.astype(dtype)
    if targets is None:
        return est.fit(X)
    y = Y_TRAIN if targets == "labels" else Y_TRAIN * 0.5
    return est.fit(X, y)


def _outputs(est, kind, dtype):
    Q = X_TEST.astype(dtype)
    if kind == "classifier":
        return [est.predict(Q), est.predict_proba(Q)]
    if kind == "regressor":
        return [est.predict(Q)]
    dist, ind = est.kneighbors(Q)
    rdist, rind = est.radius_neighbors(Q[:5], sort_results=True)
    return [dist, ind, *rdist, *rind]


def _module_of(name, library):
    if name.startswith("MLP"):
        return oxnn if library == "oxlearn" else sknn
    return oxn if library == "oxlearn" else skn


def _assert_same(a, b, name):
    """KNN: equal. MLP: equal labels, and the same values but for the last bits of the two
    libraries' matrix products (their summation orders differ)."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if name.startswith("MLP") and np.asarray(x).dtype.kind == "f":
            rtol = 1e-5 if np.asarray(x).dtype == np.float32 else 1e-12
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * 1e-3)
        else:
            np.testing.assert_array_equal(x, y)


def _same_params(theirs, ours):
    """scikit-learn's parameters, equal; oxlearn's MLPClassifier adds `class_weight`."""
    extra = set(ours.get_params()) - set(theirs.get_params())
    assert extra <= {"class_weight"}
    assert all(ours.get_params()[k] is None for k in extra)
    return {k: ours.get_params()[k] for k in theirs.get_params()} == theirs.get_params()


def _fitted_attributes(est):
    return sorted(k for k in vars(est) if k.endswith("_") and not k.startswith("_"))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "params", "targets", "kind"), CASES)
def test_to_sklearn(name, params, targets, kind, dtype):
    ours = _fit(_estimator(_module_of(name, "oxlearn"), name, params), targets, dtype)
    theirs = oxlearn.to_sklearn(ours)
    assert type(theirs) is getattr(_module_of(name, "sklearn"), name)
    assert _same_params(theirs, ours)
    assert _fitted_attributes(theirs) == _fitted_attributes(ours)
    # Predictions equal ours: scikit-learn's arithmetic on the same state.
    _assert_same(_outputs(theirs, kind, dtype), _outputs(ours, kind, dtype), name)
    # The copy is independent, and pickles without oxlearn's classes.
    blob = pickle.dumps(theirs)
    assert b"oxlearn" not in blob
    _assert_same(_outputs(pickle.loads(blob), kind, dtype), _outputs(ours, kind, dtype), name)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "params", "targets", "kind"), CASES)
def test_from_sklearn(name, params, targets, kind, dtype):
    theirs = _fit(_estimator(_module_of(name, "sklearn"), name, params), targets, dtype)
    ours = oxlearn.from_sklearn(theirs)
    assert type(ours) is getattr(_module_of(name, "oxlearn"), name)
    assert _same_params(theirs, ours)
    assert _fitted_attributes(ours) == _fitted_attributes(theirs)
    expected = _outputs(theirs, kind, dtype)
    _assert_same(_outputs(ours, kind, dtype), expected, name)
    back = pickle.loads(pickle.dumps(ours))
    _assert_same(_outputs(back, kind, dtype), expected, name)


def test_from_sklearn_takes_the_accelerated_path_where_it_applies(caplog):
    import logging

    theirs = skn.KNeighborsClassifier(algorithm="brute").fit(X_TRAIN, Y_TRAIN)
    ours = oxlearn.from_sklearn(theirs)
    with caplog.at_level(logging.INFO, logger="oxlearn"):
        ours.predict(X_TEST)
    assert "predict: accelerated" in caplog.text
    tree = oxlearn.from_sklearn(skn.KNeighborsClassifier(algorithm="kd_tree").fit(X_TRAIN, Y_TRAIN))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="oxlearn"):
        tree.predict(X_TEST)
    assert "scikit-learn fallback (fitted with scikit-learn's kd_tree)" in caplog.text


@pytest.mark.parametrize("name", ["KNeighborsClassifier", "NearestNeighbors", "MLPRegressor"])
def test_unfitted_models_raise_not_fitted(name):
    with pytest.raises(NotFittedError):
        oxlearn.to_sklearn(_estimator(_module_of(name, "oxlearn"), name, {}))
    with pytest.raises(NotFittedError):
        oxlearn.from_sklearn(_estimator(_module_of(name, "sklearn"), name, {}))


def test_callbacks_and_unset_class_weight_stay_behind_silently():
    import warnings

    from sklearn.callback import ScoringMonitor

    ours = oxnn.MLPClassifier((8,), max_iter=5, random_state=0)
    ours.set_callbacks(ScoringMonitor(scoring="accuracy"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X_TRAIN, Y_TRAIN)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        theirs = oxlearn.to_sklearn(ours)
    assert "_skl_callbacks" not in vars(theirs)
    assert "class_weight" not in vars(theirs)


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("name", ["KNeighborsClassifier", "KNeighborsRegressor"])
def test_knn_on_continuous_data_within_the_near_tie_rule(name, weights):
    # Continuous float64 data: the Euclidean expansion's last bits are the BLAS's, so a
    # distance may differ by the README's near-tie rule (8 ulps of ||q||^2 + ||t||^2), and a
    # distance-weighted prediction by as much; neighbours and labels are the same.
    rng = np.random.RandomState(0)
    X, Q = rng.rand(300, 20), rng.rand(50, 20)
    y = rng.randint(0, 3, 300) if name == "KNeighborsClassifier" else rng.rand(300)
    ours = getattr(oxn, name)(weights=weights, algorithm="brute").fit(X, y)
    theirs = oxlearn.to_sklearn(ours)
    d_ours, i_ours = ours.kneighbors(Q)
    d_theirs, i_theirs = theirs.kneighbors(Q)
    np.testing.assert_array_equal(i_ours, i_theirs)
    bound = (
        8 * np.finfo(np.float64).eps * ((Q**2).sum(axis=1)[:, None] + (X**2).sum(axis=1)[i_ours])
    )
    assert (np.abs(d_ours**2 - d_theirs**2) <= bound).all()
    if name == "KNeighborsClassifier":
        np.testing.assert_array_equal(ours.predict(Q), theirs.predict(Q))
        outputs = (ours.predict_proba(Q), theirs.predict_proba(Q))
    else:
        outputs = (ours.predict(Q), theirs.predict(Q))
    if weights == "uniform":
        np.testing.assert_array_equal(*outputs)
    else:
        np.testing.assert_allclose(*outputs, rtol=1e-13)


def test_wrong_library_is_a_type_error():
    ours = oxn.NearestNeighbors().fit(X_TRAIN)
    with pytest.raises(TypeError, match="expected a sklearn estimator"):
        oxlearn.from_sklearn(ours)
    with pytest.raises(TypeError, match="expected an oxlearn estimator"):
        oxlearn.to_sklearn(skn.NearestNeighbors().fit(X_TRAIN))
