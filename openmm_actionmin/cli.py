"""The ``actionmin`` command-line tool.

Subcommands:

* ``actionmin demo``: evaluate and locally minimise an LJ13 cluster and a
  peptide, printing energies (the README's main job).
* ``actionmin minimize INPUT``: global search on a PDB, a cluster name
  (``LJ38``) or a function (``alpine1:100``); writes ``--out``.
* ``actionmin cluster N``: the global minimum of the LJ_N cluster.
* ``actionmin compare PDB``: every peptide method side by side, with a plot.
* ``actionmin bench {oracles,synthetic,clusters,proteins} ...``: benchmarks.

User mistakes (missing file, bad residue, bad option) print one line to stderr
and exit with code 2; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable, List, Optional

#: Benchmark name -> module with ``main(argv)``.
BENCHMARKS = {
    "oracles": "openmm_actionmin.benchmarks.oracles",
    "synthetic": "openmm_actionmin.benchmarks.synthetic",
    "clusters": "openmm_actionmin.benchmarks.clusters",
    "proteins": "openmm_actionmin.benchmarks.proteins",
}

#: Exceptions that mean "the user asked for something impossible".
USER_ERRORS = (FileNotFoundError, ValueError, KeyError, PermissionError, IsADirectoryError)


class UserError(Exception):
    """An error caused by the user's input; reported as one line, exit code 2."""


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(seed=args.seed, peptide_pdb=args.pdb)
    return 0


def _report(result, out: Optional[str]) -> None:
    units = result.units
    print(f"{result.system}: {result.method} energy {result.energy:.6f} {units.energy} "
          f"({result.force_calls} force calls, {result.wall_s:.1f} s, seed {result.seed})")
    ref = result.extra.get("target_energy") if isinstance(result.extra, dict) else None
    if ref is not None and ref == ref and abs(ref) != float("inf"):
        print(f"reference global minimum {ref:.6f} {units.energy}: {'reached' if result.extra.get('success') else 'not reached'}")
    if out:
        path = result.save(out)
        print(f"wrote {path}")


def _cmd_minimize(args: argparse.Namespace) -> int:
    from .api import minimize

    target = args.input
    if target.lower().endswith(".pdb") and not os.path.exists(target):
        raise UserError(f"PDB file not found: {target}")
    result = minimize(target, args.method, seed=args.seed, budget_s=args.budget_s, progress=not args.quiet, checkpoint=args.checkpoint,
                      device=args.device)
    _report(result, args.out)
    return 0


def _cmd_cluster(args: argparse.Namespace) -> int:
    from .api import minimize

    if args.n < 2:
        raise UserError(f"a cluster needs at least 2 atoms, got {args.n}")
    result = minimize(f"LJ{args.n}", args.method, seed=args.seed, budget_s=args.budget_s, progress=not args.quiet, device=args.device)
    _report(result, args.out)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .benchmarks.proteins import compare

    if not os.path.exists(args.pdb):
        raise UserError(f"PDB file not found: {args.pdb}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    compare(args.pdb, methods, args.budget_s, args.png, seed=args.seed, reference=args.reference, solvent=args.solvent)
    if args.png:
        print(f"wrote {args.png}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    module = importlib.import_module(BENCHMARKS[args.which])
    result = module.main(args.bench_args)
    return int(result or 0)


def build_parser() -> argparse.ArgumentParser:
    """The ``actionmin`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="actionmin",
        description="Find global minima of energy landscapes: peptides (OpenMM/AMBER), atomic clusters, synthetic functions.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser("demo", help="evaluate and locally minimise LJ13 and a peptide, printing energies")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--pdb", default=None, help="peptide PDB to minimise (default: the shipped CLN025 structure)")
    demo.set_defaults(func=_cmd_demo)

    mini = sub.add_parser(
        "minimize",
        help="global search on a PDB, a cluster name or a function",
        description="Search for the global minimum of INPUT and report the best energy found.",
    )
    mini.add_argument("input", help="a PDB file, a cluster name (LJ38, BLJ100, ION8) or a function NAME:DIM (alpine1:100)")
    mini.add_argument("--method", default=None, help="search method (default: the best one for that kind of input, see README)")
    mini.add_argument("--out", default=None, help="write the best structure here (.pdb, .xyz or .json)")
    mini.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    mini.add_argument("--budget-s", type=float, default=60.0, help="wall-clock budget in seconds (default 60)")
    mini.add_argument("--checkpoint", default=None, help="checkpoint file; an existing one is resumed (methods that support it)")
    mini.add_argument("--quiet", action="store_true", help="no progress bar")
    mini.add_argument("--device", default=None, help="torch device for a cluster or a function (cpu, cuda); PDBs pick their OpenMM platform")
    mini.set_defaults(func=_cmd_minimize)

    cluster = sub.add_parser("cluster", help="global minimum of a Lennard-Jones cluster LJ_N",
                             description="Search for the global minimum of the N-atom Lennard-Jones cluster (reduced units).")
    cluster.add_argument("n", type=int, help="number of atoms")
    cluster.add_argument("--method", default=None, help="basin_hopping_lattice (default: lattice starts + basin hopping), basin_hopping (blind), hybrid, action or scipy_basinhopping")
    cluster.add_argument("--out", default=None, help="write the structure (.xyz, .pdb or .json)")
    cluster.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    cluster.add_argument("--budget-s", type=float, default=60.0, help="wall-clock budget in seconds (default 60)")
    cluster.add_argument("--quiet", action="store_true", help="no progress bar")
    cluster.add_argument("--device", default=None, help="torch device of the LJ oracle (cpu, cuda)")
    cluster.set_defaults(func=_cmd_cluster)

    comp = sub.add_parser("compare", help="compare peptide methods on a PDB side by side",
                          description="Run OpenMM minimisation, annealing, the action pipeline and torsion basin hopping on a PDB; print a table "
                                      "(energy, CA RMSD, wall time, force calls) and plot energy and RMSD against time.")
    comp.add_argument("pdb", help="the PDB file")
    comp.add_argument("--methods", default="openmm,anneal,action,basin_hopping", help="comma-separated methods (default openmm,anneal,action,basin_hopping)")
    comp.add_argument("--budget-s", type=float, default=60.0, help="wall-clock budget per method in seconds (default 60)")
    comp.add_argument("--png", default="compare.png", help="output plot (default compare.png)")
    comp.add_argument("--reference", default=None, help="reference structure for the CA RMSD (default: the input)")
    comp.add_argument("--solvent", default="obc2", choices=["obc2", "obc2-xml", "gbn2", "none"], help="implicit solvent (default obc2)")
    comp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    comp.set_defaults(func=_cmd_compare)

    bench = sub.add_parser(
        "bench",
        help="run a benchmark: oracles, synthetic, clusters or proteins",
        description="Run a benchmark; everything after the benchmark name is passed to it (try 'actionmin bench NAME --help').",
    )
    bench.add_argument("which", choices=sorted(BENCHMARKS), help="which benchmark")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments of that benchmark")
    bench.set_defaults(func=_cmd_bench)
    return parser


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return func(args)
    except UserError as exc:
        print(f"actionmin: error: {exc}", file=sys.stderr)
        return 2
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"actionmin: error: {message}", file=sys.stderr)
        return 2


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``actionmin``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return _run(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
