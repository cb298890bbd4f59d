"""Bad input (issue 3, section 5): scikit-learn's exception types and messages, never a crash."""

import re
import warnings
from typing import Any

import numpy as np
import pytest
import sklearn.neural_network as skn
from oxlearn import _oxlearn
from oxlearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

ESTIMATORS = [MLPClassifier, MLPRegressor]
SK = {MLPClassifier: skn.MLPClassifier, MLPRegressor: skn.MLPRegressor}


def _data(est: Any) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    X = rng.normal(size=(30, 4))
    y = rng.randint(0, 3, 30) if est is MLPClassifier else rng.normal(size=30)
    return X, y


def _same_error(Est: Any, params: dict[str, Any], X: Any, y: Any, **fit_kw: Any) -> Exception:
    """Fit ours and scikit-learn's: both raise the same type with the same message."""
    errors = []
    for cls in (Est, SK[Est]):
        with pytest.raises(Exception) as exc_info, warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            cls(**params).fit(X, y, **fit_kw)
        errors.append(exc_info.value)
    ours, ref = errors
    assert type(ours) is type(ref)
    # Option sets print in hash order, which differs between the two constraint objects.
    assert _sets_sorted(str(ours)) == _sets_sorted(str(ref))
    return ours


def _sets_sorted(msg: str) -> str:
    return re.sub(r"\{[^{}]*\}", lambda m: str(sorted(m.group(0)[1:-1].split(", "))), msg)


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_X(Est: Any, bad: float) -> None:
    X, y = _data(Est)
    X[3, 1] = bad
    err = _same_error(Est, {"max_iter": 5}, X, y)
    assert isinstance(err, ValueError)
    assert "Input X contains" in str(err)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_y_regression(bad: float) -> None:
    X, y = _data(MLPRegressor)
    y[2] = bad
    err = _same_error(MLPRegressor, {"max_iter": 5}, X, y)
    assert isinstance(err, ValueError)
    assert "Input y contains" in str(err)


def test_nan_y_classification() -> None:
    X, _ = _data(MLPClassifier)
    y = np.where(np.arange(30) % 2 == 0, 0.0, 1.0)
    y[4] = np.nan
    err = _same_error(MLPClassifier, {"max_iter": 5}, X, y)
    assert isinstance(err, ValueError)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_empty_X(Est: Any) -> None:
    err = _same_error(Est, {}, np.empty((0, 4)), np.empty(0))
    assert isinstance(err, ValueError)
    assert "0 sample(s)" in str(err)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_zero_features(Est: Any) -> None:
    X, y = _data(Est)
    err = _same_error(Est, {}, X[:, :0], y)
    assert isinstance(err, ValueError)
    assert "0 feature(s)" in str(err)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_inconsistent_lengths(Est: Any) -> None:
    X, y = _data(Est)
    err = _same_error(Est, {}, X, y[:-1])
    assert isinstance(err, ValueError)
    assert "inconsistent numbers of samples" in str(err)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_X_1d(Est: Any) -> None:
    X, y = _data(Est)
    err = _same_error(Est, {}, X[:, 0], y)
    assert isinstance(err, ValueError)
    assert "Expected 2D array, got 1D array" in str(err)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_X_3d(Est: Any) -> None:
    X, y = _data(Est)
    err = _same_error(Est, {}, X.reshape(30, 2, 2), y)
    assert isinstance(err, ValueError)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_sample_weight_wrong_shape(Est: Any) -> None:
    X, y = _data(Est)
    err = _same_error(Est, {"max_iter": 5}, X, y, sample_weight=np.ones(7))
    assert isinstance(err, ValueError)
    assert "sample_weight.shape == (7,), expected (30,)" in str(err)


def test_single_class() -> None:
    X, _ = _data(MLPClassifier)
    y = np.zeros(30, dtype=int)
    # scikit-learn's MLPClassifier raises nothing for one class (it trains a logistic output
    # towards the only label); neither may we crash: same behaviour, same predictions.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(max_iter=20, random_state=0).fit(X, y)
        ref = skn.MLPClassifier(max_iter=20, random_state=0).fit(X, y)
    np.testing.assert_array_equal(ours.classes_, ref.classes_)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    assert ours.predict_proba(X).shape == ref.predict_proba(X).shape


