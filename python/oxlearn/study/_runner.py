"""The study runner: cross-validated KNN and MLP grids on oxlearn and scikit-learn."""

from __future__ import annotations

import os
import platform
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from types import FrameType
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

__all__ = [
    "QUICK_MAX_ITER",
    "SECTIONS",
    "SECTION_NAMES",
    "SectionSpec",
    "StudyInterrupted",
    "run_study",
]

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

#: Name prefix of the ``--jobs`` worker threads.
WORKER_THREAD_PREFIX = "oxlearn-study-worker"

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
    knn_classifier: Any = None  # fitted once per k (scikit-learn's, and oxlearn's like-for-like)
    knn_extra: dict[str, Any] = field(default_factory=dict)
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
            from oxlearn.neighbors import KNeighborsClassifier as OxKNeighborsClassifier
            from oxlearn.neighbors import knn_sweep_scores

            backend.knn_sweep = knn_sweep_scores
            backend.knn_classifier = OxKNeighborsClassifier
            backend.knn_extra["n_jobs"] = threads
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


# --- Ctrl-C: noticed by the study even where an estimator swallows it ------------------------

#: Set by the study's SIGINT handler (and by a "Training interrupted by user." warning).
_INTERRUPTED = threading.Event()

#: The message scikit-learn's MLP (and oxlearn's, which mirrors it) warns with after catching
#: KeyboardInterrupt in the middle of training; the fit then returns as if it had finished.
INTERRUPT_WARNING = "Training interrupted by user."


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C during a study; ``result`` holds every configuration that had finished.

    A KeyboardInterrupt, so code that does not expect it stops as it would on Ctrl-C. The
    fit that was running (and every unfinished configuration) is left out of ``result``,
    whose ``interrupted`` attribute says what was not run.

    Parameters
    ----------
    result : StudyResult
        The finished part of the study.
    """

    def __init__(self, result: StudyResult) -> None:
        super().__init__(result.interrupted or "interrupted")
        self.result = result


@contextmanager
def _catch_sigint() -> Iterator[None]:
    """Record Ctrl-C in ``_INTERRUPTED`` before raising KeyboardInterrupt as usual.

    scikit-learn's MLP catches KeyboardInterrupt inside ``fit``, warns "Training interrupted
    by user." and returns a cut-short model (oxlearn's MLP does the same, on purpose); the
    flag lets the study notice that and drop the fit. The handler is installed only from the
    main thread and only over Python's default handler (an application's own is kept).
    """
    _INTERRUPTED.clear()
    installed = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    if installed:

        def handler(signum: int, frame: FrameType | None) -> None:
            _INTERRUPTED.set()
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _check_interrupt() -> None:
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


# --- warnings: ConvergenceWarnings go to the running task, the rest pass through -------------

_LOCAL = threading.local()


@contextmanager
def _route_convergence_warnings() -> Iterator[None]:
    """Send ConvergenceWarnings raised inside a task to that task's list (thread-local).

    Every ConvergenceWarning is recorded ("always", so repeats are counted) and summarised
    by the caller. "Training interrupted by user." (an estimator that caught Ctrl-C) sets
    the interrupt flag instead of being shown: the study reports the interruption itself.
    All other warnings follow the filters in force and reach the previous
    ``warnings.showwarning`` untouched.
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.filterwarnings("always", message=re.escape(INTERRUPT_WARNING))
        previous = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if str(message) == INTERRUPT_WARNING:
                _INTERRUPTED.set()
                return
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


