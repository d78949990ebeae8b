"""Compare against OpenMM's own minimiser on a PDB: a table and a plot of energy and RMSD against time.

python examples/compare_openmm.py [PDB] [--budget-s 60] [--png compare.png]
"""

import argparse

import openmm_actionmin as am
from openmm_actionmin.benchmarks.proteins import compare


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdb", nargs="?", default=str(am.data_path("systems", "pdb", "5awl_cln025.pdb")))
    parser.add_argument("--methods", default="openmm,anneal,basin_hopping")
    parser.add_argument("--budget-s", type=float, default=60.0)
    parser.add_argument("--png", default="compare.png")
    args = parser.parse_args(argv)
    compare(args.pdb, args.methods.split(","), args.budget_s, args.png)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
