#!/usr/bin/env python
"""Research variants of the synthetic benchmark's methods (not part of the product).

The product methods are the keys of :data:`openmm_actionmin.benchmarks.synthetic.METHODS`
(``action``, ``random_only``, ``adam``, ``cma``, ``scipy_basinhopping``). The variants here
switch settings of the action trainer on and off, or change how scipy's basin hopping keeps
its steps in the box, so that their effect can be measured against the product methods on
the same shifted functions (the same systems, rows and tables as ``actionmin bench synthetic``).

* :data:`ACTION_VARIANTS`: name -> :class:`~openmm_actionmin.search.action_config.ActionConfig`
  overrides.
* :data:`BASIN_HOPPING_VARIANTS`: name -> keyword arguments of :func:`basinhopping_variant`.

Command line (one thread)::

    python bench/experiments/variants.py --functions alpine1 --dims 100 --seeds 1 --budget-s 60 \\
        --methods action,action_free,basinhopping_reflect

``--methods`` takes variant names and product method names alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

try:
    import openmm_actionmin  # noqa: F401
except ModuleNotFoundError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from openmm_actionmin.benchmarks import synthetic  # noqa: E402
from openmm_actionmin.threads import blas_threads  # noqa: E402
from openmm_actionmin.fileio import atomic_write_text  # noqa: E402
from openmm_actionmin.oracles.synthetic import get_spec  # noqa: E402
from openmm_actionmin.result import Result  # noqa: E402
from openmm_actionmin.search import baselines  # noqa: E402
from openmm_actionmin.search.action_config import BOWL_MODEL, SYNTHETIC_ACTION, ActionConfig  # noqa: E402
from openmm_actionmin.search.local import torch_threads  # noqa: E402
from openmm_actionmin.systems.base import System  # noqa: E402

#: Variants of the action trainer: name -> :class:`ActionConfig` overrides (the product
#: ``action`` is :data:`SYNTHETIC_ACTION`; ``random_only`` trains :data:`BOWL_MODEL` on
#: uniform samples of the whole box).
#:
#: * ``action_free``: ``action`` without the region penalty (the minimiser may leave the
#:   trust region);
#: * ``action_bowl``: the bowl without trust region; ``random_only_trust``: regression on
#:   samples of the trust region, no paths (what the paths add to the zoom);
#: * ``action_flexible``: the :class:`ActionConfig` defaults (2 x 256 units, learned bounds,
#:   quadratic head) and, on that model, ``action_plain`` / ``action_fresh`` / ``action_gm`` /
#:   ``action_both`` (the paper's fixes on and off), ``action_trust`` (trust region, 20 Adam
#:   steps at lr 3e-3 per round) and ``action_cdata`` (offset ``c`` started at the lowest
#:   normalised warm-start energy);
#: * ``action_bowl_cdata``: the bowl with that offset start.
ACTION_VARIANTS: Dict[str, Dict[str, Any]] = {
    "action_free": {**SYNTHETIC_ACTION, "region_penalty": 0.0},
    "action_bowl": dict(BOWL_MODEL),
    "random_only_trust": {**SYNTHETIC_ACTION, "action_weight": 0.0, "grad_match_weight": 0.0},
    "action_flexible": {},
    "action_plain": {"action_weight": 1.0, "grad_match_weight": 0.0, "fresh_weight": 0.0},  # the paper's Algorithm 1
    "action_fresh": {"action_weight": 1.0, "grad_match_weight": 0.0, "fresh_weight": 1.0},  # + fix 2 (fresh samples)
    "action_gm": {"action_weight": 1.0, "grad_match_weight": 0.1, "fresh_weight": 0.0},  # + fix 1 (gradient matching)
    "action_both": {"action_weight": 1.0, "grad_match_weight": 0.1, "fresh_weight": 1.0},  # both fixes
    "action_trust": {"region": "trust", "steps_per_round": 20, "lr": 3e-3},
    "action_cdata": {"offset_init": "data"},
    "action_bowl_cdata": {**BOWL_MODEL, "offset_init": "data"},
}

#: Variants of scipy's basin hopping: name -> keyword arguments of :func:`basinhopping_variant`.
BASIN_HOPPING_VARIANTS: Dict[str, Dict[str, Any]] = {
    "basinhopping_reflect": {"boundary": "reflect"},  # steps mirrored at the walls, not clipped
    "basinhopping_reheat": {
        "reheat_after": 300
    },  # back to the best point with the first step size after 300 idle quenches
}

#: How :class:`BoxStep` keeps a step inside the box.
BOX_BOUNDARIES = ("clip", "reflect")


def reflect_into_box(x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Mirror every coordinate back into ``[lower, upper]`` at the walls.

    Folds any overshoot, however large: the coordinate travels the excess back from the
    wall it crossed (and from the other wall, if it overshoots the whole width again).

    Args:
        x: Points ``[..., d]``.
        lower: Lower bounds ``[d]``.
        upper: Upper bounds ``[d]`` (each above its lower bound).

    Returns:
        Points ``[..., d]`` inside the box.
    """
    width = upper - lower
    y = np.mod(x - lower, 2.0 * width)
    return lower + np.where(y > width, 2.0 * width - y, y)


