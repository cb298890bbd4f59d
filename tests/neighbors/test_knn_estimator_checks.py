"""scikit-learn's own API conformance suite: what scikit-learn's estimators pass, ours pass,
and where scikit-learn's own estimators fail a check, ours fail it the same way."""

import pytest
import sklearn.neighbors
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


def _sklearn_fails(estimator, check):
    name = getattr(check, "func", check).__name__
    return _SKLEARN_FAILS.get((type(estimator).__name__, estimator.metric), {}).get(name)


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
    ]
)
def test_sklearn_compatible(estimator, check):
    if _sklearn_fails(estimator, check) is None:
        check(estimator)
        return
    # scikit-learn's own class fails this check with these parameters (the reason is in
    # `_SKLEARN_FAILS`): a drop-in fails it with the same error.
    theirs = getattr(sklearn.neighbors, type(estimator).__name__)(**estimator.get_params())
    with pytest.raises(Exception) as their_error:
        check(theirs)
    with pytest.raises(type(their_error.value)) as our_error:
        check(estimator)
    assert str(our_error.value) == str(their_error.value)
