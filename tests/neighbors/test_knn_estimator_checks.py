"""scikit-learn's own API conformance suite, with no expected failures."""

from oxlearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors
from sklearn.utils.estimator_checks import parametrize_with_checks


@parametrize_with_checks(
    [
        KNeighborsClassifier(),
        KNeighborsRegressor(),
        NearestNeighbors(),
        KNeighborsClassifier(weights="distance", metric="manhattan"),
        KNeighborsRegressor(weights="distance", metric="cosine"),
        NearestNeighbors(metric="chebyshev"),
        KNeighborsClassifier(metric="precomputed"),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
