"""OpenMM's own tools as baselines: LocalEnergyMinimizer and simulated annealing.

Both run in a Context of their own (the oracle's Contexts are left alone) on
the oracle's ``openmm.System``, so energies are exactly those the oracle
reports. Units at the boundary: positions in nm, energies in kJ/mol, forces in
kJ/mol/nm, temperatures in K, times in fs/ps as named.

Force-call accounting (for fair comparisons with the other searches):

* LocalEnergyMinimizer: one call per L-BFGS iteration, counted by a
  ``openmm.MinimizationReporter`` subclass, plus one for the final state.
  OpenMM's line search makes about 1.05 energy evaluations per iteration
  (measured, OPENMM_NOTES.md), so the count is a slight underestimate.
* Annealing: one call per MD step (one force evaluation each), one per energy
  read-out, plus the minimiser's calls.

Measured facts that shape the defaults: the minimiser's tolerance is a force,
roughly the RMS per-atom force; the CPU platform stalls at 1.4-3.7 kJ/mol/nm
when asked for less than 1, the Reference platform reaches about 0.1. The
result always reports the RMS force actually reached
(``extra["final_rms_force"]``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..oracles.base import OPENMM_UNITS
from ..result import Result

#: Platforms tried in order when none is named (the oracle's platform wins when known).
_PLATFORM_ORDER = ("CPU", "Reference")


@dataclasses.dataclass
class OpenMMTarget:
    """What the OpenMM baselines need, resolved from a System, an oracle or a pair.

    Attributes:
        topology: ``openmm.app.Topology`` (may be None).
        system: The ``openmm.System`` (no constraints).
        positions: Start positions ``[N, 3]`` in nm, or None.
        name: System name for the result.
        platform_name: Preferred platform (the oracle's), or None.
        oracle: The oracle, when one was given (used for group energies).
        symbols: Element symbols ``[N]`` for export, if known.
    """

    topology: Any
    system: Any
    positions: Optional[np.ndarray]
    name: str = ""
    platform_name: Optional[str] = None
    oracle: Any = None
    symbols: Optional[List[str]] = None

    def result(self, **fields: Any) -> Result:
        """A :class:`Result` in OpenMM units carrying this target's name, symbols and topology."""
        return Result(units=OPENMM_UNITS, system=self.name, symbols=self.symbols, topology=self.topology, **fields)


def resolve_target(target: Any) -> OpenMMTarget:
    """Find the OpenMM topology, System and start positions behind ``target``.

    Args:
        target: A :class:`~openmm_actionmin.systems.System` whose oracle is an
            OpenMM oracle, an :class:`~openmm_actionmin.oracles.openmm.OpenMMOracle`
            (anything with ``.system`` an ``openmm.System`` and
            ``.topology``), an :class:`OpenMMTarget`, or a pair
            ``(topology, openmm.System)``.

    Returns:
        The resolved :class:`OpenMMTarget`.

    Raises:
        TypeError: ``target`` has no OpenMM System behind it.
    """
    import openmm

    from ..systems.base import System

    if isinstance(target, OpenMMTarget):
        return target
    if isinstance(target, System):
        inner = resolve_target(target.oracle)
        start = target.start_positions if target.start_positions is not None else inner.positions
        return dataclasses.replace(
            inner,
            positions=None if start is None else _as_nm_array(start),
            name=target.name,
            topology=target.topology if target.topology is not None else inner.topology,
            symbols=target.symbols,
        )
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[1], openmm.System):
        return OpenMMTarget(topology=target[0], system=target[1], positions=None)
    omm = getattr(target, "system", None)
    if isinstance(omm, openmm.System):
        scale = float(getattr(target, "length_scale", 1.0))
        escale = float(getattr(target, "energy_scale", 1.0))
        if scale != 1.0 or escale != 1.0:
            raise TypeError(
                f"{type(target).__name__} works in scaled units (length_scale={scale}, energy_scale={escale}); "
                "the OpenMM baselines need an oracle in nm and kJ/mol"
            )
        pos = getattr(target, "positions", None)
        return OpenMMTarget(
            topology=getattr(target, "topology", None),
            system=omm,
            positions=None if pos is None else _as_nm_array(pos),
            platform_name=getattr(target, "platform_name", None),
            oracle=target,
        )
    raise TypeError(
        f"cannot run OpenMM baselines on {type(target).__name__}: pass a System with an OpenMM oracle, "
        "an OpenMMOracle, or (topology, openmm.System)"
    )


