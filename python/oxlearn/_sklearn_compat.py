"""The one module that imports scikit-learn's private API.

Parameter constraints (`Interval`, `StrOptions`, ...) and `_fit_context` are private in
scikit-learn; importing them here keeps a future rename to a single place, and
``tests/test_sklearn_compat.py`` checks that each import still resolves.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import (
    Hidden,
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
)

__all__ = ["Hidden", "Interval", "InvalidParameterError", "Options", "StrOptions", "_fit_context"]
