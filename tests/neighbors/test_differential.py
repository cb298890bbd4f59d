"""Differential test of the neighbour estimators against scikit-learn's brute force.

Hypothesis draws data sets (shapes, dtypes, data kinds, metrics, weights, radii) and compares
`oxlearn.neighbors.{NearestNeighbors, KNeighborsClassifier, KNeighborsRegressor}` with
scikit-learn's same classes run with ``algorithm="brute"``, ``n_jobs=1`` and one OpenMP/BLAS
thread; oxlearn runs both with ``n_jobs=1`` and with its default ``n_jobs``, which must give
bit-identical results.

The rule (issue 24 §5): indices, distances, predictions and probabilities are equal, bit for
bit. The only allowed difference is the near-tie rule of `NEAR_TIE_RTOL` for the metrics that
scikit-learn computes through the matrix-product expansion ``||q||² - 2 q·t + ||t||²``
(``euclidean``, ``sqeuclidean``, ``minkowski`` with ``p=2`` and no ``w``, on float input),
whose rounding depends on the BLAS's summation order and cannot be reproduced bit for bit.
Every disagreement is listed by `compare_kneighbors`/`compare_radius`/`compare_votes` with the
rule that allowed or rejected it, so a failure says what differed and why it counts.

The hypothesis tests are parametrized by metric (``test_nearest_neighbors[manhattan]``, ...),
so each metric reports on its own; dtype (float64, float32, int64), data kind, shape, ``k``,
weights and radius are drawn. Integer input is compared bit for bit whatever the metric
(scikit-learn takes it through ``pairwise_distances`` and ``np.argpartition``, whose products
are exact). float32 ``tiny``/``huge`` data use 1e-10/1e10 rather than 1e-30/1e30: scikit-learn's
float32 kernels take some powers in float32 and under/overflow beyond that (zero or infinite
distances, repeated indices), which is nothing to reproduce.

How to run
----------
Short profile (part of the normal test command; 15/11/7 derandomized examples per metric for
the NearestNeighbors/classifier/regressor tests, no shrinking, about 20-30 s on 2 cores)::

    pytest tests/neighbors/test_differential.py

Long profile: set ``OXLEARN_DIFF_EXAMPLES`` to the number of examples per test and metric
(drawn at random, with shrinking; ``OXLEARN_DIFF_SEED=<int>`` makes a run reproducible)::

    OXLEARN_DIFF_EXAMPLES=5000 pytest tests/neighbors/test_differential.py -x

A failure prints the drawn ``Case`` (shrunk in the long profile) and the rejected
disagreements, each with the rule that rejected it; hypothesis's ``@reproduce_failure`` blob
replays it.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from oxlearn import neighbors as oxn
from sklearn import neighbors as skn
from threadpoolctl import ThreadpoolController

# --- the near-tie rule ----------------------------------------------------------------------

EPS64 = 2.0**-52
EPS32 = 2.0**-23

#: Relative tolerance of the near-tie rule, on squared Euclidean distances.
#:
#: scikit-learn computes Euclidean distances (``euclidean``, ``sqeuclidean``, ``minkowski``
#: with ``p=2`` and no weights) as ``||q||² - 2 q·t + ||t||²`` with a BLAS matrix product, in
#: float64 (float32 input is upcast first). Its rounding depends on the BLAS's summation order
#: and blocking, so no other implementation reproduces it bit for bit; its error on one squared
#: distance is a few float64 ulps of ``||q||² + ||t||²`` (not of the distance: the expansion
#: cancels). The rule: for a query ``q`` and a training row ``t`` let
#: ``tol(q, t) = NEAR_TIE_RTOL * (||q||² + ||t||²)`` (absolute, on the squared distance), and
#: let ``E(q, t)`` be the exact squared distance of the float values (computed in exact
#: rational arithmetic). Then, and only then:
#:
#: * a reported distance may differ from scikit-learn's if its square is within
#:   ``tol(q, t)`` of ``E(q, t)`` (plus the rounding of the reported dtype);
#: * two neighbours ``a`` and ``b`` may come in another order, or one replace the other, if
#:   ``|E(q, a) - E(q, b)| <= tol(q, a) + tol(q, b)``;
#: * a neighbour may be on the other side of a radius ``r`` if
#:   ``|E(q, t) - r²| <= tol(q, t)`` (``r²`` exact);
#: * a prediction or probability may differ for a query whose neighbours differed under the
#:   rules above, if it is the vote of its own neighbours.
#:
#: Every other metric (and integer input, whose products are exact) is compared bit for bit.
NEAR_TIE_RTOL = 8 * EPS64

#: Metrics that scikit-learn's brute force computes through the matrix-product expansion.
GEMM_METRICS = frozenset({"euclidean", "sqeuclidean"})

# --- profiles -------------------------------------------------------------------------------

_LONG_EXAMPLES = os.environ.get("OXLEARN_DIFF_EXAMPLES")
if _LONG_EXAMPLES:
    PROFILE: dict[str, Any] = {
        "max_examples": int(_LONG_EXAMPLES),
        "derandomize": False,
        "phases": tuple(Phase),
    }
else:
    # No shrinking: the short profile reports the first failing example as drawn.
    PROFILE = {
        "max_examples": 15,
        "derandomize": True,
        "phases": (Phase.explicit, Phase.reuse, Phase.generate),
    }
_SEED = os.environ.get("OXLEARN_DIFF_SEED")


def diff_settings(scale: float = 1.0):
    """The profile's settings (``scale`` weighs the short profile's example count per test)."""
    n = PROFILE["max_examples"]
    if not _LONG_EXAMPLES:
        n = max(1, int(n * scale))
    s = settings(
        max_examples=n,
        deadline=None,
        derandomize=PROFILE["derandomize"],
        print_blob=True,
        phases=PROFILE["phases"],
        report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )

    def wrap(f):
        f = s(f)
        if _SEED and not PROFILE["derandomize"]:
            f = seed(int(_SEED))(f)
        return f

    return wrap


# --- exact squared distances ----------------------------------------------------------------


class ExactSq:
    """Exact squared Euclidean distances between the float rows of ``Q`` and ``X``.

    The values are binary floats (or integers): each is an integer times a common power of two,
    so the squared distances are exact integers times that power squared.
    """

    def __init__(self, Q: np.ndarray, X: np.ndarray):
        Q = np.asarray(Q, dtype=np.float64)
        X = np.asarray(X, dtype=np.float64)
        both = np.concatenate([Q.ravel(), X.ravel()])
        nz = both[both != 0]
        if nz.size:
            _, e = np.frexp(nz)
            self.shift = int(e.min()) - 53
        else:
            self.shift = 0

        def ints(A):
            m, e = np.frexp(A)
            out = np.empty(A.shape, dtype=object)
            flat = out.reshape(-1)
            for n, (mi, ei) in enumerate(zip(m.ravel(), e.ravel(), strict=True)):
                if mi == 0:
                    flat[n] = 0
                else:
                    flat[n] = int(mi * 2.0**53) << (int(ei) - 53 - self.shift)
            return out

        self.Qi = ints(Q)
        self.Xi = ints(X)
        self.q_norm = np.einsum("ij,ij->i", Q, Q)
        self.x_norm = np.einsum("ij,ij->i", X, X)
        self._cache: dict[tuple[int, int], Fraction] = {}

    def __call__(self, i: int, j: int) -> Fraction:
        key = (i, j)
        v = self._cache.get(key)
        if v is None:
            diff = self.Qi[i] - self.Xi[j]
            s = int(np.dot(diff, diff)) if diff.size else 0
            v = Fraction(s) * Fraction(2) ** (2 * self.shift)
            self._cache[key] = v
        return v

    def tol(self, i: int, j: int) -> Fraction:
        return Fraction(NEAR_TIE_RTOL) * Fraction(float(self.q_norm[i] + self.x_norm[j]))


@dataclasses.dataclass
class Finding:
    """One disagreement between oxlearn (``got``) and scikit-learn (``ref``)."""

    where: str
    rule: str
    allowed: bool
    detail: str

    def __str__(self) -> str:
        verdict = "allowed" if self.allowed else "REJECTED"
        return f"[{verdict} by {self.rule}] {self.where}: {self.detail}"


@dataclasses.dataclass
class Context:
    """What the comparison needs to know about one search."""

    gemm: bool  # the near-tie rule applies (else: bit for bit)
    squared: bool = False  # reported distances are squared (sqeuclidean)
    exact: ExactSq | None = None  # exact squared distances (gemm only)
    strict_boundary: bool = False  # radius: also be at least as right as scikit-learn
    # Relative rounding of the reported distances: scikit-learn rounds the Euclidean distances
    # of float32 data to float32 (reported in a float64 array).
    round_eps: float = EPS64


def _ulps(a: float, b: float, dtype) -> str:
    """How far apart two floats are, in ulps of ``dtype`` (and of float32 when both are
    float32 values, as scikit-learn's float64 distances of float32 data often are)."""
    itype = np.int64 if np.dtype(dtype).itemsize == 8 else np.int32
    ia = int(np.asarray(a, dtype=dtype).view(itype))
    ib = int(np.asarray(b, dtype=dtype).view(itype))
    out = f"{abs(ia - ib)} {np.dtype(dtype).name} ulps"
    with np.errstate(over="ignore"):
        a32, b32 = np.float32(a), np.float32(b)
    if itype is np.int64 and float(a32) == float(a) and float(b32) == float(b):
        d32 = abs(int(a32.view(np.int32)) - int(b32.view(np.int32)))
        out += f" = {d32} float32 ulps"
    return out


def _same_float(a, b) -> bool:
    """Bitwise equality of two floats of the same dtype (any NaN equals any NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype:
        return False
    return a.tobytes() == b.tobytes() or bool(np.isnan(a) and np.isnan(b))


def _check_distance(ctx: Context, where: str, i: int, j: int, got: Any, ref: Any, dtype):
    """Distance to the same neighbour: bit for bit, or within the tolerance (gemm)."""
    if _same_float(np.asarray(got, dtype), np.asarray(ref, dtype)):
        return []
    ulps = _ulps(got, ref, dtype)
    if not ctx.gemm:
        return [
            Finding(
                where,
                "exact",
                False,
                f"distance to {j}: got {got!r} vs ref {ref!r} ({ulps} apart)",
            )
        ]
    return [_distance_within_tol(ctx, where, i, j, got, ref, dtype)]


def _distance_within_tol(ctx: Context, where, i, j, got, ref, dtype, j_ref=None) -> Finding:
    E = ctx.exact(i, j)
    g = Fraction(float(got))
    g2 = g if ctx.squared else g * g
    # The near-tie tolerance, plus the rounding of the square root and of the reported value.
    round_eps = max(ctx.round_eps, float(np.finfo(dtype).eps))
    allow = ctx.exact.tol(i, j) + 2 * Fraction(round_eps + EPS64) * E
    err = abs(g2 - E)
    r = Fraction(float(ref))
    E_ref = E if j_ref is None else ctx.exact(i, j_ref)
    ref_err = abs((r if ctx.squared else r * r) - E_ref)
    ok = err <= allow
    return Finding(
        where,
        "distance-tolerance",
        ok,
        f"distance to {j}: got {got!r} vs ref {ref!r}; |got²-exact| = {float(err):.3g} "
        f"{'<=' if ok else '>'} allowance {float(allow):.3g} (ref's error {float(ref_err):.3g})",
    )


def _index_story(a: int, b: int, g_map, r_map, dtype) -> str:
    """Explain a different neighbour at one position (exact metrics)."""
    parts = [f"index got {a} vs ref {b}"]
    da, db = g_map[a], r_map[b]
    if _same_float(np.asarray(da, dtype), np.asarray(db, dtype)):
        parts.append(f"same distance {da!r} (a tie, broken differently)")
    else:
        parts.append(f"distances {da!r} vs {db!r} ({_ulps(da, db, dtype)} apart)")
    for name, m, j in (("ref", r_map, a), ("got", g_map, b)):
        if j in m:
            other = m[j]
            mine = g_map.get(j) if name == "ref" else r_map.get(j)
            same = mine is not None and _same_float(
                np.asarray(mine, dtype), np.asarray(other, dtype)
            )
            parts.append(
                f"{name} has {j} at {other!r}"
                + (
                    ""
                    if mine is None
                    else " (same)"
                    if same
                    else f" ({_ulps(mine, other, dtype)} from the other's)"
                )
            )
    if not any(j in m for m, j in ((r_map, a), (g_map, b))):
        parts.append("neither lists the other's neighbour")
    return "; ".join(parts)


def _check_order(ctx: Context, where: str, i: int, gi, gd, ri, rd, dtype) -> list[Finding]:
    """Compare two neighbour lists position by position (indices, then distances)."""
    out: list[Finding] = []
    g_map = dict(zip(np.asarray(gi).tolist(), np.asarray(gd), strict=True))
    r_map = dict(zip(np.asarray(ri).tolist(), np.asarray(rd), strict=True))
    for pos, (a, b) in enumerate(zip(gi, ri, strict=True)):
        w = f"{where} pos {pos}"
        if a == b:
            out += _check_distance(ctx, w, i, a, gd[pos], rd[pos], dtype)
            continue
        if not ctx.gemm:
            out.append(Finding(w, "exact", False, _index_story(a, b, g_map, r_map, dtype)))
            continue
        Ea, Eb = ctx.exact(i, a), ctx.exact(i, b)
        tol = ctx.exact.tol(i, a) + ctx.exact.tol(i, b)
        gap = abs(Ea - Eb)
        ok = gap <= tol
        out.append(
            Finding(
                w,
                "near-tie",
                ok,
                f"index got {a} vs ref {b}: exact squared distances {float(Ea):.17g} vs "
                f"{float(Eb):.17g}, gap {float(gap):.3g} {'<=' if ok else '>'} "
                f"tol {float(tol):.3g}",
            )
        )
        # The reported distance must still be right for the neighbour reported.
        f = _distance_within_tol(ctx, w, i, a, gd[pos], rd[pos], dtype, j_ref=b)
        if not f.allowed:
            out.append(f)
    return out


def compare_kneighbors(ctx: Context, got, ref, where: str = "kneighbors") -> list[Finding]:
    """Disagreements between two ``kneighbors`` results ``(dist, ind)``."""
    (gd, gi), (rd, ri) = got, ref
    out: list[Finding] = []
    if gi.shape != ri.shape or gd.shape != rd.shape:
        return [
            Finding(where, "shape", False, f"got {gd.shape}/{gi.shape} vs {rd.shape}/{ri.shape}")
        ]
    if gd.dtype != rd.dtype:
        out.append(Finding(where, "dtype", False, f"distances {gd.dtype} vs ref {rd.dtype}"))
    for i in range(ri.shape[0]):
        if np.array_equal(gi[i], ri[i]) and gd[i].tobytes() == rd[i].astype(gd.dtype).tobytes():
            continue
        out += _check_order(ctx, f"{where} row {i}", i, gi[i], gd[i], ri[i], rd[i], rd.dtype)
    return out


def compare_radius(
    ctx: Context, got, ref, radius: float, where="radius_neighbors"
) -> list[Finding]:
    """Disagreements between two ``radius_neighbors`` results (object arrays of rows)."""
    (gd, gi), (rd, ri) = got, ref
    out: list[Finding] = []
    if len(gi) != len(ri):
        return [Finding(where, "shape", False, f"{len(gi)} rows vs {len(ri)}")]
    # The boundary, exactly, on the scale of the exact squared distances (sqeuclidean's radius
    # is a squared distance already).
    r2 = Fraction(float(radius)) if ctx.squared else Fraction(float(radius)) ** 2
    for i in range(len(ri)):
        g_i, r_i = np.asarray(gi[i]), np.asarray(ri[i])
        g_d, r_d = np.asarray(gd[i]), np.asarray(rd[i])
        w = f"{where} row {i}"
        if g_d.dtype != r_d.dtype:
            out.append(Finding(w, "dtype", False, f"distances {g_d.dtype} vs ref {r_d.dtype}"))
        if np.array_equal(g_i, r_i) and g_d.tobytes() == r_d.astype(g_d.dtype).tobytes():
            continue
        gs, rs = set(g_i.tolist()), set(r_i.tolist())
        for j in sorted(gs ^ rs):
            side = "got includes, ref excludes" if j in gs else "ref includes, got excludes"
            if not ctx.gemm:
                d = g_d[g_i == j][0] if j in gs else r_d[r_i == j][0]
                out.append(Finding(w, "exact", False, f"neighbour {j} (distance {d!r}): {side}"))
                continue
            E = ctx.exact(i, j)
            tol = ctx.exact.tol(i, j)
            gap = abs(E - r2)
            ok = gap <= tol
            inside = E <= r2
            if ctx.strict_boundary and ok:
                ref_right = (j in rs) == inside
                got_right = (j in gs) == inside
                if ref_right and not got_right:
                    ok = False
            out.append(
                Finding(
                    w,
                    "radius-boundary",
                    ok,
                    f"neighbour {j}: {side}; exact squared distance {float(E):.17g} is "
                    f"{'inside' if inside else 'outside'} the boundary {float(r2):.17g}, "
                    f"|gap| {float(gap):.3g} {'<=' if gap <= tol else '>'} tol {float(tol):.3g}"
                    + (
                        " (strict: ref is on the exact side, got is not)"
                        if gap <= tol and not ok
                        else ""
                    ),
                )
            )
        common = gs & rs
        keep_g = np.array([j in common for j in g_i.tolist()], dtype=bool)
        keep_r = np.array([j in common for j in r_i.tolist()], dtype=bool)
        out += _check_order(
            ctx, w, i, g_i[keep_g], g_d[keep_g], r_i[keep_r], r_d[keep_r], r_d.dtype
        )
    return out


def _vote_weights(dist: np.ndarray, weights: str) -> np.ndarray:
    if weights == "uniform":
        return np.ones(dist.shape)
    with np.errstate(all="ignore"):
        w = 1.0 / dist.astype(np.float64)
    inf = np.isinf(w)
    rows = inf.any(axis=1)
    w[rows] = inf[rows]
    return w


def _full(v) -> str:
    """A value or row with every digit (float32 values as such)."""
    a = np.asarray(v)
    return repr(a.tolist()) + ("" if a.dtype == np.float64 else f" ({a.dtype})")


def compare_votes(
    where: str,
    got: np.ndarray,
    ref: np.ndarray,
    free_rows: set[int],
    own_vote: np.ndarray,
    argmax_ok: np.ndarray | None = None,
) -> list[Finding]:
    """Predictions/probabilities: bit for bit, except on the ``free_rows`` whose neighbours
    differed under the near-tie rule, which must be the vote of their own neighbours
    (``own_vote``, to 1e-9; for a class prediction ``argmax_ok[row]`` lists the admissible
    classes)."""
    out: list[Finding] = []
    if got.shape != ref.shape or got.dtype != ref.dtype:
        return [
            Finding(where, "shape", False, f"got {got.dtype}{got.shape} vs {ref.dtype}{ref.shape}")
        ]
    for i in range(ref.shape[0]):
        if np.asarray(got[i]).tobytes() == np.asarray(ref[i]).tobytes():
            continue
        w = f"{where} row {i}"
        if i not in free_rows:
            out.append(
                Finding(
                    w,
                    "exact",
                    False,
                    f"got {_full(got[i])} vs ref {_full(ref[i])} "
                    "(row not excused by the near-tie rule)",
                )
            )
            continue
        if argmax_ok is not None:
            ok = got[i] in argmax_ok[i]
            detail = (
                f"got {got[i]!r} vs ref {ref[i]!r}; own neighbours' vote admits {argmax_ok[i]!r}"
            )
        else:
            ok = bool(np.allclose(got[i], own_vote[i], rtol=1e-9, atol=1e-12))
            detail = f"got {got[i]!r} vs ref {ref[i]!r}; own neighbours' vote {own_vote[i]!r}"
        out.append(Finding(w, "vote", ok, detail))
    return out


def _report(findings: list[Finding]) -> None:
    bad = [f for f in findings if not f.allowed]
    if bad:
        allowed = len(findings) - len(bad)
        lines = [str(f) for f in bad[:25]]
        if len(bad) > 25:
            lines.append(f"... and {len(bad) - 25} more rejected")
        # An AssertionError (not pytest.fail(pytrace=False)) so that hypothesis's notes, the
        # drawn case and its reproduce blob, are printed with it.
        raise AssertionError(
            f"{len(bad)} disagreement(s) rejected ({allowed} allowed):\n" + "\n".join(lines)
        )


# --- data -----------------------------------------------------------------------------------

FLOAT_KINDS = [
    "normal",
    "offset1e3",
    "offset1e6",
    "tiny",
    "huge",
    "duplicated",
    "grid01",
    "smallint",
]
INT_KINDS = ["smallint", "offset1e3", "duplicated"]


def make_data(kind: str, dtype, n_train: int, n_query: int, n_features: int, seed_: int):
    rng = np.random.default_rng(seed_)
    n = n_train + n_query
    is_int = np.dtype(dtype).kind == "i"
    # float32: scikit-learn's float32 kernels take some powers in float32, which under- or
    # overflow beyond these scales (zero or infinite distances, repeated indices): nothing to
    # reproduce. float64 data goes to 1e-30 and 1e30.
    is_f32 = np.dtype(dtype) == np.float32
    if kind == "normal":
        A = rng.standard_normal((n, n_features))
    elif kind == "offset1e3":
        A = 1000 + (
            rng.integers(-3, 4, (n, n_features)) if is_int else rng.standard_normal((n, n_features))
        )
    elif kind == "offset1e6":
        A = 1e6 + rng.standard_normal((n, n_features))
    elif kind == "tiny":
        A = (1e-10 if is_f32 else 1e-30) * rng.standard_normal((n, n_features))
    elif kind == "huge":
        A = (1e10 if is_f32 else 1e30) * rng.standard_normal((n, n_features))
    elif kind == "duplicated":
        n_unique = int(rng.integers(1, 4))
        base = (
            rng.integers(-2, 3, (n_unique, n_features))
            if is_int
            else rng.standard_normal((n_unique, n_features))
        )
        A = base[rng.integers(0, n_unique, n)]
    elif kind == "grid01":
        A = rng.integers(-3, 4, (n, n_features)) * 0.1
    elif kind == "smallint":
        A = rng.integers(0, 4, (n, n_features))
    else:  # pragma: no cover
        raise ValueError(kind)
    A = np.asarray(A).astype(dtype)
    X, Q = A[:n_train].copy(), A[n_train:].copy()
    if kind == "duplicated" and n_query:
        Q[: n_query // 2 + 1] = X[rng.integers(0, n_train, n_query // 2 + 1)]
    y_class = rng.integers(0, 3, n_train)
    y_reg = rng.standard_normal(n_train)
    return X, Q, y_class, y_reg


# (metric, p, kind of metric_params, needs exactly 2 features)
METRICS: list[tuple[str, float | None, str | None]] = [
    ("euclidean", None, None),
    ("sqeuclidean", None, None),
    ("l2", None, None),
    ("manhattan", None, None),
    ("cityblock", None, None),
    ("l1", None, None),
    ("chebyshev", None, None),
    ("minkowski", 1, None),
    ("minkowski", 1.5, None),
    ("minkowski", 2, None),
    ("minkowski", 3, None),
    ("minkowski", np.inf, None),
    ("minkowski", 1, "w"),
    ("minkowski", 1.5, "w"),
    ("minkowski", 2, "w"),
    ("minkowski", 3, "w"),
    ("cosine", None, None),
    ("precomputed", None, None),
    # scikit-learn fallbacks
    ("braycurtis", None, None),
    ("canberra", None, None),
    ("minkowski", 0.5, None),
    ("haversine", None, None),
    ("seuclidean", None, "V"),
    ("mahalanobis", None, "VI"),
]


def metric_kwargs(spec, X: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    metric, p, params = spec
    kw: dict[str, Any] = {"metric": metric}
    if p is not None:
        kw["p"] = p
    d = X.shape[1]
    if params == "w":
        w = rng.choice([0.0, 0.5, 1.0, 2.0, 1.5, 0.1], size=d)
        w[rng.integers(0, d)] = 1.0
        kw["metric_params"] = {"w": w}
    elif params == "V":
        kw["metric_params"] = {"V": np.var(X.astype(np.float64), axis=0) + 0.5}
    elif params == "VI":
        A = rng.standard_normal((d, d))
        kw["metric_params"] = {"VI": A @ A.T + d * np.eye(d)}
    return kw


def is_gemm(kw: dict[str, Any], dtype) -> bool:
    """Whether scikit-learn computes this search with the matrix-product expansion."""
    if np.dtype(dtype).kind != "f":
        return False  # integer input: scikit-learn's products are exact
    m = kw["metric"]
    params = kw.get("metric_params") or {}
    if m == "minkowski" and params.get("w") is None and kw.get("p", 2) == 2:
        return True
    return m in GEMM_METRICS


@dataclasses.dataclass
class Case:
    dtype: Any
    kind: str
    spec: tuple
    n_train: int
    n_query: int
    n_features: int
    k: int
    seed: int
    weights: str
    radius_q: float
    radius_on_point: bool
    sort_results: bool


def _metric_id(spec) -> str:
    metric, p, params = spec
    return metric + ("" if p is None else f"-p{p}") + ("" if params is None else f"-{params}")


METRIC_IDS = [_metric_id(spec) for spec in METRICS]


@st.composite
def cases(draw, spec) -> Case:
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    kind = draw(st.sampled_from(INT_KINDS if dtype is np.int64 else FLOAT_KINDS))
    if spec[0] == "haversine":
        n_features = 2
    else:
        n_features = draw(st.sampled_from([1, 1, 2, 3, 5, 8, 20, 37, 64, 100]))
    n_train = draw(st.integers(1, 40))
    return Case(
        dtype=dtype,
        kind=kind,
        spec=spec,
        n_train=n_train,
        n_query=draw(st.integers(1, 8)),
        n_features=n_features,
        k=draw(st.integers(1, n_train)),
        seed=draw(st.integers(0, 2**32 - 1)),
        weights=draw(st.sampled_from(["uniform", "distance"])),
        radius_q=draw(st.floats(0, 1)),
        radius_on_point=draw(st.booleans()),
        sort_results=draw(st.booleans()),
    )


# --- running both ---------------------------------------------------------------------------


def _call(fn, *args, **kw):
    """Call ``fn`` with warnings recorded (returned with the result) instead of raised."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn(*args, **kw)
    return out, sorted({(w.category.__name__, str(w.message)) for w in rec})


_CONTROLLER: list[ThreadpoolController] = []


def _one_thread():
    """scikit-learn's OpenMP and BLAS limited to one thread (the controller is built once:
    `threadpool_limits` inspects the loaded libraries on every call)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1)


class Trio:
    """scikit-learn's estimator and oxlearn's with ``n_jobs=1`` and default ``n_jobs``."""

    def __init__(self, cls: str, **kw):
        kw = dict(kw)
        self.sk = getattr(skn, cls)(algorithm="brute", n_jobs=1, **copy.deepcopy(kw))
        # The same algorithm on both sides: with 'auto', low-dimensional data runs
        # scikit-learn's trees, through oxlearn's fallback as well.
        self.ox1 = getattr(oxn, cls)(algorithm="brute", n_jobs=1, **copy.deepcopy(kw))
        self.oxd = getattr(oxn, cls)(algorithm="brute", **copy.deepcopy(kw))
        self.findings: list[Finding] = []

    def fit(self, *args):
        self.run("fit", *args)
        return self

    def run(self, method: str, *args, **kw):
        """Return (ref, got) of a method; check that oxlearn's threads change nothing and
        that both emit the same warnings."""
        with _one_thread():
            ref, ref_warn = _call(getattr(self.sk, method), *args, **copy.deepcopy(kw))
        got, got_warn = _call(getattr(self.ox1, method), *args, **copy.deepcopy(kw))
        got_d, _ = _call(getattr(self.oxd, method), *args, **copy.deepcopy(kw))
        if got_warn != ref_warn:
            self.findings.append(
                Finding(method, "warnings", False, f"got {got_warn} vs ref {ref_warn}")
            )
        if method != "fit" and not _bitwise_equal(got, got_d):
            self.findings.append(
                Finding(method, "threads", False, "n_jobs=None differs from n_jobs=1")
            )
        return ref, got


def _bitwise_equal(a, b) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_bitwise_equal(x, y) for x, y in zip(a, b, strict=True))
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == object:
        return a.shape == b.shape and all(_bitwise_equal(x, y) for x, y in zip(a, b, strict=True))
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def setup(case: Case):
    """Data, estimator keyword arguments and the fit/query arrays of a case."""
    X, Q, y_class, y_reg = make_data(
        case.kind, case.dtype, case.n_train, case.n_query, case.n_features, case.seed
    )
    rng = np.random.default_rng(case.seed + 1)
    kw = metric_kwargs(case.spec, X, rng)
    gemm = is_gemm(kw, case.dtype)
    if kw["metric"] == "precomputed":
        # Manhattan distances of the data, in its dtype (non-negative, tie-prone).
        D_fit = np.abs(X[:, None, :] - X[None, :, :]).sum(-1).astype(case.dtype)
        D_q = np.abs(Q[:, None, :] - X[None, :, :]).sum(-1).astype(case.dtype)
        return kw, gemm, D_fit, D_q, X, Q, y_class, y_reg
    return kw, gemm, X, Q, X, Q, y_class, y_reg


def contexts(case: Case, kw, gemm, X, Q):
    squared = kw["metric"] == "sqeuclidean"
    if not gemm:
        return Context(False), Context(False)
    eps = float(np.finfo(case.dtype).eps)
    return (
        Context(True, squared, ExactSq(Q, X), round_eps=eps),
        Context(True, squared, ExactSq(X, X), round_eps=eps),
    )


def pick_radius(case: Case, dists: np.ndarray) -> float:
    flat = np.asarray(dists, dtype=np.float64).ravel()
    flat = np.sort(flat[np.isfinite(flat)])
    if flat.size == 0:
        return 1.0
    if case.radius_on_point:
        return float(flat[min(int(case.radius_q * flat.size), flat.size - 1)])
    return float(np.quantile(flat, case.radius_q))


# --- the hypothesis tests -------------------------------------------------------------------


def check_nearest_neighbors(case: Case) -> list[Finding]:
    kw, gemm, F, Qf, X, Q, _, _ = setup(case)
    ctx_q, ctx_self = contexts(case, kw, gemm, X, Q)
    trio = Trio("NearestNeighbors", n_neighbors=case.k, **kw).fit(F)
    findings = trio.findings

    ref, got = trio.run("kneighbors", Qf)
    findings += compare_kneighbors(ctx_q, got, ref, "kneighbors(X)")
    if case.n_train >= 2:
        k_self = min(case.k, case.n_train - 1)
        ref_s, got_s = trio.run("kneighbors", None, k_self)
        findings += compare_kneighbors(ctx_self, got_s, ref_s, "kneighbors()")

    # A radius from the data's own distances (quantile or exactly one of them).
    all_ref, _ = trio.run("kneighbors", Qf, case.n_train)
    radius = pick_radius(case, all_ref[0])
    s = case.sort_results
    ref, got = trio.run("radius_neighbors", Qf, radius, sort_results=s)
    findings += compare_radius(
        ctx_q, got, ref, radius, f"radius_neighbors(X, r={radius!r}, sort={s})"
    )
    ref, got = trio.run("radius_neighbors", None, radius, sort_results=s)
    findings += compare_radius(
        ctx_self, got, ref, radius, f"radius_neighbors(r={radius!r}, sort={s})"
    )
    return findings


def _free_rows(findings: list[Finding], prefix: str) -> set[int]:
    """Rows of a kneighbors comparison with (allowed) differences."""
    rows = set()
    for f in findings:
        if f.where.startswith(prefix + " row "):
            rows.add(int(f.where[len(prefix) + 5 :].split()[0]))
    return rows


def check_classifier(case: Case) -> list[Finding]:
    kw, gemm, F, Qf, X, Q, y, _ = setup(case)
    ctx_q, _ = contexts(case, kw, gemm, X, Q)
    trio = Trio("KNeighborsClassifier", n_neighbors=case.k, weights=case.weights, **kw).fit(F, y)
    findings = trio.findings
    ref_kn, got_kn = trio.run("kneighbors", Qf)
    kn = compare_kneighbors(ctx_q, got_kn, ref_kn, "kneighbors(X)")
    findings += kn
    free = _free_rows(kn, "kneighbors(X)") if gemm else set()
    dist, ind = got_kn
    w = _vote_weights(dist, case.weights)
    classes = np.unique(y)
    vote = np.zeros((len(ind), len(classes)))
    for i in range(len(ind)):
        np.add.at(vote[i], np.searchsorted(classes, y[ind[i]]), w[i])
    with np.errstate(all="ignore"):
        vote /= vote.sum(axis=1, keepdims=True)
    admissible = [classes[np.isclose(v, v.max(), rtol=1e-9, atol=0)] for v in vote]

    ref, got = trio.run("predict_proba", Qf)
    findings += compare_votes("predict_proba", got, ref, free, vote)
    ref, got = trio.run("predict", Qf)
    findings += compare_votes("predict", got, ref, free, vote, admissible)
    return findings


def check_regressor(case: Case) -> list[Finding]:
    kw, gemm, F, Qf, X, Q, _, y = setup(case)
    ctx_q, _ = contexts(case, kw, gemm, X, Q)
    trio = Trio("KNeighborsRegressor", n_neighbors=case.k, weights=case.weights, **kw).fit(F, y)
    findings = trio.findings
    ref_kn, got_kn = trio.run("kneighbors", Qf)
    kn = compare_kneighbors(ctx_q, got_kn, ref_kn, "kneighbors(X)")
    findings += kn
    free = _free_rows(kn, "kneighbors(X)") if gemm else set()
    dist, ind = got_kn
    w = _vote_weights(dist, case.weights)
    with np.errstate(all="ignore"):
        vote = (w * y[ind]).sum(axis=1) / w.sum(axis=1)
    ref, got = trio.run("predict", Qf)
    findings += compare_votes("predict", got, ref, free, vote)
    return findings


@diff_settings(scale=1.0)
@pytest.mark.parametrize("spec", METRICS, ids=METRIC_IDS)
@given(data=st.data())
def test_nearest_neighbors(spec, data):
    _report(check_nearest_neighbors(data.draw(cases(spec), label="case")))


@diff_settings(scale=0.75)
@pytest.mark.parametrize("spec", METRICS, ids=METRIC_IDS)
@given(data=st.data())
def test_classifier(spec, data):
    _report(check_classifier(data.draw(cases(spec), label="case")))


@diff_settings(scale=0.5)
@pytest.mark.parametrize("spec", METRICS, ids=METRIC_IDS)
@given(data=st.data())
def test_regressor(spec, data):
    _report(check_regressor(data.draw(cases(spec), label="case")))


# --- regression examples from the tracker ---------------------------------------------------


def _nn_pair(**kw):
    return Trio("NearestNeighbors", **kw)


def test_manhattan_decimal_tie():
    X = np.array([[0.1, 0.3, 0.3, 0.1, 0.2, 0.1, 0.2, 0], [0.2, 0.3, 0.1, 0.5, 0.1, 0.5, 0.4, 0.4]])
    Q = np.array([[0.3, 0.5, 0.1, 0.1, 0.3, 0.4, 0.3, 0.2]])
    trio = _nn_pair(n_neighbors=1, metric="manhattan").fit(X)
    ref, got = trio.run("kneighbors", Q)
    assert ref[1].tolist() == [[1]]
    _report(trio.findings + compare_kneighbors(Context(False), got, ref))


@pytest.mark.parametrize("offset", [1000.0, 1e6])
def test_float32_offset(offset):
    rng = np.random.default_rng(0)
    X = (offset + rng.standard_normal((50, 3))).astype("f4")
    Q = (offset + rng.standard_normal((1, 3))).astype("f4")
    trio = _nn_pair(n_neighbors=3).fit(X)
    ref, got = trio.run("kneighbors", Q)
    if offset == 1000.0:
        assert ref[1].tolist() == [[27, 21, 5]]
    findings = trio.findings + compare_kneighbors(
        Context(True, False, ExactSq(Q, X), round_eps=EPS32), got, ref
    )
    # And the tracker's own bound: within one float32 ulp of scikit-learn's distances.
    ulp = np.spacing(ref[0].astype(np.float32)).astype(np.float64)
    far = np.abs(got[0].astype(np.float64) - ref[0]) > ulp
    for i, j in zip(*np.nonzero(far), strict=True):
        findings.append(
            Finding(
                f"row {i} pos {j}",
                "float32-ulp",
                False,
                f"got {got[0][i, j]!r} vs ref {ref[0][i, j]!r}",
            )
        )
    _report(findings)


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_float32_self_query(offset):
    rng = np.random.default_rng(0)
    X = (offset + rng.standard_normal((60, 6))).astype("f4")
    y = rng.integers(0, 3, 60)
    trio = _nn_pair(n_neighbors=1).fit(X)
    ref, got = trio.run("kneighbors", X)
    findings = trio.findings + compare_kneighbors(
        Context(True, False, ExactSq(X, X), round_eps=EPS32), got, ref
    )
    bound = 8 * np.sqrt(EPS64 * 2 * np.einsum("ij,ij->i", X.astype("f8"), X.astype("f8")))
    assert (ref[0][:, 0] <= bound).all()  # scikit-learn's own self distances: ~0
    for i in np.nonzero(got[0][:, 0] > bound)[0]:
        findings.append(
            Finding(
                f"row {i}", "self-distance", False, f"got {got[0][i, 0]!r} (bound {bound[i]:.3g})"
            )
        )
    clf = Trio("KNeighborsClassifier", weights="distance").fit(X, y)
    ref_p, got_p = clf.run("predict_proba", X)
    findings += clf.findings + compare_votes("predict_proba", got_p, ref_p, set(), None)
    _report(findings)


def test_radius_boundary():
    X = np.array([[0.0, 2, 0, 1]])
    Q = np.array([[2.0, 2, 1, 2]])
    radius = float(np.sqrt(6.0))
    # The exact distance is sqrt(6); radius is sqrt(6) rounded down (radius**2 < 6 exactly):
    # the neighbour is outside, as scikit-learn says.
    assert Fraction(radius) ** 2 < 6
    trio = _nn_pair(radius=radius).fit(X)
    ref, got = trio.run("radius_neighbors", Q)
    assert len(ref[1][0]) == 0
    ctx = Context(True, False, ExactSq(Q, X), strict_boundary=True)
    _report(trio.findings + compare_radius(ctx, got, ref, radius))


@pytest.mark.parametrize("query", ["X", "none"])
def test_integer_zeros(query):
    X = np.zeros((40, 2), int)
    trio = _nn_pair(n_neighbors=3).fit(X)
    if query == "X":
        ref, got = trio.run("kneighbors", X)
        assert ref[1][0].tolist() == [0, 1, 2]
    else:
        ref, got = trio.run("kneighbors")
    _report(trio.findings + compare_kneighbors(Context(False), got, ref))
