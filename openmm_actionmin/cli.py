"""The ``actionmin`` command-line tool.

Subcommands (each ``--help`` ends with an example that runs as written):

* ``actionmin demo``: evaluate and locally minimise an LJ13 cluster and a
  peptide, printing energies.
* ``actionmin minimize INPUT``: global search on a PDB, a cluster name
  (``LJ38``) or a function (``alpine1:100``); writes ``--out``.
* ``actionmin cluster N``: the global minimum of the LJ_N cluster.
* ``actionmin compare PDB``: peptide methods side by side, with a plot.
* ``actionmin methods``: the registered methods and the targets they accept.
* ``actionmin bench {oracles,synthetic,clusters,proteins,many} ...``: benchmarks; ``many`` runs
  targets x methods x seeds on a serial, process-pool or Dask executor.

User mistakes (a missing file, a bad option, an output that cannot be
written) print one line to stderr and exit with code 2; tracebacks are for
bugs only. A finished result that could not be written where asked goes to a
fallback file, named in the error (exit code 1).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import Callable, List, Optional

from .api import XYZ_POTENTIALS
from .registry import DEFAULTS, METHOD_NAMES, METHODS_FOR, check_budget, check_positive, check_seed, describe

#: Benchmark name -> module with ``main(argv)``.
BENCHMARKS = {
    "oracles": "openmm_actionmin.benchmarks.oracles",
    "synthetic": "openmm_actionmin.benchmarks.synthetic",
    "clusters": "openmm_actionmin.benchmarks.clusters",
    "proteins": "openmm_actionmin.benchmarks.proteins",
    "many": "openmm_actionmin.benchmarks.many",
    "reparam": "openmm_actionmin.benchmarks.reparam",
}

#: The example at the end of each subcommand's help (tests run every one).
EXAMPLES = {
    "demo": "actionmin demo",
    "minimize": "actionmin minimize LJ13 --budget-s 5 --out lj13.xyz",
    "cluster": "actionmin cluster 13 --budget-s 5 --out lj13.xyz",
    "compare": "actionmin compare systems/pdb/5awl_cln025.pdb --methods openmm,basin_hopping --budget-s 5 --png "
    "compare.png",
    "methods": "actionmin methods",
    "bench": "actionmin bench clusters --systems LJ13 --methods basin_hopping_lattice --seeds 1 --budget-s 2",
}


class UserError(Exception):
    """An error caused by the user's input; reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``prog: error: ...``), exit code 2."""

    def error(self, message: str) -> None:  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _example(name: str) -> str:
    return f"example:\n  {EXAMPLES[name]}"


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(seed=check_seed(args.seed, "--seed"), peptide_pdb=args.pdb)
    return 0


def _report(result) -> None:
    units = result.units
    extra = result.extra if isinstance(result.extra, dict) else {}
    start = extra.get("start_energy")
    if start is not None:
        print(f"start energy {start:.3f} {units.energy} (prepared input)")
    print(
        f"{result.system}: {result.method} energy {result.energy:.6f} {units.energy} "
        f"({result.force_calls} force calls, {result.wall_s:.1f} s, seed {result.seed})"
    )
    if start is not None:
        print(f"change {result.energy - start:+.3f} {units.energy}")
    ref = extra.get("target_energy")
    if ref is not None and ref == ref and abs(ref) != float("inf"):
        print(
            f"reference global minimum {ref:.6f} {units.energy}: {'reached' if extra.get('success') else 'not reached'}"
        )


def _common_checks(args: argparse.Namespace) -> None:
    args.seed = check_seed(args.seed, "--seed")
    args.budget_s = check_budget(args.budget_s, "--budget-s")
    args.checkpoint_interval_s = check_positive(args.checkpoint_interval_s, "--checkpoint-interval-s")
    if args.out:
        from .output import check_output_path

        check_output_path(args.out, option="--out")


def _run_minimize(target: str, args: argparse.Namespace, **kwargs) -> int:
    from .api import minimize

    result = minimize(
        target,
        args.method,
        seed=args.seed,
        budget_s=args.budget_s,
        progress=not args.quiet,
        checkpoint=args.checkpoint,
        checkpoint_interval_s=args.checkpoint_interval_s,
        out=args.out,
        device=args.device,
        **kwargs,
    )
    _report(result)
    if args.out:
        print(f"wrote {args.out}")
    return 0


