"""Cluster benchmark: time and force calls to the global minimum of LJ/BLJ clusters.

Every method runs in the same process, on the same system, with the same
wall-clock budget per run, from a random start in the system's box drawn
from the run's seed. A run *succeeds* when it finds a minimum within
``--tolerance`` (default 1e-4 epsilon) of the system's reference energy
(Cambridge Cluster Database for LJ_n). Systems without a reference (BLJ100)
report only the best energy.

Methods of this package are looked up by name in the method registry
(:data:`openmm_actionmin.registry.METHODS`, every cluster method:
:data:`REGISTRY_METHODS`) and run as ``METHODS[name].run(system,
RunConfig(...))``, so a name means here what it means in ``minimize()`` and on
the command line:

* ``basin_hopping``: batched basin hopping
  (:func:`openmm_actionmin.search.basin_hopping.basin_hopping`; ``--walkers``
  B = 16, 4 with one-phase quenches on clusters of several atom types,
  streamed batched L-BFGS quench, T = 0.8, step 0.4 adapted to 50 %
  acceptance, half of the proposals angular moves of the least-coordinated
  atom (``--angular-prob`` 0.5), the worst quarter of the walkers reseeded
  from the 8 lowest minima every ``--reseed-interval`` = 10 hops; ``--label``
  renames the rows to compare settings). Walker 0 starts at the run's random
  start, the others at random points of the box.
* ``basin_hopping_lattice``: the same, but walkers 1-3 start from the best
  lattice-searched structure of each packing motif (icosahedral, decahedral,
  fcc; :mod:`openmm_actionmin.search.lattices`, Northby-style lattice
  search, about 0.1-0.4 s, inside the timed budget). It uses prior knowledge
  of cluster packings, which the blind methods do not, so it is reported as
  a method of its own.
* ``scipy_basinhopping``: SciPy's basinhopping as the registry calls it on
  clusters (unbounded L-BFGS-B, SciPy's own steps, T = 0.8, step 0.4);
  ``scipy_basinhopping_unbounded`` is the same call under the name that
  stored rows use.
* ``action``: the PLNet action trainer (:mod:`openmm_actionmin.search.action`)
  for the whole budget, its candidates polished by L-BFGS.
* ``hybrid``: the action trainer for ``--action-fraction`` of the budget, then
  basin hopping (``--walkers`` and the other basin-hopping options) seeded
  with its quenched candidates for the rest; times and force calls add up.

Basin hopping and the hybrid report the time and force calls at which they
first reach the target. For the other registry methods the benchmark watches
the oracle: the time to the GM is when the run first evaluates a configuration
within the tolerance, counted when the run's answer is the GM.

Bench-only peers (other programs' basin hopping, not methods of this package;
:data:`PEERS`):

* ``scipy_basinhopping_unbounded``: ``scipy.optimize.basinhopping`` as it is
  usually called on clusters: unbounded L-BFGS-B quench with our torch energy
  and gradient (the same oracle), T = 0.8, step 0.4, stopped by its callback
  at the reference energy or the budget: the registry's ``scipy_basinhopping``
  on a cluster, from the start every method of the seed gets.
* ``ase_basinhopping``: ``ase.optimize.basin.BasinHopping`` with ASE's
  ``LennardJones`` calculator (rc = 100 sigma, unsmoothed, so energies match
  the uncut model to ~1e-9), LBFGS quench to fmax 1e-3 (at most 2000 steps), temperature 0.8:
  with epsilon = 1 eV the reduced temperature is ASE's ``kT`` in eV. Run in
  chunks of 5 hops; an observer records the time the reference is reached.
  ASE's chain uses NumPy's global random state (seeded per run).
  Single-component LJ only.

Rows (JSON list, rewritten atomically after every run; existing rows of the
same system/method/seed/budget are kept and skipped, so an interrupted
benchmark resumes) hold at least: ``system``, ``method``, ``seed``,
``success``, ``time_to_gm_s``, ``force_calls`` (to the GM, or in total when it
was not found), ``best_energy``, ``reference_energy``, ``budget_s``,
``wall_s``, ``total_force_calls``.

The summary prints per system and method the success rate, the median time
and force calls to the GM over *all* runs (a failed run counts as "longer than
the budget", so a median above the budget prints as ``>budget``), the best
energy and the budget.

Command line (``actionmin bench clusters ...``, ``python -m
openmm_actionmin.benchmarks.clusters`` or ``bench/clusters.py``)::

    --systems LJ13,LJ38,LJ55,LJ75,BLJ100 \\
        --methods basin_hopping_lattice,basin_hopping,scipy_basinhopping_unbounded \\
        --seeds 10 --budget-s 40 --json lj_lattice_10seeds_40s.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..fileio import atomic_write_text
from ..registry import METHODS as REGISTRY, METHODS_FOR, RunConfig
from ..result import Result
from ..search.basin_hopping import BasinHoppingConfig, basin_hopping, default_config, is_multicomponent
from ..search.lattices import DEFAULT_LATTICE_STARTS, lattice_walkers
from ..search.local import torch_threads
from ..systems.base import System
from ..systems.clusters import named_system
from ..threads import blas_threads
from .warmup import warm_up

#: Defaults of our basin hopping (walkers, angular moves) come from its config.
_BH = BasinHoppingConfig()

#: Methods of this package the benchmark runs: every cluster method of the registry.
REGISTRY_METHODS = METHODS_FOR["cluster"]

#: Bench-only peers: other programs' basin hopping, not methods of this package.
PEERS = ("scipy_basinhopping_unbounded", "ase_basinhopping")

#: Methods in table order.
METHOD_NAMES = REGISTRY_METHODS + PEERS

#: ``--methods`` by default: the table of ``bench/results/clusters/lj_lattice_10seeds_40s.json``.
DEFAULT_METHODS = ("basin_hopping_lattice", "basin_hopping", "scipy_basinhopping_unbounded")

#: Walkers of ``basin_hopping_lattice`` that start from lattice searches (one per motif).
LATTICE_STARTS = DEFAULT_LATTICE_STARTS


class MethodUnavailable(RuntimeError):
    """A method cannot run here (missing module, unsupported system)."""


def _random_start(system: System, seed: int) -> torch.Tensor:
    """The run's random start ``[N, 3]`` (same for every method of a seed)."""
    gen = torch.Generator().manual_seed(10_000 + int(seed))
    return system.space.to_config(system.space.sample(1, gen))[0].to(torch.float64)


