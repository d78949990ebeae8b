"""Minimise a PDB from Python: AMBER (amber14-all + OBC2) through OpenMM.

    python examples/minimize_pdb.py [PDB] [--budget-s 60] [--out best.pdb]
"""

import argparse

import openmm_actionmin as am
from openmm_actionmin.proteins import minimize_pdb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdb", nargs="?", default=str(am.data_path("systems", "pdb", "5awl_cln025.pdb")))
    parser.add_argument("--method", default="anneal", help="basin_hopping, hybrid, anneal, openmm, action or random_only")
    parser.add_argument("--budget-s", type=float, default=60.0)
    parser.add_argument("--out", default="best.pdb")
    args = parser.parse_args(argv)

    result = minimize_pdb(args.pdb, method=args.method, budget_s=args.budget_s, seed=0, reference=args.pdb)
    print(f"{args.method}: {result.energy:.1f} kJ/mol, CA RMSD to the input {result.extra['ca_rmsd_A']:.2f} A, "
          f"RMS force {result.extra['final_rms_force']:.2f} kJ/mol/nm, {result.force_calls} force calls")
    for group, energy in result.extra["group_energies"].items():
        print(f"  {group:28s} {energy:12.2f} kJ/mol")
    result.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
