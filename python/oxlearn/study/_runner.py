"""The study runner: cross-validated KNN and MLP grids on oxlearn and scikit-learn."""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from oxlearn.study._data import StudyData, StudyInputError, load_digits_data, prepare_data
from oxlearn.study._report import convergence_line
from oxlearn.study._results import (
    BACKENDS,
    BackendResult,
    ConfigResult,
    SectionResult,
    StudyResult,
    StudySettings,
)

__all__ = ["QUICK_MAX_ITER", "SECTIONS", "SECTION_NAMES", "SectionSpec", "run_study"]

Param = int | tuple[int, ...]


@dataclass(frozen=True)
class SectionSpec:
    """A section of the study: its grid, default folds and labels.

    Attributes
    ----------
    name : str
        Section name used on the command line.
    title : str
        Human title (plots, report).
    kind : {"gallery", "knn", "mlp"}
        What the section computes.
    grid : tuple
        ``n_neighbors`` values (KNN) or ``hidden_layer_sizes`` (MLP).
    quick_grid : tuple
        The reduced grid of ``--quick``.
    default_folds : int
        KFold splits the notebook used.
    """

    name: str
    title: str
    kind: str
    grid: tuple[Param, ...] = ()
    quick_grid: tuple[Param, ...] = ()
    default_folds: int = 4


SECTIONS: dict[str, SectionSpec] = {
    "gallery": SectionSpec("gallery", "Sample digits", "gallery"),
    "knn": SectionSpec(
        "knn",
        "k-nearest neighbours: accuracy vs k",
        "knn",
        grid=tuple(range(1, 10)),
        quick_grid=(1, 2, 3),
    ),
    "mlp1": SectionSpec(
        "mlp1",
        "MLP, one hidden layer: accuracy vs neurons",
        "mlp",
        grid=((8,), (16,), (32,), (64,), (128,), (256,)),
        quick_grid=((8,), (16,)),
    ),
    "mlp2": SectionSpec(
        "mlp2",
        "MLP, two hidden layers: accuracy vs neurons per layer",
        "mlp",
        grid=((64, 64), (128, 128), (256, 256)),
        quick_grid=((8, 8), (16, 16)),
    ),
    "mlp3": SectionSpec(
        "mlp3",
        "MLP, three hidden layers: accuracy vs neurons per layer",
        "mlp",
        grid=((10, 10, 10), (64, 64, 64), (128, 128, 128)),
        quick_grid=((10, 10, 10),),
        default_folds=6,
    ),
}
SECTION_NAMES: tuple[str, ...] = tuple(SECTIONS)

#: ``max_iter`` of the MLPs under ``quick=True`` (unless given explicitly).
QUICK_MAX_ITER = 20


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one).

    Returns
    -------
    int
        At least 1.
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def parse_backends(backend: str | Sequence[str]) -> tuple[str, ...]:
    """Turn ``"both"``, ``"oxlearn"``, ``"sklearn"`` or a sequence of them into a tuple.

    Parameters
    ----------
    backend : str or sequence of str
        The requested backend(s).

    Returns
    -------
    tuple of str
        Backends in canonical order (oxlearn, sklearn).

    Raises
    ------
    StudyInputError
        For an unknown name.
    """
    names = [backend] if isinstance(backend, str) else list(backend)
    chosen: set[str] = set()
    for name in names:
        if name == "both":
            chosen.update(BACKENDS)
        elif name in BACKENDS:
            chosen.add(name)
        else:
            raise StudyInputError(f"unknown backend {name!r} (choose from oxlearn, sklearn, both)")
    if not chosen:
        raise StudyInputError("no backend chosen (choose from oxlearn, sklearn, both)")
    return tuple(b for b in BACKENDS if b in chosen)


