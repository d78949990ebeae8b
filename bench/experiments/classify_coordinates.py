#!/usr/bin/env python
"""Offline: where the coordinates of each saved run's answer sit, relative to the minimum and the box.

Reads the per-run JSON files that ``actionmin bench synthetic --history-dir DIR`` writes (plain
or gzipped), rebuilds each run's function from its name and sorts the answer's coordinates:

* *central*: within ``--central`` (default 0.2) of the global minimum's coordinate;
* *far*: more than ``--far`` (default 3) away, with their median distance;
* *on the wall*: within ``--wall`` (default 0.01) of the box boundary.

For basin-hopping runs that recorded it, it also prints the step size at the end and the time
of the last improvement of the best energy (a run whose step size has collapsed stops
improving long before its budget ends).

Example::

    python bench/experiments/classify_coordinates.py HISTORY_DIR
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from analyse_histories import history_files, load, system_for  # noqa: E402


def classify(path: Path, central: float = 0.2, far: float = 3.0, wall: float = 0.01) -> str:
    """One line about one saved run's answer.

    Args:
        path: A ``FUNCTION_dDIM_sSEED_METHOD[_noshift].json[.gz]`` file.
        central: Distance below which a coordinate counts as at the minimum.
        far: Distance above which a coordinate counts as far.
        wall: Distance to the boundary below which a coordinate counts as on the wall.

    Returns:
        The report line.
    """
    match, system = system_for(path)
    run = load(path)
    ref = system.reference_positions.reshape(-1).cpu().numpy()
    lower = system.space.lower.reshape(-1).cpu().numpy()
    upper = system.space.upper.reshape(-1).cpu().numpy()
    x = np.asarray(run["positions"], dtype=float).reshape(-1)
    error = np.abs(x - ref)
    on_wall = int(np.sum(np.minimum(x - lower, upper - x) < wall))
    far_mask = error > far
    far_median = float(np.median(error[far_mask])) if far_mask.any() else 0.0
    line = (
        f"{match['function']} D={match['dim']} seed={match['seed']} {match['method']}{match['noshift'] or ''}: "
        f"distance {np.linalg.norm(x - ref):.1f}, energy {run['energy']:.4g}, "
        f"central {int(np.sum(error < central))}, far {int(far_mask.sum())} (median {far_median:.1f}), "
        f"on the wall {on_wall}"
    )
    history = run.get("history") or []
    if history and "stepsize" in history[-1]:
        best = history[-1]["best_energy"]
        last_gain = next(r["wall_s"] for r in history if r["best_energy"] <= best)
        line += (
            f", step size {history[0]['stepsize']:.3g} -> {history[-1]['stepsize']:.3g}, "
            f"last improvement at {last_gain:.0f} s of {history[-1]['wall_s']:.0f} s"
        )
    return line


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="history directories")
    p.add_argument("--central", type=float, default=0.2)
    p.add_argument("--far", type=float, default=3.0)
    p.add_argument("--wall", type=float, default=0.01)
    args = p.parse_args(argv)
    for folder in args.folders:
        for path in history_files(folder):
            print(classify(path, args.central, args.far, args.wall))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
