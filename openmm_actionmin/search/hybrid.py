"""Hybrid search: PLNet action candidates seed basin hopping (clusters and peptides).

:func:`hybrid` is the one hybrid: the action trainer runs for a fraction of
the budget; its final candidate, the lowest point it evaluated and the
system's own start structure (when it has one) become the starts of the one
basin-hopping loop (:mod:`.hopping`), which quenches them and spends the rest
of the budget. Clusters hop with :func:`~.basin_hopping.basin_hopping`
(:func:`hybrid_search`), peptides with
:func:`~.torsion_hopping.torsion_hopping` (``openmm_actionmin.proteins``
builds the torsion-space trainer and calls :func:`hybrid`). Force calls and
wall time of both stages are added up in the returned
:class:`~openmm_actionmin.result.Result`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, List, Optional

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
        quench_fmax: Force threshold of :func:`action_candidates`' quench (the
            hybrid's own starts are quenched by basin hopping).
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

    cfg = ActionConfig(
        seed=seed, budget_s=budget_s, progress=progress, polish_method="lbfgs", polish_steps=2000, polish_fmax=1e-3
    )
    res = ActionTrainer(system, cfg).run()
    cands = [np.asarray(res.positions, dtype=np.float64)]
    low = res.extra.get("lowest_seen_positions")
    if low is not None:
        cands.append(np.asarray(low, dtype=np.float64))
    x = torch.as_tensor(np.stack(cands)).reshape(len(cands), *system.oracle.event_shape)
    x = x.to(dtype=system.oracle.dtype, device=system.oracle.device)
    quench = minimize_batch(system.oracle, x, "lbfgs", fmax=quench_fmax, max_steps=5000)
    return quench.x, quench.energy, res


def hybrid(
    system: System,
    action_config: Any,
    hop: Callable[[List[Any], float], Result],
    *,
    budget_s: float,
    seed: int,
    fraction: float,
    action_history: bool = False,
    target_tolerance: float = 1e-4,
) -> Result:
    """The action trainer for ``fraction`` of the budget, then basin hopping from its candidates.

    Args:
        system: The system the trainer searches (its ``space``) and whose
            ``start_positions``, when set, are one more start.
        action_config: An ``ActionConfig`` (its ``seed``, ``budget_s`` and
            ``method_name`` are set here).
        hop: ``hop(starts, budget_s) -> Result``: the basin-hopping stage,
            given the starts (positions ``[N, 3]``) and the seconds left.
        budget_s: Budget of both stages, seconds.
        seed: Seed of the trainer (the caller seeds ``hop``).
        fraction: Share of the budget given to the trainer, in (0, 1).
        action_history: Put the trainer's history rows (``phase``
            ``"action:..."``) before the hopping rows.
        target_tolerance: Success tolerance of the trainer's candidate when
            the hopping result names a ``target_energy``.

    Returns:
        The hopping stage's Result named ``"hybrid"``, with force calls and
        wall time of both stages, history rows shifted by the trainer's time
        (and force calls), ``time_to_target_s`` and ``force_calls_to_target``
        counted from the start, and ``extra`` keys ``action_s``,
        ``action_wall_s``, ``action_energy``, ``action_best_energy``,
        ``action_force_calls`` and ``hybrid_fraction``.
    """
    from .action import ActionTrainer

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"hybrid fraction must lie in (0, 1), got {fraction}")
    t0 = time.perf_counter()
    cfg = dataclasses.replace(action_config, seed=int(seed), budget_s=float(fraction * budget_s), method_name="hybrid")
    raw = ActionTrainer(system, cfg).run()
    starts: List[Any] = [np.asarray(raw.positions, dtype=np.float64)]
    lowest = raw.extra.get("lowest_seen_positions")
    if lowest is not None and raw.extra.get("lowest_seen_energy", math.inf) < math.inf:
        starts.append(np.asarray(lowest, dtype=np.float64))
    if system.start_positions is not None:
        starts.append(
            np.asarray(
                system.start_positions.detach().cpu().numpy()
                if hasattr(system.start_positions, "detach")
                else system.start_positions,
                dtype=np.float64,
            ).reshape(-1, 3)
        )
    spent = time.perf_counter() - t0
    res = hop(starts, max(budget_s - spent, 0.5))
    calls_a = int(raw.force_calls)
    extra = dict(res.extra)
    for key, offset in (("time_to_target_s", spent), ("force_calls_to_target", calls_a)):
        if extra.get(key) is not None:
            extra[key] = extra[key] + offset
    action_e = float(raw.energy)
    target = extra.get("target_energy")
    if target is not None and math.isfinite(target) and action_e <= target + target_tolerance:
        extra.update(success=True, time_to_target_s=spent, force_calls_to_target=calls_a)
    extra.update(
        action_s=spent,
        action_wall_s=spent,
        action_energy=action_e,
        action_best_energy=action_e,
        action_force_calls=calls_a,
        hybrid_fraction=float(fraction),
    )
    rows = [{**row, "phase": f"action:{row.get('phase', 'train')}"} for row in raw.history] if action_history else []
    rows += [
        {**row, "wall_s": row.get("wall_s", 0.0) + spent, "force_calls": row.get("force_calls", 0) + calls_a}
        for row in res.history
    ]
    return dataclasses.replace(
        res,
        method="hybrid",
        seed=int(seed),
        force_calls=calls_a + int(res.force_calls),
        wall_s=time.perf_counter() - t0,
        history=rows,
        extra=extra,
    )


def hybrid_search(system: System, config: Optional[HybridConfig] = None) -> Result:
    """Action candidates, then batched basin hopping seeded with them (clusters).

    Args:
        system: An atomic system (clusters).
        config: Settings (default :class:`HybridConfig`).

    Returns:
        :class:`Result` named ``"hybrid"`` (see :func:`hybrid`).
    """
    from .action import ActionConfig

    cfg = config or HybridConfig()
    action = ActionConfig(progress=cfg.progress, polish_method="lbfgs", polish_steps=2000, polish_fmax=1e-3)

    def hop(starts: List[Any], budget_s: float) -> Result:
        bh_cfg = dataclasses.replace(cfg.basin_hopping, seed=cfg.seed, budget_s=budget_s, progress=cfg.progress)
        x = torch.as_tensor(np.stack(starts[: bh_cfg.n_walkers])).reshape(-1, *system.oracle.event_shape)
        return basin_hopping(system, bh_cfg, starts=x.to(dtype=torch.float64, device=system.oracle.device))

    return hybrid(
        system,
        action,
        hop,
        budget_s=cfg.budget_s,
        seed=cfg.seed,
        fraction=cfg.action_fraction,
        target_tolerance=cfg.basin_hopping.target_tolerance,
    )
