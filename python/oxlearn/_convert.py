"""Conversion of fitted models between oxlearn and scikit-learn, both ways, without refitting.

Both libraries' estimators hold the same fitted attributes under the same names (oxlearn's
reproduce scikit-learn's), so a conversion copies the fitted state into an instance of the
other library's class with the same parameters. Only private state that one library keeps
in its own types is left out: the MLP's stochastic optimiser (``_optimizer``), which a
later ``partial_fit`` or ``warm_start`` fit then starts afresh, as a first ``fit`` does, and
oxlearn's record of which path a neighbour estimator's fit took, which ``from_sklearn``
works out again from the fitted state. The parameters go through the constructor, and the
callbacks set with ``set_callbacks`` stay behind (they configure a fit, not a model).
"""

from __future__ import annotations

import copy
import importlib
import warnings
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from oxlearn._patch import PATCHABLE, original_sklearn_class

#: Private attributes that are not part of the fitted model (see the module docs).
_NOT_CONVERTED = frozenset({"_optimizer", "_skl_callbacks"})


def _fitted_state(est: Any) -> dict[str, Any]:
    check_is_fitted(est)
    params = set(est._get_param_names())
    state = {
        key: value
        for key, value in est.__dict__.items()
        if key not in _NOT_CONVERTED and key not in params and not key.startswith("_oxlearn")
    }
    # The converted model owns its arrays: changing one model leaves the other as it was.
    return copy.deepcopy(state)


def _class_name(est: Any, library: str) -> str:
    name = type(est).__name__
    if name not in PATCHABLE or not type(est).__module__.startswith(f"{library}."):
        raise TypeError(
            f"expected {'an' if library == 'oxlearn' else 'a'} {library} estimator among "
            f"{sorted(PATCHABLE)}, "
            f"got {type(est).__module__}.{name}"
        )
    return name


def to_sklearn(est: BaseEstimator) -> BaseEstimator:
    """Return scikit-learn's estimator for a fitted oxlearn one.

    Parameters
    ----------
    est : oxlearn estimator
        A fitted ``KNeighborsClassifier``, ``KNeighborsRegressor``, ``NearestNeighbors``,
        ``MLPClassifier`` or ``MLPRegressor`` of oxlearn.

    Returns
    -------
    sklearn_est : scikit-learn estimator
        An instance of scikit-learn's class of the same name, with the same parameters
        and fitted attributes: its predictions equal oxlearn's (for the MLP, scikit-learn's
        own arithmetic on the same weights; for a Euclidean search, within the near-tie
        rule of the README's "Exactness of the neighbour searches"). It needs no oxlearn
        to load or run.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``est`` is not fitted.
    TypeError
        If ``est`` is not one of oxlearn's five estimators.

    Warns
    -----
    UserWarning
        If ``est`` sets a parameter scikit-learn's class does not have (the MLP
        classifier's ``class_weight``): the converted model predicts the same, but a refit
        of it trains without that parameter.
    """
    name = _class_name(est, "oxlearn")
    state = _fitted_state(est)
    cls = original_sklearn_class(name)
    # Parameters scikit-learn's class has (oxlearn's MLPClassifier adds `class_weight`,
    # which shapes training only: the fitted model predicts the same without it).
    accepted = set(cls._get_param_names())
    params = est.get_params(deep=False)
    dropped = sorted(k for k, v in params.items() if k not in accepted and v is not None)
    if dropped:
        warnings.warn(
            f"scikit-learn's {name} has no parameter {', '.join(dropped)}: the converted "
            "model predicts as this one, but refitting it trains without "
            f"{', '.join(dropped)}.",
            UserWarning,
            stacklevel=2,
        )
    out: BaseEstimator = cls(**{k: v for k, v in params.items() if k in accepted})
    out.__dict__.update(state)
    return out


def from_sklearn(est: BaseEstimator) -> BaseEstimator:
    """Return oxlearn's estimator for a fitted scikit-learn one (accelerated, not refitted).

    Parameters
    ----------
    est : scikit-learn estimator
        A fitted ``KNeighborsClassifier``, ``KNeighborsRegressor``, ``NearestNeighbors``,
        ``MLPClassifier`` or ``MLPRegressor`` of scikit-learn (one loaded with joblib, say).

    Returns
    -------
    oxlearn_est : oxlearn estimator
        oxlearn's class of the same name with the same parameters and fitted attributes.
        A neighbour estimator whose fit scikit-learn's code would run (a tree, sparse data,
        another metric) keeps running scikit-learn's code, as if oxlearn had fitted it.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``est`` is not fitted.
    TypeError
        If ``est`` is not one of scikit-learn's five estimators.
    """
    name = _class_name(est, "sklearn")
    state = _fitted_state(est)
    cls = getattr(importlib.import_module(PATCHABLE[name][0]), name)
    out: BaseEstimator = cls(**est.get_params(deep=False))
    out.__dict__.update(state)
    adopt = getattr(out, "_oxlearn_adopt_fitted_state", None)
    if adopt is not None:
        adopt()
    return out
