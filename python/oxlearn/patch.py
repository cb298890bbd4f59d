"""``python -m oxlearn.patch script.py [args]``: run a script with scikit-learn patched.

The script (or ``-m module``) runs unmodified as ``__main__`` after
`oxlearn.patch_sklearn`, so its scikit-learn ``KNeighborsClassifier``,
``KNeighborsRegressor``, ``NearestNeighbors``, ``MLPClassifier`` and ``MLPRegressor`` are
oxlearn's. ``--verbose`` shows the ``oxlearn`` logger's INFO lines (what was replaced, and
which path each fit and query took).
"""

from __future__ import annotations

import argparse
import logging
import runpy
import sys
from collections.abc import Sequence

from oxlearn._patch import patch_sklearn


def main(argv: Sequence[str] | None = None) -> None:
    """Patch scikit-learn, then run the script or module with its own arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m oxlearn.patch",
        description="Run a Python script or module with scikit-learn's neighbour and MLP "
        "estimators replaced by oxlearn's.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("-m", dest="module", help="run a library module as a script")
    parser.add_argument("target", nargs="?", help="the script to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    opts = parser.parse_args(argv)
    if opts.module is None and opts.target is None:
        parser.error("give a script to run, or -m MODULE")
    if opts.verbose:
        logging.basicConfig(format="%(name)s: %(message)s")
        logging.getLogger("oxlearn").setLevel(logging.INFO)
    patch_sklearn()
    if opts.module is not None:
        rest = [opts.target] if opts.target is not None else []
        sys.argv = [opts.module, *rest, *opts.args]
        runpy.run_module(opts.module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = [opts.target, *opts.args]
        runpy.run_path(opts.target, run_name="__main__")


if __name__ == "__main__":
    main()
