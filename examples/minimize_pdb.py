"""Minimise a PDB from Python: AMBER (amber14-all + OBC2) through OpenMM.

python examples/minimize_pdb.py [PDB] [--budget-s 60] [--out best.pdb]
"""

import argparse

import openmm_actionmin as am
from openmm_actionmin.registry import METHODS_FOR


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdb", nargs="?", default=str(am.data_path("systems", "pdb", "5awl_cln025.pdb")))
    parser.add_argument(
        "--method", default=None, choices=METHODS_FOR["peptide"], help="peptide method (default: the registry's)"
    )
    parser.add_argument("--budget-s", type=float, default=60.0)
    parser.add_argument("--out", default="best.pdb")
    args = parser.parse_args(argv)

    result = am.minimize(args.pdb, args.method, budget_s=args.budget_s, seed=0, reference=args.pdb, out=args.out)
    print(
        f"{result.method}: {result.extra['start_energy']:.1f} -> {result.energy:.1f} kJ/mol, CA RMSD to the input "
        f"{result.extra['ca_rmsd_A']:.2f} A, "
        f"RMS force {result.extra['final_rms_force']:.2f} kJ/mol/nm, {result.force_calls} force calls"
    )
    for group, energy in result.extra["group_energies"].items():
        print(f"  {group:28s} {energy:12.2f} kJ/mol")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