def _as_nm_array(positions: Any) -> np.ndarray:
    if isinstance(positions, torch.Tensor):
        positions = positions.detach().cpu().numpy()
    if hasattr(positions, "value_in_unit"):
        from openmm import unit

        positions = positions.value_in_unit(unit.nanometer)
    return np.asarray(positions, dtype=np.float64).reshape(-1, 3)


def _check_positions(tgt: OpenMMTarget, positions: Any) -> np.ndarray:
    if positions is None:
        if tgt.positions is None:
            raise ValueError(f"no start positions for {tgt.name or 'this system'}: pass positions [N, 3] in nm")
        positions = tgt.positions
    pos = _as_nm_array(positions)
    n = tgt.system.getNumParticles()
    if pos.shape != (n, 3):
        raise ValueError(f"positions for {tgt.name or 'this system'} must be [{n}, 3] nm, got {pos.shape}")
    if not np.isfinite(pos).all():
        atom = int(np.nonzero(~np.isfinite(pos).all(axis=1))[0][0])
        raise ValueError(
            f"positions for {tgt.name or 'this system'} contain NaN/inf at atom {atom}; pass finite coordinates"
        )
    return pos


def make_context(system: Any, integrator: Any, platform: Optional[str] = None, threads: Optional[int] = None):
    """Create an ``openmm.Context``, trying platforms in order.

    Args:
        system: ``openmm.System``.
        integrator: An ``openmm`` integrator (consumed by the Context).
        platform: Platform name, or None for CPU then Reference.
        threads: CPU threads (CPU platform only), or None for OpenMM's default.

    Returns:
        ``(context, platform_name)``.

    Raises:
        RuntimeError: no platform could create the Context.
    """
    import openmm

    names = [platform] if platform else list(_PLATFORM_ORDER)
    errors = []
    for name in names:
        try:
            plat = openmm.Platform.getPlatformByName(name)
            props = {"Threads": str(int(threads))} if (threads and name == "CPU") else {}
            return openmm.Context(system, integrator, plat, props), name
        except Exception as exc:  # OpenMMException or a missing platform
            errors.append(f"{name}: {exc}")
    raise RuntimeError("could not create an OpenMM Context (" + "; ".join(errors) + ")")


def rms_force(forces: np.ndarray) -> float:
    """RMS per-atom force ``sqrt(sum_i |F_i|^2 / N)`` of ``forces [N, 3]`` (kJ/mol/nm)."""
    forces = np.asarray(forces, dtype=np.float64).reshape(-1, 3)
    return float(np.sqrt(np.sum(forces * forces) / forces.shape[0]))


def _state(context) -> Tuple[float, np.ndarray, np.ndarray]:
    """``(energy kJ/mol, positions [N, 3] nm, forces [N, 3] kJ/mol/nm)`` of a Context."""
    st = context.getState(getEnergy=True, getPositions=True, getForces=True)
    energy = st.getPotentialEnergy()._value
    pos = np.asarray(st.getPositions(asNumpy=True)._value, dtype=np.float64)
    frc = np.asarray(st.getForces(asNumpy=True)._value, dtype=np.float64)
    return float(energy), pos, frc


#: Callback turning positions ``[N, 3]`` nm into extra history columns (e.g. an RMSD).
Observer = Callable[[np.ndarray], Dict[str, float]]


def _make_reporter(
    deadline: Optional[float],
    t0: float,
    history: List[Dict[str, Any]],
    record_every: int,
    base_calls: int,
    observer: Optional[Observer] = None,
):
    """A MinimizationReporter that counts iterations, records energies and enforces a deadline."""
    import openmm

    class _Reporter(openmm.MinimizationReporter):
        def __init__(self) -> None:
            super().__init__()
            self.iterations = 0
            self.best = math.inf

        def report(self, iteration, x, grad, args):  # noqa: D401 - OpenMM callback
            self.iterations += 1
            energy = float(args["system energy"])
            if energy < self.best:
                self.best = energy
            if record_every > 0 and self.iterations % record_every == 0:
                row = {
                    "wall_s": time.perf_counter() - t0,
                    "energy": energy,
                    "best_energy": self.best,
                    "force_calls": base_calls + self.iterations,
                    "phase": "minimize",
                }
                if observer is not None:
                    row.update(observer(np.asarray(x, dtype=np.float64).reshape(-1, 3)))
                history.append(row)
            return deadline is not None and time.perf_counter() > deadline

    return _Reporter()