def _row(
    system: System,
    method: str,
    seed: int,
    budget_s: float,
    tol: float,
    *,
    best_energy: float,
    t_gm: Optional[float],
    calls_gm: Optional[int],
    wall_s: float,
    total_calls: int,
    **extra,
) -> Dict[str, Any]:
    ref = system.reference_energy
    success = None if ref is None else bool(t_gm is not None)
    return {
        "system": system.name,
        "method": method,
        "seed": int(seed),
        "success": success,
        "time_to_gm_s": t_gm,
        "force_calls": int(calls_gm) if calls_gm is not None else int(total_calls),
        "force_calls_to_gm": calls_gm,
        "best_energy": float(best_energy),
        "reference_energy": ref,
        "tolerance": tol,
        "budget_s": float(budget_s),
        "wall_s": float(wall_s),
        "total_force_calls": int(total_calls),
        **extra,
    }


# ------------------------------------------------------------------ methods
class _TargetWatch:
    """Record when a run first evaluates a configuration at or below ``target`` (time and force calls).

    It wraps the oracle instance's counting evaluation (every energy and force
    of every method passes through it), so it sees what the method sees and
    adds no evaluation of its own.
    """

    def __init__(self, system: System, target: Optional[float]) -> None:
        oracle = system.oracle
        self.time_s: Optional[float] = None
        self.calls: Optional[int] = None
        self._calls0 = oracle.counters.force_calls
        self._t0 = time.perf_counter()
        if target is None:
            return
        evaluate = oracle._raw

        def watched(x: torch.Tensor):
            energy, forces = evaluate(x)
            if self.time_s is None and bool((energy <= target).any()):
                self.time_s = time.perf_counter() - self._t0
                self.calls = oracle.counters.force_calls - self._calls0
            return energy, forces

        oracle._raw = watched


