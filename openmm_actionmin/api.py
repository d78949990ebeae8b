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

Methods come from the one registry (:mod:`openmm_actionmin.registry`):
``openmm_actionmin.registry.describe()`` lists them with the kinds of target
each accepts; :data:`DEFAULT_METHOD` gives the default per kind.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from .devices import check_device, same_device
from .registry import DEFAULTS, RunConfig, check_budget, check_seed, get_method, target_kind
from .result import Result
from .spaces import Box, Displacement
from .systems.base import System

#: Default method per kind of target (the registry's; why each is what it is: docs/decisions.md).
DEFAULT_METHOD = DEFAULTS

#: Structure files a target can be read from.
STRUCTURE_FORMATS = (".pdb", ".xyz")

#: Potentials for an XYZ cluster: name -> units of the file's coordinates.
XYZ_POTENTIALS = {"lj": "reduced (sigma)", "ase:EMT": "Angstrom", "ase:LennardJones": "Angstrom"}

_FUNCTION_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_ -]+):(?P<dim>\d+)$")


def as_system(
    target: Any,
    *,
    dim: Optional[int] = None,
    device: Optional[str] = None,
    pdb_options: Optional[Dict[str, Any]] = None,
) -> System:
    """Turn a target into a :class:`System`.

    Args:
        target: See the module docstring.
        dim: Dimension for a synthetic function given by bare name.
        device: Torch device of the oracle built for a cluster name or a
            function ``"name:dim"`` (``None``: the CPU). A target that brings
            its own oracle keeps that oracle's device (asking for another is an
            error), and a PDB runs through OpenMM, which picks its own platform
            (CUDA first where it exists).
        pdb_options: Keyword arguments of
            :func:`~openmm_actionmin.systems.peptides.from_pdb` for a PDB path
            (``forcefield``, ``solvent``, ``keep_water``, ``platform``, ...).

    Returns:
        The System.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: a target that is not understood, with what is accepted;
            a device that does not exist here or does not fit the target.
    """
    dev = check_device(device)
    if isinstance(target, (str, os.PathLike)):
        return _system_from_string(os.fspath(target), dim, dev, pdb_options or {})
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
            return System(
                name=getattr(target, "name", type(target).__name__),
                oracle=target,
                space=target.space(),
                reference_positions=getattr(target, "minimum_location", None),
                reference_energy=getattr(target, "minimum_value", None),
            )
        raise ValueError(
            f"{target!r} has no natural search space: wrap it in a System with a space (openmm_actionmin.spaces)"
        )
    raise ValueError(
        f"cannot minimise a {type(target).__name__}: pass a PDB path, an OpenMM (topology, system, positions) triple, "
        "an ase.Atoms with a calculator, a System, a cluster name like 'LJ38', or a function like 'alpine1:100'"
    )


def _system_from_string(
    text: str, dim: Optional[int], device: Optional[torch.device] = None, pdb_options: Optional[Dict[str, Any]] = None
) -> System:
    path = Path(text)
    suffix = path.suffix.lower()
    looks_like_file = path.exists() or suffix in STRUCTURE_FORMATS or os.sep in text
    if looks_like_file and not path.exists():
        raise FileNotFoundError(f"file not found: {path}")
    if looks_like_file and suffix == ".xyz":
        return _system_from_xyz(path, (pdb_options or {}).get("potential"), device)
    if looks_like_file:
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder; give a .pdb or .xyz file")
        if suffix != ".pdb":
            raise ValueError(
                f"{path}: reads .pdb (proteins and peptides, through OpenMM) and .xyz (clusters, with a "
                f"potential); convert {suffix or 'the file'} to one of them"
            )
        if device is not None and device.type != "cpu":
            raise ValueError(
                f"{path}: device={str(device)!r} applies to torch oracles (clusters, functions); a PDB runs through "
                "OpenMM, which uses its CUDA platform by itself where one exists. Leave device out"
            )
        from .systems import from_pdb

        return from_pdb(path, **{k: v for k, v in (pdb_options or {}).items() if k != "potential"})
    match = _FUNCTION_SPEC.match(text)
    if match or dim is not None:
        from .oracles.synthetic import SYNTHETIC_FUNCTIONS, make_function

        name = match.group("name") if match else text
        d = int(match.group("dim")) if match else int(dim)
        oracle = make_function(name, d, device=device or "cpu")
        return System(
            name=f"{name}:{d}",
            oracle=oracle,
            space=oracle.space(),
            reference_positions=oracle.minimum_location,
            reference_energy=oracle.minimum_value,
            metadata={"functions": sorted(SYNTHETIC_FUNCTIONS)},
        )
    from .systems import named_system

    size = re.match(r"^\s*(?:LJ|BLJ|ION)(\d+)\s*$", text, re.IGNORECASE)
    if size:
        check_memory(int(size.group(1)), text)
    try:
        return named_system(text) if device is None else named_system(text, device=device)
    except ValueError as exc:
        if str(exc).startswith("unknown cluster system"):
            raise ValueError(
                f"unknown target {text!r}: not a file here, not a cluster name (LJ<n>, BLJ<n>, ION<n>, "
                "stridernet) and not a function NAME:DIM (alpine1:100)"
            ) from None
        raise