def _cmd_minimize(args: argparse.Namespace) -> int:
    _common_checks(args)
    target = args.input
    if target.lower().endswith(".pdb"):
        if not os.path.exists(target):
            raise UserError(f"PDB file not found: {target}")
        import logging

        prep_log = logging.getLogger("openmm_actionmin.pdbprep")  # the preparation's changes, printed before the search
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("preparation: %(message)s"))
        prep_log.addHandler(handler)
        prep_log.setLevel(logging.INFO)
        forcefield = args.forcefield
        if (args.keep_water or args.keep_heterogens) and forcefield == "amber14-all.xml":
            forcefield = [forcefield, "amber14/tip3p.xml"]  # AMBER's water and ion templates
        try:
            return _run_minimize(
                target,
                args,
                forcefield=forcefield,
                solvent=args.solvent,
                keep_water=args.keep_water,
                keep_heterogens=args.keep_heterogens,
            )
        finally:
            prep_log.removeHandler(handler)
    if target.lower().endswith(".xyz"):
        if args.potential is None:
            raise UserError(f"{target}: an XYZ cluster needs --potential ({', '.join(XYZ_POTENTIALS)})")
        return _run_minimize(target, args, potential=args.potential)
    if args.potential is not None:
        raise UserError("--potential applies to .xyz files only")
    return _run_minimize(target, args)


def _cmd_cluster(args: argparse.Namespace) -> int:
    if args.n < 2:
        raise UserError(f"a cluster needs at least 2 atoms, got {args.n}")
    _common_checks(args)
    return _run_minimize(f"LJ{args.n}", args)


