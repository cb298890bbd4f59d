"""Issue 3 section 3's accuracy table: oxlearn vs scikit-learn on load_digits.

For each architecture, default parameters, unshuffled KFold (4 folds; 6 for three-layer
nets), mean cross-validated accuracy for random_state 0, 1, 2, for both libraries. A row
passes when the two means (over seeds) are within 1.0 percentage point, or within two
standard errors of scikit-learn's seed-to-seed spread where that is wider. Prints a
markdown table (and writes it to --out if given). The scikit-learn side dominates the
run time (about two minutes for all 12 rows on an idle 2-core machine)::

    python benches/mlp_accuracy_table.py [--archs 8 16 64,64] [--out table.md]
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
import oxlearn.neural_network as oxn
import sklearn.neural_network as skn
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, cross_val_score

ARCHITECTURES: list[tuple[int, ...]] = [
    (8,),
    (16,),
    (32,),
    (64,),
    (128,),
    (256,),
    (64, 64),
    (128, 128),
    (256, 256),
    (10, 10, 10),
    (64, 64, 64),
    (128, 128, 128),
]
SEEDS = (0, 1, 2)


def seed_means(cls: Any, hidden: tuple[int, ...], X: Any, y: Any) -> tuple[np.ndarray, float]:
    """Mean CV accuracy per seed, and the wall time spent."""
    folds = 6 if len(hidden) == 3 else 4
    means = []
    start = time.perf_counter()
    for seed in SEEDS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            scores = cross_val_score(
                cls(hidden_layer_sizes=hidden, random_state=seed), X, y, cv=KFold(folds)
            )
        means.append(scores.mean())
    return np.array(means), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--archs",
        nargs="*",
        help="architectures as comma-separated sizes (e.g. 64,64); default: all 12",
    )
    parser.add_argument("--out", help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    archs = (
        [tuple(int(v) for v in a.split(",")) for a in args.archs] if args.archs else ARCHITECTURES
    )

    X, y = load_digits(return_X_y=True)
    lines = [
        "| architecture | folds | oxlearn acc. % (seeds 0/1/2) | scikit-learn acc. % (seeds 0/1/2)"
        " | diff pp | allowed pp | pass | fit time ox / sk (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    all_pass = True
    for hidden in archs:
        ours, t_ours = seed_means(oxn.MLPClassifier, hidden, X, y)
        ref, t_ref = seed_means(skn.MLPClassifier, hidden, X, y)
        diff = 100 * (ours.mean() - ref.mean())
        allowed = max(1.0, 100 * 2 * ref.std(ddof=1) / np.sqrt(len(SEEDS)))
        ok = abs(diff) <= allowed
        all_pass &= ok
        line = (
            f"| {hidden} | {6 if len(hidden) == 3 else 4} "
            f"| {100 * ours.mean():.2f} ({' / '.join(f'{100 * v:.2f}' for v in ours)}) "
            f"| {100 * ref.mean():.2f} ({' / '.join(f'{100 * v:.2f}' for v in ref)}) "
            f"| {diff:+.2f} | {allowed:.2f} | {'yes' if ok else 'NO'} "
            f"| {t_ours:.1f} / {t_ref:.1f} |"
        )
        lines.append(line)
        print(line, flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0 if all_pass else 1


if __name__ == "__main__":
    raise SystemExit(main())