def _minimize_in(
    context,
    tolerance: float,
    max_iterations: int,
    deadline: Optional[float],
    t0: float,
    history: List[Dict[str, Any]],
    record_every: int,
    base_calls: int,
    observer: Optional[Observer] = None,
) -> int:
    """Run LocalEnergyMinimizer in ``context``; return the iterations made."""
    import openmm

    reporter = _make_reporter(deadline, t0, history, record_every, base_calls, observer)
    openmm.LocalEnergyMinimizer.minimize(context, float(tolerance), int(max_iterations), reporter)
    return reporter.iterations


def group_energies(target: Any, positions: Any) -> Dict[str, float]:
    """Energy of each force group at one configuration, kJ/mol.

    Uses the oracle's ``group_energies`` when the target has an OpenMM oracle
    (groups labelled by force class); otherwise every force gets a group of its
    own in a copy of the System.

    Args:
        target: As in :func:`resolve_target`.
        positions: Positions ``[N, 3]`` in nm.

    Returns:
        ``{force name: energy}``; the values sum to the total energy.
    """
    import openmm

    tgt = resolve_target(target)
    pos = _check_positions(tgt, positions)
    if tgt.oracle is not None and hasattr(tgt.oracle, "group_energies"):
        groups = tgt.oracle.group_energies(torch.as_tensor(pos)[None])
        return {k: float(v[0]) for k, v in groups.items()}
    system = openmm.XmlSerializer.clone(tgt.system)
    names: Dict[int, str] = {}
    for k, force in enumerate(system.getForces()[:32]):
        force.setForceGroup(k)
        names[k] = type(force).__name__ if type(force).__name__ not in names.values() else f"{type(force).__name__}_{k}"
    context, _ = make_context(system, openmm.VerletIntegrator(0.001), "Reference")
    context.setPositions(pos)
    return {names[k]: float(context.getState(getEnergy=True, groups={k}).getPotentialEnergy()._value) for k in names}


def openmm_minimize(
    target: Any,
    positions: Any = None,
    *,
    tolerance_kj_mol_nm: float = 1.0,
    max_iterations: int = 0,
    budget_s: Optional[float] = None,
    platform: Optional[str] = None,
    threads: Optional[int] = None,
    record_every: int = 10,
    seed: Optional[int] = None,
    observer: Optional[Observer] = None,
) -> Result:
    """Minimise with OpenMM's LocalEnergyMinimizer (L-BFGS).

    Args:
        target: A System with an OpenMM oracle, an OpenMM oracle, or
            ``(topology, openmm.System)``; see :func:`resolve_target`.
        positions: Start positions ``[N, 3]`` in nm (default: the System's
            start positions, else the oracle's ``positions``).
        tolerance_kj_mol_nm: Stop when the RMS per-atom force falls below this
            (kJ/mol/nm). It must be a force, not an energy.
        max_iterations: L-BFGS iteration cap; 0 means no cap.
        budget_s: Wall-clock cap in seconds (None: none); checked every
            iteration by the reporter.
        platform: OpenMM platform name (default: the oracle's, else CPU).
        threads: CPU threads (None: OpenMM's default).
        record_every: Record the energy into the history every this many
            iterations (0: only start and end).
        seed: Recorded in the result only (the minimiser is deterministic).
        observer: Optional callback ``positions [N, 3] nm -> {column: value}``
            whose output is added to every history row (e.g. an RMSD).

    Returns:
        A :class:`Result` (method ``"openmm_minimize"``): positions ``[N, 3]``
        nm, energy kJ/mol, ``extra`` with ``final_rms_force``,
        ``max_force``, ``iterations``, ``start_energy``, ``tolerance``,
        ``platform``.

    Raises:
        ValueError: tolerance not positive, or bad positions.
    """
    import openmm

    if not (tolerance_kj_mol_nm > 0 and math.isfinite(tolerance_kj_mol_nm)):
        raise ValueError(f"tolerance_kj_mol_nm must be a positive force in kJ/mol/nm, got {tolerance_kj_mol_nm}")
    tgt = resolve_target(target)
    pos = _check_positions(tgt, positions)
    t0 = time.perf_counter()
    context, plat = make_context(tgt.system, openmm.VerletIntegrator(0.001), platform or tgt.platform_name, threads)
    context.setPositions(pos)
    e0, _, f0 = _state(context)
    history: List[Dict[str, Any]] = [
        {
            "wall_s": time.perf_counter() - t0,
            "energy": e0,
            "best_energy": e0,
            "force_calls": 1,
            "phase": "start",
            **(observer(pos) if observer else {}),
        }
    ]
    deadline = None if budget_s is None else t0 + float(budget_s)
    iterations = _minimize_in(
        context, tolerance_kj_mol_nm, max_iterations, deadline, t0, history, record_every, 1, observer
    )
    energy, final, forces = _state(context)
    calls = iterations + 2
    wall = time.perf_counter() - t0
    history.append(
        {
            "wall_s": wall,
            "energy": energy,
            "best_energy": min(energy, e0),
            "force_calls": calls,
            "phase": "end",
            **(observer(final) if observer else {}),
        }
    )
    return tgt.result(
        positions=final,
        energy=energy,
        method="openmm_minimize",
        seed=seed,
        force_calls=calls,
        wall_s=wall,
        history=history,
        extra={
            "final_rms_force": rms_force(forces),
            "max_force": float(np.max(np.linalg.norm(forces, axis=1))),
            "start_energy": e0,
            "start_rms_force": rms_force(f0),
            "iterations": iterations,
            "tolerance_kj_mol_nm": float(tolerance_kj_mol_nm),
            "platform": plat,
        },
    )