def _cmd_compare(args: argparse.Namespace) -> int:
    from .benchmarks.proteins import compare

    if not os.path.exists(args.pdb):
        raise UserError(f"PDB file not found: {args.pdb}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS_FOR["peptide"]]
    if bad:
        raise UserError(
            f"--methods: {bad[0]!r} is not a peptide method; choose from {', '.join(METHODS_FOR['peptide'])}"
        )
    budget = check_budget(args.budget_s, "--budget-s")
    seed = check_seed(args.seed, "--seed")
    if args.png:
        if not args.png.lower().endswith(".png"):
            raise UserError(f"--png {args.png}: give a file name ending in .png")
        folder = os.path.dirname(args.png) or "."
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise UserError(f"--png {args.png}: folder {folder} does not exist or is not writable")
    compare(args.pdb, methods, budget, args.png, seed=seed, reference=args.reference, solvent=args.solvent)
    if args.png:
        print(f"wrote {args.png}")
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    print(describe())
    print("defaults: " + ", ".join(f"{kind} -> {name}" for kind, name in DEFAULTS.items()))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    module = importlib.import_module(BENCHMARKS[args.which])
    result = module.main(args.bench_args)
    return result if isinstance(result, int) else 0


def _search_options(parser: argparse.ArgumentParser, kinds: str) -> None:
    """Options shared by the search subcommands."""
    parser.add_argument(
        "--method",
        default=None,
        choices=METHOD_NAMES,
        metavar="METHOD",
        help=f"search method, one of: {', '.join(METHOD_NAMES)} (default per target: "
        f"{', '.join(f'{k} {v}' for k, v in DEFAULTS.items() if k in kinds)}; "
        "'actionmin methods' says which targets each accepts)",
    )
    parser.add_argument(
        "--out", default=None, help="write the best structure here (.pdb, .xyz or .json); checked before the search"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed, 0 to 4294967295 (default 0)")
    parser.add_argument(
        "--budget-s", type=float, default=60.0, help="wall-clock budget in seconds, preparation included (default 60)"
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint file; an existing file of the same run is resumed, one of another run is refused",
    )
    parser.add_argument(
        "--checkpoint-interval-s", type=float, default=60.0, help="seconds between checkpoint writes (default 60)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The ``actionmin`` argument parser with every subcommand."""
    parser = _Parser(
        prog="actionmin",
        description="Find global minima of energy landscapes: peptides (OpenMM/AMBER), atomic clusters, synthetic "
        "functions.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    raw = argparse.RawDescriptionHelpFormatter

    demo = sub.add_parser(
        "demo",
        help="evaluate and locally minimise LJ13 and a peptide, printing energies",
        epilog=_example("demo"),
        formatter_class=raw,
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--pdb", default=None, help="peptide PDB to minimise (default: the shipped CLN025 structure)")
    demo.set_defaults(func=_cmd_demo)

    mini = sub.add_parser(
        "minimize",
        help="global search on a PDB, a cluster name or a function",
        description="Search for the global minimum of INPUT and report the best energy found. Units: kJ/mol and nm for "
        "PDBs (OpenMM), reduced (epsilon, sigma) for named clusters and --potential lj, eV and Angstrom for "
        "ASE potentials, dimensionless for functions.",
        epilog=_example("minimize"),
        formatter_class=raw,
    )
    mini.add_argument(
        "input",
        help="a PDB file, an XYZ cluster (with --potential), a cluster name (LJ38, BLJ100, ION8) "
        "or a function NAME:DIM (alpine1:100)",
    )
    _search_options(mini, "cluster peptide function")
    mini.add_argument(
        "--device",
        default=None,
        help="torch device for a cluster or a function (cpu, cuda); PDBs pick their OpenMM platform",
    )
    mini.add_argument(
        "--forcefield", default="amber14-all.xml", help="force-field XML for a PDB (default amber14-all.xml)"
    )
    mini.add_argument(
        "--solvent",
        default="obc2",
        choices=["obc2", "obc2-xml", "gbn2", "none"],
        help="implicit solvent for a PDB (default obc2)",
    )
    mini.add_argument(
        "--keep-water",
        action="store_true",
        help="keep a PDB's crystal waters (removed by default; amber14/tip3p.xml is added to the default force field)",
    )
    mini.add_argument(
        "--keep-heterogens",
        action="store_true",
        help="keep a PDB's ions and ligands (removed by default; ions use amber14/tip3p.xml with the default force "
        "field, "
        "ligands need templates of their own). ACE/NME caps are always kept",
    )
    mini.add_argument(
        "--potential",
        default=None,
        choices=sorted(XYZ_POTENTIALS),
        help="potential of an XYZ cluster: "
        + ", ".join(f"{k} (coordinates in {v})" for k, v in XYZ_POTENTIALS.items()),
    )
    mini.set_defaults(func=_cmd_minimize)

    cluster = sub.add_parser(
        "cluster",
        help="global minimum of a Lennard-Jones cluster LJ_N",
        description="Search for the global minimum of the N-atom Lennard-Jones cluster (reduced units).",
        epilog=_example("cluster"),
        formatter_class=raw,
    )
    cluster.add_argument("n", type=int, help="number of atoms")
    _search_options(cluster, "cluster")
    cluster.add_argument("--device", default=None, help="torch device of the LJ oracle (cpu, cuda)")
    cluster.set_defaults(func=_cmd_cluster)

    comp = sub.add_parser(
        "compare",
        help="compare peptide methods on a PDB side by side",
        description="Run peptide methods on a PDB under the same budget; print a table "
        "(energy, CA RMSD, wall time, force calls) and plot energy and RMSD against time.",
        epilog=_example("compare"),
        formatter_class=raw,
    )
    comp.add_argument("pdb", help="the PDB file")
    comp.add_argument(
        "--methods",
        default="openmm,anneal,basin_hopping",
        help=f"comma-separated peptide methods from: {', '.join(METHODS_FOR['peptide'])} (default "
        "openmm,anneal,basin_hopping)",
    )
    comp.add_argument(
        "--budget-s", type=float, default=60.0, help="wall-clock budget per method in seconds (default 60)"
    )
    comp.add_argument("--png", default="compare.png", help="output plot (default compare.png)")
    comp.add_argument("--reference", default=None, help="reference structure for the CA RMSD (default: the input)")
    comp.add_argument(
        "--solvent",
        default="obc2",
        choices=["obc2", "obc2-xml", "gbn2", "none"],
        help="implicit solvent (default obc2)",
    )
    comp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    comp.set_defaults(func=_cmd_compare)

    methods = sub.add_parser(
        "methods",
        help="list the search methods and the targets each accepts",
        epilog=_example("methods"),
        formatter_class=raw,
    )
    methods.set_defaults(func=_cmd_methods)

    bench = sub.add_parser(
        "bench",
        help="run a benchmark: oracles, synthetic, clusters, proteins, or many runs (many)",
        description="Run a benchmark; everything after the benchmark name is passed to it (try 'actionmin bench NAME "
        "--help').",
        epilog=_example("bench"),
        formatter_class=raw,
    )
    bench.add_argument("which", choices=sorted(BENCHMARKS), help="which benchmark")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments of that benchmark")
    bench.set_defaults(func=_cmd_bench)
    return parser


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if (
        isinstance(exc, OSError)
        and exc.strerror
        and exc.filename
        and str(exc.filename) not in str(exc.args[-1] if exc.args else "")
    ):
        return f"{exc.filename}: {exc.strerror}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    from .checkpoints import CheckpointInUse
    from .output import ResultWriteError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return func(args)
    except ResultWriteError as exc:
        print(f"actionmin: error: {exc}", file=sys.stderr)
        return 1
    except (UserError, ValueError, KeyError, OSError, CheckpointInUse) as exc:
        print(f"actionmin: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("actionmin: interrupted", file=sys.stderr)
        return 130


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``actionmin``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return _run(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
