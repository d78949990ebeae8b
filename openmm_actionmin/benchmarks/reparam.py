"""Reparametrisation benchmark: the claims of Dehmamy et al. (NeurIPS 2024) measured on our systems.

``actionmin bench reparam [--systems ...] [--methods ...] [--seeds N] [--budget-s S] [--json FILE]``

Every method runs in this one process, under the same wall-clock budget, from
the same start (one per seed), with every oracle evaluation counted:

* ``adam_x``: Adam on the coordinates (the paper's gradient descent), then the
  same polish as the reparametrisations;
* ``lbfgs_x``: the batched L-BFGS on the coordinates until it converges or the
  budget ends (loops and clusters; for peptides OpenMM's minimiser is that method);
* ``linear`` and ``gnn``: the registry's ``reparam`` in its two forms;
* peptides also: ``openmm`` (LocalEnergyMinimizer), ``basin_hopping`` (torsion
  basin hopping) and ``collapse_hopping`` (the ``gnn`` form for
  ``--collapse-fraction`` of the budget, then torsion basin hopping from its
  result for the rest).

Systems: ``loop_bond_lj_<n>`` and ``loop_pure_lj_<n>`` (loop chains from a
seeded random walk), ``LJ<n>`` clusters (random start in the search box), and
the peptides ``cln025``, ``trpcage``, ``villin`` (from extended chains of their
sequence, CA RMSD to the shipped NMR structure) and ``metenk`` (YGGFM, 1PLW's
sequence, from its extended chain; no reference structure).

The output (``--json``) follows the schema of ``bench/results/*/*.json``
(``title``, ``command``, ``date``, ``commit``, ``machine``, ``columns``,
``rows``, ``notes``, ``per_seed``) and adds ``curves``: per run, the best
energy against wall time and force calls. Rows are medians over seeds per
system and method, with the fraction of seeds whose loop formed (at least 90 %
of the ``i, i+10`` contacts within 1.5 sigma) for loops, and the CA RMSD for
peptides.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import platform as _platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..fileio import atomic_write_text
from ..result import Result
from ..systems.base import System
from ..threads import blas_threads

#: Methods of every system, and the peptide-only ones.
METHODS = ("adam_x", "lbfgs_x", "linear", "gnn")
PEPTIDE_METHODS = ("openmm", "basin_hopping", "collapse_hopping")
#: Peptide targets: name -> (sequence or None to read it from the PDB, PDB under systems/pdb or None).
PEPTIDES: Dict[str, Tuple[Optional[str], Optional[str]]] = {
    "cln025": ("YYDPETGTWY", "5awl_cln025.pdb"),
    "trpcage": ("NLYIQWLKDGGPSSGRPPPS", "1l2y_trpcage_model1.pdb"),
    "villin": (None, "1vii_villin_nmr.pdb"),
    "metenk": ("YGGFM", None),
}
#: A loop counts as formed when at least this fraction of its contacts is formed.
LOOP_FORMED_FRACTION = 0.9
_LOOP_RE = re.compile(r"^loop_(bond_lj|pure_lj)_(\d+)$")


@dataclasses.dataclass
class ReparamBenchConfig:
    """Settings of :func:`run_benchmark`.

    Attributes:
        systems: System names (see the module docstring).
        methods: Methods (peptide-only ones are skipped on other systems).
        seeds: Seeds 0 .. seeds-1 (one start each).
        budget_s: Wall-clock budget per run, seconds.
        device: Torch device of the loop and cluster oracles.
        threads: OpenMM CPU threads per Context.
        collapse_fraction: Share of the budget the collapse stage of
            ``collapse_hopping`` gets.
        options: Extra ``reparam`` options for ``linear``, ``gnn`` and ``adam_x``.
    """

    systems: Tuple[str, ...] = ("loop_bond_lj_400", "loop_pure_lj_400")
    methods: Tuple[str, ...] = METHODS + PEPTIDE_METHODS
    seeds: int = 5
    budget_s: float = 60.0
    device: str = "cpu"
    threads: Optional[int] = 1
    collapse_fraction: float = 0.25
    options: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.systems:
            if not (_LOOP_RE.match(name) or re.match(r"^LJ\d+$", name) or name in PEPTIDES):
                raise ValueError(
                    f"unknown system {name!r}; use loop_bond_lj_<n>, loop_pure_lj_<n>, LJ<n> or one of "
                    f"{', '.join(PEPTIDES)}"
                )
        for m in self.methods:
            if m not in METHODS + PEPTIDE_METHODS:
                raise ValueError(f"unknown method {m!r}; choose from {', '.join(METHODS + PEPTIDE_METHODS)}")
        if self.seeds < 1 or not (self.budget_s > 0) or not (0 < self.collapse_fraction < 1):
            raise ValueError("seeds >= 1, budget_s > 0 and 0 < collapse_fraction < 1 are needed")


def _is_peptide(name: str) -> bool:
    return name in PEPTIDES


def build_system(name: str, seed: int, config: ReparamBenchConfig) -> Tuple[System, Any]:
    """The system ``name`` for ``seed`` and its CA-RMSD scorer (peptides with a reference) or None."""
    from ..data import data_path

    match = _LOOP_RE.match(name)
    if match:
        from ..systems.loops import loop_chain

        return loop_chain(int(match.group(2)), match.group(1), seed=seed, device=config.device), None
    if name.startswith("LJ"):
        from ..systems.clusters import lj_cluster

        system = lj_cluster(int(name[2:]), device=config.device)
        gen = torch.Generator().manual_seed(10_000 + seed)
        start = system.space.to_config(system.space.sample(1, gen))[0]
        return dataclasses.replace(system, start_positions=start), None
    from ..proteins import CARMSD
    from ..systems.peptides import peptide

    sequence, pdb = PEPTIDES[name]
    path = data_path("systems", "pdb", pdb) if pdb else None
    if sequence is None:
        import mdtraj as md

        sequence = md.load_pdb(str(path)).topology.to_fasta()[0]
    kwargs = {"threads_per_context": config.threads} if config.threads else {}
    system = peptide(sequence, seed=seed, name=name, **kwargs)
    return system, (CARMSD(system.topology, path) if path else None)


def _run(method: str, system: System, seed: int, config: ReparamBenchConfig) -> Result:
    from ..registry import METHODS as REGISTRY, RunConfig

    peptide = type(system.oracle).__name__ == "OpenMMOracle"
    budget = config.budget_s
    omm = {"threads": config.threads} if peptide else {}
    if method in ("linear", "gnn", "adam_x"):
        form = "cartesian" if method == "adam_x" else method
        return REGISTRY["reparam"].run(
            system, RunConfig(seed=seed, budget_s=budget, options={**config.options, **omm, "form": form})
        )
    if method == "lbfgs_x":
        if peptide:
            return REGISTRY["openmm"].run(system, RunConfig(seed=seed, budget_s=budget, options=omm))
        return _lbfgs(system, seed, budget)
    if method in ("openmm", "basin_hopping"):
        return REGISTRY[method].run(system, RunConfig(seed=seed, budget_s=budget, options=omm))
    # collapse_hopping: the GNN reparametrisation, then torsion basin hopping from its structure
    from ..search.torsion_hopping import TorsionHoppingConfig, torsion_hopping

    t0 = time.perf_counter()
    first = REGISTRY["reparam"].run(
        system,
        RunConfig(
            seed=seed, budget_s=budget * config.collapse_fraction, options={**config.options, **omm, "form": "gnn"}
        ),
    )
    left = max(budget - (time.perf_counter() - t0), 1e-3)
    hop = torsion_hopping(
        system,
        TorsionHoppingConfig(seed=seed, budget_s=left, threads=config.threads, method_name="collapse_hopping"),
        starts=[first.positions],
    )
    shifted = [
        {**row, "wall_s": row["wall_s"] + first.wall_s, "force_calls": row["force_calls"] + first.force_calls}
        for row in hop.history
    ]
    return dataclasses.replace(
        hop,
        wall_s=time.perf_counter() - t0,
        force_calls=hop.force_calls + first.force_calls,
        history=list(first.history) + shifted,
        extra={**hop.extra, "collapse_energy": first.energy, "start_energy": first.extra["start_energy"]},
    )


def _lbfgs(system: System, seed: int, budget_s: float) -> Result:
    """The batched L-BFGS on ``X`` from the system's start until convergence or the budget."""
    from ..search.local import BatchLBFGS

    t0 = time.perf_counter()
    oracle = system.oracle
    calls0 = oracle.counters.force_calls
    x = system.start_positions[None].to(device=oracle.device, dtype=oracle.dtype)
    e0 = float(oracle.energy(x, transform=None)[0])
    lb = BatchLBFGS(oracle, x, fmax=1e-3, max_steps=10**7, generator=torch.Generator().manual_seed(seed))
    history = [
        {
            "wall_s": time.perf_counter() - t0,
            "best_energy": e0,
            "energy": e0,
            "force_calls": oracle.counters.force_calls - calls0,
            "phase": "start",
        }
    ]
    deadline = t0 + budget_s
    while not bool(lb.done.all()) and time.perf_counter() < deadline:
        for _ in range(20):
            if bool(lb.done.all()):
                break
            lb.step()
        e = float(lb.energy[0])
        history.append(
            {
                "wall_s": time.perf_counter() - t0,
                "best_energy": min(e, history[-1]["best_energy"]),
                "energy": e,
                "force_calls": oracle.counters.force_calls - calls0,
                "phase": "lbfgs",
            }
        )
    res = lb.result()
    return Result(
        positions=res.x[0].cpu().numpy(),
        energy=float(res.energy[0]),
        units=oracle.units,
        method="lbfgs_x",
        seed=seed,
        force_calls=oracle.counters.force_calls - calls0,
        wall_s=time.perf_counter() - t0,
        history=history,
        system=system.name,
        extra={"start_energy": e0, "final_fmax": float(res.fmax[0])},
    )


