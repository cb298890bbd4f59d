"""``python -m oxlearn.patch script.py [args]``: run a script with scikit-learn patched.

The script (or ``-m module``) runs unmodified as ``__main__`` after
`oxlearn.patch_sklearn`, so its scikit-learn ``KNeighborsClassifier``,
``KNeighborsRegressor``, ``NearestNeighbors``, ``MLPClassifier`` and ``MLPRegressor`` are
oxlearn's. ``--verbose`` shows the ``oxlearn`` logger's INFO lines (what was replaced, and
which path each fit and query took).

The run is that of ``python script.py`` (``python -m module``): the same ``sys.argv``,
``sys.path[0]``, ``__file__``, error messages and exit codes, and tracebacks without this
runner's frames. Our options stand before the script or ``-m MODULE``; everything after
belongs to it.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import runpy
import sys
import types
import zipfile
from collections.abc import Callable, Sequence

from oxlearn._patch import patch_sklearn


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """Our options up to the target (a script path, or ``-m MODULE``), and its own arguments."""
    for i, arg in enumerate(argv):
        if arg in ("-m", "--"):
            return argv[: i + 2], argv[i + 2 :]
        if not arg.startswith("-") or arg.startswith("-m"):
            return argv[: i + 1], argv[i + 1 :]
    return argv, []


def _run_script(target: str) -> None:
    # As CPython: __file__ is the path joined to the working directory (not normalised),
    # sys.path[0] the directory of the resolved script, sys.argv[0] the path as typed.
    path = os.path.join(os.getcwd(), target)
    # sys.path[0] is the runner's (the working directory), which `python script.py` does not
    # have; under -P (safe_path) there is none, and `main` called from other code leaves
    # that code's path alone.
    if not sys.flags.safe_path and sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    if os.path.isdir(path) or zipfile.is_zipfile(path):
        # A directory or zip archive with a __main__.py: runpy puts it on sys.path.
        runpy.run_path(path, run_name="__main__")
        return
    try:
        with io.open_code(path) as file:
            source = file.read()
    except OSError as exc:
        program = sys.orig_argv[0] if sys.orig_argv else "python"
        message = f"can't open file {path!r}: [Errno {exc.errno}] {exc.strerror}"
        print(f"{program}: {message}", file=sys.stderr)
        sys.exit(2)
    if not sys.flags.safe_path:
        sys.path.insert(0, os.path.dirname(os.path.realpath(path)))
    main = types.ModuleType("__main__")
    main.__file__ = path
    sys.modules["__main__"] = main
    exec(compile(source, path, "exec"), vars(main))


def _run(run: Callable[[], object]) -> None:
    """Run the target; report its uncaught exception as Python would, minus our frames."""
    try:
        run()
    except Exception as exc:
        ours = (globals(), vars(runpy))
        tb = exc.__traceback__
        while tb is not None and any(tb.tb_frame.f_globals is g for g in ours):
            tb = tb.tb_next
        if tb is None and isinstance(exc, ImportError):
            # runpy found no module to run: `python -m` prints this one line.
            sys.exit(f"{sys.executable}: {exc}")
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        sys.exit(1)


def main(argv: Sequence[str] | None = None) -> None:
    """Patch scikit-learn, then run the script or module with its own arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m oxlearn.patch",
        description="Run a Python script or module with scikit-learn's neighbour and MLP "
        "estimators replaced by oxlearn's. Options go before the script or -m MODULE; "
        "what follows is the script's or module's.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("-m", dest="module", help="run a library module as a script")
    parser.add_argument("target", nargs="?", help="the script to run")
    # For the usage line only: _split hands the target's arguments over untouched.
    parser.add_argument("args", nargs="*", help="the script's or module's own arguments")
    ours, args = _split(list(sys.argv[1:] if argv is None else argv))
    opts = parser.parse_args(ours)
    if opts.module is None and opts.target is None:
        parser.error("give a script to run, or -m MODULE")
    if opts.verbose:
        logging.basicConfig(format="%(name)s: %(message)s")
        logging.getLogger("oxlearn").setLevel(logging.INFO)
    patch_sklearn()
    if opts.module is not None:
        # The working directory is already sys.path[0], as `python -m` has it.
        sys.argv = [opts.module, *args]
        _run(lambda: runpy.run_module(opts.module, run_name="__main__", alter_sys=True))
    else:
        sys.argv = [opts.target, *args]
        _run(lambda: _run_script(opts.target))


if __name__ == "__main__":
    main()
