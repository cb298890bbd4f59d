"""Shared fixtures: the digits data, small random data sets, a delayed Ctrl-C."""

import os
import signal
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return load_digits(return_X_y=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def interrupt_after() -> Callable[[float], threading.Thread]:
    """Start a thread that sends this process SIGINT (Ctrl-C) after a delay."""

    def start(seconds: float) -> threading.Thread:
        def send() -> None:
            time.sleep(seconds)
            os.kill(os.getpid(), signal.SIGINT)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        return thread

    return start