def run_registry_method(
    method: str,
    system: System,
    seed: int,
    budget_s: float,
    tol: float,
    options: Optional[Dict[str, Any]] = None,
    label: Optional[str] = None,
) -> Dict[str, Any]:
    """Run the registry's ``method`` on ``system`` from the run's random start; one row.

    Args:
        method: A cluster method of the registry (:data:`REGISTRY_METHODS`).
        system: A fresh cluster system (its oracle is watched for the target).
        seed: Seed of the run (and of its random start).
        budget_s: Wall-clock budget, seconds.
        tol: Success tolerance above the reference energy.
        options: Fields of the method's settings dataclass
            (``REGISTRY[method].settings_for("cluster")``).
        label: The row's method name (default ``method``).

    Returns:
        The row (see the module docstring); basin-hopping rows also hold
        ``hops``, ``acceptance`` and the walker settings.
    """
    ref = system.reference_energy
    system = dataclasses.replace(system, start_positions=_random_start(system, seed))
    watch = _TargetWatch(system, None if ref is None else ref + tol)
    res: Result = REGISTRY[method].run(system, RunConfig(seed=seed, budget_s=budget_s, options=dict(options or {})))
    e = res.extra
    if "time_to_target_s" in e:  # basin hopping and the hybrid time the target themselves
        t_gm, calls_gm = e["time_to_target_s"], e["force_calls_to_target"]
    elif ref is not None and res.energy <= ref + tol:
        t_gm = watch.time_s if watch.time_s is not None else res.wall_s
        calls_gm = watch.calls if watch.calls is not None else res.force_calls
    else:
        t_gm = calls_gm = None
    columns: Dict[str, Any] = {}
    if "hops" in e:
        columns.update(hops=e["hops"], acceptance=e.get("acceptance_rate"))
    cfg = e.get("config") if isinstance(e.get("config"), dict) else {}
    if "n_walkers" in cfg:
        columns.update(
            walkers=cfg["n_walkers"],
            angular_prob=cfg["angular_prob"],
            reseed_interval=cfg["reseed_interval"],
            temperature=cfg["temperature"],
            quench_fmax=cfg["quench_fmax"],
            lattice_starts=cfg["lattice_starts"],
        )
    if "action_s" in e:
        columns.update(action_s=e["action_s"], action_best_energy=e.get("action_best_energy"))
    if "quenches" in e and "hops" not in e:
        columns.update(hops=e["quenches"])
    return _row(
        system,
        label or method,
        seed,
        budget_s,
        tol,
        best_energy=res.energy,
        t_gm=t_gm,
        calls_gm=calls_gm,
        wall_s=res.wall_s,
        total_calls=res.force_calls,
        **columns,
    )


def _bh_options(
    walkers: Optional[int],
    angular_prob: float,
    reseed_interval: int,
    temperature: float,
    quench_fmax: float,
    tol: float,
) -> Dict[str, Any]:
    """BasinHoppingConfig fields of the benchmark's basin-hopping options (``walkers=None``: the system's default)."""
    opts = dict(
        angular_prob=angular_prob,
        reseed_interval=reseed_interval,
        temperature=temperature,
        quench_fmax=quench_fmax,
        target_tolerance=tol,
    )
    if walkers is not None:
        opts["n_walkers"] = walkers
    return opts


def run_basin_hopping(
    system: System,
    seed: int,
    budget_s: float,
    tol: float,
    walkers: Optional[int] = None,
    angular_prob: float = _BH.angular_prob,
    starts: Optional[torch.Tensor] = None,
    reseed_interval: int = _BH.reseed_interval,
    temperature: float = _BH.temperature,
    quench_fmax: float = _BH.quench_fmax,
    lattice_starts: int = 0,
    **_,
) -> Dict[str, Any]:
    """The registry's ``basin_hopping`` (``basin_hopping_lattice`` when ``lattice_starts``); one row.

    ``starts`` (start configurations ``[S, N, 3]``, e.g. a hybrid's
    candidates) runs the same settings from those starts.
    """
    opts = _bh_options(walkers, angular_prob, reseed_interval, temperature, quench_fmax, tol)
    name = "basin_hopping_lattice" if lattice_starts else "basin_hopping"
    if starts is None:
        return run_registry_method(name, system, seed, budget_s, tol, opts)
    cfg = default_config(system, seed=seed, budget_s=budget_s, **opts)
    cfg = dataclasses.replace(cfg, lattice_starts=lattice_walkers(cfg.n_walkers, lattice_starts))
    res = basin_hopping(system, cfg, starts=starts)
    e = res.extra
    return _row(
        system,
        name,
        seed,
        budget_s,
        tol,
        best_energy=res.energy,
        t_gm=e["time_to_target_s"],
        calls_gm=e["force_calls_to_target"],
        wall_s=res.wall_s,
        total_calls=res.force_calls,
        hops=e["hops"],
        walkers=cfg.n_walkers,
        angular_prob=angular_prob,
        acceptance=e["acceptance_rate"],
        reseed_interval=reseed_interval,
        temperature=temperature,
        quench_fmax=quench_fmax,
        lattice_starts=cfg.lattice_starts,
    )


