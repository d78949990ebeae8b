#!/usr/bin/env python
"""Argon and copper clusters through ASE: our optimizers against ASE's BasinHopping and MinimaHopping.

Each start is a random cluster (uniform in a cube, no pair closer than 0.8 of the
nearest-neighbour distance) with a real-unit ASE calculator:

* ``Ar38``: ``LennardJones(sigma=3.4, epsilon=0.0104, rc=1e3)`` (argon; the LJ38 global
  minimum is -173.928427 epsilon = -1.808856 eV);
* ``Cu13``: ``EMT()``.

For every start, in one process and in this order:

1. ``am.minimize(atoms, budget_s=T, seed=s)`` (the default cluster method);
2. ``BasinHoppingMin(atoms, budget_s=T, seed=s).run(fmax=1e-3)``; its wall time ``W``
   (global rounds and the local polish) is the time the peers get;
3. ``ase.optimize.basin.BasinHopping`` (FIRE quenches) for ``W`` seconds;
4. ``ase.optimize.minimahopping.MinimaHopping`` for ``W`` seconds.

The peers' lowest minimum is polished with LBFGS to ``fmax=1e-4`` (not timed) so all
energies are compared at the same force tolerance. Peer settings, in the structure's
units: BasinHopping ``kT = 0.3 epsilon``, ``dr = 0.3 d_nn`` (the best LJ13 pair in reduced
units, carried over), FIRE ``fmax = 0.01 epsilon / d_nn``; MinimaHopping its defaults,
except ``T0`` and ``Ediff0`` scaled to argon's well depth (``T0 = 1.5 epsilon / k_B``,
``Ediff0 = 2 epsilon``).

Usage:
    python bench/ase_global.py --cluster Ar38 --starts 10 --budget-s 15 --json bench/results/ase/ar38_10starts.json
    python bench/ase_global.py --cluster Cu13 --starts 10 --budget-s 8 --json bench/results/ase/cu13_10starts.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import date
from typing import Dict, List, Optional

import numpy as np
from ase import Atoms, units
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.optimize import FIRE, LBFGS
from ase.optimize.basin import BasinHopping
from ase.optimize.minimahopping import MinimaHopping

import openmm_actionmin as am
from openmm_actionmin.ase import BasinHoppingMin

from make_results import git_commit, write_table  # bench/ is the script's folder

AR_EPSILON, AR_SIGMA = 0.0104, 3.4
CLUSTERS = {
    # name: (symbol, atoms, nearest-neighbour distance A, energy scale eV, known global minimum eV or None)
    "Ar38": ("Ar", 38, 2 ** (1 / 6) * AR_SIGMA, AR_EPSILON, -173.928427 * AR_EPSILON),
    "Cu13": ("Cu", 13, 2.55, 0.1, None),
}


class _TimeUp(Exception):
    """Raised inside a peer when its wall time is spent."""


def make_calculator(name: str):
    """The ASE calculator of a cluster."""
    return LennardJones(sigma=AR_SIGMA, epsilon=AR_EPSILON, rc=1e3) if name == "Ar38" else EMT()


def random_start(name: str, seed: int) -> Atoms:
    """A random start: uniform in a cube, pairs at least 0.8 d_nn apart."""
    symbol, n, d_nn, _, _ = CLUSTERS[name]
    rng = np.random.default_rng(seed)
    side = 1.1 * d_nn * n ** (1 / 3)
    pos: List[np.ndarray] = []
    while len(pos) < n:
        p = rng.uniform(0, side, 3)
        if all(np.linalg.norm(p - q) >= 0.8 * d_nn for q in pos):
            pos.append(p)
    atoms = Atoms(f"{symbol}{n}", positions=np.array(pos))
    atoms.calc = make_calculator(name)
    return atoms


def polished_energy(name: str, positions: np.ndarray) -> float:
    """Energy after an LBFGS polish to fmax = 1e-4 eV/A."""
    atoms = random_start(name, 0)
    atoms.set_positions(positions)
    LBFGS(atoms, logfile=None).run(fmax=1e-4, steps=2000)
    return float(atoms.get_potential_energy())


def run_minimize(name: str, seed: int, budget_s: float) -> Dict[str, float]:
    """``am.minimize(atoms)`` with the default method."""
    atoms = random_start(name, seed)
    t = time.perf_counter()
    result = am.minimize(atoms, budget_s=budget_s, seed=seed, progress=False)
    return {"time_s": time.perf_counter() - t, "energy": float(result.energy), "method": result.method}


def run_optimizer(name: str, seed: int, budget_s: float) -> Dict[str, float]:
    """Our ASE optimizer ``BasinHoppingMin`` with ``budget_s``."""
    atoms = random_start(name, seed)
    t = time.perf_counter()
    BasinHoppingMin(atoms, budget_s=budget_s, seed=seed, logfile=None).run(fmax=1e-3)
    return {"time_s": time.perf_counter() - t, "energy": float(atoms.get_potential_energy())}


class _TimedBasinHopping(BasinHopping):
    def __init__(self, *args, limit_s: float, **kwargs) -> None:
        self.deadline = time.perf_counter() + limit_s
        super().__init__(*args, **kwargs)

    def log(self, step, En, Emin) -> None:  # noqa: D102 - called once per hop
        super().log(step, En, Emin)
        if time.perf_counter() > self.deadline:
            raise _TimeUp


def run_ase_basin(name: str, seed: int, limit_s: float) -> Dict[str, float]:
    """ASE's BasinHopping for ``limit_s`` seconds; its lowest minimum, polished."""
    _, _, d_nn, eps, _ = CLUSTERS[name]
    atoms = random_start(name, seed)
    np.random.seed(seed)
    t = time.perf_counter()
    bh = _TimedBasinHopping(
        atoms,
        temperature=0.3 * eps,
        dr=0.3 * d_nn,
        optimizer=FIRE,
        fmax=0.01 * eps / d_nn,
        logfile=None,
        trajectory=None,
        optimizer_logfile=None,
        local_minima_trajectory=None,
        limit_s=limit_s,
    )
    try:
        bh.run(10**9)
    except _TimeUp:
        pass
    wall = time.perf_counter() - t
    return {"time_s": wall, "energy": polished_energy(name, bh.rmin)}


