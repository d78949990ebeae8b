"""Protein benchmark: fold CLN025 and Trp-cage from extended chains.

``actionmin bench proteins [--systems cln025,trpcage] [--methods ...] [--seeds N]
[--budget-s S] --json FILE``

Methods are the registry's peptide methods (``openmm``, ``anneal``,
``action``, ``random_only``, ``basin_hopping``, ``hybrid``; see ``actionmin
methods``), run as ``openmm_actionmin.registry.METHODS[name].run(system,
RunConfig(...))``, so a name means here what it means in ``minimize()``.

For every system, the native structure (crystal/NMR PDB, prepared by pdbfixer)
is minimised with OpenMM's LocalEnergyMinimizer: that ``native_minimized`` row
is the energy a global search should reach. Then, per seed, an extended chain
is built from the sequence (PeptideBuilder's extended chain with the backbone
phi/psi perturbed by a seed-dependent uniform offset of up to
``--perturb-deg`` degrees) and every method runs from it under the same
wall-clock budget. Rows: ``system, method, seed, energy_kj_mol, ca_rmsd_A,
wall_s, force_calls`` (+ ``final_rms_force``, ``start_energy``). Implicit
solvent is OBC2 through OpenMM's native GBSAOBCForce (the fast path).

The JSON file doubles as a checkpoint: it is rewritten atomically after every
run, and a rerun with the same file skips the rows already there.

:func:`compare` runs methods on a user's PDB, prints the table and writes a
PNG of energy and CA RMSD against wall time (``actionmin compare PDB``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..plots import save_figure
from ..data import data_path
from ..fileio import atomic_write_text
from ..result import Result

#: Registry methods the benchmark runs by default (``action`` and ``hybrid`` need the action trainer).
BENCH_METHODS = ("openmm", "anneal", "action", "basin_hopping", "hybrid")


@dataclasses.dataclass(frozen=True)
class ProteinTarget:
    """A benchmark protein.

    Attributes:
        name: Short name used on the command line.
        sequence: One-letter sequence.
        pdb: File name under ``systems/pdb/`` of the native structure.
    """

    name: str
    sequence: str
    pdb: str

    @property
    def pdb_path(self) -> Path:
        """Path of the native PDB."""
        return data_path("systems", "pdb", self.pdb)


#: The benchmark proteins.
TARGETS: Dict[str, ProteinTarget] = {
    "cln025": ProteinTarget("cln025", "YYDPETGTWY", "5awl_cln025.pdb"),
    "trpcage": ProteinTarget("trpcage", "NLYIQWLKDGGPSSGRPPPS", "1l2y_trpcage_model1.pdb"),
}


@dataclasses.dataclass
class ProteinBenchConfig:
    """Settings of :func:`run_benchmark`.

    Attributes:
        systems: Names from :data:`TARGETS`.
        methods: Registry methods for peptides (``openmm_actionmin.registry.METHODS_FOR["peptide"]``).
        seeds: Number of seeds (0 .. seeds-1); each gives another start.
        budget_s: Wall-clock budget per run, seconds.
        perturb_deg: Half-width of the seed's backbone phi/psi perturbation
            of the extended start, degrees.
        native: Also minimise the native structures (``native_minimized`` rows).
        solvent: Implicit solvent (``"obc2"`` = native GBSAOBCForce).
        forcefield: Force-field XML.
        platform: OpenMM platform (None: first that works).
        threads: CPU threads per OpenMM Context (None: OpenMM's default).
        json_path: Rows file, rewritten after every run; existing rows are
            skipped on rerun (resume).
        out_dir: If set, every final structure is written there as PDB.
    """

    systems: Tuple[str, ...] = ("cln025", "trpcage")
    methods: Tuple[str, ...] = BENCH_METHODS
    seeds: int = 2
    budget_s: float = 60.0
    perturb_deg: float = 20.0
    native: bool = True
    solvent: str = "obc2"
    forcefield: str = "amber14-all.xml"
    platform: Optional[str] = None
    threads: Optional[int] = 1
    json_path: Optional[str] = None
    out_dir: Optional[str] = None

    def __post_init__(self) -> None:
        from ..registry import get_method

        for name in self.systems:
            if name not in TARGETS:
                raise ValueError(f"unknown benchmark protein {name!r}; choose from {', '.join(TARGETS)}")
        for method in self.methods:
            get_method(method, "peptide")
        if self.seeds < 1 or not (self.budget_s > 0):
            raise ValueError("seeds must be at least 1 and budget_s positive")


def _row(system: str, method: str, seed: Optional[int], res: Result) -> Dict[str, Any]:
    return {
        "system": system,
        "method": method,
        "seed": seed,
        "energy_kj_mol": float(res.energy),
        "ca_rmsd_A": res.extra.get("ca_rmsd_A"),
        "wall_s": float(res.wall_s),
        "force_calls": int(res.force_calls),
        "final_rms_force": res.extra.get("final_rms_force"),
        "start_energy": res.extra.get("start_energy"),
        # action methods: the trainer's best candidate before the minimiser polished it
        "before_polish_energy": res.extra.get("before_polish_energy"),
        # torsion hopping / hybrid: hops made and their Metropolis acceptance rate
        "hops": res.extra.get("hops"),
        "acceptance_rate": res.extra.get("acceptance_rate"),
    }


def _load_rows(path: Optional[str]) -> List[Dict[str, Any]]:
    if not path or not Path(path).exists():
        return []
    payload = json.loads(Path(path).read_text())
    return list(payload.get("rows", [])) if isinstance(payload, dict) else list(payload)


def _save_rows(path: Optional[str], rows: List[Dict[str, Any]], config: ProteinBenchConfig) -> None:
    if path:
        payload = {"config": dataclasses.asdict(config), "rows": rows, "medians": median_rows(rows)}
        atomic_write_text(path, json.dumps(payload, indent=1))


def run_benchmark(config: ProteinBenchConfig, *, log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Run the protein benchmark.

    Args:
        config: :class:`ProteinBenchConfig`.
        log: Progress printer.

    Returns:
        All rows (including those resumed from ``config.json_path``).
    """
    from ..proteins import CARMSD
    from ..registry import METHODS, RunConfig
    from ..search.openmm_baselines import openmm_minimize
    from ..systems.peptides import from_pdb, peptide

    from .warmup import warm_up

    warm_up()  # torch's one-time optimizer import is charged to no method
    rows = _load_rows(config.json_path)
    done = {(r["system"], r["method"], r["seed"]) for r in rows}
    oracle_kwargs: Dict[str, Any] = {}
    if config.platform:
        oracle_kwargs["platform"] = config.platform
    if config.threads:
        oracle_kwargs["threads_per_context"] = int(config.threads)

    def save_structure(res: Result, tag: str) -> None:
        if config.out_dir:
            res.save(Path(config.out_dir) / f"{tag}.pdb")

    for name in config.systems:
        target = TARGETS[name]
        if config.native and (name, "native_minimized", None) not in done:
            native = from_pdb(target.pdb_path, forcefield=config.forcefield, solvent=config.solvent, **oracle_kwargs)
            rmsd = CARMSD(native.topology, target.pdb_path)
            e0 = float(native.oracle.energy(native.start_positions[None], transform=None)[0])
            res = openmm_minimize(native, budget_s=config.budget_s, platform=config.platform, threads=config.threads)
            res.extra["ca_rmsd_A"] = rmsd(res.positions)
            res.extra["start_energy"] = e0
            rows.append(_row(name, "native_minimized", None, res))
            save_structure(res, f"{name}_native_minimized")
            log(_fmt_row(rows[-1]))
            _save_rows(config.json_path, rows, config)
            native.oracle.close()
        for seed in range(config.seeds):
            todo = [m for m in config.methods if (name, m, seed) not in done]
            if not todo:
                continue
            system = peptide(
                target.sequence,
                seed=seed,
                perturb_deg=config.perturb_deg,
                forcefield=config.forcefield,
                solvent=config.solvent,
                name=name,
                **oracle_kwargs,
            )
            rmsd = CARMSD(system.topology, target.pdb_path)
            start_e = float(system.oracle.energy(system.start_positions[None], transform=None)[0])
            for method in todo:
                options = {"platform": config.platform, "threads": config.threads, "rmsd": rmsd}
                try:
                    res = METHODS[method].run(system, RunConfig(seed=seed, budget_s=config.budget_s, options=options))
                except ImportError as exc:  # the action trainer is not installed in this build
                    log(f"{name} {method} seed {seed}: skipped ({exc})")
                    continue
                res.extra["ca_rmsd_A"] = rmsd(res.positions)
                res.extra["start_energy"] = start_e
                rows.append(_row(name, method, seed, res))
                save_structure(res, f"{name}_{method}_s{seed}")
                log(_fmt_row(rows[-1]))
                _save_rows(config.json_path, rows, config)
            system.oracle.close()
    return rows


# ------------------------------------------------------------------ tables
def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
    return str(value)


def _fmt_row(row: Dict[str, Any]) -> str:
    return (
        f"{row['system']:<8} {row['method']:<18} seed {_fmt(row['seed']):>2}  E {_fmt(row['energy_kj_mol'])} kJ/mol  "
        f"CA-RMSD {_fmt(row['ca_rmsd_A'], 2)} A  {_fmt(row['wall_s'])} s  {row['force_calls']} calls"
    )


def median_rows(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per (system, method): median and best energy, median RMSD, wall time and force calls."""
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["system"], r["method"]), []).append(r)
    out = []
    for (system, method), rs in groups.items():
        rms = [r["ca_rmsd_A"] for r in rs if r.get("ca_rmsd_A") is not None]
        out.append(
            {
                "system": system,
                "method": method,
                "runs": len(rs),
                "median_energy_kj_mol": statistics.median(r["energy_kj_mol"] for r in rs),
                "best_energy_kj_mol": min(r["energy_kj_mol"] for r in rs),
                "median_ca_rmsd_A": statistics.median(rms) if rms else None,
                "median_wall_s": statistics.median(r["wall_s"] for r in rs),
                "median_force_calls": statistics.median(r["force_calls"] for r in rs),
            }
        )
    return out


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
    """A plain-text table of :func:`median_rows`, grouped by system."""
    med = median_rows(rows)
    head = (
        f"{'system':<8} {'method':<20} {'runs':>4} {'median E':>11} {'best E':>11} {'CA-RMSD A':>9} {'wall s':>7} "
        f"{'calls':>8}"
    )
    lines = ["energies in kJ/mol (amber14-all + OBC2); CA-RMSD to the native PDB", head, "-" * len(head)]
    for m in sorted(med, key=lambda r: (r["system"], r["method"] != "native_minimized", r["median_energy_kj_mol"])):
        lines.append(
            f"{m['system']:<8} {m['method']:<20} {m['runs']:>4} {_fmt(m['median_energy_kj_mol']):>11} "
            f"{_fmt(m['best_energy_kj_mol']):>11} {_fmt(m['median_ca_rmsd_A'], 2):>9} {_fmt(m['median_wall_s']):>7} "
            f"{_fmt(m['median_force_calls'], 0):>8}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------- compare
def compare(
    pdb_path: os.PathLike,
    methods: Sequence[str] = ("openmm", "anneal", "action"),
    budget_s: float = 60.0,
    png_path: Optional[os.PathLike] = None,
    *,
    seed: int = 0,
    reference: Optional[os.PathLike] = None,
    solvent: str = "obc2",
    forcefield: str = "amber14-all.xml",
    platform: Optional[str] = None,
    threads: Optional[int] = None,
    log: Callable[[str], None] = print,
) -> List[Result]:
    """Run several methods on one PDB, print a table, plot energy and RMSD vs time.

    Args:
        pdb_path: The user's PDB.
        methods: Registry method names for peptides (``actionmin methods``).
        budget_s: Wall-clock budget per method, seconds.
        png_path: If given, a PNG with two panels (best energy and CA RMSD
            against wall time, one line per method).
        seed: Seed of every method.
        reference: Structure for the CA RMSD (default: the input PDB).
        solvent: Implicit solvent.
        forcefield: Force-field XML.
        platform: OpenMM platform.
        threads: CPU threads per Context.
        log: Printer of the table.

    Returns:
        The :class:`Result` of every method, in order.
    """
    from ..api import minimize_pdb
    from ..registry import get_method

    for m in methods:
        get_method(m, "peptide")
    ref = reference if reference is not None else pdb_path
    results = [
        minimize_pdb(
            pdb_path,
            forcefield=forcefield,
            solvent=solvent,
            method=m,
            seed=seed,
            budget_s=budget_s,
            reference=ref,
            platform=platform,
            threads=threads,
        )
        for m in methods
    ]
    head = f"{'method':<22} {'energy kJ/mol':>14} {'CA-RMSD A':>10} {'RMS force':>10} {'wall s':>7} {'calls':>8}"
    lines = [
        f"{Path(pdb_path).name}: start energy {results[0].extra['start_energy']:.1f} kJ/mol",
        head,
        "-" * len(head),
    ]
    for r in results:
        lines.append(
            f"{r.method:<22} {r.energy:>14.1f} {_fmt(r.extra.get('ca_rmsd_A'), 2):>10} "
            f"{_fmt(r.extra.get('final_rms_force'), 2):>10} {r.wall_s:>7.1f} {r.force_calls:>8}"
        )
    log("\n".join(lines))
    if png_path is not None:
        plot_compare(results, png_path)
    return results


def plot_compare(results: Sequence[Result], png_path: os.PathLike) -> Path:
    """Two panels: best energy (kJ/mol) and CA RMSD (A) against wall time, one line per result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_e, ax_r) = plt.subplots(1, 2, figsize=(11, 4))
    lows, highs = [], []
    for r in results:
        hist = [h for h in r.history if h.get("best_energy") is not None and math.isfinite(h["best_energy"])]
        if hist:
            ax_e.plot([h["wall_s"] for h in hist], [h["best_energy"] for h in hist], label=r.method)
            lows.append(min(h["best_energy"] for h in hist))
        start = r.extra.get("start_energy")
        if start is not None and math.isfinite(start):
            highs.append(start)
        rh = [h for h in r.history if h.get("ca_rmsd_A") is not None]
        if rh:
            ax_r.plot([h["wall_s"] for h in rh], [h["ca_rmsd_A"] for h in rh], label=r.method)
    if lows and highs:
        span = max(max(highs) - min(lows), 1.0)
        ax_e.set_ylim(min(lows) - 0.05 * span, max(highs) + 0.1 * span)  # absurd early energies are off the chart
    ax_e.set_xlabel("wall time (s)")
    ax_e.set_ylabel("best energy (kJ/mol)")
    ax_r.set_xlabel("wall time (s)")
    ax_r.set_ylabel("CA RMSD (A)")
    for ax in (ax_e, ax_r):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(results[0].system if results else "")
    return save_figure(fig, png_path, dpi=110)


# --------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``actionmin bench proteins``."""
    from ..registry import METHODS_FOR

    p = argparse.ArgumentParser(
        prog="actionmin bench proteins",
        description=__doc__.split("\n\n")[0],
        epilog="example:\n  actionmin bench proteins --systems cln025 --methods openmm --seeds 1 --budget-s 5 "
        "--no-native",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--systems", default="cln025,trpcage", help=f"comma-separated, from {','.join(TARGETS)}")
    p.add_argument(
        "--methods",
        default=",".join(BENCH_METHODS),
        help=f"comma-separated registry methods, of: {', '.join(METHODS_FOR['peptide'])} (default "
        f"{','.join(BENCH_METHODS)})",
    )
    p.add_argument("--seeds", type=int, default=2, help="number of seeds (default 2)")
    p.add_argument("--budget-s", type=float, default=60.0, help="wall-clock budget per run, seconds (default 60)")
    p.add_argument("--perturb-deg", type=float, default=20.0, help="start perturbation of backbone phi/psi, degrees")
    p.add_argument("--no-native", action="store_true", help="skip the native_minimized rows")
    p.add_argument("--solvent", default="obc2", choices=("obc2", "obc2-xml", "gbn2", "none"))
    p.add_argument("--platform", default=None, help="OpenMM platform (default: first that works)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per OpenMM Context (default 1)")
    p.add_argument("--torch-threads", type=int, default=1, help="torch CPU threads (default 1: one core per run)")
    p.add_argument("--json", default=None, help="rows file; also the checkpoint a rerun resumes from")
    p.add_argument("--out-dir", default=None, help="write every final structure as PDB here")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``actionmin bench proteins``; prints rows and a table per method."""
    args = build_parser().parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.torch_threads))
    config = ProteinBenchConfig(
        systems=tuple(s for s in args.systems.split(",") if s),
        methods=tuple(m for m in args.methods.split(",") if m),
        seeds=args.seeds,
        budget_s=args.budget_s,
        perturb_deg=args.perturb_deg,
        native=not args.no_native,
        solvent=args.solvent,
        platform=args.platform,
        threads=args.threads,
        json_path=args.json,
        out_dir=args.out_dir,
    )
    t0 = time.perf_counter()
    rows = run_benchmark(config)
    print()
    print(format_table(rows))
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
