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
        Wall time in seconds spent in fit + score, summed over folds and seeds. For the
        oxlearn KNN sweep (one neighbour search per fold serving every k) each fold's
        time is split evenly over the k values, so a section's total is exact.
    n_fits : int
        Number of fits (folds x seeds; for the oxlearn KNN sweep, the number of
        accuracies it produced).
    n_not_converged : int
        Fits that raised a ConvergenceWarning (hit ``max_iter``).
    warning_message : str or None
        The first ConvergenceWarning's text, if any.
    """

    backend: str
    accuracies: tuple[tuple[float, ...], ...]
    time_s: float
    n_fits: int
    n_not_converged: int = 0
    warning_message: str | None = None

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
    """

    label: str
    param: int | tuple[int, ...]
    x: float
    results: dict[str, BackendResult]

    @property
    def speedup(self) -> float | None:
        """Scikit-learn's time divided by oxlearn's, or None unless both ran."""
        return _speedup(self.time("sklearn"), self.time("oxlearn"))

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

    @property
    def backends(self) -> tuple[str, ...]:
        """Backends that ran, in the canonical order."""
        present = {b for cfg in self.configs for b in cfg.results}
        return tuple(b for b in BACKENDS if b in present)

    def total_time(self, backend: str) -> float | None:
        """Sum of configuration times on one backend, or None if it did not run.

        Parameters
        ----------
        backend : str
            ``"oxlearn"`` or ``"sklearn"``.

        Returns
        -------
        float or None
            Seconds.
        """
        if backend not in self.backends:
            return None
        return float(sum(cfg.results[backend].time_s for cfg in self.configs))

    @property
    def speedup(self) -> float | None:
        """Section speed-up (total scikit-learn time / total oxlearn time)."""
        return _speedup(self.total_time("sklearn"), self.total_time("oxlearn"))


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
    """

    sections: tuple[str, ...]
    folds: dict[str, int]
    seeds: int
    backends: tuple[str, ...]
    jobs: int
    threads: int
    quick: bool
    max_iter: int | None


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
    """

    settings: StudySettings
    data_name: str
    n_samples: int
    n_features: int
    n_classes: int
    sections: tuple[SectionResult, ...]
    gallery_rows: tuple[int, ...] = ()
    gallery_images: np.ndarray | None = None
    wall_time_s: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    threading: dict[str, Any] = field(default_factory=dict)
    warnings_summary: tuple[str, ...] = ()

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

    def total_time(self, backend: str) -> float | None:
        """Sum over sections of one backend's time, or None if it did not run.

        Parameters
        ----------
        backend : str
            ``"oxlearn"`` or ``"sklearn"``.

        Returns
        -------
        float or None
            Seconds.
        """
        times = [sec.total_time(backend) for sec in self.sections]
        present = [t for t in times if t is not None]
        return float(sum(present)) if present else None

    @property
    def speedup(self) -> float | None:
        """Whole-study speed-up (total scikit-learn time / total oxlearn time)."""
        return _speedup(self.total_time("sklearn"), self.total_time("oxlearn"))

    def to_frame(self) -> pd.DataFrame:
        """One row per section x configuration x backend.

        Returns
        -------
        pandas.DataFrame
            Columns: section, configuration, param, backend, mean_accuracy,
            std_accuracy, min_accuracy, max_accuracy, n_folds, n_seeds, n_fits, time_s,
            speedup (scikit-learn time / oxlearn time of that configuration, NaN unless
            both backends ran) and n_not_converged.
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
                            "results": {b: r.to_dict() for b, r in cfg.results.items()},
                        }
                        for cfg in sec.configs
                    ],
                    "total_time_s": {b: sec.total_time(b) for b in sec.backends},
                    "speedup": sec.speedup,
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
                "cv": "KFold(n_splits=folds) (unshuffled)",
                "seeds": list(range(s.seeds)),
                "backends": list(s.backends),
                "jobs": s.jobs,
                "threads": s.threads,
                "quick": s.quick,
                "max_iter": s.max_iter,
            },
            "gallery_rows": list(self.gallery_rows),
            "sections": sections,
            "total_time_s": {b: self.total_time(b) for b in s.backends},
            "speedup": self.speedup,
            "wall_time_s": self.wall_time_s,
            "warnings": list(self.warnings_summary),
            "versions": dict(self.versions),
            "threading": self.threading,
            "machine": self.machine,
        }


def _speedup(reference: float | None, ours: float | None) -> float | None:
    if reference is None or ours is None or ours <= 0.0:
        return None
    return reference / ours
