"""Smoke test of an installed oxlearn wheel; `.ci/run` runs it outside the source tree.

Not a pytest module (the name does not start with ``test_``): it runs in the fresh virtual
environment the wheel was installed into, with cargo off ``PATH``. Fits and predicts both
estimators and runs ``oxlearn study --quick``.
"""

import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import oxlearn
from oxlearn.neighbors import KNeighborsClassifier
from oxlearn.neural_network import MLPClassifier
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning


def main() -> None:
    """Check the installed package end to end."""
    source_tree = Path(__file__).resolve().parent.parent / "python"
    installed = Path(oxlearn.__file__).resolve()
    assert source_tree not in installed.parents, f"imported the source tree: {installed}"
    assert "site-packages" in installed.parts, installed
    X, y = load_digits(return_X_y=True)
    knn = KNeighborsClassifier(n_neighbors=3).fit(X[:1347], y[:1347])
    assert knn.predict(X[1347:]).shape == (450,)
    knn_acc = knn.score(X[1347:], y[1347:])
    assert knn_acc > 0.9, knn_acc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=50, random_state=0)
        mlp.fit(X[:1347], y[:1347])
    assert mlp.predict_proba(X[1347:]).shape == (450, 10)
    mlp_acc = mlp.score(X[1347:], y[1347:])
    assert mlp_acc > 0.8, mlp_acc
    script = Path(sys.executable).parent / "oxlearn"
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [str(script), "study", "--quick", "--repeats", "1", "--output", out], check=True
        )
        assert (Path(out) / "report.md").is_file()
    print(f"wheel smoke test passed: oxlearn {oxlearn.__version__} from {installed.parent}")
    print(f"KNN accuracy {knn_acc:.4f}, MLP accuracy {mlp_acc:.4f}")


if __name__ == "__main__":
    main()