def _curve(history: Sequence[Dict[str, Any]], points: int = 60) -> List[List[float]]:
    rows = [r for r in history if r.get("best_energy") is not None and math.isfinite(r["best_energy"])]
    step = max(1, len(rows) // points)
    picked = rows[::step] + ([rows[-1]] if rows and rows[-1] is not rows[::step][-1] else [])
    return [[round(float(r["wall_s"]), 4), int(r["force_calls"]), float(r["best_energy"])] for r in picked]


def run_benchmark(config: ReparamBenchConfig, log=print) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """Run every (system, seed, method); per-seed rows and per-run curves."""
    from ..oracles.loops import loop_formed
    from .warmup import warm_up

    warm_up()
    rows: List[Dict[str, Any]] = []
    curves: Dict[str, Any] = {}
    for name in config.systems:
        methods = [m for m in config.methods if _is_peptide(name) or m not in PEPTIDE_METHODS]
        for seed in range(config.seeds):
            system, rmsd = build_system(name, seed, config)
            for method in methods:
                res = _run(method, system, seed, config)
                pos = torch.as_tensor(res.positions, dtype=torch.float64)
                row = {
                    "system": name,
                    "method": method,
                    "seed": seed,
                    "energy": float(res.energy),
                    "before_polish_energy": res.extra.get("before_polish_energy"),
                    "start_energy": res.extra.get("start_energy"),
                    "wall_s": round(float(res.wall_s), 3),
                    "force_calls": int(res.force_calls),
                    "loop_formed": float(loop_formed(pos)) if name.startswith("loop_") else None,
                    "ca_rmsd_A": round(float(rmsd(pos.numpy())), 3) if rmsd is not None else None,
                    "reference_energy": system.reference_energy,
                }
                rows.append(row)
                curves[f"{name}/{method}/{seed}"] = _curve(res.history)
                log(
                    f"{name:<18} {method:<17} seed {seed}  E {row['energy']:.4f}  {row['wall_s']:.1f} s  "
                    f"{row['force_calls']} calls"
                    + (f"  loop {row['loop_formed']:.2f}" if row["loop_formed"] is not None else "")
                    + (f"  CA-RMSD {row['ca_rmsd_A']:.2f} A" if row["ca_rmsd_A"] is not None else "")
                )
            if hasattr(system.oracle, "close"):
                system.oracle.close()
    return rows, curves


def summary(rows: Sequence[Dict[str, Any]]) -> Tuple[List[str], List[list]]:
    """Columns and median rows per (system, method)."""
    columns = [
        "system",
        "method",
        "seeds",
        "median energy",
        "best energy",
        "median energy before polish",
        "median wall (s)",
        "median force calls",
        "loops formed",
        "median CA RMSD (A)",
        "seeds below lbfgs_x",
    ]
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["system"], r["method"]), []).append(r)
    ref = {(r["system"], r["seed"]): r["energy"] for r in rows if r["method"] == "lbfgs_x"}
    out = []
    for (system, method), rs in groups.items():
        before = [r["before_polish_energy"] for r in rs if r.get("before_polish_energy") is not None]
        rms = [r["ca_rmsd_A"] for r in rs if r.get("ca_rmsd_A") is not None]
        loops = [r["loop_formed"] for r in rs if r.get("loop_formed") is not None]
        below = [r["energy"] < ref[(system, r["seed"])] - 1e-9 for r in rs if (system, r["seed"]) in ref]
        out.append(
            [
                system,
                method,
                len(rs),
                round(statistics.median(r["energy"] for r in rs), 4),
                round(min(r["energy"] for r in rs), 4),
                round(statistics.median(before), 4) if before else None,
                round(statistics.median(r["wall_s"] for r in rs), 2),
                int(statistics.median(r["force_calls"] for r in rs)),
                f"{sum(f >= LOOP_FORMED_FRACTION for f in loops)}/{len(loops)}" if loops else None,
                round(statistics.median(rms), 2) if rms else None,
                f"{sum(below)}/{len(below)}" if below and method != "lbfgs_x" else None,
            ]
        )
    return columns, out


