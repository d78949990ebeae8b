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

This is a configuration of the one basin-hopping loop
(:class:`~.hopping.BasinHoppingLoop`) with the cluster pieces of :mod:`.steps`:
:class:`~.steps.ClusterProposal` (displacement and angular moves, adaptive
step sizes, container), :class:`~.steps.BatchQuench`,
:class:`~.steps.Metropolis` (or :class:`~.steps.OccasionalJumping`), :class:`~.steps.MinimaDatabase`,
:class:`~.steps.GoWithTheWinners` and :class:`~.steps.BatchPolish`; the step,
acceptance, step-size rule and storage can be replaced through the keyword
arguments of :func:`basin_hopping`. ``max_steps`` counts the hops of each
walker after its start quench. The run, lattice search and final polish
included, ends within a fraction of a second of ``budget_s``.

Success bookkeeping: with a target energy (``config.target_energy`` or the
system's ``reference_energy``), the first quenched minimum with
``energy <= target + target_tolerance`` records ``time_to_target_s`` and
``force_calls_to_target`` in ``Result.extra``; the run stops there when
``stop_at_target`` is set.

Checkpoints: with ``checkpoint_path`` set, the loop's state (walkers' current
minima and energies, the minima database, the best structure, counters,
history, elapsed time, random state) and the step sizes are written
atomically every ``checkpoint_interval_s`` and at the end. ``resume=True`` continues from that
file; quenches that were in flight are restarted from fresh proposals, so a
resumed run is statistically, not bitwise, equivalent to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from .. import checkpoints
from ..result import Result
from ..systems.base import System
from .compression import CompressedOracle, TwoPhaseQuench
from .hopping import BasinHoppingLoop, LoopSettings
from .lattices import LJ_NN, MOTIFS, lattice_starts as make_lattice_starts
from .local import torch_threads
from .steps import (
    AdaptiveStepSize,
    BatchPolish,
    BatchQuench,
    ClusterProposal,
    ClusterStep,
    Container,
    ExchangeMove,
    GoWithTheWinners,
    Metropolis,
    MinimaDatabase,
    OccasionalJumping,
)


