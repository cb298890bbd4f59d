"""scikit-learn's own neighbours tests, run with our three classes swapped in.

``sklearn/neighbors/tests/test_neighbors.py`` (from the installed scikit-learn) runs in a
subprocess with ``sklearn_suite_plugin`` (this directory), which replaces scikit-learn's
``KNeighborsClassifier``, ``KNeighborsRegressor`` and ``NearestNeighbors`` by ours before
the module is imported and counts the tests that construct one of them. Every such test
must pass. About 40 s on two cores; to run it by hand (and see every failure)::

    SK=$(python -c "import sklearn, os; print(os.path.dirname(sklearn.__file__))")
    PYTHONPATH=python:tests/neighbors python -m pytest $SK/neighbors/tests/test_neighbors.py \\
        -p sklearn_suite_plugin -c /dev/null --rootdir=$SK -q

(``-c /dev/null``: scikit-learn's tests run under their own warning filters, not this
project's ``filterwarnings = error``.) Set ``SKLEARN_RUN_FLOAT32_TESTS=1`` for its float32
variants as well.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sklearn

HERE = Path(__file__).parent
SKLEARN_DIR = Path(sklearn.__file__).parent
TEST_FILE = SKLEARN_DIR / "neighbors" / "tests" / "test_neighbors.py"


@pytest.mark.slow
@pytest.mark.skipif(not TEST_FILE.exists(), reason="scikit-learn's tests are not installed")
def test_sklearn_neighbors_tests_pass_with_our_classes(tmp_path):
    import oxlearn

    report = tmp_path / "report.json"
    env = dict(os.environ)
    package_root = str(Path(oxlearn.__file__).parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        [package_root, str(HERE), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["OXLEARN_SKLEARN_SUITE_REPORT"] = str(report)
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(TEST_FILE),
        "-p",
        "sklearn_suite_plugin",
        "-p",
        "no:cacheprovider",
        "-c",
        os.devnull,
        f"--rootdir={SKLEARN_DIR}",
        "-q",
        "--no-header",
        "-W",
        "ignore::DeprecationWarning",
    ]
    run = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert report.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    counts = json.loads(report.read_text())
    summary = {k: v for k, v in counts.items() if k != "failures"}
    print(summary)
    # The plugin sees our classes constructed in hundreds of scikit-learn's tests.
    assert counts["touching"] >= 380, summary
    assert counts["touching_failed"] == 0, counts["failures"]
    # Tests that do not touch our classes pass too (scikit-learn's own estimators).
    assert counts["failed"] == 0, run.stdout[-3000:]
