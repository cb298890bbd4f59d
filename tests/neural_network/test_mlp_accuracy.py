"""Same accuracy as scikit-learn (issue 3, section 3).

Our stochastic solvers shuffle with a Rust generator, so the mini-batch order differs from
scikit-learn's and single fits differ; the claim is statistical: on ``load_digits`` with
unshuffled ``KFold`` (4 folds; 6 for three-layer nets) and default parameters, the mean
cross-validated accuracy over ``random_state`` 0, 1, 2 is within 1.0 percentage point of
scikit-learn's, or within two standard errors of scikit-learn's seed-to-seed spread where
that is wider. The full 12-architecture table is produced by benches/mlp_accuracy_table.py.
"""

import warnings
from typing import Any

import numpy as np
import pytest
import sklearn.neural_network as skn
from oxlearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.datasets import load_diabetes, load_digits, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, cross_val_score, train_test_split
from sklearn.preprocessing import StandardScaler

SEEDS = (0, 1, 2)


def _seed_means(cls: Any, hidden: tuple[int, ...], X: Any, y: Any) -> np.ndarray:
    folds = 6 if len(hidden) == 3 else 4
    means = []
    for seed in SEEDS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            scores = cross_val_score(
                cls(hidden_layer_sizes=hidden, random_state=seed), X, y, cv=KFold(folds)
            )
        means.append(scores.mean())
    return np.array(means)


@pytest.mark.slow
@pytest.mark.parametrize("hidden", [(32,), (64, 64), (10, 10, 10)])
def test_cv_accuracy_matches_sklearn(hidden: tuple[int, ...]) -> None:
    X, y = load_digits(return_X_y=True)
    ours = _seed_means(MLPClassifier, hidden, X, y)
    ref = _seed_means(skn.MLPClassifier, hidden, X, y)
    diff_pp = 100 * abs(ours.mean() - ref.mean())
    two_se_pp = 100 * 2 * ref.std(ddof=1) / np.sqrt(len(SEEDS))
    assert diff_pp <= max(1.0, two_se_pp), (hidden, ours, ref)


@pytest.mark.slow
def test_loss_curve_decreases_and_ends_near_sklearn() -> None:
    X, y = load_digits(return_X_y=True)
    finals_ours, finals_ref = [], []
    for seed in SEEDS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ours = MLPClassifier(hidden_layer_sizes=(256,), random_state=seed).fit(X, y)
            ref = skn.MLPClassifier(hidden_layer_sizes=(256,), random_state=seed).fit(X, y)
        curve = np.asarray(ours.loss_curve_)
        assert len(curve) == ours.n_iter_ > 10
        # Decreasing: every 5-epoch block's mean loss is below the previous block's, as long
        # as the loss is still far from its floor; and the end is far below the start.
        blocks = curve[: len(curve) // 5 * 5].reshape(-1, 5).mean(axis=1)
        head = blocks[blocks > 10 * curve[-1]]
        assert np.all(np.diff(head) < 0)
        assert curve[-1] < curve[0] / 50
        finals_ours.append(curve[-1])
        finals_ref.append(ref.loss_curve_[-1])
    # the final training loss (mean over seeds) within 10% of scikit-learn's
    assert abs(np.mean(finals_ours) - np.mean(finals_ref)) <= 0.1 * np.mean(finals_ref), (
        finals_ours,
        finals_ref,
    )


def _regression_data(name: str) -> tuple[Any, Any]:
    if name == "diabetes":
        X, y = load_diabetes(return_X_y=True)
        X = StandardScaler().fit_transform(X)
    else:
        X, y = make_regression(n_samples=600, n_features=20, noise=10.0, random_state=0)
    return X, (y - y.mean()) / y.std()


# On diabetes (331 training rows, 10 features) an unregularised (64,) net trained by 500
# L-BFGS iterations overfits to a test R^2 near -1 for both libraries, and where it lands
# there turns on the last bits of every product (a different GEMM kernel moves it by
# 0.03); alpha=10 makes that fit well posed (R^2 about 0.4, as adam reaches with the
# default alpha). Every other case uses the defaults.
@pytest.mark.slow
@pytest.mark.parametrize(
    "data, solver, alpha",
    [
        ("diabetes", "adam", 1e-4),
        ("diabetes", "lbfgs", 10.0),
        ("make_regression", "adam", 1e-4),
        ("make_regression", "lbfgs", 1e-4),
    ],
)
def test_regressor_r2_matches_sklearn(data: str, solver: str, alpha: float) -> None:
    X, y = _regression_data(data)
    r2_ours, r2_ref = [], []
    for seed in SEEDS:
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=seed)
        params = dict(
            hidden_layer_sizes=(64,), solver=solver, alpha=alpha, max_iter=500, random_state=seed
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ours = MLPRegressor(**params).fit(X_tr, y_tr)
            ref = skn.MLPRegressor(**params).fit(X_tr, y_tr)
        r2_ours.append(r2_score(y_te, ours.predict(X_te)))
        r2_ref.append(r2_score(y_te, ref.predict(X_te)))
    # the fits are meaningful (better than predicting the mean) and agree
    assert np.mean(r2_ref) > 0.1, r2_ref
    assert abs(np.mean(r2_ours) - np.mean(r2_ref)) <= 0.02, (r2_ours, r2_ref)
