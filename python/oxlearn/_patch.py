"""One-line patching: scikit-learn's neighbour and MLP classes resolve to oxlearn's.

``patch_sklearn()`` replaces the five classes in scikit-learn's public modules and in the
private modules that define or use them (``sklearn.neighbors._classification``,
``sklearn.neighbors._graph``...), so that code importing them from scikit-learn *after* the
call, and scikit-learn's own helpers such as ``kneighbors_graph``, get oxlearn's classes.
oxlearn's classes keep scikit-learn's originals as their bases (bound when oxlearn was
imported), so patching changes no behaviour of theirs. This is the convention of
scikit-learn-intelex (``patch_sklearn``, ``python -m sklearnex``) and cuML
(``python -m cuml.accel``); ``python -m oxlearn.patch script.py`` runs a script patched.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from types import ModuleType
from typing import Any

logger = logging.getLogger("oxlearn")

#: Each patchable class: the oxlearn module that defines ours, and scikit-learn's modules
#: whose attribute of that name is replaced.
PATCHABLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "KNeighborsClassifier": (
        "oxlearn.neighbors",
        ("sklearn.neighbors", "sklearn.neighbors._classification"),
    ),
    "KNeighborsRegressor": (
        "oxlearn.neighbors",
        ("sklearn.neighbors", "sklearn.neighbors._regression"),
    ),
    "NearestNeighbors": (
        "oxlearn.neighbors",
        ("sklearn.neighbors", "sklearn.neighbors._unsupervised", "sklearn.neighbors._graph"),
    ),
    "MLPClassifier": (
        "oxlearn.neural_network",
        ("sklearn.neural_network", "sklearn.neural_network._multilayer_perceptron"),
    ),
    "MLPRegressor": (
        "oxlearn.neural_network",
        ("sklearn.neural_network", "sklearn.neural_network._multilayer_perceptron"),
    ),
}

# scikit-learn's original attributes, per (module, name), while patched.
_ORIGINALS: dict[tuple[str, str], object] = {}


def _names(names: Iterable[str] | None) -> list[str]:
    if names is None:
        return list(PATCHABLE)
    if isinstance(names, str):
        names = [names]
    chosen = list(names)
    unknown = [n for n in chosen if n not in PATCHABLE]
    if unknown:
        raise ValueError(f"cannot patch {unknown!r}: the patchable classes are {list(PATCHABLE)}")
    return chosen


def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


def patch_sklearn(names: Iterable[str] | None = None) -> None:
    """Make scikit-learn's classes resolve to oxlearn's.

    Parameters
    ----------
    names : iterable of str, default=None
        The classes to patch, among ``KNeighborsClassifier``, ``KNeighborsRegressor``,
        ``NearestNeighbors``, ``MLPClassifier`` and ``MLPRegressor``; None patches all five.
        Patching a patched class again does nothing.

    Notes
    -----
    Only imports made after the call see oxlearn's classes (``from sklearn.neighbors
    import KNeighborsClassifier`` binds the class at import time). Each class the call
    replaces is logged at INFO level on the ``oxlearn`` logger; one already patched is not.
    """
    for name in _names(names):
        ours_module, targets = PATCHABLE[name]
        ours = getattr(_module(ours_module), name)
        replaced = False
        for target in targets:
            module = _module(target)
            key = (target, name)
            if key in _ORIGINALS or not hasattr(module, name):
                continue
            _ORIGINALS[key] = getattr(module, name)
            setattr(module, name, ours)
            replaced = True
        if replaced:
            logger.info("patch_sklearn: sklearn's %s is now %s.%s", name, ours_module, name)


def unpatch_sklearn(names: Iterable[str] | None = None) -> None:
    """Restore scikit-learn's own classes (all five, or ``names``)."""
    for name in _names(names):
        restored = False
        for target in PATCHABLE[name][1]:
            original = _ORIGINALS.pop((target, name), None)
            if original is not None:
                setattr(_module(target), name, original)
                restored = True
        if restored:
            logger.info("unpatch_sklearn: sklearn's %s is scikit-learn's again", name)


def original_sklearn_class(name: str) -> Any:
    """scikit-learn's own class ``name``, patched or not."""
    public = PATCHABLE[_names(name)[0]][1][0]
    return _ORIGINALS.get((public, name)) or getattr(_module(public), name)


def sklearn_is_patched(name: str | None = None) -> bool:
    """Whether ``name`` (or any class, when None) is patched."""
    names = _names(name)
    return any((target, n) in _ORIGINALS for n in names for target in PATCHABLE[n][1])
