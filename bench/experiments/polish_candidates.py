#!/usr/bin/env python
"""Offline: how much of a saved run's remaining distance a local polish on the true energy removes.

Reads the per-run JSON files that ``actionmin bench synthetic --history-dir DIR`` writes (plain
or gzipped), rebuilds each run's function from its name (the shift depends only on function,
dimension and seed) and runs scipy's L-BFGS-B on the true energy, inside the box, from the kept
point (the same local minimiser scipy's basin hopping uses). Per run it prints the distance to
the global minimum and the energy before and after, the force calls the polish took, and how
the polished point's error is spread (median error per coordinate, share of the squared
distance in the largest 5 % of coordinates).

The question it answers: is what separates a method from the minimum a matter of not sitting
at the bottom of the right basin (a polish removes it), or of sitting in the wrong basin in
some coordinates (a polish cannot)?

Example::

    python bench/experiments/polish_candidates.py HISTORY_DIR --methods action,random_only
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import scipy.optimize
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from analyse_histories import NAME, error_shares, history_files, load, system_for  # noqa: E402


def polish(path: Path, max_iter: int = 15000) -> str:
    """One line about polishing the kept point of one saved run.

    Args:
        path: A ``FUNCTION_dDIM_sSEED_METHOD[_noshift].json[.gz]`` file.
        max_iter: L-BFGS-B iteration cap.

    Returns:
        The report line.
    """
    match, system = system_for(path)
    function, dim, seed = match["function"], int(match["dim"]), int(match["seed"])
    oracle = system.oracle
    half = float(system.metadata["half_width"])
    ref = system.reference_positions.reshape(-1).cpu().numpy()
    x0 = np.asarray(load(path)["positions"], dtype=float).reshape(-1)
    calls = 0

    def energy_and_gradient(x: np.ndarray):
        nonlocal calls
        calls += 1
        xt = torch.tensor(x, dtype=torch.float64).reshape(1, -1).requires_grad_(True)
        energy = oracle.energy(xt, transform=None).sum()
        (grad,) = torch.autograd.grad(energy, xt)
        return float(energy.detach()), grad.reshape(-1).numpy().copy()

    e0, _ = energy_and_gradient(x0)
    calls = 0
    res = scipy.optimize.minimize(
        energy_and_gradient,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-half, half)] * dim,
        options={"maxiter": max_iter},
    )
    d0 = float(np.linalg.norm(x0 - ref))
    d1, median, top, _ = error_shares(res.x - ref)
    return (
        f"{function} D={dim} seed={seed} {match['method']}{match['noshift'] or ''}: "
        f"distance {d0:.2f} -> {d1:.2f} ({d1 / d0 if d0 else float('nan'):.2f}x), energy {e0:.4g} -> "
        f"{float(res.fun):.4g}, {calls} force calls; polished: median error {median:.2f}, top 5 % {top:.2f}"
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="a --history-dir folder (or a copy with gzipped files)")
    p.add_argument("--methods", default=None, help="comma-separated methods to polish (default: every file)")
    p.add_argument("--max-iter", type=int, default=15000, help="L-BFGS-B iteration cap")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    wanted = set(args.methods.split(",")) if args.methods else None
    paths = [q for q in history_files(args.folder) if wanted is None or NAME.match(q.name)["method"] in wanted]
    if not paths:
        raise SystemExit(f"{args.folder}: no benchmark history files (FUNCTION_dDIM_sSEED_METHOD.json[.gz]) to polish")
    for path in paths:
        print(polish(path, args.max_iter), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