@dataclasses.dataclass
class BasinHoppingConfig:
    """Settings of :func:`basin_hopping` (reduced units for clusters).

    Attributes:
        n_walkers: Number of walkers B (why 16, and ``angular_prob`` 0.5:
            ``docs/decisions.md``; :func:`default_config` and every door
            that runs a method by name use 4 on clusters of several atom
            types, :data:`MULTICOMPONENT_DEFAULTS`).
        temperature: Metropolis temperature (energy units, k_B = 1).
        step_size: Initial half-width of the random displacement.
        adaptive_step: Adapt each walker's step size toward ``target_acceptance``.
        target_acceptance: Target acceptance rate of the adaptive rule.
        adapt_interval: Hops between step-size adjustments.
        angular_prob: Probability of an angular (surface) move instead of a
            random displacement (clusters only).
        exchange_prob: Probability of an exchange move (two atoms of
            different types swap places, :class:`~.steps.ExchangeMove`)
            instead of the other moves; ``None`` picks the default for the
            system (see ``docs/decisions.md``): 0 for one-component clusters,
            where there is nothing to exchange.
        symmetry_prob: Probability of a symmetry move (stray atoms moved into
            the sites a partly symmetric cluster's symmetry asks for,
            :class:`~.steps.SymmetryMove`) instead of the other moves;
            one-component clusters only. 0 (the default) until it measures a
            gain (``docs/decisions.md``).
        jump_after: Occasional jumping (:class:`~.steps.OccasionalJumping`):
            after this many consecutive rejected hops a walker accepts its
            next ``jump_hops`` hops whatever their energy; 0 (the default):
            plain Metropolis (why: ``docs/decisions.md``).
        jump_hops: Hops of a jump.
        reseed_interval: Every this many hops of a walker, if its current
            energy is among the highest ``reseed_fraction`` of all walkers,
            it restarts from one of the ``reseed_pool`` lowest distinct minima
            found so far (chosen at random; "go with the winners"). 0: off,
            every walker is an independent chain. Why 10:
            ``docs/decisions.md``.
        reseed_fraction: Fraction of walkers eligible for reseeding.
        reseed_pool: Number of lowest distinct minima to reseed from.
        quench_method: ``"lbfgs"`` or ``"fire"``.
        quench_fmax: Quench convergence threshold (largest per-atom force;
            the best structure is polished to ``polish_fmax`` at the end; why
            1e-2: ``docs/decisions.md``).
        quench_max_steps: Oracle evaluations per quench before it is abandoned
            (the hop is then rejected).
        quench_max_step: Largest atom displacement per quench step.
        compression: Spring constant ``k`` of two-phase compressed quenches
            (:mod:`.compression`): each quench first minimises
            ``U + k * sum_i |r_i - r_com|^2`` to ``compression_fmax``, then ``U``;
            hops are judged on ``U``. Energy / length^2 (reduced units for
            clusters; why 1: ``docs/decisions.md``); 0: one-phase quenches
            (the default on clusters of several atom types, as ``n_walkers``).
        compression_fmax: Convergence threshold of the compressed phase.
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
    exchange_prob: Optional[float] = None
    symmetry_prob: float = 0.0
    jump_after: int = 0
    jump_hops: int = 3
    reseed_interval: int = 10
    reseed_fraction: float = 0.25
    reseed_pool: int = 8
    quench_method: str = "lbfgs"
    quench_fmax: float = 1e-2
    quench_max_steps: int = 2000
    quench_max_step: float = 0.2
    compression: float = 1.0
    compression_fmax: float = 1e-2
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
        if not self.compression >= 0 or not self.compression_fmax > 0:
            raise ValueError(
                f"compression must be >= 0 and compression_fmax > 0, got {self.compression} and {self.compression_fmax}"
            )
        if not 0 <= self.angular_prob <= 1:
            raise ValueError(f"angular_prob must be in [0, 1], got {self.angular_prob}")
        if self.exchange_prob is not None and not 0 <= self.exchange_prob <= 1:
            raise ValueError(f"exchange_prob must be in [0, 1], got {self.exchange_prob}")
        if not 0 <= self.symmetry_prob <= 1:
            raise ValueError(f"symmetry_prob must be in [0, 1], got {self.symmetry_prob}")
        if self.jump_after < 0 or self.jump_hops < 1:
            raise ValueError(
                f"jump_after must be >= 0 (0: no jumps) and jump_hops >= 1, got {self.jump_after} and {self.jump_hops}"
            )
        if not 0 <= self.lattice_starts <= self.n_walkers or self.lattice_restarts < 1:
            raise ValueError(
                f"lattice_starts must be in [0, n_walkers={self.n_walkers}] and lattice_restarts >= 1, "
                f"got {self.lattice_starts} and {self.lattice_restarts}"
            )
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
        config: Settings (default :func:`default_config` of ``system``).
        starts: Optional start configurations ``[S, N, 3]`` with
            ``S <= n_walkers`` (e.g. PLNet candidates); the next
            ``config.lattice_starts`` walkers start from lattice-searched
            structures, the remaining ones uniformly at random in
            ``system.space``.
        step: Proposal object with ``propose(x, step_size, generator)``
            (default :class:`~.steps.ClusterStep` with ``config.angular_prob``).
        acceptance: Object with ``accept(e_new, e_old, generator)`` (default
            :class:`~.steps.Metropolis` at ``config.temperature``, inside
            :class:`~.steps.OccasionalJumping` when ``config.jump_after`` > 0).
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
    cfg = config or default_config(system)
    with torch_threads(cfg.num_threads):
        return _basin_hopping(system, cfg, starts, step, acceptance, step_rule, database)


#: Exchange-move probability of multi-component clusters when ``exchange_prob`` is ``None``.
DEFAULT_EXCHANGE_PROB = 0.1

#: Settings that differ from :class:`BasinHoppingConfig`'s defaults on clusters of several atom
#: types (fewer walkers, one-phase quenches; why: ``docs/decisions.md``).
MULTICOMPONENT_DEFAULTS: Dict[str, Any] = {"n_walkers": 4, "compression": 0.0}


def is_multicomponent(system: System) -> bool:
    """Whether ``system`` is a cluster of several atom types."""
    return bool(system.types) and len(set(system.types)) > 1


def system_defaults(system: System) -> Dict[str, Any]:
    """The :class:`BasinHoppingConfig` fields whose default depends on ``system``: those of
    :data:`MULTICOMPONENT_DEFAULTS` on a cluster of several atom types, none otherwise."""
    return dict(MULTICOMPONENT_DEFAULTS) if is_multicomponent(system) else {}


def default_config(system: System, **fields: Any) -> BasinHoppingConfig:
    """:class:`BasinHoppingConfig` for ``system``: its :func:`system_defaults`, then ``fields``."""
    return BasinHoppingConfig(**{**system_defaults(system), **fields})


def _default_step(system: System, cfg: BasinHoppingConfig) -> ClusterStep:
    """The cluster step of ``cfg``: displacement, angular and (multi-component) exchange moves."""
    multi = is_multicomponent(system)
    prob = cfg.exchange_prob
    if prob is None:
        prob = DEFAULT_EXCHANGE_PROB if multi else 0.0
    if prob > 0 and not multi:
        raise ValueError(
            f"exchange_prob={prob}: {system.name} has one atom type, so there is nothing to exchange; "
            "leave exchange_prob unset or 0"
        )
    exchange = ExchangeMove(system.types) if prob > 0 else None
    if cfg.symmetry_prob > 0 and multi:
        raise ValueError(
            f"symmetry_prob={cfg.symmetry_prob}: symmetry moves do not yet tell atom types apart, and "
            f"{system.name} has several; leave symmetry_prob at 0"
        )
    return ClusterStep(
        angular_prob=cfg.angular_prob, exchange_prob=prob, exchange=exchange, symmetry_prob=cfg.symmetry_prob
    )


def _basin_hopping(system, cfg, starts, step, acceptance, step_rule, database) -> Result:
    if not system.is_atomic:
        raise ValueError(f"basin_hopping works on atomic systems ([B, N, 3]); {system.name} is a [B, D] function")
    t_entry = time.perf_counter()
    oracle = system.oracle
    n = oracle.n_atoms
    b = cfg.n_walkers
    dev = oracle.device
    gen = torch.Generator().manual_seed(int(cfg.seed))
    step = step or _default_step(system, cfg)
    if acceptance is None:
        acceptance = Metropolis(cfg.temperature)
        if cfg.jump_after > 0:
            acceptance = OccasionalJumping(acceptance, cfg.jump_after, cfg.jump_hops)
    step_rule = step_rule or AdaptiveStepSize(target=cfg.target_acceptance, interval=cfg.adapt_interval)
    database = (
        database
        if database is not None
        else MinimaDatabase(cfg.database_size, types=system.types if is_multicomponent(system) else None)
    )
    radius = Container.default_radius(n) if cfg.container_radius is None else float(cfg.container_radius)
    container = Container(radius) if radius > 0 else None
    target = cfg.target_energy if cfg.target_energy is not None else system.reference_energy
    ckpt = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    identity = checkpoints.run_identity(system, cfg.method_name, cfg.seed) if ckpt is not None else None
    resuming = ckpt is not None and cfg.resume and ckpt.exists()

    def sample(k: int) -> torch.Tensor:
        return system.space.to_config(system.space.sample(k, gen)).to(device=dev, dtype=torch.float64)

    x_start = []
    if not resuming:
        x_start = sample(b)
        given = 0
        if starts is not None:
            s = oracle.as_batch(starts).detach().to(device=dev, dtype=torch.float64)
            if s.shape[0] > b:
                raise ValueError(
                    f"got {s.shape[0]} starts for {b} walkers; pass at most n_walkers starts or raise n_walkers"
                )
            x_start[: s.shape[0]] = s
            given = s.shape[0]
        if cfg.lattice_starts > 0 and given < b:
            # the lattice search may use at most half of the budget
            lat_deadline = None if cfg.budget_s is None else t_entry + 0.5 * cfg.budget_s
            lat = make_lattice_starts(
                n,
                min(cfg.lattice_starts, b - given),
                gen,
                motifs=cfg.lattice_motifs,
                restarts=cfg.lattice_restarts,
                nn=cfg.lattice_nn,
                deadline=lat_deadline,
            )
            x_start[given : given + lat.shape[0]] = lat.to(device=dev)
        if container is not None:
            x_start = container.pull_back(x_start)
        x_start = list(x_start.unbind(0))

    proposal = ClusterProposal(
        step, b, cfg.step_size, sample, gen, step_rule if cfg.adaptive_step else None, container, dev
    )
    quench = BatchQuench(
        oracle,
        b,
        cfg.quench_method,
        container,
        gen,
        fmax=cfg.quench_fmax,
        max_steps=cfg.quench_max_steps,
        max_step=cfg.quench_max_step,
    )
    if cfg.compression > 0:
        quench = TwoPhaseQuench(
            BatchQuench(
                CompressedOracle(oracle, cfg.compression),
                b,
                cfg.quench_method,
                None,
                gen,
                fmax=cfg.compression_fmax,
                max_steps=cfg.quench_max_steps,
                max_step=cfg.quench_max_step,
            ),
            quench,
        )
    polish = BatchPolish(
        oracle, cfg.quench_method, fmax=cfg.polish_fmax, max_steps=cfg.quench_max_steps, max_step=cfg.quench_max_step
    )
    restart = (
        GoWithTheWinners(cfg.reseed_interval, cfg.reseed_fraction, cfg.reseed_pool, dev)
        if cfg.reseed_interval > 0
        else None
    )
    keys = ("wall_s", "best_energy", "hops", "force_calls", "acceptance")

    def history_row(event: str, info: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        if event == "sweep":
            return {
                **{k: info[k] for k in keys},
                "mean_step_size": float(proposal.step_size.mean()),
                "distinct_minima": info["distinct_minima"],
            }
        if event == "end":  # the search's wall time and force calls, the polished energy
            return {
                **{k: info[k] for k in keys},
                "wall_s": info["search_wall_s"],
                "force_calls": info["search_force_calls"],
                "mean_step_size": float(proposal.step_size.mean()),
                "distinct_minima": info["distinct_minima"],
            }
        return None

    settings = LoopSettings(
        budget_s=cfg.budget_s,
        max_steps=cfg.max_steps,
        max_force_calls=cfg.max_force_calls,
        target_energy=target,
        target_tolerance=cfg.target_tolerance,
        stop_at_target=cfg.stop_at_target,
        sweep_rows=True,
        checkpoint_path=None if ckpt is None else str(ckpt),
        checkpoint_interval_s=cfg.checkpoint_interval_s,
        resume=cfg.resume,
        identity=identity,
        progress=cfg.progress,
        label=f"basin hopping {system.name}",
    )
    loop = BasinHoppingLoop(
        starts=x_start,
        n_walkers=b,
        step=proposal,
        quench=quench,
        acceptance=acceptance,
        storage=database,
        generator=gen,
        force_calls=lambda: oracle.counters.force_calls,
        settings=settings,
        restart=restart,
        polish=polish,
        history_row=history_row,
    )
    out = loop.run(spent_s=time.perf_counter() - t_entry)
    success = None if target is None else bool(out.energy <= target + cfg.target_tolerance)
    return Result(
        positions=np.asarray(out.x, dtype=np.float64).reshape(n, 3),
        energy=float(out.energy),
        units=oracle.units,
        method=cfg.method_name,
        seed=cfg.seed,
        force_calls=int(out.force_calls),
        wall_s=out.search_s,
        history=out.history,
        system=system.name,
        symbols=system.symbols,
        topology=system.topology,
        extra={
            "success": success,
            "target_energy": target,
            "time_to_target_s": out.time_to_target_s,
            "force_calls_to_target": out.force_calls_to_target,
            "stop_reason": out.stop_reason,
            "hops": out.hops,
            "acceptance_rate": out.acceptance_rate,
            "quench_failures": quench.failures,
            "evaporated": quench.evaporated,
            "reseeded": out.counters.get("reseeded", 0),
            "jumps": getattr(acceptance, "jumps", 0),
            "minima_energies": database.energies,
            "final_step_sizes": proposal.step_size.cpu().tolist(),
            "n_walkers": b,
            "resumed": out.resumed,
            "config": dataclasses.asdict(cfg),
        },
    )
