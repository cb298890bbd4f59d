"""scikit-learn's own tests of our five classes, run with our classes swapped in.

``sklearn/neighbors/tests/test_neighbors.py`` and ``sklearn/neural_network/tests/test_mlp.py``
(from the installed scikit-learn) run in a subprocess with ``sklearn_suite_plugin`` (this
directory), which replaces scikit-learn's classes by ours before the module is imported and
counts the tests that construct one of them. Every such test must pass. About 70 s on two
cores; to run one by hand (and see every failure)::

    SK=$(python -c "import sklearn, os; print(os.path.dirname(sklearn.__file__))")
    OXLEARN_SKLEARN_SUITE=neighbors PYTHONPATH=python:tests python -m pytest \\
        $SK/neighbors/tests/test_neighbors.py -p sklearn_suite_plugin -c /dev/null \\
        --rootdir=$SK -q

(``-c /dev/null``: scikit-learn's tests run under their own warning filters, not this
project's ``filterwarnings = error``.) Set ``SKLEARN_RUN_FLOAT32_TESTS=1`` for the float32
variants as well, and ``SKLEARN_TESTS_GLOBAL_RANDOM_SEED=all`` for every seed.
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
#: Per suite: scikit-learn's test file and the fewest tests that must touch our classes.
SUITES = {
    "neighbors": (SKLEARN_DIR / "neighbors" / "tests" / "test_neighbors.py", 380),
    "neural_network": (SKLEARN_DIR / "neural_network" / "tests" / "test_mlp.py", 55),
}


@pytest.mark.slow
@pytest.mark.parametrize("suite", list(SUITES))
def test_sklearn_tests_pass_with_our_classes(suite, tmp_path):
    import oxlearn

    test_file, min_touching = SUITES[suite]
    # scikit-learn's wheels ship their tests; this project's test extra installs one.
    assert test_file.exists(), f"scikit-learn's tests are not installed: {test_file}"

    report = tmp_path / "report.json"
    env = dict(os.environ)
    package_root = str(Path(oxlearn.__file__).parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        [package_root, str(HERE), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["OXLEARN_SKLEARN_SUITE_REPORT"] = str(report)
    env["OXLEARN_SKLEARN_SUITE"] = suite
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(test_file),
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
    # The plugin sees our classes constructed in most of scikit-learn's tests.
    assert counts["touching"] >= min_touching, summary
    assert counts["touching_failed"] == 0, counts["failures"]
    # Tests that do not touch our classes pass too (scikit-learn's own estimators).
    assert counts["failed"] == 0, run.stdout[-3000:]
