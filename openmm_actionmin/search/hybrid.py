"""Hybrid search: PLNet action candidates seed batched basin hopping.

The action trainer runs for a fraction of the budget; its final candidate and
the lowest point it evaluated are quenched with batched L-BFGS on the true
energy and become starting walkers of :func:`~.basin_hopping.basin_hopping`,
which spends the rest of the budget. Force calls and wall time of both stages
are added up in the returned :class:`~openmm_actionmin.result.Result`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Optional

import numpy as np
import torch

from ..result import Result
from ..systems.base import System
from .basin_hopping import BasinHoppingConfig, basin_hopping
from .local import minimize_batch


@dataclasses.dataclass
class HybridConfig:
    """Settings of :func:`hybrid_search`.

    Attributes:
        seed: Seed of both stages.
        budget_s: Total wall-clock budget in seconds.
        action_fraction: Share of the budget given to the action trainer.
        quench_fmax: Force threshold of the candidates' quench.
        basin_hopping: Settings of the basin-hopping stage (its ``seed`` and
            ``budget_s`` are overridden).
        progress: Show progress bars.
    """

    seed: int = 0
    budget_s: float = 60.0
    action_fraction: float = 0.3
    quench_fmax: float = 1e-6
    basin_hopping: BasinHoppingConfig = dataclasses.field(default_factory=BasinHoppingConfig)
    progress: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.action_fraction < 1.0:
            raise ValueError(f"action_fraction must lie in (0, 1), got {self.action_fraction}")
        if self.budget_s <= 0:
            raise ValueError(f"budget_s must be positive, got {self.budget_s}")


def action_candidates(system: System, budget_s: float, seed: int, *, quench_fmax: float = 1e-6, progress: bool = False):
    """Train the action PLNet and quench its candidates on the true energy.

    Every round's candidate is quenched by L-BFGS (to fmax 1e-3) inside the
    trainer, which keeps the best quenched structure; at the end that
    structure and the lowest point seen are quenched to ``quench_fmax``.

    Args:
        system: An atomic system.
        budget_s: Training budget in seconds.
        seed: Seed of the trainer.
        quench_fmax: Force threshold of the L-BFGS quench.
        progress: Show the trainer's progress bar.

    Returns:
        ``(x [k, N, 3], energy [k], trainer_result)``: the quenched final
        candidate and lowest point seen (k <= 2).
    """
    from .action import ActionConfig, ActionTrainer

    cfg = ActionConfig(seed=seed, budget_s=budget_s, progress=progress, polish_method="lbfgs", polish_steps=2000, polish_fmax=1e-3)
    res = ActionTrainer(system, cfg).run()
    cands = [np.asarray(res.positions, dtype=np.float64)]
    low = res.extra.get("lowest_seen_positions")
    if low is not None:
        cands.append(np.asarray(low, dtype=np.float64))
    x = torch.as_tensor(np.stack(cands)).reshape(len(cands), *system.oracle.event_shape)
    x = x.to(dtype=system.oracle.dtype, device=system.oracle.device)
    quench = minimize_batch(system.oracle, x, "lbfgs", fmax=quench_fmax, max_steps=5000)
    return quench.x, quench.energy, res


def hybrid_search(system: System, config: Optional[HybridConfig] = None) -> Result:
    """Action candidates, then basin hopping seeded with them.

    Args:
        system: An atomic system (clusters).
        config: Settings (default :class:`HybridConfig`).

    Returns:
        :class:`Result` named ``"hybrid"``; ``extra`` holds the basin-hopping
        stage's keys with ``time_to_target_s`` and ``force_calls_to_target``
        counted from the start of the hybrid run, plus ``action_s`` and
        ``action_best_energy``.
    """
    cfg = config or HybridConfig()
    oracle = system.oracle
    t0 = time.perf_counter()
    calls0 = oracle.counters.force_calls
    x, energy, _ = action_candidates(system, cfg.action_fraction * cfg.budget_s, cfg.seed, quench_fmax=cfg.quench_fmax, progress=cfg.progress)
    action_s = time.perf_counter() - t0
    action_calls = oracle.counters.force_calls - calls0
    remaining = max(cfg.budget_s - action_s, 1.0)
    bh_cfg = dataclasses.replace(cfg.basin_hopping, seed=cfg.seed, budget_s=remaining, progress=cfg.progress)
    bh = basin_hopping(system, bh_cfg, starts=x[: bh_cfg.n_walkers])
    extra = dict(bh.extra)
    for key, offset in (("time_to_target_s", action_s), ("force_calls_to_target", action_calls)):
        if extra.get(key) is not None:
            extra[key] = extra[key] + offset
    best_action = float(energy.min())
    target = extra.get("target_energy")
    if target is not None and math.isfinite(target) and best_action <= target + bh_cfg.target_tolerance:
        extra.update(success=True, time_to_target_s=action_s, force_calls_to_target=action_calls)
    extra.update(action_s=action_s, action_best_energy=best_action)
    history = [dict(row, wall_s=row.get("wall_s", 0.0) + action_s) for row in bh.history]
    return dataclasses.replace(
        bh,
        method="hybrid",
        seed=cfg.seed,
        force_calls=oracle.counters.force_calls - calls0,
        wall_s=time.perf_counter() - t0,
        history=history,
        extra=extra,
    )
