"""Typed results of a study: one object per backend, configuration, section and study."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BACKENDS",
    "BackendResult",
    "ConfigResult",
    "SectionResult",
    "StudyResult",
    "StudySettings",
]

BACKENDS: tuple[str, ...] = ("oxlearn", "sklearn")

FRAME_COLUMNS: tuple[str, ...] = (
    "section",
    "configuration",
    "param",
    "backend",
    "mean_accuracy",
    "std_accuracy",
    "min_accuracy",
    "max_accuracy",
    "n_folds",
    "n_seeds",
    "n_fits",
    "time_s",
    "speedup",
    "n_not_converged",
    "speedup_min",
    "speedup_max",
    "n_repeats",
)


@dataclass(frozen=True)
class BackendResult:
    """Accuracies and time of one configuration on one backend.

    Attributes
    ----------
    backend : {"oxlearn", "sklearn"}
        The library.
    accuracies : tuple of tuple of float
        Test accuracy per seed (outer) and fold (inner). KNN has one "seed".
    time_s : float
        Wall time in seconds spent in fit + score, summed over folds and seeds: the median
        over the timing repeats (``times_s``). For the oxlearn KNN sweep (one neighbour
        search per fold serving every k) each fold's time is split evenly over the k
        values, so a section's total is exact.
    n_fits : int
        Number of fits (folds x seeds; for the oxlearn KNN sweep, the number of
        accuracies it produced).
    n_not_converged : int
        Fits that raised a ConvergenceWarning (hit ``max_iter``).
    warning_message : str or None
        The first ConvergenceWarning's text, if any.
    times_s : tuple of float
        The time of every timing repeat (each summed over folds and seeds); empty for a
        result built by hand with only ``time_s``. Accuracies are those of the first repeat
        (every repeat fits the same models on the same folds).
    """

    backend: str
    accuracies: tuple[tuple[float, ...], ...]
    time_s: float
    n_fits: int
    n_not_converged: int = 0
    warning_message: str | None = None
    times_s: tuple[float, ...] = ()

    @property
    def repeat_times(self) -> tuple[float, ...]:
        """Per-repeat times (``(time_s,)`` when no repeats were recorded)."""
        return self.times_s or (self.time_s,)

    @property
    def flat(self) -> np.ndarray:
        """All accuracies (seeds x folds) as one float64 array."""
        return np.asarray([a for seed in self.accuracies for a in seed], dtype=np.float64)

    @property
    def mean(self) -> float:
        """Mean accuracy over folds and seeds."""
        return float(self.flat.mean())

    @property
    def std(self) -> float:
        """Spread: standard deviation of the accuracies over folds and seeds."""
        return float(self.flat.std())

    @property
    def seed_std(self) -> float:
        """Standard deviation over seeds of the per-seed mean accuracy (0 with one seed)."""
        means = np.asarray([np.mean(seed) for seed in self.accuracies], dtype=np.float64)
        return float(means.std())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with the per-fold accuracies.

        Returns
        -------
        dict
            Mean, spreads, min, max, per-seed per-fold accuracies, time and warnings.
        """
        flat = self.flat
        return {
            "mean_accuracy": self.mean,
            "std_accuracy": self.std,
            "seed_std_accuracy": self.seed_std,
            "min_accuracy": float(flat.min()),
            "max_accuracy": float(flat.max()),
            "accuracies": [list(seed) for seed in self.accuracies],
            "time_s": self.time_s,
            "times_s": list(self.repeat_times),
            "n_fits": self.n_fits,
            "n_not_converged": self.n_not_converged,
            "convergence_warning": self.warning_message,
        }