def run_basin_hopping_lattice(system: System, seed: int, budget_s: float, tol: float, **settings) -> Dict[str, Any]:
    """The registry's ``basin_hopping_lattice`` (lattice starts, one walker per motif); one row."""
    settings.pop("lattice_starts", None)
    return run_basin_hopping(system, seed, budget_s, tol, lattice_starts=LATTICE_STARTS, **settings)


def run_registry_hybrid(
    system: System,
    seed: int,
    budget_s: float,
    tol: float,
    walkers: Optional[int] = None,
    action_fraction: float = 0.3,
    angular_prob: float = _BH.angular_prob,
    reseed_interval: int = _BH.reseed_interval,
    temperature: float = _BH.temperature,
    quench_fmax: float = _BH.quench_fmax,
    **_,
) -> Dict[str, Any]:
    """The registry's ``hybrid`` with the benchmark's basin-hopping options; one row."""
    stage = default_config(system, **_bh_options(walkers, angular_prob, reseed_interval, temperature, quench_fmax, tol))
    return run_registry_method(
        "hybrid", system, seed, budget_s, tol, {"action_fraction": action_fraction, "basin_hopping": stage}
    )


def _registry_runner(method: str) -> Callable[..., Dict[str, Any]]:
    """A row runner of the registry's ``method`` with its cluster defaults (the benchmark's options do not apply)."""

    def run(system: System, seed: int, budget_s: float, tol: float, **_) -> Dict[str, Any]:
        return run_registry_method(method, system, seed, budget_s, tol)

    run.__name__ = f"run_{method}"
    run.__doc__ = f"The registry's ``{method}`` with its cluster defaults; one row."
    return run


def run_scipy_basinhopping_unbounded(system: System, seed: int, budget_s: float, tol: float, **_) -> Dict[str, Any]:
    """The registry's ``scipy_basinhopping`` on a cluster (unbounded L-BFGS-B, T = 0.8, step 0.4), from the start
    every method of the seed gets; one row."""
    return run_registry_method(
        "scipy_basinhopping",
        system,
        seed,
        budget_s,
        tol,
        {"target_tolerance": tol},
        label="scipy_basinhopping_unbounded",
    )


def run_ase_basinhopping(system: System, seed: int, budget_s: float, tol: float, **_) -> Dict[str, Any]:
    """Bench-only peer: ``ase.optimize.basin.BasinHopping`` with ASE's LennardJones; one row."""
    from ase.calculators.lj import LennardJones
    from ase.optimize import LBFGS
    from ase.optimize.basin import BasinHopping

    from ..structures import to_ase

    if is_multicomponent(system) or getattr(system.oracle, "charges", None) is not None:
        raise MethodUnavailable(f"ase_basinhopping supports single-component LJ only, not {system.name}")

    class BoundedLBFGS(LBFGS):
        """ASE's LBFGS with at most 2000 steps per quench (ASE's own default is unbounded;
        an LJ7 quench was seen to run for minutes without reaching fmax 1e-3)."""

        def run(self, fmax=0.05, steps=2000, **kwargs):
            return super().run(fmax=fmax, steps=min(steps, 2000), **kwargs)

    class CountingLJ(LennardJones):
        calls = 0

        def calculate(self, *args, **kwargs):
            CountingLJ.calls += 1
            super().calculate(*args, **kwargs)

    ref = system.reference_energy
    atoms = to_ase(_random_start(system, seed).numpy(), system.oracle.units)
    atoms.calc = CountingLJ(sigma=1.0, epsilon=1.0, rc=100.0, smooth=False)
    np.random.seed(seed)
    t0 = time.perf_counter()
    bh = BasinHopping(
        atoms,
        temperature=0.8,
        optimizer=BoundedLBFGS,
        fmax=1e-3,
        dr=0.4,
        logfile=None,
        trajectory=None,
        optimizer_logfile=None,
        local_minima_trajectory=None,
        adjust_cm=True,
    )
    state = {"t_gm": None, "calls_gm": None}

    def observer():
        if ref is not None and state["t_gm"] is None and bh.Emin <= ref + tol:
            state["t_gm"] = time.perf_counter() - t0
            state["calls_gm"] = CountingLJ.calls

    bh.attach(observer)
    observer()
    hops = 0
    while state["t_gm"] is None and time.perf_counter() - t0 < budget_s:
        bh.run(5)
        hops += 5
    wall = time.perf_counter() - t0
    return _row(
        system,
        "ase_basinhopping",
        seed,
        budget_s,
        tol,
        best_energy=float(bh.Emin),
        t_gm=state["t_gm"],
        calls_gm=state["calls_gm"],
        wall_s=wall,
        total_calls=CountingLJ.calls,
        hops=hops,
    )


