"""Ctrl-C during fit: training stops after the current epoch, warns, and the model is usable."""

import signal
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from oxlearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.datasets import load_digits
from sklearn.preprocessing import MinMaxScaler

MAX_ITER = 20_000  # far more epochs than the 0.3 s before the interrupt allows


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("verbose", [False, True])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_sigint_stops_training_and_keeps_a_usable_model(
    Est: Any,
    verbose: bool,
    early_stopping: bool,
    capsys: pytest.CaptureFixture[str],
    interrupt_after: Callable[[float], threading.Thread],
) -> None:
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    X, y = load_digits(return_X_y=True)
    X = MinMaxScaler().fit_transform(X)
    est = Est(
        hidden_layer_sizes=(64,),
        max_iter=MAX_ITER,
        tol=0.0,
        n_iter_no_change=MAX_ITER,
        verbose=verbose,
        early_stopping=early_stopping,
        random_state=0,
    )
    thread = interrupt_after(0.3)
    with pytest.warns(UserWarning, match=r"^Training interrupted by user\.$"):
        est.fit(X, y)
    thread.join()

    assert 1 <= est.n_iter_ < MAX_ITER
    assert len(est.loss_curve_) == est.n_iter_
    assert all(np.isfinite(w).all() for w in [*est.coefs_, *est.intercepts_])
    if early_stopping:
        assert len(est.validation_scores_) == est.n_iter_
    pred = est.predict(X)
    assert pred.shape == (len(X),)
    score = est.score(X, y)
    assert np.isfinite(score)
    if Est is MLPClassifier:
        assert score > 0.5  # it trained for a while before the interrupt
    if verbose:
        assert capsys.readouterr().out.count("Iteration ") >= est.n_iter_ - 1

    # The interpreter is intact and the estimator can keep training.
    est.set_params(max_iter=2, warm_start=True)
    with pytest.warns(Warning):  # ConvergenceWarning: max_iter reached
        est.fit(X, y)
    assert est.n_iter_ == 2