@dataclass(frozen=True)
class ConfigResult:
    """One configuration (a k, or a hidden-layer architecture) on every backend run.

    Attributes
    ----------
    label : str
        How the configuration is printed, e.g. ``"k=3"`` or ``"(64, 64)"``.
    param : int or tuple of int
        ``n_neighbors`` or ``hidden_layer_sizes``.
    x : float
        The plotted x value (k, or neurons per hidden layer).
    results : dict of str to BackendResult
        Keyed by backend name.
    oxlearn_per_k_times : tuple of float
        KNN only: per repeat, the time of oxlearn's ``KNeighborsClassifier(n_neighbors=k)``
        fitted and scored once per fold, the like-for-like counterpart of scikit-learn's
        per-k fits (``results["oxlearn"]`` times the one-search-for-every-k sweep).
    """

    label: str
    param: int | tuple[int, ...]
    x: float
    results: dict[str, BackendResult]
    oxlearn_per_k_times: tuple[float, ...] = ()

    @property
    def speedups(self) -> tuple[float, ...]:
        """Per-repeat speed-ups (scikit-learn time / oxlearn time of the same repeat)."""
        if "sklearn" not in self.results or "oxlearn" not in self.results:
            return ()
        return _ratios(self.results["sklearn"].repeat_times, self.results["oxlearn"].repeat_times)

    @property
    def speedup(self) -> float | None:
        """Median over repeats of scikit-learn's time / oxlearn's, or None unless both ran."""
        return _median(self.speedups)

    @property
    def like_for_like_speedups(self) -> tuple[float, ...]:
        """KNN: per-repeat scikit-learn time / oxlearn per-k fit time (empty otherwise)."""
        if "sklearn" not in self.results or not self.oxlearn_per_k_times:
            return ()
        return _ratios(self.results["sklearn"].repeat_times, self.oxlearn_per_k_times)

    def time(self, backend: str) -> float | None:
        """Time on one backend, or None if it did not run.

        Parameters
        ----------
        backend : str
            ``"oxlearn"`` or ``"sklearn"``.

        Returns
        -------
        float or None
            Seconds.
        """
        res = self.results.get(backend)
        return None if res is None else res.time_s


@dataclass(frozen=True)
class SectionResult:
    """A section of the study (KNN, or MLP with 1, 2 or 3 hidden layers).

    Attributes
    ----------
    name : str
        ``"knn"``, ``"mlp1"``, ``"mlp2"`` or ``"mlp3"``.
    title : str
        A human title.
    kind : {"knn", "mlp"}
        The estimator family.
    folds : int
        Number of unshuffled KFold splits.
    seeds : tuple of int
        MLP ``random_state`` values (``(0,)`` for KNN, which has no randomness).
    configs : tuple of ConfigResult
        One per configuration, in grid order.
    wall_time_s : float
        Elapsed time of the whole section (with ``jobs > 1`` less than the sum of times).
    knn_matches_sklearn : bool or None
        KNN with both backends: whether every per-fold accuracy equals scikit-learn's
        (its single-threaded answer where its multi-threaded run broke a distance tie
        differently; see ``knn_note``).
    knn_note : str or None
        Which k values scikit-learn's multi-threaded search decided differently, if any.
    max_iter : int or None
        The MLP ``max_iter`` used (None: the estimator default).
    complete : bool
        False when the study was interrupted in this section: ``configs`` then holds only
        the configurations whose every fit had finished.
    n_planned : int
        Configurations in the section's grid (``len(configs)`` when complete).
    cv : str
        The cross-validation protocol in words.
    """

    name: str
    title: str
    kind: str
    folds: int
    seeds: tuple[int, ...]
    configs: tuple[ConfigResult, ...]
    wall_time_s: float
    knn_matches_sklearn: bool | None = None
    knn_note: str | None = None
    max_iter: int | None = None
    complete: bool = True
    n_planned: int = 0
    cv: str = "unshuffled KFold"

    @property
    def backends(self) -> tuple[str, ...]:
        """Backends that ran, in the canonical order."""
        present = {b for cfg in self.configs for b in cfg.results}
        return tuple(b for b in BACKENDS if b in present)

    def total_times(self, backend: str) -> tuple[float, ...]:
        """Per repeat, the sum of configuration times on one backend (empty if not run).

        Parameters
        ----------
        backend : str
            ``"oxlearn"``, ``"sklearn"`` or ``"oxlearn_per_k"`` (KNN: oxlearn fitted per k).

        Returns
        -------
        tuple of float
            Seconds, one per repeat.
        """
        if backend == "oxlearn_per_k":
            per_config = [cfg.oxlearn_per_k_times for cfg in self.configs]
            if not per_config or not all(per_config):
                return ()
        elif backend in self.backends:
            per_config = [cfg.results[backend].repeat_times for cfg in self.configs]
        else:
            return ()
        return tuple(float(sum(t)) for t in zip(*per_config, strict=True))

    def total_time(self, backend: str) -> float | None:
        """Median over repeats of the section's time on one backend, or None if not run.

        Parameters
        ----------
        backend : str
            ``"oxlearn"``, ``"sklearn"`` or ``"oxlearn_per_k"``.

        Returns
        -------
        float or None
            Seconds.
        """
        return _median(self.total_times(backend))

    @property
    def speedups(self) -> tuple[float, ...]:
        """Per-repeat section speed-ups (total scikit-learn time / total oxlearn time)."""
        return _ratios(self.total_times("sklearn"), self.total_times("oxlearn"))

    @property
    def speedup(self) -> float | None:
        """Median over repeats of the section speed-up, or None unless both backends ran."""
        return _median(self.speedups)

    @property
    def like_for_like_speedups(self) -> tuple[float, ...]:
        """KNN: per-repeat scikit-learn time / oxlearn time, both fitting once per k."""
        return _ratios(self.total_times("sklearn"), self.total_times("oxlearn_per_k"))


