"""Behaviour: determinism, threads, persistence, dtypes, warm start, partial_fit, early stopping."""

import pickle
import re
import warnings
from itertools import pairwise
from typing import Any

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from oxlearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.base import clone
from sklearn.datasets import load_digits, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils import check_random_state


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return MinMaxScaler().fit_transform(X[:600]), y[:600]


def _fit(est: Any, X: Any, y: Any, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kw)


def _weights(est: Any) -> list[np.ndarray]:
    return [*est.coefs_, *est.intercepts_]


# ------------------------------------------------------------------ determinism & threads
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_two_fits_are_bit_identical(solver: str, dtype: Any, data: Any) -> None:
    X, y = data
    X = X.astype(dtype)
    params = dict(hidden_layer_sizes=(32, 16), solver=solver, max_iter=15, random_state=7)
    a = _fit(MLPClassifier(**params), X, y)
    b = _fit(MLPClassifier(**params), X, y)
    for wa, wb in zip(_weights(a), _weights(b), strict=True):
        assert_array_equal(wa, wb)
    if solver != "lbfgs":
        assert a.loss_curve_ == b.loss_curve_


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_results_do_not_depend_on_thread_count(
    solver: str, data: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = data
    params = dict(hidden_layer_sizes=(64,), solver=solver, max_iter=10, random_state=0)
    fits = []
    for n in ("1", "2", "3"):
        monkeypatch.setenv("OXLEARN_NUM_THREADS", n)
        fits.append(_fit(MLPClassifier(**params), X, y))
    for other in fits[1:]:
        for wa, wb in zip(_weights(fits[0]), _weights(other), strict=True):
            assert_array_equal(wa, wb)
        assert_array_equal(fits[0].predict_proba(X), other.predict_proba(X))


def test_bad_thread_env(monkeypatch: pytest.MonkeyPatch, data: Any) -> None:
    X, y = data
    monkeypatch.setenv("OXLEARN_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match="OXLEARN_NUM_THREADS must be an integer >= 1"):
        MLPClassifier(max_iter=1).fit(X, y)


def test_random_state_changes_result(data: Any) -> None:
    X, y = data
    a = _fit(MLPClassifier(max_iter=5, random_state=0), X, y)
    b = _fit(MLPClassifier(max_iter=5, random_state=1), X, y)
    assert not np.array_equal(a.coefs_[0], b.coefs_[0])


# ------------------------------------------------------------------ persistence
@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_pickle_joblib_clone_preserve_predictions(
    Est: Any, solver: str, data: Any, tmp_path: Any
) -> None:
    X, y = data
    est = _fit(Est(hidden_layer_sizes=(20,), solver=solver, max_iter=20, random_state=0), X, y)
    method = "predict_proba" if Est is MLPClassifier else "predict"
    expected = getattr(est, method)(X)

    restored = pickle.loads(pickle.dumps(est))
    assert_array_equal(getattr(restored, method)(X), expected)

    path = tmp_path / "mlp.joblib"
    joblib.dump(est, path)
    assert_array_equal(getattr(joblib.load(path), method)(X), expected)

    # clone gives an unfitted copy with the same parameters; refitting reproduces exactly.
    fresh = clone(est)
    assert fresh.get_params() == est.get_params()
    assert not hasattr(fresh, "coefs_")
    assert_array_equal(getattr(_fit(fresh, X, y), method)(X), expected)


def test_unpickled_model_continues_partial_fit_like_the_original(data: Any) -> None:
    X, y = data
    classes = np.unique(y)
    a = MLPClassifier(random_state=0)
    for _ in range(3):
        a.partial_fit(X, y, classes=classes)
    b = pickle.loads(pickle.dumps(a))
    a.partial_fit(X, y)
    b.partial_fit(X, y)
    for wa, wb in zip(_weights(a), _weights(b), strict=True):
        assert_array_equal(wa, wb)


def test_grid_search(data: Any) -> None:
    X, y = data
    search = GridSearchCV(
        MLPClassifier(max_iter=100, learning_rate_init=0.01, random_state=0),
        {"hidden_layer_sizes": [(8,), (16,)]},
        cv=2,
    )
    _fit(search, X, y)
    assert search.best_score_ > 0.8


# ------------------------------------------------------------------ dtypes & sparse
@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_float32_trains_in_float32(Est: Any, data: Any) -> None:
    X, y = data
    est = _fit(Est(hidden_layer_sizes=(16,), max_iter=20, random_state=0), X.astype(np.float32), y)
    assert all(w.dtype == np.float32 for w in _weights(est))
    assert all(a.dtype == np.float32 for a in est._optimizer.first + est._optimizer.second)
    out = est.predict_proba(X.astype(np.float32)) if Est is MLPClassifier else est.predict(X)
    # float64 input against float32 weights gives float64, as NumPy (and scikit-learn) would.
    assert out.dtype == (np.float32 if Est is MLPClassifier else np.float64)
    est64 = _fit(Est(hidden_layer_sizes=(16,), max_iter=20, random_state=0), X, y)
    if Est is MLPClassifier:
        assert np.mean(est.predict(X) == est64.predict(X)) > 0.97
    else:
        assert_allclose(est.predict(X), est64.predict(X), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_is_densified(fmt: str, data: Any) -> None:
    X, y = data
    Xs = sp.csr_matrix(X) if fmt == "csr" else sp.csc_matrix(X)
    params = dict(hidden_layer_sizes=(16,), max_iter=10, random_state=0)
    dense = _fit(MLPClassifier(**params), X, y)
    sparse = _fit(MLPClassifier(**params), Xs, y)
    for wa, wb in zip(_weights(dense), _weights(sparse), strict=True):
        assert_array_equal(wa, wb)
    assert_array_equal(dense.predict_proba(X), sparse.predict_proba(Xs))


# ------------------------------------------------------------------ warnings & stopping
def test_convergence_warning_text(data: Any) -> None:
    X, y = data
    with pytest.warns(
        ConvergenceWarning,
        match=re.escape(
            "Stochastic Optimizer: Maximum iterations (3) reached and the optimization "
            "hasn't converged yet."
        ),
    ):
        MLPClassifier(max_iter=3, random_state=0).fit(X, y)


def test_lbfgs_convergence_warning(data: Any) -> None:
    X, y = data
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge after 3 iteration"):
        MLPClassifier(solver="lbfgs", max_iter=3, random_state=0).fit(X, y)


def test_tol_stopping_rule(data: Any) -> None:
    X, y = data
    clf = MLPClassifier(tol=1e-1, n_iter_no_change=3, max_iter=500, random_state=0).fit(X, y)
    assert clf.n_iter_ < 500
    assert clf._no_improvement_count == 4
    # Replay scikit-learn's rule (_update_no_improvement_count) over the loss curve.
    best, count, stop = np.inf, 0, None
    for epoch, loss in enumerate(clf.loss_curve_, start=1):
        count = count + 1 if loss > best - 1e-1 else 0
        best = min(best, loss)
        if count > 3:
            stop = epoch
            break
    assert stop == clf.n_iter_
    assert clf.best_loss_ == min(clf.loss_curve_)


def test_batch_size_clipped_with_warning(data: Any) -> None:
    X, y = data
    with pytest.warns(UserWarning, match="Got `batch_size` less than 1 or larger than sample size"):
        _fit(MLPClassifier(batch_size=10_000, max_iter=2, random_state=0), X, y)


def test_verbose_output(data: Any, capsys: pytest.CaptureFixture[str]) -> None:
    X, y = data
    _fit(MLPClassifier(max_iter=3, verbose=True, random_state=0), X, y)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    for i, line in enumerate(out, start=1):
        assert re.fullmatch(rf"Iteration {i}, loss = \d+\.\d{{8}}", line)


def test_verbose_early_stopping_and_stop_message(
    data: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    X, y = data
    clf = MLPClassifier(
        early_stopping=True, n_iter_no_change=2, tol=0.5, verbose=True, random_state=0
    ).fit(X, y)
    out = capsys.readouterr().out
    assert out.count("Validation score: ") == clf.n_iter_
    assert out.rstrip().endswith(
        "Validation score did not improve more than tol=0.500000 for 2 consecutive epochs. "
        "Stopping."
    )


def test_verbose_adaptive_learning_rate_message(
    data: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    X, y = data
    _fit(
        MLPClassifier(
            solver="sgd",
            learning_rate="adaptive",
            tol=10.0,
            n_iter_no_change=1,
            verbose=True,
            max_iter=200,
            random_state=0,
        ),
        X,
        y,
    )
    out = capsys.readouterr().out
    assert "Learning rate too small. Stopping." in out


# ------------------------------------------------------------------ early stopping
@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_early_stopping_restores_best_weights(Est: Any, data: Any) -> None:
    X, y = data
    est = Est(
        hidden_layer_sizes=(32,),
        early_stopping=True,
        n_iter_no_change=5,
        max_iter=300,
        random_state=0,
        learning_rate_init=0.01,
    )
    _fit(est, X, y)
    scores = est.validation_scores_
    assert len(scores) == est.n_iter_
    best_epoch = int(np.argmax(scores))
    assert est.best_validation_score_ == max(scores)
    assert best_epoch < len(scores) - 1  # training went on past the best epoch
    # Re-score the validation split with the restored weights: it is the best score.
    rs = check_random_state(0)
    layer_units = [X.shape[1], 32, est.n_outputs_]
    for a, b in pairwise(layer_units):  # replay the init draws
        rs.uniform(size=(a, b))
        rs.uniform(size=b)
    y_split = est._label_binarizer.transform(y) if Est is MLPClassifier else y
    # scikit-learn stratifies only single-output classification (not 10-class one-hot)
    stratify = y_split if Est is MLPClassifier and est.n_outputs_ == 1 else None
    _, X_val, _, y_val = train_test_split(
        X, y_split, random_state=rs, test_size=0.1, stratify=stratify
    )
    if Est is MLPClassifier:
        y_val = est._label_binarizer.inverse_transform(y_val)
    assert_allclose(est.score(X_val, y_val), est.best_validation_score_, rtol=1e-12)


# ------------------------------------------------------------------ warm start & partial_fit
def test_warm_start_continues_from_previous_weights(data: Any) -> None:
    X, y = data
    clf = _fit(MLPClassifier(max_iter=5, warm_start=True, random_state=0), X, y)
    first_curve = list(clf.loss_curve_)
    _fit(clf, X, y)
    assert clf.loss_curve_[:5] == first_curve
    assert len(clf.loss_curve_) == 10
    assert clf.n_iter_ == 5
    assert clf.t_ == 10 * len(X)
    # cold start: a fresh fit's curve restarts from the initial loss
    cold = _fit(MLPClassifier(max_iter=5, random_state=0), X, y)
    assert clf.loss_curve_[5] < cold.loss_curve_[0]


def test_fit_resets_optimizer_partial_fit_keeps_it(data: Any) -> None:
    X, y = data
    clf = MLPClassifier(random_state=0)
    clf.partial_fit(X, y, classes=np.unique(y))
    opt = clf._optimizer
    assert opt.t == int(np.ceil(len(X) / 200))
    clf.partial_fit(X, y)
    assert clf._optimizer is opt
    assert opt.t == 2 * int(np.ceil(len(X) / 200))
    _fit(clf, X, y)
    assert clf._optimizer is not opt


def test_partial_fit_equals_repeated_single_epoch_fits(data: Any) -> None:
    # partial_fit(n times) walks the same path as one fit of n epochs when nothing random
    # differs between them (no shuffling).
    X, y = data
    fit = _fit(MLPClassifier(max_iter=6, shuffle=False, tol=0, random_state=0), X, y)
    pf = MLPClassifier(shuffle=False, random_state=0)
    for _ in range(6):
        pf.partial_fit(X, y, classes=np.unique(y))
    assert_allclose(pf.loss_curve_, fit.loss_curve_, rtol=1e-12)
    for wa, wb in zip(_weights(pf), _weights(fit), strict=True):
        assert_allclose(wa, wb, rtol=1e-12, atol=1e-15)


def test_sample_weight_zero_equals_dropping_samples() -> None:
    X, y = make_regression(n_samples=120, n_features=5, random_state=0)
    y = y / y.std()
    sw = np.ones(120)
    sw[100:] = 0.0
    params = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=50, random_state=0)
    a = _fit(MLPRegressor(**params), X, y, sample_weight=sw)
    b = _fit(MLPRegressor(**params), X[:100], y[:100])
    assert_allclose(a.predict(X), b.predict(X), rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ label encoding
@pytest.mark.parametrize(
    "fit_y, y",
    [
        ([3, 1, 2, 3, 1], [3, 1, 2, 3, 1]),
        ([3, 1, 2, 3, 1], [2, 2, 3]),  # a later partial_fit batch with fewer classes
        (["b", "a", "c"], ["c", "a", "a", "b"]),
        ([1.0, 3.0, 2.0, 1.0], [3.0, 1.0]),
        ([1, 0, 1], [1, 0, 1, 1]),  # binary: one column
        (["no", "yes"], ["yes", "yes"]),
        ([True, False, True], [False]),
        ([[1, 0], [0, 1], [1, 1]], [[1, 0], [1, 1]]),  # multilabel: through transform
    ],
)
def test_binarize_equals_label_binarizer(fit_y: Any, y: Any) -> None:
    from oxlearn.neural_network._multilayer_perceptron import _binarize
    from sklearn.preprocessing import LabelBinarizer

    lb = LabelBinarizer().fit(np.asarray(fit_y))
    got = _binarize(lb, np.asarray(y))
    want = lb.transform(np.asarray(y)).astype(bool)
    assert got.dtype == want.dtype == np.bool_
    assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64, np.uint64])
@pytest.mark.parametrize("labels", [[3, 1, 2, 3, 1, 0], [5, 2, 5, 5], [7, 7, 7]])
def test_label_binarizer_shortcut_equals_fit(dtype: Any, labels: Any) -> None:
    from oxlearn._plain_inputs import fitted_label_binarizer, plain_int_labels
    from sklearn.preprocessing import LabelBinarizer

    y = np.asarray(labels, dtype=dtype)
    assert plain_int_labels(y, len(y))
    got, want = fitted_label_binarizer(y), LabelBinarizer().fit(y)
    assert sorted(vars(got)) == sorted(vars(want))
    for name, value in vars(want).items():
        if isinstance(value, np.ndarray):
            assert getattr(got, name).dtype == value.dtype
            assert_array_equal(getattr(got, name), value)
        else:
            assert getattr(got, name) == value, name


def test_plain_inputs_shortcut_matches_full_validation(data: Any) -> None:
    """A plain float matrix and integer labels skip `validate_data` and `LabelBinarizer.fit`;
    the same data as lists (full validation) give the same fitted model and attributes."""
    import pandas as pd

    X, y = data
    X = np.ascontiguousarray(X[:300])
    y = y[:300].astype(np.int32)
    kw = {"hidden_layer_sizes": (12,), "max_iter": 5, "random_state": 0}
    fast = _fit(MLPClassifier(**kw), X, y)
    full = _fit(MLPClassifier(**kw), X.tolist(), y.tolist())
    for a, b in zip(_weights(fast), _weights(full), strict=True):
        assert_array_equal(a, b)
    assert fast.n_features_in_ == full.n_features_in_ == X.shape[1]
    assert fast.classes_.dtype == np.int32
    assert_array_equal(fast.classes_, full.classes_)
    assert vars(fast._label_binarizer).keys() == vars(full._label_binarizer).keys()
    assert fast._label_binarizer.y_type_ == full._label_binarizer.y_type_ == "multiclass"
    assert_array_equal(fast.predict(X), full.predict(X))
    # Refitting a model fitted on a DataFrame on plain arrays drops its feature names.
    names = [f"pixel{i}" for i in range(X.shape[1])]
    named = _fit(MLPClassifier(**kw), pd.DataFrame(X, columns=names), y)
    assert hasattr(named, "feature_names_in_")
    _fit(named, X, y)
    assert not hasattr(named, "feature_names_in_")
    # What the shortcut does not take: NaN (validate_data's error), Fortran order.
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier(**kw).fit(np.where(X == X[0, 0], np.nan, X), y)
    fortran = _fit(MLPClassifier(**kw), np.asfortranarray(X), y)
    for a, b in zip(_weights(fortran), _weights(fast), strict=True):
        assert_array_equal(a, b)


def test_instances_of_scikit_learns_classes() -> None:
    """A drop-in: code that checks for scikit-learn's classes accepts ours."""
    import sklearn.neural_network

    assert isinstance(MLPClassifier(), sklearn.neural_network.MLPClassifier)
    assert isinstance(MLPRegressor(), sklearn.neural_network.MLPRegressor)
    # Same parameters and defaults as scikit-learn's, and the classifier's `class_weight`
    # (issue 28), whose default None trains as scikit-learn does.
    expected = {**sklearn.neural_network.MLPClassifier().get_params(), "class_weight": None}
    assert MLPClassifier().get_params() == expected
    assert MLPRegressor().get_params() == sklearn.neural_network.MLPRegressor().get_params()
    # The lbfgs solver has no partial_fit (unlike scikit-learn 1.9's MLPRegressor).
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    assert hasattr(MLPRegressor(solver="sgd"), "partial_fit")
