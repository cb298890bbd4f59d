"""The ``oxlearn`` command line: ``oxlearn study`` (also ``python -m oxlearn study``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import NoReturn

from oxlearn.study._data import StudyInputError, load_data
from oxlearn.study._report import (
    format_config_line,
    format_section,
    format_totals,
    write_outputs,
)
from oxlearn.study._results import ConfigResult, SectionResult, StudyResult
from oxlearn.study._runner import (
    QUICK_MAX_ITER,
    SECTION_NAMES,
    WORKER_THREAD_PREFIX,
    StudyInterrupted,
    available_cpus,
    check_data,
    parse_sections,
    run_study_on,
)

__all__ = ["build_parser", "main"]

DESCRIPTION = """\
Run the handwritten-digits study with oxlearn and scikit-learn side by side: a gallery of
sample digits; KNN accuracy against k (1..9, 4 folds); MLP accuracy against neurons with one
hidden layer ((8,) .. (256,), 4 folds), two ((64, 64) .. (256, 256), 4 folds) and three
((10, 10, 10) .. (128, 128, 128), 6 folds). Cross-validation is unshuffled KFold, unscaled,
as in the original (--shuffle and --scale change that, e.g. for your own --data). Every
configuration is timed --repeats times with the two libraries alternating fold by fold.
Prints a table per section (accuracy ± fold spread, median time and speed-up with its
spread over repeats) and writes PNG plots, results.json and report.md to the output folder.
Without a terminal, one line per finished configuration replaces the progress bar. Ctrl-C
stops the run: the finished configurations are written out, marked as interrupted, and the
exit status is 130."""

EPILOG = """\
examples:
  oxlearn study                          the full study, both backends
  oxlearn study --quick --output /tmp/s  a reduced grid that finishes in seconds
  oxlearn study --sections knn mlp1 --seeds 3 --jobs 2 --threads 1
  oxlearn study --data mine.csv --target label --shuffle --scale --sections knn mlp1"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_at_least(minimum: int) -> type[int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``oxlearn`` command.

    Returns
    -------
    argparse.ArgumentParser
        With the subcommand ``study``.
    """
    return _build_parsers()[0]


def _build_parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = _Parser(
        prog="oxlearn",
        description="oxlearn: scikit-learn-compatible estimators with Rust hot paths.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    study = commands.add_parser(
        "study",
        help="run the digits study with oxlearn and scikit-learn side by side",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    study.add_argument(
        "--sections",
        nargs="+",
        metavar="SECTION",
        help=f"sections to run, space- or comma-separated, among {', '.join(SECTION_NAMES)} "
        "(default: all)",
    )
    study.add_argument(
        "--folds",
        type=_int_at_least(2),
        metavar="N",
        help="KFold splits for every section, >= 2 (default: 4 for knn, mlp1, mlp2; 6 for mlp3)",
    )
    study.add_argument(
        "--seeds",
        type=_int_at_least(1),
        default=1,
        metavar="N",
        help="MLP random_state values 0..N-1; the spread over seeds is shown (default: 1)",
    )
    study.add_argument(
        "--backend",
        choices=["both", "oxlearn", "sklearn"],
        default="both",
        help="library to run (default: both, for the speed-ups)",
    )
    study.add_argument(
        "--jobs",
        type=_int_at_least(1),
        default=1,
        metavar="N",
        help="folds/configurations run at the same time in threads; results do not depend "
        "on it (default: 1)",
    )
    study.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run every fit as a task on the Dask cluster of this scheduler (tcp://host:8786), "
        "or 'local' for a LocalCluster of this machine's cores; needs oxlearn[dask]. "
        "The accuracies are those of a local run",
    )
    study.add_argument(
        "--threads",
        type=_int_at_least(1),
        metavar="N",
        help="native threads per fit for both libraries: oxlearn's n_jobs and a threadpoolctl "
        f"limit on scikit-learn's OpenMP/BLAS pools (default: all {available_cpus()} CPUs)",
    )
    study.add_argument(
        "--max-iter",
        type=_int_at_least(1),
        metavar="N",
        help=f"MLP max_iter (default: scikit-learn's 200; {QUICK_MAX_ITER} with --quick)",
    )
    study.add_argument(
        "--repeats",
        type=_int_at_least(1),
        default=3,
        metavar="N",
        help="time every configuration N times; the median and the spread are reported "
        "(default: 3)",
    )
    study.add_argument(
        "--shuffle",
        type=_int_at_least(0),
        nargs="?",
        const=0,
        metavar="SEED",
        help="shuffled, stratified folds (StratifiedKFold(shuffle=True, random_state=SEED), "
        "SEED default 0) instead of the original unshuffled KFold; needed for data sorted "
        "by class",
    )
    study.add_argument(
        "--scale",
        action="store_true",
        help="a StandardScaler fitted per fold in a Pipeline before every estimator of both "
        "libraries (default: unscaled, as the original)",
    )
    study.add_argument(
        "--quick",
        action="store_true",
        help="reduced grid that finishes in seconds: k in 1..3; (8,), (16,); (8, 8), "
        f"(16, 16); (10, 10, 10); max_iter={QUICK_MAX_ITER}",
    )
    study.add_argument(
        "--data",
        metavar="FILE",
        help="your own data instead of the digits: a .npz with arrays X and y, or a .csv "
        "with a header row (needs --target)",
    )
    study.add_argument(
        "--target",
        metavar="COLUMN",
        help="the label column of a .csv --data file; the other columns are the features",
    )
    study.add_argument(
        "--output",
        default="oxlearn-study",
        metavar="DIR",
        help="folder for the PNGs, results.json and report.md (default: ./oxlearn-study)",
    )
    study.add_argument(
        "--quiet",
        action="store_true",
        help="no progress (bar or per-configuration lines) and no per-section tables; "
        "print only the summary",
    )
    return parser, study


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


@contextlib.contextmanager
def _cluster_executor(args: argparse.Namespace) -> Iterator[Executor | None]:
    """Yield the executor of ``--scheduler`` (None without it), set up for the cluster.

    Each fit then runs as one Dask task with its worker's thread count (``--threads``
    defaults to the smallest worker's); ``--jobs`` becomes the cluster's task threads.
    """
    if args.scheduler is None:
        yield None
        return
    try:
        from oxlearn.dask.study import DaskExecutor, connect
    except ImportError as exc:
        raise StudyInputError(
            f"--scheduler needs Dask ({exc.name} is missing): pip install 'oxlearn[dask]'"
        ) from exc
    with connect(args.scheduler) as client:
        executor = DaskExecutor(client)
        if args.threads is None:
            args.threads = min(client.nthreads().values())
        args.jobs = max(args.jobs, executor.total_threads())
        yield executor


def _missing_dependencies() -> list[str]:
    from importlib.util import find_spec

    return [name for name in ("matplotlib", "tqdm", "pandas") if find_spec(name) is None]


def _study(args: argparse.Namespace) -> int:
    prog = "oxlearn study"
    missing = _missing_dependencies()
    if missing:
        return _fail(
            prog, f"needs {', '.join(missing)}: install with  pip install 'oxlearn[study]'"
        )
    try:
        sections = parse_sections(args.sections)
        data = load_data(args.data, args.target)
    except StudyInputError as exc:
        return _fail(prog, str(exc))
    output = Path(args.output)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _fail(prog, f"cannot create output folder {output}: {exc.strerror or exc}")

    quiet: bool = args.quiet
    progress = not quiet and sys.stderr.isatty()
    lines = not quiet and not progress  # no terminal: one line per finished configuration
    if not quiet:
        print(
            f"oxlearn study: {data.name} ({data.n_samples} samples x {data.n_features} features, "
            f"{data.n_classes} classes); backend {args.backend}; "
            f"{args.threads or available_cpus()} threads per fit; jobs {args.jobs}; "
            f"{args.repeats} timing repeat{'s' if args.repeats != 1 else ''}",
            flush=True,
        )
    for message in check_data(data, sections, args.folds, args.shuffle, args.scale):
        print(f"{prog}: warning: {message}", file=sys.stderr, flush=True)

    def show(section: SectionResult) -> None:
        if not quiet:
            print("\n" + format_section(section), flush=True)

    def show_config(section: SectionResult, config: ConfigResult, index: int) -> None:
        if lines:
            print(format_config_line(section, config, index), file=sys.stderr, flush=True)

    interrupted = False
    try:
        try:
            with _cluster_executor(args) as executor:
                result = run_study_on(
                    data,
                    sections=sections,
                    folds=args.folds,
                    seeds=args.seeds,
                    backend=args.backend,
                    jobs=args.jobs,
                    threads=args.threads,
                    quick=args.quick,
                    max_iter=args.max_iter,
                    progress=progress,
                    on_section=show,
                    repeats=args.repeats,
                    shuffle=args.shuffle,
                    scale=args.scale,
                    on_config=show_config,
                    executor=executor,
                )
        except StudyInterrupted as exc:
            result = exc.result
            interrupted = True
            if not quiet and result.sections and not result.sections[-1].complete:
                show(result.sections[-1])
        written = write_outputs(result, output)
    except (StudyInputError, ConnectionError) as exc:
        return _fail(prog, str(exc))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        return _fail(prog, f"cannot write to {output}: {exc.strerror or exc}")

    if not quiet:
        print()
    print(format_totals(result))
    _print_warnings(prog, result)
    print(f"report: {written['report']} ({len(written) - 2} plots, results.json)")
    if interrupted:
        print(
            f"{prog}: {result.interrupted}; the finished configurations are in {output}",
            file=sys.stderr,
        )
        if any(
            t.name.startswith(WORKER_THREAD_PREFIX) and t.is_alive() for t in threading.enumerate()
        ):
            # --jobs: a fit may still be running in a worker thread, and neither library's
            # fit can be stopped from outside; its result is not wanted, so do not wait for it
            # (the interpreter would join the worker at exit).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    return 0


def _print_warnings(prog: str, result: StudyResult) -> None:
    if result.busy:
        print(f"{prog}: warning: {result.busy}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``oxlearn`` command line.

    Parameters
    ----------
    argv : sequence of str or None, default=None
        Arguments without the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 2 for invalid options or data (reported as one line
        ``oxlearn study: error: ...`` on stderr), 130 when interrupted.
    """
    parser, study = _build_parsers()
    args, extra = parser.parse_known_args(None if argv is None else list(argv))
    if extra:  # report unknown options against the subcommand, as "oxlearn study: error: ..."
        (study if args.command == "study" else parser).error(
            f"unrecognized arguments: {' '.join(extra)}"
        )
    try:
        if args.command == "study":
            return _study(args)
    except SystemExit as exc:  # pragma: no cover - argparse exits are handled by the parser
        return int(exc.code or 0)
    return _fail("oxlearn", f"unknown command {args.command!r}")  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