class BoxStep:
    """Uniform random displacement kept in the box by clipping or reflection (scipy adapts ``stepsize``)."""

    def __init__(
        self, stepsize: float, lower: np.ndarray, upper: np.ndarray, rng: np.random.Generator, boundary: str = "clip"
    ) -> None:
        self.stepsize = stepsize
        self.lower, self.upper, self.rng = lower, upper, rng
        self.boundary = boundary

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x + self.rng.uniform(-self.stepsize, self.stepsize, size=x.shape)
        if self.boundary == "reflect":
            return reflect_into_box(x, self.lower, self.upper)
        return np.clip(x, self.lower, self.upper)


def basinhopping_variant(
    system: System,
    budget_s: float,
    seed: int = 0,
    *,
    boundary: str = "clip",
    reheat_after: Optional[int] = None,
    method_name: str = "basinhopping_variant",
    config: Optional[baselines.ScipyBasinHoppingConfig] = None,
) -> Result:
    """:func:`~openmm_actionmin.search.baselines.scipy_basinhopping` with a boundary rule and reheating.

    With ``boundary="clip"`` and ``reheat_after=None`` it runs exactly what the product
    baseline runs. It uses the baselines module's private helpers (budget tracker, counted
    energy evaluations), so it follows that module's internals.

    Args:
        system: The landscape.
        budget_s: Wall-clock budget in seconds.
        seed: Seed of the start and the steps.
        boundary: What a step that leaves the box does: ``"clip"`` puts the coordinate on the
            wall (a coordinate on the wall stays there for every step that points outwards,
            half of them), ``"reflect"`` mirrors it back inside (every step moves it off the
            wall; the bounded quench can still put it back).
        reheat_after: If set, a run whose best energy has not improved for this many quenches
            (scipy's ``niter_success``) starts again from its best point with the initial step
            size (scipy shrinks the step by 0.9 every 50 quenches while fewer than half are
            accepted). ``None``: a new uniform start only if scipy stops by itself.
        method_name: The ``method`` of the result.
        config: Temperature, step size and quench length (defaults if ``None``).

    Returns:
        A :class:`Result` like the product baseline's, with ``boundary`` and ``reheat_after``
        added to ``extra["config"]``.
    """
    from scipy.optimize import basinhopping

    if boundary not in BOX_BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOX_BOUNDARIES}, got {boundary!r}")
    if reheat_after is not None and reheat_after < 1:
        raise ValueError(f"reheat_after must be a positive number of quenches or None, got {reheat_after}")
    cfg = config if config is not None else baselines.ScipyBasinHoppingConfig()
    tracker = baselines._Tracker(system, budget_s)
    space = system.space
    dtype = space.lower.dtype
    lower = space.lower.cpu().numpy().astype(np.float64)
    upper = space.upper.cpu().numpy().astype(np.float64)
    rng = np.random.default_rng(int(seed))
    gen = torch.Generator().manual_seed(int(seed))
    first_step = cfg.step_fraction * float(np.mean(0.5 * (upper - lower)))
    step = BoxStep(first_step, lower, upper, rng, boundary)
    quenches = [0]

    def fun(x: np.ndarray):
        if tracker.out_of_time():
            raise baselines._BudgetExhausted
        z = torch.as_tensor(x, dtype=dtype).reshape(1, -1).to(space.lower.device)
        e, g = baselines._energy_and_grad(system, z, tracker)
        tracker.row(quenches=quenches[0], stepsize=step.stepsize)
        return float(e[0]), g[0].cpu().numpy().astype(np.float64)

    def callback(x, f, accept):
        quenches[0] += 1
        return tracker.out_of_time()

    restarts = 0
    try:
        while not tracker.out_of_time():
            if reheat_after is not None and tracker.best_z is not None:
                x0 = tracker.best_z.reshape(-1).cpu().numpy().astype(np.float64)
            else:
                x0 = space.sample(1, generator=gen)[0].cpu().numpy().astype(np.float64)
            step.stepsize = first_step
            basinhopping(
                fun,
                x0,
                niter=10**9,
                niter_success=reheat_after,
                T=cfg.temperature,
                minimizer_kwargs={
                    "method": "L-BFGS-B",
                    "jac": True,
                    "bounds": list(zip(lower, upper)),
                    "options": {"maxiter": cfg.local_maxiter},
                },
                take_step=step,
                callback=callback,
                rng=rng,
            )
            restarts += 1
    except baselines._BudgetExhausted:
        pass
    if tracker.best_z is None:
        baselines._energy(system, space.sample(1, generator=gen), tracker)
    tracker.row(force=True, quenches=quenches[0], stepsize=step.stepsize)
    return tracker.result(
        method_name,
        seed,
        tracker.best_z,
        tracker.best_energy,
        {
            "quenches": quenches[0],
            "restarts": restarts,
            "final_stepsize": step.stepsize,
            "config": {**dataclasses.asdict(cfg), "boundary": boundary, "reheat_after": reheat_after},
        },
    )


