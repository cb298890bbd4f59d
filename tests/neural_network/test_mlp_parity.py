"""Parity with scikit-learn's MLP: initial weights, forward pass, loss/gradient, lbfgs, SGD/Adam.

scikit-learn's estimators are the oracle. Where both libraries follow the same
deterministic path (the same initial weights, L-BFGS-B, or SGD/Adam with ``shuffle=False``)
the results agree to rounding; where the mini-batch order differs (``shuffle=True``: our
shuffles come from a Rust generator) the issue's statistical tolerances apply.
"""

import warnings
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
import sklearn.neural_network as skn
from numpy.testing import assert_allclose, assert_array_equal
from oxlearn import _oxlearn
from oxlearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.datasets import (
    load_digits,
    load_iris,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelBinarizer, MinMaxScaler, StandardScaler
from sklearn.utils import check_random_state

ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]


@pytest.fixture(scope="module")
def digits_scaled() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return MinMaxScaler().fit_transform(X), y


def _pair(kind: str, **params: Any) -> tuple[Any, Any]:
    if kind == "classifier":
        return MLPClassifier(**params), skn.MLPClassifier(**params)
    return MLPRegressor(**params), skn.MLPRegressor(**params)


def _quiet_fit(est: Any, X: Any, y: Any, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kw)