@dataclass(frozen=True)
class StudySettings:
    """The options a study ran with.

    Attributes
    ----------
    sections : tuple of str
        Sections run, in order (may include ``"gallery"``).
    folds : dict of str to int
        KFold splits per computed section.
    seeds : int
        MLP seeds 0..seeds-1.
    backends : tuple of str
        Backends run.
    jobs : int
        Folds/configurations run at once in threads.
    threads : int
        Native threads per fit (oxlearn ``n_jobs``, threadpoolctl limit for scikit-learn).
    quick : bool
        Reduced grid.
    max_iter : int or None
        MLP ``max_iter`` (None: scikit-learn's default, 200).
    repeats : int
        Timing repeats per configuration (the median and the spread are reported).
    shuffle : int or None
        None: unshuffled ``KFold`` (the original protocol); else the seed of shuffled
        ``StratifiedKFold`` (``KFold`` where a class has fewer rows than folds).
    scale : bool
        Whether a ``StandardScaler`` fitted per fold precedes every estimator.
    """

    sections: tuple[str, ...]
    folds: dict[str, int]
    seeds: int
    backends: tuple[str, ...]
    jobs: int
    threads: int
    quick: bool
    max_iter: int | None
    repeats: int = 1
    shuffle: int | None = None
    scale: bool = False

    @property
    def cv_text(self) -> str:
        """The cross-validation protocol in words, e.g. ``"unshuffled KFold"``."""
        if self.shuffle is None:
            text = "unshuffled KFold"
        else:
            text = f"shuffled StratifiedKFold (random_state={self.shuffle})"
        return text + (", StandardScaler fitted per fold" if self.scale else "")


