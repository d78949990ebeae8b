"""Batched basin hopping: B independent walkers, one batched quench.

Each walker is an ordinary basin-hopping chain (propose a perturbed copy of
its current minimum, quench it, accept or reject with the Metropolis rule,
adapt its step size). The walkers share one batched local minimiser
(:mod:`.local`) that is *streamed*: as soon as a walker's quench has
converged, its hop is judged and its next proposal starts quenching in the
same batch slot, so every oracle call carries a full batch and no walker waits
for the slowest quench of a round. The Python overhead is paid once per batch
instead of once per walker, which is where the speed over a serial
implementation comes from; force calls are counted honestly through the
oracle's counters (frozen walkers are not evaluated).

The pieces (proposal, acceptance, step-size rule, container, minima storage)
live in :mod:`.steps` and can be replaced through the keyword arguments of
:func:`basin_hopping`.

Success bookkeeping: with a target energy (``config.target_energy`` or the
system's ``reference_energy``), the first quenched minimum with
``energy <= target + target_tolerance`` records ``time_to_target_s`` and
``force_calls_to_target`` in ``Result.extra``; the run stops there when
``stop_at_target`` is set.

Checkpoints: with ``checkpoint_path`` set, the walkers' current minima,
energies, step sizes, the minima database, the best structure, counters,
elapsed time and random state are written atomically every
``checkpoint_interval_s`` and at the end. ``resume=True`` continues from that
file; quenches that were in flight are restarted from fresh proposals, so a
resumed run is statistically, not bitwise, equivalent to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Tuple

import numpy as np
import torch

from .. import checkpoints
from ..progress import progress_bar
from ..result import Result
from ..systems.base import System
from .lattices import LJ_NN, MOTIFS, lattice_starts as make_lattice_starts
from .local import make_minimizer, torch_threads
from .steps import AdaptiveStepSize, ClusterStep, Container, Metropolis, MinimaDatabase


@dataclasses.dataclass
class BasinHoppingConfig:
    """Settings of :func:`basin_hopping` (reduced units for clusters).

    Attributes:
        n_walkers: Number of walkers B (why 16, and ``angular_prob`` 0.5:
            ``docs/decisions.md``).
        temperature: Metropolis temperature (energy units, k_B = 1).
        step_size: Initial half-width of the random displacement.
        adaptive_step: Adapt each walker's step size toward ``target_acceptance``.
        target_acceptance: Target acceptance rate of the adaptive rule.
        adapt_interval: Hops between step-size adjustments.
        angular_prob: Probability of an angular (surface) move instead of a
            random displacement (clusters only).
        reseed_interval: Every this many hops of a walker, if its current
            energy is among the highest ``reseed_fraction`` of all walkers,
            it restarts from one of the ``reseed_pool`` lowest distinct minima
            found so far (chosen at random; "go with the winners"). 0: off,
            every walker is an independent chain. Why 10:
            ``docs/decisions.md``.
        reseed_fraction: Fraction of walkers eligible for reseeding.
        reseed_pool: Number of lowest distinct minima to reseed from.
        quench_method: ``"lbfgs"`` or ``"fire"``.
        quench_fmax: Quench convergence threshold (largest per-atom force).
        quench_max_steps: Oracle evaluations per quench before it is abandoned
            (the hop is then rejected).
        quench_max_step: Largest atom displacement per quench step.
        container_radius: Radius of the confining sphere; ``None`` picks
            :meth:`~.steps.Container.default_radius`; ``0`` disables it.
        polish_fmax: The best structure is re-minimised to this threshold at
            the end.
        lattice_starts: Walkers that start from lattice-searched structures
            (:mod:`.lattices`: icosahedral, decahedral and fcc packings,
            Northby-style) instead of uniform random points; 0 (the default)
            is the blind search. The lattice search runs inside the timed
            budget. This is prior knowledge about cluster packings, so
            benchmarks report it as its own method.
        lattice_motifs: Motifs used for lattice starts.
        lattice_restarts: Lattice searches per motif.
        lattice_nn: Nearest-neighbour distance of the lattices (length
            units; ``2^(1/6)`` sigma, the LJ pair minimum, by default).
        seed: Seed of starts, proposals and acceptance.
        budget_s: Wall-clock budget in seconds (``None``: no limit).
        max_steps: Hops per walker (``None``: no limit).
        max_force_calls: Oracle evaluations in all (``None``: no limit).
        target_energy: Energy counted as success (``None``: the system's
            ``reference_energy``).
        target_tolerance: Success if ``energy <= target + tolerance``.
        stop_at_target: Stop as soon as the target is reached.
        database_size: Distinct minima kept.
        progress: Show a tqdm progress bar.
        checkpoint_path: Checkpoint file (``None``: no checkpoints).
        checkpoint_interval_s: Seconds between checkpoints.
        resume: Continue from ``checkpoint_path`` if it exists.
        num_threads: Torch CPU threads during the run (``None``: unchanged);
            see :mod:`.local` for why one thread is the default.
    """

    n_walkers: int = 16
    temperature: float = 0.8
    step_size: float = 0.4
    adaptive_step: bool = True
    target_acceptance: float = 0.5
    adapt_interval: int = 10
    angular_prob: float = 0.5
    reseed_interval: int = 10
    reseed_fraction: float = 0.25
    reseed_pool: int = 8
    quench_method: str = "lbfgs"
    quench_fmax: float = 1e-3
    quench_max_steps: int = 2000
    quench_max_step: float = 0.2
    container_radius: Optional[float] = None
    polish_fmax: float = 1e-6
    lattice_starts: int = 0
    lattice_motifs: Tuple[str, ...] = MOTIFS
    lattice_restarts: int = 8
    lattice_nn: float = LJ_NN
    seed: int = 0
    budget_s: Optional[float] = 60.0
    max_steps: Optional[int] = None
    max_force_calls: Optional[int] = None
    target_energy: Optional[float] = None
    target_tolerance: float = 1e-4
    stop_at_target: bool = True
    database_size: int = 50
    progress: bool = False
    checkpoint_path: Optional[str] = None
    checkpoint_interval_s: float = 60.0
    resume: bool = False
    num_threads: Optional[int] = 1
    method_name: str = "basin_hopping"

    def __post_init__(self) -> None:
        if self.n_walkers < 1:
            raise ValueError(f"n_walkers must be >= 1, got {self.n_walkers}")
        if self.step_size <= 0:
            raise ValueError(f"step_size must be positive, got {self.step_size}")
        if self.reseed_interval < 0 or not 0 < self.reseed_fraction <= 1 or self.reseed_pool < 1:
            raise ValueError("reseed_interval must be >= 0, reseed_fraction in (0, 1] and reseed_pool >= 1")
        if not 0 <= self.angular_prob <= 1:
            raise ValueError(f"angular_prob must be in [0, 1], got {self.angular_prob}")
        if not 0 <= self.lattice_starts <= self.n_walkers or self.lattice_restarts < 1:
            raise ValueError(f"lattice_starts must be in [0, n_walkers={self.n_walkers}] and lattice_restarts >= 1, "
                             f"got {self.lattice_starts} and {self.lattice_restarts}")
        if self.budget_s is None and self.max_steps is None and self.max_force_calls is None:
            raise ValueError("basin hopping needs a limit: set budget_s, max_steps or max_force_calls")


def basin_hopping(
    system: System,
    config: Optional[BasinHoppingConfig] = None,
    *,
    starts: Optional[torch.Tensor] = None,
    step: Optional[Any] = None,
    acceptance: Optional[Any] = None,
    step_rule: Optional[AdaptiveStepSize] = None,
    database: Optional[MinimaDatabase] = None,
) -> Result:
    """Run batched basin hopping on an atomic system.

    Args:
        system: The system (oracle, search space, optional reference energy).
        config: Settings (default :class:`BasinHoppingConfig`).
        starts: Optional start configurations ``[S, N, 3]`` with
            ``S <= n_walkers`` (e.g. PLNet candidates); the next
            ``config.lattice_starts`` walkers start from lattice-searched
            structures, the remaining ones uniformly at random in
            ``system.space``.
        step: Proposal object with ``propose(x, step_size, generator)``
            (default :class:`~.steps.ClusterStep` with ``config.angular_prob``).
        acceptance: Object with ``accept(e_new, e_old, generator)`` (default
            :class:`~.steps.Metropolis` at ``config.temperature``).
        step_rule: Step-size rule (default :class:`~.steps.AdaptiveStepSize`
            with the config's target; ignored if ``adaptive_step`` is off).
        database: Minima storage (default :class:`~.steps.MinimaDatabase`).

    Returns:
        :class:`~openmm_actionmin.result.Result` with the best (polished)
        structure ``[N, 3]``, its energy, force calls, wall time, per-sweep
        history (``wall_s``, ``best_energy``, ``hops``, ``force_calls``,
        ``acceptance``, ``mean_step_size``, ``distinct_minima``) and ``extra``
        (``success``, ``time_to_target_s``, ``force_calls_to_target``,
        ``target_energy``, ``hops``, ``acceptance_rate``, ``minima_energies``,
        ``quench_failures``, ``evaporated``).

    Raises:
        ValueError: non-atomic system, or ``starts`` of the wrong shape.
    """
    cfg = config or BasinHoppingConfig()
    with torch_threads(cfg.num_threads):
        return _basin_hopping(system, cfg, starts, step, acceptance, step_rule, database)


def _basin_hopping(system, cfg, starts, step, acceptance, step_rule, database) -> Result:
    if not system.is_atomic:
        raise ValueError(f"basin_hopping works on atomic systems ([B, N, 3]); {system.name} is a [B, D] function")
    oracle = system.oracle
    n = oracle.n_atoms
    b = cfg.n_walkers
    dev = oracle.device
    gen = torch.Generator().manual_seed(int(cfg.seed))
    step = step or ClusterStep(angular_prob=cfg.angular_prob)
    acceptance = acceptance or Metropolis(cfg.temperature)
    step_rule = step_rule or AdaptiveStepSize(target=cfg.target_acceptance, interval=cfg.adapt_interval)
    database = database or MinimaDatabase(cfg.database_size, types=system.types if system.types and len(set(system.types)) > 1 else None)
    radius = Container.default_radius(n) if cfg.container_radius is None else float(cfg.container_radius)
    container = Container(radius) if radius > 0 else None
    target = cfg.target_energy if cfg.target_energy is not None else system.reference_energy
    ckpt = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    identity = checkpoints.run_identity(system, cfg.method_name, cfg.seed) if ckpt is not None else None
    deadline = None if cfg.budget_s is None else time.perf_counter() + cfg.budget_s

    # ---------------------------------------------------------------- state
    x_cur = torch.zeros((b, n, 3), dtype=torch.float64, device=dev)
    e_cur = torch.full((b,), math.inf, dtype=torch.float64, device=dev)
    step_size = torch.full((b,), float(cfg.step_size), dtype=torch.float64, device=dev)
    trials = torch.zeros(b, dtype=torch.long, device=dev)
    accepts = torch.zeros(b, dtype=torch.long, device=dev)
    hops_per_walker = torch.zeros(b, dtype=torch.long, device=dev)
    stats = {"hops": 0, "accepted": 0, "quench_failures": 0, "evaporated": 0}
    best_e, best_x = math.inf, None
    elapsed_before, calls_before = 0.0, 0
    t_target, calls_target = None, None
    history = []
    resumed = False

    state = checkpoints.load(ckpt, identity) if ckpt is not None and cfg.resume else None
    if state is not None and state.get("n_walkers") != b:
        raise checkpoints.CheckpointMismatch(
            f"checkpoint {ckpt} has {state.get('n_walkers')} walkers, this run {b}; use n_walkers={state.get('n_walkers')}, "
            "delete the file or choose another checkpoint path")
    if state is not None:
        x_cur, e_cur = state["x_cur"].to(dev), state["e_cur"].to(dev)
        step_size, hops_per_walker = state["step_size"].to(dev), state["hops_per_walker"].to(dev)
        stats, best_e, best_x = state["stats"], state["best_e"], state["best_x"]
        elapsed_before, calls_before = state["elapsed_s"], state["force_calls"]
        t_target, calls_target, history = state["t_target"], state["calls_target"], state["history"]
        database.load_state_dict(state["database"])
        gen.set_state(state["rng"])
        resumed = True
        x_start = step.propose(x_cur, step_size, gen)
        if container is not None:
            x_start = container.pull_back(x_start)
    else:
        x_start = system.space.to_config(system.space.sample(b, gen)).to(device=dev, dtype=torch.float64)
        given = 0
        if starts is not None:
            s = oracle.as_batch(starts).detach().to(torch.float64)
            if s.shape[0] > b:
                raise ValueError(f"got {s.shape[0]} starts for {b} walkers; pass at most n_walkers starts or raise n_walkers")
            x_start[: s.shape[0]] = s
            given = s.shape[0]
        if cfg.lattice_starts > 0 and given < b:
            t_lat = time.perf_counter()
            # the lattice search may use at most half of the budget
            lat_deadline = None if deadline is None else t_lat + 0.5 * cfg.budget_s
            lat = make_lattice_starts(n, min(cfg.lattice_starts, b - given), gen, motifs=cfg.lattice_motifs,
                                      restarts=cfg.lattice_restarts, nn=cfg.lattice_nn, deadline=lat_deadline)
            x_start[given : given + lat.shape[0]] = lat.to(device=dev)
            elapsed_before += time.perf_counter() - t_lat  # the lattice search counts against the budget
        if container is not None:
            x_start = container.pull_back(x_start)

    quench = make_minimizer(
        oracle,
        x_start,
        cfg.quench_method,
        fmax=cfg.quench_fmax,
        max_steps=cfg.quench_max_steps,
        max_step=cfg.quench_max_step,
        generator=gen,
    )
    calls0 = oracle.counters.force_calls - calls_before
    t0 = time.perf_counter() - elapsed_before
    last_ckpt = time.perf_counter()
    next_sweep = (stats["hops"] // b + 1) * b
    bar = None
    if cfg.progress:
        bar = progress_bar(desc=f"basin hopping {system.name}", unit="hop")

    def elapsed() -> float:
        return time.perf_counter() - t0

    def checkpoint() -> None:
        if ckpt is None:
            return
        checkpoints.save(
            ckpt,
            identity=identity,
            state={
                "n_walkers": b,
                "x_cur": x_cur.cpu(),
                "e_cur": e_cur.cpu(),
                "step_size": step_size.cpu(),
                "hops_per_walker": hops_per_walker.cpu(),
                "stats": stats,
                "best_e": best_e,
                "best_x": best_x,
                "elapsed_s": elapsed(),
                "force_calls": oracle.counters.force_calls - calls0,
                "t_target": t_target,
                "calls_target": calls_target,
                "history": history,
                "database": database.state_dict(),
                "rng": gen.get_state(),
                "config": dataclasses.asdict(cfg),
            },
        )

    stop_reason = "budget"
    while True:
        quench.step()
        finished = torch.nonzero(quench.done).flatten()
        if finished.numel():
            xq = quench.x[finished].reshape(-1, n, 3)
            eq = quench.energy[finished].clone()
            valid = quench.converged[finished].clone()
            stats["quench_failures"] += int((~valid).sum())
            if container is not None:
                inside = container.inside(xq)
                stats["evaporated"] += int((valid & ~inside).sum())
                valid &= inside
            eq[~valid] = math.inf
            # storage and best
            for k in torch.nonzero(valid).flatten().tolist():
                database.add(xq[k], float(eq[k]))
            if bool(valid.any()):
                k = int(torch.argmin(eq))
                if float(eq[k]) < best_e:
                    best_e = float(eq[k])
                    best_x = xq[k].detach().cpu().numpy().copy()
                    if target is not None and t_target is None and best_e <= target + cfg.target_tolerance:
                        t_target = elapsed()
                        calls_target = oracle.counters.force_calls - calls0
            # acceptance (a walker's first quench is always accepted if valid)
            acc = acceptance.accept(eq, e_cur[finished], gen)
            acc_idx = finished[acc]
            x_cur[acc_idx] = container.recentre(xq[acc]) if container is not None else xq[acc]
            e_cur[acc_idx] = eq[acc]
            counted = ~torch.isinf(e_cur[finished]) | acc  # ignore walkers with no valid minimum yet
            trials[finished] += counted.long()
            accepts[finished] += (acc & counted).long()
            hops_per_walker[finished] += 1
            stats["hops"] += int(finished.numel())
            stats["accepted"] += int(acc.sum())
            if cfg.adaptive_step:
                step_rule.update(step_size, trials, accepts)
            if cfg.reseed_interval > 0 and len(database) > 0:
                due = finished[(hops_per_walker[finished] % cfg.reseed_interval == 0)]
                if due.numel():
                    finite = e_cur[torch.isfinite(e_cur)]
                    if finite.numel():
                        cut = torch.quantile(finite, 1.0 - cfg.reseed_fraction)
                        due = due[e_cur[due] >= cut]
                    pool = database.minima[: cfg.reseed_pool]
                    for w in due.tolist():
                        pick = pool[int(torch.randint(len(pool), (1,), generator=gen))]
                        x_cur[w] = torch.as_tensor(pick.x, dtype=torch.float64, device=dev)
                        e_cur[w] = pick.energy
                    stats["reseeded"] = stats.get("reseeded", 0) + int(due.numel())
            # next proposals; walkers without a valid minimum restart at random
            no_min = torch.isinf(e_cur[finished])
            x_new = step.propose(x_cur[finished], step_size[finished], gen)
            if bool(no_min.any()):
                fresh = system.space.to_config(system.space.sample(int(no_min.sum()), gen)).to(device=dev, dtype=torch.float64)
                x_new[no_min] = fresh
            if container is not None:
                x_new = container.pull_back(x_new)
            quench.reset(finished, x_new)
            if bar is not None:
                bar.update(int(finished.numel()))
                bar.set_postfix(best=f"{best_e:.6f}")
            if stats["hops"] >= next_sweep:
                next_sweep += b
                history.append(
                    {
                        "wall_s": elapsed(),
                        "best_energy": best_e,
                        "hops": stats["hops"],
                        "force_calls": oracle.counters.force_calls - calls0,
                        "acceptance": stats["accepted"] / max(stats["hops"], 1),
                        "mean_step_size": float(step_size.mean()),
                        "distinct_minima": len(database),
                    }
                )
        # stopping rules
        if cfg.stop_at_target and t_target is not None:
            stop_reason = "target"
            break
        if cfg.budget_s is not None and elapsed() >= cfg.budget_s:
            stop_reason = "budget"
            break
        if cfg.max_steps is not None and bool((hops_per_walker >= cfg.max_steps).all()):
            stop_reason = "max_steps"
            break
        if cfg.max_force_calls is not None and oracle.counters.force_calls - calls0 >= cfg.max_force_calls:
            stop_reason = "max_force_calls"
            break
        if ckpt is not None and time.perf_counter() - last_ckpt >= cfg.checkpoint_interval_s:
            checkpoint()
            last_ckpt = time.perf_counter()
    if bar is not None:
        bar.close()
    wall = elapsed()
    search_calls = oracle.counters.force_calls - calls0
    checkpoint()

    if best_x is None:
        # no quench finished inside the budget: report the lowest walker reached so far
        # (polished below within what is left), flagged as such
        e_now = torch.where(torch.isfinite(quench.energy), quench.energy, torch.full_like(quench.energy, math.inf))
        k = int(torch.argmin(e_now))
        best_x = quench.x[k].reshape(n, 3).detach().cpu().numpy().copy()
        best_e = float(e_now[k])
        warnings.warn(
            f"basin hopping on {system.name} finished no quench within {cfg.budget_s} s "
            f"({stats['quench_failures']} failed, {stats['evaporated']} evaporated); the result is the lowest walker "
            "reached, not a minimum: raise budget_s", RuntimeWarning, stacklevel=3)
        stats["unfinished"] = True
    # polish the best minimum (counted in force_calls, not in the search time)
    polish = make_minimizer(oracle, torch.as_tensor(best_x)[None], cfg.quench_method, fmax=cfg.polish_fmax, max_steps=cfg.quench_max_steps, max_step=cfg.quench_max_step)
    pol = polish.run(deadline=None if cfg.budget_s is None else max(t0 + cfg.budget_s, time.perf_counter() + 0.2))
    if float(pol.energy[0]) <= best_e:
        best_e = float(pol.energy[0])
        best_x = pol.x[0].cpu().numpy()
    success = None if target is None else bool(best_e <= target + cfg.target_tolerance)
    history.append(
        {
            "wall_s": wall,
            "best_energy": best_e,
            "hops": stats["hops"],
            "force_calls": search_calls,
            "acceptance": stats["accepted"] / max(stats["hops"], 1),
            "mean_step_size": float(step_size.mean()),
            "distinct_minima": len(database),
        }
    )
    return Result(
        positions=np.asarray(best_x, dtype=np.float64),
        energy=best_e,
        units=oracle.units,
        method=cfg.method_name,
        seed=cfg.seed,
        force_calls=int(oracle.counters.force_calls - calls0),
        wall_s=wall,
        history=history,
        system=system.name,
        symbols=system.symbols,
        topology=system.topology,
        extra={
            "success": success,
            "target_energy": target,
            "time_to_target_s": t_target,
            "force_calls_to_target": calls_target,
            "stop_reason": stop_reason,
            "hops": stats["hops"],
            "acceptance_rate": stats["accepted"] / max(stats["hops"], 1),
            "quench_failures": stats["quench_failures"],
            "evaporated": stats["evaporated"],
            "reseeded": stats.get("reseeded", 0),
            "minima_energies": database.energies,
            "final_step_sizes": step_size.cpu().tolist(),
            "n_walkers": b,
            "resumed": resumed,
            "config": dataclasses.asdict(cfg),
        },
    )