def _system_from_xyz(path: Path, potential: Optional[str], device: Optional[torch.device]) -> System:
    """A cluster read from an XYZ file under a named potential.

    ``"lj"``: coordinates in reduced units (sigma), the batched torch LJ
    oracle (epsilon = sigma = 1) with the Cambridge Cluster Database
    reference for its size. ``"ase:EMT"``, ``"ase:LennardJones"``: an ASE
    calculator, coordinates in Angstrom, energies in eV.
    """
    from ase.io import read

    if potential is None:
        raise ValueError(
            f"{path}: an XYZ file needs a potential: potential= (--potential) one of {', '.join(XYZ_POTENTIALS)}"
        )
    if potential not in XYZ_POTENTIALS:
        raise ValueError(f"{path}: unknown potential {potential!r}; choose one of {', '.join(XYZ_POTENTIALS)}")
    try:
        atoms = read(str(path), format="xyz")
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's fault
        raise ValueError(f"{path}: not a readable XYZ file ({type(exc).__name__}: {exc})") from None
    if potential == "lj":
        from .systems import lj_cluster

        x = torch.as_tensor(atoms.get_positions(), dtype=torch.float64)
        _check_atom_positions(x.numpy(), str(path))
        system = lj_cluster(len(atoms)) if device is None else lj_cluster(len(atoms), device=device)
        return dataclasses.replace(
            system,
            name=path.stem,
            start_positions=x.to(system.oracle.device),
            metadata={**system.metadata, "source": str(path), "units": XYZ_POTENTIALS[potential]},
        )
    from ase.calculators.emt import EMT
    from ase.calculators.lj import LennardJones

    atoms.calc = EMT() if potential == "ase:EMT" else LennardJones(rc=1e3)
    system = _system_from_atoms(atoms)
    return dataclasses.replace(
        system, name=path.stem, metadata={**system.metadata, "source": str(path), "units": XYZ_POTENTIALS[potential]}
    )


def _check_atom_positions(x: np.ndarray, where: str) -> None:
    """Refuse NaN/inf coordinates and coincident atoms, naming the atom."""
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        raise ValueError(
            f"{where}: atom {int(bad[0])} has a non-finite position {x[bad[0]].tolist()}; fix the structure"
        )
    if len(x) > 1:
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        np.fill_diagonal(d, np.inf)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        if d[i, j] < 1e-6:
            raise ValueError(
                f"{where}: atoms {min(i, j)} and {max(i, j)} sit at the same position {x[i].tolist()}; move one of them"
            )


def _system_from_openmm(topology, openmm_system, positions) -> System:
    from .oracles.openmm import OpenMMOracle

    oracle = OpenMMOracle(topology, openmm_system)
    from openmm import unit

    pos = positions.value_in_unit(unit.nanometer) if unit.is_quantity(positions) else positions
    start = torch.as_tensor(np.asarray(pos, dtype=np.float64))
    symbols = [a.element.symbol if a.element is not None else "X" for a in topology.atoms()]
    return System(
        name="openmm",
        oracle=oracle,
        space=Displacement(start, 0.1),
        start_positions=start,
        symbols=symbols,
        topology=topology,
    )


