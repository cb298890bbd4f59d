"""The study's figures, drawn with matplotlib's object API on the Agg canvas (headless)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from oxlearn.study._results import BACKENDS, SectionResult, StudyResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_files", "write_plots"]

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
    for ax, row, image in zip(axes.ravel(), result.gallery_rows, images, strict=False):
        ax.imshow(image, cmap="gray_r")
        ax.set_title(f"row {row}", fontsize=10)
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
            yerr=spread,
            capsize=4,
            markersize=6,
            markerfacecolor="none" if backend == "sklearn" else style["color"],
            **style,
        )
    seeds = f", {len(sec.seeds)} seeds" if sec.kind == "mlp" and len(sec.seeds) > 1 else ""
    ax.set_title(f"{sec.title} ({sec.folds}-fold CV{seeds}; error bars: spread)")
    ax.set_ylabel("mean accuracy")
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


def _speedups(result: StudyResult) -> Figure:
    labels: list[str] = []
    values: list[float] = []
    for sec in result.sections:
        if sec.speedup is not None:
            labels.append(sec.name)
            values.append(sec.speedup)
    if result.speedup is not None:
        labels.append("whole study")
        values.append(result.speedup)
    fig = _figure(8, 4.5)
    ax = fig.subplots()
    colors = [STYLE[BACKENDS[0]]["color"]] * (len(values) - 1) + ["#444444"]
    bars = ax.bar(labels, values, color=colors)
    ax.bar_label(bars, labels=[f"{v:.2f}x" for v in values], padding=3)
    ax.axhline(1.0, color="black", linewidth=1, linestyle=":")
    ax.set_ylabel("speed-up (scikit-learn time / oxlearn time)")
    ax.set_title(f"oxlearn speed-up over scikit-learn ({result.settings.threads} threads per fit)")
    ax.set_ylim(0, max([*values, 1.0]) * 1.18)
    ax.grid(True, axis="y", alpha=0.3)
    return fig
