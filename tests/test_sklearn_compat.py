"""The private scikit-learn names we depend on still resolve and behave as we use them."""

import inspect
from typing import Any

import numpy as np
import pytest
import sklearn.neural_network
from oxlearn import _sklearn_compat as compat
from oxlearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.base import BaseEstimator


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_all_lists_exactly_the_public_names() -> None:
    public = {n for n in vars(compat) if not n.startswith("__") and n not in {"annotations"}}
    helpers = {"Any", "Callable", "TypeVar", "_F", "_sklearn_available_if"}
    assert set(compat.__all__) == public - helpers


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("_check_precomputed", ["X"]),
        ("get_chunk_n_rows", ["row_bytes", "max_n_rows", "working_memory"]),
        ("_get_threadlocal_config", []),
        ("_check_optimize_result", ["solver", "result", "max_iter", "extra_warning_msg"]),
        (
            "_check_sample_weight",
            [
                "sample_weight",
                "X",
                "dtype",
                "force_float_dtype",
                "ensure_non_negative",
                "ensure_same_device",
                "copy",
                "allow_all_zero_weights",
            ],
        ),
    ],
)
def test_helpers_take_the_arguments_we_pass(name: str, parameters: list[str]) -> None:
    assert _parameters(getattr(compat, name)) == parameters


def test_argkmin_usable_follows_scikit_learns_dispatch() -> None:
    # Its compiled brute force runs these metrics; cosine and hamming go through a matrix.
    assert compat.argkmin_usable("manhattan") and compat.argkmin_usable("braycurtis")
    assert not compat.argkmin_usable("cosine") and not compat.argkmin_usable("hamming")
    assert not compat.argkmin_usable(lambda a, b: 0.0)


def test_neighbors_base_is_scikit_learns_estimator_base() -> None:
    assert issubclass(compat.NeighborsBase, BaseEstimator)
    assert callable(compat.NeighborsBase._fit)


def test_mlp_classes_are_scikit_learns() -> None:
    assert compat.SklearnMLPClassifier is sklearn.neural_network.MLPClassifier
    assert compat.SklearnMLPRegressor is sklearn.neural_network.MLPRegressor
    assert issubclass(MLPClassifier, compat.SklearnMLPClassifier)
    assert issubclass(MLPRegressor, compat.SklearnMLPRegressor)


@pytest.mark.parametrize("hook", sorted(compat.MLP_HOOKS))
@pytest.mark.parametrize("base", [compat.SklearnMLPClassifier, compat.SklearnMLPRegressor])
def test_mlp_hooks_exist_with_the_expected_parameters(base: type, hook: str) -> None:
    expected = ["self", *compat.MLP_HOOKS[hook]]
    assert _parameters(getattr(base, hook)) == expected
    ours = MLPClassifier if issubclass(MLPClassifier, base) else MLPRegressor
    # Where we override a hook, ours takes the same parameters.
    assert _parameters(getattr(ours, hook)) == expected


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_scikit_learns_fit_and_predict_call_our_hooks(
    solver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scikit-learn's ``fit``/``predict`` still route through the hooks we override."""
    X = np.random.RandomState(0).rand(20, 3)
    y = np.arange(20) % 2
    called: list[str] = []
    overridden = ["_validate_input", "_fit_stochastic", "_fit_lbfgs", "_forward_pass_fast"]
    for name in overridden:
        original = getattr(MLPClassifier, name)
        assert original is not getattr(compat.SklearnMLPClassifier, name), name

        def spy(self: Any, *args: Any, _name: str = name, _f: Any = original, **kw: Any) -> Any:
            called.append(_name)
            return _f(self, *args, **kw)

        monkeypatch.setattr(MLPClassifier, name, spy)
    MLPClassifier(hidden_layer_sizes=(2,), solver=solver, max_iter=2, random_state=0).fit(
        X, y
    ).predict(X)
    fit_hook = "_fit_stochastic" if solver == "adam" else "_fit_lbfgs"
    assert called == ["_validate_input", fit_hook, "_forward_pass_fast"]


def test_available_if_hides_the_method() -> None:
    class Est:
        def __init__(self, ok: bool) -> None:
            self.ok = ok

        @compat.available_if(lambda est: est.ok)
        def method(self) -> int:
            return 1

    assert Est(True).method() == 1
    assert not hasattr(Est(False), "method")