def parse_sections(sections: str | Sequence[str] | None) -> tuple[str, ...]:
    """Validate section names; None means all. Returns them in the study's order.

    Parameters
    ----------
    sections : str, sequence of str or None
        Names among gallery, knn, mlp1, mlp2, mlp3 (a string may be comma-separated).

    Returns
    -------
    tuple of str
        The sections, deduplicated, in the study's order.

    Raises
    ------
    StudyInputError
        For an unknown or empty selection.
    """
    if sections is None:
        return SECTION_NAMES
    raw = sections.split(",") if isinstance(sections, str) else list(sections)
    names = [s.strip() for part in raw for s in str(part).split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        raise StudyInputError(
            f"unknown section {unknown[0]!r} (choose from {', '.join(SECTION_NAMES)})"
        )
    if not names:
        raise StudyInputError(f"no section chosen (choose from {', '.join(SECTION_NAMES)})")
    return tuple(s for s in SECTION_NAMES if s in names)


# --- estimators of each backend ------------------------------------------------------------


@dataclass
class _Backend:
    name: str
    knn_classifier: Any = None  # sklearn side: fitted once per k, as the notebook did
    knn_sweep: Callable[..., npt.NDArray[np.float64]] | None = None  # oxlearn side
    mlp_classifier: Any = None
    mlp_extra: dict[str, Any] = field(default_factory=dict)


def _load_backend(name: str, kinds: set[str], threads: int) -> _Backend:
    backend = _Backend(name)
    if name == "sklearn":
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.neural_network import MLPClassifier

        backend.knn_classifier = KNeighborsClassifier
        backend.mlp_classifier = MLPClassifier
        return backend
    try:
        if "knn" in kinds:
            from oxlearn.neighbors import knn_sweep_scores

            backend.knn_sweep = knn_sweep_scores
        if "mlp" in kinds:
            from oxlearn.neural_network import MLPClassifier as OxMLPClassifier

            backend.mlp_classifier = OxMLPClassifier
            # scikit-learn's MLPClassifier has no n_jobs; pass ours only if the class has one
            # (otherwise its thread count comes from OXLEARN_NUM_THREADS, see _oxlearn_threads).
            if "n_jobs" in OxMLPClassifier().get_params():
                backend.mlp_extra["n_jobs"] = threads
    except ImportError as exc:
        raise StudyInputError(
            f"the oxlearn backend is not available ({exc}); use --backend sklearn"
        ) from None
    return backend


#: Environment variable oxlearn's estimators without an ``n_jobs`` parameter read per fit.
THREADS_ENV = "OXLEARN_NUM_THREADS"


@contextmanager
def _oxlearn_threads(threads: int) -> Iterator[None]:
    """Set ``OXLEARN_NUM_THREADS`` for the run (restored afterwards)."""
    previous = os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = str(threads)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = previous


# --- warnings: ConvergenceWarnings go to the running task, the rest pass through -------------

_LOCAL = threading.local()


@contextmanager
def _route_convergence_warnings() -> Iterator[None]:
    """Send ConvergenceWarnings raised inside a task to that task's list (thread-local).

    Every ConvergenceWarning is recorded ("always", so repeats are counted) and summarised
    by the caller; all other warnings follow the filters in force and reach the previous
    ``warnings.showwarning`` untouched.
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", ConvergenceWarning)
        previous = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            sink: list[str] | None = getattr(_LOCAL, "sink", None)
            if sink is not None and issubclass(category, ConvergenceWarning):
                sink.append(str(message))
                return
            previous(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


@dataclass(frozen=True)
class _Outcome:
    accuracies: tuple[float, ...]
    elapsed: float
    warnings: tuple[str, ...]


def _in_task(fn: Callable[[], tuple[list[float], float]]) -> _Outcome:
    sink: list[str] = []
    _LOCAL.sink = sink
    try:
        accuracies, elapsed = fn()
    finally:
        _LOCAL.sink = None
    return _Outcome(tuple(float(a) for a in accuracies), elapsed, tuple(sink))


# --- the tasks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fold:
    X_train: npt.NDArray[np.floating]
    y_train: npt.NDArray[np.int64]
    X_test: npt.NDArray[np.floating]
    y_test: npt.NDArray[np.int64]


def _make_folds(data: StudyData, n_splits: int) -> list[_Fold]:
    from sklearn.model_selection import KFold

    folds = []
    for train, test in KFold(n_splits=n_splits).split(data.X):
        folds.append(
            _Fold(
                np.ascontiguousarray(data.X[train]),
                np.ascontiguousarray(data.y[train]),
                np.ascontiguousarray(data.X[test]),
                np.ascontiguousarray(data.y[test]),
            )
        )
    return folds


def _knn_fit_score(cls: Any, k: int, fold: _Fold) -> tuple[list[float], float]:
    start = time.perf_counter()
    model = cls(n_neighbors=k).fit(fold.X_train, fold.y_train)
    accuracy = model.score(fold.X_test, fold.y_test)
    return [accuracy], time.perf_counter() - start


def _knn_sweep(
    sweep: Callable[..., npt.NDArray[np.float64]], ks: list[int], fold: _Fold, threads: int
) -> tuple[list[float], float]:
    start = time.perf_counter()
    scores = sweep(fold.X_train, fold.y_train, fold.X_test, fold.y_test, ks, n_jobs=threads)
    elapsed = time.perf_counter() - start
    return [float(s) for s in np.asarray(scores, dtype=np.float64).ravel()], elapsed


def _check_knn_against_sklearn(
    configs: list[ConfigResult], folds: list[_Fold], sklearn_cls: Any, threads: int
) -> tuple[bool, str | None]:
    """Whether oxlearn's KNN accuracies equal scikit-learn's for every k and fold.

    With more than one thread scikit-learn's brute-force search (its ArgKmin reduction) can
    rank two training rows at exactly the same distance in either order, so a tied vote may go
    the other way; its single-threaded answer (lower training index first) is the one oxlearn
    gives at every thread count. So where the timed, multi-threaded scikit-learn runs differ,
    the fold is scored again with scikit-learn on one thread before calling it a mismatch.
    """
    from threadpoolctl import threadpool_limits

    differing = [
        (cfg, f)
        for cfg in configs
        for f, (ours, theirs) in enumerate(
            zip(
                cfg.results["oxlearn"].accuracies[0],
                cfg.results["sklearn"].accuracies[0],
                strict=True,
            )
        )
        if ours != theirs
    ]
    if not differing:
        return True, None
    if threads == 1:
        return False, None
    with threadpool_limits(limits=1):
        for cfg, f in differing:
            k = cfg.param
            if not isinstance(k, int):  # pragma: no cover - KNN grids hold ints
                raise TypeError(f"KNN configuration {cfg.label} is not an integer k")
            single, _ = _knn_fit_score(sklearn_cls, k, folds[f])
            if single[0] != cfg.results["oxlearn"].accuracies[0][f]:
                return False, None
    labels = sorted({cfg.label for cfg, _ in differing}, key=lambda s: int(s[2:]))
    return True, (
        f"scikit-learn on {threads} threads broke a distance tie differently at "
        f"{', '.join(labels)}; on one thread it gives oxlearn's accuracies exactly"
    )


def _mlp_fit_score(cls: Any, params: dict[str, Any], fold: _Fold) -> tuple[list[float], float]:
    start = time.perf_counter()
    model = cls(**params).fit(fold.X_train, fold.y_train)
    accuracy = model.score(fold.X_test, fold.y_test)
    return [accuracy], time.perf_counter() - start


@dataclass(frozen=True)
class _Task:
    backend: str
    config: int  # index into the grid; -1: every config at once (KNN sweep)
    seed: int
    fold: int
    fn: Callable[[], tuple[list[float], float]]


def _label(param: Param) -> str:
    if isinstance(param, tuple):
        return "(" + ", ".join(str(p) for p in param) + (",)" if len(param) == 1 else ")")
    return f"k={param}"


def _warm_up(backends: dict[str, _Backend], kind: str, data: StudyData, threads: int) -> None:
    """One small untimed fit per backend, so lazy one-off set-up is not timed."""
    n = min(data.n_samples, 60)
    n_train = max(2, (2 * n) // 3)
    if n - n_train < 1:
        return
    fold = _Fold(
        np.ascontiguousarray(data.X[:n_train]),
        data.y[:n_train].copy(),
        np.ascontiguousarray(data.X[n_train:n]),
        data.y[n_train:n].copy(),
    )
    sink: list[str] = []
    _LOCAL.sink = sink  # a warm-up's ConvergenceWarning is dropped on purpose
    try:
        for backend in backends.values():
            if kind == "knn" and backend.knn_sweep is not None:
                backend.knn_sweep(
                    fold.X_train, fold.y_train, fold.X_test, fold.y_test, [1], n_jobs=threads
                )
            elif kind == "knn" and backend.knn_classifier is not None:
                _knn_fit_score(backend.knn_classifier, 1, fold)
            elif kind == "mlp" and backend.mlp_classifier is not None:
                params = {"hidden_layer_sizes": (4,), "max_iter": 2, "random_state": 0}
                _mlp_fit_score(backend.mlp_classifier, {**params, **backend.mlp_extra}, fold)
    finally:
        _LOCAL.sink = None


def _run_tasks(
    tasks: list[_Task],
    executor: ThreadPoolExecutor | None,
    progress: bool,
    desc: str,
) -> dict[tuple[str, int, int, int], _Outcome]:
    from tqdm import tqdm

    outcomes: dict[tuple[str, int, int, int], _Outcome] = {}
    with tqdm(
        total=len(tasks), desc=desc, unit="fit", disable=not progress, leave=False, file=sys.stderr
    ) as bar:
        if executor is None:
            for task in tasks:
                outcomes[(task.backend, task.config, task.seed, task.fold)] = _in_task(task.fn)
                bar.update(1)
        else:
            futures: dict[Future[_Outcome], _Task] = {
                executor.submit(_in_task, task.fn): task for task in tasks
            }
            try:
                for future in as_completed(futures):
                    task = futures[future]
                    outcomes[(task.backend, task.config, task.seed, task.fold)] = future.result()
                    bar.update(1)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    return outcomes


def _run_section(
    spec: SectionSpec,
    grid: tuple[Param, ...],
    data: StudyData,
    n_folds: int,
    seeds: tuple[int, ...],
    backends: dict[str, _Backend],
    threads: int,
    max_iter: int | None,
    executor: ThreadPoolExecutor | None,
    progress: bool,
) -> SectionResult:
    folds = _make_folds(data, n_folds)
    _warm_up(backends, spec.kind, data, threads)
    tasks: list[_Task] = []
    if spec.kind == "knn":
        ks = [int(p) for p in grid if isinstance(p, int)]
        seeds = (0,)
        for name, backend in backends.items():
            for f, fold in enumerate(folds):
                if backend.knn_sweep is not None:
                    fn = partial(_knn_sweep, backend.knn_sweep, ks, fold, threads)
                    tasks.append(_Task(name, -1, 0, f, fn))
                else:
                    for c, k in enumerate(ks):
                        fn = partial(_knn_fit_score, backend.knn_classifier, k, fold)
                        tasks.append(_Task(name, c, 0, f, fn))
    else:
        for name, backend in backends.items():
            cls = backend.mlp_classifier
            for c, arch in enumerate(grid):
                for seed in seeds:
                    params: dict[str, Any] = {"hidden_layer_sizes": arch, "random_state": seed}
                    if max_iter is not None:
                        params["max_iter"] = max_iter
                    params.update(backend.mlp_extra)
                    for f, fold in enumerate(folds):
                        fn = partial(_mlp_fit_score, cls, params, fold)
                        tasks.append(_Task(name, c, seed, f, fn))

    start = time.perf_counter()
    outcomes = _run_tasks(tasks, executor, progress, spec.name)
    wall = time.perf_counter() - start

    configs: list[ConfigResult] = []
    for c, param in enumerate(grid):
        results: dict[str, BackendResult] = {}
        for name, backend in backends.items():
            per_seed: list[tuple[float, ...]] = []
            elapsed = 0.0
            not_converged = 0
            first_warning: str | None = None
            for seed in seeds:
                accs: list[float] = []
                for f in range(n_folds):
                    if spec.kind == "knn" and backend.knn_sweep is not None:
                        out = outcomes[(name, -1, 0, f)]
                        if len(out.accuracies) != len(grid):
                            raise RuntimeError(
                                f"knn_sweep_scores returned {len(out.accuracies)} scores "
                                f"for {len(grid)} values of k"
                            )
                        accs.append(out.accuracies[c])
                        elapsed += out.elapsed / len(grid)
                    else:
                        out = outcomes[(name, c, seed, f)]
                        accs.append(out.accuracies[0])
                        elapsed += out.elapsed
                    if out.warnings and (spec.kind != "knn" or backend.knn_sweep is None):
                        not_converged += 1
                        first_warning = first_warning or out.warnings[0]
                per_seed.append(tuple(accs))
            results[name] = BackendResult(
                backend=name,
                accuracies=tuple(per_seed),
                time_s=elapsed,
                n_fits=len(seeds) * n_folds,
                n_not_converged=not_converged,
                warning_message=first_warning,
            )
        x = float(param[0]) if isinstance(param, tuple) else float(param)
        configs.append(ConfigResult(_label(param), param, x, results))

    matches: bool | None = None
    tie_note: str | None = None
    if spec.kind == "knn" and len(backends) == 2:
        matches, tie_note = _check_knn_against_sklearn(
            configs, folds, backends["sklearn"].knn_classifier, threads
        )
    return SectionResult(
        name=spec.name,
        title=spec.title,
        kind=spec.kind,
        folds=n_folds,
        seeds=seeds,
        configs=tuple(configs),
        wall_time_s=wall,
        knn_matches_sklearn=matches,
        knn_note=tie_note,
        max_iter=max_iter if spec.kind == "mlp" else None,
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import oxlearn

    out = {"python": platform.python_version(), "oxlearn": oxlearn.__version__}
    for dist in ("scikit-learn", "numpy", "scipy", "threadpoolctl", "matplotlib", "pandas"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:  # pragma: no cover - all are dependencies
            out[dist] = "not installed"
    return out


def _machine() -> dict[str, Any]:
    import oxlearn

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python_implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
        "available_cpus": available_cpus(),
        "oxlearn_build_info": dict(oxlearn.build_info()),
    }


def run_study(
    X: npt.ArrayLike | None = None,
    y: npt.ArrayLike | None = None,
    *,
    sections: str | Sequence[str] | None = None,
    folds: int | None = None,
    seeds: int = 1,
    backend: str | Sequence[str] = "both",
    jobs: int = 1,
    threads: int | None = None,
    quick: bool = False,
    max_iter: int | None = None,
    progress: bool = False,
    on_section: Callable[[SectionResult], None] | None = None,
    data_name: str | None = None,
) -> StudyResult:
    """Run the digits study (or the same comparison on your data) on oxlearn and scikit-learn.

    Each configuration is cross-validated with unshuffled ``KFold(n_splits=folds)`` on
    both backends with the same estimator parameters. KNN: scikit-learn fits
    ``KNeighborsClassifier(n_neighbors=k)`` once per k and fold, as the original notebook
    did; oxlearn calls :func:`oxlearn.neighbors.knn_sweep_scores` once per fold (one
    neighbour search with the largest k scores every k). MLP: ``MLPClassifier(
    hidden_layer_sizes=arch, random_state=seed)`` with every other parameter at its default
    (``max_iter`` if given). Times are wall times around fit + score only.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), default=None
        Features; None for scikit-learn's bundled digits (``load_digits``).
    y : array-like of shape (n_samples,), default=None
        Class labels (required with ``X``).
    sections : str, sequence of str or None, default=None
        Among ``"gallery"``, ``"knn"``, ``"mlp1"``, ``"mlp2"``, ``"mlp3"``; None runs all.
    folds : int or None, default=None
        KFold splits for every section (>= 2); None uses the notebook's: 4 for knn, mlp1
        and mlp2, 6 for mlp3.
    seeds : int, default=1
        MLP ``random_state`` values 0..seeds-1; the spread over seeds is reported.
    backend : {"both", "oxlearn", "sklearn"} or sequence, default="both"
        Which libraries to run.
    jobs : int, default=1
        Folds/configurations run at the same time in threads (results do not depend on it;
        per-configuration times then overlap, the section wall time does not).
    threads : int or None, default=None
        Native threads per fit: oxlearn's ``n_jobs`` (``OXLEARN_NUM_THREADS`` for oxlearn
        estimators without ``n_jobs``, set for the run and restored) and a threadpoolctl
        limit on scikit-learn's OpenMP/BLAS pools. None: every available CPU.
    quick : bool, default=False
        A reduced grid (k in 1..3; (8,), (16,); (8, 8), (16, 16); (10, 10, 10)) with
        ``max_iter=20`` unless ``max_iter`` is given: finishes in seconds.
    max_iter : int or None, default=None
        MLP ``max_iter`` (None: the estimator default, 200).
    progress : bool, default=False
        Show a tqdm progress bar on stderr.
    on_section : callable or None, default=None
        Called with each :class:`SectionResult` as soon as it is finished.
    data_name : str or None, default=None
        Name of the data in the report (default ``"digits"`` or ``"data"``).

    Returns
    -------
    StudyResult
        Typed results; ``.to_frame()`` gives a pandas DataFrame with one row per
        configuration and backend, ``oxlearn.study.write_outputs`` the plots and report.

    Raises
    ------
    StudyInputError
        (a ValueError) for invalid options or data, or when the oxlearn backend is missing.

    Examples
    --------
    >>> from oxlearn.study import run_study
    >>> result = run_study(sections=["knn"], quick=True, backend="sklearn")
    >>> result.to_frame()[["configuration", "backend", "mean_accuracy"]].round(4)
      configuration  backend  mean_accuracy
    0           k=1  sklearn         0.9677
    1           k=2  sklearn         0.9616
    2           k=3  sklearn         0.9627
    """
    if (X is None) != (y is None):
        raise StudyInputError("give both X and y, or neither (for the digits)")
    data = (
        load_digits_data()
        if X is None or y is None
        else prepare_data(X, y, name=data_name or "data")
    )
    return run_study_on(
        data,
        sections=sections,
        folds=folds,
        seeds=seeds,
        backend=backend,
        jobs=jobs,
        threads=threads,
        quick=quick,
        max_iter=max_iter,
        progress=progress,
        on_section=on_section,
    )


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise StudyInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def run_study_on(
    data: StudyData,
    *,
    sections: str | Sequence[str] | None = None,
    folds: int | None = None,
    seeds: int = 1,
    backend: str | Sequence[str] = "both",
    jobs: int = 1,
    threads: int | None = None,
    quick: bool = False,
    max_iter: int | None = None,
    progress: bool = False,
    on_section: Callable[[SectionResult], None] | None = None,
) -> StudyResult:
    """Run the study on already loaded :class:`StudyData` (see :func:`run_study`).

    Parameters
    ----------
    data : StudyData
        The data (e.g. from :func:`oxlearn.study.load_data`).
    sections, folds, seeds, backend, jobs, threads, quick, max_iter, progress, on_section
        As in :func:`run_study`.

    Returns
    -------
    StudyResult
        Typed results.
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    names = parse_sections(sections)
    chosen = parse_backends(backend)
    n_seeds = _check_int("seeds", seeds, 1)
    n_jobs = _check_int("jobs", jobs, 1)
    n_threads = available_cpus() if threads is None else _check_int("threads", threads, 1)
    if folds is not None:
        folds = _check_int("folds", folds, 2)
    if max_iter is not None:
        max_iter = _check_int("max_iter", max_iter, 1)
    effective_max_iter = QUICK_MAX_ITER if quick and max_iter is None else max_iter

    computed = [SECTIONS[n] for n in names if SECTIONS[n].kind != "gallery"]
    fold_counts = {spec.name: folds or spec.default_folds for spec in computed}
    for spec in computed:
        n_folds = fold_counts[spec.name]
        if n_folds > data.n_samples:
            raise StudyInputError(
                f"folds={n_folds} is more than the {data.n_samples} samples of {data.name}"
            )
        if spec.kind == "knn":
            grid = spec.quick_grid if quick else spec.grid
            smallest_train = data.n_samples - -(-data.n_samples // n_folds)
            k_max = max(int(k) for k in grid if isinstance(k, int))
            if k_max > smallest_train:
                raise StudyInputError(
                    f"k up to {k_max} needs at least {k_max} training rows per fold; "
                    f"{data.name} with {n_folds} folds has {smallest_train}"
                )
    kinds = {spec.kind for spec in computed}
    backends = {name: _load_backend(name, kinds, n_threads) for name in chosen}

    gallery_rows: tuple[int, ...] = ()
    gallery_images = None
    if "gallery" in names:
        gallery = data.gallery()
        if gallery is not None:
            gallery_rows, gallery_images = gallery

    results: list[SectionResult] = []
    start = time.perf_counter()
    executor = ThreadPoolExecutor(max_workers=n_jobs) if n_jobs > 1 else None
    try:
        with (
            threadpool_limits(limits=n_threads),
            _oxlearn_threads(n_threads),
            _route_convergence_warnings(),
        ):
            pools = [
                {k: info.get(k) for k in ("user_api", "internal_api", "num_threads", "prefix")}
                for info in threadpool_info()
            ]
            for spec in computed:
                grid = spec.quick_grid if quick else spec.grid
                section = _run_section(
                    spec,
                    grid,
                    data,
                    fold_counts[spec.name],
                    tuple(range(n_seeds)),
                    backends,
                    n_threads,
                    effective_max_iter,
                    executor,
                    progress,
                )
                results.append(section)
                if on_section is not None:
                    on_section(section)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    wall = time.perf_counter() - start

    summary = [
        f"{sec.name} {line}"
        for sec in results
        for cfg in sec.configs
        if (line := convergence_line(sec, cfg))
    ]
    settings = StudySettings(
        sections=names,
        folds=fold_counts,
        seeds=n_seeds,
        backends=chosen,
        jobs=n_jobs,
        threads=n_threads,
        quick=quick,
        max_iter=effective_max_iter,
    )
    threading_info = {
        "native_threads_per_fit": n_threads,
        "jobs": n_jobs,
        "oxlearn_n_jobs": n_threads,
        "oxlearn_mlp_threads_via": (
            "n_jobs" if "n_jobs" in backends.get("oxlearn", _Backend("")).mlp_extra else THREADS_ENV
        ),
        "sklearn_threadpool_limit": n_threads,
        "threadpools": pools,
    }
    return StudyResult(
        settings=settings,
        data_name=data.name,
        n_samples=data.n_samples,
        n_features=data.n_features,
        n_classes=data.n_classes,
        sections=tuple(results),
        gallery_rows=gallery_rows,
        gallery_images=gallery_images,
        wall_time_s=wall,
        versions=_versions(),
        machine=_machine(),
        threading=threading_info,
        warnings_summary=tuple(summary),
    )
