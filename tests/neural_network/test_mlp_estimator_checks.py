"""scikit-learn's own API-conformance suite, run on both estimators."""

from typing import Any

import pytest
from oxlearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

# Small, fast configurations: the checks fit hundreds of times. max_iter is high enough for
# the checks that assert a minimum training accuracy, and tol/n_iter_no_change stop early.
ESTIMATORS = [
    MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0),
    MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0),
    MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=100, random_state=0),
    MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", max_iter=300, random_state=0),
]


# The checks train on tiny data sets for a fixed budget; not converging there is expected
# and says nothing about conformance (scikit-learn's own test suite does not error on it).
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator: Any, check: Any) -> None:
    check(estimator)