def _system_from_atoms(atoms) -> System:
    from .ase import (
        OracleCalculator,
        check_searchable_atoms,
        scaled_basin_hopping_options,
        species_types,
        structure_scales,
    )
    from .oracles.ase import ASEOracle

    check_searchable_atoms(atoms)
    _check_atom_positions(atoms.get_positions(), "the Atoms object")
    oracle = (
        atoms.calc.oracle if isinstance(atoms.calc, OracleCalculator) else ASEOracle.for_calculator(atoms, atoms.calc)
    )
    x = atoms.get_positions()
    n = len(atoms)
    # lengths, steps and temperature in the structure's own units (eV and Angstrom for ASE)
    scales = structure_scales(oracle, x)
    nn = scales["nn_distance"]
    half = 0.5 * nn * (n / 0.5) ** (1.0 / 3.0)
    centre = x.mean(axis=0)
    space = Box(torch.as_tensor(np.tile(centre - half, n)), torch.as_tensor(np.tile(centre + half, n)), (n, 3))
    metadata = {
        "nn_distance": nn,
        "energy_per_atom": scales["energy_per_atom"],
        "basin_hopping_options": scaled_basin_hopping_options(n, nn, scales["energy_per_atom"]),
    }
    return System(
        name=atoms.get_chemical_formula(),
        oracle=oracle,
        space=space,
        start_positions=torch.as_tensor(x),
        symbols=list(atoms.get_chemical_symbols()),
        types=species_types(atoms.get_chemical_symbols()),
        metadata=metadata,
    )


#: Walkers whose pair tables the batched cluster oracles hold at once.
_MEMORY_BATCH = 16


def check_memory(n_atoms: int, name: str, batch: int = _MEMORY_BATCH) -> None:
    """Refuse a cluster whose batched pair tables cannot fit in this machine's memory.

    The batched pair oracles hold about eight ``[batch, N, N]`` float64 tables
    at once (distances, their powers, forces); ``batch`` is the number of
    basin-hopping walkers.

    Raises:
        ValueError: the estimate exceeds 80 % of the physical memory (the
            message gives both numbers).
    """
    need = batch * float(n_atoms) ** 2 * 8 * 8
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > 0.8 * have:
        raise ValueError(
            f"{name}: {batch} walkers of {n_atoms} atoms need about {need / 2**30:,.0f} GiB for pair tables, "
            f"but this machine has {have / 2**30:,.0f} GiB; choose a smaller cluster"
        )


def _peptide_extras(system: System, result: Result, t_start: float, start: Dict[str, Any]) -> Dict[str, Any]:
    """Start and end energies, RMS forces, per-group energies and CA RMSD to the input of a peptide result."""
    from .proteins import CARMSD
    from .search.openmm_baselines import group_energies, rms_force

    pos = np.asarray(result.positions, dtype=np.float64)
    energy, forces = system.oracle.energy_and_forces(torch.as_tensor(pos)[None], transform=None)
    extra = dict(start)
    extra.update(
        {
            "final_energy": float(energy[0]),
            "final_rms_force": rms_force(forces[0].numpy()),
            "group_energies": group_energies(system, pos),
        }
    )
    try:
        extra["ca_rmsd_to_input_A"] = CARMSD(system.topology, system.start_positions)(pos)
    except ValueError:  # no CA atoms: not a protein
        pass
    return extra