@dataclasses.dataclass
class AnnealConfig:
    """Simulated annealing with Langevin dynamics, then minimisation.

    Each cycle heats to ``t_start_k``, ramps the bath temperature linearly to
    0 K, then minimises; the next cycle restarts from the best minimum so far.

    Attributes:
        budget_s: Wall-clock budget for the whole run, seconds.
        cycles: Number of anneal cycles sharing the budget equally.
        t_start_k: Start temperature, K.
        timestep_fs: MD time step, fs (the System has no constraints, so keep
            1 fs or less with hydrogens).
        friction_per_ps: Langevin friction, 1/ps.
        chunk_steps: MD steps between temperature updates and history records.
        steps_per_cycle: MD steps per cycle; None derives the ramp from wall
            time instead (set it for runs reproducible across machines).
        minimize_fraction: Fraction of each cycle's time kept for the final
            minimisation (used when ``steps_per_cycle`` is None).
        tolerance_kj_mol_nm: Minimiser tolerance (RMS force, kJ/mol/nm).
    """

    budget_s: float = 60.0
    cycles: int = 1
    t_start_k: float = 600.0
    timestep_fs: float = 1.0
    friction_per_ps: float = 1.0
    chunk_steps: int = 200
    steps_per_cycle: Optional[int] = None
    minimize_fraction: float = 0.15
    tolerance_kj_mol_nm: float = 1.0

    def __post_init__(self) -> None:
        if not (self.budget_s > 0):
            raise ValueError(f"AnnealConfig.budget_s must be positive, got {self.budget_s}")
        if self.cycles < 1 or self.chunk_steps < 1:
            raise ValueError("AnnealConfig.cycles and chunk_steps must be at least 1")
        if not (0.0 <= self.minimize_fraction < 1.0):
            raise ValueError(f"AnnealConfig.minimize_fraction must be in [0, 1), got {self.minimize_fraction}")
        if not (self.t_start_k >= 0 and self.timestep_fs > 0 and self.friction_per_ps > 0):
            raise ValueError("AnnealConfig needs t_start_k >= 0 K, timestep_fs > 0 and friction_per_ps > 0")


