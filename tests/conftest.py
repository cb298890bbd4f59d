"""Shared fixtures: the digits data and small random data sets."""

import numpy as np
import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return load_digits(return_X_y=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
