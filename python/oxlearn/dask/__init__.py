"""oxlearn on a Dask cluster: exact sharded neighbour searches.

Requires the optional dependencies ``oxlearn[dask]`` (``dask[array,dataframe]`` and
``distributed``). See `oxlearn.dask.neighbors`.
"""

from __future__ import annotations

try:
    import dask  # noqa: F401
    import distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "oxlearn.dask needs Dask: pip install 'oxlearn[dask]' "
        "(dask[array,dataframe] and distributed)."
    ) from exc

from oxlearn.dask.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors

__all__ = ["KNeighborsClassifier", "KNeighborsRegressor", "NearestNeighbors"]