def minimize(
    target: Any,
    method: Optional[str] = None,
    *,
    seed: int = 0,
    budget_s: Optional[float] = 60.0,
    progress: bool = True,
    checkpoint: Optional[str] = None,
    checkpoint_interval_s: float = 60.0,
    out: Optional[str] = None,
    dim: Optional[int] = None,
    device: Optional[str] = None,
    forcefield: Any = "amber14-all.xml",
    solvent: str = "obc2",
    reference: Any = None,
    potential: Optional[str] = None,
    **options: Any,
) -> Result:
    """Search for the global minimum of a target.

    Example::

        import openmm_actionmin as am
        result = am.minimize("LJ38", budget_s=60, seed=0, out="lj38.xyz")

    Everything is checked before the search starts (method, seed, budget,
    options, output path, checkpoint ownership). The budget covers the whole
    call: preparing a PDB, the search and its final polish.

    Args:
        target: See the module docstring.
        method: A registered method for that kind of target (``None``: the
            default, :data:`DEFAULT_METHOD`); see
            :func:`openmm_actionmin.registry.describe`.
        seed: Seed (0 to 2**32 - 1); the same seed gives the same run when
            no wall-clock limit cuts it short.
        budget_s: Wall-clock budget in seconds (positive, finite), or
            ``None`` for a run bounded by a method option instead
            (``max_steps``, ``max_rounds``), e.g. to reproduce a run exactly.
        progress: Show a progress bar.
        checkpoint: Checkpoint file for methods that resume (basin hopping,
            the action trainer); an existing file of the same run is resumed,
            one of another run is refused, and a file in use by another
            process is refused.
        checkpoint_interval_s: Seconds between checkpoint writes.
        out: Write the result here (.pdb, .xyz or .json), checked before the
            search; if writing fails, the result goes to a fallback file in
            the working directory and :class:`~openmm_actionmin.output.ResultWriteError`
            names both.
        dim: Dimension for a synthetic function given by bare name.
        device: Torch device for a cluster name or a function ``"name:dim"``
            (``"cuda"`` on a GPU machine); see :func:`as_system`.
        forcefield: Force-field XML name(s) for a PDB path.
        solvent: Implicit solvent for a PDB path: ``"obc2"``, ``"obc2-xml"``,
            ``"gbn2"`` or ``"none"``.
        potential: For an XYZ file: ``"lj"`` (coordinates in sigma, reduced
            units), ``"ase:EMT"`` or ``"ase:LennardJones"`` (Angstrom, eV).
        reference: For peptides, a structure to report the CA RMSD to (a PDB
            path of the same sequence, or positions ``[N, 3]`` nm); history
            rows and ``extra["ca_rmsd_A"]`` then carry it.
        **options: Settings of the method for that kind of target (the
            fields of its settings dataclass, ``registry.METHODS[name].settings``).

    Returns:
        A :class:`~openmm_actionmin.result.Result`; for peptides ``extra``
        holds ``start_energy``, ``final_rms_force``, ``group_energies`` and
        ``ca_rmsd_to_input_A``.

    Raises:
        ValueError: an unknown method or option, a bad seed or budget, an
            output path of the wrong kind, a checkpoint of another run.
        OSError: an output folder that cannot be written.
    """
    from . import checkpoints
    from .output import check_output_path, check_writable_file, save_result

    t_start = time.perf_counter()
    seed = check_seed(seed)
    budget = None if budget_s is None else check_budget(budget_s)
    check_budget(checkpoint_interval_s, "checkpoint_interval_s")
    if out is not None:
        check_output_path(out)
    suffix = Path(os.fspath(target)).suffix.lower() if isinstance(target, (str, os.PathLike)) else ""
    is_pdb = suffix == ".pdb"
    pdb_options = (
        {
            "forcefield": forcefield,
            "solvent": solvent,
            **{k: options.pop(k) for k in ("keep_water", "keep_heterogens") if k in options},
        }
        if is_pdb
        else None
    )
    if suffix == ".xyz":
        pdb_options = {"potential": potential}
    elif potential is not None:
        raise ValueError("potential= applies to XYZ files only")
    system = as_system(target, dim=dim, device=device, pdb_options=pdb_options)
    kind = target_kind(system)
    spec = get_method(method or DEFAULTS[kind], kind)
    if out is not None:
        check_output_path(out, atomic=system.is_atomic)
    start: Dict[str, Any] = {}
    if kind == "peptide":
        from .search.openmm_baselines import rms_force

        e0, f0 = system.oracle.energy_and_forces(system.start_positions[None], transform=None)
        start = {"start_energy": float(e0[0]), "start_rms_force": rms_force(f0[0].numpy())}
    rmsd = None
    if reference is not None:
        if kind != "peptide":
            raise ValueError("reference= (a CA RMSD reference) applies to peptides and proteins only")
        from .proteins import CARMSD

        rmsd = CARMSD(system.topology, reference)
        options = {**options, "rmsd": rmsd}
    prep_s = time.perf_counter() - t_start
    config = RunConfig(
        seed=seed,
        budget_s=None if budget is None else max(budget - prep_s, min(0.5, budget)),
        progress=bool(progress),
        checkpoint=checkpoint,
        checkpoint_interval_s=float(checkpoint_interval_s),
        options=dict(options),
    )
    lock = None
    if checkpoint is not None:
        if not spec.checkpoints:
            raise ValueError(
                f"method {spec.name!r} does not write checkpoints; leave checkpoint out or choose one of "
                f"{', '.join(m for m in _checkpointing(kind))}"
            )
        checkpoint = os.fspath(checkpoint)
        check_writable_file(checkpoint, "checkpoint", "run.ckpt")
        lock = checkpoints.CheckpointLock(checkpoint)
        lock.acquire()
    try:
        result = spec.run(system, config)
    finally:
        if lock is not None:
            lock.release()
    result.method = spec.name
    result.seed = seed
    if not result.system:
        result.system = system.name
    if result.symbols is None and system.symbols is not None:
        result.symbols = list(system.symbols)
    if result.topology is None and system.topology is not None:
        result.topology = system.topology
    extra = dict(result.extra)
    if kind == "peptide":
        extra.update(_peptide_extras(system, result, t_start, start))
        if is_pdb:
            extra.update(
                {
                    "pdb": os.fspath(target),
                    "forcefield": forcefield,
                    "solvent": solvent,
                    "preparation": system.metadata.get("preparation"),
                }
            )
    if rmsd is not None:
        extra.update(ca_rmsd_A=rmsd(np.asarray(result.positions, dtype=np.float64)), reference=rmsd.source)
    extra["preparation_s"] = prep_s
    extra["budget_s"] = budget
    result.extra = extra
    result.wall_s = time.perf_counter() - t_start
    if out is not None:
        save_result(result, out)
    return result


