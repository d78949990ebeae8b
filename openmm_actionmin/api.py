"""The few-line Python API: ``minimize(target, method=..., seed=..., budget_s=...)``.

A *target* is turned into a :class:`~openmm_actionmin.systems.base.System`
(:func:`as_system`) and handed to a search method. Accepted targets:

* a path to a PDB file (prepared with pdbfixer, AMBER through OpenMM);
* an OpenMM ``(topology, system, positions)`` triple;
* an ``ase.Atoms`` with a calculator;
* a ``System`` from :mod:`openmm_actionmin.systems`;
* a cluster name such as ``"LJ38"`` or ``"stridernet"``;
* a synthetic function: a :class:`~openmm_actionmin.oracles.synthetic.SyntheticOracle`
  or a name with a dimension, ``"alpine1:100"``.

Methods by kind of target (``DEFAULT_METHOD`` gives the default, chosen by the
benchmarks in ``bench/results/``):

* clusters and ASE atoms: ``basin_hopping_lattice`` (ours, batched, with
  three walkers started from lattice-searched icosahedral, decahedral and fcc
  structures; the blind search when the system declares no nearest-neighbour
  distance, see below), ``basin_hopping`` (ours, blind), ``action``,
  ``hybrid``, ``scipy_basinhopping``;
* peptides (OpenMM): ``basin_hopping`` (ours: torsion-space pivot moves,
  OpenMM quench, Metropolis), ``hybrid`` (action candidates seed it),
  ``anneal``, ``openmm`` (OpenMM's minimiser), ``action``, ``random_only``;
* functions: ``action``, ``random_only``, ``adam``, ``cma``,
  ``scipy_basinhopping``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch

from .devices import check_device, same_device
from .result import Result
from .spaces import Box, Displacement
from .systems.base import System

#: Default method per kind of target, as decided by the benchmarks, not by taste:
#: clusters: our batched basin hopping with lattice starts (LJ13/38/55/75 10/10 seeds, median
#: time to the GM 0.2-0.9 s, bench/results/clusters_lattice.md; the blind search: LJ38 5/10
#: in 40 s against scipy's 1/10, LJ75 0/10); peptides: torsion-space basin hopping (lowest
#: energy from extended chains in 5/5 seeds of both CLN025 and Trp-cage,
#: bench/results/proteins_5seeds_60s.md); functions: the action trainer with the trust-region
#: round bowl (D = 1000, 450 s, 3 seeds: medians 46.0 / 81.4 on shifted Alpine 1 / Schaffer F7
#: against random-only 390.7 / 307.5, Adam ~2200, basin hopping 604.2 / 1969.7 and CMA-ES
#: 1821.3 / 1624.4, bench/results/synthetic_d1000_session9.md); at D = 100 it is the closest
#: method after the one that solves each function (8.4 / 14.6; basin hopping solves Alpine 1 and
#: CMA-ES Schaffer F7, same file).
DEFAULT_METHOD = {"cluster": "basin_hopping_lattice", "peptide": "basin_hopping", "function": "action"}

_FUNCTION_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_ -]+):(?P<dim>\d+)$")


def target_kind(system: System) -> str:
    """``"peptide"`` (OpenMM-backed), ``"cluster"`` (other atomic) or ``"function"``."""
    if not system.is_atomic:
        return "function"
    if type(system.oracle).__name__ == "OpenMMOracle":
        return "peptide"
    return "cluster"


def as_system(target: Any, *, dim: Optional[int] = None, device: Optional[str] = None) -> System:
    """Turn a target into a :class:`System`.

    Args:
        target: See the module docstring.
        dim: Dimension for a synthetic function given by bare name.
        device: Torch device of the oracle built for a cluster name or a
            function ``"name:dim"`` (``None``: the CPU). A target that brings
            its own oracle keeps that oracle's device (asking for another is an
            error), and a PDB runs through OpenMM, which picks its own platform
            (CUDA first where it exists).

    Returns:
        The System.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: a target that is not understood, with what is accepted;
            a device that does not exist here or does not fit the target.
    """
    dev = check_device(device)
    if isinstance(target, (str, os.PathLike)):
        return _system_from_string(os.fspath(target), dim, dev)
    system = _system_from_object(target)
    if dev is not None and not same_device(dev, system.oracle.device):
        raise ValueError(
            f"device={device!r} asked for, but this target's oracle ({type(system.oracle).__name__}) lives on "
            f"{system.oracle.device}; build the oracle on {device} (its device= argument) or leave device out"
        )
    return system


def _system_from_object(target: Any) -> System:
    if isinstance(target, System):
        return target
    if isinstance(target, tuple) and len(target) == 3:
        return _system_from_openmm(*target)
    if type(target).__name__ == "Atoms" and hasattr(target, "get_positions"):
        return _system_from_atoms(target)
    from .oracles.base import EnergyOracle

    if isinstance(target, EnergyOracle):
        if hasattr(target, "space") and target.n_atoms is None:
            return System(name=getattr(target, "name", type(target).__name__), oracle=target, space=target.space(),
                          reference_positions=getattr(target, "minimum_location", None),
                          reference_energy=getattr(target, "minimum_value", None))
        raise ValueError(f"{target!r} has no natural search space: wrap it in a System with a space (openmm_actionmin.spaces)")
    raise ValueError(
        f"cannot minimise a {type(target).__name__}: pass a PDB path, an OpenMM (topology, system, positions) triple, "
        "an ase.Atoms with a calculator, a System, a cluster name like 'LJ38', or a function like 'alpine1:100'"
    )


def _system_from_string(text: str, dim: Optional[int], device: Optional[torch.device] = None) -> System:
    path = Path(text)
    if path.suffix.lower() == ".pdb" or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"PDB file not found: {path}")
        if path.suffix.lower() != ".pdb":
            raise ValueError(f"{path}: only PDB files are read; convert it to .pdb first")
        if device is not None and device.type != "cpu":
            raise ValueError(
                f"{path}: device={str(device)!r} applies to torch oracles (clusters, functions); a PDB runs through "
                "OpenMM, which uses its CUDA platform by itself where one exists. Leave device out"
            )
        from .systems import from_pdb

        return from_pdb(path)
    match = _FUNCTION_SPEC.match(text)
    if match or dim is not None:
        from .oracles.synthetic import SYNTHETIC_FUNCTIONS, make_function

        name = match.group("name") if match else text
        d = int(match.group("dim")) if match else int(dim)
        oracle = make_function(name, d, device=device or "cpu")
        return System(name=f"{name}:{d}", oracle=oracle, space=oracle.space(), reference_positions=oracle.minimum_location,
                      reference_energy=oracle.minimum_value, metadata={"functions": sorted(SYNTHETIC_FUNCTIONS)})
    from .systems import named_system

    return named_system(text) if device is None else named_system(text, device=device)


def _system_from_openmm(topology, openmm_system, positions) -> System:
    from .oracles.openmm import OpenMMOracle

    oracle = OpenMMOracle(topology, openmm_system)
    from openmm import unit

    pos = positions.value_in_unit(unit.nanometer) if unit.is_quantity(positions) else positions
    start = torch.as_tensor(np.asarray(pos, dtype=np.float64))
    symbols = [a.element.symbol if a.element is not None else "X" for a in topology.atoms()]
    return System(name="openmm", oracle=oracle, space=Displacement(start, 0.1), start_positions=start, symbols=symbols, topology=topology)


def _system_from_atoms(atoms) -> System:
    from .ase import OracleCalculator
    from .oracles.ase import ASEOracle

    if atoms.calc is None:
        raise ValueError("the Atoms object has no calculator: set atoms.calc first")
    oracle = atoms.calc.oracle if isinstance(atoms.calc, OracleCalculator) else ASEOracle(atoms, atoms.calc)
    x = atoms.get_positions()
    n = len(atoms)
    d = np.linalg.norm(x[:, None] - x[None], axis=-1) + np.eye(n) * 1e9
    half = 0.5 * float(np.median(d.min(axis=1))) * (n / 0.5) ** (1.0 / 3.0)
    centre = x.mean(axis=0)
    space = Box(torch.as_tensor(np.tile(centre - half, n)), torch.as_tensor(np.tile(centre + half, n)), (n, 3))
    return System(name=atoms.get_chemical_formula(), oracle=oracle, space=space, start_positions=torch.as_tensor(x),
                  symbols=list(atoms.get_chemical_symbols()))


# ------------------------------------------------------------------ methods
def _lattice_options(system: System, options: Dict[str, Any]) -> Dict[str, Any]:
    """Options of ``basin_hopping_lattice``: lattice starts at the system's nearest-neighbour distance.

    The distance comes from ``options["lattice_nn"]`` or
    ``system.metadata["nn_distance"]`` (set by the cluster builders); without
    either (e.g. an ``ase.Atoms`` target), lattice starts are off and the
    search is the blind one.
    """
    from .search.basin_hopping import BasinHoppingConfig
    from .search.lattices import lattice_walkers

    out = dict(options)
    nn = out.get("lattice_nn", system.metadata.get("nn_distance"))
    if nn is None:
        out["lattice_starts"] = 0
    else:
        out["lattice_nn"] = float(nn)
        out.setdefault("lattice_starts", lattice_walkers(int(out.get("n_walkers", BasinHoppingConfig.n_walkers))))
    return out


def _cluster_method(name: str) -> Callable[..., Result]:
    def run(system: System, seed: int, budget_s: float, progress: bool, checkpoint: Optional[str], **options) -> Result:
        if name in ("basin_hopping", "basin_hopping_lattice"):
            from .search.basin_hopping import BasinHoppingConfig, basin_hopping

            if name == "basin_hopping_lattice":
                options = _lattice_options(system, options)
            cfg = BasinHoppingConfig(seed=seed, budget_s=budget_s, progress=progress, checkpoint_path=checkpoint,
                                     resume=checkpoint is not None, **options)
            starts = system.start_positions[None] if system.start_positions is not None else None
            return dataclasses.replace(basin_hopping(system, cfg, starts=starts), method=name)
        if name == "hybrid":
            from .search.hybrid import HybridConfig, hybrid_search

            return hybrid_search(system, HybridConfig(seed=seed, budget_s=budget_s, progress=progress, **options))
        if name == "action":
            from .search.hybrid import action_candidates

            t0 = time.perf_counter()
            calls0 = system.oracle.counters.force_calls
            x, energy, res = action_candidates(system, budget_s, seed, progress=progress)
            best = int(torch.argmin(energy))
            return dataclasses.replace(res, positions=x[best].cpu().numpy(), energy=float(energy[best]),
                                       force_calls=system.oracle.counters.force_calls - calls0, wall_s=time.perf_counter() - t0)
        from .search.baselines import scipy_basinhopping

        return scipy_basinhopping(system, budget_s, seed, **options)

    return run


def _peptide_method(name: str) -> Callable[..., Result]:
    def run(system: System, seed: int, budget_s: float, progress: bool, checkpoint: Optional[str], **options) -> Result:
        from .proteins import run_method

        return run_method(system, name, seed=seed, budget_s=budget_s, progress=progress, checkpoint_path=checkpoint, **options)

    return run


def _function_method(name: str) -> Callable[..., Result]:
    def run(system: System, seed: int, budget_s: float, progress: bool, checkpoint: Optional[str], **options) -> Result:
        from .search import baselines
        from .search.action_config import BOWL_MODEL, SYNTHETIC_ACTION

        if name == "action":
            from .search.action import ActionConfig, ActionTrainer

            cfg = ActionConfig(seed=seed, budget_s=budget_s, progress=progress, checkpoint_path=checkpoint, **{**SYNTHETIC_ACTION, **options})
            return ActionTrainer(system, cfg).run(resume=checkpoint is not None)
        if name == "random_only":
            return baselines.random_only(system, budget_s, seed, **{**BOWL_MODEL, **options})
        if name == "adam":
            return baselines.adam_multistart(system, budget_s, seed, **options)
        if name == "cma":
            return baselines.cma_es(system, budget_s, seed, **options)
        return baselines.scipy_basinhopping(system, budget_s, seed, **options)

    return run


#: kind -> method name -> runner(system, seed, budget_s, progress, checkpoint, **options)
METHODS: Dict[str, Dict[str, Callable[..., Result]]] = {
    "cluster": {m: _cluster_method(m) for m in ("basin_hopping_lattice", "basin_hopping", "hybrid", "action", "scipy_basinhopping")},
    "peptide": {m: _peptide_method(m) for m in ("basin_hopping", "hybrid", "anneal", "openmm", "action", "random_only")},
    "function": {m: _function_method(m) for m in ("action", "random_only", "adam", "cma", "scipy_basinhopping")},
}


def minimize(
    target: Any,
    method: Optional[str] = None,
    *,
    seed: int = 0,
    budget_s: Optional[float] = 60.0,
    progress: bool = True,
    checkpoint: Optional[str] = None,
    dim: Optional[int] = None,
    device: Optional[str] = None,
    **options: Any,
) -> Result:
    """Search for the global minimum of a target.

    Example::

        import openmm_actionmin as am
        result = am.minimize("LJ38", budget_s=60, seed=0)
        result.save("lj38.xyz")

    Args:
        target: See the module docstring.
        method: A method for that kind of target (``None``: the default the
            benchmarks chose, :data:`DEFAULT_METHOD`).
        seed: Seed; the same seed gives the same run when no wall-clock limit
            cuts it short.
        budget_s: Wall-clock budget in seconds (``None``: no limit, for
            methods that take another limit such as ``max_steps``).
        progress: Show a tqdm progress bar where the method has one.
        checkpoint: Checkpoint file for methods that resume (basin hopping,
            the action trainer on any target); an existing file is resumed.
        dim: Dimension for a synthetic function given by bare name.
        device: Torch device for a cluster name or a function ``"name:dim"``
            (``"cuda"`` on a GPU machine); see :func:`as_system`.
        **options: Extra settings of the method's config.

    Returns:
        A :class:`~openmm_actionmin.result.Result`.

    Raises:
        ValueError: an unknown method for this kind of target, listing the
            known ones; a device that does not exist here or does not fit
            the target.
    """
    system = as_system(target, dim=dim, device=device)
    kind = target_kind(system)
    name = method or DEFAULT_METHOD[kind]
    runners = METHODS[kind]
    if name not in runners:
        raise ValueError(f"unknown method {name!r} for a {kind} target; choose one of {', '.join(runners)}")
    budget = None if budget_s is None else float(budget_s)
    result = runners[name](system, int(seed), budget, bool(progress), checkpoint, **options)
    if not result.system:
        result.system = system.name
    if result.symbols is None and system.symbols is not None:
        result.symbols = list(system.symbols)
    if result.topology is None and system.topology is not None:
        result.topology = system.topology
    return result