def openmm_anneal(
    target: Any,
    positions: Any = None,
    config: Optional[AnnealConfig] = None,
    *,
    seed: int = 0,
    budget_s: Optional[float] = None,
    platform: Optional[str] = None,
    threads: Optional[int] = None,
    observer: Optional[Observer] = None,
) -> Result:
    """Simulated annealing (LangevinMiddleIntegrator, T ramp to 0 K) then minimisation.

    MD blow-ups (NaN coordinates or energies) restore the last good chunk and
    redraw velocities; they are counted in ``extra["md_failures"]``.

    Args:
        target: As in :func:`openmm_minimize`.
        positions: Start positions ``[N, 3]`` nm (default: the System's start).
        config: :class:`AnnealConfig` (default: ``AnnealConfig()``).
        seed: Seeds velocities and the Langevin noise.
        budget_s: Overrides ``config.budget_s`` when given.
        platform: OpenMM platform name (default: the oracle's, else CPU).
        threads: CPU threads (None: OpenMM's default).
        observer: Optional callback ``positions [N, 3] nm -> {column: value}``
            added to the history rows of the MD chunks and minimised states.

    Returns:
        A :class:`Result` (method ``"openmm_anneal"``) holding the lowest
        structure among the input and the minimised end of each cycle; history rows have ``wall_s``, ``temperature_k``,
        ``energy`` (current), ``best_energy``, ``force_calls``, ``phase``;
        ``extra`` has ``final_rms_force``, ``md_steps``, ``cycles``,
        ``cycle_energies``, ``md_failures``, ``platform``.
    """
    import openmm
    from openmm import unit

    cfg = config if config is not None else AnnealConfig()
    if budget_s is not None:
        cfg = dataclasses.replace(cfg, budget_s=float(budget_s))
    tgt = resolve_target(target)
    pos = _check_positions(tgt, positions)
    t0 = time.perf_counter()
    integrator = openmm.LangevinMiddleIntegrator(
        0.0 * unit.kelvin, cfg.friction_per_ps / unit.picosecond, cfg.timestep_fs * unit.femtosecond
    )
    integrator.setRandomNumberSeed(int(seed) % (2**31 - 1) + 1)
    context, plat = make_context(tgt.system, integrator, platform or tgt.platform_name, threads)
    context.setPositions(pos)
    e0, _, f0 = _state(context)
    calls = 1
    # the input is the first candidate: annealing never reports a structure above it
    best_e, best_pos, best_forces = e0, pos.copy(), f0
    history: List[Dict[str, Any]] = [
        {
            "wall_s": time.perf_counter() - t0,
            "temperature_k": 0.0,
            "energy": e0,
            "best_energy": e0,
            "force_calls": calls,
            "phase": "start",
        }
    ]
    md_steps = 0
    failures = 0
    cycle_energies: List[float] = []
    current = pos
    for cycle in range(cfg.cycles):
        now = time.perf_counter()
        remaining = t0 + cfg.budget_s - now
        if remaining <= 0 and cycle > 0:
            break
        cycle_end = now + remaining / (cfg.cycles - cycle)
        md_end = now + (cycle_end - now) * (1.0 - cfg.minimize_fraction)
        context.setPositions(current)
        context.setVelocitiesToTemperature(cfg.t_start_k * unit.kelvin, int(seed) * 1000 + cycle + 1)
        good = current
        step = 0
        chunk_s = 0.0  # duration of the last MD chunk: no chunk starts that would end past the MD phase
        while True:
            if cfg.steps_per_cycle is not None:
                frac = step / cfg.steps_per_cycle
                if frac >= 1.0 or time.perf_counter() + chunk_s > t0 + cfg.budget_s:
                    break
            else:
                frac = (time.perf_counter() - now) / max(md_end - now, 1e-9)
                if frac >= 1.0 or time.perf_counter() + chunk_s > md_end:
                    break
            chunk_start = time.perf_counter()
            temp = cfg.t_start_k * max(0.0, 1.0 - frac)
            integrator.setTemperature(temp * unit.kelvin)
            n = cfg.chunk_steps if cfg.steps_per_cycle is None else min(cfg.chunk_steps, cfg.steps_per_cycle - step)
            try:
                integrator.step(n)
                st = context.getState(getEnergy=True, getPositions=True)
                energy = st.getPotentialEnergy()._value
                xyz = np.asarray(st.getPositions(asNumpy=True)._value, dtype=np.float64)
                if not (math.isfinite(energy) and np.isfinite(xyz).all()):
                    raise openmm.OpenMMException("non-finite energy or coordinates")
                good = xyz
            except openmm.OpenMMException:
                failures += 1
                energy = math.nan
                context.setPositions(good)
                context.setVelocitiesToTemperature(max(temp, 1.0) * unit.kelvin, int(seed) * 7919 + failures)
            step += n
            md_steps += n
            calls += n + 1
            chunk_s = time.perf_counter() - chunk_start
            row = {
                "wall_s": time.perf_counter() - t0,
                "temperature_k": temp,
                "energy": energy,
                "best_energy": best_e if math.isfinite(best_e) else e0,
                "force_calls": calls,
                "phase": f"anneal{cycle}",
            }
            if observer is not None:
                row.update(observer(good))
            history.append(row)
        context.setPositions(good)
        deadline = max(cycle_end, time.perf_counter() + 0.2) if cfg.steps_per_cycle is None else t0 + cfg.budget_s
        iterations = _minimize_in(context, cfg.tolerance_kj_mol_nm, 0, deadline, t0, history, 0, calls)
        energy, xyz, forces = _state(context)
        calls += iterations + 1
        cycle_energies.append(energy)
        if energy < best_e:
            best_e, best_pos, best_forces = energy, xyz, forces
        current = best_pos
        history.append(
            {
                "wall_s": time.perf_counter() - t0,
                "temperature_k": 0.0,
                "energy": energy,
                "best_energy": best_e,
                "force_calls": calls,
                "phase": f"minimized{cycle}",
                **(observer(xyz) if observer else {}),
            }
        )
    wall = time.perf_counter() - t0
    return tgt.result(
        positions=best_pos,
        energy=best_e,
        method="openmm_anneal",
        seed=seed,
        force_calls=calls,
        wall_s=wall,
        history=history,
        extra={
            "final_rms_force": rms_force(best_forces) if best_forces is not None else math.nan,
            "start_energy": e0,
            "md_steps": md_steps,
            "cycles": len(cycle_energies),
            "cycle_energies": cycle_energies,
            "md_failures": failures,
            "platform": plat,
            "config": dataclasses.asdict(cfg),
        },
    )


