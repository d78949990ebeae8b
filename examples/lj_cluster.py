"""Find the global minimum of a Lennard-Jones cluster and check it against the Cambridge Cluster Database.

python examples/lj_cluster.py [N] [--budget-s 60] [--out lj.xyz] [--device cuda]
"""

import argparse

import openmm_actionmin as am
from openmm_actionmin.geometry import fingerprint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=38)
    parser.add_argument("--budget-s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="lj.xyz")
    parser.add_argument("--device", default="cpu", help="torch device of the LJ oracle: cpu or cuda")
    args = parser.parse_args(argv)

    system = am.systems.lj_cluster(args.n, device=args.device)
    result = am.minimize(system, seed=args.seed, budget_s=args.budget_s)
    found = abs(result.energy - system.reference_energy) < 1e-4
    print(
        f"LJ{args.n}: best {result.energy:.6f} epsilon, reference {system.reference_energy:.6f}: "
        f"{'global minimum found' if found else 'not found'} after {result.wall_s:.1f} s and {result.force_calls} "
        "force calls"
    )
    print(f"fingerprint (first 5 sorted pair distances): {fingerprint(result.positions)[:5].round(4).tolist()}")
    result.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
