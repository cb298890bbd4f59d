"""The one module that imports scikit-learn's private API.

The neighbour estimators' base class and helpers, and the hooks of scikit-learn's MLP that
``oxlearn.neural_network`` overrides or calls (``MLP_HOOKS``), are private in scikit-learn;
importing and listing them here keeps a future rename to a single place, and
``tests/test_sklearn_compat.py`` checks that each import still resolves with the
parameters we use, and that each hook still exists with the parameters listed here.
Typed wrappers of untyped scikit-learn decorators live here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sklearn._config import _get_threadlocal_config
from sklearn.callback import CallbackContext, CallbackSupportMixin
from sklearn.metrics import DistanceMetric
from sklearn.metrics._pairwise_distances_reduction import ArgKmin
from sklearn.neighbors._base import NeighborsBase, _check_precomputed
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
from sklearn.neural_network import MLPRegressor as SklearnMLPRegressor
from sklearn.utils._chunking import get_chunk_n_rows
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if as _sklearn_available_if
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight

__all__ = [
    "MLP_HOOKS",
    "ArgKmin",
    "CallbackContext",
    "CallbackSupportMixin",
    "DistanceMetric",
    "NeighborsBase",
    "SklearnMLPClassifier",
    "SklearnMLPRegressor",
    "StrOptions",
    "_check_optimize_result",
    "_check_precomputed",
    "_check_sample_weight",
    "_get_threadlocal_config",
    "argkmin_usable",
    "available_if",
    "callbacks_of",
    "get_chunk_n_rows",
    "has_callback_tasks",
]

_F = TypeVar("_F", bound=Callable[..., Any])


def argkmin_usable(metric: Any) -> bool:
    """Whether scikit-learn's brute force searches ``metric`` with its compiled ``ArgKmin``.

    (For dense float rows of one dtype; otherwise it searches over a distance matrix.)
    """
    return isinstance(metric, DistanceMetric) or (
        isinstance(metric, str) and metric in ArgKmin.valid_metrics()
    )


#: The private methods of scikit-learn's MLP classes that ours override or call, with
#: their parameters after ``self``: scikit-learn's ``fit`` and ``partial_fit`` run its
#: ``_fit``, which calls ``_validate_input``, ``_initialize`` and the solver hooks with
#: these arguments; its ``predict`` calls ``_predict`` and that ``_forward_pass_fast``.
MLP_HOOKS: dict[str, tuple[str, ...]] = {
    "_fit": ("X", "y", "sample_weight", "incremental"),
    "_validate_input": ("X", "y", "incremental", "reset"),
    "_fit_stochastic": (
        "X",
        "y",
        "sample_weight",
        "activations",
        "deltas",
        "coef_grads",
        "intercept_grads",
        "layer_units",
        "incremental",
    ),
    "_fit_lbfgs": (
        "X",
        "y",
        "sample_weight",
        "activations",
        "deltas",
        "coef_grads",
        "intercept_grads",
        "layer_units",
    ),
    "_loss_grad_lbfgs": (
        "packed_coef_inter",
        "X",
        "y",
        "sample_weight",
        "activations",
        "deltas",
        "coef_grads",
        "intercept_grads",
    ),
    "_forward_pass_fast": ("X", "check_input"),
    "_unpack": ("packed_parameters",),
    "_initialize": ("y", "layer_units", "dtype"),
    "_predict": ("X", "check_input"),
}


def available_if(check: Callable[[Any], bool]) -> Callable[[_F], _F]:
    """scikit-learn's (public, untyped) ``available_if`` decorator, typed."""
    decorator: Callable[[_F], _F] = _sklearn_available_if(check)
    return decorator


# scikit-learn's callback API (``sklearn.callback``) is public, but an estimator that supports
# it reads two private attributes set by ``CallbackSupportMixin.set_callbacks`` and by a
# meta-estimator's ``propagate_callback_context``.


def has_callback_tasks(est: Any) -> bool:
    """Tell whether a fit of ``est`` opens callback tasks.

    It does when it has callbacks (its own or propagated by a meta-estimator), or a
    meta-estimator's task to attach its tasks to.
    """
    return hasattr(est, "_skl_callbacks") or hasattr(est, "_parent_callback_ctx")


def callbacks_of(est: Any) -> list[Any]:
    """Return the callbacks set on ``est`` (its own and the propagated ones)."""
    return list(getattr(est, "_skl_callbacks", []))
