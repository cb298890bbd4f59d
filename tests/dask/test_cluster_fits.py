"""Many fits on the cluster: `python -m oxlearn.dask.study` and joblib's Dask backend."""

import json
import warnings

import joblib
import numpy as np
import pytest
from oxlearn.neighbors import KNeighborsClassifier
from oxlearn.neural_network import MLPClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_validate


def _accuracies(path):
    """Every accuracy figure of a study's results.json, by its path in the document."""
    out = {}

    def walk(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")
        elif "accuracy" in where and isinstance(node, float):
            out[where] = node

    walk(json.loads((path / "results.json").read_text()), "")
    return out


@pytest.mark.parametrize("entry", ["oxlearn study --scheduler", "python -m oxlearn.dask.study"])
def test_study_on_the_cluster_gives_the_local_accuracies(client, tmp_path, entry):
    pytest.importorskip("matplotlib")
    from oxlearn.dask.study import main as dask_study
    from oxlearn.study.cli import main as study

    args = ["--sections", "knn", "mlp1", "--quick", "--backend", "oxlearn", "--quiet"]
    local, remote = tmp_path / "local", tmp_path / "dask"
    assert study(["study", *args, "--output", str(local), "--threads", "1"]) == 0
    on_cluster = ["--scheduler", client.scheduler.address, *args, "--output", str(remote)]
    if entry.startswith("oxlearn study"):
        assert study(["study", *on_cluster]) == 0
    else:
        assert dask_study(on_cluster) == 0
    expected = _accuracies(local)
    assert expected
    assert _accuracies(remote) == expected


def test_study_with_an_unreachable_scheduler_fails_cleanly(monkeypatch, capsys):
    from oxlearn.dask import _cluster
    from oxlearn.dask.study import main as dask_study

    monkeypatch.setattr(_cluster, "CONNECT_TIMEOUT", 1)
    assert dask_study(["--scheduler", "tcp://127.0.0.1:9", "--quick"]) == 2
    assert "127.0.0.1:9" in capsys.readouterr().err


def test_grid_search_under_joblib_dask_backend(client, digits):
    X, y = digits
    X, y = X[:600], y[:600]
    grid = {"n_neighbors": [1, 3, 5], "weights": ["uniform", "distance"]}
    local = GridSearchCV(KNeighborsClassifier(), grid, cv=3).fit(X, y)
    with joblib.parallel_backend("dask"):
        remote = GridSearchCV(KNeighborsClassifier(), grid, cv=3, n_jobs=-1).fit(X, y)
    np.testing.assert_array_equal(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    assert remote.best_params_ == local.best_params_


def test_cross_validate_mlp_under_joblib_dask_backend(client, digits):
    X, y = digits
    X, y = X[:400] / 16.0, y[:400]
    est = MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, random_state=0)
    # max_iter=30 does not converge; scikit-learn passes the warning filters to the workers.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        local = cross_validate(est, X, y, cv=3)
        with joblib.parallel_backend("dask"):
            remote = cross_validate(est, X, y, cv=3, n_jobs=-1)
    np.testing.assert_array_equal(remote["test_score"], local["test_score"])