def _splitter(n_splits: int, y: npt.NDArray[np.int64], shuffle: int | None) -> Any:
    """Return the splitter: unshuffled KFold, or shuffled (stratified) folds."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if shuffle is None:
        return KFold(n_splits=n_splits)
    if int(np.bincount(y).min()) >= n_splits:
        return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=shuffle)
    return KFold(n_splits=n_splits, shuffle=True, random_state=shuffle)


def _make_folds(data: StudyData, n_splits: int, shuffle: int | None = None) -> list[_Fold]:
    folds = []
    for train, test in _splitter(n_splits, data.y, shuffle).split(data.X, data.y):
        folds.append(
            _Fold(
                np.ascontiguousarray(data.X[train]),
                np.ascontiguousarray(data.y[train]),
                np.ascontiguousarray(data.X[test]),
                np.ascontiguousarray(data.y[test]),
            )
        )
    return folds


def _fold_warnings(data: StudyData, n_splits: int, shuffle: int | None) -> list[str]:
    """Warnings about the folds: unseen test classes, labels sorted by class."""
    out: list[str] = []
    fix = "use --shuffle (shuffled, stratified folds)"
    if shuffle is None and data.n_samples > 2 and data.n_classes > 1:
        steps = np.diff(data.y)
        if np.all(steps >= 0) or np.all(steps <= 0):
            out.append(
                f"the labels of {data.name} are sorted by class, so unshuffled KFold gives "
                f"test folds of classes the training folds barely hold; {fix}"
            )
    splitter = _splitter(n_splits, data.y, shuffle)
    for f, (train, test) in enumerate(splitter.split(data.X, data.y)):
        unseen = np.setdiff1d(np.unique(data.y[test]), np.unique(data.y[train]))
        if unseen.size:
            names = ", ".join(str(c) for c in data.classes[unseen][:5])
            more = ", ..." if unseen.size > 5 else ""
            out.append(
                f"{n_splits}-fold CV on {data.name}: test fold {f} holds class(es) {names}{more} "
                f"that its training folds lack, so those rows cannot be classified; {fix}"
            )
            break
    return out


def _scale_warning(data: StudyData) -> str | None:
    """Warn when feature scales differ so much that distances and SGD suffer."""
    std = data.X.std(axis=0)
    std = std[std > 0]
    if std.size < 2:
        return None
    ratio = float(std.max() / np.median(std))
    if ratio < 20.0:
        return None
    return (
        f"the features of {data.name} differ widely in scale (largest standard deviation "
        f"{ratio:.0f}x the median), which hurts KNN distances and MLP training; use --scale "
        "(a StandardScaler fitted per fold)"
    )


def check_data(
    data: StudyData,
    sections: str | Sequence[str] | None = None,
    folds: int | None = None,
    shuffle: int | None = None,
    scale: bool = False,
) -> list[str]:
    """Warnings about cross-validating ``data`` as the study would, each naming its fix.

    Parameters
    ----------
    data : StudyData
        The data.
    sections : str, sequence of str or None, default=None
        The sections to run (their fold counts are checked); None: all.
    folds : int or None, default=None
        As in :func:`run_study`.
    shuffle : int or None, default=None
        As in :func:`run_study`.
    scale : bool, default=False
        As in :func:`run_study`.

    Returns
    -------
    list of str
        Sorted labels under unshuffled folds, a test fold holding a class its training
        folds lack (suggests ``--shuffle``); features on very different scales (suggests
        ``--scale``). Empty for the digits with the default protocol.
    """
    computed = [SECTIONS[n] for n in parse_sections(sections) if SECTIONS[n].kind != "gallery"]
    out: list[str] = []
    for n_folds in sorted({folds or spec.default_folds for spec in computed}):
        for message in _fold_warnings(data, n_folds, shuffle):
            if message not in out:
                out.append(message)
    scale_message = None if scale or not computed else _scale_warning(data)
    if scale_message is not None:
        out.append(scale_message)
    return out


def _estimator(cls: Any, params: dict[str, Any], scale: bool) -> Any:
    model = cls(**params)
    if not scale:
        return model
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), model)


def _knn_fit_score(
    cls: Any, k: int, fold: _Fold, extra: dict[str, Any] | None = None, scale: bool = False
) -> tuple[list[float], float]:
    start = time.perf_counter()
    model = _estimator(cls, {"n_neighbors": k, **(extra or {})}, scale)
    accuracy = model.fit(fold.X_train, fold.y_train).score(fold.X_test, fold.y_test)
    return [accuracy], time.perf_counter() - start


def _knn_sweep(
    sweep: Callable[..., npt.NDArray[np.float64]],
    ks: list[int],
    fold: _Fold,
    threads: int,
    scale: bool = False,
) -> tuple[list[float], float]:
    start = time.perf_counter()
    X_train, X_test = fold.X_train, fold.X_test
    if scale:
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    scores = sweep(X_train, fold.y_train, X_test, fold.y_test, ks, n_jobs=threads)
    elapsed = time.perf_counter() - start
    return [float(s) for s in np.asarray(scores, dtype=np.float64).ravel()], elapsed


def _check_knn_against_sklearn(
    configs: list[ConfigResult],
    folds: list[_Fold],
    sklearn_cls: Any,
    threads: int,
    scale: bool = False,
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
            single, _ = _knn_fit_score(sklearn_cls, k, folds[f], scale=scale)
            if single[0] != cfg.results["oxlearn"].accuracies[0][f]:
                return False, None
    labels = sorted({cfg.label for cfg, _ in differing}, key=lambda s: int(s[2:]))
    return True, (
        f"scikit-learn on {threads} threads broke a distance tie differently at "
        f"{', '.join(labels)}; on one thread it gives oxlearn's accuracies exactly"
    )


def _mlp_fit_score(
    cls: Any, params: dict[str, Any], fold: _Fold, scale: bool = False
) -> tuple[list[float], float]:
    start = time.perf_counter()
    model = _estimator(cls, params, scale).fit(fold.X_train, fold.y_train)
    accuracy = model.score(fold.X_test, fold.y_test)
    return [accuracy], time.perf_counter() - start


#: The per-k oxlearn KNN fits (like-for-like with scikit-learn's) are timed as this "backend".
PER_K = "oxlearn_per_k"


@dataclass(frozen=True)
class _Task:
    backend: str  # "oxlearn", "sklearn" or PER_K
    config: int  # index into the grid; -1: every config at once (KNN sweep)
    seed: int
    fold: int
    repeat: int
    fn: Callable[[], tuple[list[float], float]]

    @property
    def key(self) -> tuple[str, int, int, int, int]:
        return (self.backend, self.config, self.seed, self.fold, self.repeat)


def _label(param: Param) -> str:
    if isinstance(param, tuple):
        return "(" + ", ".join(str(p) for p in param) + (",)" if len(param) == 1 else ")")
    return f"k={param}"


def _warm_up(
    backends: dict[str, _Backend], kind: str, data: StudyData, threads: int, scale: bool
) -> None:
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
            if kind == "knn":
                if backend.knn_sweep is not None:
                    _knn_sweep(backend.knn_sweep, [1], fold, threads, scale)
                _knn_fit_score(backend.knn_classifier, 1, fold, backend.knn_extra, scale)
            elif kind == "mlp" and backend.mlp_classifier is not None:
                params = {"hidden_layer_sizes": (4,), "max_iter": 2, "random_state": 0}
                _mlp_fit_score(backend.mlp_classifier, {**params, **backend.mlp_extra}, fold, scale)
    finally:
        _LOCAL.sink = None


Outcomes = dict[tuple[str, int, int, int, int], _Outcome]


def _run_tasks(
    tasks: list[_Task],
    executor: Executor | None,
    progress: bool,
    desc: str,
    on_done: Callable[[_Task, Outcomes], None] | None = None,
) -> tuple[Outcomes, bool]:
    """Run the tasks in order (or on the executor).

    Returns the outcomes and whether Ctrl-C stopped the run. A task running when Ctrl-C
    came is not in the outcomes, even if its estimator caught the KeyboardInterrupt and
    returned.
    """
    from tqdm import tqdm

    outcomes: Outcomes = {}
    interrupted = False
    with tqdm(
        total=len(tasks), desc=desc, unit="fit", disable=not progress, leave=False, file=sys.stderr
    ) as bar:
        futures: dict[Future[_Outcome], _Task] = {}
        try:
            if executor is None:
                for task in tasks:
                    _check_interrupt()
                    outcome = _in_task(task.fn)
                    _check_interrupt()  # the fit may have swallowed Ctrl-C: drop it
                    outcomes[task.key] = outcome
                    bar.update(1)
                    if on_done is not None:
                        on_done(task, outcomes)
            else:
                futures = {executor.submit(_in_task, task.fn): task for task in tasks}
                for future in as_completed(futures):
                    _check_interrupt()
                    task = futures[future]
                    outcomes[task.key] = future.result()
                    bar.update(1)
                    if on_done is not None:
                        on_done(task, outcomes)
        except KeyboardInterrupt:
            _INTERRUPTED.set()
            interrupted = True
            for future in futures:
                future.cancel()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return outcomes, interrupted


def _task_configs(task: _Task, n_configs: int) -> range:
    return range(n_configs) if task.config < 0 else range(task.config, task.config + 1)


def _build_config(
    c: int,
    param: Param,
    kind: str,
    grid_size: int,
    backends: dict[str, _Backend],
    seeds: tuple[int, ...],
    n_folds: int,
    repeats: int,
    outcomes: Outcomes,
) -> ConfigResult:
    results: dict[str, BackendResult] = {}
    per_k: list[float] = []
    for name, backend in backends.items():
        sweep = kind == "knn" and backend.knn_sweep is not None
        per_seed: list[tuple[float, ...]] = []
        times: list[float] = []
        not_converged = 0
        first_warning: str | None = None
        for r in range(repeats):
            elapsed = 0.0
            for seed in seeds:
                accs: list[float] = []
                for f in range(n_folds):
                    if sweep:
                        out = outcomes[(name, -1, 0, f, r)]
                        if len(out.accuracies) != grid_size:
                            raise RuntimeError(
                                f"knn_sweep_scores returned {len(out.accuracies)} scores "
                                f"for {grid_size} values of k"
                            )
                        accs.append(out.accuracies[c])
                        elapsed += out.elapsed / grid_size
                    else:
                        out = outcomes[(name, c, seed, f, r)]
                        accs.append(out.accuracies[0])
                        elapsed += out.elapsed
                    if r == 0 and out.warnings and not sweep:
                        not_converged += 1
                        first_warning = first_warning or out.warnings[0]
                if r == 0:
                    per_seed.append(tuple(accs))
            times.append(elapsed)
            if sweep:
                per_k.append(sum(outcomes[(PER_K, c, 0, f, r)].elapsed for f in range(n_folds)))
        results[name] = BackendResult(
            backend=name,
            accuracies=tuple(per_seed),
            time_s=float(np.median(times)),
            n_fits=len(seeds) * n_folds,
            n_not_converged=not_converged,
            warning_message=first_warning,
            times_s=tuple(times),
        )
    x = float(param[0]) if isinstance(param, tuple) else float(param)
    return ConfigResult(_label(param), param, x, results, tuple(per_k))


def _run_section(
    spec: SectionSpec,
    grid: tuple[Param, ...],
    data: StudyData,
    n_folds: int,
    seeds: tuple[int, ...],
    backends: dict[str, _Backend],
    threads: int,
    max_iter: int | None,
    executor: Executor | None,
    progress: bool,
    repeats: int = 1,
    shuffle: int | None = None,
    scale: bool = False,
    on_config: Callable[[SectionResult, ConfigResult, int], None] | None = None,
) -> SectionResult:
    """Run one section.

    Tasks are ordered so that the libraries alternate fold by fold (who goes first
    alternates too), so a change in machine load hits both alike; each configuration's
    repeats run back to back, so Ctrl-C leaves whole configurations.
    """
    folds = _make_folds(data, n_folds, shuffle)
    cv = StudySettings((), {}, 1, (), 1, 1, False, None, shuffle=shuffle, scale=scale).cv_text
    _warm_up(backends, spec.kind, data, threads, scale)
    tasks: list[_Task] = []
    names = list(backends)
    if spec.kind == "knn":
        ks = [int(p) for p in grid if isinstance(p, int)]
        seeds = (0,)
        for r in range(repeats):
            for f, fold in enumerate(folds):
                order = names if (r + f) % 2 == 0 else names[::-1]
                for name in order:
                    backend = backends[name]
                    if backend.knn_sweep is not None:
                        fn = partial(_knn_sweep, backend.knn_sweep, ks, fold, threads, scale)
                        tasks.append(_Task(name, -1, 0, f, r, fn))
                for c, k in enumerate(ks):
                    for name in order:
                        backend = backends[name]
                        fn = partial(
                            _knn_fit_score,
                            backend.knn_classifier,
                            k,
                            fold,
                            backend.knn_extra,
                            scale,
                        )
                        label = PER_K if backend.knn_sweep is not None else name
                        tasks.append(_Task(label, c, 0, f, r, fn))
    else:
        for c, arch in enumerate(grid):
            for r in range(repeats):
                for seed in seeds:
                    for f, fold in enumerate(folds):
                        order = names if (r + f) % 2 == 0 else names[::-1]
                        for name in order:
                            backend = backends[name]
                            params: dict[str, Any] = {
                                "hidden_layer_sizes": arch,
                                "random_state": seed,
                            }
                            if max_iter is not None:
                                params["max_iter"] = max_iter
                            params.update(backend.mlp_extra)
                            fn = partial(
                                _mlp_fit_score, backend.mlp_classifier, params, fold, scale
                            )
                            tasks.append(_Task(name, c, seed, f, r, fn))

    remaining = [0] * len(grid)
    for task in tasks:
        for c in _task_configs(task, len(grid)):
            remaining[c] += 1
    built: dict[int, ConfigResult] = {}

    def section_so_far(complete: bool) -> SectionResult:
        return SectionResult(
            name=spec.name,
            title=spec.title,
            kind=spec.kind,
            folds=n_folds,
            seeds=seeds,
            configs=tuple(built[c] for c in sorted(built)),
            wall_time_s=time.perf_counter() - start,
            max_iter=max_iter if spec.kind == "mlp" else None,
            complete=complete,
            n_planned=len(grid),
            cv=cv,
        )

    def done(task: _Task, outcomes: Outcomes) -> None:
        for c in _task_configs(task, len(grid)):
            remaining[c] -= 1
            if remaining[c] == 0:
                built[c] = _build_config(
                    c, grid[c], spec.kind, len(grid), backends, seeds, n_folds, repeats, outcomes
                )
                if on_config is not None:
                    on_config(section_so_far(False), built[c], c)

    start = time.perf_counter()
    _, interrupted = _run_tasks(tasks, executor, progress, spec.name, done)
    if interrupted:
        return section_so_far(False)

    configs = [built[c] for c in range(len(grid))]
    matches: bool | None = None
    tie_note: str | None = None
    if spec.kind == "knn" and len(backends) == 2:
        matches, tie_note = _check_knn_against_sklearn(
            configs, folds, backends["sklearn"].knn_classifier, threads, scale
        )
    return SectionResult(
        name=spec.name,
        title=spec.title,
        kind=spec.kind,
        folds=n_folds,
        seeds=seeds,
        configs=tuple(configs),
        wall_time_s=time.perf_counter() - start,
        knn_matches_sklearn=matches,
        knn_note=tie_note,
        max_iter=max_iter if spec.kind == "mlp" else None,
        n_planned=len(grid),
        cv=cv,
    )


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - not on Windows
        return None


def _busy(before: list[float] | None, after: list[float] | None, own: int) -> str | None:
    """Why the machine counts as busy, or None.

    Busy: before the run the 1-minute load average was at least half the CPUs, or after
    it, less the study's own threads, it was. The load average counts runnable threads,
    so other work competing for the CPUs shows up in it; the study's own fits add up to
    ``own`` (threads per fit x jobs).
    """
    cpus = available_cpus()
    reasons = []
    if before is not None and before[0] >= 0.5 * cpus:
        reasons.append(f"load average {before[0]:.2f} before the run")
    if after is not None and after[0] - own >= 0.5 * cpus:
        reasons.append(f"{after[0]:.2f} after it (the study's own fits account for ~{own})")
    if not reasons:
        return None
    return (
        f"the machine was busy ({' and '.join(reasons)}, on {cpus} CPUs): other work competed "
        "for the CPUs, so the times and speed-ups are less trustworthy than usual"
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
        "cpu_model": _cpu_model(),
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
    repeats: int = 3,
    shuffle: int | None = None,
    scale: bool = False,
    on_config: Callable[[SectionResult, ConfigResult, int], None] | None = None,
    data_name: str | None = None,
) -> StudyResult:
    """Run the digits study (or the same comparison on your data) on oxlearn and scikit-learn.

    Each configuration is cross-validated with unshuffled ``KFold(n_splits=folds)`` (the
    original protocol; ``shuffle`` and ``scale`` change it) on both backends with the same
    estimator parameters. KNN: scikit-learn fits ``KNeighborsClassifier(n_neighbors=k)``
    once per k and fold, as the original notebook did; oxlearn calls
    :func:`oxlearn.neighbors.knn_sweep_scores` once per fold (one neighbour search with the
    largest k scores every k), and is also timed fitting its own ``KNeighborsClassifier``
    once per k (the like-for-like comparison). MLP: ``MLPClassifier(hidden_layer_sizes=arch,
    random_state=seed)`` with every other parameter at its default (``max_iter`` if given).
    Times are wall times around fit + score only, taken ``repeats`` times with the two
    libraries alternating fold by fold; the median and the spread over repeats are reported.

    Ctrl-C (SIGINT) stops the study even while an estimator that catches KeyboardInterrupt
    (scikit-learn's MLP, and oxlearn's, which mirrors it) is fitting: the cut-short fit is
    dropped and :class:`StudyInterrupted` (a KeyboardInterrupt) is raised, whose ``result``
    holds every configuration that had finished.

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
    repeats : int, default=3
        Timing repeats per configuration (>= 1). Accuracies come from the first repeat;
        times are the median over repeats, and the spread (min..max) is reported.
    shuffle : int or None, default=None
        None: unshuffled ``KFold``, the original protocol. An int: shuffled
        ``StratifiedKFold(shuffle=True, random_state=shuffle)`` (plain shuffled ``KFold``
        where a class has fewer rows than folds). Use it for data sorted by class.
    scale : bool, default=False
        Put a ``StandardScaler`` (fitted per fold, timed) in front of every estimator of
        both libraries.
    on_config : callable or None, default=None
        Called as ``on_config(section_so_far, config, index)`` as each configuration
        finishes (every fold, seed and repeat on every backend).
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
    StudyInterrupted
        (a KeyboardInterrupt) on Ctrl-C; its ``result`` holds the finished configurations.

    Examples
    --------
    >>> from oxlearn.study import run_study
    >>> result = run_study(sections=["knn"], quick=True, backend="sklearn", repeats=1)
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
        repeats=repeats,
        shuffle=shuffle,
        scale=scale,
        on_config=on_config,
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
    repeats: int = 3,
    shuffle: int | None = None,
    scale: bool = False,
    on_config: Callable[[SectionResult, ConfigResult, int], None] | None = None,
    executor: Executor | None = None,
) -> StudyResult:
    """Run the study on already loaded :class:`StudyData` (see :func:`run_study`).

    Parameters
    ----------
    data : StudyData
        The data (e.g. from :func:`oxlearn.study.load_data`).
    sections, folds, seeds, backend, jobs, threads, quick, max_iter, progress, on_section
        As in :func:`run_study`.
    repeats, shuffle, scale, on_config
        As in :func:`run_study`.
    executor : concurrent.futures.Executor or None, default=None
        Where the fits run (for example `oxlearn.dask.study.DaskExecutor`, one Dask task
        per fit), instead of a pool of ``jobs`` threads; the caller shuts it down.

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
    n_repeats = _check_int("repeats", repeats, 1)
    if shuffle is not None:
        shuffle = _check_int("shuffle", shuffle, 0)
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
    gallery_labels: tuple[str, ...] = ()
    if "gallery" in names:
        gallery = data.gallery()
        if gallery is not None:
            gallery_rows, gallery_images, gallery_labels = gallery

    data_warnings = check_data(data, names, folds, shuffle, scale)

    results: list[SectionResult] = []
    interrupted: str | None = None
    pools: list[dict[str, Any]] = []
    load_before = _load_average()
    start = time.perf_counter()
    own_executor = executor is None
    if executor is None and n_jobs > 1:
        executor = ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix=WORKER_THREAD_PREFIX)
    try:
        with (
            _catch_sigint(),
            threadpool_limits(limits=n_threads),
            _oxlearn_threads(n_threads),
            _route_convergence_warnings(),
        ):
            pools = [
                {k: info.get(k) for k in ("user_api", "internal_api", "num_threads", "prefix")}
                for info in threadpool_info()
            ]
            for i, spec in enumerate(computed):
                grid = spec.quick_grid if quick else spec.grid
                try:
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
                        repeats=n_repeats,
                        shuffle=shuffle,
                        scale=scale,
                        on_config=on_config,
                    )
                except KeyboardInterrupt:
                    section = None
                if section is None or not section.complete:
                    if section is not None and section.configs:
                        results.append(section)
                    done = len(section.configs) if section is not None else 0
                    not_run = [s.name for s in computed[i + 1 :]]
                    interrupted = (
                        f"interrupted (Ctrl-C) in section {spec.name} after {done} of "
                        f"{len(grid)} configurations"
                        + (f"; not run: {', '.join(not_run)}" if not_run else "")
                    )
                    break
                results.append(section)
                if on_section is not None:
                    on_section(section)
    except KeyboardInterrupt:  # between sections, or while setting up
        interrupted = interrupted or "interrupted (Ctrl-C)"
    finally:
        if executor is not None and own_executor:
            # after Ctrl-C do not wait here for fits already running in worker threads
            executor.shutdown(wait=interrupted is None, cancel_futures=True)
    wall = time.perf_counter() - start
    load_after = _load_average()

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
        repeats=n_repeats,
        shuffle=shuffle,
        scale=scale,
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
        "environment": {
            name: os.environ.get(name)
            for name in (THREADS_ENV, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        },
    }
    load = {"before": load_before, "after": load_after}
    result = StudyResult(
        settings=settings,
        data_name=data.name,
        n_samples=data.n_samples,
        n_features=data.n_features,
        n_classes=data.n_classes,
        sections=tuple(results),
        gallery_rows=gallery_rows,
        gallery_images=gallery_images,
        gallery_labels=gallery_labels,
        wall_time_s=wall,
        versions=_versions(),
        machine=_machine(),
        threading=threading_info,
        warnings_summary=tuple(summary),
        data_warnings=tuple(data_warnings),
        load=load,
        busy=_busy(load_before, load_after, min(available_cpus(), n_threads * n_jobs)),
        interrupted=interrupted,
    )
    if interrupted is not None:
        raise StudyInterrupted(result)
    return result