def _checkpointing(kind: str):
    from .registry import METHODS, METHODS_FOR

    return [m for m in METHODS_FOR[kind] if METHODS[m].checkpoints]


def minimize_pdb(
    path: Union[str, os.PathLike],
    forcefield: Any = "amber14-all.xml",
    solvent: str = "obc2",
    method: Optional[str] = None,
    seed: int = 0,
    budget_s: float = 60.0,
    reference: Any = None,
    *,
    output: Optional[Union[str, os.PathLike]] = None,
    progress: bool = False,
    **options: Any,
) -> Result:
    """Find a low-energy structure of a PDB under an AMBER force field.

    The same run as ``openmm_actionmin.minimize(path, method, ...)``: one
    method name means one algorithm through either door.

    Args:
        path: Input PDB (prepared by pdbfixer).
        forcefield: Force-field XML name(s).
        solvent: ``"obc2"`` (native GBSAOBCForce, fast), ``"obc2-xml"``,
            ``"gbn2"`` or ``"none"``.
        method: A registered peptide method (``None``: the default).
        seed: Seed of the method.
        budget_s: Wall-clock budget, seconds (preparation included).
        reference: Structure to report the CA RMSD to: a PDB path (same
            sequence), positions ``[N, 3]`` nm of the prepared topology, or None.
        output: If given, the result is also saved there (``.pdb``, ``.xyz``
            or ``.json``), checked before the search.
        progress: Show a progress bar.
        **options: Fields of :class:`~openmm_actionmin.proteins.PeptideSettings` (``platform``,
            ``threads``, ``tolerance_kj_mol_nm``, ``max_delta_deg``, ...).

    Returns:
        A :class:`Result` (see :func:`openmm_actionmin.minimize`).
    """
    return minimize(
        path,
        method,
        seed=seed,
        budget_s=budget_s,
        progress=progress,
        out=output,
        forcefield=forcefield,
        solvent=solvent,
        reference=reference,
        **options,
    )
