#!/usr/bin/env python
"""Time to the LJ13 global minimum through ASE: our ASE optimizers against ASE's BasinHopping.

Each start is a random 13-atom cluster (uniform in a cube of side 2.4 sigma) with ASE's
``LennardJones(rc=1e3)`` (sigma = epsilon = 1, so energies are the literature's). For
every start, in one process:

* ``BasinHoppingMin(atoms, seed=s, target_energy=E*).run(fmax=1e-3, steps=200)`` with
  its default budget and walkers; the time is the whole ``run`` (global rounds and the
  local polish to ``fmax``);
* ``ase.optimize.basin.BasinHopping`` (FIRE quenches to ``fmax=0.01``, ``kT = 0.3``,
  ``dr = 0.3``: the fastest of the (kT, dr) pairs (0.3, 0.3), (0.5, 0.4), (0.8, 0.5),
  (1.0, 0.2) on three starts), stopped at the first hop whose best minimum is below
  ``E*``, or after ``--ase-limit-s`` seconds.

``E*`` is the global minimum -44.326801 plus the repository's success tolerance 1e-4.

Usage:
    python bench/ase_optimizers.py --starts 10 --json bench/results/ase/lj13_10starts.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date
from typing import Dict, List, Optional

import numpy as np
from ase import Atoms
from ase.calculators.lj import LennardJones
from ase.optimize import FIRE
from ase.optimize.basin import BasinHopping

from openmm_actionmin.ase import BasinHoppingMin

from make_results import git_commit, write_table  # bench/ is the script's folder

LJ13 = -44.326801
TARGET = LJ13 + 1e-4


class _Reached(Exception):
    """Raised by the observer that stops ASE's BasinHopping at the target."""


def random_start(seed: int) -> Atoms:
    """A random LJ13 start with ASE's LennardJones(rc=1e3) attached."""
    rng = np.random.default_rng(seed)
    atoms = Atoms("Ar13", positions=rng.uniform(-1.2, 1.2, (13, 3)))
    atoms.calc = LennardJones(rc=1e3)
    return atoms


def run_ours(seed: int) -> Dict[str, float]:
    """Time of ``BasinHoppingMin(...).run(fmax=1e-3, steps=200)`` and its final energy."""
    atoms = random_start(seed)
    start = time.perf_counter()
    opt = BasinHoppingMin(atoms, seed=seed, target_energy=TARGET, logfile=None)
    opt.run(fmax=1e-3, steps=200)
    return {
        "time_s": time.perf_counter() - start,
        "energy": float(atoms.get_potential_energy()),
        "rounds": opt.rounds_done,
    }


class _StoppedBasinHopping(BasinHopping):
    """ASE's BasinHopping that stops at the target energy or a time limit (checked at every hop)."""

    def __init__(self, *args, limit_s: float, **kwargs) -> None:
        self.limit_s = limit_s
        self.started = time.perf_counter()
        super().__init__(*args, **kwargs)

    def log(self, step, En, Emin) -> None:  # noqa: D102 - called once per hop
        super().log(step, En, Emin)
        if Emin <= TARGET or time.perf_counter() - self.started > self.limit_s:
            raise _Reached


def run_ase(seed: int, limit_s: float) -> Dict[str, float]:
    """Time of ASE's BasinHopping to the first minimum below the target (or ``limit_s``)."""
    atoms = random_start(seed)
    np.random.seed(seed)
    start = time.perf_counter()
    bh = None
    try:
        bh = _StoppedBasinHopping(
            atoms,
            temperature=0.3,
            dr=0.3,
            optimizer=FIRE,
            fmax=0.01,
            logfile=None,
            trajectory=None,
            optimizer_logfile=None,
            local_minima_trajectory=None,
            limit_s=limit_s,
        )
        bh.run(10**9)
    except _Reached:
        pass
    emin = bh.Emin if bh is not None else float(atoms.get_potential_energy())
    return {"time_s": time.perf_counter() - start, "energy": float(emin)}


def main(argv: Optional[List[str]] = None) -> int:
    """Run the comparison and print (or write) the results table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--ase-limit-s", type=float, default=60.0)
    parser.add_argument("--machine", default="2-core CPU shared with other jobs, no GPU")
    parser.add_argument("--json", default=None, help="write the results table here")
    args = parser.parse_args(argv)

    per_seed = []
    for seed in range(args.starts):
        ours = run_ours(seed)
        ase = run_ase(seed, args.ase_limit_s)
        per_seed.append(
            [
                seed,
                round(ours["time_s"], 2),
                round(ours["energy"], 6),
                ours["rounds"],
                round(ase["time_s"], 2),
                round(ase["energy"], 6),
            ]
        )
        print(per_seed[-1], flush=True)

    def summary(time_col: int, energy_col: int) -> List:
        times = [row[time_col] for row in per_seed]
        hits = sum(row[energy_col] <= TARGET for row in per_seed)
        return [f"{hits}/{len(per_seed)}", round(statistics.median(times), 2), round(max(times), 2)]

    ours_row = ["BasinHoppingMin (batched LJ twin), run(fmax=1e-3, steps=200)"] + summary(1, 2)
    ase_row = ["ase.optimize.basin.BasinHopping (FIRE, fmax=0.01, kT=0.3, dr=0.3)"] + summary(4, 5)
    ratio = round(ase_row[2] / ours_row[2], 2)
    command = "python bench/ase_optimizers.py --starts %d" % args.starts
    if args.json:
        command += f" --json {args.json}"
    table = {
        "title": "LJ13 through ASE's LennardJones(rc=1e3): time to the global minimum, 10 random starts",
        "command": command,
        "date": date.today().isoformat(),
        "commit": git_commit(),
        "machine": args.machine,
        "columns": ["optimizer", "reached -44.326801", "median time (s)", "max time (s)"],
        "rows": [ours_row, ase_row, ["median ASE / median ours", None, ratio, None]],
        "notes": (
            "Same random starts, one process, measured while other jobs shared the 2 cores. Our time is the "
            "whole run (global rounds stopped at the target, then the local polish to fmax=1e-3); ASE's "
            "is BasinHopping until its first minimum within 1e-4 of -44.326801."
        ),
        "per_seed": {
            "columns": ["seed", "ours time (s)", "ours energy", "ours rounds", "ASE time (s)", "ASE energy"],
            "rows": per_seed,
        },
    }
    print(json.dumps(table["rows"]))
    if args.json:
        write_table(args.json, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
