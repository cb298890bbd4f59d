"""One-line patching: scikit-learn's classes resolve to oxlearn's, and back."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import oxlearn
import pytest
import sklearn.neighbors
import sklearn.neural_network

# An unmodified scikit-learn script: it prints which classes it used and what they found.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    from sklearn.datasets import load_digits
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors, kneighbors_graph
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X_train, y_train, X_test, y_test = X[:1347], y[:1347], X[1347:], y[1347:]
    knn = KNeighborsClassifier(n_neighbors=3).fit(X_train, y_train)
    dist, ind = NearestNeighbors(n_neighbors=4).fit(X_train).kneighbors(X_test)
    graph = kneighbors_graph(X_train[:200], 3)
    mlp = MLPClassifier((32,), max_iter=60, random_state=0).fit(X_train / 16, y_train)
    print(json.dumps({
        "classes": [type(knn).__module__, type(mlp).__module__],
        "args": sys.argv[1:],
        "knn_pred": knn.predict(X_test).tolist(),
        "proba": knn.predict_proba(X_test[:20]).tolist(),
        "dist": dist.tolist(),
        "ind": ind.tolist(),
        "graph": graph.toarray().tolist(),
        "mlp_acc": mlp.score(X_test / 16, y_test),
    }))
    """
)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "user_script.py"
    path.write_text(SCRIPT)
    return path


def _python(*command, cwd=None):
    # One OpenMP thread: scikit-learn breaks some distance ties by thread count (oxlearn
    # gives its one-thread answers whatever the count).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, env=env, cwd=cwd
    )


def _run(*command, cwd=None):
    done = _python(*command, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_unmodified_script_runs_on_oxlearn_with_the_same_answers(script):
    plain = _run(str(script), "--flag", "x")
    patched = _run("-m", "oxlearn.patch", str(script), "--flag", "x")
    assert plain["classes"] == [
        "sklearn.neighbors._classification",
        "sklearn.neural_network._multilayer_perceptron",
    ]
    assert [c.split(".")[0] for c in patched["classes"]] == ["oxlearn", "oxlearn"]
    assert patched["args"] == plain["args"] == ["--flag", "x"]
    # KNN: scikit-learn's answers exactly (digits are small integers: exact distances).
    for key in ("knn_pred", "proba", "dist", "ind", "graph"):
        assert patched[key] == plain[key], key
    # MLP: the same accuracy within the tolerance of tests/neural_network/test_mlp_accuracy.
    assert abs(patched["mlp_acc"] - plain["mlp_acc"]) < 0.03


def test_patch_a_subset_logs_and_unpatches(caplog):
    original_knn = sklearn.neighbors.KNeighborsClassifier
    original_mlp = sklearn.neural_network.MLPClassifier
    try:
        with caplog.at_level(logging.INFO, logger="oxlearn"):
            oxlearn.patch_sklearn(names=["KNeighborsClassifier"])
        assert sklearn.neighbors.KNeighborsClassifier is oxlearn.neighbors.KNeighborsClassifier
        assert sklearn.neighbors._classification.KNeighborsClassifier is (
            oxlearn.neighbors.KNeighborsClassifier
        )
        assert sklearn.neural_network.MLPClassifier is original_mlp
        assert oxlearn.sklearn_is_patched("KNeighborsClassifier")
        assert not oxlearn.sklearn_is_patched("MLPClassifier")
        assert [r.getMessage() for r in caplog.records] == [
            "patch_sklearn: sklearn's KNeighborsClassifier is now "
            "oxlearn.neighbors.KNeighborsClassifier"
        ]
        # Patching twice keeps scikit-learn's original for unpatching, and logs nothing:
        # it replaces nothing.
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="oxlearn"):
            oxlearn.patch_sklearn(names="KNeighborsClassifier")
        assert caplog.records == []
        # Our class still answers as scikit-learn's (its base is the original class).
        X = np.arange(20.0).reshape(10, 2)
        y = np.arange(10) % 2
        ours = sklearn.neighbors.KNeighborsClassifier(n_neighbors=3).fit(X, y)
        theirs = original_knn(n_neighbors=3).fit(X, y)
        assert isinstance(ours, original_knn)
        assert ours.predict(X).tolist() == theirs.predict(X).tolist()
    finally:
        oxlearn.unpatch_sklearn()
    assert sklearn.neighbors.KNeighborsClassifier is original_knn
    assert sklearn.neighbors._classification.KNeighborsClassifier is original_knn
    assert not oxlearn.sklearn_is_patched()


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot patch \\['SVC'\\]"):
        oxlearn.patch_sklearn(names=["SVC"])
    assert not oxlearn.sklearn_is_patched()


