#!/usr/bin/env python
"""Offline: how often each saved run's candidate ran away once the trust region had shrunk.

For each history file (``--history-dir`` output of ``actionmin bench synthetic``, or a
``bench/experiments/probe_growth_head.py --save`` file; plain or gzipped) counts, over the rounds after
the trust region's radius first fell below 0.5: the rounds whose candidate lay outside the box,
the rounds whose candidate lay more than 2 x best + 100 from the minimum, and the farthest
candidate. Prints one markdown row per file.

Example::

    python bench/experiments/count_runaways.py HISTORY_DIR/*.json.gz
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from analyse_histories import load  # noqa: E402


def row(path: Path) -> str:
    """One markdown row: file, best distance, rounds and the late runaway counts."""
    history = load(path)["history"]
    late = [r for r in history if r["region_radius"] < 0.5]
    out = sum(1 for r in late if not r["candidate_in_box"])
    far = sum(1 for r in late if r["candidate_distance"] > 2 * r["best_distance"] + 100)
    farthest = max((r["candidate_distance"] for r in late), default=float("nan"))
    return (
        f"| {path.name} | {history[-1]['best_distance']:.1f} | {len(history)} | {out} / {len(late)} "
        f"| {far} | {farthest:.0f} |"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="saved runs (.json or .json.gz)")
    args = p.parse_args()
    print(
        "| run | best distance | rounds | late rounds out of the box | late rounds > 2 x best + 100 | farthest late "
        "candidate |"
    )
    print("|---|---|---|---|---|---|")
    for name in args.files:
        print(row(Path(name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
