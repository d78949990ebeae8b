#!/usr/bin/env python
"""A real protein at equal budget: the default peptide method against OpenMM's LocalEnergyMinimizer.

Each method runs ``am.minimize(pdb, method=..., budget_s=T)`` from the same prepared
input (pdbfixer preparation, AMBER14 + OBC2), in one process; the methods alternate in
order across repeats so load on a shared machine hits them alike. ``openmm`` is
LocalEnergyMinimizer at the user's tolerance (1 kJ/mol/nm), stopped at the budget.

Usage:
    python bench/protein_minimizer.py --pdb systems/pdb/1bhl_integrase_core.pdb --budget-s 60 --repeats 2 \\
        --json bench/results/peptides/1bhl_60s.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date
from pathlib import Path
from typing import List, Optional

import openmm_actionmin as am
from openmm_actionmin.registry import DEFAULTS

from make_results import git_commit, write_table  # bench/ is the script's folder


def main(argv: Optional[List[str]] = None) -> int:
    """Run the comparison and print (or write) the results table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdb", required=True)
    parser.add_argument("--methods", default=f"openmm,{DEFAULTS['peptide']}")
    parser.add_argument("--budget-s", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--machine", default="2-core CPU shared with other jobs, no GPU")
    parser.add_argument("--json", default=None, help="write the results table here")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    runs = {m: [] for m in methods}
    atoms = residues = start = None
    for rep in range(args.repeats):
        for m in methods if rep % 2 == 0 else methods[::-1]:
            t = time.perf_counter()
            r = am.minimize(args.pdb, method=m, budget_s=args.budget_s, seed=rep, progress=False)
            wall = time.perf_counter() - t
            runs[m].append((r.energy, wall))
            start = r.extra.get("start_energy", start)
            atoms = len(r.positions)
            residues = (
                r.extra.get("preparation", {}).get("residues", residues)
                if isinstance(r.extra.get("preparation"), dict)
                else residues
            )
            print(f"{m} repeat {rep}: {r.energy:.1f} kJ/mol in {wall:.1f} s", flush=True)
    ref = statistics.median(e for e, _ in runs["openmm"]) if "openmm" in runs else None
    rows = []
    for m in methods:
        energies = [round(e, 1) for e, _ in runs[m]]
        med = statistics.median(energies)
        rows.append(
            [
                m,
                ", ".join(f"{e:.1f}" for e in energies),
                round(med, 1),
                None if ref is None else round(med - ref, 1),
                round(max(w for _, w in runs[m]), 1),
            ]
        )
    name = Path(args.pdb).name
    command = (
        f"python bench/protein_minimizer.py --pdb {args.pdb} --methods {args.methods} "
        f"--budget-s {args.budget_s:g} --repeats {args.repeats}"
    )
    if args.json:
        command += f" --json {args.json}"
    table = {
        "title": f"{name} ({atoms} atoms prepared): the default against OpenMM's minimiser, {args.budget_s:g} s each",
        "command": command,
        "date": date.today().isoformat(),
        "commit": git_commit(),
        "machine": args.machine,
        "columns": [
            "method",
            "energy per repeat (kJ/mol)",
            "median (kJ/mol)",
            "median - openmm (kJ/mol)",
            "max wall (s)",
        ],
        "rows": rows,
        "notes": (
            f"Start energy of the prepared input {start:.1f} kJ/mol. AMBER14 + OBC2, CPU platform; "
            "every method starts with a full LocalEnergyMinimizer run of the input to the user's tolerance."
        ),
    }
    print(json.dumps(rows))
    if args.json:
        write_table(args.json, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