def polish(
    target: Any,
    result: Result,
    *,
    tolerance_kj_mol_nm: float = 1.0,
    budget_s: Optional[float] = None,
    platform: Optional[str] = None,
    threads: Optional[int] = None,
    also: Optional[List[np.ndarray]] = None,
    observer: Optional[Observer] = None,
) -> Result:
    """Polish a search result's structure with OpenMM's LocalEnergyMinimizer.

    The result's positions (and any extra candidates in ``also``) are
    minimised; the lowest minimum is returned. Force calls and wall time add
    to the search's, and the minimiser's history rows follow the search's,
    shifted by its wall time and force calls.

    Args:
        target: As in :func:`openmm_minimize`.
        result: A search :class:`Result` in nm / kJ/mol.
        tolerance_kj_mol_nm: Minimiser tolerance (RMS force, kJ/mol/nm).
        budget_s: Wall-clock budget of all the polishing together (None:
            minimise each candidate to the tolerance).
        platform: OpenMM platform name.
        threads: CPU threads.
        also: Further candidate positions ``[N, 3]`` nm to polish (e.g. the
            lowest point a search has seen).
        observer: As in :func:`openmm_minimize`.

    Returns:
        A new :class:`Result`, method ``"<method>+polish"``, with
        ``extra["before_polish_energy"]`` and the minimiser's ``extra``
        (``final_rms_force``, ...) merged into the search's.
    """
    if result.units.energy != OPENMM_UNITS.energy or result.units.length != OPENMM_UNITS.length:
        raise ValueError(f"polish needs a result in nm and kJ/mol, got {result.units}")
    candidates = [np.asarray(result.positions, dtype=np.float64)] + [
        np.asarray(p, dtype=np.float64) for p in (also or [])
    ]
    t0 = time.perf_counter()
    best: Optional[Result] = None
    calls = 0
    for k, cand in enumerate(candidates):
        left = None if budget_s is None else max(budget_s - (time.perf_counter() - t0), 1.0) / (len(candidates) - k)
        res = openmm_minimize(
            target,
            cand,
            tolerance_kj_mol_nm=tolerance_kj_mol_nm,
            budget_s=left,
            platform=platform,
            threads=threads,
            observer=observer,
        )
        calls += res.force_calls
        if best is None or res.energy < best.energy:
            best = res
    assert best is not None
    shifted = [
        {
            **row,
            "wall_s": row["wall_s"] + result.wall_s,
            "force_calls": row["force_calls"] + result.force_calls,
            "best_energy": min(row["best_energy"], result.energy),
            "phase": "polish",
        }
        for row in best.history
    ]
    extra = dict(result.extra)
    extra.update(best.extra)
    extra["before_polish_energy"] = float(result.energy)
    extra["polish_candidates"] = len(candidates)
    return dataclasses.replace(
        result,
        positions=best.positions,
        energy=best.energy,
        method=f"{result.method}+polish",
        force_calls=result.force_calls + calls,
        wall_s=result.wall_s + (time.perf_counter() - t0),
        history=list(result.history) + shifted,
        extra=extra,
    )