def test_module_mode_and_usage_errors(tmp_path):
    (tmp_path / "user_mod.py").write_text(
        "import sys, sklearn.neighbors as n\nprint(n.NearestNeighbors.__module__, sys.argv[1:])\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "oxlearn.patch", "-m", "user_mod", "a"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}:" + ":".join(sys.path)},
    ).stdout
    assert out.split()[0].startswith("oxlearn.")
    assert out.strip().endswith("['a']")
    bad = subprocess.run([sys.executable, "-m", "oxlearn.patch"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "give a script to run" in bad.stderr


# What a script or module sees of how it was run: `python -m oxlearn.patch` must not show.
WHERE = (
    "import json, sys\n"
    "print(json.dumps([sys.argv, sys.path, __file__, sys.modules['__main__'].__file__]))\n"
)


def test_a_script_runs_as_python_runs_it(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "helper.py").write_text("")
    # A module next to the script imports (sys.path[0] is the script's directory).
    (tmp_path / "sub" / "s1.py").write_text("import helper\n" + WHERE)
    args = ["sub/s1.py", "-v", "--help", "--", "x"]
    plain = _run(*args, cwd=tmp_path)
    assert plain[0] == args and plain[1][0] == str(tmp_path / "sub")
    assert plain[2] == plain[3] == str(tmp_path / "sub" / "s1.py")
    assert _run("-m", "oxlearn.patch", *args, cwd=tmp_path) == plain


def test_module_mode_runs_as_python_dash_m_and_options_after_the_target_are_its_own(tmp_path):
    (tmp_path / "smod.py").write_text(WHERE)
    args = ["-m", "smod", "--flag", "x", "-v"]
    plain = _run(*args, cwd=tmp_path)
    assert plain[0] == [str(tmp_path / "smod.py"), "--flag", "x", "-v"]
    done = _python("-m", "oxlearn.patch", "-v", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == plain
    # -v before the target is ours: the patch is logged.
    assert "patch_sklearn: sklearn's MLPRegressor is now" in done.stderr


def test_a_missing_script_or_module_fails_as_python_does(tmp_path):
    for target in (["nowhere/x.py"], ["-m", "no_such_module_here"]):
        plain = _python(*target, cwd=tmp_path)
        patched = _python("-m", "oxlearn.patch", *target, cwd=tmp_path)
        assert (patched.returncode, patched.stderr) == (plain.returncode, plain.stderr)
        assert patched.returncode == (2 if len(target) == 1 else 1)
        assert "can't open file" in patched.stderr or "No module named" in patched.stderr


def test_a_failing_script_shows_its_own_traceback(tmp_path):
    (tmp_path / "fails.py").write_text("def f():\n    return 1 / 0\n\nf()\n")
    (tmp_path / "bad_syntax.py").write_text("def (:\n")
    for script in ("fails.py", "bad_syntax.py"):
        plain = _python(script, cwd=tmp_path)
        patched = _python("-m", "oxlearn.patch", script, cwd=tmp_path)
        assert (patched.returncode, patched.stderr) == (plain.returncode, plain.stderr)
        assert patched.returncode == 1
    (tmp_path / "fails_mod.py").write_text("raise LookupError('the module failed')\n")
    patched = _python("-m", "oxlearn.patch", "-m", "fails_mod", cwd=tmp_path)
    assert patched.returncode == 1
    assert patched.stderr.splitlines()[-1] == "LookupError: the module failed"
    assert "runpy" not in patched.stderr and "oxlearn" not in patched.stderr