# --------------------------------------------------------------------- initial weights
@pytest.mark.parametrize("random_state", [0, 1, 42])
@pytest.mark.parametrize("activation", ["relu", "logistic"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_initial_coefs_match_sklearn(random_state: int, activation: str, dtype: Any) -> None:
    # The same random_state gives the same Glorot-uniform draws as scikit-learn's _init_coef.
    X, y = load_digits(n_class=4, return_X_y=True)
    X = X.astype(dtype)
    ours, ref = _pair(
        "classifier",
        hidden_layer_sizes=(7, 5),
        activation=activation,
        random_state=random_state,
    )
    layer_units = [X.shape[1], 7, 5, 4]
    Y = LabelBinarizer().fit_transform(y)
    for est in (ours, ref):
        est._label_binarizer = LabelBinarizer().fit(y)
        est._random_state = check_random_state(random_state)
        est._initialize(Y, layer_units, X.dtype)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_, strict=True):
        assert a.dtype == b.dtype == dtype
        assert_array_equal(a, b)


def test_initial_coefs_through_fit_match_sklearn(digits_scaled: Any) -> None:
    # Public path: with learning_rate_init tiny and one SGD epoch, the fitted weights are the
    # initial ones to ~1e-12, which must equal scikit-learn's initial weights.
    X, y = digits_scaled
    params = dict(solver="sgd", learning_rate_init=1e-14, max_iter=1, random_state=3)
    ours, ref = _pair("classifier", **params)
    _quiet_fit(ours, X, y)
    _quiet_fit(ref, X, y)
    for a, b in zip(ours.coefs_, ref.coefs_, strict=True):
        assert_allclose(a, b, rtol=0, atol=1e-9)


# --------------------------------------------------------------------- forward pass
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(
    "target", ["binary", "multiclass", "multilabel", "regression", "multiregression", "poisson"]
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_matches_sklearn(activation: str, target: str, dtype: Any) -> None:
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(120, 6)).astype(dtype)
    params: dict[str, Any] = dict(
        hidden_layer_sizes=(9, 5), activation=activation, random_state=0, max_iter=5
    )
    if target in ("binary", "multiclass"):
        y = rng.randint(0, 2 if target == "binary" else 4, size=120)
        ours, ref = _pair("classifier", **params)
    elif target == "multilabel":
        _, y = make_multilabel_classification(n_samples=120, n_classes=3, random_state=0)
        ours, ref = _pair("classifier", **params)
    elif target == "poisson":
        y = rng.poisson(2.0, size=120).astype(float)
        ours, ref = _pair("regressor", loss="poisson", **params)
    else:
        y = rng.normal(size=(120, 3) if target == "multiregression" else 120)
        ours, ref = _pair("regressor", **params)
    _quiet_fit(ref, X, y)
    # Put scikit-learn's fitted state into ours: prediction must agree to rounding.
    for name, value in vars(ref).items():
        if name.endswith("_") or name == "_label_binarizer":
            setattr(ours, name, value)
    rtol = 1e-10 if dtype == np.float64 else 2e-5
    if target in ("binary", "multiclass", "multilabel"):
        p_ours, p_ref = ours.predict_proba(X), ref.predict_proba(X)
        assert p_ours.dtype == p_ref.dtype
        assert_allclose(p_ours, p_ref, rtol=rtol, atol=rtol)
        agree = np.mean(np.all(ours.predict(X) == ref.predict(X), axis=-1 if y.ndim > 1 else None))
        assert agree > 0.99
    else:
        p_ours, p_ref = ours.predict(X), ref.predict(X)
        assert p_ours.dtype == p_ref.dtype
        assert p_ours.shape == p_ref.shape
        assert_allclose(p_ours, p_ref, rtol=rtol, atol=rtol)


# --------------------------------------------------------------------- loss and gradient
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(
    "out_activation,loss",
    [
        ("softmax", "log_loss"),
        ("logistic", "binary_log_loss"),
        ("identity", "squared_error"),
        ("exp", "poisson"),
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_grad_matches_sklearn_backprop(
    activation: str, out_activation: str, loss: str, weighted: bool
) -> None:
    rng = np.random.RandomState(1)
    n, d, units = 40, 5, [5, 7, 6, 3]
    X = rng.normal(size=(n, d))
    if out_activation == "softmax":
        Y = np.eye(3)[rng.randint(0, 3, n)]
        ref: Any = skn.MLPClassifier(activation=activation, alpha=0.3)
    elif out_activation == "logistic":
        Y = rng.randint(0, 2, size=(n, 3)).astype(float)
        ref = skn.MLPClassifier(activation=activation, alpha=0.3)
    else:
        Y = (
            rng.poisson(1.5, size=(n, 3)).astype(float)
            if loss == "poisson"
            else rng.normal(size=(n, 3))
        )
        ref = skn.MLPRegressor(
            activation=activation,
            alpha=0.3,
            loss="poisson" if loss == "poisson" else "squared_error",
        )
    sw = rng.uniform(0.5, 2.0, size=n) if weighted else None
    ref.n_layers_ = len(units)
    ref.out_activation_ = out_activation
    ref.coefs_ = [rng.uniform(-0.5, 0.5, size=(a, b)) for a, b in pairwise(units)]
    ref.intercepts_ = [rng.uniform(-0.5, 0.5, size=b) for b in units[1:]]
    packed = np.hstack([w.ravel() for w in ref.coefs_ + ref.intercepts_])
    start, ref._coef_indptr, ref._intercept_indptr = 0, [], []
    for a, b in pairwise(units):
        ref._coef_indptr.append((start, start + a * b, (a, b)))
        start += a * b
    for b in units[1:]:
        ref._intercept_indptr.append((start, start + b))
        start += b
    n_layers = len(units) - 1
    acts = [X] + [None] * n_layers
    deltas = [None] * n_layers
    cg = [np.empty((a, b)) for a, b in pairwise(units)]
    ig = [np.empty(b) for b in units[1:]]
    ref_loss, ref_grad = ref._loss_grad_lbfgs(packed.copy(), X, Y, sw, acts, deltas, cg, ig)

    loss_val, grad = _oxlearn.mlp_loss_grad(
        packed, X, Y, sw, units, activation, out_activation, loss, 0.3, 2
    )
    assert grad.dtype == np.float64
    assert_allclose(loss_val, ref_loss, rtol=1e-12)
    assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-12)

    # float32: same numbers to float32 rounding
    loss32, grad32 = _oxlearn.mlp_loss_grad(
        packed.astype(np.float32),
        X.astype(np.float32),
        Y.astype(np.float32),
        None if sw is None else sw.astype(np.float32),
        units,
        activation,
        out_activation,
        loss,
        0.3,
        2,
    )
    assert grad32.dtype == np.float32
    assert_allclose(loss32, ref_loss, rtol=1e-4)
    assert_allclose(grad32, ref_grad, rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------------- lbfgs
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
def test_lbfgs_matches_sklearn(kind: str, activation: str, digits_scaled: Any) -> None:
    # Same initial weights + the same deterministic optimiser (scipy's L-BFGS-B) +
    # gradients equal to rounding -> near-identical weights after a modest number of steps.
    X, y = digits_scaled
    X, y = X[:400], y[:400]
    if kind == "regressor":
        y = StandardScaler().fit_transform(y.reshape(-1, 1).astype(float)).ravel()
    params = dict(
        hidden_layer_sizes=(20,), solver="lbfgs", max_iter=30, activation=activation, random_state=0
    )
    ours, ref = _pair(kind, **params)
    _quiet_fit(ours, X, y)
    _quiet_fit(ref, X, y)
    assert ours.n_iter_ == ref.n_iter_
    assert_allclose(ours.loss_, ref.loss_, rtol=1e-6)
    assert type(ours.loss_) is type(ref.loss_)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_, strict=True):
        assert a.dtype == b.dtype
        assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    if kind == "classifier":
        assert_array_equal(ours.predict(X), ref.predict(X))
    else:
        assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-5, atol=1e-6)


def test_lbfgs_float32_like_sklearn(digits_scaled: Any) -> None:
    # scikit-learn evaluates the loss in float32 for float32 X (scipy keeps x0's dtype) while
    # L-BFGS-B iterates, and returns, float64 weights: so do we. float32 rounding differs
    # in the last bits and L-BFGS amplifies it a little over 20 steps.
    X, y = digits_scaled
    X32 = X[:300].astype(np.float32)
    params = dict(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=20, random_state=0)
    ours, ref = _pair("classifier", **params)
    _quiet_fit(ours, X32, y[:300])
    _quiet_fit(ref, X32, y[:300])
    assert [c.dtype for c in ours.coefs_] == [c.dtype for c in ref.coefs_]
    assert ours.predict_proba(X32).dtype == ref.predict_proba(X32).dtype
    assert_allclose(ours.loss_, ref.loss_, rtol=1e-3)


# --------------------------------------------------------------------- SGD / Adam, no shuffle
STOCHASTIC_CASES = [
    dict(solver="adam"),
    dict(solver="sgd", learning_rate_init=0.05),
    dict(solver="sgd", learning_rate_init=0.05, nesterovs_momentum=False),
    dict(solver="sgd", learning_rate_init=0.05, momentum=0.0),
    dict(solver="sgd", learning_rate_init=0.2, learning_rate="invscaling", power_t=0.3),
    dict(solver="sgd", learning_rate_init=0.05, learning_rate="adaptive", tol=1e-2),
    dict(solver="adam", early_stopping=True, validation_fraction=0.2),
    dict(solver="sgd", learning_rate_init=0.05, early_stopping=True),
    dict(solver="adam", batch_size=37, alpha=0.01, activation="tanh"),
]


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("case", STOCHASTIC_CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_stochastic_without_shuffle_matches_sklearn(
    kind: str, case: dict[str, Any], digits_scaled: Any
) -> None:
    # With shuffle=False the mini-batch order is fixed, so our Rust loop must follow
    # scikit-learn's loop step for step: same losses, stopping epoch, validation scores.
    X, y = digits_scaled
    X, y = X[:500], y[:500]
    if kind == "regressor":
        y = StandardScaler().fit_transform(y.reshape(-1, 1).astype(float)).ravel()
    params = dict(hidden_layer_sizes=(16,), shuffle=False, max_iter=40, random_state=0, **case)
    ours, ref = _pair(kind, **params)
    sw = np.random.RandomState(0).uniform(0.5, 1.5, size=len(y))
    _quiet_fit(ours, X, y, sample_weight=sw)
    _quiet_fit(ref, X, y, sample_weight=sw)
    assert ours.n_iter_ == ref.n_iter_
    assert ours.t_ == ref.t_
    assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-6)
    # The scalars' types too (scikit-learn's losses are NumPy float64 scalars).
    for name in ("loss_", "best_loss_", "best_validation_score_", "t_", "n_iter_"):
        assert type(getattr(ours, name)) is type(getattr(ref, name)), name
    assert [type(v) for v in ours.loss_curve_] == [type(v) for v in ref.loss_curve_]
    if ref.early_stopping:
        assert [type(v) for v in ours.validation_scores_] == [
            type(v) for v in ref.validation_scores_
        ]
    assert ours._no_improvement_count == ref._no_improvement_count
    assert_allclose(ours._optimizer.learning_rate, ref._optimizer.learning_rate, rtol=1e-9)
    if ref.early_stopping:
        assert_allclose(ours.validation_scores_, ref.validation_scores_, rtol=1e-6)
        assert_allclose(ours.best_validation_score_, ref.best_validation_score_, rtol=1e-6)
        assert ours.best_loss_ is None
    else:
        assert_allclose(ours.best_loss_, ref.best_loss_, rtol=1e-6)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_, strict=True):
        assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_without_shuffle_matches_sklearn(solver: str, digits_scaled: Any) -> None:
    X, y = digits_scaled
    X, y = X[:300], y[:300]
    ours, ref = _pair("classifier", solver=solver, shuffle=False, random_state=0)
    classes = np.unique(y)
    for _ in range(5):
        ours.partial_fit(X, y, classes=classes)
        ref.partial_fit(X, y, classes=classes)
    assert ours.n_iter_ == ref.n_iter_ == 1
    assert ours.t_ == ref.t_
    assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-7)
    for a, b in zip(ours.coefs_, ref.coefs_, strict=True):
        assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_multilabel_without_shuffle_matches_sklearn() -> None:
    X, Y = make_multilabel_classification(n_samples=200, n_classes=4, random_state=0)
    params = dict(hidden_layer_sizes=(12,), shuffle=False, max_iter=30, random_state=0)
    ours, ref = _pair("classifier", **params)
    _quiet_fit(ours, X, Y)
    _quiet_fit(ref, X, Y)
    assert ours.out_activation_ == ref.out_activation_ == "logistic"
    assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-6)
    assert_array_equal(ours.predict(X), ref.predict(X))


