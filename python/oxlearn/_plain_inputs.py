"""Shortcuts through scikit-learn's input validation where its outcome is known in advance.

scikit-learn's validation (``validate_data``, ``LabelBinarizer.fit``) costs more than a small
search or a short fit. For the common plain inputs, a NumPy float matrix and a 1-D integer
target, its outcome can be told from a few cheap tests; these helpers return exactly that
outcome, or None whenever there is any doubt, so that the full validation runs and raises
its own errors and warnings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn import get_config
from sklearn.preprocessing import LabelBinarizer

_NATIVE_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


def plain_float_matrix(X: Any) -> npt.NDArray[Any] | None:
    """Return what validating ``X`` gives when that cannot warn or fail, else None.

    scikit-learn's ``check_array(X, order="C", dtype=_FLOAT_DTYPES)`` returns a non-empty
    2-D NumPy array (not a subclass) of native float64 or float32 as it is, in C order
    (the array itself when already C-contiguous, else a C-ordered copy), once it has found
    all its values finite; that test is made as ``_assert_all_finite`` makes it first (a
    finite sum), and any doubt returns None so that the full validation runs and raises
    its own error. The estimators then skip the general validation, which costs more than
    a small search.
    """
    if type(X) is not np.ndarray or X.ndim != 2 or X.dtype not in _NATIVE_FLOATS:
        return None
    if X.shape[0] < 1 or X.shape[1] < 1:
        return None
    config = get_config()
    if config.get("array_api_dispatch", False):
        return None
    if not config.get("assume_finite", False):
        with np.errstate(over="ignore"):
            if not np.isfinite(X.sum()):
                return None
    return np.asarray(X, order="C")


def plain_int_labels(y: Any, n_samples: int) -> bool:
    """Whether ``y`` is a plain non-empty 1-D NumPy integer array of ``n_samples`` labels.

    Such a target passes scikit-learn's target validation unchanged (integers are always
    finite, valid classification targets).
    """
    return (
        type(y) is np.ndarray
        and y.ndim == 1
        and y.dtype.kind in "iu"
        and y.shape[0] == n_samples
        and n_samples >= 1
    )


def fitted_label_binarizer(y: npt.NDArray[Any]) -> LabelBinarizer:
    """``LabelBinarizer().fit(y)`` for a target that passes :func:`plain_int_labels`.

    Its ``fit`` classifies the target (``type_of_target``) and collects its labels
    (``unique_labels``), about 0.4 ms for a digits fold; for 1-D integers these are
    ``"binary"`` (at most two labels) or ``"multiclass"``, and ``np.unique(y)`` (the same
    sorted labels in the same dtype). The binarizer gets exactly the attributes its ``fit``
    sets.
    """
    binarizer = LabelBinarizer()
    classes = np.unique(y)
    binarizer.y_type_ = "binary" if len(classes) <= 2 else "multiclass"
    binarizer.sparse_input_ = False
    binarizer.classes_ = classes
    return binarizer
