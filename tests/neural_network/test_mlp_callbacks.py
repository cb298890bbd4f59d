"""scikit-learn's callback API (``sklearn.callback``) on our MLPs (issue 28, section 1).

Each epoch of 'sgd'/'adam' and each L-BFGS iteration is a subtask of the fit task; a hook
returning True stops training after that epoch, as a normal stop; ``fitted_estimator`` is the
model as of that epoch, so it predicts exactly as a fit of that many epochs does.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import numpy as np
import oxlearn._oxlearn as _oxlearn
import pytest
from oxlearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.base import clone
from sklearn.callback import ProgressBar, ScoringMonitor
from sklearn.datasets import load_digits, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


@pytest.fixture(scope="module")
def regression() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_regression(n_samples=300, n_features=10, noise=1.0, random_state=0)
    return X, y / 100.0


class Recorder:
    """Records every hook call (and, if asked, the fitted estimator's predictions)."""

    def __init__(self, stop_after: int | None = None, X_eval: Any = None) -> None:
        self.stop_after = stop_after
        self.X_eval = X_eval
        self.calls: list[tuple[str, str, int]] = []
        self.begin_predictions: list[np.ndarray] = []
        self.end_predictions: list[np.ndarray] = []
        self.seen_y: list[Any] = []
        self.seen_metadata: list[Any] = []

    def setup(self, estimator: Any, context: Any) -> None:
        self.calls.append(("setup", context.task_name, context.task_id))

    def teardown(self, estimator: Any, context: Any) -> None:
        self.calls.append(("teardown", context.task_name, context.task_id))

    def on_fit_task_begin(
        self,
        estimator: Any,
        context: Any,
        *,
        X: Any = None,
        y: Any = None,
        metadata: Any = None,
        fitted_estimator: Any = None,
    ) -> None:
        self.calls.append(("begin", context.task_name, context.task_id))
        if context.parent is not None and fitted_estimator is not None and self.X_eval is not None:
            self.begin_predictions.append(self._predict(fitted_estimator))

    def on_fit_task_end(
        self,
        estimator: Any,
        context: Any,
        *,
        X: Any = None,
        y: Any = None,
        metadata: Any = None,
        fitted_estimator: Any = None,
    ) -> bool:
        self.calls.append(("end", context.task_name, context.task_id))
        if X is None:
            return False
        self.seen_y.append(y)
        self.seen_metadata.append(metadata)
        if context.parent is None:
            return False
        if fitted_estimator is not None and self.X_eval is not None:
            self.end_predictions.append(self._predict(fitted_estimator))
        return self.stop_after is not None and context.task_id + 1 >= self.stop_after

    def _predict(self, est: Any) -> np.ndarray:
        if hasattr(est, "predict_proba"):
            return np.asarray(est.predict_proba(self.X_eval))
        return np.asarray(est.predict(self.X_eval))

    def count(self, kind: str, task_name: str | None = None) -> int:
        return sum(1 for k, t, _ in self.calls if k == kind and task_name in (None, t))


class LightRecorder:
    """A callback whose hooks take no ``fitted_estimator`` (as ProgressBar's)."""

    def __init__(self) -> None:
        self.ends = 0

    def setup(self, estimator: Any, context: Any) -> None:
        pass

    def teardown(self, estimator: Any, context: Any) -> None:
        pass

    def on_fit_task_begin(self, estimator: Any, context: Any) -> None:
        pass

    def on_fit_task_end(self, estimator: Any, context: Any) -> None:
        self.ends += 1


def _fit_quietly(est: Any, X: Any, y: Any, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kw)


def _same_weights(a: Any, b: Any) -> None:
    for x, z in zip([*a.coefs_, *a.intercepts_], [*b.coefs_, *b.intercepts_], strict=True):
        assert x.dtype == z.dtype
        np.testing.assert_array_equal(x, z)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_each_epoch_is_a_subtask_of_the_fit(digits: Any, solver: str) -> None:
    X, y = digits
    rec = Recorder()
    est = MLPClassifier((16,), solver=solver, max_iter=6, random_state=0).set_callbacks(rec)
    _fit_quietly(est, X, y)
    assert rec.count("setup") == rec.count("teardown") == 1
    # The root task and one subtask per epoch; no subtask is begun that never runs.
    assert rec.count("begin", "fit") == rec.count("end", "fit") == 1
    assert rec.count("begin", "epoch") == rec.count("end", "epoch") == est.n_iter_ == 6
    epochs = [i for k, t, i in rec.calls if k == "end" and t == "epoch"]
    assert epochs == list(range(6))
    # Hooks come in order: setup, fit begins, each epoch begins and ends, fit ends, teardown.
    assert rec.calls[0][0] == "setup" and rec.calls[1] == ("begin", "fit", 0)
    assert rec.calls[-2] == ("end", "fit", 0) and rec.calls[-1][0] == "teardown"


def test_a_converged_fit_ends_its_last_epoch_without_opening_another(digits: Any) -> None:
    X, y = digits
    rec = Recorder()
    # A huge tol: the stopping rule fires after n_iter_no_change + 2 epochs.
    est = MLPClassifier((16,), max_iter=100, tol=1e9, n_iter_no_change=2, random_state=0)
    est.set_callbacks(rec).fit(X, y)
    assert est.n_iter_ == 4
    assert rec.count("begin", "epoch") == rec.count("end", "epoch") == 4


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_fitted_estimator_is_the_model_of_that_epoch(digits: Any, solver: str, dtype: Any) -> None:
    """At the end of epoch k (and the beginning of k + 1) the copy predicts exactly as a fit
    of k epochs with the same random_state, whose weights are bit-identical."""
    X, y = digits
    X = X.astype(dtype)
    rec = Recorder(X_eval=X[:50])
    params = {"hidden_layer_sizes": (16,), "solver": solver, "random_state": 0}
    est = _fit_quietly(MLPClassifier(max_iter=5, **params).set_callbacks(rec), X, y)
    assert len(rec.end_predictions) == 5 and len(rec.begin_predictions) == 5
    for k in (1, 3, 5):
        short = _fit_quietly(MLPClassifier(max_iter=k, **params), X, y)
        expected = short.predict_proba(X[:50])
        np.testing.assert_array_equal(rec.end_predictions[k - 1], expected)
        if k < 5:
            np.testing.assert_array_equal(rec.begin_predictions[k], expected)
    # The first epoch begins at the initial weights.
    init = MLPClassifier(max_iter=1, **params)
    init._validate_params()
    init._label_binarizer = est._label_binarizer
    init.classes_ = est.classes_
    init.n_features_in_ = 64
    init._random_state = np.random.RandomState(0)
    init._initialize(np.eye(10)[y], [64, 16, 10], X.dtype)
    np.testing.assert_array_equal(rec.begin_predictions[0], init.predict_proba(X[:50]))
    # Setting callbacks changes nothing in the fit itself.
    _same_weights(est, _fit_quietly(MLPClassifier(max_iter=5, **params), X, y))


def test_fitted_estimator_of_each_lbfgs_iteration(regression: Any) -> None:
    X, y = regression
    rec = Recorder(X_eval=X[:40])
    params = {"hidden_layer_sizes": (8,), "solver": "lbfgs", "random_state": 0}
    est = _fit_quietly(MLPRegressor(max_iter=6, **params).set_callbacks(rec), X, y)
    assert est.n_iter_ == 6
    # As scikit-learn's LogisticRegression: one subtask per iteration, plus the one begun
    # after the last, ended empty.
    assert rec.count("begin", "lbfgs-iter") == rec.count("end", "lbfgs-iter") == 7
    assert len(rec.end_predictions) == 6
    for k in (2, 6):
        short = _fit_quietly(MLPRegressor(max_iter=k, **params), X, y)
        np.testing.assert_array_equal(rec.end_predictions[k - 1], short.predict(X[:40]))


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_a_callback_returning_true_stops_training_as_a_normal_stop(
    digits: Any, solver: str
) -> None:
    X, y = digits
    rec = Recorder(stop_after=3)
    params = {"hidden_layer_sizes": (16,), "solver": solver, "random_state": 0}
    est = MLPClassifier(max_iter=50, **params).set_callbacks(rec)
    with warnings.catch_warnings():
        # No ConvergenceWarning, no "Training interrupted" warning: a requested stop.
        warnings.simplefilter("error")
        est.fit(X, y)
    assert est.n_iter_ == 3
    task = "lbfgs-iter" if solver == "lbfgs" else "epoch"
    assert rec.count("end", task) == 3
    assert rec.count("begin", task) == 3
    assert rec.count("end", "fit") == 1
    # The model is the one of 3 epochs (iterations), whole and ready to predict.
    short = _fit_quietly(MLPClassifier(max_iter=3, **params), X, y)
    if solver != "lbfgs":
        _same_weights(est, short)
        assert est.loss_curve_ == short.loss_curve_
        assert est.t_ == short.t_
    np.testing.assert_allclose(est.predict_proba(X), short.predict_proba(X), rtol=1e-12)
    assert est.loss_ == pytest.approx(short.loss_, rel=1e-12)


def test_a_stopped_fit_with_early_stopping_keeps_the_best_weights(digits: Any) -> None:
    X, y = digits
    rec = Recorder(stop_after=4)
    est = MLPClassifier((16,), early_stopping=True, max_iter=50, random_state=0)
    est.set_callbacks(rec).fit(X, y)
    assert est.n_iter_ == 4
    assert est.validation_scores_ is not None and len(est.validation_scores_) == 4
    assert est.best_validation_score_ == max(est.validation_scores_)
    short = _fit_quietly(
        MLPClassifier((16,), early_stopping=True, max_iter=4, random_state=0), X, y
    )
    _same_weights(est, short)


def test_hooks_receive_the_labels_and_the_sample_weight(digits: Any) -> None:
    X, y = digits
    rec = Recorder()
    sw = np.linspace(0.5, 1.5, len(y))
    _fit_quietly(
        MLPClassifier((8,), max_iter=2, random_state=0).set_callbacks(rec), X, y, sample_weight=sw
    )
    assert len(rec.seen_y) == 3  # two epochs and the fit
    for seen in rec.seen_y:
        np.testing.assert_array_equal(seen, y)
    for md in rec.seen_metadata:
        np.testing.assert_array_equal(md["sample_weight"], sw)


def test_multilabel_targets_reach_the_hooks_as_an_indicator_matrix() -> None:
    X, Y = make_multilabel_classification(n_samples=120, n_classes=3, random_state=0)
    rec = Recorder()
    _fit_quietly(MLPClassifier((8,), max_iter=2, random_state=0).set_callbacks(rec), X, Y)
    for seen in rec.seen_y:
        np.testing.assert_array_equal(seen, Y)


def test_regressor_hooks_see_one_dimensional_targets(regression: Any) -> None:
    X, y = regression
    rec = Recorder()
    _fit_quietly(
        MLPRegressor(hidden_layer_sizes=(8,), max_iter=2, random_state=0).set_callbacks(rec), X, y
    )
    for seen in rec.seen_y:
        np.testing.assert_array_equal(seen, y)


def test_partial_fit_is_one_task_with_one_epoch(digits: Any) -> None:
    X, y = digits
    rec = Recorder()
    est = MLPClassifier((8,), random_state=0).set_callbacks(rec)
    est.partial_fit(X, y, classes=np.arange(10))
    est.partial_fit(X, y)
    assert rec.count("begin", "fit") == 2
    assert rec.count("end", "epoch") == 2
    assert rec.count("setup") == rec.count("teardown") == 2


def test_scoring_monitor_scores_every_epoch(digits: Any) -> None:
    X, y = digits
    monitor = ScoringMonitor(scoring="accuracy")
    params = {"hidden_layer_sizes": (16,), "random_state": 0}
    _fit_quietly(MLPClassifier(max_iter=4, **params).set_callbacks(monitor), X, y)
    log = monitor.get_logs()
    table = log.data_as_pandas
    by_path = {
        tuple(p): float(s) for p, s in zip(table["task_id_path"], table["accuracy"], strict=True)
    }
    expected = [
        _fit_quietly(MLPClassifier(max_iter=k, **params), X, y).score(X, y) for k in (1, 2, 3, 4)
    ]
    # One score per epoch (at its end), and the fit's.
    assert [by_path[(0, k)] for k in range(4)] == expected
    assert by_path[(0,)] == expected[-1]
    assert len(by_path) == 5


def test_progress_bar_alone_in_a_pipeline_and_a_grid_search(
    digits: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("rich")
    X, y = digits
    est = MLPClassifier((8,), max_iter=3, random_state=0).set_callbacks(ProgressBar())
    _fit_quietly(est, X, y)
    assert est.n_iter_ == 3
    pipe = make_pipeline(StandardScaler(), MLPClassifier((8,), max_iter=3, random_state=0))
    pipe.set_callbacks(ProgressBar(max_propagation_depth=None))
    _fit_quietly(pipe, X, y)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), MLPClassifier(max_iter=3, random_state=0)),
        {"mlpclassifier__hidden_layer_sizes": [(8,), (16,)]},
        cv=2,
    ).set_callbacks(ProgressBar(max_propagation_depth=None))
    _fit_quietly(search, X, y)
    assert search.best_estimator_[-1].n_iter_ == 3
    out = capsys.readouterr().out
    assert "MLPClassifier - fit" in out
    assert "Pipeline - fit-final-estimator | MLPClassifier - fit" in out


