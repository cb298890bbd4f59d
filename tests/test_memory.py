"""Running out of memory raises MemoryError, as in scikit-learn, instead of aborting.

Rust aborts the whole process when an allocation fails ("memory allocation of N bytes
failed", exit 134); the kernels allocate every input-sized buffer fallibly instead. Each
case runs in a child process whose address space is capped at what it has mapped after the
imports plus ``HEADROOM``: the request is far larger, so it fails early, and the memory the
child really touches stays below the headroom.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

HEADROOM = 1 << 30

_PRELUDE = """
import resource, sys
import numpy as np
import oxlearn.neighbors, oxlearn.neural_network

def vm_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")

limit = vm_bytes() + {headroom}
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
{body}
except MemoryError as e:
    print("MemoryError:", e)
    sys.exit(0)
print("no MemoryError")
sys.exit(3)
"""


def _run(body: str) -> subprocess.CompletedProcess[str]:
    code = _PRELUDE.format(headroom=HEADROOM, body=textwrap.indent(textwrap.dedent(body), "    "))
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OXLEARN_NUM_THREADS": "2"},
    )


def _assert_memory_error(res: subprocess.CompletedProcess[str], what: str) -> None:
    assert res.returncode == 0, (
        f"child exited {res.returncode} (134/-6: aborted)\n{res.stdout}\n{res.stderr[-2000:]}"
    )
    assert "MemoryError:" in res.stdout, res.stdout
    assert what in res.stdout, res.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and RLIMIT_AS")
class TestOutOfMemory:
    def test_mlp_fit_with_a_huge_hidden_layer(self) -> None:
        # The weights (a few width-sized arrays, ~200 MB) fit; the training buffers (a
        # batch of activations and deltas per chunk, > 2 GB) do not.
        res = _run(
            """
            rng = np.random.default_rng(0)
            X, y = rng.normal(size=(400, 1)), rng.normal(size=400)
            oxlearn.neural_network.MLPRegressor(
                hidden_layer_sizes=(2_000_000,), max_iter=1
            ).fit(X, y)
            """
        )
        _assert_memory_error(res, "MLP")

    def test_mlp_predict_with_a_huge_hidden_layer(self) -> None:
        res = _run(
            """
            w = 20_000_000
            m = oxlearn.neural_network.MLPRegressor(hidden_layer_sizes=(w,))
            m.coefs_ = [np.zeros((1, w)), np.zeros((w, 1))]
            m.intercepts_ = [np.zeros(w), np.zeros(1)]
            m.n_outputs_, m.out_activation_, m.n_features_in_ = 1, "identity", 1
            m.predict(np.zeros((4096, 1)))
            """
        )
        _assert_memory_error(res, "MLP")

    def test_kneighbors_with_a_huge_k(self) -> None:
        # 1,000 queries x 200,000 neighbours: 3.2 GB of results.
        res = _run(
            """
            rng = np.random.default_rng(0)
            X = rng.random((200_000, 1))
            nn = oxlearn.neighbors.NearestNeighbors(n_neighbors=200_000).fit(X)
            nn.kneighbors(X[:1000])
            """
        )
        _assert_memory_error(res, "neighbour")

    def test_kneighbors_graph_with_a_huge_k(self) -> None:
        res = _run(
            """
            rng = np.random.default_rng(0)
            X = rng.random((200_000, 1))
            nn = oxlearn.neighbors.NearestNeighbors(n_neighbors=200_000).fit(X)
            nn.kneighbors_graph(X[:1000])
            """
        )
        _assert_memory_error(res, "neighbour")

    def test_radius_neighbors_finding_everything(self) -> None:
        # 20,000 x 20,000 pairs within the radius: 6.4 GB of results, grown as found.
        res = _run(
            """
            rng = np.random.default_rng(0)
            X = rng.random((20_000, 1))
            # brute: with "auto", one feature runs scikit-learn's KD-tree, not the Rust search.
            nn = oxlearn.neighbors.NearestNeighbors(radius=10.0, algorithm="brute").fit(X)
            nn.radius_neighbors(X)
            """
        )
        _assert_memory_error(res, "neighbour")
