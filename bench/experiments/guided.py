"""Action-guided basin hopping for clusters: the PLNet action trainer as a global step.

A research probe, outside the package: measured against its own ablation and the
registry's ``hybrid`` on LJ38, LJ55, LJ75 and BLJ100, it did not help
(``bench/results/clusters/action_ablation_10seeds_10s.json``, ``docs/decisions.md``).

The action trainer (:class:`~.action.ActionTrainer`) fits its PLNet to the
*quenched* energy ``U~(x) = U(quench(x))``, the transform that makes basin
hopping work, inside a trust region spanned by the lowest minima found so
far. The model's minimiser is proposed to one walker of the one basin-hopping
loop (:class:`~.hopping.BasinHoppingLoop`), whose quench and Metropolis rule
judge it like any other hop. The component is a step proposal
(:class:`ActionGuidedStep`) plugged into :func:`~.basin_hopping.basin_hopping`
through its ``step`` and ``database`` arguments; without it the same call is
plain basin hopping, which makes the ablation exact (same starts, same seed,
same loop).

Permutation copies: the ``K`` lowest minima are mapped to a canonical form
(:func:`canonical_form`: rotation and translation aligned to the best
minimum, atoms matched by Hungarian assignment per species) before they
define the trust region, so the region is spanned by structures and not by
N! relabellings of them. ``canonical=False`` only recentres them (the
ablation of the map).

:func:`guided_basin_hopping` runs it (``GuidedConfig``); the measurement of
the component against its ablation is ``bench/experiments/guided_ablation.py``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from openmm_actionmin.geometry import kabsch_rotation
from openmm_actionmin.oracles.base import EnergyOracle
from openmm_actionmin.result import Result
from openmm_actionmin.spaces import Box
from openmm_actionmin.systems.base import System
from openmm_actionmin.search.basin_hopping import BasinHoppingConfig, basin_hopping
from openmm_actionmin.search.local import minimize_batch
from openmm_actionmin.search.steps import ClusterStep, MinimaDatabase

__all__ = [
    "ActionGuidedStep",
    "GuidedConfig",
    "QuenchedEnergyOracle",
    "canonical_form",
    "guided_basin_hopping",
    "trust_region",
]


# ------------------------------------------------------------ canonical form
def _frame(x: np.ndarray) -> np.ndarray:
    """Principal axes ``[3, 3]`` (columns) of centred ``x``, signs fixed by the third moment along each axis."""
    _, vecs = np.linalg.eigh(x.T @ x)
    proj = x @ vecs
    signs = np.where(np.sum(proj**3, axis=0) < 0, -1.0, 1.0)
    vecs = vecs * signs
    if np.linalg.det(vecs) < 0:
        vecs[:, 0] = -vecs[:, 0]
    return vecs


def _assign(y: np.ndarray, ref: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """Permutation ``perm`` (``y[perm]`` matches ``ref`` row by row) by Hungarian assignment per species."""
    perm = np.empty(len(ref), dtype=np.int64)
    for idx in groups:
        cost = ((ref[idx][:, None, :] - y[idx][None, :, :]) ** 2).sum(-1)
        rows, cols = linear_sum_assignment(cost)
        perm[idx[rows]] = idx[cols]
    return perm


def canonical_form(
    x: Any, reference: Any, types: Optional[Sequence[int]] = None, *, n_rotations: int = 24, iterations: int = 4
) -> np.ndarray:
    """``x`` rigidly moved and relabelled to match ``reference`` as closely as possible.

    Starting from rotations built from both structures' principal axes
    (the four proper sign choices and ``n_rotations`` fixed random rotations
    between the frames), the atoms of ``x`` are matched to those of
    ``reference`` by Hungarian assignment (per species when ``types`` is given)
    and re-superposed by Kabsch, ``iterations`` times; the match with the
    lowest RMSD wins. Every start is computed from quantities that do not
    depend on the labelling, orientation or position of ``x``, so the result
    is the same for any rotation, translation and permutation of ``x`` (up to
    ties, e.g. principal moments that coincide).

    Args:
        x: Positions ``[N, 3]``.
        reference: Positions ``[N, 3]`` (e.g. the best minimum).
        types: Species per atom ``[N]``; atoms are only matched within a
            species (``None``: one species).
        n_rotations: Extra random start rotations (seeded, the same every call).
        iterations: Assignment and superposition rounds per start.

    Returns:
        ``[N, 3]`` float64: row ``i`` is the atom of ``x`` matched to atom ``i``
        of ``reference``, rotated and translated onto ``reference``'s frame.
    """
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64).reshape(-1, 3)
    b = np.asarray(
        reference.detach().cpu().numpy() if hasattr(reference, "detach") else reference, dtype=np.float64
    ).reshape(-1, 3)
    if a.shape != b.shape:
        raise ValueError(f"canonical_form needs two structures of the same shape, got {a.shape} and {b.shape}")
    t = np.zeros(len(a), dtype=np.int64) if types is None else np.asarray(types, dtype=np.int64)
    if len(t) != len(a):
        raise ValueError(f"canonical_form: {len(t)} types for {len(a)} atoms")
    groups = [np.flatnonzero(t == s) for s in np.unique(t)]
    a_c, b_mean = a - a.mean(axis=0), b.mean(axis=0)
    b_c = b - b_mean
    fa, fb = _frame(a_c), _frame(b_c)
    starts = [np.diag(s) for s in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1))]
    if n_rotations > 0:
        q = np.linalg.qr(np.random.default_rng(0).standard_normal((n_rotations, 3, 3)))[0]
        q = q * np.where(np.linalg.det(q) < 0, -1.0, 1.0)[:, None, None]
        starts += list(q)
    best, best_err = a_c, math.inf
    for s in starts:
        rot = fa @ s @ fb.T
        for _ in range(iterations):
            perm = _assign(a_c @ rot, b_c, groups)
            rot = kabsch_rotation(a_c[perm], b_c)
        y = a_c[perm] @ rot
        err = float(((y - b_c) ** 2).sum())
        if err < best_err - 1e-12:
            best, best_err = y, err
    return best + b_mean


def trust_region(
    minima: Sequence[np.ndarray],
    types: Optional[Sequence[int]] = None,
    *,
    canonical: bool = True,
    margin: float = 0.2,
    max_half_width: float = math.inf,
) -> Tuple[np.ndarray, np.ndarray]:
    """Centre and half-widths ``[N, 3]`` of the box spanned by the lowest minima (the best first).

    Args:
        minima: Positions ``[N, 3]`` of the lowest minima, the best first.
        types: Species per atom (for :func:`canonical_form`).
        canonical: Map every minimum to its canonical form relative to the
            best (``False``: only recentre them).
        margin: Added to every half-width (length units).
        max_half_width: Largest half-width (length units).

    Returns:
        ``(centre, half_width)``: the mean of the mapped minima, and the
        largest deviation from it per coordinate plus ``margin`` (at most
        ``max_half_width``).
    """
    best = np.asarray(minima[0], dtype=np.float64)
    best = best - best.mean(axis=0)
    if canonical:
        mapped = [best] + [canonical_form(m, best, types) for m in minima[1:]]
    else:
        mapped = [np.asarray(m, dtype=np.float64) - np.asarray(m, dtype=np.float64).mean(axis=0) for m in minima]
    stack = np.stack(mapped)
    centre = stack.mean(axis=0)
    return centre, np.minimum(np.abs(stack - centre).max(axis=0) + float(margin), float(max_half_width))


# ------------------------------------------------------------ quenched oracle
class QuenchedEnergyOracle(EnergyOracle):
    """``U~(x) = U(quench(x))``: the energy of the minimum that an L-BFGS quench from ``x`` reaches.

    Its forces are zero (``U~`` is piecewise constant); every force call of
    the quench is counted on ``oracle``. A quench that does not converge
    scores the energy it reached.

    Args:
        oracle: The true energy oracle (atomic).
        fmax: Quench convergence threshold.
        max_steps: Quench iterations.
        max_step: Largest atom displacement per quench step.
    """

    def __init__(self, oracle: EnergyOracle, fmax: float = 1e-2, max_steps: int = 400, max_step: float = 0.2) -> None:
        super().__init__(n_atoms=oracle.n_atoms, units=oracle.units, dtype=oracle.dtype, device=oracle.device)
        self.oracle = oracle
        self.fmax, self.max_steps, self.max_step = float(fmax), int(max_steps), float(max_step)

    def _evaluate(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        res = minimize_batch(
            self.oracle, x, "lbfgs", fmax=self.fmax, max_steps=self.max_steps, max_step=self.max_step, num_threads=None
        )
        return res.energy.detach(), torch.zeros_like(x)


# ------------------------------------------------------------ the step
class ActionGuidedStep:
    """A cluster step whose proposals are sometimes the action trainer's candidate.

    Every proposal is first the ``base`` step's. When the trainer has used
    less than ``fraction`` of the time since the step was built and the
    database holds at least ``min_minima`` minima, the trainer runs for
    ``train_s`` seconds (or ``train_rounds`` rounds) on
    :class:`QuenchedEnergyOracle` inside :func:`trust_region` of the
    ``n_minima`` lowest minima, and its best candidate replaces the proposal of
    the walker with the highest current energy among those proposing.

    Args:
        database: The loop's minima store (read, never written).
        oracle: The true energy oracle.
        action_config: ``ActionConfig`` of each trainer run (its ``seed``,
            ``budget_s``, ``max_rounds`` and ``method_name`` are set here).
        base: The ordinary step (default :class:`~.steps.ClusterStep` with
            half angular moves).
        types: Species per atom.
        canonical: Canonicalise the minima before they span the trust region.
        fraction: Share of the wall time given to the trainer.
        train_s: Seconds per trainer run.
        train_rounds: Rounds per trainer run instead of ``train_s`` (a run
            that does not depend on the clock, for reproducible tests).
        n_minima: Lowest minima spanning the trust region.
        min_minima: Minima needed before the first trainer run.
        margin: Added to the region's half-widths (length units).
        max_half_width: Largest half-width of the region (length units).
        quench_fmax: Force threshold of the quench inside :class:`QuenchedEnergyOracle`.
        seed: Seed of the trainer runs (run ``k`` uses ``seed + k``).
        every: Run the trainer at every ``every``-th batch of proposals
            instead of by its share of the wall time (with ``train_rounds``
            a run that does not depend on the clock).
        deadline: ``time.perf_counter()`` after which no trainer runs.
    """

    def __init__(
        self,
        database: MinimaDatabase,
        oracle: EnergyOracle,
        action_config: Any,
        *,
        base: Any = None,
        types: Optional[Sequence[int]] = None,
        canonical: bool = True,
        fraction: float = 0.3,
        train_s: float = 1.0,
        train_rounds: Optional[int] = None,
        n_minima: int = 8,
        min_minima: int = 4,
        margin: float = 0.2,
        max_half_width: float = 0.5,
        quench_fmax: float = 1e-2,
        seed: int = 0,
        every: Optional[int] = None,
        deadline: Optional[float] = None,
    ) -> None:
        self.database = database
        self.oracle = oracle
        self.quenched = QuenchedEnergyOracle(oracle, fmax=quench_fmax)
        self.action_config = action_config
        self.base = base if base is not None else ClusterStep(angular_prob=0.5)
        self.types = None if types is None else list(types)
        self.canonical = bool(canonical)
        self.fraction = float(fraction)
        self.train_s = float(train_s)
        self.train_rounds = train_rounds
        self.n_minima, self.min_minima = int(n_minima), int(min_minima)
        self.margin, self.max_half_width = float(margin), float(max_half_width)
        self.seed = int(seed)
        self.every = every
        self.calls = 0
        self.deadline = deadline
        self.t0 = time.perf_counter()
        self.spent_s = 0.0
        self.runs: List[Dict[str, Any]] = []

    def _due(self) -> bool:
        self.calls += 1
        if len(self.database) < self.min_minima:
            return False
        if self.every is not None:
            return self.calls % self.every == 0
        now = time.perf_counter()
        if self.deadline is not None and now + self.train_s > self.deadline:
            return False
        return self.spent_s <= self.fraction * (now - self.t0)

    def candidate(self) -> Tuple[torch.Tensor, Dict[str, Any]]:
        """Run the trainer once in the current trust region; its candidate ``[N, 3]`` and a record of the run."""
        from openmm_actionmin.search.action import ActionTrainer

        t0 = time.perf_counter()
        minima = [m.x for m in self.database.minima[: self.n_minima]]
        centre, half = trust_region(
            minima, self.types, canonical=self.canonical, margin=self.margin, max_half_width=self.max_half_width
        )
        n = self.oracle.n_atoms
        dt = dict(dtype=self.oracle.dtype, device=self.oracle.device)
        lower = torch.as_tensor(centre - half, **dt).reshape(-1)
        upper = torch.as_tensor(centre + half, **dt).reshape(-1)
        system = System(name="quenched", oracle=self.quenched, space=Box(lower, upper, (n, 3), **dt))
        k = len(self.runs)
        cfg = dataclasses.replace(
            self.action_config,
            seed=self.seed + k,
            method_name="action_step",
            budget_s=None if self.train_rounds is not None else self.train_s,
            max_rounds=self.train_rounds,
            progress=False,
        )
        res = ActionTrainer(system, cfg).run(resume=False)
        x = torch.as_tensor(np.asarray(res.positions, dtype=np.float64), **dt).reshape(n, 3)
        spent = time.perf_counter() - t0
        self.spent_s += spent
        record = {
            "run": k,
            "seconds": spent,
            "candidate_energy": float(res.energy),
            "best_before": float(self.database.minima[0].energy),
            "region_half_width": float(half.mean()),
        }
        self.runs.append(record)
        return x, record

    def propose(
        self, x: torch.Tensor, step_size: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """The base step's proposals ``[k, N, 3]``, one replaced by the trainer's candidate when due."""
        out = self.base.propose(x, step_size, generator)
        if self._due():
            cand, _ = self.candidate()
            row = 0 if x.shape[0] == 1 else int(torch.argmax(self.oracle.energy(x)))  # the worst walker proposing
            out[row] = cand.to(out)
        return out


@dataclasses.dataclass
class GuidedConfig:
    """Settings of :func:`guided_basin_hopping`.

    Attributes:
        basin_hopping: The basin-hopping settings (its ``seed`` and
            ``budget_s`` are set from here).
        seed: Seed of the starts, the loop and the trainer.
        budget_s: Wall-clock budget of the whole run.
        action: Use the action step (``False``: the ablation, plain basin hopping).
        canonical: Canonicalise the minima spanning the trust region.
        fraction: Share of the wall time given to the trainer.
        train_s: Seconds per trainer run.
        train_rounds: Rounds per trainer run instead of ``train_s``.
        every: Run the trainer at every ``every``-th batch of proposals
            instead of by ``fraction`` of the wall time.
        n_minima: Lowest minima spanning the trust region.
        min_minima: Minima needed before the first trainer run.
        margin: Added to the trust region's half-widths.
        max_half_width: Largest half-width of the trust region.
        action_overrides: ``ActionConfig`` fields of the trainer runs (small
            warm start and batches by default: every evaluation is a quench).
    """

    basin_hopping: BasinHoppingConfig = dataclasses.field(default_factory=BasinHoppingConfig)
    seed: int = 0
    budget_s: Optional[float] = 10.0
    action: bool = True
    canonical: bool = True
    fraction: float = 0.3
    train_s: float = 1.0
    train_rounds: Optional[int] = None
    every: Optional[int] = None
    n_minima: int = 8
    min_minima: int = 4
    margin: float = 0.2
    max_half_width: float = 0.5
    action_overrides: Dict[str, Any] = dataclasses.field(
        default_factory=lambda: dict(
            warm_start_samples=32,
            warm_start_steps=40,
            warm_start_batch=32,
            n_starts=8,
            max_path_points=32,
            fresh_batch=16,
            steps_per_round=5,
            model_hidden=64,
            eval_batch=64,
        )
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"GuidedConfig.fraction must lie in (0, 1), got {self.fraction}")
        if self.n_minima < 1 or self.min_minima < 1:
            raise ValueError("GuidedConfig: n_minima and min_minima must be >= 1")


def guided_basin_hopping(
    system: System, config: Optional[GuidedConfig] = None, *, starts: Optional[torch.Tensor] = None
) -> Result:
    """Basin hopping on a cluster with (or, ``action=False``, without) the action-guided step.

    Args:
        system: An atomic system.
        config: Settings (default :class:`GuidedConfig`).
        starts: Optional start configurations (as :func:`~.basin_hopping.basin_hopping`).

    Returns:
        The basin-hopping :class:`Result` named ``"guided_bh"`` (or
        ``"basin_hopping"`` for the ablation); with the action step its
        ``extra["action_runs"]`` lists each trainer run (seconds, candidate
        energy, best energy before) and ``extra["action_s"]`` their time.
    """
    from openmm_actionmin.search.action import ActionConfig

    cfg = config or GuidedConfig()
    bh = dataclasses.replace(
        cfg.basin_hopping,
        seed=cfg.seed,
        budget_s=cfg.budget_s,
        method_name="guided_bh" if cfg.action else "basin_hopping",
    )
    if not cfg.action:
        return basin_hopping(system, bh, starts=starts)
    types = system.types if system.types and len(set(system.types)) > 1 else None
    database = MinimaDatabase(bh.database_size, types=types)
    deadline = None if cfg.budget_s is None else time.perf_counter() + cfg.budget_s - 0.5
    action_cfg = ActionConfig(**{"budget_s": 1.0, **cfg.action_overrides})
    step = ActionGuidedStep(
        database,
        system.oracle,
        action_cfg,
        base=ClusterStep(angular_prob=bh.angular_prob),
        types=types,
        canonical=cfg.canonical,
        fraction=cfg.fraction,
        train_s=cfg.train_s,
        train_rounds=cfg.train_rounds,
        n_minima=cfg.n_minima,
        min_minima=cfg.min_minima,
        margin=cfg.margin,
        max_half_width=cfg.max_half_width,
        seed=cfg.seed,
        every=cfg.every,
        deadline=deadline,
    )
    res = basin_hopping(system, bh, starts=starts, step=step, database=database)
    extra = {**res.extra, "action_runs": step.runs, "action_s": step.spent_s, "canonical": cfg.canonical}
    return dataclasses.replace(res, extra=extra)
