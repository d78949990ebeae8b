"""Structure export (XYZ, PDB, mdtraj, ASE) and RMSD of mdtraj trajectories.

Structure identity (Kabsch RMSD, fingerprints) lives in
:mod:`openmm_actionmin.geometry`.

Length conventions at the export boundary:

* ``"nm"``: written as is to mdtraj/PDB (which store nm internally and write
  Angstrom in the PDB file), times 10 to XYZ/ASE (Angstrom).
* ``"angstrom"`` (also ``"A"``, ``"Å"``): divided by 10 for mdtraj, as is for
  XYZ/ASE.
* ``"sigma"`` (reduced Lennard-Jones units): **one sigma is written as one
  Angstrom** everywhere, i.e. as 0.1 nm to mdtraj/PDB and 1 Angstrom to
  XYZ/ASE. The numbers in every exported file are therefore the reduced
  coordinates themselves; the files say so in their comment line / REMARK.
  Non-atomic (``"dimensionless"``) positions cannot be exported.

Element symbols for clusters without a topology (see :func:`cluster_symbols`):
single-component LJ atoms are written as argon ``Ar``; binary LJ type A as
``Ar`` and type B as ``Ne``; ionic clusters as ``Na`` (positive) and ``Cl``
(negative). The elements are labels for viewers only: the energies are those
of the reduced model, not of real argon or neon.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, List, Optional, Sequence

import numpy as np

from .fileio import atomic_write_text
from .geometry import kabsch_rmsd_batch
from .oracles.base import Units

#: Length units -> nanometres per unit at the export boundary (see module doc).
_NM_PER_UNIT = {
    "nm": 1.0,
    "angstrom": 0.1,
    "a": 0.1,
    "å": 0.1,
    "sigma": 0.1,  # convention: 1 sigma written as 1 Angstrom
}

#: Element written for each cluster atom kind (see module doc).
LJ_SYMBOL = "Ar"
BINARY_SYMBOLS = ("Ar", "Ne")
IONIC_SYMBOLS = ("Na", "Cl")


# --------------------------------------------------------------------- units
def nm_per_length_unit(units: Units) -> float:
    """Nanometres per ``units.length`` at the export boundary.

    Args:
        units: Units of the positions.

    Returns:
        The factor ``f`` with ``x_nm = f * x``; 0.1 for reduced ``"sigma"``
        (1 sigma written as 1 Angstrom).

    Raises:
        ValueError: for a length unit that has no export convention.
    """
    key = str(units.length).strip().lower()
    if key not in _NM_PER_UNIT:
        raise ValueError(
            f"cannot export positions in length unit {units.length!r}: known units are "
            f"{sorted(set(_NM_PER_UNIT) - {'a', 'å'})}; non-atomic results can only be saved as .json"
        )
    return _NM_PER_UNIT[key]


def _positions(positions: Any) -> np.ndarray:
    """Positions as float64 ``[N, 3]`` numpy, with a clear error otherwise."""
    if hasattr(positions, "detach"):
        positions = positions.detach().cpu().numpy()
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 3 or x.shape[0] < 1:
        raise ValueError(f"positions must have shape [N, 3] with N >= 1, got {x.shape}")
    if not np.all(np.isfinite(x)):
        atom = int(np.argwhere(~np.isfinite(x))[0, 0])
        raise ValueError(f"positions contain NaN/inf (first at atom {atom}); cannot export a non-finite structure")
    return x


def _symbols(symbols: Optional[Sequence[str]], n: int) -> List[str]:
    if symbols is None:
        return [LJ_SYMBOL] * n
    symbols = [str(s) for s in symbols]
    if len(symbols) != n:
        raise ValueError(f"got {len(symbols)} symbols for {n} atoms; pass one element symbol per atom")
    return symbols


def cluster_symbols(types: Optional[Sequence[int]], n: int, *, ionic: bool = False) -> List[str]:
    """Element labels of cluster atoms (see the module doc for the convention).

    Args:
        types: Type index per atom ``[N]`` (``None``: all type 0).
        n: Number of atoms N.
        ionic: Label types 0/1 as ``Na``/``Cl`` instead of ``Ar``/``Ne``.

    Returns:
        ``[N]`` element symbols.

    Raises:
        ValueError: more than two types, or a wrong number of types.
    """
    if types is None:
        return [IONIC_SYMBOLS[0] if ionic else LJ_SYMBOL] * n
    types = [int(t) for t in types]
    if len(types) != n:
        raise ValueError(f"got {len(types)} types for {n} atoms")
    table = IONIC_SYMBOLS if ionic else BINARY_SYMBOLS
    if types and (min(types) < 0 or max(types) >= len(table)):
        raise ValueError(
            f"cluster types must be 0 or 1 to get element labels, got {sorted(set(types))}; pass symbols explicitly"
        )
    return [table[t] for t in types]


# ------------------------------------------------------------------- mdtraj
def cluster_topology(symbols: Sequence[str]):
    """An mdtraj topology of unbonded atoms, one residue per atom.

    Args:
        symbols: Element symbols ``[N]``; residue and atom names are the
            upper-cased symbol.

    Returns:
        ``mdtraj.Topology``.
    """
    import mdtraj as md

    top = md.Topology()
    chain = top.add_chain()
    for i, sym in enumerate(symbols):
        try:
            element = md.element.get_by_symbol(sym)
        except KeyError as err:
            raise ValueError(f"atom {i}: unknown element symbol {sym!r}; use a real element (e.g. 'Ar')") from err
        residue = top.add_residue(sym.upper(), chain, resSeq=i + 1)
        top.add_atom(sym.upper(), element, residue)
    return top


def _as_mdtraj_topology(topology: Any):
    import mdtraj as md

    if isinstance(topology, md.Topology):
        return topology
    if hasattr(topology, "atoms") and hasattr(topology, "residues") and hasattr(topology, "chains"):
        return md.Topology.from_openmm(topology)
    raise TypeError(f"topology must be an mdtraj or OpenMM Topology, got {type(topology).__name__}")


def to_mdtraj(positions: Any, units: Units, topology: Any = None, symbols: Optional[Sequence[str]] = None):
    """One-frame ``mdtraj.Trajectory`` of a structure.

    Args:
        positions: ``[N, 3]`` in ``units.length``.
        units: Units of ``positions``; converted to nm (reduced sigma as 0.1 nm).
        topology: Optional OpenMM or mdtraj topology; otherwise unbonded atoms
            named by ``symbols`` (default all ``Ar``).
        symbols: Element symbols ``[N]`` used when there is no topology.

    Returns:
        ``mdtraj.Trajectory`` with ``xyz [1, N, 3]`` in nm.

    Raises:
        ValueError: wrong shape, unknown unit, or atom-count mismatch.
    """
    import mdtraj as md

    x = _positions(positions)
    top = _as_mdtraj_topology(topology) if topology is not None else cluster_topology(_symbols(symbols, x.shape[0]))
    if top.n_atoms != x.shape[0]:
        raise ValueError(
            f"topology has {top.n_atoms} atoms but positions have {x.shape[0]}; they must describe the same system"
        )
    return md.Trajectory(x[None] * nm_per_length_unit(units), top)


def to_ase(positions: Any, units: Units, symbols: Optional[Sequence[str]] = None):
    """An ``ase.Atoms`` of a structure (Angstrom; reduced sigma as 1 Angstrom).

    Args:
        positions: ``[N, 3]`` in ``units.length``.
        units: Units of ``positions``.
        symbols: Element symbols ``[N]`` (default all ``Ar``).

    Returns:
        ``ase.Atoms`` without a cell or periodicity; ``info["length_unit"]``
        records the original unit.
    """
    import ase

    x = _positions(positions)
    atoms = ase.Atoms(symbols=_symbols(symbols, x.shape[0]), positions=x * nm_per_length_unit(units) * 10.0)
    atoms.info["length_unit"] = units.length
    return atoms


def write_xyz(
    path: os.PathLike,
    positions: Any,
    units: Units,
    symbols: Optional[Sequence[str]] = None,
    energy: Optional[float] = None,
) -> Path:
    """Write an extended-XYZ file (atomic write), readable by ``ase.io.read``.

    Coordinates are written in Angstrom (reduced sigma as 1 Angstrom) with 10
    decimals; the comment line carries ``energy=<value>`` (in
    ``units.energy``), the energy and length units, and the sigma convention.

    Args:
        path: Output path.
        positions: ``[N, 3]`` in ``units.length``.
        units: Units of ``positions`` and ``energy``.
        symbols: Element symbols ``[N]`` (default all ``Ar``).
        energy: Energy to record in the comment line, if any.

    Returns:
        The path written.
    """
    x = _positions(positions)
    syms = _symbols(symbols, x.shape[0])
    xa = x * nm_per_length_unit(units) * 10.0
    comment = ["Properties=species:S:1:pos:R:3"]
    if energy is not None:
        comment.append(f"energy={float(energy):.12g}")
    comment.append(f"energy_unit={_token(units.energy)}")
    comment.append(f"length_unit={_token(units.length)}")
    if str(units.length).lower() == "sigma":
        comment.append('convention="1 sigma written as 1 angstrom"')
    lines = [str(x.shape[0]), " ".join(comment)]
    lines += [f"{s:<3s} {a:18.10f} {b:18.10f} {c:18.10f}" for s, (a, b, c) in zip(syms, xa)]
    path = Path(path)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _token(text: str) -> str:
    text = str(text)
    return f'"{text}"' if any(c in text for c in ' ="') else text


def write_pdb(
    path: os.PathLike,
    positions: Any,
    units: Units,
    topology: Any = None,
    symbols: Optional[Sequence[str]] = None,
    energy: Optional[float] = None,
) -> Path:
    """Write a PDB file through mdtraj (atomic write).

    PDB stores Angstrom with 3 decimals; reduced sigma coordinates appear as
    the reduced numbers (1 sigma = 1 Angstrom). A ``REMARK`` line records the
    energy and units.

    Args:
        path: Output path.
        positions: ``[N, 3]`` in ``units.length``.
        units: Units of ``positions`` and ``energy``.
        topology: Optional OpenMM or mdtraj topology (else unbonded atoms).
        symbols: Element symbols ``[N]`` used when there is no topology.
        energy: Energy for the REMARK line, if any.

    Returns:
        The path written.
    """
    traj = to_mdtraj(positions, units, topology=topology, symbols=symbols)
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_file = os.path.join(tmp, "structure.pdb")
        traj.save_pdb(tmp_file)
        with open(tmp_file, encoding="utf-8") as fh:
            body = fh.read()
    remarks = []
    if energy is not None:
        remarks.append(f"REMARK   1 ENERGY {float(energy):.10g} {units.energy}")
    if str(units.length).lower() == "sigma":
        remarks.append("REMARK   1 REDUCED UNITS: 1 SIGMA WRITTEN AS 1 ANGSTROM")
    text = "\n".join(remarks) + ("\n" if remarks else "") + body
    atomic_write_text(path, text)
    return path


# -------------------------------------------------------------------- RMSD
def rmsd_to_reference(
    traj: Any, reference: Any, atom_indices: Optional[Sequence[int]] = None, frame: int = 0
) -> np.ndarray:
    """Kabsch RMSD of every frame of an mdtraj trajectory to a reference frame (nm).

    Computed by :func:`openmm_actionmin.geometry.kabsch_rmsd_batch` (float64);
    neither input changes.

    Args:
        traj: ``mdtraj.Trajectory`` (nm).
        reference: ``mdtraj.Trajectory`` with the same atoms.
        atom_indices: Atoms to superpose and compare (default: all).
        frame: Frame of ``reference`` to use.

    Returns:
        ``[n_frames]`` RMSD in nm.
    """
    if traj.n_atoms != reference.n_atoms:
        raise ValueError(f"rmsd_to_reference: trajectory has {traj.n_atoms} atoms, reference {reference.n_atoms}")
    return kabsch_rmsd_batch(traj.xyz, reference.xyz[frame], atom_indices)