class _TimedMinimaHopping(MinimaHopping):
    def __init__(self, *args, limit_s: float, **kwargs) -> None:
        self.deadline = time.perf_counter() + limit_s
        self.best = (np.inf, None)
        super().__init__(*args, **kwargs)

    def _optimize(self):
        if time.perf_counter() > self.deadline:
            raise _TimeUp
        super()._optimize()
        e = float(self._atoms.get_potential_energy())
        if e < self.best[0]:
            self.best = (e, self._atoms.get_positions().copy())
        if time.perf_counter() > self.deadline:
            raise _TimeUp

    def _molecular_dynamics(self, resume=None):
        if time.perf_counter() > self.deadline:
            raise _TimeUp
        return super()._molecular_dynamics(resume)


def run_ase_minima(name: str, seed: int, limit_s: float) -> Dict[str, float]:
    """ASE's MinimaHopping for ``limit_s`` seconds (in a scratch folder); its lowest minimum, polished."""
    _, _, _, eps, _ = CLUSTERS[name]
    atoms = random_start(name, seed)
    settings = {"rng": np.random.RandomState(seed)}
    if name == "Ar38":
        settings.update(T0=1.5 * eps / units.kB, Ediff0=2 * eps)
    here = os.getcwd()
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            mh = _TimedMinimaHopping(atoms, limit_s=limit_s, logfile="hop.log", **settings)
            try:
                mh(totalsteps=10**9)
            except _TimeUp:
                pass
        finally:
            os.chdir(here)
    wall = time.perf_counter() - t
    e, x = mh.best
    return {"time_s": wall, "energy": polished_energy(name, x) if x is not None else float("inf")}


def main(argv: Optional[List[str]] = None) -> int:
    """Run the comparison and print (or write) the results table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", choices=sorted(CLUSTERS), required=True)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=15.0)
    parser.add_argument("--machine", default="2-core CPU shared with other jobs, no GPU")
    parser.add_argument("--json", default=None, help="write the results table here")
    args = parser.parse_args(argv)
    name = args.cluster
    runners = [
        ("minimize(atoms)", None),
        ("BasinHoppingMin", None),
        ("ASE BasinHopping", run_ase_basin),
        ("ASE MinimaHopping", run_ase_minima),
    ]
    per_seed = []
    for seed in range(args.starts):
        first = run_minimize(name, seed, args.budget_s)
        ours = run_optimizer(name, seed, args.budget_s)
        limit = ours["time_s"]
        peers = [run(name, seed, limit) for _, run in runners[2:]]
        row = [seed]
        for r in [first, ours] + peers:
            row += [round(r["time_s"], 2), round(r["energy"], 6)]
        per_seed.append(row)
        print(row, flush=True)
    lowest = min(min(row[2::2]) for row in per_seed)
    known = CLUSTERS[name][4]
    best = known if known is not None else lowest
    rows = []
    for k, (label, _) in enumerate(runners):
        times = [row[1 + 2 * k] for row in per_seed]
        energies = [row[2 + 2 * k] for row in per_seed]
        hits = sum(e <= best + 1e-4 for e in energies)
        rows.append(
            [
                label,
                round(statistics.median(energies), 6),
                round(min(energies), 6),
                round(max(energies), 6),
                f"{hits}/{len(per_seed)}",
                round(statistics.median(times), 2),
            ]
        )
    command = f"python bench/ase_global.py --cluster {name} --starts {args.starts} --budget-s {args.budget_s:g}"
    if args.json:
        command += f" --json {args.json}"
    target = f"the global minimum {best:.6f} eV" if known is not None else f"the lowest energy found, {best:.6f} eV"
    table = {
        "title": f"{name} through ASE ({'LennardJones, argon' if name == 'Ar38' else 'EMT'}): final energy at equal "
        f"wall time, {args.starts} random starts",
        "command": command,
        "date": date.today().isoformat(),
        "commit": git_commit(),
        "machine": args.machine,
        "columns": [
            "optimizer",
            "median energy (eV)",
            "lowest (eV)",
            "highest (eV)",
            f"at {target}",
            "median wall (s)",
        ],
        "rows": rows,
        "notes": (
            f"Same random starts, one process. budget_s = {args.budget_s:g} s for ours; ASE's BasinHopping and "
            "MinimaHopping get the wall time BasinHoppingMin used on the same start, and their lowest minimum "
            "is polished with LBFGS to fmax = 1e-4 eV/A (untimed). Peer settings are in the script's docstring."
        ),
        "per_seed": {
            "columns": ["seed"] + [f"{label} {col}" for label, _ in runners for col in ("time (s)", "energy")],
            "rows": per_seed,
        },
    }
    print(json.dumps(rows))
    if args.json:
        write_table(args.json, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