#: Name -> row runner ``(system, seed, budget_s, tol, **bench_options) -> row``: the registry's
#: cluster methods (:data:`REGISTRY_METHODS`), then the bench-only peers (:data:`PEERS`).
METHODS: Dict[str, Callable[..., Dict[str, Any]]] = {
    "basin_hopping_lattice": run_basin_hopping_lattice,
    "basin_hopping": run_basin_hopping,
    "hybrid": run_registry_hybrid,
    "action": _registry_runner("action"),
    "scipy_basinhopping": _registry_runner("scipy_basinhopping"),
    "reparam": _registry_runner("reparam"),
    "scipy_basinhopping_unbounded": run_scipy_basinhopping_unbounded,
    "ase_basinhopping": run_ase_basinhopping,
}


# ------------------------------------------------------------------ driver
def _median_or_inf(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.inf


def summarize(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per (system, method): runs, successes, medians over all runs (failures = inf), best energy, budget."""
    out = []
    keys = []
    for r in rows:
        k = (r["system"], r["method"])
        if k not in keys:
            keys.append(k)
    for system, method in keys:
        rs = [r for r in rows if r["system"] == system and r["method"] == method]
        ok = [r for r in rs if r.get("success")]
        times = [r["time_to_gm_s"] if r.get("success") else math.inf for r in rs]
        calls = [r["force_calls_to_gm"] if r.get("success") else math.inf for r in rs]
        out.append(
            {
                "system": system,
                "method": method,
                "runs": len(rs),
                "successes": len(ok),
                "has_reference": rs[0].get("reference_energy") is not None,
                "median_time_to_gm_s": _median_or_inf(times),
                "median_force_calls_to_gm": _median_or_inf(calls),
                "best_energy": min(r["best_energy"] for r in rs),
                "budget_s": max(r["budget_s"] for r in rs),
            }
        )
    return out


#: Methods the summary gives time ratios against, when they ran.
SCIPY_METHODS = ("scipy_basinhopping", "scipy_basinhopping_unbounded")


def format_summary(summary: Sequence[Dict[str, Any]]) -> str:
    """A plain-text table of :func:`summarize` output, with time ratios to SciPy's basin hopping."""
    width = max([20] + [len(s["method"]) for s in summary])
    lines = [
        f"{'system':8s} {'method':{width}s} {'success':>8s} {'med t_GM/s':>11s} {'med calls_GM':>13s} "
        f"{'best E':>13s} {'budget/s':>9s}"
    ]
    for s in summary:
        over = f">{s['budget_s']:.0f}"
        t = s["median_time_to_gm_s"]
        c = s["median_force_calls_to_gm"]
        rate = f"{s['successes']}/{s['runs']}" if s["has_reference"] else "n/a"
        lines.append(
            f"{s['system']:8s} {s['method']:{width}s} {rate:>8s} {(f'{t:.2f}' if math.isfinite(t) else over):>11s} "
            f"{(f'{c:.0f}' if math.isfinite(c) else '-'):>13s} {s['best_energy']:13.6f} {s['budget_s']:9.0f}"
        )
    for scipy in SCIPY_METHODS:
        scipy_t = {s["system"]: s["median_time_to_gm_s"] for s in summary if s["method"] == scipy}
        for s in summary:
            ref = scipy_t.get(s["system"])
            if (
                s["method"] not in SCIPY_METHODS
                and ref is not None
                and math.isfinite(ref)
                and math.isfinite(s["median_time_to_gm_s"])
            ):
                lines.append(
                    f"{s['system']}: median time-to-GM of {s['method']} / {scipy} = "
                    f"{s['median_time_to_gm_s'] / ref:.2f}"
                )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's argument parser."""
    p = argparse.ArgumentParser(
        prog="actionmin bench clusters",
        description=__doc__.split("\n\n")[0],
        epilog="example:\n  actionmin bench clusters --systems LJ13 --methods basin_hopping_lattice --seeds 1 "
        "--budget-s 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--systems",
        default="LJ13,LJ38",
        help="comma-separated names: LJ<n>, BLJ100 (stridernet), ION<n> (default LJ13,LJ38)",
    )
    p.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated; the package's cluster methods {','.join(REGISTRY_METHODS)} (see 'actionmin methods') "
        f"or the bench-only peers {','.join(PEERS)} (default {','.join(DEFAULT_METHODS)})",
    )
    p.add_argument("--seeds", type=int, default=3, help="number of seeds 0..N-1 (default 3)")
    p.add_argument("--seed-offset", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--budget-s", type=float, default=60.0, help="wall-clock budget per run in seconds (default 60)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="success if energy <= reference + tolerance (epsilon; default 1e-4)",
    )
    p.add_argument(
        "--walkers",
        type=int,
        default=None,
        help="walkers of basin_hopping, basin_hopping_lattice and the hybrid's basin hopping (default "
        f"{_BH.n_walkers}; "
        "4 on clusters of several atom types)",
    )
    p.add_argument(
        "--angular-prob",
        type=float,
        default=_BH.angular_prob,
        help=f"probability of an angular move in our basin hopping (default {_BH.angular_prob})",
    )
    p.add_argument(
        "--reseed-interval",
        type=int,
        default=_BH.reseed_interval,
        help="our basin hopping: reseed the worst walkers from the best minima every this many hops (default "
        f"{_BH.reseed_interval}; 0: independent walkers)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=_BH.temperature,
        help=f"our basin hopping's temperature (default {_BH.temperature}, as scipy/ASE here)",
    )
    p.add_argument(
        "--quench-fmax",
        type=float,
        default=_BH.quench_fmax,
        help=f"our basin hopping's quench threshold (default {_BH.quench_fmax})",
    )
    p.add_argument(
        "--label",
        default=None,
        help="method name written for our basin hopping rows (default basin_hopping), to compare settings",
    )
    p.add_argument(
        "--action-fraction", type=float, default=0.3, help="budget fraction of the action phase in hybrid (default 0.3)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch and OpenBLAS CPU threads for every method (default 1)")
    p.add_argument("--json", default=None, help="write rows to this JSON file (resumes from it)")
    p.add_argument("--no-resume", action="store_true", help="ignore rows already in --json")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; returns the exit code."""
    args = build_parser().parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHOD_NAMES)}")
    if not args.budget_s > 0:
        raise ValueError(f"--budget-s must be positive, got {args.budget_s}")
    for name in systems:
        named_system(name)  # fail early on a bad name
    path = Path(args.json) if args.json else None
    rows: List[Dict[str, Any]] = []
    if path is not None and path.exists() and not args.no_resume:
        rows = json.loads(path.read_text())
    done = {(r["system"], r["method"], r["seed"], r["budget_s"]) for r in rows}
    seeds = range(args.seed_offset, args.seed_offset + args.seeds)
    skipped: Dict[str, str] = {}
    warm_up()  # torch's one-time optimizer import is charged to no method
    with torch_threads(args.threads), blas_threads(args.threads):
        for name in systems:
            for seed in seeds:
                for method in methods:
                    label = args.label if (method.startswith("basin_hopping") and args.label) else method
                    if (named_system(name).name, label, seed, float(args.budget_s)) in done or method in skipped:
                        continue
                    system = named_system(name)
                    try:
                        row = METHODS[method](
                            system,
                            seed,
                            args.budget_s,
                            args.tolerance,
                            walkers=args.walkers,
                            angular_prob=args.angular_prob,
                            action_fraction=args.action_fraction,
                            reseed_interval=args.reseed_interval,
                            temperature=args.temperature,
                            quench_fmax=args.quench_fmax,
                        )
                        row["method"] = label
                    except ImportError as exc:  # an optional dependency of the method is missing
                        print(f"skipping {method}: {exc}", file=sys.stderr)
                        skipped[method] = str(exc)
                        continue
                    except MethodUnavailable as exc:
                        print(f"skipping {method} on {name}: {exc}", file=sys.stderr)
                        continue
                    rows.append(row)
                    t = row["time_to_gm_s"]
                    print(
                        f"{row['system']:8s} {method:20s} seed {seed}: best {row['best_energy']:.6f} "
                        f"t_GM {('%.2f s' % t) if t is not None else '-'} calls {row['force_calls']}",
                        flush=True,
                    )
                    if path is not None:
                        atomic_write_text(path, json.dumps(rows, indent=1))
    print(format_summary(summarize(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
