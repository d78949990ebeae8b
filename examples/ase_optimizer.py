"""Use the global optimizer like any ASE optimizer: run(fmax), logfile, trajectory.

python examples/ase_optimizer.py [--global-steps 5]
"""

import argparse

import numpy as np
from ase import Atoms
from ase.calculators.lj import LennardJones

from openmm_actionmin.ase import ActionMin


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--global-steps", type=int, default=5)
    parser.add_argument("--hops-per-step", type=int, default=10)
    parser.add_argument(
        "--action-budget-s", type=float, default=10.0, help="seconds of action training per global round"
    )
    parser.add_argument("--trajectory", default="lj13.traj")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    atoms = Atoms("Ar13", positions=rng.uniform(-1.3, 1.3, (13, 3)))
    atoms.calc = LennardJones(rc=1e3)  # ASE's default rc = 3 shifts energies: use a large cutoff
    opt = ActionMin(
        atoms,
        global_steps=args.global_steps,
        hops_per_step=args.hops_per_step,
        n_walkers=8,
        seed=0,
        action_budget_s=args.action_budget_s,
        trajectory=args.trajectory,
    )
    converged = opt.run(fmax=1e-3, steps=200)
    print(f"converged: {bool(converged)}, energy {atoms.get_potential_energy():.6f} (LJ13 global minimum -44.326801)")


if __name__ == "__main__":
    main()
