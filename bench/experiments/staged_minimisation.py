#!/usr/bin/env python
"""Does a cheaper first stage let a protein minimisation end lower at equal wall time?

Prepares a PDB as ``minimize`` does (pdbfixer, AMBER14), builds the same System twice
(vacuum, and with native OBC2), and for each fraction ``f`` runs OpenMM's
``LocalEnergyMinimizer`` in vacuum for ``f`` of the budget, then in OBC2 for the rest;
``f = 0`` is the plain minimiser. Prints the OBC2 energy each ends at. Vacuum
evaluations are about ten times cheaper than OBC2 ones on the CPU platform.

Usage:
    python bench/experiments/staged_minimisation.py --pdb systems/pdb/1bhl_integrase_core.pdb \\
        --budget-s 60 --fractions 0,0.5,0.8,0,0.3
"""

from __future__ import annotations

import argparse
import time

import openmm
import openmm.app as app
import openmm.unit as u

from openmm_actionmin.oracles.openmm import build_native_obc2
from openmm_actionmin.pdbprep import load_forcefield, prepare_pdb


class _Deadline(openmm.MinimizationReporter):
    """Stops the minimiser at a wall-clock deadline and counts its iterations."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline
        self.iterations = 0

    def report(self, iteration, x, grad, args):  # noqa: D102 (OpenMM's signature)
        self.iterations += 1
        return time.perf_counter() > self.deadline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdb", required=True)
    parser.add_argument("--budget-s", type=float, default=60.0)
    parser.add_argument("--fractions", default="0,0.5,0.8,0,0.3", help="vacuum shares of the budget, in run order")
    args = parser.parse_args()
    prepared = prepare_pdb(args.pdb)
    forcefield = load_forcefield("amber14-all.xml")
    x0 = prepared.positions.numpy()

    def context(obc2: bool):
        system = forcefield.createSystem(prepared.topology, nonbondedMethod=app.NoCutoff, constraints=None)
        if obc2:
            build_native_obc2(system, prepared.topology)
        return openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))

    def minimise(ctx, x, seconds: float):
        ctx.setPositions(x)
        reporter = _Deadline(time.perf_counter() + seconds)
        openmm.LocalEnergyMinimizer.minimize(ctx, 1.0, 0, reporter)
        return ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(
            u.nanometer
        ), reporter.iterations

    def energy(ctx, x) -> float:
        ctx.setPositions(x)
        return ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)

    vacuum, obc2 = context(False), context(True)
    print(f"{prepared.n_atoms} atoms; OBC2 start energy {energy(obc2, x0):.1f} kJ/mol")
    for fraction in (float(f) for f in args.fractions.split(",")):
        t0 = time.perf_counter()
        x, n_vac = minimise(vacuum, x0, fraction * args.budget_s) if fraction > 0 else (x0, 0)
        x, n_obc = minimise(obc2, x, args.budget_s - (time.perf_counter() - t0))
        print(
            f"vacuum share {fraction:.2f}: OBC2 energy {energy(obc2, x):.1f} kJ/mol, iterations vacuum {n_vac} "
            f"OBC2 {n_obc}, wall {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
