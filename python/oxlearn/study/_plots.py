"""The study's figures, drawn with matplotlib's object API on the Agg canvas (headless)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from oxlearn.study._results import BACKENDS, SectionResult, StudyResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["clipped_error_bars", "plot_files", "speedup_bars", "write_plots"]

STYLE: dict[str, dict[str, Any]] = {
    "oxlearn": {"color": "#c2410c", "marker": "o", "linestyle": "-", "label": "oxlearn"},
    "sklearn": {"color": "#1d4ed8", "marker": "s", "linestyle": "--", "label": "scikit-learn"},
}


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_files(result: StudyResult) -> dict[str, str]:
    """File names of the figures :func:`write_plots` draws for ``result``.

    Parameters
    ----------
    result : StudyResult
        A finished study.

    Returns
    -------
    dict of str to str
        Figure key (``"gallery"``, a section name, ``"speedups"``) to PNG file name.
    """
    files: dict[str, str] = {}
    if result.gallery_images is not None:
        files["gallery"] = "gallery.png"
    for sec in result.sections:
        files[sec.name] = (
            "knn_accuracy_vs_k.png" if sec.kind == "knn" else f"{sec.name}_accuracy_vs_neurons.png"
        )
    if result.sections and result.speedup is not None:
        files["speedups"] = "speedups.png"
    return files


def write_plots(result: StudyResult, output: Path) -> dict[str, Path]:
    """Draw every figure of ``result`` as a PNG into ``output``.

    Parameters
    ----------
    result : StudyResult
        A finished study.
    output : Path
        An existing directory.

    Returns
    -------
    dict of str to Path
        Figure key to the written file.
    """
    written: dict[str, Path] = {}
    for key, name in plot_files(result).items():
        path = output / name
        if key == "gallery":
            fig = _gallery(result)
        elif key == "speedups":
            fig = _speedups(result)
        else:
            fig = _accuracy(result.section(key))
        fig.savefig(path, format="png")
        written[key] = path
    return written


def _gallery(result: StudyResult) -> Figure:
    images = result.gallery_images
    assert images is not None
    fig = _figure(8, 4.4)
    axes = fig.subplots(2, 4)
    labels = result.gallery_labels or ("?",) * len(images)
    for ax, row, image, label in zip(
        axes.ravel(), result.gallery_rows, images, labels, strict=False
    ):
        ax.imshow(image, cmap="gray_r")
        ax.set_title(f"class {label} (row {row})", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(images) :]:
        ax.set_axis_off()
    fig.suptitle(f"Sample images ({result.data_name})")
    return fig


def _accuracy(sec: SectionResult) -> Figure:
    fig = _figure(8, 4.5)
    ax = fig.subplots()
    x = np.asarray([cfg.x for cfg in sec.configs])
    # nudge the backends apart so equal accuracies and their error bars stay visible
    nudges = dict(zip(sec.backends, np.linspace(-0.5, 0.5, len(sec.backends)), strict=True))
    for backend in sec.backends:
        xs = x + 0.12 * nudges[backend] if sec.kind == "knn" else x * 2 ** (0.05 * nudges[backend])
        means = np.asarray([cfg.results[backend].mean for cfg in sec.configs])
        spread = np.asarray([cfg.results[backend].std for cfg in sec.configs])
        style = STYLE[backend]
        ax.errorbar(
            xs,
            means,
            yerr=clipped_error_bars(means, spread),
            capsize=4,
            markersize=6,
            markerfacecolor="none" if backend == "sklearn" else style["color"],
            **style,
        )
    seeds = f" and {len(sec.seeds)} seeds" if sec.kind == "mlp" and len(sec.seeds) > 1 else ""
    ax.set_title(f"{sec.title}\n({sec.folds}-fold {sec.cv})", fontsize=11)
    ax.set_ylabel("mean accuracy")
    ax.text(
        0.01,
        0.01,
        f"error bars: ± 1 standard deviation of the accuracy over the {sec.folds} folds"
        f"{seeds}, clipped to [0, 1]",
        transform=ax.transAxes,
        fontsize=8,
        color="#444444",
        va="bottom",
    )
    if sec.kind == "knn":
        ax.set_xlabel("k (n_neighbors)")
        ax.set_xticks(x)
    else:
        ax.set_xlabel("neurons per hidden layer")
        ax.set_xscale("log", base=2)
        ax.set_xticks(x)
        ax.set_xticklabels([cfg.label for cfg in sec.configs])
        ax.minorticks_off()
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def clipped_error_bars(means: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Error bars of ± ``spread`` around ``means``, clipped so they stay within [0, 1].

    Parameters
    ----------
    means, spread : ndarray of shape (n,)
        Mean accuracies and their standard deviations.

    Returns
    -------
    ndarray of shape (2, n)
        Lower and upper bar lengths, as matplotlib's ``errorbar(yerr=...)`` takes them.
    """
    lower = np.minimum(spread, np.clip(means, 0.0, 1.0))
    upper = np.minimum(spread, 1.0 - np.clip(means, 0.0, 1.0))
    return np.vstack([np.maximum(lower, 0.0), np.maximum(upper, 0.0)])


