"""Synthetic benchmark: the action trainer against its baselines on test functions.

Every method gets the same wall-clock budget in one process, on the same
shifted function (per seed, the global minimum is drawn uniformly inside 80 %
of the box, the same shift for every method); ``--no-shift`` gives the paper's
exact setting (minimum at the origin, the centre of the box, where an untrained
network with zero biases already has its minimiser; see ``docs/method.md``).
``--rotate`` runs the rotated variants instead: per seed a random orthogonal
rotation about the shifted minimum, ``U(x*_U + R (x - o))`` (the same box,
minimum location and value; :func:`~..oracles.synthetic.random_rotation`), the
same for every method; each row says ``rotated`` true or false. A function
named with the ``rotated_`` prefix (``rotated_alpine1``) is rotated too.

Columns follow the paper: the distance of the returned point to the global
minimum, the distance of the lowest-energy point seen, and the average error
per dimension (distance / sqrt(D)); plus energy, wall time and force calls.

``--threads`` (default 1) limits torch *and* NumPy's / SciPy's OpenBLAS pool
(:func:`openmm_actionmin.threads.blas_threads`): CMA-ES and scipy's basin hopping run on
OpenBLAS, and two benchmark processes with the default pool on a 2-core machine
slowed CMA-ES 23x.

Methods are the registry's function methods (:data:`METHOD_NAMES`: ``action``,
``random_only``, ``scipy_basinhopping``, ``adam``, ``cma``), run as
``openmm_actionmin.registry.METHODS[name].run(system, RunConfig(...))`` with
their defaults, so a name means here what it means in ``minimize()``.

Command line (``actionmin bench synthetic``, ``python -m
openmm_actionmin.benchmarks.synthetic`` or ``bench/synthetic.py``)::

    --functions alpine1,schaffer_f7 --dims 100 --seeds 3 --budget-s 120 \\
        --methods action,random_only,adam,cma,scipy_basinhopping --json synthetic_d100.json

Research variants of these methods live outside the package, in ``bench/experiments/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from ..devices import check_device
from ..fileio import atomic_write_text
from ..oracles.synthetic import SyntheticOracle, parse_name, random_rotation, random_shift
from ..plots import save_figure
from ..registry import METHODS as REGISTRY, METHODS_FOR, RunConfig
from ..result import Result
from ..search.action_config import BOWL_MODEL, SYNTHETIC_ACTION, ActionConfig
from ..search.local import torch_threads
from ..systems.base import System
from ..threads import blas_threads
from .many import parse_options
from .warmup import warm_up


def run_method(
    method: str,
    system: System,
    budget_s: float,
    seed: int,
    max_rounds: Optional[int] = None,
    options: Optional[Mapping[str, Any]] = None,
) -> Result:
    """Run the registry's ``method`` on a function system.

    Args:
        method: A function method of the registry (:data:`METHOD_NAMES`).
        system: The benchmark system (:func:`make_system`).
        budget_s: Wall-clock budget, seconds.
        seed: Seed of the method.
        max_rounds: Round limit of the PLNet trainers (``action``,
            ``random_only``); the other methods have no rounds and ignore it.

    Returns:
        The method's :class:`Result`.
    """
    options: Dict[str, Any] = {}
    if max_rounds is not None and method in PLNET_METHODS:
        options["max_rounds"] = max_rounds
    return REGISTRY[method].run(system, RunConfig(seed=seed, budget_s=budget_s, options=options))


def _runner(method: str) -> Callable[..., Result]:
    def run(system: System, budget_s: float, seed: int, max_rounds: Optional[int] = None) -> Result:
        return run_method(method, system, budget_s, seed, max_rounds=max_rounds)

    run.__name__ = f"run_{method}"
    return run


#: The benchmark's methods: every function method of the registry, in registry order.
METHOD_NAMES = METHODS_FOR["function"]

#: The methods that train a PLNet (they get a per-round plot with ``plot_dir``).
PLNET_METHODS = ("action", "random_only")

#: Name -> runner(system, budget_s, seed, max_rounds=None) through the registry (:func:`run_method`).
METHODS: Dict[str, Callable[..., Result]] = {name: _runner(name) for name in METHOD_NAMES}


@dataclasses.dataclass
class SyntheticBenchConfig:
    """What to run.

    Attributes:
        functions: Function names (see ``oracles.synthetic.SYNTHETIC_FUNCTIONS``).
        dims: Dimensions.
        seeds: Seeds (each seed: one shift, and the seed of every method).
        budget_s: Wall-clock budget per run, seconds.
        methods: Method names (the registry's function methods, :data:`METHOD_NAMES`).
        shifted: Shift the minimum (uniform inside ``shift_fraction`` of the box).
        shift_fraction: Fraction of the box half-width for the shift.
        box: ``"paper"`` (the action paper's half-width, 100, where it used the
            function; else the default) or ``"default"`` (Plevris & Solorzano).
        history_dir: Directory for one JSON result (with history) per run.
        plot_dir: Directory for one history plot per PLNet run (action,
            random_only): candidate energy, distance and losses per round.
        max_rounds: Round limit of the PLNet trainers (the budget still
            applies); ``None`` for the budget only.
        rotated: Rotate every function about its minimum (a seeded random
            orthogonal matrix per (function, dim, seed)).
        device: Torch device of the oracle (``"cpu"`` or ``"cuda"``); the
            PLNet trainers and Adam run there, scipy's basin hopping and
            CMA-ES step on the CPU and evaluate there.
        options: Settings of the PLNet trainers' ``ActionConfig`` (for example
            ``{"region_shape": "ball"}``); rows of those trainers record them.
    """

    functions: Sequence[str] = ("alpine1", "schaffer_f7")
    dims: Sequence[int] = (100,)
    seeds: Sequence[int] = (0, 1, 2)
    budget_s: float = 120.0
    methods: Sequence[str] = METHOD_NAMES
    shifted: bool = True
    shift_fraction: float = 0.8
    box: str = "paper"
    history_dir: Optional[str] = None
    plot_dir: Optional[str] = None
    max_rounds: Optional[int] = None
    rotated: bool = False
    device: str = "cpu"
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_device(self.device)
        fields = {f.name for f in dataclasses.fields(ActionConfig)}
        unknown_options = sorted(set(self.options) - fields)
        if unknown_options:
            raise ValueError(
                f"unknown option(s) {', '.join(unknown_options)}: use ActionConfig fields "
                "(see 'help(openmm_actionmin.ActionConfig)')"
            )
        if self.options:  # a bad value is refused before any run, as the registry would build each config
            if "action" in self.methods:
                ActionConfig(**{**SYNTHETIC_ACTION, **self.options})
            if "random_only" in self.methods:
                ActionConfig.random_only(**{**BOWL_MODEL, **self.options})
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHOD_NAMES)}")
        if self.box not in ("paper", "default"):
            raise ValueError(f"box must be 'paper' or 'default', got {self.box!r}")
        if not self.budget_s > 0:
            raise ValueError(f"budget_s must be positive, got {self.budget_s}")
        for name in self.functions:
            parse_name(name)


def half_width(function: str, box: str = "paper") -> float:
    """Half-width of the search box of ``function`` (``box``: ``"paper"`` or ``"default"``)."""
    spec, _ = parse_name(function)
    if box == "paper" and spec.action_paper_half_width is not None:
        return float(spec.action_paper_half_width)
    return float(spec.default_half_width)


def make_system(
    function: str,
    dim: int,
    seed: int,
    *,
    shifted: bool = True,
    box: str = "paper",
    shift_fraction: float = 0.8,
    rotated: bool = False,
    device: str = "cpu",
) -> System:
    """The benchmark system of one (function, dim, seed).

    The shift and the rotation depend only on (function, dim, seed), so every
    method sees the same landscape.

    Args:
        function: Function name (a ``rotated_`` prefix implies ``rotated``).
        dim: Dimension D.
        seed: Seed of the shift and the rotation.
        shifted: Draw a shift (else the minimum stays at the origin).
        box: Box choice, see :func:`half_width`.
        shift_fraction: The minimum lands uniformly inside this fraction of the box.
        rotated: Rotate the function about its (shifted) minimum by a random
            orthogonal matrix drawn from its own generator (so the shift is
            the same with and without rotation).
        device: Torch device of the oracle (the shift and the rotation are
            drawn on the CPU, so they are the same on every device).

    Returns:
        A :class:`System` with the known minimum as reference; its metadata
        say ``rotated``.
    """
    spec, prefixed = parse_name(function)
    rotated = rotated or prefixed
    h = half_width(function, box)
    shift = None
    if shifted:
        gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(dim) * 7_919 + zlib.crc32(spec.name.encode()))
        if h == spec.default_half_width:
            shift = random_shift(spec.name, dim, gen, fraction=shift_fraction)
        else:  # the paper's box: the same rule, scaled to its half-width
            u = torch.rand(int(dim), generator=gen, dtype=torch.float64)
            shift = shift_fraction * h * (2.0 * u - 1.0) - spec.minimum_coordinate
    rotation = None
    if rotated:
        gen = torch.Generator().manual_seed(
            int(seed) * 1_000_033 + int(dim) * 7_927 + zlib.crc32(spec.name.encode()) + 1
        )
        rotation = random_rotation(dim, gen)
    oracle = SyntheticOracle(spec.name, dim, shift=shift, rotation=rotation, device=device)
    return System(
        name=f"{oracle.name}-{dim}d",
        oracle=oracle,
        space=oracle.space(h),
        reference_energy=oracle.minimum_value,
        reference_positions=oracle.minimum_location,
        metadata={"half_width": h, "shifted": shifted, "rotated": rotated, "seed": seed},
    )


def uniform_rms_distance(system: System) -> float:
    """Root-mean-square distance of a uniform random point of the box to the minimum."""
    lo, hi = system.space.lower, system.space.upper
    ref = system.reference_positions.reshape(-1)
    mean_sq = ((hi**3 - lo**3) / (3.0 * (hi - lo)) - 2.0 * ref * 0.5 * (hi + lo) + ref**2).sum()
    return float(torch.sqrt(mean_sq))


def evaluate_run(
    system: System, result: Result, *, function: str, dim: int, seed: int, shifted: bool, rotated: bool = False
) -> Dict[str, Any]:
    """One JSON row of the benchmark table (``function`` is the plain name; ``rotated`` says whether it was rotated)."""
    ref = system.reference_positions.reshape(-1).cpu().numpy()
    distance = float(np.linalg.norm(np.asarray(result.positions).reshape(-1) - ref))
    low = result.extra.get("lowest_seen_positions")
    low_distance = float(np.linalg.norm(np.asarray(low).reshape(-1) - ref)) if low is not None else float("nan")
    final = result.extra.get("final_candidate_positions")
    final_distance = float(np.linalg.norm(np.asarray(final).reshape(-1) - ref)) if final is not None else float("nan")
    return {
        "function": function,
        "dim": dim,
        "method": result.method,
        "seed": seed,
        "shifted": shifted,
        "rotated": bool(rotated),
        "half_width": float(system.metadata["half_width"]),
        "distance": distance,
        "energy": float(result.energy),
        "avg_error_per_dim": distance / math.sqrt(dim),
        "lowest_seen_distance": low_distance,
        "lowest_seen_energy": float(result.extra.get("lowest_seen_energy", float("nan"))),
        "final_candidate_distance": final_distance,
        "wall_s": float(result.wall_s),
        "force_calls": int(result.force_calls),
        "best_round": result.extra.get("best_round"),
        "rounds": result.extra.get("rounds"),
        "uniform_rms_distance": uniform_rms_distance(system),
    }


def run_benchmark(
    config: SyntheticBenchConfig,
    *,
    log: Callable[[str], None] = print,
    on_row: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> List[Dict[str, Any]]:
    """Run every (function, dim, seed, method) and return the rows.

    Args:
        config: What to run.
        log: Where progress lines go.
        on_row: Called with each row as soon as it exists (e.g. to save partial results).

    Returns:
        One row per run (see :func:`evaluate_run`).
    """
    warm_up()  # torch's one-time optimizer import is charged to no method
    rows: List[Dict[str, Any]] = []
    for function in config.functions:
        for dim in config.dims:
            for seed in config.seeds:
                for method in config.methods:
                    system = make_system(
                        function,
                        dim,
                        seed,
                        shifted=config.shifted,
                        box=config.box,
                        shift_fraction=config.shift_fraction,
                        rotated=config.rotated,
                        device=config.device,
                    )
                    rotated = bool(system.metadata["rotated"])
                    start = time.perf_counter()
                    result = run_method(
                        method, system, config.budget_s, seed, max_rounds=config.max_rounds, options=config.options
                    )
                    row = evaluate_run(
                        system,
                        result,
                        function=parse_name(function)[0].name,
                        dim=dim,
                        seed=seed,
                        shifted=config.shifted,
                        rotated=rotated,
                    )
                    if method in PLNET_METHODS and config.options:
                        row["options"] = dict(config.options)
                    rows.append(row)
                    tag = "rotated " if rotated else ""
                    log(
                        f"{tag}{row['function']} D={dim} seed={seed} {method:12s} distance={row['distance']:.3f} "
                        f"lowest-seen={row['lowest_seen_distance']:.3f} energy={row['energy']:.4g} "
                        f"calls={row['force_calls']} ({time.perf_counter() - start:.1f} s)"
                    )
                    stem = (
                        f"{'rotated_' if rotated else ''}{row['function']}_d{dim}_s{seed}_{method}"
                        f"{'' if config.shifted else '_noshift'}"
                    )
                    if config.history_dir:
                        result.save(Path(config.history_dir) / f"{stem}.json")
                    if config.plot_dir and method in PLNET_METHODS:
                        name = f"{stem}.png"
                        plot_rounds(
                            result.history,
                            Path(config.plot_dir) / name,
                            title=f"{method} on {tag}{row['function']} D={dim} seed {seed}",
                        )
                    if on_row is not None:
                        on_row(row)
    return rows


def plot_rounds(history: Sequence[Dict[str, Any]], path: Path, *, title: str = "") -> Path:
    """Per-round figure of a PLNet run, like the action paper's Figures 2-4.

    Panels: true energy of the candidate (and of the best candidate), distance
    of the candidate (and of the best candidate) to the known minimum, and the
    losses (trajectory, fresh-sample regression, gradient mismatch).

    Args:
        history: The trainer's history rows.
        path: Output PNG.
        title: Figure title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [row["round"] for row in history]
    fig, axes = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    panels = [
        (("candidate_energy", "best_energy"), "true energy"),
        (("candidate_distance", "best_distance"), "distance to global min"),
        (("trajectory_loss", "regression_loss", "grad_match_loss"), "loss"),
    ]
    for ax, (keys, label) in zip(axes, panels):
        for key in keys:
            ys = [row.get(key, float("nan")) for row in history]
            if any(isinstance(y, (int, float)) and math.isfinite(y) for y in ys):
                ax.plot(rounds, ys, marker=".", lw=1, label=key)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[-1].set_yscale("log")
    axes[-1].set_xlabel("round (0 = after warm start)")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def format_rows(rows: Sequence[Dict[str, Any]]) -> str:
    """Markdown table of every run."""
    cols = [
        "function",
        "dim",
        "shifted",
        "rotated",
        "seed",
        "method",
        "distance",
        "lowest_seen_distance",
        "avg_error_per_dim",
        "energy",
        "wall_s",
        "force_calls",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
    return "\n".join(lines)


def median_rows(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Medians over seeds per (function, dim, method, shifted, rotated); rows without ``rotated`` count as unrotated."""
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for row in rows:
        key = (row["function"], row["dim"], row["method"], row["shifted"], bool(row.get("rotated", False)))
        groups.setdefault(key, []).append(row)
    out = []
    for (function, dim, method, shifted, rotated), group in groups.items():
        med = {
            "function": function,
            "dim": dim,
            "method": method,
            "shifted": shifted,
            "rotated": rotated,
            "seeds": len(group),
        }
        for key in (
            "distance",
            "lowest_seen_distance",
            "avg_error_per_dim",
            "final_candidate_distance",
            "energy",
            "wall_s",
            "force_calls",
            "uniform_rms_distance",
        ):
            med[key] = float(statistics.median(r[key] for r in group))
        out.append(med)
    return out


def format_medians(rows: Sequence[Dict[str, Any]]) -> str:
    """Markdown table of the medians over seeds."""
    cols = [
        "function",
        "dim",
        "shifted",
        "rotated",
        "method",
        "seeds",
        "distance",
        "lowest_seen_distance",
        "avg_error_per_dim",
        "final_candidate_distance",
        "energy",
        "wall_s",
        "force_calls",
        "uniform_rms_distance",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in median_rows(rows):
        lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``actionmin bench synthetic``."""
    p = argparse.ArgumentParser(
        prog="actionmin bench synthetic",
        description="Action trainer vs baselines on shifted synthetic functions, same wall-clock budget each.",
        epilog="example:\n  actionmin bench synthetic --functions alpine1 --dims 10 --seeds 1 --budget-s 2 --methods "
        "adam,cma",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--functions", default="alpine1,schaffer_f7", help="comma-separated function names")
    p.add_argument("--dims", default="100", help="comma-separated dimensions")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0 .. N-1)")
    p.add_argument("--seed-offset", type=int, default=0, help="first seed")
    p.add_argument("--budget-s", type=float, default=120.0, help="wall-clock budget per run, seconds")
    p.add_argument(
        "--methods",
        default=",".join(METHOD_NAMES),
        help=f"comma-separated registry methods, of: {', '.join(METHOD_NAMES)} (default: all; see 'actionmin methods')",
    )
    p.add_argument("--no-shift", action="store_true", help="the paper's exact setting: minimum at the box centre")
    p.add_argument(
        "--rotate",
        action="store_true",
        help="rotate each function about its minimum by a seeded random orthogonal matrix (rows say rotated)",
    )
    p.add_argument(
        "--box",
        choices=("paper", "default"),
        default="paper",
        help="paper: half-width 100 for the action paper's functions; default: Plevris & Solorzano",
    )
    p.add_argument("--json", default=None, help="write the rows (and medians) to this JSON file")
    p.add_argument("--history-dir", default=None, help="write each run's Result (with history) here")
    p.add_argument("--plot-dir", default=None, help="write a per-round plot of each action/random_only run here")
    p.add_argument(
        "--max-rounds", type=int, default=None, help="round limit of the PLNet trainers (budget still applies)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch and OpenBLAS threads (default 1)")
    p.add_argument(
        "--device", default="cpu", help="torch device of the oracle and the PLNet trainers: cpu (default) or cuda"
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an ActionConfig setting of action and random_only (repeatable), e.g. --option region_shape=ball",
    )
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark from command-line arguments; returns an exit code."""
    args = build_parser().parse_args(argv)
    try:
        config = SyntheticBenchConfig(
            functions=[f.strip() for f in args.functions.split(",") if f.strip()],
            dims=[int(d) for d in args.dims.split(",") if d.strip()],
            seeds=list(range(args.seed_offset, args.seed_offset + args.seeds)),
            budget_s=args.budget_s,
            methods=[m.strip() for m in args.methods.split(",") if m.strip()],
            shifted=not args.no_shift,
            box=args.box,
            history_dir=args.history_dir,
            plot_dir=args.plot_dir,
            max_rounds=args.max_rounds,
            rotated=args.rotate,
            device=args.device,
            options=parse_options(args.option),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows: List[Dict[str, Any]] = []
    command = "actionmin bench synthetic " + " ".join(argv if argv is not None else sys.argv[1:])

    def save(row: Dict[str, Any]) -> None:
        rows.append(row)
        if args.json:
            payload = {
                "command": command,
                "config": dataclasses.asdict(config),
                "torch_threads": torch.get_num_threads(),
                "rows": rows,
                "medians": median_rows(rows),
            }
            atomic_write_text(args.json, json.dumps(payload, indent=1))

    n_threads = max(1, args.threads)
    with torch_threads(n_threads), blas_threads(n_threads):
        run_benchmark(config, on_row=save)
    print()
    print(format_rows(rows))
    print()
    print("Medians over seeds:")
    print(format_medians(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
