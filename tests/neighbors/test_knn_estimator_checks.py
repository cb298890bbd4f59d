"""scikit-learn's own API conformance suite: what scikit-learn's estimators pass, ours pass."""

import pytest
from oxlearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors
from sklearn.utils.estimator_checks import parametrize_with_checks

# Checks that scikit-learn 1.9's own estimators fail with these parameters (run them on
# `sklearn.neighbors`' classes to see): our estimators now behave as scikit-learn's there.
_SKLEARN_FAILS = {
    ("KNeighborsClassifier", "manhattan"): {
        "check_estimator_sparse_array": "scikit-learn fails it (int64 sparse indices)",
        "check_estimator_sparse_matrix": "scikit-learn fails it (int64 sparse indices)",
    },
    ("NearestNeighbors", "chebyshev"): {
        "check_estimator_sparse_tag": "scikit-learn fails it (no sparse chebyshev)",
    },
    ("KNeighborsClassifier", "braycurtis"): {
        "check_estimator_sparse_tag": "scikit-learn fails it (no sparse braycurtis)",
    },
    ("KNeighborsClassifier", "precomputed"): {
        "check_n_features_in_after_fitting": "scikit-learn fails it",
    },
}


def _expected_failed_checks(estimator):
    return _SKLEARN_FAILS.get((type(estimator).__name__, estimator.metric), {})


# scikit-learn's `_check_precomputed` warns (EfficiencyWarning) about the checks' unsorted
# sparse distance graphs; that is its behaviour, not an error.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.EfficiencyWarning")
@parametrize_with_checks(
    [
        KNeighborsClassifier(),
        KNeighborsRegressor(),
        NearestNeighbors(),
        KNeighborsClassifier(weights="distance", metric="manhattan"),
        KNeighborsRegressor(weights="distance", metric="cosine"),
        NearestNeighbors(metric="chebyshev"),
        KNeighborsClassifier(metric="precomputed"),
        KNeighborsClassifier(metric="braycurtis"),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