def speedup_bars(result: StudyResult) -> list[tuple[str, tuple[float, ...]]]:
    """List the bars of the speed-up figure: label and per-repeat speed-ups.

    Parameters
    ----------
    result : StudyResult
        A finished study.

    Returns
    -------
    list of (str, tuple of float)
        Per section, then (KNN) the like-for-like bar, then the whole study.
    """
    bars: list[tuple[str, tuple[float, ...]]] = []
    for sec in result.sections:
        if not sec.speedups:
            continue
        if sec.kind == "knn" and sec.like_for_like_speedups:
            bars.append((f"{sec.name}: one search\nfor all k vs\none fit per k", sec.speedups))
            bars.append((f"{sec.name}: one fit per k\n(like-for-like)", sec.like_for_like_speedups))
        else:
            bars.append((sec.name, sec.speedups))
    if result.speedups:
        bars.append(("whole study", result.speedups))
    return bars


def _speedups(result: StudyResult) -> Figure:
    bars_data = speedup_bars(result)
    labels = [label for label, _ in bars_data]
    medians = np.asarray([float(np.median(v)) for _, v in bars_data])
    lows = np.asarray([min(v) for _, v in bars_data])
    highs = np.asarray([max(v) for _, v in bars_data])
    repeats = max((len(v) for _, v in bars_data), default=1)
    fig = _figure(9, 5)
    ax = fig.subplots()
    colors = [
        "#444444"
        if label == "whole study"
        else "#f59e0b"
        if "like-for-like" in label
        else STYLE[BACKENDS[0]]["color"]
        for label in labels
    ]
    yerr = np.vstack([medians - lows, highs - medians]) if repeats > 1 else None
    bars = ax.bar(labels, medians, color=colors, yerr=yerr, capsize=5, ecolor="black")
    texts = [
        f"{m:.2f}x" + (f"\n({lo:.2f}-{hi:.2f})" if repeats > 1 else "")
        for m, lo, hi in zip(medians, lows, highs, strict=True)
    ]
    ax.bar_label(bars, labels=texts, padding=3, fontsize=8)
    ax.axhline(1.0, color="black", linewidth=1, linestyle=":")
    ax.set_ylabel("speed-up (scikit-learn time / oxlearn time)")
    what = (
        f"bar: median of {repeats} repeats; error bar: min-max over the repeats"
        if repeats > 1
        else "one timing pass (no spread)"
    )
    busy = "; MACHINE BUSY, times unreliable" if result.busy else ""
    interrupted = "; INTERRUPTED, finished configurations only" if result.interrupted else ""
    ax.set_title(
        f"oxlearn speed-up over scikit-learn ({result.settings.threads} threads per fit)\n"
        f"{what}{busy}{interrupted}",
        fontsize=10,
    )
    if any(result.section(n).kind == "knn" for n in (s.name for s in result.sections)):
        ax.text(
            0.99,
            0.98,
            "KNN: oxlearn scores every k from one neighbour search per fold\n"
            "while scikit-learn fits once per k; the like-for-like bar fits\n"
            "oxlearn's KNeighborsClassifier once per k too",
            transform=ax.transAxes,
            fontsize=8,
            ha="right",
            va="top",
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#999999"},
        )
    ax.set_ylim(0, max([*highs.tolist(), 1.0]) * 1.35)
    ax.grid(True, axis="y", alpha=0.3)
    return fig
