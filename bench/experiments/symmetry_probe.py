"""How often the symmetry move finds a site on quenched LJ minima, and what the quench makes of it.

Quenches ``--starts`` random starts of LJ``N``, applies :class:`SymmetryMove`
once to each minimum, quenches the moved structures and prints how many
minima it found a site for, the seconds per move and the energy change after
the quench (epsilon).

Usage: python bench/experiments/symmetry_probe.py 38 [--starts 16] [--seed 0]
"""

import argparse
import time

import torch

from openmm_actionmin.search.local import minimize_batch
from openmm_actionmin.search.steps import SymmetryMove
from openmm_actionmin.systems import lj_cluster


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n_atoms", type=int)
    p.add_argument("--starts", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    system = lj_cluster(args.n_atoms)
    gen = torch.Generator().manual_seed(args.seed)
    minima = minimize_batch(system.oracle, system.space.to_config(system.space.sample(args.starts, gen)), fmax=1e-3).x
    before = system.oracle.energy(minima)
    move = SymmetryMove()
    t0 = time.perf_counter()
    moved = [move.propose_one(x, gen) for x in minima]
    per_move = (time.perf_counter() - t0) / args.starts
    found = [i for i, m in enumerate(moved) if m is not None]
    print(f"LJ{args.n_atoms}: a site in {len(found)}/{args.starts} minima, {per_move:.3f} s per move")
    if found:
        after = system.oracle.energy(minimize_batch(system.oracle, torch.stack([moved[i] for i in found]), fmax=1e-3).x)
        print("energy change after the quench:", [round(float(d), 2) for d in after - before[found]])


if __name__ == "__main__":
    main()