@dataclass(frozen=True)
class StudyResult:
    """Everything a study measured; ``to_frame()`` gives one row per configuration x backend.

    Attributes
    ----------
    settings : StudySettings
        The options used.
    data_name : str
        ``"digits"`` or the data file's name.
    n_samples, n_features, n_classes : int
        Shape of the data.
    sections : tuple of SectionResult
        Computed sections (KNN/MLP), in order.
    gallery_rows : tuple of int
        Rows shown in the gallery (empty if it was not drawn).
    gallery_images : ndarray of shape (n_images, side, side) or None
        The gallery's images.
    gallery_labels : tuple of str
        The class of each gallery image.
    wall_time_s : float
        Elapsed time of the whole study.
    versions : dict of str to str
        Library versions.
    machine : dict
        Platform, CPU count and ``oxlearn.build_info()``.
    threading : dict
        Thread settings and threadpoolctl's view of native pools during the run.
    warnings_summary : list of str
        One line per configuration and backend whose fits hit ``max_iter``.
    data_warnings : tuple of str
        Problems with the cross-validation of this data (a test fold holding a class its
        training folds lack, labels sorted by class, features on very different scales),
        each naming the option that fixes it.
    load : dict
        The 1-, 5- and 15-minute load averages ``"before"`` and ``"after"`` the run.
    busy : str or None
        Why the machine counted as busy during the run (the times are then less
        trustworthy), or None.
    interrupted : str or None
        Set when the run was interrupted (Ctrl-C): what was not run. Only configurations
        whose every fit had finished are in ``sections``.
    """

    settings: StudySettings
    data_name: str
    n_samples: int
    n_features: int
    n_classes: int
    sections: tuple[SectionResult, ...]
    gallery_rows: tuple[int, ...] = ()
    gallery_images: np.ndarray | None = None
    gallery_labels: tuple[str, ...] = ()
    wall_time_s: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    threading: dict[str, Any] = field(default_factory=dict)
    warnings_summary: tuple[str, ...] = ()
    data_warnings: tuple[str, ...] = ()
    load: dict[str, Any] = field(default_factory=dict)
    busy: str | None = None
    interrupted: str | None = None

    def section(self, name: str) -> SectionResult:
        """Return the computed section called ``name``.

        Parameters
        ----------
        name : str
            ``"knn"``, ``"mlp1"``, ``"mlp2"`` or ``"mlp3"``.

        Returns
        -------
        SectionResult
            The section.

        Raises
        ------
        KeyError
            If that section was not run.
        """
        for sec in self.sections:
            if sec.name == name:
                return sec
        raise KeyError(name)

    def total_times(self, backend: str) -> tuple[float, ...]:
        """Per repeat, the sum over sections of one backend's time (empty if not run).

        Parameters
        ----------
        backend : str
            ``"oxlearn"`` or ``"sklearn"``.

        Returns
        -------
        tuple of float
            Seconds, one per repeat.
        """
        per_section = [t for sec in self.sections if (t := sec.total_times(backend))]
        if not per_section:
            return ()
        return tuple(float(sum(t)) for t in zip(*per_section, strict=True))

    def total_time(self, backend: str) -> float | None:
        """Median over repeats of the whole study's time on one backend, or None.

        Parameters
        ----------
        backend : str
            ``"oxlearn"`` or ``"sklearn"``.

        Returns
        -------
        float or None
            Seconds.
        """
        return _median(self.total_times(backend))

    @property
    def speedups(self) -> tuple[float, ...]:
        """Per-repeat whole-study speed-ups (total scikit-learn time / total oxlearn time)."""
        return _ratios(self.total_times("sklearn"), self.total_times("oxlearn"))

    @property
    def speedup(self) -> float | None:
        """Median over repeats of the whole-study speed-up."""
        return _median(self.speedups)

    def to_frame(self) -> pd.DataFrame:
        """One row per section x configuration x backend.

        Returns
        -------
        pandas.DataFrame
            Columns: section, configuration, param, backend, mean_accuracy,
            std_accuracy, min_accuracy, max_accuracy, n_folds, n_seeds, n_fits, time_s,
            speedup (median over repeats of scikit-learn time / oxlearn time of that
            configuration, NaN unless both backends ran), n_not_converged, speedup_min and
            speedup_max (over repeats) and n_repeats.
        """
        import pandas as pd

        rows: list[dict[str, Any]] = []
        for sec in self.sections:
            for cfg in sec.configs:
                speedup = cfg.speedup
                for backend in BACKENDS:
                    res = cfg.results.get(backend)
                    if res is None:
                        continue
                    flat = res.flat
                    rows.append(
                        {
                            "section": sec.name,
                            "configuration": cfg.label,
                            "param": cfg.param,
                            "backend": backend,
                            "mean_accuracy": res.mean,
                            "std_accuracy": res.std,
                            "min_accuracy": float(flat.min()),
                            "max_accuracy": float(flat.max()),
                            "n_folds": sec.folds,
                            "n_seeds": len(sec.seeds),
                            "n_fits": res.n_fits,
                            "time_s": res.time_s,
                            "speedup": math.nan if speedup is None else speedup,
                            "n_not_converged": res.n_not_converged,
                            "speedup_min": min(cfg.speedups, default=math.nan),
                            "speedup_max": max(cfg.speedups, default=math.nan),
                            "n_repeats": len(res.repeat_times),
                        }
                    )
        return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of every figure, setting, version and machine detail.

        Returns
        -------
        dict
            The content of ``results.json``.
        """
        sections = []
        for sec in self.sections:
            sections.append(
                {
                    "name": sec.name,
                    "title": sec.title,
                    "kind": sec.kind,
                    "folds": sec.folds,
                    "seeds": list(sec.seeds),
                    "max_iter": sec.max_iter,
                    "backends": list(sec.backends),
                    "configurations": [
                        {
                            "label": cfg.label,
                            "param": list(cfg.param) if isinstance(cfg.param, tuple) else cfg.param,
                            "x": cfg.x,
                            "speedup": cfg.speedup,
                            "speedups": list(cfg.speedups),
                            "results": {b: r.to_dict() for b, r in cfg.results.items()},
                            **(
                                {
                                    "oxlearn_per_k_times_s": list(cfg.oxlearn_per_k_times),
                                    "like_for_like_speedups": list(cfg.like_for_like_speedups),
                                }
                                if cfg.oxlearn_per_k_times
                                else {}
                            ),
                        }
                        for cfg in sec.configs
                    ],
                    "total_time_s": {b: sec.total_time(b) for b in sec.backends},
                    "total_times_s": {b: list(sec.total_times(b)) for b in sec.backends},
                    "speedup": sec.speedup,
                    "speedups": list(sec.speedups),
                    "like_for_like_speedups": list(sec.like_for_like_speedups),
                    "cv": sec.cv,
                    "complete": sec.complete,
                    "n_planned": sec.n_planned,
                    "wall_time_s": sec.wall_time_s,
                    "knn_matches_sklearn": sec.knn_matches_sklearn,
                    "knn_note": sec.knn_note,
                }
            )
        s = self.settings
        return {
            "format": "oxlearn-study/1",
            "data": {
                "name": self.data_name,
                "n_samples": self.n_samples,
                "n_features": self.n_features,
                "n_classes": self.n_classes,
            },
            "settings": {
                "sections": list(s.sections),
                "folds": dict(s.folds),
                "cv": s.cv_text,
                "shuffle_random_state": s.shuffle,
                "scale": s.scale,
                "repeats": s.repeats,
                "seeds": list(range(s.seeds)),
                "backends": list(s.backends),
                "jobs": s.jobs,
                "threads": s.threads,
                "quick": s.quick,
                "max_iter": s.max_iter,
            },
            "gallery_rows": list(self.gallery_rows),
            "gallery_labels": list(self.gallery_labels),
            "sections": sections,
            "total_time_s": {b: self.total_time(b) for b in s.backends},
            "speedup": self.speedup,
            "speedups": list(self.speedups),
            "wall_time_s": self.wall_time_s,
            "interrupted": self.interrupted,
            "warnings": list(self.warnings_summary),
            "data_warnings": list(self.data_warnings),
            "load_average": self.load,
            "busy": self.busy,
            "versions": dict(self.versions),
            "threading": self.threading,
            "machine": self.machine,
        }


def _ratios(reference: tuple[float, ...], ours: tuple[float, ...]) -> tuple[float, ...]:
    if not reference or len(reference) != len(ours) or min(ours) <= 0.0:
        return ()
    return tuple(r / o for r, o in zip(reference, ours, strict=True))


def _median(values: tuple[float, ...]) -> float | None:
    return float(np.median(values)) if values else None
