"""``python -m oxlearn``: the same command line as the ``oxlearn`` console script."""

import sys

from oxlearn.study.cli import main

if __name__ == "__main__":
    sys.exit(main())
