"""Data sets for the study: scikit-learn's bundled digits, or the user's own .npz / .csv file."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["StudyData", "StudyInputError", "load_data", "load_digits_data", "prepare_data"]

# The notebook's gallery rows (a 2x4 grid).
GALLERY_ROWS: tuple[int, ...] = (0, 99, 199, 299, 999, 1099, 1199, 1299)

#: Rows are drawn as images only if they are square images at least this many pixels wide
#: (the digits are 8x8): a handful of features (iris's 4) is not an image.
MIN_IMAGE_SIDE = 8


class StudyInputError(ValueError):
    """A problem with the study's options or data that the user can fix.

    The command line prints these as one line (``oxlearn study: error: ...``) and exits
    with status 2, without a traceback.
    """


@dataclass(frozen=True)
class StudyData:
    """Features, integer-coded labels and a name for the study's data set.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float64 or float32, C-contiguous
        The features.
    y : ndarray of shape (n_samples,), int64
        Labels coded as indices into ``classes`` (sorted, as scikit-learn's classifiers
        order ``classes_``), so accuracies are those of the original labels.
    classes : ndarray of shape (n_classes,)
        The original label values.
    name : str
        ``"digits"`` or the data file's name.
    """

    X: npt.NDArray[np.floating]
    y: npt.NDArray[np.int64]
    classes: npt.NDArray[np.generic]
    name: str

    @property
    def n_samples(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of feature columns."""
        return int(self.X.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of distinct labels."""
        return int(self.classes.shape[0])

    def gallery(
        self,
    ) -> tuple[tuple[int, ...], npt.NDArray[np.floating], tuple[str, ...]] | None:
        """Rows, square images and class labels for the gallery, or None if not images.

        Rows count as images when their features form a square of at least
        ``MIN_IMAGE_SIDE`` x ``MIN_IMAGE_SIDE`` pixels (the digits' 8x8; not, say, iris's
        4 features).

        Returns
        -------
        rows, images, labels : tuple of int, ndarray of shape (8, side, side), tuple of str
            The notebook's rows (0, 99, 199, 299, 999, 1099, 1199, 1299) when the data has
            that many rows, otherwise eight evenly spaced rows; and each row's class.
        """
        side = math.isqrt(self.n_features)
        if side * side != self.n_features or side < MIN_IMAGE_SIDE or self.n_samples == 0:
            return None
        if self.n_samples > max(GALLERY_ROWS):
            rows = GALLERY_ROWS
        else:
            rows = tuple(int(r) for r in np.linspace(0, self.n_samples - 1, len(GALLERY_ROWS)))
        images = np.asarray(self.X[list(rows)], dtype=np.float64).reshape(len(rows), side, side)
        labels = tuple(str(self.classes[self.y[r]]) for r in rows)
        return rows, images, labels


def prepare_data(X: npt.ArrayLike, y: npt.ArrayLike, name: str = "data") -> StudyData:
    """Check user data and code its labels as integers.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Numeric features. float32 stays float32; anything else becomes float64.
    y : array-like of shape (n_samples,)
        Class labels of any type numpy can sort.
    name : str, default="data"
        A name for the report.

    Returns
    -------
    StudyData
        The checked data.

    Raises
    ------
    StudyInputError
        If X is not a finite numeric 2-D array, y does not match it, or there are fewer
        than two classes.
    """
    try:
        X_arr = np.asarray(X)
        if X_arr.dtype != np.float32:
            X_arr = X_arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise StudyInputError(f"{name}: features must be numeric ({exc})") from None
    X_arr = np.ascontiguousarray(X_arr)
    y_arr = np.asarray(y)
    if X_arr.ndim != 2:
        raise StudyInputError(f"{name}: X must be 2-D, got shape {X_arr.shape}")
    if y_arr.ndim == 2 and y_arr.shape[1] == 1:
        y_arr = y_arr.ravel()
    if y_arr.ndim != 1 or y_arr.shape[0] != X_arr.shape[0]:
        raise StudyInputError(
            f"{name}: y must be 1-D with one label per row of X, "
            f"got X {X_arr.shape} and y {y_arr.shape}"
        )
    if X_arr.shape[0] == 0 or X_arr.shape[1] == 0:
        raise StudyInputError(f"{name}: X is empty (shape {X_arr.shape})")
    if not np.all(np.isfinite(X_arr)):
        raise StudyInputError(f"{name}: X contains NaN or infinity")
    try:
        classes, codes = np.unique(y_arr, return_inverse=True)
    except TypeError as exc:
        raise StudyInputError(f"{name}: labels cannot be sorted ({exc})") from None
    if classes.shape[0] < 2:
        raise StudyInputError(f"{name}: need at least two classes, got {classes.shape[0]}")
    return StudyData(X=X_arr, y=codes.astype(np.int64).ravel(), classes=classes, name=name)


def load_digits_data() -> StudyData:
    """Scikit-learn's bundled handwritten digits (1797 8x8 images, no download).

    Returns
    -------
    StudyData
        The digits, named ``"digits"``.
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return prepare_data(X, y, name="digits")


def load_data(path: str | Path | None, target: str | None = None) -> StudyData:
    """Load the study's data: the digits, a .npz with arrays X and y, or a .csv.

    Parameters
    ----------
    path : str, Path or None
        None for scikit-learn's digits; a ``.npz`` file holding arrays ``X`` and ``y``;
        or a ``.csv`` file with a header row, whose column ``target`` holds the labels
        and whose other (numeric) columns are the features.
    target : str or None, default=None
        The label column of a .csv file (required for .csv, not allowed otherwise).

    Returns
    -------
    StudyData
        The checked data.

    Raises
    ------
    StudyInputError
        If the file is missing, of an unknown type, or lacks the labels or features.
    """
    if path is None:
        if target is not None:
            raise StudyInputError("--target needs --data with a .csv file")
        return load_digits_data()
    p = Path(path)
    if not p.is_file():
        raise StudyInputError(f"data file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        if target is not None:
            raise StudyInputError(f"--target applies to .csv files; {p.name} is .npz (X, y)")
        return _load_npz(p)
    if suffix == ".csv":
        if target is None:
            raise StudyInputError(f"{p.name}: a .csv data file needs --target COLUMN")
        return _load_csv(p, target)
    raise StudyInputError(f"unsupported data file type {p.suffix!r} (use .npz or .csv): {p}")


def _load_npz(path: Path) -> StudyData:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("X", "y") if key not in archive.files]
            if missing:
                raise StudyInputError(
                    f"{path.name}: .npz file must hold arrays 'X' and 'y' "
                    f"(missing {', '.join(missing)}; found {', '.join(archive.files) or 'none'})"
                )
            X, y = archive["X"], archive["y"]
    except StudyInputError:
        raise
    except (OSError, ValueError) as exc:
        raise StudyInputError(f"{path.name}: cannot read .npz file ({exc})") from None
    return prepare_data(X, y, name=path.name)


def _load_csv(path: Path, target: str) -> StudyData:
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise StudyInputError(f"{path.name}: cannot read .csv file ({exc})") from None
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns[:10]))
        more = ", ..." if len(frame.columns) > 10 else ""
        raise StudyInputError(
            f"{path.name}: no target column {target!r} (columns: {columns}{more})"
        )
    features = frame.drop(columns=[target])
    non_numeric = [
        str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])
    ]
    if non_numeric:
        raise StudyInputError(f"{path.name}: non-numeric feature columns: {', '.join(non_numeric)}")
    labels = frame[target]
    if labels.isna().any():
        raise StudyInputError(f"{path.name}: target column {target!r} has missing values")
    return prepare_data(features.to_numpy(dtype=np.float64), labels.to_numpy(), name=path.name)