def test_continuous_y_for_classifier() -> None:
    X, _ = _data(MLPClassifier)
    y = np.linspace(0, 1, 30)
    err = _same_error(MLPClassifier, {}, X, y)
    assert isinstance(err, ValueError)
    assert "Unknown label type" in str(err)


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize("sizes", [(0,), (10, 0), (-3,), (5, -1), [4, 0, 2]])
def test_hidden_layer_sizes_zero_or_negative(Est: Any, sizes: Any) -> None:
    X, y = _data(Est)
    err = _same_error(Est, {"hidden_layer_sizes": sizes}, X, y)
    assert isinstance(err, ValueError)
    assert "hidden_layer_sizes must be > 0" in str(err)


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize("sizes", [(7.0,), (3, 2.5), [np.float64(4)], (True,)])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_hidden_layer_sizes_not_integers(Est: Any, sizes: Any, solver: str) -> None:
    # scikit-learn raises a TypeError from NumPy's sampler; ours names the parameter.
    X, y = _data(Est)
    with pytest.raises(TypeError):
        SK[Est](hidden_layer_sizes=sizes, solver=solver, max_iter=3).fit(X, y)
    with pytest.raises(TypeError, match="hidden_layer_sizes must hold integers"):
        Est(hidden_layer_sizes=sizes, solver=solver, max_iter=3).fit(X, y)


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize("sizes", [(), []])
def test_hidden_layer_sizes_empty_is_a_linear_model_as_in_sklearn(Est: Any, sizes: Any) -> None:
    # scikit-learn 1.9.1 raises nothing for an empty hidden_layer_sizes: the network has no
    # hidden layer (a linear / logistic model). We do the same, and agree with it (lbfgs).
    X, y = _data(Est)
    params = {"hidden_layer_sizes": sizes, "solver": "lbfgs", "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = Est(**params).fit(X, y)
        ref = SK[Est](**params).fit(X, y)
    assert ours.n_layers_ == ref.n_layers_ == 2
    assert [c.shape for c in ours.coefs_] == [c.shape for c in ref.coefs_]
    np.testing.assert_allclose(ours.coefs_[0], ref.coefs_[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize("sizes", [0, -5])
def test_hidden_layer_sizes_scalar_invalid(Est: Any, sizes: int) -> None:
    X, y = _data(Est)
    err = _same_error(Est, {"hidden_layer_sizes": sizes}, X, y)
    assert isinstance(err, InvalidParameterError)
    assert "The 'hidden_layer_sizes' parameter" in str(err)


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize(
    "param,value",
    [
        ("solver", "newton"),
        ("activation", "softmax"),
        ("activation", "sigmoid"),
        ("learning_rate", "cosine"),
        ("batch_size", 0),
        ("batch_size", "big"),
        ("alpha", -1.0),
        ("learning_rate_init", 0.0),
        ("max_iter", 0),
        ("momentum", 1.5),
        ("beta_1", 1.0),
        ("validation_fraction", 1.0),
        ("n_iter_no_change", 0),
        ("epsilon", 0.0),
        ("max_fun", 0),
        ("tol", -1e-3),
        ("shuffle", "yes"),
    ],
)
def test_invalid_parameters(Est: Any, param: str, value: Any) -> None:
    X, y = _data(Est)
    err = _same_error(Est, {param: value}, X, y)
    assert isinstance(err, InvalidParameterError)
    assert f"The '{param}' parameter of {Est.__name__} must be" in str(err)


def test_invalid_regressor_loss() -> None:
    X, y = _data(MLPRegressor)
    err = _same_error(MLPRegressor, {"loss": "log_loss"}, X, y)
    assert isinstance(err, InvalidParameterError)


def test_partial_fit_without_classes_on_first_call() -> None:
    X, y = _data(MLPClassifier)
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
        MLPClassifier().partial_fit(X, y)


def test_partial_fit_classes_changed() -> None:
    X, y = _data(MLPClassifier)
    clf = MLPClassifier(random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=re.escape("`classes=[0, 1, 3]` is not the same as")):
        clf.partial_fit(X, y, classes=[0, 1, 3])


def test_partial_fit_unknown_label() -> None:
    X, y = _data(MLPClassifier)
    clf = MLPClassifier(random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    y_new = y.copy()
    y_new[0] = 7
    with pytest.raises(ValueError, match=re.escape("`y` has classes not in `self.classes_`")):
        clf.partial_fit(X, y_new)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_partial_fit_with_lbfgs(Est: Any) -> None:
    X, y = _data(Est)
    est = Est(solver="lbfgs")
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as exc_info:
        est.partial_fit(X, y)
    assert str(exc_info.value.__cause__) == (
        "partial_fit is only available for stochastic optimizers. lbfgs is not stochastic."
    )


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_partial_fit_with_early_stopping(Est: Any) -> None:
    X, y = _data(Est)
    kw = {"classes": [0, 1, 2]} if Est is MLPClassifier else {}
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        Est(early_stopping=True).partial_fit(X, y, **kw)


@pytest.mark.parametrize(
    "Est,method",
    [
        (MLPClassifier, "predict"),
        (MLPClassifier, "predict_proba"),
        (MLPClassifier, "predict_log_proba"),
        (MLPClassifier, "score"),
        (MLPRegressor, "predict"),
        (MLPRegressor, "score"),
    ],
)
def test_predict_before_fit(Est: Any, method: str) -> None:
    X, y = _data(Est)
    est = Est()
    args = (X, y) if method == "score" else (X,)
    with pytest.raises(NotFittedError, match=r"This .* instance is not fitted yet"):
        getattr(est, method)(*args)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_wrong_n_features_at_predict(Est: Any) -> None:
    X, y = _data(Est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = Est(max_iter=5, random_state=0).fit(X, y)
    with pytest.raises(
        ValueError, match=r"X has 3 features, but .* is expecting 4 features as input"
    ):
        est.predict(X[:, :3])


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_nan_at_predict(Est: Any) -> None:
    X, y = _data(Est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = Est(max_iter=5, random_state=0).fit(X, y)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.predict(X)


def test_warm_start_with_other_classes() -> None:
    X, y = _data(MLPClassifier)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(warm_start=True, max_iter=5, random_state=0).fit(X, y)
        with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
            clf.fit(X, np.where(y == 2, 5, y))


def test_non_finite_weights_raise_sklearn_message() -> None:
    rng = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rng.uniform(size=(10, 2))
    y = rng.standard_normal(size=10)
    msg = "Solver produced non-finite parameter weights. The input data may contain large"
    # (lbfgs is left out: scipy stops at the first non-finite loss with the initial, finite,
    # weights, and scikit-learn raises nothing there either.)
    for solver in ("adam", "sgd"):
        with pytest.raises(ValueError, match=msg), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            MLPRegressor(solver=solver).fit(X, y)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_diverging_fit_warns_and_runs_as_sklearn(solver: str) -> None:
    # scikit-learn's loop keeps going on NaN weights (a NaN loss never counts as "no
    # improvement"), so it reaches max_iter, warns, and only then raises.
    rng = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rng.uniform(size=(10, 2))
    y = rng.standard_normal(size=10)
    params = {"solver": solver, "max_iter": 30, "random_state": 0}
    seen = []
    for Est in (MLPRegressor, skn.MLPRegressor):
        est = Est(**params)
        with warnings.catch_warnings(record=True) as w, pytest.raises(ValueError, match="non-fin"):
            warnings.simplefilter("always")
            est.fit(X, y)
        kinds = {x.category for x in w} - {RuntimeWarning}
        seen.append((kinds, est.n_iter_, len(est.loss_curve_), np.isnan(est.loss_curve_[-1])))
    assert seen[0] == seen[1] == ({ConvergenceWarning}, 30, 30, True)


@pytest.mark.parametrize(
    "y", [np.array(["1", "2.5"] * 10), np.array([b"a", b"b"] * 10), ["1"] * 20]
)
def test_regressor_string_targets_raise_type_error(y: Any) -> None:
    X = np.random.RandomState(0).uniform(size=(20, 3))
    with pytest.raises(TypeError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        skn.MLPRegressor(max_iter=5).fit(X, y)
    for call in ("fit", "partial_fit"):
        with pytest.raises(TypeError, match="needs numeric targets, but y holds strings"):
            getattr(MLPRegressor(max_iter=5), call)(X, y)


def test_validation_set_too_small() -> None:
    X, y = _data(MLPRegressor)
    err = _same_error(MLPRegressor, {"early_stopping": True}, X[:5], y[:5])
    assert "The validation set is too small" in str(err)


@pytest.mark.parametrize(
    "call",
    [
        lambda X, W, b: _oxlearn.mlp_forward(X.astype(np.float32), W, b, "relu", "softmax", 1),
        lambda X, W, b: _oxlearn.mlp_forward(np.asfortranarray(X), W, b, "relu", "softmax", 1),
    ],
)
def test_kernel_rejects_mixed_dtype_or_layout(call: Any) -> None:
    # The Python layer always hands over one dtype, C-contiguous; the kernel refuses others
    # with a TypeError rather than reading memory wrongly.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(5, 3))
    W = [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))]
    b = [np.zeros(4), np.zeros(2)]
    with pytest.raises(TypeError):
        call(X, W, b)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"activation": "softmax"},
        {"out_activation": "relu"},
        {"n_threads": 0},
    ],
)
def test_kernel_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    rng = np.random.RandomState(0)
    args: dict[str, Any] = {
        "activation": "relu",
        "out_activation": "softmax",
        "n_threads": 1,
        **kwargs,
    }
    X = rng.normal(size=(5, 3))
    W = [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))]
    b = [np.zeros(4), np.zeros(2)]
    with pytest.raises(ValueError):
        _oxlearn.mlp_forward(X, W, b, args["activation"], args["out_activation"], args["n_threads"])


def test_kernel_rejects_shape_mismatch() -> None:
    rng = np.random.RandomState(0)
    X = rng.normal(size=(5, 3))
    W = [rng.normal(size=(4, 4)), rng.normal(size=(4, 2))]
    b = [np.zeros(4), np.zeros(2)]
    with pytest.raises(ValueError):
        _oxlearn.mlp_forward(X, W, b, "relu", "softmax", 1)
