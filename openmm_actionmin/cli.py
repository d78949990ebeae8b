"""The ``actionmin`` command-line tool.

Subcommands:

* ``actionmin demo``: evaluate and locally minimise an LJ13 cluster and a
  peptide, printing energies (the README's main job).
* ``actionmin bench {oracles,synthetic,clusters,proteins} ...``: benchmarks.

User mistakes (missing file, bad residue, bad option) print one line to stderr
and exit with code 2; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import importlib
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
