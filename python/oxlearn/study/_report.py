"""Text output of a study: console tables, ``report.md`` and ``results.json``."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from oxlearn.study._plots import plot_files, write_plots
from oxlearn.study._results import ConfigResult, SectionResult, StudyResult

__all__ = [
    "convergence_line",
    "format_config_line",
    "format_section",
    "format_summary",
    "format_totals",
    "write_outputs",
]

_NAMES = {"oxlearn": "oxlearn", "sklearn": "sklearn"}


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.3f} s"
    return f"{value:.1f} s"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _ratio_spread(values: tuple[float, ...]) -> str:
    """Median speed-up and its spread over repeats, e.g. ``"6.35x (6.10-6.61)"``."""
    if not values:
        return "-"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.2f}x"
    return f"{median:.2f}x ({min(values):.2f}-{max(values):.2f})"


def _time_spread(values: tuple[float, ...]) -> str:
    if len(values) <= 1:
        return ""
    return f" ({_seconds(min(values))[:-2]}-{_seconds(max(values))})"


def _section_rows(sec: SectionResult) -> tuple[list[str], list[list[str]]]:
    backends = sec.backends
    both = len(backends) == 2
    per_k = both and sec.kind == "knn" and all(cfg.oxlearn_per_k_times for cfg in sec.configs)
    header = ["configuration"]
    header += [f"{_NAMES[b]} acc (± spread)" for b in backends]
    header += [f"{_NAMES[b]} time" for b in backends]
    if both:
        header.append("speed-up (range)")
    if per_k:
        header += ["oxlearn per-k fit time", "like-for-like speed-up (range)"]
    rows = []
    for cfg in sec.configs:
        row = [cfg.label]
        row += [f"{cfg.results[b].mean:.4f} ± {cfg.results[b].std:.4f}" for b in backends]
        row += [_seconds(cfg.results[b].time_s) for b in backends]
        if both:
            row.append(_ratio_spread(cfg.speedups))
        if per_k:
            row += [
                _seconds(statistics.median(cfg.oxlearn_per_k_times)),
                _ratio_spread(cfg.like_for_like_speedups),
            ]
        rows.append(row)
    return header, rows


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [cells[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return " | ".join(parts).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _section_heading(sec: SectionResult) -> str:
    seeds = f", seeds 0..{len(sec.seeds) - 1}" if sec.kind == "mlp" and len(sec.seeds) > 1 else ""
    max_iter = f", max_iter={sec.max_iter}" if sec.max_iter is not None else ""
    repeats = _n_repeats(sec)
    timing = f", times: median of {repeats} repeats" if repeats > 1 else ""
    heading = f"{sec.name}: {sec.title} ({sec.folds}-fold {sec.cv}{seeds}{max_iter}{timing})"
    if not sec.complete:
        heading += (
            f" [INTERRUPTED: {len(sec.configs)} of {sec.n_planned or '?'} configurations finished]"
        )
    return heading


def _n_repeats(sec: SectionResult) -> int:
    return max(
        (len(r.repeat_times) for cfg in sec.configs for r in cfg.results.values()), default=1
    )


def format_config_line(sec: SectionResult, cfg: ConfigResult, index: int) -> str:
    """One log line for a finished configuration: accuracy and median time per library.

    Parameters
    ----------
    sec : SectionResult
        The section so far.
    cfg : ConfigResult
        The configuration that just finished.
    index : int
        Its position in the section's grid.

    Returns
    -------
    str
        E.g. ``"mlp1 [1/6] (8,): oxlearn acc 0.8152 in 0.184 s, sklearn acc 0.8052 in
        1.166 s, speed-up 6.35x (6.10-6.61)"``.
    """
    parts = [
        f"{b} acc {cfg.results[b].mean:.4f} in {_seconds(cfg.results[b].time_s)}"
        for b in sec.backends
        if b in cfg.results
    ]
    text = f"{sec.name} [{index + 1}/{sec.n_planned or '?'}] {cfg.label}: " + ", ".join(parts)
    if cfg.speedups:
        text += f", speed-up {_ratio_spread(cfg.speedups)}"
    return text


def format_summary(sec: SectionResult) -> str:
    """One line: a section's total time per backend, speed-up and KNN parity.

    Parameters
    ----------
    sec : SectionResult
        A finished section.

    Returns
    -------
    str
        The summary line.
    """
    parts = [
        f"{b} {_seconds(sec.total_time(b))}{_time_spread(sec.total_times(b))}" for b in sec.backends
    ]
    text = f"{sec.name} total: " + ", ".join(parts)
    if sec.speedup is not None:
        text += f", speed-up {_ratio_spread(sec.speedups)}"
    if sec.like_for_like_speedups:
        text += f"; like-for-like (both fit once per k) {_ratio_spread(sec.like_for_like_speedups)}"
    text += f" (wall {_seconds(sec.wall_time_s)})"
    if sec.knn_matches_sklearn is True:
        text += "; oxlearn's KNN accuracies equal scikit-learn's for every k and fold"
        if sec.knn_note:
            text += f" ({sec.knn_note})"
    elif sec.knn_matches_sklearn is False:
        text += "; WARNING: oxlearn's KNN accuracies differ from scikit-learn's"
    return text


def _warning_lines(sec: SectionResult) -> list[str]:
    return [line for cfg in sec.configs if (line := convergence_line(sec, cfg))]


def convergence_line(sec: SectionResult, cfg: ConfigResult) -> str:
    """Summarise one configuration's ConvergenceWarnings in one line ("" if none).

    Parameters
    ----------
    sec : SectionResult
        The section of ``cfg``.
    cfg : ConfigResult
        A configuration.

    Returns
    -------
    str
        E.g. ``"ConvergenceWarning: (8,): 4 of 4 oxlearn fits and 4 of 4 sklearn fits hit
        max_iter=200"``, or ``""`` when no fit warned.
    """
    counts = [
        f"{res.n_not_converged} of {res.n_fits} {backend} fits"
        for backend, res in cfg.results.items()
        if res.n_not_converged
    ]
    if not counts:
        return ""
    return (
        f"ConvergenceWarning: {cfg.label}: {' and '.join(counts)} "
        f"hit max_iter={sec.max_iter or 200}"
    )


def format_section(sec: SectionResult) -> str:
    """Format the console block of one section: heading, table, warnings, total line.

    Parameters
    ----------
    sec : SectionResult
        A finished section.

    Returns
    -------
    str
        Several lines of text.
    """
    header, rows = _section_rows(sec)
    lines = [_section_heading(sec), _text_table(header, rows)]
    lines += _warning_lines(sec)
    lines.append(format_summary(sec))
    if sec.kind == "knn" and "oxlearn" in sec.backends:
        lines.append(
            "(oxlearn KNN: one knn_sweep_scores call per fold serves every k; "
            "its time is split evenly over k. Like-for-like: oxlearn's KNeighborsClassifier "
            "fitted and scored once per k, as scikit-learn's is)"
        )
    if _n_repeats(sec) > 1:
        lines.append(
            "(times: median over repeats; speed-up: median of the per-repeat ratios, "
            "(min-max) over repeats)"
        )
    return "\n".join(lines)


def format_totals(result: StudyResult) -> str:
    """Format the closing line: the whole study's time per backend and speed-up.

    Parameters
    ----------
    result : StudyResult
        A finished study.

    Returns
    -------
    str
        One line.
    """
    backends = result.settings.backends
    name = (
        "study total (INTERRUPTED: finished configurations only)"
        if result.interrupted
        else ("study total")
    )
    if not result.sections:
        return f"{name}: nothing timed (wall {_seconds(result.wall_time_s)})"
    parts = [
        f"{b} {_seconds(result.total_time(b))}{_time_spread(result.total_times(b))}"
        for b in backends
    ]
    text = f"{name}: " + ", ".join(parts)
    if result.speedup is not None:
        text += f", speed-up {_ratio_spread(result.speedups)}"
    repeats = result.settings.repeats
    return text + (
        f" (wall {_seconds(result.wall_time_s)}, {result.settings.threads} threads per fit"
        + (f", median of {repeats} repeats" if repeats > 1 else "")
        + ")"
    )


def _totals_table(result: StudyResult) -> tuple[list[str], list[list[str]]]:
    backends = result.settings.backends
    header = ["section", *[f"{b} time" for b in backends]]
    both = len(backends) == 2
    if both:
        header.append("speed-up (range)")
    header.append("wall time")
    rows = []
    for sec in result.sections:
        row = [sec.name, *[_seconds(sec.total_time(b)) for b in backends]]
        if both:
            row.append(_ratio_spread(sec.speedups))
        rows.append([*row, _seconds(sec.wall_time_s)])
        if sec.like_for_like_speedups:
            rows.append(
                [
                    f"{sec.name}, like-for-like (oxlearn fitted per k)",
                    _seconds(sec.total_time("oxlearn_per_k")),
                    *([_seconds(sec.total_time("sklearn"))] if both else []),
                    _ratio_spread(sec.like_for_like_speedups),
                    "",
                ]
            )
    row = ["whole study", *[_seconds(result.total_time(b)) for b in backends]]
    if both:
        row.append(_ratio_spread(result.speedups))
    rows.append([*row, _seconds(result.wall_time_s)])
    return header, rows


def _report_markdown(result: StudyResult, files: dict[str, str]) -> str:
    s = result.settings
    v = result.versions
    lines = [f"# oxlearn study: {result.data_name}", ""]
    if result.interrupted:
        lines += [
            f"**This run was interrupted (Ctrl-C): {result.interrupted}.** Only the "
            "configurations whose every fit had finished are reported; the fit that was "
            "running was dropped. The totals cover the finished configurations only.",
            "",
        ]
    lines += [
        f"Data: {result.data_name}, {result.n_samples} samples, {result.n_features} features, "
        f"{result.n_classes} classes. Backends: {', '.join(s.backends)}. Cross-validation: "
        f"{s.cv_text}; folds per section: "
        + ", ".join(f"{k}={n}" for k, n in s.folds.items())
        + (f". MLP seeds: 0..{s.seeds - 1}" if s.seeds > 1 else ". MLP seed (random_state): 0")
        + f". Threads per fit: {s.threads}; jobs: {s.jobs}; timing repeats: {s.repeats}"
        + (" (quick grid)" if s.quick else "")
        + ".",
        "",
        "Accuracies are the mean over folds (and seeds) ± their standard deviation (spread). "
        "Times are wall times around fit + score, summed over folds and seeds, the median over "
        f"{s.repeats} repeat{'s' if s.repeats != 1 else ''} in which the two libraries "
        "alternate fold by fold (so a change in load hits both alike); speed-up = "
        "scikit-learn time / oxlearn time, the median of the per-repeat ratios, with their "
        "range (min-max) over repeats in brackets.",
        "",
    ]
    if result.busy:
        lines += [f"**Warning: {result.busy}.**", ""]
    if result.data_warnings:
        lines += [*(f"- **Warning:** {w}." for w in result.data_warnings), ""]
    if "gallery" in files:
        shown = ", ".join(str(r) for r in result.gallery_rows)
        lines += ["## Sample images", "", f"Rows {shown}.", "", f"![gallery]({files['gallery']})"]
        lines.append("")
    for sec in result.sections:
        header, rows = _section_rows(sec)
        lines += [f"## {sec.title}", "", _section_heading(sec) + ".", ""]
        lines += [f"![{sec.name}]({files[sec.name]})", "", _markdown_table(header, rows), ""]
        warned = _warning_lines(sec)
        if warned:
            lines += [*(f"- {w}" for w in warned), ""]
        lines += [format_summary(sec) + ".", ""]
        if sec.kind == "knn" and "oxlearn" in sec.backends:
            lines += [
                "oxlearn scores every k from one neighbour search per fold "
                "(`oxlearn.neighbors.knn_sweep_scores`), and each fold's time is split evenly "
                "over k; scikit-learn fits one `KNeighborsClassifier(n_neighbors=k)` per k "
                "and fold, as the original notebook did. The like-for-like columns time "
                "oxlearn's `KNeighborsClassifier(n_neighbors=k)` fitted and scored once per k "
                "and fold too.",
                "",
            ]
    if result.sections:
        totals_header, totals_rows = _totals_table(result)
        lines += ["## Totals", ""]
        if "speedups" in files:
            lines += [f"![speed-ups]({files['speedups']})", ""]
        lines += [_markdown_table(totals_header, totals_rows), "", format_totals(result) + ".", ""]
    info = result.machine.get("oxlearn_build_info", {})
    load = result.load
    lines += [
        "## Environment",
        "",
        f"- oxlearn {v.get('oxlearn')}, scikit-learn {v.get('scikit-learn')}, "
        f"numpy {v.get('numpy')}, scipy {v.get('scipy')}, Python {v.get('python')}",
        f"- {result.machine.get('platform')}; CPU: {result.machine.get('cpu_model')}; "
        f"{result.machine.get('available_cpus')} CPUs available of "
        f"{result.machine.get('cpu_count')}",
        f"- load average (1, 5, 15 min): before the run {load.get('before')}, after it "
        f"{load.get('after')}" + (" (busy)" if result.busy else ""),
        f"- threads: {s.threads} native threads per fit for both libraries, {s.jobs} job(s); "
        "environment: "
        + ", ".join(f"{k}={val}" for k, val in result.threading.get("environment", {}).items()),
        f"- oxlearn build: {json.dumps(info, sort_keys=True, default=str)}",
        "- native thread pools during the run: "
        + (
            ", ".join(
                f"{p.get('internal_api')} ({p.get('num_threads')})"
                for p in result.threading.get("threadpools", [])
            )
            or "none reported"
        ),
        "",
        "Every figure is in `results.json`.",
        "",
    ]
    return "\n".join(lines)


def write_outputs(result: StudyResult, output: str | Path) -> dict[str, Path]:
    """Write the PNGs, ``results.json`` and ``report.md`` of a study into a folder.

    Parameters
    ----------
    result : StudyResult
        A finished study.
    output : str or Path
        The folder (created if missing; existing files of the same names are replaced).

    Returns
    -------
    dict of str to Path
        Figure keys, ``"results"`` and ``"report"`` to the written files.
    """
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    written = write_plots(result, folder)
    files = {key: path.name for key, path in written.items()}
    payload: dict[str, Any] = result.to_dict()
    payload["figures"] = files
    results_path = folder / "results.json"
    results_path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    report_path = folder / "report.md"
    report_path.write_text(_report_markdown(result, plot_files(result)))
    return {**written, "results": results_path, "report": report_path}


def _json_default(value: object) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in results.json")
