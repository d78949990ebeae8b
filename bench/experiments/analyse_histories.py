#!/usr/bin/env python
"""Offline: where the error of each saved benchmark run sits, and how its candidate behaved late.

Reads the per-run JSON files that ``actionmin bench synthetic --history-dir DIR`` writes (plain
or gzipped), rebuilds each run's shifted function from its name (the shift depends only on
function, dimension and seed) and prints, per run:

* the distance of the kept point and the median error per coordinate;
* the share of its squared distance in the largest 5 % of coordinates and in the first 32
  (the narrow monotone layer's Cayley map favoured those; see ``docs/decisions.md``);
* the best round against the number of rounds, and the late excursions: rounds in the second
  half whose candidate lay more than 2 x best + 100 from the minimum;
* the closest candidate of any round (selection is by smoothed energy, not distance).

Example::

    python bench/experiments/analyse_histories.py HISTORY_DIR
"""

import argparse
import gzip
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from openmm_actionmin.benchmarks.synthetic import make_system

NAME = re.compile(r"^(?P<function>.+)_d(?P<dim>\d+)_s(?P<seed>\d+)_(?P<method>.+?)(?P<noshift>_noshift)?\.json(\.gz)?$")


def load(path: Path) -> Dict[str, Any]:
    """One saved run (``.json`` or ``.json.gz``)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return json.load(fh)


def error_shares(error: np.ndarray) -> Tuple[float, float, float, float]:
    """Distance, median |error|, and the share of the squared distance in the largest 5 % of
    coordinates and in the first 32, for one point's per-coordinate error [D]."""
    err2 = np.asarray(error, dtype=float).reshape(-1) ** 2
    total = float(err2.sum())
    if total == 0.0:
        return 0.0, 0.0, float("nan"), float("nan")
    top = float(np.sort(err2)[::-1][: max(1, round(0.05 * err2.size))].sum()) / total
    return float(np.sqrt(total)), float(np.median(np.sqrt(err2))), top, float(err2[:32].sum()) / total


def history_files(folder: str) -> List[Path]:
    """The benchmark history files in ``folder``, sorted by name."""
    return sorted(q for q in Path(folder).iterdir() if NAME.match(q.name))


def system_for(path: Path):
    """``(name match, System)`` of one saved run: its function rebuilt from the file name."""
    match = NAME.match(path.name)
    if match is None:
        raise ValueError(f"{path}: not a benchmark history name (FUNCTION_dDIM_sSEED_METHOD[_noshift].json[.gz])")
    system = make_system(match["function"], int(match["dim"]), int(match["seed"]), shifted=match["noshift"] is None)
    return match, system


def summarise(path: Path) -> str:
    """One line about one saved run."""
    match, system = system_for(path)
    function, dim, seed = match["function"], int(match["dim"]), int(match["seed"])
    ref = system.reference_positions.reshape(-1).cpu().numpy()
    run = load(path)
    distance, median, top, first = error_shares(np.asarray(run["positions"], dtype=float).reshape(-1) - ref)
    line = (
        f"{function} D={dim} seed={seed} {match['method']}{match['noshift'] or ''}: distance {distance:.1f}, "
        f"median error {median:.2f}, top 5 % {top:.2f}, first 32 {first:.2f}"
    )
    history = run.get("history") or []
    if history and "candidate_distance" in history[0]:
        late = history[len(history) // 2 :]
        excursions = sum(1 for r in late if r["candidate_distance"] > 2.0 * r["best_distance"] + 100.0)
        closest = min(r["candidate_distance"] for r in history)
        line += (
            f", best round {run['extra'].get('best_round')} of {len(history)}, "
            f"late excursions {excursions} of {len(late)}, closest candidate {closest:.1f}"
        )
    return line


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="a --history-dir folder (or a copy with gzipped files)")
    args = p.parse_args()
    paths = history_files(args.folder)
    if not paths:
        print(f"{args.folder}: no benchmark histories found", file=sys.stderr)
        return 1
    for path in paths:
        print(summarise(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
