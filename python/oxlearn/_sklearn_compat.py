"""The one module that imports scikit-learn's private API.

Parameter constraints (`Interval`, `StrOptions`, ...) and `_fit_context` are private in
scikit-learn; importing them here keeps a future rename to a single place, and
``tests/test_sklearn_compat.py`` checks that each import still resolves.
"""

from sklearn._config import _get_threadlocal_config
from sklearn.base import _fit_context
from sklearn.neighbors._base import (
    KNeighborsMixin,
    NeighborsBase,
    RadiusNeighborsMixin,
    _check_precomputed,
)
from sklearn.utils._chunking import get_chunk_n_rows
from sklearn.utils._param_validation import (
    Hidden,
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
)
from sklearn.utils.multiclass import _check_partial_fit_first_call
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight

__all__ = [
    "Hidden",
    "Interval",
    "InvalidParameterError",
    "KNeighborsMixin",
    "NeighborsBase",
    "Options",
    "RadiusNeighborsMixin",
    "StrOptions",
    "_check_optimize_result",
    "_check_partial_fit_first_call",
    "_check_precomputed",
    "_check_sample_weight",
    "_fit_context",
    "_get_threadlocal_config",
    "get_chunk_n_rows",
]