def _action_variant(name: str) -> Callable[..., Result]:
    def run(system: System, budget_s: float, seed: int, max_rounds: Optional[int] = None) -> Result:
        from openmm_actionmin.search.action import ActionTrainer

        config = ActionConfig(
            seed=seed, budget_s=budget_s, max_rounds=max_rounds, method_name=name, **ACTION_VARIANTS[name]
        )
        return ActionTrainer(system, config).run()

    return run


def _basinhopping_variant(name: str) -> Callable[..., Result]:
    def run(system: System, budget_s: float, seed: int, max_rounds: Optional[int] = None) -> Result:
        return basinhopping_variant(system, budget_s, seed, method_name=name, **BASIN_HOPPING_VARIANTS[name])

    return run


#: Every runnable method: the product methods and the variants, name -> runner(system, budget_s, seed, max_rounds).
METHODS: Dict[str, Callable[..., Result]] = {
    **synthetic.METHODS,
    **{name: _action_variant(name) for name in ACTION_VARIANTS},
    **{name: _basinhopping_variant(name) for name in BASIN_HOPPING_VARIANTS},
}


def run(
    functions: Sequence[str],
    dims: Sequence[int],
    seeds: Sequence[int],
    methods: Sequence[str],
    budget_s: float,
    *,
    shifted: bool = True,
    max_rounds: Optional[int] = None,
    on_row: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> List[Dict[str, Any]]:
    """Run every (function, dim, seed, method) on the benchmark's systems and return the rows.

    Args:
        functions: Function names.
        dims: Dimensions.
        seeds: Seeds (each: one shift, and the seed of every method).
        methods: Keys of :data:`METHODS`.
        budget_s: Wall-clock budget per run, seconds.
        shifted: Shift the minimum (as the benchmark does by default).
        max_rounds: Round limit of the PLNet trainers.
        on_row: Called with each row as soon as it exists.

    Returns:
        One row per run (:func:`openmm_actionmin.benchmarks.synthetic.evaluate_run`).
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    rows: List[Dict[str, Any]] = []
    for function in functions:
        for dim in dims:
            for seed in seeds:
                for method in methods:
                    system = synthetic.make_system(function, dim, seed, shifted=shifted)
                    start = time.perf_counter()
                    result = METHODS[method](system, budget_s, seed, max_rounds=max_rounds)
                    row = synthetic.evaluate_run(
                        system, result, function=get_spec(function).name, dim=dim, seed=seed, shifted=shifted
                    )
                    rows.append(row)
                    print(
                        f"{function} D={dim} seed={seed} {method:20s} distance={row['distance']:.3f} "
                        f"energy={row['energy']:.4g} ({time.perf_counter() - start:.1f} s)",
                        flush=True,
                    )
                    if on_row is not None:
                        on_row(row)
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run variants from the command line; returns an exit code."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--functions", default="alpine1,schaffer_f7")
    p.add_argument("--dims", default="100")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (0 .. N-1)")
    p.add_argument("--budget-s", type=float, default=60.0)
    p.add_argument("--methods", required=True, help=f"comma-separated, of: {', '.join(METHODS)}")
    p.add_argument("--no-shift", action="store_true")
    p.add_argument("--max-rounds", type=int, default=None)
    p.add_argument("--json", default=None, help="write the rows and medians to this JSON file")
    args = p.parse_args(argv)
    rows: List[Dict[str, Any]] = []

    def save(row: Dict[str, Any]) -> None:
        rows.append(row)
        if args.json:
            atomic_write_text(args.json, json.dumps({"rows": rows, "medians": synthetic.median_rows(rows)}, indent=1))

    with torch_threads(1), blas_threads(1):
        run(
            [f for f in args.functions.split(",") if f],
            [int(d) for d in args.dims.split(",") if d],
            list(range(args.seeds)),
            [m for m in args.methods.split(",") if m],
            args.budget_s,
            shifted=not args.no_shift,
            max_rounds=args.max_rounds,
            on_row=save,
        )
    print()
    print(synthetic.format_medians(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