def _commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                cwd=Path(__file__).resolve().parent,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _machine(device: str) -> str:
    import os

    text = f"{os.cpu_count()}-core CPU ({_platform.machine()})"
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return text + f", torch device {device}"


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``actionmin bench reparam``."""
    p = argparse.ArgumentParser(
        prog="actionmin bench reparam",
        description=__doc__.split("\n\n")[0],
        epilog="example:\n  actionmin bench reparam --systems loop_pure_lj_40 --seeds 1 --budget-s 5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--systems",
        default="loop_bond_lj_400,loop_pure_lj_400",
        help="comma-separated: loop_bond_lj_<n>, loop_pure_lj_<n>, LJ<n>, " + ", ".join(PEPTIDES),
    )
    p.add_argument(
        "--methods",
        default=",".join(METHODS + PEPTIDE_METHODS),
        help="comma-separated, of: " + ", ".join(METHODS + PEPTIDE_METHODS) + " (peptide-only ones skip other systems)",
    )
    p.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    p.add_argument("--budget-s", type=float, default=60.0, help="wall-clock budget per run, seconds (default 60)")
    p.add_argument("--device", default="cpu", help="torch device of loop and cluster oracles (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="OpenMM CPU threads per Context (default 1)")
    p.add_argument("--torch-threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument(
        "--collapse-fraction", type=float, default=0.25, help="budget share of the collapse stage (default 0.25)"
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a reparam option for linear, gnn and adam_x (repeatable), e.g. --option n_modes=64",
    )
    p.add_argument("--json", default=None, help="write the table here (bench/results schema)")
    return p


def _parse_option(text: str) -> Tuple[str, Any]:
    if "=" not in text:
        raise ValueError(f"--option {text!r}: use NAME=VALUE")
    name, value = text.split("=", 1)
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``actionmin bench reparam``."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(max(1, args.torch_threads))
    config = ReparamBenchConfig(
        systems=tuple(s for s in args.systems.split(",") if s),
        methods=tuple(m for m in args.methods.split(",") if m),
        seeds=args.seeds,
        budget_s=args.budget_s,
        device=args.device,
        threads=args.threads,
        collapse_fraction=args.collapse_fraction,
        options=dict(_parse_option(o) for o in args.option),
    )
    with blas_threads(config.threads or 1):  # SciPy's eigensolver: a pool per process stalls on a shared machine
        rows, curves = run_benchmark(config)
    columns, table = summary(rows)
    print()
    print(" | ".join(columns))
    for r in table:
        print(" | ".join("-" if c is None else str(c) for c in r))
    if args.json:
        seed_cols = list(rows[0].keys()) if rows else []
        payload = {
            "title": f"Reparametrisation: {', '.join(config.systems)}, {config.seeds} seeds, {config.budget_s:g} s "
            "per method",
            "command": "actionmin bench reparam " + " ".join(argv if argv is not None else sys.argv[1:]),
            "date": datetime.date.today().isoformat(),
            "commit": _commit(),
            "machine": _machine(config.device),
            "columns": columns,
            "rows": table,
            "notes": "Every method from the same start per seed under the same wall-clock budget, in one process. "
            "Energies in the system's units (epsilon for loops and clusters, kJ/mol for peptides).",
            "per_seed": {"columns": seed_cols, "rows": [[r[c] for c in seed_cols] for r in rows]},
            "curves": {"columns": ["wall_s", "force_calls", "best_energy"], "runs": curves},
            "config": dataclasses.asdict(config),
        }
        atomic_write_text(args.json, json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