def test_multioutput_regression_without_shuffle_matches_sklearn() -> None:
    X, Y = make_regression(n_samples=200, n_features=8, n_targets=3, random_state=0)
    Y = StandardScaler().fit_transform(Y)
    params = dict(hidden_layer_sizes=(12,), shuffle=False, max_iter=30, random_state=0)
    ours, ref = _pair("regressor", **params)
    _quiet_fit(ours, X, Y)
    _quiet_fit(ref, X, Y)
    assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-6)
    assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_loss_grad_lbfgs_matches_sklearn(activation):
    # scikit-learn's private L-BFGS objective, with its signature: the same loss and
    # gradient at the same parameters, and the same side effects on coefs_ and the lists.
    X, y = load_iris(return_X_y=True)
    kw = dict(hidden_layer_sizes=(7, 5), activation=activation, solver="lbfgs", alpha=1e-3)
    kw.update(max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(**kw).fit(X, y)
        ref = skn.MLPClassifier(**kw).fit(X, y)
    Y = LabelBinarizer().fit_transform(y)
    theta = np.random.RandomState(0).uniform(
        -0.5, 0.5, size=sum(c.size for c in ours.coefs_ + ours.intercepts_)
    )

    def lists(est):
        units = [X.shape[1], *est.hidden_layer_sizes, est.n_outputs_]
        acts = [X] + [np.empty((X.shape[0], u)) for u in units[1:]]
        deltas = [np.empty((X.shape[0], u)) for u in units[1:]]
        cg = [np.empty((a, b)) for a, b in pairwise(units)]
        ig = [np.empty(b) for b in units[1:]]
        return acts, deltas, cg, ig

    ours_lists, ref_lists = lists(ours), lists(ref)
    loss, grad = ours._loss_grad_lbfgs(theta, X, Y, None, *ours_lists)
    ref_loss, ref_grad = ref._loss_grad_lbfgs(theta, X, Y, None, *ref_lists)
    assert_allclose(loss, ref_loss, rtol=1e-12)
    assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-12)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_, strict=True):
        assert_array_equal(a, b)
    for a, b in zip(ours_lists[2] + ours_lists[3], ref_lists[2] + ref_lists[3], strict=True):
        assert_allclose(a, b, rtol=1e-9, atol=1e-12)
