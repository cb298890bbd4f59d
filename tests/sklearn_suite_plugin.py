"""pytest plugin: scikit-learn's own tests with oxlearn's classes swapped in.

Load it with ``-p sklearn_suite_plugin`` (this directory on ``sys.path``) when running
``sklearn/neighbors/tests/test_neighbors.py`` or ``sklearn/neural_network/tests/test_mlp.py``
(``OXLEARN_SKLEARN_SUITE=neighbors`` or ``neural_network``); ``test_sklearn_suite.py``
does, in a subprocess. Before scikit-learn's test module is imported, the package's
classes (``KNeighborsClassifier``, ``KNeighborsRegressor``, ``NearestNeighbors``, or
``MLPClassifier``, ``MLPRegressor``; and the same names in the private modules that define
or use them) become oxlearn's. A test "touches" our classes when it constructs one of them
(directly, by ``clone`` or through ``kneighbors_graph``/``radius_neighbors_graph``). With
``OXLEARN_SKLEARN_SUITE_REPORT`` set, the counts and every failure of a touching test are
written there as JSON.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import oxlearn.neighbors
import oxlearn.neural_network
import pytest
import sklearn.neighbors
import sklearn.neighbors._classification
import sklearn.neighbors._graph
import sklearn.neighbors._regression
import sklearn.neighbors._unsupervised
import sklearn.neural_network
import sklearn.neural_network._multilayer_perceptron

#: Per suite: our package, the swapped names, and scikit-learn's modules that hold them.
SUITES: dict[str, tuple[Any, tuple[str, ...], list[Any]]] = {
    "neighbors": (
        oxlearn.neighbors,
        ("KNeighborsClassifier", "KNeighborsRegressor", "NearestNeighbors"),
        [
            sklearn.neighbors,
            sklearn.neighbors._classification,
            sklearn.neighbors._regression,
            sklearn.neighbors._unsupervised,
            sklearn.neighbors._graph,
        ],
    ),
    "neural_network": (
        oxlearn.neural_network,
        ("MLPClassifier", "MLPRegressor"),
        [sklearn.neural_network, sklearn.neural_network._multilayer_perceptron],
    ),
}

_touched = [False]


def _record_construction(cls: type) -> None:
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        _touched[0] = True
        init(self, *args, **kwargs)

    __init__._oxlearn_recorded = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]


def _swap() -> None:
    package, names, modules = SUITES[os.environ.get("OXLEARN_SKLEARN_SUITE", "neighbors")]
    for name in names:
        ours = getattr(package, name)
        if not getattr(ours.__init__, "_oxlearn_recorded", False):
            _record_construction(ours)
        for module in modules:
            if hasattr(module, name):
                setattr(module, name, ours)


_swap()

_outcomes: dict[str, str] = {}
_touching: set[str] = set()
_messages: dict[str, str] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Any:
    _touched[0] = False
    yield
    if _touched[0]:
        _touching.add(item.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    previous = _outcomes.get(report.nodeid)
    if report.failed:
        _outcomes[report.nodeid] = "failed"
        _messages.setdefault(report.nodeid, str(report.longrepr).strip().splitlines()[-1])
    elif report.skipped and previous is None:
        _outcomes[report.nodeid] = "skipped"
    elif report.when == "call" and report.passed and previous is None:
        _outcomes[report.nodeid] = "passed"


def _counts() -> dict[str, Any]:
    touching = {nodeid: _outcomes.get(nodeid, "?") for nodeid in _touching}
    return {
        "run": len(_outcomes),
        "passed": sum(o == "passed" for o in _outcomes.values()),
        "failed": sum(o == "failed" for o in _outcomes.values()),
        "skipped": sum(o == "skipped" for o in _outcomes.values()),
        "touching": len(touching),
        "touching_passed": sum(o == "passed" for o in touching.values()),
        "touching_failed": sum(o == "failed" for o in touching.values()),
        "touching_skipped": sum(o == "skipped" for o in touching.values()),
        "failures": {n: _messages.get(n, "") for n, o in sorted(touching.items()) if o == "failed"},
    }


def pytest_terminal_summary(terminalreporter: Any) -> None:
    counts = _counts()
    terminalreporter.write_line(
        "oxlearn swapped in: {run} run ({passed} passed, {failed} failed, {skipped} skipped); "
        "{touching} touch our classes: {touching_passed} passed, {touching_failed} failed, "
        "{touching_skipped} skipped".format(**counts)
    )
    path = os.environ.get("OXLEARN_SKLEARN_SUITE_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(counts, f, indent=1)