def test_auto_propagated_callbacks_reach_the_mlp_in_a_search(digits: Any) -> None:
    X, y = digits
    monitor = ScoringMonitor(scoring="accuracy")
    search = GridSearchCV(
        MLPClassifier(max_iter=2, random_state=0), {"hidden_layer_sizes": [(8,), (16,)]}, cv=2
    )
    # ScoringMonitor is not auto-propagated: set it on the inner estimator.
    search.estimator.set_callbacks(monitor)
    _fit_quietly(search, X, y)
    log = monitor.get_logs(select="all")
    assert log  # the inner fits logged their epochs
    # In a pipeline, the MLP's own monitor scores the transformed data each epoch.
    in_pipe = ScoringMonitor(scoring="accuracy")
    pipe = make_pipeline(
        StandardScaler(), MLPClassifier((8,), max_iter=2, random_state=0).set_callbacks(in_pipe)
    )
    _fit_quietly(pipe, X, y)
    table = in_pipe.get_logs().data_as_pandas
    assert len(table) == 3  # two epochs and the fit
    assert float(table["accuracy"].iloc[0]) == pipe.score(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = cross_validate(
            MLPClassifier((8,), max_iter=2, random_state=0).set_callbacks(LightRecorder()),
            X,
            y,
            cv=2,
        )
    assert len(res["test_score"]) == 2


def test_without_callbacks_the_loop_never_calls_back(
    digits: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No callback: no epoch hook and no per-epoch weight copies. A callback that does not
    take ``fitted_estimator`` gets its hook, but the weights are written back once."""
    seen: list[tuple[Any, bool]] = []
    real = _oxlearn.mlp_fit_stochastic

    def spy(*args: Any) -> Any:
        config, on_epoch = args[7], args[9] if len(args) > 9 else None
        seen.append((on_epoch, "publish_weights=true" in repr(config)))
        return real(*args)

    monkeypatch.setattr(_oxlearn, "mlp_fit_stochastic", spy)
    X, y = digits
    _fit_quietly(MLPClassifier((8,), max_iter=2, random_state=0), X, y)
    assert seen[-1] == (None, False)
    light = LightRecorder()
    _fit_quietly(MLPClassifier((8,), max_iter=2, random_state=0).set_callbacks(light), X, y)
    assert seen[-1][0] is not None and seen[-1][1] is False
    assert light.ends == 3
    _fit_quietly(MLPClassifier((8,), max_iter=2, random_state=0).set_callbacks(Recorder()), X, y)
    assert seen[-1][1] is True


def test_a_failing_callback_raises_and_is_torn_down(digits: Any) -> None:
    X, y = digits

    class Fails(Recorder):
        def on_fit_task_end(self, estimator: Any, context: Any, **kw: Any) -> bool:
            if context.task_name == "epoch" and context.task_id == 1:
                raise RuntimeError("boom")
            return False

    cb = Fails()
    est = MLPClassifier((8,), max_iter=10, random_state=0).set_callbacks(cb)
    with pytest.raises(RuntimeError, match="boom"):
        est.fit(X, y)
    assert cb.count("teardown") == 1
    # The estimator can be fitted again afterwards.
    _fit_quietly(est.set_callbacks(), X, y)
    assert est.n_iter_ == 10


def test_verbose_output_with_callbacks(digits: Any, capsys: pytest.CaptureFixture[str]) -> None:
    X, y = digits
    _fit_quietly(
        MLPClassifier((8,), max_iter=2, random_state=0, verbose=True).set_callbacks(Recorder()),
        X,
        y,
    )
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 2, loss = " in out


def test_clone_and_pickle_keep_the_callbacks(digits: Any) -> None:
    X, y = digits
    light = LightRecorder()
    est = MLPClassifier((8,), max_iter=2, random_state=0).set_callbacks(light)
    assert clone(est)._skl_callbacks == [light]
    fitted = _fit_quietly(est, X, y)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict(X), fitted.predict(X))
